/* libchan/object.h: refcounted objects, the one kind of thing that crosses
 * threads by reference.
 *
 * Channels are refcounted objects, and so are the buffers and encoded values
 * of the codec layer; an application can define its own types too. A value
 * (libchan/value.h) that holds an object holds one counted reference to it.
 *
 * Counting: increments are relaxed (a new reference can only be made from an
 * existing one, so nothing needs ordering); the decrement is release, and the
 * thread that drops the last reference issues an acquire fence before the
 * destructor runs, so every write made through any reference happens-before
 * destruction. The count refuses to overflow (LCH_EOVERFLOW) instead of
 * wrapping around into a use-after-free.
 *
 * Objects are opaque: allocate them with lch_object_new() and reach the
 * caller's bytes with lch_object_payload(). */
#ifndef LIBCHAN_OBJECT_H
#define LIBCHAN_OBJECT_H

#include <stddef.h>
#include <stdint.h>

#include "libchan/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lch_object lch_object;

/* Type tags. Values below LCH_TYPE_USER are reserved for libchan. */
enum {
    LCH_TYPE_CHANNEL = 1,
    LCH_TYPE_BUFFER = 2,  /* libchan shared buffer */
    LCH_TYPE_ENCODED = 3, /* codec-encoded value */
    LCH_TYPE_USER = 1024  /* first tag free for applications */
};

typedef struct lch_type {
    uint32_t tag;     /* >= LCH_TYPE_USER for application types */
    const char *name; /* for debugging; static storage */
    /* Called exactly once, by the thread that drops the last reference, before
     * the object's memory is freed. It must not take a new reference to `obj`.
     * May be NULL. */
    void (*destroy)(lch_object *obj);
} lch_type;

/* Allocate an application object with `payload_size` bytes of zeroed payload
 * (aligned for any standard type) and a count of one, owned by the caller.
 * `type` must outlive the object. Returns NULL when type is NULL, its tag is
 * below LCH_TYPE_USER, or memory is exhausted. Any thread. */
LCH_API lch_object *lch_object_new(const lch_type *type, size_t payload_size);

/* The payload of an object made by lch_object_new(); NULL for libchan's own
 * types. Valid as long as the caller holds a reference. */
LCH_API void *lch_object_payload(lch_object *obj);

/* Take one more reference. The caller must already hold one. Returns LCH_OK,
 * LCH_EINVAL for NULL, or LCH_EOVERFLOW (count unchanged) when the count is at
 * its ceiling. Never blocks; any thread. */
LCH_API int lch_object_ref(lch_object *obj);

/* Drop one reference; the last one runs the type's destroy and frees the
 * object. NULL is ignored. Never blocks (destroy functions should not either);
 * any thread. */
LCH_API void lch_object_unref(lch_object *obj);

/* Type tag and current count (a snapshot, for assertions and debugging). */
LCH_API uint32_t lch_object_type(const lch_object *obj);
LCH_API uint32_t lch_object_refcount(const lch_object *obj);

#ifdef __cplusplus
}
#endif

#endif /* LIBCHAN_OBJECT_H */
