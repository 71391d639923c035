"""SharedBuffer and SharedTuple: API, zero-copy, numpy, pickling."""

import array
import copy
import gc
import pickle
from decimal import Decimal
from multiprocessing.reduction import ForkingPickler

import pytest

import libchan
from libchan import Channel, NotShareableError, SharedBuffer, SharedTuple

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

needs_numpy = pytest.mark.skipif(np is None, reason="numpy not installed")
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)

DATA = bytes(range(256)) * 4     # 1024 bytes


# ==========================================================================
# SharedBuffer
# ==========================================================================

@pytest.mark.parametrize("src", [
    DATA, bytearray(DATA), memoryview(DATA), array.array("B", DATA),
    SharedBuffer(DATA)], ids=lambda s: type(s).__name__)
def test_buffer_from_buffers(src):
    sb = SharedBuffer(src)
    assert len(sb) == len(DATA)
    assert bytes(sb) == DATA
    assert sb == DATA


def test_buffer_copies_its_input():
    ba = bytearray(b"abcdef")
    sb = SharedBuffer(ba)
    ba[0] = ord("z")
    assert bytes(sb) == b"abcdef"


def test_buffer_from_typed_arrays():
    a = array.array("d", [1.5, -2.0, 3.25])
    sb = SharedBuffer(a)
    assert len(sb) == 24
    assert bytes(sb) == a.tobytes()
    assert memoryview(sb).cast("d").tolist() == [1.5, -2.0, 3.25]


def test_buffer_from_non_contiguous_memoryview():
    mv = memoryview(b"abcdefgh")[::2]
    sb = SharedBuffer(mv)
    assert bytes(sb) == b"aceg"
    mv2 = memoryview(bytes(range(24))).cast("B", (4, 6))
    assert bytes(SharedBuffer(mv2)) == mv2.tobytes()


def test_buffer_empty():
    sb = SharedBuffer(b"")
    assert len(sb) == 0
    assert bytes(sb) == b""
    assert sb == b""
    assert memoryview(sb).nbytes == 0
    with pytest.raises(IndexError):
        sb[0]


@pytest.mark.parametrize("bad", ["text", 5, None, 1.5, [1, 2], (1,),
                                 object()])
def test_buffer_non_buffer(bad):
    with pytest.raises(TypeError):
        SharedBuffer(bad)


def test_buffer_wrong_arguments():
    with pytest.raises(TypeError):
        SharedBuffer()
    with pytest.raises(TypeError):
        SharedBuffer(b"a", b"b")


def test_buffer_address_aligned():
    for n in (1, 7, 64, 4096, 100_000):
        sb = SharedBuffer(bytes(n))
        assert isinstance(sb.address, int)
        assert sb.address % 64 == 0
    with pytest.raises(AttributeError):
        sb.address = 0


def test_buffer_read_only():
    sb = SharedBuffer(b"abc")
    mv = memoryview(sb)
    assert mv.readonly is True
    assert mv.format == "B" and mv.itemsize == 1 and mv.nbytes == 3
    assert mv.c_contiguous
    with pytest.raises(TypeError):
        mv[0] = 1
    with pytest.raises(TypeError):
        sb[0] = 1
    with pytest.raises(TypeError):
        del sb[0]
    import ctypes
    with pytest.raises(TypeError):
        ctypes.c_char.from_buffer(sb)      # needs a writable buffer
    assert mv.tobytes() == b"abc"
    mv.release()


def test_buffer_memoryview_keeps_it_alive():
    sb = SharedBuffer(b"xyz" * 100)
    mv = memoryview(sb)
    addr = sb.address
    del sb
    gc.collect()
    assert mv.tobytes() == b"xyz" * 100
    if np is not None:
        assert np.frombuffer(mv, np.uint8).ctypes.data == addr
    mv.release()


def test_buffer_indexing():
    sb = SharedBuffer(b"\x00\x01\xfe\xff")
    assert [sb[i] for i in range(4)] == [0, 1, 254, 255]
    assert sb[-1] == 255 and sb[-4] == 0
    assert type(sb[0]) is int
    for bad in (4, -5, 2**63, -2**63, 2**100):
        with pytest.raises(IndexError):
            sb[bad]
    with pytest.raises(TypeError):
        sb["0"]
    with pytest.raises(TypeError):
        sb[1.0]


