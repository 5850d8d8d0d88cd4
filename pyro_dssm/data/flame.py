r"""FLAME, the stiff flame-growth system of LS4's Sec. 5.1: ``dx/dt = x^2 - x^p``, ``p = 3..10``.

A trajectory starts at a small ``x(0) = delta``, stays near it until ``t ~ 1/delta`` and
then jumps to the fixed point 1. The paper draws 1000 trajectories per ``p`` on
``t = 0, 1, ..., 1000``. With one fixed ``delta`` every trajectory would be the same,
so each trajectory draws its own ``delta``, log-uniformly in ``[2e-3, 2e-2]``
(our choice): the jumps then fall between ``t ~ 50`` and ``500``, inside the window.

No ODE solver is needed, stiff or not. ``x`` increases monotonically, so time is a
function of the state, ``T(x) = int_{x_0}^{x} ds / (s^2 - s^p)``, which we integrate
once per ``p`` on a fine grid (geometric near 0 and near 1) and invert by
interpolation: ``x_delta(t) = T^{-1}(T(delta) + t)``. Every trajectory of one ``p``
is a time-shifted copy of the same curve.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from .corpus import Corpus

__all__ = ["FLAME_POWERS", "flame_time_of_state", "flame_trajectories", "load_flame"]

FLAME_POWERS = tuple(range(3, 11))


def flame_time_of_state(p: int, x_min: float = 1e-4, gap: float = 1e-12, points: int = 200_001
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """``(x, T(x))``: the state grid from ``x_min`` to ``1 - gap`` and the time to reach each state from ``x_min``.

    The integrand ``1 / (s^2 - s^p)`` is integrated by the trapezoid rule on a grid
    geometric in ``s`` below 1/2 and geometric in ``1 - s`` above.
    """
    if p < 3:
        raise ValueError(f"FLAME needs p >= 3 (dx/dt = x^2 - x^p), got {p}")
    half = points // 2
    low = np.geomspace(x_min, 0.5, half, endpoint=False)
    high = 1.0 - np.geomspace(0.5, gap, points - half)
    s = np.concatenate([low, high])
    f = 1.0 / (s * s * (1.0 - s ** (p - 2)))
    t = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(s))])
    return s, t


def flame_trajectories(p: int, deltas: Sequence[float], num_steps: int = 1001, stride: float = 1.0) -> np.ndarray:
    """Trajectories ``(len(deltas), num_steps)`` of ``dx/dt = x^2 - x^p`` from ``x(0) = delta`` at
    ``t = 0, stride, 2 stride, ...``."""
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim != 1 or (deltas <= 0).any() or (deltas >= 1).any():
        raise ValueError("initial values delta must lie in (0, 1)")
    if not stride > 0:
        raise ValueError(f"the time between steps must be > 0, got {stride!r}")
    s, T = flame_time_of_state(p, x_min=min(1e-4, float(deltas.min()) / 2))
    t0 = np.interp(deltas, s, T)  # time at which the reference curve passes delta
    times = t0[:, None] + stride * np.arange(num_steps)[None, :]
    return np.interp(times, T, s, right=s[-1])


def load_flame(powers: Sequence[int] = FLAME_POWERS, per_power: int = 1000, num_steps: int = 1001,
               delta_range: Tuple[float, float] = (2e-3, 2e-2), seed: int = 0, test_fraction: float = 0.2,
               valid_fraction: float = 0.1, stride: float = 1.0) -> Corpus:
    """The FLAME corpus: ``per_power`` trajectories ``(num_steps, 1)`` for each ``p`` in ``powers``.

    ``delta`` is drawn log-uniformly in ``delta_range`` per trajectory (seeded). Steps are
    ``stride`` time units apart (paper: 1; ``num_steps=201, stride=5`` covers the same
    ``t`` in ``[0, 1000]`` five times more cheaply). Splits are random: ``test_fraction``
    (paper: 20%) for test, ``valid_fraction`` for validation. ``corpus.ids`` name each
    sequence ``p{p}-{i}``.
    """
    lo, hi = delta_range
    if not 0 < lo <= hi < 1:
        raise ValueError(f"delta_range must satisfy 0 < lo <= hi < 1, got {delta_range}")
    if per_power < 1 or num_steps < 2:
        raise ValueError(f"FLAME needs per_power >= 1 and num_steps >= 2, got {per_power} and {num_steps}")
    rng = np.random.default_rng(seed)
    seqs, names = [], []
    for p in powers:
        deltas = np.exp(rng.uniform(np.log(lo), np.log(hi), per_power))
        seqs += list(flame_trajectories(p, deltas, num_steps, stride)[..., None].astype(np.float32))
        names += [f"p{p}-{i}" for i in range(per_power)]
    return Corpus.from_sequences(
        seqs, name="flame", source=f"FLAME dx/dt = x^2 - x^p, p in {list(powers)}, delta log-uniform in {delta_range}, "
               f"{num_steps} steps of {stride:g} time units",
        valid_fraction=valid_fraction, test_fraction=test_fraction, seed=seed, names=names)

