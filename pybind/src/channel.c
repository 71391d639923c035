/* channel.c: libchan.Channel, the queue.Queue / PEP 734 Queue interface
 * over an lch_channel.
 *
 * A put or get first tries once with the GIL held (the common case: no
 * waiting, no GIL traffic). Only if it would block does it release the GIL
 * and wait inside libchan, which spins briefly and then sleeps on a futex
 * until the other side makes progress, the deadline passes, or a signal
 * arrives (LCH_EINTR). On a signal it takes the GIL back and runs Python's
 * signal handlers; if one raises (KeyboardInterrupt), the call raises it
 * with nothing taken from or added to the channel. */
#include "lchpy.h"

#include <math.h>
#include <string.h>
#include <time.h>

#define CH(o) (((lchpy_Channel *)(o))->ch)

static lchpy_state *state_of(PyObject *self)
{
    /* Channel cannot be subclassed, so its type is the module's own. */
    return PyType_GetModuleState(Py_TYPE(self));
}

PyObject *lchpy_channel_wrap(lchpy_state *st, lch_channel *ch)
{
    lchpy_Channel *self = PyObject_New(lchpy_Channel, st->Channel_Type);
    if (!self) {
        lch_channel_unref(ch);
        return NULL;
    }
    self->ch = ch;
    return (PyObject *)self;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* block/timeout as queue.Queue takes them -> libchan timeout in ns:
 * LCH_NOWAIT (block false), LCH_FOREVER (timeout None) or a relative
 * deadline. -2 with an exception for a bad timeout. */
static int64_t parse_timeout(int block, PyObject *timeout)
{
    if (!block)
        return LCH_NOWAIT;
    if (!timeout || timeout == Py_None)
        return LCH_FOREVER;
    /* Exact float and int without a temporary object. */
    double secs = PyFloat_CheckExact(timeout) ? PyFloat_AS_DOUBLE(timeout)
                  : PyLong_CheckExact(timeout) ? PyLong_AsDouble(timeout)
                                               : PyFloat_AsDouble(timeout);
    if (secs == -1.0 && PyErr_Occurred())
        return -2;
    if (isnan(secs) || secs < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "'timeout' must be a non-negative number");
        return -2;
    }
    if (secs >= 9.2e9) /* beyond int64 nanoseconds: as good as forever */
        return LCH_FOREVER;
    int64_t ns = (int64_t)(secs * 1e9);
    return ns == 0 && secs > 0 ? 1 : ns;
}

/* Parse (obj?, block=True, timeout=None) from a vectorcall. `nfixed` is 1
 * for put (obj first), 0 for get. */
static int parse_args(lchpy_state *st, const char *fname,
                      PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, int nfixed, PyObject **obj,
                      int *block, PyObject **timeout)
{
    PyObject *vals[3] = {NULL, NULL, NULL}; /* obj, block, timeout */
    static const char *const names[3] = {"obj", "block", "timeout"};
    int first = nfixed ? 0 : 1;
    if (!kwnames && nargs == nfixed) { /* put(obj), get(): the usual call */
        if (obj)
            *obj = args[0];
        *block = 1;
        *timeout = NULL;
        return 0;
    }
    if (nargs > 3 - first) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments",
                     fname, 3 - first);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        vals[first + i] = args[i];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int slot = -1;
        for (int j = first; j < 3 && slot < 0; j++) /* interned: pointers */
            if (key == st->kw[j])
                slot = j;
        for (int j = first; j < 3 && slot < 0; j++)
            if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0)
                slot = j;
        if (slot < 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'",
                         fname, key);
            return -1;
        }
        if (vals[slot]) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'", fname,
                         names[slot]);
            return -1;
        }
        vals[slot] = args[nargs + k];
    }
    if (nfixed && !vals[0]) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing required argument 'obj'", fname);
        return -1;
    }
    if (obj)
        *obj = vals[0];
    *block = 1;
    if (vals[1] == Py_True || vals[1] == Py_False) {
        *block = vals[1] == Py_True;
    } else if (vals[1]) {
        *block = PyObject_IsTrue(vals[1]);
        if (*block < 0)
            return -1;
    }
    *timeout = vals[2];
    return 0;
}

