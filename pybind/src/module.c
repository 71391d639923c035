/* module.c: the libchan._libchan extension module: multi-phase init with a
 * per-interpreter state (PEP 489, PEP 684), the error mapping, and the
 * module-level functions (lookup, dumps, loads, debug counters). */
#include "lchpy.h"

#include <errno.h>
#include <string.h>

/* ---- errors ------------------------------------------------------------------ */

PyObject *lchpy_raise(lchpy_state *st, int rc, const char *what)
{
    switch (rc) {
    case LCH_ENOMEM:
        return PyErr_NoMemory();
    case LCH_EMFILE:
        errno = EMFILE; /* OSError(EMFILE, "Too many open files") */
        return PyErr_SetFromErrno(PyExc_OSError);
    case LCH_ECLOSED:
        PyErr_Format(st->ShutDown, "%s: the channel is shut down", what);
        return NULL;
    case LCH_ENOENT:
        PyErr_Format(PyExc_KeyError, "%s: not found", what);
        return NULL;
    case LCH_EOVERFLOW:
        PyErr_Format(PyExc_OverflowError, "%s: reference count at its limit",
                     what);
        return NULL;
    case LCH_EINVAL:
    case LCH_E2BIG:
    case LCH_EEXIST:
    case LCH_ECORRUPT:
        PyErr_Format(PyExc_ValueError, "%s: %s", what, lch_strerror(rc));
        return NULL;
    default:
        PyErr_Format(PyExc_RuntimeError, "%s: libchan error %s (%s)", what,
                     lch_err_name(rc), lch_strerror(rc));
        return NULL;
    }
}

/* ---- module functions ---------------------------------------------------------- */

PyDoc_STRVAR(lookup_doc,
"lookup(name_or_id)\n--\n\n"
"The live channel with this name (str) or id (int), created by any\n"
"interpreter of the process: this interpreter's Channel object for it, if\n"
"it has one. ChannelNotFoundError (a KeyError) if there is none.");

static PyObject *mod_lookup(PyObject *mod, PyObject *key)
{
    lchpy_state *st = PyModule_GetState(mod);
    lch_channel *ch = NULL;
    int rc;
    if (PyUnicode_Check(key)) {
        Py_ssize_t n;
        const char *name = PyUnicode_AsUTF8AndSize(key, &n);
        if (!name)
            return NULL;
        rc = (size_t)n == strlen(name) ? lch_channel_lookup_name(name, &ch)
                                       : LCH_ENOENT;
    } else if (PyLong_Check(key)) {
        unsigned long long id = PyLong_AsUnsignedLongLong(key);
        if (id == (unsigned long long)-1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                return NULL;
            PyErr_Clear(); /* negative or huge: no such id */
            rc = LCH_ENOENT;
        } else {
            rc = lch_channel_lookup_id(id, &ch);
        }
    } else {
        PyErr_Format(PyExc_TypeError,
                     "lookup() takes a channel name (str) or id (int), not "
                     "%.100s",
                     Py_TYPE(key)->tp_name);
        return NULL;
    }
    if (rc == LCH_ENOENT) {
        PyErr_SetObject(st->ChannelNotFoundError, key);
        return NULL;
    }
    if (rc != LCH_OK)
        return lchpy_raise(st, rc, "lookup");
    return lchpy_channel_wrap(st, ch);
}

PyDoc_STRVAR(dumps_doc,
"dumps(obj, *, pickle=True)\n--\n\n"
"Encode obj in libchan's codec format (codecs/FORMAT.md) as bytes.\n"
"SharedBuffer and SharedTuple are encoded as their contents (bytes and\n"
"tuple); a Channel cannot be (NotShareableError). Objects the codec does\n"
"not know are pickled inside, unless pickle=False (NotShareableError);\n"
"a Channel inside one of those is pickled too, by id (see Channel).");

static PyObject *mod_dumps(PyObject *mod, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"obj", "pickle", NULL};
    PyObject *obj;
    int allow_pickle = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$p:dumps", kwlist, &obj,
                                     &allow_pickle))
        return NULL;
    lchpy_state *st = PyModule_GetState(mod);
    lch_encoded *enc = NULL;
    if (Py_TYPE(obj) == st->SharedTuple_Type &&
        !((lchpy_SharedTuple *)obj)->nested &&
        lch_encoded_nrefs(((lchpy_SharedTuple *)obj)->enc) == 0) {
        /* Already encoded and self-contained: its bytes are the answer. */
        enc = ((lchpy_SharedTuple *)obj)->enc;
        return PyBytes_FromStringAndSize(lch_encoded_data(enc),
                                         (Py_ssize_t)lch_encoded_len(enc));
    }
    return lchpy_dumps(st, obj, allow_pickle);
}

