"""Counterfactual rewrites: the swap list, edited corpora, their predictions, the debias command and the
swap-top retraining check on a planted corpus."""
from __future__ import annotations

import json

import numpy as np
import pytest

from biasaudit.corpus import Document, MemoryCorpus
from biasaudit.errors import ConfigError
from biasaudit.influence import score_model
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.measures.targets import weat_target
from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
from biasaudit.swaps import PRONOUNS, SwapList, bundled_swaps, concept_test, load_swaps, swaps_for_test
from biasaudit.wordsets import BiasTest, bundled_tests
from conftest import PLANTED_TEST, planted_corpus, run_cli

TEST = BiasTest.from_dict(PLANTED_TEST)
PLANTED_SWAPS = SwapList((("zorbel", "quintar"), ("zorbek", "quintel"), ("zorban", "quinta")), "planted names")
CFG = SkipGramConfig(vector_size=32, window=3, min_count=2, epochs=50, seed=1)


def test_the_bundled_list_has_100_pairs_a_source_and_swapping_twice_is_the_identity():
    s = bundled_swaps()
    assert len(s.pairs) >= 100 and "Lu et al. 2018" in s.source
    for a, b in s.pairs:
        if a in PRONOUNS or b in PRONOUNS:
            continue
        for x, y in ((a, b), (b, a)):
            for form in (x, x.capitalize(), x.upper()):
                once = s.swap(f"the {form} went")
                assert once == f"the {y if form == x else y.capitalize() if form[0].isupper() and not form.isupper() else y.upper()} went"
                assert s.swap(once) == f"the {form} went"
    for text, want in (("He gave her book to him.", "She gave his book to her."),
                       ("She saw him; the book is HIS.", "He saw her; the book is HERS."),
                       ("Her own son, and hers.", "His own daughter, and his."),
                       ("to her, his aunt's", "to him, her uncle's")):
        assert s.swap(text) == want and s.swap(want) == text
    assert s.swap("Manhattan, womanizer and he-man") == "Manhattan, womanizer and she-woman"   # whole tokens only


def test_a_word_in_two_pairs_or_a_bad_file_is_refused_and_names_are_paired_in_order(tmp_path):
    with pytest.raises(ConfigError, match="'king' is in two pairs"):
        SwapList((("king", "queen"), ("king", "empress")))
    (tmp_path / "p.tsv").write_text("king\tqueen\nbad line here x\n")
    with pytest.raises(ConfigError, match="line 2: expected two words"):
        load_swaps(tmp_path / "p.tsv")
    (tmp_path / "p.json").write_text(json.dumps({"pairs": [["Lord", "Lady"]]}))
    assert load_swaps(tmp_path / "p.json").swap("my lord") == "my lady"
    career = bundled_tests()["career-family"]
    s = swaps_for_test(bundled_swaps(), career)
    x, y = career.target_x.words[0], career.target_y.words[0]
    assert s.swap(f"{x.capitalize()} met {y}") == f"{y.capitalize()} met {x}"


def test_edited_corpora_keep_ids_and_add_cda_copies_only_where_something_changes():
    s = bundled_swaps()
    c = MemoryCorpus([Document("a", "He and his wife."), Document("b", "A stone."), Document("c", "The queen.")])
    assert [(d.id, d.text) for d in c.swapped(["a", "b"], s)] == [("a", "She and her husband."), ("b", "A stone."),
                                                                  ("c", "The queen.")]
    assert [d.id for d in c.augmented(None, s)] == ["a", "a#cda", "b", "c", "c#cda"]
    assert [d.id for d in c.augmented(["b", "c"], s)] == ["a", "b", "c", "c#cda"]


@pytest.fixture(scope="module")
def planted():
    corpus, planted_ids, _ = planted_corpus()
    model = train_skipgram(corpus, CFG)
    r = score_model(model, corpus, [weat_target(TEST, model.vocab)], EstimatorConfig())
    return corpus, planted_ids, model, r


def test_adding_a_corpus_document_once_more_predicts_its_upweighting_score(planted):
    corpus, _, _, r = planted
    s = r.delta_bias_if_removed["planted"]
    docs = list(corpus)
    for i in np.argsort(s)[:3].tolist() + np.argsort(-s)[:2].tolist():
        assert r.predictor.linear_added("planted", [docs[i]]) == pytest.approx(-s[i], rel=1e-6, abs=1e-9)


def test_a_swap_is_the_removal_of_the_originals_plus_the_addition_of_the_rewrites(planted):
    corpus, _, _, r = planted
    s = r.delta_bias_if_removed["planted"]
    docs = list(corpus)
    top = np.argsort(s)[:10]
    rewrites = [cf for i in top if (cf := PLANTED_SWAPS.swap_document(docs[i])).text != docs[i].text]
    p = r.predictor
    b0 = r.bias_value["planted"]
    # a "swap" whose rewrites are the originals changes nothing; one whose rewrites are removed is a removal
    assert p.predict([("planted", top, 0, [docs[i] for i in top])])[0] == pytest.approx(b0, abs=1e-8)
    swap, remove = p.predict([("planted", top, 0, rewrites), ("planted", top, 0)])
    assert swap < b0 and remove < b0
    assert p.linear_added("planted", rewrites) < 0      # the rewrites pair X with art: adding them lowers d too
    linear = float(s[top].sum()) + p.linear_added("planted", rewrites)
    assert linear == pytest.approx(float(s[top].sum()) + sum(p.linear_added("planted", [d]) for d in rewrites))


