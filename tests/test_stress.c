/* tests/test_stress.c: producers x consumers on one channel.
 *
 * One test per configuration of a matrix: topology (1x1, 2x2, 4x4, 8x1),
 * capacity (small bounded, to force blocking, or unbounded), waiting mode
 * (blocking with the default spin, blocking that parks at once, try-variants
 * that retry on LCH_EAGAIN, small timeouts that retry on LCH_ETIMEDOUT) and
 * single or batch calls. Every message carries (producer, sequence); odd
 * sequence numbers travel as refcounted payload objects, even ones as ints.
 * Consumers record; the main thread then checks that every message was
 * received exactly once, in per-producer FIFO order, that the counts are
 * conserved (sent = received, nothing left queued) and that every payload
 * was released exactly once.
 *
 * Some bounded configurations start their ring just before position 2^29,
 * where the 29 position bits a ring slot keeps wrap around.
 *
 * Plus a request/reply test that sends channels through a channel.
 *
 * Usage: test_stress [FILTER...] runs the tests whose name contains a filter,
 * e.g. "_1x1_" or "cap1". */
#include "testutil.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_P = 8, MAX_C = 8, MAX_BATCH = 16 };

typedef enum wait_mode {
    M_BLOCK,  /* LCH_FOREVER, default spin */
    M_PARK,   /* LCH_FOREVER, spin_ns = 0: every wait parks */
    M_TRY,    /* LCH_NOWAIT, retry on LCH_EAGAIN */
    M_TIMED,  /* 100 us timeouts, spin_ns = 0, retry on LCH_ETIMEDOUT */
    M_COUNT
} wait_mode;

static const char *const mode_names[M_COUNT] = {"block", "park", "try",
                                                "timed"};

typedef struct stress_cfg {
    int producers, consumers;
    size_t capacity; /* 0 = unbounded */
    wait_mode mode;
    bool batch;
    bool wrap; /* start the ring's positions so that the run crosses 2^29 */
    char name[64];
} stress_cfg;

#define TAG_BASE 0x57000000u
#define INT_SHIFT 40

typedef struct run run;

typedef struct worker {
    run *r;
    int id;
    uint64_t count;           /* messages sent or received */
    uint64_t retries;         /* EAGAIN / ETIMEDOUT seen */
    int bad_rc;               /* first unexpected result, or 0 */
    uint64_t bad_values;      /* malformed message, wrong tag or range */
    uint64_t fifo_violations; /* a producer's sequence went backwards */
    uint64_t next_seq[MAX_P]; /* consumer: lowest acceptable next seq */
    char pad[64];             /* keep workers off each other's lines */
} worker;

struct run {
    const stress_cfg *cfg;
    lch_channel *ch;
    uint64_t per_producer;
    int64_t timeout;
    _Atomic uint32_t *received; /* per message id */
    _Atomic uint32_t *released; /* per message id, by the payload destroy */
    tu_barrier start;
    _Atomic int producers_finished;
    _Atomic int consumers_finished;
    _Atomic uint64_t progress; /* messages received so far, for the watchdog */
    worker prod[MAX_P];
    worker cons[MAX_C];
};

static uint64_t msg_id(const run *r, uint64_t p, uint64_t s)
{
    return p * r->per_producer + s;
}

static bool retryable(const run *r, int rc)
{
    return (rc == LCH_EAGAIN && r->cfg->mode == M_TRY) ||
           (rc == LCH_ETIMEDOUT && r->cfg->mode == M_TIMED);
}

static void record_rc(worker *w, int rc)
{
    if (w->bad_rc == 0)
        w->bad_rc = rc;
}

static bool make_msg(run *r, uint64_t p, uint64_t s, lch_value *out)
{
    if (s & 1) {
        lch_object *obj = tu_payload_new(msg_id(r, p, s), p, s);
        if (obj == NULL)
            return false;
        *out = lch_value_object(obj);
    } else {
        *out = lch_value_int((int64_t)((p << INT_SHIFT) | s));
    }
    out->tag = TAG_BASE + (uint32_t)p;
    return true;
}

