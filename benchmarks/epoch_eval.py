#!/usr/bin/env python
"""Epoch time on the bundled Bach chorales and evaluation time, each against a side-by-side baseline.

Epoch (the main job's settings unless overridden: ArSSM, full guide, batch 20, Adam,
gradient-norm clipping, KL annealing), alternating epoch by epoch:

* ``engine``: one epoch of ``lightning.Trainer.fit`` on the engine's ``DSSMTask`` with its
  defaults (length-bucketed batches, the hoisted per-step path; no validation, no
  checkpoints: the training loop alone);
* ``engine_old``: the same with random batches (``--no-bucket-by-length``), the plain
  per-step path (``pyro_dssm.nn.hoisted_steps(False)``) and Pyro's per-site validation
  (``--pyro-validation``): the engine as it was before 2026-12; ``engine_old / engine``
  is the absolute speed-up;
* ``ours``: a hand-written loop around the same loss (``LeanTraceMeanField_ELBO``, the engine's)
  on the engine's batches;
* ``plain``: the same loop around the plain-PyTorch ELBO of ``plain_elbo.py`` (which takes
  the same per-step path), so that ``ours / plain`` measures Pyro's overhead alone.

With ``--ablation``, the engine with one change undone at a time (random batches, the plain
per-step path, Pyro's per-site validation), each as a ratio to the engine's epoch.

Also printed: the share of the time steps run that are real steps (not padding) for
random and for bucketed batches.

Evaluation on the test split, as ``scripts/evaluate.py`` does it
(``pyro_dssm.training.engine.evaluate_split``): the negative ELBO with 10 particles
and the IWAE bound with K = 100, both with the particles vectorised; and, on the
first ``--seq-subset`` test chorales, the IWAE bound with its K particles drawn one
at a time (the baseline the vectorised plate replaces).

    python benchmarks/epoch_eval.py
    python benchmarks/epoch_eval.py --model vrnn --guide partial --iaf 3 --epochs 3
    python benchmarks/epoch_eval.py --jsb-size --accelerator gpu   # a JSB-sized copy (229 training chorales)
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import warnings

import torch

import pyro

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plain_elbo import plain_negative_elbo  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _set_epoch(loader, epoch):
    """The epoch of a loader's batch sampler (bucketed) or sampler (random batches)."""
    for s in (loader.batch_sampler, loader.sampler):
        if hasattr(s, "set_epoch"):
            s.set_epoch(epoch)
            return


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="arssm")
    p.add_argument("--guide", default="full")
    p.add_argument("--iaf", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per variant (median reported)")
    p.add_argument("--iwae", type=int, default=100, help="K of the IWAE bound")
    p.add_argument("--seq-subset", type=int, default=10, help="test chorales for the sequential-IWAE baseline")
    p.add_argument("--max-sequences", type=int, default=None, help="use only the first N chorales of each split")
    p.add_argument("--jsb-size", action="store_true",
                   help="a JSB-sized copy: training split tiled (with random transpositions) to 229 chorales")
    p.add_argument("--ablation", action="store_true",
                   help="also time the engine with each change of 2026-12 undone alone (random batches, "
                        "the plain per-step path, Pyro's per-site validation)")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    import logging

    import lightning as L

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training.engine import _initialise, _prepare, evaluate_split

    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    cfg = TrainConfig(model=args.model, guide=args.guide, iaf=args.iaf, batch_size=args.batch_size,
                      max_sequences=args.max_sequences, progress=False, accelerator=args.accelerator)
    corpus, _, task, data = _prepare(cfg)
    if args.jsb_size:
        train = list(corpus.splits["train"])
        g = torch.Generator().manual_seed(0)
        while len(train) < 229:
            s = train[len(train) % len(corpus.splits["train"])]
            shift = int(torch.randint(-3, 4, (1,), generator=g))
            train.append(torch.as_tensor(s).roll(shift, dims=-1).numpy())
        corpus.splits["train"] = train
        from pyro_dssm.training.engine import SequenceDataModule

        data = SequenceDataModule(corpus, cfg.batch_size, cfg.seed)
    _initialise(task, data)
    task.to(device)
    model, guide = task.model, task.guide
    n_train = len(corpus.splits["train"])
    steps = sum(len(s) for s in corpus.splits["train"])
    print(f"# {cfg.model}/{cfg.guide}, {cfg.iaf} IAF; {n_train} training chorales ({steps} steps), batch "
          f"{cfg.batch_size}; {device} ({torch.get_num_threads()} threads); torch {torch.__version__}, "
          f"pyro {pyro.__version__}")

    from pyro_dssm.data.batching import padding_efficiency
    from pyro_dssm.nn import hoisted_steps
    from pyro_dssm.training.engine import SequenceDataModule

    old_data = SequenceDataModule(corpus, cfg.batch_size, cfg.seed, bucket_by_length=False)
    lengths = [len(s) for s in corpus.splits["train"]]
    for name, dm in (("random", old_data), ("bucketed", data)):
        loader = dm.train_dataloader()
        _set_epoch(loader, 0)
        batches = list(loader.batch_sampler)
        print(f"{name} batches: {padding_efficiency(lengths, batches):.0%} of the time steps run are real")

    params = list(model.parameters()) + list(guide.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)

    def loop(loss_fn, dm=data, hoisted=True):
        loader = dm.train_dataloader()
        _set_epoch(loader, 0)
        with hoisted_steps(hoisted), pyro.validation_enabled(False):  # as the engine's training steps
            for x, mask in loader:
                x, mask = x.to(device), mask.to(device)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(x, mask) / mask.sum()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
                opt.step()
        _sync(device)

    def engine_epoch(dm=data, hoisted=True, validate=None):
        # the old engine validated every site
        task.cfg = cfg.replace(pyro_validation=(not hoisted) if validate is None else validate)
        trainer = L.Trainer(max_epochs=1, accelerator=args.accelerator, devices=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            limit_val_batches=0, num_sanity_val_steps=0, gradient_clip_val=cfg.clip_norm,
                            gradient_clip_algorithm="norm", default_root_dir=tempfile.mkdtemp())
        with hoisted_steps(hoisted):
            trainer.fit(task, datamodule=dm)

    anneal = cfg.annealing_factor(0)
    variants = {"engine": engine_epoch, "engine_old": lambda: engine_epoch(old_data, False),
                "ours": lambda: loop(lambda x, m: task.negative_elbo(x, m, anneal))}
    if not guide.config.num_iafs:
        variants["plain"] = lambda: loop(lambda x, m: plain_negative_elbo(model, guide, x, m, anneal))
    if args.ablation:  # the new engine with one of its changes undone
        variants.update({"random_batches": lambda: engine_epoch(old_data, True, False),
                         "not_hoisted": lambda: engine_epoch(data, False, False),
                         "pyro_validation": lambda: engine_epoch(data, True, True)})
    times = {k: [] for k in variants}
    for _ in range(args.epochs):
        for k, f in variants.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("epoch s: " + ", ".join(f"{k} {v:.3f}" for k, v in med.items()))
    if "plain" in med:
        print(f"ratio ours/plain: {med['ours'] / med['plain']:.2f}   engine/plain: {med['engine'] / med['plain']:.2f}")
    print(f"ratio engine/ours: {med['engine'] / med['ours']:.2f}")
    print(f"speed-up engine_old/engine: {med['engine_old'] / med['engine']:.2f}")
    if args.ablation:
        print("each change undone alone, epoch / engine's: " + ", ".join(
            f"{k} {med[k] / med['engine']:.2f}" for k in ("random_batches", "not_hoisted", "pyro_validation")))

    # --- evaluation ------------------------------------------------------------------------------
    from pyro_dssm.data.corpus import pad_sequences
    from pyro_dssm.infer import iwae_per_sequence, log_weights

    test = corpus.splits["test"]
    model.to("cpu"), guide.to("cpu")
    t0 = time.perf_counter()
    ev = evaluate_split(model, guide, test, elbo_particles=10)
    t_elbo = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev_iwae = evaluate_split(model, guide, test, elbo_particles=1, iwae_particles=args.iwae)
    t_iwae = time.perf_counter() - t0
    print(f"evaluation of {len(test)} test chorales: negative ELBO (10 particles) {t_elbo:.2f} s "
          f"({ev['nelbo_per_step']:.3f}/step); IWAE K={args.iwae} {t_iwae:.2f} s "
          f"({ev_iwae['nll_per_step']:.3f}/step)")
    x, mask = pad_sequences(test[:args.seq_subset])
    with torch.no_grad():
        t0 = time.perf_counter()
        vec = iwae_per_sequence(model, guide, x, mask, num_particles=args.iwae)
        t_vec = time.perf_counter() - t0
        t0 = time.perf_counter()
        lw = torch.cat([log_weights(model, guide, x, mask, num_particles=1) for _ in range(args.iwae)])
        seq = torch.logsumexp(lw, 0) - math.log(args.iwae)
        t_seq = time.perf_counter() - t0
    gap = float((vec - seq).abs().mean() / mask.sum(-1).float().mean())
    print(f"IWAE K={args.iwae} on {x.shape[0]} chorales: vectorised {t_vec:.2f} s, one particle at a time "
          f"{t_seq:.2f} s; ratio sequential/vectorised: {t_seq / t_vec:.1f} (bounds differ by {gap:.3f} nats/step)")


if __name__ == "__main__":
    main()