PyDoc_STRVAR(loads_doc,
"loads(data, *, pickle=True)\n--\n\n"
"Decode bytes made by dumps() (any buffer-protocol object). The data is\n"
"validated in full first, as untrusted input: corrupt or truncated data\n"
"raises ValueError naming the byte offset of the first problem, and data\n"
"that is well formed but cannot be rebuilt (say, a list as a dict key)\n"
"raises ValueError too. Values that dumps() pickled are unpickled, which\n"
"runs pickle on the data: for data you do not trust, pass pickle=False,\n"
"and such values raise NotShareableError instead.");

static PyObject *mod_loads(PyObject *mod, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"data", "pickle", NULL};
    PyObject *data;
    int allow_pickle = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$p:loads", kwlist, &data,
                                     &allow_pickle))
        return NULL;
    lchpy_state *st = PyModule_GetState(mod);
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    lch_encoded *enc = NULL;
    lch_codec_error err = {0, ""};
    int rc;
    if (PyBytes_CheckExact(data)) {
        /* Immutable: validate and decode in place, no copy. Nothing decoded
         * keeps a reference to the flat bytes (loads makes no SharedTuple
         * views), so they are released before `data` could be. */
        lch_buffer *flat = NULL;
        rc = lch_buffer_adopt(&flat, view.buf, (size_t)view.len, NULL, NULL);
        if (rc == LCH_OK) {
            rc = lch_encoded_from_buffer(&enc, flat, NULL, 0, &err);
            lch_buffer_unref(flat);
        }
    } else {
        /* Another thread, or code run by unpickling, could change a
         * mutable buffer after validation: work on a private copy. */
        rc = lch_encoded_from_bytes(&enc, view.buf, (size_t)view.len, &err);
    }
    if (rc != LCH_OK) {
        PyBuffer_Release(&view);
        if (rc == LCH_ECORRUPT)
            return PyErr_Format(PyExc_ValueError,
                                "corrupt libchan data at byte %zu: %s",
                                err.offset, err.msg);
        return lchpy_raise(st, rc, "loads");
    }
    lch_view root;
    lch_encoded_view(enc, &root);
    PyObject *out = lchpy_decode_elem(st, enc, &root, 0,
                                      allow_pickle ? 0 : LCHPY_DEC_NO_PICKLE);
    lch_encoded_unref(enc);
    PyBuffer_Release(&view);
    if (!out && !PyErr_ExceptionMatches(PyExc_MemoryError) &&
        !PyErr_ExceptionMatches(st->NotShareableError)) {
        /* Well-formed bytes whose values Python refuses: still bad data. */
        PyObject *cause = PyErr_GetRaisedException();
        PyErr_Format(PyExc_ValueError,
                     "libchan data is well formed but cannot be rebuilt: %S",
                     cause);
        PyObject *exc = PyErr_GetRaisedException();
        PyException_SetCause(exc, cause);
        PyErr_SetRaisedException(exc);
    }
    return out;
}

PyDoc_STRVAR(debug_counters_doc,
"debug_counters()\n--\n\n"
"Process-wide counters, for tests: live_objects (libchan objects alive\n"
"among those created while debug_track_objects was on), futex_waits and\n"
"futex_wakes (system calls made to sleep and to wake), fd_signals\n"
"(eventfd writes made to wake event loops).");

static PyObject *mod_debug_counters(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    lch_debug_counters c;
    lch_debug_counters_get(&c);
    return Py_BuildValue("{s:L,s:K,s:K,s:K}", "live_objects",
                         (long long)c.live_objects, "futex_waits",
                         (unsigned long long)c.futex_waits, "futex_wakes",
                         (unsigned long long)c.futex_wakes, "fd_signals",
                         (unsigned long long)c.fd_signals);
}

PyDoc_STRVAR(debug_track_doc,
"debug_track_objects(on)\n--\n\n"
"Count the libchan objects created from now on in\n"
"debug_counters()['live_objects'] (each is uncounted when destroyed).");

static PyObject *mod_debug_track_objects(PyObject *mod, PyObject *on)
{
    (void)mod;
    int v = PyObject_IsTrue(on);
    if (v < 0)
        return NULL;
    lch_debug_track_objects(v);
    Py_RETURN_NONE;
}

