"""Irregularly sampled sequences for LS4's interpolation and extrapolation tasks (LS4 Sec. 5.3).

Irregular sampling is represented on a regular time grid: a sequence is a ``(T, D)``
array whose unobserved entries are NaN (a :class:`~pyro_dssm.data.corpus.Corpus` built
with ``missing=True``). LS4 (``LS4Config.missing``) reads such data: its likelihood
scores the observed entries only and its networks see ``(value or 0, observed flag)``.

* :func:`subsample` makes irregular data from regular data: every entry (or every
  time point) is kept with probability ``observed_fraction``.
* :func:`interpolation_task` and :func:`extrapolation_task` split each test sequence
  into what the model sees (the context) and what it must predict (the targets),
  following Sec. 5.3: interpolation hides a random subset of the observed time points;
  extrapolation sees the first half and predicts the second.
* :func:`load_sporadic_csv` / :func:`load_ushcn` read the sporadic-observation CSV
  format of De Brouwer et al. (2019), used by Sec. 5.3 for USHCN
  (columns ``ID, Time, Value_1..Value_D, Mask_1..Mask_D``).
* :func:`load_physionet` reads the PhysioNet 2012 challenge's per-patient files
  (``set-a/*.txt``, lines ``HH:MM,Parameter,Value``) as Rubanova et al. (2019) do:
  41 variables, times quantised, per-variable min-max scaling to [0, 1].

Both real corpora are split 70/10/20 (train/valid/test) at random by sequence (App. D: 80/20
train/test; a tenth of the data validates).
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from .corpus import SPLITS, Corpus, data_home

__all__ = ["subsample", "interpolation_task", "extrapolation_task", "load_sporadic_csv", "load_ushcn",
           "load_physionet", "PHYSIONET_VARIABLES"]

_SPLIT = dict(valid_fraction=0.1, test_fraction=0.2)  # of the real corpora (USHCN, Physionet)


def subsample(corpus: Corpus, observed_fraction: float, seed: int = 0, per_entry: bool = True) -> Corpus:
    """An irregularly sampled copy of ``corpus``: each entry kept with probability ``observed_fraction``.

    Args:
        per_entry: drop entries independently (each feature its own times, as in
            USHCN/Physionet); ``False``: drop whole time points.

    Every sequence keeps at least one observed entry. Returns a corpus with ``missing=True``.
    """
    if not 0 < observed_fraction <= 1:
        raise ValueError(f"observed_fraction must be in (0, 1], got {observed_fraction!r}")
    rng = np.random.default_rng(seed)
    splits: Dict[str, List[np.ndarray]] = {}
    for s in SPLITS:
        out = []
        for x in corpus.splits[s]:
            x = np.array(x, dtype=np.float32)
            shape = x.shape if per_entry else (x.shape[0], 1)
            keep = np.broadcast_to(rng.random(shape) < observed_fraction, x.shape).copy()
            keep &= ~np.isnan(x)
            if not keep.any():  # keep one observed entry at random
                obs = np.argwhere(~np.isnan(x))
                keep[tuple(obs[rng.integers(len(obs))])] = True
            out.append(np.where(keep, x, np.nan).astype(np.float32))
        splits[s] = out
    name = f"{corpus.name}-observed{observed_fraction:g}"
    return Corpus(splits, name=name, source=corpus.source, ids=corpus.ids, missing=True)


def _check_sequence(x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{where}: expected a (T, D) sequence with T >= 1, got shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError(f"{where}: contains inf")
    return x


def interpolation_task(x: np.ndarray, context_fraction: float = 0.5, rng: Optional[np.random.Generator] = None
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Hide a random part of the observed time points of ``x`` ``(T, D)`` (NaN = unobserved).

    Of the time points with at least one observed entry, a ``context_fraction`` share
    (at least one) stays visible; the others become targets.

    Returns:
        ``(context, target)``: ``context`` ``(T, D)`` with the targets set to NaN, and the
        boolean ``target`` ``(T, D)`` marking the hidden observed entries to predict.
    """
    x = _check_sequence(x, "interpolation_task")
    if not 0 < context_fraction < 1:
        raise ValueError(f"context_fraction must be in (0, 1), got {context_fraction!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    observed = ~np.isnan(x)
    times = np.flatnonzero(observed.any(-1))
    if len(times) < 2:
        raise ValueError(f"interpolation needs at least 2 observed time points, the sequence has {len(times)}")
    n_context = min(len(times) - 1, max(1, int(round(context_fraction * len(times)))))
    hidden = rng.permutation(times)[n_context:]
    target = np.zeros_like(observed)
    target[hidden] = observed[hidden]
    return np.where(target, np.nan, x).astype(np.float32), target


def extrapolation_task(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Split ``x`` ``(T, D)`` into its first half (the context, length ``T // 2``) and the second.

    Returns:
        ``(context, target)``: ``context`` ``(T // 2, D)`` and the boolean ``target``
        ``(T, D)`` marking the observed entries of the second half.
    """
    x = _check_sequence(x, "extrapolation_task")
    T = x.shape[0]
    if T < 2:
        raise ValueError(f"extrapolation needs a sequence of at least 2 steps, got {T}")
    target = ~np.isnan(x)
    target[: T // 2] = False
    if not target.any():
        raise ValueError("extrapolation: the second half of the sequence has no observed entry")
    return x[: T // 2].copy(), target


def load_sporadic_csv(path: Union[str, os.PathLike], time_step: float = 1.0, *, name: Optional[str] = None,
                      seed: int = 0, max_steps: Optional[int] = None) -> Corpus:
    """Sporadically observed series from a CSV with columns ``ID, Time, Value_1..D, Mask_1..D``.

    This is the layout of De Brouwer et al.'s (2019) preprocessed USHCN file. Each ``ID``
    becomes one sequence on the grid ``round(Time / time_step)`` (from the series' first
    time); entries whose mask is 0, and grid steps without a row, are NaN.
    Sequences are split 70/10/20 at random with ``seed``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sporadic CSV {str(path)!r} does not exist")
    if not time_step > 0:
        raise ValueError(f"time_step must be > 0, got {time_step!r}")
    rows: Dict[str, List[Tuple[float, List[float], List[bool]]]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        values = sorted((c for c in cols if c.startswith("Value_")), key=lambda c: int(c.split("_")[1]))
        masks = [f"Mask_{c.split('_')[1]}" for c in values]
        if "ID" not in cols or "Time" not in cols or not values or any(m not in cols for m in masks):
            raise ValueError(f"{path}: expected columns ID, Time, Value_1..D and Mask_1..D, got {cols}")
        for i, r in enumerate(reader):
            try:
                rows.setdefault(r["ID"], []).append(
                    (float(r["Time"]), [float(r[c]) for c in values], [float(r[m]) > 0 for m in masks]))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}: row {i + 2} is not numeric ({e})") from e
    if not rows:
        raise ValueError(f"{path} holds no observations")
    seqs, names = [], []
    for sid, obs in rows.items():
        t0 = min(t for t, _, _ in obs)
        steps = [int(round((t - t0) / time_step)) for t, _, _ in obs]
        T = max(steps) + 1 if max_steps is None else min(max(steps) + 1, max_steps)
        x = np.full((T, len(values)), np.nan, dtype=np.float32)
        for k, (_, v, m) in zip(steps, obs):
            if k < T:
                x[k] = np.where(m, v, x[k])
        if np.isnan(x).all():
            continue
        seqs.append(x)
        names.append(sid)
    return Corpus.from_sequences(seqs, name=name or path.stem, source=str(path), seed=seed, names=names,
                                 missing=True, **_SPLIT)


USHCN_FILE = "small_chunked_sporadic.csv"


def load_ushcn(root: Optional[Union[str, os.PathLike]] = None, time_step: float = 1.0, seed: int = 0) -> Corpus:
    """USHCN daily climate series (Sec. 5.3), from ``ROOT/ushcn/small_chunked_sporadic.csv``.

    ``ROOT`` is ``root`` or :func:`~pyro_dssm.data.corpus.data_home`. The file is the
    output of De Brouwer et al.'s (2019) GRU-ODE-Bayes preprocessing of USHCN.
    """
    path = Path(root or data_home()) / "ushcn" / USHCN_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"USHCN not found at {path}. Build it with the preprocessing scripts of De Brouwer et al. (2019), "
            "https://github.com/edebrouwer/gru_ode_bayes (data_preproc/Climate), and put "
            f"{USHCN_FILE} in {path.parent}")
    return load_sporadic_csv(path, time_step, name="ushcn", seed=seed)


# Rubanova et al. (2019): the 41 variables of the PhysioNet 2012 challenge (5 descriptors, 36 time series)
PHYSIONET_VARIABLES = (
    "Age", "Gender", "Height", "ICUType", "Weight", "Albumin", "ALP", "ALT", "AST", "Bilirubin", "BUN",
    "Cholesterol", "Creatinine", "DiasABP", "FiO2", "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "Mg",
    "MAP", "MechVent", "Na", "NIDiasABP", "NIMAP", "NISysABP", "PaCO2", "PaO2", "pH", "Platelets", "RespRate",
    "SaO2", "SysABP", "Temp", "TroponinI", "TroponinT", "Urine", "WBC")


def _read_patient(path: Path, quantization: float, hours: float) -> np.ndarray:
    """One patient file -> ``(T, 41)`` with the mean of the values falling into each time bin, NaN elsewhere."""
    index = {v: i for i, v in enumerate(PHYSIONET_VARIABLES)}
    T = int(round(hours / quantization)) + 1
    total = np.zeros((T, len(index)))
    count = np.zeros((T, len(index)))
    with open(path) as f:
        header = f.readline().strip()
        if header != "Time,Parameter,Value":
            raise ValueError(f"{path}: expected the header 'Time,Parameter,Value', got {header!r}")
        for n, line in enumerate(f, start=2):
            parts = line.strip().split(",")
            if len(parts) != 3 or parts[1] not in index:
                continue  # blank lines, RecordID and anything unknown
            try:
                hh, mm = parts[0].split(":")
                t, value = int(hh) + int(mm) / 60.0, float(parts[2])
            except ValueError as e:
                raise ValueError(f"{path}, line {n}: cannot read {line.strip()!r} ({e})") from e
            j = index[parts[1]]
            if j < 5 and value < 0:
                continue  # the descriptors use -1 for "unknown"
            k = int(round(t / quantization))
            if 0 <= k < T:
                total[k, j] += value
                count[k, j] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def load_physionet(root: Optional[Union[str, os.PathLike]] = None, quantization: float = 0.1, hours: float = 48.0,
                   seed: int = 0, max_patients: Optional[int] = None) -> Corpus:
    """PhysioNet 2012 ICU records (Sec. 5.3) from ``ROOT/physionet/set-a/*.txt`` (ROOT: ``data_home()``).

    Each patient is a ``(T, 41)`` sequence on the grid ``0, quantization, ..., hours`` hours
    (default 0.1 h: 481 steps; values in one bin averaged), unobserved entries NaN, and
    every variable min-max scaled to [0, 1] over all patients (Rubanova et al., 2019).
    Patients without any observation are left out.
    """
    folder = Path(root or data_home()) / "physionet" / "set-a"
    files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f"PhysioNet 2012 not found: no *.txt in {folder}. Download set-a.tar.gz from "
            "https://physionet.org/content/challenge-2012/1.0.0/ and unpack it there")
    if not 0 < quantization <= hours:
        raise ValueError(f"need 0 < quantization <= hours, got {quantization}, {hours}")
    seqs, names = [], []
    for f in files[:max_patients]:
        x = _read_patient(f, quantization, hours)
        if not np.isnan(x).all():
            seqs.append(x)
            names.append(f.stem)
    if not seqs:
        raise ValueError(f"{folder}: no patient file holds an observation")
    values = np.concatenate(seqs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # variables nobody observed
        lo, hi = np.nanmin(values, 0), np.nanmax(values, 0)
    lo = np.where(np.isnan(lo), 0.0, lo)
    span = np.where(np.isnan(hi) | (hi <= lo), 1.0, hi - lo)
    seqs = [((x - lo) / span).astype(np.float32) for x in seqs]
    return Corpus.from_sequences(seqs, name="physionet", source=str(folder), seed=seed, names=names, missing=True,
                                 **_SPLIT)
