r"""Diagonal structured state space layers (S4D) in pure PyTorch: the SSM of LS4 [1], eqs. (1)-(3) and (6).

Each of ``H`` channels is a SISO linear SSM with a diagonal complex state matrix
``A = diag(a_1..a_{N/2})`` whose modes come with their complex conjugates, so the
real SSM has state size ``N`` and the output is ``2 Re(...)`` over ``N/2`` modes [2]:

.. math::
    h'(t) = A h(t) + B u(t),\qquad y(t) = 2\,\mathrm{Re}(C h(t)) + D u(t).

Discretised with step ``Delta`` (learnable per channel), by zero-order hold
``Abar = exp(Delta A)``, ``Bbar = (Abar - 1) / A * B``, or bilinearly
``Abar = (1 + Delta A / 2) / (1 - Delta A / 2)``, ``Bbar = Delta B / (1 - Delta A / 2)``,
the layer has two equal forms:

* **convolution** (training): ``y = K * u + D u`` with the kernel
  ``K_l = 2 Re(sum_n C_n Abar_n^l Bbar_n)`` (a Vandermonde product, ``O(H N L)``)
  applied by FFT in ``O(H L log L)``;
* **recurrence** (generation): ``s_t = Abar s_{t-1} + Bbar u_t``,
  ``y_t = 2 Re(C s_t) + D u_t``, ``O(H N)`` per step (:meth:`S4D.step`).

``A`` is initialised from HiPPO [3]: ``"legs"`` takes the eigenvalues of the
normal part of the HiPPO-LegS matrix (S4D-LegS) with ``B`` projected on its
eigenvectors; ``"lin"`` sets ``a_n = -1/2 + i pi n`` and ``B = 1`` (S4D-Lin).

:class:`S4D` maps one input stream; :class:`TwoStreamS4D` is the two-input SSM
of LS4's eq. (6), ``h' = A h + B x + E z``, ``y = C h + D x + F z``.

[1] L. Zhou et al., "Deep Latent State Space Models for Time-Series Generation", ICML 2023.
[2] A. Gu et al., "On the Parameterization and Initialization of Diagonal State Space Models", NeurIPS 2022.
[3] A. Gu et al., "HiPPO: Recurrent Memory with Optimal Polynomial Projections", NeurIPS 2020.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import torch
import torch.nn as nn
from pyro.nn import PyroModule

__all__ = ["hippo_legs", "s4d_init", "causal_fft_conv", "S4DKernel", "S4D", "TwoStreamS4D",
           "cached_discretisation"]

INITS = ("legs", "lin")
DISCRETISATIONS = ("zoh", "bilinear")


def hippo_legs(N: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The HiPPO-LegS matrix ``A`` ``(N, N)``, its input ``B`` ``(N,)`` and the low-rank ``P`` with
    ``A + P P^T = -I/2 + (skew-symmetric)``, the normal part whose eigenvalues S4D-LegS uses (float64)."""
    n = torch.arange(N, dtype=torch.float64)
    r = torch.sqrt(2 * n + 1)
    A = -torch.tril(r[:, None] * r[None, :], diagonal=-1) - torch.diag(n + 1)
    return A, r.clone(), torch.sqrt(n + 0.5)


