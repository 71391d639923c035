/* tests/fuzz/fuzz_common.c: see fuzz_common.h. */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const lch_type fz_plain_type = {LCH_TYPE_USER + 77, "fuzz-plain",
                                       NULL};

void fz_refs_make(fz_refs *r, const uint8_t *data, size_t size)
{
    r->n = 0;
    if (size < 16)
        return;
    uint32_t n;
    memcpy(&n, data + 12, 4); /* little-endian hosts only, like the tests */
    if (n > FZ_MAX_REFS)
        return;
    for (uint32_t i = 0; i < n; i++) {
        lch_object *o = NULL;
        if (i % 3 == 2) {
            o = lch_object_new(&fz_plain_type, 8);
        } else {
            static uint8_t fill[5000];
            lch_buffer *b = NULL;
            if (lch_buffer_new_copy(&b, fill, (i * 997u) % 5000u) == LCH_OK)
                o = lch_buffer_object(b);
        }
        if (!o)
            fz_fail("out of memory making the side table");
        r->obj[r->n++] = o;
    }
}

void fz_refs_free(fz_refs *r)
{
    for (size_t i = 0; i < r->n; i++)
        lch_object_unref(r->obj[i]);
    r->n = 0;
}

_Noreturn void fz_fail(const char *what)
{
    fprintf(stderr, "codec fuzz: property violated: %s\n", what);
    abort();
}
