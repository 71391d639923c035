/* channel.c: libchan.Channel, the queue.Queue / PEP 734 Queue interface
 * over an lch_channel.
 *
 * As the stdlib keeps one Queue object per queue per interpreter, each
 * interpreter has at most one Channel wrapper per channel: a table in its
 * module state, keyed by channel id, finds the live one. A pickled Channel
 * is its id plus the identity of the process (pid and a random number), and
 * unpickles to that same wrapper, in this process only.
 *
 * A put or get first tries once with the GIL held (the common case: no
 * waiting, no GIL traffic). Only if it would block does it release the GIL
 * and wait inside libchan, which spins briefly and then sleeps on a futex
 * until the other side makes progress, the deadline passes, or a signal
 * arrives (LCH_EINTR). On a signal it takes the GIL back and runs Python's
 * signal handlers; if one raises (KeyboardInterrupt), the call raises it
 * with nothing taken from or added to the channel.
 *
 * get_async, put_async and async iteration only call libchan.aio (Python),
 * which waits through the fd waiter of waiter.c. */
#include "lchpy.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define CH(o) (((lchpy_Channel *)(o))->ch)

static lchpy_state *state_of(PyObject *self)
{
    /* Channel cannot be subclassed, so its type is the module's own. */
    return PyType_GetModuleState(Py_TYPE(self));
}

/* ---- one wrapper per channel per interpreter ------------------------------
 *
 * st->wrappers: open addressing with linear probing, at most half full,
 * grown and shrunk by rehashing. Used only with this interpreter's GIL
 * held, which is what makes it safe under a per-interpreter GIL: no other
 * interpreter ever sees it. Removal (in dealloc) never allocates, so it
 * cannot fail. */

#define WRAPPERS_MIN 16

static size_t home_slot(uint64_t id, size_t cap)
{
    /* Fibonacci hashing: ids are sequential, the high bits spread them. */
    return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (cap - 1);
}

static PyObject *wrappers_find(const lchpy_state *st, uint64_t id)
{
    if (!st->wrappers_cap)
        return NULL;
    size_t mask = st->wrappers_cap - 1;
    for (size_t i = home_slot(id, st->wrappers_cap);; i = (i + 1) & mask) {
        if (st->wrappers[i].id == id)
            return st->wrappers[i].obj;
        if (!st->wrappers[i].id)
            return NULL;
    }
}

/* Rehash into `cap` slots (a power of two above twice the entries). -1 if
 * out of memory, with the table unchanged and no exception set. */
static int wrappers_resize(lchpy_state *st, size_t cap)
{
    lchpy_wrapper_slot *slots = PyMem_Calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t j = 0; j < st->wrappers_cap; j++) {
        uint64_t id = st->wrappers[j].id;
        if (!id)
            continue;
        size_t i = home_slot(id, cap);
        while (slots[i].id)
            i = (i + 1) & (cap - 1);
        slots[i] = st->wrappers[j];
    }
    PyMem_Free(st->wrappers);
    st->wrappers = slots;
    st->wrappers_cap = cap;
    return 0;
}

/* Add obj as the wrapper of channel `id`, which has none. 0, or -1 with
 * MemoryError if the table cannot grow. */
