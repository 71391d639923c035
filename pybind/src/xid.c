/* xid.c: makes Channel, SharedBuffer and SharedTuple shareable through
 * CPython's own cross-interpreter machinery (3.12 _xxsubinterpreters
 * run_string(shared=...), 3.13 Interpreter.prepare_main() and
 * queues.create(syncobj=True), and what 3.14 builds on them).
 *
 * There is no public API for this in any version, so this is the one file
 * that reaches into CPython's private one, and it is guarded per version:
 *   3.12  _PyCrossInterpreterData_RegisterClass   public cpython/pystate.h
 *   3.13  the same names, in internal/pycore_crossinterp.h (Py_BUILD_CORE)
 *   3.14  _PyXIData_RegisterClass(tstate, type, {getdata}), _PyXIData_t
 * Heap types are registered per interpreter: every interpreter's module
 * exec registers its own three types.
 *
 * The shared data is the same lch_value a Channel would carry (a counted
 * reference to the libchan object), allocated with the raw allocator: it
 * holds no PyObject, so it survives the sending interpreter. new_object
 * runs in the receiving interpreter and imports libchan there if needed. */
#include <patchlevel.h>
#if PY_VERSION_HEX >= 0x030D0000
#define Py_BUILD_CORE_MODULE 1
#endif
#include "lchpy.h"

/* Built for a debug interpreter (pybind/CMakeLists.txt): the headers must be
 * its own, or the module would lack the debug build's reference checks and
 * skew its reference totals. */
#if defined(LCHPY_PY_DEBUG_ABI) && !defined(Py_DEBUG)
#error "building for a debug CPython, but Python.h came without Py_DEBUG (the release pyconfig.h): see pybind/CMakeLists.txt"
#endif

#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_crossinterp.h"
typedef _PyXIData_t xid_data;
#define XID_INIT _PyXIData_Init
#elif PY_VERSION_HEX >= 0x030D0000
#include "internal/pycore_crossinterp.h"
typedef _PyCrossInterpreterData xid_data;
#define XID_INIT _PyCrossInterpreterData_Init
#else
typedef _PyCrossInterpreterData xid_data;
#define XID_INIT _PyCrossInterpreterData_Init
#endif

static void xid_free(void *p)
{
    lch_value_release(p); /* no Python involved: any interpreter, any thread */
    PyMem_RawFree(p);
}

static PyObject *xid_new_object(xid_data *data)
{
    PyObject *mod;
    lchpy_state *st = lchpy_state_import(&mod);
    if (!st)
        return NULL;
    /* The data keeps its own reference until it is freed (CPython may ask
     * for more than one object from it): the new object gets another. */
    lch_value v;
    int rc = lch_value_copy(&v, (const lch_value *)data->data);
    PyObject *o = rc == LCH_OK ? lchpy_from_value(st, &v)
                               : lchpy_raise(st, rc, "sharing");
    Py_DECREF(mod);
    return o;
}

static int xid_getdata(PyThreadState *tstate, PyObject *obj, xid_data *data)
{
    lchpy_state *st = lchpy_state_of_type(Py_TYPE(obj));
    if (!st)
        return -1;
    lch_value *v = PyMem_RawMalloc(sizeof *v);
    if (!v) {
        PyErr_NoMemory();
        return -1;
    }
    if (lchpy_to_value(st, obj, 1, v) < 0) {
        PyMem_RawFree(v);
        return -1;
    }
    XID_INIT(data, PyThreadState_GetInterpreter(tstate), v, NULL,
             xid_new_object);
    data->free = xid_free;
    return 0;
}

static int register_type(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030E0000
    _PyXIData_getdata_t getdata = {.basic = xid_getdata};
    return _PyXIData_RegisterClass(PyThreadState_Get(), tp, getdata);
#else
    return _PyCrossInterpreterData_RegisterClass(tp, xid_getdata);
#endif
}

int lchpy_xid_register(lchpy_state *st)
{
    if (register_type(st->Channel_Type) < 0 ||
        register_type(st->SharedBuffer_Type) < 0 ||
        register_type(st->SharedTuple_Type) < 0)
        return -1;
    return 0;
}
