/* list.c: the unbounded engine, a linked list of fixed-size blocks with one
 * position counter per side (the design of crossbeam's list channel).
 *
 * Indices hold position << SHIFT plus one mark bit. A block covers LAP
 * positions of which the last (offset BLOCK_CAP) is a sentinel: while a
 * counter sits on it, the thread that claimed the block's last slot is
 * installing the next block, and everyone else backs off.
 *   tail.index mark = the channel is closed (no further claims).
 *   head.index mark = head and tail are known to be in different blocks, so
 *                     a receiver need not look at tail to know it is
 *                     non-empty.
 *   seen_tail         = a position tail has reached, left by the last
 *                     receiver that read tail: below it a receiver knows
 *                     its slot is claimed without touching tail's line.
 * Each slot is 16 bytes, the size of the value it holds: a state word that
 * carries the value's kind and WRITE (value published), READ (value taken),
 * DESTROY (the block's destroyer reached this slot while its reader was
 * still busy; that reader will carry on destroying). The reader of a block's
 * last slot starts destruction; a block is retired once every slot is read,
 * kept as the list's spare for the next sender that needs one (block_new,
 * block_retire). A batch claims as many slots of one block as it can with
 * one CAS, on either side. A sender gets the next block before claiming a
 * block's last slot, so running out of memory fails the send cleanly
 * (LCH_ENOMEM) with nothing claimed, or cuts a batch short of that slot.
 * Blocking lives in channel.c; the only waits here are for a peer that is
 * between claiming a slot and finishing with it. */
#include <string.h>

#include "lch_impl.h"

#define SHIFT 1
#define MARK ((uint64_t)1)
#define LAP 64
#define BLOCK_CAP (LAP - 1)

/* State bits, above the value's kind in the same word. */
#define KIND_MASK ((1u << 24) - 1)
#define WRITE (1u << 24)
#define READ (2u << 24)
#define DESTROY (4u << 24)

/* Slots (struct lch__slot, lch_impl.h): the state word is the value's kind
 * (an lch_kind, far below 2^24) | WRITE | READ | DESTROY. */
struct lch__block {
    struct lch__slot slots[BLOCK_CAP];
    _Atomic(struct lch__block *) next;
};

/* A block for the sender about to claim a block's last slot: the spare one
 * a receiver left (see block_retire), else a new one. The exchange is the
 * whole hand-over, so there is no ABA: nobody reads a spare block's fields
 * before owning it. Acquire pairs with the release half of block_retire's
 * exchange: that receiver's last reads of the block come before our writes. */
static struct lch__block *block_new(struct lch__list *l)
{
    struct lch__block *b = atomic_exchange_explicit(&l->spare, NULL,
                                                    memory_order_acquire);
    if (!b && !(b = lch__malloc(sizeof *b)))
        return NULL;
    memset(b, 0, sizeof *b); /* next = NULL, every state = 0 */
    return b;
}

/* Keep a block nobody uses any more as the list's spare (one block: a
 * receiver retires one block per BLOCK_CAP values, a sender needs one per
 * BLOCK_CAP), freeing the spare it replaces. Release pairs with the acquire
 * exchange in block_new; acquire, with the release of an earlier retire
 * whose block we may free here. */
static void block_retire(struct lch__list *l, struct lch__block *b)
{
    lch__free(atomic_exchange_explicit(&l->spare, b, memory_order_acq_rel));
}

/* Wait for the sender that claimed this block's last slot to link the next
 * block. Acquire pairs with its release store of `next`. */
static struct lch__block *block_wait_next(struct lch__block *b)
{
    unsigned step = 0;
    struct lch__block *next;
    while (!(next = atomic_load_explicit(&b->next, memory_order_acquire)))
        lch__backoff(&step);
    return next;
}

/* Retire `b` once slots [start, BLOCK_CAP-1) are read; if one is still
 * being read, mark it DESTROY and leave the rest to its reader. Every slot
 * here has a receiver, so its sender has claimed it and will publish: wait
 * for WRITE first, so that DESTROY never lands before it (the sender's
 * plain store of WRITE would lose it). */
