/* wait.c: the platform layer of blocking: the monotonic clock, the wait
 * queue behind every blocking call and every fd waiter, the backoff used
 * while a peer is mid-operation, and the debug counters.
 *
 * A wait queue holds two FIFOs of nodes under one spinlock that only slow
 * paths take (a waiter queueing or leaving, a notifier that saw waiters):
 *   - threads: each node points at its thread's sink, a futex word on the
 *     thread's stack (a select queues one node per case, all on one sink);
 *   - fd registrations (waiter.c), each signalling an lch_waiter's eventfd.
 * A notifier unlinks the nodes it wakes and marks their sinks while it
 * holds the lock, so a woken node is never woken again, a select's sink is
 * marked once (its other nodes are skipped, and the next thread is woken
 * instead), and a waiter that takes the lock to leave knows that no
 * notifier will touch its node afterwards. Only the futex call (when the
 * thread really went to sleep: SLEEPING, not just QUEUED) and the eventfd
 * write happen after the lock is released.
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
 * what was published. A thread's futex word stays on its stack only until
 * its blocking call returns, so a futex wake issued after the lock was
 * released may hit a reused address; that is a spurious wake-up, which
 * lch__sink_park tolerates. */
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

static void wq_unlink(struct lch__waitq *wq, struct lch__wnode *w)
{
    struct lch__wnode **head = w->sink ? &wq->head : &wq->rhead;
    struct lch__wnode **tail = w->sink ? &wq->tail : &wq->rtail;
    if (w->prev)
        w->prev->next = w->next;
    else
        *head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        *tail = w->prev;
    w->linked = false;
    /* Relaxed: the count is re-read under the lock; outside it, notify only
     * uses it to skip work, and the seq_cst fences cover the race that
     * matters (a waiter arriving). */
    atomic_fetch_sub_explicit(&wq->waiters, 1, memory_order_relaxed);
    /* Flag mode: nobody left, so claims need not report to us any more.
     * Relaxed: the bit only selects whether a claimer takes this lock. */
    if (!wq->head && !wq->rhead && wq->flag_word)
        atomic_fetch_and_explicit(wq->flag_word, ~wq->flag_bit,
                                  memory_order_relaxed);
}

/* Under the lock: mark the sink of a thread node just unlinked. False if
 * it was already marked (a select woken through another of its cases):
 * then this node wakes nobody. *sleeping tells whether the thread is (about
 * to be) in FUTEX_WAIT and needs the system call. */
static bool sink_mark(struct lch__wnode *w, bool *sleeping)
{
    struct lch__sink *s = w->sink;
    uint32_t old = atomic_load_explicit(&s->state, memory_order_relaxed);
    uint32_t mark = LCH__S_SIGNALED | (w->tag << LCH__S_TAG_SHIFT);
    do {
        if (old & LCH__S_SIGNALED)
            return false;
        /* acq_rel: release makes our progress visible to the woken thread
         * (its acquire load of the state); acquire pairs with its SLEEPING
         * CAS so we know it may be asleep. */
    } while (!atomic_compare_exchange_weak_explicit(
        &s->state, &old, mark, memory_order_acq_rel, memory_order_relaxed));
    *sleeping = old == LCH__S_SLEEPING;
    return true;
}

#define WAKE_BATCH 16

