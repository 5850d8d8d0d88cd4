"""LS4's time-series metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from pyro_dssm.metrics import (crossing_time_test, crps_from_samples, first_crossing_times, marginal_score, masked_mse,
                               wasserstein_marginal)


def test_crps_known_cases():
    y = np.ones((1, 1, 1))
    assert crps_from_samples(y, np.full((1, 1, 1, 1), 3.0)) == pytest.approx(2.0)  # a point mass: |x - y|
    # samples {0, 2} at y = 1: E|X - y| = 1, E|X - X'| = 1, CRPS = 1/2
    assert crps_from_samples(y, np.array([0.0, 2.0]).reshape(2, 1, 1, 1)) == pytest.approx(0.5)
    # many samples of N(0, 1) at y = 0.7 approach the closed form
    rng = np.random.default_rng(0)
    z = 0.7
    phi, Phi = math.exp(-z * z / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(z / math.sqrt(2)))
    exact = z * (2 * Phi - 1) + 2 * phi - 1 / math.sqrt(math.pi)
    est = crps_from_samples(np.full((1, 1, 1), z), rng.normal(size=(20000, 1, 1, 1)))
    assert est == pytest.approx(exact, rel=0.02)


def test_crps_and_mse_masks_and_errors():
    y = np.zeros((2, 3, 1))
    pred = np.arange(6, dtype=float).reshape(2, 3, 1)
    mask = np.zeros((2, 3, 1), bool)
    mask[1, 2] = mask[0, 1] = True  # values 5 and 1
    assert masked_mse(y, pred, mask) == pytest.approx((25 + 1) / 2)
    assert masked_mse(y, pred) == pytest.approx(np.mean(np.arange(6) ** 2))
    assert crps_from_samples(y, pred[None], mask) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="selects no entries"):
        masked_mse(y, pred, np.zeros_like(mask))
    with pytest.raises(ValueError, match="boolean"):
        masked_mse(y, pred, mask.astype(int))
    with pytest.raises(ValueError, match="differ in shape"):
        masked_mse(y, pred[:, :2])
    with pytest.raises(ValueError, match="samples must have 4 dimensions"):
        crps_from_samples(y, pred)
    with pytest.raises(ValueError, match=r"\(S, \*target.shape\)"):
        crps_from_samples(y, pred[None, :, :2])
    with pytest.raises(ValueError, match="NaN or inf"):
        masked_mse(y, np.full_like(pred, np.nan))


def test_marginal_score_known_cases():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(500, 4, 2))
    assert marginal_score(real, real) == 0.0
    # generated values outside the real range: every bin of p_gen is 0, and mean_bins p_real = 1 / range
    grid = np.broadcast_to(np.linspace(0, 1, 101)[:, None, None], (101, 3, 1))
    assert marginal_score(grid, np.full((10, 3, 1), 5.0), n_bins=10) == pytest.approx(1.0)
    # closer distributions score lower
    near, far = rng.normal(0.1, 1, size=(500, 4, 2)), rng.normal(1.5, 1, size=(500, 4, 2))
    assert marginal_score(real, near) < marginal_score(real, far)
    with pytest.raises(ValueError, match="differ in"):
        marginal_score(real, real[:, :3])


def _sines(n, L=40, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    t = np.arange(L)
    freq = rng.uniform(0.15, 0.3, (n, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    return (np.sin(freq * t[None, :, None] + phase) + offset).astype(np.float32)


def test_wasserstein_marginal_known_cases():
    # one step, one feature: {0, 1} against {1, 2} moves each unit of mass by 1
    assert wasserstein_marginal([[[0.0]], [[1.0]]], [[[1.0]], [[2.0]]]) == pytest.approx(1.0)
    # {0, 0, 3} against {1}: |0-1| * 2/3 + |3-1| * 1/3 = 4/3; unequal sample sizes
    assert wasserstein_marginal([[[0.0]], [[0.0]], [[3.0]]], [[[1.0]]]) == pytest.approx(4 / 3)
    # averaged over steps and features: step 0 differs by 0.5, step 1 agrees, feature 2 differs by 2
    real = np.zeros((4, 2, 2))
    fake = real.copy()
    fake[:, 0, 0] += 0.5
    fake[:, :, 1] += 2.0
    assert wasserstein_marginal(real, fake) == pytest.approx((0.5 + 0 + 2 + 2) / 4)
    assert wasserstein_marginal(real, real) == 0.0
    # near point masses (FLAME's flat stretches): the binned score explodes with 1 / bin width, the
    # distance stays the size of the miss
    rng = np.random.default_rng(0)
    flat = 1e-6 * rng.random((50, 1, 1))
    assert marginal_score(flat, flat + 0.1) > 1e5
    assert wasserstein_marginal(flat, flat + 0.1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"differ in \(L, D\)"):
        wasserstein_marginal(real, real[:, :1])


def test_crossing_times_tell_a_jump_from_a_ramp():
    L = 40
    t = np.arange(L)
    jumps = np.stack([(t >= c).astype(float) for c in (10, 12, 14, 16, 18, 20, 22, 24)])[:, :, None]
    assert first_crossing_times(jumps).tolist() == [10, 12, 14, 16, 18, 20, 22, 24]
    never = np.zeros((2, L, 1))
    assert first_crossing_times(never).tolist() == [L, L]
    assert first_crossing_times(jumps, level=2.0).tolist() == [L] * 8
    same = crossing_time_test(jumps, jumps[::-1])
    assert same["ks_statistic"] == 0.0 and same["p_value"] == 1.0 and same["real_median"] == 17.0
    ramps = np.stack([np.clip(t / 100 + 0.01 * k, 0, 1) for k in range(8)])[:, :, None]  # never reach 0.5 by step 40
    apart = crossing_time_test(jumps, ramps)
    assert apart["generated_never"] == 1.0 and apart["ks_statistic"] == 1.0 and apart["p_value"] < 0.05
    with pytest.raises(ValueError, match="dim 1 is not a feature"):
        first_crossing_times(jumps, dim=1)


def test_classification_score_tells_fakes_from_real():
    from pyro_dssm.metrics import classification_score

    real = _sines(64, seed=0)
    same = classification_score(real, _sines(64, seed=1), epochs=60)
    fake = classification_score(real, _sines(64, seed=1, offset=3.0), epochs=60)
    assert fake < 0.1 < 0.5 < same  # obvious fakes: near 0; the same process: near log 2 = 0.69
    with pytest.raises(ValueError, match="differ in"):
        classification_score(real, real[:, :10])


def test_prediction_score_train_on_synthetic_test_on_real():
    from pyro_dssm.metrics import prediction_score

    real = _sines(64, seed=0)
    good = prediction_score(real, _sines(64, seed=1), epochs=30)
    noise = np.random.default_rng(2).normal(size=real.shape).astype(np.float32)
    bad = prediction_score(real, noise, epochs=30)
    assert good < 0.5 * bad
    with pytest.raises(ValueError, match="horizon"):
        prediction_score(real, real, horizon=40)
    with pytest.raises(ValueError, match="NaN"):
        prediction_score(real, np.full_like(real, np.nan))
