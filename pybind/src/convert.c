/* convert.c: Python objects <-> libchan values and codec encodings.
 *
 * Sending (lchpy_to_value): None, bool, int64-range int and float travel
 * inside the 16-byte lch_value, with no allocation. SharedBuffer,
 * SharedTuple and Channel travel as a counted reference to their libchan
 * object. Everything else is encoded once with the codec (codecs/FORMAT.md)
 * and travels as a reference to the encoding.
 *
 * Encoding is by exact type, so that the receiver can rebuild the same
 * type: None, bool, int, float, complex, str, bytes, bytearray (an opaque
 * payload of our own), tuple, list, dict, set, frozenset, plus references
 * to SharedBuffer, SharedTuple and Channel. Subclasses and other types are
 * pickled into an opaque payload (unless pickling is off), one element at a
 * time, so a tuple holding one Decimal pickles only the Decimal. A str
 * with lone surrogates (no UTF-8 form) is pickled too. A value nested
 * deeper than the codec allows, which includes every cyclic one, is pickled
 * as a whole, so that pickle's memo keeps the cycles.
 *
 * dumps (lchpy_dumps) encodes into the bytes object it returns, through an
 * lch_enc_sink: the payload is copied once, as with pickle.dumps.
 *
 * Receiving (lchpy_from_value) builds new objects through the codec's
 * walker (lch_decode), whose constructors are below. */
#include "lchpy.h"

#include <string.h>

/* Returned by encoders when the codec's depth or count limit was hit: the
 * caller pickles the value as a whole. */
#define ENC_FALLBACK (-2)
/* A constructor failed with a Python exception set (distinct from every
 * lch_err code, which the walker passes through unchanged). */
#define LCHPY_EPY (-20000)

/* ---- pickle, cached per interpreter ---------------------------------------- */

static int ensure_pickle(lchpy_state *st)
{
    if (st->pickle_dumps)
        return 0;
    PyObject *mod = PyImport_ImportModule("pickle");
    if (!mod)
        return -1;
    st->pickle_dumps = PyObject_GetAttrString(mod, "dumps");
    st->pickle_loads = PyObject_GetAttrString(mod, "loads");
    Py_DECREF(mod);
    if (!st->pickle_dumps || !st->pickle_loads) {
        Py_CLEAR(st->pickle_dumps);
        Py_CLEAR(st->pickle_loads);
        return -1;
    }
    return 0;
}

/* ---- encoding ------------------------------------------------------------- */

typedef struct enc_ctx {
    lchpy_state *st;
    int allow_pickle;
    int self_contained;
    /* Second attempt at a tuple that was too deep for the codec: pickle
     * only those of its elements that are too deep, so that it is still a
     * tuple (a SharedTuple must be). */
    int pickle_deep_elems;
    lch_enc enc;
} enc_ctx;

