"""``InterpreterPoolExecutor``: a ``concurrent.futures.Executor`` whose
workers are subinterpreters, each with its own GIL, fed through libchan
channels. The same code runs on CPython 3.12 to 3.15.

How it works (one paragraph per moving part):

- **Workers.** Each worker is a thread of this interpreter that creates an
  isolated subinterpreter, runs ``libchan._worker.serve`` in it for the
  pool's whole life and destroys it, all from that one thread (which also
  keeps CPython 3.12.1's ``destroy()`` from hanging). Workers start on
  demand, up to ``max_workers``, when more tasks are outstanding than
  workers exist. A task costs no interpreter switch on the caller's
  thread: the worker waits inside ``Channel.get`` (GIL released, futex).
- **How tasks are spread.** All workers take tasks from one shared
  channel, so a task waits only while every worker is busy: a slow task
  occupies its own worker and holds up nothing queued behind it (with a
  queue per worker, the tasks dealt to a slow worker would wait for it,
  however idle the others). ``submit`` puts the task straight into that
  channel (no thread hop) while fewer than ``64 * max_workers`` tasks are
  there or running; beyond that window, tasks wait in a backlog channel,
  from which they move on encoded as they are (no second encoding).
  Arguments are encoded at ``submit``, so later changes to a mutable
  argument do not reach the task.
- **Cancelling.** A worker taking a task from the channel is the one
  atomic step that starts it, so ``Future.cancel()`` takes the task back
  out of the channel (the others go back in order; at most the window is
  moved) or finds it gone, hence started: ``cancel()`` is True exactly
  when the task never ran, as with ThreadPoolExecutor. Starts are not
  reported (a message per task), so ``running()`` stays False.
- **Results** come back on one results channel, read by one manager
  thread, which resolves futures, moves backlog tasks into the window as
  results free it, notices workers that end, and turns a failed
  initializer or a worker that ends unexpectedly into
  ``BrokenInterpreterPool`` for every outstanding future.
- **Functions and values**: see ``_calls`` (functions by reference, the
  main script as ``__mp_main__``) and ``_wire`` (pickle only as a fallback,
  with shared objects kept by reference; exceptions and their tracebacks).
- **Shutdown.** ``shutdown`` stops new submissions, optionally cancels
  every task not started, and lets the manager shut the tasks channel
  once the backlog is empty; workers drain it and end.
  Waiting is a ``Channel.get``, so Ctrl-C interrupts it. Leaving a
  ``with`` block through KeyboardInterrupt cancels what has not started.
  At interpreter exit, pools still open are shut down and waited for, as
  the stdlib's are; when a Ctrl-C ended the program, every task not
  started is cancelled first (``sys.last_exc`` tells).
"""

import collections
import itertools
import os
import sys
import threading
import time
import weakref
from concurrent.futures import _base

from libchan import _calls, _subinterp, _wire
from libchan._libchan import Channel, Empty, NotShareableError, ShutDown
from libchan._wire import RemoteTraceback, TaskError
from libchan._worker import (CALL, CHUNK, EXITED, INIT_FAILED, OK, PICKLED,
                             RAISED, WAKE)

__all__ = ["BrokenInterpreterPool", "InterpreterPoolExecutor",
           "RemoteTraceback", "TaskError"]

if sys.version_info >= (3, 14):
    from concurrent.futures.interpreter import \
        BrokenInterpreterPool as _Broken
else:
    _Broken = _base.BrokenExecutor


class BrokenInterpreterPool(_Broken):
    """A worker interpreter failed to start (its initializer or the main
    module raised) or ended unexpectedly: every outstanding future fails
    with this, and so does every later submit. On 3.14+ it subclasses
    ``concurrent.futures.interpreter.BrokenInterpreterPool``."""


