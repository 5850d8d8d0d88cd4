"""Polyphonic music as binary piano rolls ``(T, 88)``: the four benchmark corpora,
MIDI/MusicXML folders and the Bach chorales that ship with the package.

(About 500 lines: the piano-roll definition is shared by the pickles, MIDI/MusicXML folders, the
shipped chorales and MIDI export; each part is short, and they are read together.)

A piano roll has one row per time frame and one column per piano key, MIDI
notes 21 (A0) .. 108 (C8); ``roll[t, k] = 1`` when note ``21 + k`` sounds at
frame ``t``. This is the representation of Boulanger-Lewandowski et al. (2012)
that Table II of the taxonomy paper evaluates on.

Frames are sampled at their onsets: a note sounds in frame ``f`` when its
start ``<= f / frames_per_quarter <`` its end, so a chorale at one frame per
quarter note has at most one note per voice in each frame, as in JSB Chorales.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from ..utils import atomic_write_bytes
from .corpus import SPLITS, Corpus, data_home

__all__ = [
    "NUM_KEYS", "LOWEST_NOTE", "BENCHMARKS", "Benchmark", "notes_to_roll", "roll_to_notes",
    "load_boulanger_pickle", "load_benchmark", "download_benchmark", "benchmark_cache_dir",
    "midi_to_roll", "score_to_roll", "load_music_folder", "roll_to_midi", "load_bach_chorales",
    "BACH_CHORALES_PATH",
]

NUM_KEYS = 88
LOWEST_NOTE = 21  # A0
HIGHEST_NOTE = LOWEST_NOTE + NUM_KEYS - 1  # C8
BACH_CHORALES_PATH = Path(__file__).resolve().parent / "assets" / "bach_chorales.npz"

PathLike = Union[str, os.PathLike]


def notes_to_roll(steps: Sequence[Iterable[float]], where: str = "sequence") -> np.ndarray:
    """Turn a list of time steps, each a collection of MIDI note numbers, into a ``(T, 88)`` uint8 roll.

    Raises:
        ValueError: a note outside 21..108, or a non-integer note.
    """
    roll = np.zeros((len(steps), NUM_KEYS), dtype=np.uint8)
    for t, notes in enumerate(steps):
        for n in notes:
            k = int(round(float(n)))
            if k != float(n) or not LOWEST_NOTE <= k <= HIGHEST_NOTE:
                raise ValueError(f"{where}, step {t}: note {n!r} is not a MIDI note number in "
                                 f"{LOWEST_NOTE}..{HIGHEST_NOTE} (the 88 piano keys)")
            roll[t, k - LOWEST_NOTE] = 1
    return roll


def roll_to_notes(roll: np.ndarray) -> List[List[int]]:
    """Inverse of :func:`notes_to_roll`: the sounding MIDI notes of each frame of a ``(T, 88)`` roll."""
    return [[int(k) + LOWEST_NOTE for k in np.flatnonzero(row > 0.5)] for row in np.asarray(roll)]


# ----------------------------------------------------------------------------------------------
# The Boulanger-Lewandowski pickles
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Benchmark:
    """One of the four polyphonic benchmarks of Boulanger-Lewandowski et al. (2012)."""

    name: str
    filename: str
    urls: tuple
    sha256: Optional[str]  # None where no verified checksum of the original file is known
    sizes: tuple  # (train, valid, test) numbers of sequences


_ORIG = "http://www-etud.iro.umontreal.ca/~boulanni/"
_WAYBACK = "https://web.archive.org/web/20141211164413id_/http://www-etud.iro.umontreal.ca:80/~boulanni/"
BENCHMARKS: Dict[str, Benchmark] = {
    "jsb": Benchmark("JSB Chorales", "JSB Chorales.pickle",
                     (_WAYBACK + "JSB%20Chorales.pickle", _ORIG + "JSB%20Chorales.pickle"),
                     "69dc4c3e52800959ac0ab3b82aa3e5f55285ce64f1705acb3e3a8ef77a5c051c", (229, 76, 77)),
    "piano": Benchmark("Piano-midi.de", "Piano-midi.de.pickle",
                       ("https://web.archive.org/web/20141211164423id_/http://www-etud.iro.umontreal.ca:80/"
                        "~boulanni/Piano-midi.de.pickle", _ORIG + "Piano-midi.de.pickle"),
                       "273d593b13d9a348410d261c0223d47523e2a9b41702137aaab5922242518296", (87, 12, 25)),
    "nottingham": Benchmark("Nottingham", "Nottingham.pickle", (_ORIG + "Nottingham.pickle",), None,
                            (694, 173, 170)),
    "musedata": Benchmark("MuseData", "MuseData.pickle", (_ORIG + "MuseData.pickle",), None, (524, 135, 124)),
}


def benchmark_cache_dir() -> Path:
    """Where :func:`download_benchmark` keeps files: :func:`~pyro_dssm.data.corpus.data_home`.

    Never inside the installed package.
    """
    return data_home()


class _Refused(pickle.UnpicklingError):
    """The pickle asks for something the published piano-roll pickles never hold."""


class _PickledDType:
    """``numpy.dtype(...)`` as a benchmark pickle builds it: numeric kinds only (bool, int, uint, float).

    numpy pickles a dtype as ``dtype(spec, align, copy)`` followed by ``__setstate__``
    with ``(version, byteorder, subarray, names, fields, ...)``. Only a plain numeric
    dtype, with a byte order and nothing else, is accepted: an object, void, string or
    structured dtype would let a pickle build objects from raw bytes.
    """

    def __init__(self, spec, align=False, copy=False):
        if not isinstance(spec, str):
            raise _Refused(f"refusing numpy.dtype({spec!r}): a piano-roll pickle holds numeric scalars only")
        try:
            dtype = np.dtype(spec)
        except TypeError as e:
            raise _Refused(f"refusing numpy.dtype({spec!r}): {e}") from e
        if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
            raise _Refused(f"refusing numpy.dtype({spec!r}) of kind {dtype.kind!r}: a piano-roll "
                                         "pickle holds numeric (bool, integer, float) scalars only")
        self.dtype = dtype

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) >= 2 and state[1] in ("<", ">", "|", "=")
                and all(v is None for v in state[2:5])):
            raise _Refused(f"refusing a numpy dtype state {state!r}: only a byte order may be set")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


def _pickled_scalar(dtype, data=None):
    """``numpy.core.multiarray.scalar(dtype, bytes)``: one numeric value, returned as a Python number."""
    dt = getattr(dtype, "dtype", None) if isinstance(dtype, _PickledDType) else None
    if dt is None:
        raise _Refused(f"refusing a numpy scalar of {dtype!r}: only numeric dtypes are allowed")
    if isinstance(data, str):  # Python 2 pickles read with encoding="latin1"
        data = data.encode("latin1")
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise _Refused(f"refusing a numpy {dt} scalar of {data!r}: expected {dt.itemsize} bytes")
    return np.frombuffer(data, dtype=dt)[0].item()


def _latin1_bytes(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode(text, "latin1")``, as Python 3 writes bytes into protocol-2 pickles; nothing else."""
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise _Refused(f"refusing _codecs.encode of {type(text).__name__} as {encoding!r}")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    """Loads the benchmark pickles without executing code and without building arrays.

    The published pickles are Python 2 pickles of a dict of splits, each a list of
    sequences, each a list of tuples of note numbers, some of them numpy scalars.
    Exactly that is allowed: the globals a numpy scalar needs are replaced by
    functions that accept only numeric dtypes and return plain Python numbers. No
    ``numpy.ndarray``, no ``_reconstruct``: an object array built from raw bytes holds
    forged pointers, and reading it crashes the process or worse.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "scalar"): _pickled_scalar, ("numpy._core.multiarray", "scalar"): _pickled_scalar,
        ("numpy", "dtype"): _PickledDType,
        ("_codecs", "encode"): _latin1_bytes,
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[module, name]
        raise _Refused(f"refusing to load global {module}.{name}: the piano-roll pickles hold "
                                     "only lists of MIDI note numbers")

    def persistent_load(self, pid):
        raise _Refused("refusing a persistent id: the piano-roll pickles have none")


def _check_layout(raw, path: Path) -> None:
    """Splits of sequences of steps of numbers, as the published pickles hold; a clear error otherwise."""
    for split in SPLITS:
        seqs = raw[split]
        if not isinstance(seqs, (list, tuple)) or not seqs:
            raise ValueError(f"{path}: split {split!r} must be a non-empty list of sequences")
        for i, seq in enumerate(seqs):
            if not isinstance(seq, (list, tuple)):
                raise ValueError(f"{path}: {split}[{i}] must be a list of time steps, got {type(seq).__name__}")
            for t, step in enumerate(seq):
                if not isinstance(step, (list, tuple)) or not all(
                        isinstance(n, (int, float)) and not isinstance(n, bool) for n in step):
                    raise ValueError(f"{path}: {split}[{i}], step {t} must be a tuple of note numbers, "
                                     f"got {step!r:.80}")


def load_boulanger_pickle(path: PathLike) -> Corpus:
    """Load a Boulanger-Lewandowski pickle: ``{"train"|"valid"|"test": [sequence, ...]}``.

    Each sequence is a list of time steps; each step a collection of MIDI notes
    in 21..108. Returns a :class:`Corpus` of ``(T, 88)`` uint8 rolls.

    Raises:
        FileNotFoundError: the file is missing (the message says what to download).
        ValueError: the file is not such a pickle (corrupt, truncated, wrong layout).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"piano-roll pickle {str(path)!r} does not exist")
    try:
        with open(path, "rb") as f:
            raw = _RestrictedUnpickler(f, encoding="latin1").load()
    except _Refused as e:
        raise ValueError(f"{path} is not a piano-roll pickle: {e}. The published files hold a dict of splits, each "
                         "a list of sequences of tuples of note numbers, and nothing else is loaded") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"{path} is not a readable piano-roll pickle ({type(e).__name__}: {e}); "
                         "the file may be corrupt or truncated: download it again") from e
    if not isinstance(raw, dict) or not set(SPLITS) <= set(raw):
        keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{path}: expected a dict with keys {list(SPLITS)}, got {keys}")
    _check_layout(raw, path)
    splits = {split: [notes_to_roll(s, where=f"{path.name} {split}[{i}]") for i, s in enumerate(raw[split])]
              for split in SPLITS}
    return Corpus(splits, name=path.stem, source=str(path))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _benchmark(name: str) -> Benchmark:
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    aliases = {"jsbchorales": "jsb", "pianomidi": "piano", "pianomidide": "piano", "muse": "musedata"}
    key = aliases.get(key, key)
    if key not in BENCHMARKS:
        raise ValueError(f"unknown music benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[key]


def load_benchmark(name: str, root: Optional[PathLike] = None) -> Corpus:
    """Load one of the four benchmarks (``jsb``, ``nottingham``, ``musedata``, ``piano``) from a local file.

    Looks for the original file name (e.g. ``JSB Chorales.pickle``) under ``root``
    (default :func:`benchmark_cache_dir`). Nothing is downloaded; see
    :func:`download_benchmark`.
    """
    bench = _benchmark(name)
    root = Path(root) if root is not None else benchmark_cache_dir()
    path = root / bench.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{bench.name} is not on this machine: expected {str(path)!r}.\n"
            f"Download {bench.filename!r} (Boulanger-Lewandowski et al., ICML 2012) from {bench.urls[0]} "
            f"and put it at that path (or pass its folder as root / set $PYRO_DSSM_DATA), "
            f"or run: python scripts/download_music.py {name}")
    corpus = load_boulanger_pickle(path)
    corpus.name = name
    return corpus


