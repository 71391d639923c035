/* view.c: reading a (valid) encoded value. O(1) views, and the walker that
 * builds the caller's objects through an lch_decoder.
 *
 * Nothing here re-checks the bytes: every lch_encoded was validated when it
 * was made (codec.h, "Trust"). Views check only the index against the count
 * and the element's type against the getter; the walker checks nothing. Its
 * recursion depth is the value's nesting depth, at most LCH_CODEC_MAX_DEPTH. */
#include "codec_impl.h"

#define V(code, vt) [code] = vt
const uint8_t lch__wire_vtype[256] = {
    V(W_NONE, LCH_V_NONE),           V(W_BOOL, LCH_V_BOOL),
    V(W_INT, LCH_V_INT),             V(W_FLOAT, LCH_V_FLOAT),
    V(W_BIGINT, LCH_V_BIGINT),       V(W_COMPLEX, LCH_V_COMPLEX),
    V(W_STR_ASCII, LCH_V_STR),       V(W_STR_LATIN1, LCH_V_STR),
    V(W_STR_BMP, LCH_V_STR),         V(W_STR_ASTRAL, LCH_V_STR),
    V(W_BYTES, LCH_V_BYTES),         V(W_BYTES_REF, LCH_V_BYTES),
    V(W_TUPLE, LCH_V_TUPLE),         V(W_LIST, LCH_V_LIST),
    V(W_DICT, LCH_V_DICT),           V(W_SET, LCH_V_SET),
    V(W_FROZENSET, LCH_V_FROZENSET), V(W_OBJECT, LCH_V_OBJECT),
    V(W_OPAQUE, LCH_V_OPAQUE),
};
#undef V

/* ---- views ----------------------------------------------------------------- */

int lch_encoded_view(const lch_encoded *e, lch_view *out)
{
    if (!e || !out)
        return LCH_EINVAL;
    const uint8_t *data = lch__enc_data(e);
    out->types_ = data + LCH__HDR_TYPE;
    out->slots_ = data + LCH__HDR_SLOT;
    out->base_ = data;
    out->refs_ = lch__enc_refs(e);
    out->count_ = 1;
    out->ctype_ = LCH_V_INVALID;
    return LCH_OK;
}

size_t lch_view_count(const lch_view *v) { return v ? v->count_ : 0; }

lch_vtype lch_view_ctype(const lch_view *v)
{
    return v ? (lch_vtype)v->ctype_ : LCH_V_INVALID;
}

lch_vtype lch_view_type(const lch_view *v, size_t i)
{
    if (!v || i >= v->count_)
        return LCH_V_INVALID;
    return (lch_vtype)lch__wire_vtype[v->types_[i]];
}

/* Element i's wire code and slot if i is in range; false otherwise. */
static inline bool at(const lch_view *v, size_t i, uint8_t *t, uint64_t *slot)
{
    if (!v || i >= v->count_)
        return false;
    *t = v->types_[i];
    *slot = lch__ld64(v->slots_ + 8 * i);
    return true;
}

int lch_view_bool(const lch_view *v, size_t i, bool *out)
{
    uint8_t t;
    uint64_t s;
    if (!out || !at(v, i, &t, &s) || t != W_BOOL)
        return LCH_EINVAL;
    *out = s != 0;
    return LCH_OK;
}

int lch_view_int(const lch_view *v, size_t i, int64_t *out)
{
    uint8_t t;
    uint64_t s;
    if (!out || !at(v, i, &t, &s) || t != W_INT)
        return LCH_EINVAL;
    *out = (int64_t)s;
    return LCH_OK;
}

int lch_view_bigint(const lch_view *v, size_t i, const uint8_t **p, size_t *n)
{
    uint8_t t;
    uint64_t s;
    if (!p || !n || !at(v, i, &t, &s) || t != W_BIGINT)
        return LCH_EINVAL;
    *p = v->base_ + lch__slot_lo(s);
    *n = lch__slot_hi(s);
    return LCH_OK;
}

int lch_view_float(const lch_view *v, size_t i, double *out)
{
    uint8_t t;
    uint64_t s;
    if (!out || !at(v, i, &t, &s) || t != W_FLOAT)
        return LCH_EINVAL;
    *out = lch__bits_to_double(s);
    return LCH_OK;
}

int lch_view_complex(const lch_view *v, size_t i, double *re, double *im)
{
    uint8_t t;
    uint64_t s;
    if (!re || !im || !at(v, i, &t, &s) || t != W_COMPLEX)
        return LCH_EINVAL;
    const uint8_t *r = v->base_ + lch__slot_lo(s);
    *re = lch__bits_to_double(lch__ld64(r));
    *im = lch__bits_to_double(lch__ld64(r + 8));
    return LCH_OK;
}

