"""Neural building blocks of the DSSM family.

(About 550 lines: every head shares the hoisted per-step form of :func:`head_steps`, which is the
reason they sit in one module; the emission families are in :mod:`pyro_dssm.nn.emissions`.)

Each module names the factor of the taxonomy paper [1] that it parameterises.
Tensors carry arbitrary leading batch dimensions ``*batch`` (the batch ``B``,
and a particle dimension in front of it under vectorised ELBOs); the last
dimension is the feature dimension.

[1] S. Tang et al., "A Hierarchical Taxonomy for Deep State Space Models",
    arXiv:2412.11211.
[2] R. Krishnan, U. Shalit, D. Sontag, "Structured Inference Networks for
    Nonlinear State Space Models", AAAI 2017, arXiv:1609.09869.
"""

from __future__ import annotations

import contextlib
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

import pyro.distributions as dist

from .emissions import get_emission, inverse_softplus, list_emissions, smoothed, softplus_scale

__all__ = [
    "bcat",
    "cell_step",
    "HeadSteps",
    "head_steps",
    "hoisted_steps",
    "steps_hoisted",
    "step_views",
    "gru_step",
    "reverse_padded",
    "GaussianHead",
    "GatedTransition",
    "InitialGaussian",
    "LinearGaussianHead",
    "EmissionHead",
    "EMISSIONS",
    "Combiner",
    "data_moments",
    "inverse_softplus",
    "smoothed_frequency",
]

#: The built-in emission families (:func:`pyro_dssm.nn.emissions.list_emissions` also lists later registrations).
EMISSIONS = tuple(list_emissions())

# The per-step path of the time loops (see :func:`hoisted_steps`): True = the x-only part of each
# head's first layer computed for every step before the loop and the output heads fused.
_HOISTED = [True]


@contextlib.contextmanager
def hoisted_steps(enabled: bool = True):
    """Within the block, time loops run their heads as before 2026-12 (``enabled=False``) or hoisted (default).

    Hoisted, a head whose input is ``[u_t; v_t]`` with ``v_t`` known from ``x`` alone
    (``h^x_{t-1}``, ``x_{t-1}``, the guide's ``g_t``) computes ``W_v v_t + b`` for every
    observed step in one matrix product before the loop, leaving ``W_u u_t`` per step,
    and its output layers (location and scale) run as one matrix product. The model
    and its parameters are the same; the results equal the plain path's to rounding.
    ``benchmarks/`` use ``enabled=False`` to measure the old path side by side.
    """
    before = _HOISTED[0]
    _HOISTED[0] = bool(enabled)
    try:
        yield
    finally:
        _HOISTED[0] = before


def steps_hoisted() -> bool:
    """Whether time loops take the hoisted path now (:func:`hoisted_steps`)."""
    return _HOISTED[0]


def step_views(seq: torch.Tensor, dim: int = 1) -> Sequence[torch.Tensor]:
    """The steps of ``seq`` along ``dim``: one ``unbind`` (hoisted), or one slice per step (the old path).

    A slice's backward fills a zero tensor of the whole sequence's size for every step
    (quadratic in ``T``); ``unbind``'s backward stacks the steps' gradients once.
    """
    if steps_hoisted():
        return seq.unbind(dim)
    return [seq.select(dim, t) for t in range(seq.shape[dim])]


