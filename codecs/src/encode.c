/* encode.c: the builder. Values go straight into their final place in one
 * growable buffer, in the layout of FORMAT.md, and finish turns that buffer
 * into the encoded value without copying it.
 *
 * Where the bytes live while encoding:
 *   - small values are assembled in `scratch`, inside the lch_enc itself, and
 *     copied at finish into a buffer of exactly the right size: one
 *     allocation for the whole encode, encoded object included;
 *   - once they outgrow the scratch they move to an lch_buffer from
 *     lch_buffer_new_uninit(), grown by lch_buffer_resize() in grow() (out of
 *     line: the hot paths only compare against the capacity). The buffer's
 *     first LCH__EMBED_OFF bytes are kept free for the lch_encoded header,
 *     which finish writes there, so the result is still the one buffer.
 *
 * The frame stack. frames[0] is the root pseudo-container (one element: type
 * code at header offset 5, slot at 16); frames[d] is the container opened at
 * depth d. A container's whole element table (type codes, then slots) is
 * reserved when it is opened, so writing a scalar element is two stores and
 * no capacity check; records of out-of-line elements are appended at `pos`,
 * which is exactly the pre-order layout the validator expects.
 *
 * Errors are sticky. fail() records the first one and makes the root frame
 * look full (depth 0, next == count), so every later value call falls into
 * no_room(), which returns it, at no cost to the fast paths. */
#include "codec_impl.h"

struct frame {
    uint32_t types; /* offset of the type codes */
    uint32_t slots; /* offset of the slots */
    uint32_t count; /* elements announced */
    uint32_t next;  /* elements written */
};

#define SCRATCH_BYTES 256
#define REFS_INLINE 8

struct enc {
    uint8_t *data;           /* flat bytes: scratch, or buffer + EMBED_OFF */
    size_t pos;              /* bytes of flat written or reserved */
    size_t cap;              /* bytes available at data */
    lch_buffer *buf;         /* NULL while in scratch */
    size_t ext_min;          /* bytes at least this long go by reference */
    size_t hint;             /* first buffer capacity, from the options */
    int err;                 /* first error (sticky); LCH_OK if none */
    uint32_t depth;          /* open containers */
    bool active;             /* between begin and finish/abort */
    lch_object **refs;       /* side table so far: refs_inline or heap */
    uint32_t nrefs;
    uint32_t refs_cap;
    lch_object *refs_inline[REFS_INLINE];
    struct frame frames[LCH_CODEC_MAX_DEPTH + 1];
    uint64_t scratch[SCRATCH_BYTES / 8];
};

_Static_assert(sizeof(struct enc) <= sizeof(lch_enc),
               "LCH_ENC_SIZE holds the encoder");
_Static_assert(_Alignof(struct enc) <= _Alignof(lch_enc),
               "lch_enc is aligned for the encoder");

static inline struct enc *E(lch_enc *enc) { return (struct enc *)(void *)enc; }

/* ---- errors and cleanup --------------------------------------------------- */

static LCH__NOINLINE int fail(struct enc *e, int err)
{
    if (e->err == LCH_OK)
        e->err = err;
    e->depth = 0;
    e->frames[0].next = e->frames[0].count;
    return e->err;
}

/* A value call found no room for one more element: the container (or the
 * root) is complete, or an earlier error made it look so. */
static LCH__NOINLINE int no_room(struct enc *e)
{
    return e->err != LCH_OK ? e->err : fail(e, LCH_EINVAL);
}

static void release_all(struct enc *e)
{
    for (uint32_t i = 0; i < e->nrefs; i++)
        lch_object_unref(e->refs[i]);
    if (e->refs != e->refs_inline)
        lch__free(e->refs);
    lch_buffer_unref(e->buf);
    e->refs = e->refs_inline;
    e->nrefs = 0;
    e->refs_cap = REFS_INLINE;
    e->buf = NULL;
    e->data = (uint8_t *)e->scratch;
    e->cap = 0;
    e->pos = 0;
    e->active = false;
}

/* ---- space ---------------------------------------------------------------- */