/* An encoder call's result: 0, ENC_FALLBACK, or -1 with an exception. */
static int enc_check(int rc)
{
    if (rc == LCH_OK)
        return 0;
    if (rc == LCH_E2BIG)
        return ENC_FALLBACK;
    if (rc == LCH_ENOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    PyErr_Format(PyExc_RuntimeError, "libchan encoder: %s",
                 lch_strerror(rc));
    return -1;
}

static int not_shareable(lchpy_state *st, PyObject *o, const char *why)
{
    PyErr_Format(st->NotShareableError, "%s object cannot be shared: %s",
                 Py_TYPE(o)->tp_name, why);
    return -1;
}

static int enc_pickled(enc_ctx *c, PyObject *o)
{
    lchpy_state *st = c->st;
    if (!c->allow_pickle)
        return not_shareable(st, o, "it would need pickle, which is off");
    if (ensure_pickle(st) < 0)
        return -1;
    PyObject *data = PyObject_CallFunction(st->pickle_dumps, "Oi", o, 5);
    if (!data) {
        /* Keep pickle's reason as the cause. */
        PyObject *cause = PyErr_GetRaisedException();
        not_shareable(st, o, "pickle failed");
        PyObject *exc = PyErr_GetRaisedException();
        PyException_SetCause(exc, cause);
        PyErr_SetRaisedException(exc);
        return -1;
    }
    int r = enc_check(lch_enc_opaque(&c->enc, LCHPY_OPAQUE_PICKLE,
                                     PyBytes_AS_STRING(data),
                                     (size_t)PyBytes_GET_SIZE(data)));
    Py_DECREF(data);
    return r;
}

static int enc_bigint(enc_ctx *c, PyObject *o)
{
    size_t nbits = _PyLong_NumBits(o);
    if (nbits == (size_t)-1 && PyErr_Occurred())
        return -1;
    size_t n = nbits / 8 + 1; /* room for the sign bit */
    unsigned char small[64];
    unsigned char *buf = n <= sizeof small ? small : PyMem_Malloc(n);
    if (!buf) {
        PyErr_NoMemory();
        return -1;
    }
#if PY_VERSION_HEX >= 0x030D0000
    int ok = PyLong_AsNativeBytes(o, buf, (Py_ssize_t)n,
                                  Py_ASNATIVEBYTES_LITTLE_ENDIAN) >= 0;
#else
    int ok = _PyLong_AsByteArray((PyLongObject *)o, buf, n, 1, 1) == 0;
#endif
    int r = ok ? enc_check(lch_enc_bigint(&c->enc, buf, n)) : -1;
    if (buf != small)
        PyMem_Free(buf);
    return r;
}

static int enc_obj(enc_ctx *c, PyObject *o, int depth);

/* A SharedTuple that is a view inside another encoding, encoded anew as a
 * root of its own (a copy: a view cannot travel without its root). */
static int encode_view_copy(lchpy_state *st, lchpy_SharedTuple *t,
                            int allow_pickle, lch_encoded **out)
{
    PyObject *plain = lchpy_tuple_materialize(t);
    if (!plain)
        return -1;
    int r = lchpy_encode(st, plain, allow_pickle, 0, out);
    Py_DECREF(plain);
    return r;
}

/* Does o hold containers nested more than `room` deep (o itself counts)?
 * Only the exact container types the codec nests are followed. `budget`
 * bounds the work on shared substructures; running out counts as deep. */
static int too_deep(PyObject *o, int room, long *budget)
{
    PyTypeObject *tp = Py_TYPE(o);
    int seq = tp == &PyTuple_Type || tp == &PyList_Type;
    if (!seq && tp != &PyDict_Type && tp != &PySet_Type &&
        tp != &PyFrozenSet_Type)
        return 0;
    if (room <= 0 || --*budget < 0)
        return 1;
    if (seq) {
        for (Py_ssize_t i = 0; i < Py_SIZE(o); i++)
            if (too_deep(PySequence_Fast_GET_ITEM(o, i), room - 1, budget))
                return 1;
        return 0;
    }
    if (tp == &PyDict_Type) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(o, &pos, &k, &v))
            if (too_deep(k, room - 1, budget) ||
                too_deep(v, room - 1, budget))
                return 1;
        return 0;
    }
    PyObject *it = PyObject_GetIter(o), *k;
    if (!it) {
        PyErr_Clear();
        return 1;
    }
    int deep = 0;
    while (!deep && (k = PyIter_Next(it)) != NULL) {
        deep = too_deep(k, room - 1, budget);
        Py_DECREF(k);
    }
    Py_DECREF(it);
    PyErr_Clear();
    return deep;
}

static int enc_sequence_items(enc_ctx *c, PyObject *seq, Py_ssize_t n,
                              int depth)
{
    int is_list = PyList_CheckExact(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (is_list && PyList_GET_SIZE(seq) != n) {
            PyErr_SetString(PyExc_RuntimeError,
                            "list changed size during encoding");
            return -1;
        }
        PyObject *item = is_list ? PyList_GET_ITEM(seq, i)
                                 : PyTuple_GET_ITEM(seq, i);
        Py_INCREF(item); /* pickling an element may run code */
        long budget = 1000000;
        int r = c->pickle_deep_elems && depth == 1 &&
                        too_deep(item, LCH_CODEC_MAX_DEPTH - 1, &budget)
                    ? enc_pickled(c, item)
                    : enc_obj(c, item, depth);
        Py_DECREF(item);
        if (r)
            return r;
    }
    return 0;
}

