"""Time-series generation and imputation metrics of LS4 (App. D.1, Sec. 5.3): marginal score, MSE, CRPS.

Arrays are ``(N, L, D)`` (sequences, steps, features); the functions return floats.

* :func:`marginal_score`: the mean absolute difference between the empirical
  densities of real and generated values, per time step and feature, on a
  histogram whose bins span the real values at that step (Ni et al. 2020,
  "Conditional Sig-Wasserstein GANs for time series generation"; LS4 Table 1's
  *Marginal*, lower is better).
* :func:`wasserstein_marginal`: the same comparison without bins: the 1-D Wasserstein-1
  distance between the real and generated values at each time step and feature, averaged.
  It is in the data's units and stays finite where the real values are (near) point masses,
  where the marginal score divides by a vanishing bin width (FLAME's flat stretches give
  31533 for any model); it also sees *how far* generated values miss, not only that they do.
* :func:`first_crossing_times` and :func:`crossing_time_test`: when each trajectory first
  reaches a level (FLAME's sharp jump from 0 to 1), and a two-sample Kolmogorov-Smirnov test
  of the real against the generated crossing times: separates a sharp transition at the right
  times from a ramp.
* :func:`masked_mse`: mean squared error over the entries a boolean mask selects
  (the held-out points of interpolation or extrapolation).
* :func:`crps_from_samples`: the continuous ranked probability score of a
  predictive distribution given by samples, ``E|X - y| - E|X - X'| / 2`` per
  point (exact for the empirical distribution of the samples), averaged over
  the masked entries; for one sample it is the absolute error.
* :func:`crps_gaussian`: the CRPS of a Gaussian ``N(mean, sigma^2)`` in closed form,
  ``sigma (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))`` with ``z = (y - mean) / sigma``
  (Gneiting & Raftery 2007); LS4's Table 2 scores its fixed-scale Gaussian this way.
* :func:`crps_gaussian_mixture`: the same for an equal-weight mixture of Gaussians of
  one scale (a predictive averaged over latent paths), exact.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["marginal_score", "wasserstein_marginal", "first_crossing_times", "crossing_time_test", "masked_mse",
           "crps_from_samples", "crps_gaussian", "crps_gaussian_mixture"]


def _array(x, name: str, ndim: int = 3) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def marginal_score(real, generated, n_bins: int = 50) -> float:
    """Mean over steps and features of ``mean_bins |p_real - p_gen|``, densities on ``n_bins`` bins.

    Args:
        real: ``(N, L, D)``; generated: ``(M, L, D)`` (same ``L`` and ``D``).
    """
    r, g = _same_steps(real, generated)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    total = 0.0
    L, D = r.shape[1:]
    for t in range(L):
        for d in range(D):
            lo, hi = r[:, t, d].min(), r[:, t, d].max()
            if hi == lo:  # a point mass: one bin of unit width around it
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, n_bins + 1)
            width = edges[1] - edges[0]
            # values outside the real range fall out of every bin (np.histogram's convention)
            p_r = np.histogram(r[:, t, d], edges)[0] / (len(r) * width)
            p_g = np.histogram(g[:, t, d], edges)[0] / (len(g) * width)
            total += float(np.abs(p_r - p_g).mean())
    return total / (L * D)


def _same_steps(real, generated):
    r, g = _array(real, "real"), _array(generated, "generated")
    if r.shape[1:] != g.shape[1:]:
        raise ValueError(f"real {r.shape} and generated {g.shape} differ in (L, D)")
    return r, g


def wasserstein_marginal(real, generated) -> float:
    """Mean over steps and features of the Wasserstein-1 distance between the empirical distributions
    of the real and the generated values there (:func:`scipy.stats.wasserstein_distance`); lower is
    better, 0 for identical samples, in the data's units.

    Args:
        real: ``(N, L, D)``; generated: ``(M, L, D)`` (same ``L`` and ``D``).
    """
    from scipy.stats import wasserstein_distance

    r, g = _same_steps(real, generated)
    L, D = r.shape[1:]
    return float(np.mean([wasserstein_distance(r[:, t, d], g[:, t, d]) for t in range(L) for d in range(D)]))


def first_crossing_times(x, level: float = 0.5, dim: int = 0) -> np.ndarray:
    """``(N,)``: for each sequence of ``x`` (``(N, L, D)``), the first step at which feature ``dim``
    is at least ``level``; ``L`` for a sequence that never gets there."""
    a = _array(x, "x")
    if not 0 <= dim < a.shape[2]:
        raise ValueError(f"dim {dim} is not a feature of x with {a.shape[2]} features")
    above = a[:, :, dim] >= level
    return np.where(above.any(axis=1), above.argmax(axis=1), a.shape[1])


def crossing_time_test(real, generated, level: float = 0.5, dim: int = 0) -> dict:
    """Do generated trajectories reach ``level`` when real ones do? A two-sample Kolmogorov-Smirnov test
    (:func:`scipy.stats.ks_2samp`) of :func:`first_crossing_times`.

    Returns:
        ``{"level", "real_median", "generated_median", "real_never", "generated_never"`` (shares that
        never cross) ``, "ks_statistic", "p_value"}``; a p-value below 0.05 rejects "same crossing times".
    """
    from scipy.stats import ks_2samp

    r, g = _same_steps(real, generated)
    tr, tg = first_crossing_times(r, level, dim), first_crossing_times(g, level, dim)
    test = ks_2samp(tr, tg)
    L = r.shape[1]
    return {"level": float(level), "real_median": float(np.median(tr)), "generated_median": float(np.median(tg)),
            "real_never": float(np.mean(tr == L)), "generated_never": float(np.mean(tg == L)),
            "ks_statistic": float(test.statistic), "p_value": float(test.pvalue)}


def _mask(mask, shape) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.dtype != bool:
        raise ValueError(f"mask must be boolean, got dtype {m.dtype}")
    m = np.broadcast_to(m, shape)
    if not m.any():
        raise ValueError("mask selects no entries")
    return m


def masked_mse(target, prediction, mask: Optional[np.ndarray] = None) -> float:
    """``mean((prediction - target)^2)`` over the entries where ``mask`` is True (all by default)."""
    y, p = _array(target, "target"), _array(prediction, "prediction")
    if y.shape != p.shape:
        raise ValueError(f"target {y.shape} and prediction {p.shape} differ in shape")
    m = _mask(mask, y.shape)
    return float(((p - y) ** 2)[m].mean())


def crps_from_samples(target, samples, mask: Optional[np.ndarray] = None) -> float:
    """Mean CRPS of sample-based predictions.

    Args:
        target: ``(N, L, D)`` observed values; samples: ``(S, N, L, D)`` draws of the prediction;
        mask: optional boolean ``(N, L, D)`` (or broadcastable) selecting the scored entries.
    """
    y = _array(target, "target")
    x = _array(samples, "samples", ndim=4)
    if x.shape[1:] != y.shape:
        raise ValueError(f"samples {x.shape} must be (S, *target.shape) with target {y.shape}")
    m = _mask(mask, y.shape)
    xs = np.sort(x[:, m], axis=0)  # (S, K)
    S = xs.shape[0]
    first = np.abs(xs - y[m]).mean(0)
    # E|X - X'| over the empirical distribution, from the sorted samples in O(S log S)
    weights = 2 * np.arange(1, S + 1) - S - 1
    spread = 2 * (weights[:, None] * xs).sum(0) / (S * S)
    return float((first - 0.5 * spread).mean())


def _abs_moment(m, v):
    """``E|Y|`` for ``Y ~ N(m, v)``: ``sqrt(v) (2 phi(m / sqrt v) + (m / sqrt v)(2 Phi(m / sqrt v) - 1))``."""
    import torch

    sd = np.sqrt(v)
    z = torch.from_numpy(np.asarray(m / sd, dtype=np.float64))
    pdf = torch.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    return (sd * (2 * pdf + z * (2 * torch.special.ndtr(z) - 1))).numpy()


def crps_gaussian_mixture(target, means, sigma: float, mask: Optional[np.ndarray] = None) -> float:
    """Mean CRPS of the equal-weight mixture ``(1/S) sum_s N(means[s], sigma^2)``, in closed form.

    ``CRPS = E|X - y| - E|X - X'| / 2`` with both expectations exact for Gaussian mixtures
    (``E|N(m, v)|`` is known), ``O(S^2)`` per entry. Args: ``target`` ``(N, L, D)``,
    ``means`` ``(S, N, L, D)``, optional boolean ``mask`` ``(N, L, D)``.
    """
    y, mu = _array(target, "target"), _array(means, "means", ndim=4)
    if mu.shape[1:] != y.shape:
        raise ValueError(f"means {mu.shape} must be (S, *target.shape) with target {y.shape}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    m = _mask(mask, y.shape)
    mu, y = mu[:, m], y[m]  # (S, K), (K,)
    first = _abs_moment(y - mu, sigma ** 2).mean(0)
    spread = _abs_moment(mu[:, None] - mu[None], 2 * sigma ** 2).mean((0, 1))
    return float((first - 0.5 * spread).mean())


def crps_gaussian(target, mean, sigma: float, mask: Optional[np.ndarray] = None) -> float:
    """Mean CRPS of the predictive ``N(mean, sigma^2)`` at ``target``, both ``(N, L, D)``, over ``mask``."""
    y, mu = _array(target, "target"), _array(mean, "mean")
    if y.shape != mu.shape:
        raise ValueError(f"target {y.shape} and mean {mu.shape} differ in shape")
    return crps_gaussian_mixture(y, mu[None], sigma, mask)
