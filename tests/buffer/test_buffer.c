/* tests/buffer/test_buffer.c: shared buffers (libchan/buffer.h).
 *
 * Groups, selected by name on the command line (see CMakeLists.txt):
 *   test_api_*    every function and every documented error: alignment, zero
 *                 length, E2BIG, a permitted length the allocator refuses,
 *                 slice bounds (overflow included), adopt/release, resize
 *                 through every storage transition (also under an allocator
 *                 whose realloc always moves to a new 64-byte offset)
 *   test_oom_*    fail the Nth allocation of every creating call for N = 1,
 *                 2, ... until the call succeeds: every failure is ENOMEM,
 *                 leaves *out NULL (or the resized buffer intact) and leaks
 *                 nothing
 *   test_cache_*  the large-block cache: hit after free, trim, limit 0, the
 *                 limit respected, oldest evicted first, huge blocks uncached,
 *                 an allocator swap
 *   test_mt_*     threads: a buffer through a channel keeps its data pointer;
 *                 concurrent refs/slices/unrefs, release exactly once from the
 *                 thread dropping the last reference; concurrent cache users
 *   test_fork_*   fork() while another thread works the cache: the child can
 *                 still create large buffers (the cache lock is not inherited
 *                 held)
 *
 * Every test runs between buf_setup/buf_teardown, which trim the cache and
 * restore its default limit around tu_setup/tu_teardown, so idle blocks never
 * count as leaks. Worker threads never call cmocka: they record what they
 * saw, the main thread asserts after joining them. */
#include "testutil.h"

#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lch_base.h" /* LCH__REF_MAX and the object header (EOVERFLOW) */

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ---- helpers ------------------------------------------------------------- */

static unsigned char pat(size_t i, unsigned seed)
{
    return (unsigned char)(i * 131u + seed * 7u + (i >> 9));
}

static void fill(void *p, size_t len, unsigned seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < len; i++)
        c[i] = pat(i, seed);
}

/* Index of the first byte that differs from the pattern, or len. */
static size_t check(const void *p, size_t len, unsigned seed)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < len; i++)
        if (c[i] != pat(i, seed))
            return i;
    return len;
}

#define assert_pattern(p, len, seed)                                           \
    assert_int_equal(check((p), (len), (seed)), (len))

static bool aligned(const void *p)
{
    return ((uintptr_t)p & (LCH_BUFFER_ALIGN - 1)) == 0;
}

static lch_buffer_cache_stats stats(void)
{
    lch_buffer_cache_stats s;
    memset(&s, 0xa5, sizeof s);
    lch_buffer_cache_stats_get(&s);
    return s;
}

static lch_buffer *make_copy(size_t len, unsigned seed)
{
    void *src = malloc(len ? len : 1);
    assert_non_null(src);
    fill(src, len, seed);
    lch_buffer *b = NULL;
    assert_rc(lch_buffer_new_copy(&b, src, len), LCH_OK);
    free(src);
    assert_non_null(b);
    return b;
}

static uint32_t refcount(lch_buffer *b)
{
    return lch_object_refcount(lch_buffer_object(b));
}

static int buf_setup(void **state)
{
    lch_buffer_cache_set_limit(LCH_BUFFER_CACHE_DEFAULT_LIMIT);
    lch_buffer_cache_trim();
    return tu_setup(state);
}

static int buf_teardown(void **state)
{
    tu_alloc_fail_nth(0);
    lch_buffer_cache_trim();
    lch_buffer_cache_set_limit(LCH_BUFFER_CACHE_DEFAULT_LIMIT);
    return tu_teardown(state);
}

#define BUF_TEST(f) cmocka_unit_test_setup_teardown(f, buf_setup, buf_teardown)

/* Release callback that records its calls. */
struct release_rec {
    _Atomic int calls;
    void *ctx;
    void *data;
    size_t len;
    pthread_t thread;
    bool free_data; /* free(data) on release */
};

static void record_release(void *ctx, void *data, size_t len)
{
    struct release_rec *r = ctx;
    r->ctx = ctx;
    r->data = data;
    r->len = len;
    r->thread = pthread_self();
    if (r->free_data)
        free(data);
    /* Release: a reader that sees the count sees the fields above. */
    atomic_fetch_add_explicit(&r->calls, 1, memory_order_release);
}

static int release_calls(struct release_rec *r)
{
    return atomic_load_explicit(&r->calls, memory_order_acquire);
}

/* ---- api: creation ------------------------------------------------------- */

static void test_api_new_copy(void **state)
{
    (void)state;
    static const size_t sizes[] = {0,        1,         63,           64,
                                   65,       1000,      64 * KiB - 1, 64 * KiB,
                                   64 * KiB + 1, 1 * MiB, 3 * MiB + 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len = sizes[i];
        unsigned char *src = malloc(len + 1);
        assert_non_null(src);
        fill(src, len, (unsigned)i);
        int64_t live = tu_counters().live_objects;
        lch_buffer *b = (lch_buffer *)(uintptr_t)1;
        assert_rc(lch_buffer_new_copy(&b, src, len), LCH_OK);
        assert_non_null(b);
        const void *d = lch_buffer_data(b);
        assert_non_null(d);
        assert_true(aligned(d));
        assert_true(d != (const void *)src);
        assert_int_equal(lch_buffer_len(b), len);
        memset(src, 0, len); /* the buffer holds a copy */
        assert_pattern(d, len, (unsigned)i);
        lch_object *obj = lch_buffer_object(b);
        assert_int_equal(lch_object_type(obj), LCH_TYPE_BUFFER);
        assert_int_equal(lch_object_refcount(obj), 1);
        assert_ptr_equal(lch_buffer_from_object(obj), b);
        assert_null(lch_object_payload(obj));
        /* tracked like every object (tu_init switched tracking on) */
        assert_int_equal(tu_counters().live_objects, live + 1);
        lch_buffer_unref(b);
        assert_int_equal(tu_counters().live_objects, live);
        free(src);
    }
}

static void test_api_new_copy_errors(void **state)
{
    (void)state;
    unsigned char src[16] = {0};
    lch_buffer *b = (lch_buffer *)(uintptr_t)1;
    assert_rc(lch_buffer_new_copy(NULL, src, 1), LCH_EINVAL);
    assert_rc(lch_buffer_new_copy(&b, NULL, 1), LCH_EINVAL);
    assert_null(b);
    b = (lch_buffer *)(uintptr_t)1;
    assert_rc(lch_buffer_new_copy(&b, src, LCH_BUFFER_MAX_LEN + 1), LCH_E2BIG);
    assert_null(b);
    assert_rc(lch_buffer_new_copy(&b, src, SIZE_MAX), LCH_E2BIG);
    assert_null(b);
    /* Permitted lengths the allocator refuses (the test allocator refuses
     * more than TU_ALLOC_MAX, like malloc does past the address space).
     * src is never read: allocation comes first. */
    static const size_t huge[] = {LCH_BUFFER_MAX_LEN, LCH_BUFFER_MAX_LEN / 2,
                                  (size_t)3 << 30, TU_ALLOC_MAX};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        b = (lch_buffer *)(uintptr_t)1;
        assert_rc(lch_buffer_new_copy(&b, src, huge[i]), LCH_ENOMEM);
        assert_null(b);
        void *d = (void *)(uintptr_t)1;
        b = (lch_buffer *)(uintptr_t)1;
        assert_rc(lch_buffer_new_uninit(&b, huge[i], &d), LCH_ENOMEM);
        assert_null(b);
        assert_null(d);
    }
    assert_int_equal(stats().idle_blocks, 0);
    /* teardown: nothing leaked */
}

