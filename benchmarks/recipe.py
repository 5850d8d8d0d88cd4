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


def key_frequencies(train):
    """``(D,)`` smoothed frequencies of the training keys, as the output initialisation uses them."""
    import numpy as np
    import torch

    from pyro_dssm.nn.layers import smoothed_frequency

    x = torch.as_tensor(np.concatenate(train), dtype=torch.float64)
    return smoothed_frequency(x.unsqueeze(0)).numpy()


def independent_keys_nll(train, test) -> float:
    """Test NLL per step of independent Bernoulli keys at the training frequencies (smoothed like the init)."""
    import numpy as np

    p = key_frequencies(train)
    y = np.concatenate(test)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).sum() / len(y))


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

    cfg = TrainConfig(**job["config"])
    from pyro_dssm.training.engine import build_corpus

    test = build_corpus(cfg).splits["test"]
    t0 = time.time()
    metrics = train(cfg, log=lambda *a: None, callbacks=[TestEveryEpoch()])
    history = training_history(cfg.run_dir)
    return {"kind": "latent", "model": cfg.model, "guide": cfg.guide, "seed": cfg.seed, "curve": curve,
            "final": metrics["test_nelbo_per_step"], "untrained": metrics["test_nelbo_per_step_untrained"],
            "val_kl": history["val_kl"], "seconds": time.time() - t0}


def train_gru(job: Dict[str, Any]) -> Dict[str, Any]:
    """A GRU language model of the given width on the same data; the exact test NLL per step each epoch."""
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from pyro_dssm.data import load_bach_chorales, pad_sequences

    torch.set_num_threads(1)
    c = job["config"]
    torch.manual_seed(c["seed"])
    corpus = load_bach_chorales()
    x_tr, m_tr = pad_sequences(corpus.splits["train"])
    x_te, m_te = pad_sequences(corpus.splits["test"])
    D, H = x_tr.shape[-1], c["h_dim"]

    class GRULM(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(D, H, batch_first=True)
            self.out = nn.Linear(H, D)

        def nll(self, x, mask):  # summed over valid steps
            inp = torch.cat([x.new_zeros(x.shape[0], 1, D), x[:, :-1]], 1)
            logits = self.out(self.rnn(inp)[0])
            bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
            return (bce * mask).sum()

    net = GRULM()
    if c.get("init_output", True):
        p = key_frequencies(corpus.splits["train"])
        with torch.no_grad():
            net.out.bias.copy_(torch.as_tensor(np.log(p) - np.log1p(-p), dtype=torch.float32))
    opt = torch.optim.Adam(net.parameters(), lr=c["lr"])
    g = torch.Generator().manual_seed(c["seed"])
    curve, t0 = [], time.time()
    for _ in range(c["epochs"]):
        for idx in torch.randperm(len(x_tr), generator=g).split(c["batch_size"]):
            xb, mb = x_tr[idx], m_tr[idx]
            T = int(mb.sum(-1).max())
            loss = net.nll(xb[:, :T], mb[:, :T].float()) / mb.sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), c["clip_norm"])
            opt.step()
        with torch.no_grad():
            curve.append(float(net.nll(x_te, m_te.float()) / m_te.sum()))
    return {"kind": "gru", "model": f"gru{H}", "guide": "-", "seed": c["seed"], "curve": curve, "final": curve[-1],
            "untrained": None, "seconds": time.time() - t0}


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
    base = TrainConfig(epochs=args.epochs, guide=args.guide, progress=False, init_output=not args.no_init_output,
                       **overrides)
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
