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
Stacks (App. C): :class:`LS4Stack` (prior C.1 and inference C.3 networks) and
:class:`LS4GenStack` (decoder C.2), both on the :class:`LS4UNet` backbone, a
SaShiMi-style U-Net without pooling (App. C: "there is no pooling operation"):

* a linear encoder to ``H`` channels;
* ``levels`` down steps, each a linear map doubling the width (``H -> 2H -> ...``),
  whose outputs are kept as skips;
* ``depth`` (LS4 block, residual block) pairs at the widest level, plus its skip;
* ``levels`` up steps: a linear map halving the width, plus the down skip of that
  width, then ``depth`` pairs at that width, plus a residual around them;
* a LayerNorm, then the head. The prior and the inference networks end, as App. C.1
  and C.3 do, in a linear map to ``out_dim`` and two LS4 blocks of width ``out_dim``
  that branch out to the mean and the (pre-softplus) scale.

App. C's pseudo-code names the loops ``num_layers1`` (``levels``) and ``num_layers2``
(``depth``); the authors' Monash configs use one level (``pool: [1]``, ``expand: 2``)
and four pairs, which ``configs/ls4/`` follow. Every map between SSMs is pointwise
in time, so each stack stays causal and has an exact recurrent twin.

[1] L. Zhou et al., "Deep Latent State Space Models for Time-Series Generation", ICML 2023.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from pyro.nn import PyroModule

from .s4 import S4D, TwoStreamS4D

__all__ = ["ResBlock", "LS4Block", "LS4GenBlock", "LS4UNet", "LS4Stack", "LS4GenStack"]


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

    def default_state(self, batch: int, device=None, dtype=None):
        return self.ssm.default_state(batch, device=device, dtype=dtype)

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

    def default_state(self, batch: int, device=None, dtype=None):
        return (self.ssm_x.default_state(batch, device=device, dtype=dtype),
                self.ssm_z.default_state(batch, device=device, dtype=dtype))

    def step(self, v_t, z_t, state):
        gx, sx = self.ssm_x.step(v_t, z_t, state[0])
        gz, sz = self.ssm_z.step(v_t, z_t, state[1])
        return self._out(gx, gz, v_t, z_t), (sx, sz)


Streams = List[torch.Tensor]


class _Pair(PyroModule):
    """One (LS4 block, residual block) pair of width ``w`` on one stream or on the two streams ``(v, z)``.

    Two streams: :class:`LS4GenBlock`, then one :class:`ResBlock` of width ``2w`` on their
    concatenation, split back (App. C.2's ``ResBlock(concat(z, x))``).
    """

    def __init__(self, streams: int, w: int, N: int, **s4_kwargs):
        super().__init__()
        self.two = streams == 2
        self.block = (LS4GenBlock if self.two else LS4Block)(w, N, **s4_kwargs)
        self.res = ResBlock(2 * w if self.two else w)

    def _res(self, hs: Streams) -> Streams:
        return list(self.res(torch.cat(hs, -1)).chunk(2, dim=-1)) if self.two else [self.res(hs[0])]

    def forward(self, hs: Streams) -> Streams:
        return self._res(list(self.block(*hs)) if self.two else [self.block(hs[0])])

    def default_state(self, batch: int, device=None, dtype=None):
        return self.block.default_state(batch, device, dtype)

    def step(self, hs: Streams, state):
        if self.two:
            out, state = self.block.step(hs[0], hs[1], state)
            return self._res(list(out)), state
        out, state = self.block.step(hs[0], state)
        return self._res([out]), state


def _add(a: Streams, b: Streams) -> Streams:
    return [x + y for x, y in zip(a, b)]


class LS4UNet(PyroModule):
    """The App. C backbone on ``streams`` (1 or 2) streams of width ``H``: ``[(B, L, H)] * streams`` -> same.

    ``levels`` width-doubling levels, ``depth`` (LS4 block, residual block) pairs per level
    (see the module docstring); ``levels=0`` is a plain residual stack with one skip.
    Called with ``state=None`` it runs in convolution mode on whole sequences; with a
    state from :meth:`default_state` on one step ``[(B, H)] * streams`` (:meth:`step`).
    """

    def __init__(self, streams: int, H: int, N: int = 64, depth: int = 2, levels: int = 1, **s4_kwargs):
        super().__init__()
        if depth < 1 or levels < 0:
            raise ValueError(f"an LS4 stack needs depth >= 1 and levels >= 0, got depth={depth}, levels={levels}")
        self.streams = streams
        widths = [H * 2 ** i for i in range(levels + 1)]

        def per_stream(make):
            return nn.ModuleList(make() for _ in range(streams))

        def pairs(w):
            return nn.ModuleList(_Pair(streams, w, N, **s4_kwargs) for _ in range(depth))

        self.down = nn.ModuleList(per_stream(lambda w=w: nn.Linear(w, 2 * w)) for w in widths[:-1])
        self.center = pairs(widths[-1])
        self.up = nn.ModuleList(per_stream(lambda w=w: nn.Linear(2 * w, w)) for w in reversed(widths[:-1]))
        self.up_pairs = nn.ModuleList(pairs(w) for w in reversed(widths[:-1]))
        self.norms = per_stream(lambda: nn.LayerNorm(H))

    def _all_pairs(self):
        return list(self.center) + [p for level in self.up_pairs for p in level]

    def default_state(self, batch: int, device=None, dtype=None) -> List:
        """Every layer's zero state; ``dtype`` (complex64 or complex128) sets the steps' precision (default:
        the layers' own, see :meth:`~pyro_dssm.nn.s4.S4D.default_state`)."""
        return [p.default_state(batch, device, dtype) for p in self._all_pairs()]

    def forward(self, hs: Streams, state: Optional[List] = None):
        """Convolution mode (``state=None``) -> streams; recurrent mode -> ``(streams, new_state)``."""
        it, new = iter(state) if state is not None else None, []

        def run(level, hs):
            for p in level:
                if it is None:
                    hs = p(hs)
                else:
                    hs, s = p.step(hs, next(it))
                    new.append(s)
            return hs

        skips = [hs]
        for lins in self.down:
            hs = [lin(h) for lin, h in zip(lins, hs)]
            skips.append(hs)
        hs = _add(run(self.center, hs), skips.pop())
        for lins, level in zip(self.up, self.up_pairs):
            hs = _add([lin(h) for lin, h in zip(lins, hs)], skips.pop())
            hs = _add(run(level, hs), hs)
        out = [norm(h) for norm, h in zip(self.norms, hs)]
        return out if it is None else (out, new)

    def step(self, hs: Streams, state: List):
        """One step: ``[(B, H)] * streams`` -> ``(streams, state)``."""
        return self.forward(hs, state)


