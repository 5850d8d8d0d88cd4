"""The built-in corpora and file formats of ``--data`` (:mod:`pyro_dssm.data.registry`).

Each entry is one registered function; its options are a dataclass of its own, filled from the
run config's fields of the same names (``--stft-n-fft``, ``--series-missing``, ...). Loaders import
their modules when called, so listing the names costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .registry import register_dataset, register_format

__all__ = ["SpeechOptions", "SeriesOptions", "MusicFolderOptions"]


@dataclass(frozen=True)
class SpeechOptions:
    """Analysis settings of speech corpora (taxonomy paper, App. C): 16 kHz, a 1024-sample sine window,
    hop 256 (513 bins), 50-frame training sequences, silence trimmed at ``trim_db``."""

    sample_rate: int = 16000
    stft_n_fft: int = 1024
    stft_hop: int = 256
    seq_len: int = 50
    trim_db: float = 30.0
    speaker_disjoint: bool = False
    max_files: Optional[int] = None

    def loader_kwargs(self, seed: int) -> dict:
        from .speech import STFTConfig

        return dict(stft_config=STFTConfig(self.sample_rate, self.stft_n_fft, self.stft_hop), seq_len=self.seq_len,
                    top_db=self.trim_db, speaker_disjoint=self.speaker_disjoint, seed=seed, max_files=self.max_files)


@dataclass(frozen=True)
class SeriesOptions:
    """Monash ``.tsf`` series (LS4 App. D.1): per-series normalisation and what to do with missing values."""

    series_normalise: str = "zscore"
    series_missing: str = "error"


@dataclass(frozen=True)
class MusicFolderOptions:
    """Folders of MIDI/MusicXML files: piano-roll frames per quarter note."""

    frames_per_quarter: int = 1


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

@register_dataset("flame", prefix=True, pattern="flame, flame-pP", description="the stiff FLAME system (LS4 Sec. 5.1), generated; "
                                                    "flame-pP: one power P only")
def _flame(name, opts, *, data_root, seed, log):
    from .flame import FLAME_POWERS, load_flame

    powers = FLAME_POWERS if name == "flame" else (int(name[len("flame-p"):]),)
    return load_flame(powers, seed=seed)


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
