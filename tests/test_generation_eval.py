"""LS4 Table 1 evaluation: evaluate.py --generation on a tiny LS4 run, and the table script."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)


def test_histogram_steps():
    from pyro_dssm.generation import histogram_steps

    np.testing.assert_array_equal(histogram_steps(1001), [5, 14, 37, 100])  # 0.5% .. 10%, log-spaced


@pytest.fixture(scope="module")
def ls4_run(tmp_path_factory):
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training import train

    out = tmp_path_factory.mktemp("ls4") / "run"
    cfg = TrainConfig(model="ls4", guide="ls4", data="flame-p4", max_sequences=12, epochs=2, batch_size=6, z_dim=2,
                      h_dim=8, model_options={"N": 8, "depth": 1}, out=str(out), progress=False, eval_particles=1)
    train(cfg, log=lambda *a: None)
    return out


def _flame_test_split(run):
    from pyro_dssm.training import load_run

    _, corpus, _, _ = load_run(run)
    return corpus.splits["test"]


def test_evaluate_generation_and_table(ls4_run, tmp_path):
    r = _script("evaluate.py", ls4_run, "--generation", "--probe-epochs", "3", "--iwae", "0", "--particles", "1",
                "--crossing-level", "0.5")
    assert r.returncode == 0, r.stderr[-3000:]
    g = ls4_run / "generation"
    report = json.loads((g / "generation.json").read_text())
    assert report["model"] == "ls4" and report["generated"] == report["real"] == 12 and report["length"] == 1001
    fake = np.load(g / "generated.npy")
    assert fake.shape == (12, 1001, 1) and np.isfinite(fake).all()
    s = report["scores"]
    assert s["marginal"] > 0 and s["classification"] > 0 and s["prediction"] > 0
    from pyro_dssm.metrics import crossing_time_test, wasserstein_marginal

    real = np.stack([x for x in _flame_test_split(ls4_run)])
    assert s["wasserstein"] == pytest.approx(wasserstein_marginal(real, fake))  # the saved samples' score
    assert report["crossing"] == pytest.approx(crossing_time_test(real, fake, 0.5))
    assert (g / "generation.png").read_bytes()[:4] == b"\x89PNG"
    r = _script("generation_table.py", ls4_run, "--out", tmp_path / "t.md")
    assert r.returncode == 0, r.stderr
    assert f"| flame | Class. ↑ | **{s['classification']:.4g}** |" in r.stdout
    r = _script("generation_table.py", tmp_path)
    assert r.returncode == 2 and "not a run directory" in r.stderr


def test_decoder_means_are_scored_apart_and_reach_the_pretrained_card(ls4_run, tmp_path):
    """Decoder means are scored into generation-mean/ (the noisy scores stay in generation/); an exported
    run's card carries both, and the exported weights draw the same seeded samples again."""
    from pyro_dssm.generation import evaluate_generation, prior_samples
    from pyro_dssm.metrics import wasserstein_marginal
    from pyro_dssm.pretrained import export_pretrained, load_pretrained_run, pretrained_card
    from pyro_dssm.training import load_run
    from pyro_dssm.training.runs import RunDir

    run = tmp_path / "run"
    shutil.copytree(ls4_run, run)
    _, corpus, model, _ = load_run(run)
    for mean in (False, True):
        evaluate_generation(model, corpus, RunDir(run).generation_dir(mean), probe_epochs=1, crossing_level=0.5,
                            mean=mean, figure=False, log=None)
    noisy = json.loads((run / "generation" / "generation.json").read_text())
    means = json.loads((run / "generation-mean" / "generation.json").read_text())
    assert means["output"] == "decoder mean" and noisy["output"].startswith("sample")
    real = np.stack(_flame_test_split(run))
    fake_mean = np.load(run / "generation-mean" / "generated.npy")
    fake = np.load(run / "generation" / "generated.npy")
    # the same seeded path: the noisy samples scatter around the means by sigma_x = 0.1
    assert np.std(fake - fake_mean) == pytest.approx(0.1, rel=0.1)
    assert means["scores"]["wasserstein"] == pytest.approx(wasserstein_marginal(real, fake_mean))
    export_pretrained(run, "tiny-ls4", dest=tmp_path / "zoo")
    card = pretrained_card("tiny-ls4", tmp_path / "zoo")
    assert set(card["generation"]) == {"sample", "mean"}
    assert card["generation"]["mean"]["scores"] == means["scores"]
    _, corpus, model, _ = load_pretrained_run("tiny-ls4", tmp_path / "zoo")
    again = prior_samples(model, means["length"], means["generated"], seed=means["seed"], mean=True)
    np.testing.assert_allclose(again, fake_mean, rtol=1e-5, atol=1e-6)


