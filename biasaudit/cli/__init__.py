"""The ``biasaudit`` command line: thin typer commands that parse options, call the API and print.

Exit codes: 0 success; 1 a clear one-line error (a BiasAuditError, or an OS fault such as a full disk, naming the
path and the cause; ``--debug`` shows the traceback); 2 a usage error (unknown option, a count or size out of
range). Everything printed that comes from input goes through ``biasaudit.terminal.clean``.
"""
from __future__ import annotations

import time as _time

_IMPORT_STARTED = _time.perf_counter()   # this module's import (typer, rich, torch): the run's first seconds

import functools  # noqa: E402
import sys
import traceback
import warnings

import typer

from ..errors import BiasAuditError, BiasAuditWarning
from ..terminal import clean, strip_controls
from .console import _RUN, err, note, out  # noqa: F401  (``out``, ``_RUN``: the tests read them)
from .measuring import measure_cmd, report, weat_cmd, wordsets
from .retraining import debias, experiment
from .scoring import score, train
from .show import _next_step, _overview, _print_experiment, _shown  # noqa: F401  (the tests read them)

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Audit social bias in word embeddings and trace it to the training documents that caused it.")


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors.")):
    """Audit social bias in word embeddings and trace it to the training documents that caused it."""
    import time

    _RUN["t0"], _RUN["phases"] = time.perf_counter(), {}
    started = _RUN.pop("imports", None)      # the process's first command: its start-up counts too
    if started is not None:
        _RUN["t0"] -= started
        _RUN["phases"]["starting"] = started


def _usage_errors(command):
    """``command`` with a library error that names an option (``BiasAuditError.usage``) raised as click's bad
    option: the usage line and exit code 2, like an option's own check. The one place that does it."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except BiasAuditError as e:
            if e.option is None:
                raise
            raise typer.BadParameter(e.for_cli(), param_hint=e.option) from e
    return run


for name, command in (("wordsets", wordsets), ("train", train), ("weat", weat_cmd), ("score", score),
                      ("experiment", experiment), ("debias", debias), ("report", report), ("measure", measure_cmd)):
    app.command(name)(_usage_errors(command))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, BiasAuditWarning):
        note(str(message))


def _os_error_line(e: OSError) -> str:
    """'<path>: <cause>' for an OS fault (a full disk, a read-only folder, a path that is a file)."""
    cause = e.strerror or str(e) or type(e).__name__
    where = e.filename if e.filename is not None else None
    if e.filename2 is not None:
        where = f"{e.filename} -> {e.filename2}"
    return f"{where}: {cause}" if where is not None else cause


def main() -> None:
    """Console entry point: one red line and exit code 1 for a BiasAuditError or an OS fault, 130 when
    interrupted, 2 for usage errors (printed by click); ``--debug`` shows tracebacks."""
    debug = "--debug" in sys.argv[1:]
    if not debug:
        warnings.filterwarnings("ignore")              # library chatter (FutureWarning, ...) is not the user's
        warnings.filterwarnings("always", category=BiasAuditWarning)
    warnings.showwarning = _show_warning
    import signal

    try:   # Ctrl-C: one line, exit 130, finally-blocks still run (temporary folders removed)
        previous = signal.signal(signal.SIGINT, _on_interrupt)
    except ValueError:   # not the main thread (an embedding application): leave signals alone
        previous = None
    try:
        app()  # usage errors: click prints them and exits 2
    except BiasAuditError as e:
        _fail(e.for_cli(), debug)         # the message in the command line's words (its flags)
    except OSError as e:
        _fail(_os_error_line(e), debug)
    except MemoryError:
        _fail("out of memory (a smaller corpus, fewer tests, or --scheduler with more workers can help)", debug)
    except KeyboardInterrupt:
        _on_interrupt()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _on_interrupt(*_) -> None:
    err.print("[red]interrupted[/red]: finished outputs are kept; rerun the same command to resume")
    raise SystemExit(130)


def _fail(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    err.print(f"[red]error:[/red] {clean(strip_controls(message, newlines=False))}", soft_wrap=True)
    sys.exit(1)


_RUN["imports"] = _time.perf_counter() - _IMPORT_STARTED   # the first command's "starting" phase (``_root``)


if __name__ == "__main__":
    main()
