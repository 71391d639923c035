/* tests/test_waiter.c: lch_waiter, waiting on channels through a file
 * descriptor.
 *
 * - Arguments and errors: NULLs, bad ops, out-of-memory at every allocation
 *   of create and arm (allocator hook), no file descriptor left (EMFILE).
 * - Semantics: recv/send/select try first and arm only when they would
 *   block; the fd becomes readable at the next send (receive side), receive
 *   (send side) or close, and lch_waiter_take reports each fired
 *   registration once, with a channel reference; close and close_now fire
 *   it; arming a closed channel fails without holding anything; disarm.
 * - Exactly once: one eventfd write per burst, however many channels fire;
 *   a registration fires once per arming; a thread parked on the same
 *   channel still gets its own wake-up; with nobody armed, sends make no
 *   system call.
 * - Lifetime: an armed waiter keeps its channels alive after their owners
 *   drop them, and releases them on take, disarm or free.
 * - Concurrency: an event loop (poll on the fd) consuming several channels
 *   fed by producers on random channels while a closer closes and
 *   close_now's them at random and drops its references (destruction):
 *   every message received exactly once or discarded by close_now, in
 *   order per (producer, channel), and the loop sees every channel end; two
 *   loops on the same channels; waiters freed while senders notify them. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static bool fd_readable(lch_waiter *w, int timeout_ms)
{
    struct pollfd p = {.fd = lch_waiter_fd(w), .events = POLLIN};
    int r;
    do {
        r = poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    return r == 1 && (p.revents & POLLIN);
}

/* Take every event; returns how many, and checks each names `ch` (if not
 * NULL) with op `op` (if not 0). Releases the references. */
static size_t take_all(lch_waiter *w, lch_channel *ch, int op)
{
    lch_waiter_event ev[4];
    size_t total = 0, k;
    do {
        k = lch_waiter_take(w, ev, 4);
        for (size_t i = 0; i < k; i++) {
            if (ch)
                assert_ptr_equal(ev[i].ch, ch);
            if (op)
                assert_int_equal(ev[i].op, op);
            lch_channel_unref(ev[i].ch);
        }
        total += k;
    } while (k == 4);
    return total;
}

/* ---- arguments and errors -------------------------------------------------- */

static void test_waiter_bad_args(void **state)
{
    (void)state;
    lch_waiter *w = NULL;
    assert_rc(lch_waiter_create(NULL), LCH_EINVAL);
    assert_rc(lch_waiter_create(&w), LCH_OK);
    assert_true(lch_waiter_fd(w) >= 0);
    assert_int_equal(lch_waiter_fd(NULL), -1);
    lch_channel *ch = tu_channel(0, 0);
    lch_value v = lch_value_int(3);
    assert_rc(lch_waiter_recv(NULL, ch, &v), LCH_EINVAL);
    assert_int_equal(v.kind, LCH_NONE);
    assert_rc(lch_waiter_recv(w, NULL, &v), LCH_EINVAL);
    assert_rc(lch_waiter_recv(w, ch, NULL), LCH_EINVAL);
    assert_rc(lch_waiter_send(NULL, ch, v), LCH_EINVAL);
    assert_rc(lch_waiter_send(w, NULL, v), LCH_EINVAL);
    size_t idx = 3;
    lch_select_case c = {ch, LCH_RECV, lch_value_none()};
    assert_rc(lch_waiter_select(NULL, &c, 1, &idx), LCH_EINVAL);
    assert_int_equal(idx, LCH_SELECT_NONE);
    assert_rc(lch_waiter_select(w, &c, 1, NULL), LCH_EINVAL);
    assert_rc(lch_waiter_select(w, NULL, 1, &idx), LCH_EINVAL);
    assert_rc(lch_waiter_select(w, &c, 0, &idx), LCH_EINVAL);
    assert_rc(lch_waiter_select(w, &c, LCH_SELECT_MAX + 1, &idx), LCH_E2BIG);
    assert_rc(lch_waiter_disarm(NULL, ch, LCH_RECV), LCH_EINVAL);
    assert_rc(lch_waiter_disarm(w, NULL, LCH_RECV), LCH_EINVAL);
    assert_rc(lch_waiter_disarm(w, ch, 0), LCH_EINVAL);
    assert_rc(lch_waiter_disarm(w, ch, 4), LCH_EINVAL);
    assert_rc(lch_waiter_disarm(w, ch, LCH_RECV | LCH_SEND), LCH_OK);
    lch_waiter_event ev;
    assert_int_equal(lch_waiter_take(NULL, &ev, 1), 0);
    assert_int_equal(lch_waiter_take(w, NULL, 1), 0);
    assert_int_equal(lch_waiter_take(w, &ev, 0), 0);
    assert_int_equal(lch_waiter_take(w, &ev, 1), 0);
    lch_waiter_free(NULL);
    lch_waiter_free(w);
    lch_channel_unref(ch);
}

