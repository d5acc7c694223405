"""A hostile local checkpoint (``--model lm --checkpoint DIR``): its code never runs, no prompt is printed and
stdin is never read, weightless or partial weights are refused, hub kernels are refused, a hostile tokenizer.json
is one line naming the file, and a fine-tune never writes into the checkpoint it starts from. Tiny offline
checkpoints only (planted.tiny_checkpoint)."""
from __future__ import annotations

import io
import json
import shutil
import sys

import pytest

pytest.importorskip("transformers")

from biasaudit.errors import ArtifactError  # noqa: E402
from biasaudit.models.lm import LMConfig, LMModel, train_lm  # noqa: E402
from biasaudit.planted import LM_TEMPLATES, LM_TEST, lm_planted_corpus, tiny_checkpoint  # noqa: E402
from conftest import run_cli  # noqa: E402


@pytest.fixture(scope="module")
def small():
    corpus, _ = lm_planted_corpus(n_background=30, n_planted=4)
    return corpus


@pytest.fixture(scope="module")
def base(small, tmp_path_factory):
    root = tmp_path_factory.mktemp("ckbase")
    (root / "t.json").write_text(json.dumps(LM_TEST))
    (root / "tpl.txt").write_text("\n".join(LM_TEMPLATES) + "\n")
    return tiny_checkpoint(root / "gpt2", "gpt2", [d.text for d in small], width=16)


def variant(base, dest):
    shutil.copytree(base, dest)
    return dest


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def weat(folder, *extra, tmp_path):
    """``echo y | biasaudit weat --model lm --checkpoint FOLDER``, in process; also says whether stdin was read."""
    test = tmp_path / "t.json"
    test.write_text(json.dumps(LM_TEST))
    stdin, old = io.StringIO("y\n"), sys.stdin
    sys.stdin = stdin
    try:
        p = run_cli("weat", "--model", "lm", "--checkpoint", folder, "-t", test, *extra,
                    cache=tmp_path / "cache")
    finally:
        sys.stdin = old
    p.stdin_read = stdin.tell() != 0
    return p


def one_line_error(p, *words):
    assert p.returncode == 1, p
    lines = [x for x in p.stderr.strip().splitlines() if not x.startswith("loaded ")]   # a load that succeeded
    assert len(lines) == 1 and lines[0].startswith("error:"), p
    assert "Traceback" not in p.stderr and "panicked" not in p.stderr, p
    for w in words:
        assert w in p.stderr, p


EVIL_CONFIG = ("import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"
               "from transformers import GPT2Config\n\n\nclass EvilConfig(GPT2Config):\n    model_type = 'evil_llama'\n")
EVIL_MODEL = ("import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"
              "from transformers import GPT2LMHeadModel\n\n\nclass EvilModel(GPT2LMHeadModel):\n    pass\n")
EVIL_TOKENIZER = ("import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"
                  "from transformers import PreTrainedTokenizerFast\n\n\nclass EvilTok(PreTrainedTokenizerFast):\n"
                  "    pass\n")


def evil_checkpoint(base, dest, place: str, marker):
    d = variant(base, dest)
    if place == "config.json":
        edit_json(d / "config.json", model_type="evil_llama",
                  auto_map={"AutoConfig": "configuration_evil.EvilConfig",
                            "AutoModelForCausalLM": "modeling_evil.EvilModel"})
        (d / "configuration_evil.py").write_text(EVIL_CONFIG.format(marker=str(marker)))
        (d / "modeling_evil.py").write_text(EVIL_MODEL.format(marker=str(marker)))
    else:
        edit_json(d / "tokenizer_config.json", tokenizer_class="EvilTok",
                  auto_map={"AutoTokenizer": [None, "tokenization_evil.EvilTok"]})
        (d / "tokenization_evil.py").write_text(EVIL_TOKENIZER.format(marker=str(marker)))
    return d


