/* tests/test_select.c: lch_channel_select.
 *
 * - Arguments: NULL, no cases, too many cases (LCH_E2BIG), a NULL channel,
 *   a bad op; *index is LCH_SELECT_NONE after every error that names no
 *   case; receive cases are None after a failure.
 * - Semantics: the ready case completes and only that one; a send case's
 *   value moves to the channel (then None in the case), the others stay
 *   the caller's; timeout 0 (LCH_EAGAIN) and timed waits (LCH_ETIMEDOUT);
 *   close reported as that channel's (LCH_ECLOSED with its index) once it
 *   is drained; close_now; a send case to a closed channel; an unbounded
 *   channel that cannot grow (LCH_ENOMEM through the allocator hook).
 * - Fairness: with every case always ready, each is chosen about equally.
 * - Wake-ups: a parked select is woken by exactly one futex wake; when
 *   several of its channels move, the notifications it does not use reach
 *   the threads parked on those channels (skipped nodes, handed-on wake-ups):
 *   with 3 waiters and 2 values, exactly 2 finish. A signal handler ends the
 *   wait with LCH_EINTR, nothing moved. A send with no select parked makes
 *   no system call, also after selects have come and gone.
 * - Stress: select over 1, 2, 7 and 64 channels; producers send to random
 *   channels (or select over send cases: whichever has room), selecting
 *   consumers and a plain receiver; every message exactly once, in order
 *   per (producer, channel), counts conserved, payloads released once. */
#include "testutil.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lch_select_case recv_case(lch_channel *ch)
{
    return (lch_select_case){ch, LCH_RECV, lch_value_int(-99)};
}

/* ---- arguments -------------------------------------------------------------- */

static void test_select_bad_args(void **state)
{
    (void)state;
    lch_channel *a = tu_channel(4, 0);
    lch_select_case cases[LCH_SELECT_MAX + 1];
    for (size_t i = 0; i < LCH_SELECT_MAX + 1; i++)
        cases[i] = recv_case(a);
    size_t idx = 7;
    assert_rc(lch_channel_select(NULL, 1, &idx, 0), LCH_EINVAL);
    assert_int_equal(idx, LCH_SELECT_NONE);
    assert_rc(lch_channel_select(cases, 1, NULL, 0), LCH_EINVAL);
    idx = 7;
    assert_rc(lch_channel_select(cases, 0, &idx, 0), LCH_EINVAL);
    assert_int_equal(idx, LCH_SELECT_NONE);
    idx = 7;
    assert_rc(lch_channel_select(cases, LCH_SELECT_MAX + 1, &idx,
                                 LCH_FOREVER),
              LCH_E2BIG);
    assert_int_equal(idx, LCH_SELECT_NONE);
    cases[1].ch = NULL;
    assert_rc(lch_channel_select(cases, 2, &idx, 0), LCH_EINVAL);
    cases[1] = recv_case(a);
    cases[1].op = 3;
    assert_rc(lch_channel_select(cases, 2, &idx, 0), LCH_EINVAL);
    cases[1].op = 0;
    assert_rc(lch_channel_select(cases, 2, &idx, 0), LCH_EINVAL);
    /* 64 is fine: nothing queued, so it tries once and says so. */
    cases[1] = recv_case(a);
    assert_rc(lch_channel_select(cases, LCH_SELECT_MAX, &idx, 0),
              LCH_EAGAIN);
    assert_int_equal(idx, LCH_SELECT_NONE);
    for (size_t i = 0; i < LCH_SELECT_MAX; i++)
        assert_int_equal(cases[i].value.kind, LCH_NONE);
    lch_channel_unref(a);
}

/* ---- semantics ---------------------------------------------------------------- */

