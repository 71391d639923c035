/* ring.c: the bounded engine, a ring of slots with per-slot sequence numbers
 * (after D. Vyukov's bounded MPMC queue), extended to batches and close.
 *
 * Positions count up forever (62 bits). Position p lives in slot p % cap and
 * the slot's seq says whose turn it is:
 *   seq == p            free for the producer of position p
 *   seq == p + 1        holds the value of position p, for its consumer
 *   seq == p + cap      freed by that consumer: free for position p + cap
 * A slot is the value's 16 bytes (lch_impl.h): its state word keeps only the
 * low 29 bits of seq, with the value's kind below them, so seqs compare
 * modulo 2^29. While the claimer's position word still holds p, the slot
 * of p has a seq within one ring length of p (no more than 2^27), so the
 * comparison is exact; a thread whose position is stale may misread a seq
 * that wrapped, which is why "full" and "empty" are reported only after
 * the position word is seen unchanged, and a claim's CAS fails anyway.
 * A producer claims positions by CAS on `tail` after seeing their slots free;
 * a consumer claims by CAS on `head` after seeing them full. Once claimed, a
 * slot's seq is changed only by its claimer, so a batch can claim k
 * consecutive positions with one CAS. Bit 63 of `tail` is the closed flag:
 * setting it makes every later claim's CAS fail, so after close no position
 * is claimed, and the positions claimed before it are all eventually
 * published. Close sets bit 63 of `head` first, as a hint for consumers:
 * one that finds the ring empty reads `tail` (the producers' line) only when
 * its own word carries the hint, so polling an empty ring leaves the
 * producers' line alone. Nothing here blocks for long; channel.c parks.
 * Bit 62 of each word is the other side's "waiters parked" flag
 * (lch__waitq): a claim's CAS carries the flags along and reports whether it
 * saw it.
 *
 * With a single slot, "full for p" (p + 1) and "free for p + 1" (p + cap)
 * would be the same number, so capacity 1 uses two slots, and a producer
 * also checks that the consumers have claimed everything before its
 * position (head == pos); that costs a load of head, only in this case. */
#include "lch_impl.h"

#define CLOSED_BIT LCH__RING_CLOSED
#define POS LCH__POS_MASK

static inline struct lch__slot *slot_at(const struct lch__ring *r,
                                        uint64_t pos)
{
    return &r->slots[r->mask ? (pos & r->mask) : (pos % r->phys)];
}

/* Acquire pairs with the release store of whoever last handed the slot on,
 * so the value (or the slot's emptiness) it wrote is visible. */
static inline uint32_t slot_state(const struct lch__slot *s)
{
    return atomic_load_explicit(&s->state, memory_order_acquire);
}

/* Position pos as a state word's seq field (its low 29 bits). */
static inline uint32_t seq_of(uint64_t pos)
{
    return (uint32_t)pos << LCH__SEQ_SHIFT;
}

/* The slot's seq is pos. */
static inline bool seq_is(uint32_t state, uint64_t pos)
{
    return (state & ~LCH__SLOT_KIND) == seq_of(pos);
}

/* The slot's seq is behind pos (modulo 2^29: see above). */
static inline bool seq_before(uint32_t state, uint64_t pos)
{
    return (((state & ~LCH__SLOT_KIND) - seq_of(pos)) >> 31) != 0;
}

/* The value in a slot its reader owns (the state's acquire load, which
 * found it published, came before; this load sees the same word). */
static inline lch_value ring_slot_value(const struct lch__slot *s)
{
    return lch__slot_get(s, atomic_load_explicit(&s->state,
                                                 memory_order_relaxed) &
                                LCH__SLOT_KIND);
}

int lch__ring_init(struct lch__ring *r, size_t cap)
{
    size_t phys = cap < 2 ? 2 : cap;
    r->slots = lch__malloc_aligned(phys * sizeof(struct lch__slot),
                                   LCH__CACHELINE);
    if (!r->slots)
        return LCH_ENOMEM;
    r->cap = cap;
    r->phys = phys;
    r->mask = (phys & (phys - 1)) == 0 ? phys - 1 : 0; /* 0: use % */
    for (size_t i = 0; i < phys; i++) {
        atomic_init(&r->slots[i].state, seq_of(i));
        r->slots[i].tag = 0;
        r->slots[i].bits = 0;
    }
    atomic_init(&r->tail, 0);
    atomic_init(&r->head, 0);
    return LCH_OK;
}

