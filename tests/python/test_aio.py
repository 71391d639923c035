"""asyncio and select: Channel.get_async/put_async, ``async for``,
libchan.select and libchan.select_async, in the main interpreter and in
subinterpreters that run their own event loop in their own thread.

- Semantics: ready items at once, waiting, timeouts (Empty/Full), bad
  timeouts, ShutDown after shutdown (every async waiter woken with it),
  ``async for`` until shut down and drained, errors outside a loop.
- No thread per waiter (a thousand pending get_async add none) and no
  polling (an idle loop with waiters does not wake up; no timers).
- Cancellation loses nothing: storms of cancelled get_async and put_async
  against producers, counting every item; a waiter woken and cancelled
  before it runs hands its wake-up on.
- select: fair, same errors as get, at most 64 channels; blocking select
  interrupted by a signal takes nothing.
- Subinterpreters: a loop in a subinterpreter serving the main interpreter
  (every version), two loops in two interpreters ping-ponging (3.13+), the
  HTTP workers example end to end (3.13+).
- Errors: fd exhaustion (EMFILE) in a child process.

CPython 3.12.1 cannot run asyncio in an isolated subinterpreter while the
main interpreter runs an event loop, nor before the main interpreter has
imported ssl and asyncio and made a Future and a Task: the process aborts
(``free(): invalid pointer``, with the standard library alone). The 3.12
tests here prepare the main interpreter that way and drive subinterpreter
loops from plain threads; the tests that need two loops at once run on
3.13 and later.
"""

import asyncio
import os
import random
import selectors
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import libchan
from libchan import Channel, Empty, Full, NotShareableError, ShutDown
from libchan import aio

from conftest import PY313, ThreadRunner, wait_parked

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "examples",
                       "aio_http_workers.py")
TWO_LOOPS = pytest.mark.skipif(
    not PY313, reason="CPython 3.12.1 aborts when the main interpreter and "
    "a subinterpreter run asyncio loops at the same time (stdlib alone)")