def test_buffer_slicing_shares_memory():
    sb = SharedBuffer(DATA)
    for start, stop in [(0, 10), (10, 20), (1, 1024), (0, 1024), (500, 501),
                        (-10, None), (None, -10), (100, 5000), (-5000, 3)]:
        s = sb[start:stop]
        ref = DATA[start:stop]
        assert type(s) is SharedBuffer
        assert bytes(s) == ref and len(s) == len(ref)
        if len(ref):
            assert s.address == sb.address + slice(start, stop).indices(
                len(DATA))[0]
    s = sb[10:20:1]
    assert type(s) is SharedBuffer and s.address == sb.address + 10


def test_buffer_slice_of_slice():
    sb = SharedBuffer(DATA)
    s = sb[100:900]
    t = s[50:60]
    assert type(t) is SharedBuffer
    assert t.address == sb.address + 150
    assert bytes(t) == DATA[150:160]
    assert t[0] == DATA[150] and t[-1] == DATA[159]
    with pytest.raises(IndexError):
        t[10]


def test_buffer_empty_slice():
    sb = SharedBuffer(DATA)
    for s in (sb[5:5], sb[10:3], sb[2000:]):
        assert len(s) == 0 and bytes(s) == b"" and s == b""


@pytest.mark.parametrize("step", [2, 3, -1, -2, 1000])
def test_buffer_strided_slice_is_bytes(step):
    sb = SharedBuffer(DATA)
    for start, stop in [(None, None), (3, 300), (-1, 0), (900, 10)]:
        s = sb[start:stop:step]
        assert type(s) is bytes
        assert s == DATA[start:stop:step]


def test_buffer_slice_keeps_parent_alive():
    sb = SharedBuffer(DATA)
    s = sb[1:5]
    addr = sb.address
    del sb
    gc.collect()
    assert bytes(s) == DATA[1:5]
    assert s.address == addr + 1


def test_buffer_equality():
    sb = SharedBuffer(b"abc")
    for other in (b"abc", bytearray(b"abc"), memoryview(b"abc"),
                  SharedBuffer(b"abc"), array.array("B", b"abc"),
                  SharedBuffer(b"xabcx")[1:4]):
        assert sb == other
        assert other == sb
        assert not (sb != other)
    for other in (b"abd", b"ab", b"abcd", b"", SharedBuffer(b"abd")):
        assert sb != other
        assert other != sb
    for other in ("abc", 5, None, [97, 98, 99], (97, 98, 99)):
        assert sb != other
        assert not (sb == other)


def test_buffer_hash():
    for data in (b"", b"abc", DATA, bytes(100_000)):
        sb = SharedBuffer(data)
        assert hash(sb) == hash(data)
        assert hash(sb[1:]) == hash(data[1:])
    d = {SharedBuffer(b"key"): 1}
    assert d[b"key"] == 1
    assert {b"key": 2}[SharedBuffer(b"key")] == 2
    assert len({SharedBuffer(b"k"), SharedBuffer(b"k"), b"k"}) == 1


def test_buffer_bytes_and_repr():
    sb = SharedBuffer(b"abc")
    assert sb.__bytes__() == b"abc"
    assert type(bytes(sb)) is bytes
    assert isinstance(repr(sb), str)
    assert bytearray(sb) == b"abc"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_buffer_pickle(proto):
    sb = SharedBuffer(DATA)
    y = pickle.loads(pickle.dumps(sb, proto))
    assert type(y) is SharedBuffer
    assert y == sb and bytes(y) == DATA
    s = sb[3:7]
    y = pickle.loads(pickle.dumps(s, proto))
    assert type(y) is SharedBuffer and bytes(y) == DATA[3:7]


def test_buffer_copy():
    sb = SharedBuffer(DATA)
    for y in (copy.copy(sb), copy.deepcopy(sb), copy.deepcopy([sb])[0]):
        assert type(y) is SharedBuffer and y == sb


def test_buffer_forking_pickler():
    sb = SharedBuffer(DATA * 10)
    st = SharedTuple((1, "a", (2, 3)))
    for x in (sb, st, [sb, st]):
        y = pickle.loads(bytes(ForkingPickler.dumps(x)))
        assert y == x
    assert type(pickle.loads(ForkingPickler.dumps(sb))) is SharedBuffer
    assert type(pickle.loads(ForkingPickler.dumps(st))) is SharedTuple


def test_buffer_through_channel_zero_copy():
    sb = SharedBuffer(DATA)
    for pk in (True, False):
        ch = Channel(pickle=pk)
        ch.put(sb)
        ch.put([sb, {"k": (sb,)}])
        ch.put(sb[10:20])
        got = ch.get()
        assert type(got) is SharedBuffer
        assert got.address == sb.address and got == sb
        lst = ch.get()
        assert lst[0].address == sb.address
        assert lst[1]["k"][0].address == sb.address
        sl = ch.get()
        assert type(sl) is SharedBuffer and sl.address == sb.address + 10
        assert bytes(sl) == DATA[10:20]


