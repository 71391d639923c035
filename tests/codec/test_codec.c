/* tests/codec/test_codec.c: the value codec (codecs/, libchan/codec.h).
 *
 *   golden_*      the hex examples of codecs/FORMAT.md, read at run time
 *                 (path from CMake): each is built with the encoder and must
 *                 match byte for byte, then validated, decoded and
 *                 re-encoded byte-identically; every example needs a builder
 *                 here and every builder an example
 *   trunc_*       every golden vector cut at every offset fails validation
 *   flip_*        random bit flips: an error, or a valid value that
 *                 re-encodes to exactly the mutated bytes (canonical form)
 *   rt_*          round trips of every type and its extremes
 *   bad_*         hand-made corruptions: the error and its byte offset
 *   depth_*       nesting at LCH_CODEC_MAX_DEPTH and one past it
 *   oom_*         out-of-memory at every allocation of an encode, of
 *                 from_bytes/from_buffer, and at every constructor call of
 *                 the walker: an error and nothing leaked
 *   view_*        O(1) accessors, child views, type and range checks
 *   enc_*         encoder contract: counts, stickiness, misuse, allocation
 *                 counts, determinism, zero-copy of large bytes
 *   conc_*        threads sharing one encoded value (run under TSan)
 *
 * Every test runs under tu_setup/tu_teardown: no object, payload reference
 * or allocation may outlive it. The large-buffer cache is disabled so that
 * freed buffers really return to the allocator. */
#include "testutil.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_tree.h"
#include "libchan/codec.h"

#ifndef LCH_FORMAT_MD
#error "LCH_FORMAT_MD must name codecs/FORMAT.md"
#endif

/* ---- helpers --------------------------------------------------------------- */

static lch_encoded *encode_tree(const ct_node *n)
{
    lch_encoded *e = NULL;
    assert_rc(ct_encode(n, &e), LCH_OK);
    assert_non_null(e);
    return e;
}

static void assert_bytes_equal(const uint8_t *got, size_t glen,
                               const uint8_t *want, size_t wlen,
                               const char *what)
{
    if (glen == wlen && memcmp(got, want, glen) == 0)
        return;
    print_error("%s: bytes differ (got %zu, want %zu)\n", what, glen, wlen);
    size_t n = glen > wlen ? glen : wlen;
    for (size_t i = 0; i < n; i += 8) {
        print_error("  %04zx  got:", i);
        for (size_t k = i; k < i + 8 && k < glen; k++)
            print_error(" %02x", got[k]);
        print_error("   want:");
        for (size_t k = i; k < i + 8 && k < wlen; k++)
            print_error(" %02x", want[k]);
        print_error("\n");
    }
    fail();
}

/* Validate bytes (copied into an exact-size heap block so ASan sees any
 * over-read) against refs; returns the result and fills *err. */
static int validate_copy(const uint8_t *p, size_t len, lch_object *const *refs,
                         size_t nrefs, lch_codec_error *err)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, p, len);
    int rc = lch_codec_validate(copy, len, refs, nrefs, err);
    free(copy);
    return rc;
}

/* Full check of a buffer that must be valid: make an encoded value of it
 * with refs, decode it, re-encode the tree and compare the bytes. */
static void assert_roundtrip_bytes(const uint8_t *p, size_t len,
                                   lch_object *const *refs, size_t nrefs)
{
    lch_buffer *b = NULL;
    assert_rc(lch_buffer_new_copy(&b, p, len), LCH_OK);
    lch_encoded *e = NULL;
    lch_codec_error err;
    int rc = lch_encoded_from_buffer(&e, b, refs, nrefs, &err);
    if (rc != LCH_OK)
        fail_msg("from_buffer: %s at offset %zu", err.msg, err.offset);
    lch_buffer_unref(b);
    int drc;
    ct_node *t = ct_decode(e, &drc);
    assert_rc(drc, LCH_OK);
    lch_encoded *again = encode_tree(t);
    assert_bytes_equal(lch_encoded_data(again), lch_encoded_len(again), p, len,
                       "re-encoded");
    assert_int_equal(lch_encoded_nrefs(again), nrefs);
    for (size_t i = 0; i < nrefs; i++)
        assert_ptr_equal(lch_encoded_ref_at(again, i), refs[i]);
    ct_free(t);
    lch_encoded_unref(again);
    lch_encoded_unref(e);
}

/* Encode tree n, check it validates and round-trips, return the encoding. */
static lch_encoded *roundtrip(const ct_node *n)
{
    lch_encoded *e = encode_tree(n);
    lch_codec_error err;
    int rc = lch_codec_validate(lch_encoded_data(e), lch_encoded_len(e),
                                (lch_object *const *)NULL, 0, &err);
    (void)rc;
    size_t nr = lch_encoded_nrefs(e);
    lch_object **refs = calloc(nr ? nr : 1, sizeof *refs);
    for (size_t i = 0; i < nr; i++)
        refs[i] = lch_encoded_ref_at(e, i);
    rc = lch_codec_validate(lch_encoded_data(e), lch_encoded_len(e), refs, nr,
                            &err);
    if (rc != LCH_OK)
        fail_msg("encoder output invalid: %s at offset %zu", err.msg,
                 err.offset);
    int drc;
    ct_node *back = ct_decode(e, &drc);
    assert_rc(drc, LCH_OK);
    if (!ct_equal(n, back))
        fail_msg("decoded tree differs from the encoded one");
    ct_free(back);
    assert_roundtrip_bytes(lch_encoded_data(e), lch_encoded_len(e), refs, nr);
    free(refs);
    return e;
}

static void roundtrip_free(ct_node *n)
{
    lch_encoded_unref(roundtrip(n));
    ct_free(n);
}

static ct_node *ct_float(double d)
{
    ct_node *n = ct_new(LCH_V_FLOAT);
    memcpy(&n->fbits[0], &d, 8);
    return n;
}

static ct_node *ct_bits(uint64_t bits)
{
    ct_node *n = ct_new(LCH_V_FLOAT);
    n->fbits[0] = bits;
    return n;
}

static ct_node *ct_bytes(const void *p, size_t len)
{
    ct_node *n = ct_new(LCH_V_BYTES);
    n->data = malloc(len ? len : 1);
    if (len)
        memcpy(n->data, p, len);
    n->n = len;
    return n;
}

static ct_node *ct_bigint(const uint8_t *p, size_t len)
{
    ct_node *n = ct_bytes(p, len);
    n->type = LCH_V_BIGINT;
    return n;
}

static ct_node *ct_tuple_of(size_t len, ct_node **kids)
{
    ct_node *t = ct_container(LCH_V_TUPLE, len);
    for (size_t i = 0; i < len; i++)
        t->kids[i] = kids[i];
    return t;
}

static ct_node *ct_bool(bool b)
{
    ct_node *n = ct_new(LCH_V_BOOL);
    n->b = b;
    return n;
}

/* ---- golden vectors -------------------------------------------------------- */

static ct_golden *golden;
static long ngolden;

static lch_buffer *shared4096(void)
{
    static uint8_t pattern[4096];
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (uint8_t)(i * 7 + 3);
    lch_buffer *b = NULL;
    assert_rc(lch_buffer_new_copy(&b, pattern, sizeof pattern), LCH_OK);
    return b;
}

static ct_node *build_golden(const char *name)
{
    static const uint8_t b263[9] = {0, 0, 0, 0, 0, 0, 0, 0x80, 0};
    static const uint8_t bneg[9] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0x7f, 0xff};
    ct_node *n, *k[3];
    if (!strcmp(name, "none"))
        return ct_new(LCH_V_NONE);
    if (!strcmp(name, "true"))
        return ct_bool(true);
    if (!strcmp(name, "int_minus_one"))
        return ct_int(-1);
    if (!strcmp(name, "int64_min"))
        return ct_int(INT64_MIN);
    if (!strcmp(name, "bigint_2_63"))
        return ct_bigint(b263, 9);
    if (!strcmp(name, "bigint_neg"))
        return ct_bigint(bneg, 9);
    if (!strcmp(name, "float_1_5"))
        return ct_float(1.5);
    if (!strcmp(name, "float_neg_zero"))
        return ct_float(-0.0);
    if (!strcmp(name, "complex")) {
        n = ct_new(LCH_V_COMPLEX);
        double re = 1.0, im = -2.0;
        memcpy(&n->fbits[0], &re, 8);
        memcpy(&n->fbits[1], &im, 8);
        return n;
    }
    if (!strcmp(name, "str_empty"))
        return ct_str("");
    if (!strcmp(name, "str_ascii"))
        return ct_str("hello");
    if (!strcmp(name, "str_latin1"))
        return ct_str("caf\xc3\xa9");
    if (!strcmp(name, "str_bmp"))
        return ct_str("\xe2\x82\xac" "1");
    if (!strcmp(name, "str_astral"))
        return ct_str("\xf0\x9f\x98\x80");
    if (!strcmp(name, "bytes"))
        return ct_bytes("\x00\x01\x02", 3);
    if (!strcmp(name, "tuple_empty"))
        return ct_container(LCH_V_TUPLE, 0);
    if (!strcmp(name, "tuple_mixed")) {
        k[0] = ct_int(1);
        k[1] = ct_str("a");
        k[2] = ct_new(LCH_V_NONE);
        return ct_tuple_of(3, k);
    }
    if (!strcmp(name, "nested")) {
        k[0] = ct_container(LCH_V_TUPLE, 0);
        k[1] = ct_container(LCH_V_LIST, 1);
        k[1]->kids[0] = ct_bool(true);
        k[2] = ct_str("xy");
        return ct_tuple_of(3, k);
    }
    if (!strcmp(name, "dict")) {
        n = ct_container(LCH_V_DICT, 1);
        n->kids[0] = ct_str("k");
        n->kids[1] = ct_float(1.0);
        return n;
    }
    if (!strcmp(name, "set")) {
        n = ct_container(LCH_V_SET, 1);
        n->kids[0] = ct_int(7);
        return n;
    }
    if (!strcmp(name, "frozenset_empty"))
        return ct_container(LCH_V_FROZENSET, 0);
    if (!strcmp(name, "opaque")) {
        n = ct_bytes("pk", 2);
        n->type = LCH_V_OPAQUE;
        n->tag = 7;
        return n;
    }
    if (!strcmp(name, "refs")) {
        k[0] = ct_new(LCH_V_OBJECT);
        k[0]->obj = tu_payload_new(0, 0, 0);
        k[1] = ct_new(LCH_V_BYTES);
        k[1]->shared = shared4096();
        k[1]->n = 4096;
        return ct_tuple_of(2, k);
    }
    return NULL;
}

