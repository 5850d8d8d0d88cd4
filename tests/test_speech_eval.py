"""Table I evaluation: metrics against known cases, resynthesis, and a tiny train-resynthesise-score run."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

soundfile = pytest.importorskip("soundfile")
pytest.importorskip("librosa")
pytest.importorskip("pesq")
pytest.importorskip("pystoi")

from pyro_dssm.data import speech  # noqa: E402
from pyro_dssm.metrics import SI_SDR_MAX_DB, estoi, pesq_wb, si_sdr, summarize  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_blas_thread(monkeypatch):
    # BLAS thread contention made the metrics hundreds of times slower on a loaded 2-core machine
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def clip():
    wave, sr = soundfile.read(str(speech.SHIPPED_SPEECH / "vm-helpexit.flac"), dtype="float64")
    assert sr == 16000
    return wave


# ---------------------------------------------------------------------------------------------- SI-SDR
def test_si_sdr_hand_computed():
    s = np.array([1.0, -1.0, 1.0, -1.0])  # zero mean
    e = np.array([2.0, -1.0, 1.0, -1.0])  # mean 0.25: e - mean = [1.75, -1.25, 0.75, -1.25]
    # a = <e, s> / |s|^2 = 5 / 4; target = 1.25 s; noise = e0 - target = [0.5, 0, -0.5, 0]
    assert si_sdr(s, e) == pytest.approx(10 * math.log10(4 * 1.25 ** 2 / 0.5))


def test_si_sdr_identity_scaling_and_known_snr(clip):
    assert si_sdr(clip, clip) == SI_SDR_MAX_DB  # finite, so that an average keeps it
    rng = np.random.default_rng(0)
    n = rng.normal(size=clip.shape)
    s0 = clip - clip.mean()
    n -= n.mean()
    n -= (n @ s0) / (s0 @ s0) * s0  # orthogonal to the zero-mean reference
    for snr in (-5.0, 0.0, 10.0, 20.0):
        noise = n * np.sqrt((s0 @ s0) / (n @ n) / 10 ** (snr / 10))
        assert si_sdr(clip, clip + noise) == pytest.approx(snr, abs=1e-9)
        # scale invariance of the estimate
        assert si_sdr(clip, 0.01 * (clip + noise)) == pytest.approx(snr, abs=1e-9)
        assert si_sdr(clip, 37.0 * (clip + noise)) == pytest.approx(snr, abs=1e-9)


def test_metric_bad_input(clip):
    with pytest.raises(ValueError, match="aligned"):
        si_sdr(clip, clip[:-1])
    with pytest.raises(ValueError, match="NaN or inf"):
        si_sdr(clip, np.where(np.arange(clip.size) == 5, np.nan, clip))
    with pytest.raises(ValueError, match="silent"):
        si_sdr(np.zeros(100), np.ones(100))
    with pytest.raises(ValueError, match="1-D"):
        estoi(np.ones((2, 100)), np.ones((2, 100)))
    with pytest.raises(ValueError, match="too short.*0.25 s"):
        pesq_wb(clip[:3000], clip[:3000])
    with pytest.raises(ValueError, match="16 kHz"):
        pesq_wb(clip, clip, 8000)
    with pytest.raises(ValueError, match="silent"):
        pesq_wb(np.zeros(16000), np.zeros(16000))
    with pytest.raises(ValueError, match="too few non-silent frames"):
        estoi(clip[:4000], clip[:4000])


def test_pesq_and_estoi_known_cases(clip):
    rng = np.random.default_rng(1)
    noise = rng.normal(size=clip.shape) * np.std(clip)
    clean_p, clean_e = pesq_wb(clip, clip), estoi(clip, clip)
    assert clean_p > 4.5 and clean_e > 0.999  # P.862.2 maximum 4.64; ESTOI 1 for identical signals
    p10, p0 = pesq_wb(clip, clip + 0.3 * noise), pesq_wb(clip, clip + noise)
    e10, e0 = estoi(clip, clip + 0.3 * noise), estoi(clip, clip + noise)
    assert clean_p > p10 > p0 >= 1.0 and clean_e > e10 > e0 > 0.0


def test_summarize_hand_computed():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2  # t_{0.975, 3} * s / sqrt(n)
    assert (s["n"], s["mean"], s["median"]) == (4, 2.5, 2.5)
    assert s["ci_low"] == pytest.approx(2.5 - half, abs=1e-9) and s["ci_high"] == pytest.approx(2.5 + half, abs=1e-9)
    assert math.isnan(summarize([3.0])["ci_low"])
    with pytest.raises(ValueError, match="non-empty"):
        summarize([])
    with pytest.raises(ValueError, match="NaN"):
        summarize([1.0, float("nan")])


# ---------------------------------------------------------------------------------------------- resynthesis
def test_resynthesis_from_the_true_power_is_exact(clip):
    from pyro_dssm.resynthesis import resynthesize

    cfg = speech.STFTConfig()
    w = torch.as_tensor(clip, dtype=torch.float64)
    S = speech.stft(w, cfg)
    y = resynthesize(S.abs() ** 2, S, cfg, len(w))
    assert si_sdr(clip, y.numpy()) > 100
    # a negative power (possible under a Gaussian-on-power emission) counts as 0
    y2 = resynthesize(torch.where(torch.arange(513) < 300, S.abs() ** 2, -torch.ones(())), S, cfg, len(w))
    S2 = speech.stft(y2, cfg)
    assert float(S2.abs()[:, 320:-10].max()) < 1e-3 * float(S.abs().max())
    with pytest.raises(ValueError, match="differ in shape"):
        resynthesize(S.abs()[:-1] ** 2, S, cfg, len(w))


def test_griffin_lim_recovers_a_consistent_waveform(clip):
    from pyro_dssm.resynthesis import griffin_lim

    cfg = speech.STFTConfig()
    P = speech.power_spectrogram(torch.as_tensor(clip[:16000], dtype=torch.float32)).numpy()
    y = griffin_lim(P, cfg, n_iter=32)
    assert y.shape == (cfg.hop * (len(P) - 1),)
    Q = speech.power_spectrogram(torch.as_tensor(y)).numpy()[:len(P)]
    # spectral convergence of the magnitudes: phase retrieval, so close but not exact
    sc = np.linalg.norm(np.sqrt(Q) - np.sqrt(P)) / np.linalg.norm(np.sqrt(P))
    assert sc < 0.35
    with pytest.raises(ValueError, match="shape"):
        griffin_lim(P[:, :100], cfg)


def _tiny(emission="itakura_saito", model="arssm", guide="full", iaf=0):
    import pyro

    from pyro_dssm.guides import create_guide
    from pyro_dssm.models import create_model

    pyro.clear_param_store()
    m = create_model(model, x_dim=513, emission=emission, z_dim=4, h_dim=8, hidden_dim=8)
    g = create_guide(guide, m, rnn_dim=8, hidden_dim=8, num_iafs=iaf, iaf_dim=8)
    return m, g


@pytest.mark.parametrize("iaf", [0, 2])
def test_emission_means_ragged_batch_equals_one_at_a_time(iaf):
    from pyro_dssm.data.corpus import pad_sequences
    from pyro_dssm.resynthesis import emission_means

    m, g = _tiny(iaf=iaf)
    rng = np.random.default_rng(0)
    seqs = [rng.exponential(size=(n, 513)).astype(np.float32) for n in (7, 3, 5)]
    x, mask = pad_sequences(seqs)
    batch = emission_means(m, g, x, mask, latents="mean")
    assert batch.shape == (3, 7, 513) and bool((batch > 0).all())
    for i, s in enumerate(seqs):
        alone = emission_means(m, g, torch.as_tensor(s)[None], latents="mean")[0]
        torch.testing.assert_close(batch[i, :len(s)], alone, rtol=1e-5, atol=1e-6)
    # posterior means are deterministic; guide samples are not
    torch.manual_seed(1)
    a = emission_means(m, g, x, mask, latents="sample")
    torch.manual_seed(2)
    b = emission_means(m, g, x, mask, latents="sample")
    assert not torch.allclose(a, b)
    torch.testing.assert_close(emission_means(m, g, x, mask, latents="mean"), batch)
    with pytest.raises(ValueError, match="latents must be one of"):
        emission_means(m, g, x, mask, latents="mode")


def test_emission_means_gaussian_power_is_the_location():
    """Gaussian-on-power: the reconstruction is the emission's location, computed here by hand for step 1."""
    from pyro import poutine

    from pyro_dssm.resynthesis import _LatentMean, emission_means

    m, g = _tiny(emission="gaussian_power", model="fssm", guide="partial")
    x = torch.rand(1, 4, 513)
    means = emission_means(m, g, x, latents="mean")
    z1 = _LatentMean()(poutine.trace(g).get_trace)(x).nodes["z_1"]["value"]
    # FSSM: x_1 ~ p(x_1 | d_x(h_1)), h_1 the latent RNN after z_1
    h1 = m.latent_rnn_step(z1, m.latent_rnn_init())
    torch.testing.assert_close(means[:, 0], m.emitter(h1).mean, rtol=1e-5, atol=1e-6)


