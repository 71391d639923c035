"""Functions that test_concurrent_interpreters.py runs in subinterpreters
through ``Interpreter.call()`` and ``InterpreterPoolExecutor``.

They must live in a module the subinterpreter can import: ``call()`` sends a
function that uses globals by pickle, that is as a reference (this module's
name and the function's), and the receiving interpreter imports this module.
It imports only libchan, ctypes and the stdlib, all of which load in an
isolated subinterpreter (pytest, hypothesis and numpy are not needed there).
The tests put this directory on the subinterpreter's ``sys.path`` first
(``site.addsitedir``, also as the executor's initializer).

Not a test module (no ``test_`` prefix): pytest does not collect it.
"""

import ctypes

import libchan


class _PyBuffer(ctypes.Structure):
    """CPython's Py_buffer (Include/pybuffer.h), stable since 3.3."""
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.py_object),
                ("len", ctypes.c_ssize_t), ("itemsize", ctypes.c_ssize_t),
                ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p),
                ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p),
                ("internal", ctypes.c_void_p)]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer),
                        ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None


def buffer_address(obj):
    """Address of the memory obj exports through the buffer protocol (what a
    memoryview of it points at), read with the C API rather than from
    libchan: an independent check of SharedBuffer.address."""
    view = _PyBuffer()
    if _get_buffer(obj, ctypes.byref(view), 0) != 0:  # PyBUF_SIMPLE
        raise BufferError(f"no buffer: {type(obj).__name__}")
    try:
        return view.buf
    finally:
        _release_buffer(ctypes.byref(view))


def live_objects():
    """libchan's process-wide count of live objects (tracked ones)."""
    return libchan.debug_counters()["live_objects"]


def interpreter_id():
    from concurrent import interpreters
    return interpreters.get_current().id


def describe(buf, tup, ch):
    """What the callee sees of a SharedBuffer, a SharedTuple whose element 2
    is a SharedBuffer, and a Channel. Also puts this interpreter's id on ch
    (an int travels inside the channel's value: no libchan object is made,
    so that live_objects stays comparable). Only plain values are returned
    (ints and strs)."""
    seen = (interpreter_id(),
            type(buf).__name__, type(tup).__name__, type(ch).__name__,
            buf.address, buffer_address(buf),
            buffer_address(memoryview(buf)[16:]),
            tup[2].address, buffer_address(tup[2]),
            type(tup[1]).__name__,
            ch.id,
            live_objects())      # before anything below makes an object
    ch.put(seen[0])
    return seen


def echo(*objs):
    """The arguments back, as a tuple (of shareable objects it is
    shareable itself)."""
    return objs


def make_objects(data):
    """A SharedBuffer, a SharedTuple holding a slice of it and a Channel
    holding the buffer, all made here; with the buffer's address and this
    interpreter's id."""
    sb = libchan.SharedBuffer(data)
    st = libchan.SharedTuple((len(data), ("made", "here"), sb[1:]))
    ch = libchan.Channel()
    ch.put(sb)
    return sb, st, ch, buffer_address(sb), interpreter_id()


def relay(inbox, outbox, n):
    """Get n items from the stdlib queue inbox; put back on outbox each item,
    then what this interpreter saw of it (type name, buffer address or
    channel id), then objects made here."""
    for _ in range(n):
        x = inbox.get(timeout=10)
        outbox.put(x)
        if isinstance(x, libchan.SharedBuffer):
            outbox.put(("SharedBuffer", buffer_address(x)))
        elif isinstance(x, libchan.SharedTuple):
            outbox.put(("SharedTuple", buffer_address(x[2])))
        else:
            outbox.put((type(x).__name__, x.id))
    sb, st, ch, addr, _ = make_objects(b"made by relay" * 100)
    outbox.put(sb)
    outbox.put(st)
    outbox.put(ch)
    outbox.put(addr)
    return live_objects()


def put_objects(q, data):
    """Put a SharedBuffer and a SharedTuple made here on the stdlib queue q,
    then drop every reference but the queue's."""
    sb = libchan.SharedBuffer(data)
    q.put(sb)
    q.put(libchan.SharedTuple((1, sb)))
    return live_objects()


def checksum(buf, start, stop):
    """Sum of buf[start:stop], read in place through a memoryview; with the
    address it read from."""
    mv = memoryview(buf)[start:stop]
    try:
        return sum(mv), buffer_address(mv), interpreter_id()
    finally:
        mv.release()


def main_attr(name):
    """An attribute of this interpreter's __main__ (what prepare_main()
    bound there)."""
    import __main__
    return getattr(__main__, name)
