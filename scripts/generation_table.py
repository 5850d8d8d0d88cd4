#!/usr/bin/env python
"""Collect evaluated LS4-style runs into LS4's Table 1 (generation) or Table 2 (forecasting), as markdown.

Examples::

    python scripts/generation_table.py runs/ls4/* runs/vrnn-fred-md --out results/table1.md
    python scripts/generation_table.py runs/ls4/ushcn* --forecast --out results/table2.md

Table 1 (runs evaluated with ``evaluate.py --generation``): rows are dataset x metric
(Marginal and Prediction: lower is better; Classification: higher is better).
Table 2 (``--forecast``, runs evaluated with ``evaluate.py --forecast ...``): rows are
metric x task x dataset (MSE, CRPS of N(mean, sigma_x^2), mixture CRPS; lower is better).
Columns are the models; the best entry of each row is bold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

METRICS = (("marginal", "Marginal ↓", min), ("classification", "Class. ↑", max), ("prediction", "Prediction ↓", min))
FORECAST = (("mse", "MSE ↓"), ("crps", "CRPS ↓"), ("crps_mixture", "mixture CRPS ↓"))
TASKS = ("interpolation", "extrapolation")


def _run(run: Path):
    from pyro_dssm.training.runs import RunDir

    rd = RunDir(run)
    if not rd.is_run:
        raise FileNotFoundError(f"{run} is not a run directory (no config.yaml)")
    return rd, rd.config()


def read_run(run: Path):
    rd, cfg = _run(run)
    report = rd.generation()
    if report is None:
        raise FileNotFoundError(f"{rd.generation_dir() / 'generation.json'} is missing: run "
                                f"`python scripts/evaluate.py {run} --generation` first")
    return report.get("data") or cfg["data"], cfg["model"], report["scores"]


def read_forecast(run: Path):
    """``(data, model, {task: report})`` of a run evaluated with ``evaluate.py --forecast``."""
    rd, cfg = _run(run)
    reports = {t: r for t in TASKS if (r := rd.forecast(t)) is not None}
    if not reports:
        raise FileNotFoundError(f"{run} has no forecast_*.json: run `python scripts/evaluate.py {run} "
                                "--forecast interpolation extrapolation` first")
    data = next(iter(reports.values())).get("data") or cfg["data"]
    return data, cfg["model"], reports


def _row(head: str, values, models, best) -> str:
    top = best(values.values()) if values else None
    entries = [("" if m not in values else f"**{values[m]:.4g}**" if values[m] == top else f"{values[m]:.4g}")
               for m in models]
    return f"| {head} | " + " | ".join(entries) + " |"


def _header(heads, models):
    return ["| " + " | ".join(heads) + " | " + " | ".join(m.upper() for m in models) + " |",
            "|" + "---|" * (len(heads) + len(models))]


def table(cells) -> str:
    """``cells``: ``{(data, model): scores}`` -> Table 1 markdown."""
    datasets = list(dict.fromkeys(d for d, _ in cells))
    models = list(dict.fromkeys(m for _, m in cells))
    lines = _header(["data", "metric"], models)
    for d in datasets:
        for key, label, best in METRICS:
            values = {m: cells[d, m][key] for m in models if (d, m) in cells}
            lines.append(_row(f"{d} | {label}", values, models, best))
    return "\n".join(lines) + "\n"


def forecast_table(cells) -> str:
    """``cells``: ``{(data, model): {task: report}}`` -> Table 2 markdown."""
    datasets = list(dict.fromkeys(d for d, _ in cells))
    models = list(dict.fromkeys(m for _, m in cells))
    lines = _header(["metric", "task", "data"], models)
    for key, label in FORECAST:
        for task in TASKS:
            for d in datasets:
                values = {m: cells[d, m][task][key] for m in models if task in cells.get((d, m), {})}
                if values:
                    lines.append(_row(f"{label} | {task} | {d}", values, models, min))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", help="write the markdown here as well as to stdout")
    p.add_argument("--forecast", action="store_true", help="Table 2 (interpolation/extrapolation) instead of Table 1")
    args = p.parse_args(argv)
    cells = {}
    try:
        for r in args.runs:
            d, m, scores = (read_forecast if args.forecast else read_run)(Path(r))
            cells[d, m] = scores
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from pyro_dssm.utils import print_and_save

    print_and_save((forecast_table if args.forecast else table)(cells), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
