#!/usr/bin/env python
"""Collect training runs into the markdown table of the taxonomy paper's Table II.

Example::

    python scripts/results_table.py runs/* --out results/table2.md

Each run directory contributes one cell: row = model, alignment (PA/FA) and IAF;
column = dataset. A cell reads ``NLL (ELBO)``, both test values per time step:
the NLL estimate from ``eval_test.json`` (``scripts/evaluate.py``, IWAE bound)
when present, the negative ELBO from there or else from ``metrics.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COLUMNS = {"nottingham": "Nottingham", "musedata": "Musedata", "piano": "Piano-midi", "jsb": "JSB",
           "bach_chorales": "Bach chorales (music21)"}
ALIGN = {"partial": "PA", "full": "FA"}


def read_run(run: Path):
    from pyro_dssm.training.runs import RunDir

    rd = RunDir(run)
    if not rd.is_run:
        raise FileNotFoundError(f"{run} is not a run directory (no config.yaml)")
    cfg, ev, metrics = rd.config(), rd.evaluation("test"), rd.metrics()
    if ev is not None:
        nelbo, nll, data = ev["nelbo_per_step"], ev.get("nll_per_step"), ev.get("data")
    elif metrics is not None:
        nelbo, nll, data = metrics["test_nelbo_per_step"], None, metrics.get("data")
    else:
        raise FileNotFoundError(f"{run} has neither eval_test.json nor metrics.json: is the run finished?")
    align = ALIGN.get(cfg["guide"], cfg["guide"])
    row = f"{cfg['model'].upper()} ({align}{', IAF' if cfg.get('iaf') else ''})"
    return row, data or cfg["data"], nll, nelbo


def table(cells) -> str:
    cols = [c for c in COLUMNS if any(d == c for _, d, _, _ in cells)]
    cols += sorted({d for _, d, _, _ in cells} - set(cols))
    rows = sorted({r for r, _, _, _ in cells})
    grid = {(r, d): (nll, nelbo) for r, d, nll, nelbo in cells}
    lines = ["| model | " + " | ".join(COLUMNS.get(c, c) for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for r in rows:
        entries = []
        for c in cols:
            if (r, c) not in grid:
                entries.append("")
                continue
            nll, nelbo = grid[r, c]
            entries.append((f"{nll:.2f} " if nll is not None else "") + f"({nelbo:.2f})")
        lines.append(f"| {r} | " + " | ".join(entries) + " |")
    lines.append("")
    lines.append("Test NLL per time step (importance-sampled bound) and, in parentheses, negative ELBO per time step.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", help="write the markdown here as well as to stdout")
    args = p.parse_args(argv)
    try:
        cells = [read_run(Path(r)) for r in args.runs]
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from pyro_dssm.utils import print_and_save

    print_and_save(table(cells), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