/* A send or receive that may wait: GIL released, signals handled. Returns
 * an lch_err, or -1000 with a Python exception (a signal handler raised);
 * either way, unless LCH_OK, nothing moved. */
#define OP_PYERR (-1000)

static int wait_op(lch_channel *ch, int is_send, lch_value *v,
                   int64_t timeout_ns)
{
    int64_t deadline = timeout_ns < 0 ? -1 : now_ns() + timeout_ns;
    for (;;) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = is_send ? lch_channel_send(ch, *v, timeout_ns)
                     : lch_channel_recv(ch, v, timeout_ns);
        Py_END_ALLOW_THREADS
        if (rc != LCH_EINTR)
            return rc;
        /* Runs the handlers only in the main thread of the main
         * interpreter; elsewhere it is a no-op and we wait again. */
        if (PyErr_CheckSignals() < 0)
            return OP_PYERR;
        if (deadline >= 0) {
            timeout_ns = deadline - now_ns();
            if (timeout_ns <= 0)
                return LCH_ETIMEDOUT;
        }
    }
}

/* Before giving up the GIL to wait, retry a few times with it held: a
 * consumer that keeps up with its producer finds the next item within a
 * few hundred nanoseconds, less than a release and re-acquire of the GIL
 * costs. Other threads of this interpreter wait at most this long (a
 * subinterpreter's GIL is its own). */
#define HOT_RETRIES 32

static int hot_retry(lch_channel *ch, int is_send, lch_value *v)
{
    int rc = LCH_EAGAIN;
    for (int i = 0; i < HOT_RETRIES && rc == LCH_EAGAIN; i++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        rc = is_send ? lch_channel_send(ch, *v, LCH_NOWAIT)
                     : lch_channel_recv(ch, v, LCH_NOWAIT);
    }
    return rc;
}

PyDoc_STRVAR(put_doc,
"put(obj, block=True, timeout=None)\n--\n\n"
"Add obj to the channel. If the channel is bounded and full, wait (with\n"
"the GIL released) until there is room: forever if timeout is None, else\n"
"up to timeout seconds, then raise Full. block=False never waits.\n"
"Raises ShutDown after shutdown(), NotShareableError if obj cannot travel.");

static PyObject *Channel_put(PyObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames)
{
    lchpy_state *st = state_of(self);
    PyObject *obj, *timeout;
    int block;
    if (parse_args(st, "put", args, nargs, kwnames, 1, &obj, &block,
                   &timeout))
        return NULL;
    int64_t tmo = parse_timeout(block, timeout);
    if (tmo == -2)
        return NULL;
    lch_channel *ch = CH(self);
    lch_value v;
    if (lchpy_to_value(st, obj,
                       !(lch_channel_user_flags(ch) & LCHPY_CH_NO_PICKLE),
                       &v))
        return NULL;
    int rc = lch_channel_send(ch, v, LCH_NOWAIT);
    if (rc == LCH_EAGAIN && tmo != LCH_NOWAIT) {
        rc = hot_retry(ch, 1, &v);
        if (rc == LCH_EAGAIN)
            rc = wait_op(ch, 1, &v, tmo);
    }
    if (rc == LCH_OK)
        Py_RETURN_NONE;
    lch_value_release(&v); /* still ours on every error */
    if (rc == OP_PYERR)
        return NULL;
    if (rc == LCH_EAGAIN || rc == LCH_ETIMEDOUT) {
        PyErr_SetNone(st->Full);
        return NULL;
    }
    return lchpy_raise(st, rc, "put");
}

PyDoc_STRVAR(put_nowait_doc,
"put_nowait(obj)\n--\n\n"
"put(obj, block=False): raise Full at once if there is no room.");

