"""The benchmark: a smoke test (`python -m libchan.bench --quick --json -`
finishes and reports every payload x peer cell, the memory, executor and
asyncio sections in the documented shape), and cheap unit tests of its
CPython-version adapter, libchan.bench.interp (which module makes
subinterpreters, which stdlib queues are the peers)."""

import json
import os
import pickle
import re
import subprocess
import sys

import pytest

import libchan
from libchan.bench import interp
from libchan.bench.errors import exc_text

PAYLOADS = {"int", "str100", "tuple1000", "stuple1000", "stuple1",
            "mixed250", "bytes1M", "sbuf1M", "sbuf1K"}
# The stdlib-queue columns on this Python: key -> the module they name.
if sys.version_info >= (3, 14):
    INTERP = "concurrent.interpreters"
    STDLIB = {"ci.Queue+pkl": INTERP, "ci.Queue": INTERP}
elif sys.version_info >= (3, 13):
    INTERP = "test.support.interpreters"
    STDLIB = dict.fromkeys(["iq", "iq.sync"], INTERP + ".queues")
else:
    INTERP = "_xxsubinterpreters"
    STDLIB = dict.fromkeys(["iq", "iq.sync"],
                           "interpreters_backport.interpreters.queues")
PEERS = {"libchan", *STDLIB, "mp.Queue", "mp.Pipe", "SimpleQ"}