static void produce(worker *w);

static void *producer_main(void *arg)
{
    worker *w = arg;
    produce(w);
    atomic_fetch_add(&w->r->producers_finished, 1);
    return NULL;
}

static void produce(worker *w)
{
    run *r = w->r;
    uint64_t p = (uint64_t)w->id, per = r->per_producer;
    lch_value buf[MAX_BATCH];
    tu_barrier_wait(&r->start);
    uint64_t s = 0, calls = 0;
    while (s < per) {
        size_t k = r->cfg->batch ? 1 + (size_t)(calls++ % 8) : 1;
        if (k > per - s)
            k = (size_t)(per - s);
        for (size_t i = 0; i < k; i++) {
            if (!make_msg(r, p, s + i, &buf[i])) {
                record_rc(w, LCH_ENOMEM);
                for (size_t j = 0; j < i; j++)
                    lch_value_release(&buf[j]);
                return;
            }
        }
        size_t off = 0;
        while (off < k) {
            int rc;
            size_t n = 1;
            if (r->cfg->batch)
                rc = lch_channel_send_batch(r->ch, buf + off, k - off, &n,
                                            r->timeout);
            else
                rc = lch_channel_send(r->ch, buf[off], r->timeout);
            if (rc == LCH_OK) {
                if (n == 0 || n > k - off) {
                    record_rc(w, LCH_EINVAL); /* impossible count */
                    return;
                }
                off += n;
                w->count += n;
            } else if (retryable(r, rc)) {
                w->retries++;
                if (r->cfg->mode == M_TRY)
                    sched_yield();
            } else {
                record_rc(w, rc);
                for (size_t j = off; j < k; j++)
                    lch_value_release(&buf[j]);
                return;
            }
        }
        s += k;
    }
}

/* Wait for the producers, failing fast (rather than at the ctest timeout)
 * if no message is received for the whole patience period: with everything
 * parked and nothing moving, a wake-up was lost. */
static void join_producers(run *r, pthread_t *ts, size_t n)
{
    uint64_t seen = 0;
    int64_t deadline = tu_now_ns() + tu_patience_ns();
    while ((size_t)atomic_load(&r->producers_finished) < n) {
        uint64_t now_seen = atomic_load_explicit(&r->progress,
                                                 memory_order_relaxed);
        if (now_seen != seen) {
            seen = now_seen;
            deadline = tu_now_ns() + tu_patience_ns();
        } else if (tu_now_ns() > deadline) {
            fail_msg("no message received for %.0f s (%llu so far, %zu "
                     "queued): a wake-up was lost",
                     (double)tu_patience_ns() / 1e9, (unsigned long long)seen,
                     lch_channel_len(r->ch));
        }
        tu_sleep_ns(TU_MS);
    }
    tu_join_n(ts, n);
}

static void check_msg(worker *w, lch_value *v)
{
    run *r = w->r;
    uint64_t p, s;
    if (v->kind == LCH_INT) {
        p = (uint64_t)v->u.i >> INT_SHIFT;
        s = (uint64_t)v->u.i & ((UINT64_C(1) << INT_SHIFT) - 1);
        if (s & 1)
            goto bad;
    } else if (v->kind == LCH_OBJECT) {
        tu_payload *pl = tu_payload_get(v->u.obj);
        if (pl == NULL)
            goto bad;
        p = pl->producer;
        s = pl->seq;
        if (!(s & 1) || p >= MAX_P || pl->id != msg_id(r, p, s))
            goto bad;
    } else {
        goto bad;
    }
    if (p >= (uint64_t)r->cfg->producers || s >= r->per_producer ||
        v->tag != TAG_BASE + (uint32_t)p)
        goto bad;
    atomic_fetch_add_explicit(&r->received[msg_id(r, p, s)], 1,
                              memory_order_relaxed);
    if (s < w->next_seq[p])
        w->fifo_violations++;
    w->next_seq[p] = s + 1;
    w->count++;
    /* Relaxed: only the watchdog reads it, to see that things move. */
    atomic_fetch_add_explicit(&r->progress, 1, memory_order_relaxed);
    lch_value_release(v);
    return;
bad:
    w->bad_values++;
    lch_value_release(v);
}

