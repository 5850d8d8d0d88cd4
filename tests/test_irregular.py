"""Irregular sampling (LS4 Sec. 5.3): NaN-marked data, LS4's missing-value likelihood, interpolation/extrapolation."""

import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch

import pyro_dssm.forecasting as forecasting
from pyro_dssm.data import Corpus
from pyro_dssm.data.irregular import (extrapolation_task, interpolation_task, load_sporadic_csv, load_ushcn,
                                      subsample)
from pyro_dssm.metrics import crps_from_samples, crps_gaussian, crps_gaussian_mixture
from pyro_dssm.models.ls4 import LS4Config, LS4Guide, LS4Likelihood, LS4Model
from pyro_dssm.validation import check_observations


def _corpus(n=12, T=30, D=3, seed=0, missing=False):
    rng = np.random.default_rng(seed)
    seqs = [rng.standard_normal((T, D)).astype(np.float32) for _ in range(n)]
    return Corpus.from_sequences(seqs, name="toy", missing=missing)


def test_subsample_drops_entries_at_the_given_rate():
    c = subsample(_corpus(n=40), 0.3, seed=1)
    assert c.missing and c.has_missing and c.name == "toy-observed0.3"
    seen = np.concatenate([~np.isnan(x) for x in c.splits["train"]])
    assert abs(seen.mean() - 0.3) < 0.03
    assert all((~np.isnan(x)).any() for s in ("train", "valid", "test") for x in c.splits[s])
    # observed entries keep their values
    orig = _corpus(n=40)
    for a, b in zip(orig.splits["train"], c.splits["train"]):
        np.testing.assert_array_equal(a[~np.isnan(b)], b[~np.isnan(b)])
    rows = subsample(_corpus(n=40), 0.5, seed=1, per_entry=False)
    for x in rows.splits["train"]:
        nan = np.isnan(x)
        assert (nan.all(1) | ~nan.any(1)).all()  # whole time points dropped
    tiny = subsample(_corpus(n=3, T=1, D=1), 1e-9, seed=0)  # every sequence keeps one entry
    assert all((~np.isnan(x)).sum() == 1 for s in ("train", "valid", "test") for x in tiny.splits[s])
    with pytest.raises(ValueError, match="observed_fraction"):
        subsample(_corpus(), 0.0)


def test_corpus_and_batch_checks_for_missing_values():
    x = np.zeros((5, 2), np.float32)
    x[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf.*missing values"):
        Corpus({"train": [x], "valid": [x], "test": [x]})
    c = Corpus({"train": [x], "valid": [x], "test": [x]}, missing=True)
    assert c.has_missing
    with pytest.raises(ValueError, match="contains inf"):
        Corpus({"train": [x + np.inf], "valid": [x], "test": [x]}, missing=True)
    with pytest.raises(ValueError, match="no observed entry"):
        Corpus({"train": [x * np.nan], "valid": [x], "test": [x]}, missing=True)
    b = torch.zeros(2, 4, 1)
    b[0, :, 0] = float("nan")
    with pytest.raises(ValueError, match="sequence 0 of the batch has no observed entry"):
        check_observations(b, None, 1, "gaussian", allow_missing=True)
    b[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="only NaN may mark"):
        check_observations(b, None, 1, "gaussian", allow_missing=True)
    with pytest.raises(ValueError, match="NaN or inf"):
        check_observations(b, None, 1, "gaussian")


def test_interpolation_and_extrapolation_splits():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 2)).astype(np.float32)
    x[3, 1] = x[7] = np.nan
    ctx, target = interpolation_task(x, 0.5, np.random.default_rng(1))
    observed_times = np.flatnonzero((~np.isnan(x)).any(1))
    hidden_times = np.flatnonzero(target.any(1))
    visible_times = np.flatnonzero((~np.isnan(ctx)).any(1))
    assert len(visible_times) == round(0.5 * len(observed_times)) and not set(hidden_times) & set(visible_times)
    assert set(hidden_times) | set(visible_times) == set(observed_times)
    assert not target[np.isnan(x)].any()  # targets are observed entries
    np.testing.assert_array_equal(ctx[~np.isnan(ctx)], x[~np.isnan(ctx)])
    assert np.isnan(ctx[target]).all()
    ctx, target = extrapolation_task(x)
    assert ctx.shape == (10, 2) and not target[:10].any()
    np.testing.assert_array_equal(target[10:], ~np.isnan(x[10:]))
    with pytest.raises(ValueError, match="at least 2 observed time points"):
        interpolation_task(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="second half"):
        extrapolation_task(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="context_fraction"):
        interpolation_task(x, 1.0)


