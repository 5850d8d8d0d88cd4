"""Length-bucketed training batches and length-sorted evaluation (pyro_dssm.data.batching)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pyro_dssm import create_model
from pyro_dssm.data import Corpus
from pyro_dssm.data.batching import LengthBucketBatchSampler, length_sorted_batches, padding_efficiency
from pyro_dssm.guides import create_guide
from pyro_dssm.training.engine import SequenceDataModule, evaluate_split


def _lengths(n=57, seed=0):
    return np.random.default_rng(seed).integers(3, 200, n)


@pytest.mark.parametrize("n,batch", [(57, 8), (40, 8), (5, 20), (1, 3)])
def test_every_sequence_once_per_epoch_in_batches_of_at_most_batch_size(n, batch):
    lengths = _lengths(n)
    s = LengthBucketBatchSampler(lengths, batch, seed=1)
    sizes = set()
    for epoch in range(4):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s) == -(-n // batch)  # the same number every epoch
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert all(1 <= len(b) <= batch for b in batches)
        sizes |= {len(b) for b in batches}
    assert max(sizes) - min(sizes) <= 1  # batches as equal as the count allows


def test_order_is_a_function_of_seed_and_epoch_only():
    lengths = _lengths()
    a = LengthBucketBatchSampler(lengths, 8, seed=3)
    b = LengthBucketBatchSampler(lengths, 8, seed=3)
    for s in (a, b):
        s.set_epoch(5)
    assert list(a) == list(b)
    a.set_epoch(6)
    assert list(a) != list(b)  # reshuffled every epoch ...
    a.set_epoch(5)
    assert list(a) == list(b)  # ... and back
    c = LengthBucketBatchSampler(lengths, 8, seed=4)
    c.set_epoch(5)
    assert list(c) != list(b)
    # the batch composition changes too, not only the order of the batches
    compositions = [sorted(map(sorted, a.epoch_batches(e))) for e in range(5)]
    assert len({str(c) for c in compositions}) > 1


def test_batches_hold_similar_lengths():
    lengths = _lengths(210)
    s = LengthBucketBatchSampler(lengths, 20, seed=0)
    bucketed = np.mean([padding_efficiency(lengths, s.epoch_batches(e)) for e in range(10)])
    rng = np.random.default_rng(0)
    random = np.mean([padding_efficiency(lengths, np.array_split(rng.permutation(210), 11)) for _ in range(10)])
    assert bucketed > 0.85 and random < 0.7
    wide = LengthBucketBatchSampler(lengths, 20, seed=0, batches_per_bucket=4)
    mixed = np.mean([padding_efficiency(lengths, wide.epoch_batches(e)) for e in range(10)])
    assert random < mixed < bucketed  # wider buckets mix more and pad more


@pytest.mark.parametrize("n,batch,world", [(57, 8, 2), (57, 8, 3), (10, 4, 4), (3, 5, 2)])
def test_ddp_ranks_get_equal_numbers_of_batches_that_cover_the_data(n, batch, world):
    lengths = _lengths(n)
    per_rank = []
    for rank in range(world):
        s = LengthBucketBatchSampler(lengths, batch, seed=2, rank=rank, world=world)
        s.set_epoch(1)
        per_rank.append(list(s))
        assert len(per_rank[-1]) == len(s)
    assert len({len(b) for b in per_rank}) == 1  # the same number of steps on every process
    everything = LengthBucketBatchSampler(lengths, batch, seed=2).epoch_batches(1)
    # the ranks interleave the one global list; the repeats that fill it up come from its start
    assert [b for step in zip(*per_rank) for b in step][:len(everything)] == everything
    assert {i for b in per_rank for x in b for i in x} == set(range(n))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketBatchSampler([3, 4], 0)
    with pytest.raises(ValueError, match="rank"):
        LengthBucketBatchSampler([3, 4], 2, rank=2, world=2)
    with pytest.raises(ValueError, match="zero-length"):
        LengthBucketBatchSampler([3, 0], 2)
    with pytest.raises(ValueError, match="non-empty"):
        length_sorted_batches([], 2)


def test_length_sorted_batches_hold_each_index_once():
    lengths = [5, 2, 9, 2, 7]
    batches = length_sorted_batches(lengths, 2)
    assert batches == [[1, 3], [0, 4], [2]]


def _rolls(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((n, 6)) < 0.3).astype(np.float32) for n in lengths]


def test_the_data_module_batches_by_length_and_turns_it_off():
    seqs = _rolls(_lengths(30, 1))
    corpus = Corpus({"train": seqs, "valid": seqs[:7], "test": seqs[:7]})
    dm = SequenceDataModule(corpus, batch_size=5, seed=0)
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(0)
    on = [m.sum(1) for _, m in loader]
    off_loader = SequenceDataModule(corpus, batch_size=5, seed=0, bucket_by_length=False).train_dataloader()
    off_loader.sampler.set_epoch(0)
    off = [m.sum(1) for _, m in off_loader]
    padded = {k: sum(int(m.max()) * len(m) for m in v) for k, v in (("on", on), ("off", off))}
    assert sum(int(m.sum()) for m in on) == sum(int(m.sum()) for m in off) == sum(map(len, seqs))
    assert padded["on"] < 0.8 * padded["off"]
    # validation: each process's share once, by length, fillers with weight 0
    for rank in (0, 1):
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        items = list(dm.val_dataloader().sampler)
        own = [i for i, w in items if w == 1.0]
        assert sorted(own) == list(range(rank, 7, 2)) and len(items) == 4
        assert [len(seqs[i]) for i in own] == sorted(len(seqs[i]) for i in own)


def test_evaluation_returns_results_in_the_input_order():
    torch.manual_seed(0)
    model = create_model("dmm", x_dim=6, z_dim=2, h_dim=8, hidden_dim=8, emission="bernoulli")
    guide = create_guide("partial", model, rnn_dim=8, hidden_dim=8)
    lengths = [40, 2, 25, 3, 31, 5]  # input order far from length order
    seqs = _rolls(lengths)
    out = evaluate_split(model, guide, seqs, batch_size=2, elbo_particles=20, iwae_particles=4)
    per = out["per_sequence"]
    assert per["length"] == lengths
    # an untrained model's ELBO is about the same per step for every sequence: out of order it
    # would be off by the ratio of the lengths (up to 20x here)
    for key in ("elbo", "iwae"):
        per_step = np.array(per[key]) / np.array(lengths)
        assert per_step.max() / per_step.min() < 1.5, (key, per_step)
    assert out["steps"] == sum(lengths)


def test_a_run_saved_before_bucketing_resumes_with_random_batches(tmp_path):
    import yaml

    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training.engine import load_run_config

    old = TrainConfig().to_dict()
    old.pop("bucket_by_length")  # a config.yaml written before the field existed
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    assert load_run_config(tmp_path).bucket_by_length is False
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TrainConfig().to_dict()))
    assert load_run_config(tmp_path).bucket_by_length is True


@pytest.mark.filterwarnings("ignore:You are trying to `self.log()`", "ignore:Encountered NaN")
def test_a_diverging_run_is_reported_by_name(tmp_path):
    """Pyro's per-site validation is off in training steps; a non-finite loss still stops the run clearly."""
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training.engine import DSSMTask, build_model_and_guide

    cfg = TrainConfig(model="dmm", guide="partial", z_dim=2, h_dim=8, hidden_dim=8, guide_rnn_dim=8)
    model, guide = build_model_and_guide(cfg, 6, "bernoulli")
    task = DSSMTask(model, guide, cfg)
    x = torch.as_tensor(np.stack(_rolls([5, 5]))), torch.ones(2, 5, dtype=torch.bool)
    assert torch.isfinite(task.training_step(x, 0))
    with torch.no_grad():
        model.emitter.heads[0].bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"training loss became nan at epoch 0, batch 3.*--lr"):
        task.training_step(x, 3)
