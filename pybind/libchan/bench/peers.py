"""The main interpreter's end of each peer (transport): libchan's Channel,
the stdlib's interpreters queues, multiprocessing's Queue and Pipe, and
queue.SimpleQueue. Each starts a consumer (consumer.serve) where it runs
(workers), then drives the samples: a probe, one-way and round trip.
"""

import queue as _queue
import sys
import time
from itertools import repeat as _repeat

from libchan.bench.consumer import DATA_TIMEOUT, thread_child
from libchan.bench.errors import Broken, CannotCarry, exc_text
from libchan.bench.interp import interp_module, stdlib_queues, stdlib_queues_na
from libchan.bench.workers import ProcessWorker, SubInterpWorker, ThreadWorker

# How long the harness waits for a consumer's reply before calling it hung.
REPLY_TIMEOUT = 60.0
START_TIMEOUT = 60.0


def consumer_code(setup):
    """The source a subinterpreter consumer runs: setup binds get and put."""
    return "\n".join([
        "import sys",
        "sys.path[:] = %r" % (sys.path,),
        "import libchan",
        setup,
        "from libchan.bench.consumer import serve",
        "serve(get, put)",
        "",
    ])


class Transport:
    """One peer: key (its column), label and where (the legend), module
    (the module it comes from)."""

    key = label = where = module = ""
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
                raise Broken("consumer connection lost: %s" % exc_text(e))

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
                raise CannotCarry(exc_text(e))
        self.put("probe")
        try:
            self.put(x)
        except Exception as e:
            self.put(None)            # the consumer waits for an item
            self.reply()
            raise CannotCarry(exc_text(e))
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
            raise Broken("consumer connection lost: %s" % exc_text(e))
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
            raise Broken("consumer connection lost: %s" % exc_text(e))
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


class LibchanT(Transport):
    key, label, module = "libchan", "libchan Channel", "libchan"
    where = "subinterpreter (own GIL)"

    def start(self):
        import libchan

        self.qin, self.qout = libchan.Channel(), libchan.Channel()
        self.put, self.get = self.qin.put, self.qout.get
        code = consumer_code(
            "qin = libchan.lookup(%d); qout = libchan.lookup(%d)\n"
            "get, put = qin.get, qout.put" % (self.qin.id, self.qout.id))
        self.worker = SubInterpWorker(interp_module(), code)
        self.handshake()

    def abort(self):
        for ch in (self.qin, self.qout):
            ch.shutdown(immediate=True)

    def _finish(self):
        for ch in (getattr(self, "qin", None), getattr(self, "qout", None)):
            if ch is not None:
                ch.shutdown(immediate=True)


class InterpQueueT(Transport):
    """A stdlib interpreters queue, as interp.QueueKind kind describes it;
    na: why it cannot run here (interp.stdlib_queues_na()), or None."""

    poll_slice = 1          # the stdlib queues truncate timeouts to ints
    where = "subinterpreter (own GIL)"

    def __init__(self, kind, na):
        super().__init__()
        self.kind = kind
        self.key, self.label, self.module = kind.key, kind.label, kind.module
        self.na = na

    def start(self):
        k = self.kind
        self.qin, self.qout = k.create(), k.create()
        self.put, self.get = k.ends(self.qin, self.qout)
        code = consumer_code(k.consumer_setup(self.qin.id, self.qout.id))
        self.worker = SubInterpWorker(k.runner, code)
        self.handshake()

    def _finish(self):
        self.qin = self.qout = self.put = self.get = None


class MPQueueT(Transport):
    key, label, where = "mp.Queue", "multiprocessing.Queue", "child process"
    module = "multiprocessing"
    needs_pickle = True
    is_process = True

    def __init__(self, ctx):
        super().__init__()
        self.ctx = ctx

    def start(self):
        self.qin, self.qout = self.ctx.Queue(), self.ctx.Queue()
        self.put, self.get = self.qin.put, self.qout.get
        self.worker = ProcessWorker(self.ctx, ("queue", self.qin, self.qout))
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
    module = "multiprocessing"
    is_process = True

    def __init__(self, ctx):
        super().__init__()
        self.ctx = ctx

    def start(self):
        self.conn, child = self.ctx.Pipe()
        self.put = self.conn.send
        self.hot_recv = self.conn.recv
        self.worker = ProcessWorker(self.ctx, ("pipe", child))
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
    key, label, module = "SimpleQ", "queue.SimpleQueue", "queue"
    where = "another thread, same interpreter (shared GIL)"

    def start(self):
        self.qin, self.qout = _queue.SimpleQueue(), _queue.SimpleQueue()
        self.put, self.get = self.qin.put, self.qout.get
        self.worker = ThreadWorker(thread_child, (self.qin, self.qout))
        self.handshake()


def peer_keys():
    """Every peer's key, libchan first, in the order of the columns."""
    return (["libchan"] + [k.key for k in stdlib_queues()]
            + ["mp.Queue", "mp.Pipe", "SimpleQ"])


def make_transports(ctx, keep=None):
    """The peers, in peer_keys() order: all of them, or those whose key is
    in keep. ctx: the multiprocessing context of the child-process peers."""
    kinds = [k for k in stdlib_queues() if keep is None or k.key in keep]
    na = stdlib_queues_na() if kinds else None
    ts = ([LibchanT()] + [InterpQueueT(k, na) for k in kinds]
          + [MPQueueT(ctx), MPPipeT(ctx), SimpleQueueT()])
    return [t for t in ts if keep is None or t.key in keep]
