"""Interpolation and extrapolation of irregularly sampled sequences with LS4 (LS4 Sec. 5.3, Table 2).

Test sequences are ``(T, D)`` arrays with NaN at unobserved entries. Each is split by
:func:`~pyro_dssm.data.irregular.interpolation_task` (hide a random half of the observed
time points) or :func:`~pyro_dssm.data.irregular.extrapolation_task` (see the first
half, predict the second), and the model predicts the hidden entries:

* **interpolation** (:func:`interpolate`): ``S`` latent paths from the guide given the
  context, ``z ~ q(z | context)``; the prediction of step ``n`` is the decoder mean
  ``mu_n(context_{<n}, z_{<=n})`` (eq. 10), so the model reads the visible entries only.
* **extrapolation** (:func:`extrapolate`): the guide infers the latents of the first
  half, then ``model.generate`` continues both stacks recurrently (O(L)), drawing new
  latents from the prior and new observations from the decoder; the decoder means
  along each generated path are the predictions.

Scores (:func:`evaluate_forecast`) on the hidden observed entries: MSE of the predictive
mean (the average of the ``S`` decoder means), ``crps`` of ``N(predictive mean,
sigma_x^2)`` in closed form (as the authors' code computes Table 2), and ``crps_mixture``,
the exact CRPS of the full predictive, the mixture of ``N(mu_s, sigma_x^2)`` over the ``S`` paths.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from .data.corpus import pad_sequences
from .data.irregular import extrapolation_task, interpolation_task
from .metrics import crps_gaussian, crps_gaussian_mixture, masked_mse

__all__ = ["interpolate", "extrapolate", "evaluate_forecast"]


def _check_ls4(model) -> None:
    from .models.ls4 import LS4Model

    if not isinstance(model, LS4Model):
        raise TypeError(f"interpolation and extrapolation are defined for LS4 models, got {type(model).__name__}")


@torch.no_grad()
def interpolate(model, guide, context: torch.Tensor, mask: Optional[torch.Tensor] = None,
                num_samples: int = 10) -> torch.Tensor:
    """Decoder means ``(S, B, T, x_dim)`` at every step given ``context`` ``(B, T, x_dim)`` (NaN = hidden)."""
    from .models.ls4 import LS4Likelihood

    _check_ls4(model)
    out = []
    for _ in range(num_samples):
        z = guide(context, mask)
        out.append(LS4Likelihood(model, z, mask).locs(context))
    return torch.stack(out)


@torch.no_grad()
def extrapolate(model, guide, prefix: torch.Tensor, num_steps: int, num_samples: int = 10) -> torch.Tensor:
    """Decoder means ``(S, B, num_steps, x_dim)`` of the ``num_steps`` after ``prefix`` ``(B, T0, x_dim)``."""
    from .models.ls4 import LS4Likelihood

    _check_ls4(model)
    B, T0 = prefix.shape[:2]
    rep = prefix.repeat(num_samples, 1, 1)
    x, z = model.generate(num_steps, prefix=rep, guide=guide)
    locs = LS4Likelihood(model, z).locs(x)  # the means the generation drew each new step from
    return locs[:, T0:].reshape(num_samples, B, num_steps, -1)


def evaluate_forecast(model, guide, seqs: Sequence[np.ndarray], task: str, *, num_samples: int = 10,
                      context_fraction: float = 0.5, batch_size: int = 50, seed: int = 0) -> Dict[str, Any]:
    """Interpolation or extrapolation scores of an LS4 model on sequences ``(T_i, D)`` (NaN = unobserved).

    Args:
        task: ``"interpolation"`` or ``"extrapolation"``.
        num_samples: latent paths per sequence (the predictive mean and mixture).
        context_fraction: interpolation: the share of observed time points that stay visible.

    Returns:
        ``{"task", "mse", "crps", "crps_mixture", "targets", "sequences", "obs_scale", "num_samples",
        "context_fraction"}``: scores pooled over all hidden observed entries of all sequences.
    """
    _check_ls4(model)
    if task not in ("interpolation", "extrapolation"):
        raise ValueError(f"task must be 'interpolation' or 'extrapolation', got {task!r}")
    if not seqs:
        raise ValueError("no sequences to evaluate")
    if task == "interpolation" and not model.config.missing:
        raise ValueError("interpolation hides observed entries (NaN), which this LS4 model cannot read: train it "
                         "with LS4Config.missing (irregular data, --observed-fraction < 1, or --model-option "
                         "missing=true)")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    sigma = float(model.config.obs_scale)
    dev = next(model.parameters()).device
    ys, means, paths = [], [], []
    for start in range(0, len(seqs), batch_size):
        chunk = [np.asarray(s, dtype=np.float32) for s in seqs[start:start + batch_size]]
        if task == "interpolation":
            split = [interpolation_task(s, context_fraction, rng) for s in chunk]
            ctx, mask = pad_sequences([c for c, _ in split])
            pred = interpolate(model, guide, ctx.to(dev), mask.to(dev), num_samples).cpu().numpy()
            per_seq = [pred[:, i, :len(s)] for i, s in enumerate(chunk)]
        else:
            split = [extrapolation_task(s) for s in chunk]
            per_seq = []
            for s, (ctx, _) in zip(chunk, split):  # one at a time: prefixes and horizons differ
                horizon = len(s) - len(ctx)
                pred = extrapolate(model, guide, torch.as_tensor(ctx, device=dev)[None], horizon, num_samples)
                full = np.full((num_samples, len(s), s.shape[1]), 0.0, dtype=np.float32)
                full[:, len(ctx):] = pred[:, 0].cpu().numpy()
                per_seq.append(full)
        for s, (_, target), p in zip(chunk, split, per_seq):
            ys.append(np.nan_to_num(s[target]))
            means.append(p.mean(0)[target])
            paths.append(p[:, target])
    y = np.concatenate(ys)[None, :, None]
    mean = np.concatenate(means)[None, :, None]
    mixture = np.concatenate(paths, axis=1)[:, None, :, None]
    return {"task": task, "mse": masked_mse(y, mean), "crps": crps_gaussian(y, mean, sigma),
            "crps_mixture": crps_gaussian_mixture(y, mixture, sigma), "targets": int(y.size),
            "sequences": len(seqs), "obs_scale": sigma, "num_samples": num_samples,
            "context_fraction": context_fraction if task == "interpolation" else 0.5}
