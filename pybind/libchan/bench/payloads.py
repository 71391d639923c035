"""What is sent, and the measurements that need no consumer: the payloads;
the one-thread codec runners (libchan.dumps/loads, pickle, msgspec, one
Channel's put+get); and the memcpy floors.

A runner is run(n) -> (seconds per iteration, seconds in all, extra or
None), as timing.Cell expects.
"""

import time
from itertools import repeat as _repeat

from libchan.bench.errors import Broken, exc_text

MIB = 1 << 20
# key, label, touch (consumer calls len()), size in bytes (to cap N so that
# an unbounded queue never holds more than ~MEM_CAP of copies), shared
PAYLOADS = [
    ("int", "small int", False, 8, False),
    ("str100", "str, 100 chars", True, 100, False),
    ("tuple1000", "tuple of 1000 ints", True, 8000, False),
    ("stuple1000", "SharedTuple, 1000 ints", True, 8000, True),
    ("stuple1", "SharedTuple, 1 int", True, 16, True),
    ("mixed250", "250 (int,float,str,bytes)", True, 250 * 64, False),
    ("bytes1M", "bytes, 1 MiB", True, MIB, False),
    ("sbuf1M", "SharedBuffer, 1 MiB", True, MIB, True),
    ("sbuf1K", "SharedBuffer, 1 KiB", True, 1024, True),
]
MEM_CAP = 512 * MIB


def make_payloads(libchan):
    data = bytes(range(256)) * (MIB // 256)
    mixed = tuple((i, i * 0.5, "record-%05d" % i, bytes([i % 256]) * 8)
                  for i in range(250))
    return {
        "int": 42,
        "str100": ("libchan-" * 13)[:100],
        "tuple1000": tuple(range(1000)),
        "stuple1000": libchan.SharedTuple(range(1000)),
        "stuple1": libchan.SharedTuple((7,)),
        "mixed250": mixed,
        "bytes1M": data,
        "sbuf1M": libchan.SharedBuffer(data),
        "sbuf1K": libchan.SharedBuffer(data[:1024]),
    }


def loop_time(fn):
    """fn(n) runs n iterations; returns a runner for the scheduler."""
    def run(n):
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        return dt / n, dt, None
    return run


def local_runners(libchan, x):
    """name -> (runner or None, n/a reason) for the codec table."""
    import pickle

    out = {}
    dumps, loads = pickle.dumps, pickle.loads

    def pickle_dl(n):
        for _ in _repeat(None, n):
            loads(dumps(x, 5))
    out["pickle.d+l"] = (loop_time(pickle_dl), None)

    p = dumps(x, 5)

    def pickle_d(n):
        for _ in _repeat(None, n):
            dumps(x, 5)

    def pickle_l(n):
        for _ in _repeat(None, n):
            loads(p)
    out["pickle.dumps"] = (loop_time(pickle_d), None)
    out["pickle.loads"] = (loop_time(pickle_l), None)

    ldumps, lloads = libchan.dumps, libchan.loads
    try:
        b = ldumps(x)
        y = lloads(b)
        if not y == x:
            raise Broken("loads(dumps(x)) != x: got %s %.60r"
                         % (type(y).__name__, y))
    except Broken as e:
        out["libchan.dumps"] = out["libchan.loads"] = (
            None, ("error", str(e), "wrong value"))
    except Exception as e:
        err = ("error", "libchan.dumps/loads: " + exc_text(e), None)
        out["libchan.dumps"] = out["libchan.loads"] = (None, err)
    else:
        def lch_d(n):
            for _ in _repeat(None, n):
                ldumps(x)

        def lch_l(n):
            for _ in _repeat(None, n):
                lloads(b)
        out["libchan.dumps"] = (loop_time(lch_d), None)
        out["libchan.loads"] = (loop_time(lch_l), None)

    try:
        import msgspec
    except ImportError:
        na = ("n/a", "msgspec is not installed", "no msgspec")
        out["msgspec.enc"] = out["msgspec.dec"] = (None, na)
    else:
        enc = msgspec.msgpack.Encoder().encode
        dec = msgspec.msgpack.Decoder().decode
        try:
            m = enc(x)
            dec(m)
        except Exception as e:
            na = ("n/a", "msgspec.msgpack cannot encode %s (%s)"
                  % (type(x).__name__, exc_text(e)), "unsupported type")
            out["msgspec.enc"] = out["msgspec.dec"] = (None, na)
        else:
            def ms_e(n):
                for _ in _repeat(None, n):
                    enc(x)

            def ms_d(n):
                for _ in _repeat(None, n):
                    dec(m)
            out["msgspec.enc"] = (loop_time(ms_e), None)
            out["msgspec.dec"] = (loop_time(ms_d), None)

    ch = libchan.Channel()
    try:
        ch.put(x)
        y = ch.get_nowait()
        if not (y == x and type(y) is type(x)):
            raise Broken("Channel put+get returned %s %.60r"
                         % (type(y).__name__, y))
    except Exception as e:
        ch.shutdown(immediate=True)
        out["Channel.put+get"] = (None, ("error", "Channel, one thread: "
                                         + exc_text(e), None))
    else:
        put, get = ch.put, ch.get_nowait

        def chan(n):
            for _ in _repeat(None, n):
                put(x)
                get()
        out["Channel.put+get"] = (loop_time(chan), None)
        out["_channel"] = ch      # shut down at the end
    return out


def floor_runners():
    import ctypes

    src = bytearray(bytes(range(256)) * (MIB // 256))
    dst = bytearray(src)                 # pages touched before timing
    s = (ctypes.c_char * MIB).from_buffer(src)
    d = (ctypes.c_char * MIB).from_buffer(dst)
    sa, da = ctypes.addressof(s), ctypes.addressof(d)
    memmove = ctypes.memmove

    def mm(n):
        for _ in _repeat(None, n):
            memmove(da, sa, MIB)
        s, d  # keep the buffers exported while in use

    def copy(n):
        for _ in _repeat(None, n):
            bytes(src)
    return {"memcpy 1 MiB (ctypes.memmove, preallocated)": loop_time(mm),
            "bytes(bytearray of 1 MiB) (allocate + copy)": loop_time(copy)}
