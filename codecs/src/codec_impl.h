/* codec_impl.h: what the codec's source files share and nothing else sees.
 *
 *   utf8.c      UTF-8 validation, counting and width (encoder and validator)
 *   encode.c    the builder (lch_enc_*)
 *   validate.c  the one-pass validator (lch_codec_validate)
 *   encoded.c   the lch_encoded object and its constructors
 *   view.c      O(1) views and the decoding walker
 *
 * The codec uses only the object header, the allocator and shared buffers of
 * the core (lch_base.h, libchan/buffer.h): never the channel code.
 * It has no process-global mutable state. */
#ifndef LCH_CODEC_IMPL_H
#define LCH_CODEC_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lch_base.h"
#include "libchan/codec.h"

/* Every codec problem with a buffer's bytes (public: codec.h). */
#define LCH__ECORRUPT LCH_CODEC_ECORRUPT

/* ---- wire format (FORMAT.md) --------------------------------------------- */

enum {
    W_NONE = 0x01,
    W_BOOL = 0x02,
    W_INT = 0x03,
    W_FLOAT = 0x04,
    W_BIGINT = 0x05,
    W_COMPLEX = 0x06,
    W_STR_ASCII = 0x08,
    W_STR_LATIN1 = 0x09,
    W_STR_BMP = 0x0A,
    W_STR_ASTRAL = 0x0B,
    W_BYTES = 0x0C,
    W_BYTES_REF = 0x0D,
    W_TUPLE = 0x10,
    W_LIST = 0x11,
    W_DICT = 0x12,
    W_SET = 0x13,
    W_FROZENSET = 0x14,
    W_OBJECT = 0x18,
    W_OPAQUE = 0x19
};

#define LCH__MAGIC0 0x4C /* "LCHV" */
#define LCH__MAGIC1 0x43
#define LCH__MAGIC2 0x48
#define LCH__MAGIC3 0x56
#define LCH__HDR_TYPE 5   /* root type code */
#define LCH__HDR_FLAGS 6  /* u16, zero */
#define LCH__HDR_LEN 8    /* u32 total length */
#define LCH__HDR_NREFS 12 /* u32 side-table entries */
#define LCH__HDR_SLOT 16  /* root slot */
#define LCH__HDR_SIZE 24  /* first record */

/* Public type of each wire code (LCH_V_INVALID for unknown codes). */
extern const uint8_t lch__wire_vtype[256];

static inline size_t lch__pad8(size_t n) { return (n + 7) & ~(size_t)7; }

static inline uint32_t lch__slot_lo(uint64_t s) { return (uint32_t)s; }
static inline uint32_t lch__slot_hi(uint64_t s) { return (uint32_t)(s >> 32); }
static inline uint64_t lch__slot(uint32_t lo, uint32_t hi)
{
    return (uint64_t)lo | ((uint64_t)hi << 32);
}

/* Little-endian loads and stores at any alignment (memcpy compiles to one
 * move on the targets we care about). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#  define LCH__LE64(x) __builtin_bswap64(x)
#  define LCH__LE32(x) __builtin_bswap32(x)
#  define LCH__LE16(x) __builtin_bswap16(x)
#else
#  define LCH__LE64(x) (x)
#  define LCH__LE32(x) (x)
#  define LCH__LE16(x) (x)
#endif

static inline uint64_t lch__ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return LCH__LE64(v);
}

static inline uint32_t lch__ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return LCH__LE32(v);
}

static inline void lch__st64(uint8_t *p, uint64_t v)
{
    v = LCH__LE64(v);
    memcpy(p, &v, sizeof v);
}

static inline void lch__st32(uint8_t *p, uint32_t v)
{
    v = LCH__LE32(v);
    memcpy(p, &v, sizeof v);
}

static inline double lch__bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static inline uint64_t lch__double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* ---- UTF-8 (utf8.c) ------------------------------------------------------ */

#define LCH__HIBITS UINT64_C(0x8080808080808080)

/* Length of the longest all-ASCII prefix of p[0..n). */
size_t lch__ascii_prefix(const uint8_t *p, size_t n);

/* Validate p[0..n) as strict UTF-8 (no overlongs, surrogates, code points
 * above U+10FFFF or truncated sequences). On success returns true with the
 * code-point count and width class; on failure returns false with *bad the
 * offset (from p) of the first offending byte. */
bool lch__utf8_scan(const uint8_t *p, size_t n, size_t *ncp,
                    lch_str_kind *kind, size_t *bad);

/* ---- encoded values (encoded.c) ------------------------------------------ */

/* An encoded value. Made by the encoder, it sits at the start of the data of
 * its own buffer (LCH__OBJ_SELF_FREE: the flat bytes follow at offset
 * LCH__EMBED_OFF and the side table after them, so the whole value is one
 * allocation); made by lch_encoded_from_buffer, it is a separate block from
 * lch__malloc that refers to the caller's buffer. */
struct lch_encoded {
    lch_object hdr;       /* LCH_TYPE_ENCODED */
    lch_buffer *buf;      /* one reference: holds the flat bytes */
    const uint8_t *data;  /* flat bytes (valid: see codec.h "Trust") */
    size_t len;           /* flat length */
    lch_object **refs;    /* side table: nrefs owned references */
    size_t nrefs;
    size_t data_off;      /* data - lch_buffer_data(buf) */
};

/* Offset of the flat bytes in an encoder-made buffer: the struct above,
 * rounded to a cache line so that the flat bytes stay 64-byte aligned. */
#define LCH__EMBED_OFF ((size_t)64)
_Static_assert(sizeof(struct lch_encoded) <= LCH__EMBED_OFF,
               "lch_encoded fits in front of the flat bytes");

extern const lch_type lch__encoded_type;

/* Validation with details (validate.c); lch_codec_validate wraps it. */
int lch__validate(const uint8_t *p, size_t len, lch_object *const *refs,
                  size_t nrefs, lch_codec_error *err);

#endif /* LCH_CODEC_IMPL_H */
