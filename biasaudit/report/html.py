"""``biasaudit report DIR``: one self-contained HTML file (CSS, JavaScript and SVG charts inline; nothing fetched)
from the outputs of ``score`` (summary.json) and ``experiment`` (experiment.json, results.csv, and the score
summary it writes in ``score/``).

Corpus text is untrusted: the template is rendered by jinja2 with autoescaping on, and highlighted snippets are
passed as (text, class) segments, never as HTML strings. Charts are computed here as coordinates and drawn by
the template, so no corpus string reaches the page unescaped.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

from ..errors import ArtifactError
from ..io import MANIFEST, atomic_write_text, open_regular, read_json, read_manifest, write_json
from ..vocab import TOKEN


# ------------------------------------------------------------------ words and snippets
def segments(text: str, targets: set[str], attributes: set[str]) -> list[tuple[str, str]]:
    """Split ``text`` into (piece, css class) with the test words marked: '' plain, 'tw' target, 'aw' attribute."""
    out, last = [], 0
    for m in TOKEN.finditer(text):
        w = m.group().lower()
        cls = "tw" if w in targets else "aw" if w in attributes else ""
        if cls:
            if m.start() > last:
                out.append((text[last:m.start()], ""))
            out.append((m.group(), cls))
            last = m.end()
    if last < len(text):
        out.append((text[last:], ""))
    return out


def magnitude(d: float) -> str:
    """Cohen's conventional labels for an effect size."""
    a = abs(d)
    return "negligible" if a < 0.2 else "small" if a < 0.5 else "medium" if a < 0.8 else "strong"


def in_words(test: dict) -> str:
    """'strong association of male with math and female with arts (d = +1.57, p < 0.001 (exact))'."""
    w = test.get("weat")
    sets = test.get("roles", {}).get("sets", {})
    if not w or not sets:
        return ""
    d = w["effect_size"]
    if "metric" in w:       # --measure (WEAT's statistics carry no metric field): the measure's own verdict sentence
        return (test.get("evidence") or {}).get("verdict", "")
    x, y = sets["target_x"]["name"], sets["target_y"]["name"]
    a, b = sets["attribute_a"]["name"], sets["attribute_b"]["name"]
    if d < 0:
        x, y = y, x
    p = w["p_value"]
    ptxt = ("p < 0.001" if p < 0.001 else f"p = {p:.3f}") + (" (exact)" if w.get("exact") else " (Monte Carlo)")
    sig = "" if p < 0.05 else "; not significant at 0.05 on these word lists"
    return f"{magnitude(d)} association of {x} with {a} and {y} with {b} (d = {d:+.2f}, {ptxt}{sig})"


# ------------------------------------------------------------------ charts as coordinates
def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    import math
    span = hi - lo or 1.0
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step) + 1)]


# an x-axis label's width estimated from its characters: the charts' text is 12px sans-serif, whose digits and signs
# are about 0.55 em wide; 0.6 em leaves a margin
CHAR_WIDTH = 7.2


def _anchored(ticks: list[dict], width: float, prefix: str = "") -> list[dict]:
    """x-axis ticks with a ``text-anchor`` that keeps each label (``prefix`` + label) inside [0, width]: centred
    under its tick where it fits, else ending (or starting) at the tick, so the last label is never cut."""
    for t in ticks:
        half = len(prefix + t["label"]) * CHAR_WIDTH / 2
        t["anchor"] = "end" if t["x"] + half > width else "start" if t["x"] - half < 0 else "middle"
    return ticks


def forest_plot(rows: list[dict], width: int = 640) -> dict:
    """rows: {label, d, lo, hi, seeds: [d per seed]} -> chart coordinates (effect size axis, CI bars)."""
    vals = [v for r in rows for v in (r["d"], r.get("lo"), r.get("hi"), *r.get("seeds", [])) if v is not None]
    lo, hi = min(vals + [-0.5, 0.0]), max(vals + [0.5, 0.0])
    lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
    x = _scale(lo, hi, 180, width - 20)
    out = []
    for i, r in enumerate(rows):
        y = 30 + i * 34
        out.append({"label": r["label"], "y": y, "x": x(r["d"]), "d": r["d"],
                    "x_lo": x(r["lo"]) if r.get("lo") is not None else None,
                    "x_hi": x(r["hi"]) if r.get("hi") is not None else None,
                    "seeds": [x(v) for v in r.get("seeds", [])]})
    return {"width": width, "height": 50 + 34 * len(rows), "rows": out, "zero": x(0.0),
            "ticks": _anchored([{"x": x(t), "label": f"{t:g}"} for t in _ticks(lo, hi)], width)}


