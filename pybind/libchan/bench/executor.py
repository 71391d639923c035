"""The executor section: ``libchan.InterpreterPoolExecutor`` against the
executors this Python has, all with 2 workers, in the same run.

Peers (columns): ``libchan``; ``thread``, ThreadPoolExecutor; ``proc.spawn``
and ``proc.fork``\\ ``server``, ProcessPoolExecutor with those start
methods; ``std.interp``, 3.14's ``concurrent.futures.InterpreterPoolExecutor``
(n/a before 3.14). Measures (rows), each task being ``ident(x)``, which
returns x, unless said otherwise:

- ``cold``: seconds from constructing the executor to the first result;
- ``roundtrip``: ``submit(ident, i).result()`` one after another, us per
  round trip (the median of the round trips of a run);
- ``inflight``: 3000 tasks submitted, then all awaited: tasks/s;
- ``map``: ``list(map(ident, range(20000), chunksize=500))``: items/s;
- ``cpu``: four ``spin(n)`` (a pure-Python loop of ~0.1 s) run one after
  another in the main thread, divided by the time ``map`` takes to run
  them in the pool: 2.0 is perfect scaling on two cores.

A run makes a fresh executor per peer (which the cold start needs) and
measures the five in it; runs rotate the peers' order, and each value is
the median over runs. Every wait has a timeout; a peer that fails gets an
error cell with the reason. ``--quick``: one run with smaller counts.

``ident`` and ``spin`` live here, at the top of a module that imports
nothing heavy: every peer's workers import it (by reference or by pickle).
"""

import sys
import time

WORKERS = 2
WAIT = 120                 # seconds: hang guard on every wait

MEASURES = [
    # key, label, unit, higher is better
    ("cold", "first result, cold", "s", False),
    ("roundtrip", "round trip, one task after another", "us", False),
    ("inflight", "3000 tasks in flight", "tasks/s", True),
    ("map", "map(ident, 20000 items, chunksize=500)", "items/s", True),
    ("cpu", "4 CPU tasks: sequential time / parallel time", "x", True),
]


def ident(x):
    return x


def spin(n):
    i = 0
    while i < n:
        i += 1
    return i


class Peer:
    def __init__(self, key, label, make, na=None):
        self.key, self.label, self.make, self.na = key, label, make, na


def peers():
    """This Python's executors, libchan first; .na says why one is n/a."""
    import concurrent.futures as cf
    import multiprocessing

    import libchan

    def proc(method):
        def make():
            return cf.ProcessPoolExecutor(
                WORKERS, mp_context=multiprocessing.get_context(method))
        return make

    lib = libchan.InterpreterPoolExecutor        # imported before timing
    ps = [Peer("libchan", "libchan.InterpreterPoolExecutor (subinterpreters,"
               " own GIL each, libchan channels)",
               lambda: lib(WORKERS)),
          Peer("thread", "concurrent.futures.ThreadPoolExecutor",
               lambda: cf.ThreadPoolExecutor(WORKERS)),
          Peer("proc.spawn", "concurrent.futures.ProcessPoolExecutor, spawn",
               proc("spawn")),
          Peer("proc.forkserver",
               "concurrent.futures.ProcessPoolExecutor, forkserver",
               proc("forkserver"))]
    std = getattr(cf, "InterpreterPoolExecutor", None)
    ps.append(Peer("std.interp",
                   "concurrent.futures.InterpreterPoolExecutor (3.14+)",
                   (lambda: std(WORKERS)) if std else None,
                   None if std else "not in Python %s (3.14+)"
                   % sys.version.split()[0]))
    if "forkserver" not in multiprocessing.get_all_start_methods():
        ps[3].na = "no forkserver start method here"
    return ps


def _sizes(quick):
    if quick:
        return {"runs": 1, "roundtrips": 200, "inflight": 600,
                "map": 4000, "spin_s": 0.02}
    return {"runs": 5, "roundtrips": 2000, "inflight": 3000,
            "map": 20000, "spin_s": 0.1}