static int enc_dict(enc_ctx *c, PyObject *o, int depth)
{
    Py_ssize_t n = PyDict_GET_SIZE(o), pos = 0, seen = 0;
    int r = enc_check(lch_enc_dict(&c->enc, (size_t)n));
    PyObject *k, *v;
    while (!r && PyDict_Next(o, &pos, &k, &v)) {
        if (++seen > n)
            break;
        Py_INCREF(k);
        Py_INCREF(v);
        r = enc_obj(c, k, depth);
        if (!r)
            r = enc_obj(c, v, depth);
        Py_DECREF(k);
        Py_DECREF(v);
    }
    if (!r && (seen != n || PyDict_GET_SIZE(o) != n)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "dictionary changed size during encoding");
        return -1;
    }
    return r ? r : enc_check(lch_enc_end(&c->enc));
}

static int enc_set(enc_ctx *c, PyObject *o, int depth)
{
    Py_ssize_t n = PySet_GET_SIZE(o), seen = 0;
    int r = enc_check(PyFrozenSet_CheckExact(o)
                          ? lch_enc_frozenset(&c->enc, (size_t)n)
                          : lch_enc_set(&c->enc, (size_t)n));
    if (r)
        return r;
    PyObject *it = PyObject_GetIter(o);
    if (!it)
        return -1;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        r = ++seen > n ? -1 : enc_obj(c, item, depth);
        Py_DECREF(item);
        if (r)
            break;
    }
    Py_DECREF(it);
    if (r == ENC_FALLBACK || PyErr_Occurred())
        return r ? r : -1;
    if (seen != n) {
        PyErr_SetString(PyExc_RuntimeError, "set changed size during encoding");
        return -1;
    }
    return enc_check(lch_enc_end(&c->enc));
}

static int enc_object_ref(enc_ctx *c, lch_object *obj)
{
    return enc_check(lch_enc_object(&c->enc, obj));
}

