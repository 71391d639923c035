"""libchan.InterpreterPoolExecutor: the concurrent.futures interface, worker
interpreters, functions by reference and from the main script, values and
exceptions both ways, every way a pool breaks or shuts down, map, asyncio,
zero copy, and a stress run. The task functions live in executor_tasks.py
(what the workers import); the main-script cases run executor_script.py in
a subprocess. No timings: where "promptly" matters, the test counts which
tasks ran."""

import asyncio
import collections
import concurrent.futures as cf
import functools
import gc
import inspect
import itertools
import json
import math
import operator
import os
import random
import signal
import subprocess
import sys
import threading
import time
import types

import pytest

import libchan
from libchan import (BrokenInterpreterPool, Channel, InterpreterPoolExecutor,
                     NotShareableError, SharedBuffer, TaskError)
from libchan.executor import RemoteTraceback

import executor_tasks as T
from conftest import live_objects, wait_for_live

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "executor_script.py")
WAIT = 60            # seconds: a hang guard on every wait, never a measure

if sys.version_info >= (3, 13):
    import _interpreters as _xi
else:
    import _xxsubinterpreters as _xi


def interp_count():
    return len(_xi.list_all())


@pytest.fixture
def make_pool():
    """Pools that are shut down (and waited for) when the test ends."""
    made = []

    def make(*args, **kwargs):
        p = InterpreterPoolExecutor(*args, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def pool(make_pool):
    return make_pool(2)


def gates(n_release=0):
    """(started, release): tasks report on started and wait on release."""
    started, release = Channel(), Channel()
    for _ in range(n_release):
        release.put(None)
    return started, release


def drain(ch):
    out = []
    while True:
        try:
            out.append(ch.get_nowait())
        except libchan.Empty:
            return out


# --------------------------------------------------------------------------
# Interface
# --------------------------------------------------------------------------

def test_is_a_concurrent_futures_executor():
    assert issubclass(InterpreterPoolExecutor, cf.Executor)
    assert libchan.InterpreterPoolExecutor is InterpreterPoolExecutor
    assert issubclass(BrokenInterpreterPool, cf.BrokenExecutor)
    if sys.version_info >= (3, 14):
        from concurrent.futures.interpreter import \
            BrokenInterpreterPool as StdBroken
        assert issubclass(BrokenInterpreterPool, StdBroken)
    params = list(
        inspect.signature(InterpreterPoolExecutor).parameters.values())
    assert [(p.name, p.default) for p in params[:4]] == [
        ("max_workers", None), ("thread_name_prefix", ""),
        ("initializer", None), ("initargs", ())]
    assert params[4].name == "pickle"
    assert params[4].kind is params[4].KEYWORD_ONLY
    m = inspect.signature(InterpreterPoolExecutor.map).parameters
    assert [(n, m[n].default) for n in ("timeout", "chunksize",
                                        "buffersize")] == [
        ("timeout", None), ("chunksize", 1), ("buffersize", None)]
    s = inspect.signature(InterpreterPoolExecutor.shutdown).parameters
    assert s["wait"].default is True and s["cancel_futures"].default is False


def test_constructor_checks_its_arguments():
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_workers"):
            InterpreterPoolExecutor(bad)
    with pytest.raises(TypeError, match="initializer must be a callable"):
        InterpreterPoolExecutor(1, initializer=5)
    with pytest.raises(NotShareableError, match="lambda"):
        InterpreterPoolExecutor(1, initializer=lambda: None)
    with pytest.raises(NotShareableError, match="pickle"):
        InterpreterPoolExecutor(1, initializer=T.initializer,
                                initargs=(T.Point(1, 2),), pickle=False)


def test_submit_args_kwargs_and_result(pool):
    assert pool.submit(T.add, 1, 2).result(WAIT) == 3
    assert pool.submit(T.add, 1, b=2, c=3).result(WAIT) == 6
    assert pool.submit(T.add, a=4).result(WAIT) == 4


def test_callables_by_reference_and_by_value(pool):
    calls = [
        (math.sqrt, (16,), 4.0),                       # builtin function
        (len, ("abcd",), 4),
        (int, ("12",), 12),                            # a class
        (T.Point, (3, 4), T.Point(3, 4)),             # a class, by name
        (functools.partial(T.add, 1, c=10), (2,), 13),
        (functools.partial(functools.partial(T.add, 1), 2), (), 3),
        (str.upper, ("ab",), "AB"),                    # method descriptor
        (operator.itemgetter(1), ((5, 6),), 6),        # callable object
        (T.Point(1, 2).norm2, (), 5),                  # bound method
        (dict.fromkeys, ("ab",), {"a": None, "b": None}),
    ]
    fs = [pool.submit(fn, *args) for fn, args, _ in calls]
    assert [f.result(WAIT) for f in fs] == [want for *_, want in calls]


def test_context_manager_shuts_down(make_pool):
    with make_pool(1) as p:
        assert p.submit(T.add, 2, 2).result(WAIT) == 4
    with pytest.raises(RuntimeError, match="after shutdown"):
        p.submit(T.add, 1)
    p.shutdown()                     # again: nothing happens
    p.shutdown(wait=False, cancel_futures=True)


def test_workers_are_subinterpreters_that_persist(make_pool):
    main_id = T.interp_id()
    p = make_pool(2, initializer=T.initializer, initargs=("x", 1))
    seen = [p.submit(T.init_calls).result(WAIT) for _ in range(20)]
    # one task at a time: one worker is enough, and it stays alive
    assert all(s == seen[0] for s in seen)
    iid, calls = seen[0]
    assert iid != main_id
    assert calls == [("x", 1)]       # the initializer ran once, there
    # two tasks that can only finish together: two interpreters at once,
    # each set up by the initializer
    a, b = Channel(), Channel()
    fa = p.submit(T.rendezvous, a, b, "A")
    fb = p.submit(T.rendezvous, b, a, "B")
    assert fa.result(WAIT)[:2] == ("A", "B")
    assert fb.result(WAIT)[:2] == ("B", "A")
    ia, ib = fa.result()[2], fb.result()[2]
    assert ia != ib and main_id not in (ia, ib)
    assert fa.result()[3] == fb.result()[3] == [("x", 1)]


def test_thread_name_prefix_and_main_name(make_pool):
    p = make_pool(1, thread_name_prefix="lchpool")
    iid, tname, main_name = p.submit(T.whoami).result(WAIT)
    assert main_name == "__main__"   # pytest's __main__ is not rerun
    names = {t.name for t in threading.enumerate()}
    assert "lchpool_0" in names and "lchpool_manager" in names


def test_interpreters_freed_and_objects_released():
    before_i, before_o = interp_count(), live_objects()
    p = InterpreterPoolExecutor(2)
    fs = [p.submit(T.make_buffer, 1000, 7) for _ in range(8)]
    bufs = [f.result(WAIT)[0] for f in fs]
    assert interp_count() > before_i
    p.shutdown(wait=True)
    assert interp_count() == before_i
    # a SharedBuffer returned by a worker outlives the worker and the pool
    del p, fs
    gc.collect()
    assert all(bytes(b) == b"\x07" * 1000 for b in bufs)
    del bufs
    assert wait_for_live(before_o) == before_o


def test_garbage_collected_pool_still_resolves_its_futures():
    p = InterpreterPoolExecutor(1)
    f = p.submit(T.add, 20, 22)
    threads = [t for t in threading.enumerate()
               if t.name.startswith(p._pool.prefix)]
    del p
    gc.collect()
    assert f.result(WAIT) == 42
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()


# --------------------------------------------------------------------------
# Functions that cannot travel
# --------------------------------------------------------------------------

def _closure_maker():
    k = 3

    def inner(x):
        return x * k
    return inner


def test_lambda_closure_and_dynamic_functions_fail_at_submit(pool):
    with pytest.raises(NotShareableError, match="lambda.*top level"):
        pool.submit(lambda: 1)
    with pytest.raises(NotShareableError,
                       match=r"inside _closure_maker\(\).*functools.partial"):
        pool.submit(_closure_maker(), 2)
    with pytest.raises(NotShareableError, match="lambda"):
        pool.submit(functools.partial(lambda x: x, 1))
    ns = {"__name__": T.__name__}
    exec("def ghost(x):\n    return x\n", ns)
    with pytest.raises(NotShareableError, match="is not this object"):
        pool.submit(ns["ghost"], 1)
    with pytest.raises(NotShareableError, match="lambda"):
        pool.map(lambda x: x, [1, 2])
    with pytest.raises(TypeError, match="not callable"):
        pool.submit(42)
    # a function whose module name now means another object
    assert pool.submit(T.ident, 1).result(WAIT) == 1
    ident = T.ident
    T.ident = T.add
    try:
        with pytest.raises(NotShareableError, match="is not this object"):
            pool.submit(ident, 1)
    finally:
        T.ident = ident
    # nothing was queued, and the pool is fine
    assert pool.submit(T.add, 1, 1).result(WAIT) == 2


def test_value_callables_need_pickle(make_pool):
    p = make_pool(1, pickle=False)
    with pytest.raises(NotShareableError, match="pickle=False"):
        p.submit(T.Point(1, 2).norm2)
    assert p.submit(T.add, 1, 2).result(WAIT) == 3


def test_function_from_an_interactive_main_fails_at_submit():
    code = "\n".join([
        "import libchan",
        "def f(x):",
        "    return x",
        "p = libchan.InterpreterPoolExecutor(1)",
        "try:",
        "    p.submit(f, 1)",
        "except libchan.NotShareableError as e:",
        "    print('refused:', e)",
        "print(p.submit(len, 'ab').result(60))",
        "p.shutdown()"])
    # -P: the installed libchan, not the repository's libchan/ (the C core)
    r = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "refused:" in r.stdout and "interactive session" in r.stdout
    assert r.stdout.strip().endswith("2")


# --------------------------------------------------------------------------
# The main script: functions, initializer and classes of __main__
# --------------------------------------------------------------------------

def _run_script(args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True,
                          text=True, timeout=180, **kw)


@pytest.mark.parametrize("how", ["file", "module"])
def test_main_script_functions_run_in_workers(how):
    if how == "file":
        r = _run_script([SCRIPT, "ok"])
    else:
        r = _run_script(["-m", "executor_script", "ok"], cwd=HERE)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # the initializer (from __main__) stored the SharedBuffer; the function
    # (from __main__) read it in place, in a module named __mp_main__
    assert out["seen"] == [[1, out["address"], "__mp_main__"],
                           [300 % 256, out["address"], "__mp_main__"]]
    # an instance of a __main__ class went there and back, pickled
    assert out["vec"] == ["__main__", "Vec", [10, 20, 30]]
    # an exception raised there came back with the worker's traceback
    assert out["error"] == ["KeyError('nope')", True]


def test_readme_example(tmp_path):
    """The README's example, run as the script it says to save."""
    with open(os.path.join(HERE, "..", "..", "README.md")) as f:
        readme = f.read()
    section = readme.split("### InterpreterPoolExecutor", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "fox.py"
    script.write_text(code)
    r = _run_script([str(script)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["400000"]


def test_main_script_without_guard_breaks_the_pool_and_says_why():
    r = _run_script([SCRIPT, "unguarded"])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["error"] == "BrokenInterpreterPool"
    assert "if __name__ == '__main__':" in out["text"]


# --------------------------------------------------------------------------
# Arguments and results
# --------------------------------------------------------------------------

def test_values_keep_their_types(pool):
    args = (None, True, 1, 2**80, 1.5, 1j, "é", b"b", bytearray(b"ba"),
            (1, (2,)), [1, [2]], {"k": {1}}, {1, 2}, frozenset({3}))
    assert pool.submit(T.ident, args).result(WAIT) == args
    names, kw = pool.submit(T.types_of, *args, x=b"x").result(WAIT)
    assert names == [type(a).__name__ for a in args]
    assert kw == {"x": "bytes"}


def test_shared_objects_travel_by_reference(pool):
    buf = SharedBuffer(bytes(range(256)) * 64)
    addr, n, got = pool.submit(T.buffer_info, buf, (0, 5, 16383)).result(WAIT)
    assert (addr, n, got) == (buf.address, len(buf), bytes([0, 5, 255]))
    ch = Channel()
    assert pool.submit(T.put_on, ch, ("hi", buf)).result(WAIT) == "sent"
    msg, b2 = ch.get(timeout=WAIT)
    assert msg == "hi" and b2.address == buf.address
    st = libchan.SharedTuple((1, "two", (3,)))
    assert pool.submit(T.ident, st).result(WAIT) == (1, "two", (3,))
    # inside a pickled object, the buffer still goes by reference
    name, addr = pool.submit(T.holder_address, T.Holder(buf)).result(WAIT)
    assert (name, addr) == ("Holder", buf.address)


def test_other_objects_are_pickled(pool):
    p = pool.submit(T.make_point, 3, 4).result(WAIT)
    assert p == T.Point(3, 4)
    assert pool.submit(T.Point.norm2, T.Point(3, 4)).result(WAIT) == 25
    import decimal
    d = decimal.Decimal("1.25")
    assert pool.submit(T.ident, [d, (d,)]).result(WAIT) == [d, (d,)]


def test_pickle_false_refuses_what_needs_pickle(make_pool):
    p = make_pool(1, pickle=False)
    with pytest.raises(NotShareableError, match="pickle=False"):
        p.submit(T.ident, T.Point(1, 2))
    f = p.submit(T.make_point, 1, 2)
    with pytest.raises(NotShareableError, match="pickle=False"):
        f.result(WAIT)
    assert p.submit(T.ident, [1, "a", {2: b"b"}]).result(WAIT) == \
        [1, "a", {2: b"b"}]


def test_unpicklable_argument_fails_at_submit(pool):
    with pytest.raises(NotShareableError, match="pickling failed"):
        pool.submit(T.ident, threading.Lock())
    f = pool.submit(T.return_lock)
    with pytest.raises(NotShareableError, match="pickling it failed"):
        f.result(WAIT)
    assert pool.submit(T.add, 1).result(WAIT) == 1


def test_argument_the_worker_cannot_unpickle_fails_its_future(pool):
    mod = types.ModuleType("lch_main_only")
    exec("class Ghost:\n    pass\n", mod.__dict__)
    mod.Ghost.__module__ = "lch_main_only"
    sys.modules["lch_main_only"] = mod
    try:
        f = pool.submit(T.ident, mod.Ghost())
        with pytest.raises(ModuleNotFoundError, match="lch_main_only"):
            f.result(WAIT)
    finally:
        del sys.modules["lch_main_only"]
    # a result the caller cannot unpickle fails its future too
    with pytest.raises(ModuleNotFoundError, match="lch_worker_only"):
        pool.submit(T.return_local_class).result(WAIT)
    assert pool.submit(T.add, 5).result(WAIT) == 5


def test_arguments_are_captured_at_submit(make_pool):
    p = make_pool(1)
    started, release = gates()
    busy = [p.submit(T.gate, started, release, i) for i in range(3)]
    assert started.get(timeout=WAIT) == 0
    data = [1, 2, 3]
    f = p.submit(T.ident, data)          # queued behind the busy worker
    data.append(4)
    for _ in busy:
        release.put(None)
    assert f.result(WAIT) == [1, 2, 3]


# --------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------

def test_exception_comes_back_as_itself_with_the_remote_traceback(pool):
    with pytest.raises(ValueError, match="^bad value$") as ei:
        pool.submit(T.raise_value_error, "bad value").result(WAIT)
    cause = ei.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "raise_value_error" in str(cause)
    assert "executor_tasks.py" in str(cause)
    with pytest.raises(T.CodedError) as ei:
        pool.submit(T.raise_coded, 7).result(WAIT)
    assert ei.value.code == 7


@pytest.mark.parametrize("fn,type_name", [
    (T.raise_stubborn, "executor_tasks.StubbornError"),
    (T.raise_locked, "executor_tasks.LockedError")])
def test_exception_that_cannot_be_rebuilt_is_a_task_error(pool, fn, type_name):
    with pytest.raises(TaskError) as ei:
        pool.submit(fn).result(WAIT)
    e = ei.value
    assert e.type_name == type_name
    assert e.message in ("stubborn 1/2", "has a lock")
    assert fn.__name__ in e.traceback_text
    assert str(e) == "%s: %s" % (type_name, e.message)
    assert isinstance(e.__cause__, RemoteTraceback)


def test_system_exit_and_keyboard_interrupt_fail_only_their_task(make_pool):
    p = make_pool(1)
    iid = p.submit(T.interp_id).result(WAIT)
    with pytest.raises(SystemExit) as ei:
        p.submit(T.raise_exit, 3).result(WAIT)
    assert ei.value.code == 3
    with pytest.raises(KeyboardInterrupt, match="from a task"):
        p.submit(T.raise_interrupt).result(WAIT)
    # the same worker serves on
    assert p.submit(T.interp_id).result(WAIT) == iid


def test_failing_initializer_breaks_the_pool(make_pool):
    p = make_pool(2, initializer=T.failing_initializer, initargs=("tag1",))
    fs = [p.submit(T.add, i) for i in range(10)]
    for f in fs:
        with pytest.raises(BrokenInterpreterPool,
                           match="failed to initialize.*tag1") as ei:
            f.result(WAIT)
    assert "failing_initializer" in str(ei.value.__cause__)
    with pytest.raises(BrokenInterpreterPool):
        p.submit(T.add, 1)


def test_worker_that_ends_breaks_the_pool(make_pool):
    p = make_pool(1)
    started, release = gates()
    first = p.submit(T.gate, started, release, "first")
    assert started.get(timeout=WAIT) == "first"
    # the next task shuts the pool's tasks channel: the worker's loop ends
    killer = p.submit(T.shutdown_channel, p._pool.tasks.id)
    later = [p.submit(T.add, i) for i in range(5)]
    release.put(None)
    assert first.result(WAIT)[0] == "first"
    assert killer.result(WAIT) == "done"
    for f in later:
        with pytest.raises(BrokenInterpreterPool, match="ended unexpectedly"):
            f.result(WAIT)
    with pytest.raises(BrokenInterpreterPool):
        p.submit(T.add, 1)


# --------------------------------------------------------------------------
# Cancelling and shutting down
# --------------------------------------------------------------------------

def test_cancel_is_true_exactly_for_tasks_not_started(make_pool):
    p = make_pool(1)
    n = 100                  # more than the window (64 per worker)
    started, release = gates()
    fs = [p.submit(T.gate, started, release, i) for i in range(n)]
    assert started.get(timeout=WAIT) == 0
    assert not fs[0].cancel()               # running
    assert fs[5].cancel() and fs[5].cancelled()   # handed, not started
    assert fs[90].cancel() and fs[90].cancelled()  # in the backlog
    assert not any(f.running() for f in fs)       # starts are not reported
    for _ in range(n):
        release.put(None)
    rest = [i for i in range(n) if i not in (5, 90)]
    assert [fs[i].result(WAIT)[0] for i in rest] == rest
    assert sorted(drain(started) + [0]) == rest   # 5 and 90 never ran
    assert not fs[0].cancel()               # done


def test_shutdown_cancel_futures_cancels_all_not_started(make_pool):
    p = make_pool(2)
    n = 300                  # tasks channel and backlog both
    started, release = gates()
    fs = [p.submit(T.gate, started, release, i) for i in range(n)]
    assert {started.get(timeout=WAIT) for _ in range(2)} == {0, 1}
    p.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(RuntimeError, match="after shutdown"):
        p.submit(T.add, 1)
    assert not fs[0].cancelled() and not fs[1].cancelled()
    assert all(f.cancelled() for f in fs[2:])
    release.put(None)
    release.put(None)
    p.shutdown(wait=True)
    assert sorted(f.result(WAIT)[0] for f in fs[:2]) == [0, 1]
    assert drain(started) == []             # nothing else started


def test_shutdown_without_wait_runs_everything(make_pool):
    p = make_pool(2)
    fs = [p.submit(T.add, i, 1) for i in range(200)]
    p.shutdown(wait=False)
    assert [f.result(WAIT) for f in fs] == list(range(1, 201))
    p.shutdown(wait=True)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"),
                    reason="needs signal.pthread_kill")
def test_ctrl_c_in_with_block_cancels_what_has_not_started(make_pool):
    assert threading.current_thread() is threading.main_thread()
    p = make_pool(2)
    started, release = gates()
    fs = [p.submit(T.gate, started, release, i) for i in range(40)]
    assert {started.get(timeout=WAIT) for _ in range(2)} == {0, 1}
    interps = interp_count()
    interrupted = threading.Event()

    def interrupt_then_release():
        time.sleep(0.05)          # let the main thread block in result()
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        interrupted.wait(WAIT)
        for _ in range(40):       # what still runs may finish
            release.put(None)

    helper = threading.Thread(target=interrupt_then_release)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            with p:
                try:
                    fs[-1].result(WAIT)
                except KeyboardInterrupt:
                    interrupted.set()
                    raise
    finally:
        interrupted.set()
        signal.signal(signal.SIGINT, old)
        helper.join(WAIT)
    # the two running tasks ran; all the others were cancelled
    assert [f.cancelled() for f in fs] == [False] * 2 + [True] * 38
    assert sorted(f.result()[0] for f in fs[:2]) == [0, 1]
    assert drain(started) == []
    assert interp_count() == interps - 2     # shutdown waited for them


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
@pytest.mark.parametrize("mode", ["sigint-with", "sigint-bare"])
def test_ctrl_c_then_exit_does_not_run_the_backlog(mode):
    proc = subprocess.Popen([sys.executable, SCRIPT, mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == "ready":
                break
        # Signalling a script that already ran everything would test nothing.
        assert lines[-1:] == ["ready"], lines
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines += out.splitlines()
    starts = [ln for ln in "\n".join(lines).splitlines()
              if ln.startswith("start")]
    why = (proc.returncode, starts, err[-3000:])
    assert "KeyboardInterrupt" in err, why
    assert proc.returncode != 0, why
    # of 40 tasks, those running when Ctrl-C came ran; the rest were
    # cancelled, at shutdown or at exit
    assert 1 <= len(starts) < 20, why


# --------------------------------------------------------------------------
# map
# --------------------------------------------------------------------------

@pytest.mark.parametrize("chunksize", [1, 7, 100])
def test_map_in_order(pool, chunksize):
    xs = list(range(250))
    assert list(pool.map(T.add, xs, xs, chunksize=chunksize)) == \
        [2 * x for x in xs]
    assert list(pool.map(functools.partial(T.add, c=1), xs,
                         chunksize=chunksize)) == [x + 1 for x in xs]
    assert list(pool.map(T.add, [], chunksize=chunksize)) == []


def test_map_chunk_runs_in_one_worker(pool):
    out = list(pool.map(T.whoami, range(40), chunksize=20))
    assert len({o[0] for o in out[:20]}) == 1
    assert len({o[0] for o in out[20:]}) == 1


def test_map_error_in_a_chunk(pool):
    it = pool.map(T.fail_or_echo, range(10), [1] * 10,
                  [i == 6 for i in range(10)], chunksize=4)
    assert [next(it)[0] for _ in range(4)] == [0, 1, 2, 3]
    with pytest.raises(ArithmeticError, match="task 6"):
        next(it)


def test_map_timeout(make_pool):
    p = make_pool(1)
    started, release = gates()
    it = p.map(T.gate, itertools.repeat(started, 5),
               itertools.repeat(release, 5), range(5), timeout=0.2)
    assert started.get(timeout=WAIT) == 0
    with pytest.raises(TimeoutError):
        next(it)
    for _ in range(5):
        release.put(None)


def test_map_buffersize(pool):
    with pytest.raises(ValueError, match="buffersize"):
        pool.map(T.ident, [1], buffersize=0)
    with pytest.raises(TypeError, match="buffersize"):
        pool.map(T.ident, [1], buffersize=2.0)
    with pytest.raises(ValueError, match="chunksize"):
        pool.map(T.ident, [1], chunksize=0)
    # an endless input: only buffersize messages are ever ahead
    consumed = []

    def numbers():
        for i in itertools.count():
            consumed.append(i)
            yield i

    it = pool.map(T.ident, numbers(), buffersize=3)
    assert len(consumed) == 3
    assert [next(it) for _ in range(10)] == list(range(10))
    assert len(consumed) == 13
    it = pool.map(T.ident, numbers(), chunksize=4, buffersize=2)
    assert [next(it) for _ in range(6)] == list(range(6))
    it.close()


# --------------------------------------------------------------------------
# With the rest of concurrent.futures, and asyncio
# --------------------------------------------------------------------------

def test_wait_and_as_completed(pool):
    fs = [pool.submit(T.add, i, i) for i in range(50)]
    done, not_done = cf.wait(fs, timeout=WAIT)
    assert not not_done and len(done) == 50
    assert sorted(f.result() for f in cf.as_completed(fs, timeout=WAIT)) \
        == [2 * i for i in range(50)]


def test_asyncio(pool):
    async def main():
        loop = asyncio.get_running_loop()
        a = await loop.run_in_executor(pool, T.add, 2, 3)
        b = await asyncio.wrap_future(pool.submit(T.add, 4, 5))
        many = await asyncio.gather(*[
            loop.run_in_executor(pool, T.add, i, 1) for i in range(20)])
        return a, b, many

    assert asyncio.run(main()) == (5, 9, list(range(1, 21)))


# --------------------------------------------------------------------------
# Zero copy and a stress run
# --------------------------------------------------------------------------

def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                    reason="needs /proc")
def test_256_mib_buffer_reaches_100_tasks_without_copies(pool):
    size = 256 << 20
    buf = SharedBuffer(bytes(size))
    pool.submit(T.add, 0).result(WAIT)              # workers up
    pool.submit(T.add, 0).result(WAIT)
    before = _rss()
    offsets = (0, size // 2, size - 1)
    results = [f.result(WAIT) for f in
               [pool.submit(T.buffer_info, buf, offsets) for _ in range(100)]]
    grown = _rss() - before
    assert {r[0] for r in results} == {buf.address}
    assert all(r[1:] == (size, b"\0\0\0") for r in results)
    assert grown < 8 << 20, "RSS grew by %.1f MiB" % (grown / 2**20)


def test_thousands_of_tasks_each_resolved_once(make_pool):
    rng = random.Random(8)
    p = make_pool(3)
    n = 3000
    spec = [(i, rng.choice((0, 1, 100, 5000, 70000)), rng.random() < 0.2)
            for i in range(n)]
    resolved = [0] * n
    lock = threading.Lock()

    def count(i):
        def cb(_):
            with lock:
                resolved[i] += 1
        return cb

    fs = []
    for i, size, fail in spec:
        f = p.submit(T.fail_or_echo, i, size, fail)
        f.add_done_callback(count(i))
        fs.append(f)
    done, not_done = cf.wait(fs, timeout=WAIT * 2)
    assert not not_done
    for (i, size, fail), f in zip(spec, fs):
        if fail:
            with pytest.raises(ArithmeticError, match="task %d " % i):
                f.result()
        else:
            assert f.result() == (i, bytes([i % 256]) * size)
    p.shutdown(wait=True)
    assert resolved == [1] * n


def test_threads_waiting_in_result_get_their_own_results(make_pool):
    """Several threads waiting in result() at once while tasks of random
    lengths finish: every future is resolved once, with its own result,
    and the pool still shuts down (the manager sees every worker's end)."""
    rng = random.Random(11)
    p = make_pool(2)
    n_threads, per_thread = 4, 500
    resolved = collections.Counter()
    lock = threading.Lock()
    errors = []

    def cb(key, f):
        with lock:
            resolved[key] += 1

    def run(seed):
        r = random.Random(seed)
        try:
            for i in range(per_thread):
                size = r.choice((0, 0, 0, 10, 5000))
                f = p.submit(T.fail_or_echo, i, size, False)
                f.add_done_callback(functools.partial(cb, (seed, i)))
                assert f.result(WAIT) == (i, bytes([i % 256]) * size)
                if r.random() < 0.1:        # a burst, waited for in order
                    fs = [p.submit(operator.add, i, k) for k in range(300)]
                    assert [g.result(WAIT) for g in fs] == \
                        [i + k for k in range(300)]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(rng.random(),))
               for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 4)
    assert not errors, errors[:3]
    assert len(resolved) == n_threads * per_thread
    assert set(resolved.values()) == {1}
    p.shutdown(wait=True)                  # returns: the manager saw it all
    assert not p._pool.manager.is_alive()
