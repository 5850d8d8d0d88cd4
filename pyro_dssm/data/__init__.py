"""Data: sequence corpora with train/valid/test splits, padded ``(B, T, D)`` batches with masks,
generated linear-Gaussian data, and polyphonic music. Never imports models."""

from .corpus import SPLITS, Corpus, PadCollate, SequenceDataset, length_buckets, load_arrays, pad_sequences
from .music import (BENCHMARKS, download_benchmark, load_bach_chorales, load_benchmark, load_boulanger_pickle,
                    load_music_folder, midi_to_roll, notes_to_roll, roll_to_midi, roll_to_notes)
from .synthetic import LinearGaussianSSM, linear_gaussian_dataset

__all__ = [
    "SPLITS", "Corpus", "PadCollate", "SequenceDataset", "length_buckets", "load_arrays", "pad_sequences",
    "BENCHMARKS", "download_benchmark", "load_bach_chorales", "load_benchmark", "load_boulanger_pickle",
    "load_music_folder", "midi_to_roll", "notes_to_roll", "roll_to_midi", "roll_to_notes",
    "LinearGaussianSSM", "linear_gaussian_dataset",
]
