"""libchan objects through Python 3.14's public subinterpreter API:
``concurrent.interpreters`` (``prepare_main``, ``call``, ``call_in_thread``,
``create_queue``) and ``concurrent.futures.InterpreterPoolExecutor``.

Every test checks two things:
- the same memory on both sides: a SharedBuffer (alone, inside a
  SharedTuple, or as a slice) exports memory at the same address in the
  receiving interpreter as in the sender, read with the buffer protocol
  through ctypes (xi_helpers.buffer_address) and with SharedBuffer.address;
  a Channel is the same channel (same id, and items put on one side arrive
  on the other); receiving creates no libchan object (live_objects does not
  grow), so nothing was copied;
- nothing leaks: libchan's live-object count returns to its value at the
  start of the test once the interpreters (or the executor) are closed and
  the test's own references dropped.

Functions run with call() are of two kinds, as 3.14 sends them: those of
xi_helpers use globals, so call() pickles them as a reference and the
subinterpreter imports xi_helpers (this directory is put on its sys.path);
the few defined here are "stateless" (no globals, no closure: only
builtins and imports inside), and call() sends their code without
importing this module there.
Arguments go positionally: call() sends its positional arguments natively
when they are shareable, but pickles keyword arguments (a dict), so a
SharedBuffer passed as a keyword would arrive as a copy and a Channel would
be refused.
"""

import gc
import os
import site
import sys

import pytest

import libchan
from libchan import Channel, SharedBuffer, SharedTuple

from conftest import wait_for_live

if sys.version_info < (3, 14):
    pytest.skip("concurrent.interpreters and InterpreterPoolExecutor: 3.14+",
                allow_module_level=True)

# No fallback: on 3.14+ a missing module is a broken Python, and fails the
# collection of this file.
from concurrent import interpreters  # noqa: E402
from concurrent.futures import InterpreterPoolExecutor  # noqa: E402
from concurrent.interpreters import _queues  # noqa: E402

import xi_helpers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MAIN_ID = 0


def live_objects():
    return libchan.debug_counters()["live_objects"]


def assert_back_to(start):
    """live_objects returns to start (other interpreters' releases can lag
    a little: wait_for_live collects and retries for up to 3 s)."""
    gc.collect()
    now = wait_for_live(start)
    assert now == start, f"live_objects {now}, {start} at the start"


@pytest.fixture
def new_interpreter():
    """interpreters.create(), with this directory on its sys.path (for
    xi_helpers); all closed when the test ends, if the test did not."""
    made = []

    def make():
        interp = interpreters.create()
        made.append(interp)
        interp.call(site.addsitedir, HERE)
        return interp

    yield make
    for interp in made:
        try:
            interp.close()
        except interpreters.InterpreterNotFoundError:
            pass            # the test closed it already


def main_objects():
    """A 64 KiB SharedBuffer, a SharedTuple whose element 2 is a 1 KiB slice
    of it (by reference) and a Channel."""
    sb = SharedBuffer(bytes(range(256)) * 256)
    st = SharedTuple((1, ("two", b"3"), sb[1024:2048], "four"))
    return sb, st, Channel()


def put_all(q, *objs):
    """(A function: a loop variable in the test would keep the last one.)"""
    for x in objs:
        q.put(x)


def check_described(seen, sb, st, ch, sender_live):
    (iid, tb, tt, tc, addr, buf_addr, buf_addr16, elem_addr, elem_buf_addr,
     nested_type, cid, live) = seen
    assert iid != MAIN_ID
    assert (tb, tt, tc) == ("SharedBuffer", "SharedTuple", "Channel")
    # The same memory, by libchan's account and by the buffer protocol's.
    assert addr == buf_addr == sb.address == xi_helpers.buffer_address(sb)
    assert buf_addr16 == sb.address + 16
    assert elem_addr == elem_buf_addr == st[2].address == sb.address + 1024
    assert nested_type == "SharedTuple"
    assert cid == ch.id
    # Receiving made no libchan object: nothing was copied.
    assert live == sender_live


