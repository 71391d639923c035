/* tests/test_wake.c: system calls and signals.
 *
 * - A sender or receiver that finds nobody parked makes no system call:
 *   bursts of sends and receives (single, batch, try, timed, forever) leave
 *   the futex_wait and futex_wake counters of lch_debug_counters_get()
 *   unchanged, on one thread and on several threads that only use try-calls,
 *   and again after waiters have come and gone.
 * - With one parked receiver (or sender) the matching send (or receive)
 *   makes exactly one wake.
 * - A parked thread interrupted by a signal whose handler runs (SIGUSR1,
 *   installed without SA_RESTART) gets LCH_EINTR and nothing is lost. */
#include "testutil.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void assert_no_futex_calls(const lch_debug_counters *before,
                                  const char *what)
{
    lch_debug_counters now = tu_counters();
    if (now.futex_waits != before->futex_waits ||
        now.futex_wakes != before->futex_wakes)
        fail_msg("%s with nobody waiting made %llu futex waits and %llu "
                 "wakes",
                 what,
                 (unsigned long long)(now.futex_waits - before->futex_waits),
                 (unsigned long long)(now.futex_wakes - before->futex_wakes));
}

/* Single-threaded traffic that never has to wait. */
static void burst(lch_channel *ch, size_t capacity)
{
    size_t fill = capacity ? capacity : 100;
    const int64_t timeouts[] = {LCH_NOWAIT, LCH_FOREVER, 1000000};
    for (int round = 0; round < 30; round++) {
        int64_t t = timeouts[round % 3];
        for (size_t i = 0; i < fill; i++)
            assert_rc(lch_channel_send(ch, lch_value_int((int64_t)i), t),
                      LCH_OK);
        lch_value out = lch_value_none();
        for (size_t i = 0; i < fill; i++) {
            assert_rc(lch_channel_recv(ch, &out, t), LCH_OK);
            assert_int_equal(out.u.i, (int64_t)i);
        }
        /* Batches, both ways. */
        lch_value v[8];
        for (int i = 0; i < 8; i++)
            v[i] = lch_value_int(i);
        size_t n = 0, k = fill < 8 ? fill : 8;
        assert_rc(lch_channel_send_batch(ch, v, k, &n, t), LCH_OK);
        assert_int_equal(n, k);
        assert_rc(lch_channel_recv_batch(ch, v, 8, &n, t), LCH_OK);
        assert_int_equal(n, k);
        /* Failing try-calls make no system call either. */
        assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_EAGAIN);
        if (capacity) {
            for (size_t i = 0; i < capacity; i++)
                assert_rc(lch_channel_send(ch, lch_value_int(0), LCH_NOWAIT),
                          LCH_OK);
            assert_rc(lch_channel_send(ch, lch_value_int(0), LCH_NOWAIT),
                      LCH_EAGAIN);
            for (size_t i = 0; i < capacity; i++)
                assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
        }
    }
}

static void test_no_syscalls_without_waiters(void **state)
{
    (void)state;
    const size_t caps[] = {0, 1, 5, 64};
    const int64_t spins[] = {-1, 0};
    for (size_t c = 0; c < 4; c++) {
        for (size_t s = 0; s < 2; s++) {
            lch_channel *ch = tu_channel(caps[c], spins[s]);
            lch_debug_counters before = tu_counters();
            burst(ch, caps[c]);
            assert_no_futex_calls(&before, "single-threaded burst");
            lch_channel_unref(ch);
        }
    }
}

/* ---- exactly one wake for one parked waiter ------------------------------ */

typedef struct parked {
    lch_channel *ch;
    bool send;
    bool batch;
    int64_t timeout;
    int rc;
    size_t n;
    lch_value v;
    _Atomic bool done;
} parked;