static void test_select_ready_case(void **state)
{
    (void)state;
    lch_channel *a = tu_channel(4, 0), *b = tu_channel(0, 0),
                *c = tu_channel(2, 0);
    lch_object *obj = tu_payload_new(1, 0, 0);
    assert_non_null(obj);
    assert_rc(lch_channel_send(b, lch_value_object(obj), LCH_NOWAIT), LCH_OK);
    lch_select_case cases[3] = {recv_case(a), recv_case(b), recv_case(c)};
    size_t idx = 0;
    assert_rc(lch_channel_select(cases, 3, &idx, LCH_FOREVER), LCH_OK);
    assert_int_equal(idx, 1);
    assert_ptr_equal(cases[1].value.u.obj, obj);
    assert_int_equal(cases[0].value.kind, LCH_NONE);
    assert_int_equal(cases[2].value.kind, LCH_NONE);
    lch_value_release(&cases[1].value);

    /* Send cases: only one completes; c has room, a is full. */
    for (int i = 0; i < 4; i++)
        assert_rc(lch_channel_send(a, lch_value_int(i), LCH_NOWAIT), LCH_OK);
    lch_object *o2 = tu_payload_new(2, 0, 0);
    assert_non_null(o2);
    lch_select_case sends[2] = {{a, LCH_SEND, lch_value_int(100)},
                                {c, LCH_SEND, lch_value_object(o2)}};
    assert_rc(lch_channel_select(sends, 2, &idx, 0), LCH_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(sends[1].value.kind, LCH_NONE); /* the channel owns it */
    assert_int_equal(sends[0].value.u.i, 100);       /* still the caller's */
    assert_int_equal(lch_channel_len(c), 1);
    assert_int_equal(lch_channel_len(a), 4);

    /* A mix: the receive from a is ready, the send to a is not. */
    lch_select_case mix[2] = {{a, LCH_SEND, lch_value_int(5)}, recv_case(a)};
    assert_rc(lch_channel_select(mix, 2, &idx, LCH_FOREVER), LCH_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(mix[1].value.u.i, 0);
    assert_int_equal(mix[0].value.u.i, 5);

    /* Nothing ready. */
    lch_channel *d = tu_channel(0, 0);
    lch_select_case none[2] = {recv_case(d), recv_case(c)};
    lch_value out;
    assert_rc(lch_channel_recv(c, &out, LCH_NOWAIT), LCH_OK);
    lch_value_release(&out);
    assert_rc(lch_channel_select(none, 2, &idx, LCH_NOWAIT), LCH_EAGAIN);
    assert_int_equal(idx, LCH_SELECT_NONE);
    assert_rc(lch_channel_select(none, 2, &idx, 2 * TU_MS), LCH_ETIMEDOUT);
    assert_int_equal(idx, LCH_SELECT_NONE);
    assert_int_equal(none[0].value.kind, LCH_NONE);

    /* The same channel twice is allowed. */
    assert_rc(lch_channel_send(d, lch_value_int(8), LCH_NOWAIT), LCH_OK);
    lch_select_case twice[2] = {recv_case(d), recv_case(d)};
    assert_rc(lch_channel_select(twice, 2, &idx, LCH_FOREVER), LCH_OK);
    assert_int_equal(twice[idx].value.u.i, 8);
    assert_int_equal(twice[1 - idx].value.kind, LCH_NONE);

    for (lch_channel **p = (lch_channel *[]){a, b, c, d, NULL}; *p; p++)
        lch_channel_unref(*p);
}

static void test_select_close(void **state)
{
    (void)state;
    lch_channel *a = tu_channel(4, 0), *b = tu_channel(0, 0);
    assert_rc(lch_channel_send(a, lch_value_int(1), LCH_NOWAIT), LCH_OK);
    assert_rc(lch_channel_close(a), LCH_OK);
    lch_select_case cases[2] = {recv_case(a), recv_case(b)};
    size_t idx;
    /* Closed, not drained: the value first. */
    assert_rc(lch_channel_select(cases, 2, &idx, LCH_FOREVER), LCH_OK);
    assert_int_equal(idx, 0);
    assert_int_equal(cases[0].value.u.i, 1);
    /* Then the close, as a's. */
    assert_rc(lch_channel_select(cases, 2, &idx, LCH_FOREVER), LCH_ECLOSED);
    assert_int_equal(idx, 0);
    assert_int_equal(cases[0].value.kind, LCH_NONE);
    /* A send case to a closed channel is that case's error; the value is
     * still the caller's. */
    lch_object *obj = tu_payload_new(3, 0, 0);
    assert_non_null(obj);
    lch_select_case s[2] = {{a, LCH_SEND, lch_value_object(obj)},
                            recv_case(b)};
    assert_rc(lch_channel_select(s, 2, &idx, LCH_NOWAIT), LCH_ECLOSED);
    assert_int_equal(idx, 0);
    assert_ptr_equal(s[0].value.u.obj, obj);
    lch_value_release(&s[0].value);
    /* close_now discards: the receive fails at once. */
    assert_rc(lch_channel_send(b, lch_value_object(tu_payload_new(4, 0, 0)),
                               LCH_NOWAIT),
              LCH_OK);
    assert_rc(lch_channel_close_now(b), LCH_OK);
    lch_select_case only_b = recv_case(b);
    assert_rc(lch_channel_select(&only_b, 1, &idx, LCH_FOREVER), LCH_ECLOSED);
    assert_int_equal(idx, 0);
    lch_channel_unref(a);
    lch_channel_unref(b);
}

static void test_select_enomem(void **state)
{
    (void)state;
    /* An unbounded channel grows a block every 63 values: fill one, then
     * make the next allocation fail. */
    lch_channel *u = tu_channel(0, 0), *r = tu_channel(1, 0);
    for (int i = 0; i < 62; i++)
        assert_rc(lch_channel_send(u, lch_value_int(i), LCH_NOWAIT), LCH_OK);
    lch_select_case cases[2] = {{u, LCH_SEND, lch_value_int(62)},
                                recv_case(r)};
    size_t idx;
    tu_alloc_fail_nth(1);
    int rc = lch_channel_select(cases, 2, &idx, LCH_FOREVER);
    tu_alloc_fail_nth(0);
    assert_rc(rc, LCH_ENOMEM);
    assert_int_equal(idx, 0);
    assert_int_equal(cases[0].value.u.i, 62);
    assert_int_equal(lch_channel_len(u), 62);
    lch_channel_unref(u);
    lch_channel_unref(r);
}

/* ---- fairness ------------------------------------------------------------------ */

static void test_select_fair(void **state)
{
    (void)state;
    enum { N = 5 };
    lch_channel *chs[N];
    lch_select_case cases[N];
    for (int i = 0; i < N; i++) {
        chs[i] = tu_channel(0, 0);
        cases[i] = recv_case(chs[i]);
    }
    uint64_t rounds = tu_count(20000, 2000), picked[N] = {0};
    for (uint64_t r = 0; r < rounds; r++) {
        /* every channel keeps one value queued */
        for (int i = 0; i < N; i++)
            if (lch_channel_len(chs[i]) == 0)
                assert_rc(lch_channel_send(chs[i], lch_value_int(i),
                                           LCH_NOWAIT),
                          LCH_OK);
        size_t idx;
        assert_rc(lch_channel_select(cases, N, &idx, LCH_NOWAIT), LCH_OK);
        assert_int_equal(cases[idx].value.u.i, (int64_t)idx);
        picked[idx]++;
    }
    /* Uniform would be rounds / N each; a fixed or rotating-start order
     * would still pass this, a "first ready wins" order would not. A
     * correct implementation misses it with probability far below 1e-9. */
    for (int i = 0; i < N; i++)
        if (picked[i] < rounds / N / 2)
            fail_msg("channel %d chosen %llu times of %llu (expected about "
                     "%llu)",
                     i, (unsigned long long)picked[i],
                     (unsigned long long)rounds,
                     (unsigned long long)(rounds / N));
    for (int i = 0; i < N; i++)
        lch_channel_unref(chs[i]);
}

/* ---- wake-ups -------------------------------------------------------------------- */

typedef struct selector {
    lch_select_case cases[LCH_SELECT_MAX];
    size_t n;
    int64_t timeout;
    int rc;
    size_t idx;
    _Atomic int done;
} selector;

static void *selector_main(void *arg)
{
    selector *s = arg;
    s->rc = lch_channel_select(s->cases, s->n, &s->idx, s->timeout);
    atomic_store(&s->done, 1);
    return NULL;
}

static void test_select_one_wake(void **state)
{
    (void)state;
    enum { N = 4 };
    lch_channel *chs[N];
    for (int i = 0; i < N; i++)
        chs[i] = tu_channel(i % 2 ? 0 : 2, 0); /* park at once */
    for (int target = 0; target < N; target++) {
        selector s = {.n = N, .timeout = LCH_FOREVER, .rc = 1};
        for (int i = 0; i < N; i++)
            s.cases[i] = recv_case(chs[i]);
        uint64_t w0 = tu_counters().futex_waits;
        pthread_t t;
        tu_spawn(&t, selector_main, &s);
        bool parked = tu_wait_futex_waits(w0 + 1);
        tu_sleep_ns(2 * TU_MS);
        lch_debug_counters before = tu_counters();
        assert_rc(lch_channel_send(chs[target], lch_value_int(target),
                                   LCH_NOWAIT),
                  LCH_OK);
        tu_join(t);
        lch_debug_counters after = tu_counters();
        assert_true(parked);
        assert_rc(s.rc, LCH_OK);
        assert_int_equal(s.idx, (size_t)target);
        assert_int_equal(s.cases[target].value.u.i, target);
        if (after.futex_wakes - before.futex_wakes != 1)
            fail_msg("a send to case %d of a parked select made %llu futex "
                     "wakes, expected 1",
                     target,
                     (unsigned long long)(after.futex_wakes -
                                          before.futex_wakes));
        /* Nobody waits now: no system calls on any of the channels. */
        before = tu_counters();
        for (int i = 0; i < N; i++) {
            lch_value v;
            assert_rc(lch_channel_send(chs[i], lch_value_int(1), LCH_NOWAIT),
                      LCH_OK);
            assert_rc(lch_channel_recv(chs[i], &v, LCH_NOWAIT), LCH_OK);
        }
        after = tu_counters();
        assert_int_equal(after.futex_wakes, before.futex_wakes);
        assert_int_equal(after.futex_waits, before.futex_waits);
    }
    for (int i = 0; i < N; i++)
        lch_channel_unref(chs[i]);
}

/* A select over {a, b} and one plain receiver on each, all parked; one
 * value sent to a and one to b. Whatever the select picks and whoever the
 * notifications reach first, exactly two of the three must return: a
 * notification swallowed by the select's second node, or a wake-up it did
 * not use and failed to hand on, leaves a value queued and its receiver
 * asleep. */
typedef struct plain {
    lch_channel *ch;
    lch_value v;
    int rc;
    _Atomic int done;
} plain;

static void *plain_main(void *arg)
{
    plain *p = arg;
    p->rc = lch_channel_recv(p->ch, &p->v, LCH_FOREVER);
    atomic_store(&p->done, 1);
    return NULL;
}

static void test_select_no_swallowed_wake(void **state)
{
    (void)state;
    int rounds = (int)tu_count(200, 20);
    for (int round = 0; round < rounds; round++) {
        size_t cap = (size_t)(round % 3 == 0 ? 0 : round % 3); /* 0, 1, 2 */
        lch_channel *a = tu_channel(cap, 0), *b = tu_channel(cap, 0);
        selector s = {.n = 2, .timeout = LCH_FOREVER, .rc = 1};
        s.cases[0] = recv_case(a);
        s.cases[1] = recv_case(b);
        plain pa = {.ch = a, .rc = 1}, pb = {.ch = b, .rc = 1};
        uint64_t w0 = tu_counters().futex_waits;
        pthread_t ts[3];
        tu_spawn(&ts[0], selector_main, &s);
        tu_spawn(&ts[1], plain_main, &pa);
        tu_spawn(&ts[2], plain_main, &pb);
        (void)tu_wait_futex_waits(w0 + 3);
        if (round % 2)
            tu_sleep_ns(TU_MS / 2);
        assert_rc(lch_channel_send(a, lch_value_int(10), LCH_NOWAIT), LCH_OK);
        assert_rc(lch_channel_send(b, lch_value_int(20), LCH_NOWAIT), LCH_OK);
        int64_t deadline = tu_now_ns() + tu_patience_ns();
        int done = 0;
        while ((done = atomic_load(&s.done) + atomic_load(&pa.done) +
                       atomic_load(&pb.done)) < 2 &&
               tu_now_ns() < deadline)
            tu_sleep_ns(TU_MS / 4);
        size_t qa = lch_channel_len(a), qb = lch_channel_len(b);
        /* Release whoever is left, so the test can end either way. */
        lch_channel_close(a);
        lch_channel_close(b);
        tu_join(ts[0]);
        tu_join(ts[1]);
        tu_join(ts[2]);
        if (done < 2)
            fail_msg("round %d (capacity %zu): only %d of 3 waiters returned "
                     "for 2 values (%zu, %zu still queued): a wake-up was "
                     "lost",
                     round, cap, done, qa, qb);
        /* Each value once. */
        int64_t got = 0;
        int oks = 0;
        if (s.rc == LCH_OK) {
            got += s.cases[s.idx].value.u.i;
            oks++;
        }
        if (pa.rc == LCH_OK) {
            got += pa.v.u.i;
            oks++;
        }
        if (pb.rc == LCH_OK) {
            got += pb.v.u.i;
            oks++;
        }
        assert_int_equal(oks, 2);
        assert_int_equal(got, 30);
        lch_channel_unref(a);
        lch_channel_unref(b);
    }
}

static _Atomic int sigusr1_count;

static void on_sigusr1(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&sigusr1_count, 1, memory_order_relaxed);
}

static void test_select_eintr(void **state)
{
    (void)state;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0); /* no SA_RESTART */
    lch_channel *full = tu_channel(1, 0), *empty = tu_channel(0, 0);
    assert_rc(lch_channel_send(full, lch_value_int(1), LCH_NOWAIT), LCH_OK);
    lch_object *obj = tu_payload_new(5, 0, 0);
    assert_non_null(obj);
    selector s = {.n = 2, .timeout = LCH_FOREVER, .rc = 1};
    s.cases[0] = (lch_select_case){full, LCH_SEND, lch_value_object(obj)};
    s.cases[1] = recv_case(empty);
    uint64_t w0 = tu_counters().futex_waits;
    pthread_t t;
    tu_spawn(&t, selector_main, &s);
    (void)tu_wait_futex_waits(w0 + 1);
    int64_t deadline = tu_now_ns() + tu_patience_ns();
    while (!atomic_load(&s.done) && tu_now_ns() < deadline) {
        pthread_kill(t, SIGUSR1);
        tu_sleep_ns(2 * TU_MS);
    }
    if (!atomic_load(&s.done))
        lch_channel_close(empty); /* let it go; the assert below fails */
    tu_join(t);
    signal(SIGUSR1, SIG_DFL);
    assert_rc(s.rc, LCH_EINTR);
    assert_int_equal(s.idx, LCH_SELECT_NONE);
    assert_ptr_equal(s.cases[0].value.u.obj, obj); /* still the caller's */
    assert_int_equal(lch_object_refcount(obj), 1);
    assert_int_equal(lch_channel_len(full), 1);
    lch_value_release(&s.cases[0].value);
    lch_channel_unref(full);
    lch_channel_unref(empty);
}

