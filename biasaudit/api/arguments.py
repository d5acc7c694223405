"""What every verb of the API does with its arguments: their kinds checked (``_checked``), paths read
(``_path_arg``), progress reported (``_reports_progress``, ``_phase``), the heavy libraries loaded as a phase, and
the words a model lacks warned at the caller's line (``_warn_dropped``)."""
from __future__ import annotations

import functools
import importlib.util
import os
import sys
from contextlib import contextmanager
from numbers import Integral, Real
from pathlib import Path
from typing import Callable

from ..errors import ConfigError

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


@contextmanager
def _progress_of(progress):
    """The callback a verb reports its phases to. ``progress``: None or False (silent), a callback (stage, done,
    total), or True: the command line's display on stderr (``biasaudit.terminal.Phases``): a bar per phase on a
    terminal and in a notebook, plain lines (a phase's start, its count every 10 s, its end) in a log."""
    if progress is None or progress is False:
        yield None
    elif progress is True:
        from rich.console import Console

        from ..terminal import Phases

        console = Console(stderr=True, width=None if sys.stderr.isatty() else 200, highlight=False)   # the CLI's
        # in a notebook rich draws its bars with ipywidgets, and they stay as the run's record; without
        # ipywidgets, the lines a log gets
        notebook = console.is_jupyter and importlib.util.find_spec("ipywidgets") is not None
        with Phases(console, live=console.is_terminal or notebook, transient=not notebook) as phases:
            yield phases
    elif callable(progress):
        yield progress
    else:
        raise ConfigError(f"progress must be True (show progress), None or a callback (stage, done, total), got "
                          f"{type(progress).__name__}")


def _reports_progress(verb):
    """A verb whose ``progress`` may also be True (``_progress_of``), its arguments' kinds checked (``_checked``)."""
    verb = _checked(verb)

    @functools.wraps(verb)
    def run(*args, progress=None, **kwargs):
        with _progress_of(progress) as callback:
            return verb(*args, progress=callback, **kwargs)
    return run


# an argument annotated with one of these must be of that kind (a bool is not a number here); the counts
# (``measures.options.COUNTS``) and sizes (``k``) have checks of their own, with their ranges
_KINDS = {"bool": ((bool,), "True or False"), "int": ((Integral,), "a whole number"), "str": ((str,), "a string"),
          "float": ((Real,), "a number"), "int | None": ((Integral, type(None)), "a whole number or None"),
          "str | None": ((str, type(None)), "a string or None"),
          "float | None": ((Real, type(None)), "a number or None")}
_PATHS = ("out", "cache")
_OWN_CHECKS = ("k", "n_seeds", "n_permutations", "n_bootstrap", "seeds", "ensemble", "resamples", "measure")


def _checked(verb):
    """``verb`` with each argument of the wrong kind refused first, one ConfigError naming it (``ba.score(m, c,
    top="5")``, ``out=3``, ``overwrite="no"``), not a TypeError from deep inside."""
    import inspect

    sig = inspect.signature(verb)

    @functools.wraps(verb)
    def run(*args, **kwargs):
        try:
            given = sig.bind_partial(*args, **kwargs).arguments
        except TypeError:
            return verb(*args, **kwargs)      # a wrong keyword: Python's own error names it
        for name, value in given.items():
            if name in _PATHS:
                if value is not None:
                    _path_arg(name, value)
                continue
            kinds = _KINDS.get(sig.parameters[name].annotation) if name not in _OWN_CHECKS else None
            if kinds and (not isinstance(value, kinds[0]) or (isinstance(value, bool) and bool not in kinds[0])):
                raise ConfigError(f"{name} must be {kinds[1]}, got {value!r}")
            if name == "top" and value < 1:
                raise ConfigError(f"top must be 1 or more, got {value!r}")
        return verb(*args, **kwargs)
    return run


def _load_libraries(progress) -> None:
    """torch, gensim and the model families imported as a phase of their own (the first import takes seconds)."""
    if "gensim" in sys.modules and "biasaudit.models" in sys.modules:
        return
    with _phase(progress, "loading torch and gensim"):
        import gensim  # noqa: F401

        from .. import models  # noqa: F401


@contextmanager
def _phase(progress, stage: str):
    """A step with no count of its own reported as a phase (0/1, then 1/1), so its time is on the screen."""
    if progress:
        progress(stage, 0, 1)
    yield
    if progress:
        progress(stage, 1, 1)


def _path_arg(name: str, value) -> Path:
    """An argument that names a file or folder, as a Path; anything else a ConfigError naming the argument."""
    if isinstance(value, (str, os.PathLike)) and str(value):
        return Path(value)
    raise ConfigError(f"{name} must be a path (str or pathlib.Path), got {type(value).__name__}")


def _warn_dropped(dropped: dict) -> None:
    """One warning per test that lost words (``DroppedWordsWarning``; the result lists them too), pointing at the
    caller's line (the first frame outside this package, whatever wraps the verb)."""
    import warnings

    from ..errors import DroppedWordsWarning

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))     # biasaudit/, not biasaudit/api/
    frame, stacklevel = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, stacklevel = frame.f_back, stacklevel + 1
    for test, sets in dropped.items():
        warnings.warn(f"{test}: dropped words the model lacks (absent, or under min_count or min_word_count): "
                      + "; ".join(f"{k}: {', '.join(v)}" for k, v in sets.items()),
                      DroppedWordsWarning, stacklevel=stacklevel)


def _given_options(options, kind: type, settings: dict) -> bool:
    """Whether a verb's settings come from an options object of ``kind`` (True) or from its keywords (False);
    both, or an object of another kind, is a ConfigError naming what was given."""
    if options is None:
        return False
    if not isinstance(options, kind):
        raise ConfigError(f"options must be a{'n' if kind.__name__[0] in 'AEIOU' else ''} {kind.__name__}, got "
                          f"{type(options).__name__}")
    if settings:
        raise ConfigError(f"options: give the settings in {kind.__name__} or as keywords, not both ("
                          + ", ".join(settings) + ")")
    return True
