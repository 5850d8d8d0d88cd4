r"""LS4: the latent S4 model of Zhou et al. [1] as a Pyro model/guide pair.

(About 450 lines, kept in one module: the model, its guide, the path distributions whose
registered KL the ELBO uses, and the registry entry are one unit that is read together.)

Generative model (eqs. 7, 10), ``n = 1..L``:

.. math::
    p(z_n | z_{<n}) = \mathcal N(\mu_{z,n}(z_{<n}), \sigma^2_{z,n}(z_{<n})),\qquad
    p(x_n | x_{<n}, z_{\le n}) = \mathcal N(\mu_{x,n}(x_{<n}, z_{\le n}), \sigma_x^2),

with ``mu_z, sigma_z`` from a stack of LS4 prior blocks and ``mu_x`` from a stack of
LS4 generative blocks (:mod:`pyro_dssm.nn.ls4`); ``sigma_x`` is fixed (App. D.1: 0.1).
Inference model (eq. 13): ``q(z_n | x_{<=n}) = N(mu_hat_n(x_{<=n}), sigma_hat_n^2(x_{<=n}))``,
all steps at once from a stack of inference blocks.

In Pyro each path is **one** sample site of event shape ``(L, dim)``:

* ``"z"``: the model's :class:`LS4Prior`, whose ``log_prob`` runs the prior stack in
  convolution mode on the given path and whose ``sample`` steps it recurrently (O(L));
  the guide's :class:`PathNormal` draws every ``z_n`` in parallel.
* ``"x"``: :class:`LS4Likelihood`, likewise (convolution to score, recurrence to sample).

The objective is eq. (5): ``sum_n KL(q(z_n | x) || p(z_n | z_{<n}))`` at the sampled
path plus the reconstruction term, summed over steps and dimensions. The per-step
Gaussian KL is registered for ``(PathNormal, LS4Prior)``, so ``TraceMeanField_ELBO``
uses it in place of a Monte-Carlo estimate. Padded steps (``mask`` ``(B, L)``) count zero.

[1] L. Zhou, M. Poli, W. Xu, S. Massaroli, S. Ermon, "Deep Latent State Space Models for
    Time-Series Generation", ICML 2023, arXiv:2212.12749.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn
import torch.nn.functional as F
from pyro import poutine
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution
from pyro.nn import PyroModule
from torch.distributions import kl_divergence, register_kl

from ..fields import check_positive_ints, coerce_fields
from ..nn.ls4 import LS4GenStack, LS4Stack
from ..nn.s4 import cached_discretisation
from ..validation import check_annealing, check_observations

from .registry import register_model, register_model_class

__all__ = ["LS4Config", "LS4Model", "LS4Guide", "LS4Prior", "LS4Likelihood", "PathNormal"]


@dataclass(frozen=True)
class LS4Config:
    """Sizes and options of an LS4 model (App. D.1 defaults: 5 latent dims, 64 channels, 64 states, sigma_x 0.1).

    Args:
        x_dim, z_dim: observation and latent dimensions.
        H: SSM channels per LS4 layer. N: real state size per channel.
        depth: (LS4 block, residual block) pairs per level of each stack (App. C's ``num_layers2``).
        levels: width-doubling U-Net levels of each stack (App. C's ``num_layers1``; the authors'
            configs use 1); see :mod:`pyro_dssm.nn.ls4`.
        obs_scale: the fixed observation standard deviation ``sigma_x``.
        decoder_uses_x: the decoder conditions on ``x_{<n}`` (eq. 10); False: on ``z_{<=n}`` alone.
        init, discretisation: of every S4D layer (``"legs"``/``"lin"``, ``"zoh"``/``"bilinear"``).
        min_scale: floor of the predicted latent standard deviations.
        output: ``"identity"`` or ``"sigmoid"`` on the decoder mean (App. D.1: sigmoid for data in [0, 1]).
        prior_H, prior_N, prior_depth: the prior stack's own sizes (eq. 7's ``p(z_n | z_<n)``),
            to vary its capacity alone; ``None``: ``H``, ``N`` and ``depth``.
        missing: observations may hold NaN for unobserved entries (irregular sampling, Sec. 5.3):
            the likelihood scores the observed entries only, and the guide and the decoder read
            ``(value or 0, observed flag)``, ``2 x_dim`` input channels.
    """

    x_dim: int
    z_dim: int = 5
    H: int = 64
    N: int = 64
    depth: int = 2
    levels: int = 1
    obs_scale: float = 0.1
    decoder_uses_x: bool = True
    init: str = "legs"
    discretisation: str = "zoh"
    min_scale: float = 1e-4
    output: str = "identity"
    missing: bool = False
    prior_H: Optional[int] = None
    prior_N: Optional[int] = None
    prior_depth: Optional[int] = None

    def __post_init__(self):
        coerce_fields(self, "LS4")  # model options from YAML or --model-option take the declared types
        check_positive_ints(self, ("x_dim", "z_dim", "H", "N", "depth"), "LS4 ")
        check_positive_ints(self, tuple(n for n in ("prior_H", "prior_N", "prior_depth")
                                        if getattr(self, n) is not None), "LS4 ")
        if self.prior_N is not None and self.prior_N % 2:
            raise ValueError(f"LS4 prior state size prior_N must be even (conjugate pairs), got {self.prior_N}")
        if not isinstance(self.levels, int) or isinstance(self.levels, bool) or self.levels < 0:
            raise ValueError(f"LS4 levels must be a non-negative integer, got {self.levels!r}")
        if self.N % 2:
            raise ValueError(f"LS4 state size N must be even (conjugate pairs), got {self.N}")
        if not self.obs_scale > 0:
            raise ValueError(f"obs_scale must be > 0, got {self.obs_scale}")
        if self.output not in ("identity", "sigmoid"):
            raise ValueError(f"LS4 output must be 'identity' or 'sigmoid', got {self.output!r}")

    @property
    def emission(self) -> str:
        """The observation family, as ``ModelConfig.emission`` names it: a Gaussian (eq. 10)."""
        return "gaussian"


def _gaussian_params(out: torch.Tensor, min_scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    loc, raw = out.chunk(2, dim=-1)
    return loc, F.softplus(raw) + min_scale


def _shift(seq: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """``(first, seq_1, ..., seq_{L-1})``: the inputs ``u_n = seq_{n-1}`` of a causal stack. ``seq`` ``(..., L, D)``."""
    return torch.cat([first.expand(*seq.shape[:-2], 1, seq.shape[-1]), seq[..., :-1, :]], dim=-2)


def _zero_padding(seq: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Padded steps set to 0 before a convolution: FFT round-off would carry their values to earlier outputs."""
    return seq if mask is None else torch.where(mask.unsqueeze(-1), seq, seq.new_zeros(()))