def _ahead(weight: torch.Tensor, bias: Optional[torch.Tensor], first: int,
           rest: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """``W[:, first:] v + b`` for ``rest`` = ``v`` ``(B, T, d_v)`` (all steps at once); ``None`` without ``rest``."""
    if rest is None:
        return None
    return F.linear(rest, weight[:, first:], bias)


def _first_layer_fn(weight: torch.Tensor, bias: Optional[torch.Tensor], first: int):
    """``f(u, ahead_t, v) = W [u; v] + b`` of one step: ``W_u u + ahead_t`` with ``ahead_t = W_v v + b``
    precomputed, else from ``v`` itself. ``W_u`` is sliced once here, not per step (a slice's backward
    fills a zero tensor of the whole weight's size each time)."""
    w_u = weight[:, :first]

    def first_layer(u, ahead_t, v):
        if ahead_t is not None:
            return F.linear(u, w_u) + ahead_t
        return F.linear(bcat((u, v)), weight, bias)

    return first_layer


class HeadSteps:
    """A head's per-step function for one call of a time loop: ``f(t, u_t, v_t) -> outputs``.

    Built by a head's ``steps(first, rest)``: ``first`` is the width of the per-step
    input ``u_t``; ``rest`` ``(B, T, d_v)`` holds the x-only input ``v_t`` of every
    observed step (or ``None``). Step ``t`` (0-based) with ``t < T`` uses the
    precomputed part; later steps (generation) and the plain path use ``v_t`` as given.
    The precomputed ``(B, T, .)`` tensor is split into steps once (``unbind``: one
    backward node for all steps, not a zero-filled full-size gradient per step).
    """

    def __init__(self, fn, ahead: Optional[torch.Tensor]):
        self.fn, self.ahead = fn, ahead
        self._ahead_steps = () if ahead is None else step_views(ahead, -2)

    def __call__(self, t: int, u: torch.Tensor, v: Optional[torch.Tensor] = None):
        return self.fn(u, v, self._ahead_steps[t] if t < len(self._ahead_steps) else None)


def head_steps(head: nn.Module, first: int, rest: Optional[torch.Tensor]) -> HeadSteps:
    """``head.steps(first, rest)`` if the head has it and hoisting is on, else its plain ``head(u, v)`` per step.

    A user's own head module (any ``nn.Module`` called as ``head(u, v)``) works unchanged.
    """
    if steps_hoisted() and hasattr(head, "steps"):
        return head.steps(first, rest)
    return HeadSteps(lambda u, v, _: head(u, v), None)


def bcat(tensors: Sequence[Optional[torch.Tensor]]) -> torch.Tensor:
    """Concatenate along the last dim after broadcasting the leading dims.

    ``None`` entries are skipped, so optional inputs can be passed as they are.
    """
    ts = [t for t in tensors if t is not None]
    if len(ts) == 1:
        return ts[0]
    shape = torch.broadcast_shapes(*(t.shape[:-1] for t in ts))
    return torch.cat([t.expand(shape + t.shape[-1:]) for t in ts], dim=-1)


def cell_step(cell: nn.RNNCellBase, inp: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One step of an RNN cell on inputs with any (broadcastable) leading dims.

    Args:
        inp: ``(*batch, input_size)``.
        h: ``(*batch, hidden_size)``.

    Returns:
        ``(*batch, hidden_size)``.
    """
    shape = torch.broadcast_shapes(inp.shape[:-1], h.shape[:-1])
    out = cell(inp.expand(shape + inp.shape[-1:]).reshape(-1, inp.shape[-1]),
               h.expand(shape + h.shape[-1:]).reshape(-1, h.shape[-1]))
    return out.reshape(shape + out.shape[-1:])


def gru_step(gru: nn.GRU, inp: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One step of a single-layer, batch-first ``nn.GRU`` (used when generating).

    Args:
        inp: ``(*batch, input_size)``.
        h: ``(*batch, hidden_size)``.

    Returns:
        ``(*batch, hidden_size)``, equal to the GRU's output at that step.
    """
    shape = torch.broadcast_shapes(inp.shape[:-1], h.shape[:-1])
    x = inp.expand(shape + inp.shape[-1:]).reshape(-1, 1, inp.shape[-1])
    h0 = h.expand(shape + h.shape[-1:]).reshape(1, -1, h.shape[-1]).contiguous()
    out, _ = gru(x, h0)
    return out.reshape(shape + out.shape[-1:])


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a right-padded batch within its own length.

    Padding stays at the end, so a forward RNN over the result is a backward
    RNN over each sequence that starts at that sequence's last valid step.
    The operation is its own inverse.

    Args:
        x: ``(B, T, D)``.
        lengths: ``(B,)`` integer lengths, ``1 <= lengths <= T``.
    """
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device).expand(B, T)
    L = lengths.to(device=x.device).unsqueeze(-1)
    idx = torch.where(t < L, L - 1 - t, t)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


def smoothed_frequency(x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-dimension frequency of 1s in binary ``x`` ``(B, T, D)``, smoothed as ``(k + 1/2) / (n + 1)``.

    ``(D,)``, float64, strictly inside (0, 1): a dimension that never (or always) fires
    still has finite log-odds. Steps outside ``mask`` ``(B, T)`` are left out.
    """
    n, mean, _ = data_moments(x, mask)
    return smoothed(n, mean)


def data_moments(x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
    """Per-dimension count, mean and standard deviation of ``x`` ``(B, T, D)`` over valid, observed entries.

    Steps outside ``mask`` ``(B, T)`` and NaN entries (unobserved values) are left out.
    Returns three ``(D,)`` tensors; a dimension without entries has count 0, mean 0 and std 1.
    """
    x = x.detach().to(torch.float64)
    seen = ~torch.isnan(x)
    if mask is not None:
        seen = seen & mask.unsqueeze(-1)
    v = torch.where(seen, x, torch.zeros(()).to(x))
    n = seen.sum((0, 1)).to(x.dtype)
    mean = v.sum((0, 1)) / n.clamp_min(1)
    var = (torch.where(seen, (x - mean) ** 2, torch.zeros(()).to(x))).sum((0, 1)) / n.clamp_min(1)
    std = torch.where(n > 0, var.sqrt(), torch.ones_like(var))
    return n, mean, std


class InitialGaussian(nn.Module):
    r"""The initial distribution ``p(z_1) = N(mu_1, diag(sigma_1^2))``, a learned location and scale.

    ``sigma_1 = softplus(rho_1) + min_scale``; it starts at ``N(0, I)``. The first latent
    state has its own spread, independent of the transition's: data whose initial
    state is broader (or narrower) than its process noise is then in the model class,
    as in ``GaussianHMM``'s ``initial_dist`` and dynamax's initial distribution.
    Call it with no arguments; returns ``(loc, scale)``, each ``(z_dim,)``.
    """

    def __init__(self, z_dim: int, init_scale: float = 1.0, min_scale: float = 1e-3):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(z_dim))
        self.raw_scale = nn.Parameter(inverse_softplus(torch.full((z_dim,), float(init_scale) - min_scale)))
        self.min_scale = min_scale

    def forward(self) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.loc, softplus_scale(self.raw_scale, self.min_scale)


class GaussianHead(nn.Module):
    r"""Dual-head MLP ``d_z`` giving a diagonal Gaussian, e.g. ``p(z_t | d_z(h_{t-1}))`` of eq. (2).

    ``loc, scale = W_loc a + b, softplus(W_s a + b) + min_scale`` with
    ``a = act(W_1 u + b_1)`` and ``u`` the concatenated inputs.

    Args:
        in_dim: total input width.
        out_dim: dimension of the Gaussian.
        hidden_dim: width of the shared hidden layer.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, min_scale: float = 1e-3,
                 activation: str = "tanh"):
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.act = {"tanh": nn.Tanh(), "relu": nn.ReLU()}[activation]
        self.loc = nn.Linear(hidden_dim, out_dim)
        self.scale = nn.Linear(hidden_dim, out_dim)
        self.min_scale = min_scale

    def forward(self, *inputs: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        a = self.act(self.hidden(bcat(inputs)))
        return self.loc(a), softplus_scale(self.scale(a), self.min_scale)

    def steps(self, first: int, rest: Optional[torch.Tensor]) -> HeadSteps:
        """The hoisted per-step form (:class:`HeadSteps`): ``(loc, scale)`` from one fused output layer."""
        w, b = self.hidden.weight, self.hidden.bias
        first_layer = _first_layer_fn(w, b, first)
        w_out = torch.cat([self.loc.weight, self.scale.weight])
        b_out = torch.cat([self.loc.bias, self.scale.bias])
        act, n = self.act, self.loc.out_features

        def step(u, v, ahead_t):
            out = F.linear(act(first_layer(u, ahead_t, v)), w_out, b_out)
            return out[..., :n], softplus_scale(out[..., n:], self.min_scale)

        return HeadSteps(step, _ahead(w, b, first, rest))


class GatedTransition(nn.Module):
    r"""Gated transition of the DMM [2], ``p(z_t | z_{t-1})`` (Krishnan et al. 2017, Sec. 5).

    .. math::
        g_t = \sigma(W_g \,\mathrm{relu}(U_g u)),\quad
        \tilde\mu_t = W_p \,\mathrm{relu}(U_p u),\\
        \mu_t = (1 - g_t) \odot W_\mu z_{t-1} + g_t \odot \tilde\mu_t,\quad
        \sigma_t = \mathrm{softplus}(W_\sigma \,\mathrm{relu}(\tilde\mu_t)),

    where ``u`` is ``z_{t-1}`` concatenated with any extra conditioning inputs
    (``x_{t-1}`` for the F-HMM/DMM-Aug bases). The linear path ``W_mu`` starts
    at the identity, as in [2].
    """

    def __init__(self, z_dim: int, in_dim: int, hidden_dim: int, min_scale: float = 1e-3):
        super().__init__()
        self.gate_hidden = nn.Linear(in_dim, hidden_dim)
        self.gate = nn.Linear(hidden_dim, z_dim)
        self.proposed_hidden = nn.Linear(in_dim, hidden_dim)
        self.proposed = nn.Linear(hidden_dim, z_dim)
        self.z_to_loc = nn.Linear(z_dim, z_dim)
        self.scale = nn.Linear(z_dim, z_dim)
        nn.init.eye_(self.z_to_loc.weight)
        nn.init.zeros_(self.z_to_loc.bias)
        self.min_scale = min_scale

    def forward(self, z_prev: torch.Tensor, *extra: Optional[torch.Tensor]
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        u = bcat((z_prev,) + extra)
        gate = torch.sigmoid(self.gate(F.relu(self.gate_hidden(u))))
        proposed = self.proposed(F.relu(self.proposed_hidden(u)))
        loc = (1 - gate) * self.z_to_loc(z_prev) + gate * proposed
        scale = softplus_scale(self.scale(F.relu(proposed)), self.min_scale)
        return loc, scale

    def steps(self, first: int, rest: Optional[torch.Tensor]) -> HeadSteps:
        """The hoisted per-step form: both hidden layers (gate, proposal) as one matrix product."""
        w = torch.cat([self.gate_hidden.weight, self.proposed_hidden.weight])
        b = torch.cat([self.gate_hidden.bias, self.proposed_hidden.bias])
        H = self.gate_hidden.out_features
        first_layer = _first_layer_fn(w, b, first)

        def step(z_prev, v, ahead_t):
            hid = F.relu(first_layer(z_prev, ahead_t, v))
            gate = torch.sigmoid(self.gate(hid[..., :H]))
            proposed = self.proposed(hid[..., H:])
            loc = (1 - gate) * self.z_to_loc(z_prev) + gate * proposed
            return loc, softplus_scale(self.scale(F.relu(proposed)), self.min_scale)

        return HeadSteps(step, _ahead(w, b, first, rest))


class LinearGaussianHead(nn.Module):
    r"""Linear-Gaussian factor ``N(W u, diag(s^2))`` with a learned constant scale.

    With it as both transition and emission the HMM base is a linear-Gaussian
    state space model, whose exact likelihood the Kalman filter gives.
    """

    def __init__(self, in_dim: int, out_dim: int, init_scale: float = 1.0):
        super().__init__()
        self.weight = nn.Linear(in_dim, out_dim, bias=False)
        raw = torch.full((out_dim,), float(init_scale)).expm1().log()
        self.raw_scale = nn.Parameter(raw)

    @property
    def scale_value(self) -> torch.Tensor:
        return F.softplus(self.raw_scale)

    def forward(self, *inputs: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        loc = self.weight(bcat(inputs))
        return loc, self.scale_value.expand(loc.shape)

    def steps(self, first: int, rest: Optional[torch.Tensor]) -> HeadSteps:
        """The hoisted per-step form: ``W_v v_t`` for every step ahead, the scale computed once."""
        w, scale = self.weight.weight, self.scale_value
        first_layer = _first_layer_fn(w, None, first)

        def step(u, v, ahead_t):
            loc = first_layer(u, ahead_t, v)
            return loc, scale.expand(loc.shape)

        return HeadSteps(step, _ahead(w, None, first, rest))


class EmissionHead(nn.Module):
    r"""The observation model ``p(x_t | d_x(\cdot))`` of eqs. (3), (14), (15), (17), (19).

    Families (``family``, :mod:`pyro_dssm.nn.emissions`): ``"bernoulli"`` (binary piano rolls),
    ``"gaussian"`` (real-valued series), ``"itakura_saito"`` (power spectrograms, App. C),
    ``"gaussian_power"`` (a Gaussian on power values, as the paper's own code does), or any
    family registered with :func:`~pyro_dssm.nn.emissions.register_emission`. The network has one
    output head per parameter of the family (``num_params``).

    Networks (``net``): ``"mlp"`` (one hidden layer, dual head), ``"deep"``
    (two ReLU hidden layers, the DMM emitter of [2]) or ``"linear"``.
    """

    def __init__(self, in_dim: int, x_dim: int, hidden_dim: int, family: str = "gaussian",
                 net: str = "mlp", min_scale: float = 1e-3):
        super().__init__()
        self.emission = get_emission(family)  # raises, naming the known families
        if net not in ("mlp", "deep", "linear"):
            raise ValueError(f"unknown emission network {net!r}; expected 'mlp', 'deep' or 'linear'")
        self.family = family
        self.net = net
        self.min_scale = min_scale
        n_out = self.emission.num_params
        if net == "linear":
            if n_out == 2:  # a location and a scale: the scale is a free parameter per dimension
                self.body = LinearGaussianHead(in_dim, x_dim)
            elif n_out == 1:
                self.body = nn.Linear(in_dim, x_dim)
            else:
                raise ValueError(f"the linear emission network has no form for {n_out} parameters per dimension")
            return
        layers = [nn.Linear(in_dim, hidden_dim), nn.ReLU() if net == "deep" else nn.Tanh()]
        if net == "deep":
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Linear(hidden_dim, x_dim) for _ in range(n_out))

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> None:
        """Start the output layer's biases at the data's per-dimension statistics (the model is unchanged).

        With PyTorch's default initialisation every output starts near 0: a Bernoulli key
        near probability 0.5 where piano keys sound in about 4% of frames, a Gaussian at
        mean 0 and scale 0.7 whatever the data's. Training then first spends its steps
        learning those statistics, and some seeds never leave that plateau. Here, from
        ``x`` ``(B, T, x_dim)`` over the steps of ``mask`` ``(B, T)``, the family's
        :meth:`~pyro_dssm.nn.emissions.Emission.initial_biases`:

        * ``bernoulli``: the logits' bias is the log-odds ``log(p / (1 - p))`` of each
          dimension's frequency ``p`` (smoothed as ``(k + 1/2) / (n + 1)``, so that a
          dimension that never fires gets a finite bias);
        * ``gaussian`` and ``gaussian_power``: the mean's bias is the data's mean, its
          weights are scaled by the data's standard deviation (so the mean moves in the
          data's units), and the scale's bias gives the data's standard deviation
          (``softplus(b) + min_scale``); the linear head (no bias) only gets the scale;
        * ``itakura_saito``: the log-variance's bias is the log of the mean power per bin.

        Otherwise the weights keep their initialisation, so the initial predictions vary
        around these values with the inputs.
        """
        n, mean, std = data_moments(x, mask)
        if not bool((n > 0).any()):
            raise ValueError("init_from_data needs at least one valid, observed entry of x")
        biases = self.emission.initial_biases(n, mean, std, self.min_scale)
        if self.net == "linear":
            if isinstance(self.body, LinearGaussianHead):
                self.body.raw_scale.copy_(inverse_softplus(std.clamp_min(1e-3)))
            else:
                self.body.bias.copy_(biases[0])
            return
        for head, b in zip(self.heads, biases):
            head.bias.copy_(b)
        if self.emission.scale_mean_weights:  # the mean varies with its inputs in units of the data's std
            self.heads[0].weight.mul_(std.to(self.heads[0].weight).unsqueeze(-1))

    def forward(self, *inputs: Optional[torch.Tensor]) -> dist.TorchDistribution:
        """Returns the distribution of ``x_t``, batch shape ``*batch``, event shape ``(x_dim,)``."""
        u = bcat(inputs)
        if self.net == "linear":
            if isinstance(self.body, LinearGaussianHead):
                loc, scale = self.body(u)
                return dist.Normal(loc, scale).to_event(1)
            out = (self.body(u),)
        else:
            a = self.body(u)
            out = tuple(h(a) for h in self.heads)
        return self._distribution(out)

    def _distribution(self, out: Sequence[torch.Tensor]) -> dist.TorchDistribution:
        """The family's distribution from the network's outputs (one per parameter)."""
        return self.emission.distribution(out, self.min_scale)

    def steps(self, first: int, rest: Optional[torch.Tensor]) -> HeadSteps:
        """The hoisted per-step form (:class:`HeadSteps`) returning the distribution of ``x_t``.

        The x-only part of the first layer runs for every step ahead; the output heads
        (one per parameter of the family) run as one matrix product.
        """
        if self.net == "linear":
            if isinstance(self.body, LinearGaussianHead):
                inner = self.body.steps(first, rest)
                return HeadSteps(lambda u, v, a: dist.Normal(*inner.fn(u, v, a)).to_event(1), inner.ahead)
            w, b = self.body.weight, self.body.bias
            first_layer = _first_layer_fn(w, b, first)
            return HeadSteps(lambda u, v, a: self._distribution((first_layer(u, a, v),)), _ahead(w, b, first, rest))
        first_layer, rest_of_body = self.body[0], self.body[1:]
        w, b = first_layer.weight, first_layer.bias
        first_fn = _first_layer_fn(w, b, first)
        w_out = torch.cat([h.weight for h in self.heads])
        b_out = torch.cat([h.bias for h in self.heads])
        n = len(self.heads)

        def step(u, v, ahead_t):
            out = F.linear(rest_of_body(first_fn(u, ahead_t, v)), w_out, b_out)
            return self._distribution(out.chunk(n, dim=-1) if n > 1 else (out,))

        return HeadSteps(step, _ahead(w, b, first, rest))


class Combiner(nn.Module):
    r"""Guide factor ``q(z_t | c_t, g_t)``: the combiner function of [2], generalised.

    .. math::
        a_t = \tfrac12\big(\tanh(W_c c_t + b_c) + P g_t\big),\quad
        \mu_t = W_\mu a_t + b_\mu,\quad \sigma_t = \mathrm{softplus}(W_\sigma a_t + b_\sigma)

    ``c_t`` is the latent context (``z_{t-1}``, a generative RNN state such as
    ``h^1_{t-1}`` of eq. (8), or an inference RNN state ``H_{t-1}``) and
    ``g_t`` the observation features (RNN states over ``x``). ``P g_t`` does
    not depend on the latent path, so :meth:`project` computes it for every
    step at once.
    """

    def __init__(self, c_dim: int, g_dim: int, z_dim: int, hidden_dim: int,
                 min_scale: float = 1e-3):
        super().__init__()
        self.c_to_hidden = nn.Linear(c_dim, hidden_dim)
        self.g_to_hidden = nn.Linear(g_dim, hidden_dim)
        self.loc = nn.Linear(hidden_dim, z_dim)
        self.scale = nn.Linear(hidden_dim, z_dim)
        self.min_scale = min_scale

    def project(self, g: torch.Tensor) -> torch.Tensor:
        """``P g`` for features ``(B, T, g_dim)`` -> ``(B, T, hidden_dim)``."""
        return self.g_to_hidden(g)

    def forward(self, c: torch.Tensor, g_proj: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(loc, scale, a_t)``; ``a_t`` is the context of a conditional IAF."""
        a = 0.5 * (torch.tanh(self.c_to_hidden(c)) + g_proj)
        return self.loc(a), softplus_scale(self.scale(a), self.min_scale), a

    def steps(self, g_proj: torch.Tensor) -> HeadSteps:
        """Per-step ``f(t, c_t) -> (loc, scale, a_t)`` over ``g_proj`` ``(B, T, hidden)`` (:meth:`project`).

        Hoisted (:func:`hoisted_steps`): location and scale from one fused output layer and
        ``P g_t / 2`` halved once for all steps; plain: :meth:`forward` per step.
        """
        if not steps_hoisted():
            return HeadSteps(lambda c, _, g_t: self(c, g_t), g_proj)
        w_out = torch.cat([self.loc.weight, self.scale.weight])
        b_out = torch.cat([self.loc.bias, self.scale.bias])
        n, c_to_hidden = self.loc.out_features, self.c_to_hidden

        def step(c, _, half_g_t):
            a = torch.tanh(c_to_hidden(c)) * 0.5 + half_g_t
            out = F.linear(a, w_out, b_out)
            return out[..., :n], softplus_scale(out[..., n:], self.min_scale), a

        return HeadSteps(step, g_proj * 0.5)
