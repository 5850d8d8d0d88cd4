#!/usr/bin/env python
"""Collect runs evaluated with ``evaluate.py --generation`` into LS4's Table 1 (markdown).

Example::

    python scripts/generation_table.py runs/ls4/* runs/vrnn-fred-md --out results/table1.md

Rows are dataset x metric (Marginal and Prediction: lower is better; Classification:
higher is better), columns the models; the best entry of each row is bold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

METRICS = (("marginal", "Marginal ↓", min), ("classification", "Class. ↑", max), ("prediction", "Prediction ↓", min))


def read_run(run: Path):
    import yaml

    cfg_path, gen = run / "config.yaml", run / "generation" / "generation.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run} is not a run directory (no config.yaml)")
    if not gen.is_file():
        raise FileNotFoundError(f"{gen} is missing: run `python scripts/evaluate.py {run} --generation` first")
    cfg = yaml.safe_load(cfg_path.read_text())
    report = json.loads(gen.read_text())
    return report.get("data") or cfg["data"], cfg["model"], report["scores"]


def table(cells) -> str:
    """``cells``: ``{(data, model): scores}`` -> markdown."""
    datasets = list(dict.fromkeys(d for d, _ in cells))
    models = list(dict.fromkeys(m for _, m in cells))
    lines = ["| data | metric | " + " | ".join(m.upper() for m in models) + " |",
             "|---|---|" + "---|" * len(models)]
    for d in datasets:
        for key, label, best in METRICS:
            values = {m: cells[d, m][key] for m in models if (d, m) in cells}
            top = best(values.values())
            entries = [("" if m not in values else f"**{values[m]:.4g}**" if values[m] == top else f"{values[m]:.4g}")
                       for m in models]
            lines.append(f"| {d} | {label} | " + " | ".join(entries) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", help="write the markdown here as well as to stdout")
    args = p.parse_args(argv)
    cells = {}
    try:
        for r in args.runs:
            d, m, scores = read_run(Path(r))
            cells[d, m] = scores
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from pyro_dssm.utils import print_and_save

    print_and_save(table(cells), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
