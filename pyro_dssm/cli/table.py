"""Collect run directories into one of the papers' tables, as markdown (the papers' own layouts).

Examples::

    pyro-dssm table music runs/music/*/* --out results/table2.md         # taxonomy paper, Table II
    pyro-dssm table speech runs/speech/* --stat median                    # taxonomy paper, Table I
    pyro-dssm table generation runs/ls4/* runs/ls4/vrnn-*                 # LS4, Table 1
    pyro-dssm table forecast runs/ls4/ushcn*                              # LS4, Table 2

``music``: row = model, alignment (PA/FA) and IAF, column = dataset; a cell reads ``NLL (ELBO)``
per time step, from ``eval_test.json`` (``pyro-dssm evaluate``) or else ``metrics.json``.
``speech``: models in two blocks (without / with IAFs), SI-SDR, PESQ-WB and ESTOI from
``resynthesis-LATENTS/summary.json``, each cell ``partial/full``, the best of each column,
block and alignment bold. ``generation`` (runs evaluated with ``--generation``): rows are
dataset x metric; ``forecast`` (``--forecast ...``): metric x task x dataset; columns are the
models, LS4 first, the best of each row bold. Several runs of one cell (seeds) show their mean;
``pyro-dssm reproduce`` writes the experiment layout with the spread over seeds.
``scripts/results_table.py``, ``speech_table.py`` and ``generation_table.py`` are this command.
"""

from __future__ import annotations

import argparse
import sys

KINDS = ("music", "speech", "generation", "forecast")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS, help="which paper table")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--latents", choices=["sample", "mean"], default="sample",
                   help="speech: the resynthesis with sampled latents or with posterior means")
    p.add_argument("--stat", choices=["mean", "median"], default="mean", help="speech: per-utterance statistic")
    p.add_argument("--out", help="write the markdown here as well as to stdout")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from ..paper_tables import table_records
    from ..tables import render_table
    from ..utils import print_and_save

    args = parse_args(argv)
    try:
        records = table_records(args.runs, args.kind, latents=args.latents)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_and_save(render_table(args.kind, records, layout="paper", stat=args.stat, latents=args.latents), args.out)
    return 0