# ------------------------------------------------------------------ 1. checkpoint code never runs
@pytest.mark.parametrize("place", ["config.json", "tokenizer_config.json"])
def test_checkpoint_code_is_never_run_nor_asked_about(base, tmp_path, place):
    marker = tmp_path / "ran"
    d = evil_checkpoint(base, tmp_path / "evil", place, marker)
    p = weat(d, "--json", tmp_path=tmp_path)
    assert not marker.exists(), p
    one_line_error(p, place, "checkpoint code is never run")
    assert p.stdout == "", p                           # --json output never carries a prompt
    assert "[y/N]" not in p.stderr and not p.stdin_read, p


def test_a_config_naming_a_python_file_of_the_folder_is_refused(base, tmp_path):
    d = variant(base, tmp_path / "named")
    edit_json(d / "tokenizer_config.json", tokenizer_class="tokenization_evil.EvilTok")
    (d / "tokenization_evil.py").write_text("raise SystemExit('ran')\n")
    with pytest.raises(ArtifactError, match=r"tokenizer_config\.json: .*never run"):
        LMModel.load(d)


def test_transformers_is_always_told_not_to_trust_remote_code(base, monkeypatch):
    import transformers

    seen = []
    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        original = cls.from_pretrained.__func__

        def spy(klass, *a, _original=original, **k):
            seen.append((klass.__name__, k.get("trust_remote_code", "not passed")))
            return _original(klass, *a, **k)
        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    LMModel.load(base)
    assert {n for n, _ in seen} == {"AutoModelForCausalLM", "AutoTokenizer"}
    assert all(v is False for _, v in seen), seen


def test_a_hostile_folder_name_is_cleaned_in_the_error(base, tmp_path):
    d = evil_checkpoint(base, tmp_path / "ck\x1b]0;owned\x07\x1b[2J", "config.json", tmp_path / "ran")
    p = weat(d, tmp_path=tmp_path)
    one_line_error(p, "never run")
    assert "\x1b" not in p.stderr + p.stdout and "\x07" not in p.stderr + p.stdout, p


# ------------------------------------------------------------------ 2. weights that are not the network's
def _resave(folder, edit):
    from safetensors.torch import load_file, save_file

    sd = load_file(folder / "model.safetensors")
    sd = edit(sd)
    (folder / "model.safetensors").unlink()
    save_file(sd, folder / "model.safetensors", metadata={"format": "pt"})


def test_a_weightless_checkpoint_is_refused(base, tmp_path):
    d = variant(base, tmp_path / "empty")
    _resave(d, lambda sd: {})
    p = weat(d, tmp_path=tmp_path)
    one_line_error(p, "missing", "transformer.h.0.attn.c_attn.bias", "in all)")


@pytest.mark.parametrize("edit, words", [
    (lambda sd: {k: v for k, v in sd.items() if k != "transformer.ln_f.bias"},
     ["1 missing", "transformer.ln_f.bias"]),
    (lambda sd: {**sd, "extra.weight": sd["transformer.ln_f.bias"].clone()}, ["1 unexpected", "extra.weight"]),
])
def test_partial_or_extra_weights_are_named(base, tmp_path, edit, words):
    d = variant(base, tmp_path / "partial")
    _resave(d, edit)
    with pytest.raises(ArtifactError) as e:
        LMModel.load(d)
    for w in words:
        assert w in str(e.value)
    assert "\n" not in str(e.value)


def test_tied_weights_are_not_missing(base):
    from safetensors import safe_open

    with safe_open(str(base / "model.safetensors"), "pt") as f:
        assert "lm_head.weight" not in f.keys()     # GPT-2 ties it to the input embedding
    model = LMModel.load(base)
    assert model.net.lm_head.weight is model.net.transformer.wte.weight