static const char *const golden_names[] = {
    "none",       "true",           "int_minus_one", "int64_min",
    "bigint_2_63", "bigint_neg",    "float_1_5",     "float_neg_zero",
    "complex",    "str_empty",      "str_ascii",     "str_latin1",
    "str_bmp",    "str_astral",     "bytes",         "tuple_empty",
    "tuple_mixed", "nested",        "dict",          "set",
    "frozenset_empty", "opaque",    "refs",
};
#define NGOLDEN_NAMES (sizeof golden_names / sizeof golden_names[0])

static void load_golden(void)
{
    if (golden)
        return;
    ngolden = ct_golden_load(LCH_FORMAT_MD, &golden);
    if (ngolden < 0)
        fail_msg("cannot load golden vectors from %s", LCH_FORMAT_MD);
}

/* The side table of e as an array (borrowed entries). */
static lch_object **refs_of(const lch_encoded *e)
{
    size_t nr = lch_encoded_nrefs(e);
    lch_object **r = calloc(nr ? nr : 1, sizeof *r);
    for (size_t i = 0; i < nr; i++)
        r[i] = lch_encoded_ref_at(e, i);
    return r;
}

static void golden_examples_match_builders(void **state)
{
    (void)state;
    load_golden();
    assert_true(ngolden >= (long)NGOLDEN_NAMES);
    for (size_t i = 0; i < NGOLDEN_NAMES; i++) {
        bool found = false;
        for (long g = 0; g < ngolden; g++)
            found |= strcmp(golden[g].name, golden_names[i]) == 0;
        if (!found)
            fail_msg("FORMAT.md lacks the example %s", golden_names[i]);
    }
    for (long g = 0; g < ngolden; g++) {
        ct_node *n = build_golden(golden[g].name);
        if (!n)
            fail_msg("no builder for FORMAT.md example %s", golden[g].name);
        ct_free(n);
    }
}

static void golden_encode_decode_reencode(void **state)
{
    (void)state;
    load_golden();
    for (long g = 0; g < ngolden; g++) {
        const ct_golden *v = &golden[g];
        ct_node *want = build_golden(v->name);
        assert_non_null(want);
        /* Built with the encoder: the same bytes as the document. */
        lch_encoded *e = encode_tree(want);
        assert_bytes_equal(lch_encoded_data(e), lch_encoded_len(e), v->bytes,
                           v->len, v->name);
        /* The document's bytes: valid, decode to the same value, re-encode
         * to the same bytes. */
        lch_object **refs = refs_of(e);
        size_t nr = lch_encoded_nrefs(e);
        lch_codec_error err;
        int rc = validate_copy(v->bytes, v->len, refs, nr, &err);
        if (rc != LCH_OK)
            fail_msg("%s: %s at %zu", v->name, err.msg, err.offset);
        lch_buffer *b = NULL;
        assert_rc(lch_buffer_new_copy(&b, v->bytes, v->len), LCH_OK);
        lch_encoded *d = NULL;
        assert_rc(lch_encoded_from_buffer(&d, b, refs, nr, &err), LCH_OK);
        lch_buffer_unref(b);
        int drc;
        ct_node *got = ct_decode(d, &drc);
        assert_rc(drc, LCH_OK);
        if (!ct_equal(want, got))
            fail_msg("%s: decoded value differs", v->name);
        assert_roundtrip_bytes(v->bytes, v->len, refs, nr);
        /* Without a side table only self-contained vectors load. */
        lch_encoded *fb = NULL;
        rc = lch_encoded_from_bytes(&fb, v->bytes, v->len, &err);
        assert_rc(rc, nr == 0 ? LCH_OK : LCH_CODEC_ECORRUPT);
        lch_encoded_unref(fb);
        ct_free(got);
        lch_encoded_unref(d);
        free(refs);
        lch_encoded_unref(e);
        ct_free(want);
    }
}

/* ---- truncation and bit flips ------------------------------------------------ */

static void trunc_every_offset(void **state)
{
    (void)state;
    load_golden();
    for (long g = 0; g < ngolden; g++) {
        const ct_golden *v = &golden[g];
        ct_node *want = build_golden(v->name);
        lch_encoded *e = encode_tree(want);
        lch_object **refs = refs_of(e);
        size_t nr = lch_encoded_nrefs(e);
        for (size_t k = 0; k < v->len; k++) {
            lch_codec_error err = {0, NULL};
            int rc = validate_copy(v->bytes, k, refs, nr, &err);
            if (rc == LCH_OK)
                fail_msg("%s truncated to %zu bytes validated", v->name, k);
            assert_rc(rc, LCH_CODEC_ECORRUPT);
            assert_non_null(err.msg);
            assert_true(err.offset <= k);
            lch_encoded *fb = NULL;
            assert_rc(lch_encoded_from_bytes(&fb, v->bytes, k, &err),
                      LCH_CODEC_ECORRUPT);
            assert_null(fb);
        }
        free(refs);
        lch_encoded_unref(e);
        ct_free(want);
    }
}

/* A mixed value with every type, for mutation tests. */
static ct_node *mixed_value(size_t reps)
{
    static const uint8_t big[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x40};
    ct_node *t = ct_container(LCH_V_LIST, reps);
    for (size_t r = 0; r < reps; r++) {
        ct_node *d = ct_container(LCH_V_DICT, 2);
        d->kids[0] = ct_str("name");
        d->kids[1] = ct_str("h\xc3\xa9llo w\xe2\x82\xacrld \xf0\x9f\x98\x80");
        d->kids[2] = ct_int((int64_t)r * 1000003);
        ct_node *k[9];
        k[0] = ct_new(LCH_V_NONE);
        k[1] = ct_bool(r & 1);
        k[2] = ct_float((double)r * 0.25);
        k[3] = ct_bigint(big, sizeof big);
        k[4] = ct_bytes("\x00\xff\x10", 3);
        k[5] = ct_container(LCH_V_SET, 1);
        k[5]->kids[0] = ct_int(-5);
        k[6] = ct_container(LCH_V_FROZENSET, 0);
        k[7] = ct_bytes("opq", 3);
        k[7]->type = LCH_V_OPAQUE;
        k[7]->tag = 99;
        k[8] = ct_new(LCH_V_COMPLEX);
        k[8]->fbits[0] = 0x3ff0000000000000u;
        k[8]->fbits[1] = 0x7ff8000000000001u;
        d->kids[3] = ct_tuple_of(9, k);
        t->kids[r] = d;
    }
    return t;
}

static void flip_bits(const uint8_t *src, size_t len, lch_object *const *refs,
                      size_t nr, uint64_t *rng, long iters, long *nvalid)
{
    uint8_t *buf = malloc(len);
    for (long it = 0; it < iters; it++) {
        memcpy(buf, src, len);
        int flips = 1 + (int)(ct_rand(rng) % 3);
        for (int f = 0; f < flips; f++) {
            uint64_t r = ct_rand(rng);
            buf[r % len] ^= (uint8_t)(1u << ((r >> 32) % 8));
        }
        if (validate_copy(buf, len, refs, nr, NULL) == LCH_OK) {
            ++*nvalid;
            assert_roundtrip_bytes(buf, len, refs, nr);
        }
    }
    free(buf);
}

static void flip_random_bits(void **state)
{
    (void)state;
    load_golden();
    uint64_t rng = 12345;
    long nvalid = 0;
    long iters = (long)tu_count(2000, 200);
    for (long g = 0; g < ngolden; g++) {
        ct_node *want = build_golden(golden[g].name);
        lch_encoded *e = encode_tree(want);
        lch_object **refs = refs_of(e);
        flip_bits(golden[g].bytes, golden[g].len, refs, lch_encoded_nrefs(e),
                  &rng, iters, &nvalid);
        free(refs);
        lch_encoded_unref(e);
        ct_free(want);
    }
    ct_node *m = mixed_value(5);
    lch_encoded *e = encode_tree(m);
    flip_bits(lch_encoded_data(e), lch_encoded_len(e), NULL, 0, &rng,
              iters * 5, &nvalid);
    lch_encoded_unref(e);
    ct_free(m);
    print_message("[ INFO     ] %ld mutants were valid and round-tripped\n",
                  nvalid);
}

/* ---- round trips ------------------------------------------------------------- */

static void rt_scalars(void **state)
{
    (void)state;
    roundtrip_free(ct_new(LCH_V_NONE));
    roundtrip_free(ct_bool(false));
    roundtrip_free(ct_bool(true));
    const int64_t ints[] = {0, 1, -1, 127, -128, 255, 65536, INT32_MAX,
                            INT32_MIN, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        roundtrip_free(ct_int(ints[i]));
    const uint64_t bits[] = {
        0x0000000000000000u, 0x8000000000000000u, /* +0, -0 */
        0x7ff8000000000000u, 0xfff8000000000000u, /* NaN, -NaN */
        0x7ff0000000000001u, 0x7ff8dead0000beefu, /* sNaN, payload */
        0x7ff0000000000000u, 0xfff0000000000000u, /* +inf, -inf */
        0x0000000000000001u, 0x000fffffffffffffu, /* denormals */
        0x7fefffffffffffffu, 0x3ff0000000000000u, /* DBL_MAX, 1.0 */
    };
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
        roundtrip_free(ct_bits(bits[i]));
        ct_node *c = ct_new(LCH_V_COMPLEX);
        c->fbits[0] = bits[i];
        c->fbits[1] = bits[(i + 3) % (sizeof bits / sizeof bits[0])];
        roundtrip_free(c);
    }
}

/* Encode an integer given as two's complement bytes; check what it became. */
static void check_bigint_input(const uint8_t *in, size_t n, lch_vtype want_t,
                               int64_t want_i, size_t want_n)
{
    lch_enc enc;
    assert_rc(lch_enc_begin(&enc, NULL), LCH_OK);
    assert_rc(lch_enc_bigint(&enc, in, n), LCH_OK);
    lch_encoded *e = NULL;
    assert_rc(lch_enc_finish(&enc, &e), LCH_OK);
    lch_view v;
    assert_rc(lch_encoded_view(e, &v), LCH_OK);
    assert_int_equal(lch_view_type(&v, 0), want_t);
    if (want_t == LCH_V_INT) {
        int64_t got;
        assert_rc(lch_view_int(&v, 0, &got), LCH_OK);
        assert_true(got == want_i);
    } else {
        const uint8_t *p;
        size_t len;
        assert_rc(lch_view_bigint(&v, 0, &p, &len), LCH_OK);
        assert_int_equal(len, want_n);
        assert_memory_equal(p, in, len);
    }
    lch_encoded_unref(e);
}

