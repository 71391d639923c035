# Type stubs for libchan.executor (the InterpreterPoolExecutor).
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, Executor, Future
from typing import Any, TypeVar

_T = TypeVar("_T")

class BrokenInterpreterPool(BrokenExecutor):
    """A worker interpreter failed to start or ended unexpectedly (on
    3.14+ also a concurrent.futures.interpreter.BrokenInterpreterPool)."""

class TaskError(Exception):
    """A task's exception that could not be rebuilt in the caller."""
    type_name: str
    message: str
    traceback_text: str
    def __init__(self, type_name: str, message: str,
                 traceback_text: str) -> None: ...

class RemoteTraceback(Exception):
    """The __cause__ of a task's exception: the worker's traceback."""
    tb: str
    def __init__(self, tb: str) -> None: ...

class InterpreterPoolExecutor(Executor):
    def __init__(self, max_workers: int | None = None,
                 thread_name_prefix: str = "",
                 initializer: Callable[..., object] | None = None,
                 initargs: tuple[Any, ...] = (), *,
                 pickle: bool = True) -> None: ...
    def submit(self, fn: Callable[..., _T], /, *args: Any,
               **kwargs: Any) -> Future[_T]: ...
    def map(self, fn: Callable[..., _T], *iterables: Iterable[Any],
            timeout: float | None = None, chunksize: int = 1,
            buffersize: int | None = None) -> Iterator[_T]: ...
    def shutdown(self, wait: bool = True, *,
                 cancel_futures: bool = False) -> None: ...
