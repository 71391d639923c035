/* tests/testutil.h: what the libchan test programs share.
 *
 * - Scale: message counts shrink and patience grows under sanitizers
 *   (compile definitions LCH_TEST_SANITIZER and LCH_TEST_TIMEOUT_MULTIPLIER,
 *   overridden at run time by the environment variables LCH_TEST_SCALE and
 *   LCH_TEST_TIMEOUT_MULTIPLIER).
 * - Threads: spawning, joining and a start barrier. Workers never call cmocka
 *   (a failing assert longjmps to the main thread's stack); they record what
 *   they saw and the main thread asserts after joining them.
 * - A counting allocator installed with lch_set_allocator() before anything
 *   else: it counts live blocks (leak checks), can fail the Nth allocation
 *   (out-of-memory tests), and tags each block so a free of memory it did not
 *   hand out is counted instead of silently passing.
 * - A refcounted payload type made with lch_object_new(): a magic value checked
 *   by its destroy function, global created/released counters and optional
 *   per-id release counters, so a payload released twice or never is caught.
 * - Fixtures: tu_setup()/tu_teardown() take a baseline before each test and
 *   check afterwards that every object, payload and allocation is gone.
 *
 * Include this header instead of cmocka.h: it pulls in what cmocka needs. */
#ifndef LCH_TESTUTIL_H
#define LCH_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>

#include "libchan/libchan.h"

/* ---- errors --------------------------------------------------------------- */

/* Assert that a libchan call returned `expected`, printing both codes by name
 * (cmocka's assert_int_equal prints negative codes as huge unsigned numbers). */
#define assert_rc(rc, expected)                                                \
    tu_assert_rc((rc), (expected), #rc, __FILE__, __LINE__)
void tu_assert_rc(int rc, int expected, const char *expr, const char *file,
                  int line);

/* ---- scale and time ------------------------------------------------------- */

/* 0: plain build; 1: ASan/UBSan; 2: TSan (from the build, see CMakeLists). */
int tu_sanitizer(void);
/* Factor on every "how long may this take" wait (never on a pass/fail time). */
double tu_timeout_multiplier(void);
/* `normal` scaled for the build (1/2 under ASan, 3/10 under TSan, or
 * LCH_TEST_SCALE), never below `min`. */
uint64_t tu_count(uint64_t normal, uint64_t min);
int64_t tu_now_ns(void); /* CLOCK_MONOTONIC */
void tu_sleep_ns(int64_t ns);

/* An anonymous channel with this capacity and spin budget (asserts). */
lch_channel *tu_channel(size_t capacity, int64_t spin_ns);
/* How long to wait for something that must eventually happen before giving
 * up on it: 10 s times the multiplier. */
int64_t tu_patience_ns(void);

/* xorshift64: the next number of a cheap reproducible sequence, for
 * workers choosing at random (*state must not start at 0). */
uint64_t tu_rand(uint64_t *state);

#define TU_MS ((int64_t)1000000)
#define TU_S ((int64_t)1000000000)

/* ---- threads -------------------------------------------------------------- */

/* Both assert (main thread only). */
void tu_spawn(pthread_t *t, void *(*fn)(void *), void *arg);
void *tu_join(pthread_t t);
/* Spawn n threads running fn(base + i * stride). */
void tu_spawn_n(pthread_t *ts, size_t n, void *(*fn)(void *), void *base,
                size_t stride);
void tu_join_n(pthread_t *ts, size_t n);
/* Join n threads that each add 1 to *finished as they return. If they have
 * not all done so within tu_patience_ns(), fail the test with a message
 * naming `what`, leaving them blocked (rather than hanging until the ctest
 * timeout with no diagnosis). */
void tu_join_n_within(pthread_t *ts, size_t n, _Atomic int *finished,
                      const char *what);

/* Start barrier for n parties (usually workers + the main thread). */
typedef struct tu_barrier {
    pthread_barrier_t b;
} tu_barrier;
void tu_barrier_init(tu_barrier *b, unsigned n);
void tu_barrier_wait(tu_barrier *b);
void tu_barrier_destroy(tu_barrier *b);

/* ---- futex counters ------------------------------------------------------- */

lch_debug_counters tu_counters(void);
/* Wait (up to tu_patience_ns) until futex_waits >= target. Returns whether it
 * got there; never asserts, so it is safe while workers run. A thread that
 * bumped the counter is parked or about to park. */
bool tu_wait_futex_waits(uint64_t target);

/* ---- counting, failing allocator ----------------------------------------- */

/* Install it (once, first thing in main, before any other libchan call). */
void tu_alloc_install(void);
/* The hook as an lch_allocator, for tests of lch_get_allocator. */
const lch_allocator *tu_alloc_hook(void);
/* Blocks handed out and not yet freed. */
int64_t tu_alloc_live(void);
/* Bytes in them (as requested, without the allocator's own overhead). */
int64_t tu_alloc_live_bytes(void);
/* Make the nth allocation (malloc or realloc) from now on fail; 0 = never.
 * Resets tu_alloc_calls() and tu_alloc_failures(). */
void tu_alloc_fail_nth(uint64_t n);
uint64_t tu_alloc_calls(void);    /* allocations attempted since arming */
uint64_t tu_alloc_failures(void); /* failures injected since arming */
uint64_t tu_alloc_bad_frees(void); /* frees of blocks not from the hook */
/* Requests above this fail like a real allocator would (no sanitizer abort). */
#define TU_ALLOC_MAX ((size_t)1 << 30)

/* ---- refcounted payload --------------------------------------------------- */

#define TU_PAYLOAD_LIVE UINT64_C(0x6c63685061796c64) /* "lchPayld" */
#define TU_PAYLOAD_DEAD UINT64_C(0xdeadbeefdeadbeef)
#define TU_TYPE_PAYLOAD (LCH_TYPE_USER + 7)

typedef struct tu_payload {
    uint64_t magic;    /* TU_PAYLOAD_LIVE until destroyed */
    uint64_t id;       /* index into the tracked release slots, if any */
    uint64_t producer; /* which worker made it */
    uint64_t seq;      /* that worker's sequence number */
} tu_payload;

extern const lch_type tu_payload_type;

/* A new payload object with one reference (NULL on out-of-memory). */
lch_object *tu_payload_new(uint64_t id, uint64_t producer, uint64_t seq);
/* The payload if obj is a live tu_payload, else NULL. */
tu_payload *tu_payload_get(lch_object *obj);
uint64_t tu_payload_created(void);
uint64_t tu_payload_released(void);
uint64_t tu_payload_bad(void); /* destroyed with a wrong magic */
/* Count releases per id into slots[0..n) (slots zeroed by the caller); NULL
 * stops tracking. Ids outside the range count as bad. */
void tu_payload_track(_Atomic uint32_t *slots, size_t n);

/* ---- fixtures ------------------------------------------------------------- */

/* Call once at the top of main: installs the allocator, turns on object
 * tracking and warms up lazily created global state (the registry). */
void tu_init(void);
/* cmocka setup/teardown: baseline, then check that nothing leaked: live
 * objects, payloads created == released, no bad magic, allocator back to the
 * baseline (after lch_debug_barrier() lets deferred frees land), no bad
 * frees. */
int tu_setup(void **state);
int tu_teardown(void **state);
/* The same check, callable inside a test (main thread). */
void tu_assert_clean(void);

/* Run `tests` (or the ones whose name contains argv[1], if given). */
int tu_run(const char *group, const struct CMUnitTest *tests, size_t n,
           int argc, char **argv);

#define TU_TEST(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)

#endif /* LCH_TESTUTIL_H */