def run(coro, timeout=30):
    """Run coro on a fresh loop, with a deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def hub_lines():
    """Lines of waiting coroutines in this thread's hubs (should be none
    once nothing waits: a line holds a registration, hence a channel)."""
    hubs = getattr(aio._local, "hubs", None)
    return sum(len(h.lines) for h in hubs.values()) if hubs else 0


@pytest.fixture
def prepared_main():
    """What CPython 3.12.1 needs before a subinterpreter runs asyncio (see
    the module docstring); nothing on 3.13+."""
    if sys.version_info[:2] == (3, 12):
        import ssl  # noqa: F401

        async def one_future():
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(None)
            await fut

        asyncio.run(one_future())


# --------------------------------------------------------------------------
# get_async, put_async, async for
# --------------------------------------------------------------------------

def test_get_async_ready_and_waiting():
    ch = Channel()

    async def main():
        ch.put(1)
        assert await ch.get_async() == 1
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, ch.put, 2)           # same loop, later
        assert await ch.get_async() == 2
        t = threading.Timer(0.02, ch.put, (3,))    # another thread
        t.start()
        assert await ch.get_async(timeout=10) == 3
        t.join()
        assert hub_lines() == 0

    run(main())


def test_get_async_timeouts():
    ch = Channel()

    async def main():
        with pytest.raises(Empty):
            await ch.get_async(timeout=0.05)
        with pytest.raises(Empty):
            await ch.get_async(timeout=0)
        ch.put("x")
        assert await ch.get_async(timeout=0) == "x"
        for bad in (-1, float("nan")):
            with pytest.raises(ValueError):
                await ch.get_async(timeout=bad)
        with pytest.raises(TypeError):
            await ch.get_async(timeout="1")
        assert hub_lines() == 0

    run(main())
    # an Empty is also a queue.Empty
    import queue
    assert issubclass(Empty, queue.Empty) and issubclass(Full, queue.Full)


def test_put_async():
    unbounded, bounded = Channel(), Channel(2)

    async def main():
        for i in range(100):
            await unbounded.put_async(i)            # never waits
        assert unbounded.qsize() == 100
        await bounded.put_async("a")
        await bounded.put_async("b")
        with pytest.raises(Full):
            await bounded.put_async("c", timeout=0.03)
        with pytest.raises(Full):
            await bounded.put_async("c", timeout=0)
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, bounded.get)
        await bounded.put_async("c", timeout=10)    # waits for room
        assert [bounded.get() for _ in range(2)] == ["b", "c"]
        strict = Channel(pickle=False)
        with pytest.raises(NotShareableError):
            await strict.put_async(lambda: 1)
        assert strict.qsize() == 0
        assert hub_lines() == 0

    run(main())
    unbounded.shutdown(immediate=True)


def test_async_for_until_shutdown():
    ch = Channel(8)

    def produce():
        for i in range(1000):
            ch.put(i)
        ch.shutdown()

    async def main():
        t = threading.Thread(target=produce)
        t.start()
        got = [x async for x in ch]
        t.join()
        return got

    assert run(main()) == list(range(1000))


def test_shutdown_wakes_every_async_waiter():
    for immediate in (False, True):
        gets, puts = Channel(), Channel(1)
        puts.put("full")

        async def main():
            g = [asyncio.ensure_future(gets.get_async()) for _ in range(100)]
            p = [asyncio.ensure_future(puts.put_async(i)) for i in range(50)]
            await asyncio.sleep(0.02)
            assert not any(t.done() for t in g + p)
            gets.shutdown(immediate=immediate)
            puts.shutdown(immediate=immediate)
            res = await asyncio.gather(*g, *p, return_exceptions=True)
            assert all(isinstance(r, ShutDown) for r in res), res
            assert hub_lines() == 0

        run(main())
        # shutdown(immediate=False) leaves what was queued: drained, then
        # ShutDown.
        if not immediate:
            assert puts.get() == "full"
        with pytest.raises(ShutDown):
            puts.get_nowait()


def test_errors_outside_a_loop():
    ch = Channel()
    coro = ch.get_async()
    with pytest.raises(RuntimeError, match="no running event loop"):
        coro.send(None)
    coro.close()
    with pytest.raises(TypeError):
        ch.get_async(1, 2, 3, 4, 5, 6, 7, 8)
    w = libchan._libchan._Waiter()
    with pytest.raises(TypeError):
        w.get("not a channel")
    with pytest.raises(TypeError):
        libchan._libchan._Waiter(1)
    w.close()
    w.close()                       # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.fileno()
    with pytest.raises(ValueError, match="closed"):
        w.get(ch)


# --------------------------------------------------------------------------
# No thread per waiter, no polling
# --------------------------------------------------------------------------

def test_thousand_waiters_no_thread():
    ch = Channel()
    n = 1000

    async def main():
        threads = threading.active_count()
        tasks = [asyncio.ensure_future(ch.get_async()) for _ in range(n)]
        await asyncio.sleep(0.05)
        assert threading.active_count() == threads
        assert not any(t.done() for t in tasks)
        hub = aio._local.hubs[asyncio.get_running_loop()]
        assert len(hub.lines) == 1                    # one registration

        def produce():
            for i in range(n):
                ch.put(i)

        t = threading.Thread(target=produce)
        t.start()
        got = await asyncio.gather(*tasks)
        t.join()
        assert sorted(got) == list(range(n))
        assert threading.active_count() == threads
        assert hub_lines() == 0

    run(main())


class CountingSelector(selectors.DefaultSelector):
    calls = 0

    def select(self, timeout=None):
        CountingSelector.calls += 1
        return super().select(timeout)


def test_idle_waiters_do_not_poll():
    ch = Channel()
    loop = asyncio.SelectorEventLoop(CountingSelector())

    async def main():
        timers = len(loop._scheduled)       # wait_for's deadline
        tasks = [asyncio.ensure_future(ch.get_async()) for _ in range(100)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        # The waiters add no timer (nothing wakes the loop on a schedule)
        assert len(loop._scheduled) == timers
        calls = CountingSelector.calls
        # ... and while idle, the loop sleeps in one select() call.
        await asyncio.get_running_loop().run_in_executor(None, time.sleep,
                                                         0.2)
        assert CountingSelector.calls - calls <= 3
        for i in range(100):
            ch.put(i)
        assert sorted(await asyncio.gather(*tasks)) == list(range(100))

    try:
        loop.run_until_complete(asyncio.wait_for(main(), 30))
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


# --------------------------------------------------------------------------
# Cancellation loses nothing
# --------------------------------------------------------------------------

def test_cancellation_storm_get():
    n = 3000
    ch = Channel()
    rng = random.Random(9)

    def produce():
        for i in range(n):
            ch.put(i)
            if rng.random() < 0.05:
                time.sleep(0.0005)

    async def consumer(got):
        while True:
            got.append(await ch.get_async())   # nothing between: no loss

    async def main():
        got = []
        producer = threading.Thread(target=produce)
        producer.start()
        tasks = set()
        cancelled = 0
        while producer.is_alive() or ch.qsize():
            while len(tasks) < 20:
                tasks.add(asyncio.ensure_future(consumer(got)))
            await asyncio.sleep(rng.random() * 0.001)
            for t in rng.sample(sorted(tasks, key=id), 5):
                t.cancel()
                cancelled += 1
            done = {t for t in tasks if t.done()}
            tasks -= done
        producer.join()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return got, cancelled

    got, cancelled = run(main(), timeout=60)
    ch.shutdown()
    rest = list(ch)
    assert cancelled > 100
    assert sorted(got + rest) == list(range(n)), "items lost or duplicated"
    assert hub_lines() == 0


def test_cancellation_storm_put():
    n = 2000
    ch = Channel(1)
    rng = random.Random(3)
    received = []

    def consume():
        for x in ch:
            received.append(x)
            if rng.random() < 0.2:
                time.sleep(0.0005)

    async def main():
        consumer = threading.Thread(target=consume)
        consumer.start()
        sent, i = [], 0
        while i < n:
            t = asyncio.ensure_future(ch.put_async(i))
            if rng.random() < 0.5:
                await asyncio.sleep(0)      # it ran once: tried, maybe waits
            else:
                await asyncio.sleep(rng.random() * 0.0003)
            if not t.done():
                t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                pass
            else:
                sent.append(i)      # put_async returned: it was added
            i += 1
        ch.shutdown()
        consumer.join()
        return sent

    sent = run(main(), timeout=60)
    assert received == sent, "a cancelled put added an item, or one was lost"
    assert 0 < len(sent) < n


def test_woken_then_cancelled_hands_on():
    """A waiter woken by the hub but cancelled before it runs leaves the
    item and hands its wake-up to the next waiter of the line."""
    ch = Channel()

    async def main():
        first = asyncio.ensure_future(ch.get_async())
        second = asyncio.ensure_future(ch.get_async())
        await asyncio.sleep(0.01)
        hub = aio._local.hubs[asyncio.get_running_loop()]
        ch.put("only")
        hub._ready()                # what the loop does when the fd fires
        first.cancel()              # woken, not yet run: cancelled
        assert await asyncio.wait_for(second, 10) == "only"
        with pytest.raises(asyncio.CancelledError):
            await first
        assert hub_lines() == 0

    run(main())


# --------------------------------------------------------------------------
# select and select_async
# --------------------------------------------------------------------------

def test_select_blocking():
    a, b, c = Channel(), Channel(1), Channel()
    b.put("b")
    assert libchan.select(a, b, c) == (b, "b")
    with pytest.raises(Empty):
        libchan.select(a, b, c, timeout=0)
    with pytest.raises(Empty):
        libchan.select(a, b, timeout=0.02)
    t = threading.Timer(0.02, c.put, ("late",))
    t.start()
    assert libchan.select(a, c, timeout=10) == (c, "late")
    t.join()
    a.put(1)
    assert libchan.select(a, a) == (a, 1)          # twice is fine
    many = [Channel() for _ in range(64)]
    many[63].put("last")
    assert libchan.select(*many) == (many[63], "last")
    with pytest.raises(ValueError, match="at most 64"):
        libchan.select(*many, a)
    with pytest.raises(TypeError):
        libchan.select()
    with pytest.raises(TypeError):
        libchan.select(a, "b")
    with pytest.raises(TypeError):
        libchan.select(a, bogus=1)
    with pytest.raises(ValueError):
        libchan.select(a, timeout=-1)
    c.shutdown()
    with pytest.raises(ShutDown) as e:
        libchan.select(a, c, timeout=10)
    assert e.value.channel is c


def test_select_blocking_fair():
    chans = [Channel() for _ in range(4)]
    counts = {ch: 0 for ch in chans}
    for ch in chans:
        ch.put(0)
    for _ in range(4000):
        ch, _ = libchan.select(*chans)
        counts[ch] += 1
        ch.put(0)
    assert min(counts.values()) > 4000 // 8, counts
    for ch in chans:
        ch.shutdown(immediate=True)


def test_select_blocking_signal():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals go to the main thread")
    a, b = Channel(), Channel()
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    before = libchan.debug_counters()["futex_waits"]

    def interrupt():
        wait_parked(before)
        time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    t = threading.Thread(target=interrupt)
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            libchan.select(a, b, timeout=30)
    finally:
        t.join()
        signal.signal(signal.SIGINT, old)
    a.put("kept")
    assert libchan.select(a, b, timeout=0) == (a, "kept")


def test_select_async():
    a, b, c = Channel(), Channel(), Channel(2)

    async def main():
        b.put("b")
        assert await libchan.select_async(a, b, c) == (b, "b")
        asyncio.get_running_loop().call_later(0.02, c.put, "c")
        assert await libchan.select_async(a, b, c, timeout=10) == (c, "c")
        with pytest.raises(Empty):
            await libchan.select_async(a, b, timeout=0.02)
        with pytest.raises(Empty):
            await libchan.select_async(a, b, timeout=0)
        a.put(1)
        assert await libchan.select_async(a, a) == (a, 1)
        with pytest.raises(TypeError):
            await libchan.select_async()
        with pytest.raises(ValueError, match="at most 64"):
            await libchan.select_async(*[Channel() for _ in range(65)])
        with pytest.raises(TypeError):
            await libchan.select_async(a, 3)
        # fair
        counts = {a: 0, b: 0, c: 0}
        for ch in counts:
            ch.put(0)
        for _ in range(3000):
            ch, _ = await libchan.select_async(a, b, c)
            counts[ch] += 1
            ch.put(0)
        assert min(counts.values()) > 3000 // 6, counts
        for ch in counts:
            ch.get()
        # a waiting select woken by any of its channels
        t = asyncio.ensure_future(libchan.select_async(a, b, c))
        await asyncio.sleep(0.01)
        b.put("woke")
        assert await t == (b, "woke")
        a.shutdown()
        with pytest.raises(ShutDown) as e:
            await libchan.select_async(a, b, timeout=5)
        assert e.value.channel is a
        assert hub_lines() == 0

    run(main())


def test_select_async_cancellation_storm():
    n = 2000
    chans = [Channel() for _ in range(3)]
    rng = random.Random(5)

    def produce():
        for i in range(n):
            chans[i % 3].put(i)
            if rng.random() < 0.05:
                time.sleep(0.0005)

    async def consumer(got):
        while True:
            _, item = await libchan.select_async(*chans)
            got.append(item)

    async def main():
        got = []
        producer = threading.Thread(target=produce)
        producer.start()
        tasks = set()
        while producer.is_alive() or any(ch.qsize() for ch in chans):
            while len(tasks) < 10:
                tasks.add(asyncio.ensure_future(consumer(got)))
            await asyncio.sleep(rng.random() * 0.001)
            for t in rng.sample(sorted(tasks, key=id), 3):
                t.cancel()
            tasks = {t for t in tasks if not t.done()}
        producer.join()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return got

    got = run(main(), timeout=60)
    rest = []
    for ch in chans:
        ch.shutdown()
        rest += list(ch)
    assert sorted(got + rest) == list(range(n))
    assert hub_lines() == 0


def test_two_loops_in_one_interpreter():
    """Two threads, two loops, two hubs, one channel: every item reaches
    exactly one of them (each hub's registration hears every put)."""
    ch = Channel()
    n = 2000
    results = [[], []]

    def loop_main(k):
        async def main():
            while True:
                try:
                    results[k].append(await ch.get_async())
                except ShutDown:
                    return
        asyncio.run(asyncio.wait_for(main(), 60))

    threads = [ThreadRunner(loop_main, k) for k in range(2)]
    for t in threads:
        t.start()
    for i in range(n):
        ch.put(i)
        if i % 100 == 0:
            time.sleep(0.001)
    ch.shutdown()
    for t in threads:
        t.join(60)
        assert t.error is None, t.error
    assert sorted(results[0] + results[1]) == list(range(n))


# --------------------------------------------------------------------------
# Subinterpreters
# --------------------------------------------------------------------------

ECHO = """
import asyncio, libchan
pings, pongs, stop = (libchan.lookup(i) for i in ({pings}, {pongs}, {stop}))

async def main():
    served = 0
    while True:
        try:
            ch, x = await libchan.select_async(pings, stop)
        except libchan.ShutDown as e:     # a closed channel is "ready" too
            assert e.channel is pings
            break
        if ch is stop:
            break
        await pongs.put_async(x + 1)
        served += 1
    async for x in pings:                 # what is left, until shut down
        await pongs.put_async(x + 1)
        served += 1
    await pongs.put_async(("served", served))

asyncio.run(main())
"""


def test_subinterpreter_loop_serves_main(make_interp, prepared_main):
    """A subinterpreter runs its own loop in its own thread (select_async,
    put_async, async for); the main interpreter drives it with blocking
    calls, on every version."""
    pings, pongs, stop = Channel(), Channel(4), Channel()
    interp = make_interp()
    runner = interp.start(ECHO.format(pings=pings.id, pongs=pongs.id,
                                      stop=stop.id))
    for i in range(500):
        pings.put(i)
        assert pongs.get(timeout=10) == i + 1
    stop.put("stop")
    for i in range(20):                   # left for the async for
        pings.put(i)
    pings.shutdown()
    got = [pongs.get(timeout=10) for _ in range(21)]
    runner.join(30)
    assert got[:20] == [i + 1 for i in range(20)]
    assert got[20] == ("served", 520)


@TWO_LOOPS
def test_two_interpreters_loops_ping_pong(make_interp):
    """The main interpreter's loop and a subinterpreter's loop, each
    awaiting the other: round trips with both waiters parked on fds."""
    pings, pongs, stop = Channel(), Channel(), Channel()
    interp = make_interp()
    runner = interp.start(ECHO.format(pings=pings.id, pongs=pongs.id,
                                      stop=stop.id))

    async def main():
        threads = threading.active_count()
        for i in range(300):
            await pings.put_async(i)
            assert await pongs.get_async(timeout=10) == i + 1
        assert threading.active_count() == threads
        await stop.put_async("stop")
        pings.shutdown()
        assert await pongs.get_async(timeout=10) == ("served", 300)

    run(main())
    runner.join(30)


@TWO_LOOPS
def test_subinterpreter_cancellation_storm(make_interp):
    """Cancelled get_async in a subinterpreter's loop lose nothing."""
    items, report = Channel(), Channel()
    n = 1500
    interp = make_interp()
    runner = interp.start(f"""
import asyncio, random, libchan
items, report = libchan.lookup({items.id}), libchan.lookup({report.id})
rng = random.Random(1)

async def consumer(got):
    while True:
        got.append(await items.get_async())

async def main():
    got, tasks = [], set()
    while True:
        while len(tasks) < 10:
            tasks.add(asyncio.ensure_future(consumer(got)))
        await asyncio.sleep(rng.random() * 0.001)
        for t in rng.sample(sorted(tasks, key=id), 3):
            t.cancel()
        tasks = {{t for t in tasks if not t.done()}}
        if items.is_shutdown and not items.qsize():
            break
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    report.put(tuple(got))

asyncio.run(main())
""")

    async def produce():
        for i in range(n):
            await items.put_async(i)
            if i % 50 == 0:
                await asyncio.sleep(0.001)
        items.shutdown()
        return await report.get_async(timeout=60)

    got = run(produce(), timeout=60)
    runner.join(30)
    rest = list(items)
    assert sorted(list(got) + rest) == list(range(n))


@TWO_LOOPS
def test_http_workers_example():
    """The README's example, end to end: two worker subinterpreters each
    serve HTTP with asyncio on a listening socket shared by fd, stopped
    through a channel; nothing lost, no thread or interpreter left."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("aio_http_workers",
                                                  EXAMPLE)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    r = ex.run(requests=60, concurrency=4, slow=3, workers=2, timeout=60)
    assert r["requests"] == 63
    assert sum(r["per_worker"].values()) == 63
    assert r["threads_left"] == 0 and r["interpreters_left"] == 0
    # and as a script, as the README runs it
    p = subprocess.run([sys.executable, "-P", EXAMPLE, "--requests", "40"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "44 requests answered by 2 worker subinterpreters" in p.stdout
    assert "nothing lost, no thread or interpreter left" in p.stdout


def test_http_workers_example_refuses_312():
    if PY313:
        pytest.skip("the example runs on 3.13+ (tested above)")
    p = subprocess.run([sys.executable, "-P", EXAMPLE], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "needs CPython 3.13" in p.stderr


# --------------------------------------------------------------------------
# Out of file descriptors
# --------------------------------------------------------------------------

def test_emfile():
    code = textwrap.dedent("""
        import asyncio, errno, os, resource, libchan
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        loop = asyncio.new_event_loop()     # its fds first
        ch = libchan.Channel()
        fds = []
        try:
            while True:
                fds.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as e:
            assert e.errno == errno.EMFILE
        try:
            libchan._libchan._Waiter()
        except OSError as e:
            print("waiter", e.errno == errno.EMFILE)
        async def main():
            try:
                await ch.get_async()
            except OSError as e:
                print("get_async", e.errno == errno.EMFILE)
        loop.run_until_complete(main())
        for fd in fds:
            os.close(fd)
        async def again():
            ch.put(1)
            print("after", await ch.get_async())
        loop.run_until_complete(again())
        loop.close()
    """)
    p = subprocess.run([sys.executable, "-P", "-c", code],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["waiter", "True", "get_async", "True",
                                "after", "1"], p.stdout
