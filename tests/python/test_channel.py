"""libchan.Channel: the queue.Queue interface, errors, shutdown, lookup,
and threads."""

import gc
import itertools
import queue
import sys
import threading
import time
from decimal import Decimal

import pytest

import libchan
from libchan import (Channel, Empty, Full, NotShareableError, SharedBuffer,
                     ShutDown)

from conftest import ThreadRunner, wait_parked

PY313 = sys.version_info >= (3, 13)
_names = itertools.count()


def uname(prefix="ch"):
    """A channel name no other test uses."""
    return f"test_channel.{prefix}.{next(_names)}"


# --------------------------------------------------------------------------
# Construction and properties
# --------------------------------------------------------------------------

def test_defaults():
    ch = Channel()
    assert ch.maxsize == 0
    assert ch.name is None
    assert ch.pickle is True
    assert ch.is_shutdown is False
    assert isinstance(ch.id, int) and ch.id > 0
    assert ch.qsize() == 0
    assert ch.empty() is True
    assert ch.full() is False
    assert isinstance(repr(ch), str)


def test_arguments():
    name = uname()
    ch = Channel(3, name=name, pickle=False)
    assert ch.maxsize == 3
    assert ch.name == name
    assert ch.pickle is False
    ch2 = Channel(maxsize=7)
    assert ch2.maxsize == 7


def test_ids_unique():
    chans = [Channel() for _ in range(50)]
    assert len({c.id for c in chans}) == 50


@pytest.mark.parametrize("size", [-1, -100])
def test_negative_maxsize_is_unbounded(size):
    # As queue.Queue: maxsize <= 0 means no limit (and is reported as given:
    # test_stdlib_compat.py).
    for ch in (Channel(size), Channel(maxsize=size)):
        assert ch.maxsize == size
        for i in range(1000):
            ch.put_nowait(i)
        assert not ch.full() and ch.qsize() == 1000
        ch.shutdown(immediate=True)


@pytest.mark.parametrize("bad", ["3", 1.5, None, b"1", [1]])
def test_maxsize_wrong_type(bad):
    with pytest.raises(TypeError):
        Channel(bad)


@pytest.mark.parametrize("bad", [5, b"name", ["x"]])
def test_name_wrong_type(bad):
    with pytest.raises(TypeError):
        Channel(name=bad)


def test_keyword_only_and_unknown_arguments():
    with pytest.raises(TypeError):
        Channel(0, "positional-name")
    with pytest.raises(TypeError):
        Channel(0, nonsense=1)
    with pytest.raises(TypeError):
        Channel(0, None, True)


def test_properties_read_only():
    ch = Channel(2, name=uname())
    for attr, value in [("maxsize", 5), ("name", "x"), ("pickle", False),
                        ("id", 1), ("is_shutdown", True)]:
        with pytest.raises(AttributeError):
            setattr(ch, attr, value)
    assert ch.maxsize == 2


def test_non_ascii_name():
    name = uname("κανάλι-😀")
    ch = Channel(name=name)
    assert ch.name == name
    assert libchan.lookup(name) == ch


# --------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------

def test_exception_hierarchy():
    assert issubclass(Empty, queue.Empty)
    assert issubclass(Full, queue.Full)
    assert issubclass(NotShareableError, ValueError)
    if PY313:
        assert issubclass(ShutDown, queue.ShutDown)
    else:
        assert issubclass(ShutDown, Exception)
    for exc in (Empty, Full, ShutDown, NotShareableError):
        assert libchan.__dict__[exc.__name__] is exc


# --------------------------------------------------------------------------
# put / get, single thread
# --------------------------------------------------------------------------

def test_fifo_and_qsize():
    ch = Channel()
    for i in range(100):
        ch.put(i)
        assert ch.qsize() == i + 1
    assert not ch.empty()
    assert [ch.get() for _ in range(100)] == list(range(100))
    assert ch.qsize() == 0 and ch.empty()


