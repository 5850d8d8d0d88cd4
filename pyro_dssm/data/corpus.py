"""Variable-length sequence corpora with train/valid/test splits, users' own arrays, and padded batches.

Every sequence is a ``(T, D)`` array. A batch is padded to ``(B, T_max, D)``
with a boolean ``mask`` ``(B, T_max)`` that is ``True`` on valid steps; batches
keep the order they are given in (never a silent sort by length: which sequences form
a batch is the sampler's choice, e.g. :mod:`pyro_dssm.data.batching`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = ["SPLITS", "data_home", "Corpus", "load_arrays", "pad_sequences", "SequenceDataset", "PadCollate",
           "length_buckets"]

SPLITS = ("train", "valid", "test")


def data_home() -> Path:
    """Where downloaded or built corpora live: ``$PYRO_DSSM_DATA``, else ``$XDG_CACHE_HOME/pyro-dssm``
    (default ``~/.cache/pyro-dssm``)."""
    env = os.environ.get("PYRO_DSSM_DATA")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyro-dssm"


class Corpus:
    """Sequences split into ``train``/``valid``/``test``; each a list of ``(T, D)`` arrays.

    Attributes:
        splits: ``{"train": [...], "valid": [...], "test": [...]}``.
        name: a short name for logs and run directories.
        source: where the data came from (a path, or a description).
        ids: optional per-split names of the sequences.
        kind: what the sequences are (``"sequences"``; :class:`~pyro_dssm.data.speech.SpeechCorpus`: ``"speech"``).
    """

    kind = "sequences"

    def __init__(self, splits: Dict[str, List[np.ndarray]], name: str = "data", source: str = "",
                 ids: Optional[Dict[str, List[str]]] = None, missing: bool = False):
        absent = [s for s in SPLITS if s not in splits]
        if absent:
            raise ValueError(f"corpus {name!r} lacks the split(s) {absent}")
        self.splits = {s: [np.asarray(x) for x in splits[s]] for s in SPLITS}
        self.name, self.source, self.ids, self.missing = name, source, ids, missing
        dims = {x.shape[-1] for s in SPLITS for x in self.splits[s] if x.ndim == 2}
        for s in SPLITS:
            if not self.splits[s]:
                raise ValueError(f"corpus {name!r}: split {s!r} is empty")
            for i, x in enumerate(self.splits[s]):
                if x.ndim != 2:
                    raise ValueError(f"corpus {name!r}: {s}[{i}] has shape {x.shape}; each sequence must be (T, D)")
                if x.shape[0] == 0:
                    raise ValueError(f"corpus {name!r}: {s}[{i}] is a zero-length sequence")
                if missing:
                    if np.isinf(x).any():
                        raise ValueError(f"corpus {name!r}: {s}[{i}] contains inf (NaN marks an unobserved entry)")
                    if np.isnan(x).all():
                        raise ValueError(f"corpus {name!r}: {s}[{i}] has no observed entry (all NaN)")
                elif not np.isfinite(x).all():
                    raise ValueError(f"corpus {name!r}: {s}[{i}] contains NaN or inf (NaN may mark unobserved "
                                     "entries only in a corpus with missing values, for LS4)")
        if len(dims) != 1:
            raise ValueError(f"corpus {name!r}: sequences have different dimensions {sorted(dims)}")

    @property
    def x_dim(self) -> int:
        return int(self.splits["train"][0].shape[-1])

    @property
    def has_missing(self) -> bool:
        """Whether some entry is unobserved (NaN): irregularly sampled data (LS4 Sec. 5.3)."""
        return self.missing and any(np.isnan(x).any() for s in SPLITS for x in self.splits[s])

    def is_binary(self) -> bool:
        return all(np.isin(x, (0, 1)).all() for s in SPLITS for x in self.splits[s])

    def lengths(self, split: str) -> np.ndarray:
        return np.array([len(x) for x in self.splits[split]])

    def head(self, n: int) -> "Corpus":
        """A copy keeping only the first ``n`` sequences of each split (quick checks)."""
        import copy

        if n < 1:
            raise ValueError(f"head needs n >= 1, got {n}")
        out = copy.copy(self)
        out.splits = {s: self.splits[s][:n] for s in SPLITS}
        if self.ids is not None:
            out.ids = {s: list(v)[:n] for s, v in self.ids.items()}
        return out

    def merged(self, split: str = "all") -> "Corpus":
        """A copy with one more split, ``split``, holding every sequence (train, then valid, then test)."""
        import copy

        out = copy.copy(self)
        out.splits = {**self.splits, split: [x for s in SPLITS for x in self.splits[s]]}
        if self.ids is not None:
            out.ids = {**self.ids, split: [i for s in SPLITS for i in self.ids.get(s, [])]}
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.splits[s])}" for s in SPLITS)
        return f"Corpus({self.name!r}, x_dim={self.x_dim}, {sizes})"

    def summary(self) -> Dict[str, object]:
        out: Dict[str, object] = {"name": self.name, "source": self.source, "x_dim": self.x_dim}
        for s in SPLITS:
            ln = self.lengths(s)
            out[s] = {"sequences": len(ln), "steps": int(ln.sum()), "min_len": int(ln.min()), "max_len": int(ln.max())}
        return out

    @classmethod
    def from_sequences(cls, seqs: Sequence[np.ndarray], *, name: str = "data", source: str = "",
                       valid_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                       names: Optional[Sequence[str]] = None, missing: bool = False) -> "Corpus":
        """Split sequences at random (with ``seed``) into train/valid/test; at least one each.

        ``names`` (one per sequence) become :attr:`ids`.
        """
        n = len(seqs)
        if n < 3:
            raise ValueError(f"{name}: need at least 3 sequences to make train/valid/test splits, got {n}")
        if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
            raise ValueError("valid_fraction and test_fraction must be in (0, 1) with a sum below 1")
        if names is not None and len(names) != n:
            raise ValueError(f"{name}: {len(names)} names for {n} sequences")
        perm = np.random.default_rng(seed).permutation(n)
        n_test = max(1, int(round(n * test_fraction)))
        n_valid = max(1, int(round(n * valid_fraction)))
        parts = {"test": perm[:n_test], "valid": perm[n_test:n_test + n_valid], "train": perm[n_test + n_valid:]}
        ids = None if names is None else {s: [names[i] for i in sorted(parts[s])] for s in SPLITS}
        return cls({s: [seqs[i] for i in sorted(parts[s])] for s in SPLITS}, name=name, source=source, ids=ids,
                   missing=missing)


def _as_sequences(x: np.ndarray, lengths: Optional[np.ndarray], where: str) -> List[np.ndarray]:
    if x.dtype == object:
        seqs = [np.asarray(s, dtype=np.float32) for s in x]
    else:
        if x.ndim == 2:
            # (N, T) series of scalars and (T, D) single sequences look alike: say how it would be read
            T, D = x.shape
            raise ValueError(
                f"{where}: a 2-D array of shape {x.shape}, but (N, T, D) was expected (N sequences of T steps of "
                f"D values). Read as it is, it would be ONE sequence of {T} steps with {D} values each. If its "
                f"rows are {T} sequences of {D} scalar steps, save x[..., None] (shape ({T}, {D}, 1)); if it is "
                f"one sequence, save x[None] (shape (1, {T}, {D})); for sequences of different shapes use "
                "np.savez(path, *list_of_(T, D)_arrays)")
        if x.ndim != 3:
            raise ValueError(f"{where}: array of shape {x.shape}; expected (N, T, D) or a list of (T, D) arrays")
        seqs = list(x.astype(np.float32))
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (len(seqs),):
            raise ValueError(f"{where}: lengths has shape {lengths.shape}, expected ({len(seqs)},)")
        if (lengths < 1).any() or any(int(L) > len(s) for L, s in zip(lengths, seqs)):
            raise ValueError(f"{where}: lengths must be in 1..T, got {lengths.min()}..{lengths.max()}")
        seqs = [s[:int(L)] for s, L in zip(seqs, lengths)]
    return seqs


def load_arrays(path: Union[str, os.PathLike], *, valid_fraction: float = 0.1, test_fraction: float = 0.1,
                seed: int = 0, missing: bool = False) -> Corpus:
    """Users' own sequences from a ``.npy`` or ``.npz`` file.

    Accepted layouts:
      - ``.npy``: ``(N, T, D)`` (all of length ``T``).
      - ``.npz`` with ``x`` ``(N, T, D)`` and optional ``lengths`` ``(N,)``;
      - ``.npz`` with ``train``/``valid``/``test`` (each ``(N, T, D)``) and optional
        ``train_lengths``/``valid_lengths``/``test_lengths``: the splits are kept;
      - ``.npz`` of ``(T, D)`` arrays (``np.savez(path, *list_of_arrays)``).

    A 2-D array (other than one of a list of ``(T, D)`` arrays) is refused: ``(N, T)``
    series and a ``(T, D)`` sequence look alike, and the error says how to save either.

    Without given splits the sequences are split at random with ``seed``. With ``missing``
    NaN entries mark unobserved values (irregularly sampled data).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path} is not a readable .npy/.npz file ({e})") from e
    kw = dict(valid_fraction=valid_fraction, test_fraction=test_fraction, seed=seed, missing=missing)
    if isinstance(data, np.ndarray):
        return Corpus.from_sequences(_as_sequences(data, None, str(path)), name=path.stem, source=str(path), **kw)
    with data:
        keys = list(data.files)
        if all(s in keys for s in SPLITS):
            splits = {s: _as_sequences(data[s], data[f"{s}_lengths"] if f"{s}_lengths" in keys else None,
                                       f"{path}[{s}]") for s in SPLITS}
            return Corpus(splits, name=path.stem, source=str(path), missing=missing)
        if "x" in keys:
            seqs = _as_sequences(data["x"], data["lengths"] if "lengths" in keys else None, f"{path}[x]")
        elif keys:
            seqs = []
            for k in keys:
                a = data[k]
                if a.ndim != 2:
                    raise ValueError(f"{path}[{k}] has shape {a.shape}; a list of sequences needs (T, D) arrays")
                seqs.append(a.astype(np.float32))
        else:
            raise ValueError(f"{path} holds no arrays")
    return Corpus.from_sequences(seqs, name=path.stem, source=str(path), **kw)


