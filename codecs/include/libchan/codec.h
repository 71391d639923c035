/* libchan/codec.h: the value codec. Flat, versioned, validated encodings of
 * Python-like values that cross threads and subinterpreters without pickle.
 *
 * The byte format is specified in codecs/FORMAT.md; this header is the C API
 * over it. Four parts:
 *
 *   encoder   lch_enc_*      builder calls that write straight into one
 *                            growable block and finish into an lch_encoded
 *                            (or into the caller's memory: lch_enc_sink)
 *   encoded   lch_encoded_*  the immutable, refcounted result (an lch_object
 *                            of type LCH_TYPE_ENCODED): flat bytes plus a
 *                            side table of object references
 *   views     lch_view_*     O(1) random access into an encoded value
 *   walker    lch_decode*    one pass over a value that builds the caller's
 *                            objects through caller-supplied constructors
 *
 * Trust: every lch_encoded is valid. Those made by the encoder are valid by
 * construction; those made from outside bytes (lch_encoded_from_bytes /
 * _from_buffer) are validated once, in full, when they are made. Views and the
 * walker therefore never re-check the bytes: they only check an index bound and
 * the type the caller asks for.
 *
 * Errors: functions return LCH_OK or a negative lch_err. Bytes that break the
 * format are reported as LCH_CODEC_ECORRUPT together with an lch_codec_error
 * (byte offset and static message).
 *
 * Thread safety: an lch_enc belongs to one thread at a time. An lch_encoded is
 * immutable: any number of threads may read it, take views and decode it at
 * once, and reference counting follows libchan/object.h. No function here
 * blocks: the only waits are the allocator's and, for buffers of 64 KiB and
 * more, the brief lock of the buffer cache (libchan/buffer.h). A walker's
 * constructors run on the calling thread. */
#ifndef LIBCHAN_CODEC_H
#define LIBCHAN_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libchan/buffer.h"
#include "libchan/error.h"
#include "libchan/export.h"
#include "libchan/object.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- constants (FORMAT.md section 6) ------------------------------------- */

/* The error for bytes that break the format (an alias kept for the codec's
 * own naming). */
#define LCH_CODEC_ECORRUPT LCH_ECORRUPT

#define LCH_CODEC_VERSION 1
/* Containers nested inside one another; the root container is depth 1. */
#define LCH_CODEC_MAX_DEPTH 64
/* Elements in one container (a dict of n pairs has 2n). */
#define LCH_CODEC_MAX_ITEMS ((size_t)1 << 28)
/* Largest flat encoding (offsets are u32). */
#define LCH_CODEC_MAX_FLAT ((size_t)0xFFFFFFF8u)
/* Default threshold: bytes payloads at least this long are stored as a
 * shared lch_buffer in the side table instead of being copied inline. It is
 * the size from which buffers come from the large-block cache
 * (LCH_BUFFER_CACHE_MIN): a shorter payload copied into a buffer of its own
 * would cost a second allocation and ~150 bytes of header and alignment for
 * no gain, since the bytes are copied either way. */
#define LCH_CODEC_EXT_MIN ((size_t)64 * 1024)

/* Types as readers see them. Both string widths and both bytes forms
 * collapse into LCH_V_STR and LCH_V_BYTES. */
typedef enum lch_vtype {
    LCH_V_INVALID = 0, /* index out of range */
    LCH_V_NONE = 1,
    LCH_V_BOOL = 2,
    LCH_V_INT = 3,    /* fits in int64_t */
    LCH_V_BIGINT = 4, /* does not: two's complement bytes */
    LCH_V_FLOAT = 5,
    LCH_V_COMPLEX = 6,
    LCH_V_STR = 7,
    LCH_V_BYTES = 8,
    LCH_V_TUPLE = 9,
    LCH_V_LIST = 10,
    LCH_V_DICT = 11,
    LCH_V_SET = 12,
    LCH_V_FROZENSET = 13,
    LCH_V_OBJECT = 14, /* a refcounted object from the side table */
    LCH_V_OPAQUE = 15  /* a binding's tagged payload (e.g. pickled bytes) */
} lch_vtype;

/* Largest code point of a string, which is what CPython needs to allocate
 * it (PyUnicode_New's maxchar): 0x7F, 0xFF, 0xFFFF, 0x10FFFF. */
typedef enum lch_str_kind {
    LCH_STR_ASCII = 0,
    LCH_STR_LATIN1 = 1,
    LCH_STR_BMP = 2,
    LCH_STR_ASTRAL = 3
} lch_str_kind;

