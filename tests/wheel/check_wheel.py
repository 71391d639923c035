"""A repaired libchan wheel works on a machine that has Python and nothing
else: run by scripts/dev test (test_wheel) with the venv the wheel was
installed into, inside a Debian root without liburcu and without a compiler.

It checks that
- liburcu is nowhere on the system, and the extension loads the copies
  auditwheel bundled in libchan.libs/ instead;
- a SharedBuffer and a Channel pass to a second interpreter (own GIL) and
  back: the same memory, the same channel, the values intact;
- every libchan object is released once the interpreter is gone.

Exits non-zero with a message on the first failure."""

import gc
import glob
import os
import sys
import threading

import libchan

try:                                        # 3.14+: the public module
    from concurrent import interpreters
except ImportError:                         # 3.13: the low-level one only
    interpreters = None
    import _interpreters


def check(cond, what):
    if not cond:
        sys.exit(f"check_wheel: FAILED: {what}")
    print(f"check_wheel: ok: {what}")


def loaded_libraries():
    with open("/proc/self/maps") as f:
        return {line.split()[-1] for line in f if "/" in line}


def main():
    system = [p for d in ("/lib", "/usr/lib", "/usr/local/lib")
              for p in glob.glob(f"{d}/**/liburcu*", recursive=True)]
    check(not system, f"no liburcu on the system ({system or 'none found'})")

    pkg = os.path.dirname(libchan.__file__)
    urcu = [p for p in loaded_libraries() if "liburcu" in os.path.basename(p)]
    bundled = os.path.join(os.path.dirname(pkg), "libchan.libs")
    check(urcu and all(p.startswith(bundled + os.sep) for p in urcu),
          f"liburcu loaded from the wheel's libchan.libs: {sorted(urcu)}")

    libchan.debug_track_objects(True)
    gc.collect()
    live0 = libchan.debug_counters()["live_objects"]

    data = bytes(range(256)) * 4096
    buf = libchan.SharedBuffer(data)
    ch = libchan.Channel()
    check(libchan.debug_counters()["live_objects"] >= live0 + 2,
          "the live-object counter counts the buffer and the channel")
    code = f"""if 1:
        import sys
        sys.path[:] = {sys.path!r}
        import libchan
        ch.put((buf.address, len(buf), bytes(memoryview(buf)[1000:1008])))
        ch.put(buf[4096:])
        ch.put(ch)
        del buf, ch
        """
    # threading is imported from the creating thread first (a CPython
    # 3.12/3.13 quirk with destroy(); libchan imports it through queue).
    err = []
    if interpreters is not None:
        interp = interpreters.create()
        interp.prepare_main(buf=buf, ch=ch)

        def run():
            try:
                interp.exec(code)
                err.append(None)
            except interpreters.ExecutionFailed as e:
                err.append(e.excinfo.formatted)
        close = interp.close
    else:
        iid = _interpreters.create()
        _interpreters.set___main___attrs(iid, {"buf": buf, "ch": ch})

        def run():
            err.append(_interpreters.exec(iid, code))

        def close():
            _interpreters.destroy(iid)
    t = threading.Thread(target=run)
    t.start()
    t.join()
    close()
    check(err == [None], f"the subinterpreter ran the code: {err}")

    addr, size, sample = ch.get(timeout=10)
    check((addr, size) == (buf.address, len(data)),
          "the subinterpreter saw the same buffer memory")
    check(sample == data[1000:1008], "its contents read there")
    tail = ch.get(timeout=10)
    check(tail.address == buf.address + 4096 and bytes(tail) == data[4096:],
          "a slice made there is a view of the same memory")
    back = ch.get(timeout=10)
    check(back.id == ch.id, "the channel came back as the same channel")

    del tail, back, buf, ch
    gc.collect()
    live = libchan.debug_counters()["live_objects"]
    check(live == live0, f"no libchan object leaked ({live0} -> {live})")
    print(f"check_wheel: all good on Python {sys.version.split()[0]}, "
          f"{libchan.__file__}")


if __name__ == "__main__":
    main()