_GUARD = (
    "An attempt has been made to create an InterpreterPoolExecutor while a "
    "worker interpreter was running the main module as __mp_main__. The "
    "main module creates a pool at import time: protect that code with\n"
    "    if __name__ == '__main__':\n"
    "as with multiprocessing's spawn start method.")

_pools = weakref.WeakSet()          # pools whose threads may still run
WINDOW_PER_WORKER = 64               # tasks handed to the workers' channel
_global_shutdown = False


def _python_exit():
    """At interpreter exit, before non-daemon threads are joined: shut
    every pool down and wait for it. If the program is ending on a Ctrl-C
    (the uncaught exception was KeyboardInterrupt), the tasks that have
    not started are cancelled instead of run."""
    global _global_shutdown
    _global_shutdown = True
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    interrupted = isinstance(last, KeyboardInterrupt)
    pools = list(_pools)
    for p in pools:
        p.shutdown(cancel_futures=interrupted)
    for p in pools:
        p.wait()


# As concurrent.futures.thread does: runs before the non-daemon worker
# threads are joined (an atexit hook would run after, too late).
threading._register_atexit(_python_exit)


def _default_workers():
    """One worker per CPU this process may use: each has its own GIL."""
    count = getattr(os, "process_cpu_count", None)
    if count is not None:
        return count() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _worker_thread(results, code, index):
    """A worker's thread: create its interpreter, serve, destroy it, then
    report the end (with the error, if it ended with one)."""
    error = None
    try:
        iid = _subinterp.create()
    except BaseException as e:
        error = "cannot create the interpreter: %s: %s" % (type(e).__name__, e)
    else:
        try:
            error = _subinterp.run(iid, code)
        except BaseException as e:
            error = "%s: %s" % (type(e).__name__, e)
        finally:
            try:
                _subinterp.destroy(iid)
            except BaseException as e:
                error = error or "destroying the interpreter: %s: %s" % (
                    type(e).__name__, e)
    results.put((-1, EXITED, (index, error)))


class _TaskFuture(_base.Future):
    """The Future of a task: ``cancel()`` takes the task back from the
    workers' channel when none of them has started it yet.

    A task's start is not reported (that would cost a message per task),
    so these futures stay pending until done: ``running()`` is always
    False, and ``cancel()`` is True exactly when the task never ran."""

    _lch_pool = None      # the pool, while the task is queued or running
    _lch_tid = -1
    _lch_handed = False   # in the tasks channel (else in the backlog)

    def cancel(self):
        pool = self._lch_pool
        if pool is not None and not pool.withdraw(self):
            return False                 # a worker has started it
        return super().cancel()


