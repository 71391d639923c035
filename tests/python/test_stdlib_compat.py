"""Channel behaves like queue.Queue and PEP 734's Queue where they agree:
maxsize reported as given, one object per channel per interpreter, pickling
by id within the process, and Empty/Full that the stdlib's own interpreter
queue exceptions catch (3.14+)."""

import copy
import gc
import itertools
import operator
import os
import pickle
import queue
import random
import subprocess
import sys
import textwrap
import warnings

import pytest

import libchan
from libchan import (Channel, ChannelNotFoundError, Empty, Full,
                     NotShareableError, SharedTuple, dumps, loads)

PY314 = sys.version_info >= (3, 14)
needs_314 = pytest.mark.skipif(
    not PY314, reason="concurrent.interpreters: 3.14 and later")
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
_names = itertools.count()


def uname():
    """A channel name no other test uses."""
    return f"test_stdlib_compat.{next(_names)}"


def run_python(code, stdin=b""):
    """Run code in a new process that imports this same libchan build;
    returns its stdout (fails the test if it exits non-zero)."""
    code = f"import sys; sys.path[:] = {sys.path!r}\n" + textwrap.dedent(code)
    out = subprocess.run([sys.executable, "-c", code], input=stdin,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


class Holder:
    """An object that is pickled (the codec does not know its type)."""

    def __init__(self, ch):
        self.ch = ch


class ChanList(list):
    """A list subclass: pickled too, as any subclass."""


# --------------------------------------------------------------------------
# 1. maxsize: what was given
# --------------------------------------------------------------------------

@pytest.mark.parametrize("size", [-10, -1, 0, 1, 7])
def test_maxsize_as_given_like_queue(size):
    assert Channel(size).maxsize == queue.Queue(size).maxsize == size
    assert Channel(maxsize=size).maxsize == size
    if PY314:
        from concurrent import interpreters
        assert interpreters.create_queue(size).maxsize == size


@pytest.mark.parametrize("size", [-10, 0, -(2**63)])
def test_nonpositive_maxsize_is_unbounded(size):
    ch = Channel(size)
    assert ch.maxsize == size
    for i in range(100):
        ch.put_nowait(i)
    assert not ch.full() and ch.qsize() == 100
    assert f"maxsize={size} " in repr(ch)
    ch.shutdown(immediate=True)


def test_maxsize_out_of_range():
    with pytest.raises(OverflowError):
        Channel(-(2**63) - 1)
    with pytest.raises(ValueError, match="maxsize is above the limit"):
        Channel(2**32 + 1)
    # The limit is 2**27 values (16-byte slots: 2 GiB).
    with pytest.raises(ValueError, match="limit of 134217728"):
        Channel(2**27 + 1)


def test_maxsize_survives_lookup_and_channels():
    name = uname()
    ch = Channel(-10, name=name)
    carrier = Channel()
    carrier.put(ch)
    carrier.put([ch])
    cid = ch.id
    del ch
    gc.collect()   # no wrapper left: the next ones are new
    assert libchan.lookup(cid).maxsize == -10
    assert libchan.lookup(name).maxsize == -10
    assert carrier.get().maxsize == -10
    assert carrier.get()[0].maxsize == -10


def test_maxsize_survives_subinterpreter(interp):
    neg, bounded = Channel(-10, name=uname()), Channel(3)
    carrier = Channel()
    interp.exec("""
        import libchan
        carrier.put((neg.maxsize, bounded.maxsize,
                     libchan.lookup(neg.name).maxsize))
        carrier.put(libchan.Channel(-5))
    """, neg=neg, bounded=bounded, carrier=carrier)
    assert carrier.get(timeout=10) == (-10, 3, -10)
    assert carrier.get(timeout=10).maxsize == -5


# --------------------------------------------------------------------------
# 2. One Channel object per channel per interpreter
# --------------------------------------------------------------------------

def test_same_object_through_channel_and_lookup():
    a, b = Channel(), Channel(name=uname())
    a.put(b)
    assert a.get() is b
    a.put({"k": [b, (b,)]})
    got = a.get()
    assert got["k"][0] is b and got["k"][1][0] is b
    assert libchan.lookup(b.id) is b
    assert libchan.lookup(b.name) is b
    assert libchan.lookup(a.id) is a
    st = SharedTuple((1, b, (b,)))
    assert st[1] is b and st[2][0] is b
    del st


def test_table_holds_no_reference():
    a, b = Channel(), Channel()
    base = sys.getrefcount(b)
    for _ in range(3):
        a.put(b)
        assert a.get() is b
        assert libchan.lookup(b.id) is b
    assert sys.getrefcount(b) == base
    # The last reference gone, the channel is gone (the wrapper was freed
    # and released it; the leak check counts it too).
    cid = b.id
    del b
    with pytest.raises(ChannelNotFoundError):
        libchan.lookup(cid)


def test_new_wrapper_after_the_old_one_is_freed():
    carrier, ch = Channel(), Channel(name=uname())
    carrier.put(ch)
    name, cid = ch.name, ch.id
    del ch                      # the channel lives on, queued
    again = libchan.lookup(cid)
    assert again.name == name and libchan.lookup(name) is again
    assert carrier.get() is again


def test_many_wrappers_in_random_order():
    # The table grows, shrinks and deletes in the middle of probe runs:
    # check every live wrapper after each step against a model.
    rng = random.Random(734)
    keep = Channel()            # holds every channel, so ids stay valid
    live = {}                   # id -> the wrapper we expect
    ids = []
    for _ in range(600):
        c = Channel()
        keep.put(c)
        ids.append(c.id)
        live[c.id] = c
    del c
    for step in range(3000):
        cid = rng.choice(ids)
        if cid in live and rng.random() < 0.6:
            del live[cid]       # its wrapper is freed
        else:
            w = libchan.lookup(cid)
            assert cid not in live or w is live[cid]
            live[cid] = w
        if step % 250 == 0:
            for i, w in live.items():
                assert libchan.lookup(i) is w
    for i, w in live.items():
        assert libchan.lookup(i) is w and w.id == i
    live.clear()
    keep.shutdown(immediate=True)


def test_wrapper_table_out_of_memory():
    testcapi = pytest.importorskip("_testcapi")
    keep = Channel()
    chans = [Channel() for _ in range(300)]
    ids = [c.id for c in chans]
    for c in chans:
        keep.put(c)
    del chans, c                # no wrappers left: lookups make new ones
    # The first allocation of a lookup is the wrapper: failing it releases
    # the reference lookup took.
    testcapi.set_nomemory(0, 1)
    try:
        libchan.lookup(ids[0])
    except MemoryError:
        pass
    else:
        pytest.fail("no MemoryError")
    finally:
        testcapi.remove_mem_hooks()
    # The second one, where there is one, grows the table: 300 new wrappers
    # cross several growth points.
    got, failures = [], 0
    for cid in ids:
        testcapi.set_nomemory(1, 2)
        try:
            w = libchan.lookup(cid)
        except MemoryError:
            w = None
        finally:
            testcapi.remove_mem_hooks()
        if w is None:
            failures += 1
            w = libchan.lookup(cid)
        got.append(w)
    assert failures >= 3
    assert all(libchan.lookup(i) is w for i, w in zip(ids, got))
    # Dropping most of them shrinks the table; where shrinking fails, it
    # stays large and keeps working.
    for k in range(len(got)):
        if k % 10:
            testcapi.set_nomemory(0, 1)
            try:
                got[k] = None
            finally:
                testcapi.remove_mem_hooks()
    assert all(libchan.lookup(i) is w
               for i, w in zip(ids, got) if w is not None)
    got.clear()
    keep.shutdown(immediate=True)


def test_same_object_across_interpreters(interp):
    # A channel sent into a subinterpreter twice is one object there, and
    # what it sends back is this interpreter's object.
    carrier, b = Channel(), Channel(name=uname())
    interp.exec("""
        import libchan
        first = b
        assert libchan.lookup(b.id) is b and libchan.lookup(b.name) is b
    """, b=b)
    interp.exec("""
        assert b is first
        carrier.put(first)
        carrier.put([first])
        carrier.put(libchan.lookup(first.name))
    """, b=b, carrier=carrier)
    assert carrier.get(timeout=10) is b
    assert carrier.get(timeout=10)[0] is b
    assert carrier.get(timeout=10) is b
    carrier.put(b)
    carrier.put((b, b))
    interp.exec("""
        x, (y, z) = carrier.get(timeout=10), carrier.get(timeout=10)
        assert x is y is z is first is b
        del x, y, z, first, b
    """, carrier=carrier)


# --------------------------------------------------------------------------
# 3. Pickling by id
# --------------------------------------------------------------------------

@pytest.mark.parametrize("proto", PROTOCOLS)
def test_pickle_round_trip_is_the_same_object(proto):
    ch = Channel(-3, name=uname(), pickle=False)
    data = pickle.dumps(ch, proto)
    assert pickle.loads(data) is ch
    both = pickle.loads(pickle.dumps({"a": ch, "b": [ch]}, proto))
    assert both["a"] is ch and both["b"][0] is ch
    assert ch.maxsize == -3 and ch.pickle is False


def test_copy_is_the_same_channel():
    ch = Channel()
    assert copy.copy(ch) is ch
    assert copy.deepcopy(ch) is ch
    lst = copy.deepcopy([ch, ch])
    assert lst[0] is ch and lst[1] is ch


def test_pickle_holds_no_reference():
    ch = Channel()
    cid = ch.id
    data = pickle.dumps(ch)
    del ch
    gc.collect()
    with pytest.raises(ChannelNotFoundError, match=f"id={cid} is gone") as e:
        pickle.loads(data)
    assert isinstance(e.value, KeyError)
    assert isinstance(e.value, LookupError)


def test_pickle_is_by_id_not_name():
    name = uname()
    ch = Channel(name=name)
    data, cid = pickle.dumps(ch), ch.id
    del ch
    gc.collect()
    again = Channel(name=name)          # the name is taken again
    with pytest.raises(ChannelNotFoundError, match=f"id={cid}"):
        pickle.loads(data)
    assert libchan.lookup(name) is again


def test_pickle_into_another_interpreter(interp):
    ch = Channel()
    carrier = Channel()
    interp.exec("""
        import pickle
        x = pickle.loads(data)
        assert pickle.loads(data) is x
        x.put(('seen', x.id))
        carrier.put(pickle.dumps(x))
        del x
    """, data=pickle.dumps(ch), carrier=carrier)
    assert ch.get(timeout=10) == ("seen", ch.id)
    assert pickle.loads(carrier.get(timeout=10)) is ch


def test_unpickle_in_another_process():
    ch = Channel()
    out = run_python("""
        import pickle, libchan
        try:
            pickle.loads(sys.stdin.buffer.read())
        except libchan.ChannelNotFoundError as e:
            print(e)
    """, stdin=pickle.dumps(ch))
    assert f"id={ch.id} was pickled in another process (pid {os.getpid()}" \
        in out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_unpickle_in_forked_child():
    # A fork child has copies of the parent's channels under the same ids:
    # they are not the parent's, and the child draws its own nonce, so a
    # pickle from the parent is refused even if the pid matched.
    ch = Channel()
    data = pickle.dumps(ch)
    restore, (cid, pid, nonce) = ch.__reduce__()
    assert pid == os.getpid()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # threads
        child = os.fork()
    if child == 0:
        code = 1
        try:
            try:
                pickle.loads(data)
            except ChannelNotFoundError as e:
                if "another process" in str(e):
                    code = 2
            if code == 2:
                try:
                    restore(cid, os.getpid(), nonce)
                except ChannelNotFoundError as e:
                    if "another process that had this pid" in str(e):
                        code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pickle.loads(data) is ch


def test_pickle_needs_the_restore_function(monkeypatch):
    monkeypatch.delattr(libchan._libchan, "_unpickle_channel")
    with pytest.raises(AttributeError):
        pickle.dumps(Channel())


def test_unpickle_checks():
    ch = Channel()
    restore, args = ch.__reduce__()
    cid, pid, nonce = args
    assert restore is libchan._libchan._unpickle_channel
    assert restore(*args) is ch
    with pytest.raises(ChannelNotFoundError,
                       match=f"id={cid} was pickled in another process "
                             f"\\(pid {pid + 1}, this is {pid}\\)"):
        restore(cid, pid + 1, nonce)
    with pytest.raises(ChannelNotFoundError,
                       match="another process that had this pid"):
        restore(cid, pid, nonce ^ 2)
    with pytest.raises(TypeError):
        restore(cid, pid)
    with pytest.raises(TypeError):
        restore(str(cid), pid, nonce)
    with pytest.raises(TypeError):
        restore(cid, pid, nonce, 0)


def test_lookup_raises_channel_not_found():
    with pytest.raises(ChannelNotFoundError) as e:
        libchan.lookup(uname())
    assert isinstance(e.value, KeyError)
    with pytest.raises(KeyError):
        libchan.lookup(2**70)


# A Channel inside what libchan sends

@pytest.mark.parametrize("allow", [True, False])
def test_channel_in_plain_containers_travels_by_reference(allow):
    # Exact containers are encoded by the codec, which carries the channel
    # as a counted reference: no pickle, and the item keeps it alive.
    carrier, ch = Channel(pickle=allow), Channel()
    cid = ch.id
    carrier.put({"ch": ch, "list": [ch], "tuple": (1, ch)})
    del ch
    gc.collect()
    got = carrier.get()
    assert got["ch"].id == cid
    assert got["list"][0] is got["ch"] and got["tuple"][1] is got["ch"]


def test_channel_in_pickled_object_travels_by_id():
    carrier, ch = Channel(), Channel()
    carrier.put(Holder(ch))
    carrier.put(ChanList([ch, 1]))
    h = carrier.get()
    assert type(h) is Holder and h.ch is ch
    lst = carrier.get()
    assert type(lst) is ChanList and lst[0] is ch
    with pytest.raises(NotShareableError):
        Channel(pickle=False).put(Holder(ch))


def test_channel_in_pickled_object_must_outlive_the_trip():
    carrier, ch = Channel(), Channel()
    cid = ch.id
    carrier.put(Holder(ch))
    carrier.put("next")
    del ch
    gc.collect()
    with pytest.raises(ChannelNotFoundError, match=f"id={cid} is gone"):
        carrier.get()
    assert carrier.get() == "next"      # the bad item was taken off


def test_dumps_refuses_a_channel_it_meets():
    ch = Channel()
    for x in (ch, [ch], {"k": ch}):
        with pytest.raises(NotShareableError):
            dumps(x)
    # Inside an object that is pickled, it is pickled (by id) like the rest.
    assert loads(dumps(Holder(ch))).ch is ch
    with pytest.raises(NotShareableError):
        dumps(Holder(ch), pickle=False)


@needs_314
def test_stdlib_queue_carries_channel_in_container():
    from concurrent import interpreters
    q = interpreters.create_queue()
    ch = Channel()
    q.put({"ch": ch})               # pickled by the stdlib: by id
    assert q.get()["ch"] is ch
    q.put([ch, ch])
    got = q.get()
    assert got[0] is ch and got[1] is ch


@needs_314
def test_stdlib_queue_and_call_across_interpreters():
    from concurrent import interpreters
    interp = interpreters.create()
    try:
        interp.exec(f"import sys; sys.path[:] = {sys.path!r}")
        q = interpreters.create_queue()
        ch = Channel()
        q.put({"ch": ch, "n": 1})
        q.put([ch])
        interp.prepare_main(q=q)
        interp.exec(textwrap.dedent("""
            d, lst = q.get(), q.get()
            d['ch'].put(('from sub', d['n'], lst[0] is d['ch']))
            del d, lst
        """))
        assert ch.get(timeout=10) == ("from sub", 1, True)
        # Arguments of call() are pickled when not shareable; the result
        # (a Channel, shareable) comes back as this interpreter's object.
        assert interp.call(operator.itemgetter("ch"), {"ch": ch}) is ch
        interp.call(Channel.put, ch, {"ch": ch, "via": "call"})
        got = ch.get(timeout=10)
        assert got["ch"] is ch and got["via"] == "call"
        del q
    finally:
        interp.close()


# --------------------------------------------------------------------------
# 4. Exceptions
# --------------------------------------------------------------------------

def test_empty_full_are_queue_errors():
    assert issubclass(Empty, queue.Empty) and issubclass(Full, queue.Full)
    assert issubclass(ChannelNotFoundError, KeyError)
    assert libchan.ChannelNotFoundError is ChannelNotFoundError
    with pytest.raises(queue.Empty):
        Channel().get_nowait()
    ch = Channel(1)
    ch.put(0)
    with pytest.raises(queue.Full):
        ch.put(1, timeout=0.001)


@needs_314
def test_empty_full_are_interpreters_queue_errors():
    from concurrent import interpreters
    assert issubclass(Empty, interpreters.QueueEmpty)
    assert issubclass(Full, interpreters.QueueFull)
    # QueueError (a RuntimeError) is not re-exported by the package.
    from concurrent.interpreters._queues import QueueError
    assert issubclass(Empty, QueueError) and issubclass(Full, QueueError)
    with pytest.raises(interpreters.QueueEmpty):
        Channel().get(timeout=0.001)
    ch = Channel(1)
    ch.put(0)
    with pytest.raises(interpreters.QueueFull):
        ch.put_nowait(1)


def test_exceptions_in_subinterpreter(interp):
    interp.exec("""
        import queue, sys, libchan
        assert issubclass(libchan.Empty, queue.Empty)
        assert issubclass(libchan.Full, queue.Full)
        if sys.version_info >= (3, 14):
            from concurrent import interpreters
            try:
                libchan.Channel().get_nowait()
            except interpreters.QueueEmpty:
                pass
            ch = libchan.Channel(1)
            ch.put(0)
            try:
                ch.put_nowait(1)
            except interpreters.QueueFull:
                pass
            del ch
    """)


@needs_314
def test_exceptions_without_concurrent_interpreters():
    # A 3.14 built without subinterpreters: Empty and Full fall back to
    # queue's. Any other failure to get the stdlib's classes fails import.
    assert run_python("""
        sys.modules['concurrent.interpreters'] = None   # ImportError
        import queue, libchan
        print(libchan.Empty.__bases__ == (queue.Empty,),
              libchan.Full.__bases__ == (queue.Full,))
    """).split() == ["True", "True"]
    for fake in ("types.SimpleNamespace()",
                 "types.SimpleNamespace(QueueEmpty=queue.Empty)"):
        out = run_python(f"""
            import queue, types
            sys.modules['concurrent.interpreters'] = {fake}
            try:
                import libchan
            except AttributeError as e:
                print('AttributeError', e)
        """)
        assert out.startswith("AttributeError")
    out = run_python("""
        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name == 'concurrent.interpreters':
                    raise RuntimeError('refused')
        sys.meta_path.insert(0, Refuse())
        try:
            import libchan
        except RuntimeError as e:
            print('RuntimeError', e)
    """)
    assert out.strip() == "RuntimeError refused"
