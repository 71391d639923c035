/* tests/fuzz/gen_corpus.c: the seed corpus of the codec fuzzers.
 *
 *   gen_corpus FORMAT.md CORPUS_DIR          write the seeds
 *   gen_corpus --check FORMAT.md CORPUS_DIR  fail unless they are there
 *
 * Seeds are the golden vectors of codecs/FORMAT.md (golden-NAME) and a few
 * larger values built with the encoder (gen-NAME): every type, nesting at
 * the depth limit, all string widths, side-table references laid out the way
 * fuzz_common.h makes up side tables. Each seed is written, identically, to
 * CORPUS_DIR/fuzz_decode/ and CORPUS_DIR/fuzz_roundtrip/. Output is
 * deterministic, so --check (run by ctest) catches a corpus that has fallen
 * behind the format. Other files in those directories (inputs a fuzzer
 * found, kept as regressions) are left alone. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec_tree.h"
#include "libchan/codec.h"

static const char *const targets[] = {"fuzz_decode", "fuzz_roundtrip"};
static int check_only;
static int problems;

static void emit(const char *dir, const char *name, const uint8_t *p,
                 size_t n)
{
    for (size_t t = 0; t < 2; t++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/%s", dir, targets[t], name);
        if (check_only) {
            FILE *f = fopen(path, "rb");
            uint8_t *have = malloc(n + 1);
            size_t got = f ? fread(have, 1, n + 1, f) : 0;
            if (!f || got != n || memcmp(have, p, n) != 0) {
                fprintf(stderr, "stale or missing seed: %s\n", path);
                problems++;
            }
            if (f)
                fclose(f);
            free(have);
            continue;
        }
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(p, 1, n, f) != n) {
            perror(path);
            problems++;
        }
        if (f)
            fclose(f);
    }
}

static void emit_encoded(const char *dir, const char *name, lch_encoded *e)
{
    if (!e) {
        fprintf(stderr, "could not encode %s\n", name);
        problems++;
        return;
    }
    emit(dir, name, lch_encoded_data(e), lch_encoded_len(e));
    lch_encoded_unref(e);
}

static lch_encoded *finish(lch_enc *enc)
{
    lch_encoded *e = NULL;
    return lch_enc_finish(enc, &e) == LCH_OK ? e : NULL;
}

static void gen_mixed(const char *dir)
{
    lch_enc enc;
    lch_enc_opts o = {0, SIZE_MAX, NULL};
    lch_enc_begin(&enc, &o);
    lch_enc_list(&enc, 6);
    for (int r = 0; r < 6; r++) {
        lch_enc_dict(&enc, 2);
        lch_enc_str(&enc, "id", 2);
        lch_enc_int(&enc, r * 1000003 - 3);
        lch_enc_str(&enc, "v\xc3\xa9", 3);
        lch_enc_tuple(&enc, 12);
        lch_enc_none(&enc);
        lch_enc_bool(&enc, r & 1);
        lch_enc_float(&enc, r / 7.0);
        lch_enc_complex(&enc, -0.0, r);
        lch_enc_uint(&enc, UINT64_MAX - (uint64_t)r);
        lch_enc_str(&enc, "\xe2\x82\xac\xf0\x9f\x98\x80", 7);
        lch_enc_bytes(&enc, "\x00\x01\x02\x03\x04\x05\x06\x07\x08", 9);
        lch_enc_opaque(&enc, 0xfeedu, "pickle", 6);
        lch_enc_set(&enc, 2);
        lch_enc_int(&enc, 1);
        lch_enc_int(&enc, 2);
        lch_enc_end(&enc);
        lch_enc_frozenset(&enc, 0);
        lch_enc_end(&enc);
        lch_enc_list(&enc, 1);
        lch_enc_tuple(&enc, 0);
        lch_enc_end(&enc);
        lch_enc_end(&enc);
        lch_enc_str(&enc, "", 0);
        lch_enc_end(&enc);
        lch_enc_end(&enc);
    }
    lch_enc_end(&enc);
    emit_encoded(dir, "gen-mixed", finish(&enc));
}

static void gen_deep(const char *dir)
{
    lch_enc enc;
    lch_enc_begin(&enc, NULL);
    for (int d = 0; d < LCH_CODEC_MAX_DEPTH - 1; d++)
        lch_enc_tuple(&enc, 1);
    lch_enc_list(&enc, 2);
    lch_enc_int(&enc, 1);
    lch_enc_str(&enc, "leaf", 4);
    for (int d = 0; d < LCH_CODEC_MAX_DEPTH; d++)
        lch_enc_end(&enc);
    emit_encoded(dir, "gen-deep64", finish(&enc));
}

static void gen_strings(const char *dir)
{
    static const char *const s[] = {
        "plain ascii text that is longer than thirty-two bytes",
        "\xc2\x80\xc3\xbf latin", "\xc4\x80 bmp \xef\xbf\xbf",
        "\xed\x9f\xbf\xee\x80\x80", "astral \xf4\x8f\xbf\xbf \xf0\x90\x80\x80",
        "",
    };
    lch_enc enc;
    lch_enc_begin(&enc, NULL);
    lch_enc_tuple(&enc, sizeof s / sizeof s[0]);
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        lch_enc_str(&enc, s[i], strlen(s[i]));
    lch_enc_end(&enc);
    emit_encoded(dir, "gen-strings", finish(&enc));
}

static void gen_flat(const char *dir)
{
    lch_enc enc;
    lch_enc_begin(&enc, NULL);
    lch_enc_tuple(&enc, 300);
    for (int i = 0; i < 300; i++) {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "k%d", i);
        if (i % 3 == 0)
            lch_enc_int(&enc, i);
        else if (i % 3 == 1)
            lch_enc_float(&enc, i * 0.5);
        else
            lch_enc_str(&enc, buf, (size_t)n);
    }
    lch_enc_end(&enc);
    emit_encoded(dir, "gen-flat300", finish(&enc));
}

/* Side-table entries in the pattern fuzz_common.h supplies: i % 3 == 2 is
 * a plain object (OBJECT only), the others are buffers (either). */
