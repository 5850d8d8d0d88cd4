"""Runs that can't be corrupted and inputs that can't crash us (issue 17): resume, logs, configs, pickles,
checkpoints, metrics, leftovers of killed writes, and what a user sees."""

import json
import os
import pickle
import re
import subprocess
import sys
import warnings
import numpy as np
import pytest
import torch
import yaml

import pyro_dssm
from pyro_dssm.config import RESUME_SAFE_FIELDS, TrainConfig, config_for_resume, load_config
from pyro_dssm.data import load_arrays
from pyro_dssm.data.music import load_boulanger_pickle

from conftest import ROOT, TINY_RUN
from conftest import run_script as script


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, short_rolls):
    """A 2-epoch run on the user's .npz, resumed to 3 and then 4 epochs with only --out, --resume and --epochs."""
    out = tmp_path_factory.mktemp("runs") / "small"
    outputs = [script("train.py", "--data", short_rolls, "--epochs", "2", "--out", out, "--model", "vrnn", "--guide",
                      "partial", *TINY_RUN)]
    outputs.append(script("train.py", "--out", out, "--resume", "--epochs", "3"))
    outputs.append(script("train.py", "--out", out, "--resume", "--epochs", "4", "--no-progress"))
    for r in outputs:
        assert r.returncode == 0, r.stderr[-3000:]
    return out, outputs


# ---------------------------------------------------------------------------------------------- 1-4: runs
def test_resume_rebuilds_the_run_from_its_own_config(small_run, short_rolls):
    out, outputs = small_run
    m = json.loads((out / "metrics.json").read_text())
    # before the fix the resume trained the default model on the Bach chorales
    assert m["data"] == "short" and m["model"] == "vrnn" and m["guide"] == "partial" and m["epochs_run"] == 4
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["data"] == str(short_rolls) and cfg["epochs"] == 4 and cfg["z_dim"] == 2
    assert "data: Corpus('short'" in outputs[1].stdout
    untrained = json.loads((out / "untrained_test.json").read_text())
    assert m["test_nelbo_per_step_untrained"] == untrained["nelbo_per_step"]


def test_resume_refuses_a_flag_that_changes_the_run(small_run, short_rolls):
    out, _ = small_run
    before = (out / "checkpoints" / "last.ckpt").read_bytes()
    r = script("train.py", "--out", out, "--resume", "--epochs", "5", "--data", "bach", "--lr", "0.01")
    assert r.returncode == 2
    assert f"--data: {str(short_rolls)!r} in the run, 'bach' now" in r.stderr
    assert "--lr: 0.003 in the run, 0.01 now" in r.stderr and "Traceback" not in r.stderr
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == before
    assert yaml.safe_load((out / "config.yaml").read_text())["data"] == str(short_rolls)


def test_config_for_resume_changes_only_safe_fields():
    saved = TrainConfig(data="a.npz", emission="bernoulli", out="runs/x", model_options={"min_scale": 0.01})
    resumed = config_for_resume(saved, {"epochs": 60, "patience": 5, "devices": 2, "progress": False,
                                        "out": "./runs/x", "emission": None})
    assert (resumed.epochs, resumed.patience, resumed.devices, resumed.emission) == (60, 5, 2, "bernoulli")
    assert resumed.data == "a.npz"
    # the same values, written differently, are no change (3e-3 from YAML is the float 0.003)
    assert config_for_resume(saved, {"lr": "3e-3", "z_dim": "16"}) == saved
    assert config_for_resume(saved, {"model_options": {"min_scale": 0.01}}) == saved
    with pytest.raises(ValueError, match=r"--model-option: \{'min_scale': 0.01\} in the run, "
                                         r"\{'min_scale': 0.1\} now"):
        config_for_resume(saved, {"model_options": {"min_scale": 0.1}})
    for field, value in (("seed", 1), ("emission", "gaussian"), ("batch_size", 7), ("guide", "partial")):
        with pytest.raises(ValueError, match=f"--{field.replace('_', '-')}: "):
            config_for_resume(saved, {field: value})
    assert {"epochs", "patience", "devices", "accelerator", "progress", "num_workers"} <= RESUME_SAFE_FIELDS
    assert not {"data", "lr", "seed", "model", "guide", "z_dim"} & RESUME_SAFE_FIELDS


