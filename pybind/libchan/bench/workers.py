"""Where a consumer runs: a thread of the main interpreter, a new
subinterpreter (in a thread of its own), or a spawned child process.

Each worker has alive(), close(timeout) and .error (the consumer's failure,
as text, once known).
"""

import threading

from libchan.bench.errors import exc_text
from libchan.bench.interp import run_in_new_interp


class ThreadWorker:
    """A consumer running target(*args) in a daemon thread of its own; a
    failure is kept in .error."""

    def __init__(self, target, args):
        self.error = None

        def main():
            try:
                target(*args)
            except BaseException as e:
                self.error = exc_text(e)

        self._thread = threading.Thread(target=main, daemon=True,
                                        name="libchan.bench consumer")
        self._thread.start()

    def alive(self):
        return self._thread.is_alive()

    def close(self, timeout):
        """Wait for the consumer (and its interpreter, if any) to end."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


class SubInterpWorker(ThreadWorker):
    """A consumer running code in a new subinterpreter made with module (see
    interp.run_in_new_interp), in a thread of its own."""

    def __init__(self, module, code):
        self.module = module
        super().__init__(run_in_new_interp, (module, code))


class ProcessWorker:
    """A consumer in a child process started by the multiprocessing context
    ctx, running consumer.mp_child(*args)."""

    def __init__(self, ctx, args):
        # pickled by module name, never __main__
        from libchan.bench.consumer import mp_child

        self.error = None
        self._proc = ctx.Process(target=mp_child, args=args, daemon=True,
                                 name="libchan.bench consumer")
        self._proc.start()

    def alive(self):
        alive = self._proc.is_alive()
        if not alive and self.error is None:
            self.error = "child process exited with code %s" % self._proc.exitcode
        return alive

    def kill(self):
        if self._proc.is_alive():
            self._proc.kill()

    def close(self, timeout):
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        return not self._proc.is_alive()