/* Encode one value; depth counts the containers around it. */
static int enc_obj(enc_ctx *c, PyObject *o, int depth)
{
    lchpy_state *st = c->st;
    PyTypeObject *tp = Py_TYPE(o);
    if (o == Py_None)
        return enc_check(lch_enc_none(&c->enc));
    if (o == Py_True || o == Py_False)
        return enc_check(lch_enc_bool(&c->enc, o == Py_True));
    if (tp == &PyLong_Type) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred())
            return -1;
        return overflow ? enc_bigint(c, o)
                        : enc_check(lch_enc_int(&c->enc, (int64_t)v));
    }
    if (tp == &PyFloat_Type)
        return enc_check(lch_enc_float(&c->enc, PyFloat_AS_DOUBLE(o)));
    if (tp == &PyUnicode_Type) {
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(o, &n);
        if (!p) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
                return -1;
            PyErr_Clear(); /* lone surrogates: no UTF-8 form */
            return enc_pickled(c, o);
        }
        return enc_check(lch_enc_str(&c->enc, p, (size_t)n));
    }
    if (tp == &PyBytes_Type)
        return enc_check(lch_enc_bytes(&c->enc, PyBytes_AS_STRING(o),
                                       (size_t)PyBytes_GET_SIZE(o)));
    if (tp == &PyTuple_Type || tp == &PyList_Type) {
        Py_ssize_t n = Py_SIZE(o);
        if (depth >= LCH_CODEC_MAX_DEPTH)
            return ENC_FALLBACK;
        int r = enc_check(tp == &PyTuple_Type
                              ? lch_enc_tuple(&c->enc, (size_t)n)
                              : lch_enc_list(&c->enc, (size_t)n));
        if (!r)
            r = enc_sequence_items(c, o, n, depth + 1);
        return r ? r : enc_check(lch_enc_end(&c->enc));
    }
    if (tp == &PyDict_Type) {
        if (depth >= LCH_CODEC_MAX_DEPTH)
            return ENC_FALLBACK;
        return enc_dict(c, o, depth + 1);
    }
    if (tp == &PySet_Type || tp == &PyFrozenSet_Type) {
        if (depth >= LCH_CODEC_MAX_DEPTH)
            return ENC_FALLBACK;
        return enc_set(c, o, depth + 1);
    }
    if (tp == &PyComplex_Type) {
        Py_complex z = PyComplex_AsCComplex(o);
        return enc_check(lch_enc_complex(&c->enc, z.real, z.imag));
    }
    if (tp == &PyByteArray_Type)
        return enc_check(lch_enc_opaque(&c->enc, LCHPY_OPAQUE_BYTEARRAY,
                                        PyByteArray_AS_STRING(o),
                                        (size_t)PyByteArray_GET_SIZE(o)));
    if (tp == st->SharedBuffer_Type) {
        lch_buffer *b = ((lchpy_SharedBuffer *)o)->buf;
        if (c->self_contained)
            return enc_check(lch_enc_bytes(&c->enc, lch_buffer_data(b),
                                           lch_buffer_len(b)));
        return enc_object_ref(c, lch_buffer_object(b));
    }
    if (tp == st->SharedTuple_Type) {
        lchpy_SharedTuple *t = (lchpy_SharedTuple *)o;
        if (!c->self_contained && !t->nested)
            return enc_object_ref(c, lch_encoded_object(t->enc));
        if (c->self_contained) { /* bytes for dumps: its elements */
            PyObject *plain = lchpy_tuple_materialize(t);
            if (!plain)
                return -1;
            int r = enc_obj(c, plain, depth);
            Py_DECREF(plain);
            return r;
        }
        /* A view inside another encoding: a SharedTuple of its own. */
        lch_encoded *sub = NULL;
        int r = encode_view_copy(st, t, c->allow_pickle, &sub);
        if (!r) {
            r = enc_object_ref(c, lch_encoded_object(sub));
            lch_encoded_unref(sub);
        }
        return r;
    }
    if (tp == st->Channel_Type) {
        if (c->self_contained)
            return not_shareable(st, o,
                                 "a channel cannot be serialized into bytes; "
                                 "send it through a Channel instead");
        return enc_object_ref(
            c, lch_channel_object(((lchpy_Channel *)o)->ch));
    }
    return enc_pickled(c, o);
}

/* Flat bytes of a string's record (FORMAT.md 3.3): exact for ASCII, an
 * upper bound otherwise (UTF-8 needs at most 2, 3 or 4 bytes per code
 * point of a 1-, 2- or 4-byte kind). */
static size_t str_record_hint(PyObject *s)
{
    size_t n = (size_t)PyUnicode_GET_LENGTH(s);
    if (PyUnicode_IS_ASCII(s))
        return (n + 7) & ~(size_t)7;
    size_t per = PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND   ? 2
                 : PyUnicode_KIND(s) == PyUnicode_2BYTE_KIND ? 3
                                                             : 4;
    return 8 + ((n * per + 7) & ~(size_t)7);
}

/* The flat size, so that most encodes allocate once and need no trim: the
 * header, a top-level sequence's element table and the records of its
 * strings, bytes and direct sub-sequences' tables (exact when those are
 * all there is, as for a tuple of ints or of ASCII strings; deeper records
 * are not scanned). Only used once a value outgrows the encoder's 256
 * bytes of scratch. The encoder grows the block if the guess is short and
 * trims it if long. */
