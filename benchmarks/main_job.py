#!/usr/bin/env python
"""The main job trained two ways, seed by seed: today's defaults against the path of before 2026-12.

* ``new``: the engine's defaults: length-bucketed training batches and the hoisted per-step
  path (``pyro_dssm.nn.hoisted_steps``);
* ``old``: random batches (``--no-bucket-by-length``), the plain per-step path
  (``hoisted_steps(False)``) and Pyro's per-site validation in every step
  (``--pyro-validation``), i.e. the engine as it was.

Each seed trains both (alternating which goes first), with the main job's settings
(``scripts/train.py`` defaults: ArSSM, full guide, 30 epochs) unless overridden, and
reports the training wall time per epoch (validation included, as a user waits for it)
and the test negative ELBO per step of the best checkpoint. Prints one row per seed
and run, then the mean ± standard deviation over seeds and the speed-up ``old / new``.

    python benchmarks/main_job.py --seeds 0 1 2 3 4 --json results/speed/main_job.json
    python benchmarks/main_job.py --seeds 0 --epochs 2 --max-sequences 12   # quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import warnings


def run(seed: int, variant: str, args, out_dir: str) -> dict:
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.nn import hoisted_steps
    from pyro_dssm.training import train

    new = variant == "new"
    cfg = TrainConfig(model=args.model, guide=args.guide, epochs=args.epochs, seed=seed, progress=False,
                      max_sequences=args.max_sequences, bucket_by_length=new, pyro_validation=not new,
                      out=f"{out_dir}/{variant}-{seed}")
    from pyro_dssm.training.engine import quiet_lightning

    with hoisted_steps(new), quiet_lightning():
        m = train(cfg, log=lambda *a: None)
    return {"seed": seed, "variant": variant, "epochs": m["epochs_run"], "train_seconds": m["train_seconds"],
            "seconds_per_epoch": m["train_seconds"] / max(m["epochs_run"], 1),
            "test_nelbo_per_step": m["test_nelbo_per_step"],
            "untrained": m["test_nelbo_per_step_untrained"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--model", default="arssm")
    p.add_argument("--guide", default="full")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--max-sequences", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    rows = []
    print(f"# main job, {args.model}/{args.guide}, {args.epochs} epochs; {torch.get_num_threads()} threads; "
          f"torch {torch.__version__}")
    print("| seed | run | s per epoch | test -ELBO per step |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate(args.seeds):
            order = ("old", "new") if i % 2 else ("new", "old")
            for variant in order:
                r = run(seed, variant, args, tmp)
                rows.append(r)
                print(f"| {seed} | {variant} | {r['seconds_per_epoch']:.2f} | {r['test_nelbo_per_step']:.3f} |",
                      flush=True)
    summary = {}
    for variant in ("old", "new"):
        sel = [r for r in rows if r["variant"] == variant]
        nelbo = [r["test_nelbo_per_step"] for r in sel]
        summary[variant] = {"seconds_per_epoch": statistics.mean(r["seconds_per_epoch"] for r in sel),
                            "test_nelbo_mean": statistics.mean(nelbo),
                            "test_nelbo_sd": statistics.stdev(nelbo) if len(nelbo) > 1 else 0.0}
        s = summary[variant]
        print(f"{variant}: {s['seconds_per_epoch']:.2f} s per epoch, test -ELBO {s['test_nelbo_mean']:.3f} "
              f"± {s['test_nelbo_sd']:.3f} per step over {len(sel)} seeds")
    speedups = [o["seconds_per_epoch"] / n["seconds_per_epoch"] for o in rows for n in rows
                if o["variant"] == "old" and n["variant"] == "new" and o["seed"] == n["seed"]]
    summary["speedup_median"] = statistics.median(speedups)
    print(f"speed-up old/new per epoch: median {summary['speedup_median']:.2f} over seeds "
          f"(min {min(speedups):.2f}, max {max(speedups):.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
