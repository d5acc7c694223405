"""Skip-gram training: determinism, save/load round trip, corrupted files, cache reuse, loading other formats."""
import subprocess
import sys

import numpy as np
import pytest

from biasaudit.corpus import MemoryCorpus
from biasaudit.errors import ArtifactError, ConfigError, CorpusError
from biasaudit.models.keyed import load_embeddings
from biasaudit.models import train_or_load
from biasaudit.models.skipgram import SkipGramConfig, SkipGramModel, train_skipgram

CFG = SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=3, seed=7)


@pytest.fixture(scope="module")
def model(planted):
    return train_skipgram(planted[0], CFG)


def test_same_seed_identical_vectors(planted, model):
    again = train_skipgram(planted[0], CFG)
    np.testing.assert_array_equal(model.vectors, again.vectors)
    np.testing.assert_array_equal(model.output_vectors, again.output_vectors)
    other = train_skipgram(planted[0], SkipGramConfig(**{**CFG.to_dict(), "seed": 8}))
    assert not np.array_equal(model.vectors, other.vectors)


def test_determinism_across_processes_with_different_hash_seeds(tmp_path, planted):
    code = ("import sys, numpy as np\nsys.path.insert(0, 'tests')\nfrom conftest import planted_corpus\n"
            "from biasaudit.models.skipgram import SkipGramConfig, train_skipgram\n"
            "m = train_skipgram(planted_corpus()[0], SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=3, seed=7))\n"
            "np.save(sys.argv[1], m.vectors)\n")
    outs = []
    for hs in ("1", "2"):
        f = tmp_path / f"v{hs}.npy"
        subprocess.run([sys.executable, "-c", code, str(f)], check=True, env={"PYTHONHASHSEED": hs, "PATH": ""})
        outs.append(np.load(f))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_model_keeps_counts_and_output_vectors(planted, model):
    assert model.vectors.shape == model.output_vectors.shape == (len(model.vocab), 16)
    n_zorbel = sum(t == "zorbel" for d in planted[0] for t in d.text.split())
    assert model.vocab.count("zorbel") == n_zorbel
    assert list(model.vocab.counts) == sorted(model.vocab.counts, reverse=True)


def test_save_load_round_trip(tmp_path, model):
    model.save(tmp_path / "m")
    back = SkipGramModel.load(tmp_path / "m")
    np.testing.assert_array_equal(back.vectors, model.vectors)
    np.testing.assert_array_equal(back.output_vectors, model.output_vectors)
    np.testing.assert_array_equal(back.vocab.counts, model.vocab.counts)
    assert back.vocab.index_to_key == model.vocab.index_to_key and back.config == model.config
    assert not list(tmp_path.glob(".m.*")), "no temporary folder left behind"
    assert load_embeddings(tmp_path / "m").vectors.shape == model.vectors.shape


def test_truncated_or_corrupted_model_is_refused(tmp_path, model):
    folder = model.save(tmp_path / "m")
    blob = (folder / "vectors.safetensors").read_bytes()
    (folder / "vectors.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ArtifactError, match="checksum"):
        SkipGramModel.load(folder)
    folder = model.save(tmp_path / "m2")
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match="corrupted"):
        SkipGramModel.load(folder)
    (folder / "config.json").unlink()
    with pytest.raises(ArtifactError):
        load_embeddings(folder)


def test_cache_reuses_identical_runs(cache, planted):
    m1, cached1 = train_or_load(planted[0], CFG)
    m2, cached2 = train_or_load(planted[0], CFG)
    assert (cached1, cached2) == (False, True)
    np.testing.assert_array_equal(m1.vectors, m2.vectors)
    _, cached3 = train_or_load(planted[0], SkipGramConfig(**{**CFG.to_dict(), "epochs": 2}))
    assert cached3 is False


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="vector_size"):
        SkipGramConfig(vector_size=0)
    with pytest.raises(ConfigError, match="sample"):
        SkipGramConfig(sample=2.0)


def test_nothing_to_train():
    with pytest.raises(CorpusError, match="min_count"):
        train_skipgram(MemoryCorpus([("1", "just once")]), CFG)


def test_other_embedding_formats(tmp_path, model):
    from gensim.models import KeyedVectors, Word2Vec

    kv = KeyedVectors(16)
    kv.add_vectors(list(model.vocab.index_to_key), model.vectors)
    for name, binary in (("w.txt", False), ("w.bin", True)):
        kv.save_word2vec_format(str(tmp_path / name), binary=binary)
        got = load_embeddings(tmp_path / name)
        assert got.index_to_key == model.vocab.index_to_key
        np.testing.assert_allclose(got.vectors, model.vectors, atol=1e-5)
    # GloVe text: no header line
    lines = (tmp_path / "w.txt").read_text().splitlines()[1:]
    (tmp_path / "glove.txt").write_text("\n".join(lines) + "\n")
    np.testing.assert_allclose(load_embeddings(tmp_path / "glove.txt").vectors, model.vectors, atol=1e-5)
    kv.save(str(tmp_path / "w.kv"))
    np.testing.assert_array_equal(load_embeddings(tmp_path / "w.kv").vectors, model.vectors)
    w2v = Word2Vec([["a", "b", "c"]] * 5, vector_size=4, min_count=1, workers=1, epochs=1)
    w2v.save(str(tmp_path / "w.model"))
    np.testing.assert_array_equal(load_embeddings(tmp_path / "w.model").vectors, w2v.wv.vectors)
    # a truncated text file is refused
    (tmp_path / "cut.txt").write_text((tmp_path / "w.txt").read_text()[:-40])
    with pytest.raises(ArtifactError):
        load_embeddings(tmp_path / "cut.txt")


def test_hostile_pickle_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    (tmp_path / "evil.kv").write_bytes(pickle.dumps(Evil(), protocol=4))
    with pytest.raises(ArtifactError, match="refusing"):
        load_embeddings(tmp_path / "evil.kv")