/* lch_waiter_pending: false until a notification, true (with the fd
 * readable) after one until lch_waiter_take; a send from another thread
 * is seen by spinning on it, with no read of the fd. */
static void *pending_sender(void *arg)
{
    lch_channel *ch = arg;
    tu_sleep_ns(TU_MS);
    assert_rc(lch_channel_send(ch, lch_value_int(9), LCH_NOWAIT), LCH_OK);
    return NULL;
}

static void test_waiter_pending(void **state)
{
    (void)state;
    assert_false(lch_waiter_pending(NULL));
    lch_waiter *w;
    assert_rc(lch_waiter_create(&w), LCH_OK);
    lch_channel *ch = tu_channel(0, 0);
    lch_value v;
    assert_false(lch_waiter_pending(w));
    assert_rc(lch_waiter_recv(w, ch, &v), LCH_EAGAIN);
    assert_false(lch_waiter_pending(w));
    assert_rc(lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT), LCH_OK);
    assert_true(lch_waiter_pending(w));
    assert_true(fd_readable(w, 0));
    assert_int_equal(take_all(w, ch, LCH_RECV), 1);
    assert_false(lch_waiter_pending(w));
    assert_rc(lch_waiter_recv(w, ch, &v), LCH_OK);
    assert_int_equal(v.u.i, 1);

    /* Armed again; another thread sends; spin on pending alone. */
    assert_rc(lch_waiter_recv(w, ch, &v), LCH_EAGAIN);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pending_sender, ch), 0);
    int64_t end = tu_now_ns() + tu_patience_ns();
    while (!lch_waiter_pending(w) && tu_now_ns() < end)
        ;
    assert_true(lch_waiter_pending(w));
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(take_all(w, ch, LCH_RECV), 1);
    assert_false(lch_waiter_pending(w));
    assert_rc(lch_waiter_recv(w, ch, &v), LCH_OK);
    assert_int_equal(v.u.i, 9);
    lch_waiter_free(w);
    lch_channel_unref(ch);
}

static void test_waiter_enomem(void **state)
{
    (void)state;
    /* create: the struct (the eventfd is not an allocation). */
    lch_waiter *w = (lch_waiter *)1;
    tu_alloc_fail_nth(1);
    assert_rc(lch_waiter_create(&w), LCH_ENOMEM);
    tu_alloc_fail_nth(0);
    assert_null(w);
    assert_rc(lch_waiter_create(&w), LCH_OK);
    /* arming: the table, then the registration; nothing held after. */
    lch_channel *ch = tu_channel(0, 0);
    int64_t live = tu_alloc_live();
    for (uint64_t nth = 1;; nth++) {
        lch_value v;
        tu_alloc_fail_nth(nth);
        int rc = lch_waiter_recv(w, ch, &v);
        uint64_t failures = tu_alloc_failures();
        tu_alloc_fail_nth(0);
        if (failures == 0) {
            assert_rc(rc, LCH_EAGAIN);
            break;
        }
        assert_rc(rc, LCH_ENOMEM);
        assert_int_equal(v.kind, LCH_NONE);
        assert_int_equal(lch_object_refcount(lch_channel_object(ch)), 1);
        assert_true(tu_alloc_live() <= live + 1); /* at most the table */
    }
    assert_int_equal(lch_object_refcount(lch_channel_object(ch)), 2);
    /* The same through select, with a second channel to arm. */
    lch_channel *ch2 = tu_channel(4, 0);
    lch_select_case cases[2] = {{ch, LCH_RECV, lch_value_none()},
                                {ch2, LCH_RECV, lch_value_none()}};
    size_t idx;
    bool failed_once = false;
    for (uint64_t nth = 1;; nth++) {
        tu_alloc_fail_nth(nth);
        int rc = lch_waiter_select(w, cases, 2, &idx);
        uint64_t failures = tu_alloc_failures();
        tu_alloc_fail_nth(0);
        if (failures == 0) {
            assert_rc(rc, LCH_EAGAIN);
            break;
        }
        failed_once = true;
        assert_rc(rc, LCH_ENOMEM);
        assert_ptr_equal(cases[idx].ch, ch2); /* ch was armed already */
    }
    assert_true(failed_once);
    lch_waiter_free(w);
    assert_int_equal(lch_object_refcount(lch_channel_object(ch)), 1);
    assert_int_equal(lch_object_refcount(lch_channel_object(ch2)), 1);
    lch_channel_unref(ch);
    lch_channel_unref(ch2);
}

