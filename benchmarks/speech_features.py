#!/usr/bin/env python
"""Speech features: batched torch STFT against a per-utterance librosa loop, and the corpus cache.

Examples::

    python benchmarks/speech_features.py                       # the shipped clips, tiled
    python benchmarks/speech_features.py --folder ~/.cache/pyro-dssm/asterisk-en

Prints, measured side by side in one run:
  1. power spectrograms of every utterance: ``pyro_dssm.data.speech.power_spectrograms``
     (torch, 32 utterances per ``torch.stft`` call) against ``librosa.stft`` one utterance
     at a time with the same window, hop and padding (and checks that they agree);
  2. loading the corpus from its cache against preprocessing the audio again.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", help="a folder of wav/flac (default: the shipped clips)")
    p.add_argument("--tile", type=int, default=20, help="with the shipped clips: copies of each clip (default 20)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    import librosa
    import torch

    from pyro_dssm.data import speech

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(args.folder) if args.folder else speech.SHIPPED_SPEECH
    files = speech.find_audio_files(folder)
    waves = [speech.preprocess_waveform(speech.load_audio(folder / f)) for f in files]
    if not args.folder:
        waves = waves * args.tile
    cfg = speech.STFTConfig()
    window = speech.sine_window(cfg.n_fft).numpy()
    librosa.stft(waves[0], n_fft=cfg.n_fft, hop_length=cfg.hop, window=window, center=True, pad_mode="constant")

    def loop():
        return [np.abs(librosa.stft(w, n_fft=cfg.n_fft, hop_length=cfg.hop, window=window, center=True,
                                    pad_mode="constant")).T ** 2 for w in waves]

    t_torch, ours = _best(lambda: speech.power_spectrograms(waves, cfg), args.repeats)
    t_loop, ref = _best(loop, args.repeats)
    err = max(float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12)) for a, b in zip(ours, ref))
    seconds = sum(len(w) for w in waves) / cfg.sample_rate
    print(f"{len(waves)} utterances, {seconds / 60:.1f} min of audio")
    print(f"power spectrograms: torch batched {t_torch:.3f} s, librosa loop {t_loop:.3f} s, "
          f"ratio {t_loop / t_torch:.2f}x (max relative difference {err:.1e})")

    before = os.environ.get("PYRO_DSSM_DATA")
    with tempfile.TemporaryDirectory() as home:
        os.environ["PYRO_DSSM_DATA"] = home  # a fresh cache
        try:
            t0 = time.perf_counter()
            speech.load_speech_folder(folder)
            t_build = time.perf_counter() - t0
            t_cached, _ = _best(lambda: speech.load_speech_folder(folder), args.repeats)
        finally:
            if before is None:
                del os.environ["PYRO_DSSM_DATA"]
            else:
                os.environ["PYRO_DSSM_DATA"] = before
    print(f"corpus load: preprocessing {t_build:.3f} s, from cache {t_cached:.3f} s, ratio {t_build / t_cached:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
