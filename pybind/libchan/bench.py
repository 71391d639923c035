"""The benchmark of libchan's Python binding: ``python -m libchan.bench``.

Compares, on the same machine in the same run, the main interpreter sending
to one consumer in another interpreter (or process, or thread):

- libchan ``Channel`` to a subinterpreter (own GIL);
- ``interpreters.Queue`` to a subinterpreter, default (pickled) and
  ``syncobj=True`` (3.13: ``test.support.interpreters``; 3.12: the
  ``interpreters-pep-734`` backport, which needs ``interpreters-3-12``);
- ``multiprocessing.Queue`` and ``multiprocessing.Pipe`` to a child process;
- ``queue.SimpleQueue`` between two threads of the main interpreter;
- a bare ``pickle.dumps`` + ``pickle.loads`` (protocol 5) in one thread;

and ``libchan.dumps``/``loads`` against ``pickle`` and ``msgspec.msgpack``,
for a small int, a 100-character str, a 1000-int tuple (as a tuple and as a
``SharedTuple``, plus a 1-element ``SharedTuple``), 250 mixed records, and
1 MiB of bytes (as bytes and as a ``SharedBuffer``, plus a 1 KiB one).

Options: ``--quick`` (CI smoke: one short run, ~20 s), ``--runs N``,
``--json FILE`` (``-`` for stdout; the table then goes to stderr),
``--plot FILE.png`` (needs matplotlib). Exit status 1 when a libchan cell
failed (error), 2 when libchan cannot be imported, else 0: targets are
reported, not asserted.

The consumer loop (:func:`_serve`) runs unchanged in a subinterpreter, a
thread or a child process, so this module keeps its top-level imports to a
few stdlib modules that load anywhere.
"""

import queue as _queue
import sys
import time
from itertools import repeat as _repeat

# How long a consumer waits for its next command, and for each message inside
# a sample (whole seconds: interpreters.Queue truncates timeouts to seconds).
CMD_TIMEOUT = 3600
DATA_TIMEOUT = 20
# How long the harness waits for a consumer's reply before calling it hung.
REPLY_TIMEOUT = 60.0
START_TIMEOUT = 60.0
SCHEMA = "libchan.bench/1"


# ---------------------------------------------------------------------------
# The consumer: the same loop for every transport.
# ---------------------------------------------------------------------------

def _serve(get, put, hot_get=None):
    """Answer the harness's commands until "stop" or until get() fails.

    get(timeout=...) waits for a command or a message; put(obj) replies.
    hot_get(), when given, is used for messages inside a sample instead of
    get(timeout=DATA_TIMEOUT) (for multiprocessing.Pipe, whose recv() has no
    timeout; the harness kills that consumer if it hangs). Commands and
    replies are str, which every transport carries natively.
    """
    from time import perf_counter

    T = DATA_TIMEOUT
    while True:
        try:
            cmd = get(timeout=CMD_TIMEOUT)
        except BaseException:
            return                       # timed out, shut down, or EOF
        try:
            if not isinstance(cmd, str):
                put("error unexpected item of type %s" % type(cmd).__name__)
                continue
            op, _, rest = cmd.partition(" ")
            if op == "stop":
                put("bye")
                return
            if op == "ping":
                put("pong %r" % perf_counter())
                continue
            if op == "probe":             # echo one item, for checking
                put(get(timeout=T) if hot_get is None else hot_get())
                continue
            n, touch = (int(v) for v in rest.split())
            if op == "oneway":
                put("ready")
                # The consumer touches each message minimally: len() of a
                # container, nothing for a scalar.
                if hot_get is None:
                    if touch:
                        len(get(timeout=T))
                        t1 = perf_counter()
                        for _ in _repeat(None, n - 1):
                            len(get(timeout=T))
                    else:
                        get(timeout=T)
                        t1 = perf_counter()
                        for _ in _repeat(None, n - 1):
                            get(timeout=T)
                else:
                    if touch:
                        len(hot_get())
                        t1 = perf_counter()
                        for _ in _repeat(None, n - 1):
                            len(hot_get())
                    else:
                        hot_get()
                        t1 = perf_counter()
                        for _ in _repeat(None, n - 1):
                            hot_get()
                t2 = perf_counter()
                put("done %r %r" % (t1, t2))
            elif op == "echo":
                put("ready")
                if hot_get is None:
                    for _ in _repeat(None, n):
                        put(get(timeout=T))
                else:
                    for _ in _repeat(None, n):
                        put(hot_get())
            else:
                put("error unknown command %r" % cmd)
        except BaseException as e:       # report, then wait for the next one
            try:
                put("error %s: %s" % (type(e).__name__, e))
            except BaseException:
                return


def _mp_child(kind, a, b=None):
    """Entry point of the multiprocessing consumers (spawned)."""
    import libchan  # noqa: F401  (SharedTuple/SharedBuffer unpickle to it)

    if kind == "queue":
        _serve(a.get, b.put)
        return
    conn = a

    def get(timeout=None):
        if timeout is not None and not conn.poll(timeout):
            raise _queue.Empty
        return conn.recv()

    _serve(get, conn.send, hot_get=conn.recv)


def _thread_child(qin, qout):
    _serve(qin.get, qout.put)


# ---------------------------------------------------------------------------
# Workers: where a consumer runs.
# ---------------------------------------------------------------------------

class Broken(Exception):
    """The consumer failed, hung or answered nonsense: the transport is out."""


class CannotCarry(Exception):
    """The transport refuses this payload (not shareable, not picklable)."""


def _exc_text(e):
    info = getattr(e, "excinfo", None)     # 3.13 ExecutionFailed
    if info is not None:
        return "%s: %s" % (getattr(info.type, "__name__", info.type), info.msg)
    return "%s: %s" % (type(e).__name__, e)


