"""Two subinterpreters, each running an asyncio HTTP server on one listening
socket shared from the main interpreter, stopped through a libchan channel.

    python examples/aio_http_workers.py [--requests 200] [--concurrency 8]

The main interpreter opens a listening socket on 127.0.0.1 and starts two
worker subinterpreters (each with its own GIL, in a thread of its own).
Each worker duplicates the socket's file descriptor, serves a tiny HTTP
response on it with ``asyncio.start_server`` and, at the same time, awaits
its control channel (``await control.get_async()``: no thread, no polling).
The main interpreter, which runs no event loop, sends requests over
loopback from a few client threads (a bounded number of connections);
then it opens a few more connections that are still sending their request,
tells every worker "stop", and finishes those requests: each worker stops
accepting, completes its open requests, reports what it served and
returns. The script checks that every request got its answer exactly once
and that no thread or subinterpreter is left, and prints a summary. Every
connection goes to 127.0.0.1; everything has a deadline.

Runs on CPython 3.13 to 3.15 (it drives subinterpreters with the
low-level module each version has; on 3.14+ ``concurrent.interpreters`` is
the public face of the same thing). Not on 3.12: CPython 3.12.1 aborts the
process (``free(): invalid pointer``, reproducible with the standard
library alone) when an isolated subinterpreter is the first to import
``ssl`` or ``_asyncio``, to create an asyncio Future or Task, or to call
one of several keyword-argument functions such as ``socket.socket(fileno=)``
(the argument parser caches a tuple in the memory of whichever interpreter
calls it first, CPython gh-119213), and when the main interpreter runs an
event loop while a subinterpreter does; later 3.12 releases fix some of it.
"""

import argparse
import collections
import socket
import sys
import threading
import time

import libchan

if sys.version_info >= (3, 13):
    import _interpreters as _xi

    def _create():
        return _xi.create("isolated")

    def _exec(iid, code):
        err = _xi.exec(iid, code)
        if err is not None:
            raise RuntimeError(getattr(err, "formatted", None) or err.msg)
else:
    import _xxsubinterpreters as _xi

    def _create():
        return _xi.create(isolated=True)

    def _exec(iid, code):
        _xi.run_string(iid, code)


def interpreter_count():
    return len(_xi.list_all())


# What each worker runs, in its own subinterpreter.
WORKER = r'''
import sys
sys.path[:] = {path!r}
import asyncio, os, socket
import libchan

NAME = {name!r}
control = libchan.lookup({control})
events = libchan.lookup({events})
served = []


async def handle(reader, writer):
    events.put(("accepted", NAME))
    try:
        request = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass                                    # headers: ignored
        parts = request.split()
        path = parts[1].decode() if len(parts) > 1 else "/"
        body = ("%s from %s\n" % (path, NAME)).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                     % len(body) + body)
        await writer.drain()
        served.append(path)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def main():
    handlers = set()

    def on_connection(reader, writer):
        task = asyncio.ensure_future(handle(reader, writer))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    sock = socket.socket(fileno=os.dup({fd}))       # the shared listener
    server = await asyncio.start_server(on_connection, sock=sock)
    events.put(("ready", NAME))
    command = await control.get_async()             # parked on the loop
    assert command == "stop", command
    server.close()                                  # accept no more
    events.put(("stopping", NAME))
    await asyncio.gather(*handlers)                 # finish open requests
    await server.wait_closed()
    events.put(("done", NAME, tuple(served)))

asyncio.run(main())
'''


class Worker(threading.Thread):
    """One subinterpreter, created, run and destroyed by this thread (as
    CPython 3.12 needs)."""

    def __init__(self, code):
        super().__init__(name="http worker")
        self.code, self.error = code, None

    def run(self):
        try:
            iid = _create()
            try:
                _exec(iid, self.code)
            finally:
                _xi.destroy(iid)
        except BaseException as e:  # reported by the main thread
            self.error = e


