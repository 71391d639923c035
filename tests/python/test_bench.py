"""Smoke test of the benchmark: `python -m libchan.bench --quick --json -`
finishes and reports every payload x peer cell in the documented shape."""

import json
import subprocess
import sys

PAYLOADS = {"int", "str100", "tuple1000", "stuple1000", "stuple1",
            "mixed250", "bytes1M", "sbuf1M", "sbuf1K"}
PEERS = {"libchan", "iq", "iq.sync", "mp.Queue", "mp.Pipe", "SimpleQ"}


def test_bench_quick_json():
    p = subprocess.run([sys.executable, "-m", "libchan.bench", "--quick",
                        "--json", "-"], capture_output=True, text=True,
                       timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(p.stdout)
    assert doc["schema"] == "libchan.bench/1"
    assert doc["meta"]["runs"] == 1 and doc["meta"]["python"]
    assert set(doc["peers"]) == PEERS
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
    assert set(res["local"]) == PAYLOADS
    names = {t["target"] for t in doc["targets"]}
    assert len(names) == len(doc["targets"]) >= 8
    for t in doc["targets"]:
        assert t["met"] in (True, False, None)
    # the table went to stderr, with the targets section
    assert "Targets:" in p.stderr