static void test_waiter_emfile(void **state)
{
    (void)state;
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int fds[256], n = 0;
    /* Use up every descriptor below a low limit. */
    low = old;
    low.rlim_cur = 64;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    while (n < 256) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            assert_int_equal(errno, EMFILE);
            break;
        }
        fds[n++] = fd;
    }
    lch_waiter *w = (lch_waiter *)1;
    int rc = lch_waiter_create(&w);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_true(n < 256);
    assert_rc(rc, LCH_EMFILE);
    assert_null(w);
    /* And with descriptors back, it works (nothing leaked). */
    assert_rc(lch_waiter_create(&w), LCH_OK);
    lch_waiter_free(w);
}

/* ---- semantics --------------------------------------------------------------- */

static void test_waiter_recv_arm(void **state)
{
    (void)state;
    const size_t caps[] = {0, 1, 4};
    for (size_t c = 0; c < 3; c++) {
        lch_waiter *w;
        assert_rc(lch_waiter_create(&w), LCH_OK);
        lch_channel *ch = tu_channel(caps[c], 0);
        lch_value v;
        /* Ready: no arming, no fd traffic. */
        assert_rc(lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT), LCH_OK);
        assert_rc(lch_waiter_recv(w, ch, &v), LCH_OK);
        assert_int_equal(v.u.i, 1);
        assert_false(fd_readable(w, 0));
        assert_int_equal(lch_object_refcount(lch_channel_object(ch)), 1);
        /* Empty: armed (it holds a reference), fd quiet. */
        assert_rc(lch_waiter_recv(w, ch, &v), LCH_EAGAIN);
        assert_int_equal(v.kind, LCH_NONE);
        assert_int_equal(lch_object_refcount(lch_channel_object(ch)), 2);
        assert_false(fd_readable(w, 0));
        /* Again: still armed once. */
        assert_rc(lch_waiter_recv(w, ch, &v), LCH_EAGAIN);
        assert_int_equal(lch_object_refcount(lch_channel_object(ch)), 2);
        /* A send fires it: readable, one event, one write. */
        lch_debug_counters before = tu_counters();
        assert_rc(lch_channel_send(ch, lch_value_int(2), LCH_NOWAIT), LCH_OK);
        lch_debug_counters after = tu_counters();
        assert_int_equal(after.fd_signals - before.fd_signals, 1);
        assert_int_equal(after.futex_wakes, before.futex_wakes);
        assert_true(fd_readable(w, 0));
        /* More sends: the registration fired already, nothing more. */
        if (caps[c] != 1) {
            assert_rc(lch_channel_send(ch, lch_value_int(3), LCH_NOWAIT),
                      LCH_OK);
            assert_int_equal(tu_counters().fd_signals, after.fd_signals);
        }
        assert_int_equal(take_all(w, ch, LCH_RECV), 1);
        assert_false(fd_readable(w, 0));
        assert_int_equal(take_all(w, NULL, 0), 0);
        assert_int_equal(lch_object_refcount(lch_channel_object(ch)), 1);
        assert_rc(lch_waiter_recv(w, ch, &v), LCH_OK);
        assert_int_equal(v.u.i, 2);
        if (caps[c] != 1) {
            assert_rc(lch_waiter_recv(w, ch, &v), LCH_OK);
            assert_int_equal(v.u.i, 3);
        }
        /* Nobody armed: no system calls at all. */
        before = tu_counters();
        for (int i = 0; i < 10; i++) {
            assert_rc(lch_channel_send(ch, lch_value_int(i), LCH_NOWAIT),
                      LCH_OK);
            assert_rc(lch_channel_recv(ch, &v, LCH_NOWAIT), LCH_OK);
        }
        after = tu_counters();
        assert_int_equal(after.fd_signals, before.fd_signals);
        assert_int_equal(after.futex_wakes, before.futex_wakes);
        /* Disarm: releases the reference; later sends are silent. */
        assert_rc(lch_waiter_recv(w, ch, &v), LCH_EAGAIN);
        assert_rc(lch_waiter_disarm(w, ch, LCH_RECV), LCH_OK);
        assert_int_equal(lch_object_refcount(lch_channel_object(ch)), 1);
        before = tu_counters();
        assert_rc(lch_channel_send(ch, lch_value_int(4), LCH_NOWAIT), LCH_OK);
        assert_int_equal(tu_counters().fd_signals, before.fd_signals);
        assert_false(fd_readable(w, 0));
        lch_waiter_free(w);
        lch_channel_unref(ch);
    }
}

