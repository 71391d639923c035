/* tests/test_close.c: close and close_now against blocked and running
 * senders and receivers.
 *
 * - Parked receivers and senders (single and batch, forever and with a long
 *   timeout) are all woken by close/close_now and get LCH_ECLOSED; a woken
 *   sender still owns its value.
 * - Races: producers send payloads until LCH_ECLOSED while consumers receive,
 *   and the main thread closes at a varying moment. Every payload is then
 *   released exactly once (by a consumer, by close_now, or by the producer
 *   whose send failed); a value whose send failed is never received; with
 *   close everything sent is received exactly once; per-producer FIFO holds.
 * - Storm: the same race a thousand times on a ring of capacity 1 or 2 with
 *   fast int senders and receivers that park at once (spin_ns = 0), closed
 *   within about a millisecond; every receiver must return once the channel
 *   is closed and drained (none may stay parked or spinning).
 * - Concurrent closers: close and close_now from several threads at once.
 * - Close seen through a sender: a thread whose send failed with
 *   LCH_ECLOSED then finds the (empty) channel closed on its next receive,
 *   never merely empty, on both engines (the ring's receivers read a hint
 *   in their own position word before the producers' word). */
#include "testutil.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_W = 8 };


/* ---- parked waiters woken by close --------------------------------------- */

typedef struct waiter {
    lch_channel *ch;
    bool batch;
    bool send;
    int64_t timeout;
    uint64_t id;
    int rc;
    size_t n;              /* batch count reported */
    lch_value got;         /* receivers: what recv left in *out */
    bool still_owned;      /* senders: value intact after the failed send */
    _Atomic bool entered;  /* about to call into libchan */
    char pad[64];
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    if (w->send) {
        lch_value v = lch_value_object(tu_payload_new(w->id, 0, w->id));
        if (v.u.obj == NULL) {
            w->rc = LCH_ENOMEM;
            return NULL;
        }
        atomic_store(&w->entered, true);
        w->n = 99;
        if (w->batch)
            w->rc = lch_channel_send_batch(w->ch, &v, 1, &w->n, w->timeout);
        else
            w->rc = lch_channel_send(w->ch, v, w->timeout);
        if (w->rc != LCH_OK) {
            tu_payload *p = tu_payload_get(v.u.obj);
            w->still_owned = p != NULL && p->id == w->id &&
                             lch_object_refcount(v.u.obj) == 1;
            lch_value_release(&v);
        }
    } else {
        w->got = lch_value_int(-1);
        w->n = 99;
        atomic_store(&w->entered, true);
        if (w->batch)
            w->rc = lch_channel_recv_batch(w->ch, &w->got, 1, &w->n,
                                           w->timeout);
        else
            w->rc = lch_channel_recv(w->ch, &w->got, w->timeout);
        if (w->rc == LCH_OK)
            lch_value_release(&w->got);
    }
    return NULL;
}

typedef struct wake_cfg {
    bool send;
    bool close_now;
    bool batch;
    bool timed;
} wake_cfg;

