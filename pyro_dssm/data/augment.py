"""Training-split augmentation of piano rolls: key transposition.

A chorale transposed by a few semitones is still a chorale: the same voice leading and harmony in
another key. Copies of the training rolls shifted along the key axis are the usual augmentation for
polyphonic music models, and the remedy for a model that overfits 210 chorales. The validation
and test splits are never changed, so that scores stay comparable with unaugmented runs.
"""

from __future__ import annotations

import copy
from typing import List

import numpy as np

from .corpus import Corpus

__all__ = ["transpose_roll", "transposed"]


def transpose_roll(roll: np.ndarray, shift: int) -> np.ndarray:
    """``roll`` (``(T, K)``, one column per key) moved ``shift`` keys up (down when negative).

    Raises:
        ValueError: a sounding note would leave the ``K`` keys.
    """
    roll = np.asarray(roll)
    keys = np.flatnonzero(roll.any(axis=0))
    if keys.size and (keys[0] + shift < 0 or keys[-1] + shift >= roll.shape[1]):
        raise ValueError(f"transposing by {shift:+d} moves keys {keys[0]}..{keys[-1]} off the {roll.shape[1]} keys")
    out = np.zeros_like(roll)
    k = roll.shape[1]
    if shift >= 0:
        out[:, shift:] = roll[:, :k - shift]
    else:
        out[:, :shift] = roll[:, -shift:]
    return out


def transposed(corpus: Corpus, max_shift: int) -> Corpus:
    """``corpus`` with every training roll also transposed by each of ±1..±``max_shift`` semitones.

    A copy whose notes would leave the keyboard is skipped; the validation and test splits are
    unchanged. ``max_shift=0`` returns ``corpus`` itself.

    Raises:
        ValueError: ``max_shift`` is negative, or the corpus is not binary (not piano rolls).
    """
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"transpose must be a non-negative number of semitones, got {max_shift!r}")
    if max_shift == 0:
        return corpus
    if not corpus.is_binary():
        raise ValueError(f"transpose augments piano rolls (0/1 data); corpus {corpus.name!r} has other values")
    train: List[np.ndarray] = []
    ids: List[str] = []
    names = (corpus.ids or {}).get("train") or [str(i) for i in range(len(corpus.splits["train"]))]
    for name, roll in zip(names, corpus.splits["train"]):
        train.append(roll)
        ids.append(name)
        for shift in (s for k in range(1, max_shift + 1) for s in (k, -k)):
            try:
                train.append(transpose_roll(roll, shift))
            except ValueError:  # its notes would leave the keyboard
                continue
            ids.append(f"{name}{shift:+d}")
    out = copy.copy(corpus)
    out.splits = {**corpus.splits, "train": train}
    if corpus.ids is not None:
        out.ids = {**corpus.ids, "train": ids}
    out.name = f"{corpus.name}-transposed{max_shift}"
    return out
