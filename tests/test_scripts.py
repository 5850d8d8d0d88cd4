"""Subprocess smoke runs of every script with tiny settings, and their bad-input errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY_RUN
from conftest import run_script as script

SCRIPTS = ROOT / "scripts"


def load_script(name):
    """Import a script as a module, to call its main(argv) in-process (fast error checks)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_script_{Path(name).stem}", SCRIPTS / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny finished run on the shipped chorales, shared by the evaluate/sample/results tests."""
    out = tmp_path_factory.mktemp("runs") / "arssm"
    r = script("train.py", "--model", "arssm", "--guide", "full", "--iaf", "1", "--epochs", "2", *TINY_RUN,
               "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_train_writes_a_run_directory(run_dir):
    for rel in ("config.yaml", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "logs/metrics.csv", "metrics.json"):
        assert (run_dir / rel).is_file(), rel
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["epochs_run"] == 2 and m["data"] == "bach_chorales" and m["emission"] == "bernoulli"
    assert m["test_nelbo_per_step"] < m["test_nelbo_per_step_untrained"]
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["model"] == "arssm" and cfg["iaf"] == 1 and cfg["z_dim"] == 2 and cfg["epochs"] == 2
    header = (run_dir / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "train/loss" in header and "val/nelbo_per_step" in header


def test_evaluate_writes_json_and_csv(run_dir):
    r = script("evaluate.py", run_dir, "--particles", "3", "--iwae", "20")
    assert r.returncode == 0, r.stderr
    res = json.loads((run_dir / "eval_test.json").read_text())
    rows = (run_dir / "eval_test.csv").read_text().splitlines()
    assert rows[0].split(",") == ["index", "id", "length", "elbo", "nelbo_per_step", "iwae", "nll_per_step"]
    assert len(rows) == 1 + res["sequences"] == 7
    elbo = np.array([float(r.split(",")[3]) for r in rows[1:]])
    iwae = np.array([float(r.split(",")[5]) for r in rows[1:]])
    lengths = np.array([int(r.split(",")[2]) for r in rows[1:]])
    assert np.isclose(-elbo.sum() / lengths.sum(), res["nelbo_per_step"])
    assert np.isclose(-iwae.sum() / lengths.sum(), res["nll_per_step"])
    # the importance-weighted bound is tighter than the ELBO
    assert res["nll_per_step"] < res["nelbo_per_step"]
    assert "negative ELBO per step" in r.stdout


def test_sample_writes_arrays_midi_and_png(run_dir):
    r = script("sample.py", run_dir, "--num", "2", "--steps", "8", "--prefix-steps", "4")
    assert r.returncode == 0, r.stderr
    out = run_dir / "samples"
    prior, cont, prefixes = (np.load(out / f"{n}.npy") for n in ("prior", "continuations", "prefixes"))
    assert prior.shape == (2, 8, 88) and cont.shape == (2, 12, 88) and prefixes.shape == (2, 4, 88)
    assert set(np.unique(prior)) <= {0.0, 1.0}
    np.testing.assert_array_equal(cont[:, :4], prefixes)  # continuations start with the held-out prefix
    from pyro_dssm.data import load_bach_chorales, midi_to_roll

    test = load_bach_chorales().splits["test"]
    np.testing.assert_array_equal(prefixes[0], test[0][:4])
    np.testing.assert_array_equal(midi_to_roll(out / "data_0.mid")[:12], test[0][:12])
    for name in ("prior_0.mid", "prior_1.mid", "continuations_0.mid"):
        assert (out / name).stat().st_size > 20
    png = (out / "piano_rolls.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


@pytest.mark.slow  # 40-90 s; CI's default run stays under 15 minutes
def test_results_table(run_dir, tmp_path):
    r = script("results_table.py", run_dir, "--out", tmp_path / "t.md")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "t.md").read_text()
    assert "| ArSSM (FA + 1 IAF) |" in md and "Bach chorales" in md  # names as every table (pyro_dssm.tables.NAMES)
    res = json.loads((run_dir / "eval_test.json").read_text()) if (run_dir / "eval_test.json").is_file() else None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    nelbo = res["nelbo_per_step"] if res else metrics["test_nelbo_per_step"]
    assert f"({nelbo:.2f})" in md
    r = script("results_table.py", tmp_path)
    assert r.returncode == 2 and "not a run directory" in r.stderr
    # results_table.py is `table music`: the same table from the command the three table scripts share
    r2 = script("table.py", "music", run_dir)
    assert r2.returncode == 0 and r2.stdout == md
    r2 = script("table.py", "speech", run_dir)  # a music run has no resynthesis: the command that makes it is named
    assert r2.returncode == 2 and "resynthesis-sample/summary.json is missing" in r2.stderr and "evaluate.py" in r2.stderr


def test_resume_equals_an_uninterrupted_run(tmp_path, short_rolls):
    common = ["--model", "vrnn", "--guide", "partial", *TINY_RUN, "--anneal-epochs", "3", "--data", short_rolls]
    assert script("train.py", *common, "--epochs", "4", "--out", tmp_path / "a").returncode == 0
    assert script("train.py", *common, "--epochs", "2", "--out", tmp_path / "b").returncode == 0
    first = json.loads((tmp_path / "b/metrics.json").read_text())["train_seconds"]
    first_ckpt = torch.load(tmp_path / "b/checkpoints/last.ckpt", weights_only=True)["train_seconds"]
    r = script("train.py", *common, "--epochs", "4", "--out", tmp_path / "b", "--resume")
    assert r.returncode == 0, r.stderr
    # the training time adds up over the sessions: the resumed run counts the first one's
    assert 0 < first_ckpt <= first
    resumed = json.loads((tmp_path / "b/metrics.json").read_text())["train_seconds"]
    last_ckpt = torch.load(tmp_path / "b/checkpoints/last.ckpt", weights_only=True)["train_seconds"]
    assert first_ckpt < last_ckpt <= resumed
    a = torch.load(tmp_path / "a/checkpoints/last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "b/checkpoints/last.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3 and a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    # and the test really compares: a run with another seed differs
    assert script("train.py", *common, "--epochs", "4", "--seed", "1", "--out", tmp_path / "c").returncode == 0
    c = torch.load(tmp_path / "c/checkpoints/last.ckpt", weights_only=True)
    assert any(not torch.equal(a["state_dict"][k], c["state_dict"][k]) for k in a["state_dict"])


def test_killed_run_keeps_its_last_checkpoint_and_resumes(tmp_path, short_rolls):
    out = tmp_path / "k"
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "train.py"), "--model", "rssm", *TINY_RUN,
                             "--data", str(short_rolls),
                             "--epochs", "1000", "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    last = out / "checkpoints" / "last.ckpt"
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not last.is_file():
            time.sleep(0.2)
        assert last.is_file(), "no checkpoint within 5 minutes"
        time.sleep(1.5)  # kill it somewhere in the middle of later epochs (or of a save)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    from pyro_dssm.training import check_checkpoint

    ckpt = check_checkpoint(last)
    assert ckpt["epoch"] >= 0 and "rng_states" in ckpt
    # the kill may or may not have interrupted a save; whatever it left, the resume removes it
    left = sorted(out.rglob(".*.part"))
    r = script("train.py", "--model", "rssm", *TINY_RUN, "--data", short_rolls, "--epochs", str(ckpt["epoch"] + 2),
               "--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == ckpt["epoch"] + 2
    assert not list(out.rglob(".*.part"))
    assert all(f"removed {p}" in r.stdout for p in left)


def test_two_process_ddp_on_cpu(tmp_path, short_rolls):
    r = script("train.py", "--model", "fssm", "--guide", "partial", *TINY_RUN, "--epochs", "2", "--data", short_rolls,
               "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--out", tmp_path / "ddp")
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert m["epochs_run"] == 2 and np.isfinite(m["test_nelbo_per_step"])
    log = r.stdout + r.stderr
    assert "distributed_backend=gloo" in log and "All distributed processes registered" in log
    # 6 sequences in batches of 3 over 2 processes: 1 step per epoch each (a single process would take 2)
    assert torch.load(tmp_path / "ddp/checkpoints/last.ckpt", weights_only=True)["global_step"] == 2


def test_jit_flag_trains(tmp_path, short_rolls):
    r = script("train.py", "--model", "arssm", "--guide", "partial", *TINY_RUN, "--epochs", "2", "--jit",
               "--data", short_rolls, "--lr", "0.03",
               "--out", tmp_path / "jit")
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "jit" / "metrics.json").read_text())
    assert m["test_nelbo_per_step"] < m["test_nelbo_per_step_untrained"]
    # its checkpoints load into an ordinary (non-JIT) model for evaluation
    assert script("evaluate.py", tmp_path / "jit", "--iwae", "0", "--particles", "1").returncode == 0


def test_config_file_and_flag_override(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: srnn\nguide: partial\nepochs: 5\nz_dim: 3\n")
    r = script("train.py", "--config", cfg, *TINY_RUN, "--epochs", "1", "--out", tmp_path / "r")
    assert r.returncode == 0, r.stderr
    import yaml

    resolved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert resolved["model"] == "srnn" and resolved["epochs"] == 1 and resolved["z_dim"] == 2  # flags win


def test_user_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 6, 3)).astype(np.float32)
    np.savez(tmp_path / "mine.npz", x=x, lengths=rng.integers(2, 7, size=12))
    r = script("train.py", "--data", tmp_path / "mine.npz", "--model", "dmm", *TINY_RUN, "--epochs", "1",
               "--out", tmp_path / "r")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["emission"] == "gaussian"
    r = script("sample.py", tmp_path / "r", "--num", "2", "--steps", "3", "--prefix-steps", "2", "--no-png")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "r" / "samples" / "prior.npy").shape == (2, 3, 3)
    assert not list((tmp_path / "r" / "samples").glob("*.mid"))  # not piano rolls: no MIDI


