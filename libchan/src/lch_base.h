/* lch_base.h: what every part of the library shares, the core and the
 * codecs alike: allocation through the hook, the refcounted object header,
 * and a few macros. Nothing here knows about channels or liburcu; the
 * channel internals are in lch_impl.h.
 *
 * Naming: public symbols are lch_*, library-internal non-static symbols are
 * lch__*, everything else is static. */
#ifndef LCH_BASE_H
#define LCH_BASE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libchan/alloc.h"
#include "libchan/debug.h"
#include "libchan/error.h"
#include "libchan/object.h"
#include "libchan/value.h"

#define LCH__CACHELINE 64

#if defined(__GNUC__)
#  define LCH__LIKELY(x) __builtin_expect(!!(x), 1)
#  define LCH__UNLIKELY(x) __builtin_expect(!!(x), 0)
#  define LCH__NOINLINE __attribute__((noinline))
#  define LCH__ALWAYS_INLINE inline __attribute__((always_inline))
#else
#  define LCH__LIKELY(x) (x)
#  define LCH__UNLIKELY(x) (x)
#  define LCH__NOINLINE
#  define LCH__ALWAYS_INLINE inline
#endif

/* ThreadSanitizer cannot see ordering made inside uninstrumented liburcu
 * (cds_lfht publication and lookup). Where libchan relies on it, these tell
 * TSan the same fact: a release before publishing an object, an acquire
 * after finding it. They compile to nothing in other builds. */
#if defined(__SANITIZE_THREAD__)
#  define LCH__TSAN 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define LCH__TSAN 1
#  endif
#endif
#ifdef LCH__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#  define LCH__TSAN_RELEASE(p) __tsan_release((void *)(p))
#  define LCH__TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#  define LCH__TSAN_RELEASE(p) ((void)0)
#  define LCH__TSAN_ACQUIRE(p) ((void)0)
#endif

/* ---- allocation (alloc.c) ------------------------------------------------ */

void *lch__malloc(size_t size);
void *lch__realloc(void *ptr, size_t size);
void lch__free(void *ptr);
/* `align` is a power of two <= 4096; free with lch__free_aligned. */
void *lch__malloc_aligned(size_t size, size_t align);
void lch__free_aligned(void *ptr);

/* Abort with a message: only for caller bugs (a refcount going below zero),
 * never for runtime conditions. */
_Noreturn void lch__panic(const char *msg);

/* ---- objects (object.c) -------------------------------------------------- */

enum {
    LCH__OBJ_COUNTED = 1u << 0,   /* included in lch__live_objects */
    LCH__OBJ_SELF_FREE = 1u << 1, /* type's destroy frees the memory */
    LCH__OBJ_USER = 1u << 2,      /* made by lch_object_new: has a payload */
    /* Bits from here up are the type's own (a layout variant, say): the
     * core never reads them. */
    LCH__OBJ_TYPE_FLAG0 = 1u << 16
};

struct lch_object {
    _Atomic uint32_t refcount; /* 0 only while being destroyed */
    uint32_t flags;            /* LCH__OBJ_*, fixed at creation */
    const lch_type *type;      /* never NULL */
};

/* Refuse references past this, well below the wrap-around point, so the
 * transient overshoot of a refused increment cannot wrap. */
#define LCH__REF_MAX ((uint32_t)1 << 30)

/* Initialise a header with one reference owned by the caller. */
void lch__object_init(lch_object *obj, const lch_type *type, uint32_t flags);

/* Undo lch__object_init for an object that was never shared and is being
 * freed directly by its creator (no destroy call, no unref). */
void lch__object_forget(lch_object *obj);

/* Take a reference unless the count is already zero (the object is being
 * destroyed) or at its ceiling. For lookups whose memory is kept alive by
 * some other means (an RCU read-side section). true on success. */
bool lch__object_get_unless_zero(lch_object *obj);

/* Object counting (object.c) */
extern _Atomic int64_t lch__live_objects;
extern _Atomic bool lch__track_objects;

#endif /* LCH_BASE_H */