static void run_close_wakes(const wake_cfg *cfg)
{
    enum { NW = 4, CAP = 2 };
    static _Atomic uint32_t released[NW + CAP];
    for (int i = 0; i < NW + CAP; i++)
        atomic_store(&released[i], 0);
    tu_payload_track(released, NW + CAP);

    lch_channel *ch = tu_channel(cfg->send ? CAP : 0, 0);
    if (cfg->send) /* fill it: ids NW.. are queued */
        for (uint64_t i = 0; i < CAP; i++)
            assert_rc(lch_channel_send(
                          ch, lch_value_object(tu_payload_new(NW + i, 0, i)),
                          LCH_NOWAIT),
                      LCH_OK);

    waiter ws[NW];
    pthread_t ts[NW];
    uint64_t waits0 = tu_counters().futex_waits;
    for (int i = 0; i < NW; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].ch = ch;
        ws[i].send = cfg->send;
        ws[i].batch = cfg->batch;
        ws[i].timeout = cfg->timed ? 3600 * TU_S : LCH_FOREVER;
        ws[i].id = (uint64_t)i;
    }
    tu_spawn_n(ts, NW, waiter_main, ws, sizeof(waiter));
    /* Give them time to park (spin_ns = 0: each parks at once). */
    bool parked = tu_wait_futex_waits(waits0 + NW);
    tu_sleep_ns(5 * TU_MS);

    if (cfg->close_now) {
        assert_rc(lch_channel_close_now(ch), LCH_OK);
        /* The queued values are released when close_now returns. */
        if (cfg->send)
            for (int i = NW; i < NW + CAP; i++)
                assert_int_equal(atomic_load(&released[i]), 1);
        size_t len = lch_channel_len(ch);
        if (len != 0)
            fail_msg("len %zu after close_now returned (%s%s%s)", len,
                     cfg->send ? "parked senders" : "parked receivers",
                     cfg->batch ? ", batch" : "", cfg->timed ? ", timed" : "");
    } else {
        assert_rc(lch_channel_close(ch), LCH_OK);
    }
    tu_join_n(ts, NW);

    for (int i = 0; i < NW; i++) {
        if (ws[i].rc != LCH_ECLOSED)
            fail_msg("%s %d woken by %s returned %s, expected ECLOSED",
                     cfg->send ? "sender" : "receiver", i,
                     cfg->close_now ? "close_now" : "close",
                     lch_err_name(ws[i].rc));
        if (cfg->batch)
            assert_int_equal(ws[i].n, 0);
        if (cfg->send) {
            assert_true(ws[i].still_owned);
        } else if (cfg->batch) { /* out[] is left untouched */
            assert_int_equal(ws[i].got.kind, LCH_INT);
            assert_int_equal(ws[i].got.u.i, -1);
        } else { /* *out is None on error */
            assert_int_equal(ws[i].got.kind, LCH_NONE);
        }
    }
    /* Queued values: still receivable after close, gone after close_now. */
    lch_value out = lch_value_none();
    if (cfg->send && !cfg->close_now) {
        for (uint64_t i = 0; i < CAP; i++) {
            assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
            tu_payload *p = tu_payload_get(out.u.obj);
            assert_non_null(p);
            assert_int_equal(p->id, NW + i);
            lch_value_release(&out);
        }
    }
    assert_rc(lch_channel_recv(ch, &out, LCH_FOREVER), LCH_ECLOSED);
    lch_channel_unref(ch);
    for (int i = 0; i < (cfg->send ? NW + CAP : 0); i++)
        assert_int_equal(atomic_load(&released[i]), 1);
    tu_payload_track(NULL, 0);
    if (!parked)
        print_message("[ NOTE     ] waiters never all reached futex_wait\n");
}

static void test_close_wakes(void **state)
{
    (void)state;
    for (int bits = 0; bits < 16; bits++) {
        wake_cfg cfg = {.send = bits & 1, .close_now = bits & 2,
                        .batch = bits & 4, .timed = bits & 8};
        run_close_wakes(&cfg);
    }
}

/* ---- close racing with traffic ------------------------------------------- */

enum { MODE_BLOCK, MODE_TRY, MODE_TIMED, N_MODES };

typedef struct race_cfg {
    int producers, consumers;
    bool close_now;
    char name[64];
    /* storm: every iteration bounded (capacity 1 or 2), blocking forever
     * with spin_ns = 0, int messages (fast senders), closed after 0-1.2 ms,
     * and many more iterations: close racing with receivers parking on a
     * nearly empty ring while senders are mid-publish. */
    bool storm;
} race_cfg;

typedef struct race race;

typedef struct rworker {
    race *r;
    int id;
    uint64_t sent;     /* producer: values the channel took */
    uint64_t made;     /* producer: payloads created */
    uint64_t received; /* consumer */
    uint64_t fifo_violations;
    uint64_t bad_values;
    int bad_rc;
    uint64_t next_seq[MAX_W];
    char pad[64];
} rworker;

struct race {
    const race_cfg *cfg;
    lch_channel *ch;
    int mode;
    bool batch;
    int64_t timeout;
    uint64_t limit; /* per producer */
    _Atomic uint64_t total_received;
    _Atomic int producers_finished;
    _Atomic int consumers_finished;
    _Atomic uint32_t *received; /* [producer * limit + seq] */
    _Atomic uint32_t *released;
    tu_barrier start;
    rworker prod[MAX_W], cons[MAX_W];
};

static bool race_retry(race *r, int rc)
{
    if ((rc == LCH_EAGAIN && r->mode == MODE_TRY) ||
        (rc == LCH_ETIMEDOUT && r->mode == MODE_TIMED)) {
        if (r->mode == MODE_TRY)
            sched_yield();
        return true;
    }
    return false;
}

