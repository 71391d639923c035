/* validate.c: the one pass that turns untrusted bytes into a trusted value.
 *
 * A cursor walks the records in the pre-order of FORMAT.md section 4. Each
 * element's `off` must equal the cursor, which makes the layout canonical,
 * forward-only and free of overlaps, so the walk cannot loop and reads every
 * byte at most once. Lengths are compared with what is left (`n <= len -
 * cur`, never `cur + n <= len`) so no sum can overflow; the cursor is always
 * a multiple of 8 and at most len, and len is a multiple of 8 below 2^32.
 *
 * Recursion follows container nesting and is bounded by
 * LCH_CODEC_MAX_DEPTH (one small frame per level). The first problem stops
 * the walk with its byte offset and a static message; nothing is allocated. */
#include "codec_impl.h"

struct vst {
    const uint8_t *p;          /* flat bytes */
    size_t len;                /* their length */
    size_t cur;                /* next record starts here */
    lch_object *const *refs;   /* side table */
    size_t nrefs;
    size_t nextref;            /* index the next reference must have */
    size_t err_off;            /* first problem: offset... */
    const char *err_msg;       /* ...and what it is */
};

static LCH__NOINLINE int bad(struct vst *s, size_t off, const char *msg)
{
    s->err_off = off;
    s->err_msg = msg;
    return LCH__ECORRUPT;
}

/* The zero padding after a record of n bytes at cur (pad8(n) bytes fit). */
static inline int check_pad(struct vst *s, size_t at, size_t n)
{
    if (n & 7) {
        uint64_t w = lch__ld64(s->p + at + (n & ~(size_t)7));
        if (w >> (8 * (n & 7)))
            return bad(s, at + n, "padding is not zero");
    }
    return LCH_OK;
}

/* Check the slot's offset against the cursor and that n bytes (plus their
 * padding) fit: the common prologue of every record. */
static inline int take(struct vst *s, uint32_t off, size_t n, size_t soff)
{
    if (off != s->cur)
        return bad(s, soff, "offset does not follow the previous record");
    if (n > s->len - s->cur)
        return bad(s, soff, "record runs past the end of the buffer");
    return LCH_OK;
}

static int container(struct vst *s, size_t m, unsigned depth);

/* An element with a record or a side-table entry. */
static LCH__NOINLINE int element_slow(struct vst *s, uint8_t t, uint64_t slot,
                                      size_t toff, size_t soff,
                                      unsigned depth)
{
    uint32_t off = lch__slot_lo(slot);
    uint32_t n = lch__slot_hi(slot);
    size_t at = s->cur;
    int rc;

    switch (t) {
    case W_BIGINT: {
        if ((rc = take(s, off, n, soff)) != LCH_OK)
            return rc;
        if (n < 9)
            return bad(s, soff, "BIGINT shorter than 9 bytes (use INT)");
        uint8_t hi = s->p[at + n - 1], next = s->p[at + n - 2];
        if ((hi == 0x00 && next < 0x80) || (hi == 0xFF && next >= 0x80))
            return bad(s, at + n - 1, "BIGINT has a redundant sign byte");
        if ((rc = check_pad(s, at, n)) != LCH_OK)
            return rc;
        s->cur = at + lch__pad8(n);
        return LCH_OK;
    }
    case W_COMPLEX:
        if (n != 0)
            return bad(s, soff + 4, "reserved slot half is not zero");
        if ((rc = take(s, off, 16, soff)) != LCH_OK)
            return rc;
        s->cur = at + 16;
        return LCH_OK;
    case W_STR_ASCII: {
        if ((rc = take(s, off, n, soff)) != LCH_OK)
            return rc;
        size_t i = lch__ascii_prefix(s->p + at, n);
        if (i != n)
            return bad(s, at + i, "non-ASCII byte in an ASCII string");
        if ((rc = check_pad(s, at, n)) != LCH_OK)
            return rc;
        s->cur = at + lch__pad8(n);
        return LCH_OK;
    }
    case W_STR_LATIN1:
    case W_STR_BMP:
    case W_STR_ASTRAL: {
        if ((rc = take(s, off, 8, soff)) != LCH_OK)
            return rc;
        if (n > s->len - at - 8)
            return bad(s, soff, "record runs past the end of the buffer");
        uint32_t ncp = lch__ld32(s->p + at);
        if (lch__ld32(s->p + at + 4) != 0)
            return bad(s, at + 4, "reserved field is not zero");
        size_t count, badoff;
        lch_str_kind kind;
        if (!lch__utf8_scan(s->p + at + 8, n, &count, &kind, &badoff))
            return bad(s, at + 8 + badoff, "invalid UTF-8");
        if ((unsigned)kind != (unsigned)(t - W_STR_ASCII))
            return bad(s, toff, "string type does not match its content");
        if (count != ncp)
            return bad(s, at, "wrong code-point count");
        if ((rc = check_pad(s, at + 8, n)) != LCH_OK)
            return rc;
        s->cur = at + 8 + lch__pad8(n);
        return LCH_OK;
    }
    case W_BYTES:
        if ((rc = take(s, off, n, soff)) != LCH_OK)
            return rc;
        if ((rc = check_pad(s, at, n)) != LCH_OK)
            return rc;
        s->cur = at + lch__pad8(n);
        return LCH_OK;
    case W_OPAQUE:
        if ((rc = take(s, off, 8, soff)) != LCH_OK)
            return rc;
        if (n > s->len - at - 8)
            return bad(s, soff, "record runs past the end of the buffer");
        if (lch__ld32(s->p + at + 4) != 0)
            return bad(s, at + 4, "reserved field is not zero");
        if ((rc = check_pad(s, at + 8, n)) != LCH_OK)
            return rc;
        s->cur = at + 8 + lch__pad8(n);
        return LCH_OK;
    case W_BYTES_REF:
    case W_OBJECT:
        if (n != 0)
            return bad(s, soff + 4, "reserved slot half is not zero");
        if (off != s->nextref)
            return bad(s, soff, "side-table index out of order");
        if (off >= s->nrefs)
            return bad(s, soff, "side-table index out of range");
        if (!s->refs[off])
            return bad(s, soff, "side-table entry is NULL");
        if (t == W_BYTES_REF && !lch_buffer_from_object(s->refs[off]))
            return bad(s, soff, "BYTES_REF entry is not a buffer");
        s->nextref++;
        return LCH_OK;
    case W_TUPLE:
    case W_LIST:
    case W_SET:
    case W_FROZENSET:
    case W_DICT: {
        if (off != s->cur)
            return bad(s, soff, "offset does not follow the previous record");
        size_t m = n;
        if (t == W_DICT)
            m = n > LCH_CODEC_MAX_ITEMS ? n : 2 * (size_t)n;
        if (m > LCH_CODEC_MAX_ITEMS)
            return bad(s, soff, "more elements than LCH_CODEC_MAX_ITEMS");
        if (depth >= LCH_CODEC_MAX_DEPTH)
            return bad(s, toff, "nested deeper than LCH_CODEC_MAX_DEPTH");
        return container(s, m, depth + 1);
    }
    default:
        return bad(s, toff, "unknown type code");
    }
}