class _ThreadWorker:
    """A consumer running target(*args) in a daemon thread of its own; a
    failure is kept in .error."""

    def __init__(self, target, args):
        import threading

        self.error = None

        def main():
            try:
                target(*args)
            except BaseException as e:
                self.error = _exc_text(e)

        self._thread = threading.Thread(target=main, daemon=True,
                                        name="libchan.bench consumer")
        self._thread.start()

    def alive(self):
        return self._thread.is_alive()

    def close(self, timeout):
        """Wait for the consumer (and its interpreter, if any) to end."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


def _run_in_new_interp(api, code):
    """Create a subinterpreter, run code in it, destroy it, all in the
    calling thread.

    api: "stdlib" (3.13 test.support.interpreters), "backport" (3.12
    interpreters_backport.interpreters) or "xx" (3.12 _xxsubinterpreters).
    One thread does all three: on 3.12, destroying from another thread an
    interpreter in which `threading` was imported (queue and libchan import
    it) waits forever in Py_EndInterpreter's wait_for_thread_shutdown.
    """
    if api == "xx":
        import _xxsubinterpreters as xx
        try:
            iid = xx.create(isolated=True)
        except TypeError:
            iid = xx.create()
        run = lambda: xx.run_string(iid, code)  # noqa: E731
        close = lambda: xx.destroy(iid)  # noqa: E731
    else:
        if api == "stdlib":
            from test.support import interpreters as mod
        else:
            from interpreters_backport import interpreters as mod
        interp = mod.create()
        run = lambda: interp.exec(code)  # noqa: E731
        close = interp.close
    try:
        run()
    except BaseException:
        try:
            close()
        except BaseException:
            pass                  # run()'s error is the one to report
        raise
    try:
        close()
    except BaseException as e:
        raise RuntimeError("closing the interpreter: " + _exc_text(e)) from e


class _SubInterpWorker(_ThreadWorker):
    """A consumer running in a new subinterpreter, in a thread of its own
    (see _run_in_new_interp)."""

    def __init__(self, api, code):
        self.api = api
        super().__init__(_run_in_new_interp, (api, code))


class _ProcessWorker:
    def __init__(self, ctx, args):
        from libchan import bench as me    # pickled by module name, not __main__

        self.error = None
        self._proc = ctx.Process(target=me._mp_child, args=args, daemon=True,
                                 name="libchan.bench consumer")
        self._proc.start()

    def alive(self):
        alive = self._proc.is_alive()
        if not alive and self.error is None:
            self.error = "child process exited with code %s" % self._proc.exitcode
        return alive

    def kill(self):
        if self._proc.is_alive():
            self._proc.kill()

    def close(self, timeout):
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        return not self._proc.is_alive()


# ---------------------------------------------------------------------------
# Transports: the main interpreter's side of each peer.
# ---------------------------------------------------------------------------

def _consumer_code(setup, get, put):
    return "\n".join([
        "import sys",
        "sys.path[:] = %r" % (sys.path,),
        "import libchan",
        setup,
        "from libchan.bench import _serve",
        "_serve(%s, %s)" % (get, put),
        "",
    ])


class Transport:
    key = label = where = ""
    poll_slice = 0.5        # seconds per wait while polling for a reply
    hot_recv = None         # main-side receive without timeout (Pipe)
    needs_pickle = False    # put() pickles later, in another thread
    is_process = False

    def __init__(self):
        self.na = None          # (short, long): cannot run on this Python
        self.broken = None      # error text once the consumer failed
        self.worker = None
        self.clock_ok = True    # consumer's perf_counter is ours
        self._probed = {}       # payload key -> None | CannotCarry | Broken

    # -- set by start(): self.put(obj), self.get(timeout=...) ---------------

    def start(self):
        raise NotImplementedError

    def abort(self):
        """Unblock or kill a consumer stuck in a sample."""

    def _finish(self):
        """Release queues/channels after the consumer is gone."""

    def alive(self):
        return self.worker is not None and self.worker.alive()

    def _poll(self, timeout):
        return self.get(timeout=timeout)

    def reply(self, timeout=REPLY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._poll(self.poll_slice)
            except _queue.Empty:
                if not self.alive():
                    raise Broken("consumer died: %s"
                                 % (self.worker.error or "no error reported"))
                if time.monotonic() > deadline:
                    raise Broken("consumer did not answer within %.0f s"
                                 % timeout)
            except (EOFError, OSError) as e:
                raise Broken("consumer connection lost: %s" % _exc_text(e))

    def expect(self, prefix, timeout=REPLY_TIMEOUT):
        r = self.reply(timeout)
        if isinstance(r, str) and r.startswith(prefix):
            return r
        if isinstance(r, str) and r.startswith("error"):
            raise Broken("consumer: " + r[6:])
        raise Broken("unexpected reply %.80r (wanted %r)" % (r, prefix))

    def handshake(self):
        t0 = time.perf_counter()
        self.put("ping")
        r = self.expect("pong", START_TIMEOUT)
        t1 = time.perf_counter()
        self.clock_ok = t0 <= float(r.split()[1]) <= t1

    def _watchdog(self, seconds):
        import threading

        if not self.is_process:
            return None
        t = threading.Timer(seconds, self.worker.kill)
        t.daemon = True
        t.start()
        return t

    # -- measurements -------------------------------------------------------

    def probe(self, key, x):
        """Check once per payload that the item arrives equal; cache why not."""
        if key in self._probed:
            err = self._probed[key]
            if err is not None:
                raise err
            return
        try:
            self._probe(x)
        except (CannotCarry, Broken) as e:
            self._probed[key] = e
            raise
        self._probed[key] = None

    def _probe(self, x):
        if self.needs_pickle:
            import pickle
            try:
                pickle.dumps(x)
            except Exception as e:
                raise CannotCarry(_exc_text(e))
        self.put("probe")
        try:
            self.put(x)
        except Exception as e:
            self.put(None)            # the consumer waits for an item
            self.reply()
            raise CannotCarry(_exc_text(e))
        y = self.reply()
        if isinstance(y, str) and y.startswith("error"):
            raise CannotCarry("echo failed: " + y[6:])
        if not y == x:
            raise Broken("the item arrived different: sent %s, got %s %.60r"
                         % (type(x).__name__, type(y).__name__, y))
        if self.key == "libchan" and type(y) is not type(x):
            raise Broken("the item arrived as %s, sent %s"
                         % (type(y).__name__, type(x).__name__))

    def oneway(self, x, n, touch):
        """Seconds per message, first put to the consumer's last get."""
        self.put("oneway %d %d" % (n, int(touch)))
        self.expect("ready")
        put = self.put
        dog = self._watchdog(REPLY_TIMEOUT)
        try:
            t0 = time.perf_counter()
            for _ in _repeat(None, n):
                put(x)
            r = self.expect("done")
            t3 = time.perf_counter()
        except (EOFError, OSError) as e:
            raise Broken("consumer connection lost: %s" % _exc_text(e))
        finally:
            if dog is not None:
                dog.cancel()
        _, t1, t2 = r.split()
        t1, t2 = float(t1), float(t2)
        end = t2 if self.clock_ok else t3
        extra = {"steady_us": (t2 - t1) / (n - 1) * 1e6 if n > 1 else None}
        return (end - t0) / n, end - t0, extra

    def roundtrip(self, x, n):
        """Median seconds per blocking round trip (consumer echoes)."""
        self.put("echo %d 0" % n)
        self.expect("ready")
        put = self.put
        pc = time.perf_counter_ns
        times = []
        add = times.append
        dog = self._watchdog(REPLY_TIMEOUT)
        try:
            if self.hot_recv is not None:
                get = self.hot_recv
                for _ in _repeat(None, n):
                    t = pc()
                    put(x)
                    get()
                    add(pc() - t)
            else:
                get, T = self.get, DATA_TIMEOUT
                for _ in _repeat(None, n):
                    t = pc()
                    put(x)
                    get(timeout=T)
                    add(pc() - t)
        except _queue.Empty:
            raise Broken("no echo within %d s" % DATA_TIMEOUT)
        except (EOFError, OSError) as e:
            raise Broken("consumer connection lost: %s" % _exc_text(e))
        finally:
            if dog is not None:
                dog.cancel()
        import statistics
        times.sort()
        return (statistics.median(times) * 1e-9, sum(times) * 1e-9,
                {"min_us": times[0] * 1e-3,
                 "p90_us": times[int(len(times) * 0.9)] * 1e-3,
                 "max_us": times[-1] * 1e-3})

    def stop(self):
        """Stop the consumer; True when everything is released."""
        if self.worker is None:
            self._finish()
            return True
        clean = False
        if self.broken is None and self.alive():
            try:
                self.put("stop")
                self.expect("bye", 10)
                clean = True
            except Exception:
                pass
        if not clean:
            self.abort()
            try:
                self.put("stop")
            except Exception:
                pass
        done = self.worker.close(10 if clean else DATA_TIMEOUT + 10)
        self._finish()
        return done