/* ---- stress ---------------------------------------------------------------------- */

enum { SP = 4, SC = 2, MAXN = LCH_SELECT_MAX };
#define SEQ_BITS 32

typedef struct sstress sstress;
typedef struct sworker {
    sstress *r;
    int id;
    uint64_t count;
    int bad_rc;
    uint64_t bad_values, order_violations;
    uint64_t rng;
    uint64_t *next; /* consumer: per (producer, channel) lowest next seq */
    char pad[64];
} sworker;

struct sstress {
    size_t n;          /* channels */
    size_t capacity;
    bool send_select;  /* producers select over send cases */
    uint64_t per;      /* messages per producer */
    lch_channel *chs[MAXN];
    _Atomic uint32_t *received; /* per message */
    _Atomic uint32_t *released;
    _Atomic uint64_t progress;
    _Atomic int producers_finished, consumers_finished;
    tu_barrier start;
    sworker prod[SP], cons[SC + 1]; /* the last consumer uses plain recv */
};

static void *sprod_main(void *arg)
{
    sworker *w = arg;
    sstress *r = w->r;
    tu_barrier_wait(&r->start);
    for (uint64_t s = 0; s < r->per && !w->bad_rc; s++) {
        uint64_t id = (uint64_t)w->id * r->per + s;
        lch_value v;
        if (s & 1) {
            lch_object *obj = tu_payload_new(id, (uint64_t)w->id, s);
            if (!obj) {
                w->bad_rc = LCH_ENOMEM;
                break;
            }
            v = lch_value_object(obj);
        } else {
            v = lch_value_int((int64_t)id);
        }
        v.tag = (uint32_t)w->id;
        int rc;
        if (r->send_select) {
            /* Offer it to a random subset of channels (>= 1); whichever
             * takes it owns it; the other cases alias the same value. */
            lch_select_case cases[MAXN];
            size_t k = 0, idx;
            size_t m = 1 + (size_t)(tu_rand(&w->rng) % r->n);
            size_t first = (size_t)(tu_rand(&w->rng) % r->n);
            for (size_t j = 0; j < m; j++)
                cases[k++] = (lch_select_case){r->chs[(first + j) % r->n],
                                               LCH_SEND, v};
            rc = lch_channel_select(cases, k, &idx, LCH_FOREVER);
        } else {
            rc = lch_channel_send(r->chs[tu_rand(&w->rng) % r->n], v, LCH_FOREVER);
        }
        if (rc != LCH_OK) {
            w->bad_rc = rc;
            lch_value_release(&v);
            break;
        }
        w->count++;
    }
    atomic_fetch_add(&r->producers_finished, 1);
    return NULL;
}

