"""libchan across isolated subinterpreters (each with its own GIL)."""

import collections
import gc
import os
import sys
import textwrap
import time

import pytest

import libchan
from libchan import Channel, SharedBuffer, SharedTuple

from conftest import (CHANNELS_SHIM, PY313, SubinterpreterError,
                      ThreadRunner, create_shareable_queue, interp_modules,
                      require_subinterpreters, wait_parked, xxsubinterpreters)

pytestmark = pytest.mark.usefixtures("make_interp")


def test_import_in_isolated_subinterpreter(interp):
    interp.exec("""
        import sys, libchan
        assert 'libchan' in sys.modules
        ch = libchan.Channel(2)
        ch.put([1, 'a', b'b', 2**80])
        assert ch.get(timeout=5) == [1, 'a', b'b', 2**80]
        sb = libchan.SharedBuffer(b'xyz')
        assert bytes(sb[1:]) == b'yz'
        st = libchan.SharedTuple((1, (2, 3)))
        assert st == (1, (2, 3)) and hash(st) == hash((1, (2, 3)))
        assert libchan.loads(libchan.dumps({'k': 1.5})) == {'k': 1.5}
        assert issubclass(libchan.NotShareableError, ValueError)
        try:
            ch.put(lambda: 1)
        except libchan.NotShareableError:
            pass
        else:
            raise AssertionError('lambda was accepted')
        ch.shutdown()
        try:
            ch.get_nowait()
        except libchan.ShutDown:
            pass
        del ch, sb, st
    """)


def test_subinterpreter_errors_are_reported(interp):
    with pytest.raises(SubinterpreterError, match="boom"):
        interp.exec("raise ValueError('boom')")


def test_import_again_after_destroy(make_interp):
    for _ in range(3):
        i = make_interp()
        i.exec("import libchan; libchan.Channel().put(1)")
        i.close()
    gc.collect()


def test_many_interpreters_import(make_interp):
    interps = [make_interp() for _ in range(4)]
    ch = Channel()
    runners = [i.start(f"""
        import libchan
        libchan.lookup({ch.id}).put({k})
    """) for k, i in enumerate(interps)]
    for r in runners:
        r.join()
    assert sorted(ch.get(timeout=5) for _ in interps) == [0, 1, 2, 3]


# --------------------------------------------------------------------------
# Data both ways
# --------------------------------------------------------------------------

ECHO = """
    import libchan
    inp = libchan.lookup({inp})
    out = libchan.lookup({out})
    for x in inp:
        out.put((x, type(x).__name__))
    out.put('done')
"""


def test_exchange_both_ways(interp):
    inp, out = Channel(4), Channel()
    runner = interp.start(ECHO.format(inp=inp.id, out=out.id))
    sb = SharedBuffer(bytes(range(256)) * 64)
    st = SharedTuple((1, "two", (3, (4,)), b"five" * 2000))
    other = Channel(name="test_interp.exchange")
    values = [None, True, 0, -1, 2**63, -(2**300), 1.5, -0.0, float("inf"),
              complex(1, -2), "", "é€😀", b"", b"x" * 100_000,
              bytearray(b"ba"), (), (1, (2, [3])), [1, [2]],
              {"k": {"n": (1,)}, 5: None}, {1, 2}, frozenset({"a"}),
              collections.OrderedDict([("b", 1), ("a", 2)]),
              "lone \udc80 surrogate", sb, sb[100:200], st, other,
              [sb, {"st": st}]]
    for v in values:
        inp.put(v, timeout=10)
    inp.shutdown()
    got = []
    while True:
        item = out.get(timeout=20)
        if item == "done":
            break
        got.append(item)
    runner.join()
    assert len(got) == len(values)
    for v, (x, tname) in zip(values, got):
        assert tname == type(v).__name__
        assert type(x) is type(v)
        assert x == v or (v != v and x != x)
    i_sb = next(k for k, v in enumerate(values) if v is sb)
    assert got[i_sb][0].address == sb.address
    assert got[i_sb + 1][0].address == sb.address + 100
    assert got[-1][0][0].address == sb.address
    assert str(got[7][0]) == "-0.0"
    assert list(got[21][0]) == ["b", "a"]