def test_many_items_unbounded():
    ch = Channel()
    n = 20000
    for i in range(n):
        ch.put_nowait(i)
    assert ch.qsize() == n
    assert [ch.get_nowait() for _ in range(n)] == list(range(n))


def test_keywords():
    ch = Channel(1)
    ch.put(1, block=True, timeout=1.0)
    assert ch.get(block=True, timeout=1.0) == 1
    ch.put("x", block=False)
    assert ch.get(block=False) == "x"
    ch.put("y", True, None)
    assert ch.get(True, None) == "y"
    ch.put("z", timeout=None)
    assert ch.get(timeout=None) == "z"


def test_wrong_arguments():
    ch = Channel()
    with pytest.raises(TypeError):
        ch.put()
    with pytest.raises(TypeError):
        ch.get(True, 1.0, 3)
    with pytest.raises(TypeError):
        ch.put(1, True, 1.0, 3)
    with pytest.raises(TypeError):
        ch.put_nowait()
    with pytest.raises(TypeError):
        ch.get_nowait(1)
    with pytest.raises(TypeError):
        ch.get(nonsense=1)
    assert ch.qsize() == 0


@pytest.mark.parametrize("bad", ["1", b"1", [1], object()])
def test_timeout_wrong_type(bad):
    ch = Channel()
    with pytest.raises(TypeError):
        ch.get(timeout=bad)
    with pytest.raises(TypeError):
        ch.put(1, timeout=bad)
    assert ch.qsize() == 0


@pytest.mark.parametrize("bad", [-1, -0.001, -1e9])
def test_negative_timeout(bad):
    ch = Channel()
    with pytest.raises(ValueError):
        ch.get(timeout=bad)
    with pytest.raises(ValueError):
        ch.put(1, timeout=bad)
    assert ch.qsize() == 0
    # also with an item there: the argument is checked either way
    ch.put(1)
    with pytest.raises(ValueError):
        ch.get(True, bad)
    assert ch.get_nowait() == 1


def test_empty_nonblocking():
    ch = Channel()
    with pytest.raises(Empty):
        ch.get_nowait()
    with pytest.raises(Empty):
        ch.get(block=False)
    with pytest.raises(queue.Empty):
        ch.get(False)
    with pytest.raises(Empty):
        ch.get(timeout=0)


def test_full_nonblocking():
    ch = Channel(2)
    ch.put(1)
    assert not ch.full()
    ch.put(2)
    assert ch.full()
    assert ch.qsize() == 2
    with pytest.raises(Full):
        ch.put_nowait(3)
    with pytest.raises(Full):
        ch.put(3, block=False)
    with pytest.raises(queue.Full):
        ch.put(3, False)
    with pytest.raises(Full):
        ch.put(3, timeout=0)
    assert ch.qsize() == 2
    assert ch.get() == 1
    assert not ch.full()
    ch.put(3)
    assert [ch.get(), ch.get()] == [2, 3]


def test_maxsize_one():
    ch = Channel(1)
    for i in range(100):
        ch.put_nowait(i)
        assert ch.full()
        with pytest.raises(Full):
            ch.put_nowait(-1)
        assert ch.get_nowait() == i


def test_get_timeout_honoured():
    ch = Channel()
    t0 = time.monotonic()
    with pytest.raises(Empty):
        ch.get(timeout=0.05)
    elapsed = time.monotonic() - t0
    assert 0.05 - 1e-3 <= elapsed < 2.0


def test_put_timeout_honoured():
    ch = Channel(1)
    ch.put(0)
    t0 = time.monotonic()
    with pytest.raises(Full):
        ch.put(1, timeout=0.05)
    elapsed = time.monotonic() - t0
    assert 0.05 - 1e-3 <= elapsed < 2.0
    assert ch.qsize() == 1 and ch.get_nowait() == 0