class LS4Stack(PyroModule):
    """A causal map ``(B, L, in_dim) -> (B, L, out_dim)``: the prior (App. C.1) and inference (C.3) networks.

    ``Linear(in_dim -> H)``, the :class:`LS4UNet` backbone, then the head. With
    ``branches=2`` (the prior and inference networks) the head is ``Linear(H -> out_dim)``
    followed by two :class:`LS4Block` s of width ``out_dim`` whose outputs are concatenated,
    ``(B, L, 2 out_dim)``: App. C's separate blocks for ``mu`` and ``sigma``. With
    ``branches=1`` the head is ``Linear(H -> out_dim)``. :meth:`step` runs one time step.
    """

    def __init__(self, in_dim: int, out_dim: int, H: int = 64, N: int = 64, depth: int = 2, levels: int = 1,
                 branches: int = 1, **s4_kwargs):
        super().__init__()
        if branches not in (1, 2):
            raise ValueError(f"branches must be 1 or 2, got {branches}")
        self.encoder = nn.Linear(in_dim, H)
        self.backbone = LS4UNet(1, H, N, depth, levels, **s4_kwargs)
        self.head = nn.Linear(H, out_dim)
        n_branch = 2 if branches == 2 else 0
        self.branches = nn.ModuleList(LS4Block(out_dim, N, **s4_kwargs) for _ in range(n_branch))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = self.head(self.backbone([self.encoder(u)])[0])
        return torch.cat([b(h) for b in self.branches], -1) if len(self.branches) else h

    def default_state(self, batch: int, device=None, dtype=None) -> List:
        return [self.backbone.default_state(batch, device, dtype),
                [b.default_state(batch, device, dtype) for b in self.branches]]

    def step(self, u_t: torch.Tensor, state: List) -> Tuple[torch.Tensor, List]:
        """``u_t`` ``(B, in_dim)`` -> ``(y_t (B, out_dim or 2 out_dim), state)``."""
        (h,), bs = self.backbone.step([self.encoder(u_t)], state[0])
        h = self.head(h)
        if not len(self.branches):
            return h, [bs, []]
        outs, br = zip(*(b.step(h, s) for b, s in zip(self.branches, state[1])))
        return torch.cat(outs, -1), [bs, list(br)]


class LS4GenStack(PyroModule):
    """The decoder (App. C.2): ``(v, z)`` ``(B, L, x_dim), (B, L, z_dim)`` -> ``(B, L, out_dim)``, causal.

    Linear encoders of both streams to ``H``, the two-stream :class:`LS4UNet` backbone
    (generative blocks, eqs. 11-12), then ``Linear(concat(x, z) -> out_dim)``. With
    ``use_x=False`` the observation stream is dropped (App. C.2: "only using z input ...
    produces better generation"): one stream, prior blocks, and the output depends on ``z_{<=n}`` alone.
    """

    def __init__(self, x_dim: int, z_dim: int, out_dim: int, H: int = 64, N: int = 64, depth: int = 2,
                 levels: int = 1, use_x: bool = True, **s4_kwargs):
        super().__init__()
        self.use_x = use_x
        self.enc_z = nn.Linear(z_dim, H)
        self.enc_x = nn.Linear(x_dim, H) if use_x else None
        self.backbone = LS4UNet(2 if use_x else 1, H, N, depth, levels, **s4_kwargs)
        self.head = nn.Linear(2 * H if use_x else H, out_dim)

    def _inputs(self, v, z) -> Streams:
        return [self.enc_x(v), self.enc_z(z)] if self.use_x else [self.enc_z(z)]

    def forward(self, v: Optional[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat(self.backbone(self._inputs(v, z)), -1))

    def default_state(self, batch: int, device=None, dtype=None) -> List:
        return self.backbone.default_state(batch, device, dtype)

    def step(self, v_t: Optional[torch.Tensor], z_t: torch.Tensor, state: List):
        """``v_t`` ``(B, x_dim)`` (ignored without ``use_x``), ``z_t`` ``(B, z_dim)`` -> ``(y_t, state)``."""
        hs, state = self.backbone.step(self._inputs(v_t, z_t), state)
        return self.head(torch.cat(hs, -1)), state