@pytest.mark.parametrize("args, message", [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--guide", "sideways"], "unknown guide 'sideways'"),
    (["--data", "missing.npy"], "does not exist"),
    (["--data", "jsb", "--data-root", "."], "JSB Chorales.pickle"),
    (["--iaf", "2", "--iaf-dim", "4", "--z-dim", "8"], "iaf_dim=4 < z_dim=8"),
    (["--epochs", "0"], "'epochs' must be a positive integer"),
    (["--config", "missing.yaml"], "does not exist"),
    (["--emission", "bernoulli", "--data", "BAD"], "binary"),
    (["--model-option", "transition_net"], "KEY=VALUE"),
    (["--model-option", "zdim=3"], "unknown model option(s) ['zdim']"),
    (["--model-option", "min_scale=abc"], "model field 'min_scale' must be a number, got 'abc'"),
])
def test_train_bad_input(tmp_path, capsys, args, message):
    if "BAD" in args:
        np.save(tmp_path / "bad.npy", np.full((6, 4, 2), 0.5, dtype=np.float32))
        args = [str(tmp_path / "bad.npy") if a == "BAD" else a for a in args]
    argv = [*TINY_RUN, "--epochs" if "--epochs" not in args else "--seed", "1", *args, "--out", str(tmp_path / "r")]
    assert load_script("train.py").main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: "), err[-2000:]
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_resume_and_overwrite_errors(run_dir, tmp_path):
    r = script("train.py", "--out", tmp_path / "none", "--resume", *TINY_RUN)
    assert r.returncode == 2 and "cannot resume" in r.stderr
    r = script("train.py", "--out", run_dir, *TINY_RUN)
    assert r.returncode == 2 and "already holds a run" in r.stderr