/* Make room for n more bytes at pos. Out of line: the first time the value
 * outgrows the scratch, and on every doubling after that. */
static LCH__NOINLINE int grow(struct enc *e, size_t n)
{
    if (e->err != LCH_OK)
        return e->err;
    if (n > LCH_CODEC_MAX_FLAT - e->pos)
        return fail(e, LCH_E2BIG);
    size_t need = e->pos + n;
    size_t ncap;
    if (e->buf == NULL) {
        /* First buffer: room for what is needed now and as much again (a
         * container's table usually comes before its strings), or the
         * caller's hint if larger. */
        ncap = need > LCH_CODEC_MAX_FLAT / 2 ? LCH_CODEC_MAX_FLAT : 2 * need;
        if (ncap < e->hint)
            ncap = e->hint;
    } else {
        ncap = e->cap > LCH_CODEC_MAX_FLAT / 2 ? LCH_CODEC_MAX_FLAT
                                               : 2 * e->cap;
        if (ncap < need)
            ncap = need;
    }
    ncap = (ncap + 63) & ~(size_t)63;
    if (ncap > LCH_CODEC_MAX_FLAT)
        ncap = LCH_CODEC_MAX_FLAT;
    void *base = NULL;
    int rc;
    if (e->buf == NULL) {
        lch_buffer *b = NULL;
        rc = lch_buffer_new_uninit(&b, LCH__EMBED_OFF + ncap, &base);
        if (rc == LCH_OK) {
            memcpy((uint8_t *)base + LCH__EMBED_OFF, e->scratch, e->pos);
            e->buf = b;
        }
    } else {
        rc = lch_buffer_resize(e->buf, LCH__EMBED_OFF + ncap, &base);
    }
    if (rc != LCH_OK)
        return fail(e, rc);
    e->data = (uint8_t *)base + LCH__EMBED_OFF;
    e->cap = ncap;
    return LCH_OK;
}

static inline int reserve(struct enc *e, size_t n)
{
    if (LCH__LIKELY(n <= e->cap - e->pos))
        return LCH_OK;
    return grow(e, n);
}

/* The innermost open container, if it has room for one more element. */
static inline struct frame *room(struct enc *e)
{
    struct frame *f = &e->frames[e->depth];
    return LCH__LIKELY(f->next < f->count) ? f : NULL;
}

/* Write the next element of f. */
static inline void put(struct enc *e, struct frame *f, uint8_t type,
                       uint64_t slot)
{
    e->data[f->types + f->next] = type;
    lch__st64(e->data + f->slots + 8 * (size_t)f->next, slot);
    f->next++;
}

/* Add a reference the encoder owns to the side table (at index nrefs).
 * On failure the reference is dropped. */
static LCH__NOINLINE int push_ref_slow(struct enc *e, lch_object *obj)
{
    if (e->nrefs >= LCH_CODEC_MAX_ITEMS) {
        lch_object_unref(obj);
        return fail(e, LCH_E2BIG);
    }
    uint32_t ncap = e->refs_cap * 2;
    lch_object **n;
    if (e->refs == e->refs_inline) {
        n = lch__malloc(ncap * sizeof *n);
        if (n)
            memcpy(n, e->refs, e->nrefs * sizeof *n);
    } else {
        n = lch__realloc(e->refs, ncap * sizeof *n);
    }
    if (!n) {
        lch_object_unref(obj);
        return fail(e, LCH_ENOMEM);
    }
    e->refs = n;
    e->refs_cap = ncap;
    e->refs[e->nrefs++] = obj;
    return LCH_OK;
}

static inline int push_ref(struct enc *e, lch_object *obj)
{
    if (LCH__LIKELY(e->nrefs < e->refs_cap)) {
        e->refs[e->nrefs++] = obj;
        return LCH_OK;
    }
    return push_ref_slow(e, obj);
}

/* ---- begin ---------------------------------------------------------------- */

