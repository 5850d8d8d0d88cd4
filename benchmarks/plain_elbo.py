"""The limit: the same ELBO as ``TraceMeanField_ELBO(model, guide)``, written in plain PyTorch.

Same networks (the modules of a :class:`pyro_dssm.models.DSSM` and its
:class:`pyro_dssm.guides.DSSMGuide`, called directly), same sampling order and
the same loss: for each step ``t``

    annealing * KL(q(z_t | c_t, g_t) || p(z_t | .)) - log p(x_t | .)

with the KL in closed form at the sampled path (two diagonal Gaussians) and the
steps past a sequence's length masked out. No Pyro handlers: no trace, no plate,
no ``pyro.markov``, no replay, no site dictionaries. Flows (IAF guides) are not
covered; their cost is measured against the plain guide instead.

Because the guide draws ``z_t`` in the same order from the same random stream,
``plain_negative_elbo`` equals ``TraceMeanField_ELBO().differentiable_loss`` to
rounding under the same seed (``tests/test_benchmarks.py`` checks it for every
preset and guide), so the benchmark compares like with like.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.distributions import Normal, kl_divergence

from pyro_dssm.nn.layers import cell_step

__all__ = ["plain_negative_elbo"]


def plain_negative_elbo(model, guide, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
                        annealing_factor: float = 1.0) -> torch.Tensor:
    """Negative ELBO summed over the batch, ``x`` ``(B, T, x_dim)``, ``mask`` ``(B, T)`` boolean prefix mask."""
    if guide.config.num_iafs:
        raise ValueError("the plain reference has no flows; compare IAF guides with the plain guide instead")
    spec, joint, plan = model.spec, model.joint, guide.plan
    B, T, _ = x.shape
    if mask is None:
        mask = torch.ones(B, T, dtype=torch.bool, device=x.device)
    lengths = mask.sum(-1)
    maskf = mask.to(x.dtype)

    # guide: observation features for every step at once, as DSSMGuide does (running the
    # model's GRU over x when the guide conditions on h^x)
    g_proj = guide.combiner.project(guide.features(x, lengths))
    if plan.z_context == "last":
        c = guide.z_q_0
    elif plan.z_context == "model_rnn":
        c = model.h_z0
    else:
        c = guide.H_0
    # model: the GRU over x (h^x_0 .. h^x_T), run once per batch: the guide's run if it made one
    hx_seq = model._shared_observation_states(model.x_rnn, x) if (spec.has_x_rnn and not joint) else None
    model.clear_shared_states()
    h_z = model.h_z0 if spec.has_z_rnn else None
    z_prev = None if spec.transition else model.z_0
    x_prev = x.new_zeros(x.shape[-1])

    kl_sum = x.new_zeros(B)
    nll_sum = x.new_zeros(B)
    for t in range(T):
        # q(z_t | c_t, g_t), reparameterised
        q_loc, q_scale, _ = guide.combiner(c, g_proj[:, t])
        q = Normal(q_loc, q_scale)
        z_t = q.rsample()
        # p(z_t | zeta_{t-1}, xi^z_{t-1})
        zc = h_z if spec.transition else z_prev
        xc = None
        if spec.base.feedforward:
            xc = hx_seq[:, t] if (spec.feedforward and not joint) else x_prev
        p_loc, p_scale = model.transition(zc, xc)
        kl_sum = kl_sum + kl_divergence(q, Normal(p_loc, p_scale)).sum(-1) * maskf[:, t]
        if spec.has_z_rnn:
            h_z = cell_step(model.z_cell, torch.cat([x_prev.expand(B, -1), z_t], -1) if joint else z_t, h_z)
        # p(x_t | zeta'_t, xi^x_{t-1})
        if joint:
            x_dist = model.emitter(h_z)
        else:
            ex = None
            if spec.base.autoregressive:
                ex = hx_seq[:, t] if spec.autoregression else x_prev
            x_dist = model.emitter(h_z if spec.emission else z_t, ex)
        nll_sum = nll_sum - x_dist.log_prob(x[:, t]) * maskf[:, t]
        # the guide's next latent context
        if plan.z_context == "last":
            c = z_t
        elif plan.z_context == "model_rnn":
            c = h_z
        else:
            c = cell_step(guide.z_rnn, z_t, c)
        x_prev = x[:, t]
        z_prev = z_t
    return (annealing_factor * kl_sum + nll_sum).sum()
