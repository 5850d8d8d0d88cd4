"""Speech corpora as STFT power spectrograms: the input pipeline of the taxonomy paper's Table I.

(About 480 lines: the analysis, the per-corpus cache and the LibriSpeech/folder loaders share one
STFT definition, which a split would have to import from a third place; kept together.)

App. C of [1]: 16 kHz speech, a 64 ms (1024-sample) sine window, 513-bin
discrete Fourier spectra, power spectrograms ``|S|^2``, training sequences of
50 frames. The paper says "25% overlap"; its code and the common practice
(DVAE [2]) step the window by 25% of its length, a hop of 256 samples (75%
overlap), which is our default (:attr:`STFTConfig.hop`, configurable).

Every utterance goes through one function, :func:`preprocess_waveform`
(resample to 16 kHz, trim leading and trailing silence quieter than
``top_db`` below the peak, peak-normalise to 1), and one STFT,
:func:`stft` (``torch.stft``, centred frames, zero padding), at training and at
test time alike. Spectrograms are computed in torch for a batch of utterances
at once; zero-padding a batch leaves every utterance's own frames unchanged,
because the centring pad is zeros too.

Splits are by file (no utterance is in two splits): ``test_fraction`` (10%) of
the files, or of the speakers with ``speaker_disjoint=True``, drawn with a
seeded permutation; ``valid_fraction`` of the rest validates. Training and
validation utterances are cut into non-overlapping ``seq_len``-frame sequences
(the last, shorter piece is kept, with a mask); test sequences are whole
utterances, which the analysis-resynthesis evaluation turns back into sound.

The preprocessed waveforms and spectrograms are cached per corpus under
``data_home()/speech-cache`` (``$PYRO_DSSM_DATA`` or ``~/.cache/pyro-dssm``), keyed
by the files' names, sizes and modification times and by every preprocessing
setting.

Audio I/O needs the ``audio`` extra (``pip install "pyro-dssm[audio]"``:
soundfile, librosa).

[1] A Hierarchical Taxonomy for Deep State Space Models, App. C.
[2] L. Girin et al., "Dynamical Variational Autoencoders: A Comprehensive Review", 2021.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..fields import check_positive_int, check_positive_ints
from .corpus import SPLITS, Corpus, data_home

__all__ = ["STFTConfig", "sine_window", "stft", "istft", "power_spectrogram", "power_spectrograms",
           "load_audio", "preprocess_waveform", "find_audio_files", "speaker_of", "split_files",
           "SpeechCorpus", "load_speech_folder", "load_shipped_speech", "load_librispeech", "SHIPPED_SPEECH",
           "AUDIO_SUFFIXES", "cache_root", "load_utterances"]

AUDIO_SUFFIXES = (".flac", ".wav")
SHIPPED_SPEECH = Path(__file__).resolve().parent / "assets" / "speech"
_CACHE_VERSION = 1


def _audio_libs():
    try:
        import librosa
        import soundfile
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("speech data needs soundfile and librosa: pip install \"pyro-dssm[audio]\"") from e
    return soundfile, librosa


# ----------------------------------------------------------------------------------------------
# STFT
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class STFTConfig:
    """The analysis: ``n_fft``-sample sine window, hop ``hop``, ``n_fft // 2 + 1`` bins (App. C: 1024, 256, 513)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 256

    def __post_init__(self):
        check_positive_ints(self, ("sample_rate", "n_fft", "hop"), "STFT ")
        if self.hop > self.n_fft:
            raise ValueError(f"STFT hop ({self.hop}) must not exceed the window length n_fft ({self.n_fft})")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """Frames of a ``num_samples`` signal (centred frames: ``1 + num_samples // hop``)."""
        return 1 + num_samples // self.hop


