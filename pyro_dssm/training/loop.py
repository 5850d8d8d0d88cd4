"""A minimal SVI training loop: the mean-field ELBO (``LeanTraceMeanField_ELBO``) with a PyTorch optimiser.

The model and guide are ``PyroModule``s, so their parameters are ordinary
``nn.Parameter``s: plain ``torch.optim`` and gradient-*norm* clipping apply
(``pyro.optim.ClippedAdam`` clips elementwise, not the norm).
"""

from __future__ import annotations

from typing import Callable, List, Optional

import torch

import pyro

from ..config import annealing_schedule
from ..infer import LeanTraceMeanField_ELBO

__all__ = ["fit", "negative_elbo_per_step"]


def _batches(n: int, batch_size: int, generator: torch.Generator):
    perm = torch.randperm(n, generator=generator)
    for i in range(0, n, batch_size):
        yield perm[i:i + batch_size]


def fit(model, guide, x: torch.Tensor, mask: Optional[torch.Tensor] = None, *, epochs: int = 10,
        batch_size: int = 32, lr: float = 1e-3, clip_norm: float = 10.0, anneal_epochs: int = 0,
        min_annealing: float = 0.2, seed: int = 0,
        callback: Optional[Callable[[int, float], None]] = None) -> List[float]:
    """Train ``model`` and ``guide`` on ``x`` ``(N, T, x_dim)`` with Adam; returns the mean loss per epoch.

    KL annealing (the paper's Sec. III): the latent sites are scaled by a factor
    rising linearly from ``min_annealing`` to 1 over ``anneal_epochs`` epochs.
    The loss is the negative ELBO per time step (summed over the batch, divided
    by its number of valid steps). Call ``model.init_from_data(x, mask)`` first to
    start the output layer at the data's statistics, as the engine does.
    """
    elbo = LeanTraceMeanField_ELBO()
    g = torch.Generator().manual_seed(seed)
    pyro.set_rng_seed(seed)
    params = list({id(p): p for p in list(model.parameters()) + list(guide.parameters())}.values())
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    for epoch in range(epochs):
        af = annealing_schedule(epoch, anneal_epochs, min_annealing)
        total, steps = 0.0, 0
        for idx in _batches(x.shape[0], batch_size, g):
            xb = x[idx]
            mb = None if mask is None else mask[idx]
            n_steps = xb.shape[0] * xb.shape[1] if mb is None else int(mb.sum())
            opt.zero_grad()
            loss = elbo.differentiable_loss(model, guide, xb, mb, annealing_factor=af) / n_steps
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
            opt.step()
            total += loss.item() * n_steps
            steps += n_steps
        history.append(total / steps)
        if callback is not None:
            callback(epoch, history[-1])
    return history


@torch.no_grad()
def negative_elbo_per_step(model, guide, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
                           num_particles: int = 10) -> float:
    """Test negative ELBO per time step (Table II's measure), averaged over ``num_particles`` draws."""
    elbo = LeanTraceMeanField_ELBO(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1)
    n_steps = x.shape[0] * x.shape[1] if mask is None else int(mask.sum())
    return elbo.loss(model, guide, x, mask) / n_steps