static void *parked_main(void *arg)
{
    parked *p = arg;
    p->n = 99;
    if (p->send) {
        if (p->batch)
            p->rc = lch_channel_send_batch(p->ch, &p->v, 1, &p->n, p->timeout);
        else
            p->rc = lch_channel_send(p->ch, p->v, p->timeout);
    } else {
        if (p->batch)
            p->rc = lch_channel_recv_batch(p->ch, &p->v, 1, &p->n, p->timeout);
        else
            p->rc = lch_channel_recv(p->ch, &p->v, p->timeout);
    }
    atomic_store(&p->done, true);
    return NULL;
}

static void one_wake(bool parked_sender, bool batch, int64_t timeout)
{
    size_t cap = parked_sender ? 1 : (batch ? 0 : 4);
    lch_channel *ch = tu_channel(cap, 0); /* spin_ns = 0: park at once */
    if (parked_sender)
        assert_rc(lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT), LCH_OK);
    parked p = {.ch = ch, .send = parked_sender, .batch = batch,
                .timeout = timeout, .rc = 1,
                .v = parked_sender ? lch_value_int(2) : lch_value_none()};
    uint64_t waits0 = tu_counters().futex_waits;
    pthread_t t;
    tu_spawn(&t, parked_main, &p);
    bool saw_wait = tu_wait_futex_waits(waits0 + 1);
    tu_sleep_ns(5 * TU_MS); /* let it reach the kernel */

    lch_debug_counters before = tu_counters();
    lch_value out = lch_value_none();
    int rc = parked_sender ? lch_channel_recv(ch, &out, LCH_NOWAIT)
                           : lch_channel_send(ch, lch_value_int(3), LCH_NOWAIT);
    tu_join(t);
    lch_debug_counters after = tu_counters();

    assert_true(saw_wait);
    assert_rc(rc, LCH_OK);
    assert_rc(p.rc, LCH_OK);
    if (batch)
        assert_int_equal(p.n, 1);
    uint64_t wakes = after.futex_wakes - before.futex_wakes;
    if (wakes != 1)
        fail_msg("%s %s (timeout %lld) made %llu futex wakes for one parked "
                 "waiter, expected 1",
                 parked_sender ? "recv" : "send",
                 batch ? "(batch waiter)" : "", (long long)timeout,
                 (unsigned long long)wakes);
    if (parked_sender) {
        assert_int_equal(out.u.i, 1);
        assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
        assert_int_equal(out.u.i, 2);
    } else {
        assert_int_equal(p.v.u.i, 3);
    }

    /* The waiter is gone: traffic is back to no system calls at all. */
    before = tu_counters();
    burst(ch, cap);
    assert_no_futex_calls(&before, "burst after a wake");
    lch_channel_unref(ch);
}

static void test_parked_receiver_one_wake(void **state)
{
    (void)state;
    one_wake(false, false, LCH_FOREVER);
    one_wake(false, true, LCH_FOREVER);
    one_wake(false, false, 3600 * TU_S);
}

static void test_parked_sender_one_wake(void **state)
{
    (void)state;
    one_wake(true, false, LCH_FOREVER);
    one_wake(true, true, LCH_FOREVER);
    one_wake(true, false, 3600 * TU_S);
}

/* After a timed waiter gave up, nobody is parked: no wake for the next send. */
static void test_no_wake_after_timeout(void **state)
{
    (void)state;
    lch_channel *ch = tu_channel(0, 0);
    parked p = {.ch = ch, .timeout = 2 * TU_MS, .rc = 1};
    pthread_t t;
    tu_spawn(&t, parked_main, &p);
    tu_join(t);
    assert_rc(p.rc, LCH_ETIMEDOUT);
    lch_debug_counters before = tu_counters();
    burst(ch, 0);
    assert_no_futex_calls(&before, "burst after a timed-out waiter");
    lch_channel_unref(ch);
}

/* ---- several threads, try-calls only ------------------------------------- */

typedef struct tryer {
    lch_channel *ch;
    tu_barrier *start;
    _Atomic uint64_t *received_total;
    uint64_t goal;
    bool producer;
    int id;
    uint64_t count;
    uint64_t sum;
    int bad_rc;
    char pad[64];
} tryer;

