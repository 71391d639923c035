/* tests/test_api.c: every public function on one thread (plus a helper thread
 * where a call must block): results, ownership after success and failure,
 * each bad argument, timeouts of 0, negative, small and huge values, and
 * out-of-memory through the allocator hook (the Nth allocation fails). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A pointer value the library must overwrite (never dereferenced). */
#define GARBAGE_CH ((lch_channel *)(uintptr_t)0x10)

static lch_channel *make(size_t capacity, int64_t spin_ns)
{
    lch_channel *ch = NULL;
    lch_channel_opts opts = {.capacity = capacity, .name = NULL,
                             .spin_ns = spin_ns};
    assert_rc(lch_channel_create_opts(&ch, &opts), LCH_OK);
    assert_non_null(ch);
    return ch;
}

static lch_value payload_value(uint64_t id)
{
    lch_object *obj = tu_payload_new(id, 0, id);
    assert_non_null(obj);
    return lch_value_object(obj);
}

/* ---- errors --------------------------------------------------------------- */

static void test_error_codes_pinned(void **state)
{
    (void)state;
    /* The values are ABI: a change here is a compatibility break. */
    assert_int_equal(LCH_OK, 0);
    assert_true(LCH_EAGAIN == -1 && LCH_ETIMEDOUT == -2 && LCH_ECLOSED == -3 &&
                LCH_ENOMEM == -4 && LCH_EINVAL == -5 && LCH_EINTR == -6 &&
                LCH_E2BIG == -7 && LCH_ENOENT == -8 && LCH_EEXIST == -9 &&
                LCH_EOVERFLOW == -10 && LCH_ECORRUPT == -11 &&
                LCH_EMFILE == -12);

#define CHECK_ERR(name, value, msg)                                            \
    assert_string_equal(lch_err_name(value), #name);                           \
    assert_string_equal(lch_strerror(value), msg);
    LCH_ERRNO_MAP(CHECK_ERR)
#undef CHECK_ERR

    const int unknown[] = {1, -13, -1000, 12345, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(lch_err_name(unknown[i]), "UNKNOWN");
        assert_string_equal(lch_strerror(unknown[i]), "unknown error");
    }
}

/* ---- allocator hook ------------------------------------------------------- */

static void *bad_malloc(void *ctx, size_t n) { (void)ctx; (void)n; return NULL; }
static void bad_free(void *ctx, void *p) { (void)ctx; (void)p; }
static void *bad_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx; (void)p; (void)n;
    return NULL;
}

static void assert_hook_installed(void)
{
    lch_allocator cur;
    memset(&cur, 0, sizeof cur);
    lch_get_allocator(&cur);
    const lch_allocator *h = tu_alloc_hook();
    assert_true(cur.malloc == h->malloc);
    assert_true(cur.realloc == h->realloc);
    assert_true(cur.free == h->free);
    assert_ptr_equal(cur.ctx, h->ctx);
}

static void test_allocator_get_set(void **state)
{
    (void)state;
    assert_hook_installed();

    /* Each missing function is refused, and the hook stays installed. */
    lch_allocator a = {bad_malloc, bad_realloc, bad_free, NULL};
    a.malloc = NULL;
    assert_rc(lch_set_allocator(&a), LCH_EINVAL);
    a.malloc = bad_malloc;
    a.realloc = NULL;
    assert_rc(lch_set_allocator(&a), LCH_EINVAL);
    a.realloc = bad_realloc;
    a.free = NULL;
    assert_rc(lch_set_allocator(&a), LCH_EINVAL);
    assert_hook_installed();

    /* NULL restores the C library's allocator (nothing of libchan is alive
     * that was allocated since; nothing is freed while it is in place). */
    assert_rc(lch_set_allocator(NULL), LCH_OK);
    lch_allocator libc_alloc;
    memset(&libc_alloc, 0, sizeof libc_alloc);
    lch_get_allocator(&libc_alloc);
    assert_non_null(libc_alloc.malloc);
    assert_non_null(libc_alloc.realloc);
    assert_non_null(libc_alloc.free);
    assert_true(libc_alloc.malloc != tu_alloc_hook()->malloc);
    assert_rc(lch_set_allocator(tu_alloc_hook()), LCH_OK);
    assert_hook_installed();

    /* Everything libchan allocates for a channel goes through the hook. */
    int64_t before = tu_alloc_live();
    lch_channel *ch = make(16, -1);
    assert_true(tu_alloc_live() > before);
    lch_channel_unref(ch);
}

/* ---- creation ------------------------------------------------------------- */

static void test_create_bad_args(void **state)
{
    (void)state;
    lch_channel *ch = GARBAGE_CH;
    lch_channel_opts opts = {.capacity = 0, .name = NULL, .spin_ns = -1};

    assert_rc(lch_channel_create(NULL, 0), LCH_EINVAL);
    assert_rc(lch_channel_create(NULL, 8), LCH_EINVAL);
    assert_rc(lch_channel_create_opts(NULL, &opts), LCH_EINVAL);
    assert_rc(lch_channel_create_opts(NULL, NULL), LCH_EINVAL);

    assert_rc(lch_channel_create(&ch, LCH_CHANNEL_MAX_CAPACITY + 1), LCH_E2BIG);
    assert_null(ch);
    ch = GARBAGE_CH;
    assert_rc(lch_channel_create(&ch, SIZE_MAX), LCH_E2BIG);
    assert_null(ch);

    ch = GARBAGE_CH;
    opts.capacity = LCH_CHANNEL_MAX_CAPACITY + 1;
    assert_rc(lch_channel_create_opts(&ch, &opts), LCH_E2BIG);
    assert_null(ch);

    ch = GARBAGE_CH;
    opts.capacity = 4;
    opts.name = "";
    assert_rc(lch_channel_create_opts(&ch, &opts), LCH_EINVAL);
    assert_null(ch);

    char longname[LCH_CHANNEL_MAX_NAME + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0'; /* 256 bytes */
    ch = GARBAGE_CH;
    opts.name = longname;
    assert_rc(lch_channel_create_opts(&ch, &opts), LCH_E2BIG);
    assert_null(ch);
    /* ...and the refused name was not registered. */
    lch_channel *found = GARBAGE_CH;
    int rc = lch_channel_lookup_name(longname, &found);
    assert_true(rc == LCH_ENOENT || rc == LCH_EINVAL);
    assert_null(found);
}

static void test_create_defaults(void **state)
{
    (void)state;
    lch_channel *ch = NULL;
    assert_rc(lch_channel_create(&ch, 0), LCH_OK);
    assert_int_equal(lch_channel_capacity(ch), 0);
    assert_int_equal(lch_channel_len(ch), 0);
    assert_false(lch_channel_is_closed(ch));
    assert_true(lch_channel_id(ch) != 0);
    assert_null(lch_channel_name(ch));
    lch_channel_unref(ch);

    ch = NULL;
    assert_rc(lch_channel_create_opts(&ch, NULL), LCH_OK);
    assert_int_equal(lch_channel_capacity(ch), 0);
    assert_null(lch_channel_name(ch));
    assert_false(lch_channel_is_closed(ch));
    lch_channel_unref(ch);

    /* LCH_CHANNEL_OPTS_INIT means the defaults too. */
    lch_channel_opts init = LCH_CHANNEL_OPTS_INIT;
    assert_int_equal(init.capacity, 0);
    assert_null(init.name);
    assert_true(init.spin_ns < 0);
    assert_int_equal(init.user_flags, 0);
    assert_int_equal(init.user_value, 0);
    init.capacity = 5;
    ch = NULL;
    assert_rc(lch_channel_create_opts(&ch, &init), LCH_OK);
    assert_int_equal(lch_channel_capacity(ch), 5);
    assert_null(lch_channel_name(ch));
    assert_int_equal(lch_channel_user_flags(ch), 0);
    assert_int_equal(lch_channel_user_value(ch), 0);
    lch_channel_unref(ch);

    /* user_flags and user_value come back verbatim, through every handle
     * to the channel; libchan does not interpret either (a negative value
     * on a bounded channel is nothing to it). */
    init.user_flags = 0xA5A5F00Du;
    init.user_value = INT64_MIN;
    init.name = "flags";
    ch = NULL;
    assert_rc(lch_channel_create_opts(&ch, &init), LCH_OK);
    assert_int_equal(lch_channel_user_flags(ch), 0xA5A5F00Du);
    assert_true(lch_channel_user_value(ch) == INT64_MIN);
    assert_int_equal(lch_channel_capacity(ch), 5);
    lch_channel *found = NULL;
    assert_rc(lch_channel_lookup_name("flags", &found), LCH_OK);
    assert_int_equal(lch_channel_user_flags(found), 0xA5A5F00Du);
    assert_true(lch_channel_user_value(found) == INT64_MIN);
    lch_channel_unref(found);
    lch_channel_unref(ch);
    assert_int_equal(lch_channel_user_flags(NULL), 0);
    assert_int_equal(lch_channel_user_value(NULL), 0);

    const size_t caps[] = {1, 2, 3, 7, 64, 1000};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        ch = NULL;
        assert_rc(lch_channel_create(&ch, caps[i]), LCH_OK);
        assert_int_equal(lch_channel_capacity(ch), caps[i]);
        assert_int_equal(lch_channel_len(ch), 0);
        lch_channel_unref(ch);
    }

    /* Negative spin means the default; a huge one is allowed too. */
    const int64_t spins[] = {-1, INT64_MIN, 0, 1, 1000000};
    for (size_t i = 0; i < sizeof spins / sizeof spins[0]; i++) {
        ch = make(2, spins[i]);
        assert_rc(lch_channel_send(ch, lch_value_int(5), LCH_NOWAIT), LCH_OK);
        lch_value v = lch_value_none();
        assert_rc(lch_channel_recv(ch, &v, LCH_NOWAIT), LCH_OK);
        assert_int_equal(v.u.i, 5);
        lch_channel_unref(ch);
    }
}

