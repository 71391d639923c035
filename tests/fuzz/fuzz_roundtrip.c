/* tests/fuzz/fuzz_roundtrip.c: decode, re-encode, compare; and determinism.
 *
 * The format is canonical (FORMAT.md section 1), so for every input the
 * validator accepts, decoding it into a tree and encoding that tree again
 * must give back exactly the input bytes and the same side table in the
 * same order. Encoding the tree a second time must give the same bytes
 * again (determinism), and decoding the re-encoding must give an equal
 * tree. Invalid inputs are simply skipped (fuzz_decode covers them). */
#include <stdlib.h>
#include <string.h>

#include "codec_tree.h"
#include "fuzz_common.h"

static void same_encoding(const lch_encoded *a, const uint8_t *data,
                          size_t size, const fz_refs *refs)
{
    if (lch_encoded_len(a) != size ||
        memcmp(lch_encoded_data(a), data, size) != 0)
        fz_fail("re-encoding differs from the input");
    if (lch_encoded_nrefs(a) != refs->n)
        fz_fail("re-encoding has another side table");
    for (size_t i = 0; i < refs->n; i++)
        if (lch_encoded_ref_at(a, i) != refs->obj[i])
            fz_fail("re-encoding reordered the side table");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_refs refs;
    fz_refs_make(&refs, data, size);
    lch_buffer *b = NULL;
    if (lch_buffer_new_copy(&b, data, size) != LCH_OK)
        fz_fail("out of memory");
    lch_encoded *e = NULL;
    int rc = lch_encoded_from_buffer(&e, b, refs.obj, refs.n, NULL);
    lch_buffer_unref(b);
    if (rc != LCH_OK) {
        fz_refs_free(&refs);
        return 0;
    }
    int drc;
    ct_node *tree = ct_decode(e, &drc);
    if (!tree)
        fz_fail("valid input failed to decode");
    lch_encoded *a = NULL, *c = NULL;
    if (ct_encode(tree, &a) != LCH_OK || ct_encode(tree, &c) != LCH_OK)
        fz_fail("re-encoding a decoded value failed");
    same_encoding(a, data, size, &refs);
    same_encoding(c, data, size, &refs);
    ct_node *again = ct_decode(a, &drc);
    if (!again || !ct_equal(tree, again))
        fz_fail("decoding the re-encoding gives another value");
    ct_free(again);
    ct_free(tree);
    lch_encoded_unref(a);
    lch_encoded_unref(c);
    lch_encoded_unref(e);
    fz_refs_free(&refs);
    return 0;
}