def download_benchmark(name: str, root: Optional[PathLike] = None, *, sha256: Optional[str] = None,
                       allow_unverified: bool = False) -> Path:
    """Opt-in download of a benchmark pickle into the user cache; verifies its SHA-256.

    Args:
        name: ``jsb``, ``nottingham``, ``musedata`` or ``piano``.
        root: target folder (default :func:`benchmark_cache_dir`; never site-packages).
        sha256: expected checksum; defaults to the recorded one.
        allow_unverified: accept a file for which no checksum is known (Nottingham and
            MuseData have no verified mirror); its SHA-256 is printed for the record.

    Returns:
        The path of the verified file. An existing verified file is not downloaded again.
    """
    bench = _benchmark(name)
    expected = sha256 or bench.sha256
    if expected is None and not allow_unverified:
        raise ValueError(f"no verified checksum is recorded for {bench.name}; pass sha256=... or "
                         "allow_unverified=True (--allow-unverified) to accept the file as downloaded")
    root = Path(root) if root is not None else benchmark_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = root / bench.filename
    if path.is_file() and (expected is None or _sha256(path) == expected):
        return path
    errors = []
    for url in bench.urls:
        fd, tmp = tempfile.mkstemp(dir=root, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                shutil.copyfileobj(resp, out)
            digest = _sha256(Path(tmp))
            if expected is not None and digest != expected:
                errors.append(f"{url}: checksum {digest} != expected {expected}")
                continue
            os.replace(tmp, path)
            if expected is None:
                print(f"downloaded {path} (unverified, sha256 {digest})")
            return path
        except OSError as e:
            errors.append(f"{url}: {e}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise OSError(f"could not download {bench.filename}:\n  " + "\n  ".join(errors)
                  + f"\nDownload it by hand and put it at {path}")


# ----------------------------------------------------------------------------------------------
# MIDI and MusicXML
# ----------------------------------------------------------------------------------------------

def _intervals_to_roll(intervals, length_quarters: float, frames_per_quarter: int) -> np.ndarray:
    """``intervals``: iterable of (midi_note, start, end) in quarter notes. Onset sampling (module docstring)."""
    eps = 1e-6
    T = int(np.ceil(length_quarters * frames_per_quarter - eps))
    roll = np.zeros((max(T, 0), NUM_KEYS), dtype=np.uint8)
    for note, start, end in intervals:
        if not LOWEST_NOTE <= note <= HIGHEST_NOTE:
            continue  # outside the piano's range
        a = int(np.ceil(start * frames_per_quarter - eps))
        b = int(np.ceil(end * frames_per_quarter - eps))
        roll[a:min(b, T), note - LOWEST_NOTE] = 1
    return roll


def midi_to_roll(path: PathLike, frames_per_quarter: int = 1) -> np.ndarray:
    """Read a standard MIDI file into a ``(T, 88)`` roll with ``frames_per_quarter`` frames per beat.

    Drums (channel 10) are skipped. Needs ``mido`` (``pip install pyro-dssm[music]``).
    """
    import mido

    try:
        mid = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise ValueError(f"{path} is not a readable MIDI file ({type(e).__name__}: {e})") from e
    tpb = mid.ticks_per_beat
    intervals, end_tick = [], 0
    for track in mid.tracks:
        tick, active = 0, {}
        for msg in track:
            tick += msg.time
            if msg.type not in ("note_on", "note_off") or msg.channel == 9:
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                active.setdefault(key, []).append(tick)
            elif active.get(key):
                start = active[key].pop(0)
                intervals.append((msg.note, start / tpb, tick / tpb))
                end_tick = max(end_tick, tick)
    return _intervals_to_roll(intervals, end_tick / tpb, frames_per_quarter)


def score_to_roll(score, frames_per_quarter: int = 1, parts: Optional[Sequence[int]] = None) -> np.ndarray:
    """A ``music21`` score into a ``(T, 88)`` roll; tied notes are merged.

    Args:
        score: a ``music21.stream.Score`` (or any stream with ``.parts``).
        frames_per_quarter: frames per quarter note.
        parts: indices of the parts to keep (default all).
    """
    all_parts = list(score.parts) or [score]
    chosen = all_parts if parts is None else [all_parts[i] for i in parts]
    intervals = []
    for part in chosen:
        for n in part.stripTies().flatten().notes:
            start = float(n.getOffsetInHierarchy(part)) if n.activeSite is not part else float(n.offset)
            end = start + float(n.duration.quarterLength)
            for p in n.pitches:
                intervals.append((int(p.midi), start, end))
    length = float(score.highestTime)
    return _intervals_to_roll(intervals, length, frames_per_quarter)


def load_music_folder(folder: PathLike, frames_per_quarter: int = 1, *, valid_fraction: float = 0.1,
                      test_fraction: float = 0.1, seed: int = 0) -> Corpus:
    """Every MIDI (``.mid``/``.midi``) and MusicXML (``.xml``/``.musicxml``/``.mxl``) file under ``folder``.

    If ``folder`` has ``train``/``valid``/``test`` sub-folders they are the splits;
    otherwise the files (in sorted order) are split at random with ``seed``.
    MusicXML needs ``music21``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"music folder {str(folder)!r} does not exist")
    exts = {".mid", ".midi", ".xml", ".musicxml", ".mxl"}

    def read(paths):
        rolls = []
        for p in paths:
            if p.suffix.lower() in (".mid", ".midi"):
                roll = midi_to_roll(p, frames_per_quarter)
            else:
                try:
                    import music21
                except ImportError as e:
                    raise ImportError(f"reading MusicXML ({p.name}) needs music21: pip install music21") from e
                try:
                    roll = score_to_roll(music21.converter.parse(str(p)), frames_per_quarter)
                except Exception as e:  # noqa: BLE001 - music21 raises many kinds
                    raise ValueError(f"{p} is not a readable MusicXML file ({type(e).__name__}: {e})") from e
            if roll.shape[0] == 0:
                raise ValueError(f"{p} holds no notes")
            rolls.append(roll)
        return rolls

    def files(d):
        return sorted(p for p in d.rglob("*") if p.suffix.lower() in exts and p.is_file())

    if all((folder / s).is_dir() for s in SPLITS):
        splits = {s: read(files(folder / s)) for s in SPLITS}
        for s, rolls in splits.items():
            if not rolls:
                raise ValueError(f"{folder / s} holds no MIDI or MusicXML files")
        return Corpus(splits, name=folder.name, source=str(folder))
    paths = files(folder)
    if not paths:
        raise ValueError(f"{folder} holds no MIDI or MusicXML files ({sorted(exts)})")
    return Corpus.from_sequences(read(paths), name=folder.name, source=str(folder),
                                 valid_fraction=valid_fraction, test_fraction=test_fraction, seed=seed)


def roll_to_midi(roll: np.ndarray, path: PathLike, frames_per_quarter: int = 1, tempo_bpm: float = 100.0,
                 velocity: int = 80) -> None:
    """Write a ``(T, 88)`` roll as a one-track MIDI file; a held key is one sustained note."""
    import mido

    roll = np.asarray(roll) > 0.5
    if roll.ndim != 2 or roll.shape[1] != NUM_KEYS:
        raise ValueError(f"expected a (T, {NUM_KEYS}) roll, got shape {roll.shape}")
    tpb = 480
    step = tpb // frames_per_quarter
    mid = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    padded = np.concatenate([np.zeros((1, NUM_KEYS), bool), roll, np.zeros((1, NUM_KEYS), bool)])
    last = 0
    for t in range(1, padded.shape[0]):
        tick = (t - 1) * step
        offs = np.flatnonzero(padded[t - 1] & ~padded[t])
        ons = np.flatnonzero(padded[t] & ~padded[t - 1])
        for kind, keys in (("note_off", offs), ("note_on", ons)):
            for k in keys:
                track.append(mido.Message(kind, note=int(k) + LOWEST_NOTE,
                                          velocity=velocity if kind == "note_on" else 0, time=tick - last))
                last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    buf = io.BytesIO()
    mid.save(file=buf)
    atomic_write_bytes(Path(path), buf.getvalue())


# ----------------------------------------------------------------------------------------------
# The embedded default: Bach chorales from music21's corpus
# ----------------------------------------------------------------------------------------------

def load_bach_chorales(path: PathLike = BACH_CHORALES_PATH) -> Corpus:
    """The JSB-like corpus that ships with the package (made by ``scripts/make_bach_chorales.py``).

    Bach's four-part chorales from ``music21``'s corpus, one frame per quarter
    note, the four voices on the 88 keys, split deterministically into
    train/valid/test. It is *not* the JSB Chorales benchmark (other chorales,
    other split): don't compare its likelihoods with published JSB numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"the bundled chorale file {path} is missing; regenerate it with "
                                "python scripts/make_bach_chorales.py (needs music21)")
    try:
        with np.load(path, allow_pickle=False) as z:
            rolls = np.unpackbits(z["rolls"], axis=1)[:, :NUM_KEYS]
            lengths, split_of = z["lengths"], z["split"]
            ids = [str(s) for s in z["ids"]]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is not a valid chorale archive ({e}); regenerate it with "
                         "python scripts/make_bach_chorales.py") from e
    seqs = np.split(rolls, np.cumsum(lengths)[:-1])
    splits = {s: [seq for seq, k in zip(seqs, split_of) if SPLITS[k] == s] for s in SPLITS}
    names = {s: [i for i, k in zip(ids, split_of) if SPLITS[k] == s] for s in SPLITS}
    return Corpus(splits, name="bach_chorales", source=str(path), ids=names)


def save_bach_chorales(rolls: List[np.ndarray], ids: List[str], split: np.ndarray, path: PathLike) -> None:
    """Write the chorale archive read by :func:`load_bach_chorales` (bit-packed rolls)."""
    cat = np.concatenate(rolls).astype(np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, rolls=np.packbits(cat, axis=1), lengths=np.array([len(r) for r in rolls]),
                        split=np.asarray(split, dtype=np.int8), ids=np.array(ids))
    atomic_write_bytes(Path(path), buf.getvalue())