static void test_waiter_send_arm(void **state)
{
    (void)state;
    lch_waiter *w;
    assert_rc(lch_waiter_create(&w), LCH_OK);
    lch_channel *ch = tu_channel(1, 0);
    lch_object *obj = tu_payload_new(1, 0, 0);
    assert_non_null(obj);
    assert_rc(lch_waiter_send(w, ch, lch_value_int(1)), LCH_OK);
    assert_rc(lch_waiter_send(w, ch, lch_value_object(obj)), LCH_EAGAIN);
    assert_int_equal(lch_object_refcount(obj), 1); /* still ours */
    assert_false(fd_readable(w, 0));
    lch_value v;
    assert_rc(lch_channel_recv(ch, &v, LCH_NOWAIT), LCH_OK);
    assert_true(fd_readable(w, 0));
    assert_int_equal(take_all(w, ch, LCH_SEND), 1);
    assert_rc(lch_waiter_send(w, ch, lch_value_object(obj)), LCH_OK);
    /* Both sides armed on one channel are separate registrations. */
    lch_channel *u = tu_channel(1, 0);
    assert_rc(lch_waiter_recv(w, u, &v), LCH_EAGAIN);
    assert_rc(lch_waiter_send(w, u, lch_value_int(9)), LCH_OK);
    assert_rc(lch_waiter_send(w, u, lch_value_int(10)), LCH_EAGAIN);
    assert_int_equal(take_all(w, u, LCH_RECV), 1);
    assert_rc(lch_channel_recv(u, &v, LCH_NOWAIT), LCH_OK);
    assert_int_equal(take_all(w, u, LCH_SEND), 1);
    lch_waiter_free(w);
    lch_channel_unref(ch); /* releases the payload still queued */
    lch_channel_unref(u);
}

static void test_waiter_close(void **state)
{
    (void)state;
    for (int now = 0; now < 2; now++) {
        lch_waiter *w;
        assert_rc(lch_waiter_create(&w), LCH_OK);
        lch_channel *r = tu_channel(2, 0), *s = tu_channel(1, 0),
                    *u = tu_channel(0, 0);
        lch_value v;
        assert_rc(lch_channel_send(s, lch_value_int(1), LCH_NOWAIT), LCH_OK);
        assert_rc(lch_waiter_recv(w, r, &v), LCH_EAGAIN);
        assert_rc(lch_waiter_send(w, s, lch_value_int(2)), LCH_EAGAIN);
        assert_rc(lch_waiter_recv(w, u, &v), LCH_EAGAIN);
        lch_debug_counters before = tu_counters();
        for (lch_channel **p = (lch_channel *[]){r, s, u, NULL}; *p; p++)
            assert_rc(now ? lch_channel_close_now(*p) : lch_channel_close(*p),
                      LCH_OK);
        assert_int_equal(tu_counters().fd_signals - before.fd_signals, 1);
        assert_int_equal(take_all(w, NULL, 0), 3);
        assert_rc(lch_waiter_recv(w, r, &v), LCH_ECLOSED);
        assert_rc(lch_waiter_send(w, s, lch_value_int(2)), LCH_ECLOSED);
        if (now) {
            assert_rc(lch_waiter_recv(w, s, &v), LCH_ECLOSED);
        } else {
            assert_rc(lch_waiter_recv(w, s, &v), LCH_OK); /* drains first */
            assert_rc(lch_waiter_recv(w, s, &v), LCH_ECLOSED);
        }
        /* Closed: nothing armed, nothing held. */
        for (lch_channel **p = (lch_channel *[]){r, s, u, NULL}; *p; p++)
            assert_int_equal(lch_object_refcount(lch_channel_object(*p)), 1);
        lch_waiter_free(w);
        lch_channel_unref(r);
        lch_channel_unref(s);
        lch_channel_unref(u);
    }
}

static void test_waiter_keeps_channel(void **state)
{
    (void)state;
    lch_waiter *w;
    assert_rc(lch_waiter_create(&w), LCH_OK);
    for (int how = 0; how < 3; how++) {
        lch_channel *ch = tu_channel(how == 1 ? 4 : 0, 0);
        lch_object *obj = lch_channel_object(ch);
        lch_value v;
        assert_rc(lch_waiter_recv(w, ch, &v), LCH_EAGAIN);
        lch_channel_unref(ch); /* the creator lets go: the waiter holds it */
        assert_int_equal(lch_object_refcount(obj), 1);
        if (how == 0) {
            assert_rc(lch_waiter_disarm(w, ch, LCH_RECV), LCH_OK); /* last */
        } else if (how == 1) {
            assert_rc(lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT),
                      LCH_OK);
            lch_waiter_event ev;
            assert_int_equal(lch_waiter_take(w, &ev, 1), 1);
            assert_ptr_equal(ev.ch, ch);
            lch_channel_unref(ev.ch); /* last: releases the queued value */
        } else {
            /* fired, then disarmed before taken */
            assert_rc(lch_channel_close(ch), LCH_OK);
            assert_true(fd_readable(w, 0));
            assert_rc(lch_waiter_disarm(w, ch, LCH_RECV | LCH_SEND), LCH_OK);
            assert_int_equal(take_all(w, NULL, 0), 0); /* spurious */
        }
    }
    lch_waiter_free(w);
    /* The fixture checks that all three channels are gone. */
}