static void test_create_names(void **state)
{
    (void)state;
    /* The longest name is accepted, and the channel keeps its own copy. */
    char name[LCH_CHANNEL_MAX_NAME + 1];
    memset(name, 'a', LCH_CHANNEL_MAX_NAME);
    name[LCH_CHANNEL_MAX_NAME] = '\0';
    name[0] = 'L';
    lch_channel *ch = NULL;
    lch_channel_opts opts = {.capacity = 0, .name = name, .spin_ns = -1};
    assert_rc(lch_channel_create_opts(&ch, &opts), LCH_OK);
    char expect[sizeof name];
    memcpy(expect, name, sizeof name);
    memset(name, 'z', LCH_CHANNEL_MAX_NAME); /* caller reuses its buffer */
    assert_non_null(lch_channel_name(ch));
    assert_ptr_not_equal(lch_channel_name(ch), name);
    assert_string_equal(lch_channel_name(ch), expect);

    /* A one-byte name; a name with non-ASCII bytes. */
    lch_channel *c1 = NULL, *c2 = NULL;
    opts.name = "x";
    assert_rc(lch_channel_create_opts(&c1, &opts), LCH_OK);
    assert_string_equal(lch_channel_name(c1), "x");
    opts.name = "caf\xc3\xa9 \xe2\x86\x92 \x01\xff";
    assert_rc(lch_channel_create_opts(&c2, &opts), LCH_OK);
    assert_string_equal(lch_channel_name(c2), opts.name);

    lch_channel_unref(c2);
    lch_channel_unref(c1);
    lch_channel_unref(ch);
}

static void test_create_max_capacity(void **state)
{
    (void)state;
    /* The maximum itself is legal; the test allocator refuses blocks above
     * TU_ALLOC_MAX, so it either succeeds lazily or reports LCH_ENOMEM. */
    lch_channel *ch = GARBAGE_CH;
    int rc = lch_channel_create(&ch, LCH_CHANNEL_MAX_CAPACITY);
    if (rc == LCH_OK) {
        assert_int_equal(lch_channel_capacity(ch), LCH_CHANNEL_MAX_CAPACITY);
        assert_rc(lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT), LCH_OK);
        lch_channel_unref(ch);
    } else {
        assert_rc(rc, LCH_ENOMEM);
        assert_null(ch);
    }
}

/* A ring slot keeps 29 bits of its position, so positions wrap every 2^29
 * values. Around each wrap, a full ring must still say "full" and an empty
 * one "empty" (a wrong comparison spins there instead of returning), and
 * values keep their order, kinds and tags. */
static void test_ring_position_wrap(void **state)
{
    (void)state;
    static const size_t caps[] = {1, 3, 4};
    static const uint64_t starts[] = {((uint64_t)1 << 29) - 5,
                                      ((uint64_t)1 << 30) - 1,
                                      ((uint64_t)3 << 29) - 2};
    for (size_t c = 0; c < 3; c++) {
        for (size_t s = 0; s < 3; s++) {
            lch_channel *ch = tu_channel(caps[c], 0);
            assert_rc(lch_debug_channel_advance(ch, starts[s]), LCH_OK);
            int64_t next_out = 0, next_in = 0;
            lch_value v, out[4];
            for (int round = 0; round < 12; round++) {
                size_t n;
                if (round % 2) { /* fill with a batch */
                    for (size_t i = 0; i < caps[c]; i++) {
                        out[i] = lch_value_int(next_in++);
                        out[i].tag = (uint32_t)round;
                    }
                    assert_rc(lch_channel_send_batch(ch, out, caps[c], &n,
                                                     LCH_NOWAIT),
                              LCH_OK);
                    assert_int_equal(n, caps[c]);
                } else {
                    for (size_t i = 0; i < caps[c]; i++) {
                        v = lch_value_float((double)next_in++);
                        v.tag = (uint32_t)round;
                        assert_rc(lch_channel_send(ch, v, LCH_NOWAIT),
                                  LCH_OK);
                    }
                }
                assert_int_equal(lch_channel_len(ch), caps[c]);
                assert_rc(lch_channel_send(ch, lch_value_int(-1), LCH_NOWAIT),
                          LCH_EAGAIN);
                if (round % 3 == 0) { /* drain with a batch */
                    assert_rc(lch_channel_recv_batch(ch, out, 4, &n,
                                                     LCH_NOWAIT),
                              LCH_OK);
                    assert_int_equal(n, caps[c]);
                } else {
                    for (size_t i = 0; i < caps[c]; i++)
                        assert_rc(lch_channel_recv(ch, &out[i], LCH_NOWAIT),
                                  LCH_OK);
                }
                for (size_t i = 0; i < caps[c]; i++, next_out++) {
                    assert_int_equal(out[i].tag, round);
                    if (round % 2) {
                        assert_int_equal(out[i].kind, LCH_INT);
                        assert_int_equal(out[i].u.i, next_out);
                    } else {
                        assert_int_equal(out[i].kind, LCH_FLOAT);
                        assert_true(out[i].u.f == (double)next_out);
                    }
                }
                assert_rc(lch_channel_recv(ch, &v, LCH_NOWAIT), LCH_EAGAIN);
            }
            assert_rc(lch_channel_close(ch), LCH_OK);
            assert_rc(lch_channel_recv(ch, &v, LCH_NOWAIT), LCH_ECLOSED);
            lch_channel_unref(ch);
        }
    }
}

/* A batch may cross the end of the ring's slot array. From every starting
 * slot, with 0 to cap - 1 values already queued, and with batches shorter
 * than the room, as long as it and longer than the whole ring, a send must
 * move min(n, room) values and a receive min(n, queued), in order, with
 * their kinds and tags. */
static void test_ring_batch_every_offset(void **state)
{
    (void)state;
    static const size_t caps[] = {1, 2, 3, 4, 5, 8};
    enum { MAXB = 12 };
    lch_value in[MAXB], out[MAXB], v;
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        const size_t cap = caps[c];
        lch_channel *ch = tu_channel(cap, 0);
        int64_t next_in = 0, next_out = 0;
        const size_t phys = cap < 2 ? 2 : cap; /* slots (see ring.c) */
        size_t take = 1; /* receive batch size, cycling 1 .. cap + 3 */
        for (size_t held = 0; held < cap; held++) {
            for (size_t m = 1; m <= cap + 2; m++) {
                for (size_t start = 0; start < phys; start++) {
                    /* Every value ever sent moved tail on by one, so the
                     * batch starts at slot (next_in + held) % phys: move
                     * the empty ring on, one value at a time, until that
                     * is `start`. */
                    while (((size_t)next_in + held) % phys != start) {
                        assert_rc(lch_channel_send(ch,
                                                   lch_value_int(next_in++),
                                                   LCH_NOWAIT),
                                  LCH_OK);
                        assert_rc(lch_channel_recv(ch, &v, LCH_NOWAIT),
                                  LCH_OK);
                        assert_int_equal(v.u.i, next_out++);
                    }
                    for (size_t i = 0; i < held; i++)
                        assert_rc(lch_channel_send(
                                      ch, lch_value_int(next_in++),
                                      LCH_NOWAIT),
                                  LCH_OK);
                    for (size_t i = 0; i < m; i++) {
                        in[i] = i % 2 ? lch_value_int(next_in + (int64_t)i)
                                      : lch_value_float(
                                            (double)(next_in + (int64_t)i));
                        in[i].tag = (uint32_t)(next_in + (int64_t)i);
                    }
                    size_t n = 99, want = m < cap - held ? m : cap - held;
                    assert_rc(lch_channel_send_batch(ch, in, m, &n,
                                                     LCH_NOWAIT),
                              LCH_OK);
                    assert_int_equal(n, want);
                    next_in += (int64_t)n;
                    assert_int_equal(lch_channel_len(ch), held + n);
                    if (held + n == cap)
                        assert_rc(lch_channel_send(ch, lch_value_int(-1),
                                                   LCH_NOWAIT),
                                  LCH_EAGAIN);
                    /* Drain in batches of `take`, whatever is queued. */
                    for (size_t left = held + n; left > 0;) {
                        size_t got = 99;
                        assert_rc(lch_channel_recv_batch(ch, out, take, &got,
                                                         LCH_NOWAIT),
                                  LCH_OK);
                        assert_int_equal(got, take < left ? take : left);
                        for (size_t i = 0; i < got; i++, next_out++) {
                            if (left - i > n) { /* one of the held values */
                                assert_int_equal(out[i].kind, LCH_INT);
                                assert_int_equal(out[i].u.i, next_out);
                                continue;
                            }
                            assert_int_equal(out[i].tag, (uint32_t)next_out);
                            if (out[i].kind == LCH_INT)
                                assert_int_equal(out[i].u.i, next_out);
                            else
                                assert_true(out[i].kind == LCH_FLOAT &&
                                            out[i].u.f == (double)next_out);
                        }
                        left -= got;
                        take = take % (cap + 3) + 1;
                    }
                    assert_rc(lch_channel_recv_batch(ch, out, 1, &n,
                                                     LCH_NOWAIT),
                              LCH_EAGAIN);
                }
            }
        }
        assert_int_equal(next_in, next_out);
        lch_channel_unref(ch);
    }
}

