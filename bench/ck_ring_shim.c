/* ck_ring_shim.c: the ck_ring calls lch_bench makes (see ck_ring_shim.h). */
#include "ck_ring_shim.h"

#include <stdlib.h>

#include <ck_ring.h>

struct lchb_ck_ring {
    struct ck_ring ring; /* CK pads producer and consumer indices apart */
    struct ck_ring_buffer *slots;
};

lchb_ck_ring *lchb_ck_ring_new(unsigned size)
{
    if (size < 2 || (size & (size - 1)) != 0)
        return NULL;
    lchb_ck_ring *r = aligned_alloc(64, sizeof *r + (64 - sizeof *r % 64) % 64);
    if (r == NULL)
        return NULL;
    r->slots = aligned_alloc(64, size * sizeof *r->slots);
    if (r->slots == NULL) {
        free(r);
        return NULL;
    }
    ck_ring_init(&r->ring, size);
    return r;
}

void lchb_ck_ring_free(lchb_ck_ring *r)
{
    if (r != NULL) {
        free(r->slots);
        free(r);
    }
}

bool lchb_ck_ring_enqueue_spsc(lchb_ck_ring *r, int64_t v)
{
    return ck_ring_enqueue_spsc(&r->ring, r->slots, (void *)(intptr_t)v);
}

bool lchb_ck_ring_dequeue_spsc(lchb_ck_ring *r, int64_t *v)
{
    void *e;
    if (!ck_ring_dequeue_spsc(&r->ring, r->slots, &e))
        return false;
    *v = (int64_t)(intptr_t)e;
    return true;
}

bool lchb_ck_ring_enqueue_mpmc(lchb_ck_ring *r, int64_t v)
{
    return ck_ring_enqueue_mpmc(&r->ring, r->slots, (void *)(intptr_t)v);
}

bool lchb_ck_ring_dequeue_mpmc(lchb_ck_ring *r, int64_t *v)
{
    void *e;
    if (!ck_ring_dequeue_mpmc(&r->ring, r->slots, &e))
        return false;
    *v = (int64_t)(intptr_t)e;
    return true;
}