static void race_produce(rworker *w);

static void *race_producer(void *arg)
{
    rworker *w = arg;
    race_produce(w);
    atomic_fetch_add_explicit(&w->r->producers_finished, 1,
                              memory_order_release);
    return NULL;
}

static void race_produce(rworker *w)
{
    race *r = w->r;
    uint64_t p = (uint64_t)w->id;
    lch_value buf[8];
    tu_barrier_wait(&r->start);
    uint64_t s = 0;
    while (s < r->limit) {
        size_t k = r->batch ? 1 + (size_t)(s % 5) : 1;
        if (k > r->limit - s)
            k = (size_t)(r->limit - s);
        for (size_t i = 0; i < k; i++) {
            uint64_t id = p * r->limit + s + i;
            if (r->cfg->storm) { /* ints: as fast as senders can go */
                buf[i] = lch_value_int((int64_t)id);
                buf[i].tag = (uint32_t)p;
                w->made++;
                continue;
            }
            lch_object *o = tu_payload_new(id, p, s + i);
            if (o == NULL) {
                w->bad_rc = LCH_ENOMEM;
                for (size_t j = 0; j < i; j++)
                    lch_value_release(&buf[j]);
                return;
            }
            buf[i] = lch_value_object(o);
            w->made++;
        }
        size_t off = 0;
        while (off < k) {
            size_t n = 1;
            int rc = r->batch ? lch_channel_send_batch(r->ch, buf + off,
                                                       k - off, &n, r->timeout)
                              : lch_channel_send(r->ch, buf[off], r->timeout);
            if (rc == LCH_OK) {
                off += n;
                w->sent += n;
            } else if (!race_retry(r, rc)) {
                if (rc != LCH_ECLOSED)
                    w->bad_rc = rc;
                for (size_t j = off; j < k; j++)
                    lch_value_release(&buf[j]); /* still ours */
                return;
            }
        }
        s += k;
    }
}

static void race_check(rworker *w, lch_value *v)
{
    race *r = w->r;
    tu_payload *p = v->kind == LCH_OBJECT ? tu_payload_get(v->u.obj) : NULL;
    tu_payload ip; /* an int message, unpacked */
    if (r->cfg->storm && v->kind == LCH_INT && v->u.i >= 0) {
        ip.id = (uint64_t)v->u.i;
        ip.producer = ip.id / r->limit;
        ip.seq = ip.id % r->limit;
        p = v->tag == ip.producer ? &ip : NULL;
    }
    if (p == NULL || p->producer >= (uint64_t)r->cfg->producers ||
        p->seq >= r->limit || p->id != p->producer * r->limit + p->seq) {
        w->bad_values++;
    } else {
        atomic_fetch_add_explicit(&r->received[p->id], 1,
                                  memory_order_relaxed);
        if (p->seq < w->next_seq[p->producer])
            w->fifo_violations++;
        w->next_seq[p->producer] = p->seq + 1;
        w->received++;
        atomic_fetch_add_explicit(&r->total_received, 1,
                                  memory_order_relaxed);
    }
    lch_value_release(v);
}

static void race_consume(rworker *w);

static void *race_consumer(void *arg)
{
    rworker *w = arg;
    race_consume(w);
    atomic_fetch_add(&w->r->consumers_finished, 1);
    return NULL;
}

static void race_consume(rworker *w)
{
    race *r = w->r;
    lch_value buf[8];
    tu_barrier_wait(&r->start);
    for (;;) {
        size_t n = 1;
        int rc = r->batch ? lch_channel_recv_batch(r->ch, buf, 8, &n,
                                                   r->timeout)
                          : lch_channel_recv(r->ch, &buf[0], r->timeout);
        if (rc == LCH_OK) {
            for (size_t i = 0; i < n; i++)
                race_check(w, &buf[i]);
        } else if (rc == LCH_ECLOSED) {
            return;
        } else if (!race_retry(r, rc)) {
            w->bad_rc = rc;
            return;
        }
    }
}

static bool producers_done(race *r)
{
    return atomic_load_explicit(&r->producers_finished, memory_order_acquire) ==
           r->cfg->producers;
}

