#!/usr/bin/env python
"""Time one training step (negative ELBO + backward) with and without ``--jit``, side by side.

Without ``--jit`` the engine's loss is ``LeanTraceMeanField_ELBO``; with it, Pyro's
``JitTraceMeanField_ELBO`` compiled once per padded length and batch size.

Both paths use the same model, guide and batches of the shipped Bach chorales,
each batch padded to its length bucket, alternating eager and JIT steps so
that machine noise hits both alike. Prints milliseconds per step and the
ratio eager / JIT (above 1: the JIT is faster). "compile s" is the time of the first
three calls of every padded shape (tracing, then TorchScript's specialisation passes).

    python benchmarks/jit_elbo.py --model arssm --guide full --steps 20
    python benchmarks/jit_elbo.py --model all --steps 10 --crop 24     # every preset, one row each
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from pyro.infer import TraceMeanField_ELBO


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="arssm", help="a preset, or 'all' for every preset")
    p.add_argument("--guide", default="full")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--crop", type=int, default=32, help="use the first N frames of each chorale (tracing "
                   "cost grows with the padded length: full chorales, up to 193 steps, take minutes per bucket)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")

    from pyro_dssm.data import PadCollate, length_buckets, load_bach_chorales
    from pyro_dssm.models import list_models

    models = list_models() if args.model == "all" else [args.model]
    corpus = load_bach_chorales()
    seqs = [torch.as_tensor(s[:args.crop]) for s in corpus.splits["train"]]
    collate = PadCollate(length_buckets([len(s) for s in seqs], 4))
    rng = np.random.default_rng(0)
    batches = [collate([seqs[i] for i in rng.choice(len(seqs), args.batch_size, replace=False)])
               for _ in range(args.steps)]
    print(f"{args.guide} guide, batch {args.batch_size}, {args.steps} steps, {args.threads} threads, "
          f"sequences cropped to {args.crop} frames")
    print("| model | eager ms/step | JIT ms/step | ratio eager/JIT | JIT compile s |")
    print("|---|---|---|---|---|")
    for name in models:
        e, j, t_compile = _measure(name, args, batches)
        print(f"| {name} | {e:.0f} | {j:.0f} | {e / j:.2f} | {t_compile:.1f} |", flush=True)


# TorchScript's profiling executor specialises a traced graph over its first calls: the second
# and third calls of a shape cost seconds more (at 24 steps), later calls are fast. All of that
# counts as compile time here, not as step time.
WARMUP_CALLS = 3


def _measure(name, args, batches):
    """Median eager and JIT milliseconds per step (loss + backward) and the compile time of one preset."""
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.infer import LeanTraceMeanField_ELBO
    from pyro_dssm.training.engine import DSSMTask, build_model_and_guide

    cfg = TrainConfig(model=name, guide=args.guide, jit=True)
    model, guide = build_model_and_guide(cfg, 88, "bernoulli")
    task = DSSMTask(model, guide, cfg)
    TraceMeanField_ELBO().differentiable_loss(model, guide, *batches[0])

    def eager(x, mask):  # the engine's loss without --jit
        return LeanTraceMeanField_ELBO().differentiable_loss(model, guide, x, mask, annealing_factor=0.5)

    def jit(x, mask):
        return task.negative_elbo(x, mask, 0.5)

    t_compile = time.perf_counter()
    for b in {tuple(x.shape) for x, _ in batches}:  # compile every bucket first; reported separately
        x, mask = next((x, m) for x, m in batches if tuple(x.shape) == b)
        for _ in range(WARMUP_CALLS):
            jit(x, mask).backward()
    t_compile = time.perf_counter() - t_compile
    times = {"eager": [], "jit": []}
    for x, mask in batches:
        for fn_name, fn in (("eager", eager), ("jit", jit)):
            task.zero_grad()
            t = time.perf_counter()
            fn(x, mask).backward()
            times[fn_name].append(time.perf_counter() - t)
    return np.median(times["eager"]) * 1e3, np.median(times["jit"]) * 1e3, t_compile


if __name__ == "__main__":
    main()