static void block_destroy(struct lch__list *l, struct lch__block *b,
                          size_t start)
{
    for (size_t i = start; i < BLOCK_CAP - 1; i++) {
        struct lch__slot *s = &b->slots[i];
        unsigned step = 0;
        uint32_t st;
        /* Acquire pairs with the sender's release store of WRITE. */
        while (!((st = atomic_load_explicit(&s->state,
                                            memory_order_acquire)) & WRITE))
            lch__backoff(&step);
        /* acq_rel pairs with the reader's acq_rel fetch_or(READ): exactly
         * one of us sees the other's bit. */
        if (!(st & READ) &&
            !(atomic_fetch_or_explicit(&s->state, DESTROY,
                                       memory_order_acq_rel) & READ))
            return;
    }
    block_retire(l, b);
}

int lch__list_init(struct lch__list *l)
{
    atomic_init(&l->spare, NULL);
    struct lch__block *b = block_new(l);
    if (!b)
        return LCH_ENOMEM;
    atomic_init(&l->tail.index, 0);
    atomic_init(&l->tail.block, b);
    atomic_init(&l->head.index, 0);
    atomic_init(&l->head.block, b);
    atomic_init(&l->seen_tail, 0);
    return LCH_OK;
}

void lch__list_fini(struct lch__list *l)
{
    /* Single-threaded: the last reference is gone. */
    uint64_t head = atomic_load_explicit(&l->head.index, memory_order_acquire)
                    & ~MARK;
    uint64_t tail = atomic_load_explicit(&l->tail.index, memory_order_acquire)
                    & ~MARK;
    struct lch__block *b = atomic_load_explicit(&l->head.block,
                                                memory_order_acquire);
    for (; head != tail; head += 1u << SHIFT) {
        size_t offset = (size_t)((head >> SHIFT) % LAP);
        if (offset < BLOCK_CAP) {
            struct lch__slot *s = &b->slots[offset];
            lch_value v = lch__slot_get(
                s, atomic_load_explicit(&s->state, memory_order_relaxed) &
                       KIND_MASK);
            lch_value_release(&v);
        } else {
            struct lch__block *next =
                atomic_load_explicit(&b->next, memory_order_acquire);
            lch__free(b);
            b = next;
        }
    }
    lch__free(b);
    lch__free(atomic_load_explicit(&l->spare, memory_order_acquire));
}

/* Claim up to n consecutive slots of the tail block (never past its last
 * slot) with one CAS, then publish them in order. *done = how many; if
 * that is short because the next block could not be allocated, the return
 * is LCH_ENOMEM with *done > 0 (n > 1 only). */
static LCH__ALWAYS_INLINE int list_push(struct lch__list *l,
                                        const lch_value *v, size_t n,
                                        size_t *done)
{
    unsigned step = 0;
    /* Acquire pairs with the release stores that install a block, so the
     * block pointer read next is at least as new as the index. */
    uint64_t tail = atomic_load_explicit(&l->tail.index, memory_order_acquire);
    struct lch__block *b = atomic_load_explicit(&l->tail.block,
                                                memory_order_acquire);
    struct lch__block *next_block = NULL;
    size_t offset, k;
    unsigned lost = 0; /* claims lost to other senders */
    bool short_of_memory = false;
    *done = 0;
    for (;;) {
        if (tail & MARK) {
            if (next_block)
                block_retire(l, next_block);
            return LCH_ECLOSED;
        }
        offset = (size_t)((tail >> SHIFT) % LAP);
        if (offset == BLOCK_CAP) { /* next block being installed */
            lch__backoff(&step);
            tail = atomic_load_explicit(&l->tail.index, memory_order_acquire);
            b = atomic_load_explicit(&l->tail.block, memory_order_acquire);
            continue;
        }
        k = BLOCK_CAP - offset < n ? BLOCK_CAP - offset : n;
        short_of_memory = false;
        if (offset + k == BLOCK_CAP && !next_block) {
            next_block = block_new(l);
            if (!next_block) {
                if (k == 1)
                    return LCH_ENOMEM;
                k--; /* stop short of the last slot */
                short_of_memory = true;
            }
        }
        uint64_t new_tail = tail + ((uint64_t)k << SHIFT);
        /* seq_cst pairs with the receivers' seq_cst fence before they read
         * tail to decide the list is empty. */
        if (atomic_compare_exchange_weak_explicit(&l->tail.index, &tail,
                                                  new_tail,
                                                  memory_order_seq_cst,
                                                  memory_order_acquire)) {
            if (offset + k == BLOCK_CAP) {
                /* We own the last slot: install the next block, then move
                 * the index off the sentinel. fetch_add keeps a mark that a
                 * concurrent close may have set. Release pairs with the
                 * acquire loads of senders and of block_wait_next. */
                atomic_store_explicit(&l->tail.block, next_block,
                                      memory_order_release);
                atomic_fetch_add_explicit(&l->tail.index, 1u << SHIFT,
                                          memory_order_release);
                atomic_store_explicit(&b->next, next_block,
                                      memory_order_release);
                next_block = NULL;
            }
            break;
        }
        b = atomic_load_explicit(&l->tail.block, memory_order_acquire);
        lch__cas_backoff(&lost);
    }
    if (next_block) /* another sender took the last slot */
        block_retire(l, next_block);
    for (size_t i = 0; i < k; i++) {
        struct lch__slot *s = &b->slots[offset + i];
        lch__slot_put(s, &v[i]);
        /* Release pairs with the acquire waits on WRITE of the reader and
         * of block_destroy. A plain store: nobody else writes the state
         * word before WRITE is in (both wait for it), so no bit is lost. */
        atomic_store_explicit(&s->state, (v[i].kind & KIND_MASK) | WRITE,
                              memory_order_release);
    }
    *done = k;
    return short_of_memory ? LCH_ENOMEM : LCH_OK;
}

