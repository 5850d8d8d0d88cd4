#!/usr/bin/env python
"""A compiled per-step cell against the eager one: is ``torch.compile`` worth it inside the time loop?

The per-step work of a DSSM that does not involve Pyro's sample statements is pure
tensor code: here the transition head, the emission head and the guide's combiner of
one step of ArSSM with the full guide, as the hoisted path runs them (the x-only
parts precomputed, output heads fused). This times that function's forward and
backward three ways, interleaved, at the main job's sizes (batch 20, z 16, widths 64)
unless overridden:

* ``eager``: the function as the model runs it;
* ``compile``: ``torch.compile`` of the same function (Inductor; compiled once, reused);
* ``script``: ``torch.jit.trace`` of the same function.

Prints microseconds per step and ``compiled / eager`` (above 1: compiling is slower).

Then the way the models would use it: Pyro's sample statements sit between the heads,
so only each head can be compiled on its own. A 50-step loop (the transition head
compiled or not, a GRU cell, a reparameterised draw per step, one backward at the
end) is timed eager and with the head compiled: ``loop compile/eager``.

    python benchmarks/compiled_step.py
    python benchmarks/compiled_step.py --batch 256 --width 200 --z-dim 100
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn.functional as F


def make_step(B: int, z_dim: int, width: int, x_dim: int, seed: int = 0):
    """The pure-tensor part of one ArSSM step and its inputs (leaf tensors with gradients)."""
    g = torch.Generator().manual_seed(seed)

    def p(*shape):
        return (torch.randn(*shape, generator=g) / shape[-1] ** 0.5).requires_grad_()

    params = {
        # q(z_t | h^z_{t-1}, g_t): tanh(W_c c) / 2 + P g_t / 2, then [loc; scale] in one product
        "w_c": p(width, width), "b_c": p(width), "w_q": p(2 * z_dim, width), "b_q": p(2 * z_dim),
        # p(z_t | h^z_{t-1}, h^x_{t-1}): tanh(W_u u + ahead), then [loc; scale]
        "w_t": p(width, width), "w_p": p(2 * z_dim, width), "b_p": p(2 * z_dim),
        # p(x_t | h^z_t, h^x_{t-1}): tanh(W_u u + ahead), then logits
        "w_e": p(width, width), "w_x": p(x_dim, width), "b_x": p(x_dim),
    }
    inputs = {"h": torch.randn(B, width, generator=g).requires_grad_(),
              "half_g": torch.randn(B, width, generator=g), "ahead_t": torch.randn(B, width, generator=g),
              "ahead_e": torch.randn(B, width, generator=g), "eps": torch.randn(B, z_dim, generator=g),
              "x": (torch.rand(B, x_dim, generator=g) < 0.1).float()}

    def step(h, half_g, ahead_t, ahead_e, eps, x, w_c, b_c, w_q, b_q, w_t, w_p, b_p, w_e, w_x, b_x):
        a = torch.tanh(F.linear(h, w_c, b_c)) * 0.5 + half_g
        q = F.linear(a, w_q, b_q)
        q_loc, q_scale = q[..., :z_dim], F.softplus(q[..., z_dim:]) + 1e-3
        z = q_loc + q_scale * eps
        pz = F.linear(torch.tanh(F.linear(h, w_t) + ahead_t), w_p, b_p)
        p_loc, p_scale = pz[..., :z_dim], F.softplus(pz[..., z_dim:]) + 1e-3
        kl = (torch.log(p_scale / q_scale) + (q_scale ** 2 + (q_loc - p_loc) ** 2) / (2 * p_scale ** 2) - 0.5).sum()
        logits = F.linear(torch.tanh(F.linear(h, w_e) + ahead_e), w_x, b_x)
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        return kl + nll + z.sum() * 0.0

    args = tuple(inputs.values()) + tuple(params.values())
    return step, args


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--z-dim", type=int, default=16)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--x-dim", type=int, default=88)
    p.add_argument("--steps", type=int, default=300, help="timed calls per variant and round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-compile", action="store_true", help="leave out torch.compile (e.g. without a compiler)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    step, inputs = make_step(args.batch, args.z_dim, args.width, args.x_dim)
    variants = {"eager": step}
    t0 = time.perf_counter()
    variants["script"] = torch.jit.trace(step, inputs, check_trace=False)
    build = {"script": time.perf_counter() - t0}
    if not args.no_compile:
        try:
            compiled = torch.compile(step)
            t0 = time.perf_counter()
            compiled(*inputs).backward()
            build["compile"] = time.perf_counter() - t0
            variants["compile"] = compiled
        except Exception as e:  # no C++ compiler, unsupported platform: say so and go on without it
            print(f"torch.compile unavailable here ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
    for f in variants.values():  # warm-up (TorchScript specialises over its first calls)
        for _ in range(3):
            f(*inputs).backward()
    times = {k: [] for k in variants}
    for _ in range(args.rounds):
        for k, f in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                f(*inputs).backward()
            times[k].append((time.perf_counter() - t0) / args.steps * 1e6)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"# one step's heads (forward + backward), batch {args.batch}, z {args.z_dim}, width {args.width}, "
          f"x {args.x_dim}; {torch.get_num_threads()} threads; torch {torch.__version__}")
    for k, v in med.items():
        extra = f" (built in {build[k]:.1f} s)" if k in build else ""
        print(f"{k}: {v:.0f} us per step{extra}")
    for k in variants:
        if k != "eager":
            print(f"ratio {k}/eager: {med[k] / med['eager']:.2f}")
    if "compile" in variants:
        _loop(args)


def _loop(args, T: int = 50):
    """One head compiled on its own inside a time loop (how the Pyro models could use it) against eager."""
    B, H, Z = args.batch, args.width, args.z_dim
    g = torch.Generator().manual_seed(1)

    def head(u, ahead_t, w_u, w_out, b_out):
        out = F.linear(torch.tanh(F.linear(u, w_u) + ahead_t), w_out, b_out)
        return out[..., :Z], F.softplus(out[..., Z:]) + 1e-3

    weights = [torch.randn(H, H, generator=g).requires_grad_(), torch.randn(2 * Z, H, generator=g).requires_grad_(),
               torch.randn(2 * Z, generator=g).requires_grad_()]
    cell = torch.nn.GRUCell(Z, H)
    ahead = torch.randn(B, T, H, generator=g).requires_grad_()

    def run(f):
        h, total = torch.zeros(B, H), 0.0
        w = [p * 1.0 for p in weights]  # formed once per call, as the hoisted heads' fused weights are
        for a in ahead.unbind(1):
            loc, scale = f(h, a, *w)
            z = loc + scale * torch.randn_like(loc)
            h = cell(z, h)
            total = total + (z ** 2).sum()
        total.backward()

    compiled = torch.compile(head)
    variants = {"eager": head, "compile": compiled}
    for f in variants.values():
        run(f)
        run(f)
    times = {k: [] for k in variants}
    for _ in range(args.rounds):
        for k, f in variants.items():
            t0 = time.perf_counter()
            run(f)
            times[k].append((time.perf_counter() - t0) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"loop of {T} steps, one head compiled on its own: eager {med['eager']:.1f} ms, "
          f"compile {med['compile']:.1f} ms; loop compile/eager: {med['compile'] / med['eager']:.2f}")


if __name__ == "__main__":
    main()
