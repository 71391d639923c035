/* tests/fuzz/fuzz_decode.c: the validator and every reader behind it.
 *
 * Any input: validation must return (OK or an error with an offset inside
 * the input), never crash. A valid input is then loaded (from_buffer with
 * the made-up side table, and from_bytes), walked through the caller-
 * constructor decoder into a tree, and read again element by element
 * through views, calling every accessor on every element; the view and the
 * tree must agree. Nothing may leak (LeakSanitizer, and a node count). */
#include <stdlib.h>
#include <string.h>

#include "codec_tree.h"
#include "fuzz_common.h"

/* Compare view element i with tree node n, recursing into containers. */
static void check_view(const lch_view *v, size_t i, const ct_node *n,
                       unsigned depth)
{
    if (depth > LCH_CODEC_MAX_DEPTH + 1)
        fz_fail("views nest deeper than the limit");
    lch_vtype t = lch_view_type(v, i);
    if (t != n->type)
        fz_fail("view type differs from the decoded tree");
    bool b;
    int64_t iv;
    double d, im;
    const uint8_t *bp;
    const char *sp;
    const void *p;
    size_t len, ncp;
    lch_str_kind kind;
    lch_buffer *shared;
    lch_object *obj;
    uint32_t tag;
    lch_view child;
    /* Every getter: exactly the matching one succeeds. */
    int ok = 0;
    ok += lch_view_bool(v, i, &b) == LCH_OK;
    ok += lch_view_int(v, i, &iv) == LCH_OK;
    ok += lch_view_float(v, i, &d) == LCH_OK;
    ok += lch_view_complex(v, i, &d, &im) == LCH_OK;
    ok += lch_view_bigint(v, i, &bp, &len) == LCH_OK;
    ok += lch_view_str(v, i, &sp, &len, &ncp, &kind) == LCH_OK;
    ok += lch_view_bytes(v, i, &p, &len, &shared) == LCH_OK;
    ok += lch_view_object(v, i, &obj) == LCH_OK;
    ok += lch_view_opaque(v, i, &tag, &p, &len) == LCH_OK;
    ok += lch_view_child(v, i, &child) == LCH_OK;
    if (ok != (t == LCH_V_NONE ? 0 : 1))
        fz_fail("not exactly one getter accepts the element");
    switch (t) {
    case LCH_V_STR:
        lch_view_str(v, i, &sp, &len, &ncp, &kind);
        if (len != n->n || ncp != n->ncp || kind != n->kind ||
            (len && memcmp(sp, n->data, len)))
            fz_fail("string view differs");
        break;
    case LCH_V_BYTES:
        lch_view_bytes(v, i, &p, &len, &shared);
        if (len != n->n || (shared != NULL) != (n->shared != NULL))
            fz_fail("bytes view differs");
        break;
    case LCH_V_TUPLE:
    case LCH_V_LIST:
    case LCH_V_DICT:
    case LCH_V_SET:
    case LCH_V_FROZENSET:
        lch_view_child(v, i, &child);
        if (lch_view_count(&child) != n->nkids || lch_view_ctype(&child) != t)
            fz_fail("container view differs");
        for (size_t k = 0; k < n->nkids; k++)
            check_view(&child, k, n->kids[k], depth + 1);
        if (lch_view_type(&child, n->nkids) != LCH_V_INVALID)
            fz_fail("element past the end has a type");
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_refs refs;
    fz_refs_make(&refs, data, size);
    lch_codec_error err = {0, NULL};
    int rc = lch_codec_validate(data, size, refs.obj, refs.n, &err);
    if (rc != LCH_OK) {
        if (rc != LCH_CODEC_ECORRUPT || !err.msg || err.offset > size)
            fz_fail("bad error report");
        fz_refs_free(&refs);
        return 0;
    }
    lch_buffer *b = NULL;
    if (lch_buffer_new_copy(&b, data, size) != LCH_OK)
        fz_fail("out of memory");
    lch_encoded *e = NULL;
    if (lch_encoded_from_buffer(&e, b, refs.obj, refs.n, &err) != LCH_OK)
        fz_fail("valid input refused by from_buffer");
    lch_buffer_unref(b);
    lch_encoded *e2 = NULL;
    rc = lch_encoded_from_bytes(&e2, data, size, &err);
    if ((rc == LCH_OK) != (refs.n == 0))
        fz_fail("from_bytes disagrees with validate");
    lch_encoded_unref(e2);

    long before = ct_live_nodes;
    int drc;
    ct_node *tree = ct_decode(e, &drc);
    if (!tree)
        fz_fail("valid input failed to decode");
    lch_view root;
    lch_encoded_view(e, &root);
    check_view(&root, 0, tree, 0);
    ct_free(tree);
    if (ct_live_nodes != before)
        fz_fail("decoded tree leaked nodes");
    lch_encoded_unref(e);
    fz_refs_free(&refs);
    return 0;
}
