"""Train any DSSM of the taxonomy with any guide, on music or your own sequences.

Examples::

    python scripts/train.py --model arssm --guide full            # main job: shipped Bach chorales
    python scripts/train.py --config configs/music/jsb/arssm-full-iaf3.yaml
    python scripts/train.py --model vrnn --guide partial --iaf 3 --data my_sequences.npz --epochs 100
    python scripts/train.py --out runs/x --resume                 # continue an interrupted run
    python scripts/train.py --out runs/x --resume --epochs 60     # ... and train it for longer
    python scripts/train.py --accelerator gpu --devices 4 --strategy ddp

Every field of a config file is also a flag (``z_dim`` is ``--z-dim``), and a
flag overrides the file. ``--resume`` rebuilds the run from its own ``config.yaml``;
flags may then change only --epochs, --patience, the hardware (--accelerator,
--devices, --num-nodes, --strategy, --num-workers) and --progress. The run directory gets ``config.yaml`` (resolved),
``checkpoints/{last,best}.ckpt``, ``logs/metrics.csv`` and ``metrics.json``.
Evaluate it with ``scripts/evaluate.py RUN_DIR`` and sample with ``scripts/sample.py RUN_DIR``.
"""

from __future__ import annotations

import argparse
import sys

from pyro_dssm.cli.flags import add_config_arguments, given_fields
from pyro_dssm.config import TrainConfig


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config file (see configs/)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from checkpoints/last.ckpt, as its config.yaml says")
    add_config_arguments(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        given = given_fields(args)
        if args.resume:
            from pyro_dssm.training import resume_run

            # the run's folder: --out, or the default one of the model, guide and data named here
            run_dir = TrainConfig.from_dict(given).run_dir
            given.pop("out", None)
            resume_run(run_dir, **given)
        else:
            from pyro_dssm.training import train

            train(TrainConfig.from_dict(given))
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as e:
        # errors of the user's input; programming errors (TypeError, ...) keep their traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