static PyObject *Channel_put_nowait(PyObject *self, PyObject *obj)
{
    PyObject *args[2] = {obj, Py_False};
    return Channel_put(self, args, 2, NULL);
}

static PyObject *do_get(PyObject *self, int64_t tmo)
{
    lchpy_state *st = state_of(self);
    lch_channel *ch = CH(self);
    lch_value v;
    int rc = lch_channel_recv(ch, &v, LCH_NOWAIT);
    if (rc == LCH_EAGAIN && tmo != LCH_NOWAIT) {
        rc = hot_retry(ch, 0, &v);
        if (rc == LCH_EAGAIN)
            rc = wait_op(ch, 0, &v, tmo);
    }
    if (rc == LCH_OK)
        return lchpy_from_value(st, &v);
    if (rc == OP_PYERR)
        return NULL;
    if (rc == LCH_EAGAIN || rc == LCH_ETIMEDOUT) {
        PyErr_SetNone(st->Empty);
        return NULL;
    }
    return lchpy_raise(st, rc, "get");
}

PyDoc_STRVAR(get_doc,
"get(block=True, timeout=None)\n--\n\n"
"Remove and return the oldest item. If the channel is empty, wait (with\n"
"the GIL released) for one: forever if timeout is None, else up to\n"
"timeout seconds, then raise Empty. block=False never waits. After\n"
"shutdown(), returns what is still queued, then raises ShutDown. An item\n"
"that cannot be rebuilt here (a pickled object whose class this\n"
"interpreter cannot import) is taken off the channel and its error raised.");

static PyObject *Channel_get(PyObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *timeout;
    int block;
    if (parse_args(state_of(self), "get", args, nargs, kwnames, 0, NULL,
                   &block, &timeout))
        return NULL;
    int64_t tmo = parse_timeout(block, timeout);
    if (tmo == -2)
        return NULL;
    return do_get(self, tmo);
}

PyDoc_STRVAR(get_nowait_doc,
"get_nowait()\n--\n\n"
"get(block=False): raise Empty at once if nothing is queued.");

static PyObject *Channel_get_nowait(PyObject *self, PyObject *unused)
{
    (void)unused;
    return do_get(self, LCH_NOWAIT);
}

/* Iteration: get() until the channel is shut down and drained. */
static PyObject *Channel_iternext(PyObject *self)
{
    PyObject *o = do_get(self, LCH_FOREVER);
    if (!o && PyErr_ExceptionMatches(state_of(self)->ShutDown))
        PyErr_Clear(); /* StopIteration */
    return o;
}

PyDoc_STRVAR(qsize_doc, "qsize()\n--\n\n"
"Number of items queued now (a snapshot: other threads and interpreters\n"
"may change it at any moment).");

static PyObject *Channel_qsize(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(lch_channel_len(CH(self)));
}

PyDoc_STRVAR(empty_doc, "empty()\n--\n\nqsize() == 0 (a snapshot).");

static PyObject *Channel_empty(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(lch_channel_len(CH(self)) == 0);
}

PyDoc_STRVAR(full_doc, "full()\n--\n\n"
"True if the channel is bounded and holds maxsize items (a snapshot).");

static PyObject *Channel_full(PyObject *self, PyObject *unused)
{
    (void)unused;
    size_t cap = lch_channel_capacity(CH(self));
    return PyBool_FromLong(cap && lch_channel_len(CH(self)) >= cap);
}

PyDoc_STRVAR(shutdown_doc,
"shutdown(immediate=False)\n--\n\n"
"Shut the channel down, for every interpreter that holds it: later puts\n"
"raise ShutDown, and blocked puts and gets wake up. With immediate=False\n"
"gets still return what is queued, then raise ShutDown; with\n"
"immediate=True what is queued is discarded at once. Idempotent.");

