"""The HTML report: renders from result files alone, escapes hostile corpus text, and works in a real browser."""
import json
import shutil
from pathlib import Path

import pytest

from biasaudit.corpus import Document, MemoryCorpus
from biasaudit.report import build_context, render, segments, write_report
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.audit import run_score
from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
from biasaudit.wordsets import BiasTest
from conftest import PLANTED_TEST, planted_corpus

HOSTILE = ('zorbel studied algebra and zorbel loved calculus <script>window.__pwned = 1</script> '
           '<img src=x onerror="window.__pwned = 2"> </textarea><b>bold</b> quintar made poetry')


@pytest.fixture(scope="module")
def score_dir(tmp_path_factory):
    corpus, _, _ = planted_corpus()
    docs = list(corpus) + [Document("hostile<1>", HOSTILE)]
    corpus = MemoryCorpus(docs, name="planted")
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20, seed=1))
    out = tmp_path_factory.mktemp("report") / "score"
    run_score(model, corpus, [BiasTest.from_dict(PLANTED_TEST)], EstimatorConfig(), out_dir=out, top=5)
    return out


def test_segments_mark_words_without_html():
    segs = segments("Zorbel <b>loves</b> algebra.", {"zorbel"}, {"algebra"})
    assert "".join(t for t, _ in segs) == "Zorbel <b>loves</b> algebra."
    assert [t for t, c in segs if c] == ["Zorbel", "algebra"]
    assert dict((t, c) for t, c in segs if c) == {"Zorbel": "tw", "algebra": "aw"}


def test_renders_from_files_and_escapes_hostile_text(score_dir):
    html = render(score_dir)
    ctx = build_context(score_dir)
    table = ctx["tests"][0]["table_rows"]
    assert any(r["doc_id"] == "hostile<1>" for r in table), "the hostile document should be among the top rows"
    assert "<script>window.__pwned" not in html and 'onerror="window' not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert "&lt;/textarea&gt;" in html and "hostile&lt;1&gt;" in html
    assert html.count("<script>") == 1   # only the report's own sorting/filtering script
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # nothing fetched
    summary = json.loads((score_dir / "summary.json").read_text())
    assert f"{summary['tests'][0]['bias_value']:+.3f}" in html


def _svg_texts_outside(html: str, char_width: float = 0.6 * 12) -> list[str]:
    """Every SVG text whose estimated extent (its characters at 0.6 em of the charts' 12px font, placed by its
    text-anchor) leaves its viewBox's width."""
    import html as html_lib
    import re

    bad = []
    for svg in re.finditer(r'<svg viewBox="0 0 ([0-9.]+) [0-9.]+".*?</svg>', html, re.S):
        width = float(svg.group(1))
        for m in re.finditer(r'<text x="([-0-9.e]+)"([^>]*)>(.*?)</text>', svg.group(0)):
            a = re.search(r'text-anchor="(\w+)"', m.group(2))
            x, anchor, label = float(m.group(1)), a.group(1) if a else "start", html_lib.unescape(m.group(3))
            w = len(label) * char_width
            left = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
            if left < 0 or left + w > width:
                bad.append(f"{label!r} at x {x:.0f} ({anchor}) spans {left:.0f}..{left + w:.0f} of {width:.0f}")
    return bad


def test_chart_axis_labels_fit_inside_their_charts(score_dir, tmp_path):
    """The histogram's last tick label ("3.5e-03" at the axis end) was cut at the SVG's right edge: every label
    of every chart fits inside its viewBox, at GCIDE's score magnitudes too."""
    folder = tmp_path / "score"
    shutil.copytree(score_dir, folder)
    summary = json.loads((folder / "summary.json").read_text())
    hist = summary["tests"][0]["histogram"]
    n = len(hist["counts"])
    hist["edges"] = [-3.5e-3 + 7e-3 * i / n for i in range(n + 1)]     # "-3.5e-03" ... "3.5e-03"
    (folder / "summary.json").write_text(json.dumps(summary))
    html = render(folder)
    assert "3.5e-03</text>" in html
    assert _svg_texts_outside(html) == []
    assert _svg_texts_outside(render(score_dir)) == []