static void rt_bigints(void **state)
{
    (void)state;
    uint8_t b[1024];
    /* Non-canonical inputs of small values become INT. */
    memset(b, 0, sizeof b);
    b[0] = 5;
    check_bigint_input(b, 12, LCH_V_INT, 5, 0);
    memset(b, 0xff, sizeof b);
    check_bigint_input(b, 12, LCH_V_INT, -1, 0);
    check_bigint_input(b, 0, LCH_V_INT, 0, 0);
    /* int64 bounds stay INT; one past them is a 9-byte BIGINT. */
    memset(b, 0xff, 8);
    b[7] = 0x7f;
    b[8] = 0;
    check_bigint_input(b, 9, LCH_V_INT, INT64_MAX, 0);
    memset(b, 0, 9);
    b[7] = 0x80;
    b[8] = 0xff;
    check_bigint_input(b, 9, LCH_V_INT, INT64_MIN, 0);
    b[8] = 0x00; /* 2^63 */
    check_bigint_input(b, 9, LCH_V_BIGINT, 0, 9);
    memset(b, 0xff, 8);
    b[7] = 0x7f;
    b[8] = 0xff; /* -2^63 - 1 */
    check_bigint_input(b, 9, LCH_V_BIGINT, 0, 9);
    /* Redundant sign bytes on a big value are stripped. */
    memset(b, 0, 20);
    b[8] = 1; /* 2^64 */
    check_bigint_input(b, 20, LCH_V_BIGINT, 0, 9);
    /* lch_enc_uint above INT64_MAX. */
    lch_enc enc;
    assert_rc(lch_enc_begin(&enc, NULL), LCH_OK);
    assert_rc(lch_enc_uint(&enc, UINT64_MAX), LCH_OK);
    lch_encoded *e = NULL;
    assert_rc(lch_enc_finish(&enc, &e), LCH_OK);
    lch_view v;
    lch_encoded_view(e, &v);
    const uint8_t *p;
    size_t n;
    assert_rc(lch_view_bigint(&v, 0, &p, &n), LCH_OK);
    assert_int_equal(n, 9);
    assert_memory_equal(p, "\xff\xff\xff\xff\xff\xff\xff\xff\x00", 9);
    lch_encoded_unref(e);
    /* Huge: 1024 bytes, positive and negative. */
    uint64_t rng = 7;
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (uint8_t)ct_rand(&rng);
    b[sizeof b - 1] = 0x42;
    roundtrip_free(ct_bigint(b, sizeof b));
    b[sizeof b - 1] = 0xa0;
    roundtrip_free(ct_bigint(b, sizeof b));
}

static void rt_strings(void **state)
{
    (void)state;
    char s[200];
    /* Every ASCII length around the 8-byte words and the 32-byte loop. */
    for (size_t len = 0; len <= 70; len++) {
        for (size_t i = 0; i < len; i++)
            s[i] = (char)('a' + i % 26);
        s[len] = '\0';
        roundtrip_free(ct_str(s));
    }
    const char *samples[] = {
        "\xc2\x80",                         /* U+0080: smallest LATIN1 */
        "\xc3\xbf",                         /* U+00FF: largest LATIN1 */
        "\xc4\x80",                         /* U+0100: smallest BMP */
        "\xed\x9f\xbf",                     /* U+D7FF: below surrogates */
        "\xee\x80\x80",                     /* U+E000: above surrogates */
        "\xef\xbf\xbf",                     /* U+FFFF */
        "\xf0\x90\x80\x80",                 /* U+10000 */
        "\xf4\x8f\xbf\xbf",                 /* U+10FFFF */
        "abcdefghijklmnopqrstuvwxyz0123456789\xc3\xa9xyz",
        "\303\251abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQ",
        "mixed \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 end",
        "\x7f\x00",                          /* DEL; NUL ends the C string */
    };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        ct_node *n = ct_str(samples[i]);
        lch_encoded *e = roundtrip(n);
        lch_view v;
        lch_encoded_view(e, &v);
        const char *p;
        size_t nb, ncp;
        lch_str_kind kind;
        assert_rc(lch_view_str(&v, 0, &p, &nb, &ncp, &kind), LCH_OK);
        assert_int_equal(nb, n->n);
        assert_int_equal(ncp, n->ncp);
        assert_int_equal(kind, n->kind);
        assert_memory_equal(p, samples[i], nb);
        lch_encoded_unref(e);
        ct_free(n);
    }
    /* Embedded NUL bytes are ordinary characters. */
    lch_enc enc;
    assert_rc(lch_enc_begin(&enc, NULL), LCH_OK);
    assert_rc(lch_enc_str(&enc, "a\0b", 3), LCH_OK);
    lch_encoded *e = NULL;
    assert_rc(lch_enc_finish(&enc, &e), LCH_OK);
    lch_encoded_unref(e);
    /* A long string moves the encoder out of its scratch space. */
    size_t big = 100000;
    char *l = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        l[i] = (char)(' ' + i % 90);
    l[big] = '\0';
    memcpy(l + big / 2, "\xe2\x82\xac", 3);
    roundtrip_free(ct_str(l));
    free(l);
}

static void rt_strings_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        {"\x80", 1},                 /* lone continuation */
        {"\xc0\x80", 2},             /* overlong NUL */
        {"\xc1\xbf", 2},             /* overlong */
        {"\xe0\x80\x80", 3},         /* overlong 3-byte */
        {"\xe0\x9f\xbf", 3},         /* overlong 3-byte */
        {"\xed\xa0\x80", 3},         /* U+D800 surrogate */
        {"\xed\xbf\xbf", 3},         /* U+DFFF surrogate */
        {"\xf0\x80\x80\x80", 4},     /* overlong 4-byte */
        {"\xf0\x8f\xbf\xbf", 4},     /* overlong 4-byte */
        {"\xf4\x90\x80\x80", 4},     /* U+110000 */
        {"\xf5\x80\x80\x80", 4},     /* never valid */
        {"\xff", 1},
        {"\xe2\x82", 2},             /* truncated */
        {"abc\xf0\x9f\x98", 6},      /* truncated at the end */
        {"\xc3(", 2},                /* bad continuation */
        {"\xe2(\xac", 3},
        {"\xf0\x9f(\x80", 4},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lch_enc enc;
        assert_rc(lch_enc_begin(&enc, NULL), LCH_OK);
        assert_rc(lch_enc_tuple(&enc, 2), LCH_OK);
        assert_rc(lch_enc_str(&enc, bad[i].s, bad[i].n), LCH_EINVAL);
        /* Sticky. */
        assert_rc(lch_enc_int(&enc, 1), LCH_EINVAL);
        lch_encoded *e = NULL;
        assert_rc(lch_enc_finish(&enc, &e), LCH_EINVAL);
        assert_null(e);
    }
}

static void rt_bytes_and_opaque(void **state)
{
    (void)state;
    uint8_t *p = malloc(LCH_CODEC_EXT_MIN + 16);
    for (size_t i = 0; i < LCH_CODEC_EXT_MIN + 16; i++)
        p[i] = (uint8_t)(i ^ (i >> 8));
    const size_t lens[] = {0, 1, 7, 8, 9, 100, LCH_CODEC_EXT_MIN - 1,
                           LCH_CODEC_EXT_MIN, LCH_CODEC_EXT_MIN + 16};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        roundtrip_free(ct_bytes(p, lens[i]));
        ct_node *o = ct_bytes(p, lens[i]);
        o->type = LCH_V_OPAQUE;
        o->tag = (uint32_t)(0xfffffff0u + i);
        roundtrip_free(o);
        /* Default threshold: large payloads go to the side table. */
        lch_enc enc;
        assert_rc(lch_enc_begin(&enc, NULL), LCH_OK);
        assert_rc(lch_enc_bytes(&enc, p, lens[i]), LCH_OK);
        lch_encoded *e = NULL;
        assert_rc(lch_enc_finish(&enc, &e), LCH_OK);
        assert_int_equal(lch_encoded_nrefs(e),
                         lens[i] >= LCH_CODEC_EXT_MIN ? 1 : 0);
        lch_view v;
        lch_encoded_view(e, &v);
        const void *q;
        size_t n;
        lch_buffer *shared = (lch_buffer *)1;
        assert_rc(lch_view_bytes(&v, 0, &q, &n, &shared), LCH_OK);
        assert_int_equal(n, lens[i]);
        assert_true(n == 0 || memcmp(q, p, n) == 0);
        assert_true((shared != NULL) == (lens[i] >= LCH_CODEC_EXT_MIN));
        int drc;
        ct_node *back = ct_decode(e, &drc);
        assert_rc(drc, LCH_OK);
        assert_true((back->shared != NULL) == (shared != NULL));
        ct_free(back);
        lch_encoded_unref(e);
    }
    free(p);
}

static void rt_containers(void **state)
{
    (void)state;
    const lch_vtype kinds[] = {LCH_V_TUPLE, LCH_V_LIST, LCH_V_DICT, LCH_V_SET,
                               LCH_V_FROZENSET};
    for (size_t k = 0; k < 5; k++) {
        roundtrip_free(ct_container(kinds[k], 0));
        for (size_t len = 1; len <= 17; len += 8) {
            ct_node *c = ct_container(kinds[k], len);
            for (size_t i = 0; i < c->nkids; i++)
                c->kids[i] = i % 3 == 0   ? ct_int((int64_t)i)
                             : i % 3 == 1 ? ct_str("s")
                                          : ct_container(kinds[(k + i) % 5],
                                                         0);
            roundtrip_free(c);
        }
    }
    roundtrip_free(mixed_value(20));
    /* Big flat tuples (O(1) element access is tested in view_*). */
    ct_node *t = ct_container(LCH_V_TUPLE, 100000);
    for (size_t i = 0; i < t->nkids; i++)
        t->kids[i] = i % 2 ? ct_int((int64_t)i) : ct_float((double)i);
    roundtrip_free(t);
}

