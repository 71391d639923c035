/* tests/test_registry.c: lookups by id and by name, name uniqueness, names
 * reusable once their channel is gone, lookups racing with the last unref,
 * concurrent creation of one name, and fork().
 *
 * Groups (select with an argument): "reg_" single-threaded contract tests,
 * "race_" concurrency, "fork_" behaviour across fork(). */
#include "testutil.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GARBAGE_CH ((lch_channel *)(uintptr_t)0x10)

static lch_channel *make_named(const char *name, size_t capacity)
{
    lch_channel *ch = NULL;
    lch_channel_opts opts = {.capacity = capacity, .name = name,
                             .spin_ns = -1};
    assert_rc(lch_channel_create_opts(&ch, &opts), LCH_OK);
    assert_non_null(ch);
    return ch;
}

static int try_named(const char *name, size_t capacity, lch_channel **out)
{
    lch_channel_opts opts = {.capacity = capacity, .name = name,
                             .spin_ns = -1};
    return lch_channel_create_opts(out, &opts);
}

static void assert_gone(uint64_t id, const char *name)
{
    lch_channel *found = GARBAGE_CH;
    assert_rc(lch_channel_lookup_id(id, &found), LCH_ENOENT);
    assert_null(found);
    if (name != NULL) {
        found = GARBAGE_CH;
        assert_rc(lch_channel_lookup_name(name, &found), LCH_ENOENT);
        assert_null(found);
    }
}

/* ---- single-threaded contract -------------------------------------------- */

static void test_reg_lookup(void **state)
{
    (void)state;
    lch_channel *ch = make_named("reg-lookup", 4);
    uint64_t id = lch_channel_id(ch);
    lch_object *obj = lch_channel_object(ch);

    lch_channel *a = GARBAGE_CH, *b = GARBAGE_CH;
    assert_rc(lch_channel_lookup_id(id, &a), LCH_OK);
    assert_ptr_equal(a, ch);
    assert_int_equal(lch_object_refcount(obj), 2); /* a new reference */
    assert_rc(lch_channel_lookup_name("reg-lookup", &b), LCH_OK);
    assert_ptr_equal(b, ch);
    assert_int_equal(lch_object_refcount(obj), 3);
    assert_string_equal(lch_channel_name(b), "reg-lookup");
    lch_channel_unref(a);
    lch_channel_unref(b);
    assert_int_equal(lch_object_refcount(obj), 1);

    /* Anonymous channels are found by id (and of course not by name). */
    lch_channel *anon = NULL;
    assert_rc(lch_channel_create(&anon, 0), LCH_OK);
    a = GARBAGE_CH;
    assert_rc(lch_channel_lookup_id(lch_channel_id(anon), &a), LCH_OK);
    assert_ptr_equal(a, anon);
    lch_channel_unref(a);

    /* Misses and bad arguments: *out is NULL. */
    a = GARBAGE_CH;
    assert_rc(lch_channel_lookup_name("reg-nope", &a), LCH_ENOENT);
    assert_null(a);
    a = GARBAGE_CH;
    assert_rc(lch_channel_lookup_name("reg-looku", &a), LCH_ENOENT); /* prefix */
    assert_null(a);
    a = GARBAGE_CH;
    assert_rc(lch_channel_lookup_name("reg-lookup2", &a), LCH_ENOENT);
    assert_null(a);
    a = GARBAGE_CH;
    assert_rc(lch_channel_lookup_id(UINT64_MAX, &a), LCH_ENOENT);
    assert_null(a);
    a = GARBAGE_CH;
    int rc = lch_channel_lookup_id(0, &a); /* 0 is never an id */
    assert_true(rc == LCH_ENOENT || rc == LCH_EINVAL);
    assert_null(a);
    a = GARBAGE_CH;
    assert_rc(lch_channel_lookup_name(NULL, &a), LCH_EINVAL);
    assert_null(a);
    a = GARBAGE_CH;
    rc = lch_channel_lookup_name("", &a);
    assert_true(rc == LCH_ENOENT || rc == LCH_EINVAL);
    assert_null(a);
    assert_rc(lch_channel_lookup_name("reg-lookup", NULL), LCH_EINVAL);
    assert_rc(lch_channel_lookup_id(id, NULL), LCH_EINVAL);
    assert_int_equal(lch_object_refcount(obj), 1);

    lch_channel_unref(anon);
    lch_channel_unref(ch);
    assert_gone(id, "reg-lookup");
}

