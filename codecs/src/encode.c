/* encode.c: the builder. Values go straight into their final place in one
 * growable block, in the layout of FORMAT.md, and finish turns that block
 * into the encoded value without copying it again.
 *
 * Where the bytes live while encoding (enum store):
 *   SCRATCH  small values are assembled in `scratch`, inside the lch_enc
 *            itself, and copied at finish into one block of exactly the
 *            right size: one allocation for the whole encode, encoded
 *            object included;
 *   HEAP     once they outgrow the scratch, a block from lch__malloc, with
 *            LCH__COMPACT_OFF bytes kept free in front for the object
 *            header, grown with lch__realloc in grow() (out of line: the hot
 *            paths only compare against the capacity). Finish trims it to
 *            the exact size (realloc, in place for any sane allocator) and
 *            writes the header in front: a compact value, still one block;
 *   BUFFER   from 64 KiB on, an lch_buffer (lch_buffer_new_uninit, grown
 *            with lch_buffer_resize), whose blocks come from the large-block
 *            cache, so that large encodes do not pay fresh page faults.
 *            Its first LCH__EMBED_OFF bytes are kept for the embedded
 *            header; finish resizes it to the exact size class;
 *   SINK     the caller's memory (lch_enc_sink), resized through the
 *            caller's function; finish trims it and hands back the length.
 * The first block is sized from the caller's hint when it is enough, else
 * twice what is needed then (a container's table usually comes before its
 * strings); each growth after that doubles.
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

enum store { ST_SCRATCH = 0, ST_HEAP, ST_BUFFER, ST_SINK };

struct enc {
    uint8_t *data;           /* flat bytes (see enum store) */
    size_t pos;              /* bytes of flat written or reserved */
    size_t cap;              /* bytes available at data */
    void *block;             /* HEAP: the lch__malloc block */
    lch_buffer *buf;         /* BUFFER: the buffer */
    lch_enc_sink sink;       /* resize is NULL without a sink */
    size_t ext_min;          /* bytes at least this long go by reference */
    size_t hint;             /* first block capacity, from the options */
    int err;                 /* first error (sticky); LCH_OK if none */
    uint32_t depth;          /* open containers */
    uint8_t store;           /* enum store */
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

/* Drop the references and the encoder's storage (never a sink's memory,
 * which is the caller's). */
static void release_all(struct enc *e)
{
    for (uint32_t i = 0; i < e->nrefs; i++)
        lch_object_unref(e->refs[i]);
    if (e->refs != e->refs_inline)
        lch__free(e->refs);
    if (e->store == ST_HEAP)
        lch__free(e->block);
    else if (e->store == ST_BUFFER)
        lch_buffer_unref(e->buf);
    e->refs = e->refs_inline;
    e->nrefs = 0;
    e->refs_cap = REFS_INLINE;
    e->block = NULL;
    e->buf = NULL;
    e->store = ST_SCRATCH;
    e->data = (uint8_t *)e->scratch;
    e->cap = 0;
    e->pos = 0;
    e->active = false;
}

/* ---- space ---------------------------------------------------------------- */

/* Move to (or grow) storage of ncap flat bytes, keeping the pos bytes
 * written so far. The storage kind follows from ncap: HEAP below the
 * buffer cache's threshold, BUFFER from it on; or the sink. */