static PyMethodDef mod_methods[] = {
    {"lookup", mod_lookup, METH_O, lookup_doc},
    {"_unpickle_channel", lchpy_channel_unpickle, METH_VARARGS,
     lchpy_channel_unpickle_doc},
    {"dumps", (PyCFunction)(void (*)(void))mod_dumps,
     METH_VARARGS | METH_KEYWORDS, dumps_doc},
    {"loads", (PyCFunction)(void (*)(void))mod_loads,
     METH_VARARGS | METH_KEYWORDS, loads_doc},
    {"debug_counters", mod_debug_counters, METH_NOARGS, debug_counters_doc},
    {"debug_track_objects", mod_debug_track_objects, METH_O,
     debug_track_doc},
    {"select", (PyCFunction)(void (*)(void))lchpy_select,
     METH_FASTCALL | METH_KEYWORDS, lchpy_select_doc},
    {NULL, NULL, 0, NULL},
};

/* ---- state and init -------------------------------------------------------------- */

static int mod_traverse(PyObject *mod, visitproc visit, void *arg)
{
    lchpy_state *st = PyModule_GetState(mod);
    Py_VISIT(st->Channel_Type);
    Py_VISIT(st->SharedBuffer_Type);
    Py_VISIT(st->SharedTuple_Type);
    Py_VISIT(st->Waiter_Type);
    Py_VISIT(st->Empty);
    Py_VISIT(st->Full);
    Py_VISIT(st->ShutDown);
    Py_VISIT(st->NotShareableError);
    Py_VISIT(st->ChannelNotFoundError);
    Py_VISIT(st->pickle_dumps);
    Py_VISIT(st->pickle_loads);
    for (int i = 0; i < 3; i++)
        Py_VISIT(st->kw[i]);
    for (int i = 0; i < 3; i++)
        Py_VISIT(st->aio[i]);
    return 0;
}

static int mod_clear(PyObject *mod)
{
    lchpy_state *st = PyModule_GetState(mod);
    Py_CLEAR(st->Channel_Type);
    Py_CLEAR(st->SharedBuffer_Type);
    Py_CLEAR(st->SharedTuple_Type);
    Py_CLEAR(st->Waiter_Type);
    Py_CLEAR(st->Empty);
    Py_CLEAR(st->Full);
    Py_CLEAR(st->ShutDown);
    Py_CLEAR(st->NotShareableError);
    Py_CLEAR(st->ChannelNotFoundError);
    Py_CLEAR(st->pickle_dumps);
    Py_CLEAR(st->pickle_loads);
    for (int i = 0; i < 3; i++)
        Py_CLEAR(st->kw[i]);
    for (int i = 0; i < 3; i++)
        Py_CLEAR(st->aio[i]);
    return 0;
}

static void mod_free(void *mod)
{
    mod_clear((PyObject *)mod);
    /* Every Channel holds its type, which holds this module: none is left
     * to remove itself from the table. */
    lchpy_wrappers_free(PyModule_GetState((PyObject *)mod));
}

static int add_type(PyObject *mod, PyType_Spec *spec, PyTypeObject **slot)
{
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(mod, spec, NULL);
    if (!*slot)
        return -1;
    return PyModule_AddType(mod, *slot);
}

/* An exception class libchan.<name> deriving from `base`, with a doc. */
static int add_exception(PyObject *mod, const char *name, const char *doc,
                         PyObject *base, PyObject **slot)
{
    char qual[64];
    snprintf(qual, sizeof qual, "libchan.%s", name);
    *slot = PyErr_NewExceptionWithDoc(qual, doc, base, NULL);
    if (!*slot)
        return -1;
    return PyModule_AddObjectRef(mod, name, *slot);
}

/* The stdlib's own Empty and Full of cross-interpreter queues, for
 * libchan's to derive from, so that `except interpreters.QueueEmpty`
 * catches them: 3.14's concurrent.interpreters.QueueEmpty and QueueFull,
 * which derive from both queue.Empty/Full and QueueError (RuntimeError).
 * New references in *empty and *full; both NULL before 3.14 or where the
 * module is missing (a build without subinterpreters). 0, or -1 with an
 * exception. */