static void test_reg_name_unique(void **state)
{
    (void)state;
    lch_channel *ch = make_named("reg-dup", 0);
    uint64_t id = lch_channel_id(ch);
    lch_channel *other = GARBAGE_CH;
    assert_rc(try_named("reg-dup", 0, &other), LCH_EEXIST);
    assert_null(other);
    other = GARBAGE_CH;
    assert_rc(try_named("reg-dup", 8, &other), LCH_EEXIST);
    assert_null(other);

    /* Closing does not unregister: the channel is still alive. */
    assert_rc(lch_channel_close(ch), LCH_OK);
    other = GARBAGE_CH;
    assert_rc(try_named("reg-dup", 0, &other), LCH_EEXIST);
    assert_rc(lch_channel_close_now(ch), LCH_OK);
    assert_rc(try_named("reg-dup", 0, &other), LCH_EEXIST);
    lch_channel *found = NULL;
    assert_rc(lch_channel_lookup_name("reg-dup", &found), LCH_OK);
    assert_ptr_equal(found, ch);
    assert_true(lch_channel_is_closed(found));
    lch_channel_unref(found);

    /* Gone with the last reference; the name is free at once. */
    lch_channel_unref(ch);
    assert_gone(id, "reg-dup");
    lch_channel *again = make_named("reg-dup", 2);
    assert_true(lch_channel_id(again) != id);
    assert_false(lch_channel_is_closed(again));
    found = NULL;
    assert_rc(lch_channel_lookup_name("reg-dup", &found), LCH_OK);
    assert_ptr_equal(found, again);
    lch_channel_unref(found);
    lch_channel_unref(again);
    assert_gone(id, "reg-dup");
}

static void test_reg_name_held_alive(void **state)
{
    (void)state;
    /* A reference from a lookup keeps the channel and its name. */
    lch_channel *ch = make_named("reg-held", 0);
    uint64_t id = lch_channel_id(ch);
    lch_channel *ref = NULL;
    assert_rc(lch_channel_lookup_name("reg-held", &ref), LCH_OK);
    lch_channel_unref(ch); /* the creator's reference */
    lch_channel *other = GARBAGE_CH;
    assert_rc(try_named("reg-held", 0, &other), LCH_EEXIST);
    lch_channel *found = NULL;
    assert_rc(lch_channel_lookup_id(id, &found), LCH_OK);
    lch_channel_unref(found);
    lch_channel_unref(ref);
    assert_gone(id, "reg-held");

    /* So does a reference queued in another channel. */
    lch_channel *carrier = NULL;
    assert_rc(lch_channel_create(&carrier, 0), LCH_OK);
    ch = make_named("reg-held", 0);
    id = lch_channel_id(ch);
    assert_rc(lch_channel_send(carrier, lch_value_object(lch_channel_object(ch)),
                               LCH_NOWAIT),
              LCH_OK);
    assert_rc(try_named("reg-held", 0, &other), LCH_EEXIST);
    found = NULL;
    assert_rc(lch_channel_lookup_name("reg-held", &found), LCH_OK);
    assert_int_equal(lch_channel_id(found), id);
    lch_channel_unref(found);
    lch_channel_unref(carrier); /* releases the queued last reference */
    assert_gone(id, "reg-held");
    ch = make_named("reg-held", 0);
    lch_channel_unref(ch);
}

static void test_reg_many(void **state)
{
    (void)state;
    enum { N = 300 };
    static lch_channel *chs[N];
    static uint64_t ids[N];
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "reg-many-%d", i);
        chs[i] = make_named(name, (size_t)(i % 3));
        ids[i] = lch_channel_id(chs[i]);
    }
    for (int i = 0; i < N; i += 2) {
        lch_channel_unref(chs[i]);
        chs[i] = NULL;
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "reg-many-%d", i);
        lch_channel *a = GARBAGE_CH, *b = GARBAGE_CH;
        int ra = lch_channel_lookup_name(name, &a);
        int rb = lch_channel_lookup_id(ids[i], &b);
        if (i % 2 == 0) {
            assert_rc(ra, LCH_ENOENT);
            assert_rc(rb, LCH_ENOENT);
            assert_null(a);
            assert_null(b);
        } else {
            assert_rc(ra, LCH_OK);
            assert_rc(rb, LCH_OK);
            assert_ptr_equal(a, chs[i]);
            assert_ptr_equal(b, chs[i]);
            assert_string_equal(lch_channel_name(a), name);
            lch_channel_unref(a);
            lch_channel_unref(b);
        }
    }
    for (int i = 1; i < N; i += 2)
        lch_channel_unref(chs[i]);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "reg-many-%d", i);
        assert_gone(ids[i], name);
    }
}