static void consume(worker *w);

static void *consumer_main(void *arg)
{
    worker *w = arg;
    consume(w);
    atomic_fetch_add(&w->r->consumers_finished, 1);
    return NULL;
}

static void consume(worker *w)
{
    run *r = w->r;
    lch_value buf[MAX_BATCH];
    tu_barrier_wait(&r->start);
    for (;;) {
        int rc;
        size_t n = 1;
        if (r->cfg->batch)
            rc = lch_channel_recv_batch(r->ch, buf, MAX_BATCH, &n, r->timeout);
        else
            rc = lch_channel_recv(r->ch, &buf[0], r->timeout);
        if (rc == LCH_OK) {
            if (n == 0 || n > MAX_BATCH) {
                record_rc(w, LCH_EINVAL);
                return;
            }
            for (size_t i = 0; i < n; i++)
                check_msg(w, &buf[i]);
        } else if (rc == LCH_ECLOSED) {
            return;
        } else if (retryable(r, rc)) {
            w->retries++;
            if (r->cfg->mode == M_TRY)
                sched_yield();
        } else {
            record_rc(w, rc);
            return;
        }
    }
}

static void assert_workers_ok(const worker *ws, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        if (ws[i].bad_rc != 0)
            fail_msg("%s %d got unexpected %s", what, i,
                     lch_err_name(ws[i].bad_rc));
        if (ws[i].bad_values != 0)
            fail_msg("%s %d received %llu malformed values", what, i,
                     (unsigned long long)ws[i].bad_values);
        if (ws[i].fifo_violations != 0)
            fail_msg("%s %d saw %llu per-producer FIFO violations", what, i,
                     (unsigned long long)ws[i].fifo_violations);
    }
}