def _calibrate_spin(seconds):
    """n such that spin(n) takes about seconds in this thread."""
    n = 10000
    while True:
        t = time.perf_counter()
        spin(n)
        dt = time.perf_counter() - t
        if dt > 0.01:
            return max(1000, int(n * seconds / dt))
        n *= 4


def _sample(peer, sz, n_spin):
    """One run of the five measures in a fresh executor of peer."""
    import statistics

    out = {}
    t0 = time.perf_counter()
    ex = peer.make()
    try:
        if ex.submit(ident, 1).result(WAIT) != 1:
            raise RuntimeError("wrong result")
        out["cold"] = time.perf_counter() - t0
        for i in range(20):                       # warm up every worker
            ex.submit(ident, i).result(WAIT)
        list(ex.map(ident, range(4 * WORKERS)))
        rts = []
        for i in range(sz["roundtrips"]):
            t = time.perf_counter()
            ex.submit(ident, i).result(WAIT)
            rts.append(time.perf_counter() - t)
        out["roundtrip"] = statistics.median(rts) * 1e6
        n = sz["inflight"]
        t = time.perf_counter()
        fs = [ex.submit(ident, i) for i in range(n)]
        for f in fs:
            f.result(WAIT)
        out["inflight"] = n / (time.perf_counter() - t)
        del fs
        n = sz["map"]
        t = time.perf_counter()
        got = list(ex.map(ident, range(n), chunksize=500, timeout=WAIT))
        out["map"] = n / (time.perf_counter() - t)
        if got != list(range(n)):
            raise RuntimeError("map returned wrong results")
        t = time.perf_counter()
        for _ in range(4):
            spin(n_spin)
        seq = time.perf_counter() - t
        t = time.perf_counter()
        if list(ex.map(spin, [n_spin] * 4, timeout=WAIT)) != [n_spin] * 4:
            raise RuntimeError("spin returned wrong results")
        out["cpu"] = seq / (time.perf_counter() - t)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    return out


def run_executor(quick=False, runs=None, progress=None):
    """Measure every peer; the section's results (JSON-ready)."""
    import statistics

    from libchan.bench.errors import exc_text

    sz = _sizes(quick)
    runs = runs or sz["runs"]
    ps = peers()
    n_spin = _calibrate_spin(sz["spin_s"])
    samples = {p.key: {m[0]: [] for m in MEASURES} for p in ps}
    errors = {}
    live = [p for p in ps if p.na is None]
    for r in range(runs):
        k = r % len(live)
        for p in live[k:] + live[:k]:
            if p.key in errors:
                continue
            if progress:
                progress("executor run %d/%d: %s" % (r + 1, runs, p.key))
            try:
                for key, v in _sample(p, sz, n_spin).items():
                    samples[p.key][key].append(v)
            except Exception as e:
                errors[p.key] = exc_text(e)
    results = {}
    for p in ps:
        row = {}
        for key, *_ in MEASURES:
            vals = samples[p.key][key]
            if p.na is not None:
                row[key] = {"status": "n/a", "reason": p.na}
            elif p.key in errors:
                row[key] = {"status": "error", "reason": errors[p.key]}
            else:
                row[key] = {"status": "ok", "median": statistics.median(vals),
                            "samples": vals}
        results[p.key] = row
    return {"workers": WORKERS, "runs": runs, "sizes": sz,
            "spin_n": n_spin,
            "peers": {p.key: {"label": p.label, "available": p.na is None,
                              "reason": p.na} for p in ps},
            "measures": {k: {"label": lab, "unit": u, "higher_better": hb}
                         for k, lab, u, hb in MEASURES},
            "results": results,
            "ratios": {p.key: {k: _advantage(results, p.key, k, hb)
                               for k, _, _, hb in MEASURES}
                       for p in ps if p.key != "libchan"}}


def _med(results, peer, key):
    c = results[peer][key]
    return c["median"] if c["status"] == "ok" else None


def _advantage(results, peer, key, higher_better):
    """How many times better libchan is than peer at key (> 1: better)."""
    a, b = _med(results, "libchan", key), _med(results, peer, key)
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return a / b if higher_better else b / a