def sine_window(n_fft: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``w[n] = sin(pi (n + 1/2) / n_fft)``, ``n = 0..n_fft-1``; its squares overlap-add to 2 at hop n_fft/4."""
    n = torch.arange(n_fft, dtype=torch.float64, device=device)
    return torch.sin(math.pi * (n + 0.5) / n_fft).to(dtype)


def _as_batch(wave) -> Tuple[torch.Tensor, bool]:
    w = torch.as_tensor(wave)
    if not torch.is_floating_point(w):
        w = w.to(torch.get_default_dtype())
    if w.dim() == 1:
        return w.unsqueeze(0), True
    if w.dim() != 2:
        raise ValueError(f"waveforms must have shape (N,) or (B, N), got {tuple(w.shape)}")
    return w, False


def _stft_bft(w: torch.Tensor, cfg: STFTConfig) -> torch.Tensor:
    """``torch.stft`` of checked ``(B, N)`` waveforms, in its native ``(B, F, T)`` layout."""
    if w.shape[-1] == 0:
        raise ValueError("cannot take the STFT of an empty waveform (0 samples)")
    if not torch.isfinite(w).all():
        raise ValueError("waveform contains NaN or inf")
    return torch.stft(w, cfg.n_fft, hop_length=cfg.hop, window=sine_window(cfg.n_fft, w.dtype, w.device),
                      center=True, pad_mode="constant", return_complex=True)


def stft(wave, cfg: STFTConfig = STFTConfig()) -> torch.Tensor:
    """Complex STFT, batch-first.

    Args:
        wave: ``(N,)`` or ``(B, N)`` real waveforms.

    Returns:
        ``(T, F)`` or ``(B, T, F)`` complex, ``T = 1 + N // hop``, ``F = n_fft // 2 + 1``.
    """
    w, single = _as_batch(wave)
    spec = _stft_bft(w, cfg).transpose(-1, -2)
    return spec[0] if single else spec


def istft(spec: torch.Tensor, cfg: STFTConfig = STFTConfig(), length: Optional[int] = None) -> torch.Tensor:
    """Inverse of :func:`stft` by weighted overlap-add.

    Args:
        spec: ``(T, F)`` or ``(B, T, F)`` complex.
        length: samples of the output (the analysed signal's length).

    Returns:
        ``(N,)`` or ``(B, N)`` real.
    """
    single = spec.dim() == 2
    s = spec.unsqueeze(0) if single else spec
    if s.shape[-1] != cfg.n_bins:
        raise ValueError(f"spectrogram has {s.shape[-1]} bins, the STFT config {cfg.n_bins}")
    real_dtype = s.real.dtype
    out = torch.istft(s.transpose(-1, -2), cfg.n_fft, hop_length=cfg.hop,
                      window=sine_window(cfg.n_fft, real_dtype, s.device), center=True, length=length)
    return out[0] if single else out


def power_spectrogram(wave, cfg: STFTConfig = STFTConfig()) -> torch.Tensor:
    """``|STFT|^2``: ``(N,)`` -> ``(T, F)``, ``(B, N)`` -> ``(B, T, F)``."""
    w, single = _as_batch(wave)
    s = _stft_bft(w, cfg)
    # re^2 + im^2 in torch.stft's own layout, then one transposing copy: about twice as fast as
    # abs().square() (a square root) on the transposed view
    p = (s.real.square() + s.imag.square()).transpose(-1, -2).contiguous()
    return p[0] if single else p


def power_spectrograms(waves: Sequence[np.ndarray], cfg: STFTConfig = STFTConfig(),
                       batch_size: int = 32) -> List[np.ndarray]:
    """Power spectrograms of many waveforms, ``batch_size`` at a time in one ``torch.stft`` each.

    Waveforms are grouped by length and zero-padded; each result is cropped to its
    own ``1 + N // hop`` frames, and equals :func:`power_spectrogram` of that waveform alone.

    Returns:
        ``(T_i, F)`` float32 arrays, in the order of ``waves``.
    """
    order = np.argsort([len(w) for w in waves], kind="stable")
    out: List[Optional[np.ndarray]] = [None] * len(waves)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        n_max = max(len(waves[j]) for j in idx)
        batch = torch.zeros(len(idx), n_max, dtype=torch.float32)
        for r, j in enumerate(idx):
            batch[r, :len(waves[j])] = torch.as_tensor(np.asarray(waves[j], dtype=np.float32))
        p = power_spectrogram(batch, cfg)
        for r, j in enumerate(idx):
            out[j] = p[r, :cfg.num_frames(len(waves[j]))].numpy()
    return out  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------
# Waveforms
# ----------------------------------------------------------------------------------------------

def load_audio(path: Union[str, os.PathLike], sample_rate: int = 16000) -> np.ndarray:
    """Read a wav/flac file as mono float32 at ``sample_rate`` (channels averaged, resampled with soxr)."""
    soundfile, librosa = _audio_libs()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {str(path)!r} does not exist")
    try:
        wave, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - libsndfile raises its own error types
        raise ValueError(f"cannot read audio file {path}: {e}") from e
    wave = wave.mean(axis=1)
    if sr != sample_rate:
        wave = librosa.resample(wave, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(wave, dtype=np.float32)


def preprocess_waveform(wave: np.ndarray, *, top_db: float = 30.0, cfg: STFTConfig = STFTConfig(),
                        where: str = "waveform") -> np.ndarray:
    """Trim leading/trailing silence (``top_db`` below the peak, librosa) and peak-normalise to 1.

    Raises:
        ValueError: for a silent, non-finite or too short (less than one window) waveform.
    """
    _, librosa = _audio_libs()
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"{where}: expected a mono waveform (N,), got shape {wave.shape}")
    if not np.isfinite(wave).all():
        raise ValueError(f"{where}: waveform contains NaN or inf")
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak == 0.0:
        raise ValueError(f"{where}: waveform is empty or silent (all zeros)")
    wave, _ = librosa.effects.trim(wave, top_db=top_db, frame_length=cfg.n_fft, hop_length=cfg.hop)
    if len(wave) < cfg.n_fft:
        raise ValueError(f"{where}: only {len(wave)} samples after trimming silence; need at least one "
                         f"{cfg.n_fft}-sample window")
    return (wave / np.abs(wave).max()).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Files and splits
# ----------------------------------------------------------------------------------------------

def find_audio_files(root: Union[str, os.PathLike]) -> List[str]:
    """Relative paths (POSIX, sorted) of every ``.flac``/``.wav`` file under ``root``, recursively."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"speech folder {str(root)!r} does not exist")
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def speaker_of(relpath: str) -> str:
    """The speaker of a file: its first folder (LibriSpeech: ``SPEAKER/CHAPTER/UTT.flac``); '' at the top level."""
    parts = relpath.split("/")
    return parts[0] if len(parts) > 1 else ""


def split_files(files: Sequence[str], *, test_fraction: float = 0.1, valid_fraction: float = 0.1,
                speaker_disjoint: bool = False, seed: int = 0) -> Dict[str, List[str]]:
    """A deterministic split of ``files`` into train/valid/test.

    ``test_fraction`` of the units (files, or speakers when ``speaker_disjoint``)
    go to test, ``valid_fraction`` of the remaining units to valid, each at least
    one unit; the units are ordered by a permutation seeded with ``seed``.
    """
    if not (0 < test_fraction < 1 and 0 <= valid_fraction < 1):
        raise ValueError(f"test_fraction must be in (0, 1) and valid_fraction in [0, 1), got "
                         f"{test_fraction}, {valid_fraction}")
    files = sorted(files)
    units = sorted({speaker_of(f) for f in files}) if speaker_disjoint else files
    if len(units) < 3:
        what = "speakers (first-level folders)" if speaker_disjoint else "files"
        raise ValueError(f"need at least 3 {what} for train/valid/test splits, found {len(units)}")
    perm = [units[i] for i in np.random.default_rng(seed).permutation(len(units))]
    n_test = max(1, int(round(len(units) * test_fraction)))
    n_valid = max(1, int(round((len(units) - n_test) * valid_fraction)))
    if n_test + n_valid >= len(units):
        raise ValueError(f"{len(units)} units are too few for the fractions test={test_fraction}, "
                         f"valid={valid_fraction}")
    group = {u: "test" for u in perm[:n_test]}
    group.update({u: "valid" for u in perm[n_test:n_test + n_valid]})
    out: Dict[str, List[str]] = {s: [] for s in SPLITS}
    for f in files:
        out[group.get(speaker_of(f) if speaker_disjoint else f, "train")].append(f)
    return out


# ----------------------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------------------

class SpeechCorpus(Corpus):
    """A :class:`Corpus` of power spectrograms ``(T, F)`` plus what resynthesis needs.

    ``splits["train"]``/``["valid"]`` hold ``seq_len``-frame pieces, ``splits["test"]``
    whole utterances. Extra attributes:

    Attributes:
        stft: the :class:`STFTConfig` of the analysis.
        root: the folder the files came from.
        files: per split, the relative paths of the files.
        test_waves: the preprocessed test waveforms ``(N_i,)``, aligned with ``splits["test"]``.
        settings: the preprocessing settings (for the cache key and for reports).
    """

    kind = "speech"

    def __init__(self, splits, *, stft: STFTConfig, root: str, files: Dict[str, List[str]],
                 test_waves: List[np.ndarray], settings: Dict[str, object],
                 reload: Optional[Callable[[Sequence[str]], Tuple[List[np.ndarray], List[np.ndarray]]]] = None, **kw):
        super().__init__(splits, **kw)
        self.stft, self.root, self.files, self.test_waves, self.settings = stft, root, files, test_waves, settings
        self._reload = reload

    def head(self, n: int) -> "SpeechCorpus":
        out = super().head(n)
        out.test_waves = self.test_waves[:n]
        out.files = {**self.files, "test": self.files["test"][:n]}
        return out

    def utterances(self, split: str = "test") -> Tuple[List[str], List[np.ndarray], List[np.ndarray]]:
        """Whole utterances of a split: ``(file names, waveforms (N_i,), power spectrograms (T_i, F))``.

        The test split is held in memory; the training and validation files (kept as
        ``seq_len``-frame pieces) are read back from the corpus cache, or preprocessed again.
        """
        if split == "test":
            return list(self.files["test"]), list(self.test_waves), list(self.splits["test"])
        if split not in self.files:
            raise ValueError(f"unknown split {split!r}; one of {list(self.files)}")
        if self._reload is None:
            raise ValueError(f"this corpus cannot reload the whole utterances of its {split!r} split")
        waves, power = self._reload(self.files[split])
        return list(self.files[split]), waves, power


def cache_root() -> Path:
    """Folder of the per-corpus caches: ``data_home()/speech-cache``."""
    return data_home() / "speech-cache"


# the libraries whose versions shape the cached waveforms and spectrograms (decoding, resampling, STFT)
_FEATURE_LIBRARIES = ("librosa", "soxr", "soundfile", "torch", "numpy")


def _library_versions() -> Dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in _FEATURE_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _cache_key(root: Path, files: Sequence[str], settings: Dict[str, object]) -> str:
    """Changes with the files (names, sizes, times), the settings and the versions of the feature libraries."""
    h = hashlib.sha256(json.dumps({"version": _CACHE_VERSION, "settings": settings,
                                   "libraries": _library_versions()}, sort_keys=True).encode())
    for f in files:
        st = (root / f).stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _load_cached(path: Path, n_files: int):
    """The cached waveforms and spectrograms, or ``None`` (with a warning) when the file is damaged."""
    import warnings
    import zipfile
    import zlib

    try:
        with np.load(path, allow_pickle=False) as z:
            waves, w_off = z["waves"], z["wave_offsets"]
            power, p_off = z["power"], z["frame_offsets"]
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        # a damaged or foreign file (killed write of an older version, disk error): rebuilt, never trusted
        warnings.warn(f"speech cache {path} is unreadable ({type(e).__name__}: {e}); preprocessing again")
        return None
    if len(w_off) != n_files + 1 or len(p_off) != n_files + 1:
        return None
    return ([waves[w_off[i]:w_off[i + 1]] for i in range(n_files)],
            [power[p_off[i]:p_off[i + 1]] for i in range(n_files)])


def _save_cache(path: Path, waves: List[np.ndarray], power: List[np.ndarray]) -> None:
    from ..utils import atomic_open, remove_stale_parts

    remove_stale_parts(path.parent, recursive=False)  # leftovers of killed cache writes
    with atomic_open(path) as f:  # straight to disk: a large corpus's cache would not fit twice in memory
        np.savez(f, waves=np.concatenate(waves), wave_offsets=np.cumsum([0] + [len(w) for w in waves]),
                 power=np.concatenate(power), frame_offsets=np.cumsum([0] + [len(p) for p in power]))


def _chunks(p: np.ndarray, seq_len: int) -> List[np.ndarray]:
    return [p[i:i + seq_len] for i in range(0, len(p), seq_len)]


def load_utterances(paths: Sequence[Union[str, os.PathLike]], stft_config: STFTConfig = STFTConfig(),
                    top_db: float = 30.0) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Audio files read as a corpus reads them: ``(waveforms (N_i,), power spectrograms (T_i, F))``, each file
    loaded at ``stft_config``'s rate, trimmed at ``top_db`` and peak-normalised (:func:`preprocess_waveform`)."""
    waves = [preprocess_waveform(load_audio(p, stft_config.sample_rate), top_db=top_db, cfg=stft_config,
                                 where=str(p)) for p in paths]
    return waves, power_spectrograms(waves, stft_config)


def load_speech_folder(root: Union[str, os.PathLike], *, stft_config: STFTConfig = STFTConfig(),
                       seq_len: int = 50, top_db: float = 30.0, test_fraction: float = 0.1,
                       valid_fraction: float = 0.1, speaker_disjoint: bool = False, seed: int = 0,
                       max_files: Optional[int] = None, cache: bool = True, name: Optional[str] = None,
                       log=None) -> SpeechCorpus:
    """A :class:`SpeechCorpus` from every ``.flac``/``.wav`` under ``root`` (e.g. a LibriSpeech subset).

    Args:
        root: folder, searched recursively.
        stft_config: the STFT (default App. C: 16 kHz, 1024-sample sine window, hop 256).
        seq_len: frames per training sequence (App. C: 50, i.e. 0.8 s at hop 256).
        top_db: silence threshold of the trimming, in dB below the peak.
        test_fraction, valid_fraction, speaker_disjoint, seed: see :func:`split_files`.
        max_files: keep only the first ``max_files`` files (sorted by path) before splitting.
        cache: read and write the per-corpus cache (:func:`cache_root`).
    """
    check_positive_int(seq_len, "seq_len")
    root = Path(root)
    files = find_audio_files(root)
    if not files:
        raise FileNotFoundError(f"no .flac or .wav files under {root}")
    if max_files is not None:
        files = files[:max_files]
    split = split_files(files, test_fraction=test_fraction, valid_fraction=valid_fraction,
                        speaker_disjoint=speaker_disjoint, seed=seed)
    settings = {**asdict(stft_config), "top_db": float(top_db)}
    path = cache_root() / f"{root.name}-{_cache_key(root, files, settings)}.npz" if cache else None
    loaded = _load_cached(path, len(files)) if path is not None and path.is_file() else None
    if loaded is None:
        if log:
            log(f"preprocessing {len(files)} audio files under {root} ...")
        waves, power = load_utterances([root / f for f in files], stft_config, top_db)
        if path is not None:
            _save_cache(path, waves, power)
    else:
        waves, power = loaded
    index = {f: i for i, f in enumerate(files)}

    def reload(names: Sequence[str]) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        cached = _load_cached(path, len(files)) if path is not None and path.is_file() else None
        if cached is None:
            return load_utterances([root / f for f in names], stft_config, top_db)
        return [np.array(cached[0][index[f]]) for f in names], [np.array(cached[1][index[f]]) for f in names]

    seqs: Dict[str, List[np.ndarray]] = {s: [] for s in SPLITS}
    ids: Dict[str, List[str]] = {s: [] for s in SPLITS}
    for s in ("train", "valid"):
        for f in split[s]:
            pieces = _chunks(power[index[f]], seq_len)
            seqs[s] += pieces
            ids[s] += [f"{f}#{k}" for k in range(len(pieces))]
    seqs["test"] = [power[index[f]] for f in split["test"]]
    ids["test"] = list(split["test"])
    return SpeechCorpus(seqs, name=name or root.name, source=str(root), ids=ids, stft=stft_config,
                        root=str(root), files=split,
                        # copies: a view would keep every cached waveform of the corpus in memory
                        test_waves=[np.array(waves[index[f]]) for f in split["test"]], reload=reload,
                        settings={**settings, "seq_len": seq_len, "speaker_disjoint": speaker_disjoint,
                                  "test_fraction": test_fraction, "valid_fraction": valid_fraction})


def load_shipped_speech(**kw) -> SpeechCorpus:
    """The few recorded prompts shipped with the package (see ``assets/speech/README.md``): tests and smoke runs."""
    kw.setdefault("name", "speech_clips")
    kw.setdefault("test_fraction", 0.2)
    kw.setdefault("valid_fraction", 0.2)
    return load_speech_folder(SHIPPED_SPEECH, **kw)


def load_librispeech(subset: str = "dev-clean", root: Optional[Union[str, os.PathLike]] = None,
                     **kw) -> SpeechCorpus:
    """A LibriSpeech subset read from ``ROOT/LibriSpeech/SUBSET`` (ROOT: :func:`~.corpus.data_home`)."""
    base = Path(root) if root else data_home()
    folder = base / "LibriSpeech" / subset
    if not folder.is_dir():
        raise FileNotFoundError(
            f"LibriSpeech {subset!r} not found at {folder}. Download {subset}.tar.gz from "
            f"https://www.openslr.org/12 and unpack it in {base} (it creates LibriSpeech/{subset}/), "
            "or pass --data-root FOLDER holding LibriSpeech/.")
    kw.setdefault("name", f"librispeech-{subset}")
    return load_speech_folder(folder, **kw)