def test_the_cards_and_the_terminal_list_the_same_documents_in_one_stated_order(score_dir, tmp_path):
    """The report's cards were ordered by stability-aware evidence while the terminal sorts by score: both now
    show the same documents by score (summary.json's top too), and the report says so above the cards, also for
    an older summary.json whose top lists are in another order."""
    import html as html_lib
    import re

    from biasaudit.cli import _shown

    summary = json.loads((score_dir / "summary.json").read_text())
    t = summary["tests"][0]
    for direction, rev in (("increase_bias", False), ("decrease_bias", True)):
        scores = [d["delta_bias_if_removed"] for d in t["top"][direction]]
        assert scores == sorted(scores, reverse=rev), (direction, scores)
    folder = tmp_path / "score"
    shutil.copytree(score_dir, folder)
    old = json.loads((folder / "summary.json").read_text())
    for direction in ("increase_bias", "decrease_bias"):
        old["tests"][0]["top"][direction].reverse()          # an older file: the cards in evidence order
    (folder / "summary.json").write_text(json.dumps(old))
    page = render(folder)
    assert "sorted by score" in page and "the terminal's lists" in page
    for direction, cls in (("increase_bias", "up"), ("decrease_bias", "down")):
        part = page.split(f'<h3 class="{cls}">', 1)[1].split("</div>", 1)[0]
        cards = [html_lib.unescape(i) for i in re.findall(r'<article class="doc"><header><span>(.*?)</span>', part)]
        terminal = [d["doc_id"] for d in _shown(t, direction, len(t["top"][direction]))]
        assert cards and cards == terminal, (direction, cards, terminal)


def test_missing_results_are_a_clear_error(tmp_path):
    from biasaudit.errors import ArtifactError
    with pytest.raises(ArtifactError, match="run `biasaudit score`"):
        write_report(tmp_path)


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (Debian package `chromium`; .ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return chromium, sync_playwright


def test_report_in_a_real_browser(score_dir, tmp_path):
    chromium, sync_playwright = _browser()
    page_path = write_report(score_dir)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(Path(page_path).resolve().as_uri())
        shot = tmp_path / "shot.png"
        page.screenshot(path=str(shot))
        rows = page.locator("#doctable-1 tbody tr")
        n_rows = rows.count()
        values_before = [float(v) for v in page.eval_on_selector_all(
            "#doctable-1 tbody tr td:nth-child(2)", "els => els.map(e => e.dataset.value)")]
        page.click("#doctable-1 th button[data-col='1']")
        page.click("#doctable-1 th button[data-col='1']")   # descending
        values_after = [float(v) for v in page.eval_on_selector_all(
            "#doctable-1 tbody tr td:nth-child(2)", "els => els.map(e => e.dataset.value)")]
        page.fill("input.filter", "hostile")
        visible = page.locator("#doctable-1 tbody tr:not([hidden])").count()
        pwned = page.evaluate("() => window.__pwned")
        hostile_text = page.locator("#doctable-1 tbody tr:not([hidden]) td.text").first.inner_text()
        browser.close()
    assert errors == []
    assert pwned is None
    assert "<script>window.__pwned = 1</script>" in hostile_text
    summary = json.loads((score_dir / "summary.json").read_text())
    assert n_rows == len(summary["tests"][0]["table"]) > 10
    assert values_before == sorted(values_before)             # rendered most negative first
    assert values_after == sorted(values_before, reverse=True) and values_after != values_before
    assert visible == 1
    from PIL import Image
    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100 and sum(1 for n in img.histogram() if n) > 20, "the screenshot is blank"


def test_experiment_report_in_a_real_browser(tmp_path):
    """An experiment folder's report: the k chart, the predicted-vs-actual scatter and the conditions table."""
    from biasaudit.experiments import ExperimentSpec, run_experiment

    corpus, _, _ = planted_corpus()
    cfg = SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20, seed=1)
    spec = ExperimentSpec(corpus=corpus, model=cfg, tests=[BiasTest.from_dict(PLANTED_TEST)], heldout={},
                          estimators=[EstimatorConfig()], ks="10,20", seeds=2, quality=False,
                          conditions=("baseline", "remove-top", "upweight-top", "remove-random"))
    out = tmp_path / "exp"
    run_experiment(spec, out, cache=tmp_path / "cache")
    page_path = write_report(out)
    html = page_path.read_text()
    assert "Retraining: does the bias move as predicted?" in html and "remove-random" in html
    assert html.count("<circle") >= 2 * 3 + 8   # k-chart points (3 lines x 2 k) and scatter points
    chromium, sync_playwright = _browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.resolve().as_uri())
        n_svg = page.locator("svg").count()
        browser.close()
    assert errors == [] and n_svg >= 4