void lch__ring_fini(struct lch__ring *r)
{
    /* Single-threaded: the last reference is gone. */
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire) &
                    POS;
    for (uint64_t p = atomic_load_explicit(&r->head, memory_order_acquire) &
                      POS;
         p < tail; p++) {
        lch_value v = ring_slot_value(slot_at(r, p));
        lch_value_release(&v);
    }
    lch__free_aligned(r->slots);
    r->slots = NULL;
}

/* The claim loops, always inlined: lch_channel_send/recv call them with
 * n == 1, which folds the batch loops away on the one-value fast path; the
 * lch__ring_try_* wrappers below are the out-of-line copies for batches,
 * waits and select. */
static LCH__ALWAYS_INLINE int ring_send(struct lch__ring *r,
                                        const lch_value *v, size_t n,
                                        size_t *done, bool *wake)
{
    uint64_t word = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t pos;
    size_t k;
    unsigned lost = 0; /* claims lost to other producers */
    for (;;) {
        if (LCH__UNLIKELY(word & CLOSED_BIT)) {
            /* The acquire load pairs with the release half of the closing
             * fetch_or: whoever learns of the close from us also sees
             * head's hint, set before it (so its next receive on an empty
             * ring says closed, never "empty"). Only on this path. */
            (void)atomic_load_explicit(&r->tail, memory_order_acquire);
            return LCH_ECLOSED;
        }
        pos = word & POS;
        size_t room = n;
        if (LCH__UNLIKELY(r->cap != r->phys)) {
            /* Only the room count depends on head, and a stale value can
             * only under-count it; the slot's seq (acquire) below is what
             * orders us after the consumer. */
            uint64_t head = atomic_load_explicit(&r->head,
                                                 memory_order_relaxed) & POS;
            if (LCH__UNLIKELY(head > pos)) {
                /* Our tail is older than this head (others sent and took
                 * values between the two loads): not "full", just stale. */
                word = atomic_load_explicit(&r->tail, memory_order_relaxed);
                continue;
            }
            uint64_t used = pos - head;
            room = used >= r->cap ? 0 : (size_t)(r->cap - used);
            if (room == 0)
                return LCH_EAGAIN;
            if (room > n)
                room = n;
        }
        for (k = 0; k < room; k++)
            if (!seq_is(slot_state(slot_at(r, pos + k)), pos + k))
                break;
        if (k == 0) {
            bool behind = seq_before(slot_state(slot_at(r, pos)), pos);
            uint64_t again = atomic_load_explicit(&r->tail,
                                                  memory_order_relaxed);
            /* Full (the slot is still pos - phys's) if tail has stayed at
             * pos; otherwise another producer took pos: retry. */
            if (behind && (again & POS) == pos)
                return LCH_EAGAIN;
            if ((again & POS) != pos)
                lch__cas_backoff(&lost);
            word = again;
            continue;
        }
        /* The slots' seq loads above (acquire) already ordered us after
         * their consumers, and publication is the release store of seq
         * below, so the claim itself can be relaxed on success. Acquire on
         * failure is for the WAIT flag a waiter may have just set (its
         * fetch_or is acq_rel). Flags ride along in `word`. */
        if (atomic_compare_exchange_weak_explicit(&r->tail, &word, word + k,
                                                  memory_order_acquire,
                                                  memory_order_acquire))
            break;
        lch__cas_backoff(&lost);
    }
    for (size_t i = 0; i < k; i++) {
        struct lch__slot *s = slot_at(r, pos + i);
        lch__slot_put(s, &v[i]);
        /* Release pairs with the consumer's acquire load in slot_state.
         * (The kind fits: channel.c admits kinds up to LCH_OBJECT.) */
        atomic_store_explicit(&s->state, seq_of(pos + i + 1) | v[i].kind,
                              memory_order_release);
    }
    *done = k;
    *wake = (word & LCH__RING_WAIT) != 0;
    return LCH_OK;
}