static void scheck(sworker *w, size_t chan, lch_value *v)
{
    sstress *r = w->r;
    uint64_t id, p, s;
    if (v->kind == LCH_INT) {
        id = (uint64_t)v->u.i;
    } else if (v->kind == LCH_OBJECT && tu_payload_get(v->u.obj)) {
        id = tu_payload_get(v->u.obj)->id;
    } else {
        w->bad_values++;
        lch_value_release(v);
        return;
    }
    p = id / r->per;
    s = id % r->per;
    if (p >= SP || v->tag != p || ((s & 1) != (v->kind == LCH_OBJECT))) {
        w->bad_values++;
    } else {
        atomic_fetch_add_explicit(&r->received[id], 1, memory_order_relaxed);
        uint64_t *next = &w->next[p * MAXN + chan];
        if (s < *next)
            w->order_violations++;
        *next = s + 1;
        w->count++;
        atomic_fetch_add_explicit(&r->progress, 1, memory_order_relaxed);
    }
    lch_value_release(v);
}

static void *scons_main(void *arg)
{
    sworker *w = arg;
    sstress *r = w->r;
    tu_barrier_wait(&r->start);
    if (w->id == SC) { /* the plain receiver, on channel 0 */
        lch_value v;
        int rc;
        while ((rc = lch_channel_recv(r->chs[0], &v, LCH_FOREVER)) == LCH_OK)
            scheck(w, 0, &v);
        if (rc != LCH_ECLOSED)
            w->bad_rc = rc;
        atomic_fetch_add(&r->consumers_finished, 1);
        return NULL;
    }
    lch_select_case cases[MAXN];
    size_t chan_of[MAXN], n = r->n;
    for (size_t i = 0; i < n; i++) {
        cases[i] = recv_case(r->chs[i]);
        chan_of[i] = i;
    }
    while (n > 0) {
        size_t idx;
        int rc = lch_channel_select(cases, n, &idx, LCH_FOREVER);
        if (rc == LCH_OK) {
            scheck(w, chan_of[idx], &cases[idx].value);
        } else if (rc == LCH_ECLOSED) {
            /* that channel is done: drop its case */
            cases[idx] = cases[n - 1];
            chan_of[idx] = chan_of[n - 1];
            n--;
        } else {
            w->bad_rc = rc;
            break;
        }
    }
    atomic_fetch_add(&r->consumers_finished, 1);
    return NULL;
}