/* An encoded value (see "encoded values" below). */
typedef struct lch_encoded lch_encoded;

/* Where and why validation failed. */
typedef struct lch_codec_error {
    size_t offset;   /* byte offset of the first problem in the flat bytes */
    const char *msg; /* static string; "" when there was no format error */
} lch_codec_error;

/* ---- encoder -------------------------------------------------------------- */

/* Encoder state. The caller provides the storage (usually on its stack) and
 * never reads it; the size is fixed for a major version. An lch_enc must not
 * be copied or moved between lch_enc_begin and lch_enc_finish/abort. */
#define LCH_ENC_SIZE 1536
typedef struct lch_enc {
    union {
        unsigned char bytes[LCH_ENC_SIZE];
        uint64_t align_u64;
        void *align_ptr;
        double align_double;
    } priv_;
} lch_enc;

/* Memory of the caller's that the encoder writes the flat bytes into, for
 * lch_enc_finish_flat(): a binding can encode straight into its own bytes
 * object, so that the payload is copied once.
 *
 * resize has realloc's contract: it returns an area of `size` bytes whose
 * first `keep` bytes are those of `old` (`old` is NULL, and keep 0, on the
 * first call), or NULL when it cannot. After NULL the encoder fails with
 * LCH_ENOMEM and never touches `old` again. The encoder calls it when the
 * value outgrows the area (the first time with size_hint if that is
 * enough), and once at the end, only if the area is not already exactly the
 * flat length, to trim it to that length. The memory stays the caller's
 * throughout: the encoder never frees it, on success or failure. Called on
 * the encoding thread only. */
typedef struct lch_enc_sink {
    void *(*resize)(void *ctx, void *old, size_t keep, size_t size);
    void *ctx;
} lch_enc_sink;

typedef struct lch_enc_opts {
    /* Expected flat size in bytes; 0 = let the encoder guess. An exact (or
     * larger) hint makes the encode a single allocation even for large
     * values: the first block is made that size. */
    size_t size_hint;
    /* Bytes payloads of at least this many bytes go into the side table as
     * shared buffers (lch_enc_bytes copies once into a new buffer;
     * lch_enc_bytes_buffer shares the caller's). 0 = LCH_CODEC_EXT_MIN;
     * SIZE_MAX = never: the result is self-contained flat bytes. */
    size_t ext_min;
    /* NULL: the result is an lch_encoded (lch_enc_finish). Otherwise the
     * flat bytes go into the caller's memory (lch_enc_finish_flat); the
     * sink is copied, ctx must stay valid until finish or abort. */
    const lch_enc_sink *sink;
} lch_enc_opts;

/* Start encoding one value (opts NULL = defaults). Allocates nothing: small
 * values are assembled in the lch_enc itself and land in one block of
 * exactly the right size at finish; larger ones grow a block that finish
 * trims to size. Every later call on this encoder must be followed by
 * lch_enc_finish() (lch_enc_finish_flat() with a sink) or lch_enc_abort(),
 * which release what it holds. Returns LCH_EINVAL for a NULL encoder. */
LCH_API int lch_enc_begin(lch_enc *enc, const lch_enc_opts *opts);

/* Value calls. Each appends one value: the root value, or the next element
 * of the innermost open container. They return LCH_OK or an error, and the
 * first error is sticky: every later call, including finish, returns it, and
 * the value can only be finished (which fails and cleans up) or aborted.
 * Common errors: LCH_EINVAL (more values than the container announced, or a
 * second root value), LCH_E2BIG (a limit of FORMAT.md section 6), LCH_ENOMEM.
 * None of them blocks. */
LCH_API int lch_enc_none(lch_enc *enc);
LCH_API int lch_enc_bool(lch_enc *enc, bool v);
LCH_API int lch_enc_int(lch_enc *enc, int64_t v);
/* An unsigned value: INT if it fits in int64_t, else a 9-byte BIGINT. */
LCH_API int lch_enc_uint(lch_enc *enc, uint64_t v);
/* An integer of any size as n little-endian two's complement bytes (n == 0
 * means 0). Redundant sign bytes are stripped and values that fit in
 * int64_t become INT, so the result is canonical whatever form it came in. */
LCH_API int lch_enc_bigint(lch_enc *enc, const void *twos_le, size_t n);
LCH_API int lch_enc_float(lch_enc *enc, double v);
LCH_API int lch_enc_complex(lch_enc *enc, double re, double im);
/* A string of n bytes of UTF-8 (copied). The bytes are validated, and
 * counted so that readers get the code-point count and width without
 * scanning; invalid UTF-8 (including encoded surrogates) is LCH_EINVAL. The
 * ASCII case is copied and checked 8 bytes at a time. */
