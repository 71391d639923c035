"""One isolated subinterpreter (its own GIL) driven from the calling
thread, on whatever low-level module this CPython has:

    3.12    _xxsubinterpreters   create(isolated=True), run_string, destroy
    3.13+   _interpreters        create("isolated"), exec, destroy

The executor's worker threads use it: each one creates its interpreter,
runs the worker loop in it and destroys it, all three from the same thread.
CPython 3.12.1 hangs in destroy() when the interpreter first imported
``threading`` in a thread other than the one that created it; here nothing
else ever touches the interpreter, so that cannot happen.
"""

import sys

if sys.version_info >= (3, 13):
    import _interpreters as _xi

    def create():
        """A new isolated interpreter's id (raises on failure)."""
        return _xi.create("isolated")

    def run(iid, code):
        """Run code in interpreter iid's __main__ in this thread, until it
        returns; None, or the text of the exception it ended with."""
        info = _xi.exec(iid, code)
        if info is None:
            return None
        return (getattr(info, "formatted", None)
                or "%s: %s" % (getattr(info.type, "__name__", info.type),
                               info.msg))

    def destroy(iid):
        _xi.destroy(iid)
else:
    import _xxsubinterpreters as _xi

    def create():
        """A new isolated interpreter's id (raises on failure)."""
        return _xi.create(isolated=True)

    def run(iid, code):
        """Run code in interpreter iid's __main__ in this thread, until it
        returns; None, or the text of the exception it ended with."""
        try:
            _xi.run_string(iid, code)
        except _xi.RunFailedError as e:
            return str(e)
        return None

    def destroy(iid):
        _xi.destroy(iid)