def _masked_sum(lp: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """``(..., B, L)`` per-step terms -> ``(..., B)``; padded steps contribute exactly 0."""
    if mask is not None:
        lp = torch.where(mask, lp, lp.new_zeros(()))
    return lp.sum(-1)


class _PathDistribution(TorchDistribution):
    """A distribution over whole paths ``(L, dim)``; batch shape ``(..., B)``; per-step ``mask`` ``(B, L)``."""

    arg_constraints = {}
    support = constraints.independent(constraints.real, 2)

    def __init__(self, batch_shape, event_shape, mask: Optional[torch.Tensor]):
        self.mask = mask
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args=False)

    def expand(self, batch_shape, _instance=None):
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        TorchDistribution.__init__(new, torch.Size(batch_shape), self.event_shape, validate_args=False)
        return new


class PathNormal(_PathDistribution):
    """``prod_n N(z_n | loc_n, scale_n)`` over a path ``(L, z_dim)``: the guide's factor ``q(z | x)`` (eq. 13).

    Remembers its last sample (``last_value``) so that the per-step KL against
    :class:`LS4Prior` can be evaluated at the sampled path.
    """

    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, mask: Optional[torch.Tensor] = None):
        self.base = dist.Normal(loc, scale)
        self.last_value: Optional[torch.Tensor] = None
        super().__init__(loc.shape[:-2], loc.shape[-2:], mask)

    def rsample(self, sample_shape=torch.Size()):
        shape = torch.Size(sample_shape) + self.batch_shape + self.event_shape
        value = self.base.expand(shape).rsample()
        self.last_value = value
        return value

    def log_prob(self, value):
        return _masked_sum(self.base.log_prob(value).sum(-1), self.mask)

    @property
    def mean(self):
        return self.base.mean.expand(self.batch_shape + self.event_shape)


