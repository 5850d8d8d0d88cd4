"""Analysis-resynthesis of speech in teacher-forcing mode (taxonomy paper, Sec. III and App. C).

For a test utterance with power spectrogram ``x_{1:T}`` and complex STFT ``S``:

1. draw ``z_{1:T} ~ q(z_{1:T} | x_{1:T})`` from the guide (``latents="sample"``, as
   the paper does), or take each step's posterior mean (``latents="mean"``);
2. run the model on the true ``x_{1:T}`` with those latents (teacher forcing:
   every ``p(x_t | ...)`` conditions on the true past ``x_{<t}``) and take the mean
   of each emission, the reconstructed power ``v_t`` (Itakura-Saito: the
   variance ``v``; Gaussian-on-power: the location, floored at 0);
3. combine ``sqrt(v)`` with the original phase, ``sqrt(v) * S / |S|``, and
   invert the STFT by overlap-add;
4. score the resynthesised waveform against the preprocessed original with
   SI-SDR, wide-band PESQ and ESTOI (:mod:`pyro_dssm.metrics`).

:func:`evaluate_resynthesis` does all of it for a :class:`~pyro_dssm.data.speech.SpeechCorpus`
and writes the per-utterance CSV, the summary, the WAV files and the mel-spectrogram figure.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger

from .data.speech import STFTConfig, istft, sine_window, stft

__all__ = ["emission_means", "resynthesize", "griffin_lim", "wav_bytes", "analysis_resynthesis", "score_resynthesis",
           "evaluate_resynthesis",
           "plot_mel_spectrograms", "LATENT_MODES"]

LATENT_MODES = ("sample", "mean")


def _unmask(fn):
    while isinstance(fn, dist.MaskedDistribution):
        fn = fn.base_dist
    return fn


def _central_value(fn) -> torch.Tensor:
    """The mean of a guide factor; through flows, the image of the base mean (a flow has no closed-form mean)."""
    fn = _unmask(fn)
    if isinstance(fn, dist.TransformedDistribution):
        v = _central_value(fn.base_dist)
        for t in fn.transforms:
            v = t(v)
        return v
    return fn.mean


class _LatentMean(Messenger):
    """Replaces every unobserved sample by its distribution's central value (:func:`_central_value`)."""

    def _pyro_sample(self, msg):
        # torch distributions only: a plate's subsample site is a sample message too
        if not msg["is_observed"] and isinstance(msg["fn"], torch.distributions.Distribution):
            msg["value"] = _central_value(msg["fn"])
            msg["done"] = True


@torch.no_grad()
def emission_means(model, guide, x: torch.Tensor, mask: Optional[torch.Tensor] = None, *,
                   latents: str = "sample") -> torch.Tensor:
    """Teacher-forced reconstruction: the mean of ``p(x_t | z_{<=t}, x_{<t})`` at every step.

    Args:
        model, guide: a DSSM and a guide for it (any registered pair).
        x: observations ``(B, T, x_dim)``; ``mask``: optional ``(B, T)`` prefix mask.
        latents: ``"sample"`` (z drawn from the guide) or ``"mean"`` (each guide factor's mean).

    Returns:
        ``(B, T, x_dim)``; padded steps hold whatever the model computes there.
    """
    from .models.dssm import site_name

    if latents not in LATENT_MODES:
        raise ValueError(f"latents must be one of {LATENT_MODES}, got {latents!r}")
    run_guide = guide if latents == "sample" else _LatentMean()(guide)
    guide_tr = poutine.trace(run_guide).get_trace(x, mask)
    model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x, mask)
    T = x.shape[1]
    for t in range(1, T + 1):  # every latent of the model must come from the guide (teacher forcing)
        if model_tr.nodes[site_name("z", t)]["value"] is not guide_tr.nodes[site_name("z", t)]["value"]:
            raise RuntimeError(f"the model's {site_name('z', t)} was not replayed from the guide")
    return torch.stack([_unmask(model_tr.nodes[site_name("x", t)]["fn"]).mean for t in range(1, T + 1)], dim=-2)


def resynthesize(power: torch.Tensor, reference: torch.Tensor, cfg: STFTConfig, length: int) -> torch.Tensor:
    """Waveform from a power spectrogram and the phase of a reference STFT.

    Args:
        power: ``(T, F)`` reconstructed power (negative values are floored at 0).
        reference: ``(T, F)`` complex STFT of the original; its phase is reused.
        length: samples of the output.

    Returns:
        ``(length,)``.
    """
    if power.shape != reference.shape:
        raise ValueError(f"power {tuple(power.shape)} and reference STFT {tuple(reference.shape)} differ in shape")
    phase = torch.polar(torch.ones_like(reference.real), reference.angle())
    return istft(power.clamp_min(0).sqrt() * phase, cfg, length=length)


