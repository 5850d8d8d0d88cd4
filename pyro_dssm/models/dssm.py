"""One generic generative model for every member of the DSSM taxonomy.

(About 500 lines: one class whose time loop wires the 36 specs' dependencies; the equations it
implements are easier to check against the paper in one place than split over files.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch
import torch.nn as nn

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
from pyro.nn import PyroModule

from ..fields import check_positive_ints, coerce_fields
from ..nn.emissions import get_emission
from ..nn.layers import (
    EmissionHead,
    GatedTransition,
    GaussianHead,
    InitialGaussian,
    LinearGaussianHead,
    bcat,
    cell_step,
    gru_step,
    head_steps,
    step_views,
)
from ..spec import Base, DSSMSpec
from ..validation import check_annealing, check_observations

__all__ = ["ModelConfig", "DSSM", "site_name"]


def site_name(kind: str, t: int) -> str:
    """The one naming scheme of sample sites: ``z_1 .. z_T`` and ``x_1 .. x_T`` (1-based)."""
    return f"{kind}_{t}"


@dataclass(frozen=True)
class ModelConfig:
    """Everything that determines a generative DSSM: structure, sizes, parameterisation.

    Args:
        spec: the taxonomy structure (base model and relaxed flags).
        x_dim: observation dimension.
        z_dim: latent dimension.
        h_dim: width of the deterministic RNN states (``h^1``, ``h^2`` or ``h``).
        hidden_dim: hidden width of the networks ``d_z`` and ``d_x``.
        emission: ``"bernoulli"``, ``"gaussian"``, ``"itakura_saito"`` or ``"gaussian_power"``.
        transition_net: ``"mlp"`` (dual-head MLP ``d_z``), ``"gated"`` (DMM gated
            transition; needs ``z_{t-1}`` as input) or ``"linear"``.
        emission_net: ``"mlp"``, ``"deep"`` (DMM emitter) or ``"linear"``.
        recurrence: ``"separate"`` (one RNN over ``z`` and one over ``x``, as
            ArSSM/FSSM) or ``"joint"`` (one RNN over ``(x_{t-1}, z_t)``, VRNN eq. (15);
            only for the fully relaxed DMM-Aug).
        min_scale: floor added to every predicted standard deviation.
        initial: ``"learned"`` (default): ``z_1 ~ p(z_1) = N(mu_1, diag(sigma_1^2))`` with its
            own learned location and scale (:class:`~pyro_dssm.nn.InitialGaussian`);
            ``"transition"``: ``z_1`` from the transition applied to a learned ``z_0`` (or the
            initial RNN state ``h^z_0``), with the transition's scale, as models built before
            2026-12 did (their checkpoints load as such).
    """

    spec: DSSMSpec
    x_dim: int
    z_dim: int = 16
    h_dim: int = 64
    hidden_dim: int = 64
    emission: str = "gaussian"
    transition_net: str = "mlp"
    emission_net: str = "mlp"
    recurrence: str = "separate"
    min_scale: float = 1e-3
    initial: str = "learned"

    def __post_init__(self) -> None:
        coerce_fields(self, "model")  # model options from YAML or --model-option take the declared types
        if isinstance(self.spec, str):
            object.__setattr__(self, "spec", DSSMSpec.from_name(self.spec))
        if not isinstance(self.spec, DSSMSpec):
            raise TypeError(f"spec must be a DSSMSpec or spec name, got {self.spec!r}")
        check_positive_ints(self, ("x_dim", "z_dim", "h_dim", "hidden_dim"))
        get_emission(self.emission)  # raises on an unknown family, naming the registered ones
        if self.transition_net not in ("mlp", "gated", "linear"):
            raise ValueError(f"unknown transition_net {self.transition_net!r}; "
                             "expected 'mlp', 'gated' or 'linear'")
        if self.transition_net == "gated" and self.spec.transition:
            raise ValueError("the gated transition needs z_{t-1} as its input; it does not apply "
                             "to a spec with a relaxed 'transition' (use transition_net='mlp')")
        if self.recurrence not in ("separate", "joint"):
            raise ValueError(f"unknown recurrence {self.recurrence!r}; expected 'separate' or 'joint'")
        if self.recurrence == "joint" and self.spec != DSSMSpec(Base.DMM_AUG, True, True, True, True):
            raise ValueError("recurrence='joint' (one RNN over x_{t-1} and z_t, VRNN eq. 15) has exactly "
                             "the dependencies of the fully relaxed DMM-Aug spec only; "
                             f"got spec {self.spec.name}")
        if self.min_scale < 0:
            raise ValueError(f"min_scale must be >= 0, got {self.min_scale}")
        if self.initial not in ("learned", "transition"):
            raise ValueError(f"unknown initial {self.initial!r}; expected 'learned' (a learned p(z_1)) or "
                             "'transition' (z_1 from the transition applied to z_0)")

    def replace(self, **changes) -> "ModelConfig":
        return replace(self, **changes)


def _view_key(t: Optional[torch.Tensor]):
    """What makes two tensors the same data: storage, offset, shape, strides, version; ``None`` stays."""
    if t is None:
        return None
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t._version)


def _latent_key(z_t, h_prev, x_prev):
    """Key of ``h^z_t = d(z_t, h_prev[, x_prev])`` in :class:`SharedStates`."""
    return "z", id(z_t), id(h_prev), _view_key(x_prev)


def _observation_key(x):
    """Key of the GRU states over ``x`` in :class:`SharedStates`."""
    return "x", _view_key(x)


def _param_versions(module: nn.Module) -> tuple:
    return tuple(p._version for p in module.parameters())


class SharedStates:
    """Deterministic states a guide computed with the model's networks, for the model to take.

    An entry holds the inputs it was computed from (compared by identity), the
    version counters of the network's parameters (an optimiser step changes them)
    and the grad mode; :meth:`take` returns it only if all three still match, and
    removes it. The model clears what is left at the end of each call, so an entry
    lives from a guide run to the next model run. Copies and pickles start empty.
    """

    def __init__(self):
        self._entries = {}

    def put(self, key, inputs: tuple, net: nn.Module, value: torch.Tensor, keep=None) -> None:
        """``keep``: a tensor whose storage the key names (kept alive so that its address stays its own)."""
        self._entries[key] = (inputs, _param_versions(net), torch.is_grad_enabled(), value, keep)

    def take(self, key, inputs: tuple, net: nn.Module) -> Optional[torch.Tensor]:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        kept, versions, grad, value, _ = entry
        if (grad != torch.is_grad_enabled() or any(a is not b for a, b in zip(kept, inputs))
                or versions != _param_versions(net)):
            return None
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __getstate__(self):
        return {"_entries": {}}

    def __deepcopy__(self, memo):
        return SharedStates()


class DSSM(PyroModule):
    r"""A deep state space model of the taxonomy [1], built from a :class:`ModelConfig`.

    Generative process, for ``t = 1..T`` (``c`` as in Sec. II-A of [1]):

    .. math::
        z_1 \sim p(z_1) = N(\mu_1, \mathrm{diag}(\sigma_1^2)),\qquad
        z_t \sim p(z_t \mid d_z(\zeta_{t-1}, \xi^z_{t-1}))\ (t \ge 2),\qquad
        x_t \sim p(x_t \mid d_x(\zeta'_t, \xi^x_{t-1})),

    with ``p(z_1)`` learned (:class:`~pyro_dssm.nn.InitialGaussian`; the papers give no
    notation for it; ``initial="transition"`` draws ``z_1`` from the transition instead),

    where the latent context is ``zeta_{t-1} = z_{t-1}`` or, with the
    ``transition`` flag, the RNN state ``h^z_{t-1} = d_{h^z}(z_{t-1}, h^z_{t-2})``
    (``h^1`` of eq. (2)); ``zeta'_t = z_t`` or, with ``emission``, ``h^z_t``;
    the observation contexts exist where the base has the edge
    (``xi^z``: F-HMM, DMM-Aug; ``xi^x``: AR-HMM, DMM-Aug) and are ``x_{t-1}``
    or, with ``feedforward`` / ``autoregression``, the state
    ``h^x_{t-1}`` of a GRU over ``x_{1:t-1}`` (``h^2`` of eq. (3)). That GRU
    reads only ``x``, so it runs once per batch as one ``nn.GRU`` call.
    With ``recurrence="joint"`` (VRNN, eq. (15)) one state
    ``h_t = d_h(x_{t-1}, z_t, h_{t-1})`` replaces both:
    ``z_t ~ p(z_t | d_z(x_{t-1}, h_{t-1}))`` and ``x_t ~ p(x_t | d_x(h_t))``.

    Call signature (the Pyro model)::

        model(x, mask=None, *, num_steps=None, batch_size=None, annealing_factor=1.0)

    Args:
        x: observations ``(B, T, x_dim)`` or ``None`` to sample from the prior.
        mask: boolean ``(B, T)`` prefix mask of valid steps; masked steps
            contribute exactly zero to every log density.
        num_steps: total steps ``T' >= T``; steps after ``T`` are sampled
            (continuation of the prefix ``x``). Required when ``x is None``.
        batch_size: number of sequences when ``x is None`` (default 1).
        annealing_factor: KL annealing, a scale on the latent sites ``z_t``.

    Returns:
        The observation sequence ``(*batch, B, T', x_dim)``: ``x`` where observed,
        samples elsewhere.

    Sample sites are ``z_1..z_T'`` (event ``(z_dim,)``) and ``x_1..x_T'`` (event
    ``(x_dim,)``) inside the plate ``"sequences"`` over ``B`` (dim -1).

    [1] S. Tang et al., "A Hierarchical Taxonomy for Deep State Space Models", arXiv:2412.11211.
    """

    def __init__(self, config: ModelConfig, name: str = "model"):
        super().__init__(name)
        self.config = config
        spec = self.spec = config.spec
        c = config
        joint = c.recurrence == "joint"
        # --- deterministic recurrences ------------------------------------
        if spec.has_z_rnn:
            # h^z_t = d_{h^z}(z_t, h^z_{t-1}); joint: h_t = d_h(x_{t-1}, z_t, h_{t-1})
            self.z_cell = nn.GRUCell(c.z_dim + (c.x_dim if joint else 0), c.h_dim)
            self.h_z0 = nn.Parameter(torch.zeros(c.h_dim))
        if spec.has_x_rnn and not joint:
            # h^x_t = d_{h^x}(x_t, h^x_{t-1}), run over the whole batch at once
            self.x_rnn = nn.GRU(c.x_dim, c.h_dim, batch_first=True)
            self.h_x0 = nn.Parameter(torch.zeros(c.h_dim))
        if c.initial == "learned":
            # p(z_1): its own location and scale
            self.initial = InitialGaussian(c.z_dim, 1.0, c.min_scale)
        elif not spec.transition:
            self.z_0 = nn.Parameter(torch.zeros(c.z_dim))  # z_1 ~ p(z_1 | z_0), the transition's
        self.register_buffer("x_0", torch.zeros(c.x_dim), persistent=False)
        object.__setattr__(self, "_shared", SharedStates())
        # --- p(z_t | ...) ----------------------------------------------------
        zc = c.h_dim if spec.transition else c.z_dim
        xc = 0
        if spec.base.feedforward:
            xc = c.h_dim if (spec.feedforward and not joint) else c.x_dim
        if c.transition_net == "mlp":
            self.transition = GaussianHead(zc + xc, c.z_dim, c.hidden_dim, c.min_scale)
        elif c.transition_net == "gated":
            self.transition = GatedTransition(c.z_dim, zc + xc, c.hidden_dim, c.min_scale)
        else:
            self.transition = LinearGaussianHead(zc + xc, c.z_dim)
        # --- p(x_t | ...) ----------------------------------------------------
        if joint:
            e_in = c.h_dim
        else:
            e_in = c.h_dim if spec.emission else c.z_dim
            if spec.base.autoregressive:
                e_in += c.h_dim if spec.autoregression else c.x_dim
        self.emitter = EmissionHead(e_in, c.x_dim, c.hidden_dim, c.emission, c.emission_net, c.min_scale)

    # ------------------------------------------------------------------ API
    @property
    def x_dim(self) -> int:
        return self.config.x_dim

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def joint(self) -> bool:
        return self.config.recurrence == "joint"

    def check_inputs(self, x, mask=None):
        """Validate ``x`` ``(B, T, x_dim)`` and ``mask`` ``(B, T)``; returns ``(x, mask, lengths)``."""
        return check_observations(x, mask, self.config.x_dim, self.config.emission)

    def init_from_data(self, x, mask=None) -> "DSSM":
        """Start the emission's output biases at the statistics of training data ``x`` ``(B, T, x_dim)``.

        One call before training, e.g. ``model.init_from_data(x_train, mask_train)``:
        the Bernoulli logits at each dimension's log-odds, the Gaussian at the data's
        mean and standard deviation, the Itakura-Saito variance at the mean power per
        bin (:meth:`~pyro_dssm.nn.layers.EmissionHead.init_from_data`). The model is the
        same model; only its starting point moves off the plateau where every key
        is equally likely. ``scripts/train.py`` does it by default (``--no-init-output``
        turns it off). Returns the model.
        """
        x, mask, _ = self.check_inputs(x, mask)
        self.emitter.init_from_data(x, mask)
        return self

    # Pieces that guides reuse ("reusing the RNN structure of the generative process", Sec. II-B.2).
    #
    # A guide that conditions on generative states (full alignment, variants A and C)
    # computes h^z_t over its own samples z_t and h^x over x. When the ELBO then replays
    # the model on those very samples, the model would compute the same states again.
    # The guide's results are kept in ``_shared`` and the model takes them instead of
    # recomputing, provided the inputs are the same tensor objects, the parameters have
    # not changed since (their version counters) and grad mode is the same. Anything
    # else (conditioned or user-given z, a parameter update in between) recomputes.
    def latent_rnn_init(self) -> torch.Tensor:
        """``h^z_0`` ``(h_dim,)``; broadcasts against any batch shape."""
        return self.h_z0

    def latent_rnn_step(self, z_t: torch.Tensor, h_prev: torch.Tensor,
                        x_prev: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``h^z_t = d_{h^z}(z_t, h^z_{t-1})``; joint: ``h_t = d_h(x_{t-1}, z_t, h_{t-1})``.

        The result is remembered until the model's next call, which reuses it when it
        meets the same ``(z_t, h_prev, x_prev)`` (see the note above). A guide of your
        own that calls this outside an ELBO should call :meth:`clear_shared_states` at
        its start, as :class:`~pyro_dssm.guides.DSSMGuide` does.

        Args:
            z_t: ``(*batch, z_dim)``; h_prev: ``(*batch, h_dim)``;
            x_prev: ``(*batch, x_dim)``, only for the joint recurrence: ``x_{t-1}``,
                or :meth:`initial_observation` for ``t = 1``.
        """
        z_cell = self.z_cell
        x_prev = x_prev if self.joint else None
        h = self._latent_step(z_cell, z_t, h_prev, x_prev)
        self._shared.put(_latent_key(z_t, h_prev, x_prev), (z_t, h_prev), z_cell, h, keep=x_prev)
        return h

    def clear_shared_states(self) -> None:
        """Forget the states remembered by :meth:`latent_rnn_step` and :meth:`observation_rnn`."""
        self._shared.clear()

    def initial_observation(self, x: torch.Tensor) -> torch.Tensor:
        """``x_0``, the zero observation before the first step ``(x_dim,)``, on ``x``'s device."""
        x0 = self.x_0
        return x0 if x0.device == x.device and x0.dtype == x.dtype else x.new_zeros(x.shape[-1])

    def _latent_step(self, z_cell: nn.GRUCell, z_t, h_prev, x_prev=None) -> torch.Tensor:
        inp = bcat((x_prev, z_t)) if self.joint else z_t
        return cell_step(z_cell, inp, h_prev)

    def _shared_latent_step(self, z_cell: nn.GRUCell, z_t, h_prev, x_prev=None) -> torch.Tensor:
        """:meth:`_latent_step`, or the guide's result for the same inputs."""
        x_prev = x_prev if self.joint else None
        h = self._shared.take(_latent_key(z_t, h_prev, x_prev), (z_t, h_prev), z_cell)
        return self._latent_step(z_cell, z_t, h_prev, x_prev) if h is None else h

    def observation_rnn(self, x: torch.Tensor) -> torch.Tensor:
        """States ``h^x_0..h^x_T`` of the GRU over ``x`` ``(B, T, x_dim)`` -> ``(B, T+1, h_dim)``.

        Remembered until the model's next call, which reuses it for the same ``x``.
        """
        x_rnn = self.x_rnn
        out = self._observation_states(x_rnn, x)
        self._shared.put(_observation_key(x), (x,), x_rnn, out)
        return out

    def _observation_states(self, x_rnn: nn.GRU, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        h0 = self.h_x0.expand(B, -1)
        out, _ = x_rnn(x, h0.unsqueeze(0).contiguous())
        return torch.cat([h0.unsqueeze(1), out], dim=1)

    def _shared_observation_states(self, x_rnn: nn.GRU, x: torch.Tensor) -> torch.Tensor:
        out = self._shared.take(_observation_key(x), (x,), x_rnn)
        return self._observation_states(x_rnn, x) if out is None else out

    # ---------------------------------------------------------------- model
    def forward(self, x: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None, *,
                num_steps: Optional[int] = None, batch_size: Optional[int] = None,
                annealing_factor: float = 1.0) -> torch.Tensor:
        spec = self.spec
        check_annealing(annealing_factor)
        if x is None:
            if mask is not None:
                raise ValueError("mask given without x")
            if num_steps is None or num_steps < 1:
                raise ValueError(f"num_steps must be a positive integer when x is None, got {num_steps!r}")
            B, T_obs = batch_size or 1, 0
        else:
            x, mask, _ = self.check_inputs(x, mask)
            B, T_obs = x.shape[0], x.shape[1]
        T = T_obs if num_steps is None else int(num_steps)
        if T < T_obs:
            raise ValueError(f"num_steps={T} is shorter than the observed x (T={T_obs})")
        if T > T_obs and mask is not None and not bool(mask.all()):
            raise ValueError("continuing sequences of different lengths is not supported; "
                             "pass prefixes of equal length without padding")

        joint = self.joint
        # Each access to a submodule of a PyroModule issues a pyro.param statement per
        # parameter; fetch the networks once per call, not once per step. Every parameter
        # is fetched, also those of states taken from the guide: the JIT ELBO traces the
        # parameters that these statements announce as its inputs.
        transition, emitter = self.transition, self.emitter
        z_cell = self.z_cell if spec.has_z_rnn else None
        x_rnn = self.x_rnn if (spec.has_x_rnn and not joint) else None
        x_prev = self.initial_observation(x) if x is not None else self.x_0  # x_0
        h_x = None
        if spec.has_x_rnn and not joint:
            h_x0 = self.h_x0
            hx_seq = (self._shared_observation_states(x_rnn, x) if T_obs > 0
                      else h_x0.unsqueeze(0).unsqueeze(0))
            h_x = hx_seq[:, 0]
        h_z = self.latent_rnn_init() if spec.has_z_rnn else None
        learned_initial = self.config.initial == "learned"
        initial = self.initial if learned_initial else None
        z_prev = None if (spec.transition or learned_initial) else self.z_0
        # Everything that depends on x alone, for all observed steps before the loop (hoisted_steps):
        # the x-parts of the first layers of p(z_t | .) and p(x_t | .), over h^x_{t-1} or x_{t-1}.
        c = self.config
        trans_rest = emit_rest = None
        if T_obs > 0:
            x_prev_seq = torch.cat([x_prev.expand(B, 1, -1), x[:, :-1]], dim=1)  # x_0 .. x_{T-1}
            hx_prev_seq = hx_seq[:, :T_obs] if h_x is not None else None  # h^x_0 .. h^x_{T-1}
            if spec.base.feedforward:
                trans_rest = hx_prev_seq if (spec.feedforward and not joint) else x_prev_seq
            if spec.base.autoregressive and not joint:
                emit_rest = hx_prev_seq if spec.autoregression else x_prev_seq
        trans_step = head_steps(transition, c.h_dim if spec.transition else c.z_dim, trans_rest)
        emit_step = head_steps(emitter, c.h_dim if (spec.emission or joint) else c.z_dim, emit_rest)
        # per-step views made once: one backward node (unbind), not a full-size zero gradient per step
        masks = mask.unbind(1) if mask is not None else None
        x_obs = x.unbind(1) if T_obs > 0 else ()
        hx_steps = step_views(hx_seq) if h_x is not None else ()
        xs = []
        with pyro.plate("sequences", B, dim=-1):
            for t in pyro.markov(range(1, T + 1)):
                m_t = masks[t - 1] if (masks is not None and t <= T_obs) else None
                if t == 1 and initial is not None:  # p(z_1)
                    loc, scale = initial()
                else:  # p(z_t | zeta_{t-1}, xi^z_{t-1})
                    zc = h_z if spec.transition else z_prev
                    xc = None
                    if spec.base.feedforward:
                        xc = h_x if (spec.feedforward and not joint) else x_prev
                    loc, scale = trans_step(t - 1, zc, xc)
                z_dist = dist.Normal(loc, scale).to_event(1)
                with poutine.scale(scale=annealing_factor):
                    z_t = pyro.sample(site_name("z", t), z_dist if m_t is None else z_dist.mask(m_t))
                if spec.has_z_rnn:
                    h_z = self._shared_latent_step(z_cell, z_t, h_z, x_prev)
                # p(x_t | zeta'_t, xi^x_{t-1})
                if joint:
                    x_dist = emit_step(t - 1, h_z)
                else:
                    ec = h_z if spec.emission else z_t
                    ex = None
                    if spec.base.autoregressive:
                        ex = h_x if spec.autoregression else x_prev
                    x_dist = emit_step(t - 1, ec, ex)
                obs = x_obs[t - 1] if t <= T_obs else None
                x_t = pyro.sample(site_name("x", t), x_dist if m_t is None else x_dist.mask(m_t), obs=obs)
                xs.append(x_t)
                # advance the observation contexts
                x_prev = x_t
                if h_x is not None:
                    h_x = hx_steps[t] if t <= T_obs else gru_step(x_rnn, x_t, h_x)
                z_prev = z_t
        self.clear_shared_states()
        return torch.stack(torch.broadcast_tensors(*xs), dim=-2)

    # ----------------------------------------------------------- generation
    @torch.no_grad()
    def generate(self, num_steps: int, batch_size: int = 1, prefix: Optional[torch.Tensor] = None,
                 guide=None, mean: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sample sequences from the prior, or continue given prefixes.

        Args:
            num_steps: number of *new* steps to generate.
            batch_size: number of sequences (ignored when ``prefix`` is given).
            prefix: optional ``(B, T0, x_dim)`` prefixes of equal length; their
                latent states are drawn from ``guide`` (required then) and the
                prior is rolled forward from there.
            guide: a guide for this model, used to infer the prefix's latents.
            mean: return each new step's emission mean ``E[x_t | z_t, x_{<t}]`` instead of its
                sample (the sample still drives the steps after it); the prefix is returned as given.

        Returns:
            ``(x, z)`` of shapes ``(B, T0 + num_steps, x_dim)`` and
            ``(B, T0 + num_steps, z_dim)``; ``x`` starts with the prefix.
        """
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if prefix is None:
            tr = poutine.trace(self).get_trace(None, num_steps=num_steps, batch_size=batch_size)
            T = num_steps
        else:
            if guide is None:
                raise ValueError("continuing a prefix needs a guide to infer its latent states")
            T0 = prefix.shape[1] if prefix.dim() == 3 else None
            if T0 is None:
                raise ValueError(f"prefix must have shape (B, T0, x_dim), got {tuple(prefix.shape)}")
            guide_tr = poutine.trace(guide).get_trace(prefix)
            tr = poutine.trace(poutine.replay(self, trace=guide_tr)).get_trace(
                prefix, num_steps=T0 + num_steps)
            T = T0 + num_steps
        xs = tr.nodes["_RETURN"]["value"]
        if mean:
            first = T - num_steps  # the new steps are T0 + 1 .. T (1-based)
            means = [tr.nodes[site_name("x", t)]["fn"].mean for t in range(first + 1, T + 1)]
            xs = torch.cat([xs[..., :first, :], torch.stack(means, dim=-2)], dim=-2)
        zs = torch.stack([tr.nodes[site_name("z", t)]["value"] for t in range(1, T + 1)], dim=-2)
        return xs, zs