# --------------------------------------------------------------------------
# Interpreter.prepare_main
# --------------------------------------------------------------------------

def test_prepare_main(new_interpreter):
    start = live_objects()
    sb, st, ch = main_objects()
    made = live_objects()
    interp = new_interpreter()
    interp.prepare_main(buf=sb, tup=st, ch=ch)
    interp.exec("""if True:
        import xi_helpers
        seen = xi_helpers.describe(buf, tup, ch)
        ch.put(seen)
        assert bytes(buf[:4]) == bytes(range(4))
        assert tup == (1, ('two', b'3'), buf[1024:2048], 'four')
        assert hash(tup[1]) == hash(('two', b'3'))
    """)
    assert ch.get(timeout=10) == interp.id
    seen = ch.get(timeout=10)
    assert seen[0] == interp.id
    check_described(seen, sb, st, ch, made)
    # The subinterpreter's __main__ holds its three objects, which are the
    # main interpreter's: no other object is alive.
    assert live_objects() == made
    interp.close()
    assert live_objects() == made
    del sb, st, ch
    assert_back_to(start)


def test_prepare_main_keeps_objects_alive(new_interpreter):
    """The subinterpreter keeps what it was given once the main interpreter
    has dropped its own references; closing it frees them."""
    start = live_objects()
    sb = SharedBuffer(b"kept" * 1000)
    addr = sb.address
    interp = new_interpreter()
    interp.prepare_main(buf=sb, ch=Channel())
    del sb
    gc.collect()
    assert live_objects() == start + 2      # __main__.buf and __main__.ch
    ch = interp.call(xi_helpers.main_attr, "ch")     # returned by call()
    interp.exec("""if True:
        import xi_helpers
        ch.put((xi_helpers.buffer_address(buf), bytes(buf[:8])))
    """)
    assert ch.get(timeout=10) == (addr, b"keptkept")
    assert live_objects() == start + 2
    interp.close()
    assert wait_for_live(start + 1) == start + 1    # our ch only
    del ch
    assert_back_to(start)


# --------------------------------------------------------------------------
# Interpreter.call: arguments and return values
# --------------------------------------------------------------------------

def test_call_arguments(new_interpreter):
    start = live_objects()
    sb, st, ch = main_objects()
    made = live_objects()
    interp = new_interpreter()
    seen = interp.call(xi_helpers.describe, sb, st, ch)
    assert seen[0] == interp.id
    check_described(seen, sb, st, ch, made)
    assert ch.get(timeout=10) == interp.id
    interp.close()
    del sb, st, ch
    assert_back_to(start)


def test_call_returns_the_arguments(new_interpreter):
    """Sent and sent back: the same buffer, tuple and channel."""
    start = live_objects()
    sb, st, ch = main_objects()
    made = live_objects()
    interp = new_interpreter()
    got = interp.call(xi_helpers.echo, sb, st, ch, sb[10:20])
    assert type(got) is tuple and len(got) == 4
    g_sb, g_st, g_ch, g_slice = got
    assert type(g_sb) is SharedBuffer and g_sb is not sb
    assert g_sb.address == sb.address == xi_helpers.buffer_address(g_sb)
    assert type(g_st) is SharedTuple and g_st == st
    assert g_st[2].address == sb.address + 1024
    assert type(g_ch) is Channel and g_ch == ch and g_ch.id == ch.id
    g_ch.put("one channel")
    assert ch.get_nowait() == "one channel"
    assert type(g_slice) is SharedBuffer
    assert g_slice.address == sb.address + 10
    assert g_slice == bytes(range(10, 20))
    del got
    # The slice made for the call is the only new object; the round trip
    # made none.
    assert live_objects() == made + 1
    interp.close()
    del sb, st, ch, g_sb, g_st, g_ch, g_slice
    assert_back_to(start)