def test_values_made_in_subinterpreter(interp):
    out = Channel()
    interp.exec(f"""
        import libchan, collections
        out = libchan.lookup({out.id})
        sb = libchan.SharedBuffer(b'made in sub' * 1000)
        out.put(sb)
        out.put(sb.address)
        out.put(libchan.SharedTuple((1, ('x', b'y'), [2.5])))
        out.put({{'k': [1, 2**100, float('nan'), -0.0, 'é']}})
        out.put(collections.OrderedDict(a=1))
        out.put(bytearray(b'ba'))
        out.put(libchan.Channel(name='test_interp.made_in_sub'))
        del sb
    """)
    sb = out.get_nowait()
    addr = out.get_nowait()
    assert type(sb) is SharedBuffer and sb.address == addr
    assert sb == b"made in sub" * 1000
    st = out.get_nowait()
    assert type(st) is SharedTuple and st == (1, ("x", b"y"), [2.5])
    assert type(st[1]) is SharedTuple
    d = out.get_nowait()
    assert d["k"][0:2] == [1, 2**100] and d["k"][2] != d["k"][2]
    assert str(d["k"][3]) == "-0.0" and d["k"][4] == "é"
    od = out.get_nowait()
    assert type(od) is collections.OrderedDict and od == {"a": 1}
    assert type(out.get_nowait()) is bytearray
    ch = out.get_nowait()
    assert type(ch) is Channel and ch.name == "test_interp.made_in_sub"
    assert libchan.lookup("test_interp.made_in_sub") == ch


def test_blocked_subinterpreter_woken_by_main(interp):
    inp, out = Channel(), Channel()
    before = libchan.debug_counters()["futex_waits"]
    runner = interp.start(f"""
        import libchan
        x = libchan.lookup({inp.id}).get(timeout=20)
        libchan.lookup({out.id}).put(('got', x))
    """)
    wait_parked(before)
    time.sleep(0.05)
    inp.put("wake")
    assert out.get(timeout=20) == ("got", "wake")
    runner.join()


def test_main_woken_by_subinterpreter(interp):
    ch = Channel()
    before = libchan.debug_counters()["futex_waits"]
    runner = interp.start(f"""
        import libchan, time
        time.sleep(0.1)
        libchan.lookup({ch.id}).put('from sub')
    """)
    assert ch.get(timeout=20) == "from sub"
    runner.join()
    assert libchan.debug_counters()["futex_waits"] >= before


# --------------------------------------------------------------------------
# Per-interpreter GIL
# --------------------------------------------------------------------------

# Two interpreters run Python at the same instant: proved without timing.
# HOLDER raises its GIL's switch interval to 100 s, so it never hands its GIL
# to another thread while it spins in pure Python (get_nowait does not
# release it). It wakes WAKER (parked in get) and spins until WAKER answers.
# WAKER needs a GIL to return from get() and put the answer: with a GIL of
# its own it answers at once; were the GIL shared, it could not run until
# HOLDER gave up, and HOLDER reports that. The 30 s bound only ends a
# failing run; a passing one does not depend on how long anything takes.
HOLDER = """
    import libchan, sys, time
    go, answer, out = (libchan.lookup(i) for i in ({go}, {answer}, {out}))
    sys.setswitchinterval(100.0)
    go.put('go')
    deadline = time.monotonic() + 30
    got = None
    while got is None and time.monotonic() < deadline:
        try:
            got = answer.get_nowait()
        except libchan.Empty:
            pass
    out.put(got)
"""

WAKER = """
    import libchan
    go, answer = libchan.lookup({go}), libchan.lookup({answer})
    go.get(timeout=60)
    answer.put('answered while the other interpreter held its GIL')
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs")
def test_per_interpreter_gil_parallelism(make_interp):
    go, answer, out = Channel(), Channel(), Channel()
    ids = dict(go=go.id, answer=answer.id, out=out.id)
    waker, holder = make_interp(), make_interp()
    w = waker.start(WAKER.format(**ids))
    h = holder.start(HOLDER.format(**ids))
    got = out.get(timeout=60)
    h.join(60)
    w.join(60)
    assert got == 'answered while the other interpreter held its GIL', (
        "a subinterpreter could not run while another held its GIL: "
        "they share one")


# --------------------------------------------------------------------------
# Interpreter destruction
# --------------------------------------------------------------------------

MAKE_OBJECTS = """
    import libchan, collections
    out = libchan.lookup({out})
    sb = libchan.SharedBuffer(b'payload' * 10000)
    st = libchan.SharedTuple((1, 'two', (3, (4, 'five')), b'six' * 2000,
                              2**100, [7], collections.OrderedDict(z=1)))
    ch = libchan.Channel(4, name={name!r})
    ch.put('inside')
    ch.put(libchan.SharedBuffer(b'inner'))
    out.put(sb)
    out.put(st)
    out.put(ch)
    out.put((sb[7:14], st[2], [ch]))
    out.put(sb.address)
    keep = (sb, st, ch)   # still referenced here when the interpreter dies