def _interp_api():
    """(api, None) for the PEP 734 modules on this Python, or (None, why)."""
    if sys.version_info >= (3, 13):
        try:
            from test.support import interpreters  # noqa: F401
            from test.support.interpreters import queues  # noqa: F401
        except ImportError as e:
            return None, ("no module", "test.support.interpreters: %s" % e)
        return "stdlib", None
    # 3.12: the backport. Its C half (interpreters-3-12) is tied to the
    # CPython patch release it was built for and may crash at import, so
    # try it in a child process first.
    import importlib.util
    import subprocess

    if importlib.util.find_spec("interpreters_backport") is None:
        return None, ("no backport", "interpreters-pep-734 is not installed "
                      "(PEP 734's Queue is in the stdlib from 3.13)")
    code = ("from interpreters_backport import interpreters\n"
            "from interpreters_backport.interpreters import queues\n"
            "q = queues.create(); i = interpreters.create()\n"
            "i.exec('pass'); i.close()\n")
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True,
                           text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None, ("backport hangs", "the interpreters-pep-734 backport "
                      "hung in a smoke test")
    if p.returncode == 0:
        return "backport", None
    if p.returncode < 0:
        return None, ("backport crashes", "the interpreters-pep-734 backport "
                      "(interpreters-3-12) crashed with signal %d on Python %s"
                      % (-p.returncode, sys.version.split()[0]))
    last = (p.stderr.strip().splitlines() or ["?"])[-1]
    return None, ("backport broken", "interpreters-pep-734 does not load: "
                  + last)


class LibchanT(Transport):
    key, label = "libchan", "libchan Channel"
    where = "subinterpreter (own GIL)"

    def start(self):
        import libchan

        self.qin, self.qout = libchan.Channel(), libchan.Channel()
        self.put, self.get = self.qin.put, self.qout.get
        api = "stdlib" if sys.version_info >= (3, 13) else "xx"
        code = _consumer_code(
            "qin = libchan.lookup(%d); qout = libchan.lookup(%d)"
            % (self.qin.id, self.qout.id), "qin.get", "qout.put")
        self.worker = _SubInterpWorker(api, code)
        self.handshake()

    def abort(self):
        for ch in (self.qin, self.qout):
            ch.shutdown(immediate=True)

    def _finish(self):
        for ch in (getattr(self, "qin", None), getattr(self, "qout", None)):
            if ch is not None:
                ch.shutdown(immediate=True)


class InterpQueueT(Transport):
    poll_slice = 1          # interpreters.Queue truncates timeouts to ints
    where = "subinterpreter (own GIL)"

    def __init__(self, syncobj, api, why):
        super().__init__()
        self.syncobj, self.api = syncobj, api
        self.key = "iq.sync" if syncobj else "iq"
        self.label = ("interpreters.Queue(syncobj=True)" if syncobj
                      else "interpreters.Queue() (pickled)")
        self.na = why

    def _mod(self):
        if self.api == "stdlib":
            return "test.support.interpreters.queues"
        return "interpreters_backport.interpreters.queues"

    def start(self):
        import importlib

        Q = importlib.import_module(self._mod())
        self.qin = Q.create(syncobj=self.syncobj)
        self.qout = Q.create(syncobj=self.syncobj)
        self.put, self.get = self.qin.put, self.qout.get
        code = _consumer_code(
            "import %s as Q\nqin = Q.Queue(%d); qout = Q.Queue(%d)"
            % (self._mod(), self.qin.id, self.qout.id), "qin.get", "qout.put")
        self.worker = _SubInterpWorker(self.api, code)
        self.handshake()

    def _finish(self):
        self.qin = self.qout = self.put = self.get = None


class MPQueueT(Transport):
    key, label, where = "mp.Queue", "multiprocessing.Queue", "child process"
    needs_pickle = True
    is_process = True

    def __init__(self, ctx):
        super().__init__()
        self.ctx = ctx

    def start(self):
        self.qin, self.qout = self.ctx.Queue(), self.ctx.Queue()
        self.put, self.get = self.qin.put, self.qout.get
        self.worker = _ProcessWorker(self.ctx, ("queue", self.qin, self.qout))
        self.handshake()

    def abort(self):
        self.worker.kill()

    def _finish(self):
        for q in (getattr(self, "qin", None), getattr(self, "qout", None)):
            if q is not None:
                q.close()
                q.cancel_join_thread()


class MPPipeT(Transport):
    key, label, where = "mp.Pipe", "multiprocessing.Pipe", "child process"
    is_process = True

    def __init__(self, ctx):
        super().__init__()
        self.ctx = ctx

    def start(self):
        self.conn, child = self.ctx.Pipe()
        self.put = self.conn.send
        self.hot_recv = self.conn.recv
        self.worker = _ProcessWorker(self.ctx, ("pipe", child))
        child.close()
        self.handshake()

    def _poll(self, timeout):
        if self.conn.poll(timeout):
            return self.conn.recv()
        raise _queue.Empty

    def get(self, timeout=None):
        return self._poll(timeout)

    def abort(self):
        self.worker.kill()

    def _finish(self):
        if getattr(self, "conn", None) is not None:
            self.conn.close()