class LS4Prior(_PathDistribution):
    """``p(z) = prod_n N(z_n | mu_n(z_{<n}), sigma_n(z_{<n}))`` (eq. 7) given by ``model.prior_net``.

    ``log_prob`` and :meth:`step_params` run the prior stack in convolution mode on a
    given path; ``sample`` steps it recurrently, ``O(L)``.
    """

    def __init__(self, model: "LS4Model", batch_size: int, num_steps: int, mask: Optional[torch.Tensor] = None):
        self.model = model
        super().__init__((batch_size,), (num_steps, model.config.z_dim), mask)

    def step_params(self, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(mu, sigma)`` of every ``p(z_n | z_{<n})`` along the path ``z`` ``(..., L, z_dim)``."""
        m = self.model
        return _gaussian_params(m.prior_net(_shift(_zero_padding(z, self.mask), m.z_first)), m.config.min_scale)

    def log_prob(self, value):
        loc, scale = self.step_params(value)
        return _masked_sum(dist.Normal(loc, scale).log_prob(value).sum(-1), self.mask)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()):
        m = self.model
        shape = torch.Size(sample_shape) + self.batch_shape
        n = shape.numel()
        L = self.event_shape[0]
        state = m.prior_net.default_state(n, device=m.z_first.device)
        u = m.z_first.expand(n, -1)
        zs = []
        with cached_discretisation(m.prior_net):
            for _ in range(L):
                out, state = m.prior_net.step(u, state)
                loc, scale = _gaussian_params(out, m.config.min_scale)
                u = dist.Normal(loc, scale).sample()
                zs.append(u)
        return torch.stack(zs, dim=-2).reshape(shape + self.event_shape)


class LS4Likelihood(_PathDistribution):
    """``p(x | z) = prod_n N(x_n | mu_n(x_{<n}, z_{<=n}), sigma_x^2)`` (eq. 10) given ``z`` ``(..., B, L, z_dim)``."""

    def __init__(self, model: "LS4Model", z: torch.Tensor, mask: Optional[torch.Tensor] = None):
        self.model, self.z = model, z
        super().__init__(z.shape[:-2], (z.shape[-2], model.config.x_dim), mask)

    def locs(self, x: torch.Tensor) -> torch.Tensor:
        """``mu_n`` for every step given observations ``x`` ``(..., L, x_dim)`` (teacher forcing)."""
        m, z = self.model, _zero_padding(self.z, self.mask)
        x = _zero_padding(x, self.mask)
        if m.config.decoder_uses_x:
            u = m.obs_input(x)
            v = _shift(u, m.x_first).expand(*z.shape[:-1], u.shape[-1])
        else:
            v = None
        return m.obs_mean(m.decoder(v, z))

    def log_prob(self, value):
        """``sum_n log N(x_n | mu_n, sigma_x^2)`` over valid steps and observed (non-NaN) entries."""
        seen = ~torch.isnan(value)
        filled = torch.where(seen, value, value.new_zeros(()))
        lp = dist.Normal(self.locs(value), self.model.config.obs_scale).log_prob(filled)
        return _masked_sum(torch.where(seen, lp, lp.new_zeros(())).sum(-1), self.mask)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()):
        m = self.model
        z = self.z.expand(torch.Size(sample_shape) + self.z.shape)
        lead = z.shape[:-2]
        zf = z.reshape(-1, *z.shape[-2:])
        n, L = zf.shape[0], zf.shape[1]
        state = m.decoder.default_state(n, device=zf.device)
        v = m.x_first.expand(n, -1)
        xs = []
        with cached_discretisation(m.decoder):
            for t in range(L):
                out, state = m.decoder.step(v, zf[:, t], state)
                loc = m.obs_mean(out)
                xs.append(loc + m.config.obs_scale * torch.randn_like(loc))
                v = m.obs_input(xs[-1])
        return torch.stack(xs, dim=-2).reshape(*lead, L, m.config.x_dim)


@register_kl(PathNormal, LS4Prior)
def _kl_path_normal_ls4_prior(q: PathNormal, p: LS4Prior) -> torch.Tensor:
    """Eq. (5)'s ``sum_n KL(q(z_n | x) || p(z_n | z_{<n}))`` with ``z_{<n}`` the path ``q`` last sampled."""
    if q.last_value is None:
        raise NotImplementedError("the per-step KL needs the path sampled from q")
    loc, scale = p.step_params(q.last_value)
    kl = kl_divergence(q.base, dist.Normal(loc, scale)).sum(-1)
    return _masked_sum(kl, q.mask)


class LS4Model(PyroModule):
    """The LS4 generative model (eqs. 7 and 10) with the call signature of every model here.

    ``model(x, mask)`` scores observations ``x`` ``(B, L, x_dim)``; ``model(None, num_steps=L,
    batch_size=B)`` samples ``(B, L, x_dim)``, stepping both stacks recurrently.
    """

    def __init__(self, config: LS4Config):
        super().__init__()
        self.config = c = config
        s4 = dict(init=c.init, discretisation=c.discretisation)
        self.prior_net = LS4Stack(c.z_dim, c.z_dim, c.prior_H or c.H, c.prior_N or c.N, c.prior_depth or c.depth,
                                  c.levels, branches=2, **s4)
        self.decoder = LS4GenStack(self.input_dim, c.z_dim, c.x_dim, c.H, c.N, c.depth, c.levels,
                                   use_x=c.decoder_uses_x, **s4)
        self.z_first = nn.Parameter(torch.zeros(c.z_dim))  # the prior's input before z_1
        self.x_first = nn.Parameter(torch.zeros(self.input_dim))  # the decoder's input before x_1

    @property
    def x_dim(self) -> int:
        return self.config.x_dim

    @property
    def input_dim(self) -> int:
        """Channels of an observation as the guide and the decoder read it (``2 x_dim`` with ``missing``)."""
        return 2 * self.config.x_dim if self.config.missing else self.config.x_dim

    def obs_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., x_dim)`` as network input: with ``config.missing``, ``(x or 0 where NaN, observed flag)``."""
        if not self.config.missing:
            return x
        seen = ~torch.isnan(x)
        return torch.cat([torch.where(seen, x, x.new_zeros(())), seen.to(x.dtype)], -1)

    def obs_mean(self, out: torch.Tensor) -> torch.Tensor:
        """``mu_x`` from the decoder's output (``sigmoid`` with ``config.output == "sigmoid"``)."""
        return torch.sigmoid(out) if self.config.output == "sigmoid" else out

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> "LS4Model":
        """Start the decoder's output bias at the mean of training data ``x`` ``(B, L, x_dim)``.

        LS4's observation model is a Gaussian of fixed scale around the decoder mean
        (eq. 10), so its equivalent of the taxonomy models' output initialisation is
        the mean alone: the head's bias is the per-dimension mean over the observed
        entries (NaN and masked steps left out) and its weights are scaled by the
        per-dimension std; with ``output="sigmoid"`` the bias is the mean's logit.
        Returns the model.
        """
        from ..nn.layers import data_moments

        x, mask, _ = check_observations(x, mask, self.config.x_dim, "gaussian", allow_missing=self.config.missing)
        n, mean, std = data_moments(x, mask)
        if not bool((n > 0).any()):
            raise ValueError("init_from_data needs at least one valid, observed entry of x")
        if self.config.output == "sigmoid":
            p = mean.clamp(1e-4, 1 - 1e-4)
            mean = torch.log(p) - torch.log1p(-p)
        else:  # the mean moves with its inputs in units of the data's std
            self.decoder.head.weight.mul_(std.to(self.decoder.head.weight).unsqueeze(-1))
        self.decoder.head.bias.copy_(mean)
        return self

    def forward(self, x: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None, *,
                num_steps: Optional[int] = None, batch_size: Optional[int] = None,
                annealing_factor: float = 1.0) -> torch.Tensor:
        check_annealing(annealing_factor)
        if x is None:
            if num_steps is None or num_steps < 1:
                raise ValueError(f"num_steps must be a positive integer when x is None, got {num_steps!r}")
            B, L = batch_size or 1, int(num_steps)
        else:
            x, mask, _ = check_observations(x, mask, self.config.x_dim, "gaussian", allow_missing=self.config.missing)
            B, L = x.shape[:2]
            if num_steps is not None and num_steps != L:
                raise ValueError("LS4 scores or samples whole paths: num_steps must equal x's length")
        with pyro.plate("sequences", B, dim=-1):
            with poutine.scale(scale=annealing_factor):
                z = pyro.sample("z", LS4Prior(self, B, L, mask))
            return pyro.sample("x", LS4Likelihood(self, z, mask), obs=x)

    @torch.no_grad()
    def generate(self, num_steps: int, batch_size: int = 1, prefix: Optional[torch.Tensor] = None,
                 guide: Optional["LS4Guide"] = None, state_dtype: Optional[torch.dtype] = None,
                 mean: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sample in O(L) recurrent steps, from scratch or continuing prefixes.

        Args:
            num_steps: new steps to generate.
            batch_size: sequences (ignored with ``prefix``).
            prefix: optional ``(B, T0, x_dim)``; its latents are drawn from ``guide`` and both
                stacks are stepped through the prefix before sampling goes on.
            state_dtype: the precision of the recurrent SSM steps: ``None`` (complex64 for a
                float32 model, about 1e-5 relative to the convolution after 2048 steps) or
                ``torch.complex128`` (double precision, about half as fast at large batches).
            mean: return each new step's decoder mean (eq. 10's ``mu_x``) instead of adding the
                observation noise ``obs_scale``; with ``decoder_uses_x`` the noisy sample still
                drives the steps after it. The LS4 authors' code plots the mean.

        Returns:
            ``(x, z)`` of shapes ``(B, T0 + num_steps, x_dim)`` and ``(B, T0 + num_steps, z_dim)``.
        """
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        c = self.config
        if prefix is None:
            B, xs, zs = batch_size, [], []
        else:
            if guide is None:
                raise ValueError("continuing a prefix needs a guide to infer its latent states")
            prefix, _, _ = check_observations(prefix, None, c.x_dim, "gaussian", allow_missing=c.missing)
            B = prefix.shape[0]
            z_pre = guide(prefix)
            xs, zs = list(prefix.unbind(1)), list(z_pre.unbind(1))
        dev = self.z_first.device
        ps = self.prior_net.default_state(B, device=dev, dtype=state_dtype)
        ds = self.decoder.default_state(B, device=dev, dtype=state_dtype)
        u, v = self.z_first.expand(B, -1), self.x_first.expand(B, -1)
        with cached_discretisation(self):
            for t in range(len(xs) + num_steps):
                out, ps = self.prior_net.step(u, ps)
                if t >= len(zs):
                    loc, scale = _gaussian_params(out, c.min_scale)
                    zs.append(dist.Normal(loc, scale).sample())
                out_x, ds = self.decoder.step(v, zs[t], ds)
                loc_x = self.obs_mean(out_x)
                fed = None
                if t >= len(xs):
                    fed = loc_x + c.obs_scale * torch.randn_like(loc_x)
                    xs.append(loc_x if mean else fed)
                u, v = zs[t], self.obs_input(xs[t] if fed is None else fed)
        return torch.stack(xs, 1), torch.stack(zs, 1)


class LS4Guide(PyroModule):
    """The LS4 inference model (eq. 13): ``q(z_n | x_{<=n})``, every step in parallel, one site ``"z"``."""

    def __init__(self, model: LS4Model, H: Optional[int] = None, N: Optional[int] = None,
                 depth: Optional[int] = None, levels: Optional[int] = None):
        super().__init__()
        c = model.config
        object.__setattr__(self, "_model", model)  # not a submodule: the guide owns only its own parameters
        self.config = {"H": H or c.H, "N": N or c.N, "depth": depth or c.depth,
                       "levels": c.levels if levels is None else levels}
        self.net = LS4Stack(model.input_dim, c.z_dim, **self.config, branches=2, init=c.init,
                            discretisation=c.discretisation)

    def posterior(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale)`` ``(B, L, z_dim)`` of every ``q(z_n | x_{<=n})``."""
        return _gaussian_params(self.net(self._model.obs_input(x)), self._model.config.min_scale)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, *, num_steps: Optional[int] = None,
                batch_size: Optional[int] = None, annealing_factor: float = 1.0) -> torch.Tensor:
        if x is None:
            raise ValueError("the guide needs observations x of shape (B, L, x_dim)")
        check_annealing(annealing_factor)
        c = self._model.config
        x, mask, _ = check_observations(x, mask, c.x_dim, "gaussian", allow_missing=c.missing)
        loc, scale = self.posterior(_zero_padding(x, mask))
        with pyro.plate("sequences", x.shape[0], dim=-1):
            with poutine.scale(scale=annealing_factor):
                return pyro.sample("z", PathNormal(loc, scale, mask))