static void race_iteration(race *r, unsigned iter)
{
    const race_cfg *cfg = r->cfg;
    int P = cfg->producers, C = cfg->consumers;
    size_t cap = iter % 2 ? 0 : 2;
    r->mode = (int)((iter / 2) % N_MODES);
    r->batch = (iter / (2 * N_MODES)) % 2;
    if (cfg->storm) {
        cap = 1 + iter % 2;
        r->mode = MODE_BLOCK;
        r->batch = (iter / 2) % 2;
    }
    r->timeout = r->mode == MODE_TRY     ? LCH_NOWAIT
                 : r->mode == MODE_TIMED ? 50000
                                         : LCH_FOREVER;
    uint64_t n_ids = (uint64_t)P * r->limit;
    memset((void *)r->received, 0, n_ids * sizeof *r->received);
    memset((void *)r->released, 0, n_ids * sizeof *r->released);
    atomic_store(&r->total_received, 0);
    atomic_store(&r->producers_finished, 0);
    atomic_store(&r->consumers_finished, 0);
    tu_payload_track(r->released, n_ids);
    r->ch = tu_channel(cap, r->mode == MODE_BLOCK && !cfg->storm ? -1 : 0);
    for (int i = 0; i < P; i++)
        r->prod[i] = (rworker){.r = r, .id = i};
    for (int i = 0; i < C; i++)
        r->cons[i] = (rworker){.r = r, .id = i};

    pthread_t pt[MAX_W], ct[MAX_W];
    tu_barrier_init(&r->start, (unsigned)(P + C + 1));
    tu_spawn_n(ct, (size_t)C, race_consumer, r->cons, sizeof(rworker));
    tu_spawn_n(pt, (size_t)P, race_producer, r->prod, sizeof(rworker));
    tu_barrier_wait(&r->start);

    /* Close after a varying amount of traffic (sometimes at once). */
    if (cfg->storm) {
        tu_sleep_ns((int64_t)(iter % 4) * 400000);
    } else {
        uint64_t threshold = (iter * 97u) % 600u;
        int64_t deadline = tu_now_ns() + tu_patience_ns();
        while (atomic_load_explicit(&r->total_received,
                                    memory_order_relaxed) < threshold &&
               !producers_done(r) && tu_now_ns() < deadline)
            sched_yield();
    }
    int rc_close = cfg->close_now ? lch_channel_close_now(r->ch)
                                  : lch_channel_close(r->ch);
    /* close_now: when it returns the channel is empty, and stays so (sends
     * now fail). */
    size_t len_after = lch_channel_len(r->ch);
    tu_join_n(pt, (size_t)P);
    char what[128];
    snprintf(what, sizeof what,
             "iter %u (capacity %zu, mode %d, batch %d): consumers after %s "
             "(len %zu, closed %d)",
             iter, cap, r->mode, (int)r->batch,
             cfg->close_now ? "close_now" : "close", lch_channel_len(r->ch),
             lch_channel_is_closed(r->ch));
    tu_join_n_within(ct, (size_t)C, &r->consumers_finished, what);
    tu_barrier_destroy(&r->start);

    assert_rc(rc_close, LCH_OK);
    if (cfg->close_now)
        assert_int_equal(len_after, 0);
    uint64_t sent = 0, received = 0;
    for (int i = 0; i < P; i++) {
        if (r->prod[i].bad_rc)
            fail_msg("iter %u: producer %d got %s", iter, i,
                     lch_err_name(r->prod[i].bad_rc));
        sent += r->prod[i].sent;
    }
    for (int i = 0; i < C; i++) {
        const rworker *w = &r->cons[i];
        if (w->bad_rc)
            fail_msg("iter %u: consumer %d got %s", iter, i,
                     lch_err_name(w->bad_rc));
        if (w->bad_values || w->fifo_violations)
            fail_msg("iter %u: consumer %d: %llu bad values, %llu FIFO "
                     "violations",
                     iter, i, (unsigned long long)w->bad_values,
                     (unsigned long long)w->fifo_violations);
        received += w->received;
    }
    for (int p = 0; p < P; p++) {
        for (uint64_t s = 0; s < r->limit; s++) {
            uint64_t id = (uint64_t)p * r->limit + s;
            uint32_t got = atomic_load(&r->received[id]);
            uint32_t rel = atomic_load(&r->released[id]);
            bool was_sent = s < r->prod[p].sent;
            bool was_made = s < r->prod[p].made;
            if (rel != (was_made && !cfg->storm ? 1u : 0u))
                fail_msg("iter %u: payload (%d, %llu) released %u times "
                         "(sent %d)",
                         iter, p, (unsigned long long)s, rel, was_sent);
            if (got > 1 || (!was_sent && got != 0))
                fail_msg("iter %u: payload (%d, %llu) received %u times "
                         "(sent %d)",
                         iter, p, (unsigned long long)s, got, was_sent);
            if (!cfg->close_now && was_sent && got != 1)
                fail_msg("iter %u: sent payload (%d, %llu) lost by close",
                         iter, p, (unsigned long long)s);
        }
    }
    if (!cfg->close_now)
        assert_int_equal(received, sent);
    else
        assert_true(received <= sent);
    assert_int_equal(lch_channel_len(r->ch), 0);
    lch_value out = lch_value_none();
    assert_rc(lch_channel_recv(r->ch, &out, LCH_NOWAIT), LCH_ECLOSED);
    lch_channel_unref(r->ch);
    r->ch = NULL;
    tu_payload_track(NULL, 0);
}

