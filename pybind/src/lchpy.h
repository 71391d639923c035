/* lchpy.h: what the files of the CPython binding share.
 *
 * The binding is thin: libchan's channels, buffers and codec do the work;
 * this layer converts between Python objects and libchan values, maps error
 * codes to exceptions and waits with the GIL released.
 *
 * Isolation (PEP 684): every interpreter that imports libchan runs the
 * module's exec slot and gets its own module object, heap types, exceptions
 * and cached pickle functions (lchpy_state). Nothing process-global holds a
 * PyObject: what crosses interpreters are libchan objects (lch_object),
 * whose atomic refcounts make them valid in every interpreter until the
 * last holder, in whatever interpreter, lets go.
 *
 * Files:
 *   module.c   module init and state, errors, dumps/loads/lookup, debug
 *   convert.c  Python object <-> lch_value and the codec (encode, decode)
 *   channel.c  the Channel type (blocking, timeouts, signals)
 *   shared.c   the SharedBuffer and SharedTuple types
 *   xid.c      registration with CPython's cross-interpreter data registry
 *              (the one file that needs CPython's internal headers) */
#ifndef LCHPY_H
#define LCHPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "libchan/codec.h"
#include "libchan/libchan.h"

/* ---- per-interpreter module state ---------------------------------------- */

typedef struct lchpy_state {
    PyTypeObject *Channel_Type;
    PyTypeObject *SharedBuffer_Type;
    PyTypeObject *SharedTuple_Type;
    PyObject *Empty, *Full, *ShutDown, *NotShareableError;
    PyObject *pickle_dumps, *pickle_loads; /* imported on first use */
    PyObject *kw[3]; /* interned "obj", "block", "timeout": fast kwargs */
} lchpy_state;

extern PyModuleDef lchpy_module_def;

/* The state of the module that defined `tp` (or a base of it). */
static inline lchpy_state *lchpy_state_of_type(PyTypeObject *tp)
{
    PyObject *mod = PyType_GetModuleByDef(tp, &lchpy_module_def);
    return mod ? (lchpy_state *)PyModule_GetState(mod) : NULL;
}

/* The state of this interpreter's libchan module, importing it if needed
 * (the receiving side of CPython's cross-interpreter machinery). New
 * reference to the module in *mod. NULL with an exception on failure. */
lchpy_state *lchpy_state_import(PyObject **mod);

/* ---- objects --------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    lch_channel *ch; /* one reference */
} lchpy_Channel;

typedef struct {
    PyObject_HEAD
    lch_buffer *buf; /* one reference */
    Py_hash_t hash;  /* -1 until computed */
} lchpy_SharedBuffer;

typedef struct {
    PyObject_HEAD
    lch_encoded *enc;  /* one reference: the root tuple's encoding */
    lch_view view;     /* this tuple's elements, inside enc */
    lchpy_state *st;   /* of the type's module, alive as long as the type */
    Py_hash_t hash;    /* -1 until computed */
    int nested;        /* 1: a tuple inside the root (not the root itself) */
} lchpy_SharedTuple;

/* Channel user flags (lch_channel_opts.user_flags). */
#define LCHPY_CH_NO_PICKLE 1u

/* lch_value.tag of an encoded value that is received as a SharedTuple
 * (an encoded value with any other tag is decoded into plain objects). */
#define LCHPY_TAG_SHAREDTUPLE 0x53547570u /* "StUp" */
/* Opaque payload tag of pickled bytes inside an encoding. */
#define LCHPY_OPAQUE_PICKLE 0x504b4c35u /* "PKL5" */
/* Opaque payload tag of a bytearray's contents (bytes and bytearray share
 * the codec's one bytes type otherwise). */
#define LCHPY_OPAQUE_BYTEARRAY 0x42417272u /* "BArr" */

/* New wrappers. Each takes over the caller's reference (also on failure,
 * when it releases it). NULL with an exception on failure. */
PyObject *lchpy_channel_wrap(lchpy_state *st, lch_channel *ch);
PyObject *lchpy_buffer_wrap(lchpy_state *st, lch_buffer *buf);
/* A SharedTuple over element `i` of `parent` (a tuple element) or, with
 * parent NULL, over the root of `enc`, which must be a tuple. */
PyObject *lchpy_tuple_wrap(lchpy_state *st, lch_encoded *enc,
                           const lch_view *parent, size_t i);

/* ---- conversion (convert.c) ------------------------------------------------ */

/* Python object -> lch_value for a channel. Scalars go in the value itself;
 * SharedBuffer, SharedTuple and Channel as a new reference; everything
 * else is encoded with the codec (pickling what the codec cannot carry
 * when allow_pickle). 0 on success (the caller owns *out), -1 with an
 * exception. */
int lchpy_to_value(lchpy_state *st, PyObject *obj, int allow_pickle,
                   lch_value *out);

/* lch_value -> new Python object. Consumes the value's reference in every
 * case (on failure too). NULL with an exception on failure. */
PyObject *lchpy_from_value(lchpy_state *st, lch_value *v);

/* Encode obj as a codec value. self_contained: large bytes are stored
 * inline and libchan objects are refused or replaced by plain copies (for
 * dumps). 0 with *out set, or -1 with an exception. */
int lchpy_encode(lchpy_state *st, PyObject *obj, int allow_pickle,
                 int self_contained, lch_encoded **out);

/* Decode element i of view v into a new Python object. Flags: */
#define LCHPY_DEC_LAZY 1      /* a tuple element becomes a SharedTuple view */
#define LCHPY_DEC_NO_PICKLE 2 /* pickled payloads: NotShareableError */
PyObject *lchpy_decode_elem(lchpy_state *st, lch_encoded *enc,
                            const lch_view *v, size_t i, int flags);

/* Raise the Python exception for a libchan error code. Always NULL. */
PyObject *lchpy_raise(lchpy_state *st, int rc, const char *what);

/* Snapshot of a SharedTuple as a plain tuple (new reference). */
PyObject *lchpy_tuple_materialize(lchpy_SharedTuple *t);

/* ---- cross-interpreter data (xid.c) ----------------------------------------- */

/* Register the three types with CPython's cross-interpreter data registry
 * of the current interpreter. 0, or -1 with an exception. */
int lchpy_xid_register(lchpy_state *st);

/* ---- types (channel.c, shared.c) -------------------------------------------- */

extern PyType_Spec lchpy_channel_spec;
extern PyType_Spec lchpy_buffer_spec;
extern PyType_Spec lchpy_tuple_spec;

#endif /* LCHPY_H */
