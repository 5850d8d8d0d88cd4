"""US quarterly macroeconomic series (statsmodels' ``macrodata``): a real multivariate series available offline.

``statsmodels`` ships ``macrodata`` (203 quarters, 1959 Q1 to 2009 Q3, of 12 series:
real GDP, consumption, investment, government spending, disposable income, CPI, M1,
the 3-month T-bill rate, unemployment, population, inflation and the real interest
rate). It stands in offline for LS4's FRED-MD (Sec. 5.2: monthly US macro series,
which must be downloaded). :func:`load_macrodata` makes the series stationary (100 x
the log-difference of each level series; rates kept as they are), z-scores each of
the 12 dimensions over the whole record, and cuts it into overlapping windows of
``window`` quarters, ``stride`` apart: sequences ``(window, 12)``, split at random
(seeded). Overlapping windows share quarters across splits, so the scores measure
how well a model generates windows of this one history, not generalisation to a new one.
"""

from __future__ import annotations

from typing import List

import numpy as np

from .corpus import Corpus

__all__ = ["MACRO_LEVELS", "MACRO_RATES", "macro_series", "load_macrodata"]

#: level series, modelled as 100 x log-differences (quarterly growth in percent)
MACRO_LEVELS = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "pop")
#: rates, modelled as they are (percent)
MACRO_RATES = ("tbilrate", "unemp", "infl", "realint")


def macro_series() -> np.ndarray:
    """The stationary, z-scored macro series ``(202, 12)`` (levels' growth, then rates; float32)."""
    try:
        from statsmodels.datasets import macrodata
    except ImportError:
        raise ImportError("--data macro needs statsmodels, which ships the series: pip install statsmodels "
                          "(or pip install -e '.[timeseries]')") from None
    df = macrodata.load_pandas().data
    cols: List[np.ndarray] = [100 * np.diff(np.log(df[c].to_numpy(np.float64))) for c in MACRO_LEVELS]
    cols += [df[c].to_numpy(np.float64)[1:] for c in MACRO_RATES]
    x = np.stack(cols, axis=1)
    x = (x - x.mean(0)) / x.std(0)
    return x.astype(np.float32)


def load_macrodata(window: int = 24, stride: int = 1, seed: int = 0, test_fraction: float = 0.2,
                   valid_fraction: float = 0.1) -> Corpus:
    """Windows ``(window, 12)`` of :func:`macro_series`, ``stride`` quarters apart, split at random.

    The default, 24 quarters (6 years) one quarter apart, gives 179 windows.
    """
    if not isinstance(window, int) or not isinstance(stride, int) or window < 2 or stride < 1:
        raise ValueError(f"window must be an integer >= 2 and stride >= 1, got {window!r}, {stride!r}")
    x = macro_series()
    if window > len(x):
        raise ValueError(f"window {window} is longer than the {len(x)}-quarter record")
    starts = range(0, len(x) - window + 1, stride)
    seqs = [x[s:s + window] for s in starts]
    return Corpus.from_sequences(seqs, name="macro", source="statsmodels macrodata (US quarterly 1959-2009), "
                                 f"12 series, windows of {window} quarters every {stride}",
                                 valid_fraction=valid_fraction, test_fraction=test_fraction, seed=seed,
                                 names=[f"q{s}" for s in starts])