# ------------------------------------------------------------------ 3. hub kernels
def test_a_hub_attention_kernel_is_refused_as_untrusted(base, tmp_path):
    d = variant(base, tmp_path / "kernel")
    edit_json(d / "config.json", attn_implementation="kernels-community/flash-attn")
    p = weat(d, tmp_path=tmp_path)
    one_line_error(p, "config.json", "kernels-community/flash-attn", "untrusted")
    assert "install" not in p.stderr, p


def test_a_built_in_attention_is_accepted(base, tmp_path):
    d = variant(base, tmp_path / "sdpa")
    edit_json(d / "config.json", attn_implementation="eager")
    assert LMModel.load(d).net.config._attn_implementation == "eager"


# ------------------------------------------------------------------ 4. hostile tokenizer.json
def test_a_deeply_nested_tokenizer_json_is_one_line(base, tmp_path):
    d = variant(base, tmp_path / "deep")
    text = (d / "tokenizer.json").read_text().strip()
    (d / "tokenizer.json").write_text('{"x": ' + "[" * 5000 + "]" * 5000 + ", " + text[1:])
    p = weat(d, tmp_path=tmp_path)
    one_line_error(p, "tokenizer.json", "nested")


def _with_split(folder, pattern):
    path = folder / "tokenizer.json"
    tok = json.loads(path.read_text())
    tok["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        tok["pre_tokenizer"]]}
    path.write_text(json.dumps(tok))


def test_a_catastrophic_split_regex_is_refused_before_use(base, tmp_path):
    d = variant(base, tmp_path / "regex")
    _with_split(d, r"([a-z ]+)+\d")           # backtracks exponentially: Oniguruma's retry limit, then a panic
    p = weat(d, tmp_path=tmp_path)
    one_line_error(p, "tokenizer.json", "exponential")


def test_a_tokenizer_panic_while_encoding_is_one_line(base, tmp_path):
    d = variant(base, tmp_path / "panic")
    _with_split(d, r"([a-z]|[a-z ])+\d")      # overlapping alternatives: not caught by the static check
    p = weat(d, tmp_path=tmp_path)
    one_line_error(p, "tokenizer.json", "tokenizer failed")


def test_a_huge_tokenizer_json_is_refused(base, tmp_path, monkeypatch):
    from biasaudit.models import checkpoint

    monkeypatch.setattr(checkpoint, "MAX_TOKENIZER_BYTES", 1 << 10)
    with pytest.raises(ArtifactError, match=r"tokenizer\.json: larger than"):
        LMModel.load(base)


# ------------------------------------------------------------------ 5. a fine-tune never writes into its checkpoint
@pytest.fixture(scope="module")
def finetuned(small, base, tmp_path_factory):
    """A biasaudit folder fine-tuned from ``base`` (the kind --overwrite may replace) and the corpus file."""
    root = tmp_path_factory.mktemp("ft")
    model = train_lm(small, LMConfig(finetune=str(base), epochs=1, batch_size=64, seed=1))
    model.save(root / "tuned")
    f = root / "c.jsonl"
    f.write_text("".join(json.dumps({"id": x.id, "text": x.text}) + "\n" for x in small), encoding="utf-8")
    return root / "tuned", f


@pytest.mark.parametrize("where", ["same", "inside", "containing"])
def test_finetune_out_must_not_touch_the_checkpoint(finetuned, tmp_path, where):
    ck, corpus = finetuned
    before = {p.name: p.read_bytes() for p in ck.iterdir() if p.is_file()}
    out = {"same": ck, "inside": ck / "sub", "containing": ck.parent}[where]
    p = run_cli("train", "--model", "lm", "-c", corpus, "--checkpoint", ck, "--finetune", "--epochs", "1",
                "--lm-config", "batch_size=64", "--out", out, "--overwrite", cache=tmp_path / "cache")
    assert p.returncode == 2 and "--out" in p.stderr and "checkpoint" in p.stderr, p
    assert {p.name: p.read_bytes() for p in ck.iterdir() if p.is_file()} == before
    assert not (ck / "sub").exists()
