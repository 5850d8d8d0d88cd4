"""Which sequences go into which batch: length-bucketed training batches and length-sorted evaluation.

A padded batch ``(B, T_max, D)`` runs the time loop ``T_max`` times for every
sequence in it; steps past a sequence's own length are masked out, so they cost
time and add nothing. Batches of similar lengths waste little: on the shipped
chorales (8-193 frames) random batches of 20 are about half padding, batches cut
from length-sorted buckets about a tenth (``benchmarks/epoch_eval.py`` prints both).

Training (:class:`LengthBucketBatchSampler`): the same batches, in the same order,
for the same ``(seed, epoch)`` on every process and after a resume; every process
gets the same number of batches. Evaluation (:func:`length_sorted_batches`): every
sequence exactly once, batched by length; callers put the results back in input order.
"""

from __future__ import annotations

from typing import Iterator, List, Sequence

import numpy as np
import torch

from ..fields import check_positive_int

__all__ = ["LengthBucketBatchSampler", "length_sorted_batches", "padding_efficiency"]


def _check_lengths(lengths: Sequence[int]) -> np.ndarray:
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.size == 0:
        raise ValueError(f"lengths must be a non-empty 1-D list of sequence lengths, got shape {lengths.shape}")
    if not np.issubdtype(lengths.dtype, np.integer) or (lengths < 1).any():
        raise ValueError("lengths must be positive integers (a zero-length sequence has no steps to batch)")
    return lengths.astype(np.int64)


class LengthBucketBatchSampler(torch.utils.data.Sampler):
    """Training batches of similar lengths, reshuffled every epoch; deterministic per ``(seed, epoch)``; DDP-ready.

    Each epoch, with a generator seeded by ``(seed, epoch)`` alone:

    1. the sequences are sorted by length, ties in random order;
    2. the sorted list is cut into ``K = ceil(N / batch_size)`` consecutive batches whose
       sizes differ by at most one, the larger ones at random places (so the batch
       edges move from epoch to epoch: the same sequences are not always batched together);
    3. with ``batches_per_bucket > 1``, each run of that many consecutive batches (a bucket)
       is pooled, shuffled and cut again into batches of the same sizes;
    4. the order of all batches is shuffled.

    Under DDP (``world > 1``) the batch list is the same on every process; it is
    extended by repeating its first batches up to a multiple of ``world`` (as
    ``DistributedSampler`` repeats samples), and process ``rank`` takes batches
    ``rank, rank + world, ...``: every process runs the same number of steps.

    Args:
        lengths: ``(N,)`` lengths of the dataset's sequences (index ``i`` is item ``i``).
        batch_size: sequences per batch.
        seed: the seed of the run; the order depends only on it and the epoch.
        rank, world: this process and the number of processes.
        batches_per_bucket: batches per bucket; 1 batches neighbours in length order (least
            padding), larger values mix more sequences per batch (more padding).

    Call :meth:`set_epoch` before each epoch (Lightning does it for a loader's batch sampler).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int = 0, rank: int = 0, world: int = 1,
                 batches_per_bucket: int = 1):
        self.lengths = _check_lengths(lengths)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.batches_per_bucket = check_positive_int(batches_per_bucket, "batches_per_bucket")
        self.world = check_positive_int(world, "world")
        if not 0 <= rank < self.world:
            raise ValueError(f"rank must be in [0, {self.world}), got {rank!r}")
        self.rank, self.seed, self.epoch = int(rank), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_batches(self, epoch: int) -> List[List[int]]:
        """All processes' batches of ``epoch``, in the order they are run (before the split over processes)."""
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, int(epoch)])
        n = len(self.lengths)
        perm = rng.permutation(n)
        order = perm[np.argsort(self.lengths[perm], kind="stable")]  # by length, ties at random
        K = -(-n // self.batch_size)
        sizes = np.full(K, n // K)
        sizes[rng.permutation(K)[:n % K]] += 1  # K sizes within one of each other, the larger at random places
        edges = np.cumsum(sizes)[:-1]
        batches: List[List[int]] = []
        for b0 in range(0, K, self.batches_per_bucket):
            b1 = min(b0 + self.batches_per_bucket, K)
            lo, hi = (edges[b0 - 1] if b0 else 0), (edges[b1 - 1] if b1 < K else n)
            pool = order[lo:hi]
            if b1 - b0 > 1:
                pool = pool[rng.permutation(len(pool))]
            batches += [part.tolist() for part in np.split(pool, np.cumsum(sizes[b0:b1])[:-1])]
        return [batches[i] for i in rng.permutation(len(batches))]

    def _padded(self) -> List[List[int]]:
        batches = self.epoch_batches(self.epoch)
        extra = (-len(batches)) % self.world
        return batches + [batches[i % len(batches)] for i in range(extra)]

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self._padded()[self.rank::self.world])

    def __len__(self) -> int:
        K = -(-len(self.lengths) // self.batch_size)  # the same every epoch
        return -(-K // self.world)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> List[List[int]]:
    """Indices ``0..N-1`` in batches of ``batch_size`` by increasing length (ties in input order); each exactly once.

    For evaluation: the results of batch ``b`` belong to the indices ``batches[b]``,
    and scattering them there restores the input order.
    """
    lengths = _check_lengths(lengths)
    batch_size = check_positive_int(batch_size, "batch_size")
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def padding_efficiency(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of the time steps a padded loop runs over ``batches`` that are real steps (1 = no padding)."""
    lengths = _check_lengths(lengths)
    real = sum(int(lengths[b].sum()) for b in batches)
    run = sum(int(lengths[b].max()) * len(b) for b in batches)
    return real / run
