"""Speech input pipeline: STFT/iSTFT, preprocessing, splits, folder loading and its cache, shipped clips."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

soundfile = pytest.importorskip("soundfile")
pytest.importorskip("librosa")

from pyro_dssm.data import speech  # noqa: E402
from pyro_dssm.data.speech import STFTConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _tone(seconds=1.0, sr=16000, f=440.0, amp=0.5, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (amp * np.sin(2 * np.pi * f * t) + 0.05 * rng.normal(size=t.shape)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- STFT
def test_sine_window_is_the_paper_window():
    w = speech.sine_window(1024, dtype=torch.float64)
    n = np.arange(1024)
    np.testing.assert_allclose(w.numpy(), np.sin((n + 0.5) / 1024 * np.pi), atol=1e-15)
    # squared windows at hop 256 overlap-add to the constant 2: perfect reconstruction
    np.testing.assert_allclose((w ** 2).reshape(4, 256).sum(0).numpy(), 2.0, atol=1e-12)


def test_stft_shape_and_frames_match_a_hand_dft():
    cfg = STFTConfig()
    x = torch.as_tensor(_tone(0.5), dtype=torch.float64)
    S = speech.stft(x, cfg)
    assert S.shape == (1 + len(x) // 256, 513) and cfg.n_bins == 513
    # frame k is centred on sample k*hop of the zero-padded signal
    padded = np.concatenate([np.zeros(512), x.numpy(), np.zeros(512)])
    w = np.sin((np.arange(1024) + 0.5) / 1024 * np.pi)
    for k in (0, 3, S.shape[0] - 1):
        ref = np.fft.rfft(padded[k * 256:k * 256 + 1024] * w)
        np.testing.assert_allclose(S[k].numpy(), ref, atol=1e-9)
    np.testing.assert_allclose(speech.power_spectrogram(x, cfg).numpy(), np.abs(S.numpy()) ** 2, rtol=1e-12)


@pytest.mark.parametrize("hop", [256, 128])
def test_stft_istft_round_trip(hop):
    cfg = STFTConfig(hop=hop)
    x = torch.as_tensor(np.stack([_tone(0.7, seed=0), _tone(0.7, f=300, seed=1)]), dtype=torch.float64)
    y = speech.istft(speech.stft(x, cfg), cfg, length=x.shape[-1])
    assert y.shape == x.shape
    assert float((y - x).abs().max()) < 1e-10


def test_batched_power_spectrograms_equal_one_at_a_time():
    waves = [_tone(s, seed=i) for i, s in enumerate((0.3, 1.1, 0.65, 0.9))]
    batched = speech.power_spectrograms(waves, STFTConfig(), batch_size=3)
    for w, p in zip(waves, batched):
        alone = speech.power_spectrogram(torch.as_tensor(w)).numpy()
        assert p.shape == alone.shape == (1 + len(w) // 256, 513)
        np.testing.assert_allclose(p, alone, rtol=1e-4, atol=1e-6)


def test_stft_bad_input():
    with pytest.raises(ValueError, match="empty waveform"):
        speech.stft(torch.zeros(0))
    with pytest.raises(ValueError, match="NaN or inf"):
        speech.stft(torch.tensor([0.0, float("nan")] * 600))
    with pytest.raises(ValueError, match=r"shape \(N,\) or \(B, N\)"):
        speech.stft(torch.zeros(1, 2, 3000))
    with pytest.raises(ValueError, match="must not exceed"):
        STFTConfig(n_fft=256, hop=512)
    with pytest.raises(ValueError, match="bins"):
        speech.istft(torch.zeros(4, 100, dtype=torch.complex64))


# ---------------------------------------------------------------------------------------------- preprocessing
def test_preprocess_trims_silence_and_peak_normalises():
    sr = 16000
    tone = _tone(1.0)
    x = np.concatenate([np.zeros(sr // 2, np.float32), tone, np.zeros(sr // 2, np.float32)]) * 0.3
    y = speech.preprocess_waveform(x, top_db=30)
    assert abs(float(np.abs(y).max()) - 1.0) < 1e-6
    # about one second is left: the silences go, to within a window
    assert abs(len(y) - sr) <= 1024 + 256


def test_preprocess_bad_input():
    with pytest.raises(ValueError, match="silent"):
        speech.preprocess_waveform(np.zeros(16000))
    with pytest.raises(ValueError, match="NaN or inf"):
        speech.preprocess_waveform(np.array([0.1, np.inf] * 1000))
    with pytest.raises(ValueError, match="need at least one"):
        speech.preprocess_waveform(_tone(0.02))
    with pytest.raises(ValueError, match="mono"):
        speech.preprocess_waveform(np.ones((2, 3000)))


# ---------------------------------------------------------------------------------------------- splits
def test_split_by_file_is_deterministic_disjoint_and_90_10():
    files = [f"{s}/c/{i}.flac" for s in range(5) for i in range(40)]
    a = speech.split_files(files, seed=3)
    assert a == speech.split_files(list(reversed(files)), seed=3)
    assert a != speech.split_files(files, seed=4)
    assert sorted(a["train"] + a["valid"] + a["test"]) == sorted(files)
    assert len(a["test"]) == 20 and len(a["valid"]) == 18  # 10% of files, then 10% of the rest
    assert not set(a["train"]) & set(a["test"])


def test_speaker_disjoint_split():
    files = [f"spk{s}/ch/{i}.flac" for s in range(20) for i in range(3)]
    a = speech.split_files(files, speaker_disjoint=True, seed=0)
    speakers = {k: {speech.speaker_of(f) for f in v} for k, v in a.items()}
    assert not speakers["train"] & speakers["test"] and not speakers["valid"] & speakers["test"]
    assert len(speakers["test"]) == 2
    with pytest.raises(ValueError, match="at least 3 speakers"):
        speech.split_files([f"a/{i}.wav" for i in range(9)], speaker_disjoint=True)


# ---------------------------------------------------------------------------------------------- folders
def _write_folder(root: Path, n=6, sr=16000):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        x = _tone(0.6 + 0.25 * i, sr=sr, f=200 + 50 * i, seed=i)
        sub = root / f"spk{i % 3}"
        sub.mkdir(exist_ok=True)
        soundfile.write(str(sub / f"u{i}.{'flac' if i % 2 else 'wav'}"), x, sr, subtype="PCM_16")
    return root


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_DSSM_DATA", str(tmp_path / "home"))
    return tmp_path / "home"


def test_folder_corpus_pieces_and_test_utterances(tmp_path, data_home):
    root = _write_folder(tmp_path / "audio")
    c = speech.load_speech_folder(root, seq_len=20, test_fraction=0.2, valid_fraction=0.2)
    assert c.kind == "speech" and c.x_dim == 513 and c.stft == STFTConfig()
    assert sum(len(v) for v in c.files.values()) == 6 and len(c.files["test"]) == 1
    assert all(len(x) <= 20 for s in ("train", "valid") for x in c.splits[s])
    # the pieces tile each utterance exactly
    for f in c.files["train"]:
        wave = speech.preprocess_waveform(speech.load_audio(root / f))
        full = speech.power_spectrogram(torch.as_tensor(wave)).numpy()
        pieces = [x for x, i in zip(c.splits["train"], c.ids["train"]) if i.startswith(f + "#")]
        np.testing.assert_allclose(np.concatenate(pieces), full, rtol=1e-4, atol=1e-6)
    # test: whole utterances, aligned with their preprocessed waveforms
    (w,), (p,) = c.test_waves, c.splits["test"]
    assert abs(float(np.abs(w).max()) - 1) < 1e-6
    np.testing.assert_allclose(p, speech.power_spectrogram(torch.as_tensor(w)).numpy(), rtol=1e-4, atol=1e-6)


def test_resampling_and_stereo(tmp_path, data_home):
    root = tmp_path / "audio"
    root.mkdir()
    x = _tone(1.0, sr=44100)
    soundfile.write(str(root / "a.wav"), np.stack([x, x], 1), 44100)
    w = speech.load_audio(root / "a.wav", 16000)
    assert w.ndim == 1 and abs(len(w) - 16000) <= 1
    # the 440 Hz tone survives resampling: its spectral peak is at bin 440 / 16000 * 1024 = 28.2
    p = speech.power_spectrogram(torch.as_tensor(w)).mean(0)
    assert int(p.argmax()) in (28, 29)


def test_cache_is_used_and_invalidated(tmp_path, data_home, monkeypatch):
    root = _write_folder(tmp_path / "audio")
    first = speech.load_speech_folder(root)
    caches = list((data_home / "speech-cache").glob("*.npz"))
    assert len(caches) == 1
    # a second load reads the cache: no audio is decoded
    monkeypatch.setattr(speech, "load_audio", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    second = speech.load_speech_folder(root)
    for a, b in zip(first.splits["test"], second.splits["test"]):
        np.testing.assert_array_equal(a, b)
    # other settings, a changed file, or a damaged cache: rebuilt
    monkeypatch.undo()
    monkeypatch.setenv("PYRO_DSSM_DATA", str(data_home))
    speech.load_speech_folder(root, stft_config=STFTConfig(hop=128))
    assert len(list((data_home / "speech-cache").glob("*.npz"))) == 2
    target = sorted(root.rglob("*.wav"))[0]
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    speech.load_speech_folder(root)
    assert len(list((data_home / "speech-cache").glob("*.npz"))) == 3
    caches[0].write_bytes(b"not a zip")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = speech.load_speech_folder(root)
    np.testing.assert_array_equal(again.splits["test"][0], first.splits["test"][0])


def test_folder_errors(tmp_path, data_home):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        speech.load_speech_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .flac or .wav"):
        speech.load_speech_folder(tmp_path / "empty")
    root = _write_folder(tmp_path / "silent", n=3)
    soundfile.write(str(root / "spk0" / "zz.wav"), np.zeros(16000, np.float32), 16000)
    with pytest.raises(ValueError, match="zz.wav.*silent"):
        speech.load_speech_folder(root)
    with pytest.raises(FileNotFoundError, match="openslr.*LibriSpeech/dev-clean"):
        speech.load_librispeech("dev-clean", tmp_path)
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read audio file"):
        speech.load_audio(bad)


# ---------------------------------------------------------------------------------------------- shipped data
def test_shipped_clips_are_real_speech_with_their_licence(data_home):
    assets = speech.SHIPPED_SPEECH
    files = speech.find_audio_files(assets)
    assert len(files) == 6
    for f in files:
        info = soundfile.info(str(assets / f))
        assert info.samplerate == 16000 and info.channels == 1 and 1.0 < info.duration < 4.0
    readme = (assets / "README.md").read_text()
    assert "CC-BY-SA-3.0" in readme and "Allison Smith" in readme
    assert "Attribution-ShareAlike 3.0" in (assets / "COPYRIGHT-debian.txt").read_text()
    c = speech.load_shipped_speech()
    assert c.name == "speech_clips" and len(c.splits["test"]) >= 1 and len(c.splits["valid"]) >= 1
    # speech has energy concentrated below 4 kHz (bin 256)
    p = np.concatenate(c.splits["train"])
    assert p[:, :256].sum() > 10 * p[:, 256:].sum()


def test_asterisk_corpus_missing_says_how_to_build_it(tmp_path):
    from pyro_dssm.data.asterisk import load_asterisk

    with pytest.raises(FileNotFoundError, match="make_speech_corpus.py"):
        load_asterisk(tmp_path)


def test_g722_tree_conversion(tmp_path):
    G722 = pytest.importorskip("G722")
    from pyro_dssm.data import asterisk

    codec = G722.G722(16000, 64000)
    x = (_tone(0.5) * 20000).astype(np.int16)
    raw = codec.encode(x)
    src = tmp_path / "sounds"
    for rel in ("hello.g722", "digits/1.g722", "beep.g722", "silence/1.g722", "ascending-2tone.g722"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(raw)
    written = asterisk.convert_g722_tree(src, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["digits/1.flac", "hello.flac"]
    y, sr = soundfile.read(str(written[0]), dtype="int16")
    assert sr == 16000
    np.testing.assert_array_equal(y, asterisk.decode_g722(raw))
    # the codec is lossy but close: after its 22-sample delay the decoded signal matches the original
    best = max(np.corrcoef(y[d:].astype(float), x[:len(y) - d].astype(float))[0, 1] for d in range(60))
    assert best > 0.95
    with pytest.raises(FileNotFoundError, match="lacks the prompt"):
        asterisk.convert_g722_tree(src, tmp_path / "o2", names=["nope"])
    with pytest.raises(ValueError, match="empty"):
        asterisk.decode_g722(b"")
