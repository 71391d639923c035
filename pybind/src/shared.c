/* shared.c: libchan.SharedBuffer and libchan.SharedTuple, Python faces of
 * libchan objects that every interpreter can hold at once.
 *
 * SharedBuffer wraps an lch_buffer: immutable bytes, 64-byte aligned,
 * exported read-only through the buffer protocol, so memoryview, bytes(),
 * numpy.frombuffer and friends read them in place in any interpreter.
 *
 * SharedTuple wraps an lch_encoded whose root is a tuple, plus a view of
 * one tuple inside it (the root, or one nested in it). Elements are decoded
 * when accessed; a nested tuple comes back as another SharedTuple over the
 * same encoding. Equality and hashing are those of the equivalent tuple. */
#include "lchpy.h"

#include <string.h>

/* ---- SharedBuffer ---------------------------------------------------------- */

#define BUF(o) (((lchpy_SharedBuffer *)(o))->buf)

PyObject *lchpy_buffer_wrap(lchpy_state *st, lch_buffer *buf)
{
    lchpy_SharedBuffer *self =
        PyObject_New(lchpy_SharedBuffer, st->SharedBuffer_Type);
    if (!self) {
        lch_buffer_unref(buf);
        return NULL;
    }
    self->buf = buf;
    self->hash = -1;
    return (PyObject *)self;
}

/* Copies at least this large are made with the GIL released. */
#define NOGIL_COPY_MIN ((size_t)256 * 1024)

static PyObject *SharedBuffer_new(PyTypeObject *tp, PyObject *args,
                                  PyObject *kwds)
{
    static char *kwlist[] = {"data", NULL};
    PyObject *data;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:SharedBuffer", kwlist,
                                     &data))
        return NULL;
    Py_buffer view;
    /* Any layout: strided exporters (numpy slices) are made contiguous by
     * the copy below. */
    if (PyObject_GetBuffer(data, &view, PyBUF_FULL_RO) < 0)
        return NULL;
    lchpy_state *st = PyType_GetModuleState(tp);
    lch_buffer *buf = NULL;
    void *dst = NULL;
    int rc = lch_buffer_new_uninit(&buf, (size_t)view.len, &dst);
    if (rc != LCH_OK) {
        PyBuffer_Release(&view);
        return lchpy_raise(st, rc, "SharedBuffer");
    }
    int ok = 0;
    if (PyBuffer_IsContiguous(&view, 'C')) {
        if ((size_t)view.len >= NOGIL_COPY_MIN) {
            Py_BEGIN_ALLOW_THREADS
            memcpy(dst, view.buf, (size_t)view.len);
            Py_END_ALLOW_THREADS
        } else if (view.len) {
            memcpy(dst, view.buf, (size_t)view.len);
        }
    } else {
        ok = PyBuffer_ToContiguous(dst, &view, view.len, 'C');
    }
    PyBuffer_Release(&view);
    if (ok < 0) {
        lch_buffer_unref(buf);
        return NULL;
    }
    lchpy_SharedBuffer *self = (lchpy_SharedBuffer *)tp->tp_alloc(tp, 0);
    if (!self) {
        lch_buffer_unref(buf);
        return NULL;
    }
    self->buf = buf;
    self->hash = -1;
    return (PyObject *)self;
}

static void SharedBuffer_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    lch_buffer_unref(BUF(self));
    tp->tp_free(self);
    Py_DECREF(tp);
}

static int SharedBuffer_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    lch_buffer *b = BUF(self);
    /* Fails with BufferError for a writable request. */
    return PyBuffer_FillInfo(view, self, (void *)lch_buffer_data(b),
                             (Py_ssize_t)lch_buffer_len(b), 1, flags);
}

static Py_ssize_t SharedBuffer_len(PyObject *self)
{
    return (Py_ssize_t)lch_buffer_len(BUF(self));
}

static PyObject *SharedBuffer_subscript(PyObject *self, PyObject *key)
{
    lch_buffer *b = BUF(self);
    const unsigned char *p = lch_buffer_data(b);
    Py_ssize_t n = (Py_ssize_t)lch_buffer_len(b);
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred())
            return NULL;
        if (i < 0)
            i += n;
        if (i < 0 || i >= n) {
            PyErr_SetString(PyExc_IndexError, "index out of range");
            return NULL;
        }
        return PyLong_FromLong(p[i]);
    }
    if (!PySlice_Check(key)) {
        PyErr_Format(PyExc_TypeError,
                     "SharedBuffer indices must be integers or slices, not "
                     "%.100s",
                     Py_TYPE(key)->tp_name);
        return NULL;
    }
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0)
        return NULL;
    Py_ssize_t len = PySlice_AdjustIndices(n, &start, &stop, step);
    if (step != 1) {
        /* Not contiguous: a plain bytes copy. */
        PyObject *out = PyBytes_FromStringAndSize(NULL, len);
        if (!out)
            return NULL;
        char *q = PyBytes_AS_STRING(out);
        for (Py_ssize_t i = 0, j = start; i < len; i++, j += step)
            q[i] = (char)p[j];
        return out;
    }
    lchpy_state *st = PyType_GetModuleState(Py_TYPE(self));
    lch_buffer *slice = NULL;
    int rc = lch_buffer_slice(&slice, b, (size_t)start, (size_t)len);
    if (rc != LCH_OK)
        return lchpy_raise(st, rc, "slicing a SharedBuffer");
    return lchpy_buffer_wrap(st, slice);
}