/* A string element's bytes, counts and kind (t is one of the STR codes). */
static inline void str_parts(const uint8_t *base, uint8_t t, uint64_t s,
                             const char **p, size_t *nbytes, size_t *ncp,
                             lch_str_kind *kind)
{
    const uint8_t *r = base + lch__slot_lo(s);
    size_t n = lch__slot_hi(s);
    if (t == W_STR_ASCII) {
        *p = (const char *)r;
        *ncp = n;
    } else {
        *p = (const char *)r + 8;
        *ncp = lch__ld32(r);
    }
    *nbytes = n;
    *kind = (lch_str_kind)(t - W_STR_ASCII);
}

int lch_view_str(const lch_view *v, size_t i, const char **p, size_t *nbytes,
                 size_t *ncp, lch_str_kind *kind)
{
    uint8_t t;
    uint64_t s;
    if (!p || !nbytes || !at(v, i, &t, &s) || t < W_STR_ASCII ||
        t > W_STR_ASTRAL)
        return LCH_EINVAL;
    size_t cp;
    lch_str_kind k;
    str_parts(v->base_, t, s, p, nbytes, &cp, &k);
    if (ncp)
        *ncp = cp;
    if (kind)
        *kind = k;
    return LCH_OK;
}

int lch_view_bytes(const lch_view *v, size_t i, const void **p, size_t *n,
                   lch_buffer **shared)
{
    uint8_t t;
    uint64_t s;
    if (!p || !n || !at(v, i, &t, &s))
        return LCH_EINVAL;
    if (t == W_BYTES) {
        *p = v->base_ + lch__slot_lo(s);
        *n = lch__slot_hi(s);
        if (shared)
            *shared = NULL;
        return LCH_OK;
    }
    if (t == W_BYTES_REF) {
        lch_buffer *b = lch_buffer_from_object(v->refs_[lch__slot_lo(s)]);
        *p = lch_buffer_data(b);
        *n = lch_buffer_len(b);
        if (shared)
            *shared = b;
        return LCH_OK;
    }
    return LCH_EINVAL;
}

int lch_view_object(const lch_view *v, size_t i, lch_object **obj)
{
    uint8_t t;
    uint64_t s;
    if (!obj || !at(v, i, &t, &s) || t != W_OBJECT)
        return LCH_EINVAL;
    *obj = v->refs_[lch__slot_lo(s)];
    return LCH_OK;
}

int lch_view_opaque(const lch_view *v, size_t i, uint32_t *tag,
                    const void **p, size_t *n)
{
    uint8_t t;
    uint64_t s;
    if (!tag || !p || !n || !at(v, i, &t, &s) || t != W_OPAQUE)
        return LCH_EINVAL;
    const uint8_t *r = v->base_ + lch__slot_lo(s);
    *tag = lch__ld32(r);
    *p = r + 8;
    *n = lch__slot_hi(s);
    return LCH_OK;
}

/* The view of a container element (t is a container code). */
static inline void child_of(const lch_view *v, uint8_t t, uint64_t s,
                            lch_view *out)
{
    uint32_t off = lch__slot_lo(s);
    uint32_t m = lch__slot_hi(s);
    if (t == W_DICT)
        m *= 2; /* <= LCH_CODEC_MAX_ITEMS: no overflow */
    out->types_ = v->base_ + off;
    out->slots_ = v->base_ + off + lch__pad8(m);
    out->base_ = v->base_;
    out->refs_ = v->refs_;
    out->count_ = m;
    out->ctype_ = lch__wire_vtype[t];
}

int lch_view_child(const lch_view *v, size_t i, lch_view *out)
{
    uint8_t t;
    uint64_t s;
    if (!out || !at(v, i, &t, &s) || t < W_TUPLE || t > W_FROZENSET)
        return LCH_EINVAL;
    child_of(v, t, s, out);
    return LCH_OK;
}

/* ---- walker ---------------------------------------------------------------- */

struct walk {
    const lch_decoder *d;
    void *ctx;
};

static int walk_elem(const struct walk *w, const lch_view *v, size_t i,
                     void **out);

