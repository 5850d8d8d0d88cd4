"""Summaries of per-item scores: mean, median and a confidence interval of the mean; mean ± std over seeds."""

from __future__ import annotations

import math
from typing import Dict, Sequence

import numpy as np

__all__ = ["summarize", "mean_std"]


def summarize(values: Sequence[float], confidence: float = 0.95) -> Dict[str, float]:
    """``{n, mean, median, std, ci_low, ci_high}`` of finite scores.

    The interval is Student's t interval of the mean, ``mean -/+ t_{n-1} s / sqrt(n)``
    (``nan`` bounds for a single value).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"summarize needs a non-empty 1-D list of scores, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("summarize: scores contain NaN or inf")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n, mean = int(v.size), float(v.mean())
    std = float(v.std(ddof=1)) if n > 1 else float("nan")
    if n > 1:
        from scipy.stats import t

        half = float(t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    else:
        half = float("nan")
    return {"n": n, "mean": mean, "median": float(np.median(v)), "std": std,
            "ci_low": mean - half, "ci_high": mean + half, "confidence": confidence}


def mean_std(values: Sequence[float]) -> Dict[str, float]:
    """Mean and sample standard deviation (0 for one value) of the finite values; ``n`` how many (a table cell)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    m = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return {"mean": m, "std": sd, "n": len(vals)}
