#!/usr/bin/env python
"""Train any DSSM of the taxonomy with any guide, on music or your own sequences.

Examples::

    python scripts/train.py --model arssm --guide full            # main job: shipped Bach chorales
    python scripts/train.py --config configs/music/jsb/arssm-full-iaf3.yaml
    python scripts/train.py --model vrnn --guide partial --iaf 3 --data my_sequences.npz --epochs 100
    python scripts/train.py --out runs/x --resume                 # continue an interrupted run
    python scripts/train.py --accelerator gpu --devices 4 --strategy ddp

Every field of a config file is also a flag (``z_dim`` is ``--z-dim``), and a
flag overrides the file. The run directory gets ``config.yaml`` (resolved),
``checkpoints/{last,best}.ckpt``, ``logs/metrics.csv`` and ``metrics.json``.
Evaluate it with ``scripts/evaluate.py RUN_DIR`` and sample with ``scripts/sample.py RUN_DIR``.
"""

from __future__ import annotations

import argparse
import sys

from pyro_dssm.config import add_config_arguments, resolve_config


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config file (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.ckpt")
    add_config_arguments(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = resolve_config(args)
        from pyro_dssm.training import train

        train(cfg, resume=args.resume)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
