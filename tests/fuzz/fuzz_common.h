/* tests/fuzz/fuzz_common.h: what the codec fuzz targets share.
 *
 * An input is the flat bytes of an encoded value, exactly as on the wire
 * (the seed corpus is made of real encodings). The side table, which cannot
 * travel in bytes, is made up from the input's own header: if it claims
 * n <= FZ_MAX_REFS entries, the target supplies n objects, where entry i is
 * an lch_buffer of (i * 997) % 5000 bytes unless i % 3 == 2, which is a
 * plain application object. So OBJECT entries, BYTES_REF entries and a
 * BYTES_REF that wrongly names a non-buffer are all reachable. */
#ifndef LCH_FUZZ_COMMON_H
#define LCH_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "libchan/codec.h"

#define FZ_MAX_REFS 64

typedef struct fz_refs {
    lch_object *obj[FZ_MAX_REFS];
    size_t n;
} fz_refs;

/* Make the side table the input asks for (empty if none or too many). */
void fz_refs_make(fz_refs *r, const uint8_t *data, size_t size);
void fz_refs_free(fz_refs *r);

/* Stop the process with a message: a property the fuzzer checks is false. */
_Noreturn void fz_fail(const char *what);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* LCH_FUZZ_COMMON_H */
