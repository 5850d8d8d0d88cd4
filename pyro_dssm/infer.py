"""Per-sequence bounds on ``log p(x)`` and the exact answer where one exists.

Pyro's ELBO classes return one number for the whole batch. Evaluation needs
one number per sequence, so these helpers trace the guide and the model under
a vectorised particle plate (the same construction as
``RenyiELBO(vectorize_particles=True)``) and keep the batch dimension.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine

from .models.dssm import DSSM

__all__ = ["log_weights", "elbo_per_sequence", "iwae_per_sequence", "kalman_log_likelihood",
           "linear_gaussian_log_likelihood", "PARTICLE_PLATE"]

#: Name of the particle plate; it matches Pyro's own vectorised ELBOs.
PARTICLE_PLATE = "num_particles_vectorized"


def log_weights(model: Callable, guide: Callable, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
                num_particles: int = 1, **kwargs) -> torch.Tensor:
    """Importance log-weights ``log p(x, z_k) - log q(z_k | x)``, shape ``(K, B)``.

    Args:
        model, guide: a model/guide pair with signature ``f(x, mask=None, **kwargs)``
            and one batch plate at dim -1.
        x: ``(B, T, x_dim)``; mask: optional ``(B, T)`` boolean.
        num_particles: ``K``, drawn in parallel.
    """
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")

    def vectorize(fn):
        def wrapped(*a, **k):
            with pyro.plate(PARTICLE_PLATE, num_particles, dim=-2):
                return fn(*a, **k)
        return wrapped

    guide_tr = poutine.trace(vectorize(guide)).get_trace(x, mask, **kwargs)
    model_tr = poutine.trace(poutine.replay(vectorize(model), trace=guide_tr)).get_trace(x, mask, **kwargs)
    B = x.shape[0]
    lw = x.new_zeros(num_particles, B)
    for tr, sign in ((model_tr, 1.0), (guide_tr, -1.0)):
        tr.compute_log_prob()
        for site in tr.nodes.values():
            if site["type"] == "sample":
                lw = lw + sign * site["log_prob"].expand(num_particles, B)
    return lw


def elbo_per_sequence(model, guide, x, mask=None, num_particles: int = 1, **kwargs
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Monte-Carlo ELBO per sequence and its standard error, each ``(B,)``."""
    lw = log_weights(model, guide, x, mask, num_particles, **kwargs)
    se = lw.std(0) / math.sqrt(num_particles) if num_particles > 1 else torch.full_like(lw[0], float("nan"))
    return lw.mean(0), se


def iwae_per_sequence(model, guide, x, mask=None, num_particles: int = 100, **kwargs) -> torch.Tensor:
    """The importance-weighted bound ``log (1/K) sum_k w_k`` per sequence, ``(B,)``.

    It equals ``-RenyiELBO(alpha=0, num_particles=K, vectorize_particles=True).loss``
    summed over the batch, but keeps one value per sequence (Pyro's
    ``vectorized_importance_weights`` would sum over the batch).
    """
    lw = log_weights(model, guide, x, mask, num_particles, **kwargs)
    return torch.logsumexp(lw, 0) - math.log(num_particles)


def kalman_log_likelihood(model: DSSM, x: torch.Tensor, init_scale: float = 1e-6) -> torch.Tensor:
    """Exact ``log p(x)`` per sequence ``(B,)`` of a linear-Gaussian HMM-base model.

    The model must be the plain HMM spec with ``transition_net="linear"``,
    ``emission_net="linear"`` and ``emission="gaussian"``: then
    ``z_t = A z_{t-1} + N(0, Q)``, ``x_t = C z_t + N(0, R)`` with ``z_0`` the
    learned vector, and ``pyro.distributions.GaussianHMM`` (a Kalman filter)
    gives the marginal likelihood. ``init_scale`` is the (negligible) spread
    given to the point mass at ``z_0``.
    """
    c = model.config
    if not (c.spec.name == "hmm" and c.transition_net == "linear" and c.emission_net == "linear"
            and c.emission == "gaussian"):
        raise ValueError("the exact likelihood needs the linear-Gaussian HMM: spec 'hmm', transition_net='linear', "
                         f"emission_net='linear', emission='gaussian'; got {c}")
    x, _, _ = model.check_inputs(x)
    tr, em = model.transition, model.emitter.body
    return linear_gaussian_log_likelihood(tr.weight.weight, tr.scale_value, em.weight.weight, em.scale_value,
                                          model.z_0, x, init_scale)


def linear_gaussian_log_likelihood(A, q, C, r, z0, x: torch.Tensor, init_scale: float = 1e-6) -> torch.Tensor:
    """Exact ``log p(x)`` ``(B,)`` of ``z_t = A z_{t-1} + N(0, diag q^2)``, ``x_t = C z_t + N(0, diag r^2)``.

    Args:
        A: ``(z_dim, z_dim)``; q: ``(z_dim,)``; C: ``(x_dim, z_dim)``; r: ``(x_dim,)``;
        z0: ``(z_dim,)``, the fixed initial state; x: ``(B, T, x_dim)``.
    """
    f64 = torch.float64  # the near point mass at z_0 needs double precision
    A, q, C, r, z0 = (torch.as_tensor(v, dtype=f64, device=x.device) for v in (A, q, C, r, z0))
    init = dist.Normal(z0, torch.full_like(z0, init_scale)).to_event(1)
    trans = dist.Normal(torch.zeros_like(z0), q).to_event(1)
    obs = dist.Normal(torch.zeros_like(r), r).to_event(1)
    hmm = dist.GaussianHMM(init, A.T, trans, C.T, obs, duration=x.shape[1])
    return hmm.log_prob(x.to(f64)).to(x.dtype)