/* Claim up to n consecutive published-or-claimed slots of the head block
 * with one CAS, then take them in order. *done = how many. */
static LCH__ALWAYS_INLINE int list_pop(struct lch__list *l, lch_value *out,
                                       size_t n, size_t *done)
{
    unsigned step = 0;
    uint64_t head = atomic_load_explicit(&l->head.index, memory_order_acquire);
    struct lch__block *b = atomic_load_explicit(&l->head.block,
                                                memory_order_acquire);
    size_t offset, k;
    unsigned lost = 0; /* claims lost to other receivers */
    for (;;) {
        offset = (size_t)((head >> SHIFT) % LAP);
        if (offset == BLOCK_CAP) { /* head moving to the next block */
            lch__backoff(&step);
            head = atomic_load_explicit(&l->head.index, memory_order_acquire);
            b = atomic_load_explicit(&l->head.block, memory_order_acquire);
            continue;
        }
        uint64_t pos = head >> SHIFT, new_head = head;
        size_t room = BLOCK_CAP - offset; /* slots left in this block */
        k = n < room ? n : room;
        if (!(head & MARK)) {
            /* Below a tail some receiver saw, every position is claimed by
             * a sender; relaxed: the slot's WRITE wait orders what we
             * read. */
            uint64_t seen = atomic_load_explicit(&l->seen_tail,
                                                 memory_order_relaxed);
            if (pos >= seen) {
                /* Pairs with the senders' seq_cst CAS on tail. */
                atomic_thread_fence(memory_order_seq_cst);
                uint64_t tail = atomic_load_explicit(&l->tail.index,
                                                     memory_order_relaxed);
                if (pos == tail >> SHIFT)
                    return (tail & MARK) ? LCH_ECLOSED : LCH_EAGAIN;
                if (pos / LAP != (tail >> SHIFT) / LAP)
                    new_head |= MARK;
                /* A racing receiver may store an older tail: still a
                 * bound. */
                seen = tail >> SHIFT;
                atomic_store_explicit(&l->seen_tail, seen,
                                      memory_order_relaxed);
            }
            /* Claimed positions only: up to the tail seen, unless the
             * tail is known to be in a later block. */
            if (!(new_head & MARK) && seen - pos < k)
                k = (size_t)(seen - pos);
        }
        new_head += (uint64_t)k << SHIFT;
        if (atomic_compare_exchange_weak_explicit(&l->head.index, &head,
                                                  new_head,
                                                  memory_order_seq_cst,
                                                  memory_order_acquire)) {
            if (offset + k == BLOCK_CAP) {
                struct lch__block *next = block_wait_next(b);
                uint64_t next_index = (new_head & ~MARK) + (1u << SHIFT);
                if (atomic_load_explicit(&next->next, memory_order_relaxed))
                    next_index |= MARK;
                /* Release pairs with other receivers' acquire loads. */
                atomic_store_explicit(&l->head.block, next,
                                      memory_order_release);
                atomic_store_explicit(&l->head.index, next_index,
                                      memory_order_release);
            }
            break;
        }
        b = atomic_load_explicit(&l->head.block, memory_order_acquire);
        lch__cas_backoff(&lost);
    }
    for (size_t i = 0; i < k; i++) {
        size_t at = offset + i;
        struct lch__slot *s = &b->slots[at];
        /* The sender claimed this slot; wait until it has published. */
        step = 0;
        uint32_t st;
        while (!((st = atomic_load_explicit(&s->state,
                                            memory_order_acquire)) &
                 WRITE))
            lch__backoff(&step);
        out[i] = lch__slot_get(s, st & KIND_MASK);
        /* The last slot's reader starts the block's destruction, after
         * its own earlier slots (nobody else reads that slot, so nothing
         * was marked DESTROY before). A reader that finds DESTROY on a
         * slot carries on from the next one, which may be its own: then
         * it marks it and returns, and this loop finds the mark there. */
        if (at + 1 == BLOCK_CAP)
            block_destroy(l, b, 0);
        else if (atomic_fetch_or_explicit(&s->state, READ,
                                          memory_order_acq_rel) &
                 DESTROY)
            block_destroy(l, b, at + 1);
    }
    *done = k;
    return LCH_OK;
}

