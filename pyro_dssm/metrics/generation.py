"""LS4's learned generation scores (App. D.1): *Classification* (higher is better) and *Prediction* (lower is better).

Both train a small sequence model: a linear encoder to 16 channels, one S4D layer
with 16 states, and a linear decoder (App. D.1), with AdamW (learning rate 0.01)
for ``epochs`` epochs in batches of 128. Arrays are ``(N, L, D)``; each function returns a float.

* :func:`classification_score`: a real-vs-generated classifier (the S4 outputs
  averaged over time, then a logit) is trained on the training halves of both
  sets; the score is its cross-entropy on the held-out halves. Indistinguishable
  samples give about ``log 2 = 0.693``; obvious fakes give about 0.
* :func:`prediction_score`: train on synthetic, test on real. A causal model
  maps ``x_{1..L-k}`` to ``x_{1+k..L}`` (``k = 10``); trained on the generated
  sequences, its mean squared error on the real ones is the score.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

__all__ = ["classification_score", "prediction_score"]


class _S4Probe(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, width: int = 16, state: int = 16):
        super().__init__()
        from ..nn.s4 import S4D

        self.encoder = nn.Linear(in_dim, width)
        self.s4 = S4D(width, state)
        self.decoder = nn.Linear(width, out_dim)

    def forward(self, x, pool: bool):
        h = torch.nn.functional.gelu(self.s4(self.encoder(x)))
        return self.decoder(h.mean(1) if pool else h)


def _check(x, name):
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 3 or a.shape[0] < 2 or a.shape[1] < 1:
        raise ValueError(f"{name} must be (N >= 2, L, D), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return torch.from_numpy(a)


def _fit(model, inputs, targets, loss_fn, pool, epochs, batch_size, lr, gen):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    n = len(inputs)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            opt.zero_grad()
            loss_fn(model(inputs[idx], pool), targets[idx]).backward()
            opt.step()


def classification_score(real, generated, *, epochs: int = 100, batch_size: int = 128, lr: float = 0.01,
                         seed: int = 0) -> float:
    """Held-out cross-entropy (nats) of a real-vs-generated S4 classifier; higher means harder to tell apart."""
    r, g = _check(real, "real"), _check(generated, "generated")
    if r.shape[1:] != g.shape[1:]:
        raise ValueError(f"real {tuple(r.shape)} and generated {tuple(g.shape)} differ in (L, D)")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.cat([r, g])
    y = torch.cat([torch.ones(len(r)), torch.zeros(len(g))])
    perm = torch.randperm(len(x), generator=gen)
    half = len(x) // 2
    train, test = perm[:half], perm[half:]
    model = _S4Probe(x.shape[-1], 1)
    bce = nn.BCEWithLogitsLoss()
    _fit(model, x[train], y[train], lambda out, t: bce(out[:, 0], t), True, epochs, batch_size, lr, gen)
    with torch.no_grad():
        return float(bce(model(x[test], True)[:, 0], y[test]))


def prediction_score(real, generated, *, horizon: int = 10, epochs: int = 100, batch_size: int = 128,
                     lr: float = 0.01, seed: int = 0) -> float:
    """Mean squared error on ``real`` of a ``horizon``-step-ahead predictor trained on ``generated``."""
    r, g = _check(real, "real"), _check(generated, "generated")
    if r.shape[1:] != g.shape[1:]:
        raise ValueError(f"real {tuple(r.shape)} and generated {tuple(g.shape)} differ in (L, D)")
    if not 0 < horizon < r.shape[1]:
        raise ValueError(f"horizon must be in 1..L-1 = 1..{r.shape[1] - 1}, got {horizon}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = _S4Probe(r.shape[-1], r.shape[-1])
    mse = nn.MSELoss()
    _fit(model, g[:, :-horizon], g[:, horizon:], mse, False, epochs, batch_size, lr, gen)
    with torch.no_grad():
        return float(mse(model(r[:, :-horizon], False), r[:, horizon:]))
