"""Text that reaches the terminal: whatever comes from input (corpus text, document ids, file names, test and word
names, error messages quoting them) is printed through ``clean``, so escape sequences in a corpus cannot retitle
the terminal, clear it or hide output, and rich markup in a document id cannot restyle the rest of the line."""
from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls; bidirectional overrides and isolates (text that reads one way
# and runs another); zero-width characters that hide text
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SURROGATE = re.compile("[\ud800-\udfff]")   # file-name bytes that are not UTF-8; nothing a terminal can show


def strip_controls(text: object, newlines: bool = True) -> str:
    """``text`` without control characters (each becomes a space); ``newlines=False`` turns line breaks and tabs
    into spaces too (one-line output)."""
    s = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", str(text)))
    return s if newlines else re.sub(r"[\t\n]", " ", s)


def clean(text: object, newlines: bool = False) -> str:
    """Printable and markup-free: control characters stripped, rich markup escaped."""
    from rich.markup import escape
    return escape(strip_controls(text, newlines))


def width(console) -> int:
    """The width to wrap printed text to: the terminal's own (not a fixed 80; at least 60), 100 where output is
    not a terminal (a log file, a pipe)."""
    return max(60, console.width) if console.is_terminal else 100


def seconds(t: float) -> str:
    """A duration as a person reads it: 0.4 s, 12 s, 3.5 min, 1.2 h."""
    if t < 10:
        return f"{t:.1f} s"
    if t < 120:
        return f"{t:.0f} s"
    return f"{t / 60:.1f} min" if t < 5400 else f"{t / 3600:.1f} h"


class Phases:
    """A run's phases as the user sees them, fed by the library's progress callback ``(stage, done, total)``
    (``total`` None where unknown). On a terminal (or in a notebook: ``live=True``) each phase gets its own rich bar
    with its own count (done/total, or done alone), elapsed and remaining time. Elsewhere (a log file, a pipe) plain
    lines: one when a phase starts, one every ``every`` seconds while it runs (its count, rate and time left, from
    a heartbeat thread, so a long solve between two reports is not silent), and one when it ends (its count and
    time). A phase ends when it reaches its total, when a later phase starts after an open-ended one, or when the
    run ends. Each phase's wall time (first report to last) is kept for the closing line (``timings``)."""

    def __init__(self, console, live: bool | None = None, every: float = 10.0, transient: bool = True):
        import threading
        import time

        self.console = console
        self.live = console.is_terminal if live is None else live
        self.every = every
        self.transient = transient             # bars removed when done (a terminal); kept (a notebook's record)
        self.t0 = time.perf_counter()
        self.start: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.count: dict[str, tuple] = {}
        self.done: set[str] = set()
        self.before: dict[str, float] = {}     # time of a phase's earlier runs
        self.bars = None
        self._tasks: dict[str, int] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._beat = None
        self._said: dict[str, float] = {}      # off a terminal: when a running phase's last line was printed

    # ---------------------------------------------------------------- the context and the callback
    def __enter__(self):
        if self.live:
            from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
            from rich.progress import TimeRemainingColumn
            from rich.text import Text

            class Count(ProgressColumn):
                def render(self, task):
                    done = f"{int(task.completed):,}"
                    return Text(done if task.total is None else f"{done}/{int(task.total):,}")

            self.bars = Progress(TextColumn("{task.description}"), BarColumn(), Count(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=self.console, transient=self.transient)
            self.bars.__enter__()
        elif self.every and self.every > 0:
            import threading

            self._stop.clear()
            self._beat = threading.Thread(target=self._heartbeat, name="biasaudit-progress", daemon=True)
            self._beat.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        with self._lock:
            for stage in list(self.start):
                self._end(stage, interrupted=exc[0] is not None)
        if self.bars is not None:
            self.bars.__exit__(*exc)
            self.bars = None
        return False

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        import time

        with self._lock:
            now = time.perf_counter()
            if stage in self.done:
                if self.count.get(stage) == (done, total):
                    return                    # the finished count reported again (gensim's last epoch): no new run
                # a phase run again (one per seed, say): a fresh count, time added
                self.done.discard(stage)
                self.count.pop(stage, None)
                self.before[stage] = self.elapsed(stage)
                self.start[stage] = self.last[stage] = now
            begins = stage not in self.start or stage not in self.count
            if begins:
                for other in list(self.count):   # an open-ended phase ends where the next one begins
                    if other != stage and other not in self.done and self.count[other][1] is None:
                        self._end(other)
                self.start.setdefault(stage, now)
                if self.bars is not None:
                    self._tasks[stage] = self.bars.add_task(clean(stage), total=total)
            self.count[stage] = (done, total)
            self.last[stage] = now
            if self.bars is not None and stage in self._tasks:
                self.bars.update(self._tasks[stage], completed=done, total=total)
            if total is not None and done >= total:
                self._end(stage)
            elif begins and not self.live:
                self._said[stage] = now
                self.console.print(f"{clean(stage)}: started"
                                   + (f" ({total:,} to do)" if total is not None else ""), soft_wrap=True)

    def _end(self, stage: str, interrupted: bool = False) -> None:
        if stage in self.done or stage not in self.count:
            return
        self.done.add(stage)
        self._said.pop(stage, None)
        if self.bars is not None and stage in self._tasks:
            task = self._tasks.pop(stage)
            if self.transient:
                self.bars.remove_task(task)
        elif not self.live and not interrupted:
            done, total = self.count[stage]
            n = f"{done:,}" if total is None else f"{done:,}/{total:,}"
            self.console.print(f"{clean(stage)}: {n} in {seconds(self.elapsed(stage))}", soft_wrap=True)

    def _heartbeat(self) -> None:
        """Off a terminal: every ``every`` seconds, a line for each running phase (count, rate, time left)."""
        import time

        tick = min(1.0, self.every / 4)
        while not self._stop.wait(tick):
            with self._lock:
                now = time.perf_counter()
                for stage, said in list(self._said.items()):
                    if now - said >= self.every and stage not in self.done:
                        self._said[stage] = now
                        self.console.print(self.running_line(stage, now), soft_wrap=True)

    def running_line(self, stage: str, now: float | None = None) -> str:
        """'STAGE: done/total after T (R/s, about E left)': a running phase as a log line shows it."""
        import time

        now = time.perf_counter() if now is None else now
        done, total = self.count[stage]
        t = now - self.start[stage]
        n = f"{done:,}" if total is None else f"{done:,}/{total:,}"
        line = f"{clean(stage)}: {n} after {seconds(t)}"
        rate = done / t if t > 0 else 0.0
        if rate > 0:
            line += f" ({rate:,.1f}/s" if rate < 10 else f" ({rate:,.0f}/s"
            line += f", about {seconds((total - done) / rate)} left)" if total is not None else ")"
        return line

    # ---------------------------------------------------------------- timings
    def elapsed(self, stage: str) -> float:
        return self.before.get(stage, 0.0) + self.last.get(stage, self.start[stage]) - self.start[stage]

    def timings(self) -> dict[str, float]:
        """Each phase's wall time (first report to last), in the order the phases began."""
        return {s: self.elapsed(s) for s in self.start}


def closing_line(what: str, total: float, phases: dict, min_seconds: float = 0.5) -> str:
    """'WHAT in T (phase t, phase t, ..., other t)': the whole run's time, then each phase's (those over
    ``min_seconds``), so that the time that went to each part is on the screen; ``other``: the rest (shorter
    phases, start-up, time between phases), so the listed times add up to the whole."""
    listed = {s: t for s, t in phases.items() if t >= min_seconds}
    shown = [f"{clean(s)} {seconds(t)}" for s, t in listed.items()]
    other = total - sum(listed.values())
    if shown and other >= min_seconds:
        shown.append(f"other {seconds(other)}")
    return f"{what} in {seconds(total)}" + (f" ({', '.join(shown)})" if shown else "")