static void test_close_race(void **state)
{
    const race_cfg *cfg = *state;
    race *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->cfg = cfg;
    r->limit = tu_count(3000, 300);
    uint64_t n_ids = (uint64_t)cfg->producers * r->limit;
    r->received = calloc(n_ids, sizeof *r->received);
    r->released = calloc(n_ids, sizeof *r->released);
    assert_non_null(r->received);
    assert_non_null(r->released);
    unsigned iters = (unsigned)(cfg->storm ? tu_count(1000, 100)
                                           : tu_count(144, 24));
    int64_t t0 = tu_now_ns();
    for (unsigned i = 0; i < iters; i++)
        race_iteration(r, i);
    print_message("[ INFO     ] %s: %u iterations in %.1f ms\n", cfg->name,
                  iters, (double)(tu_now_ns() - t0) / 1e6);
    free(r->received);
    free(r->released);
    free(r);
}

/* ---- concurrent closers --------------------------------------------------- */

typedef struct closer {
    lch_channel *ch;
    tu_barrier *start;
    int kind; /* 0 close, 1 close_now, 2 recv until closed, 3 send until */
    int rc;
    uint64_t ops;
} closer;

static void *closer_main(void *arg)
{
    closer *c = arg;
    tu_barrier_wait(c->start);
    switch (c->kind) {
    case 0:
        c->rc = lch_channel_close(c->ch);
        break;
    case 1:
        c->rc = lch_channel_close_now(c->ch);
        break;
    case 2:
        for (;;) {
            lch_value v = lch_value_none();
            int rc = lch_channel_recv(c->ch, &v, LCH_FOREVER);
            if (rc != LCH_OK) {
                c->rc = rc;
                break;
            }
            lch_value_release(&v);
            c->ops++;
        }
        break;
    default:
        for (;;) {
            lch_value v = lch_value_object(tu_payload_new(0, 0, c->ops));
            int rc = lch_channel_send(c->ch, v, LCH_FOREVER);
            if (rc != LCH_OK) {
                lch_value_release(&v);
                c->rc = rc;
                break;
            }
            c->ops++;
        }
        break;
    }
    return NULL;
}

static void test_concurrent_closers(void **state)
{
    (void)state;
    enum { NC = 6 };
    unsigned iters = (unsigned)tu_count(200, 20);
    for (unsigned it = 0; it < iters; it++) {
        lch_channel *ch = tu_channel(it % 2 ? 0 : 3, it % 3 ? -1 : 0);
        tu_barrier start;
        tu_barrier_init(&start, NC + 1);
        closer cs[NC];
        pthread_t ts[NC];
        const int kinds[NC] = {0, 1, 0, 1, 2, 3};
        for (int i = 0; i < NC; i++)
            cs[i] = (closer){.ch = ch, .start = &start, .kind = kinds[i],
                             .rc = 1};
        /* Rotate which closers run, to vary the races. */
        if (it % 4 == 1)
            cs[1].kind = 0, cs[3].kind = 0; /* close only */
        if (it % 4 == 2)
            cs[0].kind = 1, cs[2].kind = 1; /* close_now only */
        tu_spawn_n(ts, NC, closer_main, cs, sizeof(closer));
        tu_barrier_wait(&start);
        tu_join_n(ts, NC);
        tu_barrier_destroy(&start);
        for (int i = 0; i < NC; i++) {
            if (cs[i].kind <= 1)
                assert_rc(cs[i].rc, LCH_OK);
            else
                assert_rc(cs[i].rc, LCH_ECLOSED);
        }
        assert_true(lch_channel_is_closed(ch));
        /* What the sender got in and the receiver did not take is either
         * discarded by close_now or still queued (released at unref). */
        assert_true(cs[4].ops <= cs[5].ops);
        lch_channel_unref(ch);
    }
}

