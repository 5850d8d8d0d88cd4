"""The papers' own table layouts (``render_table(..., layout="paper")``), for the table scripts.

- Table II (taxonomy paper, music): one row per model, alignment and IAF; one column per
  dataset; each cell ``NLL (ELBO)`` per time step.
- Table I (taxonomy paper, speech): models in two blocks (without / with IAFs); SI-SDR, PESQ-WB,
  ESTOI; each cell ``partial/full`` alignment, the best of each column, block and alignment bold.
- LS4's Table 1 (generation: Marginal, Classification, Prediction per dataset) and Table 2
  (forecasting: MSE, CRPS per task and dataset): one column per model, LS4 first, the best of
  each row bold.

A cell with several runs (seeds) shows their mean; :func:`pyro_dssm.tables.render_table`'s
``experiment`` layout shows the spread. :func:`table_records` reads run directories and says
which evaluation a run still lacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .tables import NAMES, _model_key, run_record
from .training.runs import RunDir

__all__ = ["render_paper_table", "table_records", "DATA_COLUMNS", "GENERATION_METRICS", "FORECAST_METRICS",
           "SPEECH_METRICS"]

DATA_COLUMNS = {"nottingham": "Nottingham", "musedata": "Musedata", "piano": "Piano-midi", "jsb": "JSB",
                "bach_chorales": "Bach chorales (music21)"}
ALIGN = {"partial": "PA", "full": "FA"}
GENERATION_METRICS = (("marginal", "Marginal ↓", min), ("classification", "Class. ↑", max),
                      ("prediction", "Prediction ↓", min), ("wasserstein", "Wasserstein marginal ↓", min))
FORECAST_METRICS = (("mse", "MSE ↓"), ("crps", "CRPS ↓"), ("crps_mixture", "mixture CRPS ↓"))
FORECAST_TASKS = RunDir.FORECAST_TASKS
SPEECH_METRICS = (("si_sdr", "SI-SDR (dB) ↑", 2), ("pesq_wb", "PESQ-WB ↑", 2), ("estoi", "ESTOI ↑", 3))


def _mean(values) -> Optional[float]:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _music_paper_table(records) -> str:
    """Table II's shape: one row per model, alignment and IAF; one column per dataset; ``NLL (ELBO)``."""
    cells: Dict[tuple, Dict[str, list]] = {}
    for r in records:
        ev = r.get("eval_test") or {}
        row = (bool(r["iaf"]), _model_key(r["model"]), r["guide"] != "partial", r["guide"], r["iaf"])
        cell = cells.setdefault((row, ev.get("data") or r["data"]), {"nll": [], "nelbo": []})
        cell["nll"].append(ev.get("nll_per_step"))
        cell["nelbo"].append(ev.get("nelbo_per_step", r.get("test_nelbo_per_step")))
    datas = {d for _, d in cells}
    cols = [c for c in DATA_COLUMNS if c in datas] + sorted(datas - set(DATA_COLUMNS))
    lines = ["| model | " + " | ".join(DATA_COLUMNS.get(c, c) for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for row in sorted({r for r, _ in cells}):
        _, (_, model), _, guide, iaf = row
        entries = []
        for c in cols:
            cell = cells.get((row, c))
            nll, nelbo = (_mean(cell["nll"]), _mean(cell["nelbo"])) if cell else (None, None)
            entries.append("" if cell is None else (f"{nll:.2f} " if nll is not None else "")
                           + (f"({nelbo:.2f})" if nelbo is not None else ""))
        name = f"{NAMES.get(model, model)} ({ALIGN.get(guide, guide)}{f' + {iaf} IAF' if iaf else ''})"
        lines.append(f"| {name} | " + " | ".join(entries) + " |")
    lines += ["", "Test NLL per time step (importance-sampled bound) and, in parentheses, negative ELBO per time "
                  "step; a cell of several runs is their mean."]
    return "\n".join(lines) + "\n"


def _speech_paper_table(records, stat: str = "mean", latents: str = "sample") -> str:
    """Table I's shape: rows are models in two blocks (without / with IAFs), columns SI-SDR, PESQ-WB and
    ESTOI, each cell ``partial/full``; the best of each column, block and alignment is bold."""
    key = f"resynthesis_{latents}_test" + ("_median" if stat == "median" else "")
    runs: Dict[tuple, list] = {}
    for r in records:
        runs.setdefault((r["model"], bool(r["iaf"]), r["guide"]), []).append(r)
    value = {k: {m: _mean(r[key].get(m) for r in rs) for m, _, _ in SPEECH_METRICS} for k, rs in runs.items()}
    models = sorted({k[0] for k in runs}, key=_model_key)
    lines = ["| | " + " | ".join(h for _, h, _ in SPEECH_METRICS) + " |", "|---|" + "---|" * len(SPEECH_METRICS)]
    for iaf in (False, True):
        if not any(k[1] == iaf for k in runs):
            continue
        lines.append(f"| **{'Using IAFs' if iaf else 'Without IAFs'}** |" + " |" * len(SPEECH_METRICS))
        best = {(m, g): max((v[m] for k, v in value.items() if k[1] == iaf and k[2] == g and v[m] is not None),
                            default=None) for m, _, _ in SPEECH_METRICS for g in ("partial", "full")}
        for model in models:
            if not any((model, iaf, g) in runs for g in ("partial", "full")):
                continue
            entries = []
            for m, _, digits in SPEECH_METRICS:
                parts = []
                for g in ("partial", "full"):
                    v = value.get((model, iaf, g), {}).get(m)
                    text = "–" if v is None else f"{v:.{digits}f}"
                    parts.append(f"**{text}**" if v is not None and v == best[m, g] else text)
                entries.append("/".join(parts))
            lines.append(f"| {NAMES.get(model, model)} | " + " | ".join(entries) + " |")
    n = sorted({r.get(f"resynthesis_{latents}_test_utterances") for r in records} - {None})
    lines += ["", f"Test {stat}s over {', '.join(map(str, n)) or '?'} utterances; each cell is partial/full "
              f"alignment (several runs: their mean); latents {latents} from the guide; PESQ is wide band "
              "(P.862.2), ESTOI is pystoi's extended STOI."]
    return "\n".join(lines) + "\n"


def _models_as_columns(cells: Dict[tuple, Dict[str, Any]]) -> List[str]:
    """LS4 first (the model its tables are about), then :data:`MODEL_ORDER`."""
    return sorted({m for _, m in cells}, key=lambda m: (m != "ls4", _model_key(m)))


def _bold_row(head: str, values: Dict[str, float], models: Sequence[str], best) -> str:
    top = best(values.values()) if values else None
    entries = [("" if m not in values else f"**{values[m]:.4g}**" if values[m] == top else f"{values[m]:.4g}")
               for m in models]
    return f"| {head} | " + " | ".join(entries) + " |"


def _generation_paper_table(records, forecast: bool = False) -> str:
    """LS4's Table 1 (rows: dataset x metric) or, ``forecast``, Table 2 (rows: metric x task x dataset);
    one column per model, the best of each row bold."""
    cells: Dict[tuple, Dict[str, list]] = {}
    for r in records:
        data = (r.get("forecast_data") if forecast else r.get("generation_data")) or r["data"]
        cell = cells.setdefault((data, r["model"]), {})
        if forecast:
            for task in FORECAST_TASKS:
                for k, _ in FORECAST_METRICS:
                    if f"forecast_{task}" in r:
                        cell.setdefault((task, k), []).append(r[f"forecast_{task}"].get(k))
        else:
            for k, _, _ in GENERATION_METRICS:
                cell.setdefault(k, []).append((r.get("generation") or {}).get(k))
    models, datasets = _models_as_columns(cells), list(dict.fromkeys(d for d, _ in cells))
    heads = ["metric", "task", "data"] if forecast else ["data", "metric"]
    lines = ["| " + " | ".join(heads) + " | " + " | ".join(NAMES.get(m, m.upper()) for m in models) + " |",
             "|" + "---|" * (len(heads) + len(models))]

    def values(d, k):
        return {m: v for m in models if (v := _mean(cells.get((d, m), {}).get(k, []))) is not None}

    if forecast:
        for k, label in FORECAST_METRICS:
            for task in FORECAST_TASKS:
                for d in datasets:
                    vals = values(d, (task, k))
                    if vals:
                        lines.append(_bold_row(f"{label} | {task} | {d}", vals, models, min))
    else:
        for d in datasets:
            for k, label, best in GENERATION_METRICS:
                vals = values(d, k)
                if vals or k != "wasserstein":  # runs evaluated before it existed have no Wasserstein score
                    lines.append(_bold_row(f"{d} | {label}", vals, models, best))
    return "\n".join(lines) + "\n"


def table_records(run_dirs: Sequence, kind: str, *, latents: str = "sample") -> List[Dict[str, Any]]:
    """The records of ``run_dirs`` for a ``kind`` of table (``music``, ``speech``, ``generation``,
    ``forecast``), each checked to hold what that table reads.

    Raises:
        FileNotFoundError: a directory that is no run, or a run without the evaluation the table
        needs (naming the command that writes it).
        ValueError: speech: a run whose guide is neither partial nor full alignment.
    """
    records = []
    for run in map(Path, run_dirs):
        rec = run_record(run, finished=False)
        if rec is None:
            raise FileNotFoundError(f"{run} is not a run directory (no config.yaml)")
        if kind == "music" and "eval_test" not in rec and rec["test_nelbo_per_step"] is None:
            raise FileNotFoundError(f"{run} has neither eval_test.json nor metrics.json: is the run finished?")
        if kind == "speech":
            if f"resynthesis_{latents}_test" not in rec:
                raise FileNotFoundError(f"{RunDir(run).resynthesis_dir(latents) / 'summary.json'} is missing: run "
                                        f"`python scripts/evaluate.py {run}"
                                        f"{' --latents mean' if latents == 'mean' else ''}` first")
            if rec["guide"] not in ("partial", "full"):
                raise ValueError(f"{run}: Table I compares partial and full alignment, this run's guide is "
                                 f"{rec['guide']!r}")
        if kind == "generation" and "generation" not in rec:
            raise FileNotFoundError(f"{run / 'generation' / 'generation.json'} is missing: run "
                                    f"`python scripts/evaluate.py {run} --generation` first")
        if kind == "forecast" and not any(f"forecast_{t}" in rec for t in FORECAST_TASKS):
            raise FileNotFoundError(f"{run} has no forecast_*.json: run `python scripts/evaluate.py {run} "
                                    "--forecast interpolation extrapolation` first")
        records.append(rec)
    return records


def render_paper_table(kind: str, records: Sequence[Dict[str, Any]], *, stat: str = "mean",
                       latents: str = "sample") -> str:
    """The markdown table of ``records`` in the paper's layout of ``kind`` (music, speech, generation,
    forecast)."""
    if kind == "music":
        return _music_paper_table(records)
    if kind == "speech":
        return _speech_paper_table(records, stat, latents)
    if kind in ("generation", "forecast"):
        return _generation_paper_table(records, forecast=kind == "forecast")
    raise ValueError(f"unknown table kind {kind!r}: music, speech, generation or forecast")
