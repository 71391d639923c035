/* waiter.c: what waiting on several channels, and waiting from an event
 * loop, need from C; the asyncio logic itself is Python (libchan/aio.py).
 *
 * - select(*channels, timeout=None): lch_channel_select over receive cases,
 *   waiting like Channel.get (one try with the GIL held, then the GIL
 *   released, Python's signal handlers run on LCH_EINTR).
 * - _Waiter: an lch_waiter (libchan/select.h), an eventfd that one event
 *   loop watches. Its calls never block: get/put/select try the operation
 *   and, if it would block, arm the waiter and return the waiter itself as
 *   a marker ("armed: wait for the fd"), which no item can be (a _Waiter
 *   cannot travel through a channel). take() reports what fired as keys,
 *   channel id << 1 | 1 for the send side. The methods run with the GIL
 *   held, which serializes them as lch_waiter requires. */
#include "lchpy.h"

#include <errno.h>

typedef struct {
    PyObject_HEAD
    lch_waiter *w; /* NULL once closed */
} lchpy_Waiter;

#define W(o) (((lchpy_Waiter *)(o))->w)

static lchpy_state *wstate(PyObject *self)
{
    return PyType_GetModuleState(Py_TYPE(self));
}

/* ShutDown for a select: the message and .channel name the channel. */
static PyObject *raise_closed(lchpy_state *st, PyObject *chobj)
{
    PyObject *exc = PyObject_CallFunction(
        st->ShutDown, "s", "the channel is shut down (and drained)");
    if (!exc)
        return NULL;
    if (PyObject_SetAttrString(exc, "channel", chobj) == 0)
        PyErr_SetObject(st->ShutDown, exc);
    Py_DECREF(exc);
    return NULL;
}

static int check_open(PyObject *self)
{
    if (W(self))
        return 0;
    PyErr_SetString(PyExc_ValueError, "the waiter is closed");
    return -1;
}

/* ---- select (blocking) ----------------------------------------------------- */

const char lchpy_select_doc[] =
    "select(*channels, timeout=None)\n--\n\n"
    "Wait for the first of the channels to have an item and return\n"
    "(channel, item), taking only that item. When several have one, each is\n"
    "equally likely to be chosen, so none starves. Waits like Channel.get:\n"
    "forever if timeout is None, else up to timeout seconds, then raises\n"
    "Empty; timeout=0 never waits. A channel that is shut down and drained\n"
    "counts as ready: select raises ShutDown for it (its .channel attribute\n"
    "says which), as get would. At most 64 channels (ValueError); the same\n"
    "channel may be given twice.";

PyObject *lchpy_select(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames)
{
    lchpy_state *st = PyModule_GetState(mod);
    PyObject *timeout = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        if (PyUnicode_CompareWithASCIIString(key, "timeout") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "select() got an unexpected keyword argument '%U'",
                         key);
            return NULL;
        }
        timeout = args[nargs + k];
    }
    if (nargs == 0) {
        PyErr_SetString(PyExc_TypeError, "select() needs at least one channel");
        return NULL;
    }
    if (nargs > LCH_SELECT_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "select() takes at most %d channels, got %zd",
                     LCH_SELECT_MAX, nargs);
        return NULL;
    }
    int64_t tmo = lchpy_parse_timeout(1, timeout);
    if (tmo == -2)
        return NULL;
    lch_select_case cases[LCH_SELECT_MAX];
    for (Py_ssize_t i = 0; i < nargs; i++) {
        lch_channel *ch = lchpy_channel_arg(st, args[i], "select");
        if (!ch)
            return NULL;
        cases[i] = (lch_select_case){ch, LCH_RECV, lch_value_none()};
    }
    size_t n = (size_t)nargs, idx = LCH_SELECT_NONE;
    /* The common case, something queued: no GIL traffic. */
    int rc = lch_channel_select(cases, n, &idx, LCH_NOWAIT);
    if (rc == LCH_EAGAIN && tmo != LCH_NOWAIT) {
        int64_t deadline = tmo < 0 ? -1 : lchpy_now_ns() + tmo;
        /* As Channel.get's wait (channel.c): look for a signal the eval
         * loop may have missed, before sleeping and after a timeout. */
        if (PyErr_CheckSignals() < 0)
            return NULL; /* nothing was taken */
        for (;;) {
            Py_BEGIN_ALLOW_THREADS
            rc = lch_channel_select(cases, n, &idx, tmo);
            Py_END_ALLOW_THREADS
            if (rc == LCH_ETIMEDOUT && PyErr_CheckSignals() < 0)
                return NULL;
            if (rc != LCH_EINTR)
                break;
            /* Handlers run in the main thread of the main interpreter
             * only; elsewhere this is a no-op and we wait again. */
            if (PyErr_CheckSignals() < 0)
                return NULL; /* nothing was taken */
            if (deadline >= 0) {
                tmo = deadline - lchpy_now_ns();
                if (tmo <= 0) {
                    rc = LCH_ETIMEDOUT;
                    break;
                }
            }
        }
    }
    if (rc == LCH_OK) {
        PyObject *item = lchpy_from_value(st, &cases[idx].value);
        if (!item)
            return NULL;
        PyObject *r = PyTuple_Pack(2, args[idx], item);
        Py_DECREF(item);
        return r;
    }
    if (rc == LCH_EAGAIN || rc == LCH_ETIMEDOUT) {
        PyErr_SetNone(st->Empty);
        return NULL;
    }
    if (rc == LCH_ECLOSED)
        return raise_closed(st, args[idx]);
    return lchpy_raise(st, rc, "select");
}

