r"""LS4 blocks and stacks [1]: the prior (eqs. 8-9), generative (eqs. 11-12) and inference (eq. 14) networks.

Every block maps batch-first sequences ``(B, L, H)`` to ``(B, L, H)``, causally,
and has a recurrent twin :meth:`step` for ``O(L)`` generation. Conventions:

* **Shifted inputs.** The prior of ``z_n`` reads ``z_{<n}`` and the decoder of
  ``x_n`` reads ``x_{<n}`` and ``z_{<=n}``. The model feeds the prior stack
  ``u_n = z_{n-1}`` and the decoder ``v_n = x_{n-1}`` (with a learnable first
  input), so every stack here is a plain causal map: output ``n`` depends on
  inputs ``<= n``. Eq. (8)'s "state after ``z_{n-1}`` evolved to ``t_n``",
  ``C Abar^{n-j} Bbar``, is the S4D kernel of the shifted input with ``Abar Bbar``
  absorbed into ``Bbar`` (``Abar`` is diagonal and invertible), and its
  ``F z_{n-1}`` term is the ``D`` skip of that input.
* **Multi-channel layers** (App. C): ``H`` SISO SSMs in parallel, then a linear
  channel mixing (``G`` of eqs. 9, 12, 14).

Blocks: :class:`LS4Block` (eqs. 9 and 14: ``LN(G GELU(S4D(u)) + b) + u``),
:class:`LS4GenBlock` (eqs. 11-12, two streams with their own output maps),
:class:`ResBlock` (App. D.1: two linear layers, 2x expansion, skip).
Stacks: :class:`LS4Stack` (prior and inference networks) and
:class:`LS4GenStack` (decoder), simplified from App. C: a linear encoder to
``H`` channels, ``depth`` pairs of (LS4 block, residual block), a LayerNorm and a
linear head; App. C's U-Net levels of width ``2H`` are not built.

[1] L. Zhou et al., "Deep Latent State Space Models for Time-Series Generation", ICML 2023.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from pyro.nn import PyroModule

from .s4 import S4D, TwoStreamS4D

__all__ = ["ResBlock", "LS4Block", "LS4GenBlock", "LS4Stack", "LS4GenStack"]


class ResBlock(nn.Module):
    """``u + W_2 GELU(W_1 u)`` with ``W_1: H -> 2H`` (App. D.1), pointwise in time."""

    def __init__(self, H: int):
        super().__init__()
        self.up, self.down = nn.Linear(H, 2 * H), nn.Linear(2 * H, H)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u + self.down(F.gelu(self.up(u)))


class LS4Block(PyroModule):
    r"""``LN(G GELU(S4D(u)) + b) + u``: the LS4 prior block (eq. 9) and inference block (eq. 14).

    ``u`` ``(B, L, H)`` -> ``(B, L, H)``; :meth:`step`: ``(B, H)`` per step.
    """

    def __init__(self, H: int, N: int = 64, **s4_kwargs):
        super().__init__()
        self.ssm = S4D(H, N, **s4_kwargs)
        self.mix = nn.Linear(H, H)
        self.norm = nn.LayerNorm(H)

    def _out(self, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.norm(self.mix(F.gelu(y))) + u

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self._out(self.ssm(u), u)

    def default_state(self, batch: int, device=None):
        return self.ssm.default_state(batch, device=device)

    def step(self, u_t: torch.Tensor, state):
        y, state = self.ssm.step(u_t, state)
        return self._out(y, u_t), state


class LS4GenBlock(PyroModule):
    r"""The LS4 generative block (eqs. 11-12) on the streams ``v`` (past observations) and ``z`` (latents).

    .. math::
        g_{x} = \mathrm{GELU}(\mathrm{SSM}_x(v, z)),\quad g_{z} = \mathrm{GELU}(\mathrm{SSM}_z(v, z)),\\
        \hat g_x = \mathrm{LN}(G_x g_x + b_x) + v,\quad \hat g_z = \mathrm{LN}(G_z g_z + b_z) + z

    with ``SSM`` the two-input SSM of eq. (6) (:class:`~pyro_dssm.nn.s4.TwoStreamS4D`); each
    output stream has its own SSM (eq. 11 shares ``A, B, E`` between them; separate ones are a superset).
    Shapes: ``(B, L, H)`` each.
    """

    def __init__(self, H: int, N: int = 64, **s4_kwargs):
        super().__init__()
        self.ssm_x = TwoStreamS4D(H, N, **s4_kwargs)
        self.ssm_z = TwoStreamS4D(H, N, **s4_kwargs)
        self.mix_x, self.mix_z = nn.Linear(H, H), nn.Linear(H, H)
        self.norm_x, self.norm_z = nn.LayerNorm(H), nn.LayerNorm(H)

    def _out(self, gx, gz, v, z):
        return self.norm_x(self.mix_x(F.gelu(gx))) + v, self.norm_z(self.mix_z(F.gelu(gz))) + z

    def forward(self, v: torch.Tensor, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self._out(self.ssm_x(v, z), self.ssm_z(v, z), v, z)

    def default_state(self, batch: int, device=None):
        return self.ssm_x.default_state(batch, device=device), self.ssm_z.default_state(batch, device=device)

    def step(self, v_t, z_t, state):
        gx, sx = self.ssm_x.step(v_t, z_t, state[0])
        gz, sz = self.ssm_z.step(v_t, z_t, state[1])
        return self._out(gx, gz, v_t, z_t), (sx, sz)


class LS4Stack(PyroModule):
    """A causal map ``(B, L, in_dim) -> (B, L, out_dim)``: the prior (App. C.1) and inference (C.3) networks.

    ``Linear(in_dim -> H)``, then ``depth`` x (:class:`LS4Block`, :class:`ResBlock`), ``LayerNorm``,
    ``Linear(H -> out_dim)``. :meth:`step` runs it one time step at a time.
    """

    def __init__(self, in_dim: int, out_dim: int, H: int = 64, N: int = 64, depth: int = 2, **s4_kwargs):
        super().__init__()
        if depth < 1:
            raise ValueError(f"an LS4 stack needs depth >= 1, got {depth}")
        self.encoder = nn.Linear(in_dim, H)
        self.blocks = nn.ModuleList(LS4Block(H, N, **s4_kwargs) for _ in range(depth))
        self.res = nn.ModuleList(ResBlock(H) for _ in range(depth))
        self.norm = nn.LayerNorm(H)
        self.head = nn.Linear(H, out_dim)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = self.encoder(u)
        for block, res in zip(self.blocks, self.res):
            h = res(block(h))
        return self.head(self.norm(h))

    def default_state(self, batch: int, device=None) -> List:
        return [b.default_state(batch, device) for b in self.blocks]

    def step(self, u_t: torch.Tensor, state: List) -> Tuple[torch.Tensor, List]:
        """``u_t`` ``(B, in_dim)`` -> ``(y_t (B, out_dim), state)``."""
        h, new = self.encoder(u_t), []
        for block, res, s in zip(self.blocks, self.res, state):
            h, s = block.step(h, s)
            h = res(h)
            new.append(s)
        return self.head(self.norm(h)), new


class LS4GenStack(PyroModule):
    """The decoder (App. C.2): ``(v, z)`` ``(B, L, x_dim), (B, L, z_dim)`` -> ``(B, L, out_dim)``, causal.

    With ``use_x=False`` the observation stream is dropped (App. C.2: "only using z input ...
    produces better generation") and the output depends on ``z_{<=n}`` alone.
    """

    def __init__(self, x_dim: int, z_dim: int, out_dim: int, H: int = 64, N: int = 64, depth: int = 2,
                 use_x: bool = True, **s4_kwargs):
        super().__init__()
        if depth < 1:
            raise ValueError(f"an LS4 stack needs depth >= 1, got {depth}")
        self.use_x = use_x
        self.enc_z = nn.Linear(z_dim, H)
        self.enc_x = nn.Linear(x_dim, H) if use_x else None
        block = LS4GenBlock if use_x else LS4Block
        self.blocks = nn.ModuleList(block(H, N, **s4_kwargs) for _ in range(depth))
        width = 2 * H if use_x else H
        self.res = nn.ModuleList(ResBlock(width) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_dim)

    def _res(self, res, hv, hz):
        if not self.use_x:
            return None, res(hz)
        out = res(torch.cat([hv, hz], -1))
        return out.chunk(2, dim=-1)

    def _head(self, hv, hz):
        return self.head(self.norm(torch.cat([hv, hz], -1) if self.use_x else hz))

    def forward(self, v: Optional[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        hz = self.enc_z(z)
        hv = self.enc_x(v) if self.use_x else None
        for block, res in zip(self.blocks, self.res):
            if self.use_x:
                hv, hz = block(hv, hz)
            else:
                hz = block(hz)
            hv, hz = self._res(res, hv, hz)
        return self._head(hv, hz)

    def default_state(self, batch: int, device=None) -> List:
        return [b.default_state(batch, device) for b in self.blocks]

    def step(self, v_t: Optional[torch.Tensor], z_t: torch.Tensor, state: List):
        """``v_t`` ``(B, x_dim)`` (ignored without ``use_x``), ``z_t`` ``(B, z_dim)`` -> ``(y_t, state)``."""
        hz = self.enc_z(z_t)
        hv = self.enc_x(v_t) if self.use_x else None
        new = []
        for block, res, s in zip(self.blocks, self.res, state):
            if self.use_x:
                (hv, hz), s = block.step(hv, hz, s)
            else:
                hz, s = block.step(hz, s)
            hv, hz = self._res(res, hv, hz)
            new.append(s)
        return self._head(hv, hz), new