def test_generation_table_bold_per_row(tmp_path):
    import yaml

    runs = []
    for model, scores in (("ls4", {"marginal": 0.02, "classification": 0.5, "prediction": 0.04}),
                          ("vrnn", {"marginal": 0.13, "classification": 0.6, "prediction": 1.5})):
        run = tmp_path / model
        (run / "generation").mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump({"model": model, "data": "fred-md"}))
        (run / "generation" / "generation.json").write_text(json.dumps({"data": "fred-md", "scores": scores}))
        runs.append(run)
    r = _script("generation_table.py", *runs)
    assert r.returncode == 0, r.stderr
    assert "| fred-md | Marginal ↓ | **0.02** | 0.13 |" in r.stdout
    assert "| fred-md | Class. ↑ | 0.5 | **0.6** |" in r.stdout
    assert "| fred-md | Prediction ↓ | **0.04** | 1.5 |" in r.stdout
    (runs[1] / "generation" / "generation.json").unlink()
    r = _script("generation_table.py", runs[1])
    assert r.returncode == 2 and "--generation" in r.stderr


def test_generation_needs_equal_lengths(tmp_path):
    from pyro_dssm.data.corpus import Corpus
    from pyro_dssm.generation import evaluate_generation
    from pyro_dssm.models.ls4 import LS4Config, LS4Model

    seqs = [np.zeros((n, 1), np.float32) for n in (5, 6, 7)]
    corpus = Corpus({"train": seqs, "valid": seqs, "test": seqs})
    with pytest.raises(ValueError, match="one length"):
        evaluate_generation(LS4Model(LS4Config(x_dim=1, H=4, N=4, depth=1)), corpus, tmp_path)


