"""The CPython-version adapter: which module runs a consumer in a new
subinterpreter, and which stdlib cross-interpreter queues are the peers.

    Python  consumers run with          stdlib-queue columns
    3.12    _xxsubinterpreters          iq, iq.sync: the interpreters-pep-734
                                        backport's queues, as on 3.13, when it
                                        loads (n/a otherwise)
    3.13    test.support.interpreters   iq:           queues.create(), which
                                                      pickles every item
                                        iq.sync:      queues.create(syncobj=True):
                                                      shareable types only,
                                                      shared natively
    3.14+   concurrent.interpreters     ci.Queue+pkl: create_queue(), the
                                                      caller pickles every item
                                        ci.Queue:     create_queue(): shareable
                                                      types natively, the rest
                                                      pickled by the queue

Why those two on 3.14+. 3.14 dropped ``syncobj``: ``Queue.put`` hands
every object to ``_interpqueues.put``, and ``create_queue()`` makes its
queue with the "full fallback" (``_PyXIDATA_FULL_FALLBACK`` in
``Modules/_interpqueuesmodule.c``): what the interpreters machinery can
share (None, bool, int, float, str, bytes, tuples of those, memoryview, and
registered types such as libchan's) goes natively, as with 3.13's
``syncobj=True``; anything else is pickled instead of refused. Every payload
here is shareable, so ``create_queue()`` is the analogue of ``iq.sync``. No
stdlib switch pickles everything, as 3.13's default did, so ``ci.Queue+pkl``
does it in the caller with the same ``pickle.dumps``/``pickle.loads`` that
3.13's queues called (:func:`libchan.bench.consumer.pickling`).
``create_queue(unbounditems=...)`` only decides what ``get()`` returns for an
item whose sending interpreter was destroyed; it does not change how an item
travels, so it is no column.

Nothing here is imported at module level: the version checks are cheap, and
the modules load only when a consumer starts.
"""

import sys


def interp_module():
    """The module this Python creates subinterpreters with, for the libchan
    consumer (the stdlib-queue consumers use their QueueKind.runner)."""
    if sys.version_info >= (3, 14):
        return "concurrent.interpreters"
    if sys.version_info >= (3, 13):
        return "test.support.interpreters"
    return "_xxsubinterpreters"


def run_in_new_interp(module, code):
    """Create a subinterpreter with module, run code in it, destroy it, all
    in the calling thread; raise what code raised (ExecutionFailed).

    module: "_xxsubinterpreters" (3.12) or a PEP 734 module with create(),
    Interpreter.exec() and .close(): "test.support.interpreters" (3.13),
    "concurrent.interpreters" (3.14+), "interpreters_backport.interpreters"
    (3.12 backport). One thread does all three: on 3.12, destroying from
    another thread an interpreter in which `threading` was imported (queue
    and libchan import it) waits forever in Py_EndInterpreter's
    wait_for_thread_shutdown.
    """
    from libchan.bench.errors import exc_text

    if module == "_xxsubinterpreters":
        import _xxsubinterpreters as xx
        try:
            iid = xx.create(isolated=True)
        except TypeError:
            iid = xx.create()
        run = lambda: xx.run_string(iid, code)  # noqa: E731
        close = lambda: xx.destroy(iid)  # noqa: E731
    else:
        import importlib

        interp = importlib.import_module(module).create()
        run = lambda: interp.exec(code)  # noqa: E731
        close = interp.close
    try:
        run()
    except BaseException:
        try:
            close()
        except BaseException:
            pass                  # run()'s error is the one to report
        raise
    try:
        close()
    except BaseException as e:
        raise RuntimeError("closing the interpreter: " + exc_text(e)) from e


