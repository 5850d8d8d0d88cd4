"""Pretrained models: export a run, load it back, reproduce its card; the shipped ones reproduce theirs."""

import json

import pytest
import torch

import pyro_dssm
from pyro_dssm.pretrained import (export_pretrained, list_pretrained, load_pretrained, load_pretrained_run,
                                  pretrained_card, retrain_command)
from pyro_dssm.training.engine import evaluate_split

from conftest import TINY_RUN
from conftest import run_script as script


@pytest.fixture(scope="module")
def exported(tmp_path_factory, short_rolls):
    """A 2-epoch run on the user's .npz, exported as a pretrained model into a folder of its own."""
    base = tmp_path_factory.mktemp("pretrained")
    run = base / "run"
    r = script("train.py", "--data", short_rolls, "--epochs", "2", "--out", run, "--model", "srnn", "--guide", "full",
               *TINY_RUN, "--seed", "3")
    assert r.returncode == 0, r.stderr[-3000:]
    weights, card = export_pretrained(run, "tiny-srnn", dest=base / "zoo")
    return run, base / "zoo", weights, card


def _reproduce(cfg, corpus, model, guide, iwae):
    return evaluate_split(model, guide, corpus.splits["test"], batch_size=cfg.batch_size,
                          elbo_particles=cfg.eval_particles, iwae_particles=iwae, seed=cfg.seed)


def test_an_exported_run_loads_and_reproduces_its_card(exported):
    run, zoo, weights, card_path = exported
    assert list_pretrained(zoo) == ["tiny-srnn"]
    card = pretrained_card("tiny-srnn", zoo)
    assert card["model"] == "srnn" and card["guide"] == "full" and card["epochs"] == 2
    assert card["command"].startswith("python scripts/train.py --model srnn --guide full") and "--seed 3" in card["command"]
    assert card["data"]["split"]["test"] == len(load_pretrained_run("tiny-srnn", zoo)[1].splits["test"])
    cfg, corpus, model, guide = load_pretrained_run("tiny-srnn", zoo)
    got = _reproduce(cfg, corpus, model, guide, card["test"]["iwae_particles"])
    assert got["nelbo_per_step"] == pytest.approx(card["test"]["nelbo_per_step"], abs=1e-6)
    assert got["nll_per_step"] == pytest.approx(card["test"]["nll_per_step"], abs=1e-6)
    # the same weights as the run's best checkpoint
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, best["model." + k]), k
    # ready for more training in the user's own Pyro code: gradients reach every parameter
    m, g = load_pretrained("tiny-srnn", zoo)
    m.train(), g.train()
    x = torch.as_tensor(corpus.splits["train"][0]).unsqueeze(0)
    loss = pyro_dssm.infer.LeanTraceMeanField_ELBO().differentiable_loss(m, g, x)
    loss.backward()
    assert all(p.grad is not None for p in m.parameters())


def test_scripts_take_a_pretrained_name(exported, tmp_path, monkeypatch):
    _, zoo, _, _ = exported
    monkeypatch.setattr("pyro_dssm.pretrained.PRETRAINED_DIR", zoo)
    import importlib.util

    from conftest import ROOT

    for name in ("evaluate", "sample"):
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        argv = ["tiny-srnn", "--out", str(tmp_path / name)] + (["--iwae", "3"] if name == "evaluate" else
                                                                ["--steps", "3", "--prefix-steps", "2"])
        assert mod.main(argv) == 0
    res = json.loads((tmp_path / "evaluate" / "eval_test.json").read_text())
    assert res["model"] == "srnn" and res["nelbo_per_step"] > 0
    assert (tmp_path / "sample" / "samples" / "prior.npy").is_file()


def test_unknown_or_damaged_pretrained_models_are_named(exported, tmp_path):
    _, zoo, _, _ = exported
    with pytest.raises(ValueError, match=r"unknown pretrained model 'nope'; available: \['tiny-srnn'\]"):
        load_pretrained("nope", zoo)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="corrupt"):
        load_pretrained("bad", tmp_path)
    with pytest.raises(ValueError, match="plain file stem"):
        export_pretrained(tmp_path, "../x", dest=tmp_path)


def test_retrain_command_names_only_what_differs_from_the_defaults():
    from pyro_dssm.config import TrainConfig

    cfg = TrainConfig(model="vrnn", guide="partial", epochs=300, patience=20, init_output=False,
                      model_options={"transition_net": "mlp"})
    cmd = retrain_command(cfg)
    assert cmd == ("python scripts/train.py --model vrnn --guide partial --no-init-output "
                   "--model-option transition_net=mlp --epochs 300 --patience 20")


SPEECH = [n for n in list_pretrained() if pretrained_card(n)["data"]["kind"] == "speech"]
NOT_SPEECH = [n for n in list_pretrained() if n not in SPEECH]


@pytest.mark.parametrize("name", NOT_SPEECH)
def test_shipped_weights_reproduce_their_card(name):
    """The card's test negative ELBO within Monte-Carlo error (no IWAE here: it costs most of the time;
    the exact reproduction, IWAE included, is the test above and the slow one below)."""
    card = pretrained_card(name)
    cfg, corpus, model, guide = load_pretrained_run(name)
    got = _reproduce(cfg, corpus, model, guide, 0)
    assert got["nelbo_per_step"] == pytest.approx(card["test"]["nelbo_per_step"], abs=0.02)
    assert got["steps"] == card["test"]["steps"] and got["sequences"] == card["test"]["sequences"]
    if corpus.kind == "sequences" and cfg.emission == "bernoulli":
        untrained = 11.0  # independent keys score 11.15 per step on the chorales: every shipped model is well below
        assert got["nelbo_per_step"] < untrained


