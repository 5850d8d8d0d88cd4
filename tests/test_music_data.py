"""Music and array data: piano rolls, the benchmark pickles, MIDI/MusicXML folders, the shipped chorales, batching."""

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_dssm.data import (Corpus, PadCollate, length_buckets, load_arrays, load_bach_chorales, load_benchmark,
                            load_boulanger_pickle, load_music_folder, midi_to_roll, notes_to_roll, pad_sequences,
                            roll_to_midi, roll_to_notes)
from pyro_dssm.data import music

ROOT = Path(__file__).resolve().parent.parent


def _boulanger(tmp_path, data=None, name="toy.pickle"):
    """A pickle in the benchmarks' layout: Python-2 protocol, tuples of numpy float notes, empty steps."""
    if data is None:
        data = {
            "train": [[(np.float64(60), np.float64(64)), (), (21.0, 108.0)], [(60,)] * 5, [(62, 65)] * 4],
            "valid": [[(55,), (57, 60)]],
            "test": [[(72,)], [(40, 41, 42)] * 2],
        }
    path = tmp_path / name
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)
    return path


def test_notes_roll_round_trip_and_range():
    steps = [[60, 64, 67], [], [21, 108]]
    roll = notes_to_roll(steps)
    assert roll.shape == (3, 88) and roll.dtype == np.uint8
    assert roll[0, 60 - 21] == roll[0, 64 - 21] == roll[0, 67 - 21] == 1 and roll[0].sum() == 3
    assert roll[1].sum() == 0 and roll[2, 0] == roll[2, 87] == 1
    assert roll_to_notes(roll) == steps
    with pytest.raises(ValueError, match="109.*88 piano keys"):
        notes_to_roll([[109]])
    with pytest.raises(ValueError, match="20"):
        notes_to_roll([[20]])
    with pytest.raises(ValueError, match="60.5"):
        notes_to_roll([[60.5]])


def test_boulanger_pickle_loads_into_rolls(tmp_path):
    corpus = load_boulanger_pickle(_boulanger(tmp_path))
    assert [len(corpus.splits[s]) for s in ("train", "valid", "test")] == [3, 1, 2]
    first = corpus.splits["train"][0]
    assert first.shape == (3, 88)
    assert roll_to_notes(first) == [[60, 64], [], [21, 108]]
    assert corpus.x_dim == 88 and corpus.is_binary()
    assert corpus.lengths("train").tolist() == [3, 5, 4]


