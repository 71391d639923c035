/* tests/codec/codec_tree.c: see codec_tree.h. */
#include "codec_tree.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long ct_live_nodes;

/* ---- nodes ---------------------------------------------------------------- */

ct_node *ct_new(lch_vtype t)
{
    ct_node *n = calloc(1, sizeof *n);
    if (n) {
        n->type = t;
        ct_live_nodes++;
    }
    return n;
}

ct_node *ct_int(int64_t v)
{
    ct_node *n = ct_new(LCH_V_INT);
    if (n)
        n->i = v;
    return n;
}

ct_node *ct_container(lch_vtype t, size_t len)
{
    ct_node *n = ct_new(t);
    if (!n)
        return NULL;
    n->len = len;
    n->nkids = t == LCH_V_DICT ? 2 * len : len;
    n->kids = calloc(n->nkids ? n->nkids : 1, sizeof *n->kids);
    if (!n->kids) {
        ct_free(n);
        return NULL;
    }
    return n;
}

/* A deliberately simple reference decoder (independent of the codec's). */
static void ref_utf8_count(const uint8_t *p, size_t n, size_t *ncp,
                           lch_str_kind *kind)
{
    size_t count = 0;
    uint32_t maxcp = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        uint8_t c = p[i];
        int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 7;
        for (int k = 1; k < len && i + (size_t)k < n; k++)
            cp = (cp << 6) | (p[i + (size_t)k] & 0x3F);
        if (cp > maxcp)
            maxcp = cp;
        i += (size_t)len;
        count++;
    }
    *ncp = count;
    *kind = maxcp < 0x80      ? LCH_STR_ASCII
            : maxcp < 0x100   ? LCH_STR_LATIN1
            : maxcp < 0x10000 ? LCH_STR_BMP
                              : LCH_STR_ASTRAL;
}

ct_node *ct_str(const char *s)
{
    ct_node *n = ct_new(LCH_V_STR);
    if (!n)
        return NULL;
    n->n = strlen(s);
    n->data = malloc(n->n + 1);
    memcpy(n->data, s, n->n + 1);
    ref_utf8_count(n->data, n->n, &n->ncp, &n->kind);
    return n;
}