def fetch(sock, path, deadline):
    """Finish the GET of path on a connected socket; the body."""
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    sock.sendall(b"Host: 127.0.0.1\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError("%s: bad response %r" % (path, head[:60]))
    return body.decode()


def connect(port, path, deadline):
    """A connection to 127.0.0.1:port that has sent GET's request line."""
    sock = socket.create_connection(
        ("127.0.0.1", port), timeout=max(0.1, deadline - time.monotonic()))
    sock.sendall(b"GET %s HTTP/1.1\r\n" % path.encode())
    return sock


class Events:
    """What the workers report on the events channel, by kind."""

    def __init__(self, channel, deadline):
        self.channel, self.deadline = channel, deadline
        self.seen = collections.defaultdict(list)

    def until(self, kind, n):
        while len(self.seen[kind]) < n:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("waiting for %d %r events, have %d"
                                   % (n, kind, len(self.seen[kind])))
            event = self.channel.get(timeout=left)
            self.seen[event[0]].append(event)


def drive(port, events, control, workers, requests, concurrency, slow):
    events.until("ready", workers)
    answers = {}
    lock = threading.Lock()
    failures = []

    def client(paths):
        try:
            for path in paths:
                body = fetch(connect(port, path, events.deadline), path,
                             events.deadline)
                with lock:
                    answers[path] = body
        except BaseException as e:
            failures.append(e)

    # Real requests, at most `concurrency` connections at a time.
    paths = ["/r%d" % i for i in range(requests)]
    clients = [threading.Thread(target=client, args=(paths[i::concurrency],),
                                name="http client")
               for i in range(concurrency)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    if failures:
        raise failures[0]
    # Requests still open when the workers are told to stop.
    open_ones = [("/open%d" % i, connect(port, "/open%d" % i,
                                         events.deadline))
                 for i in range(slow)]
    events.until("accepted", requests + slow)     # a worker has each one
    for _ in range(workers):
        control.put("stop")
    events.until("stopping", workers)
    for path, sock in open_ones:
        answers[path] = fetch(sock, path, events.deadline)
    events.until("done", workers)
    return answers


def run(requests=200, concurrency=8, slow=4, workers=2, timeout=60.0):
    """Run the scenario; a dict of what happened. Raises if a request was
    lost or answered twice, a worker failed, or a thread or subinterpreter
    is left behind."""
    if sys.version_info < (3, 13):
        raise RuntimeError("needs CPython 3.13 or later: 3.12.1 aborts when "
                           "asyncio runs in an isolated subinterpreter (see "
                           "the top of examples/aio_http_workers.py)")
    threads0, interps0 = threading.active_count(), interpreter_count()
    deadline = time.monotonic() + timeout
    control, events = libchan.Channel(), libchan.Channel()
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    port = listener.getsockname()[1]
    started = time.monotonic()
    pool = [Worker(WORKER.format(path=sys.path, name="w%d" % i,
                                 control=control.id, events=events.id,
                                 fd=listener.fileno()))
            for i in range(workers)]
    for w in pool:
        w.start()
    report = Events(events, deadline)
    try:
        answers = drive(port, report, control, workers, requests,
                        concurrency, slow)
    finally:
        for _ in range(workers):        # idempotent stop, for error paths
            control.put("stop")
        for w in pool:
            w.join(max(1.0, deadline - time.monotonic()))
        listener.close()
        control.shutdown(immediate=True)
        events.shutdown(immediate=True)
    errors = [w.error for w in pool if w.error is not None]
    if errors:
        raise RuntimeError("a worker failed: %s" % errors[0])
    if any(w.is_alive() for w in pool):
        raise RuntimeError("a worker thread did not end")
    elapsed = time.monotonic() - started
    served = {}
    for _, name, paths in report.seen["done"]:
        for path in paths:
            if path in served:
                raise RuntimeError("%s answered twice" % path)
            served[path] = name
    expected = ["/r%d" % i for i in range(requests)] + \
               ["/open%d" % i for i in range(slow)]
    missing = [p for p in expected if p not in served or p not in answers]
    if missing or len(served) != len(expected):
        raise RuntimeError("lost requests: %s" % missing[:5])
    for path, body in answers.items():
        if body != "%s from %s\n" % (path, served[path]):
            raise RuntimeError("%s: wrong body %r" % (path, body))
    threads, interps = threading.active_count(), interpreter_count()
    if threads != threads0 or interps != interps0:
        raise RuntimeError("left behind: %d threads (had %d), %d "
                           "interpreters (had %d)"
                           % (threads, threads0, interps, interps0))
    per_worker = collections.Counter(served.values())
    return {"requests": len(expected), "per_worker": dict(per_worker),
            "open_at_stop": slow, "seconds": round(elapsed, 3),
            "threads_left": threads - threads0,
            "interpreters_left": interps - interps0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--open", type=int, default=4, dest="slow",
                    help="requests still open when the workers are stopped")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    try:
        r = run(args.requests, args.concurrency, args.slow, args.workers)
    except RuntimeError as e:
        print("aio_http_workers: %s" % e, file=sys.stderr)
        return 2
    print("%d requests answered by %d worker subinterpreters %s in %.2f s, "
          "%d of them still open when the workers were told to stop; "
          "nothing lost, no thread or interpreter left"
          % (r["requests"], len(r["per_worker"]), r["per_worker"],
             r["seconds"], r["open_at_stop"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