LCH_API int lch_enc_str(lch_enc *enc, const char *utf8, size_t n);
/* Bytes: copied inline if n < ext_min, else copied once into a new shared
 * buffer held in the side table. */
LCH_API int lch_enc_bytes(lch_enc *enc, const void *p, size_t n);
/* Bytes that are already in a shared buffer: shared without copying (one
 * new reference, released when the encoded value dies) if the buffer holds
 * at least ext_min bytes, copied inline otherwise. buf stays the caller's.
 * LCH_EOVERFLOW if buf's count is at its ceiling. */
LCH_API int lch_enc_bytes_buffer(lch_enc *enc, lch_buffer *buf);
/* The same, but always shared, whatever its size. */
LCH_API int lch_enc_bytes_ref(lch_enc *enc, lch_buffer *buf);
/* A refcounted object (channel, buffer, encoded value, application type),
 * decoded as that same object. The encoder takes one new reference (obj
 * stays the caller's), held by the encoded value and released exactly once.
 * LCH_EINVAL for NULL, LCH_EOVERFLOW if obj's count is at its ceiling. */
LCH_API int lch_enc_object(lch_enc *enc, lch_object *obj);
/* A binding's tagged payload of n bytes (copied). libchan never looks
 * inside. */
LCH_API int lch_enc_opaque(lch_enc *enc, uint32_t tag, const void *p,
                           size_t n);

/* Open a container of exactly n elements (n pairs for a dict: then 2n
 * values follow, key, value, key, value...). The values that follow fill it
 * until lch_enc_end(). Counts must be known first: the element table is
 * reserved in one piece so that readers reach element i in O(1). Extra
 * errors: LCH_E2BIG (n above LCH_CODEC_MAX_ITEMS, or nesting above
 * LCH_CODEC_MAX_DEPTH). */
LCH_API int lch_enc_tuple(lch_enc *enc, size_t n);
LCH_API int lch_enc_list(lch_enc *enc, size_t n);
LCH_API int lch_enc_dict(lch_enc *enc, size_t npairs);
LCH_API int lch_enc_set(lch_enc *enc, size_t n);
LCH_API int lch_enc_frozenset(lch_enc *enc, size_t n);
/* Close the innermost container. LCH_EINVAL if it did not get exactly the
 * announced number of values, or if no container is open. */
LCH_API int lch_enc_end(lch_enc *enc);

/* Finish: the root value must be complete. On success *out is a new encoded
 * value with one reference, owned by the caller, which also owns every
 * side-table reference the encoder took. On failure (the sticky error,
 * LCH_EINVAL for an incomplete value, LCH_ENOMEM) *out is NULL and
 * everything the encoder held has been released. Either way the encoder is
 * spent; lch_enc_begin() may reuse its storage. */
LCH_API int lch_enc_finish(lch_enc *enc, lch_encoded **out);

/* Finish an encoder begun with a sink: the root value must be complete and
 * hold no side-table reference (ext_min SIZE_MAX, no objects). On success
 * the flat bytes are the first *len bytes of the area the sink returned
 * last, trimmed to exactly *len. On failure (the sticky error, LCH_EINVAL
 * for an incomplete value, a value with references or an encoder without a
 * sink, LCH_ENOMEM) *len is 0 and the encoder has released its references;
 * the area, if any, is still the caller's to free. Either way the encoder
 * is spent. Never blocks, except in the sink's resize; on the encoding
 * thread. */
LCH_API int lch_enc_finish_flat(lch_enc *enc, size_t *len);

/* Give up: release everything the encoder holds. Idempotent after
 * lch_enc_begin: safe after an error, after finish and after another abort. */
LCH_API void lch_enc_abort(lch_enc *enc);

/* ---- encoded values ------------------------------------------------------- */

/* Validate untrusted flat bytes against a side table of nrefs objects (refs
 * may be NULL when nrefs is 0). Reads every byte at most once; allocates
 * nothing. LCH_OK; LCH_CODEC_ECORRUPT with *err (if err is not NULL) giving
 * the offset of the first problem and a message; LCH_EINVAL for a NULL
 * pointer with a nonzero length. Any thread. */
LCH_API int lch_codec_validate(const void *data, size_t len,
                               lch_object *const *refs, size_t nrefs,
                               lch_codec_error *err);