void ct_free(ct_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        ct_free(n->kids[i]);
    free(n->kids);
    free(n->data);
    lch_buffer_unref(n->shared);
    lch_object_unref(n->obj);
    free(n);
    ct_live_nodes--;
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* ---- decoder -------------------------------------------------------------- */

/* Count a constructor call; true if it must fail. */
static bool should_fail(void *ctx)
{
    ct_fail_ctx *f = ctx;
    if (!f)
        return false;
    f->calls++;
    return f->fail_at != 0 && f->calls == f->fail_at;
}

#define MAKE(t)                                                                \
    if (should_fail(ctx))                                                      \
        return LCH_ENOMEM;                                                     \
    ct_node *n = ct_new(t);                                                    \
    if (!n)                                                                    \
        return LCH_ENOMEM;                                                     \
    *out = n

static int d_none(void *ctx, void **out)
{
    MAKE(LCH_V_NONE);
    return LCH_OK;
}

static int d_bool(void *ctx, bool v, void **out)
{
    MAKE(LCH_V_BOOL);
    n->b = v;
    return LCH_OK;
}

static int d_int(void *ctx, int64_t v, void **out)
{
    MAKE(LCH_V_INT);
    n->i = v;
    return LCH_OK;
}

static int d_bigint(void *ctx, const uint8_t *p, size_t len, void **out)
{
    MAKE(LCH_V_BIGINT);
    n->data = dup_bytes(p, len);
    n->n = len;
    return LCH_OK;
}

static int d_float(void *ctx, double v, void **out)
{
    MAKE(LCH_V_FLOAT);
    memcpy(&n->fbits[0], &v, 8);
    return LCH_OK;
}

static int d_complex(void *ctx, double re, double im, void **out)
{
    MAKE(LCH_V_COMPLEX);
    memcpy(&n->fbits[0], &re, 8);
    memcpy(&n->fbits[1], &im, 8);
    return LCH_OK;
}

static int d_str(void *ctx, const char *p, size_t nb, size_t ncp,
                 lch_str_kind kind, void **out)
{
    MAKE(LCH_V_STR);
    n->data = dup_bytes(p, nb);
    n->n = nb;
    n->ncp = ncp;
    n->kind = kind;
    return LCH_OK;
}

static int d_bytes(void *ctx, const void *p, size_t len, lch_buffer *shared,
                   void **out)
{
    MAKE(LCH_V_BYTES);
    n->n = len;
    if (shared) {
        lch_buffer_ref(shared);
        n->shared = shared;
    } else {
        n->data = dup_bytes(p, len);
    }
    return LCH_OK;
}

static int d_object(void *ctx, lch_object *obj, void **out)
{
    MAKE(LCH_V_OBJECT);
    lch_object_ref(obj);
    n->obj = obj;
    return LCH_OK;
}

static int d_opaque(void *ctx, uint32_t tag, const void *p, size_t len,
                    void **out)
{
    MAKE(LCH_V_OPAQUE);
    n->tag = tag;
    n->data = dup_bytes(p, len);
    n->n = len;
    return LCH_OK;
}

static int d_begin(void *ctx, lch_vtype t, size_t len, void **out)
{
    if (should_fail(ctx))
        return LCH_ENOMEM;
    ct_node *n = ct_container(t, len);
    if (!n)
        return LCH_ENOMEM;
    *out = n;
    return LCH_OK;
}

static int d_item(void *ctx, void *container, size_t index, void *item)
{
    ct_node *c = container;
    if (should_fail(ctx) || index >= c->nkids) {
        ct_free(item);
        return LCH_ENOMEM;
    }
    c->kids[index] = item;
    return LCH_OK;
}

static int d_pair(void *ctx, void *dict, size_t index, void *key, void *value)
{
    ct_node *c = dict;
    if (should_fail(ctx) || 2 * index + 1 >= c->nkids) {
        ct_free(key);
        ct_free(value);
        return LCH_ENOMEM;
    }
    c->kids[2 * index] = key;
    c->kids[2 * index + 1] = value;
    return LCH_OK;
}

static int d_end(void *ctx, void *container, void **out)
{
    if (should_fail(ctx)) {
        ct_free(container);
        return LCH_ENOMEM;
    }
    *out = container;
    return LCH_OK;
}

static void d_discard(void *ctx, void *handle)
{
    (void)ctx;
    ct_free(handle);
}

const lch_decoder ct_decoder = {
    .make_none = d_none,
    .make_bool = d_bool,
    .make_int = d_int,
    .make_bigint = d_bigint,
    .make_float = d_float,
    .make_complex = d_complex,
    .make_str = d_str,
    .make_bytes = d_bytes,
    .make_object = d_object,
    .make_opaque = d_opaque,
    .begin = d_begin,
    .item = d_item,
    .pair = d_pair,
    .end = d_end,
    .discard = d_discard,
};

ct_node *ct_decode(const lch_encoded *e, int *rc)
{
    void *out = NULL;
    int r = lch_decode(e, &ct_decoder, NULL, &out);
    if (rc)
        *rc = r;
    return r == LCH_OK ? out : NULL;
}

/* ---- encoder -------------------------------------------------------------- */

int ct_encode_into(lch_enc *enc, const ct_node *n)
{
    int rc;
    double d, im;
    switch (n->type) {
    case LCH_V_NONE:
        return lch_enc_none(enc);
    case LCH_V_BOOL:
        return lch_enc_bool(enc, n->b);
    case LCH_V_INT:
        return lch_enc_int(enc, n->i);
    case LCH_V_BIGINT:
        return lch_enc_bigint(enc, n->data, n->n);
    case LCH_V_FLOAT:
        memcpy(&d, &n->fbits[0], 8);
        return lch_enc_float(enc, d);
    case LCH_V_COMPLEX:
        memcpy(&d, &n->fbits[0], 8);
        memcpy(&im, &n->fbits[1], 8);
        return lch_enc_complex(enc, d, im);
    case LCH_V_STR:
        return lch_enc_str(enc, (const char *)n->data, n->n);
    case LCH_V_BYTES:
        if (n->shared)
            return lch_enc_bytes_ref(enc, n->shared);
        return lch_enc_bytes(enc, n->data, n->n);
    case LCH_V_OBJECT:
        return lch_enc_object(enc, n->obj);
    case LCH_V_OPAQUE:
        return lch_enc_opaque(enc, n->tag, n->data, n->n);
    case LCH_V_TUPLE:
        rc = lch_enc_tuple(enc, n->len);
        break;
    case LCH_V_LIST:
        rc = lch_enc_list(enc, n->len);
        break;
    case LCH_V_DICT:
        rc = lch_enc_dict(enc, n->len);
        break;
    case LCH_V_SET:
        rc = lch_enc_set(enc, n->len);
        break;
    case LCH_V_FROZENSET:
        rc = lch_enc_frozenset(enc, n->len);
        break;
    default:
        return LCH_EINVAL;
    }
    if (rc != LCH_OK)
        return rc;
    for (size_t i = 0; i < n->nkids; i++) {
        rc = ct_encode_into(enc, n->kids[i]);
        if (rc != LCH_OK)
            return rc;
    }
    return lch_enc_end(enc);
}

int ct_encode_with(const ct_node *n, const lch_enc_opts *opts,
                   lch_encoded **out, size_t *flat_len)
{
    lch_enc enc;
    int rc = lch_enc_begin(&enc, opts);
    if (rc != LCH_OK)
        return rc;
    rc = ct_encode_into(&enc, n);
    /* Either finish cleans up on any error. */
    int frc = opts->sink ? lch_enc_finish_flat(&enc, flat_len)
                         : lch_enc_finish(&enc, out);
    return rc != LCH_OK ? rc : frc;
}

int ct_encode(const ct_node *n, lch_encoded **out)
{
    lch_enc_opts opts = {.size_hint = 0, .ext_min = SIZE_MAX};
    return ct_encode_with(n, &opts, out, NULL);
}

/* ---- equality ------------------------------------------------------------- */

static const void *bytes_of(const ct_node *n)
{
    return n->shared ? lch_buffer_data(n->shared) : n->data;
}

bool ct_equal(const ct_node *a, const ct_node *b)
{
    if (!a || !b)
        return a == b;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case LCH_V_NONE:
        return true;
    case LCH_V_BOOL:
        return a->b == b->b;
    case LCH_V_INT:
        return a->i == b->i;
    case LCH_V_FLOAT:
        return a->fbits[0] == b->fbits[0];
    case LCH_V_COMPLEX:
        return a->fbits[0] == b->fbits[0] && a->fbits[1] == b->fbits[1];
    case LCH_V_STR:
        if (a->ncp != b->ncp || a->kind != b->kind)
            return false;
        /* fall through */
    case LCH_V_BIGINT:
    case LCH_V_BYTES:
    case LCH_V_OPAQUE:
        return a->tag == b->tag && a->n == b->n &&
               (a->n == 0 || memcmp(bytes_of(a), bytes_of(b), a->n) == 0);
    case LCH_V_OBJECT:
        return a->obj == b->obj;
    default:
        if (a->len != b->len || a->nkids != b->nkids)
            return false;
        for (size_t i = 0; i < a->nkids; i++)
            if (!ct_equal(a->kids[i], b->kids[i]))
                return false;
        return true;
    }
}