static PyObject *Channel_shutdown(PyObject *self, PyObject *args,
                                  PyObject *kwds)
{
    static char *kwlist[] = {"immediate", NULL};
    int immediate = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:shutdown", kwlist,
                                     &immediate))
        return NULL;
    int rc;
    if (immediate) {
        /* Releasing what is queued may free large buffers: no GIL needed. */
        Py_BEGIN_ALLOW_THREADS
        rc = lch_channel_close_now(CH(self));
        Py_END_ALLOW_THREADS
    } else {
        rc = lch_channel_close(CH(self));
    }
    if (rc != LCH_OK)
        return lchpy_raise(state_of(self), rc, "shutdown");
    Py_RETURN_NONE;
}

static PyObject *Channel_reduce(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyErr_SetString(PyExc_TypeError,
                    "cannot pickle libchan.Channel: a channel lives in one "
                    "process; pass it to other interpreters through a "
                    "Channel, the interpreters module, or lookup(id)");
    return NULL;
}

static PyObject *Channel_get_id(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(lch_channel_id(CH(self)));
}

static PyObject *Channel_get_maxsize(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(lch_channel_capacity(CH(self)));
}

static PyObject *Channel_get_name(PyObject *self, void *closure)
{
    (void)closure;
    const char *name = lch_channel_name(CH(self));
    if (!name)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(name, (Py_ssize_t)strlen(name), "strict");
}

static PyObject *Channel_get_pickle(PyObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(
        !(lch_channel_user_flags(CH(self)) & LCHPY_CH_NO_PICKLE));
}

static PyObject *Channel_get_is_shutdown(PyObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(lch_channel_is_closed(CH(self)));
}

static PyObject *Channel_new(PyTypeObject *tp, PyObject *args,
                             PyObject *kwds)
{
    static char *kwlist[] = {"maxsize", "name", "pickle", NULL};
    Py_ssize_t maxsize = 0;
    PyObject *name = Py_None;
    int allow_pickle = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|n$Op:Channel", kwlist,
                                     &maxsize, &name, &allow_pickle))
        return NULL;
    lchpy_state *st = PyType_GetModuleState(tp);
    lch_channel_opts opts = LCH_CHANNEL_OPTS_INIT;
    /* As queue.Queue: maxsize <= 0 means unbounded. */
    opts.capacity = maxsize > 0 ? (size_t)maxsize : 0;
    opts.user_flags = allow_pickle ? 0 : LCHPY_CH_NO_PICKLE;
    if (name != Py_None) {
        if (!PyUnicode_Check(name)) {
            PyErr_Format(PyExc_TypeError,
                         "name must be a str or None, not %.100s",
                         Py_TYPE(name)->tp_name);
            return NULL;
        }
        Py_ssize_t n;
        opts.name = PyUnicode_AsUTF8AndSize(name, &n);
        if (!opts.name)
            return NULL;
        if ((size_t)n != strlen(opts.name)) {
            PyErr_SetString(PyExc_ValueError,
                            "channel name contains a NUL character");
            return NULL;
        }
    }
    lch_channel *ch = NULL;
    int rc = lch_channel_create_opts(&ch, &opts);
    if (rc == LCH_EEXIST) {
        PyErr_Format(PyExc_ValueError, "a live channel is already named %R",
                     name);
        return NULL;
    }
    if (rc == LCH_E2BIG && opts.capacity > LCH_CHANNEL_MAX_CAPACITY) {
        PyErr_Format(PyExc_ValueError, "maxsize is above the limit of %zu",
                     (size_t)LCH_CHANNEL_MAX_CAPACITY);
        return NULL;
    }
    if (rc != LCH_OK)
        return lchpy_raise(st, rc, "Channel");
    lchpy_Channel *self = (lchpy_Channel *)tp->tp_alloc(tp, 0);
    if (!self) {
        lch_channel_unref(ch);
        return NULL;
    }
    self->ch = ch;
    return (PyObject *)self;
}

