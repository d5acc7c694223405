"""Execute examples/quickstart.ipynb in place, as a reader on the web sees it: run top to bottom in a fresh temporary
folder with a fresh model cache (one torch thread), outputs kept, the per-cell timing metadata dropped (it changes
on every run and says nothing). tests/test_notebook.py runs the notebook again on every test run and checks that the
committed copy carries its outputs.

    python examples/run_quickstart.py
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parent / "quickstart.ipynb"


def execute(path: Path = NOTEBOOK) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BIASAUDIT_CACHE"] = str(Path(tmp) / "cache")
        os.environ["OMP_NUM_THREADS"] = "1"
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


if __name__ == "__main__":
    execute()
    print(f"executed {NOTEBOOK}")
