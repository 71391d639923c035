"""The asyncio section: awaiting channels from event loops, against what
subinterpreter projects do today.

The main interpreter runs an event loop; a worker subinterpreter runs its
own loop in a thread of its own. Every column moves small ints:

- ``libchan``: ``await ch.put_async(x)`` / ``await ch.get_async()`` (each
  loop watches an eventfd: no thread per waiter, no polling);
- ``bridge``: the thread bridge peers use (memhive, aiointerpreters, the
  asyncio helper proposed for CPython): per loop, a thread blocked in
  ``Channel.get`` hands each item to the loop with
  ``call_soon_threadsafe``; sends are plain ``Channel.put``;
- ``to_thread``: the stdlib cross-interpreter queue (the native column of
  libchan.bench.interp), awaited through ``asyncio.to_thread(q.get)``;
- ``socketpair``: a ``socket.socketpair`` between the two loops carrying
  length-prefixed pickles over asyncio streams (the main interpreter
  passes one end's fd).

Tables: the round trip between the two loops (ping on one channel, pong on
another, both waiters really parked: each side waits for the other), and
one-way throughput from the main loop to a consumer coroutine in the
worker's loop. Then ``select`` over 8 channels of which one is active,
against a ``get`` on that channel (blocking, and async on the main loop),
one way from a producer in the worker subinterpreter; the same in one
thread (put, then take: the pure overhead, for information); and the
system calls a put/get makes with nobody waiting (must be 0).

CPython 3.12.1 aborts when the main interpreter and a subinterpreter run
asyncio loops at the same time (with the standard library alone), so on
3.12 the two-loop cells are n/a. Medians over the same runs as the rest of
the benchmark (libchan.bench.timing).
"""

import sys

PEERS = ("libchan", "bridge", "to_thread", "socketpair")
LABELS = {
    "libchan": "libchan Channel.put_async / get_async (fd waiter per loop)",
    "bridge": "libchan Channel + a thread per loop blocked in get(), "
              "call_soon_threadsafe",
    "to_thread": "stdlib cross-interpreter queue, asyncio.to_thread(q.get)",
    "socketpair": "socket.socketpair, asyncio streams, pickled messages",
}
SELECT_CELLS = ("select8", "get", "select8_async", "get_async")
# The two-loop tables: (key, row label, method, where the threads run; see
# _Rig.placed).
LOOP_TABLES = (("roundtrip", "round trip, two cores", "roundtrip", "2cores"),
               ("roundtrip_1core", "round trip, one core", "roundtrip",
                "1core"),
               ("oneway", "one way, per item, two cores", "oneway",
                "2cores"))
SAMPLE_TIMEOUT = 60         # seconds, every sample
NA_312 = ("3.12", "CPython 3.12.1 aborts when the main interpreter and a "
          "subinterpreter run asyncio loops at the same time (stdlib alone)")


# --------------------------------------------------------------------------
# Both ends: how each peer sends and receives on a running loop
# --------------------------------------------------------------------------

def _bridge(loop, ch):
    """A thread blocked in ch.get() handing items to `loop`: the receive
    end peers build (returns an awaitable getter)."""
    import asyncio
    import threading

    from libchan import ShutDown

    q = asyncio.Queue()

    def pump():
        try:
            while True:
                item = ch.get()
                loop.call_soon_threadsafe(q.put_nowait, item)
        except (ShutDown, RuntimeError):    # shut down, or the loop closed
            return

    # Not a daemon (isolated subinterpreters allow none): it ends when the
    # channel is shut down (_Rig.close).
    threading.Thread(target=pump, name="libchan.bench bridge").start()
    return q.get


async def _stream_ends(sock):
    import asyncio
    import pickle
    import struct

    reader, writer = await asyncio.open_connection(sock=sock)
    head = struct.Struct("!I")

    async def send(x):
        data = pickle.dumps(x, protocol=5)
        writer.write(head.pack(len(data)) + data)
        await writer.drain()

    async def recv():
        (n,) = head.unpack(await reader.readexactly(4))
        return pickle.loads(await reader.readexactly(n))

    return send, recv, writer


def _async(fn):
    async def call(x):
        fn(x)
    return call