static int wrappers_add(lchpy_state *st, uint64_t id, PyObject *obj)
{
    assert(!wrappers_find(st, id));
    if ((st->wrappers_len + 1) * 2 > st->wrappers_cap &&
        wrappers_resize(st, st->wrappers_cap ? st->wrappers_cap * 2
                                             : WRAPPERS_MIN) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = st->wrappers_cap - 1, i = home_slot(id, st->wrappers_cap);
    while (st->wrappers[i].id)
        i = (i + 1) & mask;
    st->wrappers[i].id = id;
    st->wrappers[i].obj = obj;
    st->wrappers_len++;
    return 0;
}

/* Take obj out of the table, if it is there as the wrapper of `id`. */
static void wrappers_remove(lchpy_state *st, uint64_t id, PyObject *obj)
{
    if (!st->wrappers_cap)
        return;
    size_t mask = st->wrappers_cap - 1, i = home_slot(id, st->wrappers_cap);
    while (st->wrappers[i].id != id || st->wrappers[i].obj != obj) {
        if (!st->wrappers[i].id)
            return; /* never added: the table could not grow for it */
        i = (i + 1) & mask;
    }
    /* Backward-shift deletion: pull later entries of the probe run into
     * the hole unless their home slot lies cyclically in (hole, j]. */
    for (size_t j = (i + 1) & mask; st->wrappers[j].id; j = (j + 1) & mask) {
        size_t k = home_slot(st->wrappers[j].id, st->wrappers_cap);
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            st->wrappers[i] = st->wrappers[j];
            i = j;
        }
    }
    st->wrappers[i].id = 0;
    st->wrappers[i].obj = NULL;
    st->wrappers_len--;
    /* Give memory back after a burst of channels; if that fails the table
     * just stays large. */
    if (st->wrappers_cap > WRAPPERS_MIN * 4 &&
        st->wrappers_len * 8 < st->wrappers_cap)
        (void)wrappers_resize(st, st->wrappers_cap / 4);
}

void lchpy_wrappers_free(lchpy_state *st)
{
    PyMem_Free(st->wrappers);
    st->wrappers = NULL;
    st->wrappers_cap = st->wrappers_len = 0;
}

PyObject *lchpy_channel_wrap(lchpy_state *st, lch_channel *ch)
{
    uint64_t id = lch_channel_id(ch);
    PyObject *self = wrappers_find(st, id);
    if (self) {
        lch_channel_unref(ch); /* the wrapper holds its own reference */
        return Py_NewRef(self);
    }
    self = (PyObject *)PyObject_New(lchpy_Channel, st->Channel_Type);
    if (!self) {
        lch_channel_unref(ch);
        return NULL;
    }
    CH(self) = ch;
    /* No Python code ran since the find (allocating an object that is not
     * tracked by the garbage collector runs no collection), so the channel
     * still has no wrapper here. */
    if (wrappers_add(st, id, self) < 0) {
        Py_DECREF(self); /* releases the caller's reference */
        return NULL;
    }
    return self;
}

