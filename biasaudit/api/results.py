"""The results over output folders (``ScoreResult``, ``ExperimentResult``, ``DebiasResult``), the WEAT
result (``WeatResult``), ``Rows`` and ``load_result`` / ``write_report``: to_pandas, top, save/load and the
notebook view."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..errors import ArtifactError, ConfigError
from ..io.results import FolderResult, read_summary
from .arguments import _path_arg


class Rows(list):
    """A list of result rows (dicts) that shows as a table in a notebook and converts to a DataFrame."""

    def to_pandas(self):
        """The rows as a pandas DataFrame (pandas is imported here; a clear error when it is missing)."""
        return _pandas().DataFrame(list(self))

    def _repr_html_(self) -> str:
        return _html_table(self)


def _pandas():
    try:
        import pandas
    except ImportError as e:
        raise ConfigError("to_pandas needs pandas: pip install pandas") from e
    return pandas


def _html_table(rows: list[dict], limit: int = 50) -> str:
    import html

    cols = list(dict.fromkeys(k for r in rows[:limit] for k in r))
    cell = lambda v: html.escape(", ".join(map(str, v)) if isinstance(v, (list, tuple)) else
                                 f"{v:.4g}" if isinstance(v, float) else str(v))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows[:limit])
    more = f"<p>{len(rows) - limit:,} more rows</p>" if len(rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


class _FolderResult(FolderResult):
    """A result over an output folder (``biasaudit.io.FolderResult``: ``folder``, the JSON ``summary`` saved there,
    ``result[key]``, ``load``) with ``save``, ``report`` and the notebook view."""

    def save(self, folder, overwrite: bool = False):
        """Copy this result's files into ``folder`` (new, empty, or one holding this tool's outputs of the same
        kind: score, experiment or debias; another config there is replaced only with ``overwrite``) and return
        the result there."""
        from ..io import MANIFEST, claim_folder, read_manifest

        folder = Path(folder)
        if folder.exists() and folder.resolve() == self.folder.resolve():
            return self
        manifest = read_manifest(self.folder) or {}
        out = claim_folder(folder, self.kind, manifest.get("config", self.summary.get("config")), overwrite,
                           known=self.files)
        with out.stage() as tmp:
            for p in sorted(self.folder.rglob("*")):
                rel = p.relative_to(self.folder)
                if p.is_file() and not p.is_symlink() and str(rel) != MANIFEST and ".tmp-biasaudit" not in str(rel):
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(p, tmp / rel)
        return type(self).load(folder)

    @property
    def report_path(self) -> Path:
        """Where ``report()`` writes the page: ``folder/report.html``."""
        return self.folder / "report.html"

    def report(self) -> Path:
        """Write ``folder/report.html`` (the self-contained page) and return its path."""
        from ..report import write_report

        return write_report(self.folder)

    def _repr_html_(self) -> str:
        from ..report.notebook import fragment

        return fragment(self.folder)


class ScoreResult(_FolderResult):
    """What ``score`` wrote: summary.json (evidence per test, top documents, removal predictions, solver, config)
    and scores.jsonl (one row per document and test with a non-zero score)."""
    kind, summary_file = "score", "summary.json"
    files = ("scores.jsonl", "summary.json", "config.json", "report.html")

    @property
    def tests(self) -> list[str]:
        """The names of the tests scored, in order."""
        return [t["name"] for t in self.summary["tests"]]

    @property
    def dropped_words(self) -> dict:
        """{test: {set: [words]}}: the words each test lost (missing from the model, or too rare)."""
        return {t["name"]: dict(t["weat"]["dropped_words"]) for t in self.summary["tests"]
                if (t.get("weat") or {}).get("dropped_words")}

    def test(self, name: str) -> dict:
        """One test's part of the summary (evidence, WEAT statistics, top documents, predictions)."""
        for t in self.summary["tests"]:
            if t["name"] == name:
                return t
        raise ConfigError(f"no test {name!r} in {self.folder} (tests: {', '.join(self.tests)})")

    @property
    def scores(self) -> Rows:
        """Every row of scores.jsonl (read once): doc_id, test, delta_bias_if_removed, delta_bias_if_upweighted,
        test_words and, where computed, stability and sign_agreement."""
        if getattr(self, "_scores", None) is None:
            import io

            from ..io import MAX_DATA_BYTES, open_regular

            path = self.folder / "scores.jsonl"
            try:
                with open_regular(path, "scores file", ArtifactError, MAX_DATA_BYTES, follow=False) as raw:
                    self._scores = Rows(json.loads(line) for line in io.TextIOWrapper(raw, encoding="utf-8")
                                        if line.strip())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                raise ArtifactError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from e
        return self._scores

    def to_pandas(self):
        """scores.jsonl as a DataFrame (one row per document and test)."""
        pd = _pandas()
        return pd.DataFrame(list(self.scores), columns=list(dict.fromkeys(
            ["doc_id", "test", "delta_bias_if_removed", "delta_bias_if_upweighted", "test_words"]
            + [k for r in self.scores[:1] for k in r])))

    def top(self, n: int = 10, test: str | None = None, direction: str = "up") -> Rows:
        """The ``n`` documents that drive the bias up most (``direction="up"``: the most negative
        delta_bias_if_removed first) or down (``"down"``) per test (or for one ``test``), with their text
        snippet where the summary holds it."""
        if direction not in ("up", "down"):
            raise ConfigError(f"direction must be up or down, got {direction!r}")
        names = [test] if test is not None else self.tests
        for name in names:
            self.test(name)
        snippets = {(t["name"], d["doc_id"]): d.get("snippet") for t in self.summary["tests"]
                    for d in t.get("table", []) + t["top"]["increase_bias"] + t["top"]["decrease_bias"]}
        out = Rows()
        for name in names:
            rows = [r for r in self.scores if r["test"] == name
                    and (r["delta_bias_if_removed"] < 0 if direction == "up" else r["delta_bias_if_removed"] > 0)]
            rows.sort(key=lambda r: r["delta_bias_if_removed"], reverse=direction == "down")
            for rank, r in enumerate(rows[:n], 1):
                out.append({"test": name, "rank": rank, **{k: v for k, v in r.items() if k != "test"},
                            "snippet": snippets.get((name, r["doc_id"]))})
        return out


