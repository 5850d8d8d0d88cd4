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
from pyro.distributions.util import scale_and_mask
from pyro.infer import TraceMeanField_ELBO
from pyro.infer.trace_mean_field_elbo import _check_mean_field_requirement
from pyro.infer.util import torch_item
from pyro.poutine.util import is_validation_enabled, prune_subsample_sites
from pyro.util import check_model_guide_match, check_site_shape
from torch.distributions import kl_divergence

from .models.dssm import DSSM

__all__ = ["log_weights", "log_weight_parts", "elbo_per_sequence", "iwae_per_sequence", "kalman_log_likelihood",
           "linear_gaussian_log_likelihood", "PARTICLE_PLATE", "LeanTraceMeanField_ELBO"]

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
    obs, latent = log_weight_parts(model, guide, x, mask, num_particles, **kwargs)
    return obs + latent


def log_weight_parts(model: Callable, guide: Callable, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
                     num_particles: int = 1, **kwargs) -> Tuple[torch.Tensor, torch.Tensor]:
    """The two parts of :func:`log_weights`, each ``(K, B)``: ``log p(x | z_k)`` (the reconstruction term)
    and ``log p(z_k) - log q(z_k | x)`` (minus a one-sample estimate of the KL term).

    Their sum is the log-weight; their means over ``k`` split the ELBO into reconstruction
    and KL, which shows a collapsed posterior (KL near 0).
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
    obs, latent = x.new_zeros(num_particles, B), x.new_zeros(num_particles, B)
    for tr, sign in ((model_tr, 1.0), (guide_tr, -1.0)):
        tr.compute_log_prob()
        for site in tr.nodes.values():
            if site["type"] == "sample":
                lp = sign * site["log_prob"].expand(num_particles, B)
                if site["is_observed"]:
                    obs = obs + lp
                else:
                    latent = latent + lp
    return obs, latent


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
    ``z_1 ~ N(mu_1, diag sigma_1^2)`` (its learned initial distribution),
    ``z_t = A z_{t-1} + N(0, Q)``, ``x_t = C z_t + N(0, R)``, and
    ``pyro.distributions.GaussianHMM`` (a Kalman filter) gives the marginal likelihood.
    A model built with ``initial="transition"`` draws ``z_1 = A z_0 + N(0, Q)`` from a
    learned ``z_0``; ``init_scale`` is the (negligible) spread given to that point mass.
    """
    c = model.config
    if not (c.spec.name == "hmm" and c.transition_net == "linear" and c.emission_net == "linear"
            and c.emission == "gaussian"):
        raise ValueError("the exact likelihood needs the linear-Gaussian HMM: spec 'hmm', transition_net='linear', "
                         f"emission_net='linear', emission='gaussian'; got {c}")
    x, _, _ = model.check_inputs(x)
    tr, em = model.transition, model.emitter.body
    A, q, C, r = tr.weight.weight, tr.scale_value, em.weight.weight, em.scale_value
    if c.initial == "learned":
        return linear_gaussian_log_likelihood(A, q, C, r, None, x, initial=model.initial())
    return linear_gaussian_log_likelihood(A, q, C, r, model.z_0, x, init_scale)


def linear_gaussian_log_likelihood(A, q, C, r, z0, x: torch.Tensor, init_scale: float = 1e-6,
                                   initial=None) -> torch.Tensor:
    """Exact ``log p(x)`` ``(B,)`` of ``z_t = A z_{t-1} + N(0, diag q^2)``, ``x_t = C z_t + N(0, diag r^2)``.

    Args:
        A: ``(z_dim, z_dim)``; q: ``(z_dim,)``; C: ``(x_dim, z_dim)``; r: ``(x_dim,)``;
        z0: ``(z_dim,)``, a fixed state before the first step (``z_1 = A z0 + N(0, diag q^2)``);
        x: ``(B, T, x_dim)``.
        initial: ``(loc, scale)`` ``(z_dim,)`` each: ``z_1 ~ N(loc, diag scale^2)`` instead of
            the transition from ``z0`` (then ``z0`` is ignored). Expressed for ``GaussianHMM``
            as a time-varying first transition with matrix 0 and noise ``N(loc, scale^2)``.
    """
    f64 = torch.float64  # the near point mass at z_0 needs double precision
    A, q, C, r = (torch.as_tensor(v, dtype=f64, device=x.device) for v in (A, q, C, r))
    T, Z = x.shape[1], A.shape[0]
    obs = dist.Normal(torch.zeros_like(r), r).to_event(1)
    if initial is None:
        z0 = torch.as_tensor(z0, dtype=f64, device=x.device)
        init = dist.Normal(z0, torch.full_like(z0, init_scale)).to_event(1)
        trans = dist.Normal(torch.zeros_like(z0), q).to_event(1)
        hmm = dist.GaussianHMM(init, A.T, trans, C.T, obs, duration=T)
        return hmm.log_prob(x.to(f64)).to(x.dtype)
    m1, s1 = (torch.as_tensor(v, dtype=f64, device=x.device) for v in initial)
    mats = torch.cat([torch.zeros(1, Z, Z, dtype=f64, device=x.device), A.T.expand(T - 1, Z, Z)])
    locs = torch.cat([m1.unsqueeze(0), torch.zeros(T - 1, Z, dtype=f64, device=x.device)])
    scales = torch.cat([s1.unsqueeze(0), q.expand(T - 1, Z)])
    init = dist.Normal(torch.zeros(Z, dtype=f64, device=x.device), torch.ones(Z, dtype=f64, device=x.device))
    hmm = dist.GaussianHMM(init.to_event(1), mats, dist.Normal(locs, scales).to_event(1), C.T, obs, duration=T)
    return hmm.log_prob(x.to(f64)).to(x.dtype)