def test_bench_quick_json():
    # -P: the installed package, never the repository's libchan/ (the C core)
    p = subprocess.run([sys.executable, "-P", "-m", "libchan.bench",
                        "--quick", "--json", "-"], capture_output=True,
                       text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(p.stdout)
    assert doc["schema"] == "libchan.bench/1"
    assert doc["meta"]["runs"] == 1 and doc["meta"]["python"]
    assert doc["meta"]["subinterpreters"] == INTERP
    assert set(doc["peers"]) == PEERS
    for key, module in STDLIB.items():
        assert doc["peers"][key]["module"] == module
        assert doc["peers"][key]["label"].startswith(module + ".")
    res = doc["results"]
    for table, peers in (("oneway", PEERS | {"pickle"}),
                         ("roundtrip", PEERS)):
        assert set(res[table]) == PAYLOADS
        for payload, cells in res[table].items():
            assert set(cells) == peers, (table, payload)
            for peer, c in cells.items():
                assert c["status"] in ("ok", "n/a", "error"), c
                if c["status"] == "ok":
                    assert c["median_us"] > 0 and len(c["samples_us"]) == 1
                else:
                    assert c["reason"], (table, payload, peer)
            # libchan itself must run every row
            assert cells["libchan"]["status"] == "ok", cells["libchan"]
    if sys.version_info >= (3, 13):
        # the stdlib queues are there, and carry at least a small int
        for key in STDLIB:
            assert doc["peers"][key]["available"], doc["peers"][key]
            assert res["oneway"]["int"][key]["status"] == "ok", key
    assert set(res["local"]) == PAYLOADS
    names = {t["target"] for t in doc["targets"]}
    assert len(names) == len(doc["targets"]) >= 8
    for t in doc["targets"]:
        assert t["met"] in (True, False, None)
    # the table went to stderr: every stdlib column in its header and, in
    # the legend, the module it is; then the targets
    for key, module in STDLIB.items():
        assert re.search(r"^  %s +%s\." % (re.escape(key), re.escape(module)),
                         p.stderr, re.M), key
    header = next(ln for ln in p.stderr.splitlines()
                  if ln.startswith("payload") and "libchan" in ln)
    assert header.split()[1:] == [
        "libchan", *STDLIB, "mp.Queue", "mp.Pipe", "SimpleQ", "pickle"]
    assert "Targets:" in p.stderr
    check_memory(doc, p.stderr)
    check_executor(doc, p.stderr)
    check_aio(doc, p.stderr)


def check_aio(doc, text):
    """The asyncio section (libchan.bench.aio): round trip and one way
    between two interpreters' loops for libchan and its three peers,
    select over 8 against get, no system call without a waiter."""
    aio = doc["aio"]
    peers = ["libchan", "bridge", "to_thread", "socketpair"]
    assert list(aio["peers"]) == peers
    two_loops = sys.version_info >= (3, 13)   # 3.12.1: n/a (CPython bug)
    two_cpus = len(os.sched_getaffinity(0)) >= 2
    for table in ("roundtrip", "roundtrip_1core", "oneway"):
        assert list(aio[table]) == peers
        for peer in peers:
            c = aio[table][peer]
            if not two_loops or (not two_cpus and table != "roundtrip_1core"):
                assert c["status"] == "n/a" and c["reason"], c
            elif peer != "to_thread":
                assert c["status"] == "ok", (table, peer, c)
                assert c["median_us"] > 0 and len(c["samples_us"]) == 1
    cells = ["select8", "get", "select8_async", "get_async"]
    assert list(aio["select_local"]) == cells
    for name in cells:
        c = aio["select_local"][name]
        assert c["status"] == "ok" and c["median_us"] > 0, (name, c)
        c = aio["select"][name]
        assert c["status"] == ("ok" if two_loops else "n/a"), (name, c)
    assert aio["no_waiter_syscalls"] == 0
    names = {t["target"] for t in doc["targets"]}
    assert {"asyncio round trip, %s: libchan / %s" % (where, peer)
            for where in ("two cores", "one core")
            for peer in ("thread bridge", "socketpair")} <= names
    assert {"asyncio one way: libchan throughput / thread bridge's",
            "system calls of a put+get with nobody waiting"} <= names
    assert "asyncio: the main interpreter's loop" in text
    assert "select over 8 channels, 1 active" in text


def check_executor(doc, text):
    """The executor section (libchan.bench.executor): the five measures for
    libchan's executor and every peer this Python has, in one run, with
    the ratios and the targets."""
    ex = doc["executor"]
    assert ex["runs"] == 1 and ex["workers"] == 2
    measures = ["cold", "roundtrip", "inflight", "map", "cpu"]
    assert list(ex["measures"]) == measures
    peers = ["libchan", "thread", "proc.spawn", "proc.forkserver",
             "std.interp"]
    assert list(ex["peers"]) == peers
    # the stdlib InterpreterPoolExecutor exists from 3.14
    assert ex["peers"]["std.interp"]["available"] == \
        (sys.version_info >= (3, 14))
    for peer in peers:
        for m in measures:
            c = ex["results"][peer][m]
            if not ex["peers"][peer]["available"]:
                assert c["status"] == "n/a" and c["reason"]
                continue
            assert c["status"] == "ok", (peer, m, c)
            assert c["median"] > 0 and len(c["samples"]) == 1
    for peer in peers[1:]:
        assert set(ex["ratios"][peer]) == set(measures)
        if ex["peers"][peer]["available"]:
            assert all(v > 0 for v in ex["ratios"][peer].values()), peer
    names = {t["target"] for t in doc["targets"]}
    executor_targets = {n for n in names if n.startswith("executor ")}
    assert len(executor_targets) == 8
    for t in doc["targets"]:
        if t["target"].startswith("executor ") and "stdlib" in t["target"]:
            assert (t["measured"] is None) == (sys.version_info < (3, 14))
    assert "Executors, 2 workers each" in text
    header = next(ln for ln in text.splitlines()
                  if ln.startswith("measure") and "std.interp" in ln)
    assert header.split()[1:] == peers


def check_memory(doc, text):
    """The memory section (libchan.bench.memory): bytes per queued item for
    every payload and transport, dumps of 1 MiB, and their targets."""
    mem = doc["memory"]
    assert set(mem["rows"]) == PAYLOADS
    cols = ["libchan", "SimpleQ+pkl"] + (
        ["ci.Queue"] if sys.version_info >= (3, 14) else [])
    for key, row in mem["rows"].items():
        assert "error" not in row, (key, row)
        assert row["dumps"] >= 24
        for col in cols:
            assert "error" not in row[col], (key, col, row[col])
            assert row[col]["n"] >= 16
        # every libchan item pays at least its 16-byte slot, give or take
        # the RSS granularity (a page or two over n items)
        n = row["libchan"]["n"]
        assert row["libchan"]["bytes"] >= 16 - 2 * 4096 / n, (key, row)
        assert "value" in row and "want" in row
    assert mem["slot_bytes"] > 0
    d = mem["dumps_1mib_us"]
    assert set(d) == {"libchan.dumps", "pickle.dumps", "memcpy"}
    assert all(v > 0 for v in d.values())
    names = {t["target"] for t in doc["targets"]}
    assert {"queued small value / (encoding + 32 B), worst payload",
            "queued large value / encoding, worst payload",
            "libchan objects per queued value, bytes inline",
            "dumps of 1 MiB bytes / pickle.dumps"} <= names
    assert "Memory per queued item" in text
    assert "dumps of 1 MiB of bytes" in text



# --------------------------------------------------------------------------
# libchan.bench.interp
# --------------------------------------------------------------------------

def test_interp_module_is_this_pythons():
    assert interp.interp_module() == INTERP


def test_stdlib_queue_columns_name_their_module():
    kinds = interp.stdlib_queues()
    assert [k.key for k in kinds] == list(STDLIB)
    for k in kinds:
        assert k.module == STDLIB[k.key]
        assert k.label.startswith(k.module + ".")
    # [pickled, native]: the targets compare libchan with the native one
    assert [k.native for k in kinds] == [False, True]
    # 3.14 has no syncobj: the pickled column pickles in the caller
    assert kinds[0].pickled == (sys.version_info >= (3, 14))
    if sys.version_info >= (3, 13):
        assert interp.stdlib_queues_na() is None


@pytest.mark.skipif(sys.version_info < (3, 13),
                    reason="3.12: the stdlib queues are a backport")
@pytest.mark.parametrize("kind", interp.stdlib_queues(),
                         ids=lambda k: k.key)
def test_stdlib_queue_ends_carry_items(kind):
    """The harness's ends and the consumer's (its setup code, run here in
    the main interpreter) pass items both ways; a pickled column's queue
    holds pickles."""
    qin, qout = kind.create(), kind.create()
    put, get = kind.ends(qin, qout)
    ns = {}
    exec(kind.consumer_setup(qin.id, qout.id), ns)
    item = (1, 2.5, "three", b"four", None, True)
    put(item)
    assert ns["get"](timeout=1) == item
    ns["put"]("reply")
    assert get(timeout=1) == "reply"
    put(7)
    raw = qin.get(timeout=1)
    assert raw == (pickle.dumps(7) if kind.pickled else 7)


def test_run_in_new_interp():
    ch = libchan.Channel()
    try:
        interp.run_in_new_interp(interp.interp_module(), "\n".join([
            "import sys",
            "sys.path[:] = %r" % (sys.path,),
            "import libchan",
            "libchan.lookup(%d).put(('ran', sys.version))" % ch.id]))
        assert ch.get(timeout=5) == ("ran", sys.version)
        with pytest.raises(Exception) as e:
            interp.run_in_new_interp(interp.interp_module(),
                                     "raise ValueError('from inside')")
        text = exc_text(e.value)     # 3.12: "<class 'ValueError'>: from inside"
        assert "ValueError" in text and "from inside" in text, text
    finally:
        ch.shutdown(immediate=True)
