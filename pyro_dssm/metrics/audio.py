"""Speech quality metrics of the taxonomy paper's Table I: SI-SDR, PESQ (wide band) and ESTOI.

Each takes a reference and an estimate, 1-D waveforms of equal length at the
same sample rate, and returns a float. Bad input raises ``ValueError`` naming
the problem (different lengths, NaN/inf). A measure that is not defined for the
signals (a silent reference, a signal too short for the measure, no utterance
found) raises :class:`MetricUndefined`, a ``ValueError`` that an evaluation may
count as "not scored". Nothing else is caught: a broken ``pesq`` or ``pystoi``
install fails loudly.

- SI-SDR [1]: ``10 log10(|a s|^2 / |a s - s_hat|^2)`` with ``a = <s_hat, s> / |s|^2``,
  after removing each signal's mean; invariant to the scale of the estimate.
- PESQ [2] in its **wide-band** mode (ITU-T P.862.2, 16 kHz), the ``pesq`` package.
  Published speech tables mix narrow- and wide-band PESQ; ours is always wide band.
- ESTOI [3], the extended STOI of the ``pystoi`` package.

[1] J. Le Roux et al., "SDR - half-baked or well done?", ICASSP 2019.
[2] ITU-T P.862.2 (2007), wide-band extension of PESQ.
[3] J. Jensen and C. H. Taal, "An algorithm for predicting the intelligibility of speech masked by
    modulated noise maskers", IEEE/ACM TASLP 2016.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["si_sdr", "pesq_wb", "estoi", "MetricUndefined", "SI_SDR_MAX_DB"]

# SI-SDR of an exact (scaled) copy: float64 rounding of the target's energy, 10 log10(1 / eps) = 156.5 dB;
# a perfect estimate scores that finite number and is averaged like any other (and a silent one its negative)
SI_SDR_MAX_DB = float(10 * np.log10(1 / np.finfo(np.float64).eps))


class MetricUndefined(ValueError):
    """The measure is not defined for these signals (silent reference, too short, no utterance)."""


def _pair(reference, estimate, name: str):
    s = np.asarray(reference, dtype=np.float64)
    e = np.asarray(estimate, dtype=np.float64)
    if s.ndim != 1 or e.ndim != 1:
        raise ValueError(f"{name}: reference and estimate must be 1-D waveforms, got shapes {s.shape} and {e.shape}")
    if s.shape != e.shape:
        raise ValueError(f"{name}: reference has {s.size} samples but the estimate {e.size}; they must be aligned")
    if s.size == 0:
        raise ValueError(f"{name}: empty signals")
    if not (np.isfinite(s).all() and np.isfinite(e).all()):
        raise ValueError(f"{name}: reference or estimate contains NaN or inf")
    if not np.any(s):
        raise MetricUndefined(f"{name}: the reference is silent (all zeros)")
    return s, e


def si_sdr(reference, estimate) -> float:
    """Scale-invariant signal-to-distortion ratio in dB, within ``±SI_SDR_MAX_DB``.

    An exact scaled copy scores :data:`SI_SDR_MAX_DB` and an estimate with no part
    along the reference (silent, or orthogonal) ``-SI_SDR_MAX_DB``: finite numbers
    that an average keeps, where ``±inf`` would be dropped or swamp it.
    """
    s, e = _pair(reference, estimate, "SI-SDR")
    s = s - s.mean()
    e = e - e.mean()
    energy = s @ s
    if energy == 0:
        raise MetricUndefined("SI-SDR: the reference is constant (zero after removing its mean)")
    target = (e @ s) / energy * s
    noise = e - target
    t2, n2 = target @ target, noise @ noise
    if t2 == 0:  # a silent or orthogonal estimate: nothing of the reference in it
        return -SI_SDR_MAX_DB
    if n2 == 0:
        return SI_SDR_MAX_DB
    return float(np.clip(10 * (np.log10(t2) - np.log10(n2)), -SI_SDR_MAX_DB, SI_SDR_MAX_DB))


def pesq_wb(reference, estimate, sample_rate: int = 16000) -> float:
    """Wide-band PESQ (MOS-LQO, about 1.0 to 4.64) of 16 kHz speech."""
    s, e = _pair(reference, estimate, "PESQ")
    if sample_rate != 16000:
        raise ValueError(f"PESQ: wide-band PESQ needs 16 kHz signals, got {sample_rate} Hz (resample first)")
    if s.size < 0.25 * sample_rate:
        raise MetricUndefined(f"PESQ: signals of {s.size / sample_rate:.3f} s are too short; PESQ needs at least "
                              "0.25 s")
    from pesq import BufferTooShortError, NoUtterancesError, pesq

    try:
        return float(pesq(sample_rate, s, e, "wb"))
    except NoUtterancesError as err:
        raise MetricUndefined("PESQ: no utterance detected in the reference (silent or near-silent signal)") from err
    except BufferTooShortError as err:
        raise MetricUndefined("PESQ: too little signal for the measure") from err


def estoi(reference, estimate, sample_rate: int = 16000) -> float:
    """Extended short-time objective intelligibility (0 to 1)."""
    s, e = _pair(reference, estimate, "ESTOI")
    from pystoi import stoi

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi(s, e, sample_rate, extended=True))
    for w in caught:
        if "Not enough STFT frames" in str(w.message):
            raise MetricUndefined(f"ESTOI: {s.size / sample_rate:.3f} s of signal leave too few non-silent frames "
                             "(ESTOI needs about 0.4 s of speech)")
    return value
