# Type stubs for libchan._libchan, the C extension behind `import libchan`.
import queue
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from typing import Any, SupportsIndex, overload

if sys.version_info >= (3, 12):
    from collections.abc import Buffer
else:  # pragma: no cover
    Buffer = bytes

if sys.version_info >= (3, 14):
    # Where concurrent.interpreters exists (a build with subinterpreters),
    # its QueueEmpty/QueueFull, which derive from queue.Empty/queue.Full
    # and from QueueError (a RuntimeError); otherwise queue's own.
    from concurrent.interpreters import QueueEmpty as _EmptyBase
    from concurrent.interpreters import QueueFull as _FullBase
else:
    _EmptyBase = queue.Empty
    _FullBase = queue.Full

class Empty(_EmptyBase):
    """Raised by get() when nothing arrives (non-blocking, or timed out).
    On 3.14+ `except concurrent.interpreters.QueueEmpty` catches it."""

class Full(_FullBase):
    """Raised by put() when a bounded channel stays full. On 3.14+
    `except concurrent.interpreters.QueueFull` catches it."""

if sys.version_info >= (3, 13):
    class ShutDown(queue.ShutDown):
        """Raised by put() after shutdown(), and by get() once drained.
        Raised by select()/select_async(), it has a ``channel`` attribute:
        the channel that is shut down."""
        channel: "Channel"
else:
    class ShutDown(Exception):
        """Raised by put() after shutdown(), and by get() once drained.
        Raised by select()/select_async(), it has a ``channel`` attribute:
        the channel that is shut down."""
        channel: "Channel"

class NotShareableError(ValueError):
    """The object cannot travel: pickling is off for this channel or
    call, or pickle itself failed."""

class ChannelNotFoundError(KeyError):
    """No live channel has this name or id (lookup()), or a pickled
    Channel cannot be unpickled here: the channel is gone, or it was
    pickled in another process."""

class Channel:
    """A multi-producer multi-consumer channel shared by every interpreter
    of the process, with the interface of queue.Queue and PEP 734's Queue.

    maxsize <= 0 means unbounded (maxsize reports it as given); otherwise
    put() blocks while maxsize items are queued. A named channel can be
    found with lookup(name) from any interpreter while it lives.
    pickle=False refuses objects the codec cannot carry instead of
    pickling them.

    An interpreter has one Channel object per channel: one that comes back
    (get(), lookup(), another interpreter, unpickling) is the object this
    interpreter already holds, if any. A Channel pickles by id, for this
    process only, holding no reference: keep it alive until unpickled."""

    def __init__(self, maxsize: int = 0, *, name: str | None = None,
                 pickle: bool = True) -> None: ...
    @property
    def id(self) -> int:
        """Process-unique id; lookup(id) finds the channel."""
    @property
    def maxsize(self) -> int:
        """As given at creation (<= 0: unbounded), like queue.Queue."""
    @property
    def name(self) -> str | None: ...
    @property
    def pickle(self) -> bool: ...
    @property
    def is_shutdown(self) -> bool: ...
    def put(self, obj: Any, block: bool = True,
            timeout: float | None = None) -> None: ...
    def put_nowait(self, obj: Any) -> None: ...
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...
    def get_nowait(self) -> Any: ...
    def qsize(self) -> int: ...
    def empty(self) -> bool: ...
    def full(self) -> bool: ...
    def shutdown(self, immediate: bool = False) -> None: ...
    def __iter__(self) -> Iterator[Any]:
        """Yield items until the channel is shut down and drained."""
    def get_async(self, timeout: float | None = None
                  ) -> Coroutine[Any, Any, Any]:
        """Coroutine: get() on the running asyncio loop, which watches a
        file descriptor (no thread, no polling). Empty on timeout,
        ShutDown once shut down and drained; cancelled, it takes nothing
        (libchan.aio)."""
    def put_async(self, obj: Any, timeout: float | None = None
                  ) -> Coroutine[Any, Any, None]:
        """Coroutine: put() on the running asyncio loop; waits only on a
        full bounded channel. Full on timeout, ShutDown after shutdown();
        cancelled while waiting, it adds nothing (libchan.aio)."""
    def __aiter__(self) -> AsyncIterator[Any]:
        """``async for item in ch``: get_async() until the channel is shut
        down and drained."""
    def __anext__(self) -> Coroutine[Any, Any, Any]: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Callable[[int, int, int], Channel],
                                  tuple[int, int, int]]:
        """By id, process id and a per-process random number: unpickling
        in this process gives this same object (copy.copy and deepcopy
        too); in another process, or once the channel is gone,
        ChannelNotFoundError."""