def test_sporadic_csv_reader(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("ID,Time,Value_1,Value_2,Mask_1,Mask_2\n"
                 "a,0.0,1.0,2.0,1,1\na,2.0,3.0,0.0,1,0\nb,1.0,5.0,6.0,1,1\nb,1.5,7.0,8.0,0,1\n"
                 "c,0.0,1.0,1.0,1,1\nd,0.0,2.0,2.0,1,1\n")
    c = load_sporadic_csv(f, time_step=0.5)
    seqs = {n: x for s in ("train", "valid", "test") for n, x in zip(c.ids[s], c.splits[s])}
    a = seqs["a"]
    assert a.shape == (5, 2) and a[0].tolist() == [1.0, 2.0] and a[4, 0] == 3.0 and np.isnan(a[4, 1])
    assert np.isnan(a[1:4]).all()
    b = seqs["b"]  # times relative to the series' first observation
    assert b.shape == (2, 2) and b[0].tolist() == [5.0, 6.0] and np.isnan(b[1, 0]) and b[1, 1] == 8.0
    assert c.missing and c.has_missing
    (tmp_path / "bad.csv").write_text("ID,Time,Value_1\na,0,1\n")
    with pytest.raises(ValueError, match="Mask_1"):
        load_sporadic_csv(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="gru_ode_bayes"):
        load_ushcn(tmp_path)


def _ls4(missing=True, seed=0):
    torch.manual_seed(seed)
    m = LS4Model(LS4Config(x_dim=2, z_dim=2, H=4, N=4, depth=1, missing=missing))
    return m, LS4Guide(m)


def test_missing_entries_drop_out_of_the_likelihood_exactly():
    """Hiding an entry of the last step removes exactly its Gaussian term (nothing reads x_T)."""
    m, g = _ls4()
    x = torch.randn(2, 9, 2)
    x[0, 3, 1] = float("nan")  # an earlier gap, read by later steps as (0, unobserved)
    z = torch.randn(2, 9, 2)
    with torch.no_grad():
        full = LS4Likelihood(m, z).log_prob(x)
        locs = LS4Likelihood(m, z).locs(x)
        hidden = x.clone()
        hidden[1, -1, 0] = float("nan")
        lp = LS4Likelihood(m, z).log_prob(hidden)
    term = dist.Normal(locs[1, -1, 0], 0.1).log_prob(x[1, -1, 0])
    torch.testing.assert_close(full[1] - lp[1], term)
    torch.testing.assert_close(full[0], lp[0])
    assert torch.isfinite(full).all()
    # the guide reads the observed flag: hiding x_n changes q(z_n | x_<=n) from n on, not before
    with torch.no_grad():
        a, _ = g.posterior(x)
        h = x.clone()
        h[0, 5, 0] = float("nan")
        b, _ = g.posterior(h)
    torch.testing.assert_close(a[0, :5], b[0, :5])
    assert not torch.allclose(a[0, 5], b[0, 5])
    # gradients stay finite through NaN data
    from pyro_dssm.infer import elbo_per_sequence

    elbo, _ = elbo_per_sequence(m, g, x, None)
    elbo.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    with pytest.raises(ValueError, match="NaN or inf"):
        _ls4(missing=False)[0](x)


def test_crps_gaussian_against_hand_values_and_samples():
    sigma = 0.3
    y = np.zeros((1, 1, 1))
    assert math.isclose(crps_gaussian(y, y, sigma), sigma * (2 / math.sqrt(2 * math.pi) - 1 / math.sqrt(math.pi)),
                        rel_tol=1e-12)
    rng = np.random.default_rng(0)
    y, mu = rng.standard_normal((4, 5, 2)), rng.standard_normal((4, 5, 2))
    samples = mu + sigma * rng.standard_normal((4000, 4, 5, 2))
    assert abs(crps_gaussian(y, mu, sigma) - crps_from_samples(y, samples)) < 0.01
    # far from the mean the CRPS tends to |y - mu| - sigma / sqrt(pi)
    far = np.full((1, 1, 1), 50.0)
    assert math.isclose(crps_gaussian(far, 0 * far, sigma), 50 - sigma / math.sqrt(math.pi), rel_tol=1e-9)
    with pytest.raises(ValueError, match="sigma"):
        crps_gaussian(y, mu, 0.0)
    # a mixture over latent paths against many draws from it
    means = rng.standard_normal((3, 4, 5, 2))
    pick = rng.integers(3, size=(20000, 4, 5, 2))
    draws = means[pick, np.arange(4)[:, None, None], np.arange(5)[:, None], np.arange(2)]
    draws = draws + sigma * rng.standard_normal(draws.shape)
    assert abs(crps_gaussian_mixture(y, means, sigma) - crps_from_samples(y, draws)) < 0.005
    assert crps_gaussian_mixture(y, means, sigma) < crps_gaussian_mixture(y, means + 3.0, sigma)


def test_forecast_scores_pool_the_hidden_entries(monkeypatch):
    """With an oracle prediction MSE is 0 and the CRPS is the Gaussian's at zero error."""
    m, g = _ls4()
    seqs = subsample(_corpus(n=6, T=12, D=2), 0.7, seed=0).splits["train"]
    calls = []

    def oracle(model, guide, context, mask, num_samples):
        calls.append(context.shape)
        truth = torch.stack([torch.nn.functional.pad(torch.as_tensor(np.nan_to_num(s)),
                                                     (0, 0, 0, context.shape[1] - len(s))) for s in batch])
        return truth.expand(num_samples, *truth.shape)

    batch = seqs
    monkeypatch.setattr(forecasting, "interpolate", oracle)
    r = forecasting.evaluate_forecast(m, g, seqs, "interpolation", num_samples=3, batch_size=len(seqs))
    hidden = sum(int(interpolation_task(s, 0.5, rng)[1].sum()) for rng in [np.random.default_rng(0)] for s in seqs)
    assert r["targets"] == hidden and r["mse"] < 1e-12
    assert math.isclose(r["crps"], 0.1 * (2 / math.sqrt(2 * math.pi) - 1 / math.sqrt(math.pi)), rel_tol=1e-9)
    assert math.isclose(r["crps_mixture"], r["crps"], rel_tol=1e-9)  # 3 identical paths: one Gaussian
    # extrapolation through the model: predictions are the decoder means along generated paths
    e = forecasting.evaluate_forecast(m, g, seqs[:2], "extrapolation", num_samples=2)
    assert e["targets"] == sum(int((~np.isnan(s[6:])).sum()) for s in seqs[:2])
    assert np.isfinite([e["mse"], e["crps"], e["crps_mixture"]]).all()
    with pytest.raises(ValueError, match="task must be"):
        forecasting.evaluate_forecast(m, g, seqs, "nowcast")


def test_extrapolation_follows_the_generated_means(monkeypatch):
    """extrapolate's means are those each generated step was drawn from: with the noise off they are the path."""
    m, g = _ls4()
    prefix = torch.randn(1, 6, 2)
    prefix[0, 2, 1] = float("nan")
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)  # observation noise off in generate
    torch.manual_seed(3)
    means = forecasting.extrapolate(m, g, prefix, 5, num_samples=2)
    torch.manual_seed(3)
    x, _ = m.generate(5, prefix=prefix.repeat(2, 1, 1), guide=g)
    assert means.shape == (2, 1, 5, 2)
    torch.testing.assert_close(means[:, 0], x[:, 6:], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(means[0], means[1])  # two latent paths


def test_irregular_data_trains_ls4_through_the_engine_and_is_refused_elsewhere(tmp_path):
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training import load_run, train

    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 16, 2)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = np.nan
    x[:, 0, 0] = 0.5  # every sequence observed somewhere
    np.savez(tmp_path / "irr.npz", x=x)
    common = dict(data=str(tmp_path / "irr.npz"), z_dim=2, h_dim=4, batch_size=4, epochs=1, eval_particles=1,
                  progress=False)
    cfg = TrainConfig(model="ls4", guide="ls4", model_options={"N": 4, "depth": 1}, out=str(tmp_path / "ls4"),
                      **common)
    m = train(cfg, log=lambda *a: None)
    assert np.isfinite(m["test_nelbo_per_step"])
    _, corpus, model, guide = load_run(tmp_path / "ls4")
    assert model.config.missing and corpus.has_missing
    r = forecasting.evaluate_forecast(model, guide, corpus.splits["test"], "interpolation", num_samples=2)
    assert r["targets"] > 0 and np.isfinite(r["mse"])
    with pytest.raises(ValueError, match="NaN.*--model ls4"):
        train(TrainConfig(model="vrnn", guide="partial", out=str(tmp_path / "v"), **common), log=lambda *a: None)
    # regular data made irregular by --observed-fraction
    full = tmp_path / "full.npz"
    np.savez(full, x=np.nan_to_num(x))
    cfg = cfg.replace(data=str(full), observed_fraction=0.5, out=str(tmp_path / "half"), epochs=1)
    train(cfg, log=lambda *a: None)
    _, corpus, model, _ = load_run(tmp_path / "half")
    assert model.config.missing and corpus.has_missing and corpus.name == "full-observed0.5"