async def _ends(cfg, side):
    """{peer: (send, recv)} for side "main" (sends pings) or "sub" (sends
    pongs), plus the writer to close at the end."""
    import asyncio
    import os
    import socket

    import libchan

    loop = asyncio.get_running_loop()
    look = libchan.lookup
    out, into = ("ping", "pong") if side == "main" else ("pong", "ping")
    ends = {"libchan": (look(cfg["lc_" + out]).put_async,
                        look(cfg["lc_" + into]).get_async),
            "bridge": (_async(look(cfg["br_" + out]).put),
                       _bridge(loop, look(cfg["br_" + into])))}
    if cfg.get("q_module"):
        import importlib

        Q = importlib.import_module(cfg["q_module"])
        q_out, q_in = Q.Queue(cfg["q_" + out]), Q.Queue(cfg["q_" + into])

        async def q_recv():
            return await asyncio.to_thread(q_in.get)

        ends["to_thread"] = (_async(q_out.put), q_recv)
    sock = socket.socket(fileno=os.dup(cfg["sock_" + side]))
    send, recv, writer = await _stream_ends(sock)
    ends["socketpair"] = (send, recv)
    return ends, writer


# --------------------------------------------------------------------------
# The worker subinterpreter
# --------------------------------------------------------------------------

def sub_main(cfg):
    """What the worker subinterpreter runs: its loop serves the main
    interpreter's commands ("rt"/"ow", peer, n) until "stop"."""
    import asyncio

    asyncio.run(_serve(cfg))


async def _serve(cfg):
    import time

    import libchan

    ctl, rep = libchan.lookup(cfg["ctl"]), libchan.lookup(cfg["rep"])
    ends, writer = await _ends(cfg, "sub")
    import threading

    rep.put(("ready", threading.get_native_id()))
    try:
        while True:
            cmd = await ctl.get_async()
            if cmd == "stop":
                return
            op, peer, n = cmd
            if op == "produce":              # n items on the active one
                put = libchan.lookup(cfg["sel"][5]).put
                for i in range(n):
                    put(i)
                continue
            send, recv = ends[peer]
            if op == "rt":                   # echo n pings
                for _ in range(n):
                    await send(await recv())
            else:                            # take n, report when done
                for _ in range(n):
                    await recv()
                rep.put(time.perf_counter())
    finally:
        writer.close()


# --------------------------------------------------------------------------
# The main interpreter's side
# --------------------------------------------------------------------------