class QueueKind:
    """One stdlib-queue column: which queue, made how, and who pickles."""

    def __init__(self, key, label, short, module, create, kwargs, pickled,
                 native, runner):
        self.key = key          # column key in the tables and the JSON
        self.label = label      # the legend: module and call, spelled out
        self.short = short      # its name in the targets and notes
        self.module = module    # the module with create and Queue(id)
        self.create_name = create
        self.kwargs = kwargs    # keyword arguments of create
        self.pickled = pickled  # both ends pickle every item themselves
        self.native = native    # shares shareable types without pickling
        self.runner = runner    # the module that runs its consumer

    def create(self):
        import importlib

        mod = importlib.import_module(self.module)
        return getattr(mod, self.create_name)(**self.kwargs)

    def ends(self, qin, qout):
        """The harness's (put, get) for a queue pair made by create()."""
        if self.pickled:
            from libchan.bench.consumer import pickling

            get, put = pickling(qout.get, qin.put)
            return put, get
        return qin.put, qout.get

    def consumer_setup(self, qin_id, qout_id):
        """Code that binds get and put, the consumer's ends of the pair."""
        lines = ["import %s as Q" % self.module,
                 "qin = Q.Queue(%d); qout = Q.Queue(%d)" % (qin_id, qout_id)]
        if self.pickled:
            lines += ["from libchan.bench.consumer import pickling",
                      "get, put = pickling(qin.get, qout.put)"]
        else:
            lines += ["get, put = qin.get, qout.put"]
        return "\n".join(lines)


def stdlib_queues():
    """This Python's stdlib-queue columns, [pickled, native] (see the module
    docstring). Imports nothing: whether they work is stdlib_queues_na()."""
    if sys.version_info >= (3, 14):
        mod = "concurrent.interpreters"
        return [
            QueueKind("ci.Queue+pkl",
                      "%s.create_queue(), items pickled by the caller "
                      "(as 3.13's default)" % mod,
                      "%s.Queue + pickle" % mod, mod, "create_queue", {},
                      pickled=True, native=False, runner=mod),
            QueueKind("ci.Queue",
                      "%s.create_queue() (shareable types natively, "
                      "others pickled)" % mod,
                      "%s.Queue" % mod, mod, "create_queue", {},
                      pickled=False, native=True, runner=mod),
        ]
    if sys.version_info >= (3, 13):
        pkg = "test.support.interpreters"
    else:
        pkg = "interpreters_backport.interpreters"
    mod = pkg + ".queues"
    return [
        QueueKind("iq", "%s.create() (pickled)" % mod,
                  "interpreters.Queue()", mod, "create", {"syncobj": False},
                  pickled=False, native=False, runner=pkg),
        QueueKind("iq.sync", "%s.create(syncobj=True)" % mod,
                  "interpreters.Queue(syncobj=True)", mod, "create",
                  {"syncobj": True}, pickled=False, native=True, runner=pkg),
    ]


def stdlib_queues_na():
    """None when stdlib_queues() work on this Python, else (short, long):
    why they are n/a."""
    if sys.version_info >= (3, 13):
        kinds = stdlib_queues()
        try:
            import importlib

            importlib.import_module(kinds[0].runner)
            importlib.import_module(kinds[0].module)
        except ImportError as e:
            return ("no module", "%s: %s" % (kinds[0].module, e))
        return None
    # 3.12: the backport. Its C half (interpreters-3-12) is tied to the
    # CPython patch release it was built for and may crash at import, so
    # try it in a child process first.
    import importlib.util
    import subprocess

    if importlib.util.find_spec("interpreters_backport") is None:
        return ("no backport", "interpreters-pep-734 is not installed "
                "(PEP 734's Queue is in the stdlib from 3.13)")
    code = ("from interpreters_backport import interpreters\n"
            "from interpreters_backport.interpreters import queues\n"
            "q = queues.create(); i = interpreters.create()\n"
            "i.exec('pass'); i.close()\n")
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True,
                           text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return ("backport hangs", "the interpreters-pep-734 backport "
                "hung in a smoke test")
    if p.returncode == 0:
        return None
    if p.returncode < 0:
        return ("backport crashes", "the interpreters-pep-734 backport "
                "(interpreters-3-12) crashed with signal %d on Python %s"
                % (-p.returncode, sys.version.split()[0]))
    last = (p.stderr.strip().splitlines() or ["?"])[-1]
    return ("backport broken", "interpreters-pep-734 does not load: " + last)
