"""Monash forecasting repository ``.tsf`` files (FRED-MD, NN5 Daily, Temperature Rain, Solar Weekly; LS4 Sec. 5.2).

The format (Godahewa et al. 2021): ``#`` comments, a header of ``@relation``,
``@attribute NAME TYPE`` (one per field before the values), ``@frequency``,
``@horizon``, ``@missing``, ``@equallength``, then ``@data`` and one line per
series, ``ATTR_1:...:ATTR_k:v_1,v_2,...`` with ``?`` for a missing value.

:func:`read_tsf` parses a file; :func:`load_tsf` makes a :class:`Corpus` of
``(T, 1)`` series with App. D.1's per-sequence normalisation: ``"zscore"``
(each series centred on its own mean and scaled by its own standard deviation:
FRED-MD, NN5 Daily, Solar Weekly) or ``"minmax"`` (each series squashed into
[0, 1]: Temperature Rain). The files are not shipped: download them from
https://forecastingdata.org (the "without missing values" versions where offered).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from .corpus import Corpus

__all__ = ["TSFData", "read_tsf", "normalise_series", "load_tsf", "NORMALISATIONS", "MONASH_DATASETS",
           "load_monash"]

NORMALISATIONS = ("zscore", "minmax", "none")

#: LS4 Sec. 5.2's datasets: file name under ``data_home()/monash`` and App. D.1's normalisation
MONASH_DATASETS = {
    "fred-md": ("fred_md_dataset.tsf", "zscore"),
    "nn5-daily": ("nn5_daily_dataset_without_missing_values.tsf", "zscore"),
    "temperature-rain": ("temperature_rain_dataset_without_missing_values.tsf", "minmax"),
    "solar-weekly": ("solar_weekly_dataset.tsf", "zscore"),
}


@dataclass
class TSFData:
    """A parsed ``.tsf`` file: ``series[i]`` (float64, NaN where missing) with ``attributes[i]`` and the header."""

    series: List[np.ndarray]
    attributes: List[Dict[str, str]]
    attribute_names: List[str]
    metadata: Dict[str, str] = field(default_factory=dict)


def read_tsf(path: Union[str, os.PathLike]) -> TSFData:
    """Parse a Monash ``.tsf`` file; every format error names the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist. Download the dataset's .tsf file from "
                                "https://forecastingdata.org and pass its path")
    names: List[str] = []
    meta: Dict[str, str] = {}
    series: List[np.ndarray] = []
    attrs: List[Dict[str, str]] = []
    in_data = False
    with open(path, encoding="latin-1") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{path.name}, line {lineno}"
            if not in_data:
                if not line.startswith("@"):
                    raise ValueError(f"{where}: expected a @ header line before @data, got {line[:40]!r}")
                key, _, rest = line[1:].partition(" ")
                key = key.lower()
                if key == "data":
                    in_data = True
                elif key == "attribute":
                    parts = rest.split()
                    if len(parts) != 2:
                        raise ValueError(f"{where}: @attribute needs a name and a type, got {rest!r}")
                    names.append(parts[0])
                else:
                    meta[key] = rest.strip()
                continue
            fields = line.split(":", len(names))
            if len(fields) != len(names) + 1:
                raise ValueError(f"{where}: expected {len(names)} attribute(s) then the values, separated by ':'")
            try:
                values = np.array([np.nan if v.strip() == "?" else float(v) for v in fields[-1].split(",")])
            except ValueError as e:
                raise ValueError(f"{where}: a value is not a number ({e})") from e
            series.append(values)
            attrs.append(dict(zip(names, fields[:-1])))
    if not in_data:
        raise ValueError(f"{path}: no @data section; is this a .tsf file?")
    if not series:
        raise ValueError(f"{path}: the @data section is empty")
    return TSFData(series, attrs, names, meta)


def normalise_series(x: np.ndarray, how: str = "zscore") -> np.ndarray:
    """App. D.1's per-sequence normalisation of one series (NaNs ignored in the statistics)."""
    if how not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {how!r}; expected one of {NORMALISATIONS}")
    if how == "none":
        return x
    if how == "zscore":
        sd = np.nanstd(x)
        return (x - np.nanmean(x)) / (sd if sd > 0 else 1.0)
    lo, hi = np.nanmin(x), np.nanmax(x)
    return (x - lo) / (hi - lo if hi > lo else 1.0)


def load_tsf(path: Union[str, os.PathLike], *, normalise: str = "zscore", missing: str = "error",
             max_length: Optional[int] = None, test_fraction: float = 0.2, valid_fraction: float = 0.1,
             seed: int = 0) -> Corpus:
    """A :class:`Corpus` of the file's series as ``(T, 1)`` float32 arrays, normalised per series.

    Args:
        normalise: ``"zscore"``, ``"minmax"`` or ``"none"``.
        missing: ``"error"`` (default), ``"drop"`` (leave out series with a missing value),
            ``"interpolate"`` (linear interpolation, constant at the ends) or ``"keep"`` (NaN
            entries, a corpus with missing values for LS4's irregular-sampling mode).
        max_length: keep the first ``max_length`` steps of each series.
        test_fraction, valid_fraction, seed: a random split by series (App. D: 80/20 train/test).
    """
    if missing not in ("error", "drop", "interpolate", "keep"):
        raise ValueError(f"missing must be 'error', 'drop', 'interpolate' or 'keep', got {missing!r}")
    data = read_tsf(path)
    seqs, names = [], []
    for i, (x, a) in enumerate(zip(data.series, data.attributes)):
        name = a.get("series_name", str(i))
        x = x[:max_length] if max_length else x
        gaps = np.isnan(x)
        if gaps.all():
            continue
        if gaps.any():
            if missing == "error":
                raise ValueError(f"{Path(path).name}: series {name!r} has {int(gaps.sum())} missing value(s); "
                                 "pass missing='drop', 'interpolate' or 'keep'")
            if missing == "drop":
                continue
        if gaps.any() and missing == "interpolate":
            idx = np.arange(len(x))
            x = np.interp(idx, idx[~gaps], x[~gaps])
        seqs.append(normalise_series(x, normalise).astype(np.float32)[:, None])
        names.append(name)
    if len(seqs) < 3:
        raise ValueError(f"{Path(path).name}: {len(seqs)} usable series; need at least 3 for the splits")
    return Corpus.from_sequences(seqs, name=Path(path).stem, source=str(path), valid_fraction=valid_fraction,
                                 test_fraction=test_fraction, seed=seed, names=names, missing=missing == "keep")


def load_monash(name: str, root: Optional[Union[str, os.PathLike]] = None, **kw) -> Corpus:
    """One of :data:`MONASH_DATASETS` from ``ROOT/monash/FILE`` (ROOT: ``data_home()``), normalised as App. D.1."""
    from .corpus import data_home

    if name not in MONASH_DATASETS:
        raise ValueError(f"unknown Monash dataset {name!r}; known: {sorted(MONASH_DATASETS)}")
    filename, how = MONASH_DATASETS[name]
    path = Path(root or data_home()) / "monash" / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: download {filename} (zipped) from "
                                "https://forecastingdata.org, unzip it into that folder, or pass --data-root")
    kw.setdefault("normalise", how)
    corpus = load_tsf(path, **kw)
    corpus.name = name
    return corpus
