"""Task functions for test_executor.py, importable by worker interpreters
(by reference, as ``executor_tasks:name``): only the stdlib and libchan
here, so a worker imports neither pytest nor the test module."""

import sys
import threading

import libchan

if sys.version_info >= (3, 13):
    import _interpreters as _xi
else:
    import _xxsubinterpreters as _xi

INIT_CALLS = []          # per interpreter: what initializer() was called with


def interp_id():
    """The id of the interpreter running this."""
    cur = _xi.get_current()
    return int(cur[0] if isinstance(cur, tuple) else cur)


def add(a, b=0, *, c=0):
    return a + b + c


def ident(x):
    return x


def whoami(_=None):
    """(interpreter id, thread name, __name__ of __main__)."""
    return (interp_id(), threading.current_thread().name,
            sys.modules["__main__"].__name__)


def types_of(*args, **kwargs):
    return ([type(a).__name__ for a in args],
            {k: type(v).__name__ for k, v in kwargs.items()})


def initializer(*args):
    INIT_CALLS.append(args)


def init_calls(_=None):
    return (interp_id(), list(INIT_CALLS))


def failing_initializer(tag):
    raise LookupError("initializer failed: %s" % tag)


def gate(started, release, tag=None):
    """Report tag on started, then wait for one item on release; returns
    (tag, interpreter id)."""
    started.put(tag)
    release.get(timeout=60)
    return tag, interp_id()


def rendezvous(mine, theirs, tag):
    """Two of these meet only if they run at the same time; returns (tag,
    the other's tag, interpreter id, what initializer() was called with
    there)."""
    mine.put(tag)
    return tag, theirs.get(timeout=60), interp_id(), list(INIT_CALLS)


def buffer_info(buf, offsets=(0,)):
    """The buffer's address, length and bytes at offsets, read in place."""
    mv = memoryview(buf)
    return buf.address, len(buf), bytes(mv[o] for o in offsets)


def make_buffer(n, byte):
    b = libchan.SharedBuffer(bytes([byte]) * n)
    return b, b.address


def put_on(ch, value):
    ch.put(value)
    return "sent"


def shutdown_channel(channel_id):
    """Shut down a channel from inside a worker (to kill the pool)."""
    libchan.lookup(channel_id).shutdown(immediate=True)
    return "done"


def raise_exit(code):
    raise SystemExit(code)


def raise_interrupt():
    raise KeyboardInterrupt("from a task")


def raise_value_error(msg):
    raise ValueError(msg)


def fail_or_echo(i, size, fail):
    """The stress task: returns (i, bytes of `size`) or raises."""
    if fail:
        raise ArithmeticError("task %d failed" % i)
    return i, bytes([i % 256]) * size


class Point:
    """Pickled by reference to this module (not a codec type)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return type(other) is Point and (self.x, self.y) == (other.x, other.y)

    def norm2(self):
        return self.x * self.x + self.y * self.y


class Holder:
    """Holds a SharedBuffer inside a pickled object."""

    def __init__(self, buf):
        self.buf = buf


def holder_address(h):
    return type(h).__name__, h.buf.address


def make_point(x, y):
    return Point(x, y)


class CodedError(Exception):
    """Rebuilt by pickle from args: carries a code."""

    def __init__(self, msg, code):
        super().__init__(msg, code)
        self.code = code


class StubbornError(Exception):
    """Pickles, but cannot be rebuilt: __init__ needs two arguments and
    args holds one."""

    def __init__(self, a, b):
        super().__init__("stubborn %s/%s" % (a, b))


class LockedError(Exception):
    """Cannot be pickled at all: holds a lock."""

    def __init__(self, msg):
        super().__init__(msg)
        self.lock = threading.Lock()


def raise_coded(code):
    raise CodedError("coded", code)


def raise_stubborn():
    raise StubbornError(1, 2)


def raise_locked():
    raise LockedError("has a lock")


def return_lock():
    return threading.Lock()


def return_local_class():
    """An instance of a class only this worker can import (a module made
    here at run time): it pickles, but the caller cannot unpickle it."""
    import types

    mod = types.ModuleType("lch_worker_only")
    exec("class Local:\n    pass\n", mod.__dict__)
    mod.Local.__module__ = "lch_worker_only"
    sys.modules["lch_worker_only"] = mod
    return mod.Local()
