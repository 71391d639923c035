/* encoded.c: the lch_encoded object (LCH_TYPE_ENCODED): flat bytes plus a
 * side table of object references, immutable once made.
 *
 * Three layouts (compact, embedded, external: codec_impl.h, above struct
 * lch_encoded). Whatever the layout, destroy releases each side-table
 * reference exactly once and then the storage of the flat bytes. */
#include "codec_impl.h"

static void encoded_destroy(lch_object *obj)
{
    lch_encoded *e = (lch_encoded *)obj;
    lch_object *const *refs = lch__enc_refs(e);
    size_t n = lch__enc_nrefs(e);
    for (size_t i = 0; i < n; i++)
        lch_object_unref(refs[i]);
    /* Compact: object.c frees the block after this returns. Otherwise,
     * last: when embedded, this frees the memory `e` lives in. */
    if (!(e->hdr.flags & LCH__ENC_COMPACT))
        lch_buffer_unref(((struct lch__encoded_ext *)e)->buf);
}

const lch_type lch__encoded_type = {LCH_TYPE_ENCODED, "encoded",
                                    encoded_destroy};

static void set_err(lch_codec_error *err, const char *msg)
{
    if (err) {
        err->offset = 0;
        err->msg = msg;
    }
}

int lch__encoded_alloc(size_t len, size_t nrefs, lch_encoded **out,
                       uint8_t **flat)
{
    size_t tail = len + nrefs * sizeof(lch_object *);
    if (LCH__COMPACT_OFF + tail <= LCH__COMPACT_MAX) {
        lch_encoded *e = lch__malloc(LCH__COMPACT_OFF + tail);
        if (!e)
            return LCH_ENOMEM;
        lch__object_init(&e->hdr, &lch__encoded_type, LCH__ENC_COMPACT);
        *out = e;
        *flat = (uint8_t *)(e + 1);
        return LCH_OK;
    }
    lch_buffer *b = NULL;
    void *base = NULL;
    int rc = lch_buffer_new_uninit(&b, LCH__EMBED_OFF + tail, &base);
    if (rc != LCH_OK)
        return rc;
    lch__encoded_embed(base, b, len, nrefs);
    *out = base;
    *flat = (uint8_t *)base + LCH__EMBED_OFF;
    return LCH_OK;
}

void lch__encoded_embed(void *base, lch_buffer *b, size_t len, size_t nrefs)
{
    struct lch__encoded_ext *x = base;
    uint8_t *flat = (uint8_t *)base + LCH__EMBED_OFF;
    x->buf = b;
    x->data = flat;
    x->refs = nrefs ? (lch_object **)(void *)(flat + len) : NULL;
    x->data_off = LCH__EMBED_OFF;
    lch__object_init(&x->base.hdr, &lch__encoded_type, LCH__OBJ_SELF_FREE);
}

int lch_encoded_from_bytes(lch_encoded **out, const void *data, size_t len,
                           lch_codec_error *err)
{
    if (out)
        *out = NULL;
    if (!out || (!data && len)) {
        set_err(err, "NULL argument");
        return LCH_EINVAL;
    }
    /* Validate first, so bad input costs no allocation. */
    int rc = lch__validate(data, len, NULL, 0, err);
    if (rc != LCH_OK)
        return rc;
    lch_encoded *e = NULL;
    uint8_t *flat = NULL;
    rc = lch__encoded_alloc(len, 0, &e, &flat);
    if (rc != LCH_OK) {
        set_err(err, "");
        return rc;
    }
    memcpy(flat, data, len);
    *out = e;
    return LCH_OK;
}

