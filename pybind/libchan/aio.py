"""libchan.aio: awaiting channels on an asyncio event loop, in any
interpreter, with no thread per waiter and no polling.

``await ch.get_async(timeout=None)``, ``await ch.put_async(obj,
timeout=None)`` and ``async for item in ch`` (the Channel methods call the
functions here), and ``await select_async(*channels, timeout=None)``.

How it waits. Each running loop has one hub: a libchan fd waiter (an
eventfd) that the loop watches with ``loop.add_reader``. A coroutine that
finds nothing to take arms the waiter on the channel (libchan makes the fd
readable at the channel's next put or shutdown, whichever thread or
interpreter does it) and awaits a future in that channel's line. When the
fd is readable the hub asks the waiter which channels moved and wakes the
oldest future of each of their lines; the woken coroutine then takes the
item itself. So a thousand pending ``get_async`` calls are a thousand
futures and at most one registration per channel: no thread, no timer.

Cancellation loses nothing. A future only says "look again"; the item is
taken by the coroutine after it resumes, so one cancelled before then
leaves the item in the channel and hands its wake-up to the next waiter of
its line (as ``asyncio.Queue`` does). One that did take an item wakes the
next waiter too: the registration fired once, and more items may have come.
A wake-up can be spurious (someone else took the item): the coroutine then
arms again and goes back to the head of its line.
"""

import asyncio
import threading
import weakref
from collections import deque
from os import sched_yield as _yield
from time import perf_counter as _now
from typing import Any

from libchan._libchan import Channel, Empty, Full, ShutDown, _Waiter

__all__ = ["get_async", "put_async", "select_async", "anext"]

MAX_SELECT = 64          # channels one select takes (libchan's LCH_SELECT_MAX)
# How long a loop that starts waiting keeps checking its waiter between its
# other callbacks before it lets the selector sleep: what a blocking get
# spins (LCH_DEFAULT_SPIN_NS). A wake-up that crosses CPUs costs tens of
# microseconds on a VM; a peer that answers within this window costs none.
SPIN_SECONDS = 20e-6

_local = threading.local()   # per thread: {loop: hub}, weakly keyed


class _Line:
    """The coroutines waiting on one side of one channel, oldest first."""

    __slots__ = ("ch", "send", "futs", "live")

    def __init__(self, ch, send):
        self.ch, self.send = ch, send
        self.futs = deque()     # their futures; done ones are skipped
        self.live = 0           # coroutines in the line


class _Hub:
    """One event loop's fd waiter and its lines, by key (channel id << 1,
    | 1 for the send side, as the waiter reports them)."""

    __slots__ = ("waiter", "lines", "loop", "spin_until", "spinning",
                 "__weakref__")

    def __init__(self, loop):
        self.waiter = _Waiter()
        self.lines = {}
        self.loop = weakref.ref(loop)
        self.spin_until = 0.0
        self.spinning = False
        loop.add_reader(self.waiter.fileno(), self._ready)

    def spin(self):
        """A coroutine is about to wait: keep looking at the waiter (one
        atomic load per turn of the loop, which still runs every other
        callback and polls the selector without sleeping) for SPIN_SECONDS
        before letting the loop sleep on the fd."""
        self.spin_until = _now() + SPIN_SECONDS
        if not self.spinning:
            self.spinning = True
            self.loop().call_soon(self._spin)

    def _spin(self):
        if self.waiter.pending():
            self.spinning = False
            self._ready()
        elif _now() < self.spin_until:
            # Let a peer woken on this CPU run first (a no-op when no
            # other thread is runnable here).
            _yield()
            self.loop().call_soon(self._spin)
        else:
            self.spinning = False

    def _ready(self):
        lines = self.lines
        for key in self.waiter.take():
            line = lines.get(key)
            if line is not None:
                self.wake(line)

    def wake(self, line):
        """Wake the oldest coroutine still waiting in the line."""
        futs = line.futs
        while futs:
            fut = futs.popleft()
            if not fut.done():
                fut.set_result(line)
                return

    def join(self, key, ch, send):
        line = self.lines.get(key)
        if line is None:
            line = self.lines[key] = _Line(ch, send)
        line.live += 1
        return line

    def leave(self, key, line):
        line.live -= 1
        if line.live == 0:
            # Nobody waits here any more: stop watching the channel (which
            # releases the reference held while armed).
            del self.lines[key]
            self.waiter.disarm(line.ch, line.send)