static void test_api_zero_length(void **state)
{
    (void)state;
    unsigned char src[1] = {42};
    lch_buffer *b[3] = {NULL, NULL, NULL};
    void *d = NULL;
    assert_rc(lch_buffer_new_copy(&b[0], NULL, 0), LCH_OK);
    assert_rc(lch_buffer_new_copy(&b[1], src, 0), LCH_OK);
    assert_rc(lch_buffer_new_uninit(&b[2], 0, &d), LCH_OK);
    assert_ptr_equal(d, lch_buffer_data(b[2]));
    for (int i = 0; i < 3; i++) {
        assert_non_null(lch_buffer_data(b[i]));
        assert_true(aligned(lch_buffer_data(b[i])));
        assert_int_equal(lch_buffer_len(b[i]), 0);
    }
    /* a zero-length slice at the end, and of a zero-length buffer */
    lch_buffer *s = NULL;
    assert_rc(lch_buffer_slice(&s, b[0], 0, 0), LCH_OK);
    assert_non_null(lch_buffer_data(s));
    assert_int_equal(lch_buffer_len(s), 0);
    lch_buffer_unref(s);
    for (int i = 0; i < 3; i++)
        lch_buffer_unref(b[i]);

    /* adopt(NULL, 0): data is still non-NULL; release sees what was given */
    struct release_rec r = {0};
    assert_rc(lch_buffer_adopt(&b[0], NULL, 0, record_release, &r), LCH_OK);
    assert_non_null(lch_buffer_data(b[0]));
    assert_int_equal(lch_buffer_len(b[0]), 0);
    lch_buffer_unref(b[0]);
    assert_int_equal(release_calls(&r), 1);
    assert_ptr_equal(r.ctx, &r);
    assert_null(r.data);
    assert_int_equal(r.len, 0);
}

static void test_api_misc(void **state)
{
    (void)state;
    assert_null(lch_buffer_data(NULL));
    assert_int_equal(lch_buffer_len(NULL), 0);
    assert_rc(lch_buffer_ref(NULL), LCH_EINVAL);
    lch_buffer_unref(NULL); /* no-op */
    assert_null(lch_buffer_object(NULL));
    assert_null(lch_buffer_from_object(NULL));
    lch_buffer_cache_stats_get(NULL); /* no-op */

    /* from_object on other types */
    lch_channel *ch = NULL;
    assert_rc(lch_channel_create(&ch, 1), LCH_OK);
    assert_null(lch_buffer_from_object(lch_channel_object(ch)));
    lch_channel_unref(ch);
    lch_object *p = tu_payload_new(0, 0, 0);
    assert_non_null(p);
    assert_null(lch_buffer_from_object(p));
    lch_object_unref(p);

    /* ref/unref and values */
    lch_buffer *b = make_copy(100, 1);
    assert_rc(lch_buffer_ref(b), LCH_OK);
    assert_int_equal(refcount(b), 2);
    lch_value v = lch_value_object(lch_buffer_object(b)); /* takes that ref */
    lch_value w;
    assert_rc(lch_value_copy(&w, &v), LCH_OK);
    assert_int_equal(refcount(b), 3);
    assert_ptr_equal(lch_buffer_from_object(w.u.obj), b);
    lch_value_release(&v);
    lch_value_release(&w);
    assert_int_equal(refcount(b), 1);
    assert_pattern(lch_buffer_data(b), 100, 1);
    lch_buffer_unref(b);
}

/* ---- api: adopt ---------------------------------------------------------- */

static void test_api_adopt(void **state)
{
    (void)state;
    static unsigned char mem[1000];
    fill(mem, sizeof mem, 3);
    struct release_rec r = {0};
    lch_buffer *b = NULL;
    assert_rc(lch_buffer_adopt(&b, mem, sizeof mem, record_release, &r),
              LCH_OK);
    assert_ptr_equal(lch_buffer_data(b), mem); /* no copy */
    assert_int_equal(lch_buffer_len(b), sizeof mem);
    assert_int_equal(lch_object_type(lch_buffer_object(b)), LCH_TYPE_BUFFER);
    assert_rc(lch_buffer_ref(b), LCH_OK);
    lch_buffer_unref(b);
    assert_int_equal(release_calls(&r), 0);
    lch_buffer_unref(b);
    assert_int_equal(release_calls(&r), 1);
    assert_ptr_equal(r.ctx, &r);
    assert_ptr_equal(r.data, mem);
    assert_int_equal(r.len, sizeof mem);
    assert_true(pthread_equal(r.thread, pthread_self()));

    /* caller's alignment is kept */
    assert_rc(lch_buffer_adopt(&b, mem + 1, 10, NULL, NULL), LCH_OK);
    assert_ptr_equal(lch_buffer_data(b), mem + 1);
    lch_buffer_unref(b); /* NULL release: nothing to call */

    /* heap memory released by the callback */
    struct release_rec r2 = {.free_data = true};
    unsigned char *heap = malloc(5000);
    assert_non_null(heap);
    assert_rc(lch_buffer_adopt(&b, heap, 5000, record_release, &r2), LCH_OK);
    lch_buffer_unref(b);
    assert_int_equal(release_calls(&r2), 1);

    /* errors: release never called, *out NULL */
    struct release_rec r3 = {0};
    assert_rc(lch_buffer_adopt(NULL, mem, 1, record_release, &r3), LCH_EINVAL);
    b = (lch_buffer *)(uintptr_t)1;
    assert_rc(lch_buffer_adopt(&b, NULL, 1, record_release, &r3), LCH_EINVAL);
    assert_null(b);
    b = (lch_buffer *)(uintptr_t)1;
    assert_rc(lch_buffer_adopt(&b, mem, LCH_BUFFER_MAX_LEN + 1, record_release,
                               &r3),
              LCH_E2BIG);
    assert_null(b);
    /* the largest length is fine: nothing is read or allocated for it */
    assert_rc(lch_buffer_adopt(&b, mem, LCH_BUFFER_MAX_LEN, record_release,
                               &r3),
              LCH_OK);
    assert_int_equal(lch_buffer_len(b), LCH_BUFFER_MAX_LEN);
    lch_buffer_unref(b);
    assert_int_equal(release_calls(&r3), 1);
}

/* ---- api: slices --------------------------------------------------------- */

static void test_api_slice(void **state)
{
    (void)state;
    lch_buffer *root = make_copy(1000, 4);
    const unsigned char *rd = lch_buffer_data(root);
    lch_buffer *s1 = NULL, *s2 = NULL, *s3 = NULL;
    assert_rc(lch_buffer_slice(&s1, root, 100, 500), LCH_OK);
    assert_ptr_equal(lch_buffer_data(s1), rd + 100);
    assert_int_equal(lch_buffer_len(s1), 500);
    assert_int_equal(lch_object_type(lch_buffer_object(s1)), LCH_TYPE_BUFFER);
    assert_ptr_equal(lch_buffer_from_object(lch_buffer_object(s1)), s1);
    assert_int_equal(refcount(root), 2);
    /* a slice of a slice refers to the root, not to its parent */
    assert_rc(lch_buffer_slice(&s2, s1, 50, 100), LCH_OK);
    assert_ptr_equal(lch_buffer_data(s2), rd + 150);
    assert_int_equal(refcount(root), 3);
    assert_int_equal(refcount(s1), 1);
    /* the full range, and an empty range at the very end */
    assert_rc(lch_buffer_slice(&s3, root, 0, 1000), LCH_OK);
    assert_ptr_equal(lch_buffer_data(s3), rd);
    lch_buffer_unref(s3);
    assert_rc(lch_buffer_slice(&s3, s1, 500, 0), LCH_OK);
    assert_ptr_equal(lch_buffer_data(s3), rd + 600);
    assert_int_equal(lch_buffer_len(s3), 0);
    lch_buffer_unref(s3);

    /* the innermost slice keeps the memory alive on its own */
    lch_buffer_unref(root);
    lch_buffer_unref(s1);
    assert_int_equal(refcount(s2), 1);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(((const unsigned char *)lch_buffer_data(s2))[i],
                         pat(150 + i, 4));
    lch_buffer_unref(s2);
}

