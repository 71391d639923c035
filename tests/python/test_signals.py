"""Ctrl-C: SIGINT interrupts a blocking get()/put() in the main thread, and
no item is lost or duplicated."""

import signal
import threading
import time

import pytest

import libchan
from libchan import Channel, Empty, SharedBuffer

from conftest import wait_parked

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")

assert threading.current_thread() is threading.main_thread()


class Interrupter(threading.Thread):
    """Sends SIGINT to the main thread once it is parked in a libchan wait
    (or after a short delay), then, as a watchdog, unblocks the channel if
    the main thread is still stuck after `watchdog` seconds."""

    def __init__(self, unblock, watchdog=10.0):
        super().__init__(daemon=True)
        self.unblock = unblock
        self.watchdog = watchdog
        self.sent = threading.Event()
        self.main_done = threading.Event()
        self.fired_watchdog = False
        self.waits = libchan.debug_counters()["futex_waits"]

    def run(self):
        wait_parked(self.waits, timeout=2.0)
        time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        self.sent.set()
        if not self.main_done.wait(self.watchdog):
            self.fired_watchdog = True
            self.unblock()


def _with_default_sigint(fn):
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return fn()
    finally:
        signal.signal(signal.SIGINT, old)


def _expect_interrupt(call, unblock):
    """Run call() in the main thread while an Interrupter fires; return the
    time from the signal to KeyboardInterrupt."""
    intr = Interrupter(unblock)
    intr.start()
    try:
        try:
            result = call()
        except KeyboardInterrupt:
            t_intr = time.monotonic()
        else:
            intr.main_done.set()
            intr.join()
            pytest.fail(f"no KeyboardInterrupt; call returned {result!r} "
                        f"(watchdog fired: {intr.fired_watchdog})")
        intr.main_done.set()
        intr.join()
        assert intr.sent.is_set()
        assert not intr.fired_watchdog, "the interrupt came only after the " \
            "watchdog unblocked the channel"
        return t_intr
    except KeyboardInterrupt:           # a stray one must not end the run
        pytest.fail("KeyboardInterrupt outside the blocking call")


def test_sigint_interrupts_blocking_get():
    ch = Channel()

    def body():
        _expect_interrupt(ch.get, lambda: ch.put("watchdog"))
        # nothing was consumed or queued by the interrupted get
        assert ch.qsize() == 0
        ch.put("after")
        assert ch.get(timeout=5) == "after"
        with pytest.raises(Empty):
            ch.get_nowait()
    _with_default_sigint(body)


def test_sigint_interrupts_get_with_timeout():
    ch = Channel()

    def body():
        t0 = time.monotonic()
        _expect_interrupt(lambda: ch.get(timeout=30),
                          lambda: ch.put("watchdog"))
        assert time.monotonic() - t0 < 10
        ch.put(1)
        assert ch.get_nowait() == 1
    _with_default_sigint(body)


def test_sigint_items_around_interrupt_counted():
    ch = Channel()

    def body():
        for i in range(3):
            ch.put(("before", i))
        got = [ch.get(timeout=5) for _ in range(3)]
        for round_ in range(3):
            _expect_interrupt(ch.get, lambda: ch.put("watchdog"))
            for i in range(5):
                ch.put(("after", round_, i))
            got += [ch.get(timeout=5) for _ in range(5)]
        assert got == ([("before", i) for i in range(3)]
                       + [("after", r, i) for r in range(3)
                          for i in range(5)])
        with pytest.raises(Empty):
            ch.get_nowait()
    _with_default_sigint(body)


def test_sigint_interrupts_blocked_put():
    ch = Channel(1)

    def body():
        ch.put("first")
        _expect_interrupt(lambda: ch.put(SharedBuffer(b"interrupted")),
                          lambda: ch.get_nowait())
        # the interrupted put queued nothing; the first item is intact
        assert ch.qsize() == 1
        assert ch.get_nowait() == "first"
        with pytest.raises(Empty):
            ch.get_nowait()
        ch.put("second", timeout=5)
        assert ch.get_nowait() == "second"
    _with_default_sigint(body)


def test_handler_that_does_not_raise_resumes_get():
    """A handler that returns normally: get() keeps waiting and returns the
    item that arrives later."""
    ch = Channel()
    calls = []

    def handler(signum, frame):
        calls.append(signum)

    old = signal.signal(signal.SIGINT, handler)
    try:
        waits = libchan.debug_counters()["futex_waits"]

        def helper():
            wait_parked(waits)
            time.sleep(0.05)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(0.1)
            ch.put("late item")

        t = threading.Thread(target=helper, daemon=True)
        t.start()
        assert ch.get(timeout=20) == "late item"
        t.join(10)
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, old)


def test_many_signals_while_items_flow():
    """Signals (to a handler that does not raise) while a producer thread
    streams items: every item arrives once, in order."""
    ch = Channel(4)
    n = 3000
    calls = []
    stop = threading.Event()

    def handler(signum, frame):
        calls.append(signum)

    def producer():
        for i in range(n):
            ch.put(i, timeout=30)
            if i % 500 == 0:
                time.sleep(0.01)

    def signaller():
        while not stop.is_set():
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(0.003)

    old = signal.signal(signal.SIGINT, handler)
    sig = threading.Thread(target=signaller, daemon=True)
    try:
        prod = threading.Thread(target=producer, daemon=True)
        prod.start()
        sig.start()
        got = [ch.get(timeout=30) for _ in range(n)]
        prod.join(30)
        assert got == list(range(n))
        with pytest.raises(Empty):
            ch.get_nowait()
        assert calls
    finally:
        stop.set()
        if sig.is_alive():
            sig.join(30)
        signal.signal(signal.SIGINT, old)