def test_timeout_with_item_available_returns_at_once():
    ch = Channel(1)
    ch.put(1, timeout=1e6)
    assert ch.get(timeout=1e6) == 1


def test_failed_put_queues_nothing_and_releases_object():
    ch = Channel(1)
    ch.put(0)
    with pytest.raises(Full):
        ch.put_nowait(SharedBuffer(b"dropped"))
    with pytest.raises(Full):
        ch.put(SharedBuffer(b"dropped"), timeout=0.01)
    assert ch.qsize() == 1 and ch.get_nowait() == 0
    # the leak check verifies the refused buffers were released


# --------------------------------------------------------------------------
# Shutdown
# --------------------------------------------------------------------------

def test_shutdown_drains_then_raises():
    ch = Channel()
    ch.put(1)
    ch.put(2)
    ch.shutdown()
    assert ch.is_shutdown
    with pytest.raises(ShutDown):
        ch.put(3)
    with pytest.raises(ShutDown):
        ch.put_nowait(3)
    assert ch.qsize() == 2
    assert ch.get() == 1
    assert ch.get_nowait() == 2
    for call in (ch.get, ch.get_nowait, lambda: ch.get(timeout=0.01),
                 lambda: ch.get(False)):
        with pytest.raises(ShutDown):
            call()


def test_shutdown_is_not_empty_or_full():
    ch = Channel(1)
    ch.shutdown()
    with pytest.raises(ShutDown) as ei:
        ch.get_nowait()
    assert not isinstance(ei.value, queue.Empty)
    with pytest.raises(ShutDown) as ei:
        ch.put_nowait(1)
    assert not isinstance(ei.value, queue.Full)


def test_shutdown_full_channel_put_raises_shutdown():
    ch = Channel(1)
    ch.put(1)
    ch.shutdown()
    with pytest.raises(ShutDown):
        ch.put(2, timeout=0.01)
    with pytest.raises(ShutDown):
        ch.put(2)
    assert ch.get() == 1


def test_shutdown_immediate_discards():
    ch = Channel()
    for i in range(10):
        ch.put(SharedBuffer(b"%d" % i))
    ch.put([1, 2, 3])
    ch.shutdown(immediate=True)
    assert ch.is_shutdown
    assert ch.qsize() == 0
    assert ch.empty()
    with pytest.raises(ShutDown):
        ch.get_nowait()
    with pytest.raises(ShutDown):
        ch.get()
    with pytest.raises(ShutDown):
        ch.put(1)


def test_shutdown_idempotent_then_immediate():
    ch = Channel()
    ch.put(1)
    ch.put(2)
    ch.shutdown()
    ch.shutdown()
    assert ch.qsize() == 2
    ch.shutdown(immediate=True)
    assert ch.qsize() == 0
    with pytest.raises(ShutDown):
        ch.get_nowait()
    ch.shutdown(True)
    ch.shutdown(immediate=False)
    assert ch.is_shutdown


def test_shutdown_wrong_arguments():
    ch = Channel()
    with pytest.raises(TypeError):
        ch.shutdown(True, 2)
    with pytest.raises(TypeError):
        ch.shutdown(nonsense=True)


def test_channel_holding_itself_released_by_immediate_shutdown():
    ch = Channel()
    ch.put(ch)
    got = ch.get()
    assert got == ch
    ch.put(ch)
    ch.put([ch, ch])
    ch.shutdown(immediate=True)
    del got


def test_destroyed_channel_releases_queued_items():
    ch = Channel()
    for i in range(5):
        ch.put(SharedBuffer(bytes(100 * i)))
    ch.put((SharedBuffer(b"x"), [SharedBuffer(b"y")]))
    del ch
    # the leak check verifies that everything queued was released


# --------------------------------------------------------------------------
# Iteration
# --------------------------------------------------------------------------