/* One value, for lch_channel_send/recv: the loops above with n == 1, out
 * of line so that the bounded fast path beside them stays small. */
static LCH__NOINLINE int list_push_one(struct lch__list *l, const lch_value *v)
{
    size_t done;
    return list_push(l, v, 1, &done);
}

static LCH__NOINLINE int list_pop_one(struct lch__list *l, lch_value *out)
{
    size_t done;
    return list_pop(l, out, 1, &done);
}

int lch__list_try_send(struct lch__list *l, const lch_value *v, size_t n,
                       size_t *done)
{
    size_t k = 0, d;
    int rc = LCH_OK;
    /* Stop at the first failure: a batch cut short by memory is sent in
     * part (what was claimed before), like one refused outright. */
    while (k < n) {
        rc = list_push(l, &v[k], n - k, &d);
        k += d;
        if (rc != LCH_OK)
            break;
    }
    *done = k;
    return k ? LCH_OK : rc;
}

int lch__list_try_recv(struct lch__list *l, lch_value *out, size_t n,
                       size_t *done)
{
    size_t k = 0, d;
    int rc = LCH_OK;
    while (k < n && (rc = list_pop(l, &out[k], n - k, &d)) == LCH_OK)
        k += d;
    *done = k;
    return k ? LCH_OK : rc;
}

bool lch__list_close(struct lch__list *l)
{
    uint64_t old = atomic_fetch_or_explicit(&l->tail.index, MARK,
                                            memory_order_seq_cst);
    return !(old & MARK);
}

bool lch__list_is_closed(const struct lch__list *l)
{
    return atomic_load_explicit(&l->tail.index, memory_order_acquire) & MARK;
}

size_t lch__list_len(const struct lch__list *l)
{
    for (;;) {
        uint64_t tail = atomic_load_explicit(&l->tail.index,
                                             memory_order_seq_cst);
        uint64_t head = atomic_load_explicit(&l->head.index,
                                             memory_order_seq_cst);
        /* A consistent pair only if tail did not move meanwhile. */
        if (atomic_load_explicit(&l->tail.index, memory_order_seq_cst) !=
            tail)
            continue;
        tail >>= SHIFT;
        head >>= SHIFT;
        /* Counters parked on a sentinel belong to the next block. */
        if (tail % LAP == BLOCK_CAP)
            tail++;
        if (head % LAP == BLOCK_CAP)
            head++;
        /* Rebase both to head's block; subtract one sentinel per lap. */
        uint64_t base = head - head % LAP;
        tail -= base;
        head -= base;
        return (size_t)(tail - head - tail / LAP);
    }
}