/* ---- races ---------------------------------------------------------------- */

enum { LOOKERS = 4 };

typedef struct looker {
    uint64_t id;
    const char *name;
    tu_barrier *start;
    int seed;
    uint64_t found;
    uint64_t missing;
    uint64_t resurrected; /* OK after this thread already saw ENOENT */
    uint64_t wrong;       /* a channel that is not the one looked up */
    int bad_rc;
    char pad[64];
} looker;

static void *looker_main(void *arg)
{
    looker *l = arg;
    tu_barrier_wait(l->start);
    bool dead = false;
    for (int i = 0; i < 400 && l->missing < 4; i++) {
        lch_channel *ch = GARBAGE_CH;
        bool by_name = (i + l->seed) % 2;
        int rc = by_name ? lch_channel_lookup_name(l->name, &ch)
                         : lch_channel_lookup_id(l->id, &ch);
        if (rc == LCH_OK) {
            if (dead)
                l->resurrected++;
            const char *nm = lch_channel_name(ch);
            if (lch_channel_id(ch) != l->id || nm == NULL ||
                strcmp(nm, l->name) != 0 || lch_channel_len(ch) < 1)
                l->wrong++;
            /* Use it: it must be fully alive (full is fine). */
            int src = lch_channel_send(ch, lch_value_int(i), LCH_NOWAIT);
            if (src != LCH_OK && src != LCH_EAGAIN)
                l->wrong++;
            l->found++;
            lch_channel_unref(ch);
        } else if (rc == LCH_ENOENT) {
            if (ch != NULL)
                l->wrong++;
            dead = true;
            l->missing++;
        } else {
            l->bad_rc = rc;
            break;
        }
        if (i % 7 == l->seed)
            sched_yield();
    }
    return NULL;
}

static void test_race_lookup_vs_last_unref(void **state)
{
    (void)state;
    unsigned iters = (unsigned)tu_count(300, 40);
    uint64_t total_found = 0, total_missing = 0;
    for (unsigned it = 0; it < iters; it++) {
        char name[64];
        snprintf(name, sizeof name, "race-lvu-%u", it);
        lch_channel *ch = make_named(name, it % 2 ? 0 : 1000);
        uint64_t id = lch_channel_id(ch);
        /* A payload queued inside: released exactly once, at destruction. */
        uint64_t released = tu_payload_released();
        assert_rc(lch_channel_send(ch, lch_value_object(tu_payload_new(0, 0, 0)),
                                   LCH_NOWAIT),
                  LCH_OK);

        tu_barrier start;
        tu_barrier_init(&start, LOOKERS + 1);
        looker ls[LOOKERS];
        pthread_t ts[LOOKERS];
        for (int i = 0; i < LOOKERS; i++)
            ls[i] = (looker){.id = id, .name = name, .start = &start,
                             .seed = i};
        tu_spawn_n(ts, LOOKERS, looker_main, ls, sizeof(looker));
        tu_barrier_wait(&start);
        for (unsigned k = 0; k < it % 40; k++)
            sched_yield();
        lch_channel_unref(ch); /* maybe the last reference, maybe not */
        tu_join_n(ts, LOOKERS);
        tu_barrier_destroy(&start);

        for (int i = 0; i < LOOKERS; i++) {
            assert_rc(ls[i].bad_rc, LCH_OK);
            if (ls[i].resurrected || ls[i].wrong)
                fail_msg("iter %u looker %d: %llu lookups succeeded after "
                         "ENOENT, %llu wrong/unusable channels",
                         it, i, (unsigned long long)ls[i].resurrected,
                         (unsigned long long)ls[i].wrong);
            total_found += ls[i].found;
            total_missing += ls[i].missing;
        }
        /* All references are gone: so is the channel, exactly once. */
        assert_gone(id, name);
        assert_int_equal(tu_payload_released(), released + 1);
    }
    print_message("[ INFO     ] %u iterations: %llu lookups found the "
                  "channel, %llu did not\n",
                  iters, (unsigned long long)total_found,
                  (unsigned long long)total_missing);
}

