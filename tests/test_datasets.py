"""The dataset registry: --data NAME resolves through registered loaders, each with its own options."""

import argparse
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest

from pyro_dssm.cli.flags import add_config_arguments, config_flags, resolve_config
from pyro_dssm.config import TrainConfig, config_for_resume
from pyro_dssm.data import Corpus
from pyro_dssm.data import registry
from pyro_dssm.training.engine import build_corpus


@pytest.fixture
def fresh_registry(monkeypatch):
    registry.list_datasets()  # the built-in entries first, then a copy the test may change
    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))
    monkeypatch.setattr(registry, "_FORMATS", list(registry._FORMATS))
    monkeypatch.setattr(registry, "_TRANSFORMS", list(registry._TRANSFORMS))
    monkeypatch.setattr(registry, "_OPTIONS", dict(registry._OPTIONS))


@dataclass(frozen=True)
class WindowOptions:
    """Toy sensor windows."""

    window: int = field(default=7, metadata={"help": "samples per sequence"})
    not_given: str = "default kept"

    def __post_init__(self):
        if self.window < 2:
            raise ValueError(f"window must be >= 2, got {self.window}")


def _register_toy(seen):
    @registry.register_dataset("toy-sensor", options=WindowOptions, aliases=("sensor",), description="a test")
    def _toy(name, opts, *, data_root, seed, log):
        seen.update(name=name, opts=opts, seed=seed, data_root=data_root)
        rng = np.random.default_rng(seed)
        return Corpus({s: [rng.normal(size=(opts.window, 2)) for _ in range(3)] for s in ("train", "valid", "test")},
                      name=name)

    return _toy


def test_a_new_corpus_is_one_registered_function_with_its_own_options(fresh_registry):
    seen = {}
    _toy = _register_toy(seen)
    assert "toy-sensor" in registry.list_datasets() and "sensor" not in registry.list_datasets()
    corpus = build_corpus(TrainConfig(data="sensor", data_options={"window": 12}, seed=4, data_root="/somewhere",
                                      max_sequences=2))
    assert seen["opts"] == WindowOptions(window=12) and seen["seed"] == 4 and seen["data_root"] == "/somewhere"
    assert corpus.x_dim == 2 and len(corpus.splits["train"]) == 2 and corpus.splits["test"][0].shape == (12, 2)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_dataset("sensor")(_toy)
    with pytest.raises(ValueError, match="window must be >= 2"):  # the group checks its own values
        TrainConfig(data="sensor", data_options={"window": 1})


def test_a_new_option_is_a_flag_and_a_yaml_key(fresh_registry, tmp_path):
    """A registered group's fields reach the run config as flags (in --help under the group's title),
    as ``data_options`` entries and as top-level YAML keys (how configs wrote them before the groups)."""
    seen = {}
    _register_toy(seen)
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_arguments(parser)
    assert "Toy sensor windows" in parser.format_help() and "--window WINDOW" in parser.format_help()
    (tmp_path / "a.yaml").write_text("data: sensor\ndata_options: {window: 5}\n")
    (tmp_path / "old.yaml").write_text("data: sensor\nwindow: 6\n")
    assert resolve_config(parser.parse_args(["--config", str(tmp_path / "a.yaml")])).option("window") == 5
    assert resolve_config(parser.parse_args(["--config", str(tmp_path / "old.yaml")])).data_options == {"window": 6}
    cfg = resolve_config(parser.parse_args(["--config", str(tmp_path / "a.yaml"), "--window", "9"]))
    assert cfg.data_options == {"window": 9} and cfg.option("not_given") == "default kept"
    assert config_flags(cfg.to_dict())[-2:] != []  # the flags written back parse to the same config
    again = resolve_config(parser.parse_args(config_flags({"data": "sensor", "data_options": cfg.data_options})))
    assert again.data_options == cfg.data_options
    build_corpus(cfg)
    assert seen["opts"].window == 9


def test_option_names_are_unique_across_groups(fresh_registry):
    @dataclass(frozen=True)
    class Clash:
        seq_len: int = 3  # the speech group's option

    with pytest.raises(ValueError, match="'seq_len' of Clash is already declared by SpeechOptions"):
        registry.register_dataset("clash", options=Clash)(lambda *a, **k: None)
    assert "clash" not in registry.list_datasets()


def test_unknown_options_and_options_of_another_dataset_are_named():
    with pytest.raises(ValueError, match=r"unknown data option\(s\) \['seq_length'\].*'seq_len'"):
        TrainConfig(data_options={"seq_length": 20})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['seq_length'\]"):
        TrainConfig.from_dict({"seq_length": 20})
    with pytest.warns(UserWarning, match=r"data option\(s\) \['seq_len'\] do not apply to --data 'bach'"):
        build_corpus(TrainConfig(data="bach", data_options={"seq_len": 20}, max_sequences=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an option at its default is no mistake: no warning
        build_corpus(TrainConfig(data="bach", data_options={"seq_len": 50}, max_sequences=2))
    with pytest.raises(ValueError, match="'seq_len' is given twice"):
        TrainConfig.from_dict({"seq_len": 20, "data_options": {"seq_len": 30}})


def test_old_run_configs_read_into_data_options():
    """A config.yaml written before the option groups has every option at top level, most at defaults."""
    old = {**{k: v for k, v in TrainConfig().to_dict().items() if k != "data_options"},
           "sample_rate": 16000, "stft_n_fft": 512, "stft_hop": 128, "seq_len": 50, "trim_db": 30.0,
           "speaker_disjoint": False, "max_files": None, "series_normalise": "zscore", "series_missing": "error",
           "observed_fraction": 1.0, "frames_per_quarter": 1}
    cfg = TrainConfig.from_dict(old)
    assert cfg.data_options == {"stft_n_fft": 512, "stft_hop": 128}  # only what differs from the defaults
    assert cfg.option("seq_len") == 50 and cfg.replace(max_files=3).option("max_files") == 3
    assert cfg.replace(max_files=3).option("stft_n_fft") == 512  # a replace merges options, entry by entry


def test_the_old_attribute_reads_a_data_option_with_a_deprecation_warning():
    cfg = TrainConfig(data="asterisk", data_options={"seq_len": 20})
    with pytest.warns(DeprecationWarning, match=r"cfg.option\('seq_len'\)"):
        assert cfg.seq_len == 20
    with pytest.warns(DeprecationWarning):
        assert cfg.trim_db == 30.0  # unset: its group's default
    with pytest.raises(AttributeError, match="no attribute 'seq_length'"):
        cfg.seq_length


def test_a_resume_names_a_changed_data_option():
    saved = TrainConfig(data="asterisk", data_options={"seq_len": 50})
    assert config_for_resume(saved, {"seq_len": 50, "epochs": 9}).epochs == 9
    with pytest.raises(ValueError, match=r"--seq-len: 50 in the run, 20 now"):
        config_for_resume(saved, {"data_options": {"seq_len": 20}})
    with pytest.raises(ValueError, match=r"--observed-fraction: 1.0 in the run, 0.5 now"):
        config_for_resume(saved, {"observed_fraction": 0.5})


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
