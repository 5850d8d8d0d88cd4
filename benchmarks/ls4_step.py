#!/usr/bin/env python
"""Milliseconds per generation step of LS4 and VRNN at given batch sizes (works on any commit of the package).

Both models are built by the training engine with z 5 and width 64 (LS4: N 64, depth 2,
one U-Net level); each generates ``--length`` steps from the prior, best of ``--repeats``.
It uses only ``build_model_and_guide`` and ``generate``, so the same file measures an
older checkout side by side with this one, e.g. the code before issue 19::

    git worktree add /tmp/old ecb92d5
    for i in 1 2; do for tree in /tmp/old .; do
        (cd $tree && PYTHONPATH=$tree python $OLDPWD/benchmarks/ls4_step.py); done; done
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[8, 256])
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    import pyro_dssm
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training.engine import build_model_and_guide

    ms = {}
    for name in ("ls4", "vrnn"):
        cfg = TrainConfig(model=name, guide="ls4" if name == "ls4" else "partial", z_dim=5, h_dim=64,
                          hidden_dim=64, guide_rnn_dim=64)
        model, _ = build_model_and_guide(cfg, 1, "gaussian")
        for B in args.batches:
            with torch.no_grad():
                model.generate(2, batch_size=B)
                best = float("inf")
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    model.generate(args.length, batch_size=B)
                    best = min(best, time.perf_counter() - t0)
            ms[name, B] = best / args.length * 1e3
    where = pyro_dssm.__file__.rsplit("/pyro_dssm/", 1)[0]
    for B in args.batches:
        print(f"{where}: batch {B}: LS4 {ms['ls4', B]:.2f} ms/step, VRNN {ms['vrnn', B]:.2f} ms/step, "
              f"LS4/VRNN {ms['ls4', B] / ms['vrnn', B]:.2f}")


if __name__ == "__main__":
    main()