typedef struct creator {
    const char *name;
    tu_barrier *start;
    int rc;
    lch_channel *ch;
} creator;

static void *creator_main(void *arg)
{
    creator *c = arg;
    tu_barrier_wait(c->start);
    c->ch = GARBAGE_CH;
    c->rc = try_named(c->name, 0, &c->ch);
    return NULL;
}

static void test_race_create_same_name(void **state)
{
    (void)state;
    enum { NC = 6 };
    unsigned iters = (unsigned)tu_count(300, 40);
    for (unsigned it = 0; it < iters; it++) {
        char name[64];
        snprintf(name, sizeof name, "race-same-%u", it % 3);
        tu_barrier start;
        tu_barrier_init(&start, NC + 1);
        creator cs[NC];
        pthread_t ts[NC];
        for (int i = 0; i < NC; i++)
            cs[i] = (creator){.name = name, .start = &start};
        tu_spawn_n(ts, NC, creator_main, cs, sizeof(creator));
        tu_barrier_wait(&start);
        tu_join_n(ts, NC);
        tu_barrier_destroy(&start);
        int winners = 0;
        lch_channel *winner = NULL;
        for (int i = 0; i < NC; i++) {
            if (cs[i].rc == LCH_OK) {
                winners++;
                winner = cs[i].ch;
            } else {
                assert_rc(cs[i].rc, LCH_EEXIST);
                assert_null(cs[i].ch);
            }
        }
        if (winners != 1) {
            for (int i = 0; i < NC; i++)
                if (cs[i].rc == LCH_OK)
                    lch_channel_unref(cs[i].ch);
            fail_msg("iter %u: %d threads created \"%s\"", it, winners, name);
        }
        lch_channel *found = NULL;
        assert_rc(lch_channel_lookup_name(name, &found), LCH_OK);
        assert_ptr_equal(found, winner);
        lch_channel_unref(found);
        lch_channel_unref(winner);
    }
}

/* Creators churn their own names while lookers probe all of them: a lookup
 * returns ENOENT or a live channel with exactly the name asked for. */
enum { CHURNERS = 3, NAMES_PER = 8 };

typedef struct churn {
    tu_barrier *start;
    _Atomic bool *stop;
    int id;
    bool looker;
    uint64_t ops;
    uint64_t wrong_name; /* found by name, but under another name */
    uint64_t no_id;      /* found by name, then not found by its id */
    uint64_t other_id;   /* its id gave another channel */
    uint64_t eexist;     /* creator: name still held by a looker */
    int bad_rc;
    char pad[64];
} churn;

static void *churn_main(void *arg)
{
    churn *c = arg;
    char name[64];
    tu_barrier_wait(c->start);
    unsigned k = 0;
    while (!atomic_load_explicit(c->stop, memory_order_relaxed)) {
        k++;
        if (c->looker) {
            snprintf(name, sizeof name, "race-churn-%u-%u", k % CHURNERS,
                     (k / CHURNERS) % NAMES_PER);
            lch_channel *ch = GARBAGE_CH;
            int rc = lch_channel_lookup_name(name, &ch);
            if (rc == LCH_OK) {
                const char *nm = lch_channel_name(ch);
                if (nm == NULL || strcmp(nm, name) != 0)
                    c->wrong_name++;
                /* We hold a reference: it is live, so its id finds it. */
                lch_channel *by_id = NULL;
                int rc2 = lch_channel_lookup_id(lch_channel_id(ch), &by_id);
                if (rc2 != LCH_OK)
                    c->no_id++;
                else if (by_id != ch)
                    c->other_id++;
                lch_channel_unref(by_id);
                lch_channel_unref(ch);
            } else if (rc != LCH_ENOENT || ch != NULL) {
                c->bad_rc = rc;
                return NULL;
            }
        } else {
            snprintf(name, sizeof name, "race-churn-%d-%u", c->id,
                     k % NAMES_PER);
            lch_channel *ch = NULL;
            int rc = try_named(name, k % 2 ? 0 : 4, &ch);
            if (rc == LCH_EEXIST) { /* a looker still holds our last one */
                c->eexist++;
                continue;
            }
            if (rc != LCH_OK) {
                c->bad_rc = rc;
                return NULL;
            }
            lch_channel_unref(ch);
        }
        c->ops++;
    }
    return NULL;
}

