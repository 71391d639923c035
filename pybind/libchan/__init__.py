"""libchan: move Python data between subinterpreters (and threads) without
polling, copying or pickle.

- ``Channel``: a ``queue.Queue``-style MPMC channel that any interpreter of
  the process can use; blocking calls release the GIL and sleep on a futex.
- ``SharedBuffer``: immutable bytes that every interpreter reads in place.
- ``SharedTuple``: an immutable tuple encoded once, read lazily in place.
- ``dumps``/``loads``: the flat codec format as bytes, like ``pickle``.
- ``InterpreterPoolExecutor``: a ``concurrent.futures`` executor whose
  workers are subinterpreters fed through channels (``libchan.executor``).
- ``select``: wait for the first of several channels; ``select_async``,
  ``Channel.get_async``/``put_async`` and ``async for``: the same on an
  asyncio loop, in any interpreter (``libchan.aio``).

Channels carry None, bool, int, float, complex, str, bytes, bytearray,
tuple, list, dict, set and frozenset by value (encoded, never pickled),
``SharedBuffer``, ``SharedTuple`` and ``Channel`` by reference (zero copy),
and anything else pickled, unless the channel was made with
``pickle=False``.
"""

from libchan._libchan import (
    Channel,
    ChannelNotFoundError,
    Empty,
    Full,
    NotShareableError,
    SharedBuffer,
    SharedTuple,
    ShutDown,
    debug_counters,
    debug_track_objects,
    dumps,
    loads,
    lookup,
    select,
)

__all__ = [
    "Channel",
    "ChannelNotFoundError",
    "Empty",
    "Full",
    "NotShareableError",
    "SharedBuffer",
    "SharedTuple",
    "ShutDown",
    "debug_counters",
    "debug_track_objects",
    "dumps",
    "loads",
    "lookup",
    "select",
    "select_async",
    "InterpreterPoolExecutor",
    "BrokenInterpreterPool",
    "TaskError",
]
__version__ = "0.1.0"

_EXECUTOR = ("InterpreterPoolExecutor", "BrokenInterpreterPool", "TaskError")


def __getattr__(name):
    # libchan.executor loads concurrent.futures: only on first use, so that
    # a worker interpreter importing libchan does not pay for it.
    if name in _EXECUTOR:
        from libchan import executor

        return getattr(executor, name)
    if name == "select_async":
        # libchan.aio loads asyncio: only on first use, likewise.
        from libchan.aio import select_async

        return select_async
    raise AttributeError("module 'libchan' has no attribute %r" % name)
