#!/usr/bin/env python
"""Keep the small files of finished runs (no checkpoints) so that a grid resumes on a fresh machine.

Examples::

    python scripts/archive_runs.py runs/experiments/music-bach/converge results/experiments/music-bach/converge
    python scripts/archive_runs.py results/experiments/music-bach/converge runs/experiments/music-bach/converge

Copies, for every run directory under SRC that has finished training (``metrics.json``), its
config, metrics, evaluations, sample statistics and per-epoch log, and the experiment's
``table.md``, ``results.json`` and ``baselines/``: what ``pyro-dssm reproduce`` needs to skip the
finished runs and tabulate them. Checkpoints stay behind (a few MB per run); a finished run
whose evaluations are all present never needs them again.

``--unfinished`` also keeps every interrupted run (a ``config.yaml`` and ``checkpoints/last.ckpt``,
no ``metrics.json``): its config, per-epoch log, last checkpoint and best checkpoint, so that
``pyro-dssm reproduce`` resumes it on a fresh machine after the reverse copy. The best one is needed
too: a run that early stopping ends without a better epoch after the resume is evaluated at its best
epoch, which only ``best.ckpt`` holds. Checkpoints are megabytes: use it at the end of a session for
runs that could not finish.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

KEEP = ("config.yaml", "metrics.json", "untrained_test.json", "eval_*.json", "eval_*.csv", "samples_*.json",
        "logs/metrics.csv", "resynthesis-*/summary.json", "resynthesis-*/utterances.csv", "generation/generation.json",
        "generation-mean/generation.json",
        "forecast_*.json")
TOP = ("table.md", "results.json", "baselines/*.json")
RESUME = ("config.yaml", "untrained_test.json", "logs/metrics.csv", "checkpoints/last.ckpt", "checkpoints/best.ckpt")


def _copy(f: Path, src: Path, dest: Path) -> None:
    out = dest / f.relative_to(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(f, out)


def archive_unfinished(src: Path, dest: Path) -> int:
    """Copy the resume state of every interrupted run under ``src`` to ``dest``; returns the number of runs."""
    runs = 0
    for last in sorted(src.rglob("checkpoints/last.ckpt")):
        run = last.parent.parent
        if (run / "metrics.json").is_file() or not (run / "config.yaml").is_file():
            continue
        runs += 1
        for pattern in RESUME:
            for f in run.glob(pattern):
                _copy(f, src, dest)
    return runs


def archive(src: Path, dest: Path) -> int:
    """Copy the kept files of every finished run under ``src`` to ``dest``; returns the number of runs."""
    runs = 0
    for metrics in sorted(src.rglob("metrics.json")):
        run = metrics.parent
        if not (run / "config.yaml").is_file():
            continue
        runs += 1
        for pattern in KEEP:
            for f in run.glob(pattern):
                _copy(f, src, dest)
    for pattern in TOP:
        for f in src.glob(pattern):
            _copy(f, src, dest)
    return runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dest")
    p.add_argument("--unfinished", action="store_true",
                   help="also keep each interrupted run's config, log, last and best checkpoints (to resume it elsewhere)")
    args = p.parse_args(argv)
    src = Path(args.src)
    if not src.is_dir():
        print(f"error: {src} is not a folder", file=sys.stderr)
        return 2
    n = archive(src, Path(args.dest))
    print(f"copied the summaries of {n} finished runs from {src} to {args.dest}")
    if args.unfinished:
        k = archive_unfinished(src, Path(args.dest))
        print(f"copied the resume state (config, log, last checkpoint) of {k} unfinished runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