static size_t size_hint(PyObject *o, int self_contained)
{
    const size_t head = 24; /* LCH__HDR_SIZE */
    if (PyBytes_CheckExact(o) &&
        (self_contained ||
         PyBytes_GET_SIZE(o) < (Py_ssize_t)LCH_CODEC_EXT_MIN))
        return head + (((size_t)PyBytes_GET_SIZE(o) + 7) & ~(size_t)7);
    if (PyUnicode_CheckExact(o))
        return head + str_record_hint(o);
    if (!PyTuple_CheckExact(o) && !PyList_CheckExact(o))
        return 0;
    size_t n = (size_t)Py_SIZE(o);
    size_t hint = head + ((n + 7) & ~(size_t)7) + 8 * n;
    if (n > 4096)
        return hint + n * 3; /* no scan for long ones */
    for (size_t i = 0; i < n; i++) {
        PyObject *e = PySequence_Fast_GET_ITEM(o, (Py_ssize_t)i);
        PyTypeObject *tp = Py_TYPE(e);
        if (tp == &PyUnicode_Type)
            hint += str_record_hint(e);
        else if (tp == &PyBytes_Type &&
                 (self_contained ||
                  PyBytes_GET_SIZE(e) < (Py_ssize_t)LCH_CODEC_EXT_MIN))
            hint += ((size_t)PyBytes_GET_SIZE(e) + 7) & ~(size_t)7;
        else if (tp == &PyTuple_Type || tp == &PyList_Type)
            hint += (((size_t)Py_SIZE(e) + 7) & ~(size_t)7) +
                    8 * (size_t)Py_SIZE(e);
        else if (tp == &PyComplex_Type)
            hint += 16;
        else if (tp != &PyLong_Type && tp != &PyFloat_Type &&
                 e != Py_None && tp != &PyBool_Type)
            hint += 16; /* a guess */
    }
    return hint;
}

/* dumps: the flat bytes go straight into a bytes object, made (and grown)
 * by the encoder through this sink and trimmed to their length at the end,
 * so that a large payload is copied once, as pickle.dumps does. */
typedef struct bytes_sink {
    PyObject *bytes; /* NULL until the first call; ours until returned */
} bytes_sink;

static void *bytes_sink_resize(void *ctx, void *old, size_t keep,
                               size_t size)
{
    bytes_sink *bs = ctx;
    (void)old;  /* == PyBytes_AS_STRING(bs->bytes) */
    (void)keep; /* _PyBytes_Resize keeps everything up to the new size */
    if (size == 0 || size > (size_t)PY_SSIZE_T_MAX)
        return NULL;
    if (bs->bytes == NULL)
        bs->bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    else
        (void)_PyBytes_Resize(&bs->bytes, (Py_ssize_t)size); /* NULLs it on
                                                                failure */
    if (bs->bytes == NULL) {
        PyErr_Clear(); /* the encoder reports LCH_ENOMEM: MemoryError */
        return NULL;
    }
    return PyBytes_AS_STRING(bs->bytes);
}

/* One attempt. With bytes_out (dumps), into a new bytes object; else into
 * *out. 0, ENC_FALLBACK or -1 with an exception. */
static int encode_once(enc_ctx *c, PyObject *obj, int whole_pickle,
                       lch_encoded **out, PyObject **bytes_out)
{
    bytes_sink bs = {NULL};
    lch_enc_sink sink = {bytes_sink_resize, &bs};
    lch_enc_opts opts = {size_hint(obj, c->self_contained),
                         c->self_contained ? SIZE_MAX : 0,
                         bytes_out ? &sink : NULL};
    int rc = lch_enc_begin(&c->enc, &opts);
    if (rc != LCH_OK)
        return enc_check(rc);
    int r = whole_pickle ? enc_pickled(c, obj) : enc_obj(c, obj, 0);
    if (r) {
        lch_enc_abort(&c->enc);
        Py_XDECREF(bs.bytes);
        return r;
    }
    if (!bytes_out)
        return enc_check(lch_enc_finish(&c->enc, out));
    size_t len;
    r = enc_check(lch_enc_finish_flat(&c->enc, &len));
    if (r) {
        Py_XDECREF(bs.bytes);
        return r;
    }
    *bytes_out = bs.bytes;
    return 0;
}

