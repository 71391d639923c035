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
 *   channel.c  the Channel type (blocking, timeouts, signals, one wrapper
 *              per channel per interpreter, pickling by id)
 *   shared.c   the SharedBuffer and SharedTuple types
 *   waiter.c   the _Waiter type (an fd an event loop watches; what
 *              libchan.aio builds on) and the blocking select()
 *   xid.c      registration with CPython's cross-interpreter data registry
 *              (the one file that needs CPython's internal headers) */
#ifndef LCHPY_H
#define LCHPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "libchan/codec.h"
#include "libchan/libchan.h"

/* ---- per-interpreter module state ---------------------------------------- */

/* One slot of the table of Channel wrappers (channel.c). */
typedef struct lchpy_wrapper_slot {
    uint64_t id;   /* channel id; 0 marks an empty slot (ids are never 0) */
    PyObject *obj; /* borrowed: the wrapper takes itself out in dealloc */
} lchpy_wrapper_slot;

typedef struct lchpy_state {
    PyTypeObject *Channel_Type;
    PyTypeObject *SharedBuffer_Type;
    PyTypeObject *SharedTuple_Type;
    PyTypeObject *Waiter_Type;
    PyObject *Empty, *Full, *ShutDown, *NotShareableError;
    PyObject *ChannelNotFoundError;
    PyObject *pickle_dumps, *pickle_loads; /* imported on first use */
    PyObject *kw[3]; /* interned "obj", "block", "timeout": fast kwargs */
    /* libchan.aio's get_async, put_async and anext, which the Channel
     * methods of the same names call: imported on first use. */
    PyObject *aio[3];
    /* This interpreter's live Channel wrappers by channel id, so that a
     * channel that comes back (get, lookup, unpickling, another
     * interpreter's prepare_main) is the object it already has. Holds no
     * reference: freed by the module's m_free, when no wrapper is left. */
    lchpy_wrapper_slot *wrappers;
    size_t wrappers_cap; /* 0 or a power of two */
    size_t wrappers_len;
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

/* Channel user flags (lch_channel_opts.user_flags). The maxsize a channel
 * was given, as given, is its lch_channel_opts.user_value. */
#define LCHPY_CH_NO_PICKLE 1u

/* lch_value.tag of an encoded value that is received as a SharedTuple
 * (an encoded value with any other tag is decoded into plain objects). */
#define LCHPY_TAG_SHAREDTUPLE 0x53547570u /* "StUp" */
/* Opaque payload tag of pickled bytes inside an encoding. */
#define LCHPY_OPAQUE_PICKLE 0x504b4c35u /* "PKL5" */
/* Opaque payload tag of a bytearray's contents (bytes and bytearray share
 * the codec's one bytes type otherwise). */
#define LCHPY_OPAQUE_BYTEARRAY 0x42417272u /* "BArr" */

/* Wrappers. Each takes over the caller's reference (also on failure, when
 * it releases it). NULL with an exception on failure. A channel gets this
 * interpreter's existing wrapper if it has one (a new reference to it),
 * else a new one. */
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

/* dumps(): obj encoded self-contained, straight into a new bytes object
 * (one copy of the payload). NULL with an exception on failure. */
PyObject *lchpy_dumps(lchpy_state *st, PyObject *obj, int allow_pickle);

/* Decode element i of view v into a new Python object. Flags: */
#define LCHPY_DEC_LAZY 1      /* a tuple element becomes a SharedTuple view */
#define LCHPY_DEC_NO_PICKLE 2 /* pickled payloads: NotShareableError */
PyObject *lchpy_decode_elem(lchpy_state *st, lch_encoded *enc,
                            const lch_view *v, size_t i, int flags);

/* Raise the Python exception for a libchan error code. Always NULL. */
PyObject *lchpy_raise(lchpy_state *st, int rc, const char *what);
/* The lch_channel of a Channel argument o (borrowed: o keeps it alive), or
 * NULL with TypeError naming fn (channel.c). */
lch_channel *lchpy_channel_arg(lchpy_state *st, PyObject *o, const char *fn);

/* CLOCK_MONOTONIC in ns; and block/timeout as queue.Queue takes them ->
 * libchan timeout in ns: LCH_NOWAIT (block false), LCH_FOREVER (timeout
 * None) or relative; -2 with an exception for a bad timeout (channel.c). */
int64_t lchpy_now_ns(void);
int64_t lchpy_parse_timeout(int block, PyObject *timeout);

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
extern PyType_Spec lchpy_waiter_spec;

/* libchan._libchan.select(*channels, timeout=None) (waiter.c). */
PyObject *lchpy_select(PyObject *mod, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames);
extern const char lchpy_select_doc[];

/* libchan._libchan._unpickle_channel(id, pid, nonce), what a pickled
 * Channel calls (channel.c); and freeing the table of wrappers. */
PyObject *lchpy_channel_unpickle(PyObject *mod, PyObject *args);
extern const char lchpy_channel_unpickle_doc[];
void lchpy_wrappers_free(lchpy_state *st);

#endif /* LCHPY_H */
