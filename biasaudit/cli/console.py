from __future__ import annotations

"""The command line's consoles, its notes, the run's timing and progress display, shared by every command."""
import sys
from contextlib import contextmanager

from rich.console import Console

from ..terminal import clean

# a pipe or file gets wide lines rather than tables squeezed to 80 columns
out = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200, highlight=False)


def note(message: str) -> None:
    err.print(f"[yellow]note:[/] {clean(message)}", soft_wrap=True)



_RUN = {"t0": 0.0, "phases": {}}    # this command's start and its phases' times (for the closing line)


@contextmanager
def _progress():
    """The run's phases on stderr (``biasaudit.terminal.Phases``): a bar per phase with its own count on a
    terminal, one plain line per phase otherwise; yields the callback (stage, done, total). Each phase's time
    is added to the run's, for the closing line (``_closing``)."""
    from ..terminal import Phases

    phases = Phases(err)
    try:
        with phases:
            yield phases
    finally:
        for stage, t in phases.timings().items():
            _RUN["phases"][stage] = _RUN["phases"].get(stage, 0.0) + t


def _closing(what: str) -> str:
    """'WHAT in T (each phase's time)': the whole command's time since it started, and each phase's."""
    import time

    from ..terminal import closing_line

    return closing_line(what, time.perf_counter() - _RUN["t0"], _RUN["phases"])



def _wrap_width() -> int:
    """Printed text wraps to the terminal's width (``biasaudit.terminal.width``), 100 columns off a terminal."""
    from ..terminal import width
    return width(out)


WIDTH = _wrap_width()