def test_history_survives_every_resume(small_run):
    from pyro_dssm.training import training_history

    out, _ = small_run
    h = training_history(out)
    assert h["epoch"] == [0, 1, 2, 3]
    assert all(np.isfinite(h["val"])) and all(np.isfinite(h["train"]))
    rows = (out / "logs" / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[:2] == ["epoch", "step"]
    epochs = sorted({int(r.split(",")[0]) for r in rows[1:]})
    assert epochs == [0, 1, 2, 3]  # Lightning's CSVLogger kept only the last session's rows


def test_metrics_csv_appends_widens_and_survives_a_torn_row(tmp_path):
    from pyro_dssm.training.engine import append_csv_row, training_history

    path = tmp_path / "logs" / "metrics.csv"
    append_csv_row(path, {"epoch": 0, "step": 1, "val/nelbo_per_step": 2.0})
    append_csv_row(path, {"epoch": 0, "step": 1, "train/loss": 3.0})  # a new column: the file is rewritten
    with open(path, "a") as f:
        f.write("1,2,4.")  # a kill in the middle of a row
    append_csv_row(path, {"epoch": 1, "step": 2, "val/nelbo_per_step": 1.5})
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,step,train/loss,val/nelbo_per_step"
    assert lines[1:3] == ["0,1,,2.0", "0,1,3.0,"] and lines[-1] == "1,2,,1.5"
    h = training_history(tmp_path)
    assert h["epoch"] == [0, 1] and h["val"] == [2.0, 1.5]
    assert h["train"][0] == 3.0 and np.isnan(h["train"][1])  # the torn row's 4. is not read


def test_resume_of_a_finished_run_trains_nothing(small_run):
    out, _ = small_run
    last = out / "checkpoints" / "last.ckpt"
    before, mtime = last.read_bytes(), last.stat().st_mtime_ns
    r = script("train.py", "--out", out, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "nothing left to train" in r.stdout and "it has trained 4 of --epochs 4" in r.stdout
    assert "trained" not in r.stdout.replace("nothing left to train", "").replace("it has trained", "")
    assert last.read_bytes() == before and last.stat().st_mtime_ns == mtime
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 4


def test_session_report_counts_only_this_session(small_run):
    _, outputs = small_run
    assert "trained 2 epochs in" in outputs[0].stdout
    assert "trained 1 epoch (epoch 3 of the run) in" in outputs[1].stdout
    assert "over all sessions" in outputs[1].stdout


def test_config_yaml_is_the_resolved_config(small_run):
    out, _ = small_run
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["emission"] == "bernoulli" and cfg["out"] == str(out)
    assert None not in (cfg["emission"], cfg["out"])


def test_lightning_advertisements_and_pytree_warning_are_silenced(small_run):
    _, outputs = small_run
    for r in outputs:
        text = r.stdout + r.stderr
        assert "💡" not in text and "litlogger" not in text and "LeafSpec" not in text
        assert "exists and is not empty" not in text  # a resumed run's checkpoint folder is, of course
        assert "`Trainer.fit` stopped" in text  # Lightning's own messages still show


def test_quiet_lightning_filters_only_its_targets():
    import logging

    from lightning_utilities.core import rank_zero

    from pyro_dssm.training.engine import quiet_lightning

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler, old_level = Keep(), rank_zero.log.level
    rank_zero.log.addHandler(handler)
    rank_zero.log.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with quiet_lightning():
                rank_zero.rank_zero_info("💡 Tip: install something")
                rank_zero.rank_zero_info("GPU available: False")
                warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
                warnings.warn("another future change", FutureWarning)
        rank_zero.rank_zero_info("💡 Tip: outside the block")
    finally:
        rank_zero.log.removeHandler(handler)
        rank_zero.log.setLevel(old_level)
    assert seen == ["GPU available: False", "💡 Tip: outside the block"]
    assert [str(w.message) for w in caught] == ["another future change"]


# ---------------------------------------------------------------------------------------------- 5: pickles
class _Reduce:
    """Pickles as ``fn(*args)`` without calling it: builds attack files without running them."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _write(path, payload):
    path.write_bytes(pickle.dumps({"train": [[payload]], "valid": [[(60,)]], "test": [[(60,)]]}, protocol=2))
    return path


def test_forged_object_array_pickle_is_refused_without_crashing(tmp_path):
    """The reported attack: ndarray((1,), dtype('O'), b'AAAAAAAA') reads a forged pointer (exit 139 before)."""
    evil = _write(tmp_path / "evil.pickle", _Reduce(np.ndarray, (1,), np.dtype("O"), b"AAAAAAAA"))
    code = ("import sys\nfrom pyro_dssm.data.music import load_boulanger_pickle\n"
            "try:\n    c = load_boulanger_pickle(sys.argv[1])\n    print('LOADED', c.splits['train'][0].sum())\n"
            "except ValueError as e:\n    print('REFUSED', e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(evil)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])  # -11 / 139: the process crashed
    assert r.stdout.startswith("REFUSED") and "numpy.ndarray" in r.stdout


@pytest.mark.parametrize("payload, message", [
    # an object array through numpy's own pickle path (_reconstruct + __setstate__)
    (np.array([1, "x"], dtype=object), "_reconstruct"),
    (np.zeros(3), "_reconstruct"),  # any array: the published files hold none
    # the numpy-scalar path with an object dtype
    (_Reduce(np.dtype, "O8", False, True), "kind 'O'"),
    (_Reduce(np.dtype, "V8", False, True), "kind 'V'"),
    (_Reduce(np.dtype, "f8,i8", False, True), "numpy.dtype"),
    # nested reduce chains
    (_Reduce(np.dtype, _Reduce(np.dtype, "O8", False, True), False, True), "refusing numpy.dtype"),
    (_Reduce(np.frombuffer, b"AAAAAAAA", np.dtype("O")), "frombuffer"),
    (_Reduce(os.system, "echo pwned"), "refusing to load global"),
    (_Reduce(getattr, 1, "real"), ".getattr"),
])
def test_pickles_beyond_the_published_layout_are_refused(tmp_path, payload, message):
    path = _write(tmp_path / "x.pickle", (payload,))
    with pytest.raises(ValueError, match="not a piano-roll pickle") as e:
        load_boulanger_pickle(path)
    assert message in str(e.value)


def test_nested_scalar_and_codec_chains_are_refused(tmp_path):
    import codecs

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    f8 = np.dtype("f8")
    chains = [
        (_Reduce(scalar, f8, _Reduce(scalar, f8, b"\0" * 8)), "expected 8 bytes"),  # a float where bytes go
        (_Reduce(scalar, _Reduce(scalar, f8, b"\0" * 8), b"\0" * 8), "only numeric dtypes"),
        (_Reduce(scalar, np.dtype("i8"), b"\0" * 4), "expected 8 bytes"),
        (_Reduce(codecs.encode, _Reduce(codecs.encode, "x", "latin1"), "latin1"), "_codecs.encode of bytes"),
        (_Reduce(codecs.encode, "x", "zlib_codec"), "'zlib_codec'"),
    ]
    for payload, message in chains:
        with pytest.raises(ValueError, match="not a piano-roll pickle") as e:
            load_boulanger_pickle(_write(tmp_path / "c.pickle", (payload,)))
        assert message in str(e.value)


def test_published_layout_with_numpy_scalars_still_loads(tmp_path):
    data = {"train": [[(np.float64(60), np.int64(64), np.float32(67)), ()], [(np.int16(21),)]],
            "valid": [[(55,)]], "test": [[(72.0, 108)]]}
    path = tmp_path / "ok.pickle"
    path.write_bytes(pickle.dumps(data, protocol=2))
    corpus = load_boulanger_pickle(path)
    assert corpus.splits["train"][0][0].nonzero()[0].tolist() == [60 - 21, 64 - 21, 67 - 21]
    assert corpus.splits["test"][0].sum() == 2
    # layout errors name the place
    path.write_bytes(pickle.dumps({**data, "train": [[["a", "b"]]]}, protocol=2))
    with pytest.raises(ValueError, match=r"train\[0\], step 0 must be a tuple of note numbers"):
        load_boulanger_pickle(path)


# ---------------------------------------------------------------------------------------------- 6: YAML numbers
@pytest.mark.parametrize("text", ["3e-3", "1e-3", "0.001", "1", "3.0e-3"])
def test_float_fields_take_every_yaml_spelling(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(f"lr: {text}\nepochs: 2\nmodel_options:\n  min_scale: 1e-4\n")
    cfg = TrainConfig.from_dict(load_config(path))
    assert isinstance(cfg.lr, float) and cfg.lr == float(text)
    assert cfg.epochs == 2 and isinstance(cfg.epochs, int)
    model = pyro_dssm.create_model("dmm", x_dim=3, **cfg.model_options)
    assert model.config.min_scale == 1e-4 and isinstance(model.config.min_scale, float)


@pytest.mark.parametrize("field, value, message", [
    ("lr", "abc", "config field 'lr' must be a number, got 'abc'"),
    ("epochs", "2.5", "config field 'epochs' must be an integer, got '2.5'"),
    ("progress", "maybe", "config field 'progress' must be true or false, got 'maybe'"),
    ("clip_norm", True, "config field 'clip_norm' must be a number, got the boolean True"),
    ("data", 3, "config field 'data' must be a string, got 3"),
])
def test_wrong_types_name_the_field_and_the_value(tmp_path, field, value, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({field: value}))
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(path)


def test_train_script_reads_yaml_numbers_and_keeps_tracebacks_of_bugs(tmp_path, monkeypatch, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("_train_script", ROOT / "scripts" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr: abc\n")
    assert mod.main(["--config", str(cfg)]) == 2
    assert "'lr' must be a number, got 'abc'" in capsys.readouterr().err
    import pyro_dssm.training.engine as engine

    seen = {}

    def fake_train(c, resume=False, log=print):
        seen["lr"] = c.lr
        raise TypeError("a bug in the library")

    monkeypatch.setattr(engine, "train", fake_train)
    cfg.write_text("lr: 3e-3\n")
    with pytest.raises(TypeError, match="a bug in the library"):  # no longer a one-line "error:"
        mod.main(["--config", str(cfg), "--out", str(tmp_path / "r")])
    assert seen["lr"] == 0.003


def test_help_lists_models_explains_every_flag_and_says_defaults_once():
    r = script("train.py", "--help", env={**os.environ, "COLUMNS": "1000"})
    assert r.returncode == 0
    options = r.stdout.split("options:", 1)[1]
    entries = [e for e in re.split(r"\n  (?=-)", options) if e.strip().startswith("-")]
    assert len(entries) > 40
    for entry in entries:
        flag, _, text = entry.strip().partition("  ")
        assert text.strip(), f"{flag} has no help text"
        assert entry.count("(default") <= 1 and entry.count("default:") <= 1, entry
    model = next(e for e in entries if e.startswith("--model MODEL"))
    for name in pyro_dssm.list_models():
        assert name in model
    for flag in ("--z-dim", "--h-dim", "--hidden-dim", "--guide-rnn-dim", "--progress"):
        entry = next(e for e in entries if e.startswith(flag))
        assert len(entry.split("  ", 1)[1].strip()) > 15, entry


# ---------------------------------------------------------------------------------------------- 7: binary data
def test_a_density_on_binary_data_warns():
    from pyro_dssm.infer import LeanTraceMeanField_ELBO
    from pyro_dssm.validation import BinaryDataWarning

    x = (torch.rand(3, 5, 4) < 0.3).float()
    mask = torch.arange(5) < torch.tensor([[5], [3], [1]])
    model = pyro_dssm.create_model("dmm", x_dim=4)  # documented default: a Gaussian
    assert model.config.emission == "gaussian"
    guide = pyro_dssm.create_guide("partial", model)
    with pytest.warns(BinaryDataWarning, match="emission='bernoulli'"):
        LeanTraceMeanField_ELBO().loss(model, guide, x * mask.unsqueeze(-1), mask)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BinaryDataWarning)
        # real values, and the Bernoulli on the same 0/1 data: no warning
        LeanTraceMeanField_ELBO().loss(model, guide, torch.randn(3, 5, 4), mask)
        bern = pyro_dssm.create_model("dmm", x_dim=4, emission="bernoulli")
        LeanTraceMeanField_ELBO().loss(bern, pyro_dssm.create_guide("partial", bern), x, mask)
        # non-binary values on valid steps only: padding never decides
        y = x.clone()
        y[0, 0, 0] = 0.5
        LeanTraceMeanField_ELBO().loss(model, guide, y, mask)


# ---------------------------------------------------------------------------------------------- 8: checkpoints
class _Marker:
    """Creates a folder when unpickled: a stand-in for code a checkpoint could run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_checkpoints_load_weights_only_even_where_torch_defaults_otherwise(tmp_path, monkeypatch):
    from pyro_dssm.training import AtomicCheckpointIO

    marker = tmp_path / "ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Marker(str(marker))}, path)
    # torch < 2.6 defaulted to weights_only=False; this variable restores that default
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(pickle.UnpicklingError):
        AtomicCheckpointIO().load_checkpoint(str(path))
    assert not marker.exists()
    with pytest.raises(ValueError, match="weights_only=True only"):
        AtomicCheckpointIO().load_checkpoint(str(path), weights_only=False)


def test_a_resume_loads_every_checkpoint_weights_only(tmp_path, short_rolls, monkeypatch):
    from pyro_dssm.training import resume_run, train

    cfg = TrainConfig(data=str(short_rolls), model="rssm", guide="partial", epochs=1, max_sequences=6, z_dim=2, h_dim=8,
                      hidden_dim=8, guide_rnn_dim=8, batch_size=3, eval_particles=1, progress=False,
                      out=str(tmp_path / "r"))
    train(cfg, log=lambda *a: None)
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    m = resume_run(tmp_path / "r", epochs=2, log=lambda *a: None)
    assert m["epochs_run"] == 2 and len(calls) >= 2  # ours and Lightning's
    assert all(c is True for c in calls), calls


def test_declared_minimums_match_the_code_and_the_readme():
    tomllib = pytest.importorskip("tomllib")

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    bounds = dict(re.match(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", d).groups() for d in deps)
    assert set(bounds) == {re.match(r"[A-Za-z0-9_.-]+", d).group() for d in deps}  # every one has a minimum
    assert tuple(map(int, bounds["lightning"].split("."))) >= (2, 6)  # EMAWeightAveraging
    from lightning.pytorch.callbacks import EMAWeightAveraging  # noqa: F401 - the reason for 2.6
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("Minimum versions declared"):][:600]
    names = {"pyro-ppl": "pyro-ppl", "pyyaml": "PyYAML"}
    for name, version in bounds.items():
        assert f"{names.get(name, name)} {version}" in section, (name, version)
    assert "untested" in section


# ---------------------------------------------------------------------------------------------- 9: loud failures
def test_si_sdr_of_a_perfect_and_a_silent_estimate_are_finite_and_kept():
    from pyro_dssm.metrics import SI_SDR_MAX_DB, si_sdr

    rng = np.random.default_rng(0)
    s = rng.normal(size=4000)
    assert si_sdr(s, s) == SI_SDR_MAX_DB == pytest.approx(10 * np.log10(1 / np.finfo(np.float64).eps))
    assert si_sdr(s, 3 * s + 2) == SI_SDR_MAX_DB
    assert si_sdr(s, np.zeros_like(s)) == -SI_SDR_MAX_DB
    assert si_sdr(s, s + 0.1 * rng.normal(size=s.size)) < 30


def test_a_broken_pesq_fails_loudly_and_undefined_measures_are_nan(monkeypatch):
    pesq = pytest.importorskip("pesq")
    from pyro_dssm.resynthesis import score_resynthesis

    rng = np.random.default_rng(0)
    clip = np.sin(np.arange(16000) / 8.0) * rng.uniform(0.5, 1, size=16000)
    reasons = {}
    short = score_resynthesis(clip[:2000], clip[:2000], 16000, reasons)  # 0.125 s: PESQ/ESTOI undefined
    assert np.isnan(short["pesq_wb"]) and "too short" in reasons["pesq_wb"]
    assert short["si_sdr"] > 100

    def broken(*args, **kwargs):
        raise RuntimeError("pesq's C extension failed to load")

    monkeypatch.setattr(pesq, "pesq", broken)
    with pytest.raises(RuntimeError, match="C extension"):
        score_resynthesis(clip, clip, 16000)


def test_an_evaluation_that_cannot_score_most_utterances_fails(tmp_path, monkeypatch):
    pytest.importorskip("pesq")
    from types import SimpleNamespace

    from pyro_dssm import resynthesis
    from pyro_dssm.data.speech import STFTConfig

    rng = np.random.default_rng(0)

    def voice(n):  # a modulated tone with a little noise: something PESQ and ESTOI take for speech
        t = np.arange(n) / 16000
        return np.sin(2 * np.pi * 220 * t) * (1 + 0.8 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.normal(size=n)

    waves = [voice(n) for n in (2000, 2400, 20000)]  # two too short for PESQ
    items = [{"wave": w, "estimate": w + 0.1 * rng.normal(size=w.size), "power": np.ones((4, 513)),
              "power_hat": np.ones((4, 513))} for w in waves]
    corpus = SimpleNamespace(kind="speech", stft=STFTConfig(), name="toy",
                             utterances=lambda split: (["a.wav", "b.wav", "c.wav"], waves, [i["power"] for i in items]))
    monkeypatch.setattr(resynthesis, "analysis_resynthesis", lambda *a, **k: items)
    with pytest.raises(RuntimeError, match=r"pesq_wb could not be computed for 2 of the 3 test utterances.*too short"):
        resynthesis.evaluate_resynthesis(None, None, corpus, tmp_path, save_wav=False, figure_items=0, log=None)
    assert (tmp_path / "utterances.csv").is_file() and not (tmp_path / "summary.json").exists()
    # one in three unscored is reported, not fatal
    waves[1] = voice(20000)
    items[1]["wave"] = waves[1]
    items[1]["estimate"] = waves[1]
    summary = resynthesis.evaluate_resynthesis(None, None, corpus, tmp_path, save_wav=False, figure_items=0,
                                               log=None)
    assert summary["not_scored"]["pesq_wb"] == 1 and summary["metrics"]["pesq_wb"]["n"] == 2
    assert list(summary["not_scored_reasons"]["pesq_wb"].values()) == [["a.wav"]]
    assert summary["metrics"]["si_sdr"]["n"] == 3  # the exact copy counts


def test_speech_cache_key_and_reads(tmp_path, monkeypatch):
    from pyro_dssm.data import speech

    (tmp_path / "a.wav").write_bytes(b"x")
    key = speech._cache_key(tmp_path, ["a.wav"], {"n_fft": 1024})
    versions = speech._library_versions()
    assert set(versions) >= {"librosa", "soxr", "torch"}
    for lib in ("librosa", "soxr", "torch"):
        monkeypatch.setattr(speech, "_library_versions", lambda lib=lib: {**versions, lib: "0.0.0-other"})
        assert speech._cache_key(tmp_path, ["a.wav"], {"n_fft": 1024}) != key
    monkeypatch.undo()
    bad = tmp_path / "cache.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.warns(UserWarning, match="unreadable"):
        assert speech._load_cached(bad, 1) is None

    def failing_load(*a, **k):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(speech.np, "load", failing_load)
    with pytest.raises(RuntimeError, match="unexpected"):  # not swallowed any more
        speech._load_cached(bad, 1)


# ---------------------------------------------------------------------------------------------- 10: leftovers
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_remove_stale_parts_keeps_live_writers(tmp_path):
    import time

    from pyro_dssm.utils import FOREIGN_PART_AGE_S, _host, atomic_open, remove_stale_parts

    host = _host()
    dead = tmp_path / "ck" / f".last.ckpt.{host}.{_dead_pid()}.abc123.part"
    mine = tmp_path / f".x.{host}.{os.getpid()}.abc.part"
    foreign_new = tmp_path / ".x.otherhost.1.abc.part"
    foreign_old = tmp_path / ".y.otherhost.1.abc.part"
    legacy_old = tmp_path / ".metrics.json.k2j3.part"
    for p in (dead, mine, foreign_new, foreign_old, legacy_old):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    old = time.time() - FOREIGN_PART_AGE_S - 60
    for p in (foreign_old, legacy_old):
        os.utime(p, (old, old))
    assert sorted(remove_stale_parts(tmp_path)) == sorted([dead, foreign_old, legacy_old])
    assert mine.exists() and foreign_new.exists()
    with atomic_open(tmp_path / "f.bin") as f:
        (tmp := next(tmp_path.glob(".f.bin.*.part")))
        assert re.fullmatch(rf"\.f\.bin\.{host}\.{os.getpid()}\.[^.]+\.part", tmp.name)
        assert remove_stale_parts(tmp_path) == []  # a write in progress is never touched
        f.write(b"done")
    assert (tmp_path / "f.bin").read_bytes() == b"done" and not tmp.exists()


def test_a_run_removes_leftovers_of_a_killed_write_when_it_resumes(small_run):
    from pyro_dssm.utils import _host

    out, _ = small_run
    stale = out / "checkpoints" / f".last.ckpt.{_host()}.{_dead_pid()}.zz9.part"
    stale.write_bytes(b"half a checkpoint")
    r = script("train.py", "--out", out, "--resume")  # even when nothing is left to train
    assert r.returncode == 0, r.stderr[-2000:]
    assert not stale.exists() and f"removed {stale}" in r.stdout


# ---------------------------------------------------------------------------------------------- 11: 2-D arrays
def test_a_2d_array_says_what_was_expected_and_how_it_was_read(tmp_path):
    np.savez(tmp_path / "series.npz", x=np.zeros((40, 7), dtype=np.float32))
    with pytest.raises(ValueError) as e:
        load_arrays(tmp_path / "series.npz")
    msg = str(e.value)
    assert "(N, T, D) was expected" in msg and "ONE sequence of 40 steps with 7 values" in msg
    assert "x[..., None]" in msg and "need at least 3 sequences" not in msg
    np.save(tmp_path / "one.npy", np.zeros((40, 7)))
    with pytest.raises(ValueError, match=r"shape \(40, 7\).*\(N, T, D\) was expected"):
        load_arrays(tmp_path / "one.npy")
    np.savez(tmp_path / "ok.npz", x=np.zeros((40, 7))[..., None])  # the fix the message suggests
    assert load_arrays(tmp_path / "ok.npz").x_dim == 1


# ---------------------------------------------------------------------------------------------- 14: figures
def test_piano_roll_axes_are_labelled():
    from pyro_dssm.plots import piano_roll_figure

    roll = np.zeros((12, 88))
    fig = piano_roll_figure([("data", [roll, roll]), ("samples", [roll])])
    data0, data1, samples0, empty = fig.axes
    assert "MIDI pitch" in data0.get_ylabel() and data0.get_ylabel().startswith("data")
    assert samples0.get_xlabel() == "time step" and data1.get_xlabel() == "time step"
    assert data0.get_xlabel() == ""  # the row below labels it
    assert [t.get_text() for t in data0.get_yticklabels()] == [f"C{o}" for o in range(1, 9)]
    assert list(data0.get_yticks()) == list(range(24, 109, 12))
    assert not empty.axison


@pytest.mark.slow  # about half a minute or more; CI's default run stays under 15 minutes
def test_a_run_from_before_the_learned_initial_distribution_loads_and_resumes(tmp_path, short_rolls):
    """Checkpoints without p(z_1) (z_1 from the transition, a learned z_0) evaluate and resume as they were trained."""
    from pyro_dssm.training.engine import load_run, load_run_config

    out = tmp_path / "old"
    r = script("train.py", "--data", short_rolls, "--epochs", "1", "--out", out, "--model", "dmm", "--guide",
               "partial", *TINY_RUN, "--model-option", "initial=transition")
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["model_options"].pop("initial")  # as a config.yaml written before the option existed
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert load_run_config(out).model_options == {"initial": "transition"}
    _, _, model, _ = load_run(out)
    assert model.config.initial == "transition" and hasattr(model, "z_0") and not hasattr(model, "initial")
    r = script("train.py", "--out", out, "--resume", "--epochs", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    # a new run keeps its learned p(z_1) without saying so in its config
    new = tmp_path / "new"
    assert script("train.py", "--data", short_rolls, "--epochs", "1", "--out", new, "--model", "dmm", "--guide",
                  "partial", *TINY_RUN).returncode == 0
    assert "initial" not in load_run_config(new).model_options
    assert load_run(new)[2].config.initial == "learned"