def test_the_default_shaped_report_prints_on_at_most_40_pages(tmp_path):
    """Three tests, ten documents each way with long texts and the top-100 table: the printed report stays short
    (headless Chromium's print to PDF, pages counted)."""
    import random
    import subprocess
    chromium, _ = _browser()
    corpus, _, _ = planted_corpus(n_background=600)
    rng = random.Random(1)
    from conftest import BACKGROUND
    docs = [Document(d.id, d.text + " " + " ".join(rng.choice(BACKGROUND) for _ in range(90))) for d in corpus]
    corpus = MemoryCorpus(docs, "long")
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=5, seed=1))
    tests = [BiasTest.from_dict({**PLANTED_TEST, "name": f"planted-{i}"}) for i in range(3)]
    out = tmp_path / "s"
    run_score(model, corpus, tests, EstimatorConfig(), out_dir=out, n_resamples=10)
    page = write_report(out)
    pdf = tmp_path / "r.pdf"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--no-first-run", "--disable-component-update", "--disable-sync", f"--print-to-pdf={pdf}",
                    "--no-pdf-header-footer", page.resolve().as_uri()], capture_output=True, timeout=120)
    data = pdf.read_bytes()
    import re
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
    assert 0 < pages <= 40, pages


def test_experiment_report_keeps_the_prediction_labels_and_its_table_fits_at_1200_px(tmp_path):
    """Issue 32: the two calibration sentences differed only in their number (the "re-measured" / "linear" label
    of the terminal and experiment.json was lost), and the "All conditions" table was 1,716 px wide in a 1,052 px
    box, its verdict column off-screen at 1200 px. Here with every column filled (quality benchmarks, held-out)."""
    from biasaudit.experiments import ExperimentSpec, run_experiment

    corpus, _, _ = planted_corpus()
    cfg = SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20, seed=1)
    spec = ExperimentSpec(corpus=corpus, model=cfg, tests=[BiasTest.from_dict(PLANTED_TEST)], heldout={},
                          estimators=[EstimatorConfig(), EstimatorConfig(name="gradient-dot")], ks="10,20", seeds=2,
                          quality=False, conditions=("baseline", "remove-top", "upweight-top", "remove-random"))
    out = tmp_path / "exp"
    run_experiment(spec, out, cache=tmp_path / "cache")
    summary = json.loads((out / "experiment.json").read_text())
    for d in summary["conditions"]:      # the columns a word-vector run on a real corpus fills
        d.update(wordsim353_mean=0.612345, wordsim353_coverage=0.93, simlex999_mean=0.301, simlex999_coverage=0.88,
                 analogy_mean=0.4512, heldout_change_mean=-0.1234)
    (out / "experiment.json").write_text(json.dumps(summary))
    page_path = write_report(out)
    chromium, sync_playwright = _browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(page_path.resolve().as_uri())
        sentences = [t for t in page.locator("p").all_text_contents() if "predicted against actual change" in t]
        fit = page.evaluate("""() => {
            const t = document.querySelector('table.conditions'), box = t.parentElement.getBoundingClientRect();
            const verdict = [...t.querySelectorAll('th')].find(th => th.textContent === 'verdict');
            return {table: t.scrollWidth, box: box.width, verdict_right: verdict.getBoundingClientRect().right,
                    analogy_right: t.querySelector('thead th:last-child').getBoundingClientRect().right,
                    viewport: window.innerWidth}; }""")
        browser.close()
    labels = {c["prediction"] for c in summary["predicted_vs_actual"] if c["estimator"].startswith("block")}
    assert labels == {"re-measured", "linear"}, summary["predicted_vs_actual"]
    for label in labels:
        assert any(t.startswith(f"block:damping=0.1 / planted, {label} prediction: ") for t in sentences), sentences
    assert fit["table"] <= fit["box"] + 1, fit
    assert fit["verdict_right"] <= fit["viewport"] and fit["analogy_right"] <= fit["viewport"], fit