static int stdlib_queue_errors(PyObject **empty, PyObject **full)
{
    *empty = *full = NULL;
#if PY_VERSION_HEX >= 0x030E0000
    PyObject *interps = PyImport_ImportModule("concurrent.interpreters");
    if (!interps) {
        if (!PyErr_ExceptionMatches(PyExc_ImportError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    *empty = PyObject_GetAttrString(interps, "QueueEmpty");
    *full = *empty ? PyObject_GetAttrString(interps, "QueueFull") : NULL;
    Py_DECREF(interps);
    if (!*full) {
        Py_CLEAR(*empty);
        return -1;
    }
#endif
    return 0;
}

static int mod_exec(PyObject *mod)
{
    lchpy_state *st = PyModule_GetState(mod);
    static const char *const kw[3] = {"obj", "block", "timeout"};
    for (int i = 0; i < 3; i++)
        if (!(st->kw[i] = PyUnicode_InternFromString(kw[i])))
            return -1;
    if (add_type(mod, &lchpy_channel_spec, &st->Channel_Type) < 0 ||
        add_type(mod, &lchpy_buffer_spec, &st->SharedBuffer_Type) < 0 ||
        add_type(mod, &lchpy_tuple_spec, &st->SharedTuple_Type) < 0 ||
        add_type(mod, &lchpy_waiter_spec, &st->Waiter_Type) < 0)
        return -1;

    PyObject *queue = PyImport_ImportModule("queue");
    if (!queue)
        return -1;
    PyObject *empty = NULL, *full = NULL;
    if (stdlib_queue_errors(&empty, &full) < 0) {
        Py_DECREF(queue);
        return -1;
    }
    if (!empty) {
        empty = PyObject_GetAttrString(queue, "Empty");
        full = PyObject_GetAttrString(queue, "Full");
    }
    /* queue.ShutDown exists from 3.13. */
    PyObject *shutdown = PyObject_HasAttrString(queue, "ShutDown")
                             ? PyObject_GetAttrString(queue, "ShutDown")
                             : Py_NewRef(PyExc_Exception);
    Py_DECREF(queue);
    int r = -1;
    if (empty && full && shutdown &&
        add_exception(mod, "Empty",
                      "Raised by get() when nothing arrives in time.", empty,
                      &st->Empty) == 0 &&
        add_exception(mod, "Full",
                      "Raised by put() when a bounded channel stays full.",
                      full, &st->Full) == 0 &&
        add_exception(mod, "ShutDown",
                      "Raised by put() after shutdown(), and by get() once "
                      "the channel is shut down and drained.",
                      shutdown, &st->ShutDown) == 0 &&
        add_exception(mod, "NotShareableError",
                      "The object cannot travel: pickling is off, or "
                      "pickle itself failed.",
                      PyExc_ValueError, &st->NotShareableError) == 0 &&
        add_exception(mod, "ChannelNotFoundError",
                      "No live channel has this name or id (lookup()), or "
                      "a pickled Channel cannot be unpickled here: it is "
                      "gone, or it was pickled in another process.",
                      PyExc_KeyError, &st->ChannelNotFoundError) == 0)
        r = 0;
    Py_XDECREF(empty);
    Py_XDECREF(full);
    Py_XDECREF(shutdown);
    if (r < 0)
        return -1;
    return lchpy_xid_register(st);
}

static PyModuleDef_Slot mod_slots[] = {
    {Py_mod_exec, mod_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#ifdef Py_mod_gil
    /* Not yet audited for free-threaded builds (the lazily cached pickle
     * functions, the cached hashes): keep the GIL there. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(mod_doc,
"libchan's C extension: channels, shared buffers and shared tuples that\n"
"every interpreter of the process can use (see the libchan package).");

PyModuleDef lchpy_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "libchan._libchan",
    .m_doc = mod_doc,
    .m_size = sizeof(lchpy_state),
    .m_methods = mod_methods,
    .m_slots = mod_slots,
    .m_traverse = mod_traverse,
    .m_clear = mod_clear,
    .m_free = mod_free,
};

lchpy_state *lchpy_state_import(PyObject **mod)
{
    *mod = PyImport_ImportModule("libchan._libchan");
    if (!*mod)
        return NULL;
    lchpy_state *st = PyModule_GetState(*mod);
    if (!st) {
        Py_CLEAR(*mod);
        return NULL;
    }
    return st;
}

PyMODINIT_FUNC PyInit__libchan(void);
PyMODINIT_FUNC PyInit__libchan(void)
{
    return PyModuleDef_Init(&lchpy_module_def);
}