static void test_api_slice_errors(void **state)
{
    (void)state;
    lch_buffer *root = make_copy(100, 5);
    lch_buffer *s = (lch_buffer *)(uintptr_t)1;
    struct {
        size_t off, len;
    } bad[] = {
        {101, 0},          {100, 1},      {0, 101},
        {50, 51},          {1, SIZE_MAX}, {SIZE_MAX, 1},
        {SIZE_MAX, 0},     {SIZE_MAX, SIZE_MAX},
        {2, SIZE_MAX - 1}, /* offset + len wraps to 0 */
        {99, SIZE_MAX - 97}, /* wraps to 1 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = (lch_buffer *)(uintptr_t)1;
        assert_rc(lch_buffer_slice(&s, root, bad[i].off, bad[i].len),
                  LCH_EINVAL);
        assert_null(s);
    }
    /* and of a slice: bounds are the slice's, not the root's */
    lch_buffer *s1 = NULL;
    assert_rc(lch_buffer_slice(&s1, root, 10, 20), LCH_OK);
    assert_rc(lch_buffer_slice(&s, s1, 0, 21), LCH_EINVAL);
    assert_rc(lch_buffer_slice(&s, s1, 21, 0), LCH_EINVAL);
    assert_rc(lch_buffer_slice(&s, s1, 20, 0), LCH_OK);
    lch_buffer_unref(s);
    assert_rc(lch_buffer_slice(&s, NULL, 0, 0), LCH_EINVAL);
    assert_null(s);
    assert_rc(lch_buffer_slice(NULL, root, 0, 1), LCH_EINVAL);
    assert_int_equal(refcount(root), 2);

    /* the root's count at its ceiling: EOVERFLOW, nothing leaked */
    lch_object *obj = lch_buffer_object(root);
    atomic_store_explicit(&obj->refcount, LCH__REF_MAX, memory_order_relaxed);
    s = (lch_buffer *)(uintptr_t)1;
    assert_rc(lch_buffer_slice(&s, root, 0, 1), LCH_EOVERFLOW);
    assert_null(s);
    assert_rc(lch_buffer_slice(&s, s1, 0, 1), LCH_EOVERFLOW);
    assert_rc(lch_buffer_ref(root), LCH_EOVERFLOW);
    assert_int_equal(refcount(root), LCH__REF_MAX);
    atomic_store_explicit(&obj->refcount, 2, memory_order_relaxed);

    lch_buffer_unref(s1);
    lch_buffer_unref(root);
}

static void test_api_slice_keeps_storage(void **state)
{
    (void)state;
    /* adopted: release only when the last slice goes */
    static unsigned char mem[256];
    struct release_rec r = {0};
    lch_buffer *b = NULL, *s = NULL;
    assert_rc(lch_buffer_adopt(&b, mem, sizeof mem, record_release, &r),
              LCH_OK);
    assert_rc(lch_buffer_slice(&s, b, 10, 10), LCH_OK);
    assert_ptr_equal(lch_buffer_data(s), mem + 10);
    lch_buffer_unref(b);
    assert_int_equal(release_calls(&r), 0);
    lch_buffer_unref(s);
    assert_int_equal(release_calls(&r), 1);

    /* large: the block goes back to the cache only when the last slice goes */
    b = make_copy(2 * MiB, 6);
    assert_rc(lch_buffer_slice(&s, b, MiB, MiB), LCH_OK);
    lch_buffer_unref(b);
    assert_int_equal(stats().idle_blocks, 0);
    assert_pattern((const unsigned char *)lch_buffer_data(s) - MiB, 2 * MiB,
                   6);
    lch_buffer_unref(s);
    assert_int_equal(stats().idle_blocks, 1);
}

/* ---- api: uninit and resize ---------------------------------------------- */

/* Resize b to len, check the first min(old, len) bytes survived with `seed`,
 * then pattern the whole buffer with `seed` again. */
static void *resize_checked(lch_buffer *b, size_t len, unsigned seed)
{
    size_t old = lch_buffer_len(b);
    void *d = NULL;
    assert_rc(lch_buffer_resize(b, len, &d), LCH_OK);
    assert_non_null(d);
    assert_ptr_equal(d, lch_buffer_data(b));
    assert_true(aligned(d));
    assert_int_equal(lch_buffer_len(b), len);
    size_t keep = old < len ? old : len;
    assert_pattern(d, keep, seed);
    fill(d, len, seed);
    return d;
}

static void resize_walk(void)
{
    lch_buffer *b = NULL;
    void *d = NULL;
    assert_rc(lch_buffer_new_uninit(&b, 100, &d), LCH_OK);
    assert_true(aligned(d));
    assert_ptr_equal(d, lch_buffer_data(b));
    assert_int_equal(lch_buffer_len(b), 100);
    fill(d, 100, 7);
    void *d0 = d;
    /* inline: shrinking and regrowing within the first block stays put */
    assert_ptr_equal(resize_checked(b, 50, 7), d0);
    assert_ptr_equal(resize_checked(b, 100, 7), d0);
    /* inline -> own block -> realloc'd through many sizes */
    resize_checked(b, 1000, 7);
    for (size_t len = 1001; len < 64 * KiB; len = len * 3 / 2 + 17)
        resize_checked(b, len, 7);
    for (size_t len = 60 * KiB; len > 10; len = len / 3 + 1)
        resize_checked(b, len, 7);
    /* -> large, through classes, same class in place, back to small */
    resize_checked(b, 64 * KiB, 7);
    resize_checked(b, 70 * KiB, 7);
    resize_checked(b, 1 * MiB, 7);
    const void *d1 = lch_buffer_data(b);
    assert_ptr_equal(resize_checked(b, 1 * MiB - 100, 7), d1); /* same class */
    assert_ptr_equal(resize_checked(b, 1 * MiB, 7), d1);
    resize_checked(b, 3 * MiB + 3, 7);
    resize_checked(b, 200 * KiB, 7);
    resize_checked(b, 1000, 7);
    resize_checked(b, 0, 7);
    assert_non_null(lch_buffer_data(b));
    resize_checked(b, 10, 7);
    lch_buffer_unref(b);

    /* large from the start */
    assert_rc(lch_buffer_new_uninit(&b, 2 * MiB, &d), LCH_OK);
    assert_true(aligned(d));
    fill(d, 2 * MiB, 8);
    resize_checked(b, 5 * MiB, 8);
    resize_checked(b, 100, 8);
    resize_checked(b, 100 * KiB, 8);
    lch_buffer_unref(b);
}

static void test_api_uninit_resize(void **state)
{
    (void)state;
    resize_walk();
    /* with the cache off, large blocks are exact-size */
    lch_buffer_cache_set_limit(0);
    resize_walk();
}

static void test_api_uninit_errors(void **state)
{
    (void)state;
    lch_buffer *b = (lch_buffer *)(uintptr_t)1;
    void *d = (void *)(uintptr_t)1;
    assert_rc(lch_buffer_new_uninit(NULL, 1, &d), LCH_EINVAL);
    assert_null(d);
    assert_rc(lch_buffer_new_uninit(&b, 1, NULL), LCH_EINVAL);
    assert_null(b);
    d = (void *)(uintptr_t)1;
    assert_rc(lch_buffer_new_uninit(&b, LCH_BUFFER_MAX_LEN + 1, &d),
              LCH_E2BIG);
    assert_null(b);
    assert_null(d);
}

static void test_api_resize_errors(void **state)
{
    (void)state;
    void *d = NULL;
    assert_rc(lch_buffer_resize(NULL, 1, &d), LCH_EINVAL);

    lch_buffer *b = NULL;
    assert_rc(lch_buffer_new_uninit(&b, 3000, &d), LCH_OK);
    fill(d, 3000, 9);
    assert_rc(lch_buffer_resize(b, 10, NULL), LCH_EINVAL);
    /* shared: refused while another reference exists */
    assert_rc(lch_buffer_ref(b), LCH_OK);
    assert_rc(lch_buffer_resize(b, 10, &d), LCH_EINVAL);
    lch_buffer_unref(b);
    /* too big, or refused by the allocator: unchanged */
    resize_checked(b, 5000, 9); /* now in its own block */
    const void *before = lch_buffer_data(b);
    d = (void *)(uintptr_t)1;
    assert_rc(lch_buffer_resize(b, LCH_BUFFER_MAX_LEN + 1, &d), LCH_E2BIG);
    assert_rc(lch_buffer_resize(b, SIZE_MAX, &d), LCH_E2BIG);
    assert_rc(lch_buffer_resize(b, LCH_BUFFER_MAX_LEN, &d), LCH_ENOMEM);
    assert_rc(lch_buffer_resize(b, (size_t)3 << 30, &d), LCH_ENOMEM);
    assert_rc(lch_buffer_resize(b, TU_ALLOC_MAX, &d), LCH_ENOMEM);
    assert_ptr_equal(lch_buffer_data(b), before);
    assert_int_equal(lch_buffer_len(b), 5000);
    assert_pattern(before, 5000, 9);
    /* sliced: refused, even after the slice is gone */
    lch_buffer *s = NULL;
    assert_rc(lch_buffer_slice(&s, b, 0, 10), LCH_OK);
    assert_rc(lch_buffer_resize(s, 5, &d), LCH_EINVAL); /* a slice itself */
    assert_rc(lch_buffer_resize(b, 5, &d), LCH_EINVAL);
    lch_buffer_unref(s);
    assert_int_equal(refcount(b), 1);
    assert_rc(lch_buffer_resize(b, 5, &d), LCH_EINVAL);
    assert_int_equal(lch_buffer_len(b), 5000);
    lch_buffer_unref(b);

    /* not made by new_uninit: copies and adopted memory are immutable */
    b = make_copy(100, 1);
    assert_rc(lch_buffer_resize(b, 50, &d), LCH_EINVAL);
    lch_buffer_unref(b);
    b = make_copy(MiB, 1);
    assert_rc(lch_buffer_resize(b, 50, &d), LCH_EINVAL);
    lch_buffer_unref(b);
    static unsigned char mem[64];
    assert_rc(lch_buffer_adopt(&b, mem, sizeof mem, NULL, NULL), LCH_OK);
    assert_rc(lch_buffer_resize(b, 10, &d), LCH_EINVAL);
    lch_buffer_unref(b);
}

/* An allocator whose blocks start at a different offset modulo 64 each time
 * and whose realloc always moves, layered over the counting test allocator:
 * resize must re-align bytes that realloc moved. */
#define SHIFT_HDR 32

struct shift_hdr {
    void *raw;   /* the base allocator's block */
    size_t size; /* bytes requested */
};

static _Atomic unsigned shift_next;

static void *shift_malloc(void *ctx, size_t size)
{
    (void)ctx;
    const lch_allocator *base = tu_alloc_hook();
    if (size > SIZE_MAX - 256)
        return NULL;
    unsigned char *raw = base->malloc(base->ctx, size + SHIFT_HDR + 64 + 48);
    if (!raw)
        return NULL;
    unsigned k = atomic_fetch_add_explicit(&shift_next, 1,
                                           memory_order_relaxed) % 4;
    uintptr_t a = ((uintptr_t)raw + SHIFT_HDR + 63) & ~(uintptr_t)63;
    unsigned char *p = raw + (a - (uintptr_t)raw) + 16 * k;
    struct shift_hdr h = {raw, size};
    memcpy(p - SHIFT_HDR, &h, sizeof h);
    return p;
}

static void shift_free(void *ctx, void *p)
{
    (void)ctx;
    if (!p)
        return;
    struct shift_hdr h;
    memcpy(&h, (unsigned char *)p - SHIFT_HDR, sizeof h);
    const lch_allocator *base = tu_alloc_hook();
    base->free(base->ctx, h.raw);
}

static void *shift_realloc(void *ctx, void *p, size_t size)
{
    if (!p)
        return shift_malloc(ctx, size);
    struct shift_hdr h;
    memcpy(&h, (unsigned char *)p - SHIFT_HDR, sizeof h);
    void *q = shift_malloc(ctx, size);
    if (!q)
        return NULL;
    memcpy(q, p, h.size < size ? h.size : size);
    shift_free(ctx, p);
    return q;
}

static const lch_allocator shift_alloc = {shift_malloc, shift_realloc,
                                          shift_free, NULL};

static void test_api_resize_realigns(void **state)
{
    (void)state;
    /* An idle block from the counting allocator: the swap below must send it
     * back there, not reuse it or free it through the new allocator. */
    lch_buffer_unref(make_copy(MiB, 1));
    lch_buffer_cache_stats s0 = stats();
    assert_int_equal(s0.idle_blocks, 1);

    assert_rc(lch_set_allocator(&shift_alloc), LCH_OK);
    lch_buffer *b = make_copy(MiB, 2);
    lch_buffer_cache_stats s1 = stats();
    assert_int_equal(s1.hits, s0.hits);
    assert_int_equal(s1.misses, s0.misses + 1);
    assert_int_equal(s1.idle_blocks, 0);
    lch_buffer_unref(b);

    /* Every realloc lands 16 bytes further modulo 64. */
    void *d = NULL;
    assert_rc(lch_buffer_new_uninit(&b, 10, &d), LCH_OK);
    fill(d, 10, 3);
    for (size_t len = 11; len < 20000; len += 997)
        resize_checked(b, len, 3);
    for (size_t len = 20000; len > 5; len = len / 2 - 1)
        resize_checked(b, len, 3);
    lch_buffer_unref(b);

    /* the 1 MiB idle block now belongs to shift_alloc; swapping back and
     * trimming returns it through shift_alloc */
    assert_int_equal(stats().idle_blocks, 1);
    assert_rc(lch_set_allocator(tu_alloc_hook()), LCH_OK);
    lch_buffer_cache_trim();
    assert_int_equal(stats().idle_blocks, 0);
    tu_assert_clean();
}

/* ---- out of memory ------------------------------------------------------- */

struct oom_case {
    const char *name;
    void (*prepare)(struct oom_case *c); /* unarmed; may be NULL */
    int (*run)(struct oom_case *c);      /* the call under test, armed */
    void (*on_fail)(struct oom_case *c); /* unarmed: check + clean up */
    void (*on_ok)(struct oom_case *c);   /* unarmed: check + clean up */
    lch_buffer *in, *out;
    void *data;
    const void *in_data;
    size_t len, in_len;
    struct release_rec rel;
};

static unsigned char oom_src[3 * MiB];

static void oom_check_out_null(struct oom_case *c) { assert_null(c->out); }

static void oom_unref_out(struct oom_case *c)
{
    assert_non_null(c->out);
    assert_int_equal(lch_buffer_len(c->out), c->len);
    assert_true(aligned(lch_buffer_data(c->out)));
    lch_buffer_unref(c->out);
}

static void oom_check_copy(struct oom_case *c)
{
    assert_non_null(c->out);
    assert_pattern(lch_buffer_data(c->out), c->len, 11);
    oom_unref_out(c);
}

static int oom_run_copy(struct oom_case *c)
{
    c->out = (lch_buffer *)(uintptr_t)1;
    return lch_buffer_new_copy(&c->out, oom_src, c->len);
}

static int oom_run_uninit(struct oom_case *c)
{
    c->out = (lch_buffer *)(uintptr_t)1;
    c->data = (void *)(uintptr_t)1;
    int rc = lch_buffer_new_uninit(&c->out, c->len, &c->data);
    if (rc != LCH_OK && c->data != NULL)
        return 12345; /* *data must be NULL on failure */
    return rc;
}

static void oom_prep_trim(struct oom_case *c)
{
    (void)c;
    lch_buffer_cache_trim();
}

static void oom_prep_prime(struct oom_case *c)
{
    lch_buffer_cache_trim();
    lch_buffer *b = NULL;
    assert_rc(lch_buffer_new_copy(&b, oom_src, c->len), LCH_OK);
    lch_buffer_unref(b);
    assert_int_equal(stats().idle_blocks, 1);
}

static void oom_prep_nocache(struct oom_case *c)
{
    (void)c;
    lch_buffer_cache_set_limit(0);
}

static int oom_run_adopt(struct oom_case *c)
{
    c->out = (lch_buffer *)(uintptr_t)1;
    return lch_buffer_adopt(&c->out, oom_src, c->len, record_release, &c->rel);
}

static void oom_adopt_fail(struct oom_case *c)
{
    assert_null(c->out);
    assert_int_equal(release_calls(&c->rel), 0);
}

static void oom_adopt_ok(struct oom_case *c)
{
    assert_ptr_equal(lch_buffer_data(c->out), oom_src);
    lch_buffer_unref(c->out);
    assert_int_equal(release_calls(&c->rel), 1);
}

static void oom_prep_root(struct oom_case *c)
{
    assert_rc(lch_buffer_new_copy(&c->in, oom_src, 1000), LCH_OK);
}

static int oom_run_slice(struct oom_case *c)
{
    c->out = (lch_buffer *)(uintptr_t)1;
    return lch_buffer_slice(&c->out, c->in, 10, c->len);
}

static void oom_slice_fail(struct oom_case *c)
{
    assert_null(c->out);
    assert_int_equal(refcount(c->in), 1);
    lch_buffer_unref(c->in);
}

static void oom_slice_ok(struct oom_case *c)
{
    assert_ptr_equal(lch_buffer_data(c->out),
                     (const unsigned char *)lch_buffer_data(c->in) + 10);
    assert_int_equal(refcount(c->in), 2);
    lch_buffer_unref(c->in);
    lch_buffer_unref(c->out);
}

/* resize: c->in_len is the starting length (reached through `via` first, so
 * the buffer has the storage kind under test), c->len the target. */
static void oom_prep_resize(struct oom_case *c)
{
    void *d = NULL;
    size_t first = c->in_len < 64 * KiB ? 16 : c->in_len;
    assert_rc(lch_buffer_new_uninit(&c->in, first, &d), LCH_OK);
    if (first != c->in_len) /* inline -> own block */
        assert_rc(lch_buffer_resize(c->in, c->in_len, &d), LCH_OK);
    fill(d, c->in_len, 11);
    c->in_data = lch_buffer_data(c->in);
}

static void oom_prep_resize_inline(struct oom_case *c)
{
    void *d = NULL;
    assert_rc(lch_buffer_new_uninit(&c->in, c->in_len, &d), LCH_OK);
    fill(d, c->in_len, 11);
    c->in_data = d;
}

static int oom_run_resize(struct oom_case *c)
{
    c->data = (void *)(uintptr_t)1;
    return lch_buffer_resize(c->in, c->len, &c->data);
}

static void oom_resize_fail(struct oom_case *c)
{
    assert_ptr_equal(lch_buffer_data(c->in), c->in_data);
    assert_int_equal(lch_buffer_len(c->in), c->in_len);
    assert_pattern(c->in_data, c->in_len, 11);
    lch_buffer_unref(c->in);
}

static void oom_resize_ok(struct oom_case *c)
{
    assert_ptr_equal(c->data, lch_buffer_data(c->in));
    assert_true(aligned(c->data));
    assert_int_equal(lch_buffer_len(c->in), c->len);
    assert_pattern(c->data, c->in_len < c->len ? c->in_len : c->len, 11);
    lch_buffer_unref(c->in);
}

static void oom_one(struct oom_case proto)
{
    int64_t base = tu_alloc_live();
    uint64_t n;
    for (n = 1; n < 50; n++) {
        struct oom_case c = proto;
        if (c.prepare)
            c.prepare(&c);
        int64_t before = tu_alloc_live();
        tu_alloc_fail_nth(n);
        int rc = c.run(&c);
        uint64_t failures = tu_alloc_failures();
        tu_alloc_fail_nth(0);
        if (rc == LCH_OK) {
            if (failures != 0)
                fail_msg("%s: succeeded although allocation %llu failed",
                         c.name, (unsigned long long)n);
            c.on_ok(&c);
        } else {
            if (rc != LCH_ENOMEM)
                fail_msg("%s: allocation %llu failed: got %s (%d), expected "
                         "ENOMEM",
                         c.name, (unsigned long long)n, lch_err_name(rc), rc);
            if (failures != 1)
                fail_msg("%s: failed with no allocation failing", c.name);
            if (tu_alloc_live() != before)
                fail_msg("%s: allocation %llu failed: %lld blocks leaked",
                         c.name, (unsigned long long)n,
                         (long long)(tu_alloc_live() - before));
            c.on_fail(&c);
        }
        lch_buffer_cache_trim();
        lch_buffer_cache_set_limit(LCH_BUFFER_CACHE_DEFAULT_LIMIT);
        if (tu_alloc_live() != base)
            fail_msg("%s (n=%llu): %lld blocks leaked", c.name,
                     (unsigned long long)n, (long long)(tu_alloc_live() - base));
        if (rc == LCH_OK)
            break;
    }
    assert_true(n < 50);
    print_message("[   INFO   ] %-28s %llu allocation(s)\n", proto.name,
                  (unsigned long long)(n - 1));
}

static void test_oom_create(void **state)
{
    (void)state;
    fill(oom_src, sizeof oom_src, 11);
    const struct oom_case cases[] = {
        {.name = "new_copy 100", .run = oom_run_copy,
         .on_fail = oom_check_out_null, .on_ok = oom_check_copy, .len = 100},
        {.name = "new_copy 0", .run = oom_run_copy,
         .on_fail = oom_check_out_null, .on_ok = oom_check_copy, .len = 0},
        {.name = "new_copy 1 MiB (miss)", .prepare = oom_prep_trim,
         .run = oom_run_copy, .on_fail = oom_check_out_null,
         .on_ok = oom_check_copy, .len = MiB},
        {.name = "new_copy 1 MiB (hit)", .prepare = oom_prep_prime,
         .run = oom_run_copy, .on_fail = oom_check_out_null,
         .on_ok = oom_check_copy, .len = MiB},
        {.name = "new_copy 3 MiB (no cache)", .prepare = oom_prep_nocache,
         .run = oom_run_copy, .on_fail = oom_check_out_null,
         .on_ok = oom_check_copy, .len = 3 * MiB},
        {.name = "new_uninit 100", .run = oom_run_uninit,
         .on_fail = oom_check_out_null, .on_ok = oom_unref_out, .len = 100},
        {.name = "new_uninit 1 MiB", .prepare = oom_prep_trim,
         .run = oom_run_uninit, .on_fail = oom_check_out_null,
         .on_ok = oom_unref_out, .len = MiB},
        {.name = "adopt", .run = oom_run_adopt, .on_fail = oom_adopt_fail,
         .on_ok = oom_adopt_ok, .len = 1000},
        {.name = "slice", .prepare = oom_prep_root, .run = oom_run_slice,
         .on_fail = oom_slice_fail, .on_ok = oom_slice_ok, .len = 500},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        oom_one(cases[i]);
}

static void test_oom_resize(void **state)
{
    (void)state;
    fill(oom_src, sizeof oom_src, 11);
    struct {
        const char *name;
        size_t from, to;
        bool inline_start;
    } steps[] = {
        {"resize inline -> inline", 1000, 500, true},
        {"resize inline -> own", 100, 1000, true},
        {"resize inline -> large", 100, 100 * KiB, true},
        {"resize own -> own (grow)", 1000, 30000, false},
        {"resize own -> own (shrink)", 30000, 1000, false},
        {"resize own -> large", 1000, MiB, false},
        {"resize large -> large", MiB, 3 * MiB, false},
        {"resize large -> same class", MiB, MiB - 1, false},
        {"resize large -> own", MiB, 1000, false},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        struct oom_case c = {
            .name = steps[i].name,
            .prepare = steps[i].inline_start ? oom_prep_resize_inline
                                             : oom_prep_resize,
            .run = oom_run_resize,
            .on_fail = oom_resize_fail,
            .on_ok = oom_resize_ok,
            .in_len = steps[i].from,
            .len = steps[i].to,
        };
        oom_one(c);
    }
}

/* ---- cache --------------------------------------------------------------- */

static void test_cache_hit(void **state)
{
    (void)state;
    lch_buffer_cache_stats s0 = stats();
    assert_int_equal(s0.idle_blocks, 0);
    assert_int_equal(s0.idle_bytes, 0);
    lch_buffer *b = make_copy(MiB, 1);
    const void *d = lch_buffer_data(b);
    lch_buffer_cache_stats s1 = stats();
    assert_int_equal(s1.misses, s0.misses + 1);
    assert_int_equal(s1.hits, s0.hits);
    lch_buffer_unref(b);
    s1 = stats();
    assert_int_equal(s1.idle_blocks, 1);
    assert_int_equal(s1.idle_bytes, MiB); /* 1 MiB is a class of its own */

    /* the next 1 MiB creation reuses the block (and so would anything in
     * the same class, (1016 KiB, 1 MiB]: 64 classes per power of two) */
    b = make_copy(MiB, 2);
    assert_ptr_equal(lch_buffer_data(b), d);
    lch_buffer_cache_stats s2 = stats();
    assert_int_equal(s2.hits, s0.hits + 1);
    assert_int_equal(s2.misses, s0.misses + 1);
    assert_int_equal(s2.idle_blocks, 0);
    assert_int_equal(s2.idle_bytes, 0);
    assert_pattern(lch_buffer_data(b), MiB, 2);
    lch_buffer_unref(b);
    b = make_copy(1017 * KiB, 3);
    assert_ptr_equal(lch_buffer_data(b), d);
    assert_int_equal(stats().hits, s0.hits + 2);
    lch_buffer_unref(b);
    /* a different class misses, above and below */
    b = make_copy(MiB + 1, 3);
    assert_int_equal(stats().misses, s0.misses + 2);
    lch_buffer_unref(b);
    b = make_copy(1016 * KiB, 3);
    assert_int_equal(stats().misses, s0.misses + 3);
    lch_buffer_unref(b);
    assert_int_equal(stats().idle_blocks, 3);
}

static void test_cache_small_bypass(void **state)
{
    (void)state;
    lch_buffer_cache_stats s0 = stats();
    lch_buffer_unref(make_copy(LCH_BUFFER_CACHE_MIN - 1, 1));
    lch_buffer_cache_stats s1 = stats();
    assert_int_equal(s1.hits + s1.misses, s0.hits + s0.misses);
    assert_int_equal(s1.idle_blocks, 0);
    lch_buffer_unref(make_copy(LCH_BUFFER_CACHE_MIN, 1));
    s1 = stats();
    assert_int_equal(s1.misses, s0.misses + 1);
    assert_int_equal(s1.idle_blocks, 1);
    assert_int_equal(s1.idle_bytes, LCH_BUFFER_CACHE_MIN);
}

static void test_cache_trim(void **state)
{
    (void)state;
    lch_buffer *b[3] = {make_copy(64 * KiB, 1), make_copy(MiB, 1),
                        make_copy(5 * MiB, 1)};
    for (int i = 0; i < 3; i++)
        lch_buffer_unref(b[i]);
    lch_buffer_cache_stats s = stats();
    assert_int_equal(s.idle_blocks, 3);
    assert_int_equal(s.idle_bytes, 64 * KiB + MiB + 5 * MiB);
    lch_buffer_cache_trim();
    s = stats();
    assert_int_equal(s.idle_blocks, 0);
    assert_int_equal(s.idle_bytes, 0);
    tu_assert_clean(); /* every block went back to the allocator */
    lch_buffer_cache_trim(); /* idempotent */
}

static void test_cache_limit_zero(void **state)
{
    (void)state;
    lch_buffer_unref(make_copy(MiB, 1));
    assert_int_equal(stats().idle_blocks, 1);
    lch_buffer_cache_set_limit(0); /* frees what it holds */
    assert_int_equal(stats().idle_blocks, 0);
    tu_assert_clean();
    lch_buffer_cache_stats s0 = stats();
    for (int i = 0; i < 3; i++) {
        lch_buffer *b = make_copy(MiB, (unsigned)i);
        assert_true(aligned(lch_buffer_data(b)));
        lch_buffer_unref(b);
        lch_buffer_cache_stats s = stats();
        assert_int_equal(s.idle_blocks, 0);
        assert_int_equal(s.idle_bytes, 0);
        assert_int_equal(s.hits, s0.hits);
        assert_int_equal(s.misses, s0.misses + (unsigned)i + 1);
    }
}

static void test_cache_limit_respected(void **state)
{
    (void)state;
    lch_buffer_cache_set_limit(3 * MiB);
    lch_buffer *b[5];
    for (int i = 0; i < 5; i++)
        b[i] = make_copy(MiB, 1);
    for (int i = 0; i < 5; i++) {
        lch_buffer_unref(b[i]);
        lch_buffer_cache_stats s = stats();
        assert_true(s.idle_bytes <= 3 * MiB);
        assert_int_equal(s.idle_blocks, i < 3 ? i + 1 : 3);
    }
    /* lowering the limit evicts down to it */
    lch_buffer_cache_set_limit(MiB + 1);
    lch_buffer_cache_stats s = stats();
    assert_int_equal(s.idle_blocks, 1);
    assert_int_equal(s.idle_bytes, MiB);
    /* a block larger than the limit is never kept */
    lch_buffer_unref(make_copy(2 * MiB, 1));
    s = stats();
    assert_int_equal(s.idle_blocks, 1);
    assert_int_equal(s.idle_bytes, MiB);
    /* raising it does not bring anything back, and new frees fill it */
    lch_buffer_cache_set_limit(LCH_BUFFER_CACHE_DEFAULT_LIMIT);
    assert_int_equal(stats().idle_blocks, 1);
}

static void test_cache_evicts_oldest(void **state)
{
    (void)state;
    lch_buffer_cache_set_limit(2 * MiB);
    lch_buffer *a = make_copy(MiB, 1), *b = make_copy(MiB, 1),
               *c = make_copy(MiB, 1);
    const void *db = lch_buffer_data(b), *dc = lch_buffer_data(c);
    lch_buffer_unref(a); /* oldest: evicted when c comes in */
    lch_buffer_unref(b);
    lch_buffer_unref(c);
    assert_int_equal(stats().idle_blocks, 2);
    lch_buffer_cache_stats s0 = stats();
    /* newest first */
    lch_buffer *x = make_copy(MiB, 2), *y = make_copy(MiB, 2),
               *z = make_copy(MiB, 2);
    assert_ptr_equal(lch_buffer_data(x), dc);
    assert_ptr_equal(lch_buffer_data(y), db);
    lch_buffer_cache_stats s1 = stats();
    assert_int_equal(s1.hits, s0.hits + 2);
    assert_int_equal(s1.misses, s0.misses + 1);
    lch_buffer_unref(x);
    lch_buffer_unref(y);
    lch_buffer_unref(z);

    /* a new class pushes out an older one: the cache follows the workload */
    lch_buffer_unref(make_copy(2 * MiB, 1));
    lch_buffer_cache_stats s = stats();
    assert_int_equal(s.idle_blocks, 1);
    assert_int_equal(s.idle_bytes, 2 * MiB);
}

static void test_cache_huge_uncached(void **state)
{
    (void)state;
    /* 100 MiB rounds up to a 112 MiB class, above the 64 MiB default limit:
     * allocated at its exact size and freed, not cached. new_uninit touches
     * no page. */
    lch_buffer_cache_stats s0 = stats();
    lch_buffer *b = NULL;
    void *d = NULL;
    assert_rc(lch_buffer_new_uninit(&b, 100 * MiB, &d), LCH_OK);
    assert_true(aligned(d));
    ((unsigned char *)d)[0] = 1;
    ((unsigned char *)d)[100 * MiB - 1] = 2;
    lch_buffer_unref(b);
    lch_buffer_cache_stats s = stats();
    assert_int_equal(s.misses, s0.misses + 1);
    assert_int_equal(s.idle_blocks, 0);
}

/* ---- threads ------------------------------------------------------------- */

struct rx_seen {
    lch_channel *ch;
    int n;
    const void *data[8];
    size_t len[8];
    uint32_t tag[8];
    size_t bad_at[8]; /* first byte off the pattern, or len */
    int rc;
};

static void *rx_main(void *arg)
{
    struct rx_seen *r = arg;
    for (int i = 0; i < r->n; i++) {
        lch_value v;
        int rc = lch_channel_recv(r->ch, &v, tu_patience_ns());
        if (rc != LCH_OK) {
            r->rc = rc;
            return NULL;
        }
        lch_buffer *b = v.kind == LCH_OBJECT ? lch_buffer_from_object(v.u.obj)
                                             : NULL;
        r->data[i] = lch_buffer_data(b);
        r->len[i] = lch_buffer_len(b);
        r->tag[i] = v.tag;
        /* the tag says which pattern (seed, offset) to expect */
        size_t off = v.tag >> 8;
        r->bad_at[i] = r->len[i];
        if (b)
            for (size_t k = 0; k < r->len[i]; k++)
                if (((const unsigned char *)r->data[i])[k] !=
                    pat(off + k, v.tag & 0xff)) {
                    r->bad_at[i] = k;
                    break;
                }
        lch_value_release(&v); /* drops the buffer in this thread */
    }
    return NULL;
}

static void test_mt_channel(void **state)
{
    (void)state;
    static unsigned char adopted_mem[4096];
    fill(adopted_mem, sizeof adopted_mem, 4);
    struct release_rec rel = {0};
    lch_buffer *b[4];
    b[0] = make_copy(100, 1);
    b[1] = make_copy(2 * MiB, 2);
    assert_rc(lch_buffer_slice(&b[2], b[1], 1000, 5000), LCH_OK);
    assert_rc(lch_buffer_adopt(&b[3], adopted_mem, sizeof adopted_mem,
                               record_release, &rel),
              LCH_OK);
    uint32_t tags[4] = {1, 2, (1000u << 8) | 2, 4};
    const void *sent[4];
    size_t lens[4];

    struct rx_seen r = {.n = 4};
    assert_rc(lch_channel_create(&r.ch, 2), LCH_OK);
    pthread_t t;
    tu_spawn(&t, rx_main, &r);
    for (int i = 0; i < 4; i++) {
        sent[i] = lch_buffer_data(b[i]);
        lens[i] = lch_buffer_len(b[i]);
        lch_value v = lch_value_object(lch_buffer_object(b[i]));
        v.tag = tags[i];
        /* the channel takes our reference; the receiver drops it */
        assert_rc(lch_channel_send(r.ch, v, tu_patience_ns()), LCH_OK);
    }
    tu_join(t);
    assert_rc(r.rc, LCH_OK);
    for (int i = 0; i < 4; i++) {
        assert_ptr_equal(r.data[i], sent[i]); /* no copy */
        assert_int_equal(r.len[i], lens[i]);
        assert_int_equal(r.tag[i], tags[i]);
        assert_int_equal(r.bad_at[i], lens[i]);
    }
    assert_int_equal(release_calls(&rel), 1);
    assert_true(!pthread_equal(rel.thread, pthread_self()));
    lch_channel_unref(r.ch);
}

/* Many threads take and drop references to one adopted buffer and to slices
 * of it, and of one large buffer, at once. */
#define MT_THREADS 4
#define MT_LEN 4096

struct mt_shared {
    lch_buffer *adopted, *large;
    const unsigned char *large_data;
    tu_barrier start;
    uint64_t iters;
};

struct mt_worker {
    struct mt_shared *sh;
    unsigned id;
    bool drop_last; /* holds one reference to each buffer, dropped at exit */
    int bad_rc;
    uint64_t bad_bytes;
};

static void *mt_main(void *arg)
{
    struct mt_worker *w = arg;
    struct mt_shared *sh = w->sh;
    tu_barrier_wait(&sh->start);
    for (uint64_t i = 0; i < sh->iters; i++) {
        lch_buffer *root = (i & 1) ? sh->large : sh->adopted;
        size_t rlen = lch_buffer_len(root);
        size_t off = (size_t)((i * 7919 + w->id * 131) % (rlen / 2));
        size_t len = (size_t)((i * 104729) % (rlen - off));
        lch_buffer *s = NULL, *ss = NULL;
        int rc;
        if ((rc = lch_buffer_ref(root)) != LCH_OK ||
            (rc = lch_buffer_slice(&s, root, off, len)) != LCH_OK ||
            (rc = lch_buffer_slice(&ss, s, len / 2, len - len / 2)) != LCH_OK) {
            w->bad_rc = rc;
            lch_buffer_unref(s);
            break;
        }
        const unsigned char *d = lch_buffer_data(ss);
        size_t at = off + len / 2;
        unsigned seed = (i & 1) ? 2 : 1;
        if (lch_buffer_len(ss) && (d[0] != pat(at, seed) ||
                                   d[lch_buffer_len(ss) - 1] !=
                                       pat(at + lch_buffer_len(ss) - 1, seed)))
            w->bad_bytes++;
        /* drop in varying orders */
        if (i % 3 == 0) {
            lch_buffer_unref(root);
            lch_buffer_unref(s);
            lch_buffer_unref(ss);
        } else if (i % 3 == 1) {
            lch_buffer_unref(ss);
            lch_buffer_unref(s);
            lch_buffer_unref(root);
        } else {
            lch_buffer_unref(s);
            lch_buffer_unref(root);
            lch_buffer_unref(ss);
        }
    }
    if (w->drop_last) {
        lch_buffer_unref(sh->adopted);
        lch_buffer_unref(sh->large);
    }
    return NULL;
}

static void mt_refs(bool workers_drop_last)
{
    unsigned char *mem = malloc(MT_LEN);
    assert_non_null(mem);
    fill(mem, MT_LEN, 1);
    struct release_rec rel = {.free_data = true};
    struct mt_shared sh = {.iters = tu_count(200000, 2000)};
    assert_rc(lch_buffer_adopt(&sh.adopted, mem, MT_LEN, record_release, &rel),
              LCH_OK);
    sh.large = make_copy(2 * MiB, 2);
    tu_barrier_init(&sh.start, MT_THREADS + 1);
    struct mt_worker w[MT_THREADS];
    pthread_t t[MT_THREADS];
    for (unsigned i = 0; i < MT_THREADS; i++) {
        w[i] = (struct mt_worker){.sh = &sh, .id = i,
                                  .drop_last = workers_drop_last};
        if (workers_drop_last) {
            assert_rc(lch_buffer_ref(sh.adopted), LCH_OK);
            assert_rc(lch_buffer_ref(sh.large), LCH_OK);
        }
    }
    lch_buffer_cache_stats s0 = stats();
    tu_spawn_n(t, MT_THREADS, mt_main, w, sizeof w[0]);
    lch_buffer *adopted = sh.adopted, *large = sh.large;
    if (workers_drop_last) {
        /* main's own references go now; the workers hold the last ones */
        lch_buffer_unref(adopted);
        lch_buffer_unref(large);
    }
    tu_barrier_wait(&sh.start);
    tu_join_n(t, MT_THREADS);
    tu_barrier_destroy(&sh.start);
    for (unsigned i = 0; i < MT_THREADS; i++) {
        assert_rc(w[i].bad_rc, LCH_OK);
        assert_int_equal(w[i].bad_bytes, 0);
    }
    if (workers_drop_last) {
        assert_int_equal(release_calls(&rel), 1);
        assert_true(!pthread_equal(rel.thread, pthread_self()));
        assert_int_equal(stats().idle_blocks, s0.idle_blocks + 1);
    } else {
        assert_int_equal(release_calls(&rel), 0);
        assert_int_equal(refcount(adopted), 1);
        assert_int_equal(refcount(large), 1);
        lch_buffer_unref(adopted);
        lch_buffer_unref(large);
        assert_int_equal(release_calls(&rel), 1);
        assert_true(pthread_equal(rel.thread, pthread_self()));
        assert_int_equal(stats().idle_blocks, s0.idle_blocks + 1);
    }
    assert_ptr_equal(rel.data, mem);
    assert_int_equal(rel.len, MT_LEN);
}

static void test_mt_refs_main_last(void **state)
{
    (void)state;
    mt_refs(false);
}

static void test_mt_refs_worker_last(void **state)
{
    (void)state;
    mt_refs(true);
}

/* Threads creating and freeing large buffers of a few classes while one
 * thread moves the limit and trims. */
struct cache_worker {
    tu_barrier *start;
    unsigned id;
    uint64_t iters;
    int bad_rc;
    uint64_t bad_bytes;
};

static void *cache_main(void *arg)
{
    struct cache_worker *w = arg;
    static const size_t sizes[] = {64 * KiB, 100 * KiB, 256 * KiB, 1 * MiB};
    tu_barrier_wait(w->start);
    for (uint64_t i = 0; i < w->iters; i++) {
        size_t len = sizes[(i + w->id) % 4];
        lch_buffer *b = NULL;
        void *d = NULL;
        int rc = lch_buffer_new_uninit(&b, len, &d);
        if (rc != LCH_OK) {
            w->bad_rc = rc;
            break;
        }
        /* the first and last lines: another owner of the block would
         * overwrite them */
        memset(d, (int)w->id, 64);
        memset((unsigned char *)d + len - 64, (int)w->id, 64);
        sched_yield();
        const unsigned char *c = d;
        if (c[0] != w->id || c[63] != w->id || c[len - 1] != w->id)
            w->bad_bytes++;
        lch_buffer_unref(b);
    }
    return NULL;
}

struct cache_ctl {
    tu_barrier *start;
    _Atomic bool stop;
};

static void *cache_ctl_main(void *arg)
{
    struct cache_ctl *c = arg;
    tu_barrier_wait(c->start);
    for (unsigned i = 0;
         !atomic_load_explicit(&c->stop, memory_order_relaxed); i++) {
        switch (i % 4) {
        case 0: lch_buffer_cache_set_limit(MiB); break;
        case 1: lch_buffer_cache_trim(); break;
        case 2: lch_buffer_cache_set_limit(0); break;
        default: lch_buffer_cache_set_limit(8 * MiB); break;
        }
        lch_buffer_cache_stats s;
        lch_buffer_cache_stats_get(&s);
        sched_yield();
    }
    return NULL;
}

static void test_mt_cache(void **state)
{
    (void)state;
    enum { N = 3 };
    tu_barrier start;
    tu_barrier_init(&start, N + 2);
    struct cache_worker w[N];
    pthread_t t[N], ct;
    struct cache_ctl ctl = {.start = &start};
    for (unsigned i = 0; i < N; i++)
        w[i] = (struct cache_worker){.start = &start, .id = i + 1,
                                     .iters = tu_count(20000, 500)};
    tu_spawn_n(t, N, cache_main, w, sizeof w[0]);
    tu_spawn(&ct, cache_ctl_main, &ctl);
    tu_barrier_wait(&start);
    tu_join_n(t, N);
    atomic_store_explicit(&ctl.stop, true, memory_order_relaxed);
    tu_join(ct);
    tu_barrier_destroy(&start);
    for (unsigned i = 0; i < N; i++) {
        assert_rc(w[i].bad_rc, LCH_OK);
        assert_int_equal(w[i].bad_bytes, 0);
    }
    lch_buffer_cache_set_limit(8 * MiB);
    lch_buffer_cache_stats s = stats();
    assert_true(s.idle_bytes <= 8 * MiB);
    assert_true(s.idle_blocks <= 8 * MiB / (64 * KiB));
    /* teardown: trimming returns every block */
}

/* ---- fork ---------------------------------------------------------------- */

struct fork_hammer {
    _Atomic bool stop;
    _Atomic uint64_t rounds;
    int bad_rc;
};

static void *fork_hammer_main(void *arg)
{
    struct fork_hammer *h = arg;
    while (!atomic_load_explicit(&h->stop, memory_order_relaxed)) {
        lch_buffer *b = NULL;
        void *d = NULL;
        int rc = lch_buffer_new_uninit(&b, MiB, &d);
        if (rc != LCH_OK) {
            h->bad_rc = rc;
            break;
        }
        lch_buffer_unref(b);
        lch_buffer_cache_stats s;
        lch_buffer_cache_stats_get(&s);
        atomic_fetch_add_explicit(&h->rounds, 1, memory_order_relaxed);
    }
    return NULL;
}

static void test_fork_cache(void **state)
{
    (void)state;
    /* ThreadSanitizer kills a child of a multithreaded fork that starts a
     * thread, and the registry's fork handler restarts liburcu's call_rcu
     * worker in the child. (The TSan job runs only -L concurrency anyway.) */
    if (tu_sanitizer() == 2)
        skip();
    struct fork_hammer h = {0};
    pthread_t t;
    tu_spawn(&t, fork_hammer_main, &h);
    while (atomic_load_explicit(&h.rounds, memory_order_relaxed) < 10)
        sched_yield();
    int forks = (int)tu_count(200, 20);
    int bad = 0, hung = 0;
    for (int i = 0; i < forks && !bad && !hung; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            lch_buffer *b = NULL;
            void *d = NULL;
            int rc = lch_buffer_new_uninit(&b, MiB, &d);
            if (rc == LCH_OK) {
                memset(d, 1, MiB);
                lch_buffer_unref(b);
                lch_buffer_cache_trim();
            }
            _exit(rc == LCH_OK ? 0 : 1);
        }
        assert_true(pid > 0);
        int64_t deadline = tu_now_ns() + tu_patience_ns();
        int status = 0;
        pid_t w;
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 &&
               tu_now_ns() < deadline)
            tu_sleep_ns(TU_MS / 10);
        if (w == 0) { /* deadlocked child */
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            hung = 1;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            bad = 1;
        }
    }
    atomic_store_explicit(&h.stop, true, memory_order_relaxed);
    tu_join(t);
    assert_rc(h.bad_rc, LCH_OK);
    assert_int_equal(hung, 0);
    assert_int_equal(bad, 0);
}