static void rt_objects_released_once(void **state)
{
    (void)state;
    enum { N = 40 };
    _Atomic uint32_t slots[N];
    for (int i = 0; i < N; i++)
        atomic_init(&slots[i], 0);
    tu_payload_track(slots, N);
    lch_enc enc;
    assert_rc(lch_enc_begin(&enc, NULL), LCH_OK);
    assert_rc(lch_enc_list(&enc, N), LCH_OK);
    for (int i = 0; i < N; i++) {
        lch_object *o = tu_payload_new((uint64_t)i, 0, 0);
        assert_rc(lch_enc_object(&enc, o), LCH_OK);
        lch_object_unref(o); /* the encoder holds its own reference */
    }
    assert_rc(lch_enc_end(&enc), LCH_OK);
    lch_encoded *e = NULL;
    assert_rc(lch_enc_finish(&enc, &e), LCH_OK);
    assert_int_equal(lch_encoded_nrefs(e), N);
    /* Through a channel and back, as a value. */
    lch_channel *ch = NULL;
    assert_rc(lch_channel_create(&ch, 4), LCH_OK);
    assert_rc(lch_channel_send(ch, lch_value_object(lch_encoded_object(e)),
                               LCH_NOWAIT),
              LCH_OK);
    lch_value got;
    assert_rc(lch_channel_recv(ch, &got, LCH_NOWAIT), LCH_OK);
    lch_encoded *r = lch_encoded_from_object(got.u.obj);
    assert_ptr_equal(r, e);
    assert_null(lch_encoded_from_object(NULL));
    lch_view root, items;
    lch_encoded_view(r, &root);
    assert_rc(lch_view_child(&root, 0, &items), LCH_OK);
    for (int i = 0; i < N; i++) {
        lch_object *o = NULL;
        assert_rc(lch_view_object(&items, (size_t)i, &o), LCH_OK);
        assert_int_equal(tu_payload_get(o)->id, i);
        assert_int_equal(atomic_load(&slots[i]), 0);
    }
    lch_value_release(&got);
    lch_channel_unref(ch);
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&slots[i]), 1);
    tu_payload_track(NULL, 0);
}

/* ---- hand-made corruptions ---------------------------------------------------- */

static const ct_golden *find_golden(const char *name)
{
    load_golden();
    for (long g = 0; g < ngolden; g++)
        if (!strcmp(golden[g].name, name))
            return &golden[g];
    fail_msg("no golden %s", name);
    return NULL;
}

/* Patch byte `at` of golden `name` to `val` (optionally append `extra` zero
 * bytes and fix the length), validate against refs, expect an error at
 * `want_off`. */
static void expect_bad2(const char *name, size_t at, uint8_t val, size_t at2,
                        uint8_t val2, size_t extra, lch_object *const *refs,
                        size_t nr, size_t want_off, const char *what)
{
    const ct_golden *g = find_golden(name);
    size_t len = g->len + extra;
    uint8_t *b = calloc(1, len);
    memcpy(b, g->bytes, g->len);
    if (extra)
        b[8] = (uint8_t)len;
    if (at < len)
        b[at] = val;
    if (at2 < len)
        b[at2] = val2;
    lch_codec_error err = {0, NULL};
    int rc = validate_copy(b, len, refs, nr, &err);
    if (rc != LCH_CODEC_ECORRUPT || err.offset != want_off)
        fail_msg("%s (%s): rc %d, offset %zu (want %zu), \"%s\"", what, name,
                 rc, err.offset, want_off, err.msg ? err.msg : "");
    free(b);
}

static void expect_bad(const char *name, size_t at, uint8_t val, size_t extra,
                       lch_object *const *refs, size_t nr, size_t want_off,
                       const char *what)
{
    expect_bad2(name, at, val, SIZE_MAX, 0, extra, refs, nr, want_off, what);
}

static void bad_header_and_slots(void **state)
{
    (void)state;
    expect_bad("tuple_mixed", 0, 'X', 0, NULL, 0, 0, "magic");
    expect_bad("tuple_mixed", 4, 2, 0, NULL, 0, 4, "version");
    expect_bad("tuple_mixed", 7, 1, 0, NULL, 0, 6, "flags");
    expect_bad("tuple_mixed", 8, 0x48, 0, NULL, 0, 8, "length field");
    expect_bad("tuple_mixed", 12, 1, 0, NULL, 0, 12, "side-table count");
    expect_bad("tuple_mixed", 5, 0x00, 0, NULL, 0, 5, "root type 0");
    expect_bad("tuple_mixed", 25, 0x07, 0, NULL, 0, 25, "unknown type");
    expect_bad("tuple_mixed", 25, 0xff, 0, NULL, 0, 25, "unknown type");
    expect_bad("tuple_mixed", 27, 0x01, 0, NULL, 0, 27, "type padding");
    expect_bad("tuple_mixed", 48, 0x01, 0, NULL, 0, 48, "NONE slot");
    expect_bad("true", 16, 0x02, 0, NULL, 0, 16, "BOOL 2");
    expect_bad("true", 23, 0x01, 0, NULL, 0, 16, "BOOL high byte");
    expect_bad("tuple_mixed", 40, 0x40, 0, NULL, 0, 40, "offset mismatch");
    expect_bad("tuple_mixed", 43, 0x01, 0, NULL, 0, 40, "length past end");
    expect_bad("tuple_mixed", 57, 0x01, 0, NULL, 0, 57, "record padding");
    expect_bad("tuple_mixed", 56, 0xc3, 0, NULL, 0, 56, "ASCII high bit");
    expect_bad("tuple_mixed", 64, 0x00, 8, NULL, 0, 64, "trailing bytes");
    expect_bad("tuple_empty", 20, 0x01, 0, NULL, 0, 24, "count past end");
    expect_bad("tuple_empty", 23, 0x20, 0, NULL, 0, 16, "count > max");
    expect_bad("complex", 20, 0x01, 0, NULL, 0, 20, "complex reserved");
    expect_bad("opaque", 28, 0x01, 0, NULL, 0, 28, "opaque reserved");
    expect_bad("opaque", 34, 0x01, 0, NULL, 0, 34, "opaque padding");
    /* Too short for a header at all. */
    const ct_golden *g = find_golden("none");
    lch_codec_error err;
    assert_rc(validate_copy(g->bytes, 23, NULL, 0, &err), LCH_CODEC_ECORRUPT);
    assert_int_equal(err.offset, 23);
    assert_rc(lch_codec_validate(NULL, 0, NULL, 0, &err), LCH_CODEC_ECORRUPT);
    assert_rc(lch_codec_validate(NULL, 5, NULL, 0, &err), LCH_EINVAL);
    assert_rc(lch_codec_validate(g->bytes, g->len, NULL, 1, &err),
              LCH_EINVAL);
}

static void bad_ints_and_strings(void **state)
{
    (void)state;
    expect_bad("bigint_2_63", 31, 0x00, 0, NULL, 0, 32, "BIGINT 0-prefix");
    expect_bad("bigint_neg", 31, 0xff, 0, NULL, 0, 32, "BIGINT ff-prefix");
    expect_bad("bigint_2_63", 20, 0x08, 0, NULL, 0, 16, "BIGINT < 9 bytes");
    expect_bad("bigint_2_63", 33, 0x01, 0, NULL, 0, 33, "BIGINT padding");
    expect_bad("str_latin1", 24, 0x05, 0, NULL, 0, 24, "code-point count");
    expect_bad("str_latin1", 28, 0x01, 0, NULL, 0, 28, "string reserved");
    expect_bad("str_latin1", 5, 0x0a, 0, NULL, 0, 5, "kind too wide");
    expect_bad("str_latin1", 5, 0x08, 0, NULL, 0, 32, "ASCII type, record left over");
    expect_bad("str_bmp", 5, 0x09, 0, NULL, 0, 5, "kind too narrow");
    expect_bad2("str_bmp", 32, 0xed, 33, 0xa0, 0, NULL, 0, 33,
                "surrogate ED A0 AC");
    expect_bad("str_bmp", 32, 0xe0, 0, NULL, 0, 33, "overlong E0 82");
    expect_bad("str_bmp", 32, 0xc0, 0, NULL, 0, 32, "overlong C0");
    expect_bad("str_bmp", 34, 0x31, 0, NULL, 0, 34, "bad continuation");
    expect_bad("str_astral", 33, 0x8f, 0, NULL, 0, 33, "overlong F0 8F");
    expect_bad("str_astral", 32, 0xf5, 0, NULL, 0, 32, "F5 lead");
}

static void bad_side_table(void **state)
{
    (void)state;
    const ct_golden *g = find_golden("refs");
    lch_object *obj = tu_payload_new(1, 0, 0);
    lch_buffer *buf = shared4096();
    lch_object *good[2] = {obj, lch_buffer_object(buf)};
    lch_object *swapped[2] = {lch_buffer_object(buf), obj};
    lch_object *nulls[2] = {obj, NULL};
    lch_codec_error err;
    assert_rc(validate_copy(g->bytes, g->len, good, 2, &err), LCH_OK);
    /* An OBJECT may be any object; a BYTES_REF must be a buffer. */
    expect_bad("refs", 0, 'L', 0, swapped, 2, 40, "BYTES_REF to non-buffer");
    expect_bad("refs", 0, 'L', 0, nulls, 2, 40, "NULL entry");
    expect_bad("refs", 0, 'L', 0, good, 1, 12, "table too short");
    expect_bad("refs", 32, 0x01, 0, good, 2, 32, "out of order");
    expect_bad("refs", 36, 0x01, 0, good, 2, 36, "reserved half");
    expect_bad("refs", 40, 0x05, 0, good, 2, 40, "index out of order");
    expect_bad("refs", 25, 0x01, 0, good, 2, 40, "NONE with index slot");
    /* The header and the table say 1, but no element uses it. */
    expect_bad("tuple_mixed", 12, 0x01, 0, good, 1, 12, "unused entry");
    lch_object_unref(obj);
    lch_buffer_unref(buf);
}

/* ---- depth ---------------------------------------------------------------------- */

/* d tuples nested inside one another, the innermost empty, made by hand. */
static uint8_t *nested_by_hand(unsigned d, size_t *len)
{
    *len = 24 + 16 * (size_t)(d - 1);
    uint8_t *b = calloc(1, *len);
    memcpy(b, "LCHV\x01\x10", 6);
    b[8] = (uint8_t)*len;
    b[9] = (uint8_t)(*len >> 8);
    for (unsigned k = 0; k < d; k++) {
        /* The slot for level k+1 (the root slot for k == 0). */
        size_t slot = k == 0 ? 16 : 24 + 16 * (size_t)(k - 1) + 8;
        uint32_t off = 24 + 16 * k;
        uint32_t count = k + 1 < d ? 1 : 0;
        if (k > 0)
            b[24 + 16 * (size_t)(k - 1)] = 0x10;
        memcpy(b + slot, &off, 4);
        memcpy(b + slot + 4, &count, 4);
    }
    return b;
}

