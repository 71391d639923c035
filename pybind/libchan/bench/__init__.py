"""The benchmark of libchan's Python binding: ``python -m libchan.bench``.

Compares, on the same machine in the same run, the main interpreter sending
to one consumer in another interpreter (or process, or thread):

- libchan ``Channel`` to a subinterpreter (own GIL);
- the stdlib's cross-interpreter queue to a subinterpreter, two columns
  (see :mod:`libchan.bench.interp`):

  - 3.14+: ``concurrent.interpreters.create_queue()``, which shares the
    shareable types natively and pickles the rest (``ci.Queue``), and the
    same queue carrying items the caller pickles (``ci.Queue+pkl``: what
    3.13's default did; 3.14 has no switch for it);
  - 3.13: ``test.support.interpreters.queues.create()``, pickled (``iq``),
    and ``create(syncobj=True)`` (``iq.sync``);
  - 3.12: the same two from the ``interpreters-pep-734`` backport, which
    needs ``interpreters-3-12``;

- ``multiprocessing.Queue`` and ``multiprocessing.Pipe`` to a child process;
- ``queue.SimpleQueue`` between two threads of the main interpreter;
- a bare ``pickle.dumps`` + ``pickle.loads`` (protocol 5) in one thread;

and ``libchan.dumps``/``loads`` against ``pickle`` and ``msgspec.msgpack``,
for a small int, a 100-character str, a 1000-int tuple (as a tuple and as a
``SharedTuple``, plus a 1-element ``SharedTuple``), 250 mixed records, and
1 MiB of bytes (as bytes and as a ``SharedBuffer``, plus a 1 KiB one).

Options: ``--quick`` (CI smoke: one short run, ~20 s), ``--runs N``,
``--json FILE`` (``-`` for stdout; the table then goes to stderr),
``--plot FILE.png`` (needs matplotlib). Exit status 1 when a libchan cell
failed (error), 2 when libchan cannot be imported, else 0: targets are
reported, not asserted.

One module per job:

- ``consumer``: the far end, the loop every consumer runs (in a
  subinterpreter, a thread or a child process); it imports only a few
  stdlib modules, and so does this ``__init__``;
- ``interp``: the CPython-version adapter, which module creates
  subinterpreters and which stdlib queues are the peers;
- ``workers``: where a consumer runs (thread, subinterpreter, process);
- ``peers``: the main interpreter's end of each transport;
- ``payloads``: what is sent, and the one-thread codec and memcpy runners;
- ``timing``: cells, calibration and the interleaved schedule;
- ``memory``: bytes per queued item and ``dumps`` of 1 MiB, each payload
  in a child process of its own;
- ``executor``: libchan's InterpreterPoolExecutor against the stdlib's
  executors (cold start, round trip, tasks in flight, map, CPU scaling);
- ``aio``: asyncio: round trip and one way between two interpreters'
  event loops against a thread bridge, ``asyncio.to_thread`` and a
  socketpair; select over 8 channels against a get;
- ``report``: the text tables, targets and JSON; ``plot``: the bar chart;
- ``cli``: the command line, which ties them together.
"""


def main(argv=None):
    """Run the benchmark with command-line arguments argv; the exit status."""
    from libchan.bench.cli import main as cli_main

    return cli_main(argv)