/* One element whose type code is at toff and slot at soff. The slot-only
 * scalars are handled inline; everything else out of line. */
static inline int element(struct vst *s, uint8_t t, uint64_t slot,
                          size_t toff, size_t soff, unsigned depth)
{
    switch (t) {
    case W_INT:
    case W_FLOAT:
        return LCH_OK;
    case W_NONE:
        return slot == 0 ? LCH_OK : bad(s, soff, "NONE slot is not zero");
    case W_BOOL:
        return slot <= 1 ? LCH_OK : bad(s, soff, "BOOL slot is not 0 or 1");
    default:
        return element_slow(s, t, slot, toff, soff, depth);
    }
}

/* A container record of m elements at the cursor, at nesting depth. */
static int container(struct vst *s, size_t m, unsigned depth)
{
    size_t at = s->cur;
    size_t tb = lch__pad8(m);
    if (tb > s->len - at || m > (s->len - at - tb) / 8)
        return bad(s, at, "container runs past the end of the buffer");
    int rc = check_pad(s, at, m);
    if (rc != LCH_OK)
        return rc;
    size_t soff = at + tb;
    s->cur = soff + 8 * m;
    const uint8_t *types = s->p + at;
    const uint8_t *slots = s->p + soff;
    for (size_t i = 0; i < m; i++) {
        rc = element(s, types[i], lch__ld64(slots + 8 * i), at + i,
                     soff + 8 * i, depth);
        if (LCH__UNLIKELY(rc != LCH_OK))
            return rc;
    }
    return LCH_OK;
}

int lch__validate(const uint8_t *p, size_t len, lch_object *const *refs,
                  size_t nrefs, lch_codec_error *err)
{
    struct vst s = {.p = p, .len = len, .cur = LCH__HDR_SIZE, .refs = refs,
                    .nrefs = nrefs, .nextref = 0, .err_off = 0,
                    .err_msg = ""};
    int rc;
    if (len < LCH__HDR_SIZE) {
        rc = bad(&s, len, "shorter than the 24-byte header");
    } else if (p[0] != LCH__MAGIC0 || p[1] != LCH__MAGIC1 ||
               p[2] != LCH__MAGIC2 || p[3] != LCH__MAGIC3) {
        rc = bad(&s, 0, "bad magic (not an encoded value)");
    } else if (p[4] != LCH_CODEC_VERSION) {
        rc = bad(&s, 4, "unsupported format version");
    } else if (p[LCH__HDR_FLAGS] || p[LCH__HDR_FLAGS + 1]) {
        rc = bad(&s, LCH__HDR_FLAGS, "reserved flags are not zero");
    } else if (lch__ld32(p + LCH__HDR_LEN) != len || (len & 7) ||
               len > LCH_CODEC_MAX_FLAT) {
        rc = bad(&s, LCH__HDR_LEN, "length field does not match the buffer");
    } else if (lch__ld32(p + LCH__HDR_NREFS) != nrefs) {
        rc = bad(&s, LCH__HDR_NREFS,
                 "side-table count does not match the side table");
    } else {
        rc = element(&s, p[LCH__HDR_TYPE], lch__ld64(p + LCH__HDR_SLOT),
                     LCH__HDR_TYPE, LCH__HDR_SLOT, 0);
        if (rc == LCH_OK && s.cur != len)
            rc = bad(&s, s.cur, "bytes after the end of the value");
        if (rc == LCH_OK && s.nextref != nrefs)
            rc = bad(&s, LCH__HDR_NREFS, "side-table entries left unused");
    }
    if (err) {
        err->offset = rc == LCH_OK ? 0 : s.err_off;
        err->msg = rc == LCH_OK ? "" : s.err_msg;
    }
    return rc;
}

int lch_codec_validate(const void *data, size_t len, lch_object *const *refs,
                       size_t nrefs, lch_codec_error *err)
{
    if ((!data && len) || (!refs && nrefs)) {
        if (err) {
            err->offset = 0;
            err->msg = "NULL argument";
        }
        return LCH_EINVAL;
    }
    return lch__validate(data, len, refs, nrefs, err);
}