int main(int argc, char **argv)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        BUF_TEST(test_api_new_copy),
        BUF_TEST(test_api_new_copy_errors),
        BUF_TEST(test_api_zero_length),
        BUF_TEST(test_api_misc),
        BUF_TEST(test_api_adopt),
        BUF_TEST(test_api_slice),
        BUF_TEST(test_api_slice_errors),
        BUF_TEST(test_api_slice_keeps_storage),
        BUF_TEST(test_api_uninit_resize),
        BUF_TEST(test_api_uninit_errors),
        BUF_TEST(test_api_resize_errors),
        BUF_TEST(test_api_resize_realigns),
        BUF_TEST(test_oom_create),
        BUF_TEST(test_oom_resize),
        BUF_TEST(test_cache_hit),
        BUF_TEST(test_cache_small_bypass),
        BUF_TEST(test_cache_trim),
        BUF_TEST(test_cache_limit_zero),
        BUF_TEST(test_cache_limit_respected),
        BUF_TEST(test_cache_evicts_oldest),
        BUF_TEST(test_cache_huge_uncached),
        BUF_TEST(test_mt_channel),
        BUF_TEST(test_mt_refs_main_last),
        BUF_TEST(test_mt_refs_worker_last),
        BUF_TEST(test_mt_cache),
        BUF_TEST(test_fork_cache),
    };
    return tu_run("buffer", tests, sizeof tests / sizeof tests[0], argc,
                  argv);
}