static void *tryer_main(void *arg)
{
    tryer *w = arg;
    tu_barrier_wait(w->start);
    if (w->producer) {
        for (uint64_t i = 0; i < w->goal;) {
            int rc = lch_channel_send(w->ch, lch_value_int((int64_t)i),
                                      LCH_NOWAIT);
            if (rc == LCH_OK) {
                w->sum += i;
                i++;
                w->count++;
            } else if (rc == LCH_EAGAIN) {
                sched_yield();
            } else {
                w->bad_rc = rc;
                return NULL;
            }
        }
    } else {
        while (atomic_load(w->received_total) < w->goal) {
            lch_value v = lch_value_none();
            int rc = lch_channel_recv(w->ch, &v, LCH_NOWAIT);
            if (rc == LCH_OK) {
                w->sum += (uint64_t)v.u.i;
                w->count++;
                atomic_fetch_add(w->received_total, 1);
            } else if (rc == LCH_EAGAIN) {
                sched_yield();
            } else {
                w->bad_rc = rc;
                return NULL;
            }
        }
    }
    return NULL;
}

static void test_try_threads_no_syscalls(void **state)
{
    (void)state;
    enum { NP = 2, NCONS = 2 };
    const size_t caps[] = {0, 8};
    for (size_t c = 0; c < 2; c++) {
        lch_channel *ch = tu_channel(caps[c], -1);
        uint64_t per = tu_count(50000, 2000);
        _Atomic uint64_t total = 0;
        tu_barrier start;
        tu_barrier_init(&start, NP + NCONS + 1);
        tryer ws[NP + NCONS];
        pthread_t ts[NP + NCONS];
        for (int i = 0; i < NP + NCONS; i++)
            ws[i] = (tryer){.ch = ch, .start = &start, .received_total = &total,
                            .goal = i < NP ? per : per * NP,
                            .producer = i < NP, .id = i};
        lch_debug_counters before = tu_counters();
        tu_spawn_n(ts, NP + NCONS, tryer_main, ws, sizeof(tryer));
        tu_barrier_wait(&start);
        tu_join_n(ts, NP + NCONS);
        tu_barrier_destroy(&start);
        lch_debug_counters after = tu_counters();
        uint64_t sent = 0, recvd = 0, ssum = 0, rsum = 0;
        for (int i = 0; i < NP + NCONS; i++) {
            assert_rc(ws[i].bad_rc, LCH_OK);
            if (ws[i].producer) {
                sent += ws[i].count;
                ssum += ws[i].sum;
            } else {
                recvd += ws[i].count;
                rsum += ws[i].sum;
            }
        }
        assert_int_equal(sent, per * NP);
        assert_int_equal(recvd, sent);
        assert_int_equal(rsum, ssum);
        assert_int_equal(lch_channel_len(ch), 0);
        if (after.futex_waits != before.futex_waits ||
            after.futex_wakes != before.futex_wakes)
            fail_msg("try-only traffic (capacity %zu) made %llu futex waits, "
                     "%llu wakes",
                     caps[c],
                     (unsigned long long)(after.futex_waits -
                                          before.futex_waits),
                     (unsigned long long)(after.futex_wakes -
                                          before.futex_wakes));
        lch_channel_unref(ch);
    }
}

/* ---- signals -------------------------------------------------------------- */

static _Atomic int sigusr1_count;

static void on_sigusr1(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&sigusr1_count, 1, memory_order_relaxed);
}

static void install_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART */
    assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
}

