"""The command line of ``python -m libchan.bench``: parse the options,
describe the run (meta), build the cells (every payload against every peer,
and the one-thread codec and floors), run the schedule, print the report
and write the JSON and the plot.
"""

import sys
import time

from libchan.bench.consumer import DATA_TIMEOUT
from libchan.bench.errors import exc_text
from libchan.bench.interp import interp_module
from libchan.bench.payloads import (MEM_CAP, MIB, PAYLOADS, floor_runners,
                                   local_runners, make_payloads)
from libchan.bench.peers import make_transports, peer_keys
from libchan.bench.report import Report
from libchan.bench.timing import Cell, schedule


def _progress(enabled, text):
    if enabled:
        sys.stderr.write("\r\x1b[K" + text)
        sys.stderr.flush()


def main(argv=None):
    """Run the benchmark; the exit status (see the package docstring)."""
    import argparse
    import datetime
    import json
    import multiprocessing
    import os
    import platform

    ap = argparse.ArgumentParser(
        prog="python -m libchan.bench",
        description="libchan Channel, SharedBuffer, SharedTuple and codec "
                    "against the stdlib interpreters queues, "
                    "multiprocessing, "
                    "queue.SimpleQueue, pickle and msgspec.")
    ap.add_argument("--quick", action="store_true",
                    help="one short run per cell (CI smoke test, ~20 s)")
    ap.add_argument("--runs", type=int, default=None,
                    help="measured runs per cell (default 5; --quick: 1)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds per transport sample (default 0.15; "
                         "--quick: 0.01)")
    ap.add_argument("--only", metavar="KEYS",
                    help="comma-separated payload keys (%s)"
                    % ",".join(k for k, *_ in PAYLOADS))
    ap.add_argument("--peers", metavar="KEYS",
                    help="comma-separated peers besides libchan (%s)"
                    % ",".join(peer_keys()[1:]))
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
        print("libchan.bench: cannot import libchan: %s" % exc_text(e),
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
        "subinterpreters": interp_module(),
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
            "%s polls (10 ms sleep per empty get), so its "
            "one-way times include up to 10 ms of consumer wake-up per sample "
            "(the consumer-side steady rate is in --json, extra.steady_us)."
            % ("interpreters.Queue" if sys.version_info < (3, 14)
               else "concurrent.interpreters.Queue"),
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

    keep = None
    if args.peers:
        keep = set(args.peers.split(",")) | {"libchan"}
        unknown = keep - set(peer_keys())
        if unknown:
            ap.error("unknown peer(s): %s" % ", ".join(sorted(unknown)))
    ctx = multiprocessing.get_context("spawn")
    transports = make_transports(ctx, keep)
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
                t.broken = "consumer did not start: " + exc_text(e)
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

        schedule(groups, runs, lambda text: _progress(show, text))
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
                leftovers.append("%s (%s)" % (t.key, exc_text(e)))
        for ch in channels:
            ch.shutdown(immediate=True)
        _progress(show, "")

    # Memory per queued item and dumps of 1 MiB: child processes of their
    # own (libchan.bench.memory), after the timed cells.
    from libchan.bench.memory import run_memory
    memory = run_memory([k for k, _ in labels], quick=args.quick,
                        progress=lambda text: _progress(show, text))
    _progress(show, "")
    # Executors (libchan.bench.executor): libchan's and the stdlib's.
    from libchan.bench.executor import run_executor
    executor = run_executor(quick=args.quick, runs=args.runs,
                            progress=lambda text: _progress(show, text))
    _progress(show, "")
    # asyncio (libchan.bench.aio): event loops in two interpreters, select.
    from libchan.bench.aio import run_aio
    aio = run_aio(runs, budget, progress=lambda text: _progress(show, text))
    _progress(show, "")

    meta["loadavg_end"] = loadavg()
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    if leftovers:
        meta["notes"].append("could not stop cleanly: " + ", ".join(leftovers))
    meta["notes"].append("this run took %.0f s" % meta["elapsed_s"])
    rep = Report(meta, transports, labels, cells, floors)
    rep.memory = memory
    rep.executor = executor
    rep.aio = aio
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
            from libchan.bench.plot import plot
            plot(rep, args.plot)
        except ImportError as e:
            print("--plot needs matplotlib: %s" % e, file=sys.stderr)
    lib_failed = [c for c in cells.values() if c.status == "error" and (
        c.peer == "libchan" or c.peer.startswith(("libchan.", "Channel.")))]
    lib_failed += [k for k, c in executor["results"]["libchan"].items()
                   if c["status"] == "error"]
    lib_failed += [t for t in ("roundtrip", "oneway")
                   if aio[t]["libchan"]["status"] == "error"]
    status = 1 if lib_failed else 0
    sys.stdout.flush()
    sys.stderr.flush()
    if leftovers:
        # A consumer thread still runs inside a subinterpreter: interpreter
        # finalization would wait on it or abort, so leave now.
        os._exit(status)
    return status