static int encode_nested(unsigned d, lch_encoded **out)
{
    lch_enc enc;
    lch_enc_begin(&enc, NULL);
    int rc = LCH_OK;
    for (unsigned k = 0; k < d && rc == LCH_OK; k++)
        rc = lch_enc_tuple(&enc, k + 1 < d ? 1 : 0);
    for (unsigned k = 0; k < d && rc == LCH_OK; k++)
        rc = lch_enc_end(&enc);
    int frc = lch_enc_finish(&enc, out);
    return rc != LCH_OK ? rc : frc;
}

static void depth_limit(void **state)
{
    (void)state;
    size_t len;
    lch_codec_error err;
    /* At the limit: valid, and the encoder makes the same bytes. */
    uint8_t *b = nested_by_hand(LCH_CODEC_MAX_DEPTH, &len);
    assert_rc(validate_copy(b, len, NULL, 0, &err), LCH_OK);
    lch_encoded *e = NULL;
    assert_rc(encode_nested(LCH_CODEC_MAX_DEPTH, &e), LCH_OK);
    assert_bytes_equal(lch_encoded_data(e), lch_encoded_len(e), b, len,
                       "64 nested tuples");
    int drc;
    ct_node *t = ct_decode(e, &drc);
    assert_rc(drc, LCH_OK);
    ct_free(t);
    lch_encoded_unref(e);
    free(b);
    /* One past it: refused by both, at the parent's type code. */
    b = nested_by_hand(LCH_CODEC_MAX_DEPTH + 1, &len);
    assert_rc(validate_copy(b, len, NULL, 0, &err), LCH_CODEC_ECORRUPT);
    assert_int_equal(err.offset, 24 + 16 * (LCH_CODEC_MAX_DEPTH - 1));
    assert_non_null(strstr(err.msg, "deeper"));
    free(b);
    e = (lch_encoded *)1;
    assert_rc(encode_nested(LCH_CODEC_MAX_DEPTH + 1, &e), LCH_E2BIG);
    assert_null(e);
}

/* ---- out of memory ----------------------------------------------------------- */

typedef int (*encode_fn)(void *arg, lch_encoded **out);

/* Run fn with the nth allocation failing, for n = 1, 2, ... until it
 * succeeds without a failure injected. Every failing run must return
 * LCH_ENOMEM, leave *out NULL and free everything it allocated. Returns the
 * number of allocations of a successful run. */
static uint64_t oom_every_allocation(encode_fn fn, void *arg)
{
    for (uint64_t n = 1;; n++) {
        int64_t live = tu_alloc_live();
        tu_alloc_fail_nth(n);
        lch_encoded *e = (lch_encoded *)1;
        int rc = fn(arg, &e);
        uint64_t failures = tu_alloc_failures();
        uint64_t calls = tu_alloc_calls();
        tu_alloc_fail_nth(0);
        if (failures == 0) {
            assert_rc(rc, LCH_OK);
            lch_encoded_unref(e);
            assert_int_equal(tu_alloc_live(), live);
            return calls;
        }
        if (rc != LCH_ENOMEM)
            fail_msg("allocation %llu failed: got %s",
                     (unsigned long long)n, lch_err_name(rc));
        assert_null(e);
        if (tu_alloc_live() != live)
            fail_msg("allocation %llu failed: %lld blocks leaked",
                     (unsigned long long)n,
                     (long long)(tu_alloc_live() - live));
        assert_true(n < 10000);
    }
}

static int enc_tree_fn(void *arg, lch_encoded **out)
{
    return ct_encode(arg, out);
}

struct refs_arg {
    lch_object **objs;
    size_t n;
    const uint8_t *big;
    size_t big_len;
};

/* Objects past the inline side table, large bytes copied into their own
 * buffer, long strings past the scratch space: every allocation site. */
static int enc_refs_fn(void *arg, lch_encoded **out)
{
    struct refs_arg *a = arg;
    lch_enc enc;
    lch_enc_begin(&enc, NULL);
    lch_enc_tuple(&enc, a->n + 2);
    for (size_t i = 0; i < a->n; i++)
        lch_enc_object(&enc, a->objs[i]);
    lch_enc_bytes(&enc, a->big, a->big_len);
    lch_enc_str(&enc, (const char *)a->big, 3000);
    lch_enc_end(&enc);
    return lch_enc_finish(&enc, out);
}

static int from_bytes_fn(void *arg, lch_encoded **out)
{
    const ct_golden *g = arg;
    int rc = lch_encoded_from_bytes(out, g->bytes, g->len, NULL);
    return rc;
}

static int from_buffer_fn(void *arg, lch_encoded **out)
{
    return lch_encoded_from_buffer(out, arg, NULL, 0, NULL);
}

static void oom_encode(void **state)
{
    (void)state;
    /* Small (scratch only), medium and large (buffer growth). */
    ct_node *small = build_golden("nested");
    uint64_t n_small = oom_every_allocation(enc_tree_fn, small);
    assert_int_equal(n_small, 1); /* one allocation for the whole value */
    ct_free(small);
    ct_node *m = mixed_value(50);
    oom_every_allocation(enc_tree_fn, m);
    ct_free(m);

    struct refs_arg a;
    a.n = 20;
    a.objs = calloc(a.n, sizeof *a.objs);
    for (size_t i = 0; i < a.n; i++)
        a.objs[i] = tu_payload_new(i, 0, 0);
    a.big_len = 3 * LCH_CODEC_EXT_MIN;
    uint8_t *big = malloc(a.big_len);
    memset(big, 'x', a.big_len);
    a.big = big;
    uint64_t created = tu_payload_created(), released = tu_payload_released();
    oom_every_allocation(enc_refs_fn, &a);
    /* Every reference the encoder took was given back exactly once. */
    assert_int_equal(tu_payload_released() - released, 0);
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(lch_object_refcount(a.objs[i]), 1);
        lch_object_unref(a.objs[i]);
    }
    assert_int_equal(tu_payload_created() - created, 0);
    free(a.objs);
    free(big);
}

/* A sink (lch_enc_sink) whose memory comes from the test allocator, so that
 * out-of-memory injection reaches it and the leak check sees it. */
struct test_sink {
    void *area;      /* the caller's (the test's), freed by the test */
    size_t size;     /* of area */
    unsigned calls;  /* resize calls */
    bool bad_keep;   /* a call asked to keep more than the area had */
};

static void *ts_resize(void *ctx, void *old, size_t keep, size_t size)
{
    struct test_sink *t = ctx;
    const lch_allocator *a = tu_alloc_hook();
    t->calls++;
    if (old != t->area || keep > t->size || keep > size)
        t->bad_keep = true;
    void *p = a->realloc(a->ctx, old, size);
    if (!p)
        return NULL; /* old is still t->area, still ours */
    t->area = p;
    t->size = size;
    return p;
}

static void ts_free(struct test_sink *t)
{
    const lch_allocator *a = tu_alloc_hook();
    a->free(a->ctx, t->area);
    *t = (struct test_sink){0};
}

/* Encode n into t's memory (ext_min SIZE_MAX, as ct_encode). */
static int sink_encode(const ct_node *n, size_t hint, struct test_sink *t,
                       size_t *len)
{
    lch_enc_sink sink = {ts_resize, t};
    lch_enc_opts o = {.size_hint = hint, .ext_min = SIZE_MAX, .sink = &sink};
    return ct_encode_with(n, &o, NULL, len);
}

static int sink_fn(void *arg, lch_encoded **out)
{
    struct test_sink t = {0};
    size_t len = 1;
    int rc = sink_encode(arg, 0, &t, &len);
    if (rc == LCH_OK) {
        /* Exactly the bytes lch_enc_finish makes, in memory trimmed to
         * them. */
        assert_false(t.bad_keep);
        assert_int_equal(t.size, len);
        rc = lch_encoded_from_bytes(out, t.area, len, NULL);
    } else {
        assert_int_equal(len, 0);
        *out = NULL;
    }
    ts_free(&t);
    return rc;
}

/* Values past the scratch, past 64 KiB (the encoder moves to a buffer from
 * the buffer cache), trimmed at finish after a hint too large, and into
 * the caller's memory (a sink), with every allocation failing in turn. */
static int enc_hint_fn(void *arg, lch_encoded **out)
{
    lch_enc enc;
    lch_enc_opts o = {.size_hint = 200000, .ext_min = SIZE_MAX};
    lch_enc_begin(&enc, &o);
    ct_encode_into(&enc, arg);
    return lch_enc_finish(&enc, out);
}

static void oom_encode_large_and_sink(void **state)
{
    (void)state;
    ct_node *big = mixed_value(600);
    lch_encoded *e = encode_tree(big);
    assert_true(lch_encoded_len(e) > LCH_BUFFER_CACHE_MIN);
    lch_encoded_unref(e);
    oom_every_allocation(enc_tree_fn, big);
    oom_every_allocation(sink_fn, big);
    ct_free(big);
    ct_node *m = mixed_value(20);
    oom_every_allocation(enc_hint_fn, m);
    oom_every_allocation(sink_fn, m);
    ct_free(m);
    ct_node *small = build_golden("nested");
    /* Scratch, then one resize of the sink: one allocation. */
    assert_int_equal(oom_every_allocation(sink_fn, small), 2);
    ct_free(small);
}

/* The sink: same bytes as lch_enc_finish, one resize with an exact hint,
 * and the misuses. */