"""

EXPECTED_ST = (1, "two", (3, (4, "five")), b"six" * 2000, 2**100, [7],
               collections.OrderedDict(z=1))


def _churn():
    junk = [bytes(1000) for _ in range(20_000)]
    junk += [str(i) * 10 for i in range(100_000)]
    junk += [[i, (i,), {i: i}] for i in range(50_000)]
    del junk
    gc.collect()


def _use_objects(sb, st, ch, extra, addr):
    assert type(sb) is SharedBuffer and sb.address == addr
    assert bytes(sb) == b"payload" * 10000
    mv = memoryview(sb)
    assert mv.readonly and mv[:7].tobytes() == b"payload"
    mv.release()
    assert sb[7:14] == b"payload" and sb[-1] == ord("d")
    assert type(st) is SharedTuple and st == EXPECTED_ST
    assert type(st[2]) is SharedTuple and st[2][1] == (4, "five")
    assert hash(st[2]) == hash((3, (4, "five")))
    assert type(ch) is Channel and libchan.lookup(ch.id) == ch
    assert ch.get_nowait() == "inside"
    inner = ch.get_nowait()
    assert type(inner) is SharedBuffer and inner == b"inner"
    ch.put("after")
    assert ch.get_nowait() == "after"
    slice_, st2, chl = extra
    assert slice_.address == addr + 7 and slice_ == b"payload"
    assert st2 == (3, (4, "five"))
    assert chl[0] == ch


def test_objects_outlive_their_interpreter_queued(make_interp):
    """Objects still queued when the interpreter that made them dies."""
    i = make_interp()
    out = Channel()
    name = "test_interp.outlive.queued"
    i.exec(MAKE_OBJECTS.format(out=out.id, name=name))
    i.close()
    _churn()
    sb, st, ch, extra, addr = (out.get_nowait() for _ in range(5))
    _churn()
    _use_objects(sb, st, ch, extra, addr)
    del sb, st, ch, extra
    gc.collect()
    with pytest.raises(KeyError):
        libchan.lookup(name)


def test_objects_outlive_their_interpreter_received(make_interp):
    """Objects received (wrapped in main) before the interpreter dies."""
    i = make_interp()
    out = Channel()
    name = "test_interp.outlive.received"
    i.exec(MAKE_OBJECTS.format(out=out.id, name=name))
    sb, st, ch, extra, addr = (out.get_nowait() for _ in range(5))
    i.close()
    _churn()
    _use_objects(sb, st, ch, extra, addr)
    del sb, st, ch, extra
    gc.collect()
    with pytest.raises(KeyError):
        libchan.lookup(name)


def test_queued_items_of_dead_interpreter_dropped(make_interp):
    """Nobody ever receives them: dropping the channel frees them all."""
    i = make_interp()
    out = Channel()
    i.exec(MAKE_OBJECTS.format(out=out.id, name="test_interp.dropped"))
    i.close()
    _churn()
    del out


def test_main_objects_held_by_dead_interpreter(make_interp):
    i = make_interp()
    sb = SharedBuffer(b"main" * 1000)
    st = SharedTuple((1, (2,)))
    ch = Channel()
    carrier = Channel()
    for x in (sb, st, ch):
        carrier.put(x)
    i.exec(f"""
        import libchan
        c = libchan.lookup({carrier.id})
        held = [c.get_nowait() for _ in range(3)]
        assert bytes(held[0]) == b'main' * 1000
    """)
    i.close()
    _churn()
    assert bytes(sb) == b"main" * 1000 and st == (1, (2,))
    ch.put(1)
    assert ch.get_nowait() == 1


# --------------------------------------------------------------------------
# Shutdown across interpreters
# --------------------------------------------------------------------------

def test_shutdown_from_one_interpreter_wakes_another(make_interp):
    a, b = make_interp(), make_interp()
    ch, res = Channel(), Channel()
    before = libchan.debug_counters()["futex_waits"]
    runner = a.start(f"""
        import libchan
        res = libchan.lookup({res.id})
        try:
            libchan.lookup({ch.id}).get(timeout=30)
        except libchan.ShutDown:
            res.put('woken by shutdown')
        else:
            res.put('got an item?')
    """)
    wait_parked(before)
    time.sleep(0.05)
    t0 = time.monotonic()
    b.exec(f"import libchan; libchan.lookup({ch.id}).shutdown()")
    assert res.get(timeout=20) == "woken by shutdown"
    assert time.monotonic() - t0 < 10
    runner.join()
    assert ch.is_shutdown


def test_shutdown_in_subinterpreter_wakes_main_threads(interp):
    ch = Channel(1)
    ch.put(0)
    empty = Channel()
    before = libchan.debug_counters()["futex_waits"]
    getter = ThreadRunner(empty.get, timeout=30)
    putter = ThreadRunner(ch.put, 1, timeout=30)
    getter.start()
    putter.start()
    wait_parked(before)
    time.sleep(0.05)
    interp.exec(f"""
        import libchan
        libchan.lookup({empty.id}).shutdown()
        libchan.lookup({ch.id}).shutdown(immediate=True)
    """)
    getter.join(20)
    putter.join(20)
    assert isinstance(getter.error, libchan.ShutDown), getter.error
    assert isinstance(putter.error, libchan.ShutDown), putter.error
    assert ch.qsize() == 0


# --------------------------------------------------------------------------
# Stress: producers and consumers in subinterpreters
# --------------------------------------------------------------------------

PRODUCER = """
    import libchan
    ch = libchan.lookup({work})
    for seq in range({n}):
        ch.put(({pid}, seq), timeout=60)