static void test_stress(void **state)
{
    const stress_cfg *cfg = *state;
    int P = cfg->producers, C = cfg->consumers;
    run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->cfg = cfg;
    r->per_producer = tu_count(60000, 400) / (uint64_t)P;
    uint64_t total = r->per_producer * (uint64_t)P;
    r->received = calloc(total, sizeof *r->received);
    r->released = calloc(total, sizeof *r->released);
    assert_non_null(r->received);
    assert_non_null(r->released);
    tu_payload_track(r->released, total);

    lch_channel_opts opts = {
        .capacity = cfg->capacity,
        .name = NULL,
        .spin_ns = (cfg->mode == M_PARK || cfg->mode == M_TIMED) ? 0 : -1,
    };
    r->timeout = cfg->mode == M_TRY     ? LCH_NOWAIT
                 : cfg->mode == M_TIMED ? 100000
                                        : LCH_FOREVER;
    assert_rc(lch_channel_create_opts(&r->ch, &opts), LCH_OK);
    /* A ring slot keeps 29 bits of its position: cross that wrap halfway. */
    if (cfg->wrap)
        assert_rc(lch_debug_channel_advance(r->ch,
                                            ((uint64_t)1 << 29) - total / 2),
                  LCH_OK);

    pthread_t prod_t[MAX_P], cons_t[MAX_C];
    for (int i = 0; i < P; i++)
        r->prod[i] = (worker){.r = r, .id = i};
    for (int i = 0; i < C; i++)
        r->cons[i] = (worker){.r = r, .id = i};
    tu_barrier_init(&r->start, (unsigned)(P + C + 1));
    lch_debug_counters c0 = tu_counters();
    int64_t t0 = tu_now_ns();
    tu_spawn_n(cons_t, (size_t)C, consumer_main, r->cons, sizeof(worker));
    tu_spawn_n(prod_t, (size_t)P, producer_main, r->prod, sizeof(worker));
    tu_barrier_wait(&r->start);
    join_producers(r, prod_t, (size_t)P);
    /* Everything is sent; close so consumers drain and stop. */
    assert_rc(lch_channel_close(r->ch), LCH_OK);
    tu_join_n_within(cons_t, (size_t)C, &r->consumers_finished,
                     "consumers after close");
    int64_t elapsed = tu_now_ns() - t0;
    lch_debug_counters c1 = tu_counters();
    tu_barrier_destroy(&r->start);

    assert_workers_ok(r->prod, P, "producer");
    assert_workers_ok(r->cons, C, "consumer");

    /* Conservation: every message sent, received, nothing left. */
    uint64_t sent = 0, received = 0, retries = 0;
    for (int i = 0; i < P; i++) {
        assert_int_equal(r->prod[i].count, r->per_producer);
        sent += r->prod[i].count;
        retries += r->prod[i].retries;
    }
    for (int i = 0; i < C; i++) {
        received += r->cons[i].count;
        retries += r->cons[i].retries;
    }
    assert_int_equal(sent, total);
    assert_int_equal(received, total);
    assert_int_equal(lch_channel_len(r->ch), 0);
    lch_value v = lch_value_int(1);
    assert_rc(lch_channel_recv(r->ch, &v, LCH_NOWAIT), LCH_ECLOSED);

    /* Exactly once, each; payloads released exactly once, ints never. */
    for (uint64_t id = 0; id < total; id++) {
        uint32_t got = atomic_load(&r->received[id]);
        uint32_t rel = atomic_load(&r->released[id]);
        uint64_t s = id % r->per_producer;
        if (got != 1)
            fail_msg("message (producer %llu, seq %llu) received %u times",
                     (unsigned long long)(id / r->per_producer),
                     (unsigned long long)s, got);
        if (rel != (s & 1))
            fail_msg("message (producer %llu, seq %llu) released %u times",
                     (unsigned long long)(id / r->per_producer),
                     (unsigned long long)s, rel);
    }
    lch_channel_unref(r->ch);
    tu_payload_track(NULL, 0);

    print_message("[ INFO     ] %s: %llu msgs in %.1f ms, %llu retries, "
                  "%llu futex waits, %llu wakes\n",
                  cfg->name, (unsigned long long)total, (double)elapsed / 1e6,
                  (unsigned long long)retries,
                  (unsigned long long)(c1.futex_waits - c0.futex_waits),
                  (unsigned long long)(c1.futex_wakes - c0.futex_wakes));
    free(r->received);
    free(r->released);
    free(r);
}

/* ---- channels through a channel ------------------------------------------ */

/* Clients send their reply channel, with the request number in the tag,
 * through one request channel; servers answer on the channel they received
 * and drop it. */
enum { CC_CLIENTS = 4, CC_SERVERS = 2 };

typedef struct cc_ctx {
    lch_channel *requests;
    uint64_t per_client;
    tu_barrier start;
    struct cc_worker {
        struct cc_ctx *ctx;
        int id;
        int bad_rc;
        uint64_t done;
        uint64_t wrong;
        char pad[64];
    } clients[CC_CLIENTS], servers[CC_SERVERS];
} cc_ctx;

static void *cc_server(void *arg)
{
    struct cc_worker *w = arg;
    tu_barrier_wait(&w->ctx->start);
    for (;;) {
        lch_value req = lch_value_none();
        int rc = lch_channel_recv(w->ctx->requests, &req, LCH_FOREVER);
        if (rc == LCH_ECLOSED)
            return NULL;
        if (rc != LCH_OK) {
            w->bad_rc = rc;
            return NULL;
        }
        lch_channel *reply = req.kind == LCH_OBJECT
                                 ? lch_channel_from_object(req.u.obj)
                                 : NULL;
        if (reply == NULL) {
            w->wrong++;
            lch_value_release(&req);
            continue;
        }
        rc = lch_channel_send(reply, lch_value_int(2 * (int64_t)req.tag),
                              LCH_FOREVER);
        if (rc != LCH_OK)
            w->bad_rc = rc;
        lch_value_release(&req); /* drops the server's reference */
        w->done++;
    }
}