int lch_enc_begin(lch_enc *enc, const lch_enc_opts *opts)
{
    if (!enc)
        return LCH_EINVAL;
    struct enc *e = E(enc);
    e->data = (uint8_t *)e->scratch;
    e->pos = LCH__HDR_SIZE;
    e->cap = SCRATCH_BYTES;
    e->buf = NULL;
    e->ext_min = LCH_CODEC_EXT_MIN;
    e->hint = 0;
    if (opts) {
        if (opts->ext_min)
            e->ext_min = opts->ext_min;
        e->hint = opts->size_hint > LCH_CODEC_MAX_FLAT ? LCH_CODEC_MAX_FLAT
                                                        : opts->size_hint;
    }
    e->err = LCH_OK;
    e->depth = 0;
    e->active = true;
    e->refs = e->refs_inline;
    e->nrefs = 0;
    e->refs_cap = REFS_INLINE;
    e->frames[0] = (struct frame){.types = LCH__HDR_TYPE,
                                  .slots = LCH__HDR_SLOT,
                                  .count = 1,
                                  .next = 0};
    uint8_t *h = e->data;
    h[0] = LCH__MAGIC0;
    h[1] = LCH__MAGIC1;
    h[2] = LCH__MAGIC2;
    h[3] = LCH__MAGIC3;
    h[4] = LCH_CODEC_VERSION;
    h[5] = 0;
    h[6] = h[7] = 0;
    return LCH_OK;
}

/* ---- scalars -------------------------------------------------------------- */

int lch_enc_none(lch_enc *enc)
{
    struct enc *e = E(enc);
    struct frame *f = room(e);
    if (!f)
        return no_room(e);
    put(e, f, W_NONE, 0);
    return LCH_OK;
}

int lch_enc_bool(lch_enc *enc, bool v)
{
    struct enc *e = E(enc);
    struct frame *f = room(e);
    if (!f)
        return no_room(e);
    put(e, f, W_BOOL, v ? 1 : 0);
    return LCH_OK;
}

int lch_enc_int(lch_enc *enc, int64_t v)
{
    struct enc *e = E(enc);
    struct frame *f = room(e);
    if (!f)
        return no_room(e);
    put(e, f, W_INT, (uint64_t)v);
    return LCH_OK;
}

int lch_enc_float(lch_enc *enc, double v)
{
    struct enc *e = E(enc);
    struct frame *f = room(e);
    if (!f)
        return no_room(e);
    put(e, f, W_FLOAT, lch__double_to_bits(v));
    return LCH_OK;
}

/* ---- records ---------------------------------------------------------------
 * Each record writer: check there is room for the element, reserve the
 * record (which may move `data`), write the slot pointing at pos, write the
 * record, pad it with zeros, advance pos. */

/* Copy n bytes to dst and zero the padding up to the next multiple of 8;
 * dst has pad8(n) bytes. */
static inline void copy_padded(uint8_t *dst, const void *src, size_t n)
{
    if (n & 7)
        lch__st64(dst + (n & ~(size_t)7), 0);
    if (n)
        memcpy(dst, src, n);
}

static int put_record(struct enc *e, uint8_t type, uint32_t hi,
                      const void *p, size_t n)
{
    struct frame *f = room(e);
    if (!f)
        return no_room(e);
    if (n > UINT32_MAX)
        return fail(e, LCH_E2BIG);
    size_t padded = lch__pad8(n);
    if (reserve(e, padded) != LCH_OK)
        return e->err;
    put(e, f, type, lch__slot((uint32_t)e->pos, hi));
    copy_padded(e->data + e->pos, p, n);
    e->pos += padded;
    return LCH_OK;
}

int lch_enc_uint(lch_enc *enc, uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return lch_enc_int(enc, (int64_t)v);
    uint8_t b[9];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    b[8] = 0;
    return put_record(E(enc), W_BIGINT, 9, b, 9);
}