/* ---- golden vectors ------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

long ct_golden_load(const char *path, ct_golden **out)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    static const char fence[] = "```hex golden=";
    char line[1024];
    long n = 0, cap = 0, lineno = 0;
    ct_golden *g = NULL, *cur = NULL;
    size_t bcap = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!cur) {
            if (strncmp(line, fence, sizeof fence - 1) != 0)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 32;
                g = realloc(g, (size_t)cap * sizeof *g);
            }
            cur = &g[n++];
            memset(cur, 0, sizeof *cur);
            const char *nm = line + sizeof fence - 1;
            size_t k = 0;
            while (nm[k] && !isspace((unsigned char)nm[k]) &&
                   k < sizeof cur->name - 1) {
                cur->name[k] = nm[k];
                k++;
            }
            bcap = 64;
            cur->bytes = malloc(bcap);
            continue;
        }
        if (strncmp(line, "```", 3) == 0) {
            cur = NULL;
            continue;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        for (char *p = line; *p;) {
            if (isspace((unsigned char)*p)) {
                p++;
                continue;
            }
            int hi = hexval(p[0]), lo = p[1] ? hexval(p[1]) : -1;
            if (hi < 0 || lo < 0 || (p[2] && !isspace((unsigned char)p[2]))) {
                fprintf(stderr, "%s:%ld: bad hex byte in golden %s\n", path,
                        lineno, cur->name);
                fclose(f);
                ct_golden_free(g, n);
                return -1;
            }
            if (cur->len == bcap) {
                bcap *= 2;
                cur->bytes = realloc(cur->bytes, bcap);
            }
            cur->bytes[cur->len++] = (uint8_t)(hi << 4 | lo);
            p += 2;
        }
    }
    fclose(f);
    if (cur) {
        fprintf(stderr, "%s: golden %s is not closed\n", path, cur->name);
        ct_golden_free(g, n);
        return -1;
    }
    *out = g;
    return n;
}

void ct_golden_free(ct_golden *g, long n)
{
    for (long i = 0; i < n; i++)
        free(g[i].bytes);
    free(g);
}

uint64_t ct_rand(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}