GENERATORS = [n for n in list_pretrained() if "generation" in pretrained_card(n)]


@pytest.mark.parametrize("name", GENERATORS)
def test_shipped_generators_reproduce_their_cards_samples(name):
    """A generator's card holds the scores of its seeded prior samples (evaluate --generation): the shipped
    weights draw the same samples, so the bin-free marginal distance and the crossing-time test agree."""
    import numpy as np

    from pyro_dssm.generation import prior_samples
    from pyro_dssm.metrics import crossing_time_test, wasserstein_marginal

    card = pretrained_card(name)
    _, corpus, model, _ = load_pretrained_run(name)
    for key, gen in card["generation"].items():
        real = np.stack(corpus.splits[gen["split"]]).astype(np.float32)
        fake = prior_samples(model, gen["length"], gen["generated"], seed=gen["seed"], mean=key == "mean")
        assert wasserstein_marginal(real, fake) == pytest.approx(gen["scores"]["wasserstein"], rel=1e-4)
        if gen.get("crossing"):
            got = crossing_time_test(real, fake, gen["crossing"]["level"])
            assert got["ks_statistic"] == pytest.approx(gen["crossing"]["ks_statistic"], abs=1e-9)
            assert got["generated_median"] == gen["crossing"]["generated_median"]


@pytest.mark.parametrize("name", SPEECH)
def test_shipped_speech_weights_reproduce_their_clip_scores(name):
    """A speech corpus is not installed with the package: the card's scores of the shipped clips of its test split
    are recomputed instead (ELBO and teacher-forced resynthesis with the card's seed)."""
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.pretrained import shipped_clip_scores

    card = pretrained_card(name)
    clips = card["shipped_clips"]
    model, guide = load_pretrained(name)
    got = shipped_clip_scores(model, guide, TrainConfig.from_dict(card["config"]), clips["clips"], seed=clips["seed"])
    assert got["frames"] == clips["frames"]
    assert got["nelbo_per_step"] == pytest.approx(clips["nelbo_per_step"], rel=1e-4)
    for clip, scores in clips["per_clip"].items():
        for key, tol in (("si_sdr", 0.05), ("pesq_wb", 0.02), ("estoi", 0.005)):
            assert got["per_clip"][clip][key] == pytest.approx(scores[key], abs=tol), (clip, key)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_pretrained())
def test_shipped_weights_reproduce_their_card_exactly(name):
    card = pretrained_card(name)
    try:
        cfg, corpus, model, guide = load_pretrained_run(name)
    except FileNotFoundError as e:  # a speech corpus the user builds (scripts/make_speech_corpus.py)
        pytest.skip(f"{name}'s corpus is not on this machine: {e}")
    got = _reproduce(cfg, corpus, model, guide, card["test"].get("iwae_particles", 0))
    assert got["nelbo_per_step"] == pytest.approx(card["test"]["nelbo_per_step"], abs=1e-6)
    assert got.get("nll_per_step") == pytest.approx(card["test"].get("nll_per_step"), abs=1e-6)


def test_half_precision_weights_are_half_the_size_and_reproduce_their_own_card(exported, tmp_path):
    run, _, full_weights, _ = exported
    weights, _ = export_pretrained(run, "tiny-half", dest=tmp_path, half=True)
    assert weights.stat().st_size < 0.75 * full_weights.stat().st_size
    blob = torch.load(weights, weights_only=True)
    assert {v.dtype for v in blob["model"].values() if v.is_floating_point()} == {torch.float16}
    card = pretrained_card("tiny-half", tmp_path)
    assert card["weights_dtype"] == "float16" and pretrained_card("tiny-srnn", full_weights.parent)[
        "weights_dtype"] == "float32"
    cfg, corpus, model, guide = load_pretrained_run("tiny-half", tmp_path)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # loaded into the float32 model
    for k, v in model.state_dict().items():
        assert torch.equal(v, blob["model"][k].float()), k
    got = _reproduce(cfg, corpus, model, guide, card["test"]["iwae_particles"])
    assert got["nelbo_per_step"] == pytest.approx(card["test"]["nelbo_per_step"], abs=1e-6)
    assert got["nll_per_step"] == pytest.approx(card["test"]["nll_per_step"], abs=1e-6)


def test_the_card_carries_the_prior_samples_statistics_when_the_run_has_them(exported, tmp_path):
    run, _, _, _ = exported
    stats = {"split": "test", "samples": {"held_share": 0.31, "notes_per_frame": 3.2},
             "real": {"held_share": 0.35, "notes_per_frame": 3.7}}
    (run / "samples_test.json").write_text(json.dumps(stats))
    try:
        _, card_path = export_pretrained(run, "tiny-with-samples", dest=tmp_path)
    finally:
        (run / "samples_test.json").unlink()
    card = json.loads(card_path.read_text())
    assert card["samples"] == {"prior": stats["samples"], "data": stats["real"], "split": "test"}
    assert "generation" not in card  # the run has no generation scores