class _Rig:
    """The channels, queues and sockets of every peer, the worker, and the
    main interpreter's loop (run between samples, not kept running)."""

    def __init__(self, progress):
        import asyncio
        import socket

        import libchan
        from libchan.bench.interp import (interp_module, stdlib_queues,
                                         stdlib_queues_na)
        from libchan.bench.workers import SubInterpWorker

        self.chans = []

        def chan():
            ch = libchan.Channel()
            self.chans.append(ch)
            return ch

        self.ctl, self.rep = chan(), chan()
        self.sel = [chan() for _ in range(8)]   # one of them active
        cfg = {"ctl": self.ctl.id, "rep": self.rep.id,
               "sel": [ch.id for ch in self.sel]}
        for p in ("lc", "br"):
            for d in ("ping", "pong"):
                cfg["%s_%s" % (p, d)] = chan().id
        self.na = {}
        qna = stdlib_queues_na()
        if qna is None:
            kind = next(k for k in stdlib_queues() if k.native)
            self.queues = [kind.create(), kind.create()]
            cfg["q_module"] = kind.module
            cfg["q_ping"], cfg["q_pong"] = (q.id for q in self.queues)
            self.q_label = kind.label
        else:
            self.queues = []
            self.na["to_thread"] = qna
            self.q_label = "n/a"
        self.socks = socket.socketpair()
        cfg["sock_main"], cfg["sock_sub"] = (s.fileno() for s in self.socks)
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        self.writer = None
        progress("starting the asyncio worker ...")
        code = "\n".join([
            "import sys",
            "sys.path[:] = %r" % (sys.path,),
            "from libchan.bench.aio import sub_main",
            "sub_main(%r)" % (cfg,)])
        self.worker = SubInterpWorker(interp_module(), code)
        ready = self.rep.get(timeout=60)
        if not (isinstance(ready, tuple) and ready[0] == "ready"):
            raise RuntimeError("asyncio worker: %r" % (ready,))
        self.worker_tid = ready[1]
        self.ends, self.writer = self.run(_ends(cfg, "main"))

    def check(self):
        if not self.worker.alive():
            raise RuntimeError("asyncio worker ended: %s" % self.worker.error)

    def run(self, coro):
        import asyncio

        self.check()
        return self.loop.run_until_complete(
            asyncio.wait_for(coro, SAMPLE_TIMEOUT))

    def placed(self, where, fn):
        """Run fn() with the two loops' threads placed `where`: "1core"
        (every thread of the process on one CPU), "2cores" (the main loop
        on one CPU, the worker's on another, other threads on both), or
        None (wherever the scheduler puts them). Wake-up latency differs
        by an order of magnitude between a wake-up on the same CPU and one
        that crosses CPUs, so unpinned two-loop figures swing with where
        the scheduler happens to put the threads."""
        if where is None:
            return fn()
        import os
        import threading

        allowed = sorted(os.sched_getaffinity(0))
        tids = [int(t) for t in os.listdir("/proc/self/task")]
        me = threading.get_native_id()

        def pin(tid, cpus):
            try:
                os.sched_setaffinity(tid, cpus)
            except (ProcessLookupError, FileNotFoundError):
                pass            # a thread that has just ended

        try:
            if where == "1core":
                for tid in tids:
                    pin(tid, allowed[:1])
            else:
                pin(me, allowed[:1])
                pin(self.worker_tid, allowed[1:2])
            return fn()
        finally:
            for tid in tids:
                pin(tid, allowed)

    def roundtrip(self, peer, n, where=None):
        return self.placed(where, lambda: self._roundtrip(peer, n))

    def oneway(self, peer, n, where=None):
        return self.placed(where, lambda: self._oneway(peer, n))

    def _roundtrip(self, peer, n):
        import time

        send, recv = self.ends[peer]

        async def rt():
            self.ctl.put(("rt", peer, n))
            t0 = time.perf_counter()
            for i in range(n):
                await send(i)
                if await recv() != i:
                    raise RuntimeError("%s: wrong echo" % peer)
            return time.perf_counter() - t0

        dt = self.run(rt())
        return dt / n, dt, None

    def _oneway(self, peer, n):
        import time

        send, _ = self.ends[peer]

        async def ow():
            self.ctl.put(("ow", peer, n))
            t0 = time.perf_counter()
            for i in range(n):
                await send(i)
            t1 = await self.rep.get_async(timeout=SAMPLE_TIMEOUT)
            return t1 - t0

        dt = self.run(ow())
        return dt / n, dt, None

    def hung(self):
        """A select sample ran past SAMPLE_TIMEOUT: end it (and the rest of
        the select cells, which then fail) by shutting the channel down."""
        self.sel[5].shutdown(immediate=True)

    def select(self, name, n):
        """The worker puts n items on one of 8 channels; this thread takes
        them with select over the 8, or get on the one (blocking, or on
        the main loop)."""
        import threading
        import time

        import libchan

        # Both calls in the form a loop would use: no keyword argument
        # (a keyword with *channels makes CPython build a dict per call,
        # which would dominate the comparison), so no timeout: a watchdog
        # shuts the active channel down instead if the sample hangs.
        chans, ch = tuple(self.sel), self.sel[5]
        select, get = libchan.select, ch.get

        async def take():
            if name == "select8_async":
                select_async = libchan.select_async
                for _ in range(n):
                    await select_async(*chans)
            else:
                get_async = ch.get_async
                for _ in range(n):
                    await get_async()

        self.check()
        watchdog = threading.Timer(SAMPLE_TIMEOUT, self.hung)
        watchdog.start()
        self.ctl.put(("produce", None, n))
        t0 = time.perf_counter()
        try:
            if name == "select8":
                for _ in range(n):
                    select(*chans)
            elif name == "get":
                for _ in range(n):
                    get()
            else:
                self.run(take())
            dt = time.perf_counter() - t0
        finally:
            watchdog.cancel()
        return dt / n, dt, None

    def close(self):
        """Stop the worker; True if it ended."""
        self.ctl.put("stop")
        for ch in self.chans:   # ends the bridge threads; "stop" stays queued
            ch.shutdown()
        if self.writer is not None:
            self.writer.close()
        ok = self.worker.close(30)
        for ch in self.chans:
            ch.shutdown(immediate=True)
        for s in self.socks:
            s.close()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()
        return ok