class ExperimentResult(_FolderResult):
    """What ``experiment`` wrote: experiment.json (per condition: means, sds, paired differences from random edits,
    verdicts; predicted-vs-actual correlations, LDS, leaderboard), results.csv (one row per estimator, test,
    condition, k and seed) and, in score/, the first estimator's ranking."""
    kind, summary_file = "experiment", "experiment.json"
    files = ("experiment-config.json", "scores.json", "results.csv", "summary.csv", "experiment.json",
             "report.html", "runs", "score")

    @property
    def results(self) -> Rows:
        """results.csv as rows (strings, as written)."""
        import csv
        import io

        from ..io import MAX_DATA_BYTES, open_regular

        with open_regular(self.folder / "results.csv", "results file", ArtifactError, MAX_DATA_BYTES,
                          follow=False) as raw:
            return Rows(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))

    @property
    def conditions(self) -> Rows:
        """One row per (estimator, test, condition, k): the summary's statistics."""
        return Rows(self.summary["conditions"])

    @property
    def measure_labels(self) -> dict:
        """{test: the label of the measure it was read with} (experiment-config.json; the measure given, or the
        one its test file carries)."""
        from ..io import read_json
        from ..measures.embedding import MEASURES

        config = self.folder / "experiment-config.json"
        return {t["name"]: MEASURES[t["measure"]].label for t in
                (read_json(config, "experiment config").get("tests", []) if config.exists() else [])
                if t.get("measure") in MEASURES}

    @property
    def ranking(self) -> ScoreResult:
        """The first estimator's ranking (the score outputs in score/)."""
        return ScoreResult.load(self.folder / "score")

    def to_pandas(self):
        """results.csv as a DataFrame."""
        from ..io import MAX_DATA_BYTES, open_regular

        with open_regular(self.folder / "results.csv", "results file", ArtifactError, MAX_DATA_BYTES,
                          follow=False) as f:
            return _pandas().read_csv(f)

    def top(self, n: int = 10, test: str | None = None, direction: str = "up") -> Rows:
        """The ranking's top ``n`` documents (the ones the experiment removed first)."""
        return self.ranking.top(n, test, direction)


class DebiasResult(_FolderResult):
    """What ``debias_corpus`` wrote: the edited corpus (the input's format) and manifest.json (edited ids, each
    document's predicted change, the predicted effect, the swap list's hash)."""
    kind, summary_file = "debias", "manifest.json"
    files = ("corpus.jsonl", "corpus.csv", "corpus.tsv", "manifest.json", "report.html")

    @property
    def corpus_file(self) -> Path:
        """The edited corpus (load it with ``load_corpus``)."""
        return self.folder / self.summary["corpus_out"]["file"]

    @property
    def edited(self) -> Rows:
        """One row per (edited document, test): id, test, rank, delta_bias_if_removed, predicted_change,
        rewritten, snippet, rewrite."""
        rows = Rows()
        for e in self.summary["edited"]:
            for test, r in e["tests"].items():
                rows.append({"id": e["id"], "test": test, **r, "rewritten": e["rewritten"],
                             "snippet": e["snippet"], "rewrite": e["rewrite"]})
        return rows

    def to_pandas(self):
        """The edited documents as a DataFrame."""
        return self.edited.to_pandas()

    def top(self, n: int = 10, test: str | None = None) -> Rows:
        """The first ``n`` edited documents per test (or for one ``test``), by rank."""
        rows = [r for r in self.edited if test is None or r["test"] == test]
        return Rows(r for r in sorted(rows, key=lambda r: (r["test"], r["rank"])) if r["rank"] <= n)


