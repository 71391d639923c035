"""What crosses a channel, and dumps/loads: round trips of every supported
type, extremes, pickled fallbacks, refusals, and corrupt input."""

import array
import collections
import enum
import gc
import math
import pathlib
import random
import re
import struct
import threading
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

import libchan
from libchan import (Channel, NotShareableError, SharedBuffer, SharedTuple,
                     dumps, loads)

# --------------------------------------------------------------------------
# Exact, NaN-aware, type-checking comparison
# --------------------------------------------------------------------------


def _float_same(a, b):
    if math.isnan(a):
        return math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def same(a, b, shared_tuples=False):
    """True if b is a faithful copy of a: same exact types all the way
    down, equal values, -0.0 kept, NaN == NaN. With shared_tuples, a
    SharedTuple stands for a tuple."""
    ta, tb = type(a), type(b)
    if ta is tuple and shared_tuples and tb is SharedTuple:
        return len(a) == len(b) and all(
            same(x, y, shared_tuples) for x, y in zip(a, b))
    if ta is not tb:
        return False
    if ta is float:
        return _float_same(a, b)
    if ta is complex:
        return _float_same(a.real, b.real) and _float_same(a.imag, b.imag)
    if ta in (tuple, list):
        return len(a) == len(b) and all(
            same(x, y, shared_tuples) for x, y in zip(a, b))
    if ta is dict:
        if len(a) != len(b):
            return False
        return all(same(ka, kb, shared_tuples) and same(va, vb, shared_tuples)
                   for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    if ta in (set, frozenset):
        if len(a) != len(b) or a != b:
            return False
        bmap = {x: x for x in b}
        return all(same(x, bmap[x], shared_tuples) for x in a)
    return a == b


def rt_dumps(x, **kw):
    data = dumps(x, **kw)
    assert type(data) is bytes
    assert data[:5] == b"LCHV\x01"
    assert len(data) % 8 == 0
    return loads(data)


def rt_channel(x, pickle=True):
    ch = Channel(pickle=pickle)
    ch.put(x)
    return ch.get_nowait()


def check_roundtrip(x):
    """Round trip through dumps/loads (with and without pickle allowed) and
    through channels with and without pickle."""
    y = rt_dumps(x)
    assert same(x, y), (x, y)
    y = rt_dumps(x, pickle=False)
    assert same(x, y), (x, y)
    y = rt_channel(x)
    assert same(x, y), (x, y)
    y = rt_channel(x, pickle=False)
    assert same(x, y), (x, y)


# --------------------------------------------------------------------------
# Hypothesis strategies
# --------------------------------------------------------------------------

ints = st.one_of(st.integers(),
                 st.integers(min_value=-2**70, max_value=2**70),
                 st.integers(min_value=-2**2000, max_value=2**2000),
                 st.sampled_from([2**63 - 1, -2**63, 2**63, -2**63 - 1,
                                  2**64, -2**64, 2**64 - 1]))
floats_nonan = st.floats(allow_nan=False)
texts = st.one_of(st.text(), st.text(st.characters(max_codepoint=0xFF)),
                  st.text(st.characters(min_codepoint=0x100,
                                        max_codepoint=0xFFFF,
                                        exclude_categories=["Cs"])),
                  st.text(st.characters(min_codepoint=0x10000)))
binaries = st.binary(max_size=300)

hashable_scalars = st.one_of(
    st.none(), st.booleans(), ints, floats_nonan,
    st.complex_numbers(allow_nan=False), texts, binaries)
hashables = st.recursive(
    hashable_scalars,
    lambda c: st.one_of(st.lists(c, max_size=4).map(tuple),
                        st.frozensets(c, max_size=4)),
    max_leaves=10)

scalars = st.one_of(
    st.none(), st.booleans(), ints, st.floats(),
    st.complex_numbers(), texts, binaries, binaries.map(bytearray))
values = st.recursive(
    scalars,
    lambda c: st.one_of(
        st.lists(c, max_size=5),
        st.lists(c, max_size=5).map(tuple),
        st.dictionaries(hashables, c, max_size=5),
        st.sets(hashables, max_size=5),
        st.frozensets(hashables, max_size=5)),
    max_leaves=25)


@given(values)
def test_roundtrip_generated(x):
    check_roundtrip(x)


@given(st.lists(values, max_size=8))
def test_roundtrip_generated_list_of_values(x):
    check_roundtrip(x)


@given(values)
def test_dumps_is_deterministic(x):
    assert dumps(x) == dumps(x)


@given(st.lists(values, max_size=6))
def test_generated_through_one_channel_in_order(xs):
    ch = Channel(pickle=False)
    for x in xs:
        ch.put(x)
    assert ch.qsize() == len(xs)
    for x in xs:
        assert same(x, ch.get_nowait())


@given(st.floats(allow_nan=True))
def test_float_bits(x):
    for y in (rt_dumps(x), rt_channel(x)):
        assert struct.pack("<d", x) == struct.pack("<d", y)


@given(st.binary(max_size=200))
def test_loads_arbitrary_bytes(data):
    try:
        loads(data)
    except ValueError:
        pass


@given(st.integers(0, 255), st.binary(min_size=8, max_size=8),
       st.binary(max_size=200))
def test_loads_fuzzed_body_after_valid_header(code, slot, body):
    body += b"\0" * (-len(body) % 8)
    data = (b"LCHV\x01" + bytes([code]) + b"\0\0"
            + struct.pack("<II", 24 + len(body), 0) + slot + body)
    _loads_or_valueerror(data)


# --------------------------------------------------------------------------
# Explicit values and extremes
# --------------------------------------------------------------------------

EXTREME_INTS = [0, 1, -1, 255, 256, -256, 2**31, -2**31, 2**32,
                2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64 - 1, 2**64,
                -2**64, -2**64 - 1, 2**127, -(2**1000), 2**1000 + 1,
                10**5000, -(10**5000), 1 << 100_000, -(1 << 100_000) + 1]


@pytest.mark.parametrize("x", EXTREME_INTS, ids=lambda x: hex(x)[:24])
def test_extreme_ints(x):
    check_roundtrip(x)


def test_bool_is_bool():
    for x in (True, False):
        for y in (rt_dumps(x), rt_channel(x)):
            assert y is x


FLOATS = [0.0, -0.0, 1.5, -1.5, math.inf, -math.inf, math.nan, -math.nan,
          5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
          -1.7976931348623157e308, math.pi, 1e300, float(2**53 + 1)]


@pytest.mark.parametrize("x", FLOATS, ids=repr)
def test_extreme_floats(x):
    check_roundtrip(x)
    for y in (rt_dumps(x), rt_channel(x), rt_channel(x, pickle=False)):
        assert type(y) is float
        assert struct.pack("<d", x) == struct.pack("<d", y)


def test_negative_zero_sign():
    for y in (rt_dumps(-0.0), rt_channel(-0.0)):
        assert math.copysign(1.0, y) == -1.0
    for y in (rt_dumps(0.0), rt_channel(0.0)):
        assert math.copysign(1.0, y) == 1.0


def test_nan_payload_kept():
    for bits in (0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001,
                 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        f = struct.unpack("<d", struct.pack("<Q", bits))[0]
        expected = struct.pack("<d", f)     # the bits Python itself keeps
        for y in (rt_dumps(f), rt_channel(f), rt_channel([f])[0]):
            assert struct.pack("<d", y) == expected


@pytest.mark.parametrize("x", [
    0j, complex(-0.0, -0.0), complex(1, -2), complex(math.inf, -0.0),
    complex(math.nan, math.inf), complex(-math.nan, 5e-324),
    complex(1e308, -1e308)], ids=repr)
def test_complex(x):
    check_roundtrip(x)


STRINGS = ["", "a", "hello world", "\x00", "a\x00b", "\x7f", "\x80", "café",
           "\xff" * 3, "\u0100", "€1", "\uffff", "\ue000", "😀",
           "\U0010ffff", "a😀b€c\xe9\x00", "x" * 100_000,
           "é" * 5000, "€" * 5000, "😀" * 5000,
           "mixed " * 1000 + "😀"]


@pytest.mark.parametrize("x", STRINGS, ids=lambda s: repr(s[:10]))
def test_strings(x):
    check_roundtrip(x)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 255, 4095, 4096, 4097,
                               100_000, 1 << 20])
