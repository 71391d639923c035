/* alloc.c: the allocator hook and the aligned allocation built on it.
 *
 * Aligned blocks are carved out of one over-sized block from the hook: the
 * original pointer is stored just below the aligned address, so the hook
 * needs no aligned entry point of its own. */
#include <stdio.h>
#include <stdlib.h>

#include "lch_impl.h"

static void *libc_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size);
}

static void *libc_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return realloc(ptr, size);
}

static void libc_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static lch_allocator lch__alloc_hooks = {libc_malloc, libc_realloc, libc_free,
                                         NULL};

int lch_set_allocator(const lch_allocator *a)
{
    if (a && (!a->malloc || !a->realloc || !a->free))
        return LCH_EINVAL;
    /* Channels freed through call_rcu and idle cached buffer blocks must go
     * back to the allocator they came from. */
    lch__registry_barrier();
    lch_buffer_cache_trim();
    if (a)
        lch__alloc_hooks = *a;
    else
        lch__alloc_hooks = (lch_allocator){libc_malloc, libc_realloc,
                                           libc_free, NULL};
    return LCH_OK;
}

void lch_get_allocator(lch_allocator *out)
{
    if (out)
        *out = lch__alloc_hooks;
}

void *lch__malloc(size_t size)
{
    return lch__alloc_hooks.malloc(lch__alloc_hooks.ctx, size ? size : 1);
}

void *lch__realloc(void *ptr, size_t size)
{
    return lch__alloc_hooks.realloc(lch__alloc_hooks.ctx, ptr,
                                    size ? size : 1);
}

void lch__free(void *ptr)
{
    if (ptr)
        lch__alloc_hooks.free(lch__alloc_hooks.ctx, ptr);
}

void *lch__malloc_aligned(size_t size, size_t align)
{
    if (size > SIZE_MAX - align - sizeof(void *))
        return NULL;
    char *raw = lch__malloc(size + align + sizeof(void *));
    if (!raw)
        return NULL;
    uintptr_t p = ((uintptr_t)raw + sizeof(void *) + align - 1) &
                  ~(uintptr_t)(align - 1);
    ((void **)p)[-1] = raw;
    return (void *)p;
}

void lch__free_aligned(void *ptr)
{
    if (ptr)
        lch__free(((void **)ptr)[-1]);
}

_Noreturn void lch__panic(const char *msg)
{
    fprintf(stderr, "libchan: fatal: %s\n", msg);
    abort();
}
