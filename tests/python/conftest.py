"""Shared fixtures and helpers for the libchan binding tests.

- Object tracking is switched on before any test runs; every test is then
  checked for leaked libchan objects (channels, buffers, encodings).
- ``Interp`` runs code in an isolated subinterpreter (own GIL) through the
  stdlib's interpreters module of each version: ``_xxsubinterpreters`` on
  3.12, ``test.support.interpreters`` on 3.13 (or the ``interpreters_backport``
  package when the stdlib test package is absent), the public
  ``concurrent.interpreters`` on 3.14 and later.
- A Python without its interpreters module is a broken test environment
  (scripts/dev provisions it): every test that needs one fails, none skips.
"""

import gc
import os
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import HealthCheck, settings

import libchan

PY313 = sys.version_info >= (3, 13)
PY314 = sys.version_info >= (3, 14)

settings.register_profile(
    "libchan",
    deadline=None,
    database=None,
    max_examples=int(os.environ.get("LCH_HYPOTHESIS_EXAMPLES", "100")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("libchan")


def pytest_configure(config):
    libchan.debug_track_objects(True)
    config.addinivalue_line(
        "markers", "allow_leaks: skip the live-object check after this test")


# --------------------------------------------------------------------------
# Leak check
# --------------------------------------------------------------------------

def live_objects():
    return libchan.debug_counters()["live_objects"]


def wait_for_live(target, timeout=3.0):
    """gc.collect() until live_objects <= target (objects released by other
    threads or interpreters may lag a little); return the last count."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        now = live_objects()
        if now <= target or time.monotonic() > deadline:
            return now
        time.sleep(0.01)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.when == "call":
        item.lch_call_failed = rep.failed
    return rep


@pytest.fixture(autouse=True)
def no_leaks(request):
    gc.collect()
    before = live_objects()
    yield
    if request.node.get_closest_marker("allow_leaks"):
        return
    if getattr(request.node, "lch_call_failed", False):
        return      # a failed test's traceback keeps its locals alive
    after = wait_for_live(before)
    assert after <= before, (
        f"libchan objects leaked by {request.node.name}: "
        f"live_objects {before} before, {after} after")


# --------------------------------------------------------------------------
# Subinterpreters
# --------------------------------------------------------------------------

_interp_mod = None      # 3.13+: the high-level (PEP 734) module
_queues_mod = None      # 3.13+: its queues module
_xxsub = None           # 3.12: _xxsubinterpreters
_interp_error = None    # why none could be imported: every user fails

if PY314:
    try:
        from concurrent import interpreters as _interp_mod
        # The module with the shape of 3.13's queues (create, Queue,
        # QueueEmpty, ...); concurrent.interpreters re-exports its public
        # names (create_queue, Queue, QueueEmpty, QueueFull).
        from concurrent.interpreters import _queues as _queues_mod
    except ImportError as e:  # pragma: no cover
        _interp_error = (f"concurrent.interpreters cannot be imported on "
                         f"Python {sys.version.split()[0]}: {e}")
elif PY313:
    try:
        from test.support import interpreters as _interp_mod
        from test.support.interpreters import queues as _queues_mod
    except ImportError as e:
        try:
            from interpreters_backport import interpreters as _interp_mod
            from interpreters_backport.interpreters import queues as _queues_mod
        except ImportError as e2:  # pragma: no cover
            _interp_error = (
                f"neither test.support.interpreters ({e}) nor "
                f"interpreters_backport ({e2}) can be imported on Python "
                f"{sys.version.split()[0]}: install CPython's test package "
                f"(Debian: libpython3.13-testsuite) or interpreters-pep-734")
else:
    try:
        import _xxsubinterpreters as _xxsub
    except ImportError as e:  # pragma: no cover
        _interp_error = f"_xxsubinterpreters cannot be imported: {e}"


def interpreters_module_name():
    """The module the tests drive subinterpreters with (for reports)."""
    if _interp_mod is not None:
        return _interp_mod.__name__
    if _xxsub is not None:
        return _xxsub.__name__
    return None


def pytest_report_header(config):
    name = interpreters_module_name()
    return [f"subinterpreters: {name or 'NONE: ' + _interp_error}"]


def interp_modules():
    """(interpreters, queues) on 3.13 and later; (None, None) on 3.12.

    3.13: test.support.interpreters and its queues. 3.14+:
    concurrent.interpreters and concurrent.interpreters._queues (same shape
    as 3.13's queues, except that create() has no ``syncobj``: every
    shareable object crosses natively, see ``create_shareable_queue``)."""
    return _interp_mod, _queues_mod


def xxsubinterpreters():
    return _xxsub


def require_subinterpreters():
    """Fail (never skip) the calling test when this Python's interpreters
    module could not be imported: the test environment is broken."""
    if _interp_error:
        pytest.fail(f"no subinterpreter module: {_interp_error}",
                    pytrace=False)


def create_shareable_queue(maxsize=0):
    """A stdlib cross-interpreter queue that passes shareable objects (such
    as libchan's) natively rather than pickled: 3.13's
    ``queues.create(syncobj=True)``; on 3.14+ ``create_queue()``, which
    sends every shareable object natively (and pickles only the others).
    Fails on 3.12, which has no such queue."""
    require_subinterpreters()
    if _queues_mod is None:
        pytest.fail(f"no interpreters queues on Python "
                    f"{sys.version.split()[0]}", pytrace=False)
    if PY314:
        return _interp_mod.create_queue(maxsize)
    return _queues_mod.create(maxsize, syncobj=True)


# The low-level channels of the interpreters module: 3.12 _xxinterpchannels,
# 3.13+ _interpchannels (whose send takes an unbound-item op, 3 = UNBOUND,
# the high-level default, and must not block until received; recv returns
# (obj, unboundop)). Code to exec, in the main interpreter or a subinterpreter:
# it defines chans, ch_create(), ch_send(cid, obj) and ch_recv(cid).
CHANNELS_SHIM = """
try:
    import _interpchannels as chans
except ImportError:
    import _xxinterpchannels as chans
    ch_create, ch_send, ch_recv = chans.create, chans.send, chans.recv
else:
    def ch_create():
        return chans.create(3)
    def ch_send(cid, obj):
        chans.send(cid, obj, 3, blocking=False)
    def ch_recv(cid):
        return chans.recv(cid)[0]
"""


class SubinterpreterError(Exception):
    """Code run in a subinterpreter raised; the message is its traceback."""


class Interp:
    """An isolated subinterpreter (own GIL), with the same sys.path as the
    main interpreter (so that ``import libchan`` finds the same build)."""

    def __init__(self):
        require_subinterpreters()
        if PY313:
            self._interp = _interp_mod.create()
            self.id = self._interp.id
        else:
            self.id = _xxsub.create(isolated=True)
        self.closed = False
        # threading is imported here, from the main thread: CPython 3.12
        # hangs in destroy() if a subinterpreter first imported threading
        # (libchan imports queue, which imports it) from another thread.
        self.exec(f"import sys, threading; sys.path[:] = {list(sys.path)!r}")

    def exec(self, code, /, **shared):
        """Run code (dedented) in the subinterpreter, in the calling thread.
        shared: objects bound in its __main__ first (prepare_main on 3.13,
        run_string(shared=...) on 3.12); they must be shareable."""
        code = textwrap.dedent(code)
        if PY313:
            if shared:
                self._interp.prepare_main(**shared)
            try:
                self._interp.exec(code)
            except _interp_mod.ExecutionFailed as e:
                info = e.excinfo
                raise SubinterpreterError(
                    getattr(info, "errdisplay", None) or str(e)) from None
        else:
            try:
                _xxsub.run_string(self.id, code, shared or None)
            except _xxsub.RunFailedError as e:
                raise SubinterpreterError(str(e)) from None

    def start(self, code, /, **shared):
        """Run code in a new thread; returns a Runner (call .join())."""
        r = Runner(self, code, shared)
        r.start()
        return r

    def close(self):
        if self.closed:
            return
        self.closed = True
        if PY313:
            self._interp.close()
        else:
            _xxsub.destroy(self.id)


class Runner(threading.Thread):
    def __init__(self, interp, code, shared):
        super().__init__(daemon=True)
        self.interp, self.code, self.shared = interp, code, shared
        self.error = None

    def run(self):
        try:
            self.interp.exec(self.code, **self.shared)
        except BaseException as e:  # noqa: BLE001 - reported by join()
            self.error = e

    def join(self, timeout=30):
        super().join(timeout)
        if self.is_alive():
            raise AssertionError(
                f"subinterpreter {self.interp.id} still running after "
                f"{timeout} s")
        if self.error is not None:
            raise self.error


@pytest.fixture
def make_interp():
    """Factory of Interp objects, all closed when the test ends (before the
    leak check, which is torn down later)."""
    require_subinterpreters()
    made = []

    def make():
        i = Interp()
        made.append(i)
        return i

    yield make
    errors = []
    for i in made:
        try:
            i.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def interp(make_interp):
    return make_interp()


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

class ThreadRunner(threading.Thread):
    """A thread that remembers its target's result or exception."""

    def __init__(self, target, *args, **kwargs):
        super().__init__(daemon=True)
        self._t, self._a, self._k = target, args, kwargs
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = self._t(*self._a, **self._k)
        except BaseException as e:  # noqa: BLE001
            self.error = e

    def join(self, timeout=30):
        super().join(timeout)
        if self.is_alive():
            raise AssertionError(f"thread still running after {timeout} s")
        return self


def wait_parked(before, timeout=2.0):
    """Wait until futex_waits exceeds before (some thread parked), or the
    timeout passes; return whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if libchan.debug_counters()["futex_waits"] > before:
            return True
        time.sleep(0.002)
    return False