static int encode(lchpy_state *st, PyObject *obj, int allow_pickle,
                  int self_contained, lch_encoded **out, PyObject **bytes_out)
{
    enc_ctx c;
    c.st = st;
    c.allow_pickle = allow_pickle;
    c.self_contained = self_contained;
    c.pickle_deep_elems = 0;
    int r = encode_once(&c, obj, 0, out, bytes_out);
    if (r == ENC_FALLBACK && allow_pickle && PyTuple_CheckExact(obj)) {
        /* Keep the tuple, pickle its too-deep elements. */
        c.pickle_deep_elems = 1;
        r = encode_once(&c, obj, 0, out, bytes_out);
    }
    if (r == ENC_FALLBACK) {
        /* Too deep (or cyclic) or too many items for the codec. */
        if (!allow_pickle)
            return not_shareable(st, obj,
                                 "nested too deeply (or cyclic) for the "
                                 "codec, and pickle is off");
        r = encode_once(&c, obj, 1, out, bytes_out);
        if (r == ENC_FALLBACK) {
            PyErr_SetString(st->NotShareableError,
                            "pickled value too large for the codec");
            r = -1;
        }
    }
    return r;
}

int lchpy_encode(lchpy_state *st, PyObject *obj, int allow_pickle,
                 int self_contained, lch_encoded **out)
{
    *out = NULL;
    return encode(st, obj, allow_pickle, self_contained, out, NULL);
}

PyObject *lchpy_dumps(lchpy_state *st, PyObject *obj, int allow_pickle)
{
    PyObject *bytes = NULL;
    if (encode(st, obj, allow_pickle, 1, NULL, &bytes))
        return NULL;
    return bytes;
}

/* ---- decoding: the walker's constructors ----------------------------------- */

typedef struct dec_ctx {
    lchpy_state *st;
    int allow_pickle;
} dec_ctx;

static int made(PyObject *o, void **out)
{
    *out = o;
    return o ? LCH_OK : LCHPY_EPY;
}

static int mk_none(void *ctx, void **out)
{
    (void)ctx;
    return made(Py_NewRef(Py_None), out);
}

static int mk_bool(void *ctx, bool v, void **out)
{
    (void)ctx;
    return made(PyBool_FromLong(v), out);
}

static int mk_int(void *ctx, int64_t v, void **out)
{
    (void)ctx;
    return made(PyLong_FromLongLong(v), out);
}

static int mk_bigint(void *ctx, const uint8_t *p, size_t n, void **out)
{
    (void)ctx;
#if PY_VERSION_HEX >= 0x030D0000
    return made(PyLong_FromNativeBytes(p, n, Py_ASNATIVEBYTES_LITTLE_ENDIAN),
                out);
#else
    return made(_PyLong_FromByteArray(p, n, 1, 1), out);
#endif
}

static int mk_float(void *ctx, double v, void **out)
{
    (void)ctx;
    return made(PyFloat_FromDouble(v), out);
}

static int mk_complex(void *ctx, double re, double im, void **out)
{
    (void)ctx;
    return made(PyComplex_FromDoubles(re, im), out);
}

static int mk_str(void *ctx, const char *p, size_t n, size_t ncp,
                  lch_str_kind kind, void **out)
{
    (void)ctx;
    if (kind == LCH_STR_ASCII) {
        /* Validated ASCII: one allocation and one copy, no decoding. */
        PyObject *s = PyUnicode_New((Py_ssize_t)ncp, 127);
        if (s)
            memcpy(PyUnicode_DATA(s), p, n);
        return made(s, out);
    }
    return made(PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "strict"), out);
}

static int mk_bytes(void *ctx, const void *p, size_t n, lch_buffer *shared,
                    void **out)
{
    (void)ctx;
    (void)shared;
    return made(PyBytes_FromStringAndSize(p, (Py_ssize_t)n), out);
}

static int mk_object(void *ctx, lch_object *obj, void **out)
{
    lchpy_state *st = ((dec_ctx *)ctx)->st;
    int rc = lch_object_ref(obj);
    if (rc != LCH_OK)
        return made(lchpy_raise(st, rc, "taking a reference"), out);
    lch_value v = lch_value_object(obj);
    if (lch_object_type(obj) == LCH_TYPE_ENCODED)
        v.tag = LCHPY_TAG_SHAREDTUPLE;
    return made(lchpy_from_value(st, &v), out);
}