static int move_to(struct enc *e, size_t ncap)
{
    void *base = NULL;
    int rc = LCH_OK;
    if (e->sink.resize) {
        void *old = e->store == ST_SINK ? e->data : NULL;
        base = e->sink.resize(e->sink.ctx, old, old ? e->pos : 0, ncap);
        if (!base) {
            /* Never touch the old area again; no room left (the caller
             * makes the error sticky, so nothing is written). */
            e->store = ST_SCRATCH;
            e->data = (uint8_t *)e->scratch;
            e->cap = e->pos;
            return LCH_ENOMEM;
        }
        if (!old)
            memcpy(base, e->scratch, e->pos);
        e->store = ST_SINK;
        e->data = base;
    } else if (LCH__COMPACT_OFF + ncap <= LCH__COMPACT_MAX) {
        /* SCRATCH or HEAP -> HEAP (never BUFFER -> HEAP: caps only grow) */
        if (e->store == ST_HEAP) {
            base = lch__realloc(e->block, LCH__COMPACT_OFF + ncap);
        } else {
            base = lch__malloc(LCH__COMPACT_OFF + ncap);
            if (base)
                memcpy((uint8_t *)base + LCH__COMPACT_OFF, e->scratch,
                       e->pos);
        }
        if (!base)
            return LCH_ENOMEM; /* the old block is untouched */
        e->store = ST_HEAP;
        e->block = base;
        e->data = (uint8_t *)base + LCH__COMPACT_OFF;
    } else if (e->store == ST_BUFFER) {
        rc = lch_buffer_resize(e->buf, LCH__EMBED_OFF + ncap, &base);
        if (rc != LCH_OK)
            return rc;
        e->data = (uint8_t *)base + LCH__EMBED_OFF;
    } else {
        lch_buffer *b = NULL;
        rc = lch_buffer_new_uninit(&b, LCH__EMBED_OFF + ncap, &base);
        if (rc != LCH_OK)
            return rc;
        memcpy((uint8_t *)base + LCH__EMBED_OFF, e->data, e->pos);
        if (e->store == ST_HEAP)
            lch__free(e->block);
        e->block = NULL;
        e->buf = b;
        e->store = ST_BUFFER;
        e->data = (uint8_t *)base + LCH__EMBED_OFF;
    }
    e->cap = ncap;
    return LCH_OK;
}

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
    if (e->data == (uint8_t *)e->scratch) {
        /* First block: the caller's hint if it is enough, else room for
         * what is needed now and as much again. */
        if (e->hint >= need)
            ncap = e->hint;
        else
            ncap = need > LCH_CODEC_MAX_FLAT / 2 ? LCH_CODEC_MAX_FLAT
                                                 : 2 * need;
    } else {
        ncap = e->cap > LCH_CODEC_MAX_FLAT / 2 ? LCH_CODEC_MAX_FLAT
                                               : 2 * e->cap;
        if (ncap < need)
            ncap = need;
    }
    int rc = move_to(e, ncap);
    return rc == LCH_OK ? LCH_OK : fail(e, rc);
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
    e->block = NULL;
    e->buf = NULL;
    e->store = ST_SCRATCH;
    e->sink = (lch_enc_sink){NULL, NULL};
    e->ext_min = LCH_CODEC_EXT_MIN;
    e->hint = 0;
    if (opts) {
        if (opts->ext_min)
            e->ext_min = opts->ext_min;
        e->hint = opts->size_hint > LCH_CODEC_MAX_FLAT ? LCH_CODEC_MAX_FLAT
                                                        : opts->size_hint;
        if (opts->sink)
            e->sink = *opts->sink;
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

/* What both finishes do first: check the encoder and the value, and write
 * the header's length and count. On error, release everything and return
 * it. */
static int finish_check(lch_enc *enc, bool ok_out, bool want_sink)
{
    if (!enc)
        return LCH_EINVAL;
    struct enc *e = E(enc);
    if (!e->active)
        return e->err != LCH_OK ? e->err : LCH_EINVAL;
    if (!ok_out || (e->sink.resize != NULL) != want_sink)
        fail(e, LCH_EINVAL);
    else if (e->err == LCH_OK && (e->depth != 0 || e->frames[0].next != 1))
        fail(e, LCH_EINVAL); /* no root value, or a container left open */
    else if (e->err == LCH_OK && want_sink && e->nrefs)
        fail(e, LCH_EINVAL); /* flat bytes alone cannot hold references */
    if (e->err != LCH_OK) {
        int err = e->err;
        release_all(e);
        return err;
    }
    lch__st32(e->data + LCH__HDR_LEN, (uint32_t)e->pos);
    lch__st32(e->data + LCH__HDR_NREFS, e->nrefs);
    return LCH_OK;
}

int lch_enc_finish(lch_enc *enc, lch_encoded **out)
{
    if (out)
        *out = NULL;
    int rc = finish_check(enc, out != NULL, false);
    if (rc != LCH_OK)
        return rc;
    struct enc *e = E(enc);

    size_t len = e->pos;
    size_t tail = len + e->nrefs * sizeof(lch_object *);
    lch_encoded *v = NULL;
    uint8_t *flat = NULL;
    if (e->store == ST_HEAP &&
        LCH__COMPACT_OFF + tail != LCH__COMPACT_OFF + e->cap) {
        /* Trim (or grow by the side table) to the exact size: a realloc,
         * in place when shrinking. */
        void *base = lch__realloc(e->block, LCH__COMPACT_OFF + tail);
        if (!base)
            rc = LCH_ENOMEM; /* the old block is untouched */
        else
            e->block = base;
    } else if (e->store == ST_BUFFER &&
               LCH__COMPACT_OFF + tail > LCH__COMPACT_MAX) {
        /* Embedded: the exact size class (a move, unless already there). */
        void *base = NULL;
        rc = lch_buffer_resize(e->buf, LCH__EMBED_OFF + tail, &base);
        if (rc == LCH_OK) {
            lch__encoded_embed(base, e->buf, len, e->nrefs);
            v = base;
            flat = (uint8_t *)base + LCH__EMBED_OFF;
            e->buf = NULL; /* the value's now */
        }
    } else if (e->store != ST_HEAP) {
        /* From the scratch, or a buffer that the hint made too large:
         * one block of exactly the right size, and a copy. */
        rc = lch__encoded_alloc(len, e->nrefs, &v, &flat);
        if (rc == LCH_OK)
            memcpy(flat, e->data, len);
    }
    if (rc != LCH_OK) {
        fail(e, rc);
        release_all(e);
        return rc;
    }
    if (e->store == ST_HEAP) {
        v = e->block;
        flat = (uint8_t *)v + LCH__COMPACT_OFF;
        lch__object_init(&v->hdr, &lch__encoded_type, LCH__ENC_COMPACT);
        e->block = NULL; /* the value's now */
    }
    if (e->nrefs)
        memcpy(flat + len, e->refs, e->nrefs * sizeof(lch_object *));

    /* The encoded value owns its storage and the references now. */
    if (e->store == ST_BUFFER)
        lch_buffer_unref(e->buf); /* NULL if embedded: the copy's source */
    e->buf = NULL;
    e->store = ST_SCRATCH;
    e->data = (uint8_t *)e->scratch;
    e->cap = 0;
    if (e->refs != e->refs_inline)
        lch__free(e->refs);
    e->refs = e->refs_inline;
    e->nrefs = 0;
    e->active = false;
    *out = v;
    return LCH_OK;
}

int lch_enc_finish_flat(lch_enc *enc, size_t *len)
{
    if (len)
        *len = 0;
    int rc = finish_check(enc, len != NULL, true);
    if (rc != LCH_OK)
        return rc;
    struct enc *e = E(enc);
    size_t n = e->pos;
    /* Out of the scratch into the caller's memory, or trimmed there. */
    if (e->store != ST_SINK || e->cap != n)
        rc = move_to(e, n);
    if (rc != LCH_OK) {
        fail(e, rc);
        release_all(e);
        return rc;
    }
    e->store = ST_SCRATCH; /* the area is the caller's */
    e->data = (uint8_t *)e->scratch;
    e->active = false;
    *len = n;
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