typedef struct rx {
    lch_channel *ch;
    lch_value v;
    int rc;
} rx;

static void *rx_main(void *arg)
{
    rx *r = arg;
    r->rc = lch_channel_recv(r->ch, &r->v, LCH_FOREVER);
    return NULL;
}

static void test_waiter_broadcast(void **state)
{
    (void)state;
    /* A thread parked on the channel and an armed waiter: one send wakes
     * the thread (one futex wake) and fires the waiter (one write): a loop
     * that no longer wants the value cannot swallow the thread's wake-up. */
    const size_t caps[] = {0, 4};
    for (size_t c = 0; c < 2; c++) {
        lch_waiter *w;
        assert_rc(lch_waiter_create(&w), LCH_OK);
        lch_channel *ch = tu_channel(caps[c], 0);
        lch_value v;
        assert_rc(lch_waiter_recv(w, ch, &v), LCH_EAGAIN);
        rx r = {ch, lch_value_none(), 1};
        uint64_t w0 = tu_counters().futex_waits;
        pthread_t t;
        tu_spawn(&t, rx_main, &r);
        bool parked = tu_wait_futex_waits(w0 + 1);
        tu_sleep_ns(2 * TU_MS);
        lch_debug_counters before = tu_counters();
        assert_rc(lch_channel_send(ch, lch_value_int(7), LCH_NOWAIT), LCH_OK);
        tu_join(t);
        lch_debug_counters after = tu_counters();
        assert_true(parked);
        assert_rc(r.rc, LCH_OK);
        assert_int_equal(r.v.u.i, 7);
        assert_int_equal(after.futex_wakes - before.futex_wakes, 1);
        assert_int_equal(after.fd_signals - before.fd_signals, 1);
        assert_true(fd_readable(w, 0));
        assert_int_equal(take_all(w, ch, LCH_RECV), 1);
        assert_rc(lch_waiter_recv(w, ch, &v), LCH_EAGAIN); /* taken */
        lch_waiter_free(w);
        lch_channel_unref(ch);
    }
}

static void test_waiter_select(void **state)
{
    (void)state;
    lch_waiter *w;
    assert_rc(lch_waiter_create(&w), LCH_OK);
    lch_channel *a = tu_channel(2, 0), *b = tu_channel(0, 0),
                *full = tu_channel(1, 0);
    assert_rc(lch_channel_send(full, lch_value_int(0), LCH_NOWAIT), LCH_OK);
    lch_select_case cases[3] = {{a, LCH_RECV, lch_value_none()},
                                {b, LCH_RECV, lch_value_none()},
                                {full, LCH_SEND, lch_value_int(5)}};
    size_t idx;
    /* Nothing ready: armed on all three, one event when one moves. */
    assert_rc(lch_waiter_select(w, cases, 3, &idx), LCH_EAGAIN);
    assert_int_equal(idx, LCH_SELECT_NONE);
    assert_false(fd_readable(w, 0));
    lch_debug_counters before = tu_counters();
    assert_rc(lch_channel_send(b, lch_value_int(2), LCH_NOWAIT), LCH_OK);
    assert_rc(lch_channel_send(a, lch_value_int(1), LCH_NOWAIT), LCH_OK);
    assert_int_equal(tu_counters().fd_signals - before.fd_signals, 1);
    lch_waiter_event ev[4];
    size_t k = lch_waiter_take(w, ev, 4);
    assert_int_equal(k, 2);
    assert_ptr_equal(ev[0].ch, b); /* in the order they fired */
    assert_ptr_equal(ev[1].ch, a);
    lch_channel_unref(ev[0].ch);
    lch_channel_unref(ev[1].ch);
    /* Ready now: one of the two, the other stays queued. */
    assert_rc(lch_waiter_select(w, cases, 3, &idx), LCH_OK);
    assert_true(idx == 0 || idx == 1);
    assert_int_equal(cases[idx].value.u.i, (int64_t)idx + 1);
    assert_int_equal(lch_channel_len(a) + lch_channel_len(b), 1);
    assert_int_equal(cases[2].value.u.i, 5);
    /* The send case is still armed from before; disarm and free. */
    assert_rc(lch_waiter_disarm(w, full, LCH_SEND), LCH_OK);
    assert_int_equal(lch_object_refcount(lch_channel_object(full)), 1);
    /* A closed case is reported as that case. */
    lch_value v;
    assert_rc(lch_channel_recv(idx == 0 ? b : a, &v, LCH_NOWAIT), LCH_OK);
    assert_rc(lch_channel_close(b), LCH_OK);
    assert_rc(lch_waiter_select(w, cases, 2, &idx), LCH_ECLOSED);
    assert_int_equal(idx, 1);
    lch_waiter_free(w);
    for (lch_channel **p = (lch_channel *[]){a, b, full, NULL}; *p; p++) {
        assert_int_equal(lch_object_refcount(lch_channel_object(*p)), 1);
        lch_channel_unref(*p);
    }
}