static PyObject *SharedBuffer_richcompare(PyObject *self, PyObject *other,
                                          int op)
{
    if (op != Py_EQ && op != Py_NE)
        Py_RETURN_NOTIMPLEMENTED;
    Py_buffer view;
    if (PyObject_GetBuffer(other, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NOTIMPLEMENTED;
    }
    lch_buffer *b = BUF(self);
    size_t n = lch_buffer_len(b);
    int eq = (size_t)view.len == n &&
             (n == 0 || memcmp(lch_buffer_data(b), view.buf, n) == 0);
    PyBuffer_Release(&view);
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t SharedBuffer_hash(PyObject *self)
{
    lchpy_SharedBuffer *sb = (lchpy_SharedBuffer *)self;
    if (sb->hash != -1)
        return sb->hash;
    /* Equal to hash(bytes(self)), as == with bytes requires. */
#if PY_VERSION_HEX >= 0x030E0000
    sb->hash = Py_HashBuffer(lch_buffer_data(sb->buf),
                             (Py_ssize_t)lch_buffer_len(sb->buf));
#else
    PyObject *tmp = PyBytes_FromStringAndSize(lch_buffer_data(sb->buf),
                                              (Py_ssize_t)lch_buffer_len(
                                                  sb->buf));
    if (!tmp)
        return -1;
    sb->hash = PyObject_Hash(tmp);
    Py_DECREF(tmp);
#endif
    return sb->hash;
}

static PyObject *SharedBuffer_bytes(PyObject *self, PyObject *unused)
{
    (void)unused;
    lch_buffer *b = BUF(self);
    return PyBytes_FromStringAndSize(lch_buffer_data(b),
                                     (Py_ssize_t)lch_buffer_len(b));
}

static PyObject *SharedBuffer_reduce(PyObject *self, PyObject *unused)
{
    PyObject *data = SharedBuffer_bytes(self, unused);
    if (!data)
        return NULL;
    return Py_BuildValue("O(N)", (PyObject *)Py_TYPE(self), data);
}

static PyObject *SharedBuffer_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<libchan.SharedBuffer len=%zu at %p>",
                                lch_buffer_len(BUF(self)),
                                lch_buffer_data(BUF(self)));
}

static PyObject *SharedBuffer_get_address(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromVoidPtr((void *)lch_buffer_data(BUF(self)));
}

static PyMethodDef SharedBuffer_methods[] = {
    {"__bytes__", SharedBuffer_bytes, METH_NOARGS,
     "A bytes copy of the contents."},
    {"__reduce__", SharedBuffer_reduce, METH_NOARGS,
     "Pickles as SharedBuffer(bytes)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef SharedBuffer_getset[] = {
    {"address", SharedBuffer_get_address, NULL,
     "Address of the first byte, the same in every interpreter (64-byte "
     "aligned unless the buffer is a slice).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(SharedBuffer_doc,
"SharedBuffer(data)\n--\n\n"
"Immutable bytes in memory that every interpreter of the process can read\n"
"in place. data is any buffer-protocol object; it is copied once. The\n"
"buffer protocol is read-only (memoryview, bytes(), numpy.frombuffer).\n"
"Slices with step 1 share the memory; == compares with any bytes-like\n"
"object and hash() equals the hash of the bytes. A SharedBuffer sent\n"
"through a Channel or the interpreters module is not copied.");

static PyType_Slot SharedBuffer_slots[] = {
    {Py_tp_doc, (void *)SharedBuffer_doc},
    {Py_tp_new, SharedBuffer_new},
    {Py_tp_dealloc, SharedBuffer_dealloc},
    {Py_tp_repr, SharedBuffer_repr},
    {Py_tp_richcompare, SharedBuffer_richcompare},
    {Py_tp_hash, SharedBuffer_hash},
    {Py_tp_methods, SharedBuffer_methods},
    {Py_tp_getset, SharedBuffer_getset},
    {Py_bf_getbuffer, SharedBuffer_getbuffer},
    {Py_mp_length, SharedBuffer_len},
    {Py_mp_subscript, SharedBuffer_subscript},
    {Py_sq_length, SharedBuffer_len},
    {0, NULL},
};

PyType_Spec lchpy_buffer_spec = {
    .name = "libchan.SharedBuffer",
    .basicsize = sizeof(lchpy_SharedBuffer),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = SharedBuffer_slots,
};

/* ---- SharedTuple ----------------------------------------------------------- */

#define TUP(o) ((lchpy_SharedTuple *)(o))

PyObject *lchpy_tuple_wrap(lchpy_state *st, lch_encoded *enc,
                           const lch_view *parent, size_t i)
{
    lchpy_SharedTuple *self =
        PyObject_New(lchpy_SharedTuple, st->SharedTuple_Type);
    if (!self) {
        lch_encoded_unref(enc);
        return NULL;
    }
    self->enc = enc;
    self->st = st;
    self->hash = -1;
    self->nested = parent != NULL;
    lch_view root;
    if (!parent) {
        lch_encoded_view(enc, &root);
        parent = &root;
    }
    lch_view_child(parent, i, &self->view);
    return (PyObject *)self;
}

PyObject *lchpy_tuple_materialize(lchpy_SharedTuple *t)
{
    size_t n = lch_view_count(&t->view);
    PyObject *out = PyTuple_New((Py_ssize_t)n);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *o =
            lchpy_decode_elem(t->st, t->enc, &t->view, i, LCHPY_DEC_LAZY);
        if (!o) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, (Py_ssize_t)i, o);
    }
    return out;
}