def pad_sequences(seqs: Sequence[Union[np.ndarray, torch.Tensor]], pad_to: Optional[int] = None,
                  dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pad ``(T_i, D)`` sequences, in their given order, to ``(B, T, D)`` with zeros.

    Returns:
        ``x`` ``(B, T, D)`` and ``mask`` ``(B, T)`` (bool, ``True`` on valid steps)
        where ``T = pad_to`` or the longest length.
    """
    seqs = [torch.as_tensor(np.asarray(s) if not isinstance(s, torch.Tensor) else s, dtype=dtype) for s in seqs]
    if not seqs:
        raise ValueError("cannot pad an empty list of sequences")
    lengths = torch.tensor([s.shape[0] for s in seqs])
    T = int(lengths.max()) if pad_to is None else int(pad_to)
    if T < int(lengths.max()):
        raise ValueError(f"pad_to={T} is shorter than the longest sequence ({int(lengths.max())})")
    x = torch.zeros(len(seqs), T, seqs[0].shape[-1], dtype=dtype)
    for i, s in enumerate(seqs):
        x[i, :s.shape[0]] = s
    mask = torch.arange(T) < lengths[:, None]
    return x, mask


def length_buckets(lengths: Sequence[int], num_buckets: int = 4) -> List[int]:
    """A few padded lengths (quantiles of ``lengths``, the last = the longest) for compiled code.

    Each batch is padded up to the smallest bucket that holds it, so a traced
    ELBO compiles once per bucket, not once per batch.
    """
    lengths = np.asarray(lengths)
    qs = np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:], method="higher")
    return sorted({int(q) for q in qs} | {int(lengths.max())})


class SequenceDataset(torch.utils.data.Dataset):
    """A list of ``(T, D)`` sequences; item ``i`` is a float tensor ``(T_i, D)``."""

    def __init__(self, seqs: Sequence[np.ndarray]):
        self.seqs = [torch.as_tensor(np.asarray(s), dtype=torch.float32) for s in seqs]

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.seqs[i]


class PadCollate:
    """Collate ``(T_i, D)`` tensors into ``(x, mask)``; with ``buckets``, pad up to the next bucket length."""

    def __init__(self, buckets: Optional[Sequence[int]] = None):
        self.buckets = sorted(buckets) if buckets else None

    def __call__(self, batch: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        T = max(s.shape[0] for s in batch)
        if self.buckets is not None:
            fits = [b for b in self.buckets if b >= T]
            T = fits[0] if fits else T
        return pad_sequences(batch, pad_to=T)
