"""The dataset registry: --data NAME resolves through registered loaders, each with its own options."""

from dataclasses import dataclass

import numpy as np
import pytest

from pyro_dssm.config import TrainConfig
from pyro_dssm.data import Corpus
from pyro_dssm.data import registry
from pyro_dssm.training.engine import build_corpus


@pytest.fixture
def fresh_registry(monkeypatch):
    registry.list_datasets()  # the built-in entries first, then a copy the test may change
    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))
    monkeypatch.setattr(registry, "_FORMATS", list(registry._FORMATS))


def test_a_new_corpus_is_one_registered_function_with_its_own_options(fresh_registry):
    @dataclass(frozen=True)
    class WindowOptions:
        seq_len: int = 7  # a field of the run config: filled from it
        not_in_the_config: str = "default kept"

    seen = {}

    @registry.register_dataset("toy-sensor", options=WindowOptions, aliases=("sensor",), description="a test")
    def _toy(name, opts, *, data_root, seed, log):
        seen.update(name=name, opts=opts, seed=seed, data_root=data_root)
        rng = np.random.default_rng(seed)
        return Corpus({s: [rng.normal(size=(opts.seq_len, 2)) for _ in range(3)] for s in ("train", "valid", "test")},
                      name=name)

    assert "toy-sensor" in registry.list_datasets() and "sensor" not in registry.list_datasets()
    corpus = build_corpus(TrainConfig(data="sensor", seq_len=12, seed=4, data_root="/somewhere", max_sequences=2))
    assert seen["opts"] == WindowOptions(seq_len=12) and seen["seed"] == 4 and seen["data_root"] == "/somewhere"
    assert corpus.x_dim == 2 and len(corpus.splits["train"]) == 2 and corpus.splits["test"][0].shape == (12, 2)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_dataset("sensor")(_toy)


def test_names_resolve_exactly_by_case_and_by_prefix():
    assert registry.dataset_entry("bach_chorales").name == "bach"
    assert registry.dataset_entry("JSB").name == "jsb"
    assert registry.dataset_entry("flame-p3").name == "flame" and registry.dataset_entry("flame").name == "flame"
    assert registry.dataset_entry("librispeech-dev-clean").name == "librispeech"
    assert registry.dataset_entry("no-such-corpus") is None
    names = registry.list_datasets()
    assert names[:5] == ["bach", "jsb", "nottingham", "musedata", "piano"] and "librispeech-SUBSET" in names


def test_unknown_data_and_unknown_formats_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"neither a known corpus \(bach, jsb, .*physionet"):
        build_corpus(TrainConfig(data="no-such-corpus"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="don't know how to read .*a .npy/.npz array"):
        build_corpus(TrainConfig(data=str(tmp_path / "notes.txt")))
    with pytest.raises(ValueError, match="name a LibriSpeech subset"):
        build_corpus(TrainConfig(data="librispeech"))


def test_a_file_is_read_by_its_registered_format(tmp_path):
    np.save(tmp_path / "rolls.npy", (np.random.default_rng(0).random((10, 5, 4)) < 0.5).astype(np.float32))
    corpus = build_corpus(TrainConfig(data=str(tmp_path / "rolls.npy")))
    assert corpus.x_dim == 4 and sum(len(corpus.splits[s]) for s in corpus.splits) == 10