def lookup(name_or_id: str | int) -> Channel:
    """The live channel with this name or id (this interpreter's Channel
    object for it); ChannelNotFoundError, a KeyError, if there is none."""

def select(*channels: Channel, timeout: float | None = None
           ) -> tuple[Channel, Any]:
    """Wait for the first of the channels (1 to 64) to have an item and
    return (channel, item), taking only that one; each ready channel is
    equally likely to be chosen. Waits like get(): Empty on timeout;
    ShutDown (with .channel) for a channel shut down and drained."""

class _Waiter:
    """An eventfd that becomes readable when a channel it is armed on may
    have moved (what libchan.aio builds on; one event loop's)."""

    def fileno(self) -> int: ...
    def pending(self) -> bool:
        """Whether something fired since the last take() (no system
        call)."""
    def take(self) -> list[int]:
        """Drain the fd; keys (channel id << 1 | 1 for the send side) of
        what fired since the last call."""
    def get(self, channel: Channel) -> Any:
        """An item, or this waiter itself once armed on the channel."""
    def put(self, channel: Channel, item: Any) -> bool:
        """True if added, False once armed on the channel's send side."""
    def select(self, channels: tuple[Channel, ...]) -> Any:
        """(channel, item), or this waiter itself once armed on all."""
    def disarm(self, channel: Channel, send: bool) -> None: ...
    def close(self) -> None: ...

def _unpickle_channel(id: int, pid: int, nonce: int) -> Channel:
    """What a pickled Channel calls to come back (see Channel.__reduce__)."""

class SharedBuffer:
    """Immutable bytes in shared memory: one copy in, then read in place
    by every interpreter (buffer protocol, read-only)."""

    def __init__(self, data: Buffer) -> None: ...
    @property
    def address(self) -> int:
        """Address of the first byte (64-byte aligned unless a slice)."""
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: SupportsIndex) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> "SharedBuffer | bytes": ...
    def __buffer__(self, flags: int) -> memoryview: ...
    def __bytes__(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[type["SharedBuffer"], tuple[bytes]]: ...

class SharedTuple:
    """An immutable tuple encoded once into shared memory; elements are
    decoded on access, nested tuples come back as SharedTuple views."""

    def __init__(self, iterable: Iterable[Any] = ()) -> None: ...
    @property
    def nbytes(self) -> int:
        """Size of the encoding, in bytes."""
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: SupportsIndex) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Any, ...]: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __contains__(self, value: object) -> bool: ...
    def count(self, value: Any) -> int: ...
    def index(self, value: Any, start: SupportsIndex = 0,
              stop: SupportsIndex = sys.maxsize) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[type["SharedTuple"], tuple[tuple[Any, ...]]]: ...

def dumps(obj: Any, *, pickle: bool = True) -> bytes:
    """Encode obj in the codec format (self-contained bytes)."""

def loads(data: Buffer, *, pickle: bool = True) -> Any:
    """Decode bytes made by dumps(), validating them as untrusted input:
    corrupt data raises ValueError naming the byte offset. Pickled values
    inside are unpickled unless pickle=False (then NotShareableError):
    pass pickle=False for data you do not trust."""

def debug_counters() -> dict[str, int]:
    """live_objects (counted while debug_track_objects is on),
    futex_waits and futex_wakes, fd_signals (eventfd writes that woke
    event loops), process-wide."""

def debug_track_objects(on: bool) -> None:
    """Count live libchan objects (channels, buffers, encodings)."""