def test_iteration_until_shutdown():
    ch = Channel()
    for i in range(5):
        ch.put(i)
    ch.shutdown()
    assert list(ch) == [0, 1, 2, 3, 4]
    assert list(ch) == []


def test_iteration_with_producer_thread():
    ch = Channel(4)

    def produce():
        for i in range(500):
            ch.put(i)
        ch.shutdown()

    t = ThreadRunner(produce)
    t.start()
    assert list(ch) == list(range(500))
    t.join()
    assert t.error is None


def test_iterator_protocol():
    ch = Channel()
    ch.put("a")
    it = iter(ch)
    assert next(it) == "a"
    ch.shutdown()
    with pytest.raises(StopIteration):
        next(it)


# --------------------------------------------------------------------------
# lookup, equality, names
# --------------------------------------------------------------------------

def test_lookup_by_id_and_name():
    name = uname()
    ch = Channel(5, name=name)
    by_id = libchan.lookup(ch.id)
    by_name = libchan.lookup(name)
    assert by_id == ch and by_name == ch
    assert hash(by_id) == hash(ch) == hash(by_name)
    assert by_id.id == ch.id and by_name.name == name
    assert by_id.maxsize == 5
    ch.put("via original")
    assert by_name.get_nowait() == "via original"
    by_id.put("via lookup")
    assert ch.get_nowait() == "via lookup"


def test_lookup_missing():
    with pytest.raises(KeyError):
        libchan.lookup(uname("never-created"))
    with pytest.raises(KeyError):
        libchan.lookup(2**63 - 1)


@pytest.mark.parametrize("bad", [1.5, None, b"name", ["x"]])
def test_lookup_wrong_type(bad):
    with pytest.raises(TypeError):
        libchan.lookup(bad)


def test_lookup_after_channel_gone():
    name = uname()
    ch = Channel(name=name)
    cid = ch.id
    del ch
    gc.collect()
    with pytest.raises(KeyError):
        libchan.lookup(cid)
    with pytest.raises(KeyError):
        libchan.lookup(name)


def test_lookup_result_keeps_channel_alive():
    name = uname()
    ch = Channel(name=name)
    cid = ch.id
    ch.put(1)
    other = libchan.lookup(cid)
    del ch
    gc.collect()
    assert libchan.lookup(name) == other
    assert other.get_nowait() == 1
    del other
    gc.collect()
    with pytest.raises(KeyError):
        libchan.lookup(cid)


def test_queued_channel_stays_alive():
    carrier = Channel()
    name = uname()
    inner = Channel(name=name)
    inner.put("payload")
    cid = inner.id
    carrier.put(inner)
    del inner
    gc.collect()
    assert libchan.lookup(cid).name == name
    got = carrier.get_nowait()
    assert got.id == cid
    assert got.get_nowait() == "payload"


def test_duplicate_name():
    name = uname()
    ch = Channel(name=name)
    with pytest.raises(ValueError):
        Channel(name=name)
    assert libchan.lookup(name) == ch
    del ch
    gc.collect()
    again = Channel(name=name)
    assert libchan.lookup(name) == again


def test_equality_and_hash():
    a, b = Channel(), Channel()
    assert a == a and a != b
    assert not (a == b)
    assert a != 5 and a != a.id and a != None  # noqa: E711
    assert {a: 1, b: 2}[libchan.lookup(a.id)] == 1
    assert len({a, b, libchan.lookup(a.id), libchan.lookup(b.id)}) == 2


# Pickling and copying a Channel: test_stdlib_compat.py.


def test_channel_through_channel():
    carrier = Channel(pickle=False)
    inner = Channel(3, name=uname())
    carrier.put(inner)
    carrier.put([inner, (inner,)])
    got = carrier.get()
    assert type(got) is Channel and got == inner
    assert got.maxsize == 3 and got.name == inner.name
    lst = carrier.get()
    assert lst[0] == inner and lst[1][0] == inner


