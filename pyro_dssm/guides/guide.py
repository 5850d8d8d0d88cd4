"""Inference networks for any DSSM of the taxonomy: partial and full alignment, App. D variants, IAF."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
from pyro.distributions.transforms import (
    AffineAutoregressive,
    affine_autoregressive,
    conditional_affine_autoregressive,
)
from pyro.nn import AutoRegressiveNN, PyroModule

from ..fields import check_positive_ints
from ..models.dssm import DSSM, site_name
from ..nn.layers import Combiner, cell_step, reverse_padded, steps_hoisted
from ..models.registry import model_config
from ..spec import DSSMSpec, past_x_needed, z_history_needed
from ..validation import check_annealing, check_observations

__all__ = ["GuideConfig", "DSSMGuide", "GUIDES", "guide_plan"]

#: Guide names: the two alignment styles of Sec. II-B and the App. D variants.
GUIDES = ("partial", "full", "A", "B", "C")


@dataclass(frozen=True)
class GuidePlan:
    """What a guide conditions ``z_t`` on.

    Attributes:
        z_context: ``"last"`` (``z_{t-1}``), ``"model_rnn"`` (the generative RNN state
            over the guide's samples, e.g. ``h^1_{t-1}``) or ``"guide_rnn"`` (an
            inference RNN ``H_{t-1}`` over the sampled latents, App. D).
        x_past: ``None``, ``"last"`` (``x_{t-1}``), ``"model_rnn"`` (the generative
            state over ``x_{1:t}``, e.g. ``h^2_t``) or ``"guide_rnn"`` (a forward
            inference RNN ``g->_t``).
        future_offset: 0 for ``g<-_t`` over ``x_{t:T}``; 1 for ``g<-_{t-1}`` over
            ``x_{t-1:T}`` (VRNN eq. (16), whose state ``h_{t-1}`` stops at ``x_{t-2}``).
    """

    z_context: str
    x_past: Optional[str]
    future_offset: int = 0

    def describe(self) -> str:
        c = {"last": "z_{t-1}", "model_rnn": "h^z_{t-1} (generative)",
             "guide_rnn": "H_{t-1} (inference RNN over z)"}[self.z_context]
        parts = [c]
        if self.x_past:
            parts.append({"last": "x_{t-1}", "model_rnn": "h^x_t (generative)",
                          "guide_rnn": "g->_t (forward RNN)"}[self.x_past])
        parts.append("g<-_{t-1}" if self.future_offset else "g<-_t")
        return "q(z_t | " + ", ".join(parts) + ")"


def _spec_of(name: str) -> DSSMSpec:
    """The spec of a preset (``"fssm"``) or a spec name (``"fhmm+tr+em+ff"``)."""
    return model_config(name, x_dim=1).spec


def guide_plan(name: str, model: Union[DSSM, DSSMSpec, str]) -> GuidePlan:
    """Derive a guide's conditioning set from the model's spec (not by hand per model).

    * ``partial`` (eqs. 4, 5): ``q(z_t | z_{t-1}, g<-_t)`` if the exact posterior
      has ``z_t ⊥ x_{1:t-1} | z_{1:t-1}, x_{t:T}`` (the HMM group), else
      ``q(z_t | z_{t-1}, g->_t, g<-_t)`` (bidirectional).
    * ``full`` (eq. 6): covers ``p(z_t | z_{1:t-1}, x_{1:T})`` reusing generative
      states: the latent RNN ``h^z_{t-1}`` where ``z_t`` depends on ``z_{1:t-2}``;
      ``x_{t-1}`` or the generative ``h^x_t`` where past observations matter;
      always ``g<-_t``. This gives eq. (8) for ArSSM and FSSM, (18) for SRNN,
      (20) for RSSM; the joint-recurrence VRNN gets eq. (16).
    * ``A``, ``B``, ``C`` (App. D): ``q(z_t | H_{t-1}, h^x_t, g<-_t)``,
      ``q(z_t | H_{t-1}, g->_t, g<-_t)``, ``q(z_t | h^z_{t-1}, g->_t, g<-_t)``.

    ``model`` may also be a bare :class:`~pyro_dssm.spec.DSSMSpec` (or a spec or preset name)
    for a guide of a user's own model: the plan is then derived as for the
    generic model with separate recurrences (see :class:`DSSMGuide`).
    """
    if isinstance(model, DSSM):
        spec, joint = model.spec, model.joint
    else:
        spec, joint = (_spec_of(model) if isinstance(model, str) else model), False
        if not isinstance(spec, DSSMSpec):
            raise TypeError(f"guide_plan needs a DSSM, a DSSMSpec or a spec name, got {type(model).__name__}")
    key = name if name in ("A", "B", "C") else name.lower()
    if key in ("a", "b", "c"):
        key = key.upper()
    if key not in GUIDES:
        raise ValueError(f"unknown guide {name!r}; expected one of {list(GUIDES)}")
    need_x = past_x_needed(spec)
    if key == "partial":
        return GuidePlan("last", None if need_x == "none" else "guide_rnn")
    if key == "full":
        if joint:
            return GuidePlan("model_rnn", None, future_offset=1)
        z_ctx = "model_rnn" if z_history_needed(spec) else "last"
        if z_ctx == "model_rnn" and not spec.has_z_rnn:  # pragma: no cover - no spec of the taxonomy
            z_ctx = "guide_rnn"
        x_past = {"none": None, "last": "last", "all": "model_rnn" if spec.has_x_rnn else "guide_rnn"}[need_x]
        return GuidePlan(z_ctx, x_past)
    # App. D variants: defined where the generative states they reuse exist.
    if key == "A":
        if not (spec.has_x_rnn and not joint):
            raise ValueError(f"guide 'A' reuses the generative RNN over x (h^2_t); model {spec.name} has none")
        return GuidePlan("guide_rnn", "model_rnn")
    if key == "B":
        return GuidePlan("guide_rnn", "guide_rnn")
    if not spec.has_z_rnn:
        raise ValueError(f"guide 'C' reuses the generative RNN over z (h^1_{{t-1}}); model {spec.name} has none")
    return GuidePlan("model_rnn", "guide_rnn")


class MaskedARN:
    """Pyro's ``AutoRegressiveNN`` with its masked weights ``W * M`` formed once, for one guide call.

    ``MaskedLinear`` multiplies weight and mask at every call: in a time loop that is
    two products (and their backward) per flow and step. This computes the same
    function, ``mean, log_scale = arn(z)``, from weights masked once per call; gradients
    flow to the same parameters. Only for unconditioned networks without a skip layer
    (what :class:`DSSMGuide` builds); :meth:`of` returns any other network unchanged.
    """

    def __init__(self, arn: AutoRegressiveNN):
        self.layers = [(layer.weight * layer.mask, layer.bias) for layer in arn.layers]
        self.f, self.arn = arn.f, arn
        self.permutation = arn.permutation  # for AffineAutoregressive's inverse, which cached sampling never uses

    @classmethod
    def of(cls, arn):
        ok = (type(arn) is AutoRegressiveNN and arn.skip_layer is None and arn.count_params == 2
              and bool(arn.all_ones))
        return cls(arn) if ok else arn

    def __call__(self, x: torch.Tensor):
        h = x
        for w, b in self.layers[:-1]:
            h = self.f(F.linear(h, w, b))
        w, b = self.layers[-1]
        h = F.linear(h, w, b).reshape(x.shape[:-1] + (2, self.arn.input_dim))
        return h.unbind(-2)


@dataclass(frozen=True)
class GuideConfig:
    """Sizes and options of a guide.

    Args:
        rnn_dim: width of the inference RNNs ``g->``, ``g<-`` and ``H``.
        hidden_dim: hidden width of the combiner.
        num_iafs: number of affine autoregressive flows stacked on ``q(z_t | .)`` (Sec. II-C).
        iaf_dim: hidden width of each flow's autoregressive network (>= z_dim).
        iaf_conditional: condition each flow on the combiner state
            (``ConditionalAffineAutoregressive``) instead of the paper's unconditioned flows.
        min_scale: floor added to the predicted standard deviation.
    """

    rnn_dim: int = 64
    hidden_dim: int = 64
    num_iafs: int = 0
    iaf_dim: int = 50
    iaf_conditional: bool = False
    min_scale: float = 1e-3

    def validate(self, z_dim: int) -> None:
        check_positive_ints(self, ("rnn_dim", "hidden_dim", "iaf_dim"))
        if not isinstance(self.num_iafs, int) or self.num_iafs < 0:
            raise ValueError(f"num_iafs must be a non-negative integer, got {self.num_iafs!r}")
        if self.num_iafs and self.iaf_dim < z_dim:
            raise ValueError(f"iaf_dim={self.iaf_dim} is smaller than z_dim={z_dim}: Pyro's AutoRegressiveNN "
                             "needs every hidden layer at least as wide as its input; use iaf_dim >= z_dim")


class DSSMGuide(PyroModule):
    r"""The variational distribution ``q(z_{1:T} | x_{1:T}) = \prod_t q(z_t | c_t, g_t)``.

    ``c_t`` and ``g_t`` follow the :class:`GuidePlan` derived from the model's
    spec (see :func:`guide_plan`); ``q`` is the combiner of Krishnan et al.
    (``pyro_dssm.nn.Combiner``), optionally pushed through ``num_iafs`` inverse
    autoregressive flows, eqs. (10)-(12). Each flow sample is scored when it is
    drawn: the flows are rebuilt around their shared networks every step so
    that each step's transform caches its own ``(u_t, z_t)`` pair.

    The guide has the model's call signature and reuses the model's modules
    (not copies), so it works with plain
    ``SVI(model, guide, optim, TraceMeanField_ELBO())``. The model is held by
    reference and is not a submodule: ``guide.parameters()`` are the guide's own.

    **Your own model.** Built from a spec instead of a ``DSSM``
    (``DSSMGuide("hmm+em", "partial", x_dim=3, z_dim=4)``), the guide pairs with
    any Pyro model that samples ``z_1..z_T`` (``(B, z_dim)`` each, see
    :func:`~pyro_dssm.models.site_name`) inside ``pyro.plate("sequences", B, dim=-1)``
    and takes ``(x, mask=None, *, annealing_factor=1.0)``. Only plans that need no
    generative network exist then: ``partial`` and ``B`` always, ``full`` where
    it conditions on ``z_{t-1}`` and ``x_{t-1}`` alone (the first-order bases).

    Args:
        model: the :class:`~pyro_dssm.models.DSSM` to approximate the posterior of,
            or the :class:`~pyro_dssm.spec.DSSMSpec` (or a spec or preset name) of your own model.
        name: ``"partial"``, ``"full"``, ``"A"``, ``"B"`` or ``"C"``.
        config: sizes and IAF options.
        x_dim, z_dim: the observation and latent sizes; only with a spec.
        emission: with a spec, the emission whose support ``x`` is checked
            against (``"bernoulli"``: binary); a model brings its own.
    """

    def __init__(self, model: Union[DSSM, DSSMSpec, str], name: str = "full", config: Optional[GuideConfig] = None,
                 *, x_dim: Optional[int] = None, z_dim: Optional[int] = None, emission: str = "gaussian"):
        super().__init__("guide")
        if isinstance(model, DSSM):
            if x_dim is not None or z_dim is not None:
                raise TypeError("x_dim and z_dim come from the model; pass them only with a spec")
            spec, emission, h_dim = model.spec, model.config.emission, model.config.h_dim
            x_dim, z_dim = model.config.x_dim, model.config.z_dim
        elif isinstance(model, (DSSMSpec, str)):
            spec, h_dim = (_spec_of(model) if isinstance(model, str) else model), None
            for k, v in (("x_dim", x_dim), ("z_dim", z_dim)):
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise ValueError(f"a guide built from a spec needs {k} as a positive integer, got {v!r}")
        else:
            raise TypeError(f"model must be a pyro_dssm DSSM, a DSSMSpec or a spec name, got {type(model).__name__}")
        config = config or GuideConfig()
        config.validate(z_dim)
        object.__setattr__(self, "_model", model if isinstance(model, DSSM) else None)  # a reference
        self.plan = p = guide_plan(name, model if isinstance(model, DSSM) else spec)
        if h_dim is None and "model_rnn" in (p.z_context, p.x_past):
            raise ValueError(f"guide {name!r} for {spec.name} reuses the generative model's RNN states "
                             f"({p.describe()}); build it from a pyro_dssm DSSM, or use 'partial' or 'B' "
                             "with your own model")
        self.spec, self.x_dim, self.z_dim, self.emission = spec, x_dim, z_dim, emission
        self.guide_name = name
        self.config = config
        g_dim = config.rnn_dim
        self.backward_rnn = nn.GRU(x_dim, config.rnn_dim, batch_first=True)
        if p.x_past == "guide_rnn":
            self.forward_rnn = nn.GRU(x_dim, config.rnn_dim, batch_first=True)
            g_dim += config.rnn_dim
        elif p.x_past == "model_rnn":
            g_dim += h_dim
        elif p.x_past == "last":
            g_dim += x_dim
        if p.z_context == "last":
            c_dim = z_dim
            self.z_q_0 = nn.Parameter(torch.zeros(z_dim))
        elif p.z_context == "model_rnn":
            c_dim = h_dim
        else:
            c_dim = config.rnn_dim
            self.z_rnn = nn.GRUCell(z_dim, config.rnn_dim)
            self.H_0 = nn.Parameter(torch.zeros(config.rnn_dim))
        self.combiner = Combiner(c_dim, g_dim, z_dim, config.hidden_dim, config.min_scale)
        if config.iaf_conditional:
            self.iafs = nn.ModuleList(
                conditional_affine_autoregressive(z_dim, config.hidden_dim, hidden_dims=[config.iaf_dim])
                for _ in range(config.num_iafs))
        else:
            self.iafs = nn.ModuleList(
                affine_autoregressive(z_dim, hidden_dims=[config.iaf_dim]) for _ in range(config.num_iafs))

    @property
    def model(self) -> Optional[DSSM]:
        """The model whose states the guide reuses; ``None`` for a guide built from a spec."""
        return self._model

    def __repr__(self) -> str:
        return f"DSSMGuide({self.guide_name!r}, {self.plan.describe()}, num_iafs={self.config.num_iafs})"

    # ---------------------------------------------------------------- parts
    def features(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Observation features ``g_t`` for every step, ``(B, T, g_dim)``, in one pass per RNN."""
        B, T, D = x.shape
        feats: List[torch.Tensor] = []
        if self.plan.future_offset:
            # g<-_{t-1} over x_{t-1:T}: run over (x_0 = 0, x_1, ..., x_T), keep positions 0..T-1
            xz = torch.cat([x.new_zeros(B, 1, D), x], dim=1)
            g, _ = self.backward_rnn(reverse_padded(xz, lengths + 1))
            feats.append(reverse_padded(g, lengths + 1)[:, :T])
        else:
            g, _ = self.backward_rnn(reverse_padded(x, lengths))
            feats.append(reverse_padded(g, lengths))
        if self.plan.x_past == "guide_rnn":
            feats.append(self.forward_rnn(x)[0])
        elif self.plan.x_past == "model_rnn":
            feats.append(self.model.observation_rnn(x)[:, 1:])
        elif self.plan.x_past == "last":
            feats.append(torch.cat([x.new_zeros(B, 1, D), x[:, :-1]], dim=1))
        return torch.cat(feats, dim=-1)

    def _flows(self, iafs: nn.ModuleList, context: torch.Tensor, arns: Optional[list] = None) -> list:
        if self.config.iaf_conditional:
            return [f.condition(context) for f in iafs]
        # fresh transform objects around the shared networks: each caches its own sample
        arns = arns or [f.arn for f in iafs]
        return [AffineAutoregressive(arn, log_scale_min_clip=f.log_scale_min_clip,
                                     log_scale_max_clip=f.log_scale_max_clip) for f, arn in zip(iafs, arns)]

    # ---------------------------------------------------------------- guide
    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, *,
                num_steps: Optional[int] = None, batch_size: Optional[int] = None,
                annealing_factor: float = 1.0) -> torch.Tensor:
        """Sample ``z_1..z_T`` given ``x`` ``(B, T, x_dim)``; returns ``(*batch, B, T, z_dim)``.

        ``num_steps`` and ``batch_size`` are accepted for signature compatibility with
        the model; the guide covers the observed steps only.
        """
        if x is None:
            raise ValueError("the guide needs observations x of shape (B, T, x_dim)")
        model = self.model
        check_annealing(annealing_factor)
        if model is not None:
            model.clear_shared_states()  # states of an earlier guide run that no model call took
        x, mask, lengths = check_observations(x, mask, self.x_dim, self.emission)
        B, T, _ = x.shape
        # networks fetched once per call (a PyroModule issues pyro.param statements per access)
        combiner, iafs = self.combiner, self.iafs
        z_rnn = self.z_rnn if self.plan.z_context == "guide_rnn" else None
        g_proj = combiner.project(self.features(x, lengths))  # (B, T, hidden)
        combine = combiner.steps(g_proj)  # per step: q's parameters from c_t and the precomputed P g_t
        # the flows' masked weights, formed once per call instead of once per step (hoisted_steps)
        arns = ([MaskedARN.of(f.arn) for f in iafs]
                if len(iafs) and steps_hoisted() and not self.config.iaf_conditional else None)
        masks = mask.unbind(1) if mask is not None else None
        p = self.plan
        if p.z_context == "last":
            c = self.z_q_0
        elif p.z_context == "model_rnn":
            c = model.latent_rnn_init()
        else:
            c = self.H_0
        zs = []
        with pyro.plate("sequences", B, dim=-1):
            for t in pyro.markov(range(1, T + 1)):
                loc, scale, a = combine(t - 1, c)
                q = dist.Normal(loc, scale).to_event(1)
                if len(iafs):
                    q = dist.TransformedDistribution(q, self._flows(iafs, a, arns))
                if masks is not None:
                    q = q.mask(masks[t - 1])
                with poutine.scale(scale=annealing_factor):
                    z_t = pyro.sample(site_name("z", t), q)
                zs.append(z_t)
                if p.z_context == "last":
                    c = z_t
                elif p.z_context == "model_rnn":
                    x_prev = (x[:, t - 2] if t > 1 else model.initial_observation(x)) if model.joint else None
                    c = model.latent_rnn_step(z_t, c, x_prev)
                else:
                    c = cell_step(z_rnn, z_t, c)
        return torch.stack(zs, dim=-2)
