/* tests/testutil.c: the helpers declared in testutil.h. */
#include "testutil.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef LCH_TEST_SANITIZER
#define LCH_TEST_SANITIZER 0
#endif
#ifndef LCH_TEST_TIMEOUT_MULTIPLIER
#define LCH_TEST_TIMEOUT_MULTIPLIER 1
#endif

/* ---- errors --------------------------------------------------------------- */

void tu_assert_rc(int rc, int expected, const char *expr, const char *file,
                  int line)
{
    if (rc != expected) {
        print_error("%s:%d: %s returned %s (%d), expected %s (%d)\n", file,
                    line, expr, lch_err_name(rc), rc, lch_err_name(expected),
                    expected);
        _fail(file, line);
    }
}

/* ---- scale and time ------------------------------------------------------- */

int tu_sanitizer(void) { return LCH_TEST_SANITIZER; }

static double env_double(const char *name, double dflt)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return dflt;
    char *end = NULL;
    double d = strtod(s, &end);
    return (end != s && d > 0) ? d : dflt;
}

double tu_timeout_multiplier(void)
{
    return env_double("LCH_TEST_TIMEOUT_MULTIPLIER",
                      (double)LCH_TEST_TIMEOUT_MULTIPLIER);
}

uint64_t tu_count(uint64_t normal, uint64_t min)
{
    double dflt = LCH_TEST_SANITIZER == 2 ? 0.3
                  : LCH_TEST_SANITIZER == 1 ? 0.5
                                            : 1.0;
    double n = (double)normal * env_double("LCH_TEST_SCALE", dflt);
    uint64_t r = (uint64_t)n;
    return r < min ? min : r;
}

int64_t tu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * TU_S + ts.tv_nsec;
}

void tu_sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / TU_S),
                          .tv_nsec = (long)(ns % TU_S)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

uint64_t tu_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

int64_t tu_patience_ns(void)
{
    return (int64_t)(10.0 * tu_timeout_multiplier() * (double)TU_S);
}

/* ---- threads -------------------------------------------------------------- */

void tu_spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc != 0)
        fail_msg("pthread_create: %s", strerror(rc));
}

void *tu_join(pthread_t t)
{
    void *ret = NULL;
    int rc = pthread_join(t, &ret);
    if (rc != 0)
        fail_msg("pthread_join: %s", strerror(rc));
    return ret;
}

void tu_spawn_n(pthread_t *ts, size_t n, void *(*fn)(void *), void *base,
                size_t stride)
{
    for (size_t i = 0; i < n; i++)
        tu_spawn(&ts[i], fn, (char *)base + i * stride);
}

void tu_join_n(pthread_t *ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tu_join(ts[i]);
}

void tu_join_n_within(pthread_t *ts, size_t n, _Atomic int *finished,
                      const char *what)
{
    int64_t deadline = tu_now_ns() + tu_patience_ns();
    while ((size_t)atomic_load(finished) < n) {
        if (tu_now_ns() > deadline)
            fail_msg("%s: %zu of %zu threads still blocked after %.0f s", what,
                     n - (size_t)atomic_load(finished), n,
                     (double)tu_patience_ns() / 1e9);
        tu_sleep_ns(TU_MS);
    }
    tu_join_n(ts, n);
}

void tu_barrier_init(tu_barrier *b, unsigned n)
{
    int rc = pthread_barrier_init(&b->b, NULL, n);
    if (rc != 0)
        fail_msg("pthread_barrier_init: %s", strerror(rc));
}

void tu_barrier_wait(tu_barrier *b) { (void)pthread_barrier_wait(&b->b); }

void tu_barrier_destroy(tu_barrier *b) { (void)pthread_barrier_destroy(&b->b); }

/* ---- futex counters ------------------------------------------------------- */

lch_debug_counters tu_counters(void)
{
    lch_debug_counters c;
    memset(&c, 0, sizeof c);
    lch_debug_counters_get(&c);
    return c;
}

bool tu_wait_futex_waits(uint64_t target)
{
    int64_t deadline = tu_now_ns() + tu_patience_ns();
    while (tu_counters().futex_waits < target) {
        if (tu_now_ns() > deadline)
            return false;
        tu_sleep_ns(TU_MS / 2);
    }
    return true;
}

