"""The paper experiments: experiment files, the grid runner (scripts/reproduce.py), tables, the oracle and data."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import pyro

from pyro_dssm import experiments as ex
from pyro_dssm.cli.flags import resolve_config
from pyro_dssm.config import TrainConfig
from pyro_dssm.data.registry import option_fields

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT / "configs" / "experiments").glob("*.yaml"))


def _train_config(args):
    """The TrainConfig that scripts/train.py resolves from these arguments."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_train_script", ROOT / "scripts" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return resolve_config(mod.parse_args(args))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_experiment_file_loads_and_every_run_resolves(path):
    exp = ex.load_experiment(path)
    assert exp.name == path.stem and exp.description and {"paper", "cpu"} <= set(exp.profiles)
    assert exp.profile("paper") == {}  # the papers' protocol is the configs as written
    if exp.kind == "oracle":
        from pyro_dssm.oracle import oracle_experiment
        import inspect

        assert set(exp.oracle) <= set(inspect.signature(oracle_experiment).parameters)
        return
    for profile in exp.profiles:
        plans = ex.plan_runs(exp, profile)
        assert len(plans) == len(exp.config_files()) * len(exp.seeds)
        for p in plans:
            cfg = _train_config(p.train_args)
            cfg.validate()
            assert cfg.seed == p.seed and Path(cfg.out) == p.run_dir == ROOT / exp.out / profile / p.config.stem / \
                f"seed{p.seed}"
            written = TrainConfig.from_dict(yaml.safe_load(p.config.read_text()))
            # the profile's overrides win, the rest is the config's
            for k, v in exp.profile(profile, p.config.stem).items():
                if k == "model_options":
                    assert cfg.model_options == {**written.model_options, **v}
                elif k in option_fields():  # a data option (pyro_dssm.data.registry)
                    assert cfg.option(k) == v
                else:
                    assert getattr(cfg, k) == v
            assert (cfg.model, cfg.guide, cfg.iaf, cfg.data) == (written.model, written.guide, written.iaf,
                                                                   written.data)