int lch_enc_bigint(lch_enc *enc, const void *twos_le, size_t n)
{
    struct enc *e = E(enc);
    if (n && !twos_le)
        return room(e) ? fail(e, LCH_EINVAL) : no_room(e);
    const uint8_t *b = twos_le;
    /* Strip sign bytes the next byte down already implies. */
    while (n > 1 && ((b[n - 1] == 0x00 && b[n - 2] < 0x80) ||
                     (b[n - 1] == 0xFF && b[n - 2] >= 0x80)))
        n--;
    if (n <= 8) {
        uint64_t u = 0;
        for (size_t i = 0; i < n; i++)
            u |= (uint64_t)b[i] << (8 * i);
        if (n && n < 8 && (b[n - 1] & 0x80)) /* sign-extend */
            u |= ~UINT64_C(0) << (8 * n);
        return lch_enc_int(enc, (int64_t)u);
    }
    return put_record(e, W_BIGINT, (uint32_t)(n > UINT32_MAX ? 0 : n), b,
                      n);
}

int lch_enc_complex(lch_enc *enc, double re, double im)
{
    uint8_t rec[16];
    lch__st64(rec, lch__double_to_bits(re));
    lch__st64(rec + 8, lch__double_to_bits(im));
    return put_record(E(enc), W_COMPLEX, 0, rec, sizeof rec);
}

int lch_enc_bytes(lch_enc *enc, const void *p, size_t n)
{
    struct enc *e = E(enc);
    if (n && !p)
        return room(e) ? fail(e, LCH_EINVAL) : no_room(e);
    if (LCH__LIKELY(n < e->ext_min))
        return put_record(e, W_BYTES, (uint32_t)(n > UINT32_MAX ? 0 : n), p,
                          n);
    /* Large: one copy into a buffer of its own, shared from then on. */
    struct frame *f = room(e);
    if (!f)
        return no_room(e);
    lch_buffer *b = NULL;
    int rc = lch_buffer_new_copy(&b, p, n);
    if (rc != LCH_OK)
        return fail(e, rc);
    uint32_t idx = e->nrefs;
    if (push_ref(e, lch_buffer_object(b)) != LCH_OK)
        return e->err;
    put(e, f, W_BYTES_REF, idx);
    return LCH_OK;
}

/* A reference to obj (the caller's), as a side-table element of `type`. */
static int put_ref(struct enc *e, uint8_t type, lch_object *obj)
{
    struct frame *f = room(e);
    if (!f)
        return no_room(e);
    if (!obj)
        return fail(e, LCH_EINVAL);
    int rc = lch_object_ref(obj);
    if (rc != LCH_OK)
        return fail(e, rc);
    uint32_t idx = e->nrefs;
    if (push_ref(e, obj) != LCH_OK)
        return e->err;
    put(e, f, type, idx);
    return LCH_OK;
}

int lch_enc_bytes_ref(lch_enc *enc, lch_buffer *buf)
{
    return put_ref(E(enc), W_BYTES_REF, lch_buffer_object(buf));
}

int lch_enc_bytes_buffer(lch_enc *enc, lch_buffer *buf)
{
    struct enc *e = E(enc);
    size_t n = lch_buffer_len(buf);
    if (buf && n < e->ext_min)
        return put_record(e, W_BYTES, (uint32_t)n, lch_buffer_data(buf), n);
    return put_ref(e, W_BYTES_REF, lch_buffer_object(buf));
}

int lch_enc_object(lch_enc *enc, lch_object *obj)
{
    return put_ref(E(enc), W_OBJECT, obj);
}

int lch_enc_opaque(lch_enc *enc, uint32_t tag, const void *p, size_t n)
{
    struct enc *e = E(enc);
    struct frame *f = room(e);
    if (!f)
        return no_room(e);
    if (n && !p)
        return fail(e, LCH_EINVAL);
    if (n > UINT32_MAX)
        return fail(e, LCH_E2BIG);
    size_t padded = 8 + lch__pad8(n);
    if (reserve(e, padded) != LCH_OK)
        return e->err;
    put(e, f, W_OPAQUE, lch__slot((uint32_t)e->pos, (uint32_t)n));
    uint8_t *d = e->data + e->pos;
    lch__st64(d, tag); /* tag, then a zero u32 */
    copy_padded(d + 8, p, n);
    e->pos += padded;
    return LCH_OK;
}

/* ---- strings -------------------------------------------------------------- */