int64_t lchpy_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t lchpy_parse_timeout(int block, PyObject *timeout)
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
    int64_t deadline = timeout_ns < 0 ? -1 : lchpy_now_ns() + timeout_ns;
    /* Look for a signal before sleeping, and after a wait that ended with
     * nothing moved: one that arrived while this thread was running (not
     * in a system call it would interrupt) is only seen through the eval
     * loop's breaker, which CPython 3.12 can clear when another thread
     * recomputes it (its signal bit counts only for the main thread). */
    if (PyErr_CheckSignals() < 0)
        return OP_PYERR;
    for (;;) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = is_send ? lch_channel_send(ch, *v, timeout_ns)
                     : lch_channel_recv(ch, v, timeout_ns);
        Py_END_ALLOW_THREADS
        if (rc == LCH_ETIMEDOUT && PyErr_CheckSignals() < 0)
            return OP_PYERR;
        if (rc != LCH_EINTR)
            return rc;
        /* Runs the handlers only in the main thread of the main
         * interpreter; elsewhere it is a no-op and we wait again. */
        if (PyErr_CheckSignals() < 0)
            return OP_PYERR;
        if (deadline >= 0) {
            timeout_ns = deadline - lchpy_now_ns();
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
    int64_t tmo = lchpy_parse_timeout(block, timeout);
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
    int64_t tmo = lchpy_parse_timeout(block, timeout);
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

lch_channel *lchpy_channel_arg(lchpy_state *st, PyObject *o, const char *fn)
{
    if (Py_TYPE(o) != st->Channel_Type) {
        PyErr_Format(PyExc_TypeError, "%s() takes libchan.Channel objects, "
                     "not %.100s", fn, Py_TYPE(o)->tp_name);
        return NULL;
    }
    return ((lchpy_Channel *)o)->ch;
}

PyDoc_STRVAR(move_to_doc,
"_move_to(dst)\n--\n\n"
"Move the oldest item to the channel dst as it is (neither rebuilt here\n"
"nor encoded again): True if one was moved, False if this channel is\n"
"empty. Never waits. If dst refuses it (shut down, or full), the item is\n"
"dropped and the error raised: for the executor's backlog, which moves\n"
"its tasks into the workers' channel this way.");

static PyObject *Channel_move_to(PyObject *self, PyObject *dst)
{
    lchpy_state *st = state_of(self);
    lch_channel *to = lchpy_channel_arg(st, dst, "_move_to");
    if (!to)
        return NULL;
    lch_value v;
    int rc = lch_channel_recv(CH(self), &v, LCH_NOWAIT);
    if (rc == LCH_EAGAIN)
        Py_RETURN_FALSE;
    if (rc != LCH_OK)
        return lchpy_raise(st, rc, "_move_to");
    rc = lch_channel_send(to, v, LCH_NOWAIT);
    if (rc == LCH_OK)
        Py_RETURN_TRUE;
    lch_value_release(&v); /* still ours: dropped, as documented */
    if (rc == LCH_EAGAIN) {
        PyErr_SetNone(st->Full);
        return NULL;
    }
    return lchpy_raise(st, rc, "_move_to");
}

/* Iteration: get() until the channel is shut down and drained. */
static PyObject *Channel_iternext(PyObject *self)
{
    PyObject *o = do_get(self, LCH_FOREVER);
    if (!o && PyErr_ExceptionMatches(state_of(self)->ShutDown))
        PyErr_Clear(); /* StopIteration */
    return o;
}

/* ---- asyncio -------------------------------------------------------------
 *
 * get_async, put_async and async iteration are Python (libchan/aio.py): the
 * methods below only call it, importing it on first use per interpreter. */

enum { AIO_GET, AIO_PUT, AIO_ANEXT };
static const char *const aio_names[3] = {"get_async", "put_async", "anext"};

/* libchan.aio.<name>(self, *args, **kwargs) */
static PyObject *aio_call(PyObject *self, int which, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames)
{
    lchpy_state *st = state_of(self);
    if (!st->aio[which]) {
        PyObject *mod = PyImport_ImportModule("libchan.aio");
        if (!mod)
            return NULL;
        st->aio[which] = PyObject_GetAttrString(mod, aio_names[which]);
        Py_DECREF(mod);
        if (!st->aio[which])
            return NULL;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *stack[8];
    if (1 + nargs + nkw > 8) {
        PyErr_Format(PyExc_TypeError, "%s(): too many arguments",
                     aio_names[which]);
        return NULL;
    }
    stack[0] = self;
    for (Py_ssize_t i = 0; i < nargs + nkw; i++)
        stack[1 + i] = args[i];
    return PyObject_Vectorcall(st->aio[which], stack, (size_t)(1 + nargs),
                               kwnames);
}

PyDoc_STRVAR(get_async_doc,
"get_async(timeout=None)\n--\n\n"
"Coroutine: remove and return the oldest item, waiting on the running\n"
"asyncio loop (which watches a file descriptor: no thread, no polling)\n"
"for one to arrive: forever if timeout is None, else up to timeout\n"
"seconds, then raise Empty. After shutdown(), returns what is still\n"
"queued, then raises ShutDown. Cancelling it loses nothing: the item is\n"
"either returned or left in the channel. See libchan.aio.");

static PyObject *Channel_get_async(PyObject *self, PyObject *const *args,
                                   Py_ssize_t nargs, PyObject *kwnames)
{
    return aio_call(self, AIO_GET, args, nargs, kwnames);
}

PyDoc_STRVAR(put_async_doc,
"put_async(obj, timeout=None)\n--\n\n"
"Coroutine: add obj; on a bounded channel that is full, wait on the\n"
"running asyncio loop for room: forever if timeout is None, else up to\n"
"timeout seconds, then raise Full. Raises ShutDown after shutdown().\n"
"Cancelled while waiting, it adds nothing. See libchan.aio.");

static PyObject *Channel_put_async(PyObject *self, PyObject *const *args,
                                   Py_ssize_t nargs, PyObject *kwnames)
{
    return aio_call(self, AIO_PUT, args, nargs, kwnames);
}

/* async for item in ch: get_async() until shut down and drained. */
static PyObject *Channel_aiter(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *Channel_anext(PyObject *self)
{
    return aio_call(self, AIO_ANEXT, NULL, 0, NULL);
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

/* ---- pickling by id ------------------------------------------------------
 *
 * A pickle carries (id, pid, nonce) and holds no reference. Ids are unique
 * only within a process, and a pid alone does not name a process (a
 * container's first process is pid 1 on every run; a fork child copies its
 * parent's channels under the same ids), so a random number drawn once per
 * process, and again in every fork child, must match too. */

static _Atomic uint64_t process_nonce; /* 0 until drawn */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void nonce_forget(void)
{
    /* Fork child: its channels are copies, not the parent's. */
    atomic_store_explicit(&process_nonce, 0, memory_order_relaxed);
}

static void nonce_register_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, nonce_forget);
}

static uint64_t nonce_get(void)
{
    (void)pthread_once(&atfork_once, nonce_register_atfork);
    /* Relaxed throughout: the nonce is one word, published by the CAS
     * below and carrying no other data. */
    uint64_t n = atomic_load_explicit(&process_nonce, memory_order_relaxed);
    if (n)
        return n;
    if (getrandom(&n, sizeof n, GRND_NONBLOCK) != (ssize_t)sizeof n) {
        /* No entropy yet (early boot) or no getrandom: mix clocks, the
         * pid and an address, which still differ between processes. */
        struct timespec a, b;
        clock_gettime(CLOCK_REALTIME, &a);
        clock_gettime(CLOCK_MONOTONIC, &b);
        n = ((uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec) ^
            ((uint64_t)b.tv_nsec << 20) ^ ((uint64_t)getpid() << 40) ^
            (uint64_t)(uintptr_t)&a;
    }
    n |= 1; /* never 0, which means "not drawn" */
    uint64_t expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&process_nonce, &expected, n,
                                                 memory_order_relaxed,
                                                 memory_order_relaxed))
        return expected; /* another thread drew first */
    return n;
}

static PyObject *Channel_reduce(PyObject *self, PyObject *unused)
{
    (void)unused;
    PyObject *mod = PyType_GetModule(Py_TYPE(self));
    if (!mod)
        return NULL;
    PyObject *fn = PyObject_GetAttrString(mod, "_unpickle_channel");
    if (!fn)
        return NULL;
    return Py_BuildValue("N(KlK)", fn,
                         (unsigned long long)lch_channel_id(CH(self)),
                         (long)getpid(), (unsigned long long)nonce_get());
}

const char lchpy_channel_unpickle_doc[] =
    "_unpickle_channel(id, pid, nonce)\n--\n\n"
    "The live channel with this id, if the pickle was made in this process\n"
    "(what pickle calls for a pickled Channel). ChannelNotFoundError if it\n"
    "was made in another process or the channel is gone.";

PyObject *lchpy_channel_unpickle(PyObject *mod, PyObject *args)
{
    unsigned long long id, nonce;
    long pid;
    if (!PyArg_ParseTuple(args, "KlK:_unpickle_channel", &id, &pid, &nonce))
        return NULL;
    lchpy_state *st = PyModule_GetState(mod);
    if (pid != (long)getpid()) {
        PyErr_Format(st->ChannelNotFoundError,
                     "libchan.Channel id=%llu was pickled in another process "
                     "(pid %ld, this is %ld): a channel lives in one process",
                     id, pid, (long)getpid());
        return NULL;
    }
    if (nonce != nonce_get()) {
        PyErr_Format(st->ChannelNotFoundError,
                     "libchan.Channel id=%llu was pickled in another process "
                     "that had this pid (%ld): a channel lives in one process",
                     id, pid);
        return NULL;
    }
    lch_channel *ch = NULL;
    int rc = lch_channel_lookup_id(id, &ch);
    if (rc == LCH_ENOENT) {
        PyErr_Format(st->ChannelNotFoundError,
                     "libchan.Channel id=%llu is gone: a pickle holds no "
                     "reference, and the last one was dropped before it was "
                     "unpickled",
                     id);
        return NULL;
    }
    if (rc != LCH_OK)
        return lchpy_raise(st, rc, "unpickling a Channel");
    return lchpy_channel_wrap(st, ch);
}

/* ---- attributes -------------------------------------------------------- */

static PyObject *Channel_get_id(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(lch_channel_id(CH(self)));
}

/* The maxsize given at creation: the capacity of a bounded channel, else
 * what the binding stored (0 or negative; 0 for a channel created in C). */
static Py_ssize_t given_maxsize(lch_channel *ch)
{
    size_t cap = lch_channel_capacity(ch);
    if (cap)
        return (Py_ssize_t)cap;
    int64_t given = lch_channel_user_value(ch);
    return given < 0 ? (Py_ssize_t)given : 0;
}

static PyObject *Channel_get_maxsize(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(given_maxsize(CH(self)));
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
    /* As queue.Queue: maxsize <= 0 means unbounded, and maxsize reports
     * what was given, in every interpreter. */
    opts.capacity = maxsize > 0 ? (size_t)maxsize : 0;
    opts.user_value = maxsize;
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
    return lchpy_channel_wrap(st, ch);
}

static void Channel_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    /* Out of the table before the channel can be looked up again. */
    wrappers_remove(state_of(self), lch_channel_id(CH(self)), self);
    lch_channel_unref(CH(self));
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *Channel_repr(PyObject *self)
{
    lch_channel *ch = CH(self);
    const char *name = lch_channel_name(ch);
    return PyUnicode_FromFormat(
        "<libchan.Channel id=%llu%s%s%s maxsize=%zd qsize=%zu%s>",
        (unsigned long long)lch_channel_id(ch), name ? " name='" : "",
        name ? name : "", name ? "'" : "", given_maxsize(ch),
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
    {"_move_to", Channel_move_to, METH_O, move_to_doc},
    {"get_async", (PyCFunction)(void (*)(void))Channel_get_async,
     METH_FASTCALL | METH_KEYWORDS, get_async_doc},
    {"put_async", (PyCFunction)(void (*)(void))Channel_put_async,
     METH_FASTCALL | METH_KEYWORDS, put_async_doc},
    {"qsize", Channel_qsize, METH_NOARGS, qsize_doc},
    {"empty", Channel_empty, METH_NOARGS, empty_doc},
    {"full", Channel_full, METH_NOARGS, full_doc},
    {"shutdown", (PyCFunction)(void (*)(void))Channel_shutdown,
     METH_VARARGS | METH_KEYWORDS, shutdown_doc},
    {"__reduce__", Channel_reduce, METH_NOARGS,
     "Pickle by id, for this process only: unpickling gives this same\n"
     "Channel object, or ChannelNotFoundError in another process or once\n"
     "the channel is gone (a pickle holds no reference). copy.copy and\n"
     "copy.deepcopy return the channel itself."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Channel_getset[] = {
    {"id", Channel_get_id, NULL,
     "Process-unique id; lookup(id) finds the channel while it lives.", NULL},
    {"maxsize", Channel_get_maxsize, NULL,
     "The maxsize given at creation (as queue.Queue: <= 0 is unbounded).",
     NULL},
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
"maxsize <= 0 means unbounded (and .maxsize reports it as given);\n"
"otherwise put() waits while maxsize items are queued. A named channel\n"
"can be found with lookup(name) while it lives. pickle=False refuses\n"
"objects the codec cannot carry (NotShareableError) instead of pickling\n"
"them. Iterating yields items until the channel is shut down and drained;\n"
"so does `async for`, which waits on the running asyncio loop\n"
"(get_async, put_async: see libchan.aio).\n\n"
"An interpreter has one Channel object per channel: getting a channel\n"
"from a Channel, lookup() or another interpreter gives the object this\n"
"interpreter already holds, if any. A Channel pickles by id, for this\n"
"process only, and holds no reference while pickled: keep it alive until\n"
"it is unpickled (else ChannelNotFoundError).");

static PyType_Slot Channel_slots[] = {
    {Py_tp_doc, (void *)Channel_doc},
    {Py_tp_new, Channel_new},
    {Py_tp_dealloc, Channel_dealloc},
    {Py_tp_repr, Channel_repr},
    {Py_tp_richcompare, Channel_richcompare},
    {Py_tp_hash, Channel_hash},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, Channel_iternext},
    {Py_am_aiter, Channel_aiter},
    {Py_am_anext, Channel_anext},
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