/* A container element: begin, one item/pair per element, end. */
static int walk_container(const struct walk *w, const lch_view *c, size_t len,
                          void **out)
{
    const lch_decoder *d = w->d;
    void *h = NULL;
    int rc = d->begin(w->ctx, (lch_vtype)c->ctype_, len, &h);
    if (rc != LCH_OK)
        return rc;
    if (c->ctype_ == LCH_V_DICT) {
        for (size_t k = 0; k < len; k++) {
            void *key = NULL, *val = NULL;
            rc = walk_elem(w, c, 2 * k, &key);
            if (rc != LCH_OK)
                goto fail;
            rc = walk_elem(w, c, 2 * k + 1, &val);
            if (rc != LCH_OK) {
                d->discard(w->ctx, key);
                goto fail;
            }
            rc = d->pair(w->ctx, h, k, key, val);
            if (rc != LCH_OK)
                goto fail;
        }
    } else {
        for (size_t k = 0; k < len; k++) {
            void *item = NULL;
            rc = walk_elem(w, c, k, &item);
            if (rc != LCH_OK)
                goto fail;
            rc = d->item(w->ctx, h, k, item);
            if (rc != LCH_OK)
                goto fail;
        }
    }
    if (d->end)
        return d->end(w->ctx, h, out); /* takes over h either way */
    *out = h;
    return LCH_OK;
fail:
    d->discard(w->ctx, h);
    return rc;
}

static int walk_elem(const struct walk *w, const lch_view *v, size_t i,
                     void **out)
{
    const lch_decoder *d = w->d;
    void *ctx = w->ctx;
    uint8_t t = v->types_[i];
    uint64_t s = lch__ld64(v->slots_ + 8 * i);
    const uint8_t *r = v->base_ + lch__slot_lo(s);

    switch (t) {
    case W_NONE:
        return d->make_none(ctx, out);
    case W_BOOL:
        return d->make_bool(ctx, s != 0, out);
    case W_INT:
        return d->make_int(ctx, (int64_t)s, out);
    case W_FLOAT:
        return d->make_float(ctx, lch__bits_to_double(s), out);
    case W_BIGINT:
        return d->make_bigint(ctx, r, lch__slot_hi(s), out);
    case W_COMPLEX:
        return d->make_complex(ctx, lch__bits_to_double(lch__ld64(r)),
                               lch__bits_to_double(lch__ld64(r + 8)), out);
    case W_STR_ASCII:
    case W_STR_LATIN1:
    case W_STR_BMP:
    case W_STR_ASTRAL: {
        const char *p;
        size_t nb, ncp;
        lch_str_kind kind;
        str_parts(v->base_, t, s, &p, &nb, &ncp, &kind);
        return d->make_str(ctx, p, nb, ncp, kind, out);
    }
    case W_BYTES:
        return d->make_bytes(ctx, r, lch__slot_hi(s), NULL, out);
    case W_BYTES_REF: {
        lch_buffer *b = lch_buffer_from_object(v->refs_[lch__slot_lo(s)]);
        return d->make_bytes(ctx, lch_buffer_data(b), lch_buffer_len(b), b,
                             out);
    }
    case W_OBJECT:
        return d->make_object(ctx, v->refs_[lch__slot_lo(s)], out);
    case W_OPAQUE:
        return d->make_opaque(ctx, lch__ld32(r), r + 8, lch__slot_hi(s),
                              out);
    case W_TUPLE:
    case W_LIST:
    case W_DICT:
    case W_SET:
    case W_FROZENSET: {
        lch_view c;
        child_of(v, t, s, &c);
        return walk_container(w, &c, lch__slot_hi(s), out);
    }
    default:
        /* Unreachable for a valid value; fail safe rather than guess. */
        return LCH__ECORRUPT;
    }
}

static bool decoder_complete(const lch_decoder *d)
{
    return d && d->make_none && d->make_bool && d->make_int &&
           d->make_bigint && d->make_float && d->make_complex &&
           d->make_str && d->make_bytes && d->make_object && d->make_opaque &&
           d->begin && d->item && d->pair && d->discard;
}

int lch_view_decode(const lch_view *v, size_t i, const lch_decoder *d,
                    void *ctx, void **out)
{
    if (out)
        *out = NULL;
    if (!v || !out || !decoder_complete(d) || i >= v->count_)
        return LCH_EINVAL;
    struct walk w = {d, ctx};
    void *h = NULL;
    int rc = walk_elem(&w, v, i, &h);
    if (rc == LCH_OK)
        *out = h;
    return rc;
}

int lch_decode(const lch_encoded *e, const lch_decoder *d, void *ctx,
               void **out)
{
    lch_view root;
    if (out)
        *out = NULL;
    if (lch_encoded_view(e, &root) != LCH_OK)
        return LCH_EINVAL;
    return lch_view_decode(&root, 0, d, ctx, out);
}