static void enc_sink(void **state)
{
    (void)state;
    ct_node *vals[] = {build_golden("tuple_mixed"), mixed_value(3),
                       mixed_value(700)};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        lch_encoded *e = encode_tree(vals[i]);
        size_t want = lch_encoded_len(e);
        for (int hinted = 0; hinted < 3; hinted++) {
            struct test_sink t = {0};
            size_t len = 0;
            size_t hint = hinted == 0 ? 0 : hinted == 1 ? want : want * 3;
            assert_rc(sink_encode(vals[i], hint, &t, &len), LCH_OK);
            assert_bytes_equal(t.area, len, lch_encoded_data(e), want,
                               "sink");
            assert_int_equal(t.size, len);
            assert_false(t.bad_keep);
            if (hinted == 1)
                assert_int_equal(t.calls, 1); /* made once, never trimmed */
            if (hinted == 2 && want > 256)
                assert_int_equal(t.calls, 2); /* made once, trimmed */
            ts_free(&t);
        }
        lch_encoded_unref(e);
        ct_free(vals[i]);
    }

    /* A reference cannot go into flat bytes: refused at finish, and the
     * reference is released. */
    lch_object *obj = tu_payload_new(1, 0, 0);
    struct test_sink t = {0};
    lch_enc_sink sink = {ts_resize, &t};
    lch_enc_opts o = {.ext_min = SIZE_MAX, .sink = &sink};
    lch_enc enc;
    size_t len = 7;
    assert_rc(lch_enc_begin(&enc, &o), LCH_OK);
    assert_rc(lch_enc_object(&enc, obj), LCH_OK);
    assert_int_equal(lch_object_refcount(obj), 2);
    assert_rc(lch_enc_finish_flat(&enc, &len), LCH_EINVAL);
    assert_int_equal(len, 0);
    assert_int_equal(lch_object_refcount(obj), 1);
    lch_object_unref(obj);
    ts_free(&t);
    /* finish and finish_flat each refuse the other kind of encoder. */
    lch_encoded *e = (lch_encoded *)1;
    assert_rc(lch_enc_begin(&enc, &o), LCH_OK);
    assert_rc(lch_enc_int(&enc, 1), LCH_OK);
    assert_rc(lch_enc_finish(&enc, &e), LCH_EINVAL);
    assert_null(e);
    assert_rc(lch_enc_begin(&enc, NULL), LCH_OK);
    assert_rc(lch_enc_int(&enc, 1), LCH_OK);
    assert_rc(lch_enc_finish_flat(&enc, &len), LCH_EINVAL);
    assert_rc(lch_enc_finish_flat(NULL, &len), LCH_EINVAL);
    assert_int_equal(t.calls, 0);
}

/* What an encoded value costs, as a backlog of queued values pays it: one
 * block of its encoding plus the 16-byte object header up to 64 KiB; above
 * that, its buffer's header and a block of the buffer cache, within 1/64 of
 * the encoding plus two headers. Counted by the test allocator, so the
 * figure is exact (the C library's own rounding comes on top: at most 15
 * bytes with glibc). The flat bytes as a buffer outlive the value. */
static void enc_footprint(void **state)
{
    (void)state;
    /* (7, "x" * n) is 48 + pad8(n) bytes: 65464 is the longest string
     * whose value is still one block below 64 KiB, 65465 the first that
     * goes to the buffer cache. */
    static const size_t strs[] = {0,    1,     20,    100,   4000,  5000,
                                  60000, 65464, 65465, 70000, 300000};
    char *text = malloc(300001);
    memset(text, 'x', 300001);
    for (int from_bytes = 0; from_bytes < 2; from_bytes++) {
        for (size_t k = 0; k < sizeof strs / sizeof strs[0] + 3; k++) {
            ct_node *n;
            if (k < sizeof strs / sizeof strs[0]) {
                /* (i, "x..."): a tuple with one string */
                text[strs[k]] = '\0';
                ct_node *kids[2] = {ct_int(7), ct_str(text)};
                text[strs[k]] = 'x';
                n = ct_tuple_of(2, kids);
            } else if (k == sizeof strs / sizeof strs[0]) {
                n = mixed_value(2);
            } else {
                size_t cnt = k == sizeof strs / sizeof strs[0] + 1 ? 1000
                                                                   : 20000;
                n = ct_container(LCH_V_TUPLE, cnt);
                for (size_t i = 0; i < cnt; i++)
                    n->kids[i] = ct_int((int64_t)i);
            }
            int64_t blocks0 = tu_alloc_live(), bytes0 = tu_alloc_live_bytes();
            lch_encoded *e = NULL;
            if (from_bytes) {
                lch_encoded *src = encode_tree(n);
                size_t len = lch_encoded_len(src);
                void *copy = malloc(len);
                memcpy(copy, lch_encoded_data(src), len);
                lch_encoded_unref(src);
                assert_rc(lch_encoded_from_bytes(&e, copy, len, NULL),
                          LCH_OK);
                free(copy);
            } else {
                e = encode_tree(n);
            }
            size_t len = lch_encoded_len(e);
            int64_t blocks = tu_alloc_live() - blocks0;
            int64_t bytes = tu_alloc_live_bytes() - bytes0;
            if (16 + len < LCH_BUFFER_CACHE_MIN) {
                assert_int_equal(blocks, 1);
                assert_int_equal(bytes, 16 + len);
                assert_int_equal((uintptr_t)lch_encoded_data(e) % 8, 0);
            } else {
                assert_int_equal(blocks, 2);
                assert_true((size_t)bytes <= len + len / 64 + 256);
                assert_int_equal((uintptr_t)lch_encoded_data(e) % 64, 0);
            }
            /* The flat bytes as a buffer: no copy, outlives the value. */
            lch_buffer *flat = NULL;
            assert_rc(lch_encoded_buffer(e, &flat), LCH_OK);
            assert_ptr_equal(lch_buffer_data(flat), lch_encoded_data(e));
            assert_int_equal(lch_buffer_len(flat), len);
            lch_encoded_unref(e);
            lch_encoded *again = NULL;
            assert_rc(lch_encoded_from_buffer(&again, flat, NULL, 0, NULL),
                      LCH_OK);
            ct_node *back = ct_decode(again, NULL);
            assert_true(ct_equal(back, n));
            ct_free(back);
            lch_encoded_unref(again);
            lch_buffer_unref(flat);
            assert_int_equal(tu_alloc_live(), blocks0);
            ct_free(n);
        }
    }
    free(text);
}

static void oom_from_bytes_and_buffer(void **state)
{
    (void)state;
    const ct_golden *g = find_golden("tuple_mixed");
    assert_int_equal(oom_every_allocation(from_bytes_fn, (void *)g), 1);
    lch_buffer *b = NULL;
    assert_rc(lch_buffer_new_copy(&b, g->bytes, g->len), LCH_OK);
    assert_int_equal(oom_every_allocation(from_buffer_fn, b), 1);
    lch_buffer_unref(b);
}

static void oom_walker_every_constructor(void **state)
{
    (void)state;
    /* Every kind of constructor, an object reference among them. */
    ct_node *m = mixed_value(3);
    ct_free(m->kids[1]);
    ct_node *o = ct_new(LCH_V_OBJECT);
    o->obj = tu_payload_new(1, 0, 0);
    m->kids[1] = o;
    lch_encoded *    e = encode_tree(m);
    ct_fail_ctx fc = {0, 0};
    void *out = NULL;
    assert_rc(lch_decode(e, &ct_decoder, &fc, &out), LCH_OK);
    ct_free(out);
    long total = fc.calls;
    long base = ct_live_nodes;
    for (long k = 1; k <= total; k++) {
        fc.calls = 0;
        fc.fail_at = k;
        out = (void *)1;
        assert_rc(lch_decode(e, &ct_decoder, &fc, &out), LCH_ENOMEM);
        assert_null(out);
        assert_int_equal(ct_live_nodes, base);
        assert_int_equal(lch_object_refcount(o->obj), 2); /* tree + value */
    }
    lch_encoded_unref(e);
    ct_free(m);
}

/* ---- views -------------------------------------------------------------------- */