class SimpleQueueT(Transport):
    key, label = "SimpleQ", "queue.SimpleQueue"
    where = "another thread, same interpreter (shared GIL)"

    def start(self):
        self.qin, self.qout = _queue.SimpleQueue(), _queue.SimpleQueue()
        self.put, self.get = self.qin.put, self.qout.get
        self.worker = _ThreadWorker(_thread_child, (self.qin, self.qout))
        self.handshake()


# ---------------------------------------------------------------------------
# Payloads and local (one-thread) measurements.
# ---------------------------------------------------------------------------

MIB = 1 << 20
# key, label, touch (consumer calls len()), size in bytes (to cap N so that
# an unbounded queue never holds more than ~MEM_CAP of copies), shared
PAYLOADS = [
    ("int", "small int", False, 8, False),
    ("str100", "str, 100 chars", True, 100, False),
    ("tuple1000", "tuple of 1000 ints", True, 8000, False),
    ("stuple1000", "SharedTuple, 1000 ints", True, 8000, True),
    ("stuple1", "SharedTuple, 1 int", True, 16, True),
    ("mixed250", "250 (int,float,str,bytes)", True, 250 * 64, False),
    ("bytes1M", "bytes, 1 MiB", True, MIB, False),
    ("sbuf1M", "SharedBuffer, 1 MiB", True, MIB, True),
    ("sbuf1K", "SharedBuffer, 1 KiB", True, 1024, True),
]
MEM_CAP = 512 * MIB