static void test_debug_advance_refuses(void **state)
{
    (void)state;
    assert_rc(lch_debug_channel_advance(NULL, 1), LCH_EINVAL);
    lch_channel *ch = tu_channel(0, 0); /* unbounded: nothing to advance */
    assert_rc(lch_debug_channel_advance(ch, 1), LCH_EINVAL);
    lch_channel_unref(ch);
    ch = tu_channel(2, 0);
    assert_rc(lch_debug_channel_advance(ch, (uint64_t)1 << 62), LCH_E2BIG);
    assert_rc(lch_channel_send(ch, lch_value_int(7), LCH_NOWAIT), LCH_OK);
    assert_rc(lch_debug_channel_advance(ch, 1), LCH_EINVAL); /* not empty */
    lch_value v;
    assert_rc(lch_channel_recv(ch, &v, LCH_NOWAIT), LCH_OK);
    assert_int_equal(v.u.i, 7);
    assert_rc(lch_channel_close(ch), LCH_OK);
    assert_rc(lch_debug_channel_advance(ch, 1), LCH_EINVAL); /* closed */
    lch_channel_unref(ch);
}

static void test_ids_unique(void **state)
{
    (void)state;
    enum { N = 64 };
    uint64_t ids[2 * N];
    lch_channel *chs[N];
    for (int i = 0; i < N; i++) {
        chs[i] = make(i % 2 ? 4 : 0, -1);
        ids[i] = lch_channel_id(chs[i]);
    }
    for (int i = 0; i < N; i++)
        lch_channel_unref(chs[i]);
    /* Ids are never reused, even after the channels are gone. */
    for (int i = 0; i < N; i++) {
        chs[i] = make(0, -1);
        ids[N + i] = lch_channel_id(chs[i]);
        lch_channel_unref(chs[i]);
    }
    for (int i = 0; i < 2 * N; i++) {
        assert_true(ids[i] != 0);
        for (int j = 0; j < i; j++)
            assert_true(ids[i] != ids[j]);
    }
}

static void test_null_handles(void **state)
{
    (void)state;
    assert_int_equal(lch_channel_len(NULL), 0);
    assert_int_equal(lch_channel_capacity(NULL), 0);
    assert_false(lch_channel_is_closed(NULL));
    assert_int_equal(lch_channel_id(NULL), 0);
    assert_rc(lch_channel_close(NULL), LCH_EINVAL);
    assert_rc(lch_channel_close_now(NULL), LCH_EINVAL);
    assert_rc(lch_channel_ref(NULL), LCH_EINVAL);
    lch_channel_unref(NULL);
    assert_null(lch_channel_from_object(NULL));
    assert_rc(lch_object_ref(NULL), LCH_EINVAL);
    lch_object_unref(NULL);
    lch_value_release(NULL);
}

/* ---- send / recv ---------------------------------------------------------- */

static void test_send_recv_bad_args(void **state)
{
    (void)state;
    lch_channel *ch = make(4, -1);
    const int64_t timeouts[] = {LCH_NOWAIT, LCH_FOREVER, 1000};
    for (size_t t = 0; t < 3; t++) {
        lch_value v = payload_value(1);
        uint64_t released = tu_payload_released();
        assert_rc(lch_channel_send(NULL, v, timeouts[t]), LCH_EINVAL);
        /* The caller still owns the value. */
        assert_int_equal(tu_payload_released(), released);
        assert_int_equal(lch_object_refcount(v.u.obj), 1);
        lch_value_release(&v);
        assert_int_equal(v.kind, LCH_NONE);

        lch_value out = lch_value_int(42);
        assert_rc(lch_channel_recv(NULL, &out, timeouts[t]), LCH_EINVAL);
        assert_int_equal(out.kind, LCH_NONE);
        assert_rc(lch_channel_recv(ch, NULL, timeouts[t]), LCH_EINVAL);
    }
    assert_int_equal(lch_channel_len(ch), 0);
    lch_channel_unref(ch);
}

static void test_send_recv_kinds(void **state)
{
    (void)state;
    const size_t caps[] = {0, 8};
    for (size_t c = 0; c < 2; c++) {
        lch_channel *ch = make(caps[c], -1);
        lch_value in[6];
        in[0] = lch_value_none();
        in[1] = lch_value_bool(true);
        in[2] = lch_value_int(INT64_MIN);
        in[3] = lch_value_float(-0.0);
        in[4] = lch_value_float(NAN);
        in[5] = payload_value(99);
        lch_object *obj = in[5].u.obj;
        for (uint32_t i = 0; i < 6; i++) {
            in[i].tag = 0xA0000000u + i; /* carried verbatim */
            assert_rc(lch_channel_send(ch, in[i], LCH_NOWAIT), LCH_OK);
            assert_int_equal(lch_channel_len(ch), i + 1);
        }
        /* The channel owns the object's reference now: no count change. */
        assert_int_equal(lch_object_refcount(obj), 1);
        for (uint32_t i = 0; i < 6; i++) {
            lch_value out = lch_value_none();
            assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
            assert_int_equal(out.kind, in[i].kind);
            assert_int_equal(out.tag, 0xA0000000u + i);
            assert_memory_equal(&out.u, &in[i].u, sizeof out.u);
            lch_value_release(&out);
            assert_int_equal(lch_channel_len(ch), 5 - i);
        }
        lch_channel_unref(ch);
    }
}

/* A value whose kind is not an lch_kind is refused by every way of sending,
 * on both engines, before anything is queued: the caller keeps it. (The
 * unbounded engine stores the kind in 24 bits; without the check it would
 * hand back a different kind.) */
static void test_send_refuses_unknown_kinds(void **state)
{
    (void)state;
    const size_t caps[] = {0, 8};
    const uint32_t kinds[] = {LCH_OBJECT + 1, 1u << 24, UINT32_MAX};
    for (size_t c = 0; c < 2; c++) {
        lch_channel *ch = make(caps[c], -1);
        lch_waiter *w = NULL;
        assert_rc(lch_waiter_create(&w), LCH_OK);
        for (size_t k = 0; k < 3; k++) {
            lch_value bad = lch_value_int(7);
            bad.kind = kinds[k];
            assert_rc(lch_channel_send(ch, bad, LCH_NOWAIT), LCH_EINVAL);
            assert_rc(lch_channel_send(ch, bad, 1000), LCH_EINVAL);
            lch_value batch[3] = {lch_value_int(1), bad, lch_value_int(3)};
            size_t sent = 99;
            assert_rc(lch_channel_send_batch(ch, batch, 3, &sent, LCH_NOWAIT),
                      LCH_EINVAL);
            assert_int_equal(sent, 0);
            assert_rc(lch_waiter_send(w, ch, bad), LCH_EINVAL);
            lch_select_case cases[2] = {
                {.ch = ch, .op = LCH_RECV},
                {.ch = ch, .op = LCH_SEND, .value = bad},
            };
            size_t index = 0;
            assert_rc(lch_channel_select(cases, 2, &index, LCH_NOWAIT),
                      LCH_EINVAL);
            assert_int_equal(lch_channel_len(ch), 0);
        }
        /* Nothing was queued, and the channel still works. */
        assert_rc(lch_channel_send(ch, lch_value_int(5), LCH_NOWAIT), LCH_OK);
        lch_value out = lch_value_none();
        assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
        assert_int_equal(out.kind, LCH_INT);
        assert_int_equal(out.u.i, 5);
        lch_waiter_free(w);
        lch_channel_unref(ch);
    }
}

static void test_bounded_backpressure(void **state)
{
    (void)state;
    const size_t caps[] = {1, 3, 5};
    for (size_t c = 0; c < 3; c++) {
        size_t cap = caps[c];
        lch_channel *ch = make(cap, -1);
        for (int round = 0; round < 3; round++) {
            /* Exactly `cap` values fit, whatever the ring's real size is. */
            for (size_t i = 0; i < cap; i++)
                assert_rc(lch_channel_send(ch, lch_value_int((int64_t)i),
                                           LCH_NOWAIT),
                          LCH_OK);
            assert_int_equal(lch_channel_len(ch), cap);
            lch_value v = payload_value(7);
            assert_rc(lch_channel_send(ch, v, LCH_NOWAIT), LCH_EAGAIN);
            assert_int_equal(lch_object_refcount(v.u.obj), 1);
            assert_rc(lch_channel_send(ch, v, 1000), LCH_ETIMEDOUT);
            assert_int_equal(lch_object_refcount(v.u.obj), 1);
            assert_int_equal(lch_channel_len(ch), cap);
            lch_value_release(&v);
            /* One out makes room for exactly one. */
            lch_value out = lch_value_none();
            assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
            assert_int_equal(out.u.i, 0);
            assert_rc(lch_channel_send(ch, lch_value_int(100), LCH_NOWAIT),
                      LCH_OK);
            assert_rc(lch_channel_send(ch, lch_value_int(101), LCH_NOWAIT),
                      LCH_EAGAIN);
            for (size_t i = 1; i < cap; i++) {
                assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
                assert_int_equal(out.u.i, (int64_t)i);
            }
            assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
            assert_int_equal(out.u.i, 100);
            assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_EAGAIN);
            assert_int_equal(lch_channel_len(ch), 0);
        }
        lch_channel_unref(ch);
    }
}

