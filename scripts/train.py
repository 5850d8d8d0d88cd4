#!/usr/bin/env python
"""Train any DSSM of the taxonomy with any guide.

Example::

    python scripts/train.py --model arssm --guide full --iaf 3 --iaf-dim 20

With no ``--data`` the model trains on sequences that the code generates from a
linear-Gaussian state space model, whose exact negative log-likelihood (Kalman
filter) is printed as the floor that the negative ELBO approaches.
``--data`` takes a ``.npy``/``.npz`` array of shape (N, T, x_dim).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

import pyro
import pyro_dssm
from pyro_dssm.data import linear_gaussian_dataset
from pyro_dssm.infer import linear_gaussian_log_likelihood
from pyro_dssm.training import fit, negative_elbo_per_step


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="arssm", help=f"a preset {pyro_dssm.list_models()} or a spec name")
    p.add_argument("--guide", default="full", help=f"one of {pyro_dssm.list_guides()}")
    p.add_argument("--iaf", type=int, default=0, help="number of IAF layers on the guide")
    p.add_argument("--iaf-dim", type=int, default=20, help="hidden width of each IAF")
    p.add_argument("--data", default=None, help=".npy/.npz array (N, T, x_dim); default: generated data")
    p.add_argument("--emission", default=None, help="emission family (default: gaussian)")
    p.add_argument("--z-dim", type=int, default=4)
    p.add_argument("--h-dim", type=int, default=32)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="directory for metrics.json")
    return p.parse_args(argv)


def load_array(path):
    if not os.path.exists(path):
        sys.exit(f"error: data file {path!r} does not exist")
    arr = np.load(path)
    if isinstance(arr, np.lib.npyio.NpzFile):
        arr = arr[arr.files[0]]
    x = torch.as_tensor(np.asarray(arr), dtype=torch.float32)
    if x.dim() != 3:
        sys.exit(f"error: {path} holds an array of shape {tuple(x.shape)}; expected (N, T, x_dim)")
    n_test = max(1, x.shape[0] // 10)
    return x[n_test:], x[:n_test], None


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    pyro.set_rng_seed(args.seed)
    if args.data:
        x_train, x_test, floor = load_array(args.data)
    else:
        system, x_train, x_test = linear_gaussian_dataset(seed=args.seed)
        x_train, x_test = torch.as_tensor(x_train), torch.as_tensor(x_test)
        floor = -linear_gaussian_log_likelihood(system.A, system.q, system.C, system.r, system.z0,
                                                x_test).sum().item() / x_test[..., 0].numel()
    try:
        model = pyro_dssm.create_model(args.model, x_dim=x_train.shape[-1], z_dim=args.z_dim, h_dim=args.h_dim,
                                       hidden_dim=args.h_dim, emission=args.emission or "gaussian")
        guide = pyro_dssm.create_guide(args.guide, model, rnn_dim=args.h_dim, hidden_dim=args.h_dim,
                                       num_iafs=args.iaf, iaf_dim=max(args.iaf_dim, args.z_dim))
        model.check_inputs(x_train)
    except (ValueError, TypeError) as e:
        sys.exit(f"error: {e}")
    print(f"model {args.model} ({model.spec.name}: {model.spec.describe()})")
    print(f"guide {guide!r}")
    before = negative_elbo_per_step(model, guide, x_test)
    print(f"test negative ELBO per step before training: {before:.4f}")
    t0 = time.time()
    fit(model, guide, x_train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        callback=lambda e, l: print(f"epoch {e + 1:4d}/{args.epochs}  train -ELBO/step {l:.4f}", flush=True))
    after = negative_elbo_per_step(model, guide, x_test)
    print(f"test negative ELBO per step after training:  {after:.4f}")
    if floor is not None:
        print(f"exact test NLL per step (Kalman filter):     {floor:.4f}")
    metrics = dict(model=args.model, guide=args.guide, iaf=args.iaf, neg_elbo_before=before,
                   neg_elbo_after=after, exact_nll=floor, seconds=time.time() - t0)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics


if __name__ == "__main__":
    main()
