"""The scheduler: a Cell is one table entry (payload x peer or codec
operation); calibration grows its N until one sample lasts its budget;
the schedule warms every cell up, then runs the measured rounds with each
payload's cells in rotated order, so that machine drift hits them all.
"""

from libchan.bench.errors import Broken, CannotCarry, exc_text


class Cell:
    """One entry of a table: its runner, its status (ok, n/a, error) and
    the samples measured."""

    def __init__(self, table, payload, peer, run=None, status="ok",
                 reason=None, short=None, nmax=2_000_000, nmin=4, budget=0.2,
                 transport=None, probe=None):
        self.table, self.payload, self.peer = table, payload, peer
        self.run, self.status, self.reason, self.short = run, status, reason, short
        self.nmax, self.nmin, self.budget = nmax, nmin, budget
        self.transport, self.probe = transport, probe
        self.n = None
        self.values = []        # seconds per message (or per round trip)
        self.extras = []

    @property
    def median(self):
        if self.status != "ok" or not self.values:
            return None
        import statistics
        return statistics.median(self.values)

    def fail(self, status, reason, short=None):
        self.status, self.reason = status, reason
        self.short = short or shorten(reason)


def shorten(reason, width=22):
    reason = reason.split(": ", 1)[-1] if len(reason) > width else reason
    return reason if len(reason) <= width else reason[:width - 1] + "~"


def guarded(cell, fn, *args):
    """Run one sample; turn failures into the cell's status."""
    t = cell.transport
    if t is not None and t.broken is not None:
        cell.fail("error", "consumer failed earlier: " + t.broken,
                  "consumer failed")
        return None
    try:
        if cell.probe is not None:
            cell.probe()
        return fn(*args)
    except CannotCarry as e:
        cell.fail("n/a", "%s cannot carry it: %s" % (cell.peer, e),
                  "cannot carry")
    except Broken as e:
        msg = str(e)
        short = next((v for k, v in (
            ("did not answer", "hung"), ("no echo", "hung"),
            ("died", "consumer died"), ("connection lost", "connection lost"),
            ("arrived", "wrong value"), ("consumer: ", "consumer error"),
            ("unexpected reply", "bad reply")) if k in msg), None)
        cell.fail("error", msg, short)
        if t is not None and "arrived" not in str(e):   # consumer is out
            t.broken = str(e)
            t.abort()
    except Exception as e:
        cell.fail("error", exc_text(e))
        if t is not None:
            t.broken = exc_text(e)
            t.abort()
    return None


def calibrate(cell):
    """Grow N until a sample lasts about cell.budget (these are warm-up)."""
    n = cell.nmin
    while True:
        s = guarded(cell, cell.run, n)
        if s is None:
            return False
        elapsed = s[1]
        if elapsed >= cell.budget / 4 or n >= cell.nmax:
            break
        factor = min(100.0, max(2.0, cell.budget / max(elapsed, 1e-7)))
        n = min(cell.nmax, int(n * factor) + 1)
    n = int(cell.budget / max(elapsed / n, 1e-9))
    cell.n = max(cell.nmin, min(cell.nmax, n))
    return True


def measure(cell):
    s = guarded(cell, cell.run, cell.n)
    if s is not None:
        cell.values.append(s[0])
        cell.extras.append(s[2])


def schedule(groups, runs, progress):
    """Calibrate every cell of groups (lists of cells, one per payload: the
    interleaving unit), then measure each runs times, rotating each group's
    order from run to run; progress(text) is told about every step."""
    total = sum(len(g) for g in groups) * (runs + 1)
    done = 0
    for g in groups:                         # warm-up and calibration
        for c in g:
            done += 1
            progress("[%d/%d] warm-up %s %s %s" % (
                done, total, c.table, c.payload, c.peer))
            if c.status == "ok":
                calibrate(c)
    for r in range(runs):
        for g in groups:
            k = r % len(g) if g else 0
            for c in g[k:] + g[:k]:
                done += 1
                progress("[%d/%d] run %d %s %s %s" % (
                    done, total, r + 1, c.table, c.payload, c.peer))
                if c.status == "ok":
                    measure(c)