static void select_stress(size_t n, size_t capacity, int64_t spin,
                          bool send_select)
{
    sstress *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->n = n;
    r->capacity = capacity;
    r->send_select = send_select;
    r->per = tu_count(20000, 400) / SP;
    uint64_t total = r->per * SP;
    r->received = calloc(total, sizeof *r->received);
    r->released = calloc(total, sizeof *r->released);
    assert_non_null(r->received);
    assert_non_null(r->released);
    tu_payload_track(r->released, total);
    for (size_t i = 0; i < n; i++)
        r->chs[i] = tu_channel(capacity, spin);
    for (int i = 0; i < SP; i++)
        r->prod[i] = (sworker){.r = r, .id = i,
                               .rng = 0x1234567ull * (uint64_t)(i + 1)};
    for (int i = 0; i <= SC; i++) {
        r->cons[i] = (sworker){.r = r, .id = i};
        r->cons[i].next = calloc(SP * MAXN, sizeof(uint64_t));
        assert_non_null(r->cons[i].next);
    }
    tu_barrier_init(&r->start, SP + SC + 2);
    pthread_t pt[SP], ct[SC + 1];
    tu_spawn_n(ct, SC + 1, scons_main, r->cons, sizeof(sworker));
    tu_spawn_n(pt, SP, sprod_main, r->prod, sizeof(sworker));
    tu_barrier_wait(&r->start);
    uint64_t seen = 0;
    int64_t deadline = tu_now_ns() + tu_patience_ns();
    while (atomic_load(&r->producers_finished) < SP) {
        uint64_t now = atomic_load(&r->progress);
        if (now != seen) {
            seen = now;
            deadline = tu_now_ns() + tu_patience_ns();
        } else if (tu_now_ns() > deadline) {
            fail_msg("select stress (%zu channels, capacity %zu): nothing "
                     "received for %.0f s (%llu so far): a wake-up was lost",
                     n, capacity, (double)tu_patience_ns() / 1e9,
                     (unsigned long long)seen);
        }
        tu_sleep_ns(TU_MS);
    }
    tu_join_n(pt, SP);
    for (size_t i = 0; i < n; i++)
        assert_rc(lch_channel_close(r->chs[i]), LCH_OK);
    tu_join_n_within(ct, SC + 1, &r->consumers_finished,
                     "select consumers after close");
    tu_barrier_destroy(&r->start);
    uint64_t sent = 0, got = 0;
    for (int i = 0; i < SP; i++) {
        assert_rc(r->prod[i].bad_rc, LCH_OK);
        sent += r->prod[i].count;
    }
    for (int i = 0; i <= SC; i++) {
        assert_rc(r->cons[i].bad_rc, LCH_OK);
        assert_int_equal(r->cons[i].bad_values, 0);
        if (r->cons[i].order_violations)
            fail_msg("consumer %d saw %llu per-(producer, channel) order "
                     "violations",
                     i, (unsigned long long)r->cons[i].order_violations);
        got += r->cons[i].count;
        free(r->cons[i].next);
    }
    assert_int_equal(sent, total);
    assert_int_equal(got, total);
    for (uint64_t id = 0; id < total; id++) {
        if (atomic_load(&r->received[id]) != 1)
            fail_msg("message %llu received %u times", (unsigned long long)id,
                     atomic_load(&r->received[id]));
        if (atomic_load(&r->released[id]) != ((id % r->per) & 1))
            fail_msg("message %llu released %u times", (unsigned long long)id,
                     atomic_load(&r->released[id]));
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(lch_channel_len(r->chs[i]), 0);
        lch_channel_unref(r->chs[i]);
    }
    tu_payload_track(NULL, 0);
    free(r->received);
    free(r->released);
    free(r);
}

