/* ck_ring_shim.h: Concurrency Kit's ck_ring behind four plain C functions.
 *
 * ck_ring.h (CK 0.7.1) is C only: it returns `false` from a function that
 * returns a pointer, which C++ rejects. So the ring is driven from
 * ck_ring_shim.c, and lch_bench is built with link-time optimization where the
 * toolchain supports it, so these calls are inlined like the header's. The
 * ring stores pointer-sized entries; the benchmarks pass a 64-bit integer as
 * the entry. */
#ifndef LCH_BENCH_CK_RING_SHIM_H
#define LCH_BENCH_CK_RING_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lchb_ck_ring lchb_ck_ring;

/* A ring of `size` slots (a power of two >= 2; it holds size - 1 entries), or
 * NULL on bad size or out of memory. Free with lchb_ck_ring_free (NULL ok). */
lchb_ck_ring *lchb_ck_ring_new(unsigned size);
void lchb_ck_ring_free(lchb_ck_ring *r);

/* ck_ring_enqueue_spsc / ck_ring_dequeue_spsc: false when full / empty. */
bool lchb_ck_ring_enqueue_spsc(lchb_ck_ring *r, int64_t v);
bool lchb_ck_ring_dequeue_spsc(lchb_ck_ring *r, int64_t *v);

/* ck_ring_enqueue_mpmc / ck_ring_dequeue_mpmc: false when full / empty. */
bool lchb_ck_ring_enqueue_mpmc(lchb_ck_ring *r, int64_t v);
bool lchb_ck_ring_dequeue_mpmc(lchb_ck_ring *r, int64_t *v);

#ifdef __cplusplus
}
#endif

#endif /* LCH_BENCH_CK_RING_SHIM_H */