def _select_runners():
    """One thread, nobody waiting: put on the active channel of 8, then
    select over the 8 (or get on that one), blocking and async."""
    import asyncio

    import libchan
    from libchan.bench.payloads import loop_time

    chans = tuple(libchan.Channel() for _ in range(8))
    ch = chans[5]
    loop = asyncio.new_event_loop()

    def select8(n):
        put, select = ch.put, libchan.select
        for i in range(n):
            put(i)
            select(*chans)

    def get(n):
        put, get_ = ch.put, ch.get
        for i in range(n):
            put(i)
            get_()

    def select8_async(n):
        async def go():
            put, select = ch.put, libchan.select_async
            for i in range(n):
                put(i)
                await select(*chans)
        loop.run_until_complete(go())

    def get_async(n):
        async def go():
            put, get_ = ch.put, ch.get_async
            for i in range(n):
                put(i)
                await get_()
        loop.run_until_complete(go())

    runners = {"select8": loop_time(select8), "get": loop_time(get),
               "select8_async": loop_time(select8_async),
               "get_async": loop_time(get_async)}

    def close():
        for c in chans:
            c.shutdown(immediate=True)
        loop.close()

    return runners, close


def _no_waiter_syscalls(n=10000):
    """System calls (futex waits/wakes, eventfd writes) made by n puts and
    gets with nobody waiting, once event loops have come and gone."""
    import libchan

    ch = libchan.Channel()
    keys = ("futex_waits", "futex_wakes", "fd_signals")
    c0 = libchan.debug_counters()
    for i in range(n):
        ch.put(i)
        ch.get()
    c1 = libchan.debug_counters()
    ch.shutdown()
    return sum(c1[k] - c0[k] for k in keys)


def run_aio(runs, budget, progress=lambda text: None):
    """Measure everything; the section's JSON-ready dict."""
    from libchan.bench.errors import exc_text
    from libchan.bench.timing import Cell, schedule

    doc = {"peers": dict(LABELS), "select": {}, "select_local": {},
           "notes": [],
           "no_waiter_syscalls": None}
    cells = {}
    groups = []
    rig = None
    na_all = NA_312 if sys.version_info[:2] == (3, 12) else None
    if na_all is None:
        try:
            rig = _Rig(progress)
            doc["peers"]["to_thread"] = ("%s, asyncio.to_thread(q.get)"
                                         % rig.q_label)
        except Exception as e:
            na_all = ("error", "asyncio worker did not start: " + exc_text(e))
    import os

    two_cpus = len(os.sched_getaffinity(0)) >= 2
    for table, _, method, where in LOOP_TABLES:
        doc[table] = {}
        group = []
        for peer in PEERS:
            c = Cell(table, "int", peer, budget=budget, nmin=4,
                     nmax=200_000)
            cells[(table, peer)] = c
            na = na_all or (rig.na.get(peer) if rig else None)
            if na is None and where == "2cores" and not two_cpus:
                na = ("1 CPU", "this process may use only one CPU")
            if na is not None:
                c.fail("n/a" if na[0] != "error" else "error", na[1], na[0])
                continue
            if peer == "to_thread":     # it polls
                c.nmax = 200 if method == "roundtrip" else 20_000
            c.run = (lambda n, p=peer, m=method, w=where:
                     getattr(rig, m)(p, n, w))
            group.append(c)
        groups.append(group)
    group = []
    for name in SELECT_CELLS:
        c = Cell("select", "int", name, budget=budget, nmax=1_000_000)
        cells[("select", name)] = c
        if na_all is not None:
            c.fail("n/a" if na_all[0] != "error" else "error", na_all[1],
                   na_all[0])
            continue
        c.run = lambda n, name=name: rig.select(name, n)
        group.append(c)
    groups.append(group)
    runners, close_select = _select_runners()
    group = []
    for name in SELECT_CELLS:
        c = Cell("select_local", "int", name, run=runners[name],
                 budget=budget / 2)
        cells[("select_local", name)] = c
        group.append(c)
    groups.append(group)
    try:
        schedule(groups, runs, lambda text: progress("asyncio " + text))
    finally:
        close_select()
        if rig is not None and not rig.close():
            doc["notes"].append("the asyncio worker did not stop")
    try:
        doc["no_waiter_syscalls"] = _no_waiter_syscalls()
    except Exception as e:
        doc["notes"].append("no-waiter check failed: " + exc_text(e))
    for (table, name), c in cells.items():
        doc[table][name] = {
            "status": c.status, "reason": c.reason, "n": c.n,
            "median_us": None if c.median is None else c.median * 1e6,
            "samples_us": [v * 1e6 for v in c.values]}
    return doc


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def _med(doc, table, name):
    c = doc[table].get(name)
    return None if c is None else c["median_us"]