static void test_unbounded_many(void **state)
{
    (void)state;
    uint64_t n = tu_count(200000, 1000);
    lch_channel *ch = make(0, -1);
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < n; i++)
            assert_rc(lch_channel_send(ch, lch_value_int((int64_t)i),
                                       LCH_NOWAIT),
                      LCH_OK);
        assert_int_equal(lch_channel_len(ch), n);
        for (uint64_t i = 0; i < n; i++) {
            lch_value out = lch_value_none();
            int rc = lch_channel_recv(ch, &out, LCH_NOWAIT);
            if (rc != LCH_OK || out.u.i != (int64_t)i)
                fail_msg("recv #%llu: %s, value %lld", (unsigned long long)i,
                         lch_err_name(rc), (long long)out.u.i);
        }
        assert_int_equal(lch_channel_len(ch), 0);
    }
    /* Interleaved: the queue never grows beyond a few values. */
    for (uint64_t i = 0; i < n; i++) {
        assert_rc(lch_channel_send(ch, lch_value_int((int64_t)i), LCH_NOWAIT),
                  LCH_OK);
        if (i % 3 == 2) {
            lch_value out = lch_value_none();
            for (int k = 0; k < 3; k++)
                assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
            assert_int_equal(out.u.i, (int64_t)i);
        }
    }
    /* Destroying it with values queued is fine. */
    lch_channel_unref(ch);
}

/* ---- timeouts ------------------------------------------------------------- */

static const int64_t small_timeouts[] = {1, 999, 1000, 50000, 1000000,
                                         20000000};

static void test_recv_timeouts(void **state)
{
    (void)state;
    const int64_t spins[] = {-1, 0};
    for (size_t s = 0; s < 2; s++) {
        lch_channel *ch = make(s ? 0 : 4, spins[s]);
        lch_value out = lch_value_int(1);
        int64_t t0 = tu_now_ns();
        assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_EAGAIN);
        assert_int_equal(out.kind, LCH_NONE);
        (void)t0;

        for (size_t i = 0; i < sizeof small_timeouts / sizeof(int64_t); i++) {
            int64_t timeout = small_timeouts[i];
            out = lch_value_int(1);
            t0 = tu_now_ns();
            int rc = lch_channel_recv(ch, &out, timeout);
            int64_t elapsed = tu_now_ns() - t0;
            assert_rc(rc, LCH_ETIMEDOUT);
            assert_int_equal(out.kind, LCH_NONE);
            if (elapsed < timeout)
                fail_msg("recv(timeout %lld ns) gave up after %lld ns",
                         (long long)timeout, (long long)elapsed);

            size_t n = 99;
            lch_value outs[2] = {lch_value_int(1), lch_value_int(2)};
            t0 = tu_now_ns();
            rc = lch_channel_recv_batch(ch, outs, 2, &n, timeout);
            elapsed = tu_now_ns() - t0;
            assert_rc(rc, LCH_ETIMEDOUT);
            assert_int_equal(n, 0);
            if (elapsed < timeout)
                fail_msg("recv_batch(timeout %lld ns) gave up after %lld ns",
                         (long long)timeout, (long long)elapsed);
        }
        lch_channel_unref(ch);
    }
}

static void test_send_timeouts(void **state)
{
    (void)state;
    const int64_t spins[] = {-1, 0};
    for (size_t s = 0; s < 2; s++) {
        lch_channel *ch = make(1, spins[s]);
        assert_rc(lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT), LCH_OK);
        lch_value v = payload_value(3);
        assert_rc(lch_channel_send(ch, v, LCH_NOWAIT), LCH_EAGAIN);
        for (size_t i = 0; i < sizeof small_timeouts / sizeof(int64_t); i++) {
            int64_t timeout = small_timeouts[i];
            int64_t t0 = tu_now_ns();
            int rc = lch_channel_send(ch, v, timeout);
            int64_t elapsed = tu_now_ns() - t0;
            assert_rc(rc, LCH_ETIMEDOUT);
            assert_int_equal(lch_object_refcount(v.u.obj), 1);
            if (elapsed < timeout)
                fail_msg("send(timeout %lld ns) gave up after %lld ns",
                         (long long)timeout, (long long)elapsed);

            size_t n = 99;
            t0 = tu_now_ns();
            rc = lch_channel_send_batch(ch, &v, 1, &n, timeout);
            elapsed = tu_now_ns() - t0;
            assert_rc(rc, LCH_ETIMEDOUT);
            assert_int_equal(n, 0);
            if (elapsed < timeout)
                fail_msg("send_batch(timeout %lld ns) gave up after %lld ns",
                         (long long)timeout, (long long)elapsed);
        }
        assert_int_equal(lch_object_refcount(v.u.obj), 1);
        assert_int_equal(lch_channel_len(ch), 1);
        lch_value_release(&v);
        lch_channel_unref(ch);
    }
}

/* A helper that sends to or receives from a channel after a delay. */
typedef struct delayed {
    lch_channel *ch;
    bool do_send;
    int rc;
    lch_value got;
} delayed;

static void *delayed_main(void *arg)
{
    delayed *d = arg;
    tu_sleep_ns(20 * TU_MS);
    if (d->do_send)
        d->rc = lch_channel_send(d->ch, lch_value_int(77), LCH_FOREVER);
    else
        d->rc = lch_channel_recv(d->ch, &d->got, LCH_FOREVER);
    return NULL;
}

/* Negative timeouts wait (they are not "try once"); huge positive ones must
 * not overflow a deadline into the past. */
static const int64_t long_timeouts[] = {LCH_FOREVER, -5, INT64_MIN, INT64_MAX,
                                        INT64_MAX - 1, 3600 * TU_S};

static void test_recv_long_timeouts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof long_timeouts / sizeof(int64_t); i++) {
        lch_channel *ch = make(i % 2 ? 0 : 2, i % 3 ? -1 : 0);
        delayed d = {.ch = ch, .do_send = true, .rc = 1};
        pthread_t t;
        tu_spawn(&t, delayed_main, &d);
        lch_value out = lch_value_none();
        int rc = lch_channel_recv(ch, &out, long_timeouts[i]);
        size_t n = 0;
        lch_value outs[1] = {lch_value_none()};
        tu_join(t);
        assert_rc(d.rc, LCH_OK);
        if (rc != LCH_OK)
            fail_msg("recv(timeout %lld) returned %s instead of waiting",
                     (long long)long_timeouts[i], lch_err_name(rc));
        assert_int_equal(out.u.i, 77);

        d.rc = 1;
        tu_spawn(&t, delayed_main, &d);
        rc = lch_channel_recv_batch(ch, outs, 1, &n, long_timeouts[i]);
        tu_join(t);
        assert_rc(d.rc, LCH_OK);
        if (rc != LCH_OK)
            fail_msg("recv_batch(timeout %lld) returned %s instead of waiting",
                     (long long)long_timeouts[i], lch_err_name(rc));
        assert_int_equal(n, 1);
        assert_int_equal(outs[0].u.i, 77);
        lch_channel_unref(ch);
    }
}

static void test_send_long_timeouts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof long_timeouts / sizeof(int64_t); i++) {
        lch_channel *ch = make(1, i % 3 ? -1 : 0);
        assert_rc(lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT), LCH_OK);
        delayed d = {.ch = ch, .do_send = false, .rc = 1};
        pthread_t t;
        tu_spawn(&t, delayed_main, &d);
        int rc = lch_channel_send(ch, lch_value_int(2), long_timeouts[i]);
        tu_join(t);
        assert_rc(d.rc, LCH_OK);
        assert_int_equal(d.got.u.i, 1);
        if (rc != LCH_OK)
            fail_msg("send(timeout %lld) returned %s instead of waiting",
                     (long long)long_timeouts[i], lch_err_name(rc));

        d.rc = 1;
        tu_spawn(&t, delayed_main, &d);
        lch_value v[2] = {lch_value_int(3), lch_value_int(4)};
        size_t n = 0;
        rc = lch_channel_send_batch(ch, v, 2, &n, long_timeouts[i]);
        tu_join(t);
        assert_rc(d.rc, LCH_OK);
        assert_int_equal(d.got.u.i, 2);
        if (rc != LCH_OK)
            fail_msg("send_batch(timeout %lld) returned %s instead of waiting",
                     (long long)long_timeouts[i], lch_err_name(rc));
        assert_int_equal(n, 1); /* capacity 1: exactly one fits */
        lch_value out = lch_value_none();
        assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
        assert_int_equal(out.u.i, 3);
        lch_channel_unref(ch);
    }
}

/* ---- batches -------------------------------------------------------------- */