def test_resynthesis_rejects_music_corpus():
    from pyro_dssm.data.music import load_bach_chorales
    from pyro_dssm.resynthesis import evaluate_resynthesis

    m, g = _tiny()
    with pytest.raises(ValueError, match="needs a speech corpus"):
        evaluate_resynthesis(m, g, load_bach_chorales(), "/tmp/unused")


# ---------------------------------------------------------------------------------------------- end to end
def _script(name, *args, env=None):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
                          timeout=600)


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    """A tiny ArSSM trained on the shipped clips, then evaluated by the script."""
    out = tmp_path_factory.mktemp("speech") / "run"
    env = {"PYRO_DSSM_DATA": str(out.parent / "home")}
    r = _script("train.py", "--data", "speech", "--epochs", "6", "--batch-size", "4", "--z-dim", "4", "--h-dim", "16",
                "--hidden-dim", "16", "--guide-rnn-dim", "16", "--eval-particles", "1", "--out", out,
                "--no-progress", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r = _script("evaluate.py", out, "--particles", "1", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r.stdout


def test_speech_run_end_to_end(speech_run):
    run, stdout = speech_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["emission"] == "itakura_saito"  # the default likelihood for speech
    assert metrics["test_nelbo_per_step"] < metrics["test_nelbo_per_step_untrained"]
    res = run / "resynthesis-sample"
    rows = list(csv.DictReader((res / "utterances.csv").open()))
    corpus = speech.load_shipped_speech()
    assert [r["id"] for r in rows] == corpus.ids["test"]
    summary = json.loads((res / "summary.json").read_text())
    assert summary["utterances"] == len(rows) and summary["pesq_mode"].startswith("wide band")
    assert summary["model"] == "arssm" and summary["latents"] == "sample"
    for key, lo, hi in (("si_sdr", -100, 100), ("pesq_wb", -0.5, 4.64), ("estoi", -1, 1)):
        values = [float(r[key]) for r in rows]
        assert all(lo <= v <= hi for v in values)
        assert summary["metrics"][key]["mean"] == pytest.approx(np.mean(values))
        assert summary["metrics"][key]["median"] == pytest.approx(np.median(values))
    for r, wave in zip(rows, corpus.test_waves):
        y, sr = soundfile.read(str(res / "wav" / r["id"].replace(".flac", ".wav")))
        assert sr == 16000 and len(y) == len(wave) and float(np.abs(y).max()) > 0
    png = (res / "mel_spectrograms.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "si_sdr mean" in stdout and "95% CI" in stdout
    # generated speech becomes sound through Griffin-Lim
    r = _script("sample.py", run, "--num", "2", "--steps", "30", "--prefix-steps", "10",
                env={"PYRO_DSSM_DATA": str(run.parent / "home")})
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("prior_0", "prior_1", "continuations_0"):
        y, sr = soundfile.read(str(run / "samples" / f"{name}.wav"))
        assert sr == 16000 and len(y) == 256 * (30 + (10 if name.startswith("cont") else 0) - 1)


def _evaluate_quietly(run, *args):
    """scripts/evaluate.py on the speech run with one particle, no WAVs and no figure; must succeed."""
    r = _script("evaluate.py", run, "--particles", "1", "--no-wav", "--figure-items", "0", *args,
                env={"PYRO_DSSM_DATA": str(run.parent / "home")})
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_posterior_mean_resynthesis_and_table(speech_run, tmp_path):
    run, _ = speech_run
    r = _evaluate_quietly(run, "--latents", "mean")
    res = run / "resynthesis-mean"
    assert (res / "utterances.csv").is_file() and not (res / "wav").exists()
    assert not (res / "mel_spectrograms.png").exists()
    # Table I from this run: one row, partial cell empty
    r = _script("speech_table.py", run, "--out", tmp_path / "t1.md")
    assert r.returncode == 0, r.stderr
    s = json.loads((run / "resynthesis-sample" / "summary.json").read_text())["metrics"]
    assert f"| ArSSM | –/**{s['si_sdr']['mean']:.2f}** | –/**{s['pesq_wb']['mean']:.2f}** |" in r.stdout
    assert (tmp_path / "t1.md").read_text() == r.stdout


def _fake_run(root: Path, model, guide, iaf, si, pesq, est):
    import yaml

    run = root / f"{model}-{guide}-{iaf}"
    (run / "resynthesis-sample").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": model, "guide": guide, "iaf": iaf, "data": "x"}))
    metrics = {k: {"mean": v, "median": v - 0.5} for k, v in (("si_sdr", si), ("pesq_wb", pesq), ("estoi", est))}
    (run / "resynthesis-sample" / "summary.json").write_text(
        json.dumps({"utterances": 10, "latents": "sample", "metrics": metrics}))
    return run


@pytest.mark.slow  # 40-90 s; CI's default run stays under 15 minutes
def test_speech_table_layout_and_bold(tmp_path):
    runs = [_fake_run(tmp_path, "arssm", "partial", 0, 5.42, 1.69, 0.785),
            _fake_run(tmp_path, "arssm", "full", 0, 5.132, 1.675, 0.795),
            _fake_run(tmp_path, "srnn", "partial", 0, 4.99, 1.60, 0.783),
            _fake_run(tmp_path, "srnn", "full", 0, 5.146, 1.667, 0.788),
            _fake_run(tmp_path, "srnn", "partial", 3, 5.73, 1.70, 0.795)]
    r = _script("speech_table.py", *runs)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines.index("| **Without IAFs** | | | |") < lines.index("| **Using IAFs** | | | |")
    assert "| ArSSM | **5.42**/5.13 | **1.69**/**1.68** | **0.785**/**0.795** |" in lines
    assert "| SRNN | 4.99/**5.15** | 1.60/1.67 | 0.783/0.788 |" in lines
    assert "| SRNN | **5.73**/– | **1.70**/– | **0.795**/– |" in lines
    r = _script("speech_table.py", *runs, "--stat", "median")
    assert "| ArSSM | **4.92**/4.63 |" in r.stdout
    r = _script("speech_table.py", runs[0], tmp_path / "nope")
    assert r.returncode == 2 and "not a run directory" in r.stderr
    (runs[1] / "resynthesis-sample" / "summary.json").unlink()
    r = _script("speech_table.py", runs[1])
    assert r.returncode == 2 and "evaluate.py" in r.stderr


def test_make_speech_corpus_script(tmp_path):
    G722 = pytest.importorskip("G722")
    src = tmp_path / "sounds"
    src.mkdir()
    x = (np.sin(np.arange(16000) / 16000 * 2 * np.pi * 300) * 8000).astype(np.int16)
    (src / "hello.g722").write_bytes(G722.G722(16000, 64000).encode(x))
    (src / "beep.g722").write_bytes(G722.G722(16000, 64000).encode(x))
    r = _script("make_speech_corpus.py", "--sounds", src, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["hello.flac"]
    r = _script("make_speech_corpus.py", "--sounds", src, "--shipped", "--check")
    assert r.returncode == 2 and "lacks the prompt" in r.stderr
    r = _script("make_speech_corpus.py", "--check")
    assert r.returncode == 2 and "--check applies to --shipped" in r.stderr


def test_train_split_resynthesis_scores_whole_training_files(speech_run):
    run, _ = speech_run
    r = _evaluate_quietly(run, "--split", "train")
    res = run / "resynthesis-sample-train"
    rows = list(csv.DictReader((res / "utterances.csv").open()))
    corpus = speech.load_shipped_speech()
    assert [r["id"] for r in rows] == corpus.files["train"]  # whole files, not the 50-frame training pieces
    summary = json.loads((res / "summary.json").read_text())
    assert summary["split"] == "train" and summary["utterances"] == len(rows)
    assert summary["metrics"]["si_sdr"]["mean"] == pytest.approx(np.mean([float(r["si_sdr"]) for r in rows]))
    assert "train utterances" in r.stdout


def test_speech_corpus_gives_back_whole_utterances_of_every_split(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_DSSM_DATA", str(tmp_path))
    for cache in (True, False):
        corpus = speech.load_shipped_speech(cache=cache)
        for split in ("train", "valid"):
            names, waves, power = corpus.utterances(split)
            assert names == corpus.files[split] and len(waves) == len(power) == len(names)
            # the training pieces are these utterances' spectrograms cut into seq_len frames
            np.testing.assert_allclose(np.concatenate(corpus.splits[split]), np.concatenate(power), rtol=1e-6)
            assert all(len(p) == speech.STFTConfig().num_frames(len(w)) for w, p in zip(waves, power))
        names, waves, power = corpus.utterances("test")
        assert names == corpus.ids["test"] and power[0] is corpus.splits["test"][0]
        with pytest.raises(ValueError, match="unknown split"):
            corpus.utterances("dev")


def test_a_speech_run_exports_a_card_that_reproduces_offline(speech_run, tmp_path, monkeypatch):
    """A speech model's card holds Table I's scores of its run and the scores of the shipped clips of its test
    split, which the loaded weights recompute without the corpus (how the shipped speech weights are tested)."""
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.pretrained import export_pretrained, load_pretrained, pretrained_card, shipped_clip_scores

    run, _ = speech_run
    monkeypatch.setenv("PYRO_DSSM_DATA", str(run.parent / "home"))
    export_pretrained(run, "tiny-speech", dest=tmp_path)
    card = pretrained_card("tiny-speech", tmp_path)
    corpus = speech.load_shipped_speech()
    summary = json.loads((run / "resynthesis-sample" / "summary.json").read_text())
    assert card["data"]["kind"] == "speech" and card["resynthesis"]["test"]["metrics"] == summary["metrics"]
    clips = card["shipped_clips"]
    # every file of this corpus is a shipped clip: the card scores exactly the test split, with its pre-processing
    assert clips["clips"] == sorted(corpus.files["test"])
    assert clips["frames"] == sum(len(p) for p in corpus.splits["test"])
    assert set(clips["per_clip"]) == set(clips["clips"]) and np.isfinite(clips["nelbo_per_step"])
    model, guide = load_pretrained("tiny-speech", tmp_path)
    again = shipped_clip_scores(model, guide, TrainConfig.from_dict(card["config"]), clips["clips"],
                                seed=clips["seed"])
    assert again["nelbo_per_step"] == pytest.approx(clips["nelbo_per_step"], rel=1e-6)
    for name, scores in clips["per_clip"].items():
        assert again["per_clip"][name] == pytest.approx(scores, rel=1e-6)
    # another resynthesis draw changes the scores: the card's seed is what makes them reproducible
    other = shipped_clip_scores(model, guide, TrainConfig.from_dict(card["config"]), clips["clips"], seed=123)
    assert other["per_clip"] != clips["per_clip"]
    with pytest.raises(ValueError, match="no shipped clips"):
        shipped_clip_scores(model, guide, TrainConfig.from_dict(card["config"]), [])
