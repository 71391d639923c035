/* encoded.c: the lch_encoded object (LCH_TYPE_ENCODED): flat bytes in a
 * shared buffer plus a side table of object references, immutable once made.
 *
 * Two layouts (struct lch_encoded in codec_impl.h):
 *   embedded  made by the encoder or lch_encoded_from_bytes: the struct, the
 *             flat bytes and the side table share one buffer's data block,
 *             and the object is LCH__OBJ_SELF_FREE: destroy drops the buffer,
 *             which frees the struct with it;
 *   external  made by lch_encoded_from_buffer: the struct and side table are
 *             one lch__malloc block (freed by object.c after destroy), and
 *             the flat bytes are the caller's buffer, referenced.
 * Either way destroy releases each side-table reference exactly once and then
 * the buffer. */
#include "codec_impl.h"

static void encoded_destroy(lch_object *obj)
{
    lch_encoded *e = (lch_encoded *)obj;
    for (size_t i = 0; i < e->nrefs; i++)
        lch_object_unref(e->refs[i]);
    /* Last: when embedded, this frees the memory `e` lives in. */
    lch_buffer_unref(e->buf);
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
    lch_buffer *b = NULL;
    void *base = NULL;
    rc = lch_buffer_new_uninit(&b, LCH__EMBED_OFF + len, &base);
    if (rc != LCH_OK) {
        set_err(err, "");
        return rc;
    }
    lch_encoded *e = base;
    uint8_t *flat = (uint8_t *)base + LCH__EMBED_OFF;
    memcpy(flat, data, len);
    e->buf = b;
    e->data = flat;
    e->len = len;
    e->refs = NULL;
    e->nrefs = 0;
    e->data_off = LCH__EMBED_OFF;
    lch__object_init(&e->hdr, &lch__encoded_type, LCH__OBJ_SELF_FREE);
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
    lch_encoded *e = lch__malloc(sizeof *e + nrefs * sizeof(lch_object *));
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
    e->len = len;
    e->refs = table;
    e->nrefs = nrefs;
    e->data_off = (size_t)(data - (const uint8_t *)lch_buffer_data(flat));
    lch__object_init(&e->hdr, &lch__encoded_type, 0);
    *out = e;
    return LCH_OK;
}

const void *lch_encoded_data(const lch_encoded *e)
{
    return e ? e->data : NULL;
}

size_t lch_encoded_len(const lch_encoded *e)
{
    return e ? e->len : 0;
}

int lch_encoded_buffer(lch_encoded *e, lch_buffer **out)
{
    if (out)
        *out = NULL;
    if (!e || !out)
        return LCH_EINVAL;
    if (e->data_off == 0 && e->len == lch_buffer_len(e->buf)) {
        int rc = lch_buffer_ref(e->buf);
        if (rc == LCH_OK)
            *out = e->buf;
        return rc;
    }
    return lch_buffer_slice(out, e->buf, e->data_off, e->len);
}

size_t lch_encoded_nrefs(const lch_encoded *e)
{
    return e ? e->nrefs : 0;
}

lch_object *lch_encoded_ref_at(const lch_encoded *e, size_t i)
{
    return e && i < e->nrefs ? e->refs[i] : NULL;
}

lch_vtype lch_encoded_type(const lch_encoded *e)
{
    return e ? (lch_vtype)lch__wire_vtype[e->data[LCH__HDR_TYPE]]
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