static void test_batch_bad_args(void **state)
{
    (void)state;
    lch_channel *ch = make(4, -1);
    lch_value v[2] = {lch_value_int(1), lch_value_int(2)};
    size_t n = 99;
    assert_rc(lch_channel_send_batch(NULL, v, 2, &n, LCH_NOWAIT), LCH_EINVAL);
    assert_int_equal(n, 0);
    n = 99;
    assert_rc(lch_channel_send_batch(ch, NULL, 2, &n, LCH_NOWAIT), LCH_EINVAL);
    assert_int_equal(n, 0);
    n = 99;
    assert_rc(lch_channel_send_batch(ch, v, 0, &n, LCH_NOWAIT), LCH_EINVAL);
    assert_int_equal(n, 0);
    n = 99;
    assert_rc(lch_channel_send_batch(ch, v, 0, &n, LCH_FOREVER), LCH_EINVAL);
    assert_int_equal(n, 0);
    assert_rc(lch_channel_send_batch(ch, v, 2, NULL, LCH_NOWAIT), LCH_EINVAL);
    assert_int_equal(lch_channel_len(ch), 0);

    lch_value out[2] = {lch_value_int(5), lch_value_int(6)};
    n = 99;
    assert_rc(lch_channel_recv_batch(NULL, out, 2, &n, LCH_NOWAIT), LCH_EINVAL);
    assert_int_equal(n, 0);
    n = 99;
    assert_rc(lch_channel_recv_batch(ch, NULL, 2, &n, LCH_NOWAIT), LCH_EINVAL);
    assert_int_equal(n, 0);
    n = 99;
    assert_rc(lch_channel_recv_batch(ch, out, 0, &n, LCH_FOREVER), LCH_EINVAL);
    assert_int_equal(n, 0);
    assert_rc(lch_channel_recv_batch(ch, out, 2, NULL, LCH_NOWAIT), LCH_EINVAL);

    /* n == 0 is refused even when values are queued; nothing is taken. */
    assert_rc(lch_channel_send(ch, lch_value_int(9), LCH_NOWAIT), LCH_OK);
    n = 99;
    assert_rc(lch_channel_recv_batch(ch, out, 0, &n, LCH_NOWAIT), LCH_EINVAL);
    assert_int_equal(n, 0);
    assert_int_equal(lch_channel_len(ch), 1);
    lch_channel_unref(ch);
}

static void test_batch_bounded(void **state)
{
    (void)state;
    lch_channel *ch = make(3, -1);
    lch_value v[5];
    for (int i = 0; i < 5; i++) {
        v[i] = payload_value((uint64_t)i);
        v[i].tag = (uint32_t)i;
    }
    size_t n = 99;
    assert_rc(lch_channel_send_batch(ch, v, 5, &n, LCH_NOWAIT), LCH_OK);
    assert_int_equal(n, 3);
    assert_int_equal(lch_channel_len(ch), 3);
    /* The caller still owns v[3] and v[4]. */
    assert_int_equal(lch_object_refcount(v[3].u.obj), 1);
    assert_int_equal(lch_object_refcount(v[4].u.obj), 1);
    n = 99;
    assert_rc(lch_channel_send_batch(ch, v + 3, 2, &n, LCH_NOWAIT), LCH_EAGAIN);
    assert_int_equal(n, 0);
    n = 99;
    assert_rc(lch_channel_send_batch(ch, v + 3, 2, &n, 1000), LCH_ETIMEDOUT);
    assert_int_equal(n, 0);

    lch_value out[8];
    for (int i = 0; i < 8; i++)
        out[i] = lch_value_int(-1 - i);
    n = 99;
    assert_rc(lch_channel_recv_batch(ch, out, 8, &n, LCH_NOWAIT), LCH_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out[i].kind, LCH_OBJECT);
        assert_int_equal(out[i].tag, (uint32_t)i);
        tu_payload *p = tu_payload_get(out[i].u.obj);
        assert_non_null(p);
        assert_int_equal(p->id, (uint64_t)i);
        lch_value_release(&out[i]);
    }
    for (int i = 3; i < 8; i++) { /* untouched */
        assert_int_equal(out[i].kind, LCH_INT);
        assert_int_equal(out[i].u.i, -1 - i);
    }
    n = 99;
    assert_rc(lch_channel_recv_batch(ch, out, 8, &n, LCH_NOWAIT), LCH_EAGAIN);
    assert_int_equal(n, 0);

    /* The rest goes in now; a smaller receive batch takes only what it asks. */
    n = 0;
    assert_rc(lch_channel_send_batch(ch, v + 3, 2, &n, LCH_NOWAIT), LCH_OK);
    assert_int_equal(n, 2);
    n = 0;
    assert_rc(lch_channel_recv_batch(ch, out, 1, &n, LCH_NOWAIT), LCH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].tag, 3);
    lch_value_release(&out[0]);
    assert_int_equal(lch_channel_len(ch), 1);
    lch_channel_unref(ch); /* releases v[4] */
}

static void test_batch_unbounded(void **state)
{
    (void)state;
    lch_channel *ch = make(0, -1);
    enum { N = 1000 };
    static lch_value v[N];
    for (int i = 0; i < N; i++)
        v[i] = lch_value_int(i);
    size_t n = 0;
    assert_rc(lch_channel_send_batch(ch, v, N, &n, LCH_NOWAIT), LCH_OK);
    assert_int_equal(n, N); /* everything fits in an unbounded channel */
    assert_rc(lch_channel_send_batch(ch, v, 1, &n, LCH_FOREVER), LCH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(lch_channel_len(ch), N + 1);

    int64_t expect = 0;
    lch_value out[64];
    while (expect < N) {
        size_t want = N - expect < 64 ? (size_t)(N - expect) : 64;
        n = 0;
        assert_rc(lch_channel_recv_batch(ch, out, want, &n, LCH_FOREVER),
                  LCH_OK);
        assert_true(n >= 1 && n <= want);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(out[i].u.i, expect++);
    }
    assert_rc(lch_channel_recv_batch(ch, out, 64, &n, LCH_NOWAIT), LCH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].u.i, 0);
    lch_channel_unref(ch);
}

/* ---- close ---------------------------------------------------------------- */

static void test_close_semantics(void **state)
{
    (void)state;
    const size_t caps[] = {0, 4};
    for (size_t c = 0; c < 2; c++) {
        lch_channel *ch = make(caps[c], -1);
        assert_rc(lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT), LCH_OK);
        assert_rc(lch_channel_send(ch, payload_value(2), LCH_NOWAIT), LCH_OK);
        assert_rc(lch_channel_send(ch, lch_value_int(3), LCH_NOWAIT), LCH_OK);
        assert_rc(lch_channel_close(ch), LCH_OK);
        assert_rc(lch_channel_close(ch), LCH_OK); /* idempotent */
        assert_true(lch_channel_is_closed(ch));
        assert_int_equal(lch_channel_len(ch), 3);

        /* Sends fail and leave the value with the caller. */
        lch_value v = payload_value(4);
        const int64_t timeouts[] = {LCH_NOWAIT, LCH_FOREVER, 1000};
        for (int t = 0; t < 3; t++) {
            assert_rc(lch_channel_send(ch, v, timeouts[t]), LCH_ECLOSED);
            assert_int_equal(lch_object_refcount(v.u.obj), 1);
            size_t n = 99;
            assert_rc(lch_channel_send_batch(ch, &v, 1, &n, timeouts[t]),
                      LCH_ECLOSED);
            assert_int_equal(n, 0);
        }
        uint64_t released = tu_payload_released();
        lch_value_release(&v);
        assert_int_equal(tu_payload_released(), released + 1);

        /* Receives drain in order, then fail. */
        lch_value out = lch_value_none();
        assert_rc(lch_channel_recv(ch, &out, LCH_FOREVER), LCH_OK);
        assert_int_equal(out.u.i, 1);
        size_t n = 0;
        lch_value outs[4];
        assert_rc(lch_channel_recv_batch(ch, outs, 4, &n, LCH_FOREVER), LCH_OK);
        assert_int_equal(n, 2);
        assert_non_null(tu_payload_get(outs[0].u.obj));
        assert_int_equal(outs[1].u.i, 3);
        lch_value_release(&outs[0]);
        for (int t = 0; t < 3; t++) {
            out = lch_value_int(5);
            assert_rc(lch_channel_recv(ch, &out, timeouts[t]), LCH_ECLOSED);
            assert_int_equal(out.kind, LCH_NONE);
            n = 99;
            assert_rc(lch_channel_recv_batch(ch, outs, 4, &n, timeouts[t]),
                      LCH_ECLOSED);
            assert_int_equal(n, 0);
        }
        assert_int_equal(lch_channel_len(ch), 0);
        assert_rc(lch_channel_close_now(ch), LCH_OK);
        assert_rc(lch_channel_close(ch), LCH_OK);
        lch_channel_unref(ch);
    }
}