static LCH__ALWAYS_INLINE int ring_recv(struct lch__ring *r, lch_value *out,
                                        size_t n, size_t *done, bool *wake)
{
    uint64_t word = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t pos;
    size_t k;
    unsigned lost = 0; /* claims lost to other consumers */
    for (;;) {
        pos = word & POS;
        for (k = 0; k < n; k++)
            if (!seq_is(slot_state(slot_at(r, pos + k)), pos + k + 1))
                break;
        if (k == 0) {
            bool behind = seq_before(slot_state(slot_at(r, pos)), pos + 1);
            uint64_t again = atomic_load_explicit(&r->head,
                                                  memory_order_relaxed);
            if ((again & POS) != pos) { /* another consumer took pos */
                lch__cas_backoff(&lost);
                word = again;
                continue;
            }
            if (behind) {
                /* Empty, or its producer has claimed but not published.
                 * Without the hint in head the close had not begun when we
                 * loaded it: empty, and not closed. */
                if (LCH__LIKELY(!(again & CLOSED_BIT)))
                    return LCH_EAGAIN;
                /* Closed and drained only when no position is outstanding:
                 * acquire pairs with the closing fetch_or. */
                uint64_t t = atomic_load_explicit(&r->tail,
                                                  memory_order_acquire);
                if (!(t & CLOSED_BIT))
                    return LCH_EAGAIN;
                if ((t & POS) == (atomic_load_explicit(&r->head,
                                                       memory_order_relaxed) &
                                  POS))
                    return LCH_ECLOSED;
                return LCH__ECLOSING;
            }
            word = again; /* head moved on, or is about to */
            continue;
        }
        /* As in try_send: acquire only for a waiter's WAIT flag. */
        if (atomic_compare_exchange_weak_explicit(&r->head, &word, word + k,
                                                  memory_order_acquire,
                                                  memory_order_acquire))
            break;
        lch__cas_backoff(&lost);
    }
    for (size_t i = 0; i < k; i++) {
        struct lch__slot *s = slot_at(r, pos + i);
        out[i] = ring_slot_value(s);
        /* Release pairs with the next producer's acquire in slot_state:
         * our read of the value happens-before it is overwritten. */
        atomic_store_explicit(&s->state, seq_of(pos + i + r->phys),
                              memory_order_release);
    }
    *done = k;
    *wake = (word & LCH__RING_WAIT) != 0;
    return LCH_OK;
}

int lch__ring_try_send(struct lch__ring *r, const lch_value *v, size_t n,
                       size_t *done, bool *wake)
{
    return ring_send(r, v, n, done, wake);
}

int lch__ring_try_recv(struct lch__ring *r, lch_value *out, size_t n,
                       size_t *done, bool *wake)
{
    return ring_recv(r, out, n, done, wake);
}

bool lch__ring_close(struct lch__ring *r)
{
    /* The hint first: a receiver that sees the close in tail (or learns of
     * it from a sender) then also sees the hint in head. Relaxed: the
     * fetch_or on tail below is sequenced after it and releases it. */
    atomic_fetch_or_explicit(&r->head, CLOSED_BIT, memory_order_relaxed);
    /* acq_rel: release publishes the closed state (and the hint) to
     * receivers' acquire loads of tail; acquire keeps later operations
     * after it. */
    uint64_t old = atomic_fetch_or_explicit(&r->tail, CLOSED_BIT,
                                            memory_order_acq_rel);
    return !(old & CLOSED_BIT);
}

bool lch__ring_is_closed(const struct lch__ring *r)
{
    return atomic_load_explicit(&r->tail, memory_order_acquire) & CLOSED_BIT;
}

size_t lch__ring_len(const struct lch__ring *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed) &
                    POS;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed) &
                    POS;
    if (tail <= head)
        return 0;
    return tail - head > r->cap ? (size_t)r->cap : (size_t)(tail - head);
}
