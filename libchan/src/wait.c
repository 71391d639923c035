/* wait.c: the platform layer of blocking: the monotonic clock, the futex
 * wait queue behind every blocking call, the backoff used while a peer is
 * mid-operation, and the debug counters.
 *
 * A wait queue is a FIFO of waiter nodes, each with its own futex word,
 * guarded by a spinlock that only slow paths take (a waiter queueing or
 * leaving, a notifier that saw waiters). A notifier unlinks the nodes it
 * wakes, so each parked thread is woken once, and makes the futex call only
 * if that thread really went to sleep (state SLEEPING, not just QUEUED).
 *
 * How a notifier learns that someone waits (see struct lch__waitq):
 *   counter mode (unbounded channels):
 *     waiter:   link w; waiters += 1; fence(seq_cst); re-check; park
 *     notifier: publish;              fence(seq_cst); if (waiters) wake
 *   flag mode (bounded channels): the first waiter sets a WAIT bit in the
 *     position word the notifier's claim CAS reads anyway; claims made
 *     before the bit cannot see it, so the waiter parks only once they are
 *     behind it (channel.c, may_park).
 * Either way, the notifier sees the waiter or the waiter's re-check sees
 * what was published. A node stays on its owner's stack until park/cancel returns,
 * and neither returns while a notifier that unlinked it has yet to mark it
 * SIGNALED, so the notifier never writes to a dead frame (its futex call may
 * hit a reused address; that is a spurious wake-up, which park tolerates). */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lch_impl.h"

_Atomic uint64_t lch__futex_waits = 0;
_Atomic uint64_t lch__futex_wakes = 0;

int64_t lch__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void wq_lock(struct lch__waitq *wq)
{
    unsigned step = 0;
    /* Acquire pairs with the release in wq_unlock. */
    while (atomic_exchange_explicit(&wq->lock, 1, memory_order_acquire))
        lch__backoff(&step);
}

static void wq_unlock(struct lch__waitq *wq)
{
    atomic_store_explicit(&wq->lock, 0, memory_order_release);
}

static void wq_unlink(struct lch__waitq *wq, struct lch__waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        wq->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        wq->tail = w->prev;
    w->linked = false;
    /* Relaxed: the count is re-read under the lock; outside it, notify only
     * uses it to skip work, and the seq_cst fences cover the race that
     * matters (a waiter arriving). */
    atomic_fetch_sub_explicit(&wq->waiters, 1, memory_order_relaxed);
    /* Flag mode: nobody left, so claims need not report to us any more.
     * Relaxed: the bit only selects whether a claimer takes this lock. */
    if (!wq->head && wq->flag_word)
        atomic_fetch_and_explicit(wq->flag_word, ~wq->flag_bit,
                                  memory_order_relaxed);
}

LCH__NOINLINE void lch__waitq_wake_slow(struct lch__waitq *wq, int n)
{
    struct lch__waiter *picked = NULL, **last = &picked;
    wq_lock(wq);
    for (int i = 0; i < n && wq->head; i++) {
        struct lch__waiter *w = wq->head;
        wq_unlink(wq, w);
        /* Chain the picked nodes through `next` (ours now). */
        w->next = NULL;
        *last = w;
        last = &w->next;
    }
    wq_unlock(wq);
    while (picked) {
        struct lch__waiter *w = picked;
        picked = w->next; /* read before w may vanish */
        /* acq_rel: release makes our progress visible to the woken thread;
         * acquire pairs with its SLEEPING store so we know it may sleep. */
        uint32_t old = atomic_exchange_explicit(&w->state, LCH__W_SIGNALED,
                                                memory_order_acq_rel);
        if (old == LCH__W_SLEEPING) {
            atomic_fetch_add_explicit(&lch__futex_wakes, 1,
                                      memory_order_relaxed);
            syscall(SYS_futex, (uint32_t *)&w->state, FUTEX_WAKE_PRIVATE, 1,
                    NULL, NULL, 0);
        }
    }
}