def test_corrupt_checkpoint_and_missing_run(run_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    data = (broken / "checkpoints" / "best.ckpt").read_bytes()
    (broken / "checkpoints" / "best.ckpt").write_bytes(data[: len(data) // 3])
    r = script("evaluate.py", broken)
    assert r.returncode == 2 and "corrupt" in r.stderr and "Traceback" not in r.stderr
    assert "best.ckpt" in r.stderr
    (broken / "checkpoints" / "last.ckpt").write_bytes(b"garbage")
    r = script("train.py", "--out", broken, "--resume", *TINY_RUN)
    assert r.returncode == 2 and "corrupt" in r.stderr
    r = script("sample.py", tmp_path / "nothing")
    assert r.returncode == 2 and "not a run directory" in r.stderr


def test_download_script_offline_message(tmp_path):
    env = dict(os.environ, PYRO_DSSM_DATA=str(tmp_path))
    r = script("download_music.py", "nottingham", env=env)
    assert r.returncode == 2 and "allow-unverified" in r.stderr.replace("_", "-")
    r = script("download_music.py", "bogus", env=env)
    assert r.returncode == 2 and "unknown music benchmark" in r.stderr


def test_archive_runs_keeps_finished_runs_small_files_and_no_checkpoints(tmp_path):
    src, dest = tmp_path / "grid", tmp_path / "kept"
    done, running = src / "arssm-full" / "seed0", src / "arssm-full" / "seed1"
    for run in (done, running):
        (run / "checkpoints").mkdir(parents=True)
        (run / "config.yaml").write_text("model: arssm\n")
        (run / "checkpoints" / "last.ckpt").write_bytes(b"x" * 100)
    (running / "checkpoints" / "best.ckpt").write_bytes(b"y" * 100)  # an earlier epoch than last
    (done / "metrics.json").write_text("{}")
    (done / "eval_test.json").write_text("{}")
    (done / "logs").mkdir()
    (done / "logs" / "metrics.csv").write_text("epoch\n")
    (src / "table.md").write_text("| t |")
    (src / "baselines").mkdir()
    (src / "baselines" / "gru-seed0.json").write_text("{}")
    r = script("archive_runs.py", src, dest)
    assert r.returncode == 0 and "summaries of 1 finished runs" in r.stdout
    kept = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert kept == ["arssm-full/seed0/config.yaml", "arssm-full/seed0/eval_test.json", "arssm-full/seed0/logs/metrics.csv",
                    "arssm-full/seed0/metrics.json", "baselines/gru-seed0.json", "table.md"]
    # --unfinished: the interrupted run's resume state too (its checkpoint), never a finished run's checkpoint
    r = script("archive_runs.py", src, tmp_path / "all", "--unfinished")
    assert r.returncode == 0 and "of 1 unfinished runs" in r.stdout
    kept = sorted(str(p.relative_to(tmp_path / "all")) for p in (tmp_path / "all").rglob("*") if p.is_file())
    assert "arssm-full/seed1/checkpoints/last.ckpt" in kept and "arssm-full/seed1/config.yaml" in kept
    assert "arssm-full/seed1/checkpoints/best.ckpt" in kept  # the best epoch's weights, for the final evaluation
    assert "arssm-full/seed0/checkpoints/last.ckpt" not in kept
