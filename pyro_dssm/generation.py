"""LS4's generation evaluation (Sec. 5.1-5.2, Table 1 and Fig. 1) for any trained model of real-valued data.

:func:`evaluate_generation` samples as many sequences as the test split holds, of
the test length, from the model's prior (``model.generate``, O(L) for LS4) and scores
them against the test split with the marginal, classification and prediction
scores (:mod:`pyro_dssm.metrics`); it writes ``generation.json``, the samples, and
``generation.png`` (Fig. 1: real and generated trajectories with their means, and
marginal histograms at four time steps equally spaced in log scale between 0.5%
and 10% of the sequence, where FLAME's jumps fall).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import pyro
import torch

from .plots import histogram_steps  # the figure's choice of steps, re-exported: plots never imports this module

__all__ = ["evaluate_generation", "prior_samples", "plot_generation", "histogram_steps", "music_sample_stats"]


def plot_generation(real: np.ndarray, fake: np.ndarray, path, dim: int = 0, shown: int = 20) -> None:
    """Save LS4's Fig. 1 for feature ``dim`` (:func:`pyro_dssm.plots.generation_figure`) as a PNG."""
    from .plots import generation_figure, save_figure

    save_figure(generation_figure(real, fake, dim=dim, shown=shown), path, dpi=90)


def prior_samples(model, length: int, num: int, *, seed: int = 0, mean: bool = False) -> np.ndarray:
    """``num`` sequences ``(num, length, x_dim)`` from ``model``'s prior, seeded (``pyro.set_rng_seed(seed)``),
    in eval mode and without gradients: what :func:`evaluate_generation` scores (``mean``: decoder means)."""
    pyro.set_rng_seed(seed)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            fake, _ = model.generate(length, batch_size=num, mean=mean)
    finally:
        model.train(was)
    return fake.cpu().numpy().astype(np.float32)


def evaluate_generation(model, corpus, out_dir, *, split: str = "test", num_samples: Optional[int] = None,
                        probe_epochs: int = 100, seed: int = 0, figure: bool = True, log=print,
                        crossing_level: Optional[float] = None, mean: bool = False) -> Dict[str, Any]:
    """Table 1's three scores of ``model``'s samples against ``corpus.splits[split]`` (equal lengths needed),
    the bin-free Wasserstein marginal beside them, and with ``crossing_level`` the two-sample test of
    when samples first reach that level (:func:`pyro_dssm.metrics.crossing_time_test`).

    ``mean``: score each step's decoder mean instead of the noisy sample (``model.generate(mean=True)``;
    the LS4 authors' code generates means)."""
    from .metrics import (classification_score, crossing_time_test, marginal_score, prediction_score,
                          wasserstein_marginal)
    from .utils import atomic_write_text

    seqs = corpus.splits[split]
    lengths = {len(s) for s in seqs}
    if len(lengths) != 1:
        raise ValueError(f"generation scores compare sequences of one length; the {split} split has lengths "
                         f"{sorted(lengths)[:5]}...")
    if model.config.emission != "gaussian":
        raise ValueError("generation scores are for real-valued data (Gaussian observations)")
    real = np.stack(seqs).astype(np.float32)
    n = num_samples or len(real)
    fake = prior_samples(model, real.shape[1], n, seed=seed, mean=mean)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "generated.npy", fake)
    horizon = min(10, real.shape[1] - 1)
    scores = {"marginal": marginal_score(real, fake),
              "classification": classification_score(real, fake, epochs=probe_epochs, seed=seed),
              "prediction": prediction_score(real, fake, horizon=horizon, epochs=probe_epochs, seed=seed),
              "wasserstein": wasserstein_marginal(real, fake)}
    report = {"split": split, "real": len(real), "generated": n, "length": real.shape[1], "horizon": horizon,
              "output": "decoder mean" if mean else "sample with observation noise",
              "probe_epochs": probe_epochs, "seed": seed, "scores": scores}
    if crossing_level is not None:
        report["crossing"] = crossing_time_test(real, fake, crossing_level)
    from .training.runs import RunDir

    atomic_write_text(out_dir / RunDir.GENERATION, json.dumps(report, indent=2))
    if figure:
        plot_generation(real, fake, out_dir / "generation.png")
    if log:
        log(f"generation ({n} samples of length {real.shape[1]}): marginal {scores['marginal']:.4f} (lower is better), "
            f"classification {scores['classification']:.4f} (higher), prediction {scores['prediction']:.4f} (lower), "
            f"Wasserstein marginal {scores['wasserstein']:.4f} (lower)")
    return report


def music_sample_stats(model, corpus, *, split: str = "test", num_samples: Optional[int] = None, seed: int = 0,
                       batch_size: int = 50) -> Dict[str, Any]:
    """Polyphony and held notes (:func:`pyro_dssm.metrics.piano_roll_stats`) of prior samples and of the data.

    As many sequences as ``corpus.splits[split]`` holds (or ``num_samples``, cycling through
    its lengths) are drawn from ``model``'s prior, each as long as a sequence of the split,
    so that samples and data have the same length distribution.

    Returns:
        ``{"split", "seed", "samples": {...}, "real": {...}}``, each entry ``piano_roll_stats``'s.
    """
    from .metrics import piano_roll_stats

    if getattr(model.config, "emission", None) != "bernoulli":
        raise ValueError("held-note and polyphony statistics are for binary piano rolls (a Bernoulli emission)")
    seqs = corpus.splits[split]
    if not seqs:
        raise ValueError(f"the {split} split is empty")
    lengths = [len(s) for s in seqs]
    n = num_samples or len(lengths)
    if n < 1:
        raise ValueError(f"num_samples must be >= 1, got {n}")
    want = sorted(lengths[i % len(lengths)] for i in range(n))
    pyro.set_rng_seed(seed)
    was = model.training
    model.eval()
    rolls = []
    try:
        with torch.no_grad():
            for b in range(0, n, batch_size):
                part = want[b:b + batch_size]
                x, _ = model.generate(max(part), batch_size=len(part))
                rolls += [x[i, :L].cpu().numpy() for i, L in enumerate(part)]
    finally:
        model.train(was)
    return {"split": split, "seed": seed, "samples": piano_roll_stats(rolls), "real": piano_roll_stats(seqs)}