"""

CONSUMER = """
    import libchan
    ch = libchan.lookup({work})
    res = libchan.lookup({res})
    got = []
    while True:
        try:
            got.append(ch.get(timeout=60))
        except libchan.ShutDown:
            break
    res.put(got)
"""


@pytest.mark.parametrize("maxsize", [0, 16])
def test_stress_subinterpreters(make_interp, maxsize):
    producers, consumers, n = 3, 2, 3000
    work, res = Channel(maxsize), Channel()
    cons = [make_interp().start(CONSUMER.format(work=work.id, res=res.id))
            for _ in range(consumers)]
    prods = [make_interp().start(PRODUCER.format(work=work.id, n=n, pid=p))
             for p in range(producers)]
    for r in prods:
        r.join(120)
    work.shutdown()
    for r in cons:
        r.join(120)
    results = [res.get(timeout=10) for _ in range(consumers)]
    for got in results:
        last = {}
        for pid, seq in got:
            assert seq > last.get(pid, -1)
            last[pid] = seq
    allgot = sorted(x for got in results for x in got)
    assert allgot == [(p, s) for p in range(producers) for s in range(n)]


# --------------------------------------------------------------------------
# The stdlib's cross-interpreter machinery
# --------------------------------------------------------------------------

def test_is_shareable():
    require_subinterpreters()
    sb, st, ch = SharedBuffer(b"x"), SharedTuple((1,)), Channel()
    if PY313:
        mod, _ = interp_modules()
        check = mod.is_shareable
    else:
        check = xxsubinterpreters().is_shareable
    assert check(sb) and check(st) and check(ch)
    assert check(sb[0:1])


STDLIB_CHECK = """
    import libchan
    assert type(buf) is libchan.SharedBuffer, type(buf)
    assert type(tup) is libchan.SharedTuple, type(tup)
    assert type(ch) is libchan.Channel, type(ch)
    ch.put((buf.address, bytes(buf), tuple(tup), type(tup[1]).__name__,
            ch.id, 'checked'))