def _fmt(v, unit):
    if v is None:
        return "-"
    if unit == "s":
        return "%.3f" % v
    if unit == "x":
        return "%.2f" % v
    if unit == "us":
        return "%.1f" % v
    return "{:,.0f}".format(v)


def executor_lines(res):
    """The text of the section: a list of lines."""
    from libchan.bench.report import fmt_ratio, render

    peers_ = list(res["peers"])
    L = ["Executors, %d workers each (medians of %d run(s); a fresh "
         "executor per run):" % (res["workers"], res["runs"])]
    for k, p in res["peers"].items():
        L.append("  %-16s %s%s" % (k, p["label"], "" if p["available"]
                                   else "  [n/a: %s]" % p["reason"]))
    rows = []
    for key, m in res["measures"].items():
        cells = []
        for p in peers_:
            c = res["results"][p][key]
            cells.append(_fmt(c["median"], m["unit"]) if c["status"] == "ok"
                         else c["status"])
        rows.append(["%s (%s)" % (m["label"], m["unit"])] + cells)
    L.append(render(["measure"] + peers_, rows))
    L.append("")
    L.append("Executors: libchan's advantage over each (> 1: libchan "
             "better, whichever way the measure goes)")
    others = [p for p in peers_ if p != "libchan"]
    rows = [[res["measures"][key]["label"]]
            + [fmt_ratio(res["ratios"][p][key]) for p in others]
            for key in res["measures"]]
    L.append(render(["measure"] + others, rows))
    errs = {(p, c["reason"]) for p in peers_
            for c in res["results"][p].values() if c["status"] == "error"}
    for p, why in sorted(errs):
        L.append("  - %s failed: %s" % (p, why))
    return L


def executor_targets(res):
    """The issue's targets for the executor, in report.targets()' shape:
    each a ratio (x), met or not; None when a peer is n/a here."""
    T = []

    def add(name, value, op, threshold, note=""):
        met = None if value is None else (
            value >= threshold if op == ">=" else value <= threshold)
        T.append({"target": name, "measured": value, "unit": "x", "op": op,
                  "threshold": threshold, "met": met, "note": note})

    R = res["results"]

    def ratio(key, peer):        # libchan's value / peer's
        a, b = _med(R, "libchan", key), _med(R, peer, key)
        return None if a is None or b is None or b <= 0 else a / b

    add("executor round trip: libchan / stdlib InterpreterPoolExecutor",
        ratio("roundtrip", "std.interp"), "<=", 0.25)
    add("executor round trip: libchan / ThreadPoolExecutor",
        ratio("roundtrip", "thread"), "<=", 1.0)
    add("executor tasks in flight: libchan / stdlib InterpreterPoolExecutor",
        ratio("inflight", "std.interp"), ">=", 5.0)
    add("executor tasks in flight: libchan / ThreadPoolExecutor",
        ratio("inflight", "thread"), ">=", 1.0)
    best = [p for p in ("proc.spawn", "proc.forkserver")
            if _med(R, p, "map") is not None]
    best = max(best, key=lambda p: _med(R, p, "map"), default=None)
    add("executor map chunksize=500: libchan / best ProcessPoolExecutor",
        ratio("map", best) if best else None, ">=", 1.0, best or "")
    add("executor map chunksize=500: libchan / stdlib "
        "InterpreterPoolExecutor", ratio("map", "std.interp"), ">=", 50.0)
    add("executor CPU scaling, 4 tasks on 2 workers (libchan)",
        _med(R, "libchan", "cpu"), ">=", 1.8)
    add("executor cold start: libchan / stdlib InterpreterPoolExecutor",
        ratio("cold", "std.interp"), "<=", 1.0)
    return T


if __name__ == "__main__":      # this section alone: [--quick]
    # through the module, not __main__, so that workers import ident
    # from libchan.bench.executor as in the full benchmark
    from libchan.bench import executor as _self

    _r = _self.run_executor(quick="--quick" in sys.argv,
                            progress=lambda t: print(t, file=sys.stderr))
    print("\n".join(_self.executor_lines(_r)))
    for _t in _self.executor_targets(_r):
        print(" ", _t["met"], _t["target"], _t["measured"])