/* The last r (1..7) bytes of p[0..n), n >= r, in the low bytes of a word
 * whose high bytes are zero, without reading outside p[0..n) and without
 * assembling bytes through memory (a byte-by-byte copy into a temporary
 * followed by a word load stalls on store forwarding: it was 2/3 of the
 * time of encoding short strings). Overlapping loads of the same bytes are
 * combined with OR, which is harmless. */
static inline uint64_t load_tail(const uint8_t *p, size_t n, size_t r)
{
    if (n >= 8)
        return lch__ld64(p + n - 8) >> (8 * (8 - r));
    const uint8_t *q = p + n - r;
    if (r >= 4)
        return (uint64_t)lch__ld32(q) |
               ((uint64_t)lch__ld32(q + r - 4) << (8 * (r - 4)));
    if (r >= 2) {
        uint16_t a, b;
        memcpy(&a, q, 2);
        memcpy(&b, q + r - 2, 2);
        return (uint64_t)LCH__LE16(a) | ((uint64_t)LCH__LE16(b) << (8 * (r - 2)));
    }
    return q[0];
}

/* Copy n bytes (dst has pad8(n), zero-padded here) and tell whether they
 * were all ASCII: one pass, 8 bytes at a time. */
static inline bool copy_ascii(uint8_t *dst, const uint8_t *src, size_t n)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        acc |= w;
        memcpy(dst + i, &w, 8);
    }
    if (i < n) {
        uint64_t w = load_tail(src, n, n - i);
        acc |= w;
        lch__st64(dst + i, w);
    }
    return (acc & LCH__HIBITS) == 0;
}

/* Not all ASCII: validate, count, and write the code-point header. */
static LCH__NOINLINE int str_slow(struct enc *e, struct frame *f,
                                  const uint8_t *s, size_t n)
{
    size_t ncp, bad;
    lch_str_kind kind;
    if (!lch__utf8_scan(s, n, &ncp, &kind, &bad))
        return fail(e, LCH_EINVAL);
    /* Reserved pad8(n) before; the header needs 8 more. */
    if (reserve(e, 8 + lch__pad8(n)) != LCH_OK)
        return e->err;
    put(e, f, (uint8_t)(W_STR_ASCII + kind),
        lch__slot((uint32_t)e->pos, (uint32_t)n));
    uint8_t *d = e->data + e->pos;
    lch__st64(d, ncp); /* count (<= n < 2^32), then a zero u32 */
    copy_padded(d + 8, s, n);
    e->pos += 8 + lch__pad8(n);
    return LCH_OK;
}

int lch_enc_str(lch_enc *enc, const char *utf8, size_t n)
{
    struct enc *e = E(enc);
    struct frame *f = room(e);
    if (!f)
        return no_room(e);
    if (n && !utf8)
        return fail(e, LCH_EINVAL);
    if (n > UINT32_MAX)
        return fail(e, LCH_E2BIG);
    size_t padded = lch__pad8(n);
    if (reserve(e, padded) != LCH_OK)
        return e->err;
    /* Optimistic: copy as ASCII; most strings are. */
    if (LCH__LIKELY(copy_ascii(e->data + e->pos, (const uint8_t *)utf8, n))) {
        put(e, f, W_STR_ASCII, lch__slot((uint32_t)e->pos, (uint32_t)n));
        e->pos += padded;
        return LCH_OK;
    }
    return str_slow(e, f, (const uint8_t *)utf8, n);
}

/* ---- containers ----------------------------------------------------------- */

static int open_container(struct enc *e, uint8_t type, size_t n, size_t m)
{
    struct frame *f = room(e);
    if (!f)
        return no_room(e);
    if (m > LCH_CODEC_MAX_ITEMS || e->depth >= LCH_CODEC_MAX_DEPTH)
        return fail(e, LCH_E2BIG);
    size_t tb = lch__pad8(m);
    size_t need = tb + 8 * m;
    if (reserve(e, need) != LCH_OK)
        return e->err;
    uint32_t at = (uint32_t)e->pos;
    put(e, f, type, lch__slot(at, (uint32_t)n));
    if (tb)
        lch__st64(e->data + at + tb - 8, 0); /* padding of the type codes */
    e->frames[++e->depth] = (struct frame){.types = at,
                                           .slots = at + (uint32_t)tb,
                                           .count = (uint32_t)m,
                                           .next = 0};
    e->pos += need;
    return LCH_OK;
}