static void gen_refs(const char *dir)
{
    static const lch_type plain = {LCH_TYPE_USER + 78, "seed", NULL};
    lch_object *obj = lch_object_new(&plain, 8);
    lch_buffer *buf = NULL;
    lch_buffer_new_copy(&buf, "0123456789", 10);
    lch_enc enc;
    lch_enc_begin(&enc, NULL);
    lch_enc_tuple(&enc, 7);
    lch_enc_bytes_ref(&enc, buf);           /* 0: buffer */
    lch_enc_object(&enc, lch_buffer_object(buf)); /* 1: buffer as object */
    lch_enc_list(&enc, 2);
    lch_enc_object(&enc, obj);              /* 2: plain */
    lch_enc_bytes_ref(&enc, buf);           /* 3: buffer */
    lch_enc_end(&enc);
    lch_enc_int(&enc, 5);
    lch_enc_bytes_ref(&enc, buf);           /* 4: buffer */
    lch_enc_object(&enc, obj);              /* 5: plain */
    lch_enc_bytes(&enc, "inline", 6);
    lch_enc_end(&enc);
    emit_encoded(dir, "gen-refs", finish(&enc));
    lch_object_unref(obj);
    lch_buffer_unref(buf);
}

static void gen_bigints(const char *dir)
{
    uint8_t b[64];
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (uint8_t)(i * 37 + 11);
    b[63] = 0x7f;
    lch_enc enc;
    lch_enc_begin(&enc, NULL);
    lch_enc_list(&enc, 4);
    lch_enc_bigint(&enc, b, sizeof b);
    b[63] = 0x80;
    lch_enc_bigint(&enc, b, sizeof b);
    lch_enc_int(&enc, INT64_MAX);
    lch_enc_int(&enc, INT64_MIN);
    lch_enc_end(&enc);
    emit_encoded(dir, "gen-bigints", finish(&enc));
}

int main(int argc, char **argv)
{
    int a = 1;
    if (argc > 1 && strcmp(argv[1], "--check") == 0) {
        check_only = 1;
        a++;
    }
    if (argc - a != 2) {
        fprintf(stderr, "usage: gen_corpus [--check] FORMAT.md CORPUS_DIR\n");
        return 2;
    }
    const char *dir = argv[a + 1];
    if (!check_only) {
        mkdir(dir, 0777);
        for (size_t t = 0; t < 2; t++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, targets[t]);
            if (mkdir(path, 0777) != 0 && errno != EEXIST) {
                perror(path);
                return 1;
            }
        }
    }
    ct_golden *g = NULL;
    long n = ct_golden_load(argv[a], &g);
    if (n <= 0)
        return 1;
    for (long i = 0; i < n; i++) {
        char name[128];
        snprintf(name, sizeof name, "golden-%s", g[i].name);
        emit(dir, name, g[i].bytes, g[i].len);
    }
    ct_golden_free(g, n);
    gen_mixed(dir);
    gen_deep(dir);
    gen_strings(dir);
    gen_flat(dir);
    gen_refs(dir);
    gen_bigints(dir);
    if (problems)
        fprintf(stderr, "%d problem(s)%s\n", problems,
                check_only ? ": run the fuzz_corpus target to regenerate" : "");
    return problems ? 1 : 0;
}
