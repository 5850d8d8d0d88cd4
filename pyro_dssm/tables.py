"""Tables of runs: Table II (music), Table I (speech), LS4's Tables 1 and 2 (generation, forecasting).

Every table is rendered by :func:`render_table` from *records*, the flat dicts of
:meth:`RunDir.record <pyro_dssm.training.runs.RunDir.record>` (one per run directory), in one
of two layouts:

- ``"experiment"`` (``pyro-dssm reproduce``): one row per model, mean ± std over seeds, the
  papers' numbers beside ours, prior-sample statistics, and the papers' claims judged over
  seeds (:func:`compare`); where each side has one run, over the test items, paired
  (:func:`compare_paired`: Table I's utterances, Table II's sequences, weighted by length);
- ``"paper"`` (:mod:`pyro_dssm.paper_tables`; ``scripts/results_table.py``, ``speech_table.py``,
  ``generation_table.py``): the
  papers' own shape (Table II: one column per dataset, ``NLL (ELBO)``; Table I: partial/full
  cells with the best bold; LS4's tables: one column per model, the best of each row bold),
  each cell the mean over the runs given for it.

Models are always listed in :data:`MODEL_ORDER` and named by :data:`NAMES`.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

from .metrics.stats import mean_std

__all__ = ["aggregate", "render_table", "render_times", "compare", "music_claims", "render_claims", "run_record",
           "PAPER_MUSIC_JSB", "PAPER_SPEECH", "MODEL_ORDER", "NAMES", "FIELDS", "generation_claims", "compare_paired",
           "speech_claims"]


def run_record(run_dir, *, finished: bool = True) -> Optional[Dict[str, Any]]:
    """A run's numbers, flat for the tables (:meth:`~pyro_dssm.training.runs.RunDir.record`)."""
    from .training.runs import RunDir

    return RunDir(run_dir).record(finished=finished)