def histogram_chart(h: dict, width: int = 640, height: int = 200) -> dict:
    """Bars on a log10(1 + count) scale so the tails stay visible."""
    import math
    counts, edges = h["counts"], h["edges"]
    top = max([math.log10(1 + c) for c in counts] + [1.0])
    x = _scale(edges[0], edges[-1], 50, width - 10)
    bars = []
    for c, e0, e1 in zip(counts, edges[:-1], edges[1:]):
        hgt = (height - 40) * math.log10(1 + c) / top
        bars.append({"x": x(e0), "w": max(1.0, x(e1) - x(e0) - 1), "y": height - 25 - hgt, "h": hgt, "count": c,
                     "range": f"{e0:+.2e} to {e1:+.2e}", "neg": e1 <= 0})
    return {"width": width, "height": height, "bars": bars, "zero": x(0.0),
            "ticks": _anchored([{"x": x(t), "label": f"{t:.1e}" if t else "0"}
                                for t in (edges[0], edges[0] / 2, 0.0, edges[-1] / 2, edges[-1])], width),
            "ymax": 10 ** top - 1}


def k_chart(series: dict[str, list[dict]], width: int = 640, height: int = 260, baseline: float | None = None) -> dict:
    """series: condition -> [{n_docs, mean, sd}] -> effect size against k with error bars (log x when k spans)."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return {}
    ks = sorted({p["n_docs"] for p in pts if p["n_docs"] > 0})
    ys = [v for p in pts for v in (p["mean"] - (p["sd"] or 0), p["mean"] + (p["sd"] or 0))]
    ys += [] if baseline is None else [baseline]
    lo, hi = min(ys + [0.0]), max(ys + [0.0])
    lo, hi = lo - 0.1 * (hi - lo or 1), hi + 0.1 * (hi - lo or 1)
    y = _scale(lo, hi, height - 30, 15)
    pos = {k: 80 + i * (width - 140) / max(1, len(ks) - 1) for i, k in enumerate(ks)} if ks else {}
    colours = {"remove-top": "#b2182b", "remove-bottom": "#2166ac", "upweight-top": "#e08214",
               "remove-random": "#4d4d4d", "remove-ids": "#7b3294"}
    lines = []
    for cond, s in series.items():
        s = sorted([p for p in s if p["n_docs"] in pos], key=lambda p: p["n_docs"])
        if not s:
            continue
        lines.append({"condition": cond, "colour": colours.get(cond, "#000"),
                      "points": [{"x": pos[p["n_docs"]], "y": y(p["mean"]), "y_lo": y(p["mean"] - (p["sd"] or 0)),
                                  "y_hi": y(p["mean"] + (p["sd"] or 0)), "mean": p["mean"], "sd": p["sd"],
                                  "k": p["k"]} for p in s]})
        lines[-1]["path"] = " ".join(f"{'M' if i == 0 else 'L'}{q['x']:.1f},{q['y']:.1f}"
                                     for i, q in enumerate(lines[-1]["points"]))
    return {"width": width, "height": height, "lines": lines, "zero": y(0.0),
            "baseline_y": None if baseline is None else y(baseline),
            "xticks": _anchored([{"x": pos[k], "label": str(k)} for k in ks], width, prefix="k = "),
            "yticks": [{"y": y(t), "label": f"{t:g}"} for t in _ticks(lo, hi)]}


def scatter_chart(points: list[tuple[float, float, str]], width: int = 360, height: int = 300) -> dict:
    """Predicted (x) against actual (y) change, with the y = x line."""
    if not points:
        return {}
    vals = [v for p in points for v in p[:2]] + [0.0]
    lo, hi = min(vals), max(vals)
    pad = 0.1 * (hi - lo or 1)
    lo, hi = lo - pad, hi + pad
    x, y = _scale(lo, hi, 45, width - 10), _scale(lo, hi, height - 30, 10)
    return {"width": width, "height": height, "points": [{"x": x(a), "y": y(b), "label": c, "pred": a, "act": b}
                                                          for a, b, c in points],
            "diag": (x(lo), y(lo), x(hi), y(hi)), "zx": x(0.0), "zy": y(0.0),
            "ticks": _anchored([{"x": x(t), "y": y(t), "label": f"{t:g}"} for t in _ticks(lo, hi, 4)], width)}


# ------------------------------------------------------------------ assembling the page
def _read_json(path: Path):
    """A result file (summary.json, experiment.json, a debias manifest.json): a regular file of bounded size
    (``REPORT_BYTES``) and depth (``biasaudit.io.read_json``): a FIFO, a device or a link to /dev/zero is one line,
    never read; a symbolic link in the folder is refused, never followed (it would show another run's results)."""
    return read_json(path, "result file for a report", REPORT_BYTES, follow=False)


# A summary.json is a file anyone can hand `report`: 23 MB of rows made a 308 MB page and took 3.7 GB. A page shows
# at most these (score's defaults are far inside them), says what it left out; summary.json keeps everything.
REPORT_BYTES = 64 << 20      # the largest result file a report reads (MAX_RESULT_BYTES for the API: 256 MiB)
REPORT_TESTS = 50            # tests shown
REPORT_TOP = 50              # documents each way per test (score --top: 10)
REPORT_TABLE = 200           # table rows per test (score writes 100)
REPORT_ITEMS = 200           # entries of any other list or mapping (a set's words, warnings, notes, bins)
REPORT_CHARS = 2_000         # characters of any other text
SNIPPET_CHARS = 600          # characters of one document (score writes 300 and 600)
REPORT_CHARTS = 100          # (estimator, test) charts of an experiment
REPORT_CONDITIONS = 5_000    # rows of experiment.json's conditions (a large experiment has about 1,000)
REPORT_RESULTS = 50_000      # rows of results.csv read
REPORT_POINTS = 2_000        # points of one scatter chart
REPORT_TEXT = 2_000_000      # characters of documents on the whole page; a marked word counts 30, a row 200
MARK_COST, ROW_COST = 30, 200


class _Bounds:
    """What one page renders, cut to the REPORT_* bounds as it is assembled, and counts of what was left out."""

    def __init__(self):
        self.left = REPORT_TEXT
        self.cut: dict[str, int] = {}

    def count(self, what: str, n: int) -> None:
        if n > 0:
            self.cut[what] = self.cut.get(what, 0) + n

    def clip(self, value):
        """``value`` with every list and mapping cut to REPORT_ITEMS entries and every text to REPORT_CHARS."""
        if isinstance(value, str):
            if len(value) <= REPORT_CHARS:
                return value
            self.count("texts shortened", 1)
            return value[:REPORT_CHARS - 1] + "…"
        if isinstance(value, list):
            self.count("list entries", len(value) - REPORT_ITEMS)
            return [self.clip(v) for v in value[:REPORT_ITEMS]]
        if isinstance(value, dict):
            self.count("list entries", len(value) - REPORT_ITEMS)
            return {self.clip(k): self.clip(v) for k, v in list(value.items())[:REPORT_ITEMS]}
        return value

    def docs(self, items: list, n: int, tw: set, aw: set, what: str, line: bool = False) -> list[dict]:
        """Up to ``n`` of ``items`` (score's document rows) with their text marked, while the page's text lasts."""
        out = []
        for d in items[:n]:
            text = d["snippet"][:SNIPPET_CHARS] if isinstance(d.get("snippet"), str) else d["snippet"]
            segs = segments(text, tw, aw)
            cost = ROW_COST + len(text) + MARK_COST * sum(1 for _, c in segs if c)
            if cost > self.left:
                self.count("document rows (the page's text ran out)", 1)
                continue
            self.left -= cost
            row = {**self.clip({k: v for k, v in d.items() if k != "snippet"}), "snippet": text, "segments": segs}
            if line:
                row["line"] = segments(_one_line(text), tw, aw)
            out.append(row)
        self.count(what, len(items) - n)
        return out

    def lines(self) -> list[str]:
        return [f"{n:,} {what}" for what, n in self.cut.items()]


def build_context(folder: Path) -> dict:
    """Everything the template shows, from the files in ``folder``."""
    folder = Path(folder)
    score_dir = folder if (folder / "summary.json").exists() else folder / "score"
    summary = _read_json(score_dir / "summary.json") if (score_dir / "summary.json").exists() else None
    exp = _read_json(folder / "experiment.json") if (folder / "experiment.json").exists() else None
    if summary is None and exp is None:
        raise ArtifactError(f"{folder}: no summary.json or experiment.json: run `biasaudit score` or "
                            "`biasaudit experiment` first")
    bounds = _Bounds()
    if summary:
        tests = summary["tests"]
        bounds.count(f"tests (the first {REPORT_TESTS} are shown)", len(tests) - REPORT_TESTS)
        summary = {**bounds.clip({k: v for k, v in summary.items() if k != "tests"}), "tests": tests[:REPORT_TESTS]}
    if exp:
        conds = exp["conditions"]
        bounds.count(f"experiment conditions past {REPORT_CONDITIONS:,}", len(conds) - REPORT_CONDITIONS)
        exp = {**bounds.clip({k: v for k, v in exp.items() if k != "conditions"}),
               "conditions": [bounds.clip(d) for d in conds[:REPORT_CONDITIONS]]}
    ctx = {"summary": summary, "experiment": exp, "tests": [], "generated": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                           time.gmtime())}
    # what the tests' numbers are: WEAT's d (template association's too), a --measure's own (RIPA, ...), or a
    # log-likelihood gap over sentence pairs (CrowS-Pairs); "value" when the tests mix them
    kinds = [("gap (nats)", "pairs") if t.get("kind") == "pairs" else ((t.get("weat") or {}).get("label") or "d",
                                                                       "words")
             for t in (summary or {}).get("tests", [])]
    labels, over = {k[0] for k in kinds}, {k[1] for k in kinds}
    ctx["value_label"] = labels.pop() if len(labels) == 1 else "d" if not labels else "value"
    ctx["ci_over"] = over.pop() if len(over) == 1 else "words" if not over else "words or pairs"
    if summary:
        for i, full in enumerate(summary["tests"]):
            t = bounds.clip({k: v for k, v in full.items() if k not in ("top", "table")})
            roles = t.get("roles", {})
            tw, aw = set(roles.get("target", [])), set(roles.get("attribute", []))
            docs = {}
            for direction, items in full["top"].items():   # by score, as the terminal lists them (older files too)
                items = sorted(items, key=lambda d: d["delta_bias_if_removed"], reverse=direction == "decrease_bias")
                docs[direction] = bounds.docs(items, REPORT_TOP, tw, aw, f"top documents past {REPORT_TOP} each way")
            table = bounds.docs(full.get("table", full["top"]["increase_bias"] + full["top"]["decrease_bias"]),
                                REPORT_TABLE, tw, aw, f"table rows past {REPORT_TABLE} per test", line=True)
            summary["tests"][i] = t
            ctx["tests"].append({**t, "docs": docs, "table_rows": table, "words": in_words(t),
                                 "hist": histogram_chart(t["histogram"]) if t.get("histogram") else None})
    forest = []
    rows = _results(folder, bounds) if exp else []
    if exp:
        base = [d for d in exp["conditions"] if d["condition"] == "baseline"]
        bounds.count(f"baselines past {REPORT_CHARTS} in the effect-size chart", len(base) - REPORT_CHARTS)
        seeds_of: dict[tuple, list] = {}
        for r in rows:
            if r["condition"] == "baseline" and r["effect_size"]:
                seeds_of.setdefault((r["estimator"], r["test"]), []).append(float(r["effect_size"]))
        for d in base[:REPORT_CHARTS]:
            seeds = seeds_of.get((d["estimator"], d["test"]), [])
            sd = d["effect_size_sd"] or 0.0
            forest.append({"label": f"{d['test']} ({len(seeds)} seeds)", "d": d["effect_size_mean"],
                           "lo": d["effect_size_mean"] - sd, "hi": d["effect_size_mean"] + sd, "seeds": seeds})
    elif summary:
        for t in summary["tests"]:
            w = t.get("weat")
            if w:
                forest.append({"label": t["name"], "d": w["effect_size"], "lo": w.get("ci_low"),
                               "hi": w.get("ci_high"), "seeds": []})
    ctx["forest"] = forest_plot(forest) if forest else None
    if exp:
        ctx["exp"] = _experiment_context(exp, rows, bounds)
    ctx["left_out"] = bounds.lines()
    return ctx


