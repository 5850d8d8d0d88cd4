"""The training recipe's parts: free bits, the logged KL and reconstruction terms, and the recipe benchmark."""

import importlib.util
import math
import re

import numpy as np
import pyro
import pytest
import torch

import pyro_dssm
from pyro_dssm.infer import LeanTraceMeanField_ELBO, log_weight_parts, log_weights

from conftest import ROOT, TINY, ragged_batch


def _pair(name="arssm"):
    model = pyro_dssm.create_model(name, x_dim=4, emission="bernoulli", **TINY)
    return model, pyro_dssm.create_guide("full", model, rnn_dim=6, hidden_dim=6)


def _loss(model, guide, x, mask, free_bits):
    pyro.set_rng_seed(3)
    return LeanTraceMeanField_ELBO(free_bits=free_bits).differentiable_loss(model, guide, x, mask)


def test_free_bits_floor_each_steps_batch_mean_kl():
    x, mask = ragged_batch(binary=True)
    model, guide = _pair()
    elbo = _loss(model, guide, x, mask, 0.0)
    pyro.set_rng_seed(3)
    assert torch.equal(elbo, LeanTraceMeanField_ELBO().differentiable_loss(model, guide, x, mask))
    # a floor far above every KL: the KL part is exactly lambda per valid step and sequence
    huge = _loss(model, guide, x, mask, 1000.0)
    pyro.set_rng_seed(3)
    obs, latent = log_weight_parts(model, guide, x, mask)
    assert huge.item() == pytest.approx(-float(obs.sum()) + 1000.0 * int(mask.sum()), rel=1e-6)
    # ... and the floored KL gives the guide no gradient from the KL
    params = [p for p in guide.parameters() if p.requires_grad]
    g_huge = torch.autograd.grad(huge, params, allow_unused=True)
    g_recon = torch.autograd.grad(-obs.sum(), params, allow_unused=True)
    for a, b in zip(g_huge, g_recon):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b)
    # a small floor lies between the ELBO and the huge floor
    small = _loss(model, guide, x, mask, 0.05)
    assert float(elbo) <= float(small) < float(huge)
    with pytest.raises(ValueError, match="free_bits must be >= 0"):
        LeanTraceMeanField_ELBO(free_bits=-1.0)


def test_log_weight_parts_split_the_log_weight():
    x, mask = ragged_batch(binary=True)
    model, guide = _pair("vrnn")
    pyro.set_rng_seed(0)
    obs, latent = log_weight_parts(model, guide, x, mask, num_particles=3)
    pyro.set_rng_seed(0)
    torch.testing.assert_close(obs + latent, log_weights(model, guide, x, mask, num_particles=3))
    assert obs.shape == latent.shape == (3, x.shape[0]) and (obs < 0).all()


def test_free_bits_config_and_logged_terms(tmp_path, short_rolls):
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training import train, training_history

    with pytest.raises(ValueError, match="free_bits must be >= 0"):
        TrainConfig(free_bits=-0.1)
    with pytest.raises(ValueError, match="--jit"):
        TrainConfig(free_bits=0.1, jit=True)
    cfg = TrainConfig(data=str(short_rolls), model="srnn", guide="full", epochs=2, max_sequences=6, z_dim=2,
                      h_dim=8, hidden_dim=8, guide_rnn_dim=8, batch_size=3, eval_particles=1, progress=False,
                      free_bits=0.2, out=str(tmp_path / "fb"))
    train(cfg, log=lambda *a: None)
    h = training_history(tmp_path / "fb")
    assert h["epoch"] == [0, 1]
    for val, rec, kl in zip(h["val"], h["val_recon"], h["val_kl"]):
        assert val == pytest.approx(rec + kl, rel=1e-5) and rec > 0 and np.isfinite(kl)


def _recipe():
    spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_independent_keys_plateau_hand_computed():
    train = [np.array([[1, 0], [0, 0]])]  # key 0 in 1 of 2 frames, key 1 never
    test = [np.array([[1, 1]])]
    p0, p1 = 1.5 / 3, 0.5 / 3  # smoothed like the output initialisation
    assert _recipe().independent_keys_nll(train, test) == pytest.approx(-math.log(p0) - math.log(p1))


def test_recipe_benchmark_runs_and_tabulates(capsys):
    _recipe().main(["--models", "dmm", "--seeds", "0", "1", "--epochs", "2", "--every", "1", "--set",
                    "max_sequences=6", "--set", "z_dim=2", "--set", "h_dim=8", "--set", "hidden_dim=8", "--set",
                    "guide_rnn_dim=8", "--set", "eval_particles=1"])
    out = capsys.readouterr().out
    plateau = float(re.search(r"plateau \(independent keys\) ([\d.]+)", out).group(1))
    assert 11.0 < plateau < 11.3  # the shipped chorales' 11.15
    rows = re.findall(r"^\| (dmm|gru8) \| (\d) \| ([\d.]+) \| ([\d.]+) \| \d+ \|$", out, re.M)
    assert sorted((r[0], r[1]) for r in rows) == [("dmm", "0"), ("dmm", "1"), ("gru8", "0"), ("gru8", "1")]
    summary = re.findall(r"^\| (dmm|gru8) \| ([\d.]+) ± ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (\d) of 2 \| (.+) \|$",
                         out, re.M)
    assert [s[0] for s in summary] == ["dmm", "gru8"]
    assert re.fullmatch(r"-?[\d.]+ ± [\d.]+", summary[0][6]) and summary[1][6] == "-"  # the GRU has no KL
    for name, mean, _, best, worst, stuck, _ in summary:
        finals = [float(r[3]) for r in rows if r[0] == name]
        assert float(mean) == pytest.approx(np.mean(finals), abs=0.006)
        assert int(stuck) == sum(f > plateau - 0.1 for f in finals)


def test_evaluation_leaves_the_callers_random_stream_alone():
    import random

    from pyro_dssm.training import evaluate_split

    model, guide = _pair("dmm")
    seqs = [np.asarray(ragged_batch(binary=True)[0][0, :5])] * 3
    pyro.set_rng_seed(7)
    expected = (torch.rand(3), np.random.rand(), random.random())
    pyro.set_rng_seed(7)
    a = evaluate_split(model, guide, seqs, elbo_particles=2, seed=0)
    got = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]
    assert evaluate_split(model, guide, seqs, elbo_particles=2, seed=0)["nelbo_per_step"] == a["nelbo_per_step"]
    assert model.training and guide.training