class _Pool:
    """Everything the pool's threads share; the executor object holds it,
    the threads never hold the executor (so it can be collected)."""

    def __init__(self, max_workers, prefix, setup, pickle_ok):
        self.max_workers = max_workers
        self.window = WINDOW_PER_WORKER * max_workers
        self.prefix = prefix
        self.pickle_ok = pickle_ok
        self.lock = threading.Lock()     # the fields below, and every put
        self.futures = {}                # task id -> future, until resolved
        self.tids = itertools.count()
        self.handed = 0                  # in the tasks channel or running
        self.tasks = Channel(pickle=False)      # handed to the workers
        self.backlog = Channel(pickle=False)    # beyond the window
        self.backlog_tids = collections.deque()  # its tasks' ids, in order
        self.results = Channel(pickle=False)
        self.setup = Channel(pickle=False)
        self.done = Channel(pickle=False)       # shut down when all ended
        self.setup_msg = self.packed(setup)
        self.threads = []                # worker threads, by index
        self.live = 0                    # workers started, not yet ended
        self.manager = None
        self.closing = False             # shutdown() was called
        self.tasks_closed = False        # by us: workers end when drained
        self.broken = None               # why, once broken

    # ---- sending --------------------------------------------------------

    def packed(self, msg):
        """msg as it can travel: as it is if the codec carries it, else
        with (ref, args, kwargs) pickled (see _wire). A trial put on the
        setup channel tells (only used before any worker starts)."""
        try:
            self.setup.put(msg)
            self.setup.get_nowait()
            return msg
        except NotShareableError as e:
            return self.pickled_msg(msg, e)

    def pickled_msg(self, msg, err):
        if not self.pickle_ok:
            raise NotShareableError(
                "%s; this pool was made with pickle=False, so only values "
                "the codec carries travel" % err) from None
        try:
            data = _wire.pickled(msg[2:5])
        except Exception as e:
            raise NotShareableError(
                "cannot send to a worker interpreter: pickling failed "
                "(%s: %s)" % (type(e).__name__, e)) from e
        return (msg[0], msg[1] | PICKLED, data, None, None) + msg[5:]

    def submit(self, mode, ref, args, kwargs):
        fut = _TaskFuture()
        msg = None
        while True:
            with self.lock:
                if self.broken is not None:
                    raise BrokenInterpreterPool(self.broken)
                if self.closing:
                    raise RuntimeError("cannot schedule new futures after "
                                       "shutdown")
                if _global_shutdown:
                    raise RuntimeError("cannot schedule new futures after "
                                       "interpreter shutdown")
                if msg is None:
                    msg = (next(self.tids), mode, ref, args, kwargs)
                try:
                    self.queue_locked(fut, msg)
                    return fut
                except NotShareableError as e:
                    err = e
            # Pickling runs user code (__reduce__): not under the lock.
            msg = self.pickled_msg(msg, err)

    def queue_locked(self, fut, msg):
        """Put msg in the tasks channel if the window has room and nothing
        waits in the backlog, else in the backlog; register fut. Puts run
        no Python code: the channels refuse what would need pickle."""
        direct = self.handed < self.window and not self.backlog_tids
        if direct:
            self.handed += 1
        try:
            (self.tasks if direct else self.backlog).put(msg)
        except BaseException:
            if direct:
                self.handed -= 1
            raise
        tid = msg[0]
        if not direct:
            self.backlog_tids.append(tid)
        fut._lch_pool, fut._lch_tid, fut._lch_handed = self, tid, direct
        self.futures[tid] = fut
        if len(self.threads) < min(self.max_workers, len(self.futures)):
            self.spawn_locked()

    def refill_locked(self):
        """Hand backlog tasks to the workers while the window has room
        (dropping withdrawn ones). A task moves as the encoded message it
        is (Channel._move_to): it was encoded once, at submit."""
        backlog, tids, futures = self.backlog, self.backlog_tids, \
            self.futures
        while backlog is not None and self.handed < self.window and tids:
            fut = futures.get(tids.popleft())
            try:
                if fut is None:          # cancelled while in the backlog
                    backlog.get_nowait()
                    continue
                backlog._move_to(self.tasks)
            except (Empty, ShutDown):
                return                   # broken meanwhile
            fut._lch_handed = True
            self.handed += 1

    def take_back_locked(self, tids):
        """Take the tasks tids (a set; all of them if None) out of the
        tasks channel, if no worker has taken them yet: the others go back
        in their order. The task ids taken back."""
        kept, taken = [], []
        try:
            while True:
                try:
                    msg = self.tasks.get_nowait()
                except (Empty, ShutDown):
                    break
                if tids is None or msg[0] in tids:
                    taken.append(msg[0])
                else:
                    kept.append(msg)
        finally:
            for msg in kept:
                self.tasks.put(msg)
        self.handed -= len(taken)
        return taken

    def withdraw(self, fut):
        """fut.cancel(): True if its task has not started and now never
        will, False if a worker has started it."""
        with self.lock:
            if fut._lch_pool is None:    # resolved or withdrawn meanwhile
                return True
            if fut._lch_handed and self.tasks is not None:
                if not self.take_back_locked({fut._lch_tid}):
                    return False
                self.refill_locked()
            fut._lch_pool = None
            self.futures.pop(fut._lch_tid, None)
            return True

    def spawn_locked(self):
        index = len(self.threads)
        self.setup.put(self.setup_msg)
        code = "\n".join([
            "import sys",
            "sys.path[:] = %r" % (list(sys.path),),
            "sys.argv = %r" % (list(sys.argv),),
            "from libchan._worker import serve",
            "serve(%d, %d, %d, %d)" % (self.setup.id, self.tasks.id,
                                       self.results.id, index)])
        t = threading.Thread(target=_worker_thread,
                             args=(self.results, code, index),
                             name="%s_%d" % (self.prefix, index))
        if self.manager is None:
            self.manager = threading.Thread(
                target=self.manage, name="%s_manager" % self.prefix)
            self.manager.start()
            _pools.add(self)
        self.threads.append(t)
        self.live += 1
        t.start()

    # ---- the manager thread -------------------------------------------

    def manage(self):
        """Resolve futures and watch the workers, until all have ended.
        Takes every result queued at once, refills the window, then
        resolves them (done callbacks run here, outside the lock)."""
        results = self.results
        get, get_nowait, qsize = results.get, results.get_nowait, \
            results.qsize
        while True:
            batch = [get()]
            try:
                for _ in range(qsize()):
                    batch.append(get_nowait())
            except Empty:
                pass
            self.handle(batch)
            batch = None
            if self.closing or self.broken is not None:
                if self.finished():
                    return

    def handle(self, batch):
        """Act on result messages: refill the window for the finished
        tasks, then resolve their futures (and act on control messages,
        tid < 0)."""
        futures = self.futures
        ntasks = 0
        for msg in batch:
            if msg[0] >= 0:
                ntasks += 1
        if ntasks:
            with self.lock:
                self.handed -= ntasks
                self.refill_locked()
        for tid, status, value in batch:
            if tid < 0:
                self.control(status, value)
                continue
            fut = futures.pop(tid, None)
            if fut is None:
                continue
            fut._lch_pool = None
            if status == OK:
                try:
                    fut.set_result(value)
                except _base.InvalidStateError:
                    pass
            else:
                self.resolve(fut, status, value)

    def control(self, status, value):
        if status == EXITED:
            index, error = value
            with self.lock:
                self.live -= 1
                expected = self.tasks_closed
            if not expected:
                self.break_pool("worker interpreter %d ended unexpectedly%s"
                                % (index, ": " + error if error else ""))
        elif status == INIT_FAILED:
            index, (name, message, tb, _) = value
            self.break_pool(
                "a worker interpreter failed to initialize, the pool is "
                "not usable anymore (worker %d: %s: %s)"
                % (index, name, message), tb)
        else:
            assert status == WAKE, status
            with self.lock:
                self.refill_locked()

    @staticmethod
    def resolve(fut, status, value):
        """Resolve fut from a result message other than a plain OK."""
        try:
            if status & PICKLED:
                try:
                    value = _wire.unpickled(*value)
                except BaseException as e:
                    fut.set_exception(e)
                    return
            if status & RAISED:
                fut.set_exception(_wire.rebuild_exception(value))
            else:
                assert status & ~PICKLED == OK, status
                fut.set_result(value)
        except _base.InvalidStateError:
            pass

    def finished(self):
        """Manager side: close the tasks channel once shutting down and the
        backlog is empty; True when every worker has ended (all closed)."""
        with self.lock:
            if self.closing and not self.tasks_closed and \
                    not self.backlog_tids:
                self.tasks_closed = True
                self.tasks.shutdown()
            if not (self.tasks_closed and self.live == 0):
                return False
        self.release()
        return True

    def release(self):
        """Shut every channel and drop them: once no worker is left, the
        pool holds no libchan object (whoever still holds the executor)."""
        with self.lock:
            chans = (self.tasks, self.backlog, self.results, self.setup,
                     self.done)
            self.tasks = self.backlog = self.results = self.setup = None
            self.done = self.setup_msg = None
        for ch in chans:
            if ch is not None:
                ch.shutdown(immediate=True)

    def break_pool(self, reason, tb=None):
        with self.lock:
            if self.broken is None:
                self.broken = reason
            futs = list(self.futures.values())
            self.futures.clear()
            self.tasks_closed = True
            self.tasks.shutdown(immediate=True)
            self.backlog.shutdown(immediate=True)
            self.backlog_tids.clear()
        for f in futs:
            f._lch_pool = None
            exc = BrokenInterpreterPool(reason)
            if tb:
                exc.__cause__ = _wire.remote_traceback(tb)
            try:
                f.set_exception(exc)
            except _base.InvalidStateError:
                pass                      # cancelled meanwhile

    # ---- shutting down -------------------------------------------------

    def shutdown(self, cancel_futures=False):
        """Stop taking tasks; with cancel_futures, cancel every task no
        worker has started (backlog and tasks channel)."""
        with self.lock:
            self.closing = True
            started = self.manager is not None
            victims = []
            if cancel_futures and self.tasks is not None:
                taken = set(self.take_back_locked(None))
                victims = [f for tid, f in self.futures.items()
                           if tid in taken or not f._lch_handed]
                for f in victims:
                    f._lch_pool = None
                    del self.futures[f._lch_tid]
                self.backlog.shutdown(immediate=True)
                self.backlog_tids.clear()
            results = self.results
        for f in victims:
            _base.Future.cancel(f)
        if not started:
            self.release()
        elif results is not None:
            try:
                results.put((-1, WAKE, None))
            except ShutDown:
                pass                     # the manager is done already

    def wait(self):
        """Until every worker interpreter is destroyed (not from the
        manager thread, which would wait for itself)."""
        if threading.current_thread() is self.manager:
            return
        done = self.done
        if done is not None:
            try:
                done.get()
            except ShutDown:
                pass
        for t in [self.manager] + self.threads:
            if t is not None:
                t.join()