/* ---- concurrency ------------------------------------------------------------------ */

enum { LP = 3, LN = 6, LLOOPS = 2 };

typedef struct lrun lrun;

typedef struct lworker {
    lrun *r;
    int id;
    uint64_t rng;
    uint64_t count, refused;
    int bad_rc;
    uint64_t bad_values, order_violations, stalls;
    uint64_t next[LP][LN];
    char pad[64];
} lworker;

struct lrun {
    size_t capacity;
    uint64_t per;
    lch_channel *chs[LN];
    _Atomic uint32_t *received, *refused, *released;
    _Atomic uint64_t progress;
    _Atomic int closer_go;
    tu_barrier start;
    lworker prod[LP], loops[LLOOPS], closer;
};

static void *lprod_main(void *arg)
{
    lworker *w = arg;
    lrun *r = w->r;
    for (int i = 0; i < LN; i++)
        if (lch_channel_ref(r->chs[i]) != LCH_OK)
            w->bad_rc = LCH_EOVERFLOW;
    tu_barrier_wait(&r->start);
    for (uint64_t s = 0; s < r->per && !w->bad_rc; s++) {
        uint64_t id = (uint64_t)w->id * r->per + s;
        lch_object *obj = tu_payload_new(id, (uint64_t)w->id, s);
        if (!obj) {
            w->bad_rc = LCH_ENOMEM;
            break;
        }
        lch_value v = lch_value_object(obj);
        v.tag = (uint32_t)(tu_rand(&w->rng) % LN); /* the channel, for checks */
        int rc = lch_channel_send(r->chs[v.tag], v, LCH_FOREVER);
        if (rc == LCH_ECLOSED) {
            atomic_fetch_add(&r->refused[id], 1);
            w->refused++;
            lch_value_release(&v);
        } else if (rc != LCH_OK) {
            w->bad_rc = rc;
            lch_value_release(&v);
        } else {
            w->count++;
        }
        if (s == r->per / 4)
            atomic_store(&r->closer_go, 1);
    }
    atomic_store(&r->closer_go, 1);
    for (int i = 0; i < LN; i++)
        lch_channel_unref(r->chs[i]);
    return NULL;
}

static void lcheck(lworker *w, size_t chan, lch_value *v)
{
    lrun *r = w->r;
    tu_payload *pl = v->kind == LCH_OBJECT ? tu_payload_get(v->u.obj) : NULL;
    if (!pl || pl->producer >= LP || pl->seq >= r->per || v->tag != chan) {
        w->bad_values++;
    } else {
        atomic_fetch_add(&r->received[pl->id], 1);
        if (pl->seq < w->next[pl->producer][chan])
            w->order_violations++;
        w->next[pl->producer][chan] = pl->seq + 1;
        w->count++;
        atomic_fetch_add_explicit(&r->progress, 1, memory_order_relaxed);
    }
    lch_value_release(v);
}

/* An event loop: drain what is there, arm, poll the fd, take, repeat,
 * until every channel has ended. It holds its own references (it calls
 * into the channels) and drops each once that channel has ended. */