/* ---- _Waiter ------------------------------------------------------------------ */

static PyObject *Waiter_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "_Waiter() takes no arguments");
        return NULL;
    }
    lchpy_state *st = PyType_GetModuleState(tp);
    lch_waiter *w = NULL;
    int rc = lch_waiter_create(&w);
    if (rc != LCH_OK)
        return lchpy_raise(st, rc, "_Waiter");
    PyObject *self = tp->tp_alloc(tp, 0);
    if (!self) {
        lch_waiter_free(w);
        return NULL;
    }
    W(self) = w;
    return self;
}

static void Waiter_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    lch_waiter_free(W(self)); /* accepts NULL; releases the channels held */
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *Waiter_fileno(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (check_open(self))
        return NULL;
    return PyLong_FromLong(lch_waiter_fd(W(self)));
}

static PyObject *Waiter_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    lch_waiter_free(W(self));
    W(self) = NULL;
    Py_RETURN_NONE;
}

static PyObject *Waiter_take(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (check_open(self))
        return NULL;
    PyObject *keys = PyList_New(0);
    if (!keys)
        return NULL;
    lch_waiter_event ev[32];
    size_t k;
    int failed = 0;
    do {
        k = lch_waiter_take(W(self), ev, 32);
        for (size_t i = 0; i < k; i++) {
            /* Keys, not Channel objects: the loop's table has those. */
            uint64_t key = lch_channel_id(ev[i].ch) << 1 |
                           (ev[i].op == LCH_SEND ? 1u : 0u);
            lch_channel_unref(ev[i].ch);
            if (failed)
                continue;
            PyObject *o = PyLong_FromUnsignedLongLong(key);
            if (!o || PyList_Append(keys, o) < 0)
                failed = 1;
            Py_XDECREF(o);
        }
    } while (k == 32);
    if (failed) {
        Py_DECREF(keys);
        return NULL;
    }
    return keys;
}

static PyObject *Waiter_get(PyObject *self, PyObject *chobj)
{
    lchpy_state *st = wstate(self);
    lch_channel *ch = lchpy_channel_arg(st, chobj, "get");
    if (!ch || check_open(self))
        return NULL;
    lch_value v;
    int rc = lch_waiter_recv(W(self), ch, &v);
    if (rc == LCH_OK)
        return lchpy_from_value(st, &v);
    if (rc == LCH_EAGAIN)
        return Py_NewRef(self); /* armed */
    return lchpy_raise(st, rc, "get");
}

static PyObject *Waiter_put(PyObject *self, PyObject *const *args,
                            Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "put() takes a channel and an item");
        return NULL;
    }
    lchpy_state *st = wstate(self);
    lch_channel *ch = lchpy_channel_arg(st, args[0], "put");
    if (!ch || check_open(self))
        return NULL;
    lch_value v;
    if (lchpy_to_value(st, args[1],
                       !(lch_channel_user_flags(ch) & LCHPY_CH_NO_PICKLE),
                       &v))
        return NULL;
    int rc = lch_waiter_send(W(self), ch, v);
    if (rc == LCH_OK)
        Py_RETURN_TRUE;
    lch_value_release(&v); /* still ours on every other result */
    if (rc == LCH_EAGAIN)
        Py_RETURN_FALSE; /* armed */
    return lchpy_raise(st, rc, "put");
}