static int mk_opaque(void *ctx, uint32_t tag, const void *p, size_t n,
                     void **out)
{
    lchpy_state *st = ((dec_ctx *)ctx)->st;
    if (tag == LCHPY_OPAQUE_BYTEARRAY)
        return made(PyByteArray_FromStringAndSize(p, (Py_ssize_t)n), out);
    if (tag != LCHPY_OPAQUE_PICKLE) {
        PyErr_Format(PyExc_ValueError,
                     "libchan: unknown opaque payload tag 0x%08x", tag);
        return made(NULL, out);
    }
    if (!((dec_ctx *)ctx)->allow_pickle) {
        PyErr_SetString(st->NotShareableError,
                        "the data holds a pickled value, and pickle is off");
        return made(NULL, out);
    }
    if (ensure_pickle(st) < 0)
        return made(NULL, out);
    /* pickle reads straight from the encoding: no copy. */
    PyObject *mv = PyMemoryView_FromMemory((char *)p, (Py_ssize_t)n,
                                           PyBUF_READ);
    if (!mv)
        return made(NULL, out);
    PyObject *o = PyObject_CallOneArg(st->pickle_loads, mv);
    Py_DECREF(mv);
    return made(o, out);
}

static int mk_begin(void *ctx, lch_vtype t, size_t len, void **out)
{
    (void)ctx;
    Py_ssize_t n = (Py_ssize_t)len;
    switch (t) {
    case LCH_V_TUPLE:
        return made(PyTuple_New(n), out);
    case LCH_V_LIST:
        return made(PyList_New(n), out);
    case LCH_V_DICT:
        return made(PyDict_New(), out);
    case LCH_V_SET:
        return made(PySet_New(NULL), out);
    case LCH_V_FROZENSET:
        return made(PyFrozenSet_New(NULL), out);
    default:
        PyErr_SetString(PyExc_ValueError, "libchan: unknown container type");
        return made(NULL, out);
    }
}

static int mk_item(void *ctx, void *container, size_t index, void *item)
{
    (void)ctx;
    PyObject *c = container, *o = item;
    if (PyTuple_CheckExact(c)) {
        PyTuple_SET_ITEM(c, (Py_ssize_t)index, o);
        return LCH_OK;
    }
    if (PyList_CheckExact(c)) {
        PyList_SET_ITEM(c, (Py_ssize_t)index, o);
        return LCH_OK;
    }
    /* A new set or frozenset (PySet_Add accepts a frozenset nobody else
     * has seen yet). */
    int r = PySet_Add(c, o);
    Py_DECREF(o);
    return r < 0 ? LCHPY_EPY : LCH_OK;
}

static int mk_pair(void *ctx, void *dict, size_t index, void *key,
                   void *value)
{
    (void)ctx;
    (void)index;
    int r = PyDict_SetItem(dict, key, value);
    Py_DECREF((PyObject *)key);
    Py_DECREF((PyObject *)value);
    return r < 0 ? LCHPY_EPY : LCH_OK;
}

static void mk_discard(void *ctx, void *handle)
{
    (void)ctx;
    Py_XDECREF((PyObject *)handle);
}

static const lch_decoder py_decoder = {
    mk_none,   mk_bool,  mk_int,  mk_bigint, mk_float, mk_complex,
    mk_str,    mk_bytes, mk_object, mk_opaque, mk_begin, mk_item,
    mk_pair,   NULL,     mk_discard,
};

PyObject *lchpy_decode_elem(lchpy_state *st, lch_encoded *enc,
                            const lch_view *v, size_t i, int flags)
{
    if ((flags & LCHPY_DEC_LAZY) && lch_view_type(v, i) == LCH_V_TUPLE) {
        if (lch_encoded_ref(enc) != LCH_OK)
            return lchpy_raise(st, LCH_EOVERFLOW, "taking a reference");
        return lchpy_tuple_wrap(st, enc, v, i);
    }
    dec_ctx ctx = {st, !(flags & LCHPY_DEC_NO_PICKLE)};
    void *out = NULL;
    int rc = lch_view_decode(v, i, &py_decoder, &ctx, &out);
    if (rc == LCHPY_EPY)
        return NULL;
    if (rc != LCH_OK)
        return lchpy_raise(st, rc, "decoding");
    return out;
}