/* Copy untrusted flat bytes (no side table) into a new encoded value, after
 * validating them. On success *out has one reference, the caller's; on
 * failure *out is NULL. Errors: LCH_CODEC_ECORRUPT (see *err), LCH_EINVAL
 * (NULL arguments), LCH_ENOMEM. */
LCH_API int lch_encoded_from_bytes(lch_encoded **out, const void *data,
                                   size_t len, lch_codec_error *err);

/* The same without copying: the encoded value keeps a new reference to
 * `flat` and to each of the nrefs objects (the caller keeps its own). On
 * failure nothing changes hands. Extra error: LCH_EOVERFLOW (a count at its
 * ceiling). */
LCH_API int lch_encoded_from_buffer(lch_encoded **out, lch_buffer *flat,
                                    lch_object *const *refs, size_t nrefs,
                                    lch_codec_error *err);

/* The flat bytes and their length; valid while the caller holds a
 * reference. NULL/0 for NULL. Made by the encoder or lch_encoded_from_bytes
 * they are at least 8-byte aligned (they follow the 16-byte object header
 * in one block), and 64-byte aligned from 64 KiB on (a block of the buffer
 * cache). */
LCH_API const void *lch_encoded_data(const lch_encoded *e);
LCH_API size_t lch_encoded_len(const lch_encoded *e);
/* The flat bytes as a shared buffer: a new reference owned by the caller,
 * over the encoded value's own storage (no copy). The buffer keeps the
 * storage alive: for a value made by the encoder or lch_encoded_from_bytes,
 * that is a reference to the whole encoded value, side table included.
 * Errors: LCH_EINVAL, LCH_ENOMEM, LCH_EOVERFLOW. */
LCH_API int lch_encoded_buffer(lch_encoded *e, lch_buffer **out);
/* Side table: entries and entry i (borrowed: valid while the caller holds
 * the encoded value; NULL if i is out of range). */
LCH_API size_t lch_encoded_nrefs(const lch_encoded *e);
LCH_API lch_object *lch_encoded_ref_at(const lch_encoded *e, size_t i);
/* Type of the root value. */
LCH_API lch_vtype lch_encoded_type(const lch_encoded *e);

/* Reference counting (libchan/object.h); unref accepts NULL. The last unref
 * releases every side-table reference exactly once, then the bytes. */
LCH_API int lch_encoded_ref(lch_encoded *e);
LCH_API void lch_encoded_unref(lch_encoded *e);
/* As an object, to send it: lch_value_object(lch_encoded_object(e)) (no
 * count change); and back (NULL if obj is not an encoded value). */
LCH_API lch_object *lch_encoded_object(lch_encoded *e);
LCH_API lch_encoded *lch_encoded_from_object(lch_object *obj);

/* ---- views: O(1) random access ------------------------------------------ */

/* A view is a sequence of elements inside an encoded value: either the root
 * pseudo-sequence (exactly one element, the root value) or the elements of
 * one container. It is a small value the caller keeps anywhere; it holds no
 * reference, so it is valid while the caller holds the encoded value. Its
 * fields are private. */
typedef struct lch_view {
    const uint8_t *types_;   /* type codes */
    const uint8_t *slots_;   /* 8-byte slots */
    const uint8_t *base_;    /* flat bytes (record offsets count from here) */
    lch_object *const *refs_; /* side table */
    uint32_t count_;         /* elements */
    uint32_t ctype_;         /* lch_vtype of the container; 0 for the root */
} lch_view;

/* The root pseudo-sequence of e: lch_view_count() is 1, element 0 is the
 * value. LCH_EINVAL if an argument is NULL. */
LCH_API int lch_encoded_view(const lch_encoded *e, lch_view *out);

/* Number of elements (2n for a dict of n pairs: key i at 2i, value at
 * 2i+1), and the container's own type (LCH_V_INVALID for the root view). */
LCH_API size_t lch_view_count(const lch_view *v);
LCH_API lch_vtype lch_view_ctype(const lch_view *v);
/* Type of element i; LCH_V_INVALID if i >= count. */
LCH_API lch_vtype lch_view_type(const lch_view *v, size_t i);

/* Getters: LCH_OK, or LCH_EINVAL if i is out of range, the element has
 * another type or an output pointer is NULL (the outputs are then left
 * unchanged). Pointers returned point into the encoded value (or into a
 * shared buffer it references) and stay valid while the caller holds it. */