LINE_CHARS = 110


def _one_line(text: str) -> str:
    """The first ``LINE_CHARS`` characters of a snippet, on one line (the table's compact view)."""
    text = " ".join(text.split())
    return text if len(text) <= LINE_CHARS else text[:LINE_CHARS - 1] + "…"


def _results(folder: Path, bounds: _Bounds) -> list[dict]:
    """The first REPORT_RESULTS rows of results.csv."""
    path = folder / "results.csv"
    if not path.exists():
        return []
    import io
    from itertools import islice

    with open_regular(path, "results file", ArtifactError, REPORT_BYTES, follow=False) as raw:
        try:
            reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            rows = list(islice(reader, REPORT_RESULTS))
            bounds.count(f"rows of results.csv past {REPORT_RESULTS:,}", sum(1 for _ in reader))
            return rows
        except (UnicodeDecodeError, csv.Error) as e:
            raise ArtifactError(f"{path}: corrupted results file ({e})") from e


def _experiment_context(exp: dict, rows: list[dict], bounds: _Bounds) -> dict:
    charts, scatters, quality = [], [], []
    conds_of: dict[tuple, list] = {}
    for d in exp["conditions"]:
        conds_of.setdefault((d["estimator"], d["test"]), []).append(d)
    rows_of: dict[tuple, list] = {}
    for r in rows:
        rows_of.setdefault((r["estimator"], r["test"]), []).append(r)
    pairs = [(est, test) for est in exp["estimators"] for test in exp["tests"]]
    bounds.count(f"charts past {REPORT_CHARTS}", len(pairs) - REPORT_CHARTS)
    for est, test in pairs[:REPORT_CHARTS]:
        conds = conds_of.get((est, test), [])
        base = next((d for d in conds if d["condition"] == "baseline"), None)
        series: dict[str, list] = {}
        for d in conds:
            if d["condition"] in ("baseline", "hard-debias") or d["effect_size_mean"] is None:
                continue
            series.setdefault(d["condition"], []).append({"n_docs": d["n_docs"], "k": d["k"],
                                                           "mean": d["effect_size_mean"],
                                                           "sd": d["effect_size_sd"]})
        charts.append({"estimator": est, "test": test,
                       "chart": k_chart(series, baseline=None if base is None else base["effect_size_mean"]),
                       "baseline": None if base is None else base["effect_size_mean"]})
        pts = []
        for r in rows_of.get((est, test), []):
            if (r["condition"] not in ("baseline", "hard-debias")
                    and r["predicted_effect_size"] and r["effect_size"] and r["baseline_effect_size"]):
                b = float(r["baseline_effect_size"])
                pts.append((float(r["predicted_effect_size"]) - b, float(r["effect_size"]) - b,
                            f"{r['condition']} k={r['k']} seed {r['seed']}"))
        bounds.count(f"points past {REPORT_POINTS:,} per chart", len(pts) - REPORT_POINTS)
        scatters.append({"estimator": est, "test": test, "chart": scatter_chart(pts[:REPORT_POINTS])})
        for d in conds:
            quality.append(d)
    shrunk = [{"estimator": est, "test": test, "reliability": info["seed_reliability"]}
              for est, by_test in (exp.get("solver_info") or {}).items() for test, info in by_test.items()
              if isinstance(info, dict) and info.get("seed_reliability") is not None]
    return {"charts": charts, "scatters": scatters, "conditions": quality, "shrunk": shrunk}