static void eintr_case(bool sender, bool batch, int64_t timeout)
{
    install_handler();
    lch_channel *ch = tu_channel(sender ? 1 : 0, 0);
    lch_object *obj = tu_payload_new(1, 0, 0);
    assert_non_null(obj);
    if (sender)
        assert_rc(lch_channel_send(ch, lch_value_int(10), LCH_NOWAIT), LCH_OK);
    parked p = {.ch = ch, .send = sender, .batch = batch, .timeout = timeout,
                .rc = 1,
                .v = sender ? lch_value_object(obj) : lch_value_int(-1)};
    int handled0 = atomic_load(&sigusr1_count);
    uint64_t waits0 = tu_counters().futex_waits;
    pthread_t t;
    tu_spawn(&t, parked_main, &p);
    (void)tu_wait_futex_waits(waits0 + 1);

    /* Keep signalling until the call returns: a signal that lands just
     * before the thread enters the kernel cannot interrupt the wait. */
    int64_t deadline = tu_now_ns() + tu_patience_ns();
    bool gave_up = false;
    while (!atomic_load(&p.done)) {
        if (tu_now_ns() > deadline) {
            /* Not interrupted: unblock it so the test can fail cleanly. */
            gave_up = true;
            lch_value tmp = lch_value_none();
            if (sender)
                (void)lch_channel_recv(ch, &tmp, LCH_NOWAIT);
            else
                (void)lch_channel_send(ch, lch_value_int(99), LCH_NOWAIT);
            break;
        }
        pthread_kill(t, SIGUSR1);
        tu_sleep_ns(2 * TU_MS);
    }
    tu_join(t);
    int handled = atomic_load(&sigusr1_count) - handled0;

    if (gave_up || p.rc != LCH_EINTR)
        fail_msg("%s%s (timeout %lld) interrupted by %d signals returned %s, "
                 "expected EINTR",
                 sender ? "send" : "recv", batch ? "_batch" : "",
                 (long long)timeout, handled, lch_err_name(p.rc));
    assert_true(handled >= 1);
    if (batch)
        assert_int_equal(p.n, 0);
    if (sender) {
        /* The sender still owns its value; the channel holds what it had. */
        assert_non_null(tu_payload_get(obj));
        assert_int_equal(lch_object_refcount(obj), 1);
        assert_int_equal(lch_channel_len(ch), 1);
        lch_value out = lch_value_none();
        assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
        assert_int_equal(out.u.i, 10);
        /* ...and can still send it. */
        assert_rc(lch_channel_send(ch, p.v, LCH_NOWAIT), LCH_OK);
        assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
        assert_ptr_equal(out.u.obj, obj);
        lch_value_release(&out);
    } else {
        if (batch) { /* out[] untouched on error */
            assert_int_equal(p.v.kind, LCH_INT);
            assert_int_equal(p.v.u.i, -1);
        } else { /* *out is None on error */
            assert_int_equal(p.v.kind, LCH_NONE);
        }
        /* Nothing was consumed: a value sent now is received. */
        lch_value v = lch_value_object(obj);
        assert_rc(lch_channel_send(ch, v, LCH_NOWAIT), LCH_OK);
        lch_value out = lch_value_none();
        assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
        assert_ptr_equal(out.u.obj, obj);
        lch_value_release(&out);
    }
    assert_int_equal(lch_channel_len(ch), 0);
    lch_channel_unref(ch);
    signal(SIGUSR1, SIG_DFL);
}

static void test_eintr_recv(void **state)
{
    (void)state;
    eintr_case(false, false, LCH_FOREVER);
    eintr_case(false, true, LCH_FOREVER);
    eintr_case(false, false, 3600 * TU_S);
}

static void test_eintr_send(void **state)
{
    (void)state;
    eintr_case(true, false, LCH_FOREVER);
    eintr_case(true, true, LCH_FOREVER);
    eintr_case(true, false, 3600 * TU_S);
}

int main(int argc, char **argv)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        TU_TEST(test_no_syscalls_without_waiters),
        TU_TEST(test_parked_receiver_one_wake),
        TU_TEST(test_parked_sender_one_wake),
        TU_TEST(test_no_wake_after_timeout),
        TU_TEST(test_try_threads_no_syscalls),
        TU_TEST(test_eintr_recv),
        TU_TEST(test_eintr_send),
    };
    return tu_run("wake", tests, sizeof tests / sizeof tests[0], argc, argv);
}
