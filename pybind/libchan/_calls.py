"""How the executor's callables reach a worker interpreter: by reference.

A worker is another interpreter: it cannot share a function object with the
main one, so a function travels as the string ``"module:qualname"`` and the
worker imports it (``pkgutil.resolve_name`` syntax). That covers
module-level functions, classes, builtins, and functions of the main script,
which each worker runs as ``__mp_main__`` first, as multiprocessing's spawn
does. A ``functools.partial`` of one of those travels as the reference plus
its bound arguments. Any other callable (a bound method, an
``operator.itemgetter``, an instance with ``__call__``) travels as a value,
like an argument: pickled, unless the pool refuses pickle.

What cannot be found by name in a worker (a lambda, a closure, a function
typed at the interactive prompt) is refused in the main interpreter, before
anything is queued, with a NotShareableError that says why and what to do.

Main-interpreter side: ``reference``, ``main_spec``. Worker side:
``resolve``, ``load_main``, ``loading_main``.
"""

import functools
import os
import sys
import types

from libchan._libchan import NotShareableError

_BY_NAME = (types.FunctionType, type)
_CACHED = (types.FunctionType, types.BuiltinFunctionType)
_state = {"loading_main": False}     # worker side: inside load_main()
_resolved = {}                       # worker side: "module:qualname" -> fn
_checked = {}       # main side: fn -> (ref, module __dict__, name), checked
_CHECKED_MAX = 4096


def _refuse(fn, why, fix):
    return NotShareableError(
        "%r cannot be sent to a worker interpreter: %s; %s"
        % (fn, why, fix))


def _by_name(fn):
    """fn is found in a worker by importing module.qualname."""
    if isinstance(fn, _BY_NAME):
        return True
    # builtin_function_or_method bound to a module (len, math.sqrt); one
    # bound to an object ([].append) is a method and travels as a value
    return (isinstance(fn, types.BuiltinFunctionType)
            and isinstance(getattr(fn, "__self__", None), (types.ModuleType,
                                                           type(None))))


def reference(fn):
    """How fn travels: (ref, args, kwargs), ref being "module:qualname" (or
    the callable itself, which then travels as a value), args and kwargs
    bound by a functools.partial (else () and None). Raises
    NotShareableError for what no worker can find; TypeError if fn is not
    callable."""
    if type(fn) is functools.partial:
        ref, args, kwargs = reference(fn.func)
        args = args + fn.args
        if fn.keywords:
            kwargs = {**kwargs, **fn.keywords} if kwargs else dict(fn.keywords)
        return ref, args, kwargs
    if type(fn) in _CACHED:
        hit = _checked.get(fn)
        if hit is not None and hit[1].get(hit[2]) is fn:
            return hit[0], (), None      # still bound to its name
    if not callable(fn):
        raise TypeError("%r is not callable" % (fn,))
    if not _by_name(fn):
        return fn, (), None
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return fn, (), None          # no name to go by: try it as a value
    if "<lambda>" in qualname:
        raise _refuse(fn, "a lambda has no name a worker could import it by",
                      "define it with def at the top level of a module")
    if "<locals>" in qualname:
        raise _refuse(fn, "it is defined inside %s() (a closure or nested "
                      "function), so no worker can import it"
                      % qualname.split(".<locals>")[0],
                      "define it at the top level of a module, and pass "
                      "what it closes over as arguments or with "
                      "functools.partial")
    if module == "__main__":
        spec = main_spec()
        if spec is None:
            raise _refuse(fn, "it was defined in __main__ of an interactive "
                          "session or of `python -c`, which a worker cannot "
                          "run", "define it in a module file and import it")
        if spec[0] == "skip":
            raise _refuse(fn, "it was defined in %s, a package's __main__ "
                          "module, which workers do not run (neither does "
                          "multiprocessing's spawn)" % spec[1],
                          "move it to another module of the package")
    mod = sys.modules.get(module)
    found = mod
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not fn:
        raise _refuse(fn, "%s.%s is not this object (it was renamed, "
                      "redefined or created dynamically)" % (module, qualname),
                      "pass a function that is reachable under its own name")
    ref = "%s:%s" % (module, qualname)
    if "." not in qualname and type(fn) in _CACHED:
        if len(_checked) >= _CHECKED_MAX:
            _checked.clear()
        _checked[fn] = (ref, mod.__dict__, qualname)
    return ref, (), None


def main_spec():
    """How a worker recreates the main module, as multiprocessing's spawn
    does: ("path", file) to run a script as __mp_main__, ("name", module)
    for `python -m module`, ("skip", name) for a package's __main__ (run
    by nobody), None when there is no file (interactive, `-c`)."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        if name == "__main__" or name.endswith(".__main__"):
            return ("skip", name)
        return ("name", name)
    path = getattr(main, "__file__", None)
    if path is None:
        return None
    return ("path", os.path.abspath(path))


# ---- worker side ---------------------------------------------------------

def loading_main():
    """True while this (worker) interpreter runs the main script."""
    return _state["loading_main"]


def load_main(spec):
    """Run the main module as __mp_main__ and alias __main__ to it (the
    worker's own __main__ is kept alive in sys.modules['__lch_main__'])."""
    if spec is None or spec[0] == "skip":
        return
    kind, where = spec
    main = sys.modules.get("__main__")
    if kind == "path":
        if getattr(main, "__file__", None) == where:
            return
        if os.path.splitext(os.path.basename(where))[0] == "ipython":
            return               # as multiprocessing: no __main__ guard there
    elif getattr(getattr(main, "__spec__", None), "name", None) == where:
        return
    import runpy

    _state["loading_main"] = True
    try:
        if kind == "path":
            ns = runpy.run_path(where, run_name="__mp_main__")
        else:
            ns = runpy.run_module(where, run_name="__mp_main__",
                                  alter_sys=True)
    finally:
        _state["loading_main"] = False
    module = types.ModuleType("__mp_main__")
    module.__dict__.update(ns)
    sys.modules["__lch_main__"] = main
    sys.modules["__main__"] = sys.modules["__mp_main__"] = module


def resolve(ref):
    """The callable a reference names (a value ref is the callable)."""
    if type(ref) is not str:
        return ref
    fn = _resolved.get(ref)
    if fn is None:
        import importlib

        module, _, qualname = ref.partition(":")
        fn = importlib.import_module(module)
        for part in qualname.split("."):
            fn = getattr(fn, part)
        _resolved[ref] = fn
    return fn
