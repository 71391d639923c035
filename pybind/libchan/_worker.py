"""The loop every worker interpreter of an InterpreterPoolExecutor runs,
and the layout of the executor's messages (executor.py is the other end).

Three channels per pool, all ``pickle=False`` (see _wire.py for what is
pickled instead, and where):

- setup: one message per worker started, taken by whichever worker starts
  next (they are all the same):
  ``(-1, mode, init_ref, init_args, init_kwargs, main_spec, pickle_ok)``,
  laid out as a task, PICKLED bit included;
- tasks, shared by every worker: ``(tid, mode, ref, args, kwargs)``.
  ``mode`` CALL runs ``fn(*args, **kwargs)``; CHUNK runs ``fn(*a, **kwargs)``
  for each tuple ``a`` of the list ``args`` and returns the list of
  results; with the PICKLED bit, ``ref`` is ``_wire.pickled((ref, args,
  kwargs))`` and the other two are None. ``kwargs`` is None when empty.
- results, read by the executor's manager thread: ``(tid, status, value)``,
  status OK (value: the result), RAISED (value: ``_wire.exception_info``),
  either with the PICKLED bit (value: ``_wire.pickled(result)``); and the
  control messages ``(-1, INIT_FAILED, (index, exception_info))``,
  ``(-1, EXITED, (index, error text or None))`` and ``(-1, WAKE, None)``.

A worker runs until the tasks channel is shut down and drained. It catches
every exception a task raises (SystemExit and KeyboardInterrupt too) and
sends it back, so a task can fail only its own future.
"""

from libchan import _calls, _wire
from libchan._libchan import NotShareableError, lookup

CALL, CHUNK, PICKLED = 0, 1, 2          # task modes (PICKLED: a bit)
OK, RAISED = 0, 1                       # result statuses (| PICKLED)
INIT_FAILED, EXITED, WAKE = 0, 1, 2     # control messages, tid -1


def serve(setup_id, tasks_id, results_id, index):
    """The worker's life: set up (main module, initializer), then run
    tasks until the tasks channel is shut down. Called by the bootstrap
    code the executor's worker thread runs in this interpreter."""
    tasks, results = lookup(tasks_id), lookup(results_id)
    try:
        _, mode, ref, args, kwargs, spec, pickle_ok = lookup(setup_id).get()
        _calls.load_main(spec)
        if mode & PICKLED:
            ref, args, kwargs = _wire.unpickled(*ref)
        if ref is not None:
            _calls.resolve(ref)(*args, **(kwargs or {}))
    except BaseException as e:
        results.put((-1, INIT_FAILED, (index, _wire.exception_info(e))))
        return
    _run(tasks, results, pickle_ok)


def _run(tasks, results, pickle_ok):
    put = results.put
    resolve = _calls.resolve
    for tid, mode, ref, args, kwargs in tasks:
        try:
            if mode & PICKLED:
                ref, args, kwargs = _wire.unpickled(*ref)
            fn = resolve(ref)
            if mode & CHUNK:
                if kwargs:
                    value = [fn(*a, **kwargs) for a in args]
                else:
                    value = [fn(*a) for a in args]
            elif kwargs:
                value = fn(*args, **kwargs)
            else:
                value = fn(*args)
        except BaseException as e:
            put((tid, RAISED, _wire.exception_info(e)))
            continue
        finally:
            ref = args = kwargs = fn = None
        try:
            put((tid, OK, value))
        except NotShareableError:
            put(_result_pickled(tid, value, pickle_ok))
        value = None


def _result_pickled(tid, value, pickle_ok):
    """The result message of a value the codec cannot carry."""
    what = "the result, a %s object," % type(value).__qualname__
    try:
        if not pickle_ok:
            raise NotShareableError(
                "%s cannot be sent back without pickle, which this pool "
                "refuses (pickle=False)" % what)
        try:
            return (tid, OK | PICKLED, _wire.pickled(value))
        except Exception as e:
            raise NotShareableError(
                "%s cannot be sent back: pickling it failed (%s: %s)"
                % (what, type(e).__name__, e)) from e
    except NotShareableError as e:
        return (tid, RAISED, _wire.exception_info(e))