lch_channel *tu_channel(size_t capacity, int64_t spin_ns)
{
    lch_channel *ch = NULL;
    lch_channel_opts opts = LCH_CHANNEL_OPTS_INIT;
    opts.capacity = capacity;
    opts.spin_ns = spin_ns;
    assert_rc(lch_channel_create_opts(&ch, &opts), LCH_OK);
    return ch;
}

/* ---- counting, failing allocator ----------------------------------------- */

/* Every block carries a 16-byte header (keeps malloc's 16-byte alignment):
 * a magic value, then the size requested. */
#define HDR_SIZE ((size_t)16)
#define HDR_LIVE UINT64_C(0x4c434848414c4c43) /* "LCHHALLC" */
#define HDR_FREED UINT64_C(0x46524545444c4348)

/* Relaxed throughout: counters, read by the main thread after the threads
 * that allocate have been joined (the join orders them), or by the only
 * thread there is. */
static _Atomic int64_t alloc_live;
static _Atomic int64_t alloc_live_bytes;
static _Atomic uint64_t alloc_calls;
static _Atomic uint64_t alloc_fail_at; /* 0 = never */
static _Atomic uint64_t alloc_failures;
static _Atomic uint64_t alloc_bad_frees;

static bool alloc_should_fail(size_t size)
{
    uint64_t n = atomic_fetch_add_explicit(&alloc_calls, 1,
                                           memory_order_relaxed) + 1;
    uint64_t at = atomic_load_explicit(&alloc_fail_at, memory_order_relaxed);
    if ((at != 0 && n == at) || size > TU_ALLOC_MAX) {
        atomic_fetch_add_explicit(&alloc_failures, 1, memory_order_relaxed);
        return true;
    }
    return false;
}

static void *hook_malloc(void *ctx, size_t size)
{
    (void)ctx;
    if (alloc_should_fail(size))
        return NULL;
    unsigned char *p = malloc(HDR_SIZE + size);
    if (p == NULL)
        return NULL;
    uint64_t magic = HDR_LIVE;
    memcpy(p, &magic, sizeof magic);
    memcpy(p + 8, &size, sizeof size);
    atomic_fetch_add_explicit(&alloc_live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&alloc_live_bytes, (int64_t)size,
                              memory_order_relaxed);
    return p + HDR_SIZE;
}

/* The header of a block, or NULL (counted) if it is not ours. */
static unsigned char *hook_header(void *ptr)
{
    unsigned char *p = (unsigned char *)ptr - HDR_SIZE;
    uint64_t magic;
    memcpy(&magic, p, sizeof magic);
    if (magic != HDR_LIVE) {
        atomic_fetch_add_explicit(&alloc_bad_frees, 1, memory_order_relaxed);
        return NULL;
    }
    return p;
}

static void hook_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr == NULL)
        return;
    unsigned char *p = hook_header(ptr);
    if (p == NULL)
        return; /* leak it rather than crash on a foreign pointer */
    uint64_t magic = HDR_FREED;
    size_t size;
    memcpy(p, &magic, sizeof magic);
    memcpy(&size, p + 8, sizeof size);
    atomic_fetch_sub_explicit(&alloc_live, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&alloc_live_bytes, (int64_t)size,
                              memory_order_relaxed);
    free(p);
}

static void *hook_realloc(void *ctx, void *ptr, size_t size)
{
    if (ptr == NULL)
        return hook_malloc(ctx, size);
    if (size == 0) { /* glibc semantics: free and return NULL */
        hook_free(ctx, ptr);
        return NULL;
    }
    if (alloc_should_fail(size))
        return NULL;
    unsigned char *p = hook_header(ptr);
    if (p == NULL)
        return NULL;
    size_t old;
    memcpy(&old, p + 8, sizeof old);
    unsigned char *q = realloc(p, HDR_SIZE + size);
    if (q == NULL)
        return NULL;
    memcpy(q + 8, &size, sizeof size);
    atomic_fetch_add_explicit(&alloc_live_bytes, (int64_t)size - (int64_t)old,
                              memory_order_relaxed);
    return q + HDR_SIZE;
}