static void test_close_now_semantics(void **state)
{
    (void)state;
    const size_t caps[] = {0, 8};
    for (size_t c = 0; c < 2; c++) {
        lch_channel *ch = make(caps[c], -1);
        uint64_t released = tu_payload_released();
        for (int i = 0; i < 6; i++)
            assert_rc(lch_channel_send(ch, i % 2 ? payload_value((uint64_t)i)
                                                 : lch_value_int(i),
                                       LCH_NOWAIT),
                      LCH_OK);
        assert_rc(lch_channel_close_now(ch), LCH_OK);
        /* Released by the time close_now returns, not at destruction. */
        assert_int_equal(tu_payload_released(), released + 3);
        assert_int_equal(lch_channel_len(ch), 0);
        assert_true(lch_channel_is_closed(ch));
        lch_value out = lch_value_int(1);
        assert_rc(lch_channel_recv(ch, &out, LCH_FOREVER), LCH_ECLOSED);
        assert_int_equal(out.kind, LCH_NONE);
        assert_rc(lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT),
                  LCH_ECLOSED);
        assert_rc(lch_channel_close_now(ch), LCH_OK);
        assert_rc(lch_channel_close(ch), LCH_OK);
        lch_channel_unref(ch);
    }
}

static void test_destroy_releases_queued(void **state)
{
    (void)state;
    const size_t caps[] = {0, 16};
    for (size_t c = 0; c < 2; c++) {
        lch_channel *ch = make(caps[c], -1);
        uint64_t released = tu_payload_released();
        for (uint64_t i = 0; i < 10; i++)
            assert_rc(lch_channel_send(ch, payload_value(i), LCH_NOWAIT),
                      LCH_OK);
        lch_value out = lch_value_none();
        assert_rc(lch_channel_recv(ch, &out, LCH_NOWAIT), LCH_OK);
        lch_value_release(&out);
        assert_int_equal(tu_payload_released(), released + 1);
        if (c == 1)
            assert_rc(lch_channel_close(ch), LCH_OK); /* closed or not */
        lch_channel_unref(ch);
        assert_int_equal(tu_payload_released(), released + 10);
    }
}

/* ---- objects, values, refcounts ------------------------------------------ */

static _Atomic int plain_destroyed;
static void plain_destroy(lch_object *obj)
{
    (void)obj;
    atomic_fetch_add(&plain_destroyed, 1);
}
static const lch_type plain_type = {LCH_TYPE_USER, "plain", plain_destroy};
static const lch_type nodestroy_type = {LCH_TYPE_USER + 1, "nodestroy", NULL};
static const lch_type reserved_type = {LCH_TYPE_USER - 1, "reserved", NULL};
static const lch_type channel_tag_type = {LCH_TYPE_CHANNEL, "fake", NULL};

static void test_object_new(void **state)
{
    (void)state;
    assert_null(lch_object_new(NULL, 8));
    assert_null(lch_object_new(&reserved_type, 8));
    assert_null(lch_object_new(&channel_tag_type, 8));
    /* Sizes that overflow any header arithmetic. */
    assert_null(lch_object_new(&plain_type, SIZE_MAX));
    assert_null(lch_object_new(&plain_type, SIZE_MAX - 15));
    assert_null(lch_object_new(&plain_type, SIZE_MAX / 2 + 1));
    assert_int_equal(atomic_load(&plain_destroyed), 0);

    const size_t sizes[] = {0, 1, 7, 16, 100, 4096, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        lch_object *obj = lch_object_new(&plain_type, sizes[i]);
        assert_non_null(obj);
        assert_int_equal(lch_object_type(obj), LCH_TYPE_USER);
        assert_int_equal(lch_object_refcount(obj), 1);
        assert_null(lch_channel_from_object(obj));
        unsigned char *p = lch_object_payload(obj);
        if (sizes[i] > 0) {
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
            for (size_t k = 0; k < sizes[i]; k++)
                if (p[k] != 0)
                    fail_msg("payload byte %zu of %zu not zeroed", k, sizes[i]);
            memset(p, 0xab, sizes[i]); /* all of it is usable */
        }
        int before = atomic_load(&plain_destroyed);
        assert_rc(lch_object_ref(obj), LCH_OK);
        assert_int_equal(lch_object_refcount(obj), 2);
        lch_object_unref(obj);
        assert_int_equal(lch_object_refcount(obj), 1);
        assert_int_equal(atomic_load(&plain_destroyed), before);
        lch_object_unref(obj);
        assert_int_equal(atomic_load(&plain_destroyed), before + 1);
    }

    lch_object *obj = lch_object_new(&nodestroy_type, 4);
    assert_non_null(obj);
    assert_int_equal(lch_object_type(obj), LCH_TYPE_USER + 1);
    lch_object_unref(obj);
}

static void test_debug_track_objects(void **state)
{
    (void)state;
    int64_t base_live = tu_counters().live_objects;
    lch_object *a = lch_object_new(&plain_type, 1);
    assert_non_null(a);
    assert_int_equal(tu_counters().live_objects, base_live + 1);
    lch_channel *ch = make(0, -1); /* channels are objects too */
    assert_int_equal(tu_counters().live_objects, base_live + 2);

    lch_debug_track_objects(false);
    lch_object *b = lch_object_new(&plain_type, 1);
    assert_non_null(b);
    assert_int_equal(tu_counters().live_objects, base_live + 2);
    lch_object_unref(a); /* counted at creation: uncounted now */
    assert_int_equal(tu_counters().live_objects, base_live + 1);
    lch_debug_track_objects(true);
    lch_object_unref(b); /* never counted */
    assert_int_equal(tu_counters().live_objects, base_live + 1);
    lch_channel_unref(ch);
}

/* The count refuses to pass its ceiling instead of wrapping around. The
 * ceiling is not part of the contract, so count up to it (about 2^30 here:
 * a few seconds). Done on a channel, so lch_channel_ref, lch_object_ref,
 * lch_value_copy and a registry lookup all meet the same full count. */
static void test_refcount_overflow(void **state)
{
    (void)state;
    lch_channel *ch = make(0, -1);
    lch_object *obj = lch_channel_object(ch);
    uint64_t taken = 0;
    int rc;
    while ((rc = lch_object_ref(obj)) == LCH_OK) {
        if (++taken > UINT32_MAX)
            fail_msg("2^32 references taken without LCH_EOVERFLOW");
    }
    assert_rc(rc, LCH_EOVERFLOW);
    assert_true(taken >= 1000000); /* a real ceiling, not a tiny one */
    uint32_t full = lch_object_refcount(obj);
    assert_int_equal(full, taken + 1);
    assert_rc(lch_channel_ref(ch), LCH_EOVERFLOW);
    assert_rc(lch_object_ref(obj), LCH_EOVERFLOW);
    lch_value src = lch_value_object(obj), dst = lch_value_int(1);
    assert_rc(lch_value_copy(&dst, &src), LCH_EOVERFLOW);
    assert_int_equal(dst.kind, LCH_NONE);
    lch_channel *found = GARBAGE_CH;
    rc = lch_channel_lookup_id(lch_channel_id(ch), &found);
    /* Alive, but no reference can be taken: overflow, not "not found". */
    assert_rc(rc, LCH_EOVERFLOW);
    assert_null(found);
    assert_int_equal(lch_object_refcount(obj), full);
    /* One back below the ceiling: references work again. */
    lch_object_unref(obj);
    assert_rc(lch_channel_ref(ch), LCH_OK);
    for (uint64_t i = 0; i < taken; i++)
        lch_object_unref(obj);
    assert_int_equal(lch_object_refcount(obj), 1);
    assert_rc(lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT), LCH_OK);
    lch_channel_unref(ch);
    print_message("[ INFO     ] reference ceiling: %llu\n",
                  (unsigned long long)full);
}

static void test_debug_barrier(void **state)
{
    (void)state;
    lch_debug_barrier(); /* nothing pending: returns */
    int64_t before = tu_alloc_live();
    for (int i = 0; i < 20; i++) {
        lch_channel *ch = NULL;
        lch_channel_opts opts = {.capacity = (size_t)(i % 3), .name = "barrier",
                                 .spin_ns = -1};
        assert_rc(lch_channel_create_opts(&ch, &opts), LCH_OK);
        assert_rc(lch_channel_send(ch, lch_value_int(i), LCH_NOWAIT), LCH_OK);
        lch_channel_unref(ch); /* memory may go after a grace period */
    }
    lch_debug_barrier();
    assert_int_equal(tu_alloc_live(), before); /* ...but it is gone now */
}

