#!/usr/bin/env python
"""LS4 against VRNN: time of one training step and of generating one batch, as the sequence grows (LS4 Sec. 5.4).

Both models are built by the training engine (``build_model_and_guide``) with the
same latent size and width; a training step is ``TraceMeanField_ELBO``'s negative
ELBO plus backward on a batch of random real-valued sequences; generation samples
a batch of the same length from the prior (LS4: O(L) recurrence of both stacks;
VRNN: its RNN). Steps of the two models alternate so that machine noise hits both.
Prints seconds per step and the ratios VRNN / LS4 (the paper reports about 100x for
training at L = 20480 on a GPU).

Then, per generation step (``--step-batches``, default 8 and 256, ``--step-length`` steps):
milliseconds per step of LS4 with its recurrence in complex64 (the default) and in
complex128 (``generate(state_dtype=torch.complex128)``, the precision of before 2026-12),
against VRNN's step, side by side.

    python benchmarks/ls4_runtime.py --lengths 80 320 1280 5120 --device cpu
    python benchmarks/ls4_runtime.py --lengths 80 320 1280 5120 20480 --device cuda
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from pyro.infer import TraceMeanField_ELBO


def _time(fn, repeats, sync):
    best = float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[80, 320, 1280])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--x-dim", type=int, default=1)
    p.add_argument("--z-dim", type=int, default=5)
    p.add_argument("--width", type=int, default=64, help="LS4 channels H and VRNN h_dim/hidden_dim")
    p.add_argument("--state", type=int, default=64, help="LS4 state size N")
    p.add_argument("--depth", type=int, default=2, help="LS4 (block, residual block) pairs per U-Net level")
    p.add_argument("--levels", type=int, default=1, help="LS4 U-Net levels (App. C; the authors' configs: 1)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-generation", action="store_true")
    p.add_argument("--step-batches", type=int, nargs="*", default=[8, 256],
                   help="batch sizes of the per-step generation table (none: leave it out)")
    p.add_argument("--step-length", type=int, default=100, help="steps generated per timing of that table")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training.engine import build_model_and_guide

    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    pairs = {}
    for name in ("ls4", "vrnn"):
        opts = {"N": args.state, "depth": args.depth, "levels": args.levels} if name == "ls4" else {}
        guide = "ls4" if name == "ls4" else "partial"
        cfg = TrainConfig(model=name, guide=guide, z_dim=args.z_dim, h_dim=args.width, hidden_dim=args.width,
                          guide_rnn_dim=args.width, model_options=opts)
        model, guide_ = build_model_and_guide(cfg, args.x_dim, "gaussian")
        pairs[name] = (model.to(dev), guide_.to(dev))
    print(f"device {dev}, batch {args.batch_size}, x_dim {args.x_dim}, z_dim {args.z_dim}, width {args.width}, "
          f"LS4 N {args.state} depth {args.depth} levels {args.levels}; best of {args.repeats}")
    print("| L | LS4 train s/step | VRNN train s/step | ratio | LS4 generate s | VRNN generate s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for L in args.lengths:
        x = torch.randn(args.batch_size, L, args.x_dim, device=dev)
        row = {}
        for name, (model, guide) in pairs.items():
            def step():
                loss = TraceMeanField_ELBO().differentiable_loss(model, guide, x)
                loss.backward()
            row[name, "train"] = _time(step, args.repeats, sync)
            if not args.no_generation:
                with torch.no_grad():
                    row[name, "gen"] = _time(lambda: model.generate(L, batch_size=args.batch_size), args.repeats,
                                             sync)
        tr = row["vrnn", "train"] / row["ls4", "train"]
        line = f"| {L} | {row['ls4', 'train']:.3f} | {row['vrnn', 'train']:.3f} | {tr:.1f}x |"
        if not args.no_generation:
            g = row["vrnn", "gen"] / row["ls4", "gen"]
            line += f" {row['ls4', 'gen']:.3f} | {row['vrnn', 'gen']:.3f} | {g:.2f}x |"
        else:
            line += " – | – | – |"
        print(line, flush=True)
    if args.step_batches:
        _step_table(pairs, args, sync)


def _step_table(pairs, args, sync):
    """Milliseconds per generation step: LS4 in complex64 and complex128 against VRNN."""
    ls4, vrnn = pairs["ls4"][0], pairs["vrnn"][0]
    variants = {"complex64": lambda B: ls4.generate(args.step_length, batch_size=B),
                "complex128": lambda B: ls4.generate(args.step_length, batch_size=B, state_dtype=torch.complex128),
                "vrnn": lambda B: vrnn.generate(args.step_length, batch_size=B)}
    print(f"\ngeneration, ms per step ({args.step_length} steps, best of {args.repeats})")
    print("| batch | LS4 complex64 | LS4 complex128 | VRNN | LS4 (c64) / VRNN | c128 / c64 |")
    print("|---|---|---|---|---|---|")
    for B in args.step_batches:
        with torch.no_grad():
            ms = {k: _time(lambda f=f: f(B), args.repeats, sync) / args.step_length * 1e3 for k, f in variants.items()}
        print(f"| {B} | {ms['complex64']:.2f} | {ms['complex128']:.2f} | {ms['vrnn']:.2f} | "
              f"{ms['complex64'] / ms['vrnn']:.2f}x | {ms['complex128'] / ms['complex64']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