# --------------------------------------------------------------------------
# pickle= and what cannot travel
# --------------------------------------------------------------------------

def test_pickle_false_refuses_other_objects():
    ch = Channel(pickle=False)
    with pytest.raises(NotShareableError):
        ch.put(Decimal("1.5"))
    with pytest.raises(NotShareableError):
        ch.put_nowait([1, Decimal("1.5")])
    assert ch.qsize() == 0
    ch.put(1)
    assert ch.get() == 1


def test_pickle_true_carries_other_objects():
    ch = Channel()
    ch.put(Decimal("1.5"))
    got = ch.get()
    assert type(got) is Decimal and got == Decimal("1.5")


def test_unpicklable_refused():
    ch = Channel()
    for obj in (lambda: 1, threading.Lock(), (i for i in range(3)),
                [1, lambda: 2]):
        with pytest.raises(NotShareableError):
            ch.put(obj)
        with pytest.raises(NotShareableError):
            ch.put_nowait(obj)
    assert ch.qsize() == 0


def test_not_shareable_on_full_channel_is_not_full():
    # a refused object on a full channel: either error is acceptable as
    # long as nothing is queued
    ch = Channel(1)
    ch.put(0)
    with pytest.raises((NotShareableError, Full)):
        ch.put_nowait(lambda: 1)
    assert ch.qsize() == 1


# --------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------

def _mpmc(maxsize, producers, consumers, per_producer):
    ch = Channel(maxsize)

    def produce(pid):
        for seq in range(per_producer):
            ch.put((pid, seq), timeout=30)

    def consume():
        got = []
        while True:
            try:
                got.append(ch.get(timeout=30))
            except ShutDown:
                return got

    cons = [ThreadRunner(consume) for _ in range(consumers)]
    prods = [ThreadRunner(produce, p) for p in range(producers)]
    for t in cons + prods:
        t.start()
    for t in prods:
        t.join(60)
        assert t.error is None, t.error
    ch.shutdown()
    results = []
    for t in cons:
        t.join(60)
        assert t.error is None, t.error
        results.append(t.result)
    # per-producer order, as each consumer saw it
    for got in results:
        last = {}
        for pid, seq in got:
            assert seq > last.get(pid, -1), (pid, seq, last.get(pid))
            last[pid] = seq
    # every item exactly once
    allgot = sorted(x for got in results for x in got)
    assert allgot == sorted((p, s) for p in range(producers)
                            for s in range(per_producer))


@pytest.mark.parametrize("maxsize", [0, 1, 8])
def test_mpmc_threads(maxsize):
    _mpmc(maxsize, producers=4, consumers=3, per_producer=1500)


def test_spsc_capacity_one_ping_pong():
    _mpmc(1, producers=1, consumers=1, per_producer=5000)


def test_blocked_getter_woken_by_put():
    ch = Channel()
    before = libchan.debug_counters()["futex_waits"]
    t = ThreadRunner(ch.get, timeout=20)
    t.start()
    wait_parked(before)
    time.sleep(0.02)
    t0 = time.monotonic()
    ch.put("wake")
    t.join(20)
    assert t.error is None and t.result == "wake"
    assert time.monotonic() - t0 < 5


def test_blocked_putter_woken_by_get():
    ch = Channel(1)
    ch.put(1)
    t = ThreadRunner(ch.put, 2, timeout=20)
    t.start()
    time.sleep(0.05)
    assert ch.get(timeout=5) == 1
    t.join(20)
    assert t.error is None
    assert ch.get(timeout=5) == 2


def test_get_releases_gil():
    # If a blocked get() held the GIL, the main thread could not put the
    # item and the thread would time out with Empty instead.
    ch = Channel()
    t = ThreadRunner(ch.get, timeout=5)
    t.start()
    time.sleep(0.05)
    x = sum(range(10000))     # Python work while the other thread waits
    ch.put(x)
    t.join(20)
    assert t.error is None, t.error
    assert t.result == x