static const lch_allocator tu_hook = {
    .malloc = hook_malloc,
    .realloc = hook_realloc,
    .free = hook_free,
    .ctx = (void *)&tu_hook,
};

const lch_allocator *tu_alloc_hook(void) { return &tu_hook; }

void tu_alloc_install(void)
{
    if (lch_set_allocator(&tu_hook) != LCH_OK) {
        fprintf(stderr, "lch_set_allocator refused the test allocator\n");
        abort();
    }
}

int64_t tu_alloc_live(void)
{
    return atomic_load_explicit(&alloc_live, memory_order_relaxed);
}

int64_t tu_alloc_live_bytes(void)
{
    return atomic_load_explicit(&alloc_live_bytes, memory_order_relaxed);
}

void tu_alloc_fail_nth(uint64_t n)
{
    atomic_store_explicit(&alloc_fail_at, 0, memory_order_relaxed);
    atomic_store_explicit(&alloc_calls, 0, memory_order_relaxed);
    atomic_store_explicit(&alloc_failures, 0, memory_order_relaxed);
    atomic_store_explicit(&alloc_fail_at, n, memory_order_relaxed);
}

uint64_t tu_alloc_calls(void)
{
    return atomic_load_explicit(&alloc_calls, memory_order_relaxed);
}

uint64_t tu_alloc_failures(void)
{
    return atomic_load_explicit(&alloc_failures, memory_order_relaxed);
}

uint64_t tu_alloc_bad_frees(void)
{
    return atomic_load_explicit(&alloc_bad_frees, memory_order_relaxed);
}

/* ---- refcounted payload --------------------------------------------------- */

static _Atomic uint64_t payload_created;
static _Atomic uint64_t payload_released;
static _Atomic uint64_t payload_bad;
static _Atomic(_Atomic uint32_t *) payload_slots;
static _Atomic size_t payload_nslots;

static void payload_destroy(lch_object *obj)
{
    tu_payload *p = lch_object_payload(obj);
    if (p == NULL || p->magic != TU_PAYLOAD_LIVE) {
        atomic_fetch_add_explicit(&payload_bad, 1, memory_order_relaxed);
        return;
    }
    p->magic = TU_PAYLOAD_DEAD;
    _Atomic uint32_t *slots =
        atomic_load_explicit(&payload_slots, memory_order_acquire);
    if (slots != NULL) {
        size_t n = atomic_load_explicit(&payload_nslots, memory_order_relaxed);
        if (p->id < n)
            atomic_fetch_add_explicit(&slots[p->id], 1, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&payload_bad, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&payload_released, 1, memory_order_relaxed);
}

const lch_type tu_payload_type = {
    .tag = TU_TYPE_PAYLOAD,
    .name = "tu_payload",
    .destroy = payload_destroy,
};

lch_object *tu_payload_new(uint64_t id, uint64_t producer, uint64_t seq)
{
    lch_object *obj = lch_object_new(&tu_payload_type, sizeof(tu_payload));
    if (obj == NULL)
        return NULL;
    tu_payload *p = lch_object_payload(obj);
    p->magic = TU_PAYLOAD_LIVE;
    p->id = id;
    p->producer = producer;
    p->seq = seq;
    atomic_fetch_add_explicit(&payload_created, 1, memory_order_relaxed);
    return obj;
}

tu_payload *tu_payload_get(lch_object *obj)
{
    if (obj == NULL || lch_object_type(obj) != TU_TYPE_PAYLOAD)
        return NULL;
    tu_payload *p = lch_object_payload(obj);
    return (p != NULL && p->magic == TU_PAYLOAD_LIVE) ? p : NULL;
}

uint64_t tu_payload_created(void)
{
    return atomic_load_explicit(&payload_created, memory_order_relaxed);
}

uint64_t tu_payload_released(void)
{
    return atomic_load_explicit(&payload_released, memory_order_relaxed);
}

uint64_t tu_payload_bad(void)
{
    return atomic_load_explicit(&payload_bad, memory_order_relaxed);
}

void tu_payload_track(_Atomic uint32_t *slots, size_t n)
{
    atomic_store_explicit(&payload_nslots, n, memory_order_relaxed);
    atomic_store_explicit(&payload_slots, slots, memory_order_release);
}

/* ---- fixtures ------------------------------------------------------------- */

static struct {
    int64_t live_objects;
    int64_t alloc_live;
    uint64_t created;
    uint64_t released;
    uint64_t bad;
    uint64_t bad_frees;
} base;

void tu_init(void)
{
    tu_alloc_install();
    lch_debug_track_objects(true);
    int64_t before = tu_alloc_live();
    /* Warm up whatever libchan creates lazily and keeps for the process (the
     * registry), so it is part of every test's baseline. */
    lch_channel *ch = NULL;
    lch_channel_opts opts = {.capacity = 4, .name = "testutil-warmup",
                             .spin_ns = -1};
    if (lch_channel_create_opts(&ch, &opts) == LCH_OK) {
        lch_channel *found = NULL;
        if (lch_channel_lookup_name("testutil-warmup", &found) == LCH_OK)
            lch_channel_unref(found);
        (void)lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT);
        lch_channel_unref(ch);
    }
    ch = NULL;
    if (lch_channel_create(&ch, 0) == LCH_OK) {
        (void)lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT);
        lch_channel_unref(ch);
    }
    /* Channels are freed after an RCU grace period: let the warm-up's frees
     * land before the first test takes its baseline. */
    lch_debug_barrier();
    if (tu_counters().live_objects != 0 || tu_alloc_live() != before) {
        fprintf(stderr, "testutil: warm-up left %lld objects, %lld blocks\n",
                (long long)tu_counters().live_objects,
                (long long)(tu_alloc_live() - before));
        abort();
    }
}