static PyObject *Waiter_select(PyObject *self, PyObject *channels)
{
    lchpy_state *st = wstate(self);
    if (!PyTuple_Check(channels)) {
        PyErr_SetString(PyExc_TypeError, "select() takes a tuple of channels");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(channels);
    if (n == 0 || n > LCH_SELECT_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "select() takes 1 to %d channels, got %zd",
                     LCH_SELECT_MAX, n);
        return NULL;
    }
    if (check_open(self))
        return NULL;
    lch_select_case cases[LCH_SELECT_MAX];
    for (Py_ssize_t i = 0; i < n; i++) {
        lch_channel *ch =
            lchpy_channel_arg(st, PyTuple_GET_ITEM(channels, i), "select");
        if (!ch)
            return NULL;
        cases[i] = (lch_select_case){ch, LCH_RECV, lch_value_none()};
    }
    size_t idx = LCH_SELECT_NONE;
    int rc = lch_waiter_select(W(self), cases, (size_t)n, &idx);
    if (rc == LCH_OK) {
        PyObject *item = lchpy_from_value(st, &cases[idx].value);
        if (!item)
            return NULL;
        PyObject *r = PyTuple_Pack(
            2, PyTuple_GET_ITEM(channels, (Py_ssize_t)idx), item);
        Py_DECREF(item);
        return r;
    }
    if (rc == LCH_EAGAIN)
        return Py_NewRef(self); /* armed on every channel */
    if (rc == LCH_ECLOSED)
        return raise_closed(st, PyTuple_GET_ITEM(channels, (Py_ssize_t)idx));
    return lchpy_raise(st, rc, "select");
}

static PyObject *Waiter_disarm(PyObject *self, PyObject *const *args,
                               Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "disarm() takes a channel and a direction");
        return NULL;
    }
    lchpy_state *st = wstate(self);
    lch_channel *ch = lchpy_channel_arg(st, args[0], "disarm");
    if (!ch || check_open(self))
        return NULL;
    int send = PyObject_IsTrue(args[1]);
    if (send < 0)
        return NULL;
    int rc = lch_waiter_disarm(W(self), ch, send ? LCH_SEND : LCH_RECV);
    if (rc != LCH_OK)
        return lchpy_raise(st, rc, "disarm");
    Py_RETURN_NONE;
}

static PyObject *Waiter_pending(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(W(self) && lch_waiter_pending(W(self)));
}

static PyMethodDef Waiter_methods[] = {
    {"fileno", Waiter_fileno, METH_NOARGS,
     "fileno()\n--\n\nThe eventfd to watch for readability."},
    {"pending", Waiter_pending, METH_NOARGS,
     "pending()\n--\n\nTrue if something fired since the last take(): one\n"
     "atomic load, no system call (for a brief spin before the loop sleeps)."},
    {"take", Waiter_take, METH_NOARGS,
     "take()\n--\n\nDrain the fd; the keys (channel id << 1 | 1 for the send\n"
     "side) of what fired since the last call, oldest first. The waiter is\n"
     "no longer armed on them."},
    {"get", Waiter_get, METH_O,
     "get(channel)\n--\n\nAn item if one is queued, else arm the waiter on\n"
     "the channel and return the waiter itself. ShutDown once the channel\n"
     "is shut down and drained."},
    {"put", (PyCFunction)(void (*)(void))Waiter_put, METH_FASTCALL,
     "put(channel, item)\n--\n\nTrue if the item was added, else False:\n"
     "the channel is full and the waiter is armed on its send side.\n"
     "ShutDown after shutdown()."},
    {"select", Waiter_select, METH_O,
     "select(channels)\n--\n\n(channel, item) from a channel of the tuple\n"
     "that has an item (uniformly among those that have); else arm the waiter\n"
     "on all of them and return the waiter itself. ShutDown (with .channel)\n"
     "for one that is shut down and drained."},
    {"disarm", (PyCFunction)(void (*)(void))Waiter_disarm, METH_FASTCALL,
     "disarm(channel, send)\n--\n\nStop watching that side of the channel\n"
     "(releasing the reference held while armed)."},
    {"close", Waiter_close, METH_NOARGS,
     "close()\n--\n\nDisarm everything and close the fd (remove it from the\n"
     "loop first). Idempotent."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Waiter_slots[] = {
    {Py_tp_doc,
     (void *)"_Waiter()\n--\n\n"
             "An eventfd that becomes readable when a channel it is armed on\n"
             "may have moved: the building block of libchan.aio, for one\n"
             "event loop (one thread at a time)."},
    {Py_tp_new, Waiter_new},
    {Py_tp_dealloc, Waiter_dealloc},
    {Py_tp_methods, Waiter_methods},
    {0, NULL},
};

PyType_Spec lchpy_waiter_spec = {
    .name = "libchan._libchan._Waiter",
    .basicsize = sizeof(lchpy_Waiter),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Waiter_slots,
};