LCH__NOINLINE void lch__waitq_wake_slow(struct lch__waitq *wq, int n)
{
    for (;;) {
        /* What to do once the lock is released: futex words of threads
         * that sleep, waiters whose eventfd must be written. */
        _Atomic uint32_t *futexes[WAKE_BATCH];
        lch_waiter *fds[WAKE_BATCH];
        int nf = 0, nd = 0;
        wq_lock(wq);
        while (n > 0 && wq->head && nf < WAKE_BATCH) {
            struct lch__wnode *w = wq->head;
            bool sleeping = false;
            wq_unlink(wq, w);
            if (!sink_mark(w, &sleeping))
                continue; /* not counted: wake the next one instead */
            n--;
            if (sleeping)
                futexes[nf++] = &w->sink->state;
        }
        while (wq->rhead && nd < WAKE_BATCH) {
            struct lch__wnode *w = wq->rhead;
            wq_unlink(wq, w);
            lch_waiter *fw = lch__reg_fired(w);
            if (fw)
                fds[nd++] = fw;
        }
        bool more = (n > 0 && wq->head) || wq->rhead;
        wq_unlock(wq);
        for (int i = 0; i < nf; i++) {
            atomic_fetch_add_explicit(&lch__futex_wakes, 1,
                                      memory_order_relaxed);
            syscall(SYS_futex, (uint32_t *)futexes[i], FUTEX_WAKE_PRIVATE, 1,
                    NULL, NULL, 0);
        }
        for (int i = 0; i < nd; i++)
            lch__waiter_signal(fds[i]);
        if (!more)
            return;
    }
}

uint64_t lch__waitq_enqueue(struct lch__waitq *wq, struct lch__wnode *w)
{
    struct lch__wnode **head = w->sink ? &wq->head : &wq->rhead;
    struct lch__wnode **tail = w->sink ? &wq->tail : &wq->rtail;
    w->next = NULL;
    wq_lock(wq);
    bool first = !wq->head && !wq->rhead;
    w->prev = *tail;
    if (*tail)
        (*tail)->next = w;
    else
        *head = w;
    *tail = w;
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

bool lch__waitq_cancel(struct lch__waitq *wq, struct lch__wnode *w)
{
    wq_lock(wq);
    bool taken = !w->linked;
    if (!taken)
        wq_unlink(wq, w);
    wq_unlock(wq);
    return taken;
}

void lch__waitq_fire(struct lch__waitq *wq, struct lch__wnode *w)
{
    lch_waiter *fw = NULL;
    wq_lock(wq);
    if (w->linked) {
        wq_unlink(wq, w);
        fw = lch__reg_fired(w);
    }
    wq_unlock(wq);
    if (fw)
        lch__waiter_signal(fw);
}

int lch__sink_park(struct lch__sink *s, int64_t deadline_ns)
{
    struct timespec ts, *tsp = NULL;
    if (deadline_ns >= 0) {
        ts.tv_sec = deadline_ns / 1000000000;
        ts.tv_nsec = deadline_ns % 1000000000;
        tsp = &ts;
    }
    uint32_t expect = LCH__S_QUEUED;
    /* acq_rel: on failure (already SIGNALED) acquire pairs with the
     * notifier's CAS in sink_mark; on success release pairs with it too. */
    if (!atomic_compare_exchange_strong_explicit(
            &s->state, &expect, LCH__S_SLEEPING, memory_order_acq_rel,
            memory_order_acquire))
        return LCH_OK;
    for (;;) {
        atomic_fetch_add_explicit(&lch__futex_waits, 1, memory_order_relaxed);
        /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so
         * spurious wake-ups do not stretch the timeout. */
        long r = syscall(SYS_futex, (uint32_t *)&s->state,
                         FUTEX_WAIT_BITSET_PRIVATE, LCH__S_SLEEPING, tsp,
                         NULL, FUTEX_BITSET_MATCH_ANY);
        int err = r == 0 ? 0 : errno;
        /* Acquire pairs with the notifier's CAS in sink_mark. */
        if (atomic_load_explicit(&s->state, memory_order_acquire) &
            LCH__S_SIGNALED)
            return LCH_OK;
        if (err == ETIMEDOUT)
            return LCH_ETIMEDOUT;
        if (err == EINTR)
            return LCH_EINTR;
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
    out->fd_signals =
        atomic_load_explicit(&lch__fd_signals, memory_order_relaxed);
}

void lch_debug_barrier(void)
{
    lch__registry_barrier();
}
