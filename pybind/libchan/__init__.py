"""libchan: move Python data between subinterpreters (and threads) without
polling, copying or pickle.

- ``Channel``: a ``queue.Queue``-style MPMC channel that any interpreter of
  the process can use; blocking calls release the GIL and sleep on a futex.
- ``SharedBuffer``: immutable bytes that every interpreter reads in place.
- ``SharedTuple``: an immutable tuple encoded once, read lazily in place.
- ``dumps``/``loads``: the flat codec format as bytes, like ``pickle``.

Channels carry None, bool, int, float, complex, str, bytes, bytearray,
tuple, list, dict, set and frozenset by value (encoded, never pickled),
``SharedBuffer``, ``SharedTuple`` and ``Channel`` by reference (zero copy),
and anything else pickled, unless the channel was made with
``pickle=False``.
"""

from libchan._libchan import (
    Channel,
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
)

__all__ = [
    "Channel",
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
]
__version__ = "0.1.0"