def test_bytes_sizes(n):
    data = bytes(random.Random(n).getrandbits(8) for _ in range(min(n, 5000)))
    data = (data * (n // max(1, len(data)) + 1))[:n]
    check_roundtrip(data)
    check_roundtrip(bytearray(data))
    check_roundtrip([data, bytearray(data), (data,)])


def test_bytearray_comes_back_as_new_bytearray():
    ba = bytearray(b"abc")
    for y in (rt_dumps(ba), rt_channel(ba)):
        assert type(y) is bytearray and y == ba and y is not ba
        y[0] = 0x7A
    assert ba == b"abc"


@pytest.mark.parametrize("x", [
    (), [], {}, set(), frozenset(), ((),), [[]], [{}], {(): ()},
    {frozenset(): frozenset()}, ([], {}, set(), frozenset(), "", b""),
    {1: 1, 1.5: 2, "a": 3, b"b": 4, None: 5, True: 6, (1, 2): 7,
     frozenset({1}): 8, 2**100: 9, 1j: 10},
    {0.0, -1, "x", b"y", None, (1, (2, (3,))), frozenset({frozenset()})},
    frozenset({1, 2, 3}),
    list(range(10000)),
    {str(i): i for i in range(5000)},
    set(range(5000)),
], ids=lambda x: repr(x)[:30])
def test_containers(x):
    check_roundtrip(x)


def test_dict_order_kept():
    d = {k: k for k in ["z", "a", "m", 3, 1, 2]}
    for y in (rt_dumps(d), rt_channel(d)):
        assert list(y) == list(d)


def test_mutable_results_are_independent():
    x = [[1, 2], {"a": [3]}, {4}]
    ch = Channel()
    ch.put(x)
    x[0].append(99)
    y = ch.get()
    assert y == [[1, 2], {"a": [3]}, {4}]
    z = rt_channel(y)
    y[1]["a"].append(5)
    assert z == [[1, 2], {"a": [3]}, {4}]


def test_shared_references_become_copies():
    a = [1, 2]
    x = [a, a, (a,)]
    for y in (rt_dumps(x), rt_channel(x)):
        assert y == x


# --------------------------------------------------------------------------
# Nesting depth
# --------------------------------------------------------------------------

def nest(n, kind="tuple", leaf=1):
    x = leaf
    for _ in range(n):
        if kind == "tuple":
            x = (x,)
        elif kind == "list":
            x = [x]
        elif kind == "dict":
            x = {"k": x}
        elif kind == "frozenset":
            x = frozenset([x])
    return x


@pytest.mark.parametrize("kind", ["tuple", "list", "dict", "frozenset"])
@pytest.mark.parametrize("depth", [1, 63, 64])
def test_depth_within_limit(kind, depth):
    x = nest(depth, kind)
    check_roundtrip(x)       # includes pickle=False: must not need pickle


@pytest.mark.parametrize("kind", ["tuple", "list", "dict", "frozenset"])
@pytest.mark.parametrize("depth", [65, 66, 200])
def test_depth_beyond_limit(kind, depth):
    x = nest(depth, kind)
    assert same(x, rt_dumps(x))
    assert same(x, rt_channel(x))
    with pytest.raises(NotShareableError):
        dumps(x, pickle=False)
    ch = Channel(pickle=False)
    with pytest.raises(NotShareableError):
        ch.put(x)
    assert ch.qsize() == 0


def test_depth_beyond_limit_inside_wider_value():
    x = [1, "a", {"deep": nest(70, "list")}, b"z"]
    assert same(x, rt_dumps(x))
    assert same(x, rt_channel(x))
    with pytest.raises(NotShareableError):
        rt_channel(x, pickle=False)


def test_mixed_nesting_at_limit():
    x = 1
    for i in range(32):             # hashable levels inside
        x = nest(1, ["frozenset", "tuple"][i % 2], x)
    for i in range(32):
        x = nest(1, ["list", "dict"][i % 2], x)
    check_roundtrip(x)
    x = [x]
    assert same(x, rt_channel(x))
    with pytest.raises(NotShareableError):
        dumps(x, pickle=False)


def test_self_referential():
    lst = [1]
    lst.append(lst)
    d = {"a": 1}
    d["self"] = d
    for x in (lst, d):
        for y in (rt_dumps(x), rt_channel(x)):
            assert type(y) is type(x)
        with pytest.raises(NotShareableError):
            dumps(x, pickle=False)
        with pytest.raises(NotShareableError):
            rt_channel(x, pickle=False)
    y = rt_channel(lst)
    assert y[0] == 1 and y[1] is y
    y = rt_dumps(d)
    assert y["a"] == 1 and y["self"] is y


def test_self_referential_through_nested():
    outer = [1, [2]]
    outer[1].append(outer)
    y = rt_channel(outer)
    assert y[1][1] is y
    with pytest.raises(NotShareableError):
        rt_channel(outer, pickle=False)


# --------------------------------------------------------------------------
# Subclasses and other types: pickled
# --------------------------------------------------------------------------

class Color(enum.IntEnum):
    RED = 1
    BLUE = 2


class Perm(enum.IntFlag):
    R = 4
    W = 2


class MyStr(str):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyBytes(bytes):
    pass


class MyList(list):
    pass


class MyDict(dict):
    pass


class MyTuple(tuple):
    pass


class MyFrozenSet(frozenset):
    pass


Point = collections.namedtuple("Point", "x y")


@dataclass(frozen=True)
class Thing:
    a: int
    b: str


SUBCLASSES = [Color.BLUE, Perm.R | Perm.W, MyStr("hi"), MyInt(5),
              MyInt(2**100), MyFloat(1.5), MyBytes(b"ab"), MyList([1, 2]),
              MyDict(a=1), MyTuple((1, 2)), MyFrozenSet({1}),
              collections.OrderedDict([("b", 1), ("a", 2)]),
              collections.defaultdict(int, {"x": 1}),
              collections.Counter("abca"), collections.deque([1, 2]),
              Point(1, 2)]
OTHER = [Decimal("1.25"), Fraction(1, 3), Thing(1, "x"), range(3, 10, 2),
         array.array("d", [1.0, 2.0]), pathlib.PurePosixPath("/a/b"),
         slice(1, 2, 3), Ellipsis, NotImplemented, int, Color,
         "surrogate \ud800", "\udfff", "a\udcffb\U0001f600",
         ValueError("x")]


def _eq(x, y):
    if isinstance(x, BaseException):
        return type(x) is type(y) and x.args == y.args
    return x == y


@pytest.mark.parametrize("x", SUBCLASSES + OTHER, ids=repr)
def test_pickled_types(x):
    for y in (rt_dumps(x), rt_channel(x)):
        assert type(y) is type(x), (x, y)
        assert _eq(x, y)
        if isinstance(x, collections.OrderedDict):
            assert list(y) == list(x)
    with pytest.raises(NotShareableError):
        dumps(x, pickle=False)
    ch = Channel(pickle=False)
    with pytest.raises(NotShareableError):
        ch.put(x)
    assert ch.qsize() == 0


@pytest.mark.parametrize("x", SUBCLASSES + OTHER, ids=repr)
def test_pickled_types_nested(x):
    v = [1, {"k": (x, "tail")}, b"b"]
    for y in (rt_dumps(v), rt_channel(v)):
        inner = y[1]["k"][0]
        assert type(inner) is type(x)
        assert _eq(inner, x)
        assert y[0] == 1 and y[2] == b"b" and y[1]["k"][1] == "tail"
    with pytest.raises(NotShareableError):
        rt_channel(v, pickle=False)


def test_subclass_as_dict_key_and_set_element():
    v = {MyStr("k"): 1, Color.RED: 2}
    for y in (rt_dumps(v), rt_channel(v)):
        assert y == v
        assert sorted(type(k).__name__ for k in y) == ["Color", "MyStr"]
    s = frozenset({Point(1, 2)})
    y = rt_channel(s)
    assert y == s and type(next(iter(y))) is Point


UNPICKLABLE = [lambda: 1, threading.Lock(), (i for i in range(3)),
               [1, lambda: 2], {"k": threading.Lock()}]


@pytest.mark.parametrize("x", UNPICKLABLE, ids=lambda x: type(x).__name__)
def test_unpicklable(x):
    with pytest.raises(NotShareableError):
        dumps(x)
    with pytest.raises(NotShareableError):
        dumps(x, pickle=False)
    with pytest.raises(NotShareableError):
        rt_channel(x)
    with pytest.raises(NotShareableError):
        rt_channel(x, pickle=False)


class ExplodingReduce:
    def __reduce__(self):
        raise RuntimeError("no")


def test_pickle_error_becomes_not_shareable():
    with pytest.raises(NotShareableError):
        dumps(ExplodingReduce())
    with pytest.raises(NotShareableError):
        rt_channel([ExplodingReduce()])


def test_dumps_arguments():
    with pytest.raises(TypeError):
        dumps()
    with pytest.raises(TypeError):
        dumps(1, True)          # pickle is keyword-only
    with pytest.raises(TypeError):
        dumps(1, nonsense=True)
    with pytest.raises(TypeError):
        loads()
    with pytest.raises(TypeError):
        loads(dumps(1), dumps(2))


# --------------------------------------------------------------------------
# Shared objects in dumps
# --------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 5, 4096, 10000])
def test_dumps_shared_buffer_is_its_bytes(n):
    data = bytes(range(256)) * (n // 256 + 1)
    data = data[:n]
    sb = SharedBuffer(data)
    out = dumps(sb)
    assert out == dumps(data)
    y = loads(out)
    assert type(y) is bytes and y == data
    assert dumps(sb, pickle=False) == out
    assert loads(dumps([sb, sb[1:3]])) == [data, data[1:3]]


def test_dumps_shared_tuple_is_the_tuple():
    t = (1, "a", (2, (3, b"x")), [4], None)
    st_ = SharedTuple(t)
    assert dumps(st_) == dumps(t)
    y = loads(dumps(st_))
    assert type(y) is tuple and y == t
    assert type(y[2]) is tuple and type(y[2][1]) is tuple
    assert loads(dumps({"k": st_})) == {"k": t}
    assert dumps(st_[2]) == dumps(t[2])


def test_dumps_channel_refused():
    ch = Channel()
    for x in (ch, [ch], {"k": (1, ch)}):
        with pytest.raises(NotShareableError):
            dumps(x)
        with pytest.raises(NotShareableError):
            dumps(x, pickle=False)


def test_dumps_large_bytes_self_contained():
    big = bytes(range(256)) * 100
    out = dumps([big, big])
    assert len(out) > 2 * len(big)
    assert loads(out) == [big, big]
    assert loads(bytes(out)) == [big, big]


@pytest.mark.parametrize("n", [0, 1, 8, 231, 232, 1000, 65536, 1 << 20])
def test_dumps_bytes_is_written_once_at_its_size(n):
    """dumps writes into the bytes object it returns (grown as needed,
    trimmed at the end): exactly the header, the slot and the padded
    payload, whatever the size hint did."""
    data = bytes(range(256)) * (n // 256 + 1)
    data = data[:n]
    out = dumps(data)
    assert type(out) is bytes
    assert len(out) == 24 + (n + 7) // 8 * 8
    assert out[24:24 + n] == data and loads(out) == data


@pytest.mark.parametrize("x", [
    tuple("s%d" % i for i in range(3000)),          # the hint is exact
    tuple(("k", i, "é" * (i % 7)) for i in range(2000)),   # grown
    ["x" * 300, ["y" * 5000, ("z" * 70000,)]],      # grown past 64 KiB
    tuple(range(10000)) + (Decimal("1.5"),),       # pickled element
])
def test_dumps_grown_and_trimmed(x):
    out = dumps(x)
    assert type(out) is bytes and same(loads(out), x)
    if type(x) is tuple:
        assert out == dumps(SharedTuple(x))
    ch = Channel()
    ch.put(x)
    assert same(ch.get_nowait(), x)


def test_queued_value_is_one_object():
    """A queued value that is not a scalar is one libchan object: its
    encoding and side table in one block. Bytes of 64 KiB and more travel in
    a shared buffer of their own, one more."""
    ch = Channel()
    try:
        gc.collect()
        base = libchan.debug_counters()["live_objects"]
        for i in range(100):
            ch.put((i, "x"))
        ch.put("20 characters, ascii")
        ch.put(tuple(range(1000)))
        ch.put(b"b" * 60000)
        assert libchan.debug_counters()["live_objects"] == base + 103
        ch.put(b"b" * 65536)
        assert libchan.debug_counters()["live_objects"] == base + 105
        ch.put(7)
        ch.put(None)
        assert libchan.debug_counters()["live_objects"] == base + 105
        for i in range(100):
            assert ch.get_nowait() == (i, "x")
        assert ch.get_nowait() == "20 characters, ascii"
        assert ch.get_nowait() == tuple(range(1000))
        assert ch.get_nowait() == b"b" * 60000
        assert ch.get_nowait() == b"b" * 65536
        assert libchan.debug_counters()["live_objects"] == base
    finally:
        ch.shutdown(immediate=True)


# --------------------------------------------------------------------------
# loads input
# --------------------------------------------------------------------------

def test_loads_accepts_buffers():
    x = {"a": [1, 2.5, "€", b"b"]}
    data = dumps(x)
    assert loads(data) == x
    assert loads(bytearray(data)) == x
    assert loads(memoryview(data)) == x
    assert loads(SharedBuffer(data)) == x
    assert loads(array.array("B", data)) == x
    assert loads(memoryview(b"\0" * 8 + data)[8:]) == x
    # an unaligned copy
    assert loads(memoryview(b"\0" + data)[1:]) == x


def test_loads_pickle_false():
    plain = {"a": [1, 2.5, "é", b"b", (None, True)], 2**70: frozenset({1})}
    assert loads(dumps(plain), pickle=False) == plain
    assert loads(dumps(plain), pickle=True) == plain
    for x in (Decimal("1.5"), [1, MyStr("x")], {"k": (Color.RED,)},
              "lone \ud800", nest(70)):
        data = dumps(x)
        assert same(x, loads(data)) or x == loads(data)
        with pytest.raises(NotShareableError):
            loads(data, pickle=False)
    with pytest.raises(TypeError):
        loads(dumps(1), False)          # keyword-only


@pytest.mark.parametrize("bad", ["text", 5, None, 1.5, [1, 2], object()])
def test_loads_non_buffer(bad):
    with pytest.raises(TypeError):
        loads(bad)


OFFSET_RE = re.compile(r"(?:byte|offset)\D{0,3}(\d+)", re.IGNORECASE)


def assert_offset_error(data):
    with pytest.raises(ValueError) as ei:
        loads(data)
    msg = str(ei.value)
    assert OFFSET_RE.search(msg), f"no byte offset in {msg!r}"
    return int(OFFSET_RE.search(msg).group(1))


SAMPLES = [None, True, -1, 2**63, -(2**200), 1.5, complex(1, -2), "",
           "hello", "café", "€1", "😀", b"\x00\x01\x02", (), (1, "a", None),
           ((), [True], "xy"), {"k": 1.0}, {7}, frozenset(),
           [1, [2, [3, {"x": (4.5, "é", b"\xff" * 9)}]]],
           {"a": {1, 2, 3}, "b": frozenset({"x"}), (1, 2): [None, 2**70]}]


@pytest.mark.parametrize("x", SAMPLES, ids=lambda x: repr(x)[:20])
def test_truncation_at_every_offset(x):
    data = dumps(x)
    for k in range(len(data)):
        assert_offset_error(data[:k])
    assert_offset_error(data + b"\0" * 8)
    assert_offset_error(data + b"\0")


def test_truncation_of_pickled_value():
    data = dumps([Decimal("1.5"), MyStr("x")])
    for k in range(len(data)):
        assert_offset_error(data[:k])


def test_empty_and_garbage():
    assert_offset_error(b"")
    assert_offset_error(b"\0" * 24)
    assert_offset_error(b"LCHV")
    good = dumps(None)
    assert_offset_error(b"XCHV" + good[4:])
    assert_offset_error(good[:4] + b"\x02" + good[5:])      # version
    assert_offset_error(good[:5] + b"\x00" + good[6:])      # type 0
    assert_offset_error(good[:5] + b"\xff" + good[6:])      # unknown type
    assert_offset_error(good[:6] + b"\x01\x00" + good[8:])  # flags


def _flip_trials(data, rng, n):
    for _ in range(n):
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        yield bytes(b)


@pytest.mark.parametrize("x", SAMPLES, ids=lambda x: repr(x)[:20])
def test_bit_flips_never_crash(x):
    data = dumps(x, pickle=False)
    # every single-bit flip
    for i in range(len(data)):
        for bit in range(8):
            b = bytearray(data)
            b[i] ^= 1 << bit
            _loads_or_valueerror(bytes(b))
    # and random multi-bit flips
    rng = random.Random(len(data))
    for b in _flip_trials(data, rng, 300):
        _loads_or_valueerror(b)


def _loads_or_valueerror(b):
    # Bytes that break the format name the offset; well-formed bytes that
    # Python cannot rebuild (a list as a dict key, a payload tag the
    # binding does not know) say so, also as ValueError.
    try:
        loads(b, pickle=False)
    except NotShareableError:
        pass  # a pickled payload appeared, and pickle is off
    except ValueError as e:
        assert (OFFSET_RE.search(str(e))
                or "well formed but cannot be rebuilt" in str(e)), repr(e)


def test_byte_overwrites_never_crash():
    data = dumps([1, "é", (2**70, b"abc", {"k": {1.5}}), [None, True]])
    for i in range(len(data)):
        for v in (0x00, 0x01, 0x7F, 0x80, 0xFF):
            b = bytearray(data)
            b[i] = v
            _loads_or_valueerror(bytes(b))


def test_side_table_reference_from_outside_refused():
    # The "refs" golden vector names two side-table entries; bytes from
    # outside have no side table.
    refs = bytes.fromhex(
        "4c43485601100000 3000000002000000"
        "1800000002000000 180d000000000000"
        "0000000000000000 0100000000000000".replace(" ", ""))
    assert_offset_error(refs)


def test_error_offsets_point_into_the_data():
    good = dumps((1, "a", None))
    # a padding byte after the type codes (at 24 + 3)
    b = bytearray(good)
    b[27] = 1
    off = assert_offset_error(bytes(b))
    assert 0 <= off <= len(good)
    # a bad UTF-8 byte in the string record at 56
    b = bytearray(good)
    b[56] = 0xFF
    off = assert_offset_error(bytes(b))
    assert 0 <= off <= len(good)


# --------------------------------------------------------------------------
# Golden vectors from codecs/FORMAT.md
# --------------------------------------------------------------------------

GOLDEN_VALUES = {
    "none": None, "true": True, "int_minus_one": -1, "int64_min": -2**63,
    "bigint_2_63": 2**63, "bigint_neg": -2**63 - 1, "float_1_5": 1.5,
    "float_neg_zero": -0.0, "complex": complex(1.0, -2.0), "str_empty": "",
    "str_ascii": "hello", "str_latin1": "café", "str_bmp": "€1",
    "str_astral": "😀", "bytes": b"\x00\x01\x02", "tuple_empty": (),
    "tuple_mixed": (1, "a", None), "nested": ((), [True], "xy"),
    "dict": {"k": 1.0}, "set": {7}, "frozenset_empty": frozenset(),
}


def _golden_vectors():
    fmt = pathlib.Path(__file__).resolve().parents[2] / "codecs" / "FORMAT.md"
    if not fmt.exists():
        return {}
    out = {}
    text = fmt.read_text(encoding="utf-8")
    for m in re.finditer(r"```hex golden=(\w+)\n(.*?)```", text, re.S):
        hexdigits = "".join(line.split("#")[0]
                            for line in m.group(2).splitlines())
        out[m.group(1)] = bytes.fromhex(hexdigits.replace(" ", ""))
    return out


GOLDEN = _golden_vectors()


@pytest.mark.parametrize("name", sorted(GOLDEN_VALUES))
def test_golden_vectors(name):
    if name not in GOLDEN:
        pytest.skip("codecs/FORMAT.md not found")
    data, value = GOLDEN[name], GOLDEN_VALUES[name]
    assert dumps(value) == data
    assert same(value, loads(data))
