/* utf8.c: strict UTF-8 validation with the counts the format stores.
 *
 * One scan gives validity, the code-point count and the width class (largest
 * code point: <= 0x7F, 0xFF, 0xFFFF or 0x10FFFF). ASCII runs are skipped
 * 32 and then 8 bytes at a time (a word with no high bit set is 8 ASCII
 * characters); only non-ASCII sequences take the byte-by-byte path, which
 * follows the well-formed byte sequences of Unicode 15, table 3-7:
 *
 *   U+0000..U+007F     00..7F
 *   U+0080..U+07FF     C2..DF 80..BF
 *   U+0800..U+0FFF     E0     A0..BF 80..BF
 *   U+1000..U+CFFF     E1..EC 80..BF 80..BF
 *   U+D000..U+D7FF     ED     80..9F 80..BF        (no surrogates)
 *   U+E000..U+FFFF     EE..EF 80..BF 80..BF
 *   U+10000..U+3FFFF   F0     90..BF 80..BF 80..BF
 *   U+40000..U+FFFFF   F1..F3 80..BF 80..BF 80..BF
 *   U+100000..U+10FFFF F4     80..8F 80..BF 80..BF
 *
 * Lead bytes C2 and C3 are exactly the code points U+0080..U+00FF (LATIN1). */
#include "codec_impl.h"

size_t lch__ascii_prefix(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (n - i >= 32) {
        uint64_t w = lch__ld64(p + i) | lch__ld64(p + i + 8) |
                     lch__ld64(p + i + 16) | lch__ld64(p + i + 24);
        if (w & LCH__HIBITS)
            break;
        i += 32;
    }
    while (n - i >= 8) {
        if (lch__ld64(p + i) & LCH__HIBITS)
            break;
        i += 8;
    }
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

static inline bool is_cont(uint8_t c) { return (c & 0xC0) == 0x80; }

/* The non-ASCII part, from the first non-ASCII byte at i. Out of line so the
 * all-ASCII case stays small where it is inlined. */
static LCH__NOINLINE bool scan_slow(const uint8_t *p, size_t n, size_t i,
                                    size_t *ncp, lch_str_kind *kind,
                                    size_t *bad)
{
    size_t count = i; /* the ASCII prefix: one code point per byte */
    unsigned k = LCH_STR_ASCII;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if (n - i >= 8 && !(lch__ld64(p + i) & LCH__HIBITS)) {
                i += 8;
                count += 8;
            } else {
                i++;
                count++;
            }
            continue;
        }
        size_t rem = n - i;
        if (c < 0xC2)
            goto fail_here; /* continuation byte, or overlong C0/C1 */
        if (c < 0xE0) {
            if (rem < 2 || !is_cont(p[i + 1]))
                goto fail_next;
            if (c > 0xC3 && k < LCH_STR_BMP)
                k = LCH_STR_BMP;
            else if (k < LCH_STR_LATIN1)
                k = LCH_STR_LATIN1;
            i += 2;
        } else if (c < 0xF0) {
            uint8_t lo = c == 0xE0 ? 0xA0 : 0x80;
            uint8_t hi = c == 0xED ? 0x9F : 0xBF;
            if (rem < 2 || p[i + 1] < lo || p[i + 1] > hi)
                goto fail_next;
            if (rem < 3 || !is_cont(p[i + 2])) {
                i += 1;
                goto fail_next;
            }
            if (k < LCH_STR_BMP)
                k = LCH_STR_BMP;
            i += 3;
        } else if (c <= 0xF4) {
            uint8_t lo = c == 0xF0 ? 0x90 : 0x80;
            uint8_t hi = c == 0xF4 ? 0x8F : 0xBF;
            if (rem < 2 || p[i + 1] < lo || p[i + 1] > hi)
                goto fail_next;
            if (rem < 3 || !is_cont(p[i + 2])) {
                i += 1;
                goto fail_next;
            }
            if (rem < 4 || !is_cont(p[i + 3])) {
                i += 2;
                goto fail_next;
            }
            k = LCH_STR_ASTRAL;
            i += 4;
        } else {
            goto fail_here; /* F5..FF never appear */
        }
        count++;
    }
    *ncp = count;
    *kind = (lch_str_kind)k;
    return true;

fail_next: /* the byte after i is missing or wrong */
    *bad = i + 1;
    return false;
fail_here:
    *bad = i;
    return false;
}

bool lch__utf8_scan(const uint8_t *p, size_t n, size_t *ncp,
                    lch_str_kind *kind, size_t *bad)
{
    size_t i = lch__ascii_prefix(p, n);
    if (LCH__LIKELY(i == n)) {
        *ncp = n;
        *kind = LCH_STR_ASCII;
        return true;
    }
    return scan_slow(p, n, i, ncp, kind, bad);
}