@register_model("ls4", paper="Zhou et al. 2023 (LS4), Sec. 3", family="ls4",
                equation="p(z_n|z_<n) by a latent S4 stack (eq. 7); p(x_n|z_<=n, x_<n) (eq. 10)",
                emissions=("gaussian",), missing=True, iaf=False, jit=False, learned_initial=False)
def ls4(*, x_dim: int, h_dim: Optional[int] = None, hidden_dim: Optional[int] = None, emission: str = "gaussian",
        **options) -> LS4Config:
    """LS4: latent S4 prior, generative and inference stacks (FFT convolutions); ``h_dim`` is the channel count ``H``.

    Takes the taxonomy models' size names so that one run config serves both (``h_dim`` is ``H``;
    ``hidden_dim`` has no LS4 counterpart and is ignored); every other :class:`LS4Config` field by name.
    """
    if emission != "gaussian":
        raise ValueError(f"LS4 observes real values through a Gaussian of fixed scale (eq. 10); emission "
                         f"{emission!r} is not available for it (use --emission gaussian)")
    if h_dim is not None:
        options.setdefault("H", h_dim)
    try:
        return LS4Config(x_dim=x_dim, **options)
    except TypeError as e:
        raise ValueError(f"unknown LS4 option: {e}; LS4's options are the fields of LS4Config") from None


register_model_class(LS4Config, LS4Model)