static void test_race_registry_churn(void **state)
{
    (void)state;
    enum { NT = CHURNERS + 3 };
    _Atomic bool stop = false;
    tu_barrier start;
    tu_barrier_init(&start, NT + 1);
    churn cs[NT];
    pthread_t ts[NT];
    for (int i = 0; i < NT; i++)
        cs[i] = (churn){.start = &start, .stop = &stop, .id = i,
                        .looker = i >= CHURNERS};
    tu_spawn_n(ts, NT, churn_main, cs, sizeof(churn));
    tu_barrier_wait(&start);
    tu_sleep_ns((int64_t)tu_count(400, 100) * TU_MS);
    atomic_store(&stop, true);
    tu_join_n(ts, NT);
    tu_barrier_destroy(&start);
    for (int i = 0; i < NT; i++) {
        assert_rc(cs[i].bad_rc, LCH_OK);
        if (cs[i].wrong_name || cs[i].no_id || cs[i].other_id)
            fail_msg("looker %d, %llu lookups: %llu found under another "
                     "name, %llu live channels found by name but not by id, "
                     "%llu ids gave another channel",
                     i, (unsigned long long)cs[i].ops,
                     (unsigned long long)cs[i].wrong_name,
                     (unsigned long long)cs[i].no_id,
                     (unsigned long long)cs[i].other_id);
        assert_true(cs[i].ops > 0);
    }
}

/* ---- fork ------------------------------------------------------------------
 * After fork() the child has its own copy of every channel and of the
 * registry (only the forking thread exists in it). The child reports through
 * its exit status, never through cmocka. */

static int child_wait(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 1000 + WTERMSIG(status);
    return 2000;
}

static void assert_child_ok(pid_t pid, const char *what)
{
    assert_true(pid >= 0);
    int code = child_wait(pid);
    if (code >= 1000)
        fail_msg("%s: child killed by signal %d%s", what, code - 1000,
                 code - 1000 == SIGALRM ? " (timed out: deadlock?)" : "");
    if (code != 0)
        fail_msg("%s: child failed at step %d", what, code);
}

/* In the child: a crash must end the process (cmocka's handlers would
 * longjmp into the parent's test runner copy), and a hang must too. */
static void child_guard(void)
{
    const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
    alarm((unsigned)(20 * tu_timeout_multiplier()));
}

#define CHILD_CHECK(cond, step)                                                \
    do {                                                                       \
        if (!(cond))                                                           \
            _exit(step);                                                       \
    } while (0)

static int child_recv_int(lch_channel *ch, int64_t expect)
{
    lch_value v = lch_value_none();
    return lch_channel_recv(ch, &v, LCH_NOWAIT) == LCH_OK &&
           v.kind == LCH_INT && v.u.i == expect;
}

/* The child's own life: create, look up, send, receive, destroy, reuse. */
static void child_exercise(const char *name)
{
    lch_channel *ch = NULL, *f = NULL;
    lch_channel_opts opts = {.capacity = 4, .name = name, .spin_ns = -1};
    CHILD_CHECK(lch_channel_create_opts(&ch, &opts) == LCH_OK, 40);
    CHILD_CHECK(lch_channel_lookup_name(name, &f) == LCH_OK && f == ch, 41);
    lch_channel_unref(f);
    CHILD_CHECK(lch_channel_lookup_id(lch_channel_id(ch), &f) == LCH_OK &&
                    f == ch,
                42);
    lch_channel_unref(f);
    CHILD_CHECK(lch_channel_send(ch, lch_value_int(11), LCH_NOWAIT) == LCH_OK,
                43);
    CHILD_CHECK(child_recv_int(ch, 11), 44);
    lch_value v = lch_value_none();
    CHILD_CHECK(lch_channel_recv(ch, &v, 1000) == LCH_ETIMEDOUT, 45);
    CHILD_CHECK(lch_channel_close(ch) == LCH_OK, 46);
    uint64_t id = lch_channel_id(ch);
    lch_channel_unref(ch);
    CHILD_CHECK(lch_channel_lookup_id(id, &f) == LCH_ENOENT, 47);
    ch = NULL;
    CHILD_CHECK(lch_channel_create_opts(&ch, &opts) == LCH_OK, 48);
    lch_channel_unref(ch);
    lch_channel *anon = NULL;
    CHILD_CHECK(lch_channel_create(&anon, 0) == LCH_OK, 49);
    for (int i = 0; i < 5000; i++) /* grow an unbounded channel */
        CHILD_CHECK(lch_channel_send(anon, lch_value_int(i), LCH_NOWAIT) ==
                        LCH_OK,
                    50);
    for (int i = 0; i < 5000; i++)
        CHILD_CHECK(child_recv_int(anon, i), 51);
    lch_channel_unref(anon);
}