typedef struct seen_arg {
    lch_channel *ch;
    tu_barrier *start;
    int recv_rc; /* what the receive after the failed send returned */
    unsigned sends; /* sends that went through before the close */
    bool lost;      /* a value we sent could not be taken back */
} seen_arg;

static void *seen_main(void *arg)
{
    seen_arg *a = arg;
    tu_barrier_wait(a->start);
    lch_value v;
    int rc;
    /* Send and take back at once, so the ring is empty whenever the close
     * can land, until a send fails. */
    while ((rc = lch_channel_send(a->ch, lch_value_int(1), LCH_NOWAIT)) ==
           LCH_OK) {
        a->sends++;
        if (lch_channel_recv(a->ch, &v, LCH_NOWAIT) != LCH_OK) {
            a->lost = true;
            return NULL;
        }
    }
    a->recv_rc = rc != LCH_ECLOSED ? rc : lch_channel_recv(a->ch, &v,
                                                            LCH_NOWAIT);
    return NULL;
}

static void test_close_seen_through_sender(void **state)
{
    (void)state;
    unsigned iters = (unsigned)tu_count(2000, 200);
    for (unsigned it = 0; it < iters; it++) {
        /* capacities 1 (two slots), 2, 3 (no mask), and unbounded */
        static const size_t caps[] = {1, 2, 3, 0};
        lch_channel *ch = tu_channel(caps[it % 4], 0);
        tu_barrier start;
        tu_barrier_init(&start, 2);
        seen_arg a = {.ch = ch, .start = &start};
        pthread_t t;
        tu_spawn(&t, seen_main, &a);
        tu_barrier_wait(&start);
        for (volatile unsigned i = 0; i < (it % 64) * 16; i++)
            ; /* vary the moment */
        assert_rc(lch_channel_close(ch), LCH_OK);
        tu_join_n(&t, 1);
        tu_barrier_destroy(&start);
        assert_false(a.lost);
        if (a.recv_rc != LCH_ECLOSED)
            fail_msg("capacity %zu, after %u sends: the receive after a "
                     "send saw LCH_ECLOSED returned %s",
                     caps[it % 4], a.sends, lch_err_name(a.recv_rc));
        lch_channel_unref(ch);
    }
}

static race_cfg race_cfgs[] = {
    {1, 1, false, "race_1x1_close", false},
    {1, 1, true, "race_1x1_close_now", false},
    {2, 2, false, "race_2x2_close", false},
    {2, 2, true, "race_2x2_close_now", false},
    {4, 4, false, "race_4x4_close", false},
    {4, 4, true, "race_4x4_close_now", false},
    {8, 1, false, "race_8x1_close", false},
    {8, 1, true, "race_8x1_close_now", false},
    /* many threads per side: unbounded blocks recycled while closing */
    {1, 8, false, "race_1x8_close", false},
    {8, 8, true, "race_8x8_close_now", false},
    {4, 4, false, "storm_4x4_close", true},
    {4, 4, true, "storm_4x4_close_now", true},
};

int main(int argc, char **argv)
{
    tu_init();
    enum { NR = sizeof race_cfgs / sizeof race_cfgs[0] };
    struct CMUnitTest tests[NR + 3];
    size_t n = 0;
    tests[n++] = (struct CMUnitTest)TU_TEST(test_close_wakes);
    tests[n++] = (struct CMUnitTest)TU_TEST(test_concurrent_closers);
    tests[n++] = (struct CMUnitTest)TU_TEST(test_close_seen_through_sender);
    for (size_t i = 0; i < NR; i++)
        tests[n++] = (struct CMUnitTest){
            .name = race_cfgs[i].name,
            .test_func = test_close_race,
            .setup_func = tu_setup,
            .teardown_func = tu_teardown,
            .initial_state = &race_cfgs[i],
        };
    return tu_run("close", tests, n, argc, argv);
}