def test_the_grids_are_the_issue_s():
    music = ex.load_experiment(ROOT / "configs/experiments/music-bach.yaml")
    runs = {(c.model, c.guide, c.iaf) for c in (TrainConfig.from_dict(yaml.safe_load(f.read_text()))
                                                 for f in music.config_files())}
    base = {(m, g, 0) for m in ("arssm", "fssm", "vrnn", "srnn", "rssm", "dmm") for g in ("partial", "full")}
    assert runs == base | {(m, g, 3) for m in ("arssm", "srnn") for g in ("partial", "full")}
    assert len(music.seeds) >= 3 and any("--iwae" in e["args"] and "100" in e["args"] for e in music.evaluate)
    speech = ex.load_experiment(ROOT / "configs/experiments/speech-asterisk.yaml")
    runs = {(c.model, c.guide, c.iaf, c.data) for c in (TrainConfig.from_dict(yaml.safe_load(f.read_text()))
                                                        for f in speech.config_files())}
    assert runs == {(m, g, 0, "asterisk") for m, g, _ in base}
    assert {e["output"] for e in speech.evaluate} == {"resynthesis-sample/summary.json",
                                                      "resynthesis-sample-train/summary.json"}
    for name in ("ls4-flame", "ls4-macro"):
        gen = ex.load_experiment(ROOT / f"configs/experiments/{name}.yaml")
        models = sorted(TrainConfig.from_dict(yaml.safe_load(f.read_text())).model for f in gen.config_files())
        assert models == ["ls4", "vrnn"]


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, match", [
    ("name: x\nkind: music\nout: o\nconfigs: [a]\nbogus: 1\n", "unknown field"),
    ("name: x\nkind: films\nout: o\nconfigs: [a]\n", "unknown experiment kind"),
    ("kind: music\nout: o\nconfigs: [a]\n", "missing field"),
    ("name: x\nkind: music\nout: o\nconfigs: [a]\nseeds: []\n", "seeds"),
    ("name: x\nkind: music\nout: o\nconfigs: [a]\nseeds: [-1]\n", "seeds"),
    ("name: x\nkind: music\nout: o\n", "needs run configs"),
    ("name: x\nkind: music\nout: o\nconfigs: [a]\nevaluate: [[--iwae]]\n", "evaluate entry"),
    ("name: x\nkind: music\nout: o\nconfigs: [a]\nprofiles: {}\n", "at least one profile"),
    ("name: x\nkind: music\nout: o\nconfigs: [a]\nbaselines: [lstm]\n", "unknown baseline"),
    ("name: x\nkind: speech\nout: o\nconfigs: [a]\nbaselines: [gru]\n", "rows of the music table"),
    ("[1, 2]\n", "mapping"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_bad_experiment_files_name_the_problem(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        ex.load_experiment(_write(tmp_path / "e.yaml", text))


def test_missing_files_profiles_and_configs_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no experiment file"):
        ex.load_experiment(tmp_path / "nope.yaml")
    exp = ex.load_experiment(_write(tmp_path / "e.yaml", f"name: x\nkind: music\nout: {tmp_path}/o\n"
                                                         f"configs: [{tmp_path}/missing-*.yaml]\n"))
    with pytest.raises(ValueError, match="no profile 'fast'"):
        ex.plan_runs(exp, "fast")
    with pytest.raises(FileNotFoundError, match="no config matches"):
        ex.plan_runs(exp, "paper")
    _write(tmp_path / "missing-a.yaml", "model: arssm\n")
    with pytest.raises(ValueError, match=r"--only: no config named \['b'\]"):
        ex.plan_runs(exp, "paper", only=["b"])
    assert [p.key for p in ex.plan_runs(exp, "paper", only=["missing-a"], seeds=[4, 5])] == \
        ["missing-a/seed4", "missing-a/seed5"]


def test_plans_are_seed_major_and_flags_reach_the_config(tmp_path):
    for name in ("a", "b"):
        _write(tmp_path / f"{name}.yaml", "model: vrnn\nguide: partial\nmodel_options: {transition_net: gated}\n")
    exp = ex.load_experiment(_write(tmp_path / "e.yaml", f"""
name: x
kind: music
out: {tmp_path}/out
configs: ["{tmp_path}/[ab].yaml"]
seeds: [0, 1]
profiles:
  quick: {{epochs: 3, progress: true, jit: false, model_options: {{h_dim_out: 7}}}}
"""))
    plans = ex.plan_runs(exp, "quick")
    assert [p.key for p in plans] == ["a/seed0", "b/seed0", "a/seed1", "b/seed1"]  # every config before seed 1
    cfg = _train_config(plans[3].train_args)
    assert (cfg.epochs, cfg.jit, cfg.seed, cfg.model) == (3, False, 1, "vrnn")
    assert cfg.model_options == {"transition_net": "gated", "h_dim_out": 7}
    assert "--resume" not in plans[0].train_command()
    (plans[0].run_dir / "checkpoints").mkdir(parents=True)
    (plans[0].run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert plans[0].train_command()[-1] == "--resume"  # an interrupted run is continued, not restarted


def test_per_config_overrides_reach_only_their_config(tmp_path):
    _write(tmp_path / "ls4.yaml", "model: ls4\nguide: ls4\nmodel_options: {N: 64, depth: 4}\n")
    _write(tmp_path / "vrnn.yaml", "model: vrnn\nguide: full\n")
    text = f"""
name: x
kind: generation
out: {tmp_path}/out
configs: [{tmp_path}/ls4.yaml, {tmp_path}/vrnn.yaml]
profiles:
  cpu: {{epochs: 2, h_dim: 8, model_options: {{obs_scale: 0.5}}, per_config: {{ls4: {{model_options: {{N: 8}}}}}}}}
"""
    exp = ex.load_experiment(_write(tmp_path / "e.yaml", text))
    ls4, vrnn = (_train_config(p.train_args) for p in ex.plan_runs(exp, "cpu"))
    assert ls4.model_options == {"N": 8, "depth": 4, "obs_scale": 0.5} and (ls4.epochs, ls4.h_dim) == (2, 8)
    assert vrnn.model_options == {"obs_scale": 0.5} and (vrnn.epochs, vrnn.h_dim) == (2, 8)
    assert exp.profile("cpu") == {"epochs": 2, "h_dim": 8, "model_options": {"obs_scale": 0.5}}
    exp = ex.load_experiment(_write(tmp_path / "e.yaml", text.replace("{ls4: ", "{lsx: ")))
    with pytest.raises(ValueError, match=r"per_config entries \['lsx'\] that name no run config"):
        ex.plan_runs(exp, "cpu")


def test_mean_std_hand_computed():
    ms = ex.mean_std([1.0, 2.0, 3.0, 4.0])
    assert ms["mean"] == 2.5 and ms["std"] == pytest.approx(math.sqrt(5 / 3)) and ms["n"] == 4
    assert ex.mean_std([7.0]) == {"mean": 7.0, "std": 0.0, "n": 1}
    assert ex.mean_std([1.0, float("nan"), None, 3.0])["mean"] == 2.0
    assert ex.mean_std([])["n"] == 0


def _record(model, guide, seed, nelbo, nll, iaf=0):
    return {"config": f"{model}-{guide}" + ("-iaf3" if iaf else ""), "seed": seed, "model": model, "guide": guide,
            "iaf": iaf, "data": "bach_chorales", "epochs_run": 10 + seed, "train_seconds": 5.0,
            "eval_test": {"nelbo_per_step": nelbo, "nll_per_step": nll}}


def test_music_table_from_records():
    recs = [_record("arssm", "full", 0, 8.0, 7.0), _record("arssm", "full", 1, 9.0, 8.0),
            _record("arssm", "partial", 0, 9.5, 8.5), _record("srnn", "full", 0, 7.25, 6.5, iaf=3)]
    table = ex.render_table("music", recs)
    lines = table.splitlines()
    arssm = next(line for line in lines if line.startswith("| ArSSM |"))
    # PA: one seed, no spread; FA: mean ± sample std of 8 and 9; the paper's JSB ELBOs beside
    assert arssm.startswith("| ArSSM | 9.50 | 8.50 | 8.50 ± 0.71 | 7.50 ± 0.71 | 7.46 / 7.17 |")
    assert "| SRNN + 3 IAF | – | – | 7.25 | 6.50 | – |" in table
    assert lines.index(arssm) < lines.index(next(line for line in lines if "SRNN + 3 IAF" in line))


def test_music_table_baseline_rows_and_sample_quality_table():
    recs = [_record("arssm", "full", s, 7.5 + s / 10, 7.3) for s in (0, 1)]
    for s, rec in enumerate(recs):
        rec["samples_test"] = {"held_share": 0.30 + s / 100, "notes_per_frame": 3.0}
        rec["real_test"] = {"held_share": 0.353, "notes_per_frame": 3.75}
        rec["val_kl_per_step"] = 1.5
    base = [{"baseline": "independent_keys", "seed": 0, "test_nll_per_step": 11.1487},
            {"baseline": "gru", "seed": 0, "width": 128, "epochs_run": 40, "test_nll_per_step": 8.5},
            {"baseline": "gru", "seed": 1, "width": 128, "epochs_run": 50, "test_nll_per_step": 8.7}]
    table = ex.render_table("music", recs, base)
    assert "| independent keys (exact NLL) | – | 11.15 | – | 11.15 | – | 1 | – |" in table
    assert "| GRU language model, width 128 (exact NLL) | – | 8.60 ± 0.14 | – | 8.60 ± 0.14 | – | 2 | 45 |" in table
    assert "held-note share PA / FA (data 0.353)" in table and "(data 3.75)" in table
    assert "| ArSSM | – / 0.305 ± 0.007 | – / 3.00 ± 0.00 | – / 1.50 ± 0.00 |" in table
    # without sample statistics there is no second table
    assert "held-note" not in ex.render_table("music", [_record("arssm", "full", 0, 8.0, 7.0)])


def test_baselines_are_trained_once_with_the_profiles_recipe_and_read_back(tmp_path, monkeypatch):
    import pyro_dssm.baselines as bl

    _write(tmp_path / "arssm-full.yaml", "model: arssm\nguide: full\ndata: bach\nh_dim: 12\nlr: 0.01\n")
    exp = ex.load_experiment(_write(tmp_path / "e.yaml", f"name: x\nkind: music\nout: {tmp_path}/o\n"
                                                         f"configs: [{tmp_path}/arssm-full.yaml]\nseeds: [0, 1]\n"
                                                         "baselines: [independent_keys, gru]\n"
                                                         "profiles: {paper: {}, quick: {epochs: 2, batch_size: 7}}\n"))
    calls = []

    def fake_fit(corpus, **kw):
        calls.append(kw)
        return {"width": kw["width"], "seed": kw["seed"], "epochs_run": kw["epochs"], "test_nll_per_step": 9.0}

    monkeypatch.setattr(bl, "fit_gru_language_model", fake_fit)
    assert ex.run_baselines(exp, "quick", train=False, log=lambda m: None) == []  # nothing computed yet
    recs = ex.run_baselines(exp, "quick", log=lambda m: None)
    assert [(r["baseline"], r["seed"]) for r in recs] == [("independent_keys", 0), ("gru", 0), ("gru", 1)]
    assert recs[0]["test_nll_per_step"] == pytest.approx(11.15, abs=0.005)
    # the GRU takes the run config's width and optimiser with the profile's overrides
    assert [(c["width"], c["lr"], c["batch_size"], c["epochs"], c["seed"]) for c in calls] == \
        [(12, 0.01, 7, 2, 0), (12, 0.01, 7, 2, 1)]
    again = ex.run_baselines(exp, "quick", log=lambda m: None)
    assert len(calls) == 2 and again == recs  # kept in OUT/PROFILE/baselines/, not recomputed
    assert sorted(p.name for p in (tmp_path / "o" / "quick" / "baselines").iterdir()) == \
        ["gru-seed0.json", "gru-seed1.json", "independent_keys-seed0.json"]


def test_speech_and_generation_tables_from_records():
    rec = {"config": "arssm-full", "seed": 0, "model": "arssm", "guide": "full", "iaf": 0, "data": "asterisk",
           "epochs_run": 8, "train_seconds": 1.0,
           "resynthesis_sample_test": {"si_sdr": 6.0, "pesq_wb": 1.5, "estoi": 0.75},
           "resynthesis_sample_train": {"si_sdr": 7.0, "pesq_wb": 1.6, "estoi": 0.8}}
    table = ex.render_table("speech", [rec])
    assert "| ArSSM | train | – / 7.00 | – / 1.60 | – / 0.800 | – |" in table
    # one run with its intervals over the utterances: shown beside the mean
    table_ci = ex.render_table("speech", [{**rec, "resynthesis_sample_test_ci": {"si_sdr": [5.5, 6.5]}}])
    assert "| ArSSM | test | – / 6.00 [5.50, 6.50] | – / 1.50 |" in table_ci
    assert "| ArSSM | test | – / 6.00 | – / 1.50 | – / 0.750 | 5.42 / 5.132, 1.69 / 1.675, 0.785 / 0.795 |" in table
    gens = [{"config": c, "seed": s, "model": m, "guide": m, "iaf": 0, "data": "flame", "epochs_run": 3,
             "train_seconds": 1.0, "generation": {"marginal": v, "classification": 0.1, "prediction": 0.2,
                                                   "wasserstein": v / 10, **extra}}
            for c, m, s, v, extra in (("flame", "ls4", 0, 0.01, {}), ("flame", "ls4", 1, 0.03, {}),
                                      ("vrnn-flame", "vrnn", 0, 0.5, {"crossing_p": 0.01}))]
    table = ex.render_table("generation", gens)
    assert "| flame | LS4 | 0.0200 ± 0.0141 | 0.0020 ± 0.0014 | 0.1000 ± 0.0000 | 0.2000 ± 0.0000 | – | 2 | 3 |" in table
    assert "| flame | VRNN | 0.5000 | 0.0500 | 0.1000 | 0.2000 | 0.010 | 1 | 3 |" in table


def _reproduce(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)


@pytest.mark.slow  # 40-90 s; CI's default run stays under 15 minutes
def test_reproduce_trains_evaluates_tabulates_and_skips_finished_work(tmp_path):
    _write(tmp_path / "arssm-full.yaml", yaml.safe_dump(dict(model="arssm", guide="full", data="bach", z_dim=2,
                                                             h_dim=8, hidden_dim=8, guide_rnn_dim=8)))
    exp = _write(tmp_path / "tiny.yaml", f"""
name: tiny
kind: music
configs: [{tmp_path}/arssm-full.yaml]
seeds: [0, 1]
evaluate:
  - {{args: [--particles, "2", --iwae, "5", --batch-size, "3"], output: eval_test.json}}
profiles:
  paper: {{}}
  quick: {{epochs: 1, max_sequences: 6, batch_size: 3, eval_particles: 2}}
out: {tmp_path}/out
""")
    r = _reproduce(exp, "--profile", "quick", "--jobs", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "out" / "quick"
    res = json.loads((out / "results.json").read_text())
    assert res["profile"] == "quick" and res["overrides"]["epochs"] == 1 and res["machine"]["cores"] >= 1
    assert sorted(rr["seed"] for rr in res["runs"]) == [0, 1]
    evals = [json.loads((out / "arssm-full" / f"seed{s}" / "eval_test.json").read_text()) for s in (0, 1)]
    for rr in res["runs"]:
        assert rr["epochs_run"] == 1 and rr["eval_test"]["nll_per_step"] == evals[rr["seed"]]["nll_per_step"]
    assert evals[0]["nelbo_per_step"] != evals[1]["nelbo_per_step"]  # the seeds differ
    m = ex.mean_std([e["nelbo_per_step"] for e in evals])
    assert f"| ArSSM | – | – | {m['mean']:.2f} ± {m['std']:.2f} |" in (out / "table.md").read_text()
    assert "[train] arssm-full/seed0" in r.stdout
    # again: nothing is trained; a deleted evaluation is redone, alone
    stamp = (out / "arssm-full" / "seed0" / "metrics.json").stat().st_mtime_ns
    (out / "arssm-full" / "seed1" / "eval_test.json").unlink()
    r = _reproduce(exp, "--profile", "quick")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[train]" not in r.stdout and "[eval ] arssm-full/seed1" in r.stdout and "seed0: --particles" not in r.stdout
    assert (out / "arssm-full" / "seed0" / "metrics.json").stat().st_mtime_ns == stamp
    assert (out / "arssm-full" / "seed1" / "eval_test.json").is_file()
    # errors are named; a failing run is reported and the exit status says so
    r = _reproduce(exp, "--profile", "nope")
    assert r.returncode == 2 and "no profile 'nope'" in r.stderr
    _write(tmp_path / "arssm-full.yaml", "model: arssm\nguide: full\ndata: no-such-corpus\n")
    r = _reproduce(exp, "--profile", "quick", "--seeds", "7", "--table-only")
    assert r.returncode == 0 and "[train]" not in r.stdout  # --table-only trains nothing
    r = _reproduce(exp, "--profile", "quick", "--seeds", "7")
    assert r.returncode == 1 and "arssm-full/seed7: training failed" in r.stderr
    assert "no-such-corpus" in (out / "logs" / "arssm-full-seed7.log").read_text()


# -- the correctness experiment ---------------------------------------------------------------------

def test_oracle_bounds_lie_below_the_exact_likelihood_and_tighten():
    from pyro_dssm.oracle import oracle_experiment, oracle_table

    recs = oracle_experiment(seeds=[0], guides=["full"], num_sequences=16, length=8, fit_steps=150,
                             particles=(1, 10, 100), repeats=2, rnn_dim=16, hidden_dim=16, log=lambda *_: None)
    raw, fitted = recs
    assert not raw["fitted"] and fitted["fitted"] and fitted["fit_steps"] == 150
    for r in recs:
        for g in r["gaps"].values():  # bounds: at or below log p(x), up to Monte-Carlo error
            assert g["elbo_gap"] > -0.02 and g["iwae_gap"] > -0.02
        assert r["gaps"]["1"]["elbo_gap"] == pytest.approx(r["gaps"]["1"]["iwae_gap"], rel=0.5)
    iw = [raw["gaps"][k]["iwae_gap"] for k in ("1", "10", "100")]
    assert iw[0] > iw[1] > iw[2]  # the untrained guide: IWAE tightens with K far above the noise
    assert fitted["gaps"]["1"]["elbo_gap"] < 0.2 < raw["gaps"]["1"]["elbo_gap"]
    assert fitted["gaps"]["100"]["iwae_gap"] <= fitted["gaps"]["1"]["elbo_gap"]
    table = oracle_table(recs)
    assert "| full, fitted (150 steps) | 100 |" in table and "| full, untrained | 1 |" in table


def test_oracle_model_is_the_documented_linear_gaussian_ssm():
    from pyro_dssm.oracle import linear_gaussian_dssm

    m = linear_gaussian_dssm()
    assert torch.allclose(m.transition.scale_value, torch.tensor([0.5, 0.3]))
    assert torch.allclose(m.emitter.body.scale_value, torch.tensor([0.4, 0.3, 0.5]))
    assert not any(p.requires_grad for p in m.parameters())
    big = linear_gaussian_dssm(z_dim=3, x_dim=5, seed=1)
    assert big.emitter.body.weight.weight.shape == (5, 3)
    assert torch.linalg.matrix_norm(big.transition.weight.weight, ord=2) == pytest.approx(0.9, rel=1e-4)


def test_reproduce_runs_an_oracle_experiment(tmp_path):
    exp = _write(tmp_path / "o.yaml", f"""
name: o
kind: oracle
seeds: [3]
oracle: {{guides: [partial], num_sequences: 4, length: 3, fit_steps: 2, particles: [1, 4], repeats: 1,
         rnn_dim: 4, hidden_dim: 4}}
profiles: {{paper: {{}}, cpu: {{fit_steps: 1}}}}
out: {tmp_path}/out
""")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import reproduce
    finally:
        sys.path.pop(0)
    pyro.set_rng_seed(0)
    assert reproduce.main([str(exp), "--profile", "cpu"]) == 0
    res = json.loads((tmp_path / "out" / "cpu" / "results.json").read_text())
    assert [(r["seed"], r["guide"], r["fit_steps"]) for r in res["runs"]] == [(3, "partial", 0), (3, "partial", 1)]
    assert "| partial, fitted (1 steps) | 4 |" in (tmp_path / "out" / "cpu" / "table.md").read_text()


# -- the real multivariate series -------------------------------------------------------------------

def test_macrodata_windows():
    pytest.importorskip("statsmodels")
    from pyro_dssm.data.macro import MACRO_LEVELS, MACRO_RATES, load_macrodata, macro_series

    x = macro_series()
    assert x.shape == (202, len(MACRO_LEVELS) + len(MACRO_RATES)) == (202, 12) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-4)
    from statsmodels.datasets import macrodata

    gdp = macrodata.load_pandas().data["realgdp"].to_numpy()
    growth = 100 * np.diff(np.log(gdp))
    np.testing.assert_allclose(x[:, 0], (growth - growth.mean()) / growth.std(), rtol=1e-4, atol=1e-5)
    c = load_macrodata(window=24, stride=1, seed=0)
    assert sum(len(v) for v in c.splits.values()) == 202 - 24 + 1 and c.x_dim == 12
    for split in ("train", "test"):
        for name, seq in zip(c.ids[split], c.splits[split]):
            s = int(name[1:])
            np.testing.assert_array_equal(seq, x[s:s + 24])
    assert len(load_macrodata(window=10, stride=5).splits["train"]) < len(c.splits["train"])
    for bad in (dict(window=1), dict(stride=0), dict(window=500)):
        with pytest.raises(ValueError, match="window"):
            load_macrodata(**bad)


def test_macrodata_without_statsmodels_says_what_to_install(monkeypatch):
    from pyro_dssm.data.macro import macro_series

    monkeypatch.setitem(sys.modules, "statsmodels.datasets", None)
    with pytest.raises(ImportError, match="pip install statsmodels"):
        macro_series()


def test_collect_reads_what_the_evaluations_write(tmp_path):
    """The layouts of metrics.json, eval_SPLIT.json, resynthesis-*/summary.json and generation/generation.json."""
    _write(tmp_path / "c.yaml", "model: vrnn\nguide: full\n")
    exp = ex.load_experiment(_write(tmp_path / "e.yaml", f"name: x\nkind: speech\nout: {tmp_path}/o\n"
                                                         f"configs: [{tmp_path}/c.yaml]\nseeds: [0, 1]\n"))
    done, unfinished = ex.plan_runs(exp, "paper")
    run = done.run_dir
    (run / "generation").mkdir(parents=True)
    (run / "resynthesis-sample-train").mkdir()
    (run / "resynthesis-sample").mkdir()
    (run / "config.yaml").write_text("model: vrnn\nguide: full\niaf: 0\ndata: asterisk\n")
    (run / "metrics.json").write_text(json.dumps({"data": "asterisk", "epochs_run": 8, "train_seconds": 60.0,
                                                  "test_nelbo_per_step": 3.0}))
    (run / "eval_test.json").write_text(json.dumps({"nelbo_per_step": 3.1, "nll_per_step": 2.9, "seconds": 6.0}))
    for d, v in (("resynthesis-sample", 5.0), ("resynthesis-sample-train", 6.0)):
        (run / d / "summary.json").write_text(json.dumps({"metrics": {"si_sdr": {"mean": v, "median": 0,
                                                                                 "ci_low": v - 1, "ci_high": v + 1},
                                                                      "estoi": {"mean": v / 10}}}))
    (run / "generation" / "generation.json").write_text(json.dumps(
        {"split": "test", "scores": {"marginal": 0.1, "classification": 0.2, "prediction": 0.3}}))
    (run / "samples_test.json").write_text(json.dumps({"samples": {"held_share": 0.3, "notes_per_frame": 3.1},
                                                       "real": {"held_share": 0.35, "notes_per_frame": 3.7}}))
    (run / "logs").mkdir()
    (run / "logs" / "metrics.csv").write_text("epoch,step,train/loss,val/nelbo_per_step,val/kl_per_step\n"
                                              "0,5,9.0,8.0,0.5\n1,10,8.0,7.5,1.25\n2,15,7.0,7.7,2.0\n")
    (rec,) = ex.collect([done, unfinished])  # the unfinished run is left out
    assert rec["samples_test"]["held_share"] == 0.3 and rec["real_test"]["notes_per_frame"] == 3.7
    assert rec["val_kl_per_step"] == 1.25  # at the best validation epoch
    assert (rec["seed"], rec["model"], rec["data"], rec["epochs_run"], rec["train_seconds"]) == \
        (0, "vrnn", "asterisk", 8, 60.0)
    assert rec["eval_test"]["nll_per_step"] == 2.9 and rec["eval_test"]["seconds"] == 6.0
    assert rec["resynthesis_sample_test"] == {"si_sdr": 5.0, "estoi": 0.5}
    assert rec["resynthesis_sample_test_ci"] == {"si_sdr": [4.0, 6.0]}
    assert rec["resynthesis_sample_train"] == {"si_sdr": 6.0, "estoi": 0.6}
    assert rec["generation"] == {"marginal": 0.1, "classification": 0.2, "prediction": 0.3}
    assert "| c | 1 | 8 | 1.0 | 0.1 |" in ex.render_times([rec])


def test_compare_judges_a_claim_by_its_gap_against_seed_noise():
    c = ex.compare([7.50, 7.52, 7.48], [7.60, 7.62, 7.58])  # gap 0.10, se = sqrt(2 * 0.02^2 / 3)
    assert c["verdict"] == "confirmed" and c["diff"] == pytest.approx(0.10)
    assert c["se"] == pytest.approx(math.sqrt(2 * 0.02 ** 2 / 3))
    assert ex.compare([7.60, 7.62, 7.58], [7.50, 7.52, 7.48])["verdict"] == "contradicted"
    assert ex.compare([7.50, 7.60], [7.52, 7.58])["verdict"] == "within noise"
    assert ex.compare([7.5], [7.6])["verdict"] == "one seed"
    one = ex.compare([7.50, 7.52, 7.48], [7.7])  # one seed borrows the other side's spread
    assert one["se"] == pytest.approx(math.sqrt(0.02 ** 2 / 3 + 0.02 ** 2)) and one["verdict"] == "confirmed"
    assert ex.compare([], [7.0])["verdict"] == "not run"


def test_compare_is_welchs_t_test_at_95_percent():
    from scipy.stats import t, ttest_ind

    # equal spreads, three seeds a side: Welch's degrees of freedom are 4, the threshold t_4 = 2.78 standard errors
    a, b = [7.50, 7.52, 7.48], [7.54, 7.56, 7.52]  # gap 0.04 = 2.45 standard errors
    c = ex.compare(a, b)
    assert c["df"] == pytest.approx(4.0) and c["t"] == pytest.approx(t.ppf(0.975, 4))
    assert c["verdict"] == "within noise"  # two standard errors would have confirmed it
    assert ex.compare(a, [v + 0.02 for v in b])["verdict"] == "confirmed"  # 3.67 standard errors
    # the same verdict as scipy's Welch test, on unequal spreads and sizes
    for worse in ([7.53, 7.60, 7.49, 7.58], [7.56, 7.57], [7.51, 7.70, 7.45, 7.66, 7.62]):
        ours, ref = ex.compare(a, worse), ttest_ind(worse, a, equal_var=False)
        assert (ours["verdict"] == "confirmed") == (ref.statistic > 0 and ref.pvalue < 0.05)
        assert ours["diff"] / ours["se"] == pytest.approx(ref.statistic)
    # a side of one seed borrows the other side's spread, and its n - 1 degrees of freedom: 3 seeds
    # against 1 need 4.3 standard errors (3.46 is not enough), 2 against 1 need 12.7
    borrowed = ex.compare(a, [7.58])
    assert borrowed["df"] == 2 and borrowed["diff"] / borrowed["se"] == pytest.approx(3.464, abs=1e-3)
    assert borrowed["verdict"] == "within noise"
    assert ex.compare([7.50, 7.52], [7.60])["df"] == 1


def test_compare_paired_judges_by_the_items_both_score():
    from pyro_dssm.tables import compare_paired

    worse = {f"u{i}": 5.0 + i for i in range(5)}
    better = {k: v - 0.5 + (0.1 if i % 2 else -0.1) for i, (k, v) in enumerate(worse.items())}  # lower is better
    c = compare_paired(better, worse)
    d = [worse[k] - better[k] for k in worse]  # 0.6, 0.4, 0.6, 0.4, 0.6
    assert c["diff"] == pytest.approx(np.mean(d)) and c["se"] == pytest.approx(np.std(d, ddof=1) / math.sqrt(5))
    assert c["verdict"] == "confirmed" and c["n"] == (5, 5) and c["basis"] == "items"
    assert compare_paired(worse, better)["verdict"] == "contradicted"
    # the pairing is what removes the items' spread: unpaired, the same scores are within noise
    assert ex.compare(list(better.values()), list(worse.values()))["verdict"] == "within noise"
    noisy = {k: v + (1.0 if i % 2 else -1.0) for i, (k, v) in enumerate(worse.items())}
    assert compare_paired(noisy, worse)["verdict"] == "within noise"
    # unscored (nan) and unshared items are left out
    partial = compare_paired({**better, "u0": float("nan"), "x": 0.0}, worse)
    assert partial["n"] == (4, 4)
    assert compare_paired({}, worse)["verdict"] == "not run"


def _speech_run(root, model, guide, seed, scores):
    """A finished speech run directory whose test resynthesis scored ``scores`` (SI-SDR per utterance)."""
    from pyro_dssm.training.runs import RunDir

    run = root / f"{model}-{guide}" / f"seed{seed}"
    res = RunDir(run).resynthesis_dir("sample", "test")
    res.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": model, "guide": guide, "iaf": 0, "data": "asterisk"}))
    (run / "metrics.json").write_text(json.dumps({"epochs_run": 5, "train_seconds": 1.0}))
    rows = ["id,seconds,frames,si_sdr,pesq_wb,estoi"] + [f"u{i},1.0,60,{v},{1.0 + v / 100},{0.5 + v / 100}"
                                                         for i, v in enumerate(scores)]
    (res / "utterances.csv").write_text("\n".join(rows) + "\n")
    summary = {"utterances": len(scores), "metrics": {k: {"mean": float(np.mean(vals)), "median": 0.0} for k, vals in (
        ("si_sdr", scores), ("pesq_wb", [1.0 + v / 100 for v in scores]), ("estoi", [0.5 + v / 100 for v in scores]))}}
    (res / "summary.json").write_text(json.dumps(summary))
    return {**RunDir(run).record(), "config": f"{model}-{guide}", "seed": seed}


def test_speech_claims_pair_the_test_utterances_of_single_runs_and_use_seeds_when_there_are_several(tmp_path):
    from pyro_dssm.tables import speech_claims

    base = [4.0, 6.0, 3.0, 8.0, 5.0, 7.0]
    recs = [_speech_run(tmp_path, "arssm", "full", 0, [v + 0.3 for v in base]),   # ahead on every utterance
            _speech_run(tmp_path, "srnn", "full", 0, base),
            _speech_run(tmp_path, "fssm", "full", 0, [v + (2 if i % 2 else -2) for i, v in enumerate(base)])]
    claims = {c["claim"]: c for c in speech_claims(recs)}
    c = claims["ArSSM ahead of SRNN on SI-SDR (full alignment)"]
    assert c["verdict"] == "confirmed" and c["diff"] == pytest.approx(0.3) and c["basis"] == "items"
    assert claims["ArSSM ahead of FSSM on SI-SDR (full alignment)"]["verdict"] == "within noise"
    assert claims["SRNN ahead of FSSM on ESTOI (full alignment)"]["verdict"] == "within noise"
    assert not any("VRNN" in k or "partial" in k for k in claims)  # only the pairs that were run
    # a model run with both guides: full alignment against partial, paired the same way
    pa = _speech_run(tmp_path, "arssm", "partial", 0, [v - 0.5 for v in base])
    fa_pa = {c["claim"]: c for c in speech_claims(recs + [pa])}["ArSSM: full alignment ahead of partial on SI-SDR"]
    assert fa_pa["verdict"] == "confirmed" and fa_pa["diff"] == pytest.approx(0.8) and fa_pa["n"] == (6, 6)
    table = ex.render_table("speech", recs)
    assert "| ArSSM ahead of SRNN on SI-SDR (full alignment) | +0.300 ± 0.000 | 6 utterances, paired | confirmed |" \
        in table
    # several seeds on both sides: judged over the seeds' means, not the utterances
    more = [_speech_run(tmp_path, "arssm", "full", s, [v + 0.3 + s for v in base]) for s in (1, 2)]
    more += [_speech_run(tmp_path, "srnn", "full", s, [v + s for v in base]) for s in (1, 2)]
    seeded = {c["claim"]: c for c in speech_claims(recs + more)}["ArSSM ahead of SRNN on SI-SDR (full alignment)"]
    assert seeded["basis"] == "seeds" and seeded["n"] == (3, 3) and seeded["diff"] == pytest.approx(0.3)
    # several seeds on one side only: over seeds too, the one-seed side borrowing the other's spread
    # (as the music claims do), not over the utterances of whichever run came first
    mixed = {c["claim"]: c for c in speech_claims(recs + more[:2])}["ArSSM ahead of SRNN on SI-SDR (full alignment)"]
    assert mixed["basis"] == "seeds" and mixed["n"] == (3, 1)
    assert mixed["diff"] == pytest.approx(1.3) and mixed["se"] == pytest.approx(np.sqrt(1 / 3 + 1))


def test_music_claims_cover_alignment_iaf_autoregression_and_the_gru():
    recs = [_record("arssm", "full", s, 7.50 + s / 100, 7.40) for s in range(3)]
    recs += [_record("arssm", "partial", s, 7.60 + s / 100, 7.50) for s in range(3)]
    recs += [_record("arssm", "full", s, 7.505 + s / 100, 7.41, iaf=3) for s in range(3)]
    recs += [_record("fssm", "full", s, 9.0 + s / 100, 8.9) for s in range(3)]
    gru = [{"baseline": "gru", "seed": s, "test_nll_per_step": 8.5 + s / 100} for s in range(3)]
    claims = {c["claim"]: c for c in ex.music_claims(recs, gru)}
    assert claims["ArSSM: full alignment ≤ partial alignment"]["verdict"] == "confirmed"
    assert claims["ArSSM full: 3 IAF ≤ no IAF"]["verdict"] == "within noise"
    assert claims["ArSSM ≤ FSSM (full alignment)"]["verdict"] == "confirmed"
    assert claims["ArSSM (full, IWAE NLL) ≤ GRU language model (exact NLL)"]["diff"] == pytest.approx(8.51 - 7.40)
    assert claims["FSSM: full alignment ≤ partial alignment"]["verdict"] == "not run"
    table = ex.render_table("music", recs, gru)
    assert "| ArSSM: full alignment ≤ partial alignment | +0.100 ± 0.008 | 3 vs 3 | confirmed |" in table


def _music_run(root, model, guide, nelbos, lengths):
    """A finished one-seed music run whose test sequences scored ``nelbos`` (per step) at ``lengths``."""
    from pyro_dssm.training.runs import RunDir

    rd = RunDir(root / f"{model}-{guide}" / "seed0")
    rd.path.mkdir(parents=True)
    (rd.path / "config.yaml").write_text(yaml.safe_dump({"model": model, "guide": guide, "iaf": 0, "data": "bach"}))
    (rd.path / "metrics.json").write_text(json.dumps({"epochs_run": 5, "train_seconds": 1.0}))
    rows = ["index,id,length,elbo,nelbo_per_step"] + [f"{i},s{i},{n},{-v * n},{v}"
                                                       for i, (v, n) in enumerate(zip(nelbos, lengths))]
    rd.eval_file("test", "csv").write_text("\n".join(rows) + "\n")
    total = sum(v * n for v, n in zip(nelbos, lengths)) / sum(lengths)
    rd.eval_file("test").write_text(json.dumps({"nelbo_per_step": total, "nll_per_step": total - 0.1}))
    return {**RunDir(rd.path).record(), "config": f"{model}-{guide}", "seed": 0}


def test_music_claims_of_one_run_each_pair_the_test_sequences_weighted_by_length(tmp_path):
    lengths = [10, 30, 20, 40]
    pa = [8.0, 7.0, 9.0, 7.5]
    fa = [7.9, 6.8, 9.05, 7.3]       # ahead on three sequences, behind on the short-ish third
    recs = [_music_run(tmp_path, "fssm", "partial", pa, lengths), _music_run(tmp_path, "fssm", "full", fa, lengths)]
    c = {c["claim"]: c for c in ex.music_claims(recs)}["FSSM: full alignment ≤ partial alignment"]
    d = np.array(pa) - np.array(fa)
    w = np.array(lengths, dtype=float)
    gap = (w * d).sum() / w.sum()    # the gap of the two corpus totals per step, as the table reports them
    assert gap == pytest.approx(recs[0]["eval_test"]["nelbo_per_step"] - recs[1]["eval_test"]["nelbo_per_step"])
    se = math.sqrt(4 / 3 * ((w * (d - gap)) ** 2).sum()) / w.sum()
    assert c["basis"] == "items" and c["n"] == (4, 4)
    assert c["diff"] == pytest.approx(gap) and c["se"] == pytest.approx(se)
    from scipy.stats import t

    assert c["verdict"] == ("confirmed" if gap > t.ppf(0.975, 3) * se else "within noise")
    assert "| FSSM: full alignment ≤ partial alignment |" in ex.render_table("music", recs)
    assert "| 4 sequences, paired |" in ex.render_table("music", recs)
    # equal weights: the unweighted paired test; a second seed on both sides: judged over seeds instead
    from pyro_dssm.tables import compare_paired

    eq = compare_paired(dict(enumerate(fa)), dict(enumerate(pa)), weights=dict.fromkeys(range(4), 3.0))
    assert eq["diff"] == pytest.approx(d.mean()) and eq["se"] == pytest.approx(d.std(ddof=1) / 2)
    seeded = recs + [{**r, "seed": 1, "run_dir": None} for r in recs]
    assert {c["claim"]: c for c in ex.music_claims(seeded)}["FSSM: full alignment ≤ partial alignment"]["n"] == (2, 2)


def test_run_dir_knows_where_every_output_goes_and_reads_it_back(tmp_path):
    from pyro_dssm.training.runs import RunDir

    rd = RunDir(tmp_path / "run")
    assert not rd.is_run and not rd.finished and rd.metrics() is None and rd.config() is None
    assert rd.eval_file("valid", "csv").name == "eval_valid.csv" and rd.samples_file().name == "samples_test.json"
    assert rd.resynthesis_dir("mean", "train").name == "resynthesis-mean-train"
    assert rd.resynthesis_dir().name == "resynthesis-sample" and rd.checkpoint("last").name == "last.ckpt"
    rd.path.mkdir()
    (rd.path / "config.yaml").write_text("model: srnn\nguide: full\ndata: bach\n")
    rd.eval_file().write_text(json.dumps({"nelbo_per_step": 7.5}))
    rd.forecast_file("interpolation").write_text("{torn")  # a write cut short by a kill reads as absent
    assert rd.is_run and rd.config()["model"] == "srnn" and rd.evaluation()["nelbo_per_step"] == 7.5
    assert rd.forecast("interpolation") is None and not rd.finished
    assert ex.run_record(rd.path) is None  # not finished: no record
    (rd.path / "metrics.json").write_text(json.dumps({"epochs_run": 3, "test_nelbo_per_step": 7.6}))
    rec = ex.run_record(rd.path)
    assert rd.finished and rec["model"] == "srnn" and rec["eval_test"]["nelbo_per_step"] == 7.5


def test_best_of_grid_picks_each_models_best_validation_config_over_the_seeds_all_its_configs_finished(tmp_path):
    grid = {"a-ls4-s": ("ls4", [1.0]), "a-ls4-l": ("ls4", [0.5, 2.0]), "a-vrnn-s": ("vrnn", [0.9]),
            "a-vrnn-l": ("vrnn", [0.8]), "b-ls4-s": ("ls4", [3.0])}
    for name in grid:
        _write(tmp_path / f"{name}.yaml", "model: vrnn\nguide: full\n")
    exp = ex.load_experiment(_write(tmp_path / "e.yaml", f"name: g\nkind: generation\nout: {tmp_path}/o\n"
                                                         f"configs: ['{tmp_path}/[ab]-*.yaml']\nseeds: [0, 1]\n"))
    plans = {p.key: p for p in ex.plan_runs(exp, "paper")}

    def finish(name, seed, val):
        run = plans[f"{name}/seed{seed}"].run_dir
        run.mkdir(parents=True, exist_ok=True)
        model, data = grid[name][0], name.split("-")[0]
        (run / "config.yaml").write_text(f"model: {model}\nguide: full\ndata: {data}\n")
        (run / "metrics.json").write_text(json.dumps({"data": data, "best_val_nelbo_per_step": val}))

    for name, (_, vals) in grid.items():
        if name != "b-ls4-s":
            for seed, val in enumerate(vals):
                finish(name, seed, val)
    with pytest.raises(ValueError, match=r"grid is not finished.*b-ls4-s"):
        ex.best_of_grid(exp, "paper")
    finish("b-ls4-s", 0, 3.0)
    # compared on the seeds every config of (data, model) finished: seed 0, where a-ls4-l (0.5) beats
    # a-ls4-s (1.0); its worse second seed (the second stage's) does not hand the pick to a config run once
    pick = {("a", "ls4"): "a-ls4-l", ("a", "vrnn"): "a-vrnn-l", ("b", "ls4"): "b-ls4-s"}
    assert ex.best_of_grid(exp, "paper") == pick
    # once every config has seed 1 too, the mean over both decides: a-ls4-l 1.25 against a-ls4-s 1.05
    finish("a-ls4-s", 1, 1.1)
    assert ex.best_of_grid(exp, "paper") == {**pick, ("a", "ls4"): "a-ls4-s"}
    # no seed that all configs of a group finished: named
    import shutil

    shutil.rmtree(plans["a-vrnn-s/seed0"].run_dir)
    finish("a-vrnn-s", 1, 0.7)
    with pytest.raises(ValueError, match=r"no seed is finished by every config of a vrnn"):
        ex.best_of_grid(exp, "paper")