static void test_fork_child_has_copies(void **state)
{
    (void)state;
    lch_channel *ch = make_named("fork-parent", 8);
    uint64_t id = lch_channel_id(ch);
    for (int i = 1; i <= 3; i++)
        assert_rc(lch_channel_send(ch, lch_value_int(i), LCH_NOWAIT), LCH_OK);
    assert_rc(lch_channel_send(ch, lch_value_object(tu_payload_new(9, 0, 0)),
                               LCH_NOWAIT),
              LCH_OK);

    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        child_guard();
        lch_channel *f = NULL;
        /* The parent's channel, by name and by id, with its contents. */
        CHILD_CHECK(lch_channel_lookup_name("fork-parent", &f) == LCH_OK &&
                        f == ch,
                    10);
        lch_channel_unref(f);
        CHILD_CHECK(lch_channel_lookup_id(id, &f) == LCH_OK && f == ch, 11);
        lch_channel_unref(f);
        CHILD_CHECK(lch_channel_len(ch) == 4, 12);
        CHILD_CHECK(child_recv_int(ch, 1), 13);
        CHILD_CHECK(lch_channel_send(ch, lch_value_int(100), LCH_NOWAIT) ==
                        LCH_OK,
                    14);
        lch_channel *dup = NULL;
        lch_channel_opts opts = {.capacity = 0, .name = "fork-parent",
                                 .spin_ns = -1};
        CHILD_CHECK(lch_channel_create_opts(&dup, &opts) == LCH_EEXIST, 15);
        child_exercise("fork-child");
        /* Drop the child's copy of the parent's channel: the name is free in
         * the child (not in the parent). */
        lch_channel_unref(ch);
        CHILD_CHECK(lch_channel_lookup_name("fork-parent", &f) == LCH_ENOENT,
                    16);
        CHILD_CHECK(lch_channel_create_opts(&dup, &opts) == LCH_OK, 17);
        lch_channel_unref(dup);
        _exit(0);
    }
    assert_child_ok(pid, "fork_child_has_copies");

    /* The parent's channel is untouched by what the child did. */
    assert_int_equal(lch_channel_len(ch), 4);
    lch_channel *f = NULL;
    assert_rc(lch_channel_lookup_name("fork-parent", &f), LCH_OK);
    assert_ptr_equal(f, ch);
    lch_channel_unref(f);
    f = GARBAGE_CH;
    assert_rc(lch_channel_lookup_name("fork-child", &f), LCH_ENOENT);
    for (int i = 1; i <= 3; i++) {
        lch_value v = lch_value_none();
        assert_rc(lch_channel_recv(ch, &v, LCH_NOWAIT), LCH_OK);
        assert_int_equal(v.u.i, i);
    }
    lch_value v = lch_value_none();
    assert_rc(lch_channel_recv(ch, &v, LCH_NOWAIT), LCH_OK);
    assert_non_null(tu_payload_get(v.u.obj));
    lch_value_release(&v);
    assert_rc(lch_channel_recv(ch, &v, LCH_NOWAIT), LCH_EAGAIN);
    lch_channel_unref(ch);
    assert_gone(id, "fork-parent");
}

typedef struct parked {
    lch_channel *ch;
    int rc;
    lch_value got;
} parked;

/* Ordinary work for a thread the child starts: it uses its stack. */
static void *child_worker(void *arg)
{
    volatile unsigned char buf[256 * 1024];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 31u);
    return (void *)(uintptr_t)buf[(uintptr_t)arg];
}