def test_boulanger_pickle_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_boulanger_pickle(tmp_path / "nope.pickle")
    good = _boulanger(tmp_path).read_bytes()
    trunc = tmp_path / "trunc.pickle"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_boulanger_pickle(trunc)
    with pytest.raises(ValueError, match="expected a dict with keys"):
        load_boulanger_pickle(_boulanger(tmp_path, {"train": [[(60,)]]}, "nosplits.pickle"))
    with pytest.raises(ValueError, match="not a MIDI note"):
        load_boulanger_pickle(_boulanger(tmp_path, {"train": [[(200,)]], "valid": [[(60,)]], "test": [[(60,)]]},
                                         "range.pickle"))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pickle"
    evil.write_bytes(pickle.dumps({"train": Evil(), "valid": [], "test": []}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load global"):
        load_boulanger_pickle(evil)


def test_missing_benchmark_says_what_to_download_and_where(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_benchmark("jsb", tmp_path)
    msg = str(e.value)
    assert "JSB Chorales.pickle" in msg and str(tmp_path) in msg and "http" in msg and "download_music.py" in msg
    with pytest.raises(ValueError, match="unknown music benchmark"):
        load_benchmark("bogus", tmp_path)


def test_load_benchmark_reads_the_original_file_name(tmp_path):
    _boulanger(tmp_path, name="Nottingham.pickle")
    corpus = load_benchmark("nottingham", tmp_path)
    assert corpus.name == "nottingham" and len(corpus.splits["train"]) == 3


def test_cache_dir_is_outside_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("PYRO_DSSM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert music.benchmark_cache_dir() == tmp_path / "pyro-dssm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    pkg = Path(music.__file__).resolve().parent.parent
    assert pkg not in music.benchmark_cache_dir().resolve().parents
    monkeypatch.setenv("PYRO_DSSM_DATA", str(tmp_path / "d"))
    assert music.benchmark_cache_dir() == tmp_path / "d"


def test_download_verifies_the_checksum(tmp_path, monkeypatch):
    src = _boulanger(tmp_path / "src" if (tmp_path / "src").mkdir() is None else tmp_path)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    fake = music.Benchmark("Toy", "Toy.pickle", (src.as_uri(),), digest, (3, 1, 2))
    monkeypatch.setitem(music.BENCHMARKS, "toy", fake)
    cache = tmp_path / "cache"
    path = music.download_benchmark("toy", cache)
    assert path == cache / "Toy.pickle" and path.read_bytes() == src.read_bytes()
    assert len(load_boulanger_pickle(path).splits["test"]) == 2
    # a file whose checksum does not match is rejected and nothing is left behind
    monkeypatch.setitem(music.BENCHMARKS, "toy", music.Benchmark("Toy", "Toy2.pickle", (src.as_uri(),), "0" * 64,
                                                                 (3, 1, 2)))
    with pytest.raises(OSError, match="checksum"):
        music.download_benchmark("toy", cache)
    assert not (cache / "Toy2.pickle").exists() and not list(cache.glob("*.part"))
    # no recorded checksum: refused unless the user opts in
    monkeypatch.setitem(music.BENCHMARKS, "toy", music.Benchmark("Toy", "Toy3.pickle", (src.as_uri(),), None,
                                                                 (3, 1, 2)))
    with pytest.raises(ValueError, match="allow_unverified"):
        music.download_benchmark("toy", cache)
    assert music.download_benchmark("toy", cache, allow_unverified=True).is_file()


def test_recorded_benchmarks_match_the_paper_split_sizes():
    assert music.BENCHMARKS["jsb"].sizes == (229, 76, 77)
    assert set(music.BENCHMARKS) == {"jsb", "nottingham", "musedata", "piano"}
    for b in music.BENCHMARKS.values():
        assert b.sha256 is None or len(b.sha256) == 64


def test_midi_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    roll = (rng.random((12, 88)) < 0.05).astype(np.uint8)
    roll[-1, 40] = 1  # the last frame sounds, so the length is kept
    for fpq in (1, 4):
        path = tmp_path / f"r{fpq}.mid"
        roll_to_midi(roll, path, frames_per_quarter=fpq)
        back = midi_to_roll(path, frames_per_quarter=fpq)
        np.testing.assert_array_equal(back, roll)
    # reading at a finer resolution repeats each frame
    back4 = midi_to_roll(tmp_path / "r1.mid", frames_per_quarter=4)
    np.testing.assert_array_equal(back4, np.repeat(roll, 4, axis=0))
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    with pytest.raises(ValueError, match="not a readable MIDI file"):
        midi_to_roll(bad)
    with pytest.raises(ValueError, match="roll"):
        roll_to_midi(np.zeros((3, 12)), tmp_path / "x.mid")


def test_music_folder_with_and_without_splits(tmp_path):
    rng = np.random.default_rng(1)
    rolls = []
    for i in range(10):
        r = (rng.random((6 + i, 88)) < 0.05).astype(np.uint8)
        r[:, 39] = 1
        rolls.append(r)
    flat = tmp_path / "flat"
    for i, r in enumerate(rolls):
        roll_to_midi(r, flat / f"piece{i:02d}.mid")
    corpus = load_music_folder(flat, valid_fraction=0.2, test_fraction=0.2)
    got = sorted(tuple(map(len, corpus.splits[s])) for s in ("train", "valid", "test"))
    assert sum(len(corpus.splits[s]) for s in ("train", "valid", "test")) == 10 and len(got) == 3
    all_rolls = [r for s in ("train", "valid", "test") for r in corpus.splits[s]]
    assert sorted(len(r) for r in all_rolls) == [len(r) for r in rolls]
    split_dir = tmp_path / "split"
    for s, idx in (("train", range(6)), ("valid", range(6, 8)), ("test", range(8, 10))):
        for i in idx:
            roll_to_midi(rolls[i], split_dir / s / f"p{i:02d}.mid")
    corpus = load_music_folder(split_dir)
    np.testing.assert_array_equal(corpus.splits["valid"][0], rolls[6])
    assert len(corpus.splits["train"]) == 6
    with pytest.raises(FileNotFoundError):
        load_music_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no MIDI or MusicXML"):
        load_music_folder(tmp_path / "empty")


def test_musicxml_folder(tmp_path):
    music21 = pytest.importorskip("music21")
    folder = tmp_path / "xml"
    folder.mkdir()
    for i in range(3):
        s = music21.stream.Score()
        p = music21.stream.Part()
        for pitch in ("C4", "E4", "G4", "C5")[: 2 + i]:
            p.append(music21.note.Note(pitch, quarterLength=1.0))
        p.append(music21.note.Note("D4", quarterLength=2.0))
        s.insert(0, p)
        s.write("musicxml", fp=str(folder / f"s{i}.musicxml"))
    corpus = load_music_folder(folder, frames_per_quarter=2, valid_fraction=0.34, test_fraction=0.34)
    rolls = [r for s in ("train", "valid", "test") for r in corpus.splits[s]]
    first = min(rolls, key=len)
    assert first.shape == (8, 88)  # 2 quarters + a half note = 4 quarters at 2 frames each
    assert roll_to_notes(first) == [[60], [60], [64], [64], [62], [62], [62], [62]]


def test_bundled_chorales():
    corpus = load_bach_chorales()
    sizes = [len(corpus.splits[s]) for s in ("train", "valid", "test")]
    assert sum(sizes) >= 340 and sizes[1] == sizes[2] and abs(sizes[0] / sum(sizes) - 0.6) < 0.01
    assert corpus.x_dim == 88 and corpus.is_binary()
    rolls = [r for s in corpus.splits.values() for r in s]
    per_frame = np.concatenate([r.sum(1) for r in rolls])
    assert per_frame.max() <= 6 and (per_frame > 4).mean() < 0.01 and (per_frame == 4).mean() > 0.85
    lengths = np.array([len(r) for r in rolls])
    assert 20 <= lengths.min() and lengths.max() <= 200
    keys = np.flatnonzero(np.concatenate(rolls).any(0)) + 21
    assert keys.min() >= 30 and keys.max() <= 90
    ids = [i for s in corpus.splits for i in corpus.ids[s]]
    assert len(set(ids)) == len(ids) and all(i.startswith("bach/") for i in ids)


def test_bundled_chorale_split_is_the_documented_one():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_bach_chorales
    finally:
        sys.path.pop(0)
    corpus = load_bach_chorales()
    with np.load(music.BACH_CHORALES_PATH) as z:
        stored, ids = z["split"], [str(i) for i in z["ids"]]
    np.testing.assert_array_equal(stored, make_bach_chorales.split_assignment(len(ids)))
    assert ids == sorted(ids)  # corpus-path order, as documented
    assert corpus.ids["test"] == [i for i, k in zip(ids, stored) if k == 2]


def test_regenerating_chorales_reproduces_the_shipped_file():
    pytest.importorskip("music21")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_bach_chorales.py"), "--limit", "6", "--check"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "checked 6 chorales" in r.stdout and "0 differ" in r.stdout


def test_corrupt_bundled_file_is_reported(tmp_path):
    bad = tmp_path / "c.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a valid chorale archive"):
        load_bach_chorales(bad)
    with pytest.raises(FileNotFoundError, match="make_bach_chorales"):
        load_bach_chorales(tmp_path / "missing.npz")


# ----------------------------------------------------------------------------------------------
# users' arrays and batching
# ----------------------------------------------------------------------------------------------

def test_load_arrays_layouts(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 7, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    c = load_arrays(tmp_path / "a.npy")
    assert sum(len(c.splits[s]) for s in c.splits) == 20 and c.x_dim == 3
    assert len(c.splits["test"]) == 2 and len(c.splits["valid"]) == 2
    lengths = rng.integers(1, 8, size=20)
    np.savez(tmp_path / "b.npz", x=x, lengths=lengths)
    c = load_arrays(tmp_path / "b.npz")
    assert sorted(len(s) for sp in c.splits.values() for s in sp) == sorted(lengths.tolist())
    np.savez(tmp_path / "c.npz", train=x[:10], valid=x[10:15], test=x[15:], test_lengths=np.full(5, 3))
    c = load_arrays(tmp_path / "c.npz")
    np.testing.assert_array_equal(c.splits["valid"][0], x[10])
    assert [len(s) for s in c.splits["test"]] == [3] * 5
    np.savez(tmp_path / "d.npz", *[x[i, : lengths[i]] for i in range(20)])
    c = load_arrays(tmp_path / "d.npz")
    assert sorted(len(s) for sp in c.splits.values() for s in sp) == sorted(lengths.tolist())


def test_load_arrays_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_arrays(tmp_path / "none.npy")
    np.save(tmp_path / "4d.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"expected \(N, T, D\)"):
        load_arrays(tmp_path / "4d.npy")
    x = np.zeros((5, 4, 2))
    x[1, 2, 0] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(ValueError, match="NaN or inf"):
        load_arrays(tmp_path / "nan.npy")
    np.savez(tmp_path / "len.npz", x=np.zeros((5, 4, 2)), lengths=np.array([1, 2, 0, 4, 4]))
    with pytest.raises(ValueError, match="lengths must be in 1..T"):
        load_arrays(tmp_path / "len.npz")
    (tmp_path / "junk.npy").write_bytes(b"\x00junk")
    with pytest.raises(ValueError, match="not a readable"):
        load_arrays(tmp_path / "junk.npy")
    with pytest.raises(ValueError, match="different dimensions"):
        Corpus({"train": [np.zeros((3, 2))], "valid": [np.zeros((3, 3))], "test": [np.zeros((3, 2))]})
    with pytest.raises(ValueError, match="zero-length"):
        Corpus({"train": [np.zeros((0, 2))], "valid": [np.zeros((3, 2))], "test": [np.zeros((3, 2))]})
    with pytest.raises(ValueError, match="at least 3 sequences"):
        Corpus.from_sequences([np.zeros((3, 2))] * 2)


def test_padding_keeps_order_and_masks():
    seqs = [np.full((3, 2), 1.0), np.full((5, 2), 2.0), np.full((1, 2), 3.0)]
    x, mask = pad_sequences(seqs)
    assert x.shape == (3, 5, 2) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [3, 5, 1]  # the given order, not sorted by length
    assert x[0, :3].eq(1).all() and x[0, 3:].eq(0).all() and x[2, 0].eq(3).all()
    buckets = length_buckets([1, 3, 5, 8, 13, 21, 34], 3)
    assert buckets[-1] == 34 and len(buckets) <= 4 and buckets == sorted(buckets)
    x, mask = PadCollate([4, 9])([torch.ones(3, 2), torch.ones(5, 2)])
    assert x.shape[1] == 9 and mask.sum().item() == 8
    with pytest.raises(ValueError, match="shorter than the longest"):
        pad_sequences(seqs, pad_to=4)


def test_transposition_moves_every_note_and_skips_copies_off_the_keyboard():
    from pyro_dssm.data.augment import transpose_roll, transposed

    roll = np.zeros((3, 88), np.float32)
    roll[0, [40, 44, 47]] = 1  # a C major triad (keys of MIDI 61, 65, 68)
    roll[2, 86] = 1  # two keys below the top
    up = transpose_roll(roll, 1)
    assert np.array_equal(np.argwhere(up), np.argwhere(roll) + [0, 1])
    assert np.array_equal(transpose_roll(up, -1), roll)
    with pytest.raises(ValueError, match=r"\+2 moves keys 40..86 off the 88 keys"):
        transpose_roll(roll, 2)
    low = np.zeros((2, 88), np.float32)
    low[1, 0] = 1  # the lowest key: no copy below
    corpus = Corpus({"train": [roll, low], "valid": [roll], "test": [low]}, name="toy", ids={
        "train": ["a", "b"], "valid": ["v"], "test": ["t"]})
    aug = transposed(corpus, 2)
    # roll: +1, -1, -2 fit (+2 would leave the top); low: +1, +2 fit
    assert aug.ids["train"] == ["a", "a+1", "a-1", "a-2", "b", "b+1", "b+2"]
    assert [int(x.sum()) for x in aug.splits["train"]] == [4, 4, 4, 4, 1, 1, 1]
    assert aug.splits["valid"] is corpus.splits["valid"] and aug.splits["test"] is corpus.splits["test"]
    assert aug.name == "toy-transposed2" and transposed(corpus, 0) is corpus
    with pytest.raises(ValueError, match="piano rolls"):
        transposed(Corpus({s: [np.full((2, 3), 0.5)] for s in ("train", "valid", "test")}), 1)


def test_transpose_is_a_data_option_of_every_corpus():
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training.engine import build_corpus

    cfg = TrainConfig(data="bach", max_sequences=4, data_options={"transpose": 1})
    corpus = build_corpus(cfg)  # the first 4 chorales of each split, then the copies
    assert len(corpus.splits["train"]) == 12 and len(corpus.splits["test"]) == 4
    with pytest.raises(ValueError, match="transpose must be a non-negative"):
        TrainConfig(data_options={"transpose": -1})