static void *cc_client(void *arg)
{
    struct cc_worker *w = arg;
    cc_ctx *ctx = w->ctx;
    lch_channel *reply = NULL;
    int rc = lch_channel_create(&reply, 1);
    tu_barrier_wait(&ctx->start);
    if (rc != LCH_OK) {
        w->bad_rc = rc;
        return NULL;
    }
    for (uint64_t i = 0; i < ctx->per_client; i++) {
        rc = lch_channel_ref(reply);
        if (rc != LCH_OK)
            break;
        lch_value req = lch_value_object(lch_channel_object(reply));
        req.tag = (uint32_t)(w->id * 1000000 + (int)i);
        rc = lch_channel_send(ctx->requests, req, LCH_FOREVER);
        if (rc != LCH_OK) {
            lch_value_release(&req);
            break;
        }
        lch_value ans = lch_value_none();
        rc = lch_channel_recv(reply, &ans, LCH_FOREVER);
        if (rc != LCH_OK)
            break;
        if (ans.kind != LCH_INT || ans.u.i != 2 * (int64_t)req.tag)
            w->wrong++;
        w->done++;
    }
    if (rc != LCH_OK)
        w->bad_rc = rc;
    lch_channel_unref(reply);
    return NULL;
}

static void test_channels_through_channel(void **state)
{
    (void)state;
    cc_ctx *ctx = calloc(1, sizeof *ctx);
    assert_non_null(ctx);
    ctx->per_client = tu_count(4000, 100);
    lch_channel_opts opts = {.capacity = 2, .name = NULL, .spin_ns = -1};
    assert_rc(lch_channel_create_opts(&ctx->requests, &opts), LCH_OK);
    tu_barrier_init(&ctx->start, CC_CLIENTS + CC_SERVERS + 1);
    pthread_t ct[CC_CLIENTS], st[CC_SERVERS];
    for (int i = 0; i < CC_CLIENTS; i++)
        ctx->clients[i] = (struct cc_worker){.ctx = ctx, .id = i};
    for (int i = 0; i < CC_SERVERS; i++)
        ctx->servers[i] = (struct cc_worker){.ctx = ctx, .id = i};
    tu_spawn_n(st, CC_SERVERS, cc_server, ctx->servers,
               sizeof(struct cc_worker));
    tu_spawn_n(ct, CC_CLIENTS, cc_client, ctx->clients,
               sizeof(struct cc_worker));
    tu_barrier_wait(&ctx->start);
    tu_join_n(ct, CC_CLIENTS);
    assert_rc(lch_channel_close(ctx->requests), LCH_OK);
    tu_join_n(st, CC_SERVERS);
    tu_barrier_destroy(&ctx->start);

    uint64_t served = 0;
    for (int i = 0; i < CC_CLIENTS; i++) {
        assert_rc(ctx->clients[i].bad_rc, LCH_OK);
        assert_int_equal(ctx->clients[i].wrong, 0);
        assert_int_equal(ctx->clients[i].done, ctx->per_client);
    }
    for (int i = 0; i < CC_SERVERS; i++) {
        assert_rc(ctx->servers[i].bad_rc, LCH_OK);
        assert_int_equal(ctx->servers[i].wrong, 0);
        served += ctx->servers[i].done;
    }
    assert_int_equal(served, ctx->per_client * CC_CLIENTS);
    assert_int_equal(lch_channel_len(ctx->requests), 0);
    lch_channel_unref(ctx->requests);
    free(ctx);
    /* The fixture checks that every reply channel is gone (live objects). */
}

