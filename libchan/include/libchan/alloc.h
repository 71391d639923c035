/* libchan/alloc.h: the allocator hook.
 *
 * Every allocation libchan makes for its own objects (channels, ring buffers,
 * segments, names; later buffers and encoders) goes through these functions,
 * so an embedder can route them to its own allocator and a test can make the
 * Nth allocation fail. liburcu's internal allocations do not go through it. */
#ifndef LIBCHAN_ALLOC_H
#define LIBCHAN_ALLOC_H

#include <stddef.h>

#include "libchan/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lch_allocator {
    /* Same contracts as malloc/realloc/free; ctx is passed through. malloc
     * and realloc return NULL on failure, which libchan turns into
     * LCH_ENOMEM. All three must be safe to call from any thread. */
    void *(*malloc)(void *ctx, size_t size);
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
} lch_allocator;

/* Install `a` (copied), or restore the C library's allocator when `a` is NULL.
 * Returns LCH_EINVAL if any of the three functions is missing.
 *
 * Not thread-safe and not reentrant: call it while no libchan object is alive
 * and no other thread is inside libchan (typically once at start-up, or
 * between tests). libchan frees memory through whichever allocator is
 * installed at the time, so everything allocated under one allocator must be
 * gone before another is installed. */
LCH_API int lch_set_allocator(const lch_allocator *a);

/* Copy the allocator currently installed into *out. Thread-safe under the same
 * rule as lch_set_allocator (no concurrent swap). */
LCH_API void lch_get_allocator(lch_allocator *out);

#ifdef __cplusplus
}
#endif

#endif /* LIBCHAN_ALLOC_H */