def _hub():
    loop = asyncio.get_running_loop()
    # The last hub this thread used, weakly (a hub lives as long as its
    # loop, through `hubs`): usually the one wanted.
    last = getattr(_local, "last", None)
    hub = last() if last is not None else None
    if hub is not None and hub.loop() is loop:
        return loop, hub
    hubs = getattr(_local, "hubs", None)
    if hubs is None:
        hubs = _local.hubs = weakref.WeakKeyDictionary()
    hub = hubs.get(loop)
    if hub is None:
        hub = hubs[loop] = _Hub(loop)
    _local.last = weakref.ref(hub)
    return loop, hub


def _seconds(timeout):
    """timeout as the blocking calls take it: a number of seconds >= 0."""
    tp = type(timeout)
    if not (hasattr(tp, "__float__") or hasattr(tp, "__index__")):
        raise TypeError("'timeout' must be a number or None, not %s"
                        % tp.__name__)
    t = float(timeout)
    if not t >= 0:          # also NaN
        raise ValueError("'timeout' must be a non-negative number")
    return t


async def _wait(loop, hub, sides, attempt, timeout, exc):
    """Wait in the lines of `sides` ((key, channel, send) triples) until
    attempt() returns something other than the hub's waiter (which means
    "armed, nothing yet"); raise exc at the deadline."""
    w = hub.waiter
    lines = [hub.join(*side) for side in sides]
    handle = None
    state = [False, None]           # [expired, current future]

    def expire():
        state[0] = True
        fut = state[1]
        if fut is not None and not fut.done():
            fut.set_result(None)

    woken = None                    # the line whose wake-up we hold
    again = False
    try:
        if timeout is not None:
            t = _seconds(timeout)
            if t == 0:
                raise exc
            handle = loop.call_later(t, expire)
        while True:
            fut = state[1] = loop.create_future()
            for line in lines:
                if again:
                    line.futs.appendleft(fut)   # keep our turn
                else:
                    line.futs.append(fut)
            hub.spin()
            try:
                woken = await fut           # a line, or None at the deadline
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    woken = fut.result()    # woken, then cancelled: hand on
                raise
            r = attempt()
            if r is not w:
                return r
            # Nothing there after all (another consumer took it): armed
            # again, so the next movement wakes us; nothing to hand on.
            woken = None
            if state[0]:
                raise exc
            again = True
    finally:
        if handle is not None:
            handle.cancel()
        if woken is not None:
            hub.wake(woken)
        for side, line in zip(sides, lines):
            hub.leave(side[0], line)


async def get_async(ch: Channel, timeout: float | None = None) -> Any:
    """Remove and return the oldest item of ch, waiting on the running loop
    for one: forever if timeout is None, else up to timeout seconds, then
    raise Empty. After shutdown(), what is still queued, then ShutDown.
    Cancelled, it takes nothing."""
    loop, hub = _hub()
    w = hub.waiter
    item = w.get(ch)                # an item, or armed (w)
    if item is not w:
        return item
    return await _wait(loop, hub, ((ch.id << 1, ch, False),),
                       lambda: w.get(ch), timeout, Empty)


async def put_async(ch: Channel, obj: Any,
                    timeout: float | None = None) -> None:
    """Add obj to ch; on a bounded channel that is full, wait on the running
    loop for room: forever if timeout is None, else up to timeout seconds,
    then raise Full. ShutDown after shutdown(). Cancelled, it adds
    nothing."""
    loop, hub = _hub()
    w = hub.waiter
    if w.put(ch, obj):
        return None

    def attempt():
        return None if w.put(ch, obj) else w

    return await _wait(loop, hub, ((ch.id << 1 | 1, ch, True),), attempt,
                       timeout, Full)


async def select_async(*channels: Channel, timeout: float | None = None
                       ) -> tuple[Channel, Any]:
    """Wait on the running loop for the first of the channels to have an
    item; return (channel, item), taking only that item. When several have
    one, each is equally likely to be chosen. Forever if timeout is None,
    else up to timeout seconds, then Empty. A channel shut down and drained
    counts as ready: ShutDown, with .channel naming it. At most 64 channels
    (ValueError)."""
    if not channels:
        raise TypeError("select_async() needs at least one channel")
    if len(channels) > MAX_SELECT:
        raise ValueError("select_async() takes at most %d channels, got %d"
                         % (MAX_SELECT, len(channels)))
    loop, hub = _hub()
    w = hub.waiter
    r = w.select(channels)          # (channel, item), or armed on all (w)
    if r is not w:
        return r
    sides = {ch.id << 1: (ch.id << 1, ch, False) for ch in channels}
    return await _wait(loop, hub, tuple(sides.values()),
                       lambda: w.select(channels), timeout, Empty)


async def anext(ch: Channel) -> Any:
    """The next item for ``async for item in ch``, which ends once the
    channel is shut down and drained."""
    try:
        return await get_async(ch)
    except ShutDown:
        raise StopAsyncIteration from None