int tu_setup(void **state)
{
    (void)state;
    tu_alloc_fail_nth(0);
    lch_debug_barrier();
    base.live_objects = tu_counters().live_objects;
    base.alloc_live = tu_alloc_live();
    base.created = tu_payload_created();
    base.released = tu_payload_released();
    base.bad = tu_payload_bad();
    base.bad_frees = tu_alloc_bad_frees();
    return 0;
}

void tu_assert_clean(void)
{
    /* Channel memory is freed after an RCU grace period. */
    lch_debug_barrier();
    lch_debug_counters c = tu_counters();
    if (c.live_objects != base.live_objects)
        fail_msg("live_objects %lld, expected %lld (leaked or over-released "
                 "objects)",
                 (long long)c.live_objects, (long long)base.live_objects);
    uint64_t created = tu_payload_created() - base.created;
    uint64_t released = tu_payload_released() - base.released;
    if (created != released)
        fail_msg("payloads created %llu, released %llu",
                 (unsigned long long)created, (unsigned long long)released);
    if (tu_payload_bad() != base.bad)
        fail_msg("%llu payloads destroyed with a bad magic or id",
                 (unsigned long long)(tu_payload_bad() - base.bad));
    if (tu_alloc_live() != base.alloc_live)
        fail_msg("allocator: %lld live blocks, expected %lld",
                 (long long)tu_alloc_live(), (long long)base.alloc_live);
    if (tu_alloc_bad_frees() != base.bad_frees)
        fail_msg("allocator: %llu frees of blocks it never handed out",
                 (unsigned long long)(tu_alloc_bad_frees() - base.bad_frees));
}

int tu_teardown(void **state)
{
    (void)state;
    tu_alloc_fail_nth(0);
    tu_payload_track(NULL, 0);
    tu_assert_clean();
    return 0;
}

int tu_run(const char *group, const struct CMUnitTest *tests, size_t n,
           int argc, char **argv)
{
    if (argc < 2)
        return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    struct CMUnitTest *sel = calloc(n, sizeof *sel);
    if (sel == NULL)
        return 1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        for (int a = 1; a < argc; a++) {
            if (strstr(tests[i].name, argv[a]) != NULL) {
                sel[k++] = tests[i];
                break;
            }
        }
    }
    char name[256];
    snprintf(name, sizeof name, "%s/%s", group, argv[1]);
    int rc = 1;
    if (k == 0)
        fprintf(stderr, "%s: no test matches the filter\n", group);
    else
        rc = _cmocka_run_group_tests(name, sel, k, NULL, NULL);
    free(sel);
    return rc;
}