static void view_accessors(void **state)
{
    (void)state;
    lch_buffer *big = NULL;
    size_t big_len = (size_t)1 << 20;
    void *bp = NULL;
    assert_rc(lch_buffer_new_uninit(&big, big_len, &bp), LCH_OK);
    memset(bp, 0xab, big_len);
    lch_object *obj = tu_payload_new(3, 0, 0);

    lch_enc enc;
    assert_rc(lch_enc_begin(&enc, NULL), LCH_OK);
    assert_rc(lch_enc_tuple(&enc, 11), LCH_OK);
    assert_rc(lch_enc_none(&enc), LCH_OK);
    assert_rc(lch_enc_bool(&enc, true), LCH_OK);
    assert_rc(lch_enc_int(&enc, -42), LCH_OK);
    assert_rc(lch_enc_float(&enc, 2.5), LCH_OK);
    assert_rc(lch_enc_complex(&enc, 3.0, 4.0), LCH_OK);
    assert_rc(lch_enc_str(&enc, "\xc3\xa9t\xc3\xa9", 5), LCH_OK);
    assert_rc(lch_enc_bytes_buffer(&enc, big), LCH_OK);
    assert_rc(lch_enc_object(&enc, obj), LCH_OK);
    assert_rc(lch_enc_opaque(&enc, 5, "xyz", 3), LCH_OK);
    assert_rc(lch_enc_dict(&enc, 1), LCH_OK);
    assert_rc(lch_enc_str(&enc, "k", 1), LCH_OK);
    assert_rc(lch_enc_list(&enc, 2), LCH_OK);
    assert_rc(lch_enc_int(&enc, 1), LCH_OK);
    assert_rc(lch_enc_int(&enc, 2), LCH_OK);
    assert_rc(lch_enc_end(&enc), LCH_OK);
    assert_rc(lch_enc_end(&enc), LCH_OK);
    assert_rc(lch_enc_bigint(&enc, "\0\0\0\0\0\0\0\0\1", 9), LCH_OK);
    assert_rc(lch_enc_end(&enc), LCH_OK);
    lch_encoded *e = NULL;
    assert_rc(lch_enc_finish(&enc, &e), LCH_OK);
    /* Compact: right after the 16-byte object header. */
    assert_int_equal(((uintptr_t)lch_encoded_data(e)) % 8, 0);
    assert_int_equal(lch_encoded_type(e), LCH_V_TUPLE);

    lch_view root, t, d, l;
    assert_rc(lch_encoded_view(e, &root), LCH_OK);
    assert_int_equal(lch_view_count(&root), 1);
    assert_int_equal(lch_view_ctype(&root), LCH_V_INVALID);
    assert_rc(lch_view_child(&root, 0, &t), LCH_OK);
    assert_int_equal(lch_view_count(&t), 11);
    assert_int_equal(lch_view_ctype(&t), LCH_V_TUPLE);
    const lch_vtype types[] = {LCH_V_NONE,  LCH_V_BOOL,   LCH_V_INT,
                               LCH_V_FLOAT, LCH_V_COMPLEX, LCH_V_STR,
                               LCH_V_BYTES, LCH_V_OBJECT, LCH_V_OPAQUE,
                               LCH_V_DICT,  LCH_V_BIGINT};
    for (size_t i = 0; i < 11; i++)
        assert_int_equal(lch_view_type(&t, i), types[i]);
    assert_int_equal(lch_view_type(&t, 11), LCH_V_INVALID);
    assert_int_equal(lch_view_type(&t, SIZE_MAX), LCH_V_INVALID);

    bool bv;
    int64_t iv;
    double dv, im;
    assert_rc(lch_view_bool(&t, 1, &bv), LCH_OK);
    assert_true(bv);
    assert_rc(lch_view_int(&t, 2, &iv), LCH_OK);
    assert_true(iv == -42);
    assert_rc(lch_view_float(&t, 3, &dv), LCH_OK);
    assert_true(dv == 2.5);
    assert_rc(lch_view_complex(&t, 4, &dv, &im), LCH_OK);
    assert_true(dv == 3.0 && im == 4.0);
    const char *sp;
    size_t nb, ncp;
    lch_str_kind kind;
    assert_rc(lch_view_str(&t, 5, &sp, &nb, &ncp, &kind), LCH_OK);
    assert_int_equal(nb, 5);
    assert_int_equal(ncp, 3);
    assert_int_equal(kind, LCH_STR_LATIN1);
    assert_memory_equal(sp, "\xc3\xa9t\xc3\xa9", 5);
    /* The 1 MiB payload is the caller's buffer: not copied. */
    const void *p;
    size_t n;
    lch_buffer *shared = NULL;
    assert_rc(lch_view_bytes(&t, 6, &p, &n, &shared), LCH_OK);
    assert_ptr_equal(p, bp);
    assert_ptr_equal(shared, big);
    assert_int_equal(n, big_len);
    assert_true(lch_encoded_len(e) < 256);
    lch_object *o;
    assert_rc(lch_view_object(&t, 7, &o), LCH_OK);
    assert_ptr_equal(o, obj);
    uint32_t tag;
    assert_rc(lch_view_opaque(&t, 8, &tag, &p, &n), LCH_OK);
    assert_int_equal(tag, 5);
    assert_int_equal(n, 3);
    assert_memory_equal(p, "xyz", 3);
    assert_rc(lch_view_child(&t, 9, &d), LCH_OK);
    assert_int_equal(lch_view_ctype(&d), LCH_V_DICT);
    assert_int_equal(lch_view_count(&d), 2);
    assert_int_equal(lch_view_type(&d, 0), LCH_V_STR);
    assert_rc(lch_view_child(&d, 1, &l), LCH_OK);
    assert_int_equal(lch_view_count(&l), 2);
    assert_rc(lch_view_int(&l, 1, &iv), LCH_OK);
    assert_true(iv == 2);
    const uint8_t *bigp;
    assert_rc(lch_view_bigint(&t, 10, &bigp, &n), LCH_OK);
    assert_int_equal(n, 9);

    /* Type and range checks. */
    assert_rc(lch_view_int(&t, 3, &iv), LCH_EINVAL);
    assert_rc(lch_view_float(&t, 2, &dv), LCH_EINVAL);
    assert_rc(lch_view_str(&t, 6, &sp, &nb, NULL, NULL), LCH_EINVAL);
    assert_rc(lch_view_bytes(&t, 5, &p, &n, NULL), LCH_EINVAL);
    assert_rc(lch_view_child(&t, 5, &d), LCH_EINVAL);
    assert_rc(lch_view_object(&t, 6, &o), LCH_EINVAL);
    assert_rc(lch_view_int(&t, 11, &iv), LCH_EINVAL);
    assert_rc(lch_view_int(&t, 2, NULL), LCH_EINVAL);
    assert_rc(lch_view_bool(NULL, 0, &bv), LCH_EINVAL);

    /* Decoding one element of a view. */
    void *out = NULL;
    assert_rc(lch_view_decode(&t, 9, &ct_decoder, NULL, &out), LCH_OK);
    assert_int_equal(((ct_node *)out)->type, LCH_V_DICT);
    ct_free(out);
    assert_rc(lch_view_decode(&t, 11, &ct_decoder, NULL, &out), LCH_EINVAL);
    lch_decoder partial = ct_decoder;
    partial.make_str = NULL;
    assert_rc(lch_decode(e, &partial, NULL, &out), LCH_EINVAL);

    /* The flat bytes as a buffer: a slice, no copy. */
    lch_buffer *flat = NULL;
    assert_rc(lch_encoded_buffer(e, &flat), LCH_OK);
    assert_ptr_equal(lch_buffer_data(flat), lch_encoded_data(e));
    assert_int_equal(lch_buffer_len(flat), lch_encoded_len(e));
    lch_encoded_unref(e);
    /* The slice outlives the encoded value; reload it without the side
     * table fails (it has two entries), with it succeeds. */
    lch_codec_error err;
    lch_encoded *again = NULL;
    assert_rc(lch_encoded_from_buffer(&again, flat, NULL, 0, &err),
              LCH_CODEC_ECORRUPT);
    assert_int_equal(err.offset, 12);
    lch_object *tab[2] = {lch_buffer_object(big), obj};
    assert_rc(lch_encoded_from_buffer(&again, flat, tab, 2, &err), LCH_OK);
    lch_buffer *flat2 = NULL;
    assert_rc(lch_encoded_buffer(again, &flat2), LCH_OK);
    assert_ptr_equal(flat2, flat); /* the whole buffer: just a reference */
    lch_buffer_unref(flat2);
    lch_encoded_unref(again);
    lch_buffer_unref(flat);
    lch_buffer_unref(big);
    lch_object_unref(obj);
}

static void view_flat_access(void **state)
{
    (void)state;
    /* Element access does not depend on the position or the size. */
    const size_t sizes[] = {10, 1000, 100000};
    for (size_t s = 0; s < 3; s++) {
        lch_enc enc;
        lch_enc_begin(&enc, NULL);
        lch_enc_tuple(&enc, sizes[s]);
        for (size_t i = 0; i < sizes[s]; i++) {
            if (i % 3 == 0)
                lch_enc_int(&enc, (int64_t)i);
            else if (i % 3 == 1)
                lch_enc_str(&enc, "item", 4);
            else
                lch_enc_float(&enc, (double)i);
        }
        lch_enc_end(&enc);
        lch_encoded *e = NULL;
        assert_rc(lch_enc_finish(&enc, &e), LCH_OK);
        lch_view root, t;
        lch_encoded_view(e, &root);
        lch_view_child(&root, 0, &t);
        for (size_t i = sizes[s]; i-- > 0;) {
            if (i % 3 == 0) {
                int64_t v;
                assert_rc(lch_view_int(&t, i, &v), LCH_OK);
                assert_true(v == (int64_t)i);
            } else if (i % 3 == 1) {
                const char *p;
                size_t nb;
                assert_rc(lch_view_str(&t, i, &p, &nb, NULL, NULL), LCH_OK);
                assert_int_equal(nb, 4);
            } else {
                double d;
                assert_rc(lch_view_float(&t, i, &d), LCH_OK);
                assert_true(d == (double)i);
            }
        }
        lch_encoded_unref(e);
    }
}

/* ---- encoder contract --------------------------------------------------------- */

static void enc_misuse(void **state)
{
    (void)state;
    lch_enc enc;
    lch_encoded *e = NULL;
    /* Nothing encoded. */
    lch_enc_begin(&enc, NULL);
    assert_rc(lch_enc_finish(&enc, &e), LCH_EINVAL);
    assert_null(e);
    /* Two root values. */
    lch_enc_begin(&enc, NULL);
    assert_rc(lch_enc_int(&enc, 1), LCH_OK);
    assert_rc(lch_enc_int(&enc, 2), LCH_EINVAL);
    assert_rc(lch_enc_finish(&enc, &e), LCH_EINVAL);
    /* Too many elements. */
    lch_enc_begin(&enc, NULL);
    lch_enc_tuple(&enc, 1);
    assert_rc(lch_enc_none(&enc), LCH_OK);
    assert_rc(lch_enc_none(&enc), LCH_EINVAL);
    lch_enc_abort(&enc);
    lch_enc_abort(&enc); /* idempotent */
    /* Too few, then end. */
    lch_enc_begin(&enc, NULL);
    lch_enc_list(&enc, 2);
    lch_enc_none(&enc);
    assert_rc(lch_enc_end(&enc), LCH_EINVAL);
    assert_rc(lch_enc_finish(&enc, &e), LCH_EINVAL);
    /* End with nothing open. */
    lch_enc_begin(&enc, NULL);
    assert_rc(lch_enc_end(&enc), LCH_EINVAL);
    lch_enc_abort(&enc);
    /* Container left open. */
    lch_enc_begin(&enc, NULL);
    lch_enc_tuple(&enc, 0);
    assert_rc(lch_enc_finish(&enc, &e), LCH_EINVAL);
    /* Limits. */
    lch_enc_begin(&enc, NULL);
    assert_rc(lch_enc_tuple(&enc, LCH_CODEC_MAX_ITEMS + 1), LCH_E2BIG);
    assert_rc(lch_enc_finish(&enc, &e), LCH_E2BIG);
    lch_enc_begin(&enc, NULL);
    assert_rc(lch_enc_dict(&enc, LCH_CODEC_MAX_ITEMS / 2 + 1), LCH_E2BIG);
    lch_enc_abort(&enc);
    /* NULL arguments. */
    assert_rc(lch_enc_begin(NULL, NULL), LCH_EINVAL);
    assert_rc(lch_enc_finish(NULL, &e), LCH_EINVAL);
    lch_enc_abort(NULL);
    lch_enc_begin(&enc, NULL);
    assert_rc(lch_enc_object(&enc, NULL), LCH_EINVAL);
    lch_enc_abort(&enc);
    lch_enc_begin(&enc, NULL);
    assert_rc(lch_enc_bytes(&enc, NULL, 3), LCH_EINVAL);
    lch_enc_abort(&enc);
    lch_enc_begin(&enc, NULL);
    assert_rc(lch_enc_bytes_ref(&enc, NULL), LCH_EINVAL);
    lch_enc_abort(&enc);
    lch_enc_begin(&enc, NULL);
    assert_rc(lch_enc_int(&enc, 1), LCH_OK);
    assert_rc(lch_enc_finish(&enc, NULL), LCH_EINVAL);
    /* An error after objects were taken releases them. */
    lch_object *obj = tu_payload_new(9, 0, 0);
    lch_enc_begin(&enc, NULL);
    lch_enc_tuple(&enc, 1);
    assert_rc(lch_enc_object(&enc, obj), LCH_OK);
    assert_int_equal(lch_object_refcount(obj), 2);
    assert_rc(lch_enc_object(&enc, obj), LCH_EINVAL);
    assert_rc(lch_enc_finish(&enc, &e), LCH_EINVAL);
    assert_int_equal(lch_object_refcount(obj), 1);
    lch_object_unref(obj);
    /* Garbage in from_bytes / from_buffer arguments. */
    assert_rc(lch_encoded_from_bytes(NULL, "x", 1, NULL), LCH_EINVAL);
    assert_rc(lch_encoded_from_bytes(&e, NULL, 1, NULL), LCH_EINVAL);
    assert_rc(lch_encoded_from_buffer(&e, NULL, NULL, 0, NULL), LCH_EINVAL);
    assert_null(lch_encoded_data(NULL));
    assert_int_equal(lch_encoded_len(NULL), 0);
    assert_int_equal(lch_encoded_nrefs(NULL), 0);
    assert_null(lch_encoded_ref_at(NULL, 0));
    assert_int_equal(lch_encoded_type(NULL), LCH_V_INVALID);
    lch_encoded_unref(NULL);
}