static void *parked_main(void *arg)
{
    parked *p = arg;
    p->rc = lch_channel_recv(p->ch, &p->got, LCH_FOREVER);
    return NULL;
}

/* A parent thread is parked on a channel when the parent forks: in the
 * child that thread does not exist; the child's copy works on its own. */
static void test_fork_with_parked_thread(void **state)
{
    (void)state;
    lch_channel *ch = NULL;
    lch_channel_opts opts = {.capacity = 2, .name = "fork-parked",
                             .spin_ns = 0};
    assert_rc(lch_channel_create_opts(&ch, &opts), LCH_OK);
    parked p = {.ch = ch, .rc = 1};
    uint64_t waits = tu_counters().futex_waits;
    pthread_t t;
    tu_spawn(&t, parked_main, &p);
    (void)tu_wait_futex_waits(waits + 1);
    tu_sleep_ns(5 * TU_MS);

    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        child_guard();
        /* The child starts threads of its own first (glibc gives them the
         * cached stacks of parent threads that do not exist here, such as
         * the parked one; enough threads to use up its stack cache). */
        pthread_t w[8];
        for (int i = 0; i < 8; i++)
            CHILD_CHECK(pthread_create(&w[i], NULL, child_worker, NULL) == 0,
                        19);
        for (int i = 0; i < 8; i++)
            CHILD_CHECK(pthread_join(w[i], NULL) == 0, 19);
        CHILD_CHECK(lch_channel_send(ch, lch_value_int(5), LCH_NOWAIT) ==
                        LCH_OK,
                    20);
        CHILD_CHECK(child_recv_int(ch, 5), 21);
        lch_value v = lch_value_none();
        CHILD_CHECK(lch_channel_recv(ch, &v, 2000000) == LCH_ETIMEDOUT, 22);
        CHILD_CHECK(lch_channel_close(ch) == LCH_OK, 23);
        CHILD_CHECK(lch_channel_recv(ch, &v, LCH_FOREVER) == LCH_ECLOSED, 24);
        child_exercise("fork-parked-child");
        _exit(0);
    }
    int code = pid >= 0 ? child_wait(pid) : -1;
    /* Whatever happened in the child, the parent's thread is still parked
     * on the parent's channel (not closed here). */
    bool closed = lch_channel_is_closed(ch);
    assert_rc(lch_channel_send(ch, lch_value_int(7), LCH_FOREVER), LCH_OK);
    tu_join(t);
    lch_channel_unref(ch);
    if (code >= 1000)
        fail_msg("fork_with_parked_thread: child killed by signal %d",
                 code - 1000);
    if (code != 0)
        fail_msg("fork_with_parked_thread: child failed at step %d", code);
    assert_false(closed);
    assert_rc(p.rc, LCH_OK);
    assert_int_equal(p.got.u.i, 7);
}

/* Fork while other threads are inside the registry: looking up channels
 * (inside RCU read-side sections) and, every few rounds, creating and
 * destroying one (the registry's tables, call_rcu): the child must not
 * inherit a held lock.
 *
 * The churn is kept moderate on purpose: with threads destroying channels
 * flat out, fork() itself can take seconds (measured up to 50 s here)
 * because liburcu's call_rcu_before_fork() waits for the call_rcu worker to
 * finish its current batch; that is a latency issue reported separately,
 * not something a pass/fail test should time.
 *
 * Under ASan the busy threads only look up (no allocation): GCC 12's ASan
 * allocator does not lock itself around fork(), so a child forked while
 * another thread is inside malloc can hang in ASan's own allocator, whatever
 * libchan does. */
typedef struct busy {
    _Atomic bool *stop;
    int id;
    bool lookups_only;
    uint64_t ops;
    int bad_rc;
} busy;