class LeanTraceMeanField_ELBO(TraceMeanField_ELBO):
    """:class:`~pyro.infer.TraceMeanField_ELBO` that computes only what its estimate uses.

    The estimator and its value are Pyro's: for each latent site the analytic
    ``KL(q || p)`` where one is registered (scaled and masked like the site), else
    the Monte-Carlo term ``log p(z) - log q(z)``; plus ``log p(x)`` of the observed
    sites. Pyro's version first computes the log-density of *every* site of the model
    and the guide, then the KL again for the latent sites whose KL is analytic, so
    the latent log-densities of a DSSM (two per time step) are computed, validated
    and discarded. Here each latent site's KL is computed once, and log-densities
    only where the estimate needs them. Pyro's checks (model/guide match, site
    shapes, mean-field order) run as in Pyro when validation is enabled.
    ``tests/test_shared_states.py`` checks equal losses and gradients for every preset.

    Args:
        free_bits: ``lambda >= 0`` nats. With ``lambda > 0`` each latent site's analytic KL
            (not those of IAF guides, whose KL is a Monte-Carlo term),
            averaged over the sequences where the site is valid, counts as
            ``max(lambda, KL)`` ("free bits", Kingma et al. 2016, eq. 15, one group per
            time step): a posterior step that carries less than ``lambda`` nats costs
            ``lambda`` and gets no gradient pushing it towards the prior. The objective is
            then no longer the ELBO; use it for training only (0, the default, is the ELBO).
        **kwargs: those of :class:`~pyro.infer.TraceMeanField_ELBO`.
    """

    def __init__(self, *args, free_bits: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not free_bits >= 0:
            raise ValueError(f"free_bits must be >= 0 nats, got {free_bits!r}")
        self.free_bits = float(free_bits)

    def _kl_term(self, g) -> torch.Tensor:
        """A site's analytic KL summed over its batch, floored at ``free_bits`` per valid sequence."""
        kl = g["kl_qp"].sum()
        if not self.free_bits:
            return kl
        # where the site is valid: poutine.mask's mask and the distribution's own (DSSMs mask with fn.mask)
        valid = torch.ones_like(g["kl_qp"], dtype=torch.bool)
        for m in (g["mask"], getattr(g["fn"], "_mask", None)):
            if isinstance(m, torch.Tensor):
                valid = valid & m.expand_as(valid)
            elif m is False:
                valid = torch.zeros_like(valid)
        valid = valid.sum()
        scale = g["scale"]
        return torch.maximum(kl, self.free_bits * valid * torch.as_tensor(scale, dtype=kl.dtype))

    def _get_trace(self, model, guide, args, kwargs):
        guide_trace = poutine.trace(guide, graph_type="flat").get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace), graph_type="flat").get_trace(
            *args, **kwargs)
        validate = is_validation_enabled()
        if validate:
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
        guide_trace, model_trace = prune_subsample_sites(guide_trace), prune_subsample_sites(model_trace)
        needs_density = set()
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample" or site["is_observed"]:
                continue
            g = guide_trace.nodes[name]
            try:
                kl = kl_divergence(g["fn"], site["fn"])
            except NotImplementedError:
                needs_density.add(name)
                continue
            g["kl_qp"] = scale_and_mask(kl, scale=g["scale"], mask=g["mask"])
        model_trace.compute_log_prob(lambda name, site: site["is_observed"] or name in needs_density)
        for name, site in guide_trace.nodes.items():
            if site["type"] == "sample" and name not in model_trace.nodes:
                if not site["infer"].get("is_auxiliary"):
                    raise ValueError(f"guide site {name!r} has no model site; mark it "
                                     "infer={'is_auxiliary': True} if it is an auxiliary variable")
                needs_density.add(name)
        for name in needs_density:
            site = guide_trace.nodes[name]
            parts = site["fn"].score_parts(site["value"], *site["args"], **site["kwargs"])
            site["score_parts"] = parts.scale_and_mask(site["scale"], site["mask"])
            site["log_prob"] = site["score_parts"].log_prob
        if validate:
            for tr in (model_trace, guide_trace):
                for site in tr.nodes.values():
                    if site["type"] == "sample":
                        shape_site = site if "log_prob" in site else dict(site, log_prob=guide_trace.nodes[
                            site["name"]]["kl_qp"])
                        check_site_shape(shape_site, self.max_plate_nesting)
            _check_mean_field_requirement(model_trace, guide_trace)
        return model_trace, guide_trace

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        validate = is_validation_enabled()
        elbo = 0.0
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                elbo = elbo + site["log_prob_sum"]
                continue
            g = guide_trace.nodes[name]
            if validate and not g["fn"].has_rsample:
                raise NotImplementedError(f"guide site {name!r} is not reparameterised; "
                                          "TraceMeanField_ELBO needs every guide distribution reparameterised")
            if "kl_qp" in g:
                elbo = elbo - self._kl_term(g)
            else:
                elbo = elbo + site["log_prob_sum"] - g["score_parts"].entropy_term.sum()
        for name, g in guide_trace.nodes.items():  # auxiliary guide sites
            if g["type"] == "sample" and name not in model_trace.nodes:
                elbo = elbo - g["score_parts"].entropy_term.sum()
        loss = -(elbo.detach() if torch._C._get_tracing_state() else torch_item(elbo))
        return loss, -elbo