static void Channel_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    lch_channel_unref(CH(self));
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *Channel_repr(PyObject *self)
{
    lch_channel *ch = CH(self);
    const char *name = lch_channel_name(ch);
    return PyUnicode_FromFormat(
        "<libchan.Channel id=%llu%s%s%s maxsize=%zu qsize=%zu%s>",
        (unsigned long long)lch_channel_id(ch), name ? " name='" : "",
        name ? name : "", name ? "'" : "", lch_channel_capacity(ch),
        lch_channel_len(ch), lch_channel_is_closed(ch) ? " shut down" : "");
}

static PyObject *Channel_richcompare(PyObject *self, PyObject *other, int op)
{
    if (Py_TYPE(other) != Py_TYPE(self) || (op != Py_EQ && op != Py_NE))
        Py_RETURN_NOTIMPLEMENTED;
    int eq = CH(self) == CH(other);
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t Channel_hash(PyObject *self)
{
    Py_hash_t h = (Py_hash_t)lch_channel_id(CH(self));
    return h == -1 ? -2 : h;
}

static PyMethodDef Channel_methods[] = {
    {"put", (PyCFunction)(void (*)(void))Channel_put,
     METH_FASTCALL | METH_KEYWORDS, put_doc},
    {"put_nowait", Channel_put_nowait, METH_O, put_nowait_doc},
    {"get", (PyCFunction)(void (*)(void))Channel_get,
     METH_FASTCALL | METH_KEYWORDS, get_doc},
    {"get_nowait", Channel_get_nowait, METH_NOARGS, get_nowait_doc},
    {"qsize", Channel_qsize, METH_NOARGS, qsize_doc},
    {"empty", Channel_empty, METH_NOARGS, empty_doc},
    {"full", Channel_full, METH_NOARGS, full_doc},
    {"shutdown", (PyCFunction)(void (*)(void))Channel_shutdown,
     METH_VARARGS | METH_KEYWORDS, shutdown_doc},
    {"__reduce__", Channel_reduce, METH_NOARGS,
     "Channels cannot be pickled (TypeError)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Channel_getset[] = {
    {"id", Channel_get_id, NULL,
     "Process-unique id; lookup(id) finds the channel while it lives.", NULL},
    {"maxsize", Channel_get_maxsize, NULL,
     "Capacity; 0 means unbounded.", NULL},
    {"name", Channel_get_name, NULL,
     "The name given at creation, or None.", NULL},
    {"pickle", Channel_get_pickle, NULL,
     "Whether objects the codec cannot carry are pickled (else refused).",
     NULL},
    {"is_shutdown", Channel_get_is_shutdown, NULL,
     "True once shutdown() was called, from any interpreter.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Channel_doc,
"Channel(maxsize=0, *, name=None, pickle=True)\n--\n\n"
"A multi-producer multi-consumer channel that every interpreter of the\n"
"process can use, with the interface of queue.Queue and PEP 734's Queue.\n\n"
"maxsize <= 0 means unbounded; otherwise put() waits while maxsize items\n"
"are queued. A named channel can be found with lookup(name) while it\n"
"lives. pickle=False refuses objects the codec cannot carry\n"
"(NotShareableError) instead of pickling them. Iterating yields items\n"
"until the channel is shut down and drained.");

static PyType_Slot Channel_slots[] = {
    {Py_tp_doc, (void *)Channel_doc},
    {Py_tp_new, Channel_new},
    {Py_tp_dealloc, Channel_dealloc},
    {Py_tp_repr, Channel_repr},
    {Py_tp_richcompare, Channel_richcompare},
    {Py_tp_hash, Channel_hash},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, Channel_iternext},
    {Py_tp_methods, Channel_methods},
    {Py_tp_getset, Channel_getset},
    {0, NULL},
};

PyType_Spec lchpy_channel_spec = {
    .name = "libchan.Channel",
    .basicsize = sizeof(lchpy_Channel),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Channel_slots,
};