def make_payloads(libchan):
    data = bytes(range(256)) * (MIB // 256)
    mixed = tuple((i, i * 0.5, "record-%05d" % i, bytes([i % 256]) * 8)
                  for i in range(250))
    return {
        "int": 42,
        "str100": ("libchan-" * 13)[:100],
        "tuple1000": tuple(range(1000)),
        "stuple1000": libchan.SharedTuple(range(1000)),
        "stuple1": libchan.SharedTuple((7,)),
        "mixed250": mixed,
        "bytes1M": data,
        "sbuf1M": libchan.SharedBuffer(data),
        "sbuf1K": libchan.SharedBuffer(data[:1024]),
    }


def _loop_time(fn):
    """fn(n) runs n iterations; returns a runner for the scheduler."""
    def run(n):
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        return dt / n, dt, None
    return run


def local_runners(libchan, x):
    """name -> (runner or None, n/a reason) for the codec table."""
    import pickle

    out = {}
    dumps, loads = pickle.dumps, pickle.loads

    def pickle_dl(n):
        for _ in _repeat(None, n):
            loads(dumps(x, 5))
    out["pickle.d+l"] = (_loop_time(pickle_dl), None)

    p = dumps(x, 5)

    def pickle_d(n):
        for _ in _repeat(None, n):
            dumps(x, 5)

    def pickle_l(n):
        for _ in _repeat(None, n):
            loads(p)
    out["pickle.dumps"] = (_loop_time(pickle_d), None)
    out["pickle.loads"] = (_loop_time(pickle_l), None)

    ldumps, lloads = libchan.dumps, libchan.loads
    try:
        b = ldumps(x)
        y = lloads(b)
        if not y == x:
            raise Broken("loads(dumps(x)) != x: got %s %.60r"
                         % (type(y).__name__, y))
    except Broken as e:
        out["libchan.dumps"] = out["libchan.loads"] = (
            None, ("error", str(e), "wrong value"))
    except Exception as e:
        err = ("error", "libchan.dumps/loads: " + _exc_text(e), None)
        out["libchan.dumps"] = out["libchan.loads"] = (None, err)
    else:
        def lch_d(n):
            for _ in _repeat(None, n):
                ldumps(x)

        def lch_l(n):
            for _ in _repeat(None, n):
                lloads(b)
        out["libchan.dumps"] = (_loop_time(lch_d), None)
        out["libchan.loads"] = (_loop_time(lch_l), None)

    try:
        import msgspec
    except ImportError:
        na = ("n/a", "msgspec is not installed", "no msgspec")
        out["msgspec.enc"] = out["msgspec.dec"] = (None, na)
    else:
        enc = msgspec.msgpack.Encoder().encode
        dec = msgspec.msgpack.Decoder().decode
        try:
            m = enc(x)
            dec(m)
        except Exception as e:
            na = ("n/a", "msgspec.msgpack cannot encode %s (%s)"
                  % (type(x).__name__, _exc_text(e)), "unsupported type")
            out["msgspec.enc"] = out["msgspec.dec"] = (None, na)
        else:
            def ms_e(n):
                for _ in _repeat(None, n):
                    enc(x)

            def ms_d(n):
                for _ in _repeat(None, n):
                    dec(m)
            out["msgspec.enc"] = (_loop_time(ms_e), None)
            out["msgspec.dec"] = (_loop_time(ms_d), None)

    ch = libchan.Channel()
    try:
        ch.put(x)
        y = ch.get_nowait()
        if not (y == x and type(y) is type(x)):
            raise Broken("Channel put+get returned %s %.60r"
                         % (type(y).__name__, y))
    except Exception as e:
        ch.shutdown(immediate=True)
        out["Channel.put+get"] = (None, ("error", "Channel, one thread: "
                                         + _exc_text(e), None))
    else:
        put, get = ch.put, ch.get_nowait

        def chan(n):
            for _ in _repeat(None, n):
                put(x)
                get()
        out["Channel.put+get"] = (_loop_time(chan), None)
        out["_channel"] = ch      # shut down at the end
    return out


def floor_runners():
    import ctypes

    src = bytearray(bytes(range(256)) * (MIB // 256))
    dst = bytearray(src)                 # pages touched before timing
    s = (ctypes.c_char * MIB).from_buffer(src)
    d = (ctypes.c_char * MIB).from_buffer(dst)
    sa, da = ctypes.addressof(s), ctypes.addressof(d)
    memmove = ctypes.memmove

    def mm(n):
        for _ in _repeat(None, n):
            memmove(da, sa, MIB)
        s, d  # keep the buffers exported while in use

    def copy(n):
        for _ in _repeat(None, n):
            bytes(src)
    return {"memcpy 1 MiB (ctypes.memmove, preallocated)": _loop_time(mm),
            "bytes(bytearray of 1 MiB) (allocate + copy)": _loop_time(copy)}


# ---------------------------------------------------------------------------
# The scheduler.
# ---------------------------------------------------------------------------

class Cell:
    def __init__(self, table, payload, peer, run=None, status="ok",
                 reason=None, short=None, nmax=2_000_000, nmin=4, budget=0.2,
                 transport=None, probe=None):
        self.table, self.payload, self.peer = table, payload, peer
        self.run, self.status, self.reason, self.short = run, status, reason, short
        self.nmax, self.nmin, self.budget = nmax, nmin, budget
        self.transport, self.probe = transport, probe
        self.n = None
        self.values = []        # seconds per message (or per round trip)
        self.extras = []

    @property
    def median(self):
        if self.status != "ok" or not self.values:
            return None
        import statistics
        return statistics.median(self.values)

    def fail(self, status, reason, short=None):
        self.status, self.reason = status, reason
        self.short = short or _shorten(reason)


def _shorten(reason, width=22):
    reason = reason.split(": ", 1)[-1] if len(reason) > width else reason
    return reason if len(reason) <= width else reason[:width - 1] + "~"


def _guarded(cell, fn, *args):
    """Run one sample; turn failures into the cell's status."""
    t = cell.transport
    if t is not None and t.broken is not None:
        cell.fail("error", "consumer failed earlier: " + t.broken,
                  "consumer failed")
        return None
    try:
        if cell.probe is not None:
            cell.probe()
        return fn(*args)
    except CannotCarry as e:
        cell.fail("n/a", "%s cannot carry it: %s" % (cell.peer, e),
                  "cannot carry")
    except Broken as e:
        msg = str(e)
        short = next((v for k, v in (
            ("did not answer", "hung"), ("no echo", "hung"),
            ("died", "consumer died"), ("connection lost", "connection lost"),
            ("arrived", "wrong value"), ("consumer: ", "consumer error"),
            ("unexpected reply", "bad reply")) if k in msg), None)
        cell.fail("error", msg, short)
        if t is not None and "arrived" not in str(e):   # consumer is out
            t.broken = str(e)
            t.abort()
    except Exception as e:
        cell.fail("error", _exc_text(e))
        if t is not None:
            t.broken = _exc_text(e)
            t.abort()
    return None


def calibrate(cell):
    """Grow N until a sample lasts about cell.budget (these are warm-up)."""
    n = cell.nmin
    while True:
        s = _guarded(cell, cell.run, n)
        if s is None:
            return False
        elapsed = s[1]
        if elapsed >= cell.budget / 4 or n >= cell.nmax:
            break
        factor = min(100.0, max(2.0, cell.budget / max(elapsed, 1e-7)))
        n = min(cell.nmax, int(n * factor) + 1)
    n = int(cell.budget / max(elapsed / n, 1e-9))
    cell.n = max(cell.nmin, min(cell.nmax, n))
    return True


def measure(cell):
    s = _guarded(cell, cell.run, cell.n)
    if s is not None:
        cell.values.append(s[0])
        cell.extras.append(s[2])


# ---------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------

PEER_ORDER = ["libchan", "iq", "iq.sync", "mp.Queue", "mp.Pipe", "SimpleQ"]
CODEC_OPS = ["libchan.dumps", "libchan.loads", "pickle.dumps", "pickle.loads",
             "msgspec.enc", "msgspec.dec", "Channel.put+get"]


def fmt_us(v):
    if v is None:
        return "-"
    if v < 1:
        return "%.3f" % v
    if v < 10:
        return "%.2f" % v
    if v < 100:
        return "%.1f" % v
    return "%.0f" % v


def fmt_ratio(r):
    if r is None:
        return "-"
    if r < 0.1:
        return "%.3fx" % r
    if r < 10:
        return "%.2fx" % r
    if r < 100:
        return "%.1fx" % r
    return "%.0fx" % r


def cell_text(c):
    if c is None:
        return "-"
    if c.status == "ok":
        return fmt_us(c.median * 1e6) if c.median is not None else "-"
    return "%s (%s)" % (c.status, c.short)


def render(headers, rows):
    widths = [max(len(str(r[i])) for r in [headers] + rows)
              for i in range(len(headers))]
    def line(r):
        return "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                         for i, (v, w) in enumerate(zip(r, widths))).rstrip()
    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def ratio(peer_cell, base_cell):
    if peer_cell is None or base_cell is None:
        return None
    a, b = peer_cell.median, base_cell.median
    if a is None or b is None or b <= 0:
        return None
    return a / b


class Report:
    def __init__(self, meta, transports, payload_labels, cells, floors):
        self.meta, self.transports = meta, transports
        self.labels = payload_labels
        self.cells = cells          # (table, payload, peer) -> Cell
        self.floors = floors        # name -> Cell

    def get(self, table, payload, peer):
        return self.cells.get((table, payload, peer))

    def med_us(self, table, payload, peer):
        c = self.get(table, payload, peer)
        return None if c is None or c.median is None else c.median * 1e6

    def table(self, table, peers, base, base_table=None):
        rows, rrows = [], []
        for key, label in self.labels:
            b = self.get(base_table or table, key, base)
            rows.append([label] + [cell_text(self.get(table, key, p))
                                   for p in peers])
            rrows.append([label] + [fmt_ratio(ratio(self.get(table, key, p), b))
                                    for p in peers if p != base])
        return rows, rrows

    def targets(self):
        T = []

        def add(name, value, unit, op, threshold, note=""):
            met = None if value is None else (
                value >= threshold if op == ">=" else
                value <= threshold if op == "<=" else value < threshold)
            T.append({"target": name, "measured": value, "unit": unit,
                      "op": op, "threshold": threshold, "met": met,
                      "note": note})

        ow = lambda p, k: self.med_us("oneway", k, p)  # noqa: E731
        lib_int = ow("libchan", "int")
        r = ratio(self.get("oneway", "int", "iq.sync"),
                  self.get("oneway", "int", "libchan"))
        add("small int one way: libchan vs interpreters.Queue(syncobj=True)",
            r, "x faster", ">=", 10.0)
        sq = ow("SimpleQ", "int")
        add("small int one way: libchan time / queue.SimpleQueue (threads)",
            None if lib_int is None or sq is None else lib_int / sq,
            "x", "<=", 2.0)
        add("blocking round trip, small int, libchan",
            self.med_us("roundtrip", "int", "libchan"), "us", "<=", 30.0,
            "stdlib interpreters.Queue here: %s us"
            % fmt_us(self.med_us("roundtrip", "int", "iq.sync")))
        add("SharedBuffer 1 MiB one way", ow("libchan", "sbuf1M"),
            "us", "<", 1.0)
        add("SharedTuple 1000 ints one way", ow("libchan", "stuple1000"),
            "us", "<", 1.0)
        a, b = ow("libchan", "sbuf1M"), ow("libchan", "sbuf1K")
        add("SharedBuffer flat: 1 MiB / 1 KiB, one way",
            None if a is None or b is None else a / b, "x", "<=", 1.5)
        a, b = ow("libchan", "stuple1000"), ow("libchan", "stuple1")
        add("SharedTuple flat: 1000 ints / 1 int, one way",
            None if a is None or b is None else a / b, "x", "<=", 1.5)
        pk = self.med_us("local", "tuple1000", "pickle.d+l")
        for what, v in (("one way to a subinterpreter",
                         ow("libchan", "tuple1000")),
                        ("put+get in one thread",
                         self.med_us("local", "tuple1000", "Channel.put+get"))):
            add("1000-int tuple %s / pickle dumps+loads" % what,
                None if v is None or pk is None else v / pk, "x", "<", 1.0,
                "pickle: %s us" % fmt_us(pk))
        f = self.floors.get("memcpy 1 MiB (ctypes.memmove, preallocated)")
        mc = None if f is None or f.median is None else f.median * 1e6
        for what, v in (("one way to a subinterpreter",
                         ow("libchan", "bytes1M")),
                        ("put+get in one thread",
                         self.med_us("local", "bytes1M", "Channel.put+get"))):
            add("1 MiB bytes %s / one memcpy of 1 MiB" % what,
                None if v is None or mc is None else v / mc, "x", "<=", 3.0,
                "memcpy: %s us" % fmt_us(mc))
        return T

    def text(self):
        m = self.meta
        L = []
        L.append("libchan %s benchmark (python -m libchan.bench)"
                 % m["libchan_version"])
        L.append("Python %s (%s) on %s; %s CPUs (%s usable); %s"
                 % (m["python"], m["implementation"], m["platform"],
                    m["cpu_count"], m["cpus_usable"], m["date"]))
        L.append("load average at start %s, at end %s"
                 % (m["loadavg_start"], m.get("loadavg_end")))
        L.append("method: %s" % m["method"])
        L.append("pyperf: %s" % m["pyperf"])
        L.append("")
        L.append("peers (columns):")
        for t in self.transports:
            L.append("  %-9s %s -> %s%s" % (
                t.key, t.label, t.where,
                "" if t.na is None else "  [n/a: %s]" % t.na[1]))
        L.append("  %-9s pickle.dumps(x, protocol=5) + pickle.loads, one "
                 "thread (no transport)" % "pickle")
        peers = [t.key for t in self.transports]
        L.append("")
        L.append("One way, main interpreter -> one consumer: us per message "
                 "(median; lower is better)")
        rows, rrows = self.table("oneway", peers + ["pickle"], "libchan")
        L.append(render(["payload"] + peers + ["pickle"], rows))
        L.append("")
        L.append("One way: libchan's ratio, peer time / libchan time "
                 "(> 1: libchan faster)")
        L.append(render(["payload"] + [p for p in peers + ["pickle"]
                                       if p != "libchan"], rrows))
        L.append("")
        L.append("Blocking round trip (ping-pong through two queues, "
                 "consumer echoes): us per round trip (median)")
        rows, rrows = self.table("roundtrip", peers, "libchan")
        L.append(render(["payload"] + peers, rows))
        L.append("")
        L.append("Round trip: libchan's ratio, peer time / libchan time")
        L.append(render(["payload"] + [p for p in peers if p != "libchan"],
                        rrows))
        L.append("")
        L.append("Codec, one thread: us per call (median); Channel.put+get "
                 "= put then get_nowait on one Channel")
        ops = CODEC_OPS
        rows = [[lab] + [cell_text(self.get("local", k, op)) for op in ops]
                for k, lab in self.labels]
        L.append(render(["payload", "lch.dumps", "lch.loads", "pkl.dumps",
                         "pkl.loads", "msgspec.enc", "msgspec.dec",
                         "Chan.put+get"], rows))
        L.append("")
        L.append("Codec: libchan's ratio, peer time / libchan time")
        rows = []
        for k, lab in self.labels:
            g = lambda op: self.get("local", k, op)  # noqa: E731
            rows.append([lab,
                         fmt_ratio(ratio(g("pickle.dumps"), g("libchan.dumps"))),
                         fmt_ratio(ratio(g("pickle.loads"), g("libchan.loads"))),
                         fmt_ratio(ratio(g("msgspec.enc"), g("libchan.dumps"))),
                         fmt_ratio(ratio(g("msgspec.dec"), g("libchan.loads")))])
        L.append(render(["payload", "pkl.dumps", "pkl.loads", "msgspec.enc",
                         "msgspec.dec"], rows))
        L.append("")
        L.append("Floors, one thread:")
        for name, c in self.floors.items():
            L.append("  %-48s %s us" % (name, cell_text(c)))
        L.append("")
        L.append("Targets:")
        for t in self.targets():
            v = t["measured"]
            val = "not measured" if v is None else (
                fmt_us(v) + " us" if t["unit"] == "us" else fmt_ratio(v))
            status = {True: "[met]", False: "[NOT MET]",
                      None: "[not measured]"}[t["met"]]
            thr = ("%g us" % t["threshold"] if t["unit"] == "us"
                   else "%gx" % t["threshold"])
            L.append("  %-14s %s: %s (want %s %s)%s" % (
                status, t["target"], val, t["op"], thr,
                "; " + t["note"] if t["note"] else ""))
        L.append("")
        L.append("Notes:")
        for note in m["notes"]:
            L.append("  - " + note)
        reasons = {}
        for c in list(self.cells.values()) + list(self.floors.values()):
            if c.status != "ok" and c.reason and c.reason != c.short:
                reasons.setdefault((c.status, c.short, c.reason), []).append(
                    "%s/%s/%s" % (c.table, c.payload, c.peer))
        for (status, short, reason), where in sorted(reasons.items()):
            L.append("  - %s (%s): %s [%s%s]" % (
                status, short, reason, ", ".join(where[:3]),
                ", ..." if len(where) > 3 else ""))
        return "\n".join(L)

    def json(self):
        def cell_json(c):
            return {"status": c.status, "reason": c.reason, "n": c.n,
                    "median_us": None if c.median is None else c.median * 1e6,
                    "samples_us": [v * 1e6 for v in c.values],
                    "extra": c.extras}
        results = {}
        for (table, payload, peer), c in self.cells.items():
            results.setdefault(table, {}).setdefault(payload, {})[peer] = \
                cell_json(c)
        ratios = {}
        for table in ("oneway", "roundtrip"):
            for key, _ in self.labels:
                base = self.get(table, key, "libchan")
                for peer in PEER_ORDER[1:] + ["pickle"]:
                    c = self.get(table, key, peer)
                    if c is not None:
                        ratios.setdefault(table, {}).setdefault(key, {})[
                            peer] = ratio(c, base)
        return {
            "schema": SCHEMA,
            "meta": self.meta,
            "peers": {t.key: {"label": t.label, "where": t.where,
                              "available": t.na is None,
                              "reason": None if t.na is None else t.na[1]}
                      for t in self.transports},
            "payloads": {k: lab for k, lab in self.labels},
            "results": results,
            "floors": {k: cell_json(c) for k, c in self.floors.items()},
            "ratios": ratios,
            "targets": self.targets(),
        }

    def plot(self, path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        peers = [t.key for t in self.transports]
        panels = [("oneway", "One way, us per message", peers + ["pickle"]),
                  ("roundtrip", "Blocking round trip, us", peers),
                  ("local", "Codec, one thread, us per call",
                   ["libchan.dumps", "libchan.loads", "pickle.dumps",
                    "pickle.loads", "msgspec.enc", "msgspec.dec",
                    "Channel.put+get"])]
        fig, axes = plt.subplots(len(panels), 1, figsize=(15, 13))
        xs = range(len(self.labels))
        for ax, (table, title, cols) in zip(axes, panels):
            w = 0.84 / len(cols)
            for j, col in enumerate(cols):
                hs, pos, miss = [], [], []
                for i, (k, _) in enumerate(self.labels):
                    v = self.med_us(table, k, col)
                    x = i - 0.42 + w * (j + 0.5)
                    if v is None:
                        miss.append(x)
                    else:
                        hs.append(v)
                        pos.append(x)
                bars = ax.bar(pos, hs, w, label=col,
                              edgecolor="black" if col == "libchan" else None,
                              linewidth=1.2 if col == "libchan" else 0)
                for x in miss:
                    ax.text(x, 0.02, "n/a", rotation=90, fontsize=6,
                            ha="center", va="bottom",
                            transform=ax.get_xaxis_transform(), color="gray")
                del bars
            ax.set_yscale("log")
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, hi * 30)         # room for the legend
            ax.set_title(title + " (log scale, lower is better)")
            ax.set_xticks(list(xs))
            ax.set_xticklabels([lab for _, lab in self.labels], fontsize=8)
            ax.grid(axis="y", which="major", alpha=0.3)
            ax.legend(fontsize=7, ncol=len(cols), loc="upper left")
        fig.suptitle("libchan %s vs peers: Python %s, %s CPUs, %s" % (
            self.meta["libchan_version"], self.meta["python"],
            self.meta["cpu_count"], self.meta["date"]))
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def _progress(enabled, text):
    if enabled:
        sys.stderr.write("\r\x1b[K" + text)
        sys.stderr.flush()


def main(argv=None):
    import argparse
    import datetime
    import json
    import multiprocessing
    import os
    import platform

    ap = argparse.ArgumentParser(
        prog="python -m libchan.bench",
        description="libchan Channel, SharedBuffer, SharedTuple and codec "
                    "against interpreters.Queue, multiprocessing, "
                    "queue.SimpleQueue, pickle and msgspec.")
    ap.add_argument("--quick", action="store_true",
                    help="one short run per cell (CI smoke test, ~20 s)")
    ap.add_argument("--runs", type=int, default=None,
                    help="measured runs per cell (default 5; --quick: 1)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds per transport sample (default 0.2; "
                         "--quick: 0.01)")
    ap.add_argument("--only", metavar="KEYS",
                    help="comma-separated payload keys (%s)"
                    % ",".join(k for k, *_ in PAYLOADS))
    ap.add_argument("--peers", metavar="KEYS",
                    help="comma-separated peers besides libchan (%s)"
                    % ",".join(PEER_ORDER[1:]))
    ap.add_argument("--json", metavar="FILE",
                    help="write all results and samples as JSON ('-': stdout)")
    ap.add_argument("--plot", metavar="FILE.png",
                    help="draw the comparison as a bar chart (log scale)")
    args = ap.parse_args(argv)
    out = sys.stderr if args.json == "-" else sys.stdout
    runs = args.runs or (1 if args.quick else 5)
    budget = args.budget or (0.01 if args.quick else 0.15)
    local_budget = budget / 4
    started = time.monotonic()
    show = sys.stderr.isatty()

    try:
        import libchan
    except Exception as e:
        print("libchan.bench: cannot import libchan: %s" % _exc_text(e),
              file=sys.stderr)
        return 2
    try:
        import pyperf
        pyperf_note = ("pyperf %s installed but not used: the consumers stay "
                       "up across samples, which pyperf's one-process-per-"
                       "benchmark runner cannot do; equivalent care instead "
                       "(see method)" % pyperf.__version__)
    except ImportError:
        pyperf_note = "not installed; equivalent care instead (see method)"

    def loadavg():
        try:
            return " ".join("%.2f" % v for v in os.getloadavg())
        except OSError:
            return "?"

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    meta = {
        "python": sys.version.split()[0],
        "implementation": "%s, %s" % (platform.python_implementation(),
                                      platform.python_compiler()),
        "platform": "%s %s" % (platform.system(), platform.machine()),
        "cpu_count": os.cpu_count(), "cpus_usable": usable,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "libchan_version": getattr(libchan, "__version__", "?"),
        "loadavg_start": loadavg(),
        "mode": "quick" if args.quick else "default",
        "runs": runs, "budget_s": budget, "local_budget_s": local_budget,
        "method": (
            "%d measured run(s) per cell after warm-up; N per cell calibrated "
            "(the calibration samples are the warm-up, discarded) so one "
            "sample lasts ~%.2f s (transports) / ~%.2f s (one-thread codec), "
            "N capped so unbounded queues hold <= %d MiB; runs interleave "
            "every payload's peers in rotated order so drift hits all; "
            "value = median over runs; every sample in --json"
            % (runs, budget, local_budget, MEM_CAP // MIB)),
        "pyperf": pyperf_note,
        "notes": [
            "One way: the main interpreter puts N copies of one pre-built "
            "object; time = first put to the consumer's last get (read with "
            "perf_counter in the consumer), divided by N. The consumer "
            "touches each message minimally: len() for containers (str, "
            "tuple, SharedTuple, bytes, SharedBuffer), nothing for the int. "
            "SharedTuple/SharedBuffer rows put the same object N times "
            "(libchan: by reference; pickling peers copy it).",
            "Round trip: put one message, the consumer gets it and puts it "
            "back on a second queue, the main interpreter's blocking get "
            "receives it; each round trip is timed, the run's value is their "
            "median. Every get in the harness has a timeout (%d s)."
            % DATA_TIMEOUT,
            "interpreters.Queue polls (10 ms sleep per empty get), so its "
            "one-way times include up to 10 ms of consumer wake-up per sample "
            "(the consumer-side steady rate is in --json, extra.steady_us).",
            "multiprocessing uses the 'spawn' start method: the harness "
            "already runs threads and subinterpreters when the children "
            "start, and fork would copy that state half-made; the children "
            "start once and serve every sample, so start-up is not timed.",
            "All queues are unbounded. Machine noise: this box has %s CPUs "
            "and the consumer needs one of them; compare load averages."
            % os.cpu_count(),
            "msgspec decodes arrays as list, not tuple.",
        ],
    }

    payloads = make_payloads(libchan)
    labels = [(k, lab) for k, lab, *_ in PAYLOADS]
    if args.only:
        only = set(args.only.split(","))
        unknown = only - set(k for k, _ in labels)
        if unknown:
            ap.error("unknown payload(s): %s" % ", ".join(sorted(unknown)))
        labels = [(k, lab) for k, lab in labels if k in only]
    spec = {k: (touch, size, shared) for k, _, touch, size, shared in PAYLOADS}

    api, why = _interp_api()
    ctx = multiprocessing.get_context("spawn")
    transports = [LibchanT(), InterpQueueT(False, api, why),
                  InterpQueueT(True, api, why), MPQueueT(ctx), MPPipeT(ctx),
                  SimpleQueueT()]
    if args.peers:
        keep = set(args.peers.split(",")) | {"libchan"}
        unknown = keep - set(PEER_ORDER)
        if unknown:
            ap.error("unknown peer(s): %s" % ", ".join(sorted(unknown)))
        transports = [t for t in transports if t.key in keep]
    cells = {}
    floors = {}
    channels = []
    leftovers = []
    try:
        for t in transports:
            if t.na is not None:
                continue
            _progress(show, "starting %s consumer ..." % t.key)
            try:
                t.start()
            except Exception as e:
                t.broken = "consumer did not start: " + _exc_text(e)
                if t.worker is not None:
                    t.abort()

        # Build the cells, grouped by payload (the interleaving unit).
        groups = []
        for key, _ in labels:
            x = payloads[key]
            touch, size, shared = spec[key]
            group = []
            for table in ("oneway", "roundtrip"):
                for t in transports:
                    c = Cell(table, key, t.key, transport=t, budget=budget,
                             nmin=4 if table == "oneway" else 3)
                    cells[(table, key, t.key)] = c
                    if t.na is not None:
                        c.fail("n/a", t.na[1], t.na[0])
                        continue
                    by_ref = (t.key == "SimpleQ" or
                              (t.key == "libchan" and shared))
                    if not by_ref:
                        c.nmax = max(16, min(c.nmax, MEM_CAP // size))
                    c.probe = (lambda t=t, key=key, x=x: t.probe(key, x))
                    if table == "oneway":
                        c.run = (lambda n, t=t, x=x, touch=touch:
                                 t.oneway(x, n, touch))
                    else:
                        c.run = lambda n, t=t, x=x: t.roundtrip(x, n)
                    group.append(c)
            loc = local_runners(libchan, x)
            ch = loc.pop("_channel", None)
            if ch is not None:
                channels.append(ch)
            for op, (run, na) in loc.items():
                table = "local"
                c = Cell(table, key, op, run=run, budget=local_budget)
                cells[(table, key, op)] = c
                if op == "pickle.d+l":   # also the one-way table's peer
                    cells[("oneway", key, "pickle")] = c
                    c.budget = budget / 2
                if run is None:
                    c.fail(*na)
                else:
                    group.append(c)
            groups.append(group)
        fl = []
        for name, run in floor_runners().items():
            c = Cell("floor", "bytes1M", name, run=run, budget=local_budget)
            floors[name] = c
            fl.append(c)
        groups.append(fl)

        total = sum(len(g) for g in groups) * (runs + 1)
        done = 0
        for g in groups:                         # warm-up and calibration
            for c in g:
                done += 1
                _progress(show, "[%d/%d] warm-up %s %s %s" % (
                    done, total, c.table, c.payload, c.peer))
                if c.status == "ok":
                    calibrate(c)
        for r in range(runs):
            for g in groups:
                k = r % len(g) if g else 0
                for c in g[k:] + g[:k]:
                    done += 1
                    _progress(show, "[%d/%d] run %d %s %s %s" % (
                        done, total, r + 1, c.table, c.payload, c.peer))
                    if c.status == "ok":
                        measure(c)
        _progress(show, "stopping consumers ...")
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        for t in transports:
            try:
                t.abort()
            except Exception:
                pass
        raise
    finally:
        for t in transports:
            try:
                if not t.stop():
                    leftovers.append(t.key)
            except Exception as e:
                leftovers.append("%s (%s)" % (t.key, _exc_text(e)))
        for ch in channels:
            ch.shutdown(immediate=True)
        _progress(show, "")

    meta["loadavg_end"] = loadavg()
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    if leftovers:
        meta["notes"].append("could not stop cleanly: " + ", ".join(leftovers))
    meta["notes"].append("this run took %.0f s" % meta["elapsed_s"])
    rep = Report(meta, transports, labels, cells, floors)
    print(rep.text(), file=out)
    out.flush()
    if args.json:
        doc = json.dumps(rep.json(), indent=1, default=str)
        if args.json == "-":
            sys.stdout.write(doc + "\n")
        else:
            with open(args.json, "w") as f:
                f.write(doc + "\n")
    if args.plot:
        try:
            rep.plot(args.plot)
        except ImportError as e:
            print("--plot needs matplotlib: %s" % e, file=sys.stderr)
    lib_failed = [c for c in cells.values() if c.status == "error" and (
        c.peer == "libchan" or c.peer.startswith(("libchan.", "Channel.")))]
    status = 1 if lib_failed else 0
    sys.stdout.flush()
    sys.stderr.flush()
    if leftovers:
        # A consumer thread still runs inside a subinterpreter: interpreter
        # finalization would wait on it or abort, so leave now.
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