static void *busy_main(void *arg)
{
    busy *b = arg;
    char name[64];
    unsigned k = 0;
    while (!atomic_load_explicit(b->stop, memory_order_relaxed)) {
        lch_channel *ch = NULL, *f = NULL;
        k++;
        snprintf(name, sizeof name, "fork-busy-kept-%u", k % 4);
        int rc = lch_channel_lookup_name(name, &ch);
        if (rc != LCH_OK) {
            b->bad_rc = rc;
            return NULL;
        }
        if (lch_channel_lookup_id(lch_channel_id(ch), &f) == LCH_OK)
            lch_channel_unref(f);
        lch_channel_unref(ch); /* never the last reference */
        b->ops++;
        if (b->lookups_only || k % 16 != 0)
            continue;
        snprintf(name, sizeof name, "fork-busy-%d-%u", b->id, k % 4);
        rc = try_named(name, k % 32 ? 0 : 3, &ch);
        if (rc != LCH_OK) {
            b->bad_rc = rc;
            return NULL;
        }
        (void)lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT);
        lch_channel_unref(ch);
        tu_sleep_ns(100000);
    }
    return NULL;
}

static void test_fork_while_registry_busy(void **state)
{
    (void)state;
    enum { NB = 2, KEPT = 4 };
    bool lookups_only = tu_sanitizer() == 1;
    lch_channel *kept[KEPT];
    for (int i = 0; i < KEPT; i++) {
        char name[64];
        snprintf(name, sizeof name, "fork-busy-kept-%d", i);
        kept[i] = make_named(name, 2);
    }
    _Atomic bool stop = false;
    busy bs[NB];
    pthread_t ts[NB];
    for (int i = 0; i < NB; i++)
        bs[i] = (busy){.stop = &stop, .id = i, .lookups_only = lookups_only};
    tu_spawn_n(ts, NB, busy_main, bs, sizeof(busy));
    unsigned forks = (unsigned)tu_count(12, 4);
    int bad_code = 0;
    unsigned bad_at = 0;
    int64_t slowest_fork = 0, slowest_child = 0;
    for (unsigned i = 0; i < forks && bad_code == 0; i++) {
        tu_sleep_ns(2 * TU_MS);
        fflush(NULL);
        int64_t t0 = tu_now_ns();
        pid_t pid = fork();
        if (pid == 0) {
            child_guard();
            child_exercise("fork-busy-child");
            /* The copies of the channels the parent keeps are here. */
            lch_channel *f = NULL;
            CHILD_CHECK(lch_channel_lookup_name("fork-busy-kept-0", &f) ==
                                LCH_OK &&
                            f == kept[0],
                        30);
            CHILD_CHECK(lch_channel_send(f, lch_value_int(3), LCH_NOWAIT) ==
                            LCH_OK,
                        31);
            lch_channel_unref(f);
            _exit(0);
        }
        int64_t forked = tu_now_ns() - t0; /* fork() in the parent */
        if (forked > slowest_fork)
            slowest_fork = forked;
        bad_code = pid < 0 ? -1 : child_wait(pid);
        int64_t total = tu_now_ns() - t0;
        if (total > slowest_child)
            slowest_child = total;
        bad_at = i;
    }
    print_message("[ INFO     ] %u forks: slowest fork() %.1f ms, slowest "
                  "fork-to-exit %.1f ms\n",
                  forks, (double)slowest_fork / 1e6,
                  (double)slowest_child / 1e6);
    atomic_store(&stop, true);
    tu_join_n(ts, NB);
    for (int i = 0; i < KEPT; i++) {
        assert_int_equal(lch_channel_len(kept[i]), 0); /* parent unaffected */
        lch_channel_unref(kept[i]);
    }
    if (bad_code != 0)
        fail_msg("fork %u: child status %d%s", bad_at, bad_code,
                 bad_code == 1000 + SIGALRM ? " (timed out: deadlock?)" : "");
    for (int i = 0; i < NB; i++) {
        assert_rc(bs[i].bad_rc, LCH_OK);
        assert_true(bs[i].ops > 0);
    }
}

int main(int argc, char **argv)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        TU_TEST(test_reg_lookup),
        TU_TEST(test_reg_name_unique),
        TU_TEST(test_reg_name_held_alive),
        TU_TEST(test_reg_many),
        TU_TEST(test_race_lookup_vs_last_unref),
        TU_TEST(test_race_create_same_name),
        TU_TEST(test_race_registry_churn),
        TU_TEST(test_fork_child_has_copies),
        TU_TEST(test_fork_with_parked_thread),
        TU_TEST(test_fork_while_registry_busy),
    };
    return tu_run("registry", tests, sizeof tests / sizeof tests[0], argc,
                  argv);
}