def test_call_returns_objects_made_in_subinterpreter(new_interpreter):
    """Made there, returned by call(), used here after that interpreter is
    closed: they hold no Python object of it."""
    start = live_objects()
    interp = new_interpreter()
    data = bytes(range(200)) * 50
    sb, st, ch, addr, iid = interp.call(xi_helpers.make_objects, data)
    assert iid == interp.id
    assert type(sb) is SharedBuffer and sb.address == addr
    assert xi_helpers.buffer_address(sb) == addr
    assert type(st) is SharedTuple
    assert st[2].address == addr + 1 and st[1] == ("made", "here")
    assert type(ch) is Channel
    interp.close()
    gc.collect()
    assert sb == data and st[0] == len(data) and st[2] == data[1:]
    inner = ch.get_nowait()             # put there by the closed interpreter
    assert type(inner) is SharedBuffer and inner.address == addr
    # Sent again, to a second interpreter: still the same memory.
    other = new_interpreter()
    total, read_at, other_id = other.call(xi_helpers.checksum, sb, 100, 300)
    assert other_id == other.id
    assert total == sum(data[100:300]) and read_at == addr + 100
    other.close()
    del sb, st, ch, inner
    assert_back_to(start)


def test_call_in_thread(new_interpreter):
    start = live_objects()
    sb, st, ch = main_objects()
    made = live_objects()
    interp = new_interpreter()
    t = interp.call_in_thread(_describe_to, sb, st, ch)
    reply = ch.get(timeout=30)
    seen = ch.get(timeout=30)
    t.join(30)
    assert not t.is_alive()
    assert reply == seen[0] == interp.id
    check_described(seen, sb, st, ch, made)
    interp.close()
    del sb, st, ch
    assert_back_to(start)


def _describe_to(buf, tup, ch):
    """Stateless: call_in_thread discards the result, so it goes on ch."""
    import xi_helpers
    ch.put(xi_helpers.describe(buf, tup, ch))


# --------------------------------------------------------------------------
# create_queue()
# --------------------------------------------------------------------------

def test_create_queue_in_main():
    start = live_objects()
    sb, st, ch = main_objects()
    made = live_objects()
    q = interpreters.create_queue()
    put_all(q, sb, st, ch)
    g_sb, g_st, g_ch = (q.get(timeout=5) for _ in range(3))
    assert type(g_sb) is SharedBuffer and g_sb is not sb
    assert g_sb.address == xi_helpers.buffer_address(g_sb) == sb.address
    assert type(g_st) is SharedTuple and g_st[2].address == sb.address + 1024
    assert type(g_ch) is Channel and g_ch == ch
    assert live_objects() == made
    del q, sb, st, ch, g_sb, g_st, g_ch
    assert_back_to(start)


def test_create_queue_across_interpreters(new_interpreter):
    start = live_objects()
    sb, st, ch = main_objects()
    made = live_objects()
    inbox = interpreters.create_queue()
    outbox = interpreters.create_queue()
    put_all(inbox, sb, st, ch)
    interp = new_interpreter()
    # The queues themselves are arguments of call() (shareable).
    sub_live = interp.call(xi_helpers.relay, inbox, outbox, 3)
    got = [outbox.get(timeout=10) for _ in range(10)]
    (b_sb, (n1, a1), b_st, (n2, a2), b_ch, (n3, cid),
     m_sb, m_st, m_ch, m_addr) = got
    assert (n1, n2, n3) == ("SharedBuffer", "SharedTuple", "Channel")
    # What the subinterpreter read, and what came back, is main's memory.
    assert a1 == sb.address and a2 == sb.address + 1024 and cid == ch.id
    assert type(b_sb) is SharedBuffer and b_sb.address == sb.address
    assert type(b_st) is SharedTuple and b_st == st
    assert type(b_ch) is Channel and b_ch == ch
    assert sub_live > made                      # the objects made there
    assert type(m_sb) is SharedBuffer and m_sb.address == m_addr
    assert xi_helpers.buffer_address(m_sb) == m_addr
    assert type(m_st) is SharedTuple and m_st[2].address == m_addr + 1
    assert type(m_ch) is Channel and m_ch.get_nowait().address == m_addr
    interp.close()
    assert m_sb == b"made by relay" * 100      # outlives its interpreter
    del got, b_sb, b_st, b_ch, m_sb, m_st, m_ch, inbox, outbox
    del sb, st, ch
    assert_back_to(start)


