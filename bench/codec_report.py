#!/usr/bin/env python3
"""Turn lch_bench_codec's Google Benchmark JSON into the codec comparison.

Reads the file written by `lch_bench_codec --benchmark_out=FILE
--benchmark_out_format=json`, takes the *median* aggregate of every benchmark
(lch_bench_codec runs 5 repetitions by default; a run with one repetition and
no aggregates is read as its single figure), and prints Markdown:

1. per case: libchan's and msgpack's median time per operation, the ratio
   (libchan speed / msgpack speed: > 1 means libchan is faster), and for
   decode the information-only `libchan_copy` entry;
2. access time per element count, for both;
3. the four targets with met / not met:
   - encode >= msgpack-c for every payload (ratio >= 1 on every encode case);
   - validation >= 1 GB/s on ~1 MiB of mixed records (10^9 bytes/s);
   - element access O(1): libchan access time at 100000 elements / at 10
     elements <= FLAT_MAX (cache misses make it grow a little; O(n) would be
     ~10^4);
   - zero copy: encode_bytes_1mib_buffer/libchan ran without error and
     reported zero_copy = 1.

Exit status: 0 when the tables could be made (targets are reported, not
asserted); 1 when a needed entry is missing, has too few repetitions, or a
benchmark reported an error; 2 for bad usage. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

PAYLOADS = ["int_tuple", "float_tuple", "str_tuple", "mixed_tuple",
            "bytes_1mib"]
ACCESS_NS = ["10", "1000", "100000"]
FLAT_MAX = 2.0
VALIDATE_MIN = 1e9  # bytes per second
TIME_SCALE = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def load(path: str, min_reps: int) -> tuple[dict, dict, list[str]]:
    """Median ns/op and median counters per run name, plus problems."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    runs: dict[str, list[dict]] = {}
    medians: dict[str, dict] = {}
    errors: list[str] = []
    for b in doc.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        if b.get("error_occurred"):
            errors.append(f"{name}: {b.get('error_message', 'error')}")
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
        else:
            runs.setdefault(name, []).append(b)
    out: dict[str, dict] = {}
    for name in set(runs) | set(medians):
        reps = runs.get(name, [])
        if name in medians:
            m = medians[name]
            n = int(m.get("repetitions", len(reps)))
        else:
            m = None
            n = len(reps)
        if n < min_reps:
            errors.append(f"{name}: {n} repetition(s), need {min_reps}")
        src = [m] if m else reps
        scale = TIME_SCALE[src[0].get("time_unit", "ns")]
        rec = {"ns": statistics.median(r["real_time"] * scale for r in src)}
        for key in ("bytes_per_second", "items_per_second", "zero_copy",
                    "flat_bytes", "encoded_bytes"):
            vals = [r[key] for r in src if key in r]
            if vals:
                rec[key] = statistics.median(vals)
        out[name] = rec
    return out, doc.get("context", {}), errors


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.1f} ns"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="lch_bench_codec --benchmark_out file")
    ap.add_argument("--min-repetitions", type=int, default=5,
                    help="fail when an entry has fewer (default 5)")
    args = ap.parse_args(argv)
    try:
        res, ctx, problems = load(args.json, args.min_repetitions)
    except (OSError, ValueError, KeyError) as e:
        print(f"codec_report: {args.json}: {e}", file=sys.stderr)
        return 1

    def ns(name: str) -> float | None:
        r = res.get(name)
        return r["ns"] if r else None

    def need(name: str) -> float | None:
        v = ns(name)
        if v is None:
            problems.append(f"{name}: missing")
        return v

    print(f"# libchan codec vs msgpack-c {ctx.get('lch_bench_codec.msgpack', '')}")
    print()
    print(f"{ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz, "
          f"{ctx.get('library_build_type', '?')} Google Benchmark; medians.")
    print()
    print("| case | libchan | msgpack | ratio (>1 = libchan faster) | libchan_copy |")
    print("|---|---:|---:|---:|---:|")
    encode_ratios: list[tuple[str, float]] = []
    for op in ("encode", "decode"):
        for p in PAYLOADS:
            case = f"{op}_{p}"
            lc, mp = need(f"{case}/libchan"), need(f"{case}/msgpack")
            ratio = mp / lc if lc and mp else None
            if op == "encode" and ratio is not None:
                encode_ratios.append((p, ratio))
            copy = fmt_ns(ns(f"{case}/libchan_copy")) if op == "decode" else ""
            print(f"| {case} | {fmt_ns(lc)} | {fmt_ns(mp)} | "
                  f"{'-' if ratio is None else f'{ratio:.2f}x'} | {copy} |")
    zc_ns = need("encode_bytes_1mib_buffer/libchan")
    zc_mp = ns("encode_bytes_1mib/msgpack")
    print(f"| encode_bytes_1mib_buffer (shared lch_buffer) | {fmt_ns(zc_ns)} | "
          f"{fmt_ns(zc_mp)} | "
          f"{f'{zc_mp / zc_ns:.2f}x' if zc_ns and zc_mp else '-'} | |")
    print()

    print("| access, random element of an N-int tuple | libchan | msgpack (unpack + index) |")
    print("|---|---:|---:|")
    for n in ACCESS_NS:
        print(f"| N = {n} | {fmt_ns(need(f'access/libchan/{n}'))} | "
              f"{fmt_ns(ns(f'access/msgpack/{n}'))} |")
    print()

    val = res.get("validate_mixed_1mib/libchan")
    if val is None:
        problems.append("validate_mixed_1mib/libchan: missing")
    print("| target | measured | met |")
    print("|---|---|---|")
    if encode_ratios:
        worst = min(encode_ratios, key=lambda t: t[1])
        ok = all(r >= 1.0 for _, r in encode_ratios) and \
            len(encode_ratios) == len(PAYLOADS)
        print(f"| encode >= msgpack-c for every payload | worst {worst[1]:.2f}x "
              f"({worst[0]}) | {'met' if ok else 'NOT met'} |")
    if val and "bytes_per_second" in val:
        gbs = val["bytes_per_second"]
        print(f"| validation >= 1 GB/s on a 1 MiB mixed buffer | "
              f"{gbs / 1e9:.2f} GB/s ({int(val.get('flat_bytes', 0))} bytes) | "
              f"{'met' if gbs >= VALIDATE_MIN else 'NOT met'} |")
    a10, a100k = ns("access/libchan/10"), ns("access/libchan/100000")
    if a10 and a100k:
        flat = a100k / a10
        print(f"| element access O(1), 10 -> 100000 elements | "
              f"{fmt_ns(a10)} -> {fmt_ns(a100k)} ({flat:.2f}x; limit "
              f"{FLAT_MAX:.1f}x) | {'met' if flat <= FLAT_MAX else 'NOT met'} |")
    zc = res.get("encode_bytes_1mib_buffer/libchan")
    zc_ok = bool(zc and zc.get("zero_copy") == 1)
    print(f"| 1 MiB bytes in a tuple encoded without copying | "
          f"{'zero_copy = 1 (same data pointer, buffer in side table)' if zc_ok else 'error or no counter'}"
          f" | {'met' if zc_ok else 'NOT met'} |")

    if problems:
        print(file=sys.stderr)
        for p in problems:
            print(f"codec_report: {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