def test_swap_top_removes_the_planted_association_on_retraining(planted):
    corpus, planted_ids, model, r = planted
    from biasaudit.measures.weat import associations, effect_size

    def d(m):
        X, Y, A, B = (m.vectors[[m.vocab.key_to_index[w] for w in st.words]] for st in TEST.sets)
        return effect_size(associations(X, A, B), associations(Y, A, B))

    s = r.delta_bias_if_removed["planted"]
    top = [r.doc_ids[i] for i in np.argsort(s)[:30]]
    assert len(set(top) & planted_ids) >= 8          # the rest: background documents naming the same people
    base = d(model)
    swapped = d(train_skipgram(corpus.swapped(top, PLANTED_SWAPS), CFG))
    removed = d(train_skipgram(corpus.without(top), CFG))
    assert base > 1.0 and swapped < 0.3 * base and swapped < removed - 0.5, (base, swapped, removed)


def test_concept_test_leaves_out_the_test_and_companion_words():
    from biasaudit.wordsets import bundled_heldout

    t = bundled_tests()["math-arts"]
    h = bundled_heldout()["math-arts"]
    known = {w for p in bundled_swaps().pairs for w in p}
    c = concept_test(t, h, bundled_swaps(), known)
    assert not (set(c.target_x.words + c.target_y.words) & (set(t.words) | set(h.words)))
    assert c.attribute_a == t.attribute_a and len(c.target_x.words) >= 50
    assert "nephew" in c.target_x.words and "niece" in c.target_y.words  # the test's X is male: the same side


def test_debias_writes_the_edited_corpus_manifest_and_report(planted, tmp_path):
    corpus, _, _, _ = planted
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in corpus))
    (tmp_path / "t.json").write_text(json.dumps(PLANTED_TEST))
    (tmp_path / "pairs.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in PLANTED_SWAPS.pairs))
    common = ["-c", f, "-t", tmp_path / "t.json", "--k", "10", "--swap-pairs", tmp_path / "pairs.tsv",
              "--min-count", "2", "--vector-size", "32", "--window", "3", "--epochs", "50",
              "--force", "--select", "top-k", "--target", "0"]      # 3 + 3 names: p >= 0.05; no prefix reaches
    n = len(list(corpus))                                           # 0: the one predicted nearest it is edited
    for method in ("remove", "swap", "augment"):
        out = tmp_path / method
        p = run_cli("debias", *common, "--method", method, "--out", out, cache=tmp_path / "cache")
        assert p.returncode == 0, p
        rows = [json.loads(l) for l in (out / "corpus.jsonl").read_text().splitlines()]
        m = json.loads((out / "manifest.json").read_text())
        edited = {e["id"] for e in m["edited"]}
        assert 0 < len(edited) == m["n_edited"] <= 10 and m["corpus_out"]["n_documents"] == len(rows)
        assert "nearest 0" in m["predicted"]["planted"]["stopping"]["note"]
        ids = [r["id"] for r in rows]
        if method == "remove":
            assert len(rows) == n - len(edited) and not edited & set(ids)
        elif method == "swap":
            assert len(rows) == n and ids == [d.id for d in corpus]
            changed = {r["id"] for r, d in zip(rows, corpus) if r["text"] != d.text}
            assert changed <= edited and changed
        else:
            cda = [i for i in ids if i.endswith("#cda")]
            assert cda and {i[:-4] for i in cda} <= edited and len(rows) == n + len(cda) == n + len(m["added_ids"])
        pred = m["predicted"]["planted"]
        assert pred["predicted_effect_size"] < pred["effect_size_before"]
        assert 0 <= pred["p_value"] <= 1 and pred["ci_low"] < pred["ci_high"]       # the uncertainty beside d
        assert pred["n_words"] == sum(len(s.words) for s in BiasTest.from_dict(PLANTED_TEST).sets)
        assert isinstance(pred["significant"], bool) and "95% CI" in p.stdout
        assert all("predicted_change" in e["tests"]["planted"] for e in m["edited"])
        assert m["swap_pairs"]["sha256"] == PLANTED_SWAPS.sha256 or method == "remove"
        assert "Debias" in (out / "report.html").read_text()


def test_experiment_runs_every_counterfactual_condition_with_predictions_and_controls(planted, tmp_path):
    from biasaudit.experiments import ExperimentSpec, run_experiment

    corpus, _, _, _ = planted
    conds = ("baseline", "swap-top", "augment-top", "swap-random", "augment-random", "augment-all")
    spec = ExperimentSpec(corpus=corpus, model=CFG, tests=[TEST], heldout={}, estimators=[EstimatorConfig()],
                          ks="10", seeds=2, conditions=conds, quality=False, swaps=PLANTED_SWAPS)
    s = run_experiment(spec, tmp_path / "e").summary
    by = {c["condition"]: c for c in s["conditions"]}
    assert set(by) == set(conds)
    for c in ("swap-top", "augment-top"):
        assert by[c]["predicted_change_mean"] is not None and by[c]["predicted_change_linear_mean"] is not None
        assert by[c]["random_change_sd"] is not None and by[c]["verdict"]
        assert by[c]["share_of_augment_all"] is not None
    assert by["swap-top"]["change_mean"] < by["swap-random"]["change_mean"]
    runs = {p.name.split("-s")[0] for p in (tmp_path / "e" / "runs").glob("*.json")}
    assert any(r.startswith("augment-all-") for r in runs) and any(r.startswith("swap-") for r in runs)
    again = run_experiment(spec, tmp_path / "e").summary           # resumes: nothing retrained, same numbers
    assert again["conditions"] == s["conditions"]
