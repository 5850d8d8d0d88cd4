#!/usr/bin/env python
"""Collect speech runs into the markdown table of the taxonomy paper's Table I.

Example::

    python scripts/speech_table.py runs/speech/* --out results/table1.md

Each run directory must hold ``config.yaml`` (from ``scripts/train.py``) and
``resynthesis-LATENTS/summary.json`` (from ``scripts/evaluate.py``). Rows are
models, in two blocks (without / with IAFs); columns SI-SDR (dB), wide-band
PESQ and ESTOI; each cell reads ``partial/full`` alignment, as in the paper, and
the best value of each column, block and alignment is bold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

METRICS = (("si_sdr", "SI-SDR (dB) ↑", 2), ("pesq_wb", "PESQ-WB ↑", 2), ("estoi", "ESTOI ↑", 3))
ORDER = ("arssm", "srnn", "fssm", "vrnn", "rssm")
NAMES = {"arssm": "ArSSM", "srnn": "SRNN", "fssm": "FSSM", "vrnn": "VRNN", "rssm": "RSSM"}


def read_run(run: Path, latents: str):
    from pyro_dssm.training.runs import RunDir

    rd = RunDir(run)
    if not rd.is_run:
        raise FileNotFoundError(f"{run} is not a run directory (no config.yaml)")
    summary = rd.resynthesis(latents)
    if summary is None:
        raise FileNotFoundError(f"{rd.resynthesis_dir(latents) / 'summary.json'} is missing: run "
                                f"`python scripts/evaluate.py {run}{' --latents mean' if latents == 'mean' else ''}` first")
    cfg = rd.config()
    if cfg["guide"] not in ("partial", "full"):
        raise ValueError(f"{run}: Table I compares partial and full alignment, this run's guide is {cfg['guide']!r}")
    return (cfg["model"], bool(cfg.get("iaf")), cfg["guide"]), summary


def table(cells, stat: str = "mean") -> str:
    """``cells``: ``{(model, iaf, guide): summary}`` -> markdown."""
    value = {k: {m: s["metrics"][m][stat] for m, _, _ in METRICS if m in s["metrics"]} for k, s in cells.items()}
    models = [m for m in ORDER if any(k[0] == m for k in cells)]
    models += sorted({k[0] for k in cells} - set(models))
    lines = ["| | " + " | ".join(h for _, h, _ in METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for iaf in (False, True):
        if not any(k[1] == iaf for k in cells):
            continue
        lines.append(f"| **{'Using IAFs' if iaf else 'Without IAFs'}** |" + " |" * len(METRICS))
        best = {(m, g): max((v[m] for k, v in value.items() if k[1] == iaf and k[2] == g and m in v),
                            default=None) for m, _, _ in METRICS for g in ("partial", "full")}
        for model in models:
            if not any((model, iaf, g) in cells for g in ("partial", "full")):
                continue
            entries = []
            for m, _, digits in METRICS:
                parts = []
                for g in ("partial", "full"):
                    v = value.get((model, iaf, g), {}).get(m)
                    text = "–" if v is None else f"{v:.{digits}f}"
                    parts.append(f"**{text}**" if v is not None and v == best[m, g] else text)
                entries.append("/".join(parts))
            lines.append(f"| {NAMES.get(model, model)} | " + " | ".join(entries) + " |")
    n = sorted({s["utterances"] for s in cells.values()})
    lat = sorted({s.get("latents", "?") for s in cells.values()})
    lines += ["", f"Test {stat}s over {', '.join(map(str, n))} utterances; each cell is partial/full alignment; "
              f"latents {'/'.join(lat)} from the guide; PESQ is wide band (P.862.2), ESTOI is pystoi's extended STOI."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--latents", choices=["sample", "mean"], default="sample", help="which evaluation to read")
    p.add_argument("--stat", choices=["mean", "median"], default="mean")
    p.add_argument("--out", help="write the markdown here as well as to stdout")
    args = p.parse_args(argv)
    cells = {}
    try:
        for r in args.runs:
            key, summary = read_run(Path(r), args.latents)
            if key in cells:
                raise ValueError(f"two runs for {key} (model, IAF, guide): {r} and an earlier one")
            cells[key] = summary
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from pyro_dssm.utils import print_and_save

    print_and_save(table(cells, args.stat), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
