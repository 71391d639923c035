/* tests/codec/codec_tree.h: a plain C value tree for codec tests and fuzzers.
 *
 * - ct_decoder: an lch_decoder whose constructors build ct_node trees, so
 *   the same walker the Python binding uses is what the tests exercise;
 * - ct_encode: the inverse, through the public encoder, keeping each
 *   element's representation (inline vs shared bytes), so that decoding a
 *   valid buffer and re-encoding the tree must give the same bytes back;
 * - ct_equal: structural equality (floats compared bit for bit);
 * - ct_golden_load: the hex examples of codecs/FORMAT.md.
 *
 * Trees use malloc, not libchan's allocator hook, so that out-of-memory
 * tests count only libchan's own allocations. Nothing here uses cmocka. */
#ifndef LCH_CODEC_TREE_H
#define LCH_CODEC_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libchan/codec.h"

typedef struct ct_node {
    lch_vtype type;
    bool b;             /* BOOL */
    int64_t i;          /* INT */
    uint64_t fbits[2];  /* FLOAT (fbits[0]); COMPLEX (real, imaginary) */
    uint8_t *data;      /* STR (UTF-8), BYTES inline, BIGINT, OPAQUE: copy */
    size_t n;           /* bytes at data (or in shared) */
    size_t ncp;         /* STR: code points */
    lch_str_kind kind;  /* STR */
    uint32_t tag;       /* OPAQUE */
    lch_buffer *shared; /* BYTES held in a shared buffer: one reference */
    lch_object *obj;    /* OBJECT: one reference */
    size_t len;         /* containers: elements (pairs for a dict) */
    size_t nkids;       /* len, or 2 * len for a dict */
    struct ct_node **kids;
} ct_node;

/* Live ct_node count (for leak checks of the walker's error paths). */
extern long ct_live_nodes;

/* The decoder; ctx may be NULL or a ct_fail_ctx to make the k-th
 * constructor call fail with LCH_ENOMEM. */
typedef struct ct_fail_ctx {
    long calls;   /* constructor calls so far */
    long fail_at; /* 1-based call to fail; 0 = never */
} ct_fail_ctx;
extern const lch_decoder ct_decoder;

/* Decode e into a new tree through ct_decoder; NULL on failure, with the
 * error in *rc (rc may be NULL). */
ct_node *ct_decode(const lch_encoded *e, int *rc);

/* Encode n as the next value of enc, keeping representations: inline bytes
 * with lch_enc_bytes (use ext_min = SIZE_MAX to keep them inline) and shared
 * ones with lch_enc_bytes_ref. Returns the encoder's result. */
int ct_encode_into(lch_enc *enc, const ct_node *n);
/* Whole value: begin (ext_min SIZE_MAX), encode, finish. */
int ct_encode(const ct_node *n, lch_encoded **out);
/* The same with the caller's options: with a sink, the flat bytes go there
 * (lch_enc_finish_flat, their length in *flat_len), else into *out. */
int ct_encode_with(const ct_node *n, const lch_enc_opts *opts,
                   lch_encoded **out, size_t *flat_len);

bool ct_equal(const ct_node *a, const ct_node *b);
void ct_free(ct_node *n);

/* Constructors for building expected values by hand. */
ct_node *ct_new(lch_vtype t);
ct_node *ct_int(int64_t v);
ct_node *ct_str(const char *s); /* counted with a reference UTF-8 decoder */
ct_node *ct_container(lch_vtype t, size_t len); /* kids zeroed */

/* Golden vectors: every ```hex golden=NAME block of a FORMAT.md. */
typedef struct ct_golden {
    char name[64];
    uint8_t *bytes;
    size_t len;
} ct_golden;
/* Returns the number of vectors (>= 0) and a malloc'd array in *out, or -1
 * if the file cannot be read or a block is malformed (message on stderr). */
long ct_golden_load(const char *path, ct_golden **out);
void ct_golden_free(ct_golden *g, long n);

/* A deterministic PRNG (splitmix64) for tests and seed generation. */
uint64_t ct_rand(uint64_t *state);

#endif /* LCH_CODEC_TREE_H */