def _get(rec: Dict[str, Any], dotted: str):
    cur: Any = rec
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def aggregate(records: Sequence[Dict[str, Any]], fields: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Per config: ``{field: mean_std(...)}`` over its seeds, plus model, guide, iaf and total wall time."""
    cells: Dict[str, Dict[str, Any]] = {}
    for rec in records:
        cell = cells.setdefault(rec["config"], {"model": rec["model"], "guide": rec["guide"], "iaf": rec["iaf"],
                                                "seeds": [], "_recs": []})
        cell["seeds"].append(rec["seed"])
        cell["_recs"].append(rec)
    for cell in cells.values():
        recs = cell.pop("_recs")
        if len(recs) == 1:  # one run: keep its per-utterance 95% intervals (speech)
            cell["_ci"] = {f"{split}.{k}": v for split in ("train", "test")
                           for k, v in (recs[0].get(f"resynthesis_sample_{split}_ci") or {}).items()}
        for f in fields:
            cell[f] = mean_std([_get(r, f) for r in recs])
        cell["train_seconds"] = sum(r.get("train_seconds") or 0.0 for r in recs)
        cell["epochs_run"] = mean_std([r.get("epochs_run") for r in recs])
    return cells


# -- tables --------------------------------------------------------------------------------------

#: Table II of the taxonomy paper, JSB column, "NLL (ELBO)": ArSSM reports the ELBO bound only
PAPER_MUSIC_JSB = {("arssm", "partial"): (None, 7.46), ("arssm", "full"): (None, 7.17)}
#: Table I of the taxonomy paper (LibriSpeech, test): (SI-SDR, PESQ, ESTOI) for (model, guide, IAF)
PAPER_SPEECH = {
    ("arssm", "partial", 0): (5.42, 1.69, 0.785), ("arssm", "full", 0): (5.132, 1.675, 0.795),
    ("srnn", "partial", 0): (4.99, 1.60, 0.783), ("srnn", "full", 0): (5.146, 1.667, 0.788),
    ("fssm", "partial", 0): (0.367, 1.17, 0.634), ("fssm", "full", 0): (1.46, 1.23, 0.691),
    ("vrnn", "partial", 0): (3.32, 1.25, 0.687), ("vrnn", "full", 0): (3.23, 1.19, 0.664),
    ("rssm", "partial", 0): (0.633, 1.18, 0.654), ("rssm", "full", 0): (0.787, 1.19, 0.663),
    ("arssm", "partial", 3): (5.24, 1.65, 0.791), ("arssm", "full", 3): (5.56, 1.70, 0.802),
    ("srnn", "partial", 3): (5.73, 1.70, 0.795), ("srnn", "full", 3): (4.31, 1.42, 0.770),
    ("fssm", "partial", 3): (1.44, 1.23, 0.688), ("fssm", "full", 3): (1.55, 1.25, 0.706),
    ("vrnn", "partial", 3): (2.09, 1.13, 0.601), ("vrnn", "full", 3): (2.80, 1.16, 0.623),
    ("rssm", "partial", 3): (1.30, 1.20, 0.665), ("rssm", "full", 3): (1.47, 1.20, 0.670),
}
MODEL_ORDER = ("arssm", "srnn", "vrnn", "fssm", "rssm", "dmm", "ls4")
NAMES = {"arssm": "ArSSM", "srnn": "SRNN", "vrnn": "VRNN", "fssm": "FSSM", "rssm": "RSSM", "dmm": "DMM",
         "ls4": "LS4"}


def _model_key(model: str):
    """Sort key: :data:`MODEL_ORDER`, then any other model by name."""
    return (MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER), model)


def _fmt(ms: Optional[Dict[str, float]], digits: int = 2) -> str:
    if not ms or not ms.get("n"):
        return "–"
    if ms["n"] == 1:
        return f"{ms['mean']:.{digits}f}"
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def _epochs(ms: Optional[Dict[str, float]]) -> str:
    return f"{ms['mean']:.0f}" if ms and ms.get("n") else "–"


def _row_keys(cells: Dict[str, Dict[str, Any]]):
    keys = sorted({(c["model"], c["iaf"]) for c in cells.values()}, key=lambda k: (k[1], _model_key(k[0])))
    return keys


def _cell(cells, model, guide, iaf):
    for c in cells.values():
        if (c["model"], c["guide"], c["iaf"]) == (model, guide, iaf):
            return c
    return None


def _music_table(cells, baselines: Sequence[Dict[str, Any]] = ()) -> str:
    lines = ["| model | PA: −ELBO/step | PA: NLL/step (IWAE) | FA: −ELBO/step | FA: NLL/step (IWAE) "
             "| paper JSB (PA / FA, −ELBO) | seeds | epochs |",
             "|---|---|---|---|---|---|---|---|"]
    for model, iaf in _row_keys(cells):
        entries, seeds, epochs = [], set(), []
        for guide in ("partial", "full"):
            c = _cell(cells, model, guide, iaf)
            entries += [_fmt(c and c["eval_test.nelbo_per_step"]), _fmt(c and c["eval_test.nll_per_step"])]
            if c:
                seeds.add(len(c["seeds"]))
                epochs.append(_epochs(c["epochs_run"]))
        paper = [PAPER_MUSIC_JSB.get((model, g)) for g in ("partial", "full")] if not iaf else [None, None]
        ptxt = " / ".join(f"{p[1]:.2f}" if p else "–" for p in paper) if any(paper) else "–"
        name = NAMES.get(model, model) + (f" + {iaf} IAF" if iaf else "")
        lines.append(f"| {name} | " + " | ".join(entries) + f" | {ptxt} | {'/'.join(map(str, sorted(seeds)))} "
                     f"| {' / '.join(epochs)} |")
    for name, label in (("independent_keys", "independent keys (exact NLL)"), ("gru", "GRU language model")):
        recs = [b for b in baselines if b["baseline"] == name]
        if not recs:
            continue
        if name == "gru":
            label += (f", width {recs[0]['width']}" if recs[0].get("width") else "") + " (exact NLL)"
        nll = _fmt(mean_std([b["test_nll_per_step"] for b in recs]))
        epochs = _epochs(mean_std([b.get("epochs_run") for b in recs])) if name == "gru" else "–"
        lines.append(f"| {label} | – | {nll} | – | {nll} | – | {len(recs)} | {epochs} |")
    return "\n".join(lines)


def _sample_table(cells) -> str:
    """Prior samples' polyphony and held notes (against the data), and how much the posterior carries."""
    real = next((c["real_test.held_share"] for c in cells.values() if c["real_test.held_share"]["n"]), None)
    real_npf = next((c["real_test.notes_per_frame"] for c in cells.values()
                     if c["real_test.notes_per_frame"]["n"]), None)
    if real is None:
        return ""
    lines = [f"| model | held-note share PA / FA (data {real['mean']:.3f}) | notes per frame PA / FA "
             f"(data {real_npf['mean']:.2f}) | validation KL per step PA / FA (nats) |", "|---|---|---|---|"]
    for model, iaf in _row_keys(cells):
        cols = []
        for key, d in (("samples_test.held_share", 3), ("samples_test.notes_per_frame", 2), ("val_kl_per_step", 2)):
            pair = [_cell(cells, model, g, iaf) for g in ("partial", "full")]
            cols.append(" / ".join(_fmt(c and c[key], d) for c in pair))
        name = NAMES.get(model, model) + (f" + {iaf} IAF" if iaf else "")
        lines.append(f"| {name} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def _speech_table(cells) -> str:
    metrics = (("si_sdr", "SI-SDR (dB)", 2), ("pesq_wb", "PESQ-WB", 2), ("estoi", "ESTOI", 3))
    # one seed: mean [95% interval over the utterances]; several: mean ± std over seeds
    lines = ["| model | split | " + " | ".join(f"{h} PA / FA" for _, h, _ in metrics)
             + " | paper test (PA / FA): SI-SDR, PESQ, ESTOI |",
             "|---|---|" + "---|" * len(metrics) + "---|"]
    for model, iaf in _row_keys(cells):
        name = NAMES.get(model, model) + (f" + {iaf} IAF" if iaf else "")
        for split in ("train", "test"):
            entries = []
            for key, _, d in metrics:
                pair = []
                for guide in ("partial", "full"):
                    c = _cell(cells, model, guide, iaf)
                    text = _fmt(c and c.get(f"resynthesis_sample_{split}.{key}"), d)
                    ci = c and c.get("_ci", {}).get(f"{split}.{key}")
                    if ci and c[f"resynthesis_sample_{split}.{key}"]["n"] == 1:  # one run: its interval over utterances
                        text += f" [{ci[0]:.{d}f}, {ci[1]:.{d}f}]"
                    pair.append(text)
                entries.append(" / ".join(pair))
            paper = ""
            if split == "test":
                pp = [PAPER_SPEECH.get((model, g, iaf)) for g in ("partial", "full")]
                if all(pp):
                    paper = ", ".join(f"{a:g} / {b:g}" for a, b in zip(pp[0], pp[1]))
            lines.append(f"| {name} | {split} | " + " | ".join(entries) + f" | {paper or '–'} |")
    return "\n".join(lines)


def _generation_table(cells_by_data: Dict[str, Dict[str, Dict[str, Any]]]) -> str:
    """One row per run config: a model's name, and its config's when one data set has several configs of
    a model (a study's variants). Runs scored on their decoder means too (``evaluate --generation
    --sample-mean``) add those columns."""
    means = any(c.get("generation_mean.wasserstein", {}).get("n") for cells in cells_by_data.values()
                for c in cells.values())
    extra = " Wasserstein, means ↓ | crossing-time KS p, means |" if means else ""
    lines = ["| data | model | Marginal ↓ | Wasserstein marginal ↓ | Class. ↑ | Prediction ↓ | crossing-time KS p |"
             + extra + " seeds | epochs |", "|---|---|---|---|---|---|---|" + ("---|---|" if means else "") + "---|---|"]
    for data, cells in cells_by_data.items():
        shared = {m for m in (c["model"] for c in cells.values())
                  if sum(c["model"] == m for c in cells.values()) > 1}
        # LS4 first: the model the table is about, then its baselines
        for config, c in sorted(cells.items(), key=lambda kv: (kv[1]["model"] != "ls4", _model_key(kv[1]["model"]),
                                                               kv[0])):
            name = NAMES.get(c["model"], c["model"]) + (f" ({config})" if c["model"] in shared else "")
            row = (f"| {data} | {name} | "
                   f"{_fmt(c['generation.marginal'], 4)} | {_fmt(c['generation.wasserstein'], 4)} | "
                   f"{_fmt(c['generation.classification'], 4)} | {_fmt(c['generation.prediction'], 4)} | "
                   f"{_fmt(c['generation.crossing_p'], 3)} |")
            if means:
                row += f" {_fmt(c['generation_mean.wasserstein'], 4)} | {_fmt(c['generation_mean.crossing_p'], 3)} |"
            lines.append(row + f" {len(c['seeds'])} | {_epochs(c['epochs_run'])} |")
    return "\n".join(lines)


FIELDS = {
    "music": ("eval_test.nelbo_per_step", "eval_test.nll_per_step", "test_nelbo_per_step", "samples_test.held_share",
              "samples_test.notes_per_frame", "real_test.held_share", "real_test.notes_per_frame", "val_kl_per_step"),
    "speech": tuple(f"resynthesis_sample_{s}.{m}" for s in ("train", "test") for m in ("si_sdr", "pesq_wb", "estoi")),
    "generation": ("generation.marginal", "generation.classification", "generation.prediction",
                   "generation.wasserstein", "generation.crossing_p", "generation_mean.wasserstein",
                   "generation_mean.crossing_p"),
}


def render_table(kind: str, records: Sequence[Dict[str, Any]], baselines: Sequence[Dict[str, Any]] = (), *,
                 layout: str = "experiment", stat: str = "mean", latents: str = "sample") -> str:
    """The markdown table of ``records`` (:func:`run_record`).

    Args:
        kind: ``music``, ``speech``, ``generation`` or (``layout="paper"`` only) ``forecast``.
        records: one per run.
        baselines: music: the baseline rows of :func:`~pyro_dssm.experiments.run_baselines`.
        layout: ``"experiment"``: mean ± std over seeds, the papers' numbers beside ours, for music a
            second table of prior samples and the claims; ``"paper"``: the papers' own shape (see the
            module docstring).
        stat, latents: speech, ``layout="paper"``: the per-utterance mean or median, of the resynthesis
            with sampled latents or posterior means.
    """
    if layout == "paper":
        from .paper_tables import render_paper_table

        return render_paper_table(kind, records, stat=stat, latents=latents)
    if layout != "experiment":
        raise ValueError(f"unknown table layout {layout!r}: experiment or paper")
    if kind == "generation":
        by_data: Dict[str, List[Dict[str, Any]]] = {}
        for r in records:
            by_data.setdefault(r["data"], []).append(r)
        table = _generation_table({d: aggregate(rs, FIELDS[kind]) for d, rs in by_data.items()})
        claims = generation_claims(records)
        if claims:
            table += ("\n\nLS4's claim (Table 1: LS4 ahead of VRNN), judged over seeds (gap: VRNN's score minus LS4's, "
                      "Classification negated, so positive favours LS4; " + _TEST + "):\n\n" + render_claims(claims, unit="score"))
        return table
    cells = aggregate(records, FIELDS[kind])
    if kind != "music":
        table = _speech_table(cells)
        claims = speech_claims(records)
        if claims:
            table += ("\n\nTable I's claims and full against partial alignment (gap: the first's score minus the "
                      "second's, so positive favours "
                      "the first; " + _TEST + "; where both sides have one run, paired over the test utterances, which "
                      "measures the test set's noise and not training's):\n\n" + render_claims(claims, unit="score"))
        return table
    samples = _sample_table(cells)
    claims = render_claims(music_claims(records, baselines))
    return (_music_table(cells, baselines)
            + (f"\n\nPrior samples (as many as test chorales, of their lengths) and posterior use:\n\n{samples}"
               if samples else "")
            + "\n\nThe papers' claims, judged over seeds (gap: the second's score minus the first's, test −ELBO per "
              "step unless named; " + _TEST + "; where both sides have one run, paired over the test sequences and "
              "weighted by length, which measures the test set's noise and not training's):\n\n" + claims)


LEVEL = 0.95  # the two-sided confidence level of every verdict
_TEST = ("confirmed or contradicted by a two-sided t test at 95%: Welch's over seeds, a one-seed side borrowing the other side's spread and degrees of freedom")


def _verdict(diff: float, se: float, df: float, level: float = LEVEL) -> Dict[str, Any]:
    """A claim's verdict from its gap (positive favours the claim), the gap's standard error and the
    degrees of freedom of that error: Student's t test, two-sided at ``level``. ``confirmed`` when
    ``diff > t * se``, ``contradicted`` when ``diff < -t * se``, else ``within noise``, with ``t`` the
    ``(1 + level) / 2`` quantile of t with ``df`` degrees of freedom (``t`` and ``df`` are returned)."""
    from scipy.stats import t as student_t

    crit = float(student_t.ppf(0.5 + level / 2, df))
    verdict = "confirmed" if diff > crit * se else "contradicted" if diff < -crit * se else "within noise"
    return {"verdict": verdict, "t": crit, "df": df}


def compare(better: Sequence[float], worse: Sequence[float], *, level: float = LEVEL) -> Dict[str, Any]:
    """Is ``mean(better) < mean(worse)`` (lower is better), beyond seed noise?

    ``diff = mean(worse) - mean(better)`` and its standard error from the two samples' standard
    deviations, judged by Welch's t test at ``level`` (two-sided; :func:`_verdict`), with the
    Welch-Satterthwaite degrees of freedom. A side with one seed borrows the other side's standard
    deviation, and the test has that side's ``n - 1`` degrees of freedom only: three seeds against
    one need a gap of 4.3 standard errors, two against one 12.7. With one seed on both sides there is
    no noise estimate: ``one seed``.
    """
    a = [float(v) for v in better if v is not None and math.isfinite(float(v))]
    b = [float(v) for v in worse if v is not None and math.isfinite(float(v))]
    if not a or not b:
        return {"verdict": "not run", "diff": float("nan"), "se": float("nan"), "n": (len(a), len(b))}
    ma, mb = mean_std(a), mean_std(b)
    diff = mb["mean"] - ma["mean"]
    if len(a) < 2 and len(b) < 2:
        return {"verdict": "one seed", "diff": diff, "se": float("nan"), "n": (1, 1)}
    if len(a) < 2 or len(b) < 2:  # one side borrows the other's spread: that side's n - 1 degrees of freedom
        sa = sb = ma["std"] if len(a) > 1 else mb["std"]
        df = float(max(len(a), len(b)) - 1)
    else:
        sa, sb = ma["std"], mb["std"]
        va, vb = sa ** 2 / len(a), sb ** 2 / len(b)
        df = ((va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va + vb > 0
              else float(len(a) + len(b) - 2))
    se = math.sqrt(sa ** 2 / len(a) + sb ** 2 / len(b))
    return {**_verdict(diff, se, df, level), "diff": diff, "se": se, "n": (len(a), len(b))}


def music_claims(records: Sequence[Dict[str, Any]], baselines: Sequence[Dict[str, Any]] = (),
                 field: str = "eval_test.nelbo_per_step") -> List[Dict[str, Any]]:
    """The papers' music claims, each judged by :func:`compare` over seeds (test ``field``, lower is better):
    full alignment ahead of partial (Sec. II-B), IAFs ahead of none (Sec. II-C), the autoregressive
    models (ArSSM, SRNN, VRNN) ahead of FSSM and RSSM, and every latent model ahead of the GRU baseline
    (its exact NLL against the model's IWAE NLL).

    Where both sides of a claim have one run, over seeds there is no noise estimate; it is judged over
    the test sequences both runs scored (``eval_test.csv``), paired and weighted by length
    (:func:`compare_paired`, ``basis="items"``): the test set's noise, not training's."""
    def runs(model, guide, iaf):
        return [r for r in records if (r["model"], r["guide"], r["iaf"]) == (model, guide, iaf)]

    def vals(model, guide, iaf, f=field):
        return [_get(r, f) for r in runs(model, guide, iaf)]

    def judge(a, b):
        """``a`` ahead of ``b`` (keys ``(model, guide, iaf)``): over seeds, or with one run on each side,
        over the test sequences both scored, paired and weighted by length."""
        ra, rb = runs(*a), runs(*b)
        if len(ra) == 1 and len(rb) == 1 and field == "eval_test.nelbo_per_step":
            sa, sb = _sequence_scores(ra[0]), _sequence_scores(rb[0])
            if sa and sb:
                return compare_paired({k: v for k, (v, _) in sa.items()}, {k: v for k, (v, _) in sb.items()},
                                      weights={k: n for k, (_, n) in sa.items()}, item="sequences")
        return compare(vals(*a), vals(*b))

    present = {(r["model"], r["iaf"]) for r in records}
    claims = []
    for model, iaf in sorted(present, key=lambda k: (k[1], _model_key(k[0]))):
        name = NAMES.get(model, model) + (f" + {iaf} IAF" if iaf else "")
        claims.append({"claim": f"{name}: full alignment ≤ partial alignment",
                       **judge((model, "full", iaf), (model, "partial", iaf))})
    for model, iaf in sorted(present):
        if iaf:
            for guide in ("partial", "full"):
                claims.append({"claim": f"{NAMES.get(model, model)} {guide}: {iaf} IAF ≤ no IAF",
                               **judge((model, guide, iaf), (model, guide, 0))})
    for ar in ("arssm", "srnn", "vrnn"):
        for other in ("fssm", "rssm"):
            if (ar, 0) in present and (other, 0) in present:
                claims.append({"claim": f"{NAMES[ar]} ≤ {NAMES[other]} (full alignment)",
                               **judge((ar, "full", 0), (other, "full", 0))})
    gru = [b["test_nll_per_step"] for b in baselines if b.get("baseline") == "gru"]
    if gru:
        for model, iaf in sorted(present, key=lambda k: (k[1], _model_key(k[0]))):
            if not iaf:
                claims.append({"claim": f"{NAMES.get(model, model)} (full, IWAE NLL) ≤ GRU language model (exact NLL)",
                               **compare(vals(model, "full", 0, "eval_test.nll_per_step"), gru)})
    return claims


GENERATION_CLAIM_METRICS = (("marginal", "Marginal", 1), ("wasserstein", "Wasserstein marginal", 1),
                             ("classification", "Classification", -1), ("prediction", "Prediction", 1))


def generation_claims(records: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """LS4's Table 1 claim, LS4 ahead of VRNN, judged by :func:`compare` over seeds on each data set and
    score (the gap is oriented so that positive favours LS4: Classification is higher-better). A data set
    with several configs of one model (a tuning grid before its pick) has no claim."""
    by: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in records:
        by.setdefault((r["data"], r["model"]), []).append(r)
    claims = []
    for data in sorted({d for d, _ in by}):
        ls4, vrnn = by.get((data, "ls4")), by.get((data, "vrnn"))
        if not ls4 or not vrnn or any(len({r.get("config") for r in rs}) > 1 for rs in (ls4, vrnn)):
            continue
        for key, gen in (("generation", "samples"), ("generation_mean", "decoder means")):
            for metric, name, sign in GENERATION_CLAIM_METRICS:
                a = [_get(r, f"{key}.{metric}") for r in ls4]
                b = [_get(r, f"{key}.{metric}") for r in vrnn]
                if all(v is None for v in a + b) or (key == "generation_mean" and metric in ("classification",
                                                                                               "prediction")):
                    continue
                c = compare([sign * v for v in a if v is not None], [sign * v for v in b if v is not None])
                claims.append({"claim": f"{data}: LS4 ahead of VRNN on {name} ({gen})", **c})
    return claims


def compare_paired(better: Dict[str, float], worse: Dict[str, float], *, weights: Optional[Dict[str, float]] = None,
                   item: str = "items", level: float = LEVEL) -> Dict[str, Any]:
    """Is ``better`` ahead of ``worse`` (lower is better) on the same items, beyond the items' noise?

    ``better`` and ``worse`` map item ids (e.g. test utterances) to scores; the items both score
    (finite) are paired, ``diff`` is the mean of ``worse - better`` over them and ``se`` its standard
    error (sample standard deviation of the differences over ``sqrt(n)``); the verdict is the paired
    t test at ``level`` (``n - 1`` degrees of freedom; :func:`_verdict`). This is the noise of the
    test items, not of training: use it where each model has one training seed, and say so.

    ``weights`` (e.g. sequence lengths, with per-step scores) makes ``diff`` the weighted mean
    ``sum w_i d_i / sum w_i`` (per-step scores weighted by length give the gap of the corpus's
    total per step, as the tables report it) and ``se`` that of a weighted mean,
    ``sqrt(n / (n - 1) * sum w_i^2 (d_i - diff)^2) / sum w_i``, which is the unweighted one at equal
    weights. ``item`` names the items in the result (rendered as ``"N item, paired"``).
    """
    def ok(k):
        return all(v is not None and math.isfinite(float(v)) for v in (better[k], worse[k])) and (
            weights is None or (k in weights and float(weights[k]) > 0))

    ids = [k for k in better if k in worse and ok(k)]
    out = {"basis": "items", "item": item}
    if not ids:
        return {"verdict": "not run", "diff": float("nan"), "se": float("nan"), "n": (0, 0), **out}
    d = [float(worse[k]) - float(better[k]) for k in ids]
    w = [1.0 if weights is None else float(weights[k]) for k in ids]
    total = sum(w)
    diff = sum(wi * di for wi, di in zip(w, d)) / total
    n = len(d)
    if n < 2:
        return {"verdict": "one item", "diff": diff, "se": float("nan"), "n": (1, 1), **out}
    se = math.sqrt(n / (n - 1) * sum((wi * (di - diff)) ** 2 for wi, di in zip(w, d))) / total
    return {**_verdict(diff, se, float(n - 1), level), "diff": diff, "se": se, "n": (n, n), **out}


def _run_csv(rec: Dict[str, Any], locate) -> List[Dict[str, str]]:
    """The rows of the per-item CSV file ``locate(RunDir)`` of a record's run (empty if it has none)."""
    import csv

    from .training.runs import RunDir

    path = locate(RunDir(rec["run_dir"])) if rec.get("run_dir") else None
    if path is None or not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _sequence_scores(rec: Dict[str, Any], split: str = "test") -> Dict[str, tuple]:
    """``{sequence id: (negative ELBO per step, length)}`` from a run's ``eval_SPLIT.csv`` (empty if absent)."""
    return {row["id"]: (float(row["nelbo_per_step"]), float(row["length"]))
            for row in _run_csv(rec, lambda run: run.eval_file(split, "csv"))
            if row.get("nelbo_per_step") not in (None, "")}


SPEECH_CLAIM_METRICS = (("si_sdr", "SI-SDR"), ("pesq_wb", "PESQ-WB"), ("estoi", "ESTOI"))


def _utterance_scores(rec: Dict[str, Any], split: str = "test", latents: str = "sample") -> Dict[str, Dict[str, float]]:
    """``{metric: {utterance id: score}}`` from a run's ``resynthesis-LATENTS[-SPLIT]/utterances.csv``."""
    rows = _run_csv(rec, lambda run: run.resynthesis_dir(latents, split) / "utterances.csv")
    if not rows:
        return {}
    return {k: {row["id"]: float(row[k]) if row.get(k) not in (None, "") else float("nan") for row in rows}
            for k, _ in SPEECH_CLAIM_METRICS}


def speech_claims(records: Sequence[Dict[str, Any]], split: str = "test") -> List[Dict[str, Any]]:
    """Table I's claims (taxonomy paper, Sec. III): ArSSM ahead of its peers (SRNN, VRNN, FSSM, RSSM) under
    each alignment, the autoregressive models (ArSSM, SRNN, VRNN) ahead of FSSM and RSSM (full
    alignment), and full alignment ahead of partial (Sec. II-B) for every model run with both, on SI-SDR,
    PESQ-WB and ESTOI of the test resynthesis (sampled latents; higher is better).

    As in :func:`music_claims`, a claim is judged over seeds (:func:`compare` on each run's mean; a side
    with one seed borrows the other side's spread) unless both sides have one run: then over the test
    utterances, paired (:func:`compare_paired`), which measures the test set's noise, not training's.
    Each claim says which (``basis``: ``seeds`` or ``items``).
    """
    runs: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in records:
        if not r.get("iaf"):
            runs.setdefault((r["model"], r["guide"]), []).append(r)

    scores: Dict[str, Dict[str, Dict[str, float]]] = {}

    def utterances(rec):
        if rec["run_dir"] not in scores:
            scores[rec["run_dir"]] = _utterance_scores(rec, split)
        return scores[rec["run_dir"]]

    def judge(a, b, metric):
        ra, rb = runs[a], runs[b]
        if len(ra) > 1 or len(rb) > 1:
            va = [_get(r, f"resynthesis_sample_{split}.{metric}") for r in ra]
            vb = [_get(r, f"resynthesis_sample_{split}.{metric}") for r in rb]
            return {**compare([-v for v in va if v is not None], [-v for v in vb if v is not None]), "basis": "seeds"}
        ua, ub = utterances(ra[0]).get(metric), utterances(rb[0]).get(metric)
        if not ua or not ub:
            return None
        return compare_paired({k: -v for k, v in ua.items()}, {k: -v for k, v in ub.items()}, item="utterances")

    pairs = [(("arssm", g), (other, g)) for g in ("partial", "full") for other in ("srnn", "vrnn", "fssm", "rssm")]
    pairs += [((ar, "full"), (other, "full")) for ar in ("srnn", "vrnn") for other in ("fssm", "rssm")]
    pairs += [((m, "full"), (m, "partial")) for m in sorted({m for m, _ in runs}, key=_model_key)]
    claims = []
    for a, b in pairs:
        if a not in runs or b not in runs:
            continue
        for metric, name in SPEECH_CLAIM_METRICS:
            c = judge(a, b, metric)
            if c is not None:
                claim = (f"{NAMES.get(a[0], a[0])}: full alignment ahead of partial on {name}" if a[0] == b[0] else
                         f"{NAMES[a[0]]} ahead of {NAMES[b[0]]} on {name} ({a[1]} alignment)")
                claims.append({"claim": claim, **c})
    return claims


def render_claims(claims: Sequence[Dict[str, Any]], unit: str = "nats/step") -> str:
    """Markdown: each claim, the gap (worse − better, in ``unit``) ± its standard error, the seeds, the verdict."""
    lines = [f"| claim | gap ({unit}) | seeds | verdict |", "|---|---|---|---|"]
    for c in claims:
        gap = "–" if not math.isfinite(c["diff"]) else (f"{c['diff']:+.3f}" + (
            f" ± {c['se']:.3f}" if math.isfinite(c["se"]) else ""))
        basis = (f"{c['n'][0]} {c.get('item', 'items')}, paired" if c.get("basis") == "items"
                 else f"{c['n'][0]} vs {c['n'][1]}")
        lines.append(f"| {c['claim']} | {gap} | {basis} | {c['verdict']} |")
    return "\n".join(lines)


def render_times(records: Sequence[Dict[str, Any]]) -> str:
    """Markdown: per config, the seeds, epochs run and wall-clock minutes of training and evaluation per run."""
    lines = ["| run config | seeds | epochs run (mean) | training min per run (mean) | evaluation min per run (mean) |",
             "|---|---|---|---|---|"]
    by: Dict[str, List[Dict[str, Any]]] = {}
    for r in records:
        by.setdefault(r["config"], []).append(r)
    for config, rs in by.items():
        train = mean_std([(r.get("train_seconds") or 0.0) / 60 for r in rs])
        evals = mean_std([sum((v.get("seconds") or 0.0) for k, v in r.items() if k.startswith("eval_")
                              and isinstance(v, dict)) / 60 for r in rs])
        lines.append(f"| {config} | {len(rs)} | {_epochs(mean_std([r.get('epochs_run') for r in rs]))} | "
                     f"{train['mean']:.1f} | {evals['mean']:.1f} |")
    return "\n".join(lines)