def test_buffer_survives_in_channel():
    ch = Channel()
    sb = SharedBuffer(DATA)
    addr = sb.address
    ch.put(sb)
    del sb
    gc.collect()
    junk = [bytes(1000) for _ in range(2000)]
    del junk
    got = ch.get()
    assert got.address == addr and bytes(got) == DATA


def test_buffer_large():
    data = bytes(range(256)) * 4096     # 1 MiB
    sb = SharedBuffer(data)
    assert len(sb) == len(data) and sb == data
    assert sb[len(data) // 2] == data[len(data) // 2]
    ch = Channel()
    ch.put(sb)
    assert ch.get().address == sb.address


# --------------------------------------------------------------------------
# numpy
# --------------------------------------------------------------------------

@needs_numpy
def test_numpy_zero_copy_read():
    a = np.arange(1000, dtype=np.float64) * 0.5
    sb = SharedBuffer(a)
    assert len(sb) == a.nbytes
    v = np.frombuffer(sb, dtype=np.float64)
    assert v.ctypes.data == sb.address
    assert np.array_equal(v, a)
    assert not v.flags.writeable
    with pytest.raises(ValueError):
        v[0] = 1.0
    a[0] = 99.0                     # the buffer is a copy
    assert v[0] == 0.0
    w = np.frombuffer(sb[80:160], dtype=np.float64)
    assert w.ctypes.data == sb.address + 80
    assert np.array_equal(w, np.arange(10, 20) * 0.5)


@needs_numpy
@pytest.mark.parametrize("make", [
    lambda: np.arange(3000, dtype=np.int32)[::3],
    lambda: np.arange(60, dtype=np.float64).reshape(6, 10)[:, 2:7],
    lambda: np.asfortranarray(np.arange(24, dtype=np.int16).reshape(4, 6)),
    lambda: np.arange(24, dtype=np.uint8).reshape(2, 3, 4).transpose(2, 0, 1),
    lambda: np.arange(10, dtype=np.float32)[::-1],
], ids=["strided", "2d-slice", "fortran", "transposed", "reversed"])
def test_numpy_non_contiguous(make):
    a = make()
    assert not a.flags.c_contiguous
    sb = SharedBuffer(a)
    assert bytes(sb) == a.tobytes(order="C")
    v = np.frombuffer(sb, dtype=a.dtype).reshape(a.shape)
    assert np.array_equal(v, a)
    assert v.ctypes.data == sb.address


@needs_numpy
def test_numpy_through_channel():
    a = np.linspace(0, 1, 4096)
    sb = SharedBuffer(a)
    ch = Channel(pickle=False)
    ch.put(sb)
    got = ch.get()
    v = np.frombuffer(got, dtype=a.dtype)
    assert v.ctypes.data == sb.address
    assert np.array_equal(v, a)


@needs_numpy
def test_numpy_array_is_pickled_not_shared():
    # a numpy array is not a SharedBuffer: it is pickled (pickle=True) or
    # refused (pickle=False)
    a = np.arange(5)
    ch = Channel()
    ch.put(a)
    got = ch.get()
    assert type(got) is np.ndarray and np.array_equal(got, a)
    with pytest.raises(NotShareableError):
        Channel(pickle=False).put(a)


@needs_numpy
def test_numpy_subinterpreter_reads_same_buffer(interp):
    a = np.arange(256, dtype=np.float64) * 1.25
    sb = SharedBuffer(a)
    out = Channel()
    inp = Channel()
    inp.put(sb)
    interp.exec(f"""
        import libchan
        out = libchan.lookup({out.id})
        sb = libchan.lookup({inp.id}).get(timeout=10)
        mv = memoryview(sb).cast('d')
        out.put((sb.address, len(mv), mv.tolist(), mv[3]))
        del sb, mv
    """)
    addr, n, values, third = out.get(timeout=10)
    assert addr == sb.address
    assert n == 256
    assert values == a.tolist()
    assert third == 3.75


# ==========================================================================
# SharedTuple
# ==========================================================================

def test_tuple_basics():
    t = (1, "a", None, 2.5, b"b", True)
    st = SharedTuple(t)
    assert len(st) == 6
    assert st == t and t == st
    assert not (st != t)
    assert tuple(st) == t and type(tuple(st)) is tuple
    assert list(st) == list(t)
    assert [type(x) for x in st] == [type(x) for x in t]
    assert isinstance(st.nbytes, int) and st.nbytes >= 24
    assert isinstance(repr(st), str)


def test_tuple_empty():
    for st in (SharedTuple(), SharedTuple(()), SharedTuple([])):
        assert len(st) == 0 and st == () and tuple(st) == ()
        assert hash(st) == hash(())
        assert list(st) == []
        with pytest.raises(IndexError):
            st[0]


@pytest.mark.parametrize("src", [[1, 2, 3], (1, 2, 3), range(1, 4),
                                 (i for i in (1, 2, 3)), {1: 0, 2: 0, 3: 0}])
def test_tuple_from_iterables(src):
    assert SharedTuple(src) == (1, 2, 3)


def test_tuple_from_string():
    assert SharedTuple("abc") == ("a", "b", "c")


@pytest.mark.parametrize("bad", [5, None, 1.5, object()])
def test_tuple_non_iterable(bad):
    with pytest.raises(TypeError):
        SharedTuple(bad)


def test_tuple_iterable_raising():
    def gen():
        yield 1
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        SharedTuple(gen())


def test_tuple_indexing():
    t = tuple(range(0, 100, 7))
    st = SharedTuple(t)
    for i in range(-len(t), len(t)):
        assert st[i] == t[i]
    for bad in (len(t), -len(t) - 1, 2**63, -2**63, 2**100):
        with pytest.raises(IndexError):
            st[bad]
    with pytest.raises(TypeError):
        st["0"]
    with pytest.raises(TypeError):
        st[1.0]
    with pytest.raises(TypeError):
        st[0] = 1


@pytest.mark.parametrize("sl", [slice(None), slice(1, 3), slice(-3, None),
                                slice(None, None, -1), slice(None, None, 2),
                                slice(5, 1, -2), slice(100, 200),
                                slice(3, 3)], ids=repr)
def test_tuple_slicing(sl):
    t = (0, "one", 2.0, (3, 3), [4], None, b"six")
    st = SharedTuple(t)
    got = st[sl]
    assert type(got) is tuple
    assert got == t[sl]


def test_tuple_nested_views():
    t = (1, (2, (3, "x")), [4, (5,)], {"k": (6,)})
    st = SharedTuple(t)
    inner = st[1]
    assert type(inner) is SharedTuple
    assert inner == (2, (3, "x"))
    assert type(inner[1]) is SharedTuple and inner[1] == (3, "x")
    assert hash(inner) == hash((2, (3, "x")))
    assert type(st[2]) is list and st[2] == [4, (5,)]
    assert st[3] == {"k": (6,)}
    assert st == t


def test_tuple_element_types():
    t = (None, True, False, -1, 2**100, -(2**70), 1.5, -0.0, 1j, "s", "é€😀",
         b"b", bytearray(b"ba"), [1], {"d": 1}, {1, 2}, frozenset({3}),
         b"x" * 10000)
    st = SharedTuple(t)
    for i, x in enumerate(t):
        y = st[i]
        assert type(y) is type(x), (i, x, y)
        assert y == x
    assert str(st[7]) == "-0.0"


def test_tuple_mutable_elements_are_fresh():
    st = SharedTuple(([1, 2], {"a": 1}, bytearray(b"x")))
    a = st[0]
    a.append(3)
    st[1]["b"] = 2
    st[2][0] = 0x79
    assert st[0] == [1, 2] and st[1] == {"a": 1} and st[2] == b"x"
    assert st[0] is not st[0]


def test_tuple_contains_count_index():
    t = (1, "a", 1, (2, 3), None, 1.0, "a")
    st = SharedTuple(t)
    assert 1 in st and "a" in st and None in st and (2, 3) in st
    assert "zz" not in st and (2,) not in st
    assert st.count(1) == t.count(1) == 3
    assert st.count("a") == 2 and st.count("zz") == 0
    assert st.count((2, 3)) == 1
    assert st.index("a") == 1
    assert st.index("a", 2) == 6
    assert st.index(1, 1) == 2
    assert st.index((2, 3)) == 3
    assert st.index(1, -5) == t.index(1, -5)
    with pytest.raises(ValueError):
        st.index("zz")
    with pytest.raises(ValueError):
        st.index("a", 2, 6)
    with pytest.raises(ValueError):
        st.index(None, 0, 4)
    with pytest.raises(TypeError):
        st.count()
    with pytest.raises(TypeError):
        st.index()


def test_tuple_equality_and_hash():
    st = SharedTuple((1, 2))
    assert st == (1, 2) and (1, 2) == st
    assert st == SharedTuple([1, 2])
    assert hash(st) == hash((1, 2)) == hash(SharedTuple([1, 2]))
    assert st != (1, 3) and st != (1, 2, 3) and st != (1,)
    assert st != [1, 2] and st != "12" and st != None  # noqa: E711
    assert st == (1.0, 2) and hash(st) == hash((1.0, 2))
    d = {st: "v"}
    assert d[(1, 2)] == "v"
    assert {(1, 2): "w"}[st] == "w"
    assert len({st, (1, 2), SharedTuple((1, 2))}) == 1
    nested = SharedTuple((1, ("a", (b"b", None)), frozenset({2})))
    assert hash(nested) == hash((1, ("a", (b"b", None)), frozenset({2})))


def test_tuple_unhashable_contents():
    for t in (([1],), ({"a": 1},), (1, (2, [3])), ({1},)):
        st = SharedTuple(t)
        with pytest.raises(TypeError):
            hash(t)
        with pytest.raises(TypeError):
            hash(st)
        assert st == t


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_tuple_pickle(proto):
    t = (1, "a", (2, (3,)), [4], b"x" * 5000, 2**100)
    st = SharedTuple(t)
    y = pickle.loads(pickle.dumps(st, proto))
    assert type(y) is SharedTuple
    assert y == st == t
    assert type(y[2]) is SharedTuple
    inner = pickle.loads(pickle.dumps(st[2], proto))
    assert type(inner) is SharedTuple and inner == (2, (3,))


def test_tuple_copy():
    st = SharedTuple((1, (2,)))
    for y in (copy.copy(st), copy.deepcopy(st)):
        assert type(y) is SharedTuple and y == st


def test_tuple_pickled_elements():
    t = (Decimal("1.5"), 1, [Decimal("2")], "x")
    st = SharedTuple(t)
    assert st == t
    assert type(st[0]) is Decimal and st[0] == Decimal("1.5")
    assert st[2] == [Decimal("2")]
    assert st.index(Decimal("1.5")) == 0
    ch = Channel()
    ch.put(st)
    assert ch.get() == t


def test_tuple_unpicklable_element():
    with pytest.raises(NotShareableError):
        SharedTuple((1, lambda: 2))


def test_tuple_deep_elements():
    def nest(n):
        x = 1
        for _ in range(n):
            x = (x,)
        return x
    for depth in (62, 63, 64, 65, 100):
        st = SharedTuple((nest(depth),))
        assert st == (nest(depth),)
        assert st[0] == nest(depth)
    st = SharedTuple(nest(64))
    assert st == nest(64)


def test_tuple_large():
    t = tuple(range(100_000))
    st = SharedTuple(t)
    assert len(st) == 100_000
    assert st[99_999] == 99_999 and st[-100_000] == 0
    assert st == t
    assert hash(st) == hash(t)
    assert st.index(54321) == 54321


def test_tuple_with_shared_objects():
    sb = SharedBuffer(DATA)
    inner = SharedTuple((1, 2))
    ch = Channel()
    st = SharedTuple((sb, inner, ch, "x"))
    assert type(st[0]) is SharedBuffer and st[0].address == sb.address
    assert type(st[1]) is SharedTuple and st[1] == (1, 2)
    assert type(st[2]) is Channel and st[2] == ch
    assert st == (sb, (1, 2), ch, "x")
    del st, ch


def test_tuple_through_channel():
    t = (1, (2, (3, "x")), [b"y"], 2**80)
    st = SharedTuple(t)
    for pk in (True, False):
        ch = Channel(pickle=pk)
        ch.put(st)
        ch.put({"k": [st, st[1]]})
        got = ch.get()
        assert type(got) is SharedTuple and got == t
        assert type(got[1]) is SharedTuple and got[1] == (2, (3, "x"))
        d = ch.get()
        assert type(d["k"][0]) is SharedTuple and d["k"][0] == t
        assert type(d["k"][1]) is SharedTuple and d["k"][1] == t[1]


def test_tuple_survives_in_channel():
    ch = Channel()
    ch.put(SharedTuple((1, "two", (3,))))
    gc.collect()
    junk = [str(i) * 5 for i in range(20000)]
    del junk
    assert ch.get() == (1, "two", (3,))


def test_tuple_comparison_with_nan_element():
    nan = float("nan")
    st = SharedTuple((nan,))
    x = st[0]
    assert x != x            # NaN stays NaN
    assert len(st) == 1


def test_tuple_elements_of_every_kind_in_loads():
    st = SharedTuple((1, SharedBuffer(b"abc")))
    assert libchan.loads(libchan.dumps(st)) == (1, b"abc")