class InterpreterPoolExecutor(_base.Executor):
    """An Executor that runs calls in a pool of subinterpreters, each with
    its own GIL, on CPython 3.12 to 3.15; arguments and results travel
    through libchan channels as libchan values.

    max_workers: most worker interpreters at once (default: the CPUs this
    process may use). thread_name_prefix: names the threads that host the
    workers. initializer(*initargs) runs once in each worker before its
    first task; if it raises, the pool is broken (BrokenInterpreterPool).
    pickle=False refuses arguments and results the codec cannot carry
    (NotShareableError) instead of pickling them.

    Callables travel by reference (module and qualified name), so they
    must be importable: module-level functions, builtins, classes, and
    ``functools.partial`` of those; functions of the main script too (each
    worker runs it as ``__mp_main__``, so keep ``if __name__ ==
    "__main__":`` guards). A lambda, a closure or a function typed at the
    prompt raises NotShareableError at submit. Other callables (bound
    methods, callable objects) travel as values, pickled.

    Futures: ``cancel()`` is True exactly when the task had not started;
    ``running()`` stays False (starts are not reported back).
    """

    _counter = itertools.count().__next__

    def __init__(self, max_workers=None, thread_name_prefix="",
                 initializer=None, initargs=(), *, pickle=True):
        if _calls.loading_main():
            raise RuntimeError(_GUARD)
        if max_workers is None:
            max_workers = _default_workers()
        elif max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        ref, args, kwargs = None, (), None
        if initializer is not None:
            if not callable(initializer):
                raise TypeError("initializer must be a callable")
            ref, args, kwargs = _calls.reference(initializer)
        setup = (-1, CALL, ref, args + tuple(initargs), kwargs,
                 _calls.main_spec(), bool(pickle))
        prefix = (thread_name_prefix
                  or "InterpreterPoolExecutor-%d" % self._counter())
        self._max_workers = max_workers
        if "__mp_main__" not in sys.modules and "__main__" in sys.modules:
            # what a worker pickles as __mp_main__.X is __main__.X here
            sys.modules["__mp_main__"] = sys.modules["__main__"]
        self._pool = _Pool(max_workers, prefix, setup, bool(pickle))
        weakref.finalize(self, _Pool.shutdown, self._pool).atexit = False

    def submit(self, fn, /, *args, **kwargs):
        """Schedule fn(*args, **kwargs) in a worker interpreter; a Future.
        Raises NotShareableError at once when fn or an argument cannot
        travel."""
        ref, pargs, pkw = _calls.reference(fn)
        if pargs:
            args = pargs + args
        if pkw:
            kwargs = {**pkw, **kwargs}
        return self._pool.submit(CALL, ref, args, kwargs or None)

    def map(self, fn, *iterables, timeout=None, chunksize=1,
            buffersize=None):
        """Like the builtin map(fn, *iterables), run in the workers, with
        the results in order. chunksize > 1 sends that many calls as one
        message, run by one worker; buffersize bounds how many messages
        (chunks) are submitted ahead of the results consumed, as 3.14's
        Executor.map does. timeout (seconds) bounds the whole iteration
        (TimeoutError)."""
        if buffersize is not None and not isinstance(buffersize, int):
            raise TypeError("buffersize must be an integer or None")
        if buffersize is not None and buffersize < 1:
            raise ValueError("buffersize must be None or > 0")
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        ref, pargs, pkw = _calls.reference(fn)
        if timeout is not None:
            end_time = timeout + time.monotonic()
        items = zip(*iterables)
        if pargs:
            items = (pargs + a for a in items)
        mode = CALL
        if chunksize > 1:
            items, mode = itertools.batched(items, chunksize), CHUNK
        pool = self._pool

        def submit(a):
            return pool.submit(mode, ref, a, pkw)

        if buffersize:
            fs = collections.deque(
                submit(a) for a in itertools.islice(items, buffersize))
        else:
            fs = [submit(a) for a in items]

        # As 3.14's Executor.map: the iterator refills the buffer only
        # while the executor lives, and does not keep it alive.
        executor_ref = weakref.ref(self)

        def result_iterator():
            try:
                fs.reverse()             # pop() from the end: in order
                while fs:
                    if buffersize and executor_ref() is not None:
                        a = next(items, None)
                        if a is not None:
                            fs.appendleft(submit(a))
                    if timeout is None:
                        yield _result_or_cancel(fs.pop())
                    else:
                        yield _result_or_cancel(fs.pop(),
                                                end_time - time.monotonic())
            finally:
                for f in fs:
                    f.cancel()

        if mode == CHUNK:
            return _chain_lists(result_iterator())
        return result_iterator()

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Stop taking tasks. cancel_futures=True cancels every task no
        worker has started. wait=True returns once every worker
        interpreter is destroyed; a Ctrl-C while waiting cancels what has
        not started and propagates. Safe to call more than once."""
        self._pool.shutdown(cancel_futures)
        if wait:
            try:
                self._pool.wait()
            except KeyboardInterrupt:
                self._pool.shutdown(cancel_futures=True)
                raise

    def __exit__(self, exc_type, exc_val, exc_tb):
        # Leaving on Ctrl-C: cancel what has not started, wait for the rest.
        self.shutdown(wait=True, cancel_futures=exc_type is not None and
                      issubclass(exc_type, KeyboardInterrupt))
        return False


def _result_or_cancel(fut, timeout=None):
    try:
        try:
            return fut.result(timeout)
        finally:
            fut.cancel()
    finally:
        del fut          # break the cycle through fut's exception


def _chain_lists(chunks):
    for chunk in chunks:
        chunk.reverse()
        while chunk:
            yield chunk.pop()