/* ---- channel values --------------------------------------------------------- */

int lchpy_to_value(lchpy_state *st, PyObject *obj, int allow_pickle,
                   lch_value *out)
{
    PyTypeObject *tp = Py_TYPE(obj);
    if (obj == Py_None) {
        *out = lch_value_none();
        return 0;
    }
    if (obj == Py_True || obj == Py_False) {
        *out = lch_value_bool(obj == Py_True);
        return 0;
    }
    if (tp == &PyLong_Type) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (!overflow) {
            if (v == -1 && PyErr_Occurred())
                return -1;
            *out = lch_value_int((int64_t)v);
            return 0;
        }
    } else if (tp == &PyFloat_Type) {
        *out = lch_value_float(PyFloat_AS_DOUBLE(obj));
        return 0;
    } else if (tp == st->Channel_Type || tp == st->SharedBuffer_Type ||
               (tp == st->SharedTuple_Type &&
                !((lchpy_SharedTuple *)obj)->nested)) {
        lch_object *o =
            tp == st->Channel_Type
                ? lch_channel_object(((lchpy_Channel *)obj)->ch)
            : tp == st->SharedBuffer_Type
                ? lch_buffer_object(((lchpy_SharedBuffer *)obj)->buf)
                : lch_encoded_object(((lchpy_SharedTuple *)obj)->enc);
        int rc = lch_object_ref(o);
        if (rc != LCH_OK) {
            lchpy_raise(st, rc, "taking a reference");
            return -1;
        }
        *out = lch_value_object(o);
        if (tp == st->SharedTuple_Type)
            out->tag = LCHPY_TAG_SHAREDTUPLE;
        return 0;
    }
    lch_encoded *enc = NULL;
    if (tp == st->SharedTuple_Type) {
        /* A view nested in another tuple: a SharedTuple of its own. */
        if (encode_view_copy(st, (lchpy_SharedTuple *)obj, allow_pickle,
                             &enc))
            return -1;
        *out = lch_value_object(lch_encoded_object(enc));
        out->tag = LCHPY_TAG_SHAREDTUPLE;
        return 0;
    }
    if (lchpy_encode(st, obj, allow_pickle, 0, &enc))
        return -1;
    *out = lch_value_object(lch_encoded_object(enc));
    return 0;
}

PyObject *lchpy_from_value(lchpy_state *st, lch_value *v)
{
    switch (v->kind) {
    case LCH_NONE:
        return Py_NewRef(Py_None);
    case LCH_BOOL:
        return PyBool_FromLong(v->u.b);
    case LCH_INT:
        return PyLong_FromLongLong(v->u.i);
    case LCH_FLOAT:
        return PyFloat_FromDouble(v->u.f);
    case LCH_OBJECT:
        break;
    default:
        PyErr_Format(PyExc_ValueError, "libchan: unknown value kind %u",
                     v->kind);
        return NULL;
    }
    lch_object *obj = v->u.obj;
    uint32_t tag = v->tag;
    *v = lch_value_none(); /* the reference is ours now */
    switch (lch_object_type(obj)) {
    case LCH_TYPE_CHANNEL:
        return lchpy_channel_wrap(st, lch_channel_from_object(obj));
    case LCH_TYPE_BUFFER:
        return lchpy_buffer_wrap(st, lch_buffer_from_object(obj));
    case LCH_TYPE_ENCODED: {
        lch_encoded *enc = lch_encoded_from_object(obj);
        if (tag == LCHPY_TAG_SHAREDTUPLE &&
            lch_encoded_type(enc) == LCH_V_TUPLE)
            return lchpy_tuple_wrap(st, enc, NULL, 0);
        lch_view root;
        lch_encoded_view(enc, &root);
        PyObject *o = lchpy_decode_elem(st, enc, &root, 0, 0);
        lch_encoded_unref(enc);
        return o;
    }
    default: {
        uint32_t type = lch_object_type(obj);
        lch_object_unref(obj);
        PyErr_Format(PyExc_TypeError,
                     "libchan: received an object of type %u, which has "
                     "no Python form",
                     type);
        return NULL;
    }
    }
}
