/* libchan/buffer.h: immutable, refcounted byte buffers shared by reference.
 *
 * A buffer is a refcounted object (LCH_TYPE_BUFFER): any number of threads
 * or interpreters may hold it at once and read its bytes without locks, and
 * it travels through channels as a counted reference, never a copy. Its
 * bytes never change once it is shared; the only writable window is between
 * lch_buffer_new_uninit() and the first time the creator hands it on (the
 * codec's encoder writes into a buffer that way).
 *
 * Memory: buffers that libchan allocates have their data 64-byte aligned.
 * Large blocks (LCH_BUFFER_CACHE_MIN bytes and up) come from a bounded,
 * process-wide cache of recently freed blocks, so that creating a 1 MiB
 * buffer does not pay fresh page faults each time; lch_buffer_cache_*
 * configure and trim it. All allocations go through the allocator hook
 * (libchan/alloc.h).
 *
 * Thread safety: every function may be called from any thread; a buffer's
 * reference count is the only state they change (and, for the cache, a
 * process-wide lock taken only for large blocks). None of them block, except
 * that the cache lock may be contended briefly. */
#ifndef LIBCHAN_BUFFER_H
#define LIBCHAN_BUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "libchan/export.h"
#include "libchan/object.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lch_buffer lch_buffer;

/* Called once, when the last reference to an adopted buffer is dropped, from
 * whichever thread drops it. */
typedef void (*lch_buffer_release_fn)(void *ctx, void *data, size_t len);

/* Alignment of data allocated by libchan. */
#define LCH_BUFFER_ALIGN 64
/* Largest buffer: PTRDIFF_MAX bytes (pointer differences stay defined). */
#define LCH_BUFFER_MAX_LEN ((size_t)PTRDIFF_MAX)
/* Blocks at least this large go through the cache. */
#define LCH_BUFFER_CACHE_MIN ((size_t)64 * 1024)

/* Copy len bytes from data into a new buffer. On success *out holds the only
 * reference; on failure *out is NULL. data may be NULL only when len is 0.
 * A zero-length buffer is valid, with a non-NULL, 64-byte aligned data
 * pointer to no bytes. Errors: LCH_EINVAL, LCH_E2BIG (len above
 * LCH_BUFFER_MAX_LEN), LCH_ENOMEM. */
LCH_API int lch_buffer_new_copy(lch_buffer **out, const void *data,
                                size_t len);

/* A new buffer of len bytes whose contents the caller writes through *data
 * before sharing it (the bytes are uninitialised). Same ownership and errors
 * as lch_buffer_new_copy; *data is NULL on failure. */
LCH_API int lch_buffer_new_uninit(lch_buffer **out, size_t len, void **data);

/* Resize a buffer made by lch_buffer_new_uninit that has never been shared
 * (count 1, not sliced): contents up to min(old, new) length are kept, *data
 * receives the possibly moved pointer. On failure the buffer is unchanged
 * and still the caller's. Errors: LCH_EINVAL (NULL, shared, adopted or
 * sliced buffer), LCH_E2BIG, LCH_ENOMEM. */
LCH_API int lch_buffer_resize(lch_buffer *b, size_t len, void **data);

/* Wrap memory the caller already has (an mmap'd file, a pool block, a staging
 * buffer) without copying. On success the buffer owns the memory and calls
 * release(ctx, data, len) exactly once when its last reference goes (release
 * may be NULL for memory that outlives every reference, such as static
 * data); on failure nothing is called and the caller keeps the memory. The
 * memory must not change while the buffer is alive. Alignment is whatever
 * the caller provides. Errors: LCH_EINVAL (data NULL with len > 0),
 * LCH_E2BIG, LCH_ENOMEM. */
LCH_API int lch_buffer_adopt(lch_buffer **out, const void *data, size_t len,
                             lch_buffer_release_fn release, void *ctx);

/* A buffer for bytes [offset, offset + len) of parent that shares its memory
 * and holds a reference to it (slices of slices refer to the root). On
 * success *out is the caller's; parent is unchanged and still the caller's.
 * Errors: LCH_EINVAL (NULL, or the range is outside parent), LCH_ENOMEM,
 * LCH_EOVERFLOW (parent's count at its ceiling). */
LCH_API int lch_buffer_slice(lch_buffer **out, lch_buffer *parent,
                             size_t offset, size_t len);

/* The bytes and their length. Valid while the caller holds a reference.
 * NULL/0 for a NULL buffer. */
LCH_API const void *lch_buffer_data(const lch_buffer *b);
LCH_API size_t lch_buffer_len(const lch_buffer *b);

/* Reference counting (libchan/object.h); unref accepts NULL. */
LCH_API int lch_buffer_ref(lch_buffer *b);
LCH_API void lch_buffer_unref(lch_buffer *b);

/* The buffer as an object (no count change), and back (NULL if obj is not a
 * buffer). */
LCH_API lch_object *lch_buffer_object(lch_buffer *b);
LCH_API lch_buffer *lch_buffer_from_object(lch_object *obj);

/* The large-block cache. limit is the most bytes kept idle (default
 * LCH_BUFFER_CACHE_DEFAULT_LIMIT; 0 disables the cache and frees what it
 * holds). trim frees every idle block. stats reports idle bytes and
 * blocks and hit/miss counts since start. */
#define LCH_BUFFER_CACHE_DEFAULT_LIMIT ((size_t)64 * 1024 * 1024)
typedef struct lch_buffer_cache_stats {
    size_t idle_bytes;
    size_t idle_blocks;
    uint64_t hits;
    uint64_t misses;
} lch_buffer_cache_stats;

LCH_API void lch_buffer_cache_set_limit(size_t bytes);
LCH_API void lch_buffer_cache_trim(void);
LCH_API void lch_buffer_cache_stats_get(lch_buffer_cache_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* LIBCHAN_BUFFER_H */
