#!/usr/bin/env python
"""The training recipe over seeds: does every seed leave the plateau, and does the latent model beat a GRU?

For each preset and seed, the main job's settings (``scripts/train.py`` defaults: the
shipped chorales, the full guide unless ``--guide``, batch 20, Adam 3e-3, norm clip 10,
KL annealing from 0.2 over 5 epochs, z 16, width 64, the output biases started at the
training data's statistics) are trained by the engine, and the test negative ELBO per
step is evaluated after every epoch (one particle). Next to it, in the same run, a
plain GRU language model of the same width (``p(x_t | x_{<t})``, Bernoulli outputs
whose bias starts at the same log-odds) is trained with the same batch size, learning
rate, clipping and epochs, and its exact test NLL per step is evaluated each epoch.

It prints the test curve of every run every ``--every`` epochs, then a summary:
the last epoch's mean ± std over seeds for the model and for the GRU, the latent
models' validation KL per step (near 0: a collapsed posterior), and how many
seeds are still at the **plateau**, the NLL of 88 independent keys with their
training frequencies (a run counts as on it when its test NLL is within
``--plateau-margin`` nats of it).

    python benchmarks/recipe.py --models arssm srnn vrnn dmm --seeds 0 1 2 3 4 --jobs 2
    python benchmarks/recipe.py --models arssm --seeds 0 1 2 --no-init-output      # the old starting point
    python benchmarks/recipe.py --models arssm --seeds 0 1 2 --set lr=0.001 --set free_bits=0.1

``--set FIELD=VALUE`` overrides any field of the run config (``TrainConfig``) for the
latent models. ``--json FILE`` keeps every curve.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Dict, List

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _parse_set(items: List[str]) -> Dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set takes FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = yaml.safe_load(v)
    return out


def independent_keys_nll(train, test) -> float:
    """Test NLL per step of independent Bernoulli keys at the training frequencies (:mod:`pyro_dssm.baselines`)."""
    from pyro_dssm.baselines import independent_keys_nll as nll

    return nll(train, test)


def train_latent(job: Dict[str, Any]) -> Dict[str, Any]:
    """One engine run of a preset; the test negative ELBO per step after every epoch."""
    import lightning as L
    import torch

    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training import evaluate_split, train, training_history

    torch.set_num_threads(1)
    curve: List[float] = []

    class TestEveryEpoch(L.Callback):
        def on_train_epoch_end(self, trainer, task):
            # its own seeded stream; training's random state is left as it was
            res = evaluate_split(task.model, task.guide, test, batch_size=70, elbo_particles=1, seed=0)
            curve.append(res["nelbo_per_step"])

    cfg = TrainConfig.from_dict(job["config"])
    from pyro_dssm.training.engine import build_corpus

    test = build_corpus(cfg).splits["test"]
    t0 = time.time()
    metrics = train(cfg, log=lambda *a: None, callbacks=[TestEveryEpoch()])
    history = training_history(cfg.run_dir)
    return {"kind": "latent", "model": cfg.model, "guide": cfg.guide, "seed": cfg.seed, "curve": curve,
            "final": metrics["test_nelbo_per_step"], "untrained": metrics["test_nelbo_per_step_untrained"],
            "val_kl": history["val_kl"], "seconds": time.time() - t0}


def train_gru(job: Dict[str, Any]) -> Dict[str, Any]:
    """The GRU language model of :mod:`pyro_dssm.baselines` at the given width, for the given epochs
    (no early stopping); the exact test NLL per step each epoch."""
    import torch

    from pyro_dssm.baselines import fit_gru_language_model
    from pyro_dssm.data import load_bach_chorales

    torch.set_num_threads(1)
    c = job["config"]
    corpus = load_bach_chorales()
    curve = []
    res = fit_gru_language_model(corpus, width=c["h_dim"], lr=c["lr"], batch_size=c["batch_size"],
                                 clip_norm=c["clip_norm"], epochs=c["epochs"], patience=0,
                                 init_output=c.get("init_output", True), seed=c["seed"],
                                 on_epoch=lambda e, net: curve.append(net.nll_per_step(corpus.splits["test"])))
    return {"kind": "gru", "model": f"gru{c['h_dim']}", "guide": "-", "seed": c["seed"], "curve": curve,
            "final": curve[-1], "untrained": None, "seconds": res["train_seconds"]}


def _run(job):
    return (train_latent if job["kind"] == "latent" else train_gru)(job)


def _mean_std(values: List[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}" if values else "-"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["arssm"])
    p.add_argument("--guide", default="full")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--every", type=int, default=5, help="print the curves every N epochs")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel, one thread each")
    p.add_argument("--no-init-output", action="store_true", help="PyTorch's default output initialisation")
    p.add_argument("--no-gru", action="store_true", help="skip the GRU language model")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a TrainConfig override")
    p.add_argument("--plateau-margin", type=float, default=0.1)
    p.add_argument("--json", help="write every curve to this file")
    args = p.parse_args(argv)

    from pyro_dssm.config import TrainConfig
    from pyro_dssm.data import load_bach_chorales

    corpus = load_bach_chorales()
    plateau = independent_keys_nll(corpus.splits["train"], corpus.splits["test"])
    overrides = _parse_set(args.set)
    base = TrainConfig.from_dict({"epochs": args.epochs, "guide": args.guide, "progress": False,
                                  "init_output": not args.no_init_output, **overrides})
    tmp_dir = tempfile.TemporaryDirectory(prefix="recipe-")
    tmp = tmp_dir.name
    jobs = []
    for model in args.models:
        for seed in args.seeds:
            cfg = base.replace(model=model, seed=seed, out=os.path.join(tmp, f"{model}-s{seed}"))
            jobs.append({"kind": "latent", "config": cfg.to_dict()})
    if not args.no_gru:
        for seed in args.seeds:
            jobs.append({"kind": "gru", "config": base.replace(seed=seed).to_dict()})
    t0 = time.time()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(_run, jobs))
    else:
        results = [_run(j) for j in jobs]
    tmp_dir.cleanup()

    print(f"# recipe: {len(args.seeds)} seeds x {args.epochs} epochs, init_output={not args.no_init_output}, "
          f"guide {args.guide}, overrides {overrides or '{}'}; plateau (independent keys) {plateau:.2f} nats/step; "
          f"wall {time.time() - t0:.0f} s with {args.jobs} job(s)")
    marks = [e for e in range(args.every, args.epochs + 1, args.every)] or [args.epochs]
    print("\n| run | seed | " + " | ".join(f"ep {e}" for e in marks) + " | s |")
    print("|---|---|" + "---|" * len(marks) + "---|")
    for r in results:
        print(f"| {r['model']} | {r['seed']} | " + " | ".join(f"{r['curve'][e - 1]:.2f}" for e in marks)
              + f" | {r['seconds']:.0f} |")
    print(f"\n| run | test NLL/step at epoch {args.epochs} (mean ± std) | best seed | worst seed | "
          f"seeds at the plateau (>{plateau - args.plateau_margin:.2f}) | validation KL/step, last epoch |")
    print("|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["model"] for r in results):
        finals = [r["curve"][-1] for r in results if r["model"] == name]
        stuck = sum(f > plateau - args.plateau_margin for f in finals)
        kls = [r["val_kl"][-1] for r in results if r["model"] == name and "val_kl" in r]
        print(f"| {name} | {_mean_std(finals)} | {min(finals):.2f} | {max(finals):.2f} | {stuck} of {len(finals)} | "
              f"{_mean_std(kls) if kls else '-'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"plateau": plateau, "args": vars(args), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