uint64_t lch__waitq_enqueue(struct lch__waitq *wq, struct lch__waiter *w)
{
    atomic_init(&w->state, LCH__W_QUEUED);
    w->next = NULL;
    wq_lock(wq);
    bool first = wq->head == NULL;
    w->prev = wq->tail;
    if (wq->tail)
        wq->tail->next = w;
    else
        wq->head = w;
    wq->tail = w;
    w->linked = true;
    atomic_fetch_add_explicit(&wq->waiters, 1, memory_order_seq_cst);
    if (first && wq->flag_word) {
        /* Every claim CAS later in this word's modification order sees the
         * bit and wakes us after publishing; acq_rel keeps the re-check
         * that follows after it. */
        uint64_t old = atomic_fetch_or_explicit(wq->flag_word, wq->flag_bit,
                                                memory_order_acq_rel);
        wq->flag_pos = old & LCH__POS_MASK;
    }
    uint64_t pos = wq->flag_pos;
    wq_unlock(wq);
    /* Pairs with the fence in lch__waitq_notify (counter mode). */
    atomic_thread_fence(memory_order_seq_cst);
    return pos;
}

bool lch__waitq_cancel(struct lch__waitq *wq, struct lch__waiter *w)
{
    wq_lock(wq);
    bool picked = !w->linked;
    if (!picked)
        wq_unlink(wq, w);
    wq_unlock(wq);
    if (picked) {
        /* A notifier unlinked us and is about to mark the node: wait for
         * it, so it never writes to our frame after we return. Acquire
         * pairs with its exchange. */
        unsigned step = 0;
        while (atomic_load_explicit(&w->state, memory_order_acquire) !=
               LCH__W_SIGNALED)
            lch__backoff(&step);
    }
    return picked;
}

int lch__waitq_park(struct lch__waitq *wq, struct lch__waiter *w,
                    int64_t deadline_ns)
{
    struct timespec ts, *tsp = NULL;
    if (deadline_ns >= 0) {
        ts.tv_sec = deadline_ns / 1000000000;
        ts.tv_nsec = deadline_ns % 1000000000;
        tsp = &ts;
    }
    uint32_t expect = LCH__W_QUEUED;
    /* acq_rel: on failure (already SIGNALED) acquire pairs with the
     * notifier's exchange; on success release pairs with it too. */
    if (!atomic_compare_exchange_strong_explicit(
            &w->state, &expect, LCH__W_SLEEPING, memory_order_acq_rel,
            memory_order_acquire))
        return LCH_OK;
    for (;;) {
        atomic_fetch_add_explicit(&lch__futex_waits, 1, memory_order_relaxed);
        /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so
         * spurious wake-ups do not stretch the timeout. */
        long r = syscall(SYS_futex, (uint32_t *)&w->state,
                         FUTEX_WAIT_BITSET_PRIVATE, LCH__W_SLEEPING, tsp,
                         NULL, FUTEX_BITSET_MATCH_ANY);
        int err = r == 0 ? 0 : errno;
        if (atomic_load_explicit(&w->state, memory_order_acquire) ==
            LCH__W_SIGNALED)
            return LCH_OK;
        if (err == ETIMEDOUT || err == EINTR) {
            if (lch__waitq_cancel(wq, w))
                return LCH_OK; /* signalled meanwhile: take it */
            return err == ETIMEDOUT ? LCH_ETIMEDOUT : LCH_EINTR;
        }
        /* spurious wake-up (reused address) or EAGAIN: sleep again */
    }
}

void lch__backoff(unsigned *step)
{
    if (*step < 6) {
        for (unsigned i = 0; i < (1u << *step); i++)
            lch__cpu_relax();
    } else {
        sched_yield();
    }
    if (*step < 10)
        (*step)++;
}

void lch_debug_counters_get(lch_debug_counters *out)
{
    if (!out)
        return;
    out->futex_waits =
        atomic_load_explicit(&lch__futex_waits, memory_order_relaxed);
    out->futex_wakes =
        atomic_load_explicit(&lch__futex_wakes, memory_order_relaxed);
    out->live_objects =
        atomic_load_explicit(&lch__live_objects, memory_order_relaxed);
}

void lch_debug_barrier(void)
{
    lch__registry_barrier();
}