@pytest.mark.slow  # 40-90 s; CI's default run stays under 15 minutes
def test_evaluate_forecast_and_table2(ls4_run, tmp_path):
    """evaluate.py --forecast: both Sec. 5.3 tasks on an irregularly sampled FLAME run, then Table 2's layout."""
    import yaml

    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training import train

    r = _script("evaluate.py", ls4_run, "--forecast", "interpolation", "--iwae", "0", "--particles", "1")
    assert r.returncode == 2 and "missing=true" in r.stderr  # a model of regular data cannot read gaps
    run = tmp_path / "irregular"
    cfg = TrainConfig.from_dict({**yaml.safe_load((ls4_run / "config.yaml").read_text()),
                                 "observed_fraction": 0.7, "out": str(run), "epochs": 1})
    train(cfg, log=lambda *a: None)
    r = _script("evaluate.py", run, "--forecast", "interpolation", "extrapolation", "--forecast-samples", "2",
                "--iwae", "0", "--particles", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    reports = {t: json.loads((run / f"forecast_{t}.json").read_text()) for t in ("interpolation", "extrapolation")}
    from pyro_dssm.training import load_run

    _, corpus, _, _ = load_run(run)
    test = corpus.splits["test"]
    assert reports["extrapolation"]["targets"] == sum(int((~np.isnan(s[500:])).sum()) for s in test)
    assert 0 < reports["interpolation"]["targets"] < sum(int((~np.isnan(s)).sum()) for s in test)
    for rep in reports.values():
        assert rep["sequences"] == len(test) and rep["mse"] > 0 and 0 < rep["crps_mixture"]
    r = _script("generation_table.py", run, "--forecast", "--out", tmp_path / "x.md")
    assert r.returncode == 0, r.stderr
    mse = reports["extrapolation"]["mse"]
    assert f"| MSE ↓ | extrapolation | {reports['extrapolation']['data']} | **{mse:.4g}** |" in r.stdout
    assert (tmp_path / "x.md").read_text() == r.stdout
    r = _script("generation_table.py", ls4_run, "--forecast")
    assert r.returncode == 2 and "--forecast interpolation" in r.stderr
    r = _script("evaluate.py", run, "--forecast", "interpolation", "--context-fraction", "1.5")
    assert r.returncode == 2 and "--context-fraction" in r.stderr


def test_a_study_table_names_its_variants_and_shows_the_decoder_means(tmp_path):
    """Several configs of one model on one data set (the FLAME study) are rows named by their configs; runs
    scored on their decoder means too (generation-mean/) add those columns, with the crossing-time test."""
    import yaml

    from pyro_dssm.tables import render_table, run_record

    records = []
    for config, w, p in (("base", 0.05, 0.01), ("x-decoder", 0.2, 0.3)):
        run = tmp_path / config / "seed0"
        for sub, scale in (("generation", 1.0), ("generation-mean", 0.5)):
            (run / sub).mkdir(parents=True)
            (run / sub / "generation.json").write_text(json.dumps({
                "data": "flame", "scores": {"marginal": 1.0, "classification": 0.1, "prediction": 0.2,
                                            "wasserstein": w * scale},
                "crossing": {"p_value": p * scale, "ks_statistic": 0.4}}))
        (run / "config.yaml").write_text(yaml.safe_dump({"model": "ls4", "guide": "ls4", "data": "flame"}))
        rec = run_record(run, finished=False)
        records.append({**rec, "config": config, "seed": 0})  # what the experiment adds (collect)
    assert records[0]["generation_mean"] == {"marginal": 1.0, "classification": 0.1, "prediction": 0.2,
                                             "wasserstein": 0.025, "crossing_p": 0.005, "crossing_ks": 0.4}
    table = render_table("generation", records)
    assert "Wasserstein, means ↓ | crossing-time KS p, means |" in table
    rows = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| flame")}
    assert set(rows) == {"LS4 (base)", "LS4 (x-decoder)"}
    assert "| 0.2000 | 0.1000 | 0.2000 | 0.300 | 0.1000 | 0.150 |" in rows["LS4 (x-decoder)"]


def test_generation_claims_orient_each_score_and_need_one_config_per_model():
    from pyro_dssm.tables import generation_claims

    def rec(model, seed, marginal, classification, config=None):
        return {"data": "macro", "model": model, "seed": seed, "config": config or model,
                "generation": {"marginal": marginal, "classification": classification}}

    records = [rec("ls4", 0, 0.10, 0.50), rec("ls4", 1, 0.12, 0.52), rec("ls4", 2, 0.11, 0.48),
               rec("vrnn", 0, 0.30, 0.20), rec("vrnn", 1, 0.31, 0.25), rec("vrnn", 2, 0.29, 0.22)]
    claims = {c["claim"]: c for c in generation_claims(records)}
    marg = claims["macro: LS4 ahead of VRNN on Marginal (samples)"]
    assert marg["verdict"] == "confirmed" and marg["diff"] == pytest.approx(0.19)  # lower is better
    cls = claims["macro: LS4 ahead of VRNN on Classification (samples)"]
    assert cls["verdict"] == "confirmed" and cls["diff"] == pytest.approx(0.50 - 0.2233333, abs=1e-6)  # higher
    flipped = [dict(r, model={"ls4": "vrnn", "vrnn": "ls4"}[r["model"]]) for r in records]
    assert {c["verdict"] for c in generation_claims(flipped)} == {"contradicted"}
    # a grid before its pick (two LS4 configs) makes no claim
    assert generation_claims(records + [rec("ls4", 0, 0.1, 0.5, config="ls4-large")]) == []