static void enc_determinism_and_allocations(void **state)
{
    (void)state;
    ct_node *m = mixed_value(30);
    lch_encoded *a = encode_tree(m), *b = encode_tree(m);
    assert_bytes_equal(lch_encoded_data(a), lch_encoded_len(a),
                       lch_encoded_data(b), lch_encoded_len(b), "twice");
    lch_encoded_unref(a);
    lch_encoded_unref(b);
    ct_free(m);

    /* Allocation counts of the benchmark payloads (reported, and bounded:
     * one allocation when the size hint is exact; a hint too large costs
     * one more call, the trim at finish, which leaves the value's one
     * block at exactly its size). */
    static const size_t N = 1000;
    struct {
        const char *name;
        uint64_t calls[3]; /* no hint, exact hint, hint too large */
    } r[3];
    for (int kind = 0; kind < 3; kind++) {
        size_t exact = 0;
        for (int hinted = 0; hinted < 3; hinted++) {
            lch_enc enc;
            lch_enc_opts o = {.size_hint = hinted == 0   ? 0
                                           : hinted == 1 ? exact
                                                         : 40000,
                              .ext_min = 0};
            int64_t bytes0 = tu_alloc_live_bytes();
            tu_alloc_fail_nth(0);
            lch_enc_begin(&enc, &o);
            lch_enc_tuple(&enc, N);
            for (size_t i = 0; i < N; i++) {
                char s[16];
                int len;
                switch (kind) {
                case 0:
                    lch_enc_int(&enc, (int64_t)i * 7919);
                    break;
                case 1:
                    lch_enc_float(&enc, (double)i / 3.0);
                    break;
                default:
                    len = snprintf(s, sizeof s, "item-%06zu", i);
                    lch_enc_str(&enc, s, (size_t)len);
                }
            }
            lch_enc_end(&enc);
            lch_encoded *e = NULL;
            assert_rc(lch_enc_finish(&enc, &e), LCH_OK);
            r[kind].calls[hinted] = tu_alloc_calls();
            r[kind].name = kind == 0 ? "1000 ints" : kind == 1 ? "1000 floats"
                                                               : "1000 strs";
            exact = lch_encoded_len(e);
            /* One block: the 16-byte object header and the flat bytes. */
            assert_int_equal(tu_alloc_live_bytes() - bytes0, 16 + exact);
            lch_encoded_unref(e);
        }
        print_message("[ INFO     ] %s: %llu allocations, %llu with an exact "
                      "size hint, %llu with one too large\n",
                      r[kind].name, (unsigned long long)r[kind].calls[0],
                      (unsigned long long)r[kind].calls[1],
                      (unsigned long long)r[kind].calls[2]);
        assert_int_equal(r[kind].calls[1], 1);
        assert_true(r[kind].calls[2] <= 2);
        assert_true(r[kind].calls[0] <= 3);
    }
}

/* ---- concurrency ------------------------------------------------------------- */

/* A decoder that builds nothing and counts values in its context, so that
 * several threads can walk at once without shared state. */
static int c_leaf(void *ctx, void **out)
{
    ++*(long *)ctx;
    *out = ctx;
    return LCH_OK;
}
static int c_none(void *ctx, void **out) { return c_leaf(ctx, out); }
static int c_bool(void *ctx, bool v, void **out)
{
    (void)v;
    return c_leaf(ctx, out);
}
static int c_int(void *ctx, int64_t v, void **out)
{
    (void)v;
    return c_leaf(ctx, out);
}
static int c_bigint(void *ctx, const uint8_t *p, size_t n, void **out)
{
    (void)p, (void)n;
    return c_leaf(ctx, out);
}
static int c_float(void *ctx, double v, void **out)
{
    (void)v;
    return c_leaf(ctx, out);
}
static int c_complex(void *ctx, double re, double im, void **out)
{
    (void)re, (void)im;
    return c_leaf(ctx, out);
}
static int c_str(void *ctx, const char *p, size_t nb, size_t ncp,
                 lch_str_kind k, void **out)
{
    (void)p, (void)nb, (void)ncp, (void)k;
    return c_leaf(ctx, out);
}
static int c_bytes(void *ctx, const void *p, size_t n, lch_buffer *b,
                   void **out)
{
    (void)p, (void)n, (void)b;
    return c_leaf(ctx, out);
}
static int c_object(void *ctx, lch_object *o, void **out)
{
    (void)o;
    return c_leaf(ctx, out);
}
static int c_opaque(void *ctx, uint32_t tag, const void *p, size_t n,
                    void **out)
{
    (void)tag, (void)p, (void)n;
    return c_leaf(ctx, out);
}
static int c_begin(void *ctx, lch_vtype t, size_t len, void **out)
{
    (void)t, (void)len;
    return c_leaf(ctx, out);
}
static int c_item(void *ctx, void *c, size_t i, void *item)
{
    (void)ctx, (void)c, (void)i, (void)item;
    return LCH_OK;
}
static int c_pair(void *ctx, void *c, size_t i, void *k, void *v)
{
    (void)ctx, (void)c, (void)i, (void)k, (void)v;
    return LCH_OK;
}
static void c_discard(void *ctx, void *h) { (void)ctx, (void)h; }

static const lch_decoder count_decoder = {
    c_none,   c_bool,   c_int,    c_bigint, c_float, c_complex,
    c_str,    c_bytes,  c_object, c_opaque, c_begin, c_item,
    c_pair,   NULL,     c_discard,
};

/* Readers share one encoded value: each takes its own reference, reads it
 * through views and the walker, and drops the reference; whichever drop is
 * last, on whatever thread, releases the side table once. Workers only
 * record what they saw (no cmocka calls off the main thread). */
struct reader {
    lch_encoded *e;  /* the main thread's reference outlives the start */
    tu_barrier *start;
    long sum;        /* ints seen through views */
    long values;     /* values seen by the walker */
    int failures;    /* anything unexpected */
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    if (lch_encoded_ref(r->e) != LCH_OK) /* before the barrier: see below */
        r->failures++;
    tu_barrier_wait(r->start);
    for (int round = 0; round < 200; round++) {
        lch_view root, t;
        lch_encoded_view(r->e, &root);
        if (lch_view_child(&root, 0, &t) != LCH_OK)
            r->failures++;
        for (size_t i = 0; i + 1 < lch_view_count(&t); i++) {
            int64_t v;
            if (lch_view_int(&t, i, &v) == LCH_OK)
                r->sum += v;
            else
                r->failures++;
        }
        void *out = NULL;
        if (lch_decode(r->e, &count_decoder, &r->values, &out) != LCH_OK)
            r->failures++;
    }
    lch_encoded_unref(r->e);
    return NULL;
}

static void conc_shared_readers(void **state)
{
    (void)state;
    enum { READERS = 4, N = 64 };
    _Atomic uint32_t slot;
    atomic_init(&slot, 0);
    tu_payload_track(&slot, 1);
    lch_object *obj = tu_payload_new(0, 0, 0);
    lch_enc enc;
    lch_enc_begin(&enc, NULL);
    lch_enc_tuple(&enc, N + 1);
    for (int i = 0; i < N; i++)
        lch_enc_int(&enc, i);
    lch_enc_object(&enc, obj);
    lch_enc_end(&enc);
    lch_object_unref(obj); /* the encoded value holds the only reference */
    lch_encoded *e = NULL;
    assert_rc(lch_enc_finish(&enc, &e), LCH_OK);

    tu_barrier start;
    tu_barrier_init(&start, READERS + 1);
    struct reader r[READERS];
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++) {
        r[i] = (struct reader){.e = e, .start = &start};
        tu_spawn(&th[i], reader_main, &r[i]);
    }
    /* Every reader holds its own reference once past the barrier, so the
     * main thread's may go first: the last reader frees the value. */
    tu_barrier_wait(&start);
    lch_encoded_unref(e);
    tu_join_n(th, READERS);
    tu_barrier_destroy(&start);
    for (int i = 0; i < READERS; i++) {
        assert_int_equal(r[i].failures, 0);
        assert_int_equal(r[i].sum, 200L * (N * (N - 1) / 2));
        assert_int_equal(r[i].values, 200L * (N + 2));
    }
    assert_int_equal(atomic_load(&slot), 1); /* released exactly once */
    tu_payload_track(NULL, 0);
}

/* ---- main --------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    tu_init();
    /* Freed large buffers must go back to the allocator, not a cache, for
     * the leak and out-of-memory checks. */
    lch_buffer_cache_set_limit(0);
    const struct CMUnitTest tests[] = {
        TU_TEST(golden_examples_match_builders),
        TU_TEST(golden_encode_decode_reencode),
        TU_TEST(trunc_every_offset),
        TU_TEST(flip_random_bits),
        TU_TEST(rt_scalars),
        TU_TEST(rt_bigints),
        TU_TEST(rt_strings),
        TU_TEST(rt_strings_invalid),
        TU_TEST(rt_bytes_and_opaque),
        TU_TEST(rt_containers),
        TU_TEST(rt_objects_released_once),
        TU_TEST(bad_header_and_slots),
        TU_TEST(bad_ints_and_strings),
        TU_TEST(bad_side_table),
        TU_TEST(depth_limit),
        TU_TEST(oom_encode),
        TU_TEST(oom_encode_large_and_sink),
        TU_TEST(oom_from_bytes_and_buffer),
        TU_TEST(oom_walker_every_constructor),
        TU_TEST(view_accessors),
        TU_TEST(view_flat_access),
        TU_TEST(enc_misuse),
        TU_TEST(enc_determinism_and_allocations),
        TU_TEST(enc_sink),
        TU_TEST(enc_footprint),
        TU_TEST(conc_shared_readers),
    };
    int rc = tu_run("codec", tests, sizeof tests / sizeof tests[0], argc,
                    argv);
    ct_golden_free(golden, ngolden);
    return rc;
}