def s4d_init(N: int, init: str = "legs") -> Tuple[torch.Tensor, torch.Tensor]:
    """``N/2`` complex modes ``a`` (``Im a >= 0``; their conjugates are implied) and input vector ``B``."""
    if N < 2 or N % 2:
        raise ValueError(f"the state size N must be an even integer >= 2 (modes come in conjugate pairs), got {N}")
    if init not in INITS:
        raise ValueError(f"unknown S4D initialisation {init!r}; expected one of {INITS}")
    if init == "lin":
        a = torch.complex(-0.5 * torch.ones(N // 2, dtype=torch.float64),
                          math.pi * torch.arange(N // 2, dtype=torch.float64))
        return a, torch.ones(N // 2, dtype=torch.complex128)
    A, B, P = hippo_legs(N)
    S = A + P[:, None] * P[None, :]
    evals, V = torch.linalg.eig(S)
    keep = torch.argsort(evals.imag, descending=True)[:N // 2]  # one of each conjugate pair
    Bp = torch.linalg.solve(V, B.to(torch.complex128))  # B in the eigenbasis
    # each pair's two modes contribute conjugate terms; 2 Re(.) over one of them gives the real SSM
    return evals[keep], Bp[keep]


def causal_fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Causal convolution ``y_t = sum_{j<=t} k_{t-j} u_j`` along the last axis, by FFT.

    Args:
        u: ``(..., H, L)``; k: ``(H, L)`` (broadcast over the leading dimensions).
    """
    L = u.shape[-1]
    n = 2 * L  # zero padding: no wrap-around
    return torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :L]


class S4DKernel(nn.Module):
    r"""The diagonal SSM's parameters and their discretisation: ``(Abar, Bbar)`` per channel and mode.

    Parameters: ``log_dt`` ``(H,)`` (step size, log-uniform in ``[dt_min, dt_max]``),
    ``log_neg_re_a`` and ``im_a`` ``(H, N/2)`` (``Re a = -exp(log_neg_re_a) < 0``: stable),
    and ``B`` as real pairs ``(H, N/2, 2)``.
    """

    def __init__(self, H: int, N: int = 64, init: str = "legs", discretisation: str = "zoh",
                 dt_min: float = 1e-3, dt_max: float = 1e-1, learn_dt: bool = True):
        super().__init__()
        if discretisation not in DISCRETISATIONS:
            raise ValueError(f"unknown discretisation {discretisation!r}; expected one of {DISCRETISATIONS}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        a, b = s4d_init(N, init)
        self.H, self.N, self.discretisation = H, N, discretisation
        log_dt = torch.rand(H, dtype=torch.float64) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        dtype = torch.get_default_dtype()
        self.log_dt = nn.Parameter(log_dt.to(dtype), requires_grad=learn_dt)
        self.log_neg_re_a = nn.Parameter(torch.log(-a.real).repeat(H, 1).to(dtype))
        self.im_a = nn.Parameter(a.imag.repeat(H, 1).to(dtype))
        self.B = nn.Parameter(torch.view_as_real(b).repeat(H, 1, 1).to(dtype))

    def modes(self, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """Continuous-time ``a`` ``(H, N/2)`` complex (computed in real ``dtype``, default the parameters')."""
        re, im = self.log_neg_re_a, self.im_a
        if dtype is not None:
            re, im = re.to(dtype), im.to(dtype)
        return torch.complex(-torch.exp(re), im)

    def discretise(self, B: Optional[torch.Tensor] = None, dtype: Optional[torch.dtype] = None
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(Abar, Bbar)``, each ``(H, N/2)`` complex; ``B`` (real pairs ``(H, N/2, 2)``) defaults to the layer's."""
        a = self.modes(dtype)
        B = self.B if B is None else B
        b = torch.view_as_complex((B if dtype is None else B.to(dtype)).contiguous())
        dt = torch.exp(self.log_dt if dtype is None else self.log_dt.to(dtype)).unsqueeze(-1)
        if self.discretisation == "zoh":
            dA = torch.exp(dt * a)
            return dA, (dA - 1) / a * b
        half = dt * a / 2
        return (1 + half) / (1 - half), dt * b / (1 - half)

    def _powers(self, L: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """``Abar^(jM)`` ``(H, N/2, J)`` and ``Abar^i`` ``(H, N/2, M)`` with ``l = jM + i``, ``M ~ sqrt(L)``.

        Computed in float64 and only then rounded to the parameters' precision: in float32 the
        phase ``l Delta Im(a)`` reaches 1e5 radians for long sequences, and ``exp(l log Abar)``
        would lose three digits.
        """
        log_abar = torch.log(self.discretise(dtype=torch.float64)[0])  # (H, N/2)
        M = max(1, math.isqrt(L - 1) + 1) if L > 1 else 1
        J = -(-L // M)
        dev = log_abar.device
        low = torch.exp(log_abar.unsqueeze(-1) * torch.arange(M, device=dev, dtype=torch.float64))
        high = torch.exp(log_abar.unsqueeze(-1) * (M * torch.arange(J, device=dev, dtype=torch.float64)))
        cdtype = torch.complex128 if self.im_a.dtype == torch.float64 else torch.complex64
        return high.to(cdtype), low.to(cdtype)

    def vandermonde(self, L: int) -> torch.Tensor:
        """``Abar^l`` for ``l = 0..L-1``: ``(H, N/2, L)`` complex (for inspection; :meth:`kernel` never builds it)."""
        high, low = self._powers(L)
        v = high.unsqueeze(-1) * low.unsqueeze(-2)  # (H, N/2, J, M)
        return v.reshape(*v.shape[:-2], -1)[..., :L]

    def kernel(self, C: torch.Tensor, L: int, B: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``K_l = 2 Re(sum_n C_n Abar_n^l Bbar_n)``, ``l = 0..L-1``: ``(H, L)`` real.

        With ``l = jM + i`` the sum is a batched matrix product,
        ``K_(j, i) = sum_n (C_n Bbar_n Abar_n^(jM)) Abar_n^i``, so memory (and what autograd
        keeps) is ``O(H N sqrt(L) + H L)``, not the ``O(H N L)`` of the full Vandermonde matrix.

        Args:
            C: ``(H, N/2)`` complex output vector.
        """
        _, dB = self.discretise(B)
        high, low = self._powers(L)
        k = torch.einsum("hnj,hni->hji", (C * dB).unsqueeze(-1) * high, low)  # (H, J, M)
        return 2 * k.reshape(k.shape[0], -1)[:, :L].real


def _complex_param(H: int, N: int) -> nn.Parameter:
    # C ~ CN(0, 1) per mode, stored as real pairs
    return nn.Parameter(torch.randn(H, N // 2, 2) * math.sqrt(0.5))


class S4D(PyroModule):
    r"""One S4D layer, ``H`` independent channels: ``y = K * u + D u`` (LS4 eq. (3)).

    Shapes: :meth:`forward` maps ``u`` ``(B, L, H)`` to ``y`` ``(B, L, H)``;
    :meth:`step` maps ``u_t`` ``(B, H)`` and a state ``(B, H, N/2)`` complex to
    ``(y_t, state)``, starting from :meth:`default_state`. Both give the same outputs.

    Args:
        H: channels. N: real state size per channel (even). init: ``"legs"`` or ``"lin"``.
        discretisation: ``"zoh"`` or ``"bilinear"``. dt_min, dt_max: range of the initial step sizes.
        shift: if True the output at ``t`` sees inputs up to ``t - 1`` only (``y_t = sum_{j<t} K_{t-j} u_j``,
            no ``D`` term), LS4's prior layer (eq. 8): the state after ``u_{t-1}``, evolved to ``t``.
    """

    def __init__(self, H: int, N: int = 64, init: str = "legs", discretisation: str = "zoh",
                 dt_min: float = 1e-3, dt_max: float = 1e-1, shift: bool = False):
        super().__init__()
        self.H, self.N, self.shift = H, N, shift
        self.ssm = S4DKernel(H, N, init, discretisation, dt_min, dt_max)
        self.C = _complex_param(H, N)
        self.D = nn.Parameter(torch.randn(H)) if not shift else None

    def kernel(self, L: int) -> torch.Tensor:
        """The convolution kernel ``(H, L)``; with ``shift``, ``K_0 = 0`` and ``K_l = 2 Re(C Abar^l Bbar)``."""
        C = torch.view_as_complex(self.C.contiguous())
        if not self.shift:
            return self.ssm.kernel(C, L)
        dA, _ = self.ssm.discretise()
        k = self.ssm.kernel(C * dA, L - 1) if L > 1 else C.real.new_zeros(self.H, 0)
        return torch.cat([k.new_zeros(self.H, 1), k], dim=-1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``u`` ``(B, L, H)`` -> ``(B, L, H)`` by FFT convolution."""
        if u.shape[-1] != self.H:
            raise ValueError(f"S4D expects inputs with H={self.H} channels in the last dimension, got {tuple(u.shape)}")
        x = u.transpose(-1, -2)  # (B, H, L)
        y = causal_fft_conv(x, self.kernel(x.shape[-1]))
        if self.D is not None:
            y = y + self.D.unsqueeze(-1) * x
        return y.transpose(-1, -2)

    def default_state(self, *batch_shape: int, device=None, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """The zero state ``(*batch_shape, H, N/2)``; its dtype sets the precision of :meth:`step`.

        By default complex64 for a float32 layer and complex128 for a float64 one.
        In complex64 the recurrence agrees with the float32 convolution to about
        1e-5 relative after 2048 steps (``tests/test_s4.py`` holds it to 3e-5); pass
        ``dtype=torch.complex128`` for a double-precision recurrence (about 1e-6), at
        twice the memory traffic per step.
        """
        if dtype is None:
            dtype = torch.complex128 if self.C.dtype == torch.float64 else torch.complex64
        return torch.zeros(*batch_shape, self.H, self.N // 2, dtype=dtype, device=device or self.C.device)

    def _step_params(self, dtype: torch.dtype = torch.complex128) -> Tuple[torch.Tensor, ...]:
        """``(Abar, Bbar, 2 C' [, Ebar])`` in the state's precision ``dtype`` for :meth:`step`.

        ``C' = C Abar`` for the shifted layer (its output reads the state evolved one step),
        else ``C``; the factor 2 of ``2 Re(.)`` is folded in. Discretised in float64 and only
        then rounded. Computed afresh on every call, except inside :func:`cached_discretisation`,
        which discretises once (per precision) for a whole generation loop.
        """
        cache = self.__dict__.get("_step_cache")
        if cache is not None and cache.get(dtype) is not None:
            return cache[dtype]
        dA, dB = self.ssm.discretise(dtype=torch.float64)
        C = torch.view_as_complex(self.C.to(torch.float64).contiguous())
        out: Tuple[torch.Tensor, ...] = (dA, dB, 2 * C * dA if getattr(self, "shift", False) else 2 * C)
        if isinstance(getattr(self, "E", None), torch.Tensor):
            out += (self.ssm.discretise(self.E, dtype=torch.float64)[1],)
        out = tuple(t.to(dtype) for t in out)
        if cache is not None:
            cache[dtype] = out
        return out

    def step(self, u_t: torch.Tensor, state: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """One step of the recurrence: ``u_t`` ``(B, H)``, ``state`` ``(B, H, N/2)`` -> ``(y_t (B, H), state)``.

        Runs in the state's precision (:meth:`default_state`).
        """
        dA, dB, C2 = self._step_params(state.dtype)[:3]
        u = u_t.unsqueeze(-1)
        if self.shift:  # y_t reads the state carried from u_{<t}, evolved one step; then u_t enters
            y = (C2 * state).sum(-1).real
            return y.to(u_t.dtype), dA * state + dB * u
        state = dA * state + dB * u  # (torch.addcmul is about 4x slower for complex tensors on CPU)
        return (C2 * state).sum(-1).real.to(u_t.dtype) + self.D * u_t, state


class TwoStreamS4D(PyroModule):
    r"""The two-input SSM of LS4 eq. (6): ``h' = A h + B x + E z``, ``y = C h + D x + F z``, ``H`` channels.

    ``y = K^x * x + K^z * z + D x + F z`` with ``K^x_l = 2 Re(C Abar^l Bbar)`` and
    ``K^z_l = 2 Re(C Abar^l Ebar)``; both streams share ``A`` and the step size.
    Shapes: ``x``, ``z`` ``(B, L, H)`` -> ``(B, L, H)``; :meth:`step` as :class:`S4D`.
    """

    def __init__(self, H: int, N: int = 64, init: str = "legs", discretisation: str = "zoh",
                 dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        self.H, self.N = H, N
        self.ssm = S4DKernel(H, N, init, discretisation, dt_min, dt_max)
        self.E = nn.Parameter(self.ssm.B.detach().clone())
        self.C = _complex_param(H, N)
        self.D = nn.Parameter(torch.randn(H))
        self.F = nn.Parameter(torch.randn(H))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if x.shape != z.shape or x.shape[-1] != self.H:
            raise ValueError(f"TwoStreamS4D expects x and z of equal shape (B, L, H={self.H}), got "
                             f"{tuple(x.shape)} and {tuple(z.shape)}")
        C = torch.view_as_complex(self.C.contiguous())
        xs, zs = x.transpose(-1, -2), z.transpose(-1, -2)
        L = xs.shape[-1]
        y = causal_fft_conv(xs, self.ssm.kernel(C, L)) + causal_fft_conv(zs, self.ssm.kernel(C, L, B=self.E))
        y = y + self.D.unsqueeze(-1) * xs + self.F.unsqueeze(-1) * zs
        return y.transpose(-1, -2)

    default_state = S4D.default_state
    _step_params = S4D._step_params

    def step(self, x_t: torch.Tensor, z_t: torch.Tensor, state: torch.Tensor
             ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x_t``, ``z_t`` ``(B, H)``, ``state`` ``(B, H, N/2)`` -> ``(y_t (B, H), state)``."""
        dA, dB, C2, dE = self._step_params(state.dtype)
        state = dA * state + (dB * x_t.unsqueeze(-1) + dE * z_t.unsqueeze(-1))
        return (C2 * state).sum(-1).real.to(x_t.dtype) + self.D * x_t + self.F * z_t, state


@contextmanager
def cached_discretisation(module: nn.Module) -> Iterator[None]:
    """Discretise every S4D layer in ``module`` once for all the recurrent steps run inside.

    A generation loop calls :meth:`S4D.step` ``L`` times with the same parameters;
    without this context each call discretises ``A``, ``B`` (and ``E``) again. Inside
    it the parameters must not change, and autograd must be off (the cached tensors
    would otherwise carry one graph into every step)::

        with torch.no_grad(), cached_discretisation(model):
            for t in range(L):
                y, state = layer.step(u[:, t], state)
    """
    if torch.is_grad_enabled():
        raise RuntimeError("cached_discretisation runs under torch.no_grad(): steps would share one autograd graph")
    layers = [m for m in module.modules() if isinstance(m, (S4D, TwoStreamS4D))]
    saved = [m.__dict__.get("_step_cache") for m in layers]
    for m in layers:
        m.__dict__["_step_cache"] = {}
    try:
        yield
    finally:
        for m, old in zip(layers, saved):
            m.__dict__["_step_cache"] = old