"""


@pytest.mark.parametrize("imported_first", [False, True])
def test_stdlib_shared_namespace(interp, imported_first):
    """3.12: run_string(..., shared={...}); 3.13: prepare_main(...)."""
    if imported_first:
        interp.exec("import libchan")
    sb = SharedBuffer(b"stdlib" * 1000)
    st = SharedTuple((1, ("two", b"3"), [4]))
    ch = Channel()
    interp.exec(STDLIB_CHECK, buf=sb, tup=st, ch=ch)
    addr, data, tup, inner_type, cid, word = ch.get(timeout=10)
    assert addr == sb.address
    assert data == b"stdlib" * 1000
    assert tup == (1, ("two", b"3"), [4]) and inner_type == "SharedTuple"
    assert cid == ch.id and word == "checked"


def test_stdlib_shared_slice(interp):
    sb = SharedBuffer(bytes(range(200)))
    s = sb[50:60]
    ch = Channel()
    interp.exec("ch.put((buf.address, bytes(buf)))", buf=s, ch=ch)
    assert ch.get(timeout=10) == (sb.address + 50, bytes(range(50, 60)))


@pytest.mark.skipif(not PY313, reason="3.12 has no interpreters queue")
def test_stdlib_queue_syncobj_in_main():
    """3.13: queues.create(syncobj=True); 3.14+: create_queue()."""
    q = create_shareable_queue()
    sb = SharedBuffer(b"queue" * 100)
    st = SharedTuple((1, (2, "x")))
    ch = Channel()
    for x in (sb, st, ch):
        q.put(x)
    got_sb, got_st, got_ch = q.get(timeout=5), q.get(timeout=5), q.get(
        timeout=5)
    assert type(got_sb) is SharedBuffer and got_sb.address == sb.address
    assert got_sb == sb
    assert type(got_st) is SharedTuple and got_st == st
    assert type(got_ch) is Channel and got_ch == ch
    del q


@pytest.mark.skipif(not PY313, reason="3.12 has no interpreters queue")
def test_stdlib_queue_syncobj_across_interpreters(interp):
    """3.13: queues.create(syncobj=True); 3.14+: create_queue()."""
    _, queues = interp_modules()
    modname = queues.__name__
    q = create_shareable_queue()
    back = create_shareable_queue()
    sb = SharedBuffer(b"across" * 1000)
    st = SharedTuple((1, (2, "x"), b"y"))
    ch = Channel()
    for x in (sb, st, ch):
        q.put(x)
    interp.exec(f"""
        import {modname} as queues
        q = queues.Queue({q.id})
        back = queues.Queue({back.id})
        buf, tup, ch = q.get(timeout=5), q.get(timeout=5), q.get(timeout=5)
        import libchan
        assert type(buf) is libchan.SharedBuffer
        ch.put((buf.address, tuple(tup), type(tup[1]).__name__))
        back.put(buf)
        back.put(tup)
        back.put(ch)
        del buf, tup, ch
    """)
    addr, tup, inner_type = ch.get(timeout=10)
    assert addr == sb.address
    assert tup == (1, (2, "x"), b"y") and inner_type == "SharedTuple"
    b_sb, b_st, b_ch = (back.get(timeout=5) for _ in range(3))
    assert type(b_sb) is SharedBuffer and b_sb.address == sb.address
    assert type(b_st) is SharedTuple and b_st == st
    assert b_ch == ch
    del q, back


def test_stdlib_interpchannels(interp):
    ns = {}
    exec(CHANNELS_SHIM, ns)
    chans, ch_send, ch_recv = ns["chans"], ns["ch_send"], ns["ch_recv"]
    cid = ns["ch_create"]()
    try:
        sb = SharedBuffer(b"xxchan" * 100)
        st = SharedTuple((1, (2,)))
        ch = Channel()
        for x in (sb, st, ch):
            ch_send(cid, x)
        interp.exec(CHANNELS_SHIM + textwrap.dedent(f"""
            buf, tup, ch = (ch_recv({int(cid)}) for _ in range(3))
            ch.put((buf.address, tuple(tup), type(tup).__name__))
            ch_send({int(cid)}, buf)
            del buf, tup, ch
        """))
        assert ch.get(timeout=10) == (sb.address, (1, (2,)), "SharedTuple")
        back = ch_recv(cid)
        assert type(back) is SharedBuffer and back.address == sb.address
        del back
    finally:
        chans.destroy(cid)
