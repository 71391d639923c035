#!/usr/bin/env python3
"""Turn lch_bench's Google Benchmark JSON into the libchan-vs-peers tables.

Reads the file written by `lch_bench --benchmark_out=FILE
--benchmark_out_format=json`, takes the *median* aggregate of every benchmark
(lch_bench runs 5 repetitions by default), and prints Markdown:

1. per case and kind of queue: libchan's figure, the best peer of that kind
   and its figure, libchan's ratio against it (oriented so that > 1 means
   libchan is better: throughput is libchan/peer, latency is peer/libchan),
   the target and whether it is met. Bounded rows compare the entry "libchan"
   (capacity 1024) with the bounded peers; unbounded rows compare
   "libchan_unbounded" with the unbounded peers (UNBOUNDED);
2. every entry's figure per case, with the ratio of libchan (or, for
   unbounded entries, libchan_unbounded) against each. Cases with a
   companion counter (Case.counter) show its median beside the figure: the
   blocking ping-pong's sleeps per round trip, which explain most of its
   round trip on a VM.

Benchmarks are named "<case>/<entry>". The entry "libchan" is the headline;
other libchan_* entries and the entries listed in INFO_ONLY are shown in the
second table but never count as "the best peer". SPSC-only peers (SPSC, and
ck_ring in the cases listed in SPSC_MODE) are marked "SPSC"; they count only
in the cases where each queue has one producer and one consumer
(SPSC_CASES), and one found elsewhere is reported as a problem.

Exit status: 0 when the tables could be made (targets are reported, not
asserted); 1 when the input lacks a case, libchan's entry, a target's
reference peer or an entry's companion counter, has too few repetitions, or
a benchmark reported an error; 2 for bad usage. Standard library only (Python 3.11+).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import dataclass, field

HEADLINE = "libchan"


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    metric: str  # JSON field holding the figure
    higher_is_better: bool
    ref: str | None  # target compares with this entry; None = best peer
    min_ratio: float | None  # target: ratio (>1 = libchan better) at least
                             # this; None: no ratio target
    target_text: str
    counter: str | None = None  # JSON field shown beside each figure
    counter_text: str = ""


CASES = [
    Case("throughput_1p1c", "1P/1C throughput, one message per call",
         "items_per_second", True, "moodycamel", 1.5,
         ">= 1.5x moodycamel ConcurrentQueue"),
    Case("throughput_1p1c_batch", "1P/1C throughput, batches of 64",
         "items_per_second", True, None, 1.0,
         ">= best peer's bulk API"),
    Case("throughput_2p2c", "2P/2C throughput",
         "items_per_second", True, None, 1.2, ">= 1.2x best peer"),
    Case("pingpong_spin", "spinning ping-pong round trip",
         "ns_per_rt", False, None, 1.0, "<= best peer's round trip"),
    Case("pingpong_block", "blocking ping-pong round trip, waiter parked",
         "ns_per_rt", False, "futex", 1 / 1.2,
         "<= 1.2x raw futex round trip",
         "sleeps_per_rt", "sleeps/rt"),
    # No target against peers: this guards libchan's own fast path, to be
    # compared between runs (the lch_bench entry errors if it made a system
    # call); the peers give the scale.
    Case("nowaiter", "send then receive in one thread, nobody waiting",
         "ns_per_op", False, None, None,
         "for information; no system call (checked by lch_bench)"),
]

# Shown for information; never "the best peer" (they spin before parking,
# which the parked case is not about).
INFO_ONLY = {"pingpong_block": {"moodycamel_blocking_spin"}}

# The libchan entry each kind of queue is compared with.
LIBCHAN_OF = {"bounded": HEADLINE, "unbounded": "libchan_unbounded"}
# The targets are the headline's: the unbounded rows give libchan_unbounded's
# ratio against the best unbounded peer for information.
TARGET_KINDS = {"bounded"}

# Unbounded by design (peers.hpp says why); every other entry is bounded.
UNBOUNDED = {"libchan_unbounded", "moodycamel", "moodycamel_blocking",
             "moodycamel_blocking_spin", "wfcqueue", "xenium_ramalhete",
             "tbb_queue"}

# Single-producer single-consumer only: they fit only SPSC_CASES. ck_ring uses
# its SPSC functions in the cases named in SPSC_MODE and its MPMC ones
# elsewhere; futex is a one-slot mailbox for one sender and one receiver.
SPSC = {"readerwriterqueue", "boost_spsc", "atomic_queue_spsc", "futex"}
SPSC_MODE = {"ck_ring": {"throughput_1p1c", "pingpong_spin"}}
SPSC_CASES = {"throughput_1p1c", "throughput_1p1c_batch", "pingpong_spin",
              "pingpong_block"}

SUFFIX = re.compile(r"(/(real_time|manual_time|repeats:\d+|iterations:\d+|"
                    r"min_time:[0-9.]+|threads:\d+))+$")


class InputError(Exception):
    pass


@dataclass
class Entry:
    case: str
    name: str
    figure: float | None = None
    cv: float | None = None  # coefficient of variation of the figure
    repetitions: int = 0
    from_median: bool = False
    error: str | None = None
    samples: list[float] = field(default_factory=list)
    counter: float | None = None  # median of the case's companion counter
    counter_samples: list[float] = field(default_factory=list)


def kind_of(name: str) -> str:
    return "unbounded" if name in UNBOUNDED else "bounded"


def is_spsc(case: str, name: str) -> bool:
    return name in SPSC or case in SPSC_MODE.get(name, ())


def is_peer(case: str, name: str) -> bool:
    return (not name.startswith(HEADLINE)
            and name not in INFO_ONLY.get(case, ())
            and (case in SPSC_CASES or not is_spsc(case, name)))


def tags(case: str, name: str) -> list[str]:
    out = []
    if name in UNBOUNDED:
        out.append("unbounded")
    if is_spsc(case, name):
        out.append("SPSC")
    if not is_peer(case, name) and name not in LIBCHAN_OF.values():
        out.append("info")
    return out


def load(path: str, metric_of: dict[str, str],
         counter_of: dict[str, str | None]) -> tuple[dict, dict]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise InputError(f"{path}: not Google Benchmark JSON (no 'benchmarks')")

    entries: dict[tuple[str, str], Entry] = {}
    for b in doc["benchmarks"]:
        run = SUFFIX.sub("", b.get("run_name") or b.get("name", ""))
        if "/" not in run:
            continue
        case, name = run.split("/", 1)
        if case not in metric_of:
            continue
        e = entries.setdefault((case, name), Entry(case, name))
        if b.get("error_occurred"):
            e.error = b.get("error_message") or "error"
            continue
        value = b.get(metric_of[case])
        extra = b.get(counter_of[case]) if counter_of[case] else None
        kind = b.get("run_type", "iteration")
        if kind == "aggregate":
            agg = b.get("aggregate_name")
            if agg == "median" and value is not None:
                e.figure = float(value)
                e.from_median = True
                e.repetitions = int(b.get("repetitions", 0))
                if extra is not None:
                    e.counter = float(extra)
            elif agg == "cv" and value is not None:
                e.cv = float(value)
        elif value is not None:
            e.samples.append(float(value))
            e.repetitions = max(e.repetitions, int(b.get("repetitions", 1)))
            if extra is not None:
                e.counter_samples.append(float(extra))
    for e in entries.values():
        if not e.from_median and e.samples:
            e.figure = statistics.median(e.samples)
        if not e.from_median and e.counter_samples:
            e.counter = statistics.median(e.counter_samples)
    return doc.get("context", {}), entries


def fmt(case: Case, v: float | None) -> str:
    if v is None:
        return "-"
    if case.metric == "items_per_second":
        return f"{v / 1e6:.2f} M/s"
    if v < 100:
        return f"{v:.1f} ns"
    return f"{v / 1000:.2f} µs" if v >= 10000 else f"{v:.0f} ns"


def ratio(case: Case, lch: float, other: float) -> float:
    """> 1 means libchan is better."""
    return lch / other if case.higher_is_better else other / lch


def analyse(entries: dict, min_reps: int) -> tuple[list[dict], list[str]]:
    problems: list[str] = []
    few: list[str] = []  # entries without a median of >= min_reps runs
    rows = []
    for c in CASES:
        mine = {n: e for (k, n), e in entries.items() if k == c.name}
        if not mine:
            problems.append(f"case {c.name} is missing from the input")
            continue
        for e in mine.values():
            if e.error:
                problems.append(f"{c.name}/{e.name}: benchmark error: {e.error}")
            elif e.figure is None:
                problems.append(f"{c.name}/{e.name}: no {c.metric} figure")
            elif c.counter and e.counter is None:
                problems.append(f"{c.name}/{e.name}: no {c.counter} counter")
            elif e.repetitions < min_reps or (min_reps > 1
                                              and not e.from_median):
                few.append(f"{c.name}/{e.name} ({e.repetitions})")
            if is_spsc(c.name, e.name) and c.name not in SPSC_CASES:
                problems.append(f"{c.name}/{e.name}: an SPSC-only entry in a "
                                f"case with several producers or consumers "
                                f"(not counted)")
        if HEADLINE not in mine:
            problems.append(f"case {c.name} has no '{HEADLINE}' entry")
        all_peers = {n: e for n, e in mine.items()
                     if is_peer(c.name, n) and e.figure is not None}
        if not all_peers:
            problems.append(f"case {c.name} has no peer with a figure")
        if c.ref is not None and c.ref not in all_peers:
            problems.append(f"case {c.name} lacks the target's reference "
                            f"entry '{c.ref}'")
        # Entries' ratios: against the libchan entry of their own kind.
        entry_rows = {}
        for n, e in sorted(mine.items()):
            base = mine.get(LIBCHAN_OF[kind_of(n)])
            entry_rows[n] = {
                "figure": e.figure, "cv": e.cv, "counter": e.counter,
                "repetitions": e.repetitions,
                "kind": kind_of(n), "spsc": is_spsc(c.name, n),
                "is_peer": is_peer(c.name, n),
                "ratio": (ratio(c, base.figure, e.figure)
                          if base and base.figure and e.figure else None)}
        for kind, lname in LIBCHAN_OF.items():
            lch = mine.get(lname)
            peers = {n: e for n, e in all_peers.items() if kind_of(n) == kind}
            if lch is None and not peers:
                continue  # e.g. no unbounded entries in this case
            if lch is None:
                problems.append(f"case {c.name} has {kind} peers but no "
                                f"'{lname}' entry")
            elif not peers:
                problems.append(f"case {c.name} has no {kind} peer with a "
                                f"figure")
            best = None
            if peers:
                pick = max if c.higher_is_better else min
                best = pick(peers.values(), key=lambda e: e.figure)
            ok = (lch is not None and lch.figure is not None
                  and best is not None)
            # A named reference is used whatever its kind (moodycamel for
            # 1P/1C, the raw futex for the parked ping-pong); "best peer"
            # targets take the best peer of the row's kind.
            targeted = kind in TARGET_KINDS and c.min_ratio is not None
            ref = (all_peers.get(c.ref) if c.ref else best) if targeted \
                else None
            row = {
                "case": c.name,
                "kind": kind,
                "libchan_entry": lname,
                "what": c.what,
                "metric": c.metric,
                "libchan": lch.figure if lch else None,
                "counter": c.counter,
                "best_peer": best.name if best else None,
                "best_peer_spsc": (is_spsc(c.name, best.name)
                                   if best else None),
                "best_figure": best.figure if best else None,
                "ratio_vs_best": (ratio(c, lch.figure, best.figure)
                                  if ok else None),
                "target": (c.target_text if kind in TARGET_KINDS
                           else "for information"),
                "target_ref": ref.name if ref else None,
                "ratio_vs_target_ref": (ratio(c, lch.figure, ref.figure)
                                        if lch is not None and lch.figure
                                        and ref else None),
                "target_min_ratio": c.min_ratio if targeted else None,
                "entries": entry_rows,
            }
            r = row["ratio_vs_target_ref"]
            row["met"] = (None if r is None or not targeted
                          else r >= c.min_ratio - 1e-12)
            rows.append(row)
    if few:
        problems.append(
            f"{len(few)} entries lack a median of >= {min_reps} repetitions, "
            f"e.g. {', '.join(few[:3])}: run lch_bench without "
            f"--benchmark_repetitions (it defaults to 5), or pass "
            f"--min-repetitions 1 for a smoke run")
    return rows, problems


def markdown(rows: list[dict], context: dict) -> str:
    by_name = {c.name: c for c in CASES}
    out = []
    ctx = [f"{k}={context[k]}" for k in
           ("date", "host_name", "num_cpus", "load_avg",
            "lch_bench.pinning", "lch_bench.sizes") if k in context]
    if ctx:
        out.append("Run: " + "; ".join(str(x) for x in ctx) + "\n")
    out.append("| case | queues | libchan | best peer | peer figure | "
               "libchan vs best (>1 = libchan better) | target | vs target "
               "| met |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = by_name[r["case"]]
        rb, rt = r["ratio_vs_best"], r["ratio_vs_target_ref"]
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        need = r["target_min_ratio"]
        vs_target = "-" if rt is None or need is None else (
            f"{rt:.3f} (need >= {need:.3f} vs {r['target_ref']})")
        best = r["best_peer"] or "-"
        if r["best_peer_spsc"]:
            best += " (SPSC)"
        out.append(
            f"| {r['case']} | {r['kind']} ({r['libchan_entry']}) | "
            f"{fmt(c, r['libchan'])} | {best}"
            f" | {fmt(c, r['best_figure'])} | "
            f"{'-' if rb is None else f'{rb:.2f}x'} | {r['target']} | "
            f"{vs_target} | {met} |")
    out.append("")
    out.append("Bounded rows: libchan (capacity 1024) against the bounded "
               "peers; unbounded rows: libchan_unbounded against the unbounded "
               "peers, for information (the targets are libchan's). SPSC = a "
               "single-producer single-consumer queue, counted only in 1P/1C "
               "and ping-pong. A target with a named reference uses it "
               "whatever its kind; \"best peer\" targets take the best "
               "bounded peer.\n")
    out.append("Throughput in million messages per second (higher is "
               "better); round trips in wall-clock time (lower is better). "
               "Medians of the repetitions; cv = coefficient of variation "
               "across them. Ratios are libchan's against bounded entries "
               "and libchan_unbounded's against unbounded ones. "
               "pingpong_block also gives sleeps/rt: the voluntary context "
               "switches of both threads per round trip (2 = each side "
               "went to sleep once); on a VM each sleep costs a wake-up "
               "of tens of microseconds, so entries that sleep equally "
               "often have similar round trips.\n")
    out.append("| case | entry | figure | cv | libchan vs this |")
    out.append("|---|---|---|---|---|")
    shown = set()
    for r in rows:
        if r["case"] in shown:
            continue  # a case's entries are the same in each of its rows
        shown.add(r["case"])
        c = by_name[r["case"]]
        order = sorted(r["entries"].items(),
                       key=lambda kv: (kv[1]["figure"] is None,
                                       -(kv[1]["figure"] or 0)
                                       if c.higher_is_better
                                       else (kv[1]["figure"] or 0)))
        for name, e in order:
            tag = ", ".join(tags(r["case"], name))
            tag = f" ({tag})" if tag else ""
            cv = "-" if e["cv"] is None else f"{100 * e['cv']:.1f}%"
            figure = fmt(c, e["figure"])
            if c.counter and e["counter"] is not None:
                figure += f", {e['counter']:.2f} {c.counter_text}"
            rv = "-" if e["ratio"] is None or name in LIBCHAN_OF.values() \
                else f"{e['ratio']:.2f}x"
            name_md = f"**{name}**" if name in LIBCHAN_OF.values() else name
            out.append(f"| {r['case']} | {name_md}{tag} | "
                       f"{figure} | {cv} | {rv} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", help="JSON from lch_bench --benchmark_out=FILE "
                                  "--benchmark_out_format=json")
    ap.add_argument("--json", metavar="PATH",
                    help="also write the analysis as JSON ('-' = stdout, "
                         "then the Markdown goes to stderr)")
    ap.add_argument("--min-repetitions", type=int, default=5, metavar="N",
                    help="fail unless every entry has at least N "
                         "repetitions (default 5; 1 accepts a smoke run and "
                         "uses single runs when there is no median)")
    args = ap.parse_args(argv)

    try:
        context, entries = load(args.input,
                                {c.name: c.metric for c in CASES},
                                {c.name: c.counter for c in CASES})
    except InputError as e:
        print(f"report.py: error: {e}", file=sys.stderr)
        return 1
    rows, problems = analyse(entries, args.min_repetitions)

    md_out = sys.stderr if args.json == "-" else sys.stdout
    if rows:
        md_out.write(markdown(rows, context))
    if args.json:
        doc = {"context": context, "cases": rows, "problems": problems}
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text)
    for p in problems:
        print(f"report.py: error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