static PyObject *SharedTuple_new(PyTypeObject *tp, PyObject *args,
                                 PyObject *kwds)
{
    static char *kwlist[] = {"iterable", NULL};
    PyObject *iterable = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:SharedTuple", kwlist,
                                     &iterable))
        return NULL;
    PyObject *tup = iterable ? PySequence_Tuple(iterable) : PyTuple_New(0);
    if (!tup)
        return NULL;
    lchpy_state *st = PyType_GetModuleState(tp);
    lch_encoded *enc = NULL;
    int r = lchpy_encode(st, tup, 1, 0, &enc);
    Py_DECREF(tup);
    if (r)
        return NULL;
    if (lch_encoded_type(enc) != LCH_V_TUPLE) {
        /* Pickled as a whole (too deep for the codec): not a view. */
        lch_encoded_unref(enc);
        PyErr_SetString(st->NotShareableError,
                        "SharedTuple: nested too deeply (or cyclic) for the "
                        "codec");
        return NULL;
    }
    return lchpy_tuple_wrap(st, enc, NULL, 0);
}

static void SharedTuple_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    lch_encoded_unref(TUP(self)->enc);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static Py_ssize_t SharedTuple_len(PyObject *self)
{
    return (Py_ssize_t)lch_view_count(&TUP(self)->view);
}

static PyObject *SharedTuple_item(PyObject *self, Py_ssize_t i)
{
    lchpy_SharedTuple *t = TUP(self);
    if (i < 0 || (size_t)i >= lch_view_count(&t->view)) {
        PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        return NULL;
    }
    return lchpy_decode_elem(t->st, t->enc, &t->view, (size_t)i,
                             LCHPY_DEC_LAZY);
}

static PyObject *SharedTuple_subscript(PyObject *self, PyObject *key)
{
    Py_ssize_t n = SharedTuple_len(self);
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred())
            return NULL;
        return SharedTuple_item(self, i < 0 ? i + n : i);
    }
    if (!PySlice_Check(key)) {
        PyErr_Format(PyExc_TypeError,
                     "tuple indices must be integers or slices, not %.100s",
                     Py_TYPE(key)->tp_name);
        return NULL;
    }
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0)
        return NULL;
    Py_ssize_t len = PySlice_AdjustIndices(n, &start, &stop, step);
    PyObject *out = PyTuple_New(len);
    if (!out)
        return NULL;
    for (Py_ssize_t i = 0, j = start; i < len; i++, j += step) {
        PyObject *o = SharedTuple_item(self, j);
        if (!o) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, o);
    }
    return out;
}

/* Comparisons, hashing, count and index are those of the equivalent tuple:
 * materialize it (decoding every element once) and ask it. */
static PyObject *as_tuple(PyObject *o, lchpy_state *st)
{
    if (Py_TYPE(o) == st->SharedTuple_Type)
        return lchpy_tuple_materialize(TUP(o));
    if (PyTuple_Check(o))
        return Py_NewRef(o);
    return NULL;
}