static void test_value_helpers(void **state)
{
    (void)state;
    lch_value v = lch_value_none();
    assert_int_equal(v.kind, LCH_NONE);
    assert_int_equal(v.tag, 0);
    v = lch_value_bool(true);
    assert_true(v.kind == LCH_BOOL && v.u.b);
    v = lch_value_int(-3);
    assert_true(v.kind == LCH_INT && v.u.i == -3);
    v = lch_value_float(2.5);
    assert_true(v.kind == LCH_FLOAT && v.u.f == 2.5);

    /* Release of a scalar just resets it. */
    v.tag = 9;
    lch_value_release(&v);
    assert_int_equal(v.kind, LCH_NONE);

    /* Copy of a scalar keeps kind, tag and bits. */
    lch_value src = lch_value_int(123), dst = lch_value_bool(true);
    src.tag = 77;
    assert_rc(lch_value_copy(&dst, &src), LCH_OK);
    assert_true(dst.kind == LCH_INT && dst.u.i == 123 && dst.tag == 77);

    /* Copy of an object takes its own counted reference. */
    lch_value o = payload_value(5);
    o.tag = 4;
    assert_rc(lch_value_copy(&dst, &o), LCH_OK);
    assert_true(dst.kind == LCH_OBJECT && dst.u.obj == o.u.obj && dst.tag == 4);
    assert_int_equal(lch_object_refcount(o.u.obj), 2);
    uint64_t released = tu_payload_released();
    lch_value_release(&dst);
    assert_int_equal(dst.kind, LCH_NONE);
    assert_int_equal(lch_object_refcount(o.u.obj), 1);
    assert_int_equal(tu_payload_released(), released);

    /* Bad arguments. */
    dst = lch_value_int(1);
    assert_rc(lch_value_copy(&dst, NULL), LCH_EINVAL);
    assert_int_equal(dst.kind, LCH_NONE);
    assert_rc(lch_value_copy(NULL, &o), LCH_EINVAL);
    assert_int_equal(lch_object_refcount(o.u.obj), 1);

    lch_value_release(&o);
    assert_int_equal(o.kind, LCH_NONE);
    assert_int_equal(tu_payload_released(), released + 1);
    lch_value_release(&o); /* releasing None again is harmless */
    assert_int_equal(tu_payload_released(), released + 1);
}

static void test_channel_refcount_and_object(void **state)
{
    (void)state;
    lch_channel *ch = make(4, -1);
    lch_object *obj = lch_channel_object(ch);
    assert_non_null(obj);
    assert_int_equal(lch_object_type(obj), LCH_TYPE_CHANNEL);
    assert_null(lch_object_payload(obj));
    assert_ptr_equal(lch_channel_from_object(obj), ch);
    assert_int_equal(lch_object_refcount(obj), 1);
    assert_rc(lch_channel_ref(ch), LCH_OK);
    assert_int_equal(lch_object_refcount(obj), 2);
    assert_rc(lch_object_ref(obj), LCH_OK); /* the same count */
    assert_int_equal(lch_object_refcount(obj), 3);
    lch_object_unref(obj);
    lch_channel_unref(ch);
    assert_int_equal(lch_object_refcount(obj), 1);
    /* Still usable with the remaining reference. */
    assert_rc(lch_channel_send(ch, lch_value_int(1), LCH_NOWAIT), LCH_OK);
    /* The last reference may be dropped through the object too. */
    lch_object_unref(obj);
}

static void test_channel_through_channel(void **state)
{
    (void)state;
    lch_channel *a = make(2, -1), *b = make(0, -1);
    uint64_t b_id = lch_channel_id(b);
    assert_rc(lch_channel_send(b, payload_value(1), LCH_NOWAIT), LCH_OK);

    /* Send b (a new reference) through a; receive it and use it. */
    assert_rc(lch_channel_ref(b), LCH_OK);
    lch_value v = lch_value_object(lch_channel_object(b));
    assert_rc(lch_channel_send(a, v, LCH_NOWAIT), LCH_OK);
    assert_int_equal(lch_object_refcount(lch_channel_object(b)), 2);
    lch_value out = lch_value_none();
    assert_rc(lch_channel_recv(a, &out, LCH_NOWAIT), LCH_OK);
    assert_int_equal(out.kind, LCH_OBJECT);
    lch_channel *got = lch_channel_from_object(out.u.obj);
    assert_ptr_equal(got, b);
    assert_int_equal(lch_channel_id(got), b_id);
    assert_rc(lch_channel_send(got, lch_value_int(2), LCH_NOWAIT), LCH_OK);
    assert_int_equal(lch_channel_len(b), 2);
    lch_value_release(&out);
    assert_int_equal(lch_object_refcount(lch_channel_object(b)), 1);

    /* Now let a hold b's last reference: destroying a destroys b, which
     * releases what b holds. */
    assert_rc(lch_channel_send(a, lch_value_object(lch_channel_object(b)),
                               LCH_NOWAIT),
              LCH_OK);
    uint64_t released = tu_payload_released();
    int64_t live = tu_counters().live_objects;
    lch_channel *found = GARBAGE_CH;
    assert_rc(lch_channel_lookup_id(b_id, &found), LCH_OK);
    lch_channel_unref(found);
    lch_channel_unref(a);
    assert_int_equal(tu_payload_released(), released + 1);
    /* a, b and the payload b held */
    assert_int_equal(tu_counters().live_objects, live - 3);
    found = GARBAGE_CH;
    assert_rc(lch_channel_lookup_id(b_id, &found), LCH_ENOENT);
    assert_null(found);

    /* close_now releases a queued channel too. */
    a = make(0, -1);
    b = make(0, -1);
    assert_rc(lch_channel_send(a, lch_value_object(lch_channel_object(b)),
                               LCH_NOWAIT),
              LCH_OK);
    live = tu_counters().live_objects;
    assert_rc(lch_channel_close_now(a), LCH_OK);
    assert_int_equal(tu_counters().live_objects, live - 1);
    lch_channel_unref(a);
}

/* ---- out of memory -------------------------------------------------------- */

/* One call under test: attempt() returns an lch_err; after LCH_ENOMEM,
 * failed() checks the state it must leave; after LCH_OK, done() cleans up. */
typedef struct oom_case {
    const char *what;
    int (*attempt)(void *ctx);
    void (*failed)(void *ctx);
    void (*done)(void *ctx);
} oom_case;

/* Fail allocation 1, 2, ... of the call until it succeeds. Each failure must
 * be LCH_ENOMEM and leave nothing allocated; success is only allowed once no
 * failure was injected. Returns how many allocations the call makes. */
static uint64_t run_oom(const oom_case *c, void *ctx)
{
    for (uint64_t n = 1;; n++) {
        if (n > 1000)
            fail_msg("%s: still failing after 1000 allocations", c->what);
        int64_t live = tu_alloc_live();
        int64_t objects = tu_counters().live_objects;
        tu_alloc_fail_nth(n);
        int rc = c->attempt(ctx);
        uint64_t calls = tu_alloc_calls(), failures = tu_alloc_failures();
        tu_alloc_fail_nth(0);
        if (rc == LCH_OK) {
            if (failures != 0)
                fail_msg("%s: succeeded although allocation %llu of %llu "
                         "failed",
                         c->what, (unsigned long long)n,
                         (unsigned long long)calls);
            if (c->done)
                c->done(ctx);
            return n - 1;
        }
        if (rc != LCH_ENOMEM)
            fail_msg("%s: failing allocation %llu gave %s, expected ENOMEM",
                     c->what, (unsigned long long)n, lch_err_name(rc));
        if (failures != 1)
            fail_msg("%s: ENOMEM without an injected failure (allocation %llu)",
                     c->what, (unsigned long long)n);
        int64_t after = tu_alloc_live(); /* never published: freed at once */
        if (after != live)
            fail_msg("%s: failing allocation %llu leaked %lld blocks", c->what,
                     (unsigned long long)n, (long long)(after - live));
        if (tu_counters().live_objects != objects)
            fail_msg("%s: failing allocation %llu left live_objects %lld "
                     "(was %lld)",
                     c->what, (unsigned long long)n,
                     (long long)tu_counters().live_objects,
                     (long long)objects);
        if (c->failed)
            c->failed(ctx);
    }
}

typedef struct create_ctx {
    lch_channel_opts opts;
    bool use_opts;
    lch_channel *ch;
} create_ctx;

static int create_attempt(void *p)
{
    create_ctx *c = p;
    c->ch = GARBAGE_CH;
    return c->use_opts ? lch_channel_create_opts(&c->ch, &c->opts)
                       : lch_channel_create(&c->ch, c->opts.capacity);
}

static void create_failed(void *p)
{
    create_ctx *c = p;
    assert_null(c->ch);
    if (c->opts.name != NULL) { /* the name was not left registered */
        lch_channel *found = GARBAGE_CH;
        assert_rc(lch_channel_lookup_name(c->opts.name, &found), LCH_ENOENT);
        assert_null(found);
    }
}

static void create_done(void *p)
{
    create_ctx *c = p;
    assert_non_null(c->ch);
    assert_int_equal(lch_channel_capacity(c->ch), c->opts.capacity);
    if (c->opts.name != NULL) {
        lch_channel *found = NULL;
        assert_rc(lch_channel_lookup_name(c->opts.name, &found), LCH_OK);
        assert_ptr_equal(found, c->ch);
        lch_channel_unref(found);
    }
    /* The channel works. */
    assert_rc(lch_channel_send(c->ch, lch_value_int(1), LCH_NOWAIT), LCH_OK);
    lch_value out = lch_value_none();
    assert_rc(lch_channel_recv(c->ch, &out, LCH_NOWAIT), LCH_OK);
    lch_channel_unref(c->ch);
    c->ch = NULL;
}

static void test_oom_create(void **state)
{
    (void)state;
    const oom_case oc = {"lch_channel_create", create_attempt, create_failed,
                         create_done};
    const size_t caps[] = {0, 1, 8, 1000};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        create_ctx c = {.opts = {.capacity = caps[i], .name = NULL,
                                 .spin_ns = -1}};
        uint64_t allocs = run_oom(&oc, &c);
        print_message("[ INFO     ] lch_channel_create(capacity %zu): %llu "
                      "allocations\n",
                      caps[i], (unsigned long long)allocs);
        assert_true(allocs >= 1); /* it goes through the hook */
        c.use_opts = true;
        run_oom(&oc, &c);
    }
}

