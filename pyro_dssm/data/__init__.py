"""Data: sequence corpora with train/valid/test splits, padded ``(B, T, D)`` batches with masks,
generated linear-Gaussian data, polyphonic music and speech spectrograms. Never imports models."""

from .corpus import SPLITS, Corpus, PadCollate, SequenceDataset, data_home, length_buckets, load_arrays, pad_sequences
from .music import (BENCHMARKS, download_benchmark, load_bach_chorales, load_benchmark, load_boulanger_pickle,
                    load_music_folder, midi_to_roll, notes_to_roll, roll_to_midi, roll_to_notes)
from .speech import (STFTConfig, SpeechCorpus, istft, load_librispeech, load_shipped_speech, load_speech_folder,
                     power_spectrogram, stft)
from .synthetic import LinearGaussianSSM, linear_gaussian_dataset

__all__ = [
    "SPLITS", "Corpus", "data_home", "PadCollate", "SequenceDataset", "length_buckets", "load_arrays", "pad_sequences",
    "BENCHMARKS", "download_benchmark", "load_bach_chorales", "load_benchmark", "load_boulanger_pickle",
    "load_music_folder", "midi_to_roll", "notes_to_roll", "roll_to_midi", "roll_to_notes",
    "STFTConfig", "SpeechCorpus", "istft", "load_librispeech", "load_shipped_speech", "load_speech_folder",
    "power_spectrogram", "stft",
    "LinearGaussianSSM", "linear_gaussian_dataset",
]