static void test_select_stress_recv(void **state)
{
    (void)state;
    const size_t ns[] = {1, 2, 7, 64};
    for (size_t i = 0; i < 4; i++) {
        select_stress(ns[i], 4, 0, false);   /* bounded, park at once */
        select_stress(ns[i], 0, -1, false);  /* unbounded, default spin */
        select_stress(ns[i], 1, -1, false);  /* capacity 1 */
    }
}

static void test_select_stress_send(void **state)
{
    (void)state;
    const size_t ns[] = {1, 2, 7, 64};
    for (size_t i = 0; i < 4; i++) {
        select_stress(ns[i], 2, 0, true);
        select_stress(ns[i], 1, -1, true);
    }
}

int main(int argc, char **argv)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        TU_TEST(test_select_bad_args),
        TU_TEST(test_select_ready_case),
        TU_TEST(test_select_close),
        TU_TEST(test_select_enomem),
        TU_TEST(test_select_fair),
        TU_TEST(test_select_one_wake),
        TU_TEST(test_select_no_swallowed_wake),
        TU_TEST(test_select_eintr),
        TU_TEST(test_select_stress_recv),
        TU_TEST(test_select_stress_send),
    };
    return tu_run("select", tests, sizeof tests / sizeof tests[0], argc, argv);
}