def test_create_queue_via_prepare_main(new_interpreter):
    """A queue bound in __main__ (3.13.0 needed the queues module imported
    there first; 3.14 does not)."""
    start = live_objects()
    sb = SharedBuffer(b"q" * 4096)
    q = interpreters.create_queue()
    interp = new_interpreter()
    interp.prepare_main(q=q, buf=sb)
    interp.exec("""if True:
        import xi_helpers
        q.put(buf)
        q.put(xi_helpers.buffer_address(buf))
    """)
    back, addr = q.get(timeout=5), q.get(timeout=5)
    assert addr == sb.address and back.address == sb.address
    interp.close()
    del back, sb, q
    assert_back_to(start)


# The values of create_queue(unbounditems=...), defined (not exported) in
# concurrent.interpreters._queues, like ItemInterpreterDestroyed.
UNBOUND_OPS = ["UNBOUND", "UNBOUND_ERROR", "UNBOUND_REMOVE"]


@pytest.mark.parametrize("op", UNBOUND_OPS)
def test_create_queue_unbounditems(new_interpreter, op):
    """Items put by an interpreter that is then closed: the queue drops
    them (unbounditems says how get() reports that), and the libchan
    objects they carried are freed with them: no leak, and nothing left
    that points into the closed interpreter."""
    start = live_objects()
    unbounditems = getattr(_queues, op)
    q = interpreters.create_queue(unbounditems=unbounditems)
    interp = new_interpreter()
    sub_live = interp.call(xi_helpers.put_objects, q, b"unbound" * 100)
    assert sub_live > start and q.qsize() == 2
    interp.close()
    assert_back_to(start)
    if op == "UNBOUND":
        assert [q.get(timeout=5) for _ in range(2)] == [_queues.UNBOUND] * 2
    elif op == "UNBOUND_ERROR":
        for _ in range(2):
            with pytest.raises(_queues.ItemInterpreterDestroyed):
                q.get_nowait()
    else:
        assert q.qsize() == 0
    assert q.qsize() == 0
    del q
    assert_back_to(start)


def test_create_queue_items_from_main_outlive_receiver(new_interpreter):
    """The receiving interpreter is closed while it still holds what it got:
    main's objects stay valid, and are freed when main lets go."""
    start = live_objects()
    sb, st, ch = main_objects()
    made = live_objects()
    q = interpreters.create_queue()
    put_all(q, sb, st, ch)
    interp = new_interpreter()
    interp.prepare_main(q=q)
    interp.exec("held = [q.get(timeout=5) for _ in range(3)]")
    assert live_objects() == made
    interp.close()
    assert live_objects() == made
    assert sb[:3] == bytes(range(3)) and st[1] == ("two", b"3")
    ch.put(1)
    assert ch.get_nowait() == 1
    del sb, st, ch, q
    assert_back_to(start)


def test_is_shareable():
    sb, st, ch = main_objects()
    for x in (sb, st, ch, sb[1:2], st[1]):
        assert interpreters.is_shareable(x), x


# --------------------------------------------------------------------------
# concurrent.futures.InterpreterPoolExecutor
# --------------------------------------------------------------------------

def executor(workers=2):
    """Workers with this directory on sys.path: site.addsitedir travels to
    each new worker interpreter as a reference (site is importable there)."""
    return InterpreterPoolExecutor(max_workers=workers,
                                   initializer=site.addsitedir,
                                   initargs=(HERE,))


