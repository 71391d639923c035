"""The memory table: what a backlog costs, bytes per queued item, and what
``dumps`` of 1 MiB of bytes costs against ``pickle.dumps`` and one memcpy.

Bytes per queued item, measured as a user would: an unbounded queue is
filled with N fresh copies of a payload (each put gets a new object, so that
a queue that keeps a reference to its item is charged for the item), and
the resident set size grows by (RSS after - RSS before) / N, both read
after ``gc.collect()`` and ``malloc_trim(0)``. Every payload runs in a fresh
child process (``python -m libchan.bench.memory --child KEY``), so that no
earlier run's freed memory or idle cached blocks are reused and hide a
cost. Columns:

- ``dumps``: ``len(libchan.dumps(x))``, the encoding;
- ``libchan``: a ``Channel``; every libchan item pays the channel's own slot
  (16 bytes: the value, with the slot's state word in place of its kind,
  plus 1/63 of a block's link and malloc header), scalars included, and
  an encoded value adds its one block;
- ``value``: ``libchan`` minus that slot, as the small-int row measures it:
  what the value itself costs, the figure the wanted bounds apply to
  (encoding + 32 bytes up to 4 KiB, 1.05x the encoding above);
- ``obj``: libchan objects alive per item (``debug_counters``), 1 for an
  encoded value, 0 for a scalar or a shared object queued by reference;
- ``SimpleQ+pkl``: ``queue.SimpleQueue`` of ``pickle.dumps(x, 5)``;
- ``ci.Queue`` (3.14+): ``concurrent.interpreters.create_queue()``, which
  shares shareable types natively (bytes and str by reference to the
  object, a tuple item by item) and libchan's shared types by reference.

N is large enough that the RSS granularity (one page) is noise: up to 200k
items for small payloads (20k with --quick), and ~32 MiB of payload for
large ones (~8 MiB), and at least 16.
"""

import gc
import os
import subprocess
import sys
import time

MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
COLUMNS = ("libchan", "SimpleQ+pkl", "ci.Queue")
SMALL_MAX = 4096          # encoding + 32 B up to here, 1.05x above
SMALL_EXTRA = 32
LARGE_RATIO = 1.05
DUMPS_RATIO = 1.2
INLINE_MAX = 64 * 1024    # libchan's codec: bytes from here on are shared


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _settle():
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):     # not glibc
        pass


def _fresh(key, x):
    """A function returning a new object equal to x for each put (or x
    itself where the point is to queue the same object by reference)."""
    import pickle
    if key in ("str100",):
        return lambda: x[:-1] + x[-1:]
    if key == "bytes1M":
        return lambda: x[:-1] + x[-1:]
    if key == "tuple1000":
        items = list(x)
        return lambda: tuple(items)
    if key == "mixed250":
        p = pickle.dumps(x, 5)
        return lambda: pickle.loads(p)
    return lambda: x                      # int, SharedTuple, SharedBuffer