class WeatResult:
    """What ``measure`` returns: one row per (test, model) with the effect size, permutation p-value, bootstrap CI,
    set sizes, dropped words and the spread over the models' seeds (the rows of ``biasaudit weat --json``), and
    the tests skipped for lack of words ({name: reason})."""

    kind, summary_file = "weat", "weat.json"

    def __init__(self, rows: list[dict], skipped: dict):
        self.rows = Rows(rows)
        self.skipped = dict(skipped)

    def save(self, folder, overwrite: bool = False) -> "WeatResult":
        """Write ``folder/weat.json`` (the rows and the skipped tests; new folder, or one holding this tool's
        WEAT result for the same tests, another replaced only with ``overwrite``) and return the result there."""
        from ..io import claim_folder, write_json

        out = claim_folder(_path_arg("folder", folder), self.kind, self._config(), overwrite,
                           known=(self.summary_file,))
        with out.stage() as tmp:
            write_json(tmp / self.summary_file, self.to_dict())
        return WeatResult.load(folder)

    @classmethod
    def load(cls, folder) -> "WeatResult":
        """The WEAT result ``save`` wrote in ``folder``."""
        folder = _path_arg("folder", folder)
        if not (folder / cls.summary_file).is_file():
            raise ArtifactError(f"{folder}: no {cls.summary_file}; not a biasaudit WEAT result folder")
        data = read_summary(folder / cls.summary_file)
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or \
                not isinstance(data.get("skipped", {}), dict):
            raise ArtifactError(f"{folder / cls.summary_file}: not a WEAT result (rows and skipped)")
        return cls(data["rows"], data.get("skipped", {}))

    def _config(self) -> dict:
        """What identifies the result in its folder: its tests and models' seeds."""
        return {"tests": sorted({str(r.get("test")) for r in self.rows}),
                "seeds": sorted({str(r.get("seed")) for r in self.rows})}

    def __eq__(self, other) -> bool:
        return isinstance(other, WeatResult) and self.to_dict() == other.to_dict()

    @property
    def dropped_words(self) -> dict:
        """{test: {set: [words]}}: the words each test lost (missing from the model, or too rare)."""
        return {r["test"]: dict(r["dropped_words"]) for r in self.rows if r.get("dropped_words")}

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __repr__(self) -> str:
        return f"WeatResult({len(self.rows)} rows, {len(self.skipped)} skipped)"

    def to_dict(self) -> dict:
        """{"rows": [...], "skipped": {...}}."""
        return {"rows": list(self.rows), "skipped": self.skipped}

    def to_pandas(self):
        """The rows as a DataFrame."""
        return self.rows.to_pandas()

    def top(self, n: int = 10) -> Rows:
        """The ``n`` rows with the largest absolute effect size."""
        return Rows(sorted(self.rows, key=lambda r: -abs(r["effect_size"]))[:n])

    def _repr_html_(self) -> str:
        cols = ("test", "seed", "effect_size", "p_value", "ci_low", "ci_high", "sizes")
        return _html_table([{c: r.get(c) for c in cols} for r in self.rows]) + "".join(
            f"<p>{_esc(name)}: skipped, {_esc(reason)}</p>" for name, reason in self.skipped.items())


def _esc(text) -> str:
    import html

    return html.escape(str(text))


_RESULTS = {"summary.json": ScoreResult, "experiment.json": ExperimentResult, "manifest.json": DebiasResult,
            "weat.json": WeatResult}


def load_result(folder):
    """The result in an output folder of ``score`` (summary.json), ``experiment`` (experiment.json),
    ``debias`` (manifest.json), written by the API or the command line, or a saved ``measure`` (weat.json)."""
    folder = _path_arg("folder", folder)
    for name, cls in _RESULTS.items():
        if (folder / name).is_file():
            return cls.load(folder)
    raise ArtifactError(f"{folder}: no summary.json, experiment.json, manifest.json or weat.json: not a biasaudit "
                        "result")


def write_report(result) -> Path:
    """Write report.html (one self-contained page) for a result or an output folder; returns its path."""
    from ..report import write_report as write

    if not isinstance(result, _FolderResult) and not (isinstance(result, (str, os.PathLike)) and str(result)):
        raise ConfigError(f"result must be a result (score, experiment, debias) or its folder, got "
                          f"{type(result).__name__}")
    return write(result.folder if isinstance(result, _FolderResult) else Path(result))
