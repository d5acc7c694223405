"""examples/quickstart.ipynb runs from top to bottom (its own cells assert that the planted documents rank first
and that removing them moves the bias more than removing random ones), in a fresh folder with a fresh cache."""
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"


def _kernel_or_skip() -> None:
    for module in ("nbclient", "nbformat", "ipykernel", "pandas"):
        pytest.importorskip(module, reason=f"the notebook test needs {module} (pip install -e '.[test]')")
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("no python3 Jupyter kernel is installed (python -m ipykernel install --user)")


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    _kernel_or_skip()
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("BIASAUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o.data["text/html"] for o in outputs if o.output_type == "execute_result" and "text/html" in o.data]
    assert any("<svg" in h and "biasaudit score" in h for h in html), "the score result shows as the report"
    assert (tmp_path / "reports" / "quickstart-score" / "scores.jsonl").exists()
    assert (tmp_path / "reports" / "quickstart-experiment" / "results.csv").exists()


def test_the_committed_notebook_carries_its_outputs():
    """A reader on the web saw no results (the notebook was committed unexecuted): every code cell of the committed
    copy has its outputs (examples/run_quickstart.py regenerates them), none an error, and they stay small."""
    import json

    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] for c in code), [c["source"][:1] for c in code if not c["outputs"]]
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), "run once, top to bottom"
    html = [o["data"]["text/html"] for c in code for o in c["outputs"] if "text/html" in o.get("data", {})]
    assert any("<svg" in "".join(h) for h in html), "the score result shows as the report"
    assert NOTEBOOK.stat().st_size < 150_000


def test_progress_true_shows_the_phases_in_a_notebook(tmp_path, monkeypatch):
    """The API's progress=True in a notebook cell: the phases show (bars with ipywidgets, else one line per phase's
    start and end), with no error and no warning about missing widgets."""
    _kernel_or_skip()
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("BIASAUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import biasaudit as ba\nfrom biasaudit.planted import planted_corpus\ncorpus, _, _ = planted_corpus()\n"
        "ba.train(corpus, vector_size=8, epochs=3, min_count=2, progress=True)")]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert not [o for o in outputs if o.output_type == "error"] and "Warning" not in text, text
    assert "training seed 1" in text and "\x1b[" not in text, text