static void *lloop_main(void *arg)
{
    lworker *w = arg;
    lrun *r = w->r;
    lch_waiter *wt = NULL;
    bool open[LN];
    int left = LN;
    for (int i = 0; i < LN; i++) {
        open[i] = lch_channel_ref(r->chs[i]) == LCH_OK;
        if (!open[i])
            w->bad_rc = LCH_EOVERFLOW;
    }
    int rc = lch_waiter_create(&wt);
    tu_barrier_wait(&r->start);
    if (rc != LCH_OK) {
        w->bad_rc = rc;
        return NULL;
    }
    int64_t patience_ms = tu_patience_ns() / TU_MS;
    while (left > 0 && !w->bad_rc) {
        for (int i = 0; i < LN; i++) {
            while (open[i]) {
                lch_value v;
                rc = lch_waiter_recv(wt, r->chs[i], &v);
                if (rc == LCH_OK) {
                    lcheck(w, (size_t)i, &v);
                } else if (rc == LCH_EAGAIN) {
                    break;
                } else if (rc == LCH_ECLOSED) {
                    open[i] = false;
                    left--;
                    (void)lch_waiter_disarm(wt, r->chs[i], LCH_RECV);
                    lch_channel_unref(r->chs[i]);
                } else {
                    w->bad_rc = rc;
                    break;
                }
            }
        }
        if (left == 0 || w->bad_rc)
            break;
        if (!fd_readable(wt, (int)patience_ms)) {
            w->stalls++; /* armed on every open channel, and no event */
            break;
        }
        lch_waiter_event ev[LN];
        size_t k;
        do {
            k = lch_waiter_take(wt, ev, LN);
            for (size_t j = 0; j < k; j++)
                lch_channel_unref(ev[j].ch);
        } while (k == LN);
    }
    for (int i = 0; i < LN; i++)
        if (open[i])
            lch_channel_unref(r->chs[i]);
    lch_waiter_free(wt);
    return NULL;
}

/* Closes every channel in a random order at random moments, half of them
 * with close_now, dropping the creator's reference to each right after. */