def griffin_lim(power: np.ndarray, cfg: STFTConfig, n_iter: int = 64, seed: int = 0) -> np.ndarray:
    """A waveform for a power spectrogram ``(T, F)`` with no phase to reuse (generated speech).

    Griffin-Lim phase retrieval (librosa) with the analysis of :func:`~pyro_dssm.data.speech.stft`
    (sine window, centred frames, zero padding). Returns ``(hop * (T - 1),)``.
    """
    import librosa

    p = np.asarray(power, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] != cfg.n_bins:
        raise ValueError(f"power must have shape (T, {cfg.n_bins}), got {p.shape}")
    window = sine_window(cfg.n_fft).numpy()
    return librosa.griffinlim(np.sqrt(np.clip(p, 0, None)).T, n_iter=n_iter, hop_length=cfg.hop,
                              win_length=cfg.n_fft, n_fft=cfg.n_fft, window=window, center=True,
                              pad_mode="constant", random_state=seed)


@torch.no_grad()
def analysis_resynthesis(model, guide, waves: Sequence[np.ndarray], power: Sequence[np.ndarray], cfg: STFTConfig,
                         *, latents: str = "sample", batch_size: int = 8, seed: int = 0) -> List[Dict[str, Any]]:
    """Resynthesise whole utterances.

    Args:
        waves: preprocessed waveforms ``(N_i,)``; ``power``: their power spectrograms ``(T_i, F)``.

    Returns:
        one dict per utterance: ``wave`` ``(N_i,)`` (the original), ``estimate`` ``(N_i,)``,
        ``power`` and ``power_hat`` ``(T_i, F)``.
    """
    from .data.corpus import pad_sequences

    if len(waves) != len(power):
        raise ValueError(f"{len(waves)} waveforms but {len(power)} spectrograms")
    pyro.set_rng_seed(seed)
    was = model.training, guide.training
    model.eval(), guide.eval()
    out = []
    try:
        for i in range(0, len(waves), batch_size):
            x, mask = pad_sequences(list(power[i:i + batch_size]))
            means = emission_means(model, guide, x, mask, latents=latents)
            for r, j in enumerate(range(i, min(i + batch_size, len(waves)))):
                w = torch.as_tensor(np.asarray(waves[j], dtype=np.float32))
                spec = stft(w, cfg)
                if spec.shape[0] != len(power[j]):
                    raise ValueError(f"utterance {j}: {len(power[j])} spectrogram frames but its waveform gives "
                                     f"{spec.shape[0]} with {cfg}")
                p_hat = means[r, :len(power[j])].float()
                est = resynthesize(p_hat, spec, cfg, len(w))
                out.append({"wave": w.numpy(), "estimate": est.numpy(), "power": np.asarray(power[j]),
                            "power_hat": p_hat.numpy()})
    finally:
        model.train(was[0]), guide.train(was[1])
    return out


def score_resynthesis(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
                      reasons: Optional[Dict[str, str]] = None) -> Dict[str, float]:
    """SI-SDR (dB), wide-band PESQ and ESTOI of one utterance.

    A measure that is not defined for the utterance (:class:`~pyro_dssm.metrics.MetricUndefined`:
    too short, silent, no utterance found) is ``nan``, and its reason goes into ``reasons``
    when a dict is given. Every other error (bad input, a broken ``pesq`` install) propagates.
    """
    from .metrics import MetricUndefined, estoi, pesq_wb, si_sdr

    scores = {}
    for name, fn in (("si_sdr", si_sdr), ("pesq_wb", lambda r, e: pesq_wb(r, e, sample_rate)),
                     ("estoi", lambda r, e: estoi(r, e, sample_rate))):
        try:
            scores[name] = fn(reference, estimate)
        except MetricUndefined as e:
            scores[name] = float("nan")
            if reasons is not None:
                reasons[name] = str(e)
    return scores


def plot_mel_spectrograms(items: Sequence[Dict[str, Any]], names: Sequence[str], cfg: STFTConfig, path,
                          n_mels: int = 80) -> None:
    """Save Fig. 2 of the paper (:func:`pyro_dssm.plots.mel_spectrogram_figure`) as a PNG."""
    from .plots import mel_spectrogram_figure, save_figure

    save_figure(mel_spectrogram_figure(items, names, cfg, n_mels=n_mels), path, dpi=100)