def _count(guess, quick):
    """N for a transport expected to cost `guess` bytes per item."""
    budget = (8 if quick else 32) * MIB
    top = 20_000 if quick else 200_000
    return max(16, min(top, budget // max(guess, 64)))


def _per_item(make, fresh, n, objects):
    """(bytes, libchan objects) per item; make() -> (put, release)."""
    put, release = make()
    _settle()
    r0, o0 = _rss(), objects()
    for _ in range(n):
        put(fresh())
    _settle()
    r1, o1 = _rss(), objects()
    release()
    return (r1 - r0) / n, (o1 - o0) / n


def child(key, quick):
    """Measure one payload in this (fresh) process: a dict for the table."""
    import pickle
    import queue

    import libchan
    from libchan.bench.payloads import PAYLOADS, make_payloads

    libchan.debug_track_objects(True)
    spec = {k: (size, shared) for k, _, _, size, shared in PAYLOADS}
    size, shared = spec[key]
    # Keep them all: a SharedBuffer freed here would leave its block idle
    # in libchan's cache, and the first put would reuse it unseen.
    payloads = make_payloads(libchan)
    x = payloads[key]
    fresh = _fresh(key, x)

    def objects():
        return libchan.debug_counters()["live_objects"]

    out = {"dumps": len(libchan.dumps(x)), "shared": shared}

    def lch():
        ch = libchan.Channel()
        return ch.put, lambda: ch.shutdown(immediate=True)

    def simpleq():
        q = queue.SimpleQueue()
        dumps = pickle.dumps
        return (lambda o: q.put(dumps(o, 5))), lambda: None

    cells = [("libchan", lch, 64 if shared else size),
             ("SimpleQ+pkl", simpleq, size)]
    if sys.version_info >= (3, 14):
        def ciq():
            from concurrent import interpreters
            q = interpreters.create_queue()

            def release():
                try:
                    while True:
                        q.get_nowait()
                except interpreters.QueueEmpty:
                    pass
            return q.put, release
        # a tuple is shared item by item: allow for more than its size
        cells.append(("ci.Queue", ciq, 64 if shared else 8 * size))
    for name, make, guess in cells:
        n = _count(guess, quick)
        try:
            b, o = _per_item(make, fresh, n, objects)
        except Exception as e:             # reported, not fatal
            out[name] = {"error": "%s: %s" % (type(e).__name__, e)}
        else:
            out[name] = {"bytes": b, "objects": o, "n": n}
    return out


def _time_best(fn, k, reps):
    best = None
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        dt = (time.perf_counter() - t0) / k
        best = dt if best is None or dt < best else best
    return best


def dumps_1mib(quick):
    """Best-of times (us) of libchan.dumps and pickle.dumps of 1 MiB of
    bytes, and of one memcpy of 1 MiB into a preallocated buffer; each rep
    runs all three, interleaved, so that noise hits all.

    Run in a fresh child process, after one 4 MiB block has been allocated
    and freed: glibc's adaptive mmap threshold then serves the 1-2 MiB
    blocks both dumps make from its heap, as in a process that has been
    running for a while. Otherwise whichever allocation happens to cross
    the threshold (pickle grows its output to 1.5 MiB, libchan allocates
    exactly 1 MiB + 24) pays 256 fresh page faults per call, ~10x the
    copy, and the comparison measures the allocator's state instead."""
    import ctypes
    import pickle

    import libchan

    warm = bytearray(4 * MIB)
    del warm

    data = bytes(range(256)) * (MIB // 256)
    dst = bytearray(MIB)
    d = (ctypes.c_char * MIB).from_buffer(dst)
    da = ctypes.addressof(d)
    memmove = ctypes.memmove
    k, reps = (10, 5) if quick else (50, 11)
    runs = {"libchan.dumps": lambda: libchan.dumps(data),
            "pickle.dumps": lambda: pickle.dumps(data, 5),
            "memcpy": lambda: memmove(da, data, MIB)}
    for fn in runs.values():
        fn()                                # warm up
    best = dict.fromkeys(runs)
    for _ in range(reps):
        for name, fn in runs.items():
            t = _time_best(fn, k, 1)
            if best[name] is None or t < best[name]:
                best[name] = t
    del d
    assert len(libchan.dumps(data)) == MIB + 24
    return {name: t * 1e6 for name, t in best.items()}


def _run_child(args, quick):
    """python -m libchan.bench.memory ARGS in a fresh process: its JSON."""
    import json
    cmd = [sys.executable, "-P", "-m", "libchan.bench.memory"] + args + (
        ["--quick"] if quick else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines()
        raise RuntimeError(lines[-1] if lines else "exit %d" % p.returncode)
    return json.loads(p.stdout)


def run_memory(keys, quick=False, progress=None):
    """The memory section for payload keys: a JSON-able dict (see
    memory_lines and memory_targets)."""
    rows = {}
    for key in keys:
        if progress:
            progress("memory: %s ..." % key)
        try:
            rows[key] = _run_child(["--child", key], quick)
        except Exception as e:
            rows[key] = {"error": "%s: %s" % (type(e).__name__, e)}
    slot = rows.get("int", {}).get("libchan", {}).get("bytes")
    for key, r in rows.items():
        lib = r.get("libchan", {}).get("bytes")
        if lib is None or slot is None:
            continue
        r["value"] = 0.0 if key == "int" else lib - slot
        e = r["dumps"]
        if key == "int" or r["shared"]:
            r["want"] = 0                   # a scalar, or one reference
            r["want_text"] = "0 (%s)" % ("scalar" if key == "int" else "ref")
        elif e <= SMALL_MAX:
            r["want"] = e + SMALL_EXTRA
            r["want_text"] = "<= %d" % r["want"]
        else:
            r["want"] = e * LARGE_RATIO
            r["want_text"] = "<= %.0f" % r["want"]
    if progress:
        progress("memory: dumps of 1 MiB ...")
    try:
        d = _run_child(["--dumps"], quick)
    except Exception as e:
        d = {"error": "%s: %s" % (type(e).__name__, e)}
    return {"slot_bytes": slot, "rows": rows, "dumps_1mib_us": d,
            "quick": quick, "python": sys.version.split()[0]}


def _b(v):
    if v is None:
        return "-"
    return "%.0f" % v if abs(v) >= 10 else "%.1f" % v


def memory_lines(mem, labels=None):
    """The text of the section: a list of lines."""
    labels = dict(labels or {})
    L = ["Memory per queued item, bytes (N fresh copies in an unbounded "
         "queue, RSS growth / N after gc.collect() + malloc_trim(0), one "
         "child process per payload; lower is better)"]
    from libchan.bench.report import render
    rows = []
    for key, r in mem["rows"].items():
        def cell(name):
            c = r.get(name)
            if c is None:
                return "n/a"
            if "error" in c:
                return "error"
            return _b(c["bytes"])
        obj = r.get("libchan", {}).get("objects")
        ok = ""
        if "want" in r:
            ok = " ok" if r["value"] <= r["want"] + 0.5 else " OVER"
        rows.append([labels.get(key, key), str(r.get("dumps", "-")),
                     cell("libchan"), _b(r.get("value")) + ok,
                     r.get("want_text", "-"),
                     "-" if obj is None else "%.2f" % obj,
                     cell("SimpleQ+pkl"), cell("ci.Queue")])
    L.append(render(["payload", "dumps", "libchan", "value", "want",
                     "obj", "SimpleQ+pkl", "ci.Queue"], rows))
    L.append("  value = libchan - the channel's slot (%s B per item, the "
             "small-int row: what every item pays, scalars included); want "
             "applies to value: encoding + %d B up to %d B, %.2fx above"
             % (_b(mem["slot_bytes"]), SMALL_EXTRA, SMALL_MAX, LARGE_RATIO))
    if sys.version_info < (3, 14):
        L.append("  ci.Queue: n/a before Python 3.14")
    errs = ["%s/%s: %s" % (k, n, r[n]["error"]) for k, r in mem["rows"].items()
            for n in COLUMNS if isinstance(r.get(n), dict)
            and "error" in r[n]]
    errs += ["%s: %s" % (k, r["error"]) for k, r in mem["rows"].items()
             if "error" in r]
    for e in errs:
        L.append("  error: " + e)
    d = mem["dumps_1mib_us"]
    L.append("")
    if "error" in d:
        L.append("dumps of 1 MiB of bytes: error: " + d["error"])
        return L
    L.append("dumps of 1 MiB of bytes, us (best of the runs, warm heap): "
             "libchan.dumps "
             "%.0f, pickle.dumps %.0f, one memcpy %.0f (preallocated); "
             "libchan / pickle %.2fx, libchan / memcpy %.2fx"
             % (d["libchan.dumps"], d["pickle.dumps"], d["memcpy"],
                d["libchan.dumps"] / d["pickle.dumps"],
                d["libchan.dumps"] / d["memcpy"]))
    return L


def memory_targets(mem):
    """Targets in report.targets()' shape."""
    T = []

    def add(name, value, op, threshold, note=""):
        met = None if value is None else (
            value <= threshold if op == "<=" else value < threshold)
        T.append({"target": name, "measured": value, "unit": "x", "op": op,
                  "threshold": threshold, "met": met, "note": note})

    small, large, objs = [], [], []
    for key, r in mem["rows"].items():
        if "want" not in r or key == "int" or r["shared"]:
            continue
        (small if r["dumps"] <= SMALL_MAX else large).append((key, r))
        if r["dumps"] < INLINE_MAX:
            objs.append(r["libchan"]["objects"])
    worst = lambda rs, f: max(rs, key=lambda kr: f(kr[1]))  # noqa: E731
    if small:
        k, r = worst(small, lambda r: r["value"] / (r["dumps"] + 32))
        add("queued small value / (encoding + 32 B), worst payload",
            r["value"] / (r["dumps"] + SMALL_EXTRA), "<=", 1.0,
            "%s: %s B for a %d B encoding" % (k, _b(r["value"]), r["dumps"]))
    if large:
        k, r = worst(large, lambda r: r["value"] / r["dumps"])
        add("queued large value / encoding, worst payload",
            r["value"] / r["dumps"], "<=", LARGE_RATIO,
            "%s: %s B for %d B" % (k, _b(r["value"]), r["dumps"]))
    if objs:
        add("libchan objects per queued value, bytes inline", max(objs),
            "<=", 1.0, "bytes of 64 KiB and more travel in a shared buffer "
            "of their own: one more object")
    d = mem["dumps_1mib_us"]
    if "error" in d:
        add("dumps of 1 MiB bytes / pickle.dumps", None, "<=", DUMPS_RATIO,
            d["error"])
    else:
        add("dumps of 1 MiB bytes / pickle.dumps", d["libchan.dumps"]
            / d["pickle.dumps"], "<=", DUMPS_RATIO,
            "libchan %.0f us, pickle %.0f us, memcpy %.0f us"
            % (d["libchan.dumps"], d["pickle.dumps"], d["memcpy"]))
    return T


def main(argv=None):
    import argparse
    import json

    ap = argparse.ArgumentParser(
        prog="python -m libchan.bench.memory",
        description="The memory section of python -m libchan.bench alone.")
    ap.add_argument("--child", metavar="KEY",
                    help="(internal) measure one payload, print JSON")
    ap.add_argument("--dumps", action="store_true",
                    help="(internal) time dumps of 1 MiB, print JSON")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", metavar="KEYS")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.quick)))
        return 0
    if args.dumps:
        print(json.dumps(dumps_1mib(args.quick)))
        return 0
    from libchan.bench.payloads import PAYLOADS
    labels = [(k, lab) for k, lab, *_ in PAYLOADS]
    keys = [k for k, _ in labels]
    if args.only:
        keys = [k for k in keys if k in args.only.split(",")]
    mem = run_memory(keys, args.quick)
    print("\n".join(memory_lines(mem, labels)))
    for t in memory_targets(mem):
        print("  %s %s: %.3fx (want %s %gx)%s" % (
            {True: "[met]", False: "[NOT MET]", None: "[?]"}[t["met"]],
            t["target"], t["measured"], t["op"], t["threshold"],
            "; " + t["note"] if t["note"] else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(mem, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