static void *lcloser_main(void *arg)
{
    lworker *w = arg;
    lrun *r = w->r;
    tu_barrier_wait(&r->start);
    while (!atomic_load(&r->closer_go))
        sched_yield();
    int order[LN];
    for (int i = 0; i < LN; i++)
        order[i] = i;
    for (int i = LN - 1; i > 0; i--) {
        int j = (int)(tu_rand(&w->rng) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int k = 0; k < LN; k++) {
        for (uint64_t spin = tu_rand(&w->rng) % 20000; spin > 0; spin--)
            if (spin % 1000 == 0)
                sched_yield();
        lch_channel *ch = r->chs[order[k]];
        int rc = (tu_rand(&w->rng) & 1) ? lch_channel_close_now(ch)
                                   : lch_channel_close(ch);
        if (rc != LCH_OK)
            w->bad_rc = rc;
        lch_channel_unref(ch); /* destruction: whoever drops the last */
    }
    return NULL;
}

static void loops_vs_close(size_t capacity, int64_t spin, uint64_t seed)
{
    lrun *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->capacity = capacity;
    r->per = tu_count(6000, 300);
    uint64_t total = r->per * LP;
    r->received = calloc(total, sizeof *r->received);
    r->refused = calloc(total, sizeof *r->refused);
    r->released = calloc(total, sizeof *r->released);
    assert_non_null(r->received);
    assert_non_null(r->refused);
    assert_non_null(r->released);
    tu_payload_track(r->released, total);
    for (int i = 0; i < LN; i++)
        r->chs[i] = tu_channel(capacity, spin);
    for (int i = 0; i < LP; i++)
        r->prod[i] = (lworker){.r = r, .id = i, .rng = seed * 7 + (uint64_t)i};
    for (int i = 0; i < LLOOPS; i++)
        r->loops[i] = (lworker){.r = r, .id = i};
    r->closer = (lworker){.r = r, .rng = seed | 1};
    tu_barrier_init(&r->start, LP + LLOOPS + 2);
    pthread_t pt[LP], lt[LLOOPS], ct;
    tu_spawn_n(lt, LLOOPS, lloop_main, r->loops, sizeof(lworker));
    tu_spawn_n(pt, LP, lprod_main, r->prod, sizeof(lworker));
    tu_spawn(&ct, lcloser_main, &r->closer);
    tu_barrier_wait(&r->start);
    tu_join_n(pt, LP);
    tu_join(ct);
    tu_join_n(lt, LLOOPS);
    tu_barrier_destroy(&r->start);
    /* Every channel is gone now (each holder dropped its reference). */
    assert_rc(r->closer.bad_rc, LCH_OK);
    uint64_t sent = 0, refused = 0, got = 0;
    for (int i = 0; i < LP; i++) {
        assert_rc(r->prod[i].bad_rc, LCH_OK);
        sent += r->prod[i].count;
        refused += r->prod[i].refused;
    }
    for (int i = 0; i < LLOOPS; i++) {
        lworker *w = &r->loops[i];
        assert_rc(w->bad_rc, LCH_OK);
        if (w->stalls)
            fail_msg("loop %d: armed on every open channel, the fd stayed "
                     "quiet for %.0f s: a wake-up was lost",
                     i, (double)tu_patience_ns() / 1e9);
        assert_int_equal(w->bad_values, 0);
        assert_int_equal(w->order_violations, 0);
        got += w->count;
    }
    assert_int_equal(sent + refused, total);
    tu_assert_clean(); /* channels destroyed; the rest released below */
    for (uint64_t id = 0; id < total; id++) {
        uint32_t g = atomic_load(&r->received[id]),
                 f = atomic_load(&r->refused[id]),
                 l = atomic_load(&r->released[id]);
        /* received once, refused once, or discarded by close_now */
        if (g + f > 1 || l != 1)
            fail_msg("message %llu: received %u, refused %u, released %u "
                     "times",
                     (unsigned long long)id, g, f, l);
    }
    print_message("[ INFO     ] capacity %zu: %llu received by %d loops, "
                  "%llu refused, %llu discarded by close_now\n",
                  capacity, (unsigned long long)got, LLOOPS,
                  (unsigned long long)refused,
                  (unsigned long long)(total - got - refused));
    tu_payload_track(NULL, 0);
    free(r->received);
    free(r->refused);
    free(r->released);
    free(r);
}

static void test_waiter_loops_vs_close(void **state)
{
    (void)state;
    int rounds = (int)tu_count(6, 2);
    for (int i = 0; i < rounds; i++) {
        loops_vs_close(0, 0, (uint64_t)i + 1);
        loops_vs_close(2, 0, (uint64_t)i + 11);
        loops_vs_close(1, -1, (uint64_t)i + 21);
    }
}

/* Waiters freed while other threads notify and close their channels: the
 * fd is closed only after the last notifier's write (ASan/TSan watch). */
typedef struct hammer {
    lch_channel *ch;
    _Atomic int stop;
    int bad_rc;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    while (!atomic_load(&h->stop)) {
        lch_value v;
        int rc = lch_channel_send(h->ch, lch_value_int(1), LCH_NOWAIT);
        if (rc == LCH_OK || rc == LCH_EAGAIN)
            rc = lch_channel_recv(h->ch, &v, LCH_NOWAIT);
        if (rc != LCH_OK && rc != LCH_EAGAIN)
            h->bad_rc = rc;
    }
    return NULL;
}

static void test_waiter_free_races(void **state)
{
    (void)state;
    const size_t caps[] = {0, 1, 8};
    for (size_t c = 0; c < 3; c++) {
        hammer h = {.ch = tu_channel(caps[c], 0)};
        pthread_t t;
        tu_spawn(&t, hammer_main, &h);
        int rounds = (int)tu_count(3000, 300);
        for (int i = 0; i < rounds; i++) {
            lch_waiter *w;
            assert_rc(lch_waiter_create(&w), LCH_OK);
            /* armed on both sides, so that sends and receives fire it */
            lch_value v;
            if (lch_waiter_recv(w, h.ch, &v) == LCH_OK)
                lch_value_release(&v);
            if (caps[c])
                (void)lch_waiter_send(w, h.ch, lch_value_int(2));
            if (i % 3 == 1)
                (void)take_all(w, NULL, 0);
            if (i % 5 == 2)
                sched_yield();
            lch_waiter_free(w);
        }
        /* And close racing with arming and freeing. */
        lch_waiter *w;
        assert_rc(lch_waiter_create(&w), LCH_OK);
        lch_value v;
        (void)lch_waiter_recv(w, h.ch, &v);
        assert_rc(lch_channel_close_now(h.ch), LCH_OK);
        atomic_store(&h.stop, 1);
        tu_join(t);
        assert_true(h.bad_rc == LCH_OK || h.bad_rc == LCH_ECLOSED);
        lch_waiter_free(w);
        lch_channel_unref(h.ch);
    }
}

int main(int argc, char **argv)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        TU_TEST(test_waiter_bad_args),
        TU_TEST(test_waiter_pending),
        TU_TEST(test_waiter_enomem),
        TU_TEST(test_waiter_emfile),
        TU_TEST(test_waiter_recv_arm),
        TU_TEST(test_waiter_send_arm),
        TU_TEST(test_waiter_close),
        TU_TEST(test_waiter_keeps_channel),
        TU_TEST(test_waiter_broadcast),
        TU_TEST(test_waiter_select),
        TU_TEST(test_waiter_loops_vs_close),
        TU_TEST(test_waiter_free_races),
    };
    return tu_run("waiter", tests, sizeof tests / sizeof tests[0], argc, argv);
}
