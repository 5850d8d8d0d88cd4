#!/usr/bin/env python
"""Evaluate a training run: Table II's test negative ELBO per time step and an importance-sampled NLL.

Example::

    python scripts/evaluate.py runs/arssm-full-bach --particles 10 --iwae 100

Writes ``RUN_DIR/eval_SPLIT.json`` (totals) and ``RUN_DIR/eval_SPLIT.csv`` (one row
per sequence: length, ELBO, K-particle IWAE bound, both per step). The IWAE
bound ``log (1/K) sum_k p(x, z_k) / q(z_k | x)`` is computed per sequence; it
equals ``-RenyiELBO(alpha=0, num_particles=K, vectorize_particles=True)`` summed
over sequences (Pyro's ``vectorized_importance_weights`` would pool the batch).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

from pyro_dssm.utils import atomic_write_text


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a directory written by scripts/train.py")
    p.add_argument("--checkpoint", default="best", help="best | last | path to a .ckpt (default best)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--particles", type=int, default=10, help="particles averaged in the ELBO")
    p.add_argument("--iwae", type=int, default=100, help="K of the importance-weighted bound (0: skip)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.particles < 1 or args.iwae < 0 or args.batch_size < 1:
        p.error("--particles and --batch-size must be >= 1 and --iwae >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from pyro_dssm.training import evaluate_split, open_run

    run = open_run(args.run_dir, args.checkpoint)
    if run is None:
        return 2
    cfg, corpus, model, guide = run
    t0 = time.time()
    seqs = corpus.splits[args.split]
    res = evaluate_split(model, guide, seqs, batch_size=args.batch_size, elbo_particles=args.particles,
                         iwae_particles=args.iwae, seed=args.seed)
    per = res.pop("per_sequence")
    res.update(model=cfg.model, guide=cfg.guide, iaf=cfg.iaf, data=corpus.name, split=args.split,
               checkpoint=args.checkpoint, seconds=time.time() - t0)
    run = Path(args.run_dir)
    atomic_write_text(run / f"eval_{args.split}.json", json.dumps(res, indent=2))
    ids = (corpus.ids or {}).get(args.split) or [str(i) for i in range(len(seqs))]
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = ["index", "id", "length", "elbo", "nelbo_per_step"] + (["iwae", "nll_per_step"] if args.iwae else [])
    w.writerow(cols)
    for i, n in enumerate(per["length"]):
        row = [i, ids[i], n, per["elbo"][i], -per["elbo"][i] / n]
        if args.iwae:
            row += [per["iwae"][i], -per["iwae"][i] / n]
        w.writerow(row)
    atomic_write_text(run / f"eval_{args.split}.csv", buf.getvalue())
    msg = f"{args.split}: negative ELBO per step {res['nelbo_per_step']:.4f} ({args.particles} particles)"
    if args.iwae:
        msg += f", NLL per step <= {res['nll_per_step']:.4f} (IWAE, K={args.iwae})"
    print(msg)
    print(f"wrote {run / f'eval_{args.split}.json'} and {run / f'eval_{args.split}.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