def _single_threaded_blas():
    """One BLAS thread for the metrics: on a loaded machine thread contention slowed them a hundredfold."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with librosa's scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV file contents (samples clipped to [-1, 1])."""
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, np.clip(wave, -1, 1), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def evaluate_resynthesis(model, guide, corpus, out_dir, *, latents: str = "sample", batch_size: int = 8,
                         seed: int = 0, save_wav: bool = True, figure_items: int = 3, split: str = "test",
                         log=print) -> Dict[str, Any]:
    """Table I for one run: resynthesise every utterance of a split of a speech corpus and score it.

    ``split="test"`` gives Table I's numbers; ``"train"`` (whole training files, read back
    through :meth:`~pyro_dssm.data.speech.SpeechCorpus.utterances`) gives Table III's
    training side.

    Writes into ``out_dir``: ``utterances.csv`` (one row per utterance), ``summary.json``
    (mean, median and 95% interval of each metric), ``wav/*.wav`` (resynthesised
    speech; ``save_wav``) and ``mel_spectrograms.png`` (the first ``figure_items`` utterances).

    Returns:
        the summary: ``{"latents", "utterances", "metrics": {name: summarize(...)}, ...}``.
    """
    from .metrics import summarize
    from .utils import atomic_write_bytes, atomic_write_text

    if corpus.kind != "speech":
        raise ValueError(f"analysis-resynthesis needs a speech corpus; {corpus.name!r} is not one")
    cfg: STFTConfig = corpus.stft
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names, waves, power = corpus.utterances(split)
    items = analysis_resynthesis(model, guide, waves, power, cfg, latents=latents,
                                 batch_size=batch_size, seed=seed)
    rows, reasons = [], {}
    for name, item in zip(names, items):
        why: Dict[str, str] = {}
        with _single_threaded_blas():
            scores = score_resynthesis(item["wave"], item["estimate"], cfg.sample_rate, why)
        for key, text in why.items():
            reasons.setdefault(key, {}).setdefault(text, []).append(name)
        rows.append({"id": name, "seconds": len(item["wave"]) / cfg.sample_rate, "frames": len(item["power"]),
                     **scores})
        if save_wav:
            stem = name.rsplit(".", 1)[0].replace("/", "__")
            atomic_write_bytes(out_dir / "wav" / f"{stem}.wav", wav_bytes(item["estimate"], cfg.sample_rate))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["id", "seconds", "frames", "si_sdr", "pesq_wb", "estoi"])
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out_dir / "utterances.csv", buf.getvalue())
    metrics, skipped = {}, {}
    for key in ("si_sdr", "pesq_wb", "estoi"):
        vals = [r[key] for r in rows if np.isfinite(r[key])]
        skipped[key] = len(rows) - len(vals)
        if 2 * skipped[key] > len(rows):
            why = "; ".join(f"{text} ({len(ids)}x, e.g. {ids[0]})" for text, ids in reasons.get(key, {}).items())
            raise RuntimeError(f"{key} could not be computed for {skipped[key]} of the {len(rows)} {split} "
                               f"utterances, so its average would not describe the split: {why}")
        if vals:
            metrics[key] = summarize(vals)
    summary = {"latents": latents, "utterances": len(rows), "metrics": metrics, "not_scored": skipped,
               "not_scored_reasons": {k: {text: ids for text, ids in v.items()} for k, v in reasons.items()},
               "stft": {"sample_rate": cfg.sample_rate, "n_fft": cfg.n_fft, "hop": cfg.hop, "window": "sine"},
               "pesq_mode": "wide band (P.862.2)", "estoi": "pystoi, extended=True", "seed": seed,
               "split": split}
    from .training.runs import RunDir

    atomic_write_text(out_dir / RunDir.SUMMARY, json.dumps(summary, indent=2))
    if figure_items:
        k = min(figure_items, len(items))
        plot_mel_spectrograms(items[:k], names[:k], cfg, out_dir / "mel_spectrograms.png")
    if log:
        parts = [f"{k} mean {v['mean']:.3f} [95% CI {v['ci_low']:.3f}, {v['ci_high']:.3f}], median {v['median']:.3f}"
                 for k, v in metrics.items()]
        log(f"analysis-resynthesis of {len(rows)} {split} utterances ({latents} latents): " + ", ".join(parts))
    return summary