def _fmt_ratio(r):
    return "-" if r is None else "%.2fx" % r


def aio_targets(doc):
    """The issue's targets, in the report's target shape."""
    T = []

    def add(name, value, unit, op, threshold, note=""):
        met = None if value is None else (
            value >= threshold if op == ">=" else value <= threshold)
        T.append({"target": name, "measured": value, "unit": unit,
                  "op": op, "threshold": threshold, "met": met,
                  "note": note})

    def ratio(a, b):
        return None if a is None or b is None or b <= 0 else a / b

    for table, label, method, _ in LOOP_TABLES:
        if method != "roundtrip":
            continue
        lib = _med(doc, table, "libchan")
        add("asyncio %s: libchan / thread bridge" % label,
            ratio(lib, _med(doc, table, "bridge")), "x", "<=", 0.5)
        add("asyncio %s: libchan / socketpair" % label,
            ratio(lib, _med(doc, table, "socketpair")), "x", "<=", 1.0)
    add("asyncio one way: libchan throughput / thread bridge's",
        ratio(_med(doc, "oneway", "bridge"), _med(doc, "oneway", "libchan")),
        "x", ">=", 2.0)
    add("select over 8 channels (1 active) / get on it, one way",
        ratio(_med(doc, "select", "select8"), _med(doc, "select", "get")),
        "x", "<=", 1.2, "in one thread, nobody waiting: %s"
        % _fmt_ratio(ratio(_med(doc, "select_local", "select8"),
                           _med(doc, "select_local", "get"))))
    add("select_async over 8 channels (1 active) / get_async on it, one way",
        ratio(_med(doc, "select", "select8_async"),
              _med(doc, "select", "get_async")), "x", "<=", 1.2,
        "in one thread, nobody waiting: %s"
        % _fmt_ratio(ratio(_med(doc, "select_local", "select8_async"),
                           _med(doc, "select_local", "get_async"))))
    add("system calls of a put+get with nobody waiting",
        doc.get("no_waiter_syscalls"), "x", "<=", 0)
    return T


def aio_lines(doc, fmt_us):
    from libchan.bench.report import render

    reasons = []     # why cells were not measured, each listed once

    def cell(c):
        if c is None:
            return "-"
        if c["status"] == "ok":
            return fmt_us(c["median_us"])
        reason = c["reason"] or ""
        if reason not in reasons:
            reasons.append(reason)
        return "%s [%d]" % (c["status"], reasons.index(reason) + 1)

    L = ["asyncio: the main interpreter's loop and a worker "
         "subinterpreter's loop (small ints; median us)"]
    for key in PEERS:
        L.append("  %-11s %s" % (key, doc["peers"][key]))
    rows = [[what] + [cell(doc[table].get(p)) for p in PEERS]
            for table, what, _, _ in LOOP_TABLES]
    L.append(render(["", *PEERS], rows))
    L.append("  two cores: the main loop's thread pinned to one CPU, the "
             "worker's to another; one core: every thread on one CPU")
    L.append("")
    L.append("select over 8 channels, 1 active, against get on that one: "
             "us per item (median)")
    rows = [[where + ", " + how,
             cell(doc[table].get("select8" + sfx)),
             cell(doc[table].get("get" + sfx))]
            for table, where in (("select", "one way from the worker"),
                                 ("select_local", "one thread, put+take"))
            for sfx, how in (("", "blocking"), ("_async", "asyncio"))]
    L.append(render(["", "select over 8", "get on the 1"], rows))
    L.append("system calls of 10000 put+get with nobody waiting: %s"
             % doc.get("no_waiter_syscalls"))
    for i, reason in enumerate(reasons):
        L.append("  [%d] %s" % (i + 1, reason))
    for note in doc["notes"]:
        L.append("  note: " + note)
    return L