def test_put_releases_gil():
    ch = Channel(1)
    ch.put(0)
    t = ThreadRunner(ch.put, 1, timeout=5)
    t.start()
    time.sleep(0.05)
    sum(range(10000))
    assert ch.get(timeout=5) == 0
    t.join(20)
    assert t.error is None, t.error
    assert ch.get(timeout=5) == 1


def test_shutdown_wakes_blocked_getters():
    ch = Channel()
    before = libchan.debug_counters()["futex_waits"]
    getters = [ThreadRunner(ch.get, timeout=20) for _ in range(3)]
    iterator = ThreadRunner(lambda: list(ch))
    for t in getters + [iterator]:
        t.start()
    wait_parked(before)
    time.sleep(0.05)
    ch.shutdown()
    for t in getters:
        t.join(20)
        assert isinstance(t.error, ShutDown), t.error
    iterator.join(20)
    assert iterator.error is None and iterator.result == []


def test_shutdown_wakes_blocked_putters():
    ch = Channel(1)
    ch.put(0)
    putters = [ThreadRunner(ch.put, i, timeout=20) for i in range(3)]
    for t in putters:
        t.start()
    time.sleep(0.1)
    ch.shutdown()
    for t in putters:
        t.join(20)
        assert isinstance(t.error, ShutDown), t.error
    assert ch.get_nowait() == 0
    with pytest.raises(ShutDown):
        ch.get_nowait()


def test_immediate_shutdown_wakes_putters_and_getters():
    full = Channel(1)
    full.put(SharedBuffer(b"queued"))
    empty = Channel()
    ts = [ThreadRunner(full.put, SharedBuffer(b"waiting"), timeout=20),
          ThreadRunner(empty.get, timeout=20)]
    for t in ts:
        t.start()
    time.sleep(0.1)
    full.shutdown(immediate=True)
    empty.shutdown(immediate=True)
    for t in ts:
        t.join(20)
        assert isinstance(t.error, ShutDown), t.error
    assert full.qsize() == 0


def test_concurrent_lookup_and_release():
    # lookups racing with the last reference going away: a live channel or
    # KeyError, never a crash
    stop = threading.Event()
    ids = []

    def churn():
        while not stop.is_set():
            ch = Channel()
            ids.append(ch.id)
            del ch

    def look():
        found = 0
        while not stop.is_set():
            for cid in ids[-20:]:
                try:
                    c = libchan.lookup(cid)
                except KeyError:
                    continue
                assert c.id == cid
                found += 1
        return found

    ts = [ThreadRunner(churn), ThreadRunner(look), ThreadRunner(look)]
    for t in ts:
        t.start()
    time.sleep(0.3)
    stop.set()
    for t in ts:
        t.join(20)
        assert t.error is None, t.error


def test_move_to_moves_the_item_as_it_is():
    """Channel._move_to (the executor's backlog): the oldest item goes to
    the other channel unchanged, False when there is none, a clear error
    for a wrong argument or a destination that refuses it."""
    a, b = libchan.Channel(), libchan.Channel(2)
    sb = libchan.SharedBuffer(b"moved")
    a.put((1, "x", sb))
    a.put(2)
    assert a._move_to(b) is True
    got = b.get_nowait()
    assert got[:2] == (1, "x") and got[2].address == sb.address
    assert a._move_to(b) is True and b.get_nowait() == 2
    assert a._move_to(b) is False                    # empty
    with pytest.raises(TypeError, match="_move_to.*libchan.Channel"):
        a._move_to([])
    b.put(0)
    b.put(0)
    a.put(3)
    with pytest.raises(libchan.Full):                # dst full: dropped
        a._move_to(b)
    assert a.qsize() == 0
    b.shutdown()
    a.put(4)
    with pytest.raises(libchan.ShutDown):
        a._move_to(b)
    assert a.qsize() == 0