static void test_oom_create_named(void **state)
{
    (void)state;
    const oom_case oc = {"lch_channel_create_opts(name)", create_attempt,
                         create_failed, create_done};
    const size_t caps[] = {0, 4};
    for (size_t i = 0; i < 2; i++) {
        create_ctx c = {.opts = {.capacity = caps[i], .name = "oom-named",
                                 .spin_ns = 0},
                        .use_opts = true};
        uint64_t allocs = run_oom(&oc, &c);
        print_message("[ INFO     ] named channel (capacity %zu): %llu "
                      "allocations\n",
                      caps[i], (unsigned long long)allocs);
    }
    /* The name is free again once the channel is gone. */
    create_ctx c = {.opts = {.capacity = 0, .name = "oom-named", .spin_ns = 0},
                    .use_opts = true};
    assert_rc(create_attempt(&c), LCH_OK);
    lch_channel_unref(c.ch);
}

typedef struct objnew_ctx {
    size_t size;
    lch_object *obj;
} objnew_ctx;

static int objnew_attempt(void *p)
{
    objnew_ctx *c = p;
    c->obj = lch_object_new(&plain_type, c->size);
    return c->obj != NULL ? LCH_OK : LCH_ENOMEM;
}

static void objnew_done(void *p)
{
    objnew_ctx *c = p;
    lch_object_unref(c->obj);
}

static void test_oom_object_new(void **state)
{
    (void)state;
    const oom_case oc = {"lch_object_new", objnew_attempt, NULL, objnew_done};
    const size_t sizes[] = {0, 32, 10000};
    for (size_t i = 0; i < 3; i++) {
        objnew_ctx c = {.size = sizes[i]};
        assert_true(run_oom(&oc, &c) >= 1);
    }
}

/* Sends into an unbounded channel that must grow. For each send that
 * allocates, fail allocation 1, 2, ... until it succeeds. A failed send must
 * return LCH_ENOMEM with nothing queued, nothing released and the value still
 * the caller's. A batch may instead stop short (LCH_OK, *nsent < n) when
 * growing fails part-way: the values it took are queued, the rest are still
 * the caller's and are sent next. */
typedef struct growth {
    lch_channel *ch;
    uint64_t allocating; /* sends that needed memory */
    uint64_t short_batches;
} growth;

static void assert_owned(const lch_value *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_non_null(tu_payload_get(v[i].u.obj));
        assert_int_equal(lch_object_refcount(v[i].u.obj), 1);
    }
}

/* Send v[0..n) (one call per attempt; batch or not), failing allocations. */
static void grow_send(growth *g, lch_value *v, size_t n, bool batch)
{
    size_t off = 0;
    uint64_t fail_at = 1;
    bool allocated = false;
    while (off < n) {
        if (fail_at > 1000)
            fail_msg("send still failing after 1000 allocations");
        size_t len = lch_channel_len(g->ch);
        uint64_t released = tu_payload_released();
        int64_t live = tu_alloc_live();
        size_t nsent = 99;
        tu_alloc_fail_nth(fail_at);
        int rc = batch ? lch_channel_send_batch(g->ch, v + off, n - off,
                                                &nsent, LCH_NOWAIT)
                       : lch_channel_send(g->ch, v[off], LCH_NOWAIT);
        uint64_t calls = tu_alloc_calls(), failures = tu_alloc_failures();
        tu_alloc_fail_nth(0);
        if (!batch)
            nsent = rc == LCH_OK ? 1 : 0;
        if (calls > 0)
            allocated = true;
        if (rc == LCH_ENOMEM) {
            if (failures != 1)
                fail_msg("ENOMEM without an injected failure");
            assert_int_equal(nsent, 0);
            assert_int_equal(lch_channel_len(g->ch), len);
            assert_int_equal(tu_payload_released(), released);
            assert_int_equal(tu_alloc_live(), live);
            assert_owned(v + off, n - off);
            fail_at++;
            continue;
        }
        assert_rc(rc, LCH_OK);
        assert_true(nsent >= 1 && nsent <= n - off);
        assert_int_equal(lch_channel_len(g->ch), len + nsent);
        assert_int_equal(tu_payload_released(), released);
        if (failures != 0) {
            /* Only a short batch may succeed past a failed allocation. */
            if (!batch || nsent == n - off)
                fail_msg("send succeeded (%zu of %zu) although allocation "
                         "%llu failed",
                         nsent, n - off, (unsigned long long)fail_at);
            g->short_batches++;
            assert_owned(v + off + nsent, n - off - nsent);
        } else if (batch) {
            assert_int_equal(nsent, n - off); /* unbounded: all fit */
        }
        off += nsent;
        fail_at = 1;
    }
    if (allocated)
        g->allocating++;
}

static void oom_sends(bool batch)
{
    growth g = {.ch = make(0, -1)};
    uint64_t id = 0, sends = 0;
    while (g.allocating < 4 && sends < 200000) {
        lch_value v[4];
        size_t n = batch ? 4 : 1;
        for (size_t i = 0; i < n; i++)
            v[i] = payload_value(id++);
        grow_send(&g, v, n, batch);
        sends += n;
    }
    print_message("[ INFO     ] %s: %llu values sent, %llu allocating sends, "
                  "%llu short batches\n",
                  batch ? "send_batch" : "send", (unsigned long long)sends,
                  (unsigned long long)g.allocating,
                  (unsigned long long)g.short_batches);
    if (g.allocating == 0)
        fail_msg("%llu values into an unbounded channel never allocated",
                 (unsigned long long)sends);
    /* All values arrive, in order, exactly once. */
    for (uint64_t expect = 0; expect < id; expect++) {
        lch_value out = lch_value_none();
        assert_rc(lch_channel_recv(g.ch, &out, LCH_NOWAIT), LCH_OK);
        tu_payload *pl = tu_payload_get(out.u.obj);
        assert_non_null(pl);
        assert_int_equal(pl->id, expect);
        lch_value_release(&out);
    }
    lch_value out = lch_value_none();
    assert_rc(lch_channel_recv(g.ch, &out, LCH_NOWAIT), LCH_EAGAIN);
    lch_channel_unref(g.ch);
}

static void test_oom_send_grow(void **state)
{
    (void)state;
    oom_sends(false);
}

static void test_oom_send_batch_grow(void **state)
{
    (void)state;
    oom_sends(true);
}

/* Allocation failures of the creating calls never disturb existing channels:
 * sends into a bounded channel never allocate. */
static void test_bounded_send_never_allocates(void **state)
{
    (void)state;
    lch_channel *ch = make(64, -1);
    for (int round = 0; round < 3; round++) {
        tu_alloc_fail_nth(1);
        for (int i = 0; i < 64; i++)
            assert_rc(lch_channel_send(ch, lch_value_int(i), LCH_NOWAIT),
                      LCH_OK);
        lch_value out[64];
        size_t n = 0;
        assert_rc(lch_channel_recv_batch(ch, out, 64, &n, LCH_NOWAIT), LCH_OK);
        assert_int_equal(n, 64);
        uint64_t calls = tu_alloc_calls();
        tu_alloc_fail_nth(0);
        assert_int_equal(calls, 0);
    }
    lch_channel_unref(ch);
}

int main(int argc, char **argv)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        TU_TEST(test_error_codes_pinned),
        TU_TEST(test_allocator_get_set),
        TU_TEST(test_create_bad_args),
        TU_TEST(test_create_defaults),
        TU_TEST(test_create_names),
        TU_TEST(test_create_max_capacity),
        TU_TEST(test_ring_position_wrap),
        TU_TEST(test_ring_batch_every_offset),
        TU_TEST(test_debug_advance_refuses),
        TU_TEST(test_ids_unique),
        TU_TEST(test_null_handles),
        TU_TEST(test_send_recv_bad_args),
        TU_TEST(test_send_recv_kinds),
        TU_TEST(test_send_refuses_unknown_kinds),
        TU_TEST(test_bounded_backpressure),
        TU_TEST(test_unbounded_many),
        TU_TEST(test_recv_timeouts),
        TU_TEST(test_send_timeouts),
        TU_TEST(test_recv_long_timeouts),
        TU_TEST(test_send_long_timeouts),
        TU_TEST(test_batch_bad_args),
        TU_TEST(test_batch_bounded),
        TU_TEST(test_batch_unbounded),
        TU_TEST(test_close_semantics),
        TU_TEST(test_close_now_semantics),
        TU_TEST(test_destroy_releases_queued),
        TU_TEST(test_object_new),
        TU_TEST(test_debug_track_objects),
        TU_TEST(test_debug_barrier),
        TU_TEST(test_refcount_overflow),
        TU_TEST(test_value_helpers),
        TU_TEST(test_channel_refcount_and_object),
        TU_TEST(test_channel_through_channel),
        TU_TEST(test_oom_create),
        TU_TEST(test_oom_create_named),
        TU_TEST(test_oom_object_new),
        TU_TEST(test_oom_send_grow),
        TU_TEST(test_oom_send_batch_grow),
        TU_TEST(test_bounded_send_never_allocates),
    };
    return tu_run("api", tests, sizeof tests / sizeof tests[0], argc, argv);
}
