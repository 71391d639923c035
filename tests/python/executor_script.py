"""A main script for test_executor.py, run in a subprocess (as a file, or
with -m): its functions, initializer and class live in __main__, so each
worker interpreter runs this file as __mp_main__ to find them.

    python executor_script.py MODE

MODE ok: a pool with an initializer and a function both defined here, a
SharedBuffer argument, an instance of a class defined here going both
ways, and an exception; prints one JSON line, and exits cleanly (CPython
3.12.1 corrupts its heap at exit if a worker misuses certain C calls).
unguarded: creates a pool at import time, outside the __main__ guard
(which each worker then runs again); prints the error.
sigint-with / sigint-bare: slow tasks (each prints "start N" as it
begins), "ready" once the first result is in, then waits for the rest
(inside a with block, or not) until the test sends SIGINT.
"""

import json
import os
import sys
import time

from libchan import InterpreterPoolExecutor, SharedBuffer

TABLE = None                 # set in each worker by init()


def init(table):
    global TABLE
    TABLE = table


def lookup(i):
    """What the worker sees: a byte of the table read in place, the
    table's address, and the name this module runs under there."""
    return TABLE[i], TABLE.address, __name__


class Vec:
    def __init__(self, *xs):
        self.xs = xs


def scale(v, k):
    return Vec(*[x * k for x in v.xs])


def fail(msg):
    raise KeyError(msg)


def slow(i):
    os.write(1, b"start %d\n" % i)
    time.sleep(0.2)
    return i


def run_ok():
    table = SharedBuffer(bytes(range(256)) * 16)
    with InterpreterPoolExecutor(2, initializer=init,
                                 initargs=(table,)) as pool:
        seen = [pool.submit(lookup, i).result(timeout=60) for i in (1, 300)]
        v = pool.submit(scale, Vec(1, 2, 3), 10).result(timeout=60)
        try:
            pool.submit(fail, "nope").result(timeout=60)
        except KeyError as e:
            error = [repr(e), "in fail" in str(e.__cause__)]
    print(json.dumps({"seen": seen, "address": table.address,
                      "vec": [type(v).__module__, type(v).__name__,
                              list(v.xs)], "error": error}))


def run_sigint(use_with):
    import signal
    # Ctrl-C as an interactive user has it, whatever this process inherited:
    # a shell starts background jobs with SIGINT ignored, and a Python
    # started so keeps ignoring it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w)      # the C-level handler writes each signal here
    pool = InterpreterPoolExecutor(2)
    fs = [pool.submit(slow, i) for i in range(40)]
    fs[0].result(timeout=60)
    # One write(2), as the workers' lines: print() under PYTHONUNBUFFERED
    # writes "ready" and "\n" apart, and a worker's line could land between.
    os.write(1, b"ready\n")
    if use_with:
        with pool:
            for f in fs:
                f.result(timeout=60)
    else:
        for f in fs:
            f.result(timeout=60)
    # Only reached if the SIGINT was lost: say where it went (the test
    # shows stderr when it fails).
    os.set_blocking(r, False)
    try:
        seen = os.read(r, 64)
    except BlockingIOError:
        seen = b""
    with open("/proc/self/status") as f:
        masks = [ln.strip() for ln in f if ln.startswith(("SigBlk", "SigIgn"))]
    print("lost SIGINT: handler %r, %s, signals seen by the C handler %r"
          % (signal.getsignal(signal.SIGINT), masks, seen), file=sys.stderr)


if sys.argv[1:] == ["unguarded"]:
    # No __main__ guard: a worker running this file as __mp_main__ gets here.
    pool = InterpreterPoolExecutor(1)
    try:
        pool.submit(len, "abc").result(timeout=60)
        print(json.dumps({"error": None}))
    except Exception as e:
        print(json.dumps({"error": type(e).__name__, "text": str(e)}))
    pool.shutdown()

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "ok":
        run_ok()
    elif mode in ("sigint-with", "sigint-bare"):
        run_sigint(mode == "sigint-with")