def test_executor_arguments():
    start = live_objects()
    sb, st, ch = main_objects()
    made = live_objects()
    with executor() as ex:
        futures = [ex.submit(xi_helpers.describe, sb, st, ch)
                   for _ in range(6)]
        seen = [f.result(timeout=60) for f in futures]
        replies = [ch.get(timeout=10) for _ in seen]
    assert sorted(replies) == sorted(s[0] for s in seen)
    assert all(s[0] != MAIN_ID for s in seen)
    for s in seen:
        check_described(s, sb, st, ch, made)
    del ex
    assert_back_to(made)
    del sb, st, ch
    assert_back_to(start)


def test_executor_map_reads_the_same_buffer():
    start = live_objects()
    data = bytes(range(256)) * 1024                 # 256 KiB
    sb = SharedBuffer(data)
    spans = [(i, i + 4096) for i in range(0, len(data), 16384)]
    with executor() as ex:
        results = list(ex.map(xi_helpers.checksum, [sb] * len(spans),
                              *zip(*spans), timeout=120))
    for (lo, hi), (total, addr, iid) in zip(spans, results):
        assert iid != MAIN_ID
        assert total == sum(data[lo:hi]) and addr == sb.address + lo
    del ex, sb
    assert_back_to(start)


def test_executor_results():
    """Objects made in the workers come back by reference and outlive the
    workers (closed by shutdown)."""
    start = live_objects()
    payloads = [bytes([i]) * (1000 + i) for i in range(4)]
    with executor() as ex:
        results = [f.result(timeout=60) for f in
                   [ex.submit(xi_helpers.make_objects, p) for p in payloads]]
        back = ex.submit(xi_helpers.echo, *(r[0] for r in results)).result(
            timeout=60)
    assert len(back) == len(results)
    for p, (sb, st, ch, addr, iid), b in zip(payloads, results, back):
        assert iid != MAIN_ID
        assert type(sb) is SharedBuffer and sb == p
        assert sb.address == addr == xi_helpers.buffer_address(sb)
        assert b.address == addr                    # sent again and back
        assert type(st) is SharedTuple and st[2].address == addr + 1
        assert st == (len(p), ("made", "here"), p[1:])
        assert type(ch) is Channel and ch.get_nowait().address == addr
    del ex, results, back, sb, st, ch, b
    assert_back_to(start)


def test_executor_channel_between_workers():
    """Two tasks running at once in two workers talk through a libchan
    Channel given to both (no polling, no pickle)."""
    start = live_objects()
    a, b = Channel(), Channel()
    sb = SharedBuffer(b"ping" * 1000)
    with executor() as ex:
        f1 = ex.submit(_ping, a, b, sb, 50)
        f2 = ex.submit(_pong, a, b)
        addrs = f1.result(timeout=120)
        count = f2.result(timeout=120)
    assert count == 50 and set(addrs) == {sb.address}
    del ex, a, b, sb
    assert_back_to(start)


def _ping(out, back, buf, n):
    """Stateless (call() sends its code): sends buf n times, and collects
    the address at which the other worker read it each time."""
    addrs = []
    for _ in range(n):
        out.put(buf, timeout=30)
        addrs.append(back.get(timeout=30))
    out.put(None)
    return tuple(addrs)


def _pong(inp, back):
    """Stateless (the import is inside): reads until None."""
    import xi_helpers
    count = 0
    while True:
        buf = inp.get(timeout=30)
        if buf is None:
            return count
        back.put(xi_helpers.buffer_address(buf))
        count += 1


def test_executor_worker_exception_keeps_no_objects():
    """A task that fails after receiving libchan objects: the exception
    comes back, the objects are released."""
    start = live_objects()
    sb, st, ch = main_objects()
    with executor(1) as ex:
        f = ex.submit(_fail_with, sb, st, ch)
        with pytest.raises(ValueError, match="in the worker"):
            f.result(timeout=60)
        assert ch.get(timeout=10) == sb.address
    del ex, f
    del sb, st, ch
    assert_back_to(start)


def _fail_with(buf, tup, ch):
    """Stateless."""
    ch.put(buf.address)
    raise ValueError("in the worker", tup[0])