static PyObject *SharedTuple_richcompare(PyObject *self, PyObject *other,
                                         int op)
{
    lchpy_state *st = TUP(self)->st;
    if (Py_TYPE(other) != st->SharedTuple_Type && !PyTuple_Check(other))
        Py_RETURN_NOTIMPLEMENTED;
    if ((op == Py_EQ || op == Py_NE) &&
        SharedTuple_len(self) != PyObject_Length(other))
        return PyBool_FromLong(op == Py_NE);
    PyObject *a = as_tuple(self, st);
    if (!a)
        return NULL;
    PyObject *b = as_tuple(other, st);
    if (!b) {
        Py_DECREF(a);
        return NULL;
    }
    PyObject *r = PyObject_RichCompare(a, b, op);
    Py_DECREF(a);
    Py_DECREF(b);
    return r;
}

static Py_hash_t SharedTuple_hash(PyObject *self)
{
    lchpy_SharedTuple *t = TUP(self);
    if (t->hash != -1)
        return t->hash;
    PyObject *a = lchpy_tuple_materialize(t);
    if (!a)
        return -1;
    t->hash = PyObject_Hash(a); /* immutable contents: cache it */
    Py_DECREF(a);
    return t->hash;
}

static int SharedTuple_contains(PyObject *self, PyObject *value)
{
    Py_ssize_t n = SharedTuple_len(self);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = SharedTuple_item(self, i);
        if (!o)
            return -1;
        int r = PyObject_RichCompareBool(o, value, Py_EQ);
        Py_DECREF(o);
        if (r != 0)
            return r;
    }
    return 0;
}

static PyObject *call_on_tuple(PyObject *self, const char *method,
                               PyObject *args)
{
    PyObject *a = lchpy_tuple_materialize(TUP(self));
    if (!a)
        return NULL;
    PyObject *fn = PyObject_GetAttrString(a, method);
    Py_DECREF(a);
    if (!fn)
        return NULL;
    PyObject *r = PyObject_Call(fn, args, NULL);
    Py_DECREF(fn);
    return r;
}

static PyObject *SharedTuple_count(PyObject *self, PyObject *args)
{
    return call_on_tuple(self, "count", args);
}

static PyObject *SharedTuple_index(PyObject *self, PyObject *args)
{
    return call_on_tuple(self, "index", args);
}

static PyObject *SharedTuple_reduce(PyObject *self, PyObject *unused)
{
    (void)unused;
    PyObject *a = lchpy_tuple_materialize(TUP(self));
    if (!a)
        return NULL;
    return Py_BuildValue("O(N)", (PyObject *)Py_TYPE(self), a);
}

static PyObject *SharedTuple_repr(PyObject *self)
{
    PyObject *a = lchpy_tuple_materialize(TUP(self));
    if (!a)
        return NULL;
    PyObject *r = PyUnicode_FromFormat("libchan.SharedTuple(%R)", a);
    Py_DECREF(a);
    return r;
}

static PyObject *SharedTuple_get_nbytes(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(lch_encoded_len(TUP(self)->enc));
}

static PyMethodDef SharedTuple_methods[] = {
    {"count", SharedTuple_count, METH_VARARGS,
     "count(value)\n--\n\nNumber of elements equal to value."},
    {"index", SharedTuple_index, METH_VARARGS,
     "index(value, start=0, stop=sys.maxsize)\n--\n\n"
     "First index of value; ValueError if it is not present."},
    {"__reduce__", SharedTuple_reduce, METH_NOARGS,
     "Pickles as SharedTuple(tuple)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef SharedTuple_getset[] = {
    {"nbytes", SharedTuple_get_nbytes, NULL,
     "Size in bytes of the encoding this tuple lives in.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(SharedTuple_doc,
"SharedTuple(iterable=())\n--\n\n"
"An immutable tuple encoded once into memory that every interpreter of\n"
"the process can read in place. Elements are decoded when accessed;\n"
"tuples nested inside come back as SharedTuple views of the same memory;\n"
"slices and tuple(st) are plain tuples. Equal to, and hashes like, the\n"
"equivalent tuple. Sent through a Channel or the interpreters module it\n"
"is not copied.");

static PyType_Slot SharedTuple_slots[] = {
    {Py_tp_doc, (void *)SharedTuple_doc},
    {Py_tp_new, SharedTuple_new},
    {Py_tp_dealloc, SharedTuple_dealloc},
    {Py_tp_repr, SharedTuple_repr},
    {Py_tp_richcompare, SharedTuple_richcompare},
    {Py_tp_hash, SharedTuple_hash},
    {Py_tp_methods, SharedTuple_methods},
    {Py_tp_getset, SharedTuple_getset},
    {Py_sq_length, SharedTuple_len},
    {Py_sq_item, SharedTuple_item},
    {Py_sq_contains, SharedTuple_contains},
    {Py_mp_length, SharedTuple_len},
    {Py_mp_subscript, SharedTuple_subscript},
    {0, NULL},
};

PyType_Spec lchpy_tuple_spec = {
    .name = "libchan.SharedTuple",
    .basicsize = sizeof(lchpy_SharedTuple),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_SEQUENCE,
    .slots = SharedTuple_slots,
};
