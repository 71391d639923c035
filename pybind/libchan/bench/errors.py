"""How a measurement fails: the two exceptions the harness tells apart, and
one line of text for any exception."""


class Broken(Exception):
    """The consumer failed, hung or answered nonsense: the transport is out."""


class CannotCarry(Exception):
    """The transport refuses this payload (not shareable, not picklable)."""


def exc_text(e):
    """'Type: message', for an interpreter's ExecutionFailed too."""
    info = getattr(e, "excinfo", None)     # 3.13+ ExecutionFailed
    if info is not None:
        return "%s: %s" % (getattr(info.type, "__name__", info.type), info.msg)
    return "%s: %s" % (type(e).__name__, e)
