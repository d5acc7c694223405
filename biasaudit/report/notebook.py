"""The report in a notebook cell (``_repr_html_`` of the Python API's results): the tests with their verdicts,
the forest plot, each test's top documents and influence histogram and, for an experiment, the retraining charts
and conditions; for a debias folder, the predictions and the first edited documents.

One HTML fragment built from the same result files and chart coordinates as the page (``html.build_context``),
rendered by the same escaping environment (``html.environment``): corpus text never reaches it unescaped. No
script; its styles are scoped to the fragment's own class.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ArtifactError
from .html import _read_json, build_context, environment

N_DOCS = 5       # documents shown in each direction per test


def fragment(folder: str | Path, n_docs: int = N_DOCS) -> str:
    """The notebook view of a ``score``, ``experiment`` or ``debias`` output folder."""
    import jinja2

    folder = Path(folder)
    template = environment().get_template("notebook.html.j2")
    try:
        if (folder / "manifest.json").exists() and not (folder / "summary.json").exists():   # a debias folder
            return template.render(kind="debias", m=_read_json(folder / "manifest.json"), folder=str(folder),
                                   n_docs=n_docs)
        return template.render(kind="run", folder=str(folder), n_docs=n_docs, **build_context(folder))
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, jinja2.UndefinedError) as e:
        raise ArtifactError(f"{folder}: the result files are not ones this version of biasaudit can read "
                            f"({type(e).__name__}: {str(e)[:120]}); run the command again to write them") from e
