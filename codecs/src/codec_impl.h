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

/* An encoded value: the object header, and the flat bytes in one of three
 * places, told apart by LCH__ENC_COMPACT in hdr.flags.
 *
 *   compact   made by the encoder or lch_encoded_from_bytes, up to 64 KiB:
 *             ONE block from the hook holding the header (16 bytes), the
 *             flat bytes right after it and then the side table. Nothing
 *             else: the length and the side-table count are read from the
 *             flat header, which is valid by construction. Freed by
 *             object.c after destroy. This is what a queued value costs:
 *             its encoding plus 16 bytes (plus the allocator's rounding).
 *   embedded  the same, from 64 KiB on: struct lch__encoded_ext at the
 *             start of the data of an lch_buffer whose block comes from the
 *             large-block cache (no page faults on reuse), flat bytes at
 *             LCH__EMBED_OFF, side table after them; LCH__OBJ_SELF_FREE:
 *             destroy drops the buffer, which frees the struct with it.
 *   external  made by lch_encoded_from_buffer: struct lch__encoded_ext and
 *             the side table in one lch__malloc block (freed by object.c),
 *             referring to the caller's buffer. */
struct lch_encoded {
    lch_object hdr; /* LCH_TYPE_ENCODED */
};

/* hdr.flags bit: the compact form (flat bytes at (hdr + 1)). */
#define LCH__ENC_COMPACT LCH__OBJ_TYPE_FLAG0

/* The two forms whose flat bytes live in an lch_buffer. */
struct lch__encoded_ext {
    struct lch_encoded base;
    lch_buffer *buf;     /* one reference: holds the flat bytes */
    const uint8_t *data; /* flat bytes (valid: see codec.h "Trust") */
    lch_object **refs;   /* side table: one owned reference per entry */
    size_t data_off;     /* data - lch_buffer_data(buf) */
};

/* Offset of the flat bytes in an embedded value's buffer: the struct above,
 * rounded to a cache line so that the flat bytes stay 64-byte aligned. */
#define LCH__EMBED_OFF ((size_t)64)
_Static_assert(sizeof(struct lch__encoded_ext) <= LCH__EMBED_OFF,
               "lch__encoded_ext fits in front of the flat bytes");

/* Bytes in front of a compact value's flat bytes. */
#define LCH__COMPACT_OFF sizeof(struct lch_encoded)
_Static_assert(sizeof(struct lch_encoded) % 8 == 0,
               "compact flat bytes stay 8-byte aligned");

/* A compact value needs at most this many bytes; beyond, it is embedded
 * (from then on blocks come from the buffer cache). */
#define LCH__COMPACT_MAX (LCH_BUFFER_CACHE_MIN - 1)

static inline const uint8_t *lch__enc_data(const lch_encoded *e)
{
    if (e->hdr.flags & LCH__ENC_COMPACT)
        return (const uint8_t *)(e + 1);
    return ((const struct lch__encoded_ext *)e)->data;
}

/* Length and side-table count: from the flat header, which every
 * lch_encoded has valid (the validator checks that they match the bytes
 * and the side table it was given). */
static inline size_t lch__enc_len(const lch_encoded *e)
{
    return lch__ld32(lch__enc_data(e) + LCH__HDR_LEN);
}

static inline size_t lch__enc_nrefs(const lch_encoded *e)
{
    return lch__ld32(lch__enc_data(e) + LCH__HDR_NREFS);
}

static inline lch_object *const *lch__enc_refs(const lch_encoded *e)
{
    if (e->hdr.flags & LCH__ENC_COMPACT) {
        const uint8_t *d = (const uint8_t *)(e + 1);
        return (lch_object *const *)(const void *)(d + lch__ld32(
                                                           d + LCH__HDR_LEN));
    }
    return ((const struct lch__encoded_ext *)e)->refs;
}

extern const lch_type lch__encoded_type;

/* A new value's storage for `len` flat bytes and nrefs side-table entries:
 * compact if it fits in LCH__COMPACT_MAX, else embedded. *out is a live
 * object (count 1, the caller's) and *flat its flat bytes, which the caller
 * must fill at once, header included (the accessors read the length and the
 * count from it), followed by the side table at *flat + len. LCH_ENOMEM. */
int lch__encoded_alloc(size_t len, size_t nrefs, lch_encoded **out,
                       uint8_t **flat);

/* Make an embedded value at `base`, the start of the data of buffer b
 * (whose one reference it takes over), for len flat bytes at
 * base + LCH__EMBED_OFF and nrefs entries after them. */
void lch__encoded_embed(void *base, lch_buffer *b, size_t len, size_t nrefs);

/* Validation with details (validate.c); lch_codec_validate wraps it. */
int lch__validate(const uint8_t *p, size_t len, lch_object *const *refs,
                  size_t nrefs, lch_codec_error *err);

#endif /* LCH_CODEC_IMPL_H */
