"""The report: the text tables (values and libchan's ratios), the targets,
and the JSON document of every sample. The bar chart is plot.py's.
"""

from libchan.bench.interp import stdlib_queues

SCHEMA = "libchan.bench/1"

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
        self.memory = None          # libchan.bench.memory.run_memory()
        self.executor = None        # libchan.bench.executor.run_executor()
        self.aio = None             # libchan.bench.aio.run_aio()

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
        # the stdlib queue that shares shareable objects natively
        iq = next(k for k in stdlib_queues() if k.native)
        r = ratio(self.get("oneway", "int", iq.key),
                  self.get("oneway", "int", "libchan"))
        add("small int one way: libchan vs %s" % iq.short,
            r, "x faster", ">=", 10.0)
        sq = ow("SimpleQ", "int")
        add("small int one way: libchan time / queue.SimpleQueue (threads)",
            None if lib_int is None or sq is None else lib_int / sq,
            "x", "<=", 2.0)
        add("blocking round trip, small int, libchan",
            self.med_us("roundtrip", "int", "libchan"), "us", "<=", 30.0,
            "stdlib %s here: %s us"
            % (iq.short, fmt_us(self.med_us("roundtrip", "int", iq.key))))
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
        if self.memory is not None:
            from libchan.bench.memory import memory_targets
            T.extend(memory_targets(self.memory))
        if self.executor is not None:
            from libchan.bench.executor import executor_targets
            T.extend(executor_targets(self.executor))
        if self.aio is not None:
            from libchan.bench.aio import aio_targets
            T.extend(aio_targets(self.aio))
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
        w = max([9] + [len(t.key) for t in self.transports])
        for t in self.transports:
            L.append("  %-*s %s -> %s%s" % (
                w, t.key, t.label, t.where,
                "" if t.na is None else "  [n/a: %s]" % t.na[1]))
        L.append("  %-*s pickle.dumps(x, protocol=5) + pickle.loads, one "
                 "thread (no transport)" % (w, "pickle"))
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
        if self.memory is not None:
            from libchan.bench.memory import memory_lines
            L.extend(memory_lines(self.memory, self.labels))
            L.append("")
        if self.executor is not None:
            from libchan.bench.executor import executor_lines
            L.extend(executor_lines(self.executor))
            L.append("")
        if self.aio is not None:
            from libchan.bench.aio import aio_lines
            L.extend(aio_lines(self.aio, fmt_us))
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
                for peer in [t.key for t in self.transports
                             if t.key != "libchan"] + ["pickle"]:
                    c = self.get(table, key, peer)
                    if c is not None:
                        ratios.setdefault(table, {}).setdefault(key, {})[
                            peer] = ratio(c, base)
        return {
            "schema": SCHEMA,
            "meta": self.meta,
            "peers": {t.key: {"label": t.label, "module": t.module,
                              "where": t.where,
                              "available": t.na is None,
                              "reason": None if t.na is None else t.na[1]}
                      for t in self.transports},
            "payloads": {k: lab for k, lab in self.labels},
            "results": results,
            "floors": {k: cell_json(c) for k, c in self.floors.items()},
            "ratios": ratios,
            "targets": self.targets(),
            "memory": self.memory,
            "executor": self.executor,
            "aio": self.aio,
        }