def test_physionet_reader(tmp_path):
    from pyro_dssm.data.irregular import PHYSIONET_VARIABLES, load_physionet

    folder = tmp_path / "physionet" / "set-a"
    folder.mkdir(parents=True)
    for i in range(5):
        (folder / f"13253{i}.txt").write_text(
            "Time,Parameter,Value\n00:00,RecordID,13253%d\n00:00,Age,%d\n00:00,Height,-1\n"
            "00:07,HR,%d\n00:09,HR,80\n01:30,Temp,36.%d\n47:59,GCS,15\n" % (i, 50 + i, 70 + i, i))
    c = load_physionet(tmp_path, quantization=0.1)
    assert len(PHYSIONET_VARIABLES) == 41 and c.x_dim == 41 and c.missing and c.name == "physionet"
    seqs = {n: x for s in ("train", "valid", "test") for n, x in zip(c.ids[s], c.splits[s])}
    x = seqs["132532"]
    age, height, hr, temp, gcs = (PHYSIONET_VARIABLES.index(v) for v in ("Age", "Height", "HR", "Temp", "GCS"))
    assert x.shape == (481, 41)
    # min-max over all patients: Age 50..54, HR bin means (70 + i + 80) / 2 in 75..77, Temp 36.0..36.4
    assert math.isclose(x[0, age], 0.5, rel_tol=1e-6)
    assert math.isclose(x[1, hr], 0.5, rel_tol=1e-6) and np.isnan(x[0, hr])  # 00:07 and 00:09 share bin 1
    assert math.isclose(x[15, temp], 0.5, rel_tol=1e-5)  # 1.5 h
    assert x[480, gcs] == 0.0  # 47:59 rounds to 48.0 h; constant variables map to 0
    assert np.isnan(x[:, height]).all()  # -1 means unknown
    assert int((~np.isnan(x)).sum()) == 4  # Age, HR (one bin), Temp, GCS; RecordID and Height dropped
    (folder / "bad.txt").write_text("Time,Parameter,Value\nxx,HR,3\n")
    with pytest.raises(ValueError, match="bad.txt, line 2"):
        load_physionet(tmp_path)
    with pytest.raises(FileNotFoundError, match="challenge-2012"):
        load_physionet(tmp_path / "none")