LCH_API int lch_view_bool(const lch_view *v, size_t i, bool *out);
LCH_API int lch_view_int(const lch_view *v, size_t i, int64_t *out);
/* BIGINT only: n >= 9 little-endian two's complement bytes. */
LCH_API int lch_view_bigint(const lch_view *v, size_t i, const uint8_t **p,
                            size_t *n);
LCH_API int lch_view_float(const lch_view *v, size_t i, double *out);
LCH_API int lch_view_complex(const lch_view *v, size_t i, double *re,
                             double *im);
/* UTF-8 bytes (not NUL-terminated), their number, the code-point count and
 * the width class. ncp and kind may be NULL. */
LCH_API int lch_view_str(const lch_view *v, size_t i, const char **p,
                         size_t *nbytes, size_t *ncp, lch_str_kind *kind);
/* Bytes, inline or shared. *shared (if shared is not NULL) receives the
 * shared buffer holding them (borrowed; take a reference to keep it beyond
 * the encoded value), or NULL when they are inline. */
LCH_API int lch_view_bytes(const lch_view *v, size_t i, const void **p,
                           size_t *n, lch_buffer **shared);
/* OBJECT: the side-table object (borrowed). */
LCH_API int lch_view_object(const lch_view *v, size_t i, lch_object **obj);
LCH_API int lch_view_opaque(const lch_view *v, size_t i, uint32_t *tag,
                            const void **p, size_t *n);
/* A container element as a view of its own elements (sharing the same flat
 * bytes: no copy, no allocation). */
LCH_API int lch_view_child(const lch_view *v, size_t i, lch_view *out);

/* ---- walker: decoding through the caller's constructors ----------------- */

/* Constructors for lch_decode(). Each builds one value of the caller's (a C
 * tree node, a PyObject...) and stores an opaque handle in *out; it returns
 * LCH_OK, or any nonzero code, which stops the walk and is returned as is.
 * Handles pass from the walker to the caller's functions as follows:
 *   - item/pair take over the handles they are given (also when they fail);
 *   - end takes over the container (also when it fails) and gives back the
 *     finished value (it may be the same handle);
 *   - discard releases a handle the walker still holds when it stops early.
 * Every member must be set except `end`, which may be NULL (the container
 * handle is then the value). Strings and bytes point into the encoded value
 * and are valid only during the call: copy them, or for shared bytes take a
 * reference to `shared`. Objects are borrowed likewise. */
typedef struct lch_decoder {
    int (*make_none)(void *ctx, void **out);
    int (*make_bool)(void *ctx, bool v, void **out);
    int (*make_int)(void *ctx, int64_t v, void **out);
    int (*make_bigint)(void *ctx, const uint8_t *twos_le, size_t n,
                       void **out);
    int (*make_float)(void *ctx, double v, void **out);
    int (*make_complex)(void *ctx, double re, double im, void **out);
    int (*make_str)(void *ctx, const char *utf8, size_t nbytes, size_t ncp,
                    lch_str_kind kind, void **out);
    /* shared: the buffer holding the bytes, or NULL when they are inline. */
    int (*make_bytes)(void *ctx, const void *p, size_t n, lch_buffer *shared,
                      void **out);
    int (*make_object)(void *ctx, lch_object *obj, void **out);
    int (*make_opaque)(void *ctx, uint32_t tag, const void *p, size_t n,
                       void **out);
    /* A container of type t (LCH_V_TUPLE..LCH_V_FROZENSET) with len
     * elements (len pairs for a dict), filled by item or pair calls in
     * order, index 0..len-1. */
    int (*begin)(void *ctx, lch_vtype t, size_t len, void **out);
    int (*item)(void *ctx, void *container, size_t index, void *item);
    int (*pair)(void *ctx, void *dict, size_t index, void *key, void *value);
    int (*end)(void *ctx, void *container, void **out);
    void (*discard)(void *ctx, void *handle);
} lch_decoder;

/* Build the root value of e through d. On LCH_OK *out holds the handle of
 * the root (the caller's); on failure *out is NULL and every handle made so
 * far has been discarded. LCH_EINVAL if an argument or a required member of
 * d is NULL. Recursion is bounded by LCH_CODEC_MAX_DEPTH. */
LCH_API int lch_decode(const lch_encoded *e, const lch_decoder *d, void *ctx,
                       void **out);
/* The same for element i of a view only. */
LCH_API int lch_view_decode(const lch_view *v, size_t i, const lch_decoder *d,
                            void *ctx, void **out);

#ifdef __cplusplus
}
#endif

#endif /* LIBCHAN_CODEC_H */
