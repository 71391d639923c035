"""What the executor's messages carry besides plain libchan values: the
pickled form of what the codec cannot carry, and exceptions.

The executor's channels are made with ``pickle=False``: a message whose
parts are all codec types (or SharedBuffer, SharedTuple, Channel) goes as
it is, and one that is not raises NotShareableError at ``put``, before
anything is queued. The sender then pickles the message body itself
(``pickled``), keeping every SharedBuffer, SharedTuple and Channel inside
it out of the pickle, by reference (pickle's persistent ids), so they stay
zero-copy even inside a pickled object. Unpickling happens in the
receiver's own code, where a failure (a class the receiver cannot import)
becomes the task's error instead of a message lost inside ``get``.

An exception crosses as (type name, message, formatted traceback, pickled
exception or None). The receiver rebuilds the exception when it can and
attaches the traceback text as its ``__cause__`` (a ``RemoteTraceback``),
as ProcessPoolExecutor does; otherwise it raises a ``TaskError`` that
carries the three texts. Exceptions are always pickled, whatever the pool's
``pickle`` option: they are the executor's own report, not user data.

Imports of pickle and traceback are deferred: a worker whose tasks return
plain values never loads them.
"""

from libchan._libchan import Channel, SharedBuffer, SharedTuple

_SHARED = (SharedBuffer, SharedTuple, Channel)


class TaskError(Exception):
    """A task raised an exception that could not be rebuilt in the
    caller's interpreter (it does not pickle, or its class cannot be
    imported there). Carries what is known of it as text: ``type_name``
    (module and qualified name), ``message`` (its str()) and
    ``traceback_text`` (formatted in the worker)."""

    def __init__(self, type_name, message, traceback_text):
        super().__init__(type_name, message, traceback_text)
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    def __str__(self):
        return "%s: %s" % (self.type_name, self.message)


class RemoteTraceback(Exception):
    """The ``__cause__`` of an exception raised by a task: its traceback,
    formatted in the worker interpreter."""

    def __init__(self, tb):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb


_picklers = []     # [(io, Pickler, Unpickler)], made on first use


def _classes():
    if not _picklers:
        import io
        import pickle

        class Pickler(pickle.Pickler):
            def persistent_id(self, o):
                if type(o) in _SHARED:
                    self.shared.append(o)
                    return len(self.shared) - 1
                return None

        class Unpickler(pickle.Unpickler):
            def persistent_load(self, pid):
                return self.shared[pid]

        _picklers.append((io, Pickler, Unpickler))
    return _picklers[0]


def pickled(obj):
    """(bytes, shared): obj pickled (protocol 5) with every SharedBuffer,
    SharedTuple and Channel left out, by reference, in the tuple shared."""
    io, Pickler, _ = _classes()
    f = io.BytesIO()
    # No keyword arguments to C functions here: on 3.12.1, the first call
    # of one with keywords, if made in a subinterpreter, builds its keyword
    # table in that interpreter's heap, which the main interpreter then
    # frees at exit (heap corruption, abort).
    p = Pickler(f, 5)
    p.shared = []
    p.dump(obj)
    return f.getvalue(), tuple(p.shared)


def unpickled(data, shared):
    """Inverse of pickled()."""
    io, _, Unpickler = _classes()
    u = Unpickler(io.BytesIO(data))
    u.shared = shared
    return u.load()


def exception_info(exc):
    """The travelling form of exc (see the module docstring): plain values
    only. The traceback text ends with a blank line."""
    import traceback

    tb = "".join(traceback.format_exception(type(exc), exc,
                                            exc.__traceback__))
    t = type(exc)
    name = "%s.%s" % (t.__module__, t.__qualname__)
    try:
        message = str(exc)
    except BaseException:     # a broken __str__ must not lose the error
        message = "<unprintable %s>" % t.__name__
    saved = exc.__traceback__
    try:
        exc.__traceback__ = None          # frames do not pickle
        data = pickled(exc)
    except BaseException:
        data = None
    finally:
        exc.__traceback__ = saved
    return name, message, tb, data


def rebuild_exception(info):
    """The exception info describes, rebuilt where possible (with a
    RemoteTraceback as its __cause__), else a TaskError."""
    name, message, tb, data = info
    exc = None
    if data is not None:
        try:
            exc = unpickled(*data)
        except BaseException:
            exc = None
    if not isinstance(exc, BaseException):
        exc = TaskError(name, message, tb)
    exc.__cause__ = remote_traceback(tb)
    return exc


def remote_traceback(tb):
    """The __cause__ to attach for a traceback text from a worker."""
    return RemoteTraceback('\n"""\n%s"""' % tb)