int lch_enc_tuple(lch_enc *enc, size_t n)
{
    return open_container(E(enc), W_TUPLE, n, n);
}

int lch_enc_list(lch_enc *enc, size_t n)
{
    return open_container(E(enc), W_LIST, n, n);
}

int lch_enc_dict(lch_enc *enc, size_t npairs)
{
    size_t m = npairs > LCH_CODEC_MAX_ITEMS ? LCH_CODEC_MAX_ITEMS + 1
                                            : 2 * npairs;
    return open_container(E(enc), W_DICT, npairs, m);
}

int lch_enc_set(lch_enc *enc, size_t n)
{
    return open_container(E(enc), W_SET, n, n);
}

int lch_enc_frozenset(lch_enc *enc, size_t n)
{
    return open_container(E(enc), W_FROZENSET, n, n);
}

int lch_enc_end(lch_enc *enc)
{
    struct enc *e = E(enc);
    if (e->depth == 0)
        return e->err != LCH_OK ? e->err : fail(e, LCH_EINVAL);
    struct frame *f = &e->frames[e->depth];
    if (f->next != f->count)
        return fail(e, LCH_EINVAL);
    e->depth--;
    return LCH_OK;
}

/* ---- finish --------------------------------------------------------------- */

int lch_enc_finish(lch_enc *enc, lch_encoded **out)
{
    if (out)
        *out = NULL;
    if (!enc)
        return LCH_EINVAL;
    struct enc *e = E(enc);
    if (!e->active)
        return e->err != LCH_OK ? e->err : LCH_EINVAL;
    if (!out)
        fail(e, LCH_EINVAL);
    else if (e->err == LCH_OK && (e->depth != 0 || e->frames[0].next != 1))
        fail(e, LCH_EINVAL); /* no root value, or a container left open */
    if (e->err != LCH_OK) {
        int err = e->err;
        release_all(e);
        return err;
    }

    size_t len = e->pos;
    lch__st32(e->data + LCH__HDR_LEN, (uint32_t)len);
    lch__st32(e->data + LCH__HDR_NREFS, e->nrefs);
    size_t total = LCH__EMBED_OFF + len + e->nrefs * sizeof(lch_object *);
    void *base = NULL;
    int rc;
    if (e->buf == NULL) {
        /* Small value: one allocation of exactly the right size. */
        lch_buffer *b = NULL;
        rc = lch_buffer_new_uninit(&b, total, &base);
        if (rc == LCH_OK) {
            memcpy((uint8_t *)base + LCH__EMBED_OFF, e->scratch, len);
            e->buf = b;
        }
    } else {
        /* Shrink (or grow by the side table) to the exact size; free for
         * small buffers, a realloc for larger ones. */
        rc = lch_buffer_resize(e->buf, total, &base);
    }
    if (rc != LCH_OK) {
        fail(e, LCH_ENOMEM);
        release_all(e);
        return LCH_ENOMEM;
    }

    struct lch_encoded *v = base;
    uint8_t *flat = (uint8_t *)base + LCH__EMBED_OFF;
    lch_object **refs = (lch_object **)(void *)(flat + len);
    if (e->nrefs)
        memcpy(refs, e->refs, e->nrefs * sizeof *refs);
    v->buf = e->buf;
    v->data = flat;
    v->len = len;
    v->refs = refs;
    v->nrefs = e->nrefs;
    v->data_off = LCH__EMBED_OFF;
    lch__object_init(&v->hdr, &lch__encoded_type, LCH__OBJ_SELF_FREE);

    /* The encoded value owns the buffer and the references now. */
    if (e->refs != e->refs_inline)
        lch__free(e->refs);
    e->refs = e->refs_inline;
    e->nrefs = 0;
    e->buf = NULL;
    e->active = false;
    *out = v;
    return LCH_OK;
}

void lch_enc_abort(lch_enc *enc)
{
    if (!enc)
        return;
    struct enc *e = E(enc);
    if (e->active)
        release_all(e);
}