/* ---- the matrix ----------------------------------------------------------- */

static const int topologies[][2] = {{1, 1}, {2, 2}, {4, 4}, {8, 1}};
enum { N_TOPO = 4, N_MATRIX = N_TOPO * 2 * M_COUNT * 2, N_EXTRA = 14 };

static stress_cfg cfgs[N_MATRIX + N_EXTRA];

static stress_cfg make_cfg(int p, int c, size_t cap, wait_mode m, bool batch)
{
    stress_cfg s = {.producers = p, .consumers = c, .capacity = cap,
                    .mode = m, .batch = batch};
    snprintf(s.name, sizeof s.name, "stress_%dx%d_cap%zu_%s_%s", p, c, cap,
             mode_names[m], batch ? "batch" : "single");
    return s;
}

int main(int argc, char **argv)
{
    tu_init();
    size_t n = 0;
    for (int t = 0; t < N_TOPO; t++)
        for (int b = 0; b < 2; b++)           /* 4 = small bounded, 0 = unbounded */
            for (int m = 0; m < M_COUNT; m++)
                for (int batch = 0; batch < 2; batch++)
                    cfgs[n++] = make_cfg(topologies[t][0], topologies[t][1],
                                         b ? 0 : 4, (wait_mode)m, batch);
    /* Capacity 1: every send after the first waits for a receive. */
    cfgs[n++] = make_cfg(1, 1, 1, M_TIMED, false);
    cfgs[n++] = make_cfg(2, 2, 1, M_BLOCK, false);
    cfgs[n++] = make_cfg(4, 4, 1, M_TRY, true);
    cfgs[n++] = make_cfg(8, 1, 1, M_PARK, true);
    /* Capacity 1, parking at once, several waiters per side: a send needs
     * two earlier receives to finish (two slots), the case that once lost a
     * wake-up. */
    cfgs[n++] = make_cfg(2, 2, 1, M_PARK, false);
    cfgs[n++] = make_cfg(4, 4, 1, M_PARK, false);
    /* Capacity 3: not a power of two, so slots are found by modulo (the
     * single-value fast path and the general one both). */
    cfgs[n++] = make_cfg(2, 2, 3, M_TRY, false);
    cfgs[n++] = make_cfg(4, 4, 3, M_BLOCK, false);
    /* Unbounded with many threads per side: blocks are retired and handed
     * back to senders as spares while several receivers race to finish a
     * block and several senders to start the next one. */
    cfgs[n++] = make_cfg(1, 8, 0, M_TRY, false);
    cfgs[n++] = make_cfg(8, 8, 0, M_TRY, true);
    cfgs[n++] = make_cfg(8, 8, 0, M_BLOCK, false);
    /* Across the wrap of the 29 position bits a ring slot keeps. */
    static const int wraps[][5] = {{2, 2, 4, M_TRY, 1},
                                   {4, 4, 1, M_PARK, 0},
                                   {2, 2, 3, M_BLOCK, 0}};
    for (int i = 0; i < 3; i++) {
        stress_cfg *c = &cfgs[n++];
        *c = make_cfg(wraps[i][0], wraps[i][1], (size_t)wraps[i][2],
                      (wait_mode)wraps[i][3], wraps[i][4]);
        c->wrap = true;
        strncat(c->name, "_wrap", sizeof c->name - strlen(c->name) - 1);
    }

    struct CMUnitTest tests[N_MATRIX + N_EXTRA + 1];
    for (size_t i = 0; i < n; i++)
        tests[i] = (struct CMUnitTest){
            .name = cfgs[i].name,
            .test_func = test_stress,
            .setup_func = tu_setup,
            .teardown_func = tu_teardown,
            .initial_state = &cfgs[i],
        };
    tests[n++] = (struct CMUnitTest)TU_TEST(test_channels_through_channel);
    return tu_run("stress", tests, n, argc, argv);
}
