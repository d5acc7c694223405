"""The README is a front page that cannot drift from the code: its length, its command table against the CLI's
commands, its test command against .ci/run, its generated output block, every link between the pages, and each
measured table's provenance (command, machine, commit)."""
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]


def _readme_output():
    spec = importlib.util.spec_from_file_location("readme_output", ROOT / "scripts" / "readme_output.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _prose(text: str) -> list[str]:
    """The page's lines outside fenced and indented code blocks, inline code removed."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            continue
        lines.append(re.sub(r"`[^`]*`", "", line))
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text, fenced, out = path.read_text(encoding="utf-8"), False, set()
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,6} ", line):
            out.add(_slug(line.lstrip("#")))
    return out


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").split("\n")
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move reference to docs/"


def test_command_table_lists_the_cli_commands():
    import click
    import typer.main

    from biasaudit.cli import app

    group = typer.main.get_command(app)
    commands = set(group.list_commands(click.Context(group)))
    text = README.read_text(encoding="utf-8")
    table = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `biasaudit ([a-z-]+)", table, flags=re.M)
    assert len(listed) == len(set(listed)), f"a command listed twice: {listed}"
    assert set(listed) == commands, (f"README's command table: missing {sorted(commands - set(listed))}, "
                                     f"not a command {sorted(set(listed) - commands)}")


def test_ci_runs_the_readme_test_command():
    text = README.read_text(encoding="utf-8")
    assert "<!-- test command: begin -->\n" in text and "<!-- test command: end -->" in text, "README's test command markers"
    block = text.split("<!-- test command: begin -->\n", 1)[1].split("<!-- test command: end -->", 1)[0]
    readme_lines = [line.strip() for line in block.strip("\n").split("\n")]
    assert readme_lines[-1].startswith("python -m pytest") and "-rs" in readme_lines[-1].split()
    assert any("wefe==" in line for line in readme_lines), "the test command installs the measure tests' oracle"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").split("\n")]
    at = [ci.index(line) if line in ci else None for line in readme_lines]
    assert None not in at, f".ci/run lacks the README's line {readme_lines[at.index(None)]!r}"
    assert at == sorted(at), ".ci/run runs the README's test command lines out of order"


def test_links_between_pages_resolve():
    broken = []
    for page in PAGES:
        for line in _prose(page.read_text(encoding="utf-8")):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"^[a-z]+:", target):
                    continue                     # http(s), mailto: not checked offline
                path, _, anchor = target.partition("#")
                dest = (page.parent / path).resolve() if path else page
                if not dest.exists():
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
                elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_reachable_from_the_readme():
    seen, todo = set(), [README.resolve()]
    while todo:
        page = todo.pop()
        if page in seen or page.suffix != ".md" or not page.exists():
            continue
        seen.add(page)
        for line in _prose(page.read_text(encoding="utf-8")):
            for target in re.findall(r"\]\(([^)\s#]+)", line):
                if not re.match(r"^[a-z]+:", target):
                    todo.append((page.parent / target).resolve())
    missing = [str(p.relative_to(ROOT)) for p in PAGES if p.resolve() not in seen]
    assert not missing, f"not linked from the README or a page it links: {missing}"


def test_measured_tables_name_command_machine_and_commit():
    for page in sorted((ROOT / "docs" / "results").glob("*.md")):
        if page.name == "README.md":
            continue
        lines = page.read_text(encoding="utf-8").split("\n")
        since, in_table = [], False
        for i, line in enumerate(lines):
            is_row = line.lstrip().startswith("|")
            if is_row and not in_table:
                starts = [k for k, s in enumerate(since) if s.lstrip().startswith("> Produced by")]
                where = f"{page.name}, table at line {i + 1}"
                assert starts, f"{where}: no '> Produced by' line since the previous table"
                quote = []                       # the whole blockquote: the provenance may run over lines
                for s in since[starts[-1]:]:
                    if not s.lstrip().startswith(">"):
                        break
                    quote.append(s.lstrip()[1:].strip())
                prov = " ".join(quote)
                assert "CPU" in prov, f"{where}: the machine is not named"
                assert re.search(r"commit [0-9a-f]{7,} \(\d{4}-\d\d-\d\d\)", prov), f"{where}: no commit"
                since = []
            in_table = is_row
            if not is_row:
                since.append(line)


def test_readme_output_block_is_generated():
    mod = _readme_output()
    text = README.read_text(encoding="utf-8")
    assert text.count(mod.BEGIN) == 1 and text.count(mod.END) == 1
    block = text.split(mod.BEGIN, 1)[1].split(mod.END, 1)[0]
    assert "commit " in block and "CPU cores" in block, "the block names its commit and machine"
    assert "\n    wrote " in block and "\n    done in " in block, "the block is a score run's output"


SAMPLE = """summary: no test shows a bias: t1 d +0.46 p 0.19, t2 d +0.73 p 0.074.

t1 (male / female x math / arts)
d = +0.46 (p = 0.190, 95% CI [-0.47, +1.30]): not distinguishable from no association on these
words.
words used: male 8/8, female 8/8, math 8/8, arts 8/8
word             set             count   share
she              female         61,204    12.5%
algebra          math              412     8.1%  rare
removing the top 0.1% (126 documents): +0.46 -> -0.02 predicted (the scores' sum says +0.01)

documents that drive the bias UP (removing them lowers it), block:damping=0.1:
     score  stab  document (its test words); sorted by score, as in the report's table
{up}
  (second column: stability, the share of word resamples that keep the document in the top 100)

documents that drive the bias DOWN (removing them raises it), block:damping=0.1:
     score  stab  document (its test words); sorted by score, as in the report's table
{down}
  (second column: stability, the share of word resamples that keep the document in the top 100)

t2 (male / female x science / arts)
d = +0.73 (p = 0.074)
documents that drive the bias UP (removing them lowers it), block:damping=0.1:
   -0.0100  0.50  t2doc (she)
            t2 text

wrote reports/x/scores.jsonl and summary.json
report: reports/x/report.html

summary: no test shows a bias: t1 d +0.46 p 0.19, t2 d +0.73 p 0.074.
done in 3.4 min (training seed 1 2.1 min, ranking 20 s)"""


def _docs(sign: str, n: int) -> str:
    return "\n".join(f"   {sign}0.0{i:03d}  0.66  doc{sign}{i} (hers, she)\n            text of doc {i}"
                     for i in range(n))


def test_readme_output_shortens_a_score_run_to_one_screen():
    mod = _readme_output()
    full = SAMPLE.format(up=_docs("-", 10), down=_docs("+", 10))
    short = mod.shorten(full, ["t1", "t2"]).split("\n")
    assert short[0].startswith("summary:") and "t1 (male / female x math / arts)" in short
    assert not any(line.startswith("she ") for line in short)
    assert "[... the 2 words carrying most of the predicted change, with their counts ...]" in short
    assert sum(line.startswith("   -0.0") for line in short) == 3 and "doc-2 (hers, she)" in "\n".join(short)
    assert sum(line.startswith("   +0.0") for line in short) == 3
    assert short.count("[... 7 more ...]") == 2
    assert "t2doc" not in "\n".join(short) and "[... t2: the same way ...]" in short
    tail = full.split("\n")[full.split("\n").index("wrote reports/x/scores.jsonl and summary.json"):]
    assert short[-len(tail):] == tail, "everything from the 'wrote' line on is kept"
    with pytest.raises(ValueError):
        mod.shorten("no run here", ["t1"])


def test_readme_output_replaces_only_between_its_markers():
    mod = _readme_output()
    text = f"head\n{mod.BEGIN}\nold\n{mod.END}\ntail\n"
    assert mod.replace_block(text, "new\n") == f"head\n{mod.BEGIN}\nnew\n{mod.END}\ntail\n"
    with pytest.raises(ValueError):
        mod.replace_block("no markers", "new")