def environment():
    """The jinja2 environment of every page and fragment: every value is escaped for HTML (autoescape) and loses
    control characters (escape sequences, bidi overrides); number filters signed, num, g and pval."""
    import jinja2

    from ..terminal import strip_controls

    env = jinja2.Environment(loader=jinja2.PackageLoader("biasaudit", "data/templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             finalize=lambda v: strip_controls(v) if isinstance(v, str) else v)
    env.filters["signed"] = lambda v, n=3: "–" if v is None else f"{v:+.{n}f}"
    env.filters["num"] = lambda v, n=3: "–" if v is None else f"{v:.{n}f}"
    env.filters["g"] = lambda v: f"{v:.4g}" if isinstance(v, float) else v
    env.filters["pval"] = lambda v: "–" if v is None else ("< 0.001" if v < 0.001 else f"{v:.3f}")
    return env


def render(folder: Path) -> str:
    import jinja2

    env = environment()
    try:
        if (folder / "manifest.json").exists() and not (folder / "summary.json").exists():   # a debias folder
            return env.get_template("debias.html.j2").render(m=_read_json(folder / "manifest.json"))
        return env.get_template("report.html.j2").render(**build_context(folder))
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, jinja2.UndefinedError) as e:
        raise ArtifactError(f"{folder}: the result files are not ones this version of biasaudit can read "
                            f"({type(e).__name__}: {str(e)[:120]}); run the command again to write them") from e


def write_report(folder: str | Path) -> Path:
    """Render ``folder/report.html`` atomically and return its path. A report.html that this folder's manifest
    does not list (a user's own page, a folder biasaudit did not write) is never replaced."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: not a folder of biasaudit results")
    manifest = read_manifest(folder)
    if manifest is not None and not manifest.get("complete", True):
        raise ArtifactError(f"{folder}: the run that writes this folder did not finish; rerun the same command "
                            "(it resumes) before writing the report")
    page = folder / "report.html"
    listed = manifest is not None and "report.html" in manifest.get("files", [])
    if (page.exists() or page.is_symlink()) and not listed:
        raise ArtifactError(f"{page}: not written by biasaudit (no manifest of this folder lists it); nothing is "
                            "replaced: move it away to write the report here")
    html = render(folder)
    if manifest is not None and not listed:     # listed before it exists: a crash never leaves an unlisted page
        write_json(folder / MANIFEST, {**manifest, "files": sorted({*manifest.get("files", []), "report.html"})})
    atomic_write_text(page, html)
    return page
