"""The consumer: the same command loop for every transport.

This module runs unchanged in a subinterpreter, a thread or a child
process, so it imports only a few stdlib modules that load anywhere (and
its package's ``__init__`` imports nothing).
"""

import queue as _queue
from itertools import repeat as _repeat

# How long a consumer waits for its next command, and for each message inside
# a sample (whole seconds: the stdlib interpreters queues truncate timeouts
# to seconds).
CMD_TIMEOUT = 3600
DATA_TIMEOUT = 20


def serve(get, put, hot_get=None):
    """Answer the harness's commands until "stop" or until get() fails.

    get(timeout=...) waits for a command or a message; put(obj) replies.
    hot_get(), when given, is used for messages inside a sample instead of
    get(timeout=DATA_TIMEOUT) (for multiprocessing.Pipe, whose recv() has no
    timeout; the harness kills that consumer if it hangs). Commands and
    replies are str, which every transport carries natively.
    """
    from time import perf_counter

    T = DATA_TIMEOUT
    while True:
        try:
            cmd = get(timeout=CMD_TIMEOUT)
        except BaseException:
            return                       # timed out, shut down, or EOF
        try:
            if not isinstance(cmd, str):
                put("error unexpected item of type %s" % type(cmd).__name__)
                continue
            op, _, rest = cmd.partition(" ")
            if op == "stop":
                put("bye")
                return
            if op == "ping":
                put("pong %r" % perf_counter())
                continue
            if op == "probe":             # echo one item, for checking
                put(get(timeout=T) if hot_get is None else hot_get())
                continue
            n, touch = (int(v) for v in rest.split())
            if op == "oneway":
                put("ready")
                # The consumer touches each message minimally: len() of a
                # container, nothing for a scalar.
                if hot_get is None:
                    if touch:
                        len(get(timeout=T))
                        t1 = perf_counter()
                        for _ in _repeat(None, n - 1):
                            len(get(timeout=T))
                    else:
                        get(timeout=T)
                        t1 = perf_counter()
                        for _ in _repeat(None, n - 1):
                            get(timeout=T)
                else:
                    if touch:
                        len(hot_get())
                        t1 = perf_counter()
                        for _ in _repeat(None, n - 1):
                            len(hot_get())
                    else:
                        hot_get()
                        t1 = perf_counter()
                        for _ in _repeat(None, n - 1):
                            hot_get()
                t2 = perf_counter()
                put("done %r %r" % (t1, t2))
            elif op == "echo":
                put("ready")
                if hot_get is None:
                    for _ in _repeat(None, n):
                        put(get(timeout=T))
                else:
                    for _ in _repeat(None, n):
                        put(hot_get())
            else:
                put("error unknown command %r" % cmd)
        except BaseException as e:       # report, then wait for the next one
            try:
                put("error %s: %s" % (type(e).__name__, e))
            except BaseException:
                return


def pickling(get, put):
    """get(timeout=...) and put(obj) over a queue's, pickling every item
    the way 3.13's test.support.interpreters queues did by default
    (syncobj=False: pickle.dumps on put, pickle.loads on get). The harness
    and the consumer both wrap their ends, so commands are pickled too."""
    from pickle import dumps, loads

    def pget(timeout=None):
        return loads(get(timeout=timeout))

    def pput(obj):
        put(dumps(obj))
    return pget, pput


def mp_child(kind, a, b=None):
    """Entry point of the multiprocessing consumers (spawned)."""
    import libchan  # noqa: F401  (SharedTuple/SharedBuffer unpickle to it)

    if kind == "queue":
        serve(a.get, b.put)
        return
    conn = a

    def get(timeout=None):
        if timeout is not None and not conn.poll(timeout):
            raise _queue.Empty
        return conn.recv()

    serve(get, conn.send, hot_get=conn.recv)


def thread_child(qin, qout):
    """Entry point of the queue.SimpleQueue consumer (a thread)."""
    serve(qin.get, qout.put)