int lch_encoded_from_buffer(lch_encoded **out, lch_buffer *flat,
                            lch_object *const *refs, size_t nrefs,
                            lch_codec_error *err)
{
    if (out)
        *out = NULL;
    if (!out || !flat || (!refs && nrefs)) {
        set_err(err, "NULL argument");
        return LCH_EINVAL;
    }
    const uint8_t *data = lch_buffer_data(flat);
    size_t len = lch_buffer_len(flat);
    int rc = lch__validate(data, len, refs, nrefs, err);
    if (rc != LCH_OK)
        return rc;
    set_err(err, "");
    /* nrefs <= len / 9 after validation: no overflow below. */
    struct lch__encoded_ext *e =
        lch__malloc(sizeof *e + nrefs * sizeof(lch_object *));
    if (!e)
        return LCH_ENOMEM;
    lch_object **table = (lch_object **)(void *)(e + 1);
    rc = lch_buffer_ref(flat);
    if (rc != LCH_OK) {
        lch__free(e);
        return rc;
    }
    size_t taken;
    for (taken = 0; taken < nrefs; taken++) {
        rc = lch_object_ref(refs[taken]);
        if (rc != LCH_OK)
            break;
        table[taken] = refs[taken];
    }
    if (rc != LCH_OK) { /* a count at its ceiling: give back what we took */
        while (taken--)
            lch_object_unref(table[taken]);
        lch_buffer_unref(flat);
        lch__free(e);
        return rc;
    }
    e->buf = flat;
    e->data = data;
    e->refs = table;
    e->data_off = (size_t)(data - (const uint8_t *)lch_buffer_data(flat));
    lch__object_init(&e->base.hdr, &lch__encoded_type, 0);
    *out = &e->base;
    return LCH_OK;
}

const void *lch_encoded_data(const lch_encoded *e)
{
    return e ? lch__enc_data(e) : NULL;
}

size_t lch_encoded_len(const lch_encoded *e)
{
    return e ? lch__enc_len(e) : 0;
}

/* Release of the buffer lch_encoded_buffer makes over a compact value. */
static void release_encoded(void *ctx, void *data, size_t len)
{
    (void)data;
    (void)len;
    lch_encoded_unref(ctx);
}

int lch_encoded_buffer(lch_encoded *e, lch_buffer **out)
{
    if (out)
        *out = NULL;
    if (!e || !out)
        return LCH_EINVAL;
    const uint8_t *data = lch__enc_data(e);
    size_t len = lch__enc_len(e);
    if (e->hdr.flags & LCH__ENC_COMPACT) {
        /* No buffer underneath: one that keeps the value alive. */
        int rc = lch_encoded_ref(e);
        if (rc != LCH_OK)
            return rc;
        rc = lch_buffer_adopt(out, data, len, release_encoded, e);
        if (rc != LCH_OK)
            lch_encoded_unref(e); /* not the last reference: the caller's */
        return rc;
    }
    const struct lch__encoded_ext *x = (const struct lch__encoded_ext *)e;
    if (x->data_off == 0 && len == lch_buffer_len(x->buf)) {
        int rc = lch_buffer_ref(x->buf);
        if (rc == LCH_OK)
            *out = x->buf;
        return rc;
    }
    return lch_buffer_slice(out, x->buf, x->data_off, len);
}

size_t lch_encoded_nrefs(const lch_encoded *e)
{
    return e ? lch__enc_nrefs(e) : 0;
}

lch_object *lch_encoded_ref_at(const lch_encoded *e, size_t i)
{
    return e && i < lch__enc_nrefs(e) ? lch__enc_refs(e)[i] : NULL;
}

lch_vtype lch_encoded_type(const lch_encoded *e)
{
    return e ? (lch_vtype)lch__wire_vtype[lch__enc_data(e)[LCH__HDR_TYPE]]
             : LCH_V_INVALID;
}

int lch_encoded_ref(lch_encoded *e)
{
    return lch_object_ref(e ? &e->hdr : NULL);
}

void lch_encoded_unref(lch_encoded *e)
{
    if (e)
        lch_object_unref(&e->hdr);
}

lch_object *lch_encoded_object(lch_encoded *e)
{
    return e ? &e->hdr : NULL;
}

lch_encoded *lch_encoded_from_object(lch_object *obj)
{
    if (!obj || obj->type != &lch__encoded_type)
        return NULL;
    return (lch_encoded *)obj;
}
