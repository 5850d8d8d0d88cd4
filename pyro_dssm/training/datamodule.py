"""Batches of a run: length-bucketed training batches, and validation split once over processes."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import lightning as L
import torch

from ..data.batching import LengthBucketBatchSampler
from ..data.corpus import SPLITS, Corpus, PadCollate, SequenceDataset


class _EvalShardSampler(torch.utils.data.Sampler):
    """Items ``(index, weight)``: process ``rank`` takes ``rank, rank + world, ...``, by length if ``lengths`` are given.

    Every process gets the same number of items (DDP needs at least one batch on
    each); the fillers have weight 0, so each sequence counts exactly once.
    """

    def __init__(self, n: int, rank: int, world: int, lengths: Optional[Sequence[int]] = None):
        own = list(range(rank, n, world))
        if lengths is not None:
            own.sort(key=lambda i: lengths[i])  # batches of similar lengths; the sums do not depend on order
        per = -(-n // world)
        self.items = [(i, 1.0) for i in own] + [(own[0] if own else 0, 0.0)] * (per - len(own))

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


class _Weighted(torch.utils.data.Dataset):
    """Reads ``(index, weight)`` items of :class:`_EvalShardSampler`."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        i, w = item
        return self.dataset[i], w


class _WeightedCollate:
    """``(x, mask, weight)`` with ``weight`` ``(B,)``."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, batch):
        x, mask = self.collate([b[0] for b in batch])
        return x, mask, torch.tensor([b[1] for b in batch], dtype=x.dtype)


class SequenceDataModule(L.LightningDataModule):
    """Padded, masked batches of a :class:`Corpus`, sharded over processes.

    Training batches (``bucket_by_length``, the default) come from a
    :class:`~pyro_dssm.data.batching.LengthBucketBatchSampler`: sequences of similar
    lengths batched together, the batches reshuffled every epoch. Without it, a
    ``DistributedSampler`` draws random batches. Either way the order depends only
    on ``seed`` and the epoch (resumable, the same on every process), and every
    process gets the same number of batches. Validation and test batches hold
    each process's share of the split once, sorted by length when
    ``bucket_by_length``. With ``buckets`` every batch is padded up to one of a
    few lengths (``--jit``).
    """

    def __init__(self, corpus: Corpus, batch_size: int, seed: int = 0, buckets: Optional[Sequence[int]] = None,
                 num_workers: int = 0, bucket_by_length: bool = True):
        super().__init__()
        self.corpus, self.batch_size, self.seed, self.num_workers = corpus, batch_size, seed, num_workers
        self.bucket_by_length = bucket_by_length
        self.collate = PadCollate(buckets)
        self.datasets = {s: SequenceDataset(corpus.splits[s]) for s in SPLITS}

    def _world(self) -> Tuple[int, int]:
        if self.trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        return 0, 1

    def _loader(self, dataset, sampler=None, batch_size=1, collate=None, batch_sampler=None):
        # a private generator: iterating a loader must not draw from the global RNG (exact resume)
        batching = ({"batch_sampler": batch_sampler} if batch_sampler is not None
                    else {"batch_size": batch_size, "sampler": sampler})
        return torch.utils.data.DataLoader(dataset, **batching, collate_fn=collate or self.collate,
                                           num_workers=self.num_workers, generator=torch.Generator(),
                                           persistent_workers=self.num_workers > 0)

    def train_dataloader(self):
        rank, world = self._world()
        dataset = self.datasets["train"]
        if self.bucket_by_length:
            batches = LengthBucketBatchSampler(self.corpus.lengths("train"), self.batch_size, seed=self.seed,
                                               rank=rank, world=world)
            return self._loader(dataset, batch_sampler=batches)
        sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world, rank=rank,
                                                      shuffle=True, seed=self.seed)
        return self._loader(dataset, sampler, self.batch_size)

    def _eval_loader(self, split):
        rank, world = self._world()
        lengths = self.corpus.lengths(split) if self.bucket_by_length else None
        return self._loader(_Weighted(self.datasets[split]),
                            _EvalShardSampler(len(self.datasets[split]), rank, world, lengths), self.batch_size,
                            _WeightedCollate(self.collate))

    def val_dataloader(self):
        return self._eval_loader("valid")

    def test_dataloader(self):
        return self._eval_loader("test")
