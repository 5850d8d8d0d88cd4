"""The built-in corpora, file formats and transforms of ``--data`` (:mod:`pyro_dssm.data.registry`).

Each entry is one registered function; its options are a dataclass of its own (an option group),
filled from the run config's ``data_options`` (``--stft-n-fft``, ``--series-missing``, ...; YAML
``data_options: {stft_n_fft: 1024}``). Each group checks its values in ``__post_init__``. Loaders
import their modules when called, so listing the names costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..fields import check_positive_int, coerce_fields
from .registry import register_dataset, register_format, register_transform

__all__ = ["SpeechOptions", "SeriesOptions", "MusicFolderOptions", "TransposeOptions", "IrregularOptions",
           "FlameOptions"]


def _opt(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SpeechOptions:
    """Speech analysis (taxonomy paper, App. C): asterisk, speech, librispeech-SUBSET, folders of wav/flac.

    16 kHz, a 1024-sample sine window, hop 256 (513 bins), 50-frame training sequences,
    silence trimmed at ``trim_db``.
    """

    sample_rate: int = _opt(16000, "sample rate in Hz the audio is resampled to")
    stft_n_fft: int = _opt(1024, "STFT window length in samples (App. C: 1024)")
    stft_hop: int = _opt(256, "STFT hop in samples (App. C: 25%% of the 1024-sample window)")
    seq_len: int = _opt(50, "frames per training sequence (App. C: 50)")
    trim_db: float = _opt(30.0, "trim leading/trailing audio quieter than this many dB below the peak")
    speaker_disjoint: bool = _opt(False, "split by speaker (first folder level) instead of by file")
    max_files: Optional[int] = _opt(None, "keep only the first N audio files (default: all)")

    def __post_init__(self):
        coerce_fields(self, "data option")
        for name in ("sample_rate", "stft_n_fft", "stft_hop", "seq_len"):
            check_positive_int(getattr(self, name), f"data option {name!r}")
        if not self.trim_db > 0:
            raise ValueError(f"trim_db must be > 0, got {self.trim_db!r}")
        if self.max_files is not None and self.max_files < 1:
            raise ValueError(f"max_files must be a positive integer or null, got {self.max_files!r}")
        self.stft()  # raises on a hop longer than the window

    def stft(self):
        from .speech import STFTConfig

        return STFTConfig(self.sample_rate, self.stft_n_fft, self.stft_hop)

    def loader_kwargs(self, seed: int) -> dict:
        return dict(stft_config=self.stft(), seq_len=self.seq_len, top_db=self.trim_db,
                    speaker_disjoint=self.speaker_disjoint, seed=seed, max_files=self.max_files)


_NORMALISE = ("zscore", "minmax", "none")
_MISSING = ("error", "drop", "interpolate", "keep")


@dataclass(frozen=True)
class SeriesOptions:
    """Monash .tsf series (LS4 App. D.1): fred-md, nn5-daily, temperature-rain, solar-weekly, .tsf files."""

    series_normalise: str = _opt("zscore", "per-series zscore (FRED-MD, NN5, Solar) or minmax (Temperature Rain)")
    series_missing: str = _opt("error", "series with missing values: error, drop, interpolate or keep (NaN; LS4 "
                                        "only)")

    def __post_init__(self):
        coerce_fields(self, "data option")
        if self.series_normalise not in _NORMALISE:
            raise ValueError(f"series_normalise must be zscore, minmax or none, got {self.series_normalise!r}")
        if self.series_missing not in _MISSING:
            raise ValueError(f"series_missing must be error, drop, interpolate or keep, got {self.series_missing!r}")


@dataclass(frozen=True)
class MusicFolderOptions:
    """Folders of MIDI/MusicXML files."""

    frames_per_quarter: int = _opt(1, "piano-roll time frames per quarter note")

    def __post_init__(self):
        coerce_fields(self, "data option")
        check_positive_int(self.frames_per_quarter, "data option 'frames_per_quarter'")


@dataclass(frozen=True)
class TransposeOptions:
    """Key transposition of piano rolls (training split only)."""

    transpose: int = _opt(0, "add copies of every training roll transposed by +-1..+-N semitones (copies whose "
                             "notes would leave the keyboard are skipped; validation and test unchanged; 0: off)")

    def __post_init__(self):
        coerce_fields(self, "data option")
        if self.transpose < 0:
            raise ValueError(f"transpose must be a non-negative number of semitones, got {self.transpose!r}")


@dataclass(frozen=True)
class IrregularOptions:
    """Irregular sampling (LS4 Sec. 5.3), of any corpus."""

    observed_fraction: float = _opt(1.0, "keep each observed entry with this probability, the others become "
                                         "unobserved (NaN); 1 keeps all")

    def __post_init__(self):
        coerce_fields(self, "data option")
        if not 0 < self.observed_fraction <= 1:
            raise ValueError(f"observed_fraction must be in (0, 1], got {self.observed_fraction!r}")


@dataclass(frozen=True)
class FlameOptions:
    """The generated FLAME system (LS4 Sec. 5.1): length, time step, count and initial values."""

    flame_steps: int = _opt(1001, "steps per trajectory (paper: 1001)")
    flame_stride: float = _opt(1.0, "time units between steps (paper: 1; 201 steps of 5 cover the paper's "
                                    "t in [0, 1000] five times more cheaply)")
    flame_per_power: int = _opt(1000, "trajectories per power p = 3..10 (paper: 1000)")
    flame_delta_min: float = _opt(2e-3, "smallest initial value x(0) (log-uniform; the jump comes at t ~ 1/x(0))")
    flame_delta_max: float = _opt(2e-2, "largest initial value x(0)")

    def __post_init__(self):
        coerce_fields(self, "data option")
        check_positive_int(self.flame_per_power, "data option 'flame_per_power'")
        if self.flame_steps < 2:
            raise ValueError(f"flame_steps must be >= 2, got {self.flame_steps!r}")
        if not self.flame_stride > 0:
            raise ValueError(f"flame_stride must be > 0 time units, got {self.flame_stride!r}")
        if not 0 < self.flame_delta_min <= self.flame_delta_max < 1:
            raise ValueError(f"FLAME initial values need 0 < flame_delta_min <= flame_delta_max < 1, got "
                             f"{self.flame_delta_min!r} and {self.flame_delta_max!r}")


# -- music ------------------------------------------------------------------------------------

@register_dataset("bach", aliases=("bach_chorales",), description="the shipped Bach chorales (music21), 210/70/70")
def _bach(name, opts, *, data_root, seed, log):
    from .music import load_bach_chorales

    return load_bach_chorales()


def _benchmark(key: str, aliases=()):
    @register_dataset(key, aliases=aliases, description=f"the Boulanger-Lewandowski {key} pickle (local file)")
    def _load(name, opts, *, data_root, seed, log):
        from .music import load_benchmark

        return load_benchmark(name, data_root)

    return _load


for _key, _aliases in (("jsb", ("jsb_chorales",)), ("nottingham", ()), ("musedata", ()),
                       ("piano", ("piano-midi", "piano_midi"))):
    _benchmark(_key, _aliases)


# -- generated and statistical series ---------------------------------------------------------

@register_dataset("flame", prefix=True, options=FlameOptions, pattern="flame, flame-pP", description="the stiff FLAME system (LS4 Sec. 5.1), generated; "
                                                    "flame-pP: one power P only")
def _flame(name, opts, *, data_root, seed, log):
    from .flame import FLAME_POWERS, load_flame

    powers = FLAME_POWERS if name == "flame" else (int(name[len("flame-p"):]),)
    return load_flame(powers, per_power=opts.flame_per_power, num_steps=opts.flame_steps, stride=opts.flame_stride,
                      delta_range=(opts.flame_delta_min, opts.flame_delta_max), seed=seed)


@register_dataset("macro", aliases=("macrodata",), description="statsmodels' US macro series (FRED-MD stand-in)")
def _macro(name, opts, *, data_root, seed, log):
    from .macro import load_macrodata

    return load_macrodata(seed=seed)


def _monash(key: str):
    @register_dataset(key, options=SeriesOptions, description=f"Monash {key} (.tsf, local file)")
    def _load(name, opts, *, data_root, seed, log):
        from .monash import load_monash

        return load_monash(name, data_root, missing=opts.series_missing, seed=seed)

    return _load


for _key in ("fred-md", "nn5-daily", "temperature-rain", "solar-weekly"):
    _monash(_key)


@register_dataset("ushcn", description="USHCN daily climate, irregularly sampled (LS4 Sec. 5.3, local files)")
def _ushcn(name, opts, *, data_root, seed, log):
    from .irregular import load_ushcn

    return load_ushcn(data_root, seed=seed)


@register_dataset("physionet", description="PhysioNet 2012 ICU series, irregularly sampled (local files)")
def _physionet(name, opts, *, data_root, seed, log):
    from .irregular import load_physionet

    return load_physionet(data_root, seed=seed)


# -- speech -----------------------------------------------------------------------------------

@register_dataset("speech", options=SpeechOptions, aliases=("speech_clips",), description="the shipped speech clips")
def _speech(name, opts, *, data_root, seed, log):
    from .speech import load_shipped_speech

    return load_shipped_speech(**opts.loader_kwargs(seed), log=log)


@register_dataset("asterisk", options=SpeechOptions, aliases=("asterisk-en",),
                  description="551 studio prompts, one speaker (python scripts/make_speech_corpus.py builds it)")
def _asterisk(name, opts, *, data_root, seed, log):
    from .asterisk import load_asterisk

    return load_asterisk(data_root, **opts.loader_kwargs(seed), log=log)


@register_dataset("librispeech", options=SpeechOptions, prefix=True, pattern="librispeech-SUBSET",
                  description="librispeech-SUBSET (e.g. dev-clean), local files")
def _librispeech(name, opts, *, data_root, seed, log):
    from .speech import load_librispeech

    if name == "librispeech":
        raise ValueError("name a LibriSpeech subset: librispeech-SUBSET, e.g. librispeech-dev-clean")
    return load_librispeech(name[len("librispeech-"):], data_root, **opts.loader_kwargs(seed), log=log)


# -- files and folders ------------------------------------------------------------------------

def _audio_folder(path: Path) -> bool:
    from .speech import find_audio_files

    return path.is_dir() and bool(find_audio_files(path))


@register_format("a folder of wav/flac files", _audio_folder, options=SpeechOptions)
def _speech_folder(path, opts, *, seed, log):
    from .speech import load_speech_folder

    return load_speech_folder(path, **opts.loader_kwargs(seed), log=log)


@register_format("a folder of MIDI/MusicXML files", Path.is_dir, options=MusicFolderOptions)
def _music_folder(path, opts, *, seed, log):
    from .music import load_music_folder

    return load_music_folder(path, opts.frames_per_quarter, seed=seed)


@register_format("a Boulanger .pickle", lambda p: p.suffix.lower() in (".pickle", ".pkl"))
def _pickle(path, opts, *, seed, log):
    from .music import load_boulanger_pickle

    return load_boulanger_pickle(path)


@register_format("a .npy/.npz array", lambda p: p.suffix.lower() in (".npy", ".npz"))
def _arrays(path, opts, *, seed, log):
    from .corpus import load_arrays

    return load_arrays(path, seed=seed, missing=True)  # NaN: unobserved (LS4 only)


@register_format("a Monash .tsf file", lambda p: p.suffix.lower() == ".tsf", options=SeriesOptions)
def _tsf(path, opts, *, seed, log):
    from .monash import load_tsf

    return load_tsf(path, normalise=opts.series_normalise, missing=opts.series_missing, seed=seed)


# -- transforms of any corpus -----------------------------------------------------------------

@register_transform(TransposeOptions, training_only=True)
def _transpose(corpus, opts, *, seed):
    from .augment import transposed

    return transposed(corpus, opts.transpose)


@register_transform(IrregularOptions)
def _irregular(corpus, opts, *, seed):
    if opts.observed_fraction >= 1:
        return corpus
    from .irregular import subsample

    return subsample(corpus, opts.observed_fraction, seed=seed)
