"""The limit: the same ELBO as ``TraceMeanField_ELBO(model, guide)``, written in plain PyTorch.

Same networks (the modules of a :class:`pyro_dssm.models.DSSM` and its
:class:`pyro_dssm.guides.DSSMGuide`, called directly), same sampling order and
the same loss: for each step ``t``

    annealing * KL(q(z_t | c_t, g_t) || p(z_t | .)) - log p(x_t | .)

with the KL in closed form at the sampled path (two diagonal Gaussians) and the
steps past a sequence's length masked out. No Pyro handlers: no trace, no plate,
no ``pyro.markov``, no replay, no site dictionaries. Flows (IAF guides) are not
covered; their cost is measured against the plain guide instead.

The per-step heads run as the model's and guide's do (``pyro_dssm.nn.layers.head_steps``
and ``Combiner.steps``): hoisted by default, so that ours/plain measures Pyro's overhead
and not an algorithmic difference, and the old per-step path inside
``pyro_dssm.nn.hoisted_steps(False)``.

Because the guide draws ``z_t`` in the same order from the same random stream,
``plain_negative_elbo`` equals ``TraceMeanField_ELBO().differentiable_loss`` to
rounding under the same seed (``tests/test_benchmarks.py`` checks it for every
preset and guide), so the benchmark compares like with like.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.distributions import Normal, kl_divergence

from pyro_dssm.nn.layers import cell_step, head_steps, step_views

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
    combine = guide.combiner.steps(g_proj)
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
    learned_initial = model.config.initial == "learned"
    z_prev = None if (spec.transition or learned_initial) else model.z_0
    x_prev = x.new_zeros(x.shape[-1])
    # the x-only parts of the heads' first layers, for all steps at once (as the model does)
    cfg = model.config
    x_prev_seq = torch.cat([x_prev.expand(B, 1, -1), x[:, :-1]], dim=1)
    trans_rest = emit_rest = None
    if spec.base.feedforward:
        trans_rest = hx_seq[:, :T] if (spec.feedforward and not joint) else x_prev_seq
    if spec.base.autoregressive and not joint:
        emit_rest = hx_seq[:, :T] if spec.autoregression else x_prev_seq
    trans_step = head_steps(model.transition, cfg.h_dim if spec.transition else cfg.z_dim, trans_rest)
    emit_step = head_steps(model.emitter, cfg.h_dim if (spec.emission or joint) else cfg.z_dim, emit_rest)

    hx_steps = step_views(hx_seq) if hx_seq is not None else None
    x_steps, mask_steps = step_views(x), step_views(maskf)
    kl_sum = x.new_zeros(B)
    nll_sum = x.new_zeros(B)
    for t in range(T):
        # q(z_t | c_t, g_t), reparameterised
        q_loc, q_scale, _ = combine(t, c)
        q = Normal(q_loc, q_scale)
        z_t = q.rsample()
        if t == 0 and learned_initial:  # p(z_1)
            p_loc, p_scale = model.initial()
        else:  # p(z_t | zeta_{t-1}, xi^z_{t-1})
            zc = h_z if spec.transition else z_prev
            xc = None
            if spec.base.feedforward:
                xc = hx_steps[t] if (spec.feedforward and not joint) else x_prev
            p_loc, p_scale = trans_step(t, zc, xc)
        kl_sum = kl_sum + kl_divergence(q, Normal(p_loc, p_scale)).sum(-1) * mask_steps[t]
        if spec.has_z_rnn:
            h_z = cell_step(model.z_cell, torch.cat([x_prev.expand(B, -1), z_t], -1) if joint else z_t, h_z)
        # p(x_t | zeta'_t, xi^x_{t-1})
        if joint:
            x_dist = emit_step(t, h_z)
        else:
            ex = None
            if spec.base.autoregressive:
                ex = hx_steps[t] if spec.autoregression else x_prev
            x_dist = emit_step(t, h_z if spec.emission else z_t, ex)
        nll_sum = nll_sum - x_dist.log_prob(x_steps[t]) * mask_steps[t]
        # the guide's next latent context
        if plan.z_context == "last":
            c = z_t
        elif plan.z_context == "model_rnn":
            c = h_z
        else:
            c = cell_step(guide.z_rnn, z_t, c)
        x_prev = x_steps[t]
        z_prev = z_t
    return (annealing_factor * kl_sum + nll_sum).sum()
