"""The training engine: Lightning runs the loop, the Pyro loss is an ``ELBOModule``.

``LeanTraceMeanField_ELBO()(model, guide)`` (Pyro's ``TraceMeanField_ELBO`` estimator,
computing only the log-densities it uses; see :mod:`pyro_dssm.infer`) turns the
model/guide pair into a ``torch.nn.Module`` whose forward is the differentiable negative ELBO. With
Pyro's module-local parameters the parameters live on the modules, so plain
PyTorch optimisers, Lightning checkpoints and DDP apply unchanged.

What a run does (:func:`train`):
  1. builds the corpus, the model and the guide from a :class:`~pyro_dssm.config.TrainConfig`;
  2. writes ``RUN_DIR/config.yaml`` (resolved config);
  3. evaluates the test negative ELBO per step of the untrained model;
  4. trains with Adam, gradient-*norm* clipping, KL annealing, early stopping, and
     atomic checkpoints (``checkpoints/last.ckpt`` every epoch, ``checkpoints/best.ckpt``
     by validation ELBO), logging to ``logs/`` (CSV, plus TensorBoard when installed);
  5. evaluates the best checkpoint on the test split and writes ``metrics.json``.

``resume=True`` continues from ``checkpoints/last.ckpt`` exactly where the run
stopped: the optimiser, the epoch, the early-stopping state and the random
number generators are restored, and the data order is a function of the
seed and the epoch, so an interrupted-and-resumed run ends with the same
parameters as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import lightning as L
import numpy as np
import pyro
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from pyro.infer import JitTraceMeanField_ELBO, TraceMeanField_ELBO

from ..config import TrainConfig, config_for_resume, data_label, load_config, save_config
from ..data.batching import LengthBucketBatchSampler, length_sorted_batches
from ..data.corpus import SPLITS, Corpus, PadCollate, SequenceDataset, length_buckets, load_arrays
from ..infer import LeanTraceMeanField_ELBO
from ..nn.emissions import default_emission, get_emission
from ..utils import atomic_write_bytes, atomic_write_text, remove_stale_parts

__all__ = ["DSSMTask", "SequenceDataModule", "AtomicCheckpointIO", "build_corpus", "build_model_and_guide",
           "evaluate_split", "train", "load_run"]

VAL_METRIC = "val/nelbo_per_step"
VAL_RECON = "val/recon_nll_per_step"  # -E_q log p(x | z) per step
VAL_KL = "val/kl_per_step"  # E_q [log q(z | x) - log p(z)] per step (one-sample estimate)
MUSIC_BENCHMARKS = ("jsb", "nottingham", "musedata", "piano")
MONASH = ("fred-md", "nn5-daily", "temperature-rain", "solar-weekly")


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------

def _speech_options(cfg: TrainConfig) -> Dict[str, Any]:
    from ..data.speech import STFTConfig

    return dict(stft_config=STFTConfig(cfg.sample_rate, cfg.stft_n_fft, cfg.stft_hop), seq_len=cfg.seq_len,
                top_db=cfg.trim_db, speaker_disjoint=cfg.speaker_disjoint, seed=cfg.seed, max_files=cfg.max_files)


def build_corpus(cfg: TrainConfig, log=None) -> Corpus:
    """The corpus named by ``cfg.data``: a shipped or downloaded corpus, a file or a folder."""
    from ..data import music, speech

    name = cfg.data
    if name in ("bach", "bach_chorales"):
        corpus = music.load_bach_chorales()
    elif name.lower() in MUSIC_BENCHMARKS or name.lower() in ("jsb_chorales", "piano-midi", "piano_midi"):
        corpus = music.load_benchmark(name, cfg.data_root)
    elif name == "flame" or name.startswith("flame-p"):
        from ..data.flame import FLAME_POWERS, load_flame

        powers = FLAME_POWERS if name == "flame" else (int(name[len("flame-p"):]),)
        corpus = load_flame(powers, seed=cfg.seed)
    elif name in ("macro", "macrodata"):
        from ..data.macro import load_macrodata

        corpus = load_macrodata(seed=cfg.seed)
    elif name in MONASH:
        from ..data.monash import load_monash

        corpus = load_monash(name, cfg.data_root, missing=cfg.series_missing, seed=cfg.seed)
    elif name == "ushcn":
        from ..data.irregular import load_ushcn

        corpus = load_ushcn(cfg.data_root, seed=cfg.seed)
    elif name == "physionet":
        from ..data.irregular import load_physionet

        corpus = load_physionet(cfg.data_root, seed=cfg.seed)
    elif name in ("speech", "speech_clips"):
        corpus = speech.load_shipped_speech(**_speech_options(cfg), log=log)
    elif name in ("asterisk", "asterisk-en"):
        from ..data.asterisk import load_asterisk

        corpus = load_asterisk(cfg.data_root, **_speech_options(cfg), log=log)
    elif name.startswith("librispeech-"):
        corpus = speech.load_librispeech(name[len("librispeech-"):], cfg.data_root, **_speech_options(cfg), log=log)
    else:
        path = Path(name)
        if path.is_dir() and speech.find_audio_files(path):
            corpus = speech.load_speech_folder(path, **_speech_options(cfg), log=log)
        elif path.is_dir():
            corpus = music.load_music_folder(path, cfg.frames_per_quarter, seed=cfg.seed)
        elif path.suffix.lower() in (".pickle", ".pkl"):
            corpus = music.load_boulanger_pickle(path)
        elif path.suffix.lower() in (".npy", ".npz"):
            corpus = load_arrays(path, seed=cfg.seed, missing=True)  # NaN: unobserved (LS4 only)
        elif path.suffix.lower() == ".tsf":
            from ..data.monash import load_tsf

            corpus = load_tsf(path, normalise=cfg.series_normalise, missing=cfg.series_missing, seed=cfg.seed)
        elif not path.exists():
            raise FileNotFoundError(
                f"data {name!r} is neither a known corpus (bach, {', '.join(MUSIC_BENCHMARKS)}, speech, asterisk, "
                f"librispeech-SUBSET, flame, flame-pP, macro, {', '.join(MONASH)}, ushcn, physionet) nor an "
                "existing file or folder")
        else:
            raise ValueError(f"don't know how to read {name!r}: use a .npy/.npz array, a Boulanger .pickle, a "
                             "Monash .tsf file or a folder of MIDI/MusicXML or wav/flac files")
    if cfg.max_sequences is not None:
        corpus = corpus.head(cfg.max_sequences)
    if cfg.observed_fraction < 1:
        from ..data.irregular import subsample

        corpus = subsample(corpus, cfg.observed_fraction, seed=cfg.seed)
    return corpus


def resolve_emission(cfg: TrainConfig, corpus: Corpus) -> str:
    """The run's observation family: ``cfg.emission``, else the model's only one, else the data's kind."""
    from ..models.registry import model_capabilities

    fixed = model_capabilities(cfg.model)["emissions"]
    if cfg.emission is None and fixed:
        return fixed[0]
    if cfg.emission is not None:
        check_support(cfg.emission, corpus)
        return cfg.emission
    return default_emission(speech=corpus.kind == "speech", binary=corpus.is_binary())


def check_support(emission: str, corpus: Corpus, what: Optional[str] = None) -> None:
    """A ``ValueError`` naming the corpus when some of its values lie outside the emission's support."""
    family = get_emission(emission)
    for split, seqs in corpus.splits.items():
        for x in seqs:
            t = torch.as_tensor(np.asarray(x))
            bad = family.bad_values(t)
            if bad is not None and bool((bad & ~torch.isnan(t)).any()):  # NaN: unobserved, not a value
                raise ValueError(f"emission {emission!r} needs {family.support} data, but {what or corpus.name} has "
                                 f"other values ({split} split)")


def build_model_and_guide(cfg: TrainConfig, x_dim: int, emission: str, missing: bool = False):
    """Model and guide of a run. Module-local parameters unless ``cfg.jit`` (Pyro's JIT reads the param store).

    ``missing``: the data has unobserved (NaN) entries, which only LS4 models (``LS4Config.missing``).
    """
    from ..guides import create_guide
    from ..models import create_model, list_models, preset_info
    from ..models.registry import model_capabilities

    can = model_capabilities(cfg.model)
    if missing and not can["missing"]:
        raise ValueError(f"the data has unobserved (NaN) entries, which --model {cfg.model} cannot model; "
                         f"use {' or '.join('--model ' + n for n in list_models() if preset_info(n)['missing'])} "
                         "(irregular sampling, LS4 Sec. 5.3) or data without NaN")
    if cfg.jit and not can["jit"]:
        raise ValueError(f"--iaf and --jit are not available for {cfg.model}")
    pyro.settings.set(module_local_params=not cfg.jit)  # must precede the construction of PyroModules
    pyro.clear_param_store()
    # every model takes the run's sizes; a family's own options (LS4's N, depth, ...) come by --model-option
    options = {"z_dim": cfg.z_dim, "h_dim": cfg.h_dim, "hidden_dim": cfg.hidden_dim, **cfg.model_options}
    if can["missing"]:
        options.setdefault("missing", missing)
    model = create_model(cfg.model, x_dim=x_dim, emission=emission, **options)
    guide = create_guide(cfg.guide, model, rnn_dim=cfg.guide_rnn_dim, hidden_dim=cfg.hidden_dim,
                         num_iafs=cfg.iaf, iaf_dim=cfg.iaf_dim)
    return model, guide


class CachedJitTraceMeanField_ELBO(JitTraceMeanField_ELBO):
    """``JitTraceMeanField_ELBO`` that compiles once per distinct keyword arguments, as documented.

    Pyro 1.9's ``JitTraceMeanField_ELBO.differentiable_loss`` tests a cache attribute
    (``_loss_and_surrogate_loss``) that it never sets, so it builds a new compiled
    function, and traces again, on every call. Setting the attribute after the first
    call makes later calls reuse the compiled graphs.
    """

    def differentiable_loss(self, model, guide, *args, **kwargs):
        loss = super().differentiable_loss(model, guide, *args, **kwargs)
        self._loss_and_surrogate_loss = self._differentiable_loss
        return loss


class _Positional(torch.nn.Module):
    """Adapts ``f(x, mask, annealing_factor=a)`` to ``f(x, mask, a)``: the JIT ELBO needs tensors positional.

    ``num_steps`` and ``batch_size`` go as keyword arguments, which key the
    compiled graphs (one per padded length and batch size).
    """

    def __init__(self, fn: torch.nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x, mask, annealing, **kwargs):
        return self.fn(x, mask, annealing_factor=annealing, **kwargs)


class DSSMTask(L.LightningModule):
    """A model/guide pair trained by maximising the (annealed) ELBO, eq. (9) of the taxonomy paper.

    Args:
        model, guide: ``PyroModule``s with signature ``f(x, mask, *, annealing_factor)``.
        cfg: the run's config (learning rate, annealing schedule, JIT).

    Logged: ``train/loss`` (annealed negative ELBO per valid step),
    ``val/nelbo_per_step`` (unannealed; the sum over the validation split divided
    by its number of steps, reduced over all processes) and its two terms,
    ``val/recon_nll_per_step`` and ``val/kl_per_step`` (a KL near 0 is a collapsed posterior).
    """

    def __init__(self, model, guide, cfg: TrainConfig):
        super().__init__()
        self.model, self.guide, self.cfg = model, guide, cfg
        if cfg.jit:
            elbo = CachedJitTraceMeanField_ELBO(ignore_jit_warnings=True)(_Positional(model), _Positional(guide))
        else:
            elbo = LeanTraceMeanField_ELBO(free_bits=cfg.free_bits)(model, guide)
        # kept out of the module tree so that the state dict has one copy of each parameter
        object.__setattr__(self, "elbo", elbo)
        self._val_sums: List[torch.Tensor] = []
        self._pending_rng: Optional[Dict[str, Any]] = None
        self._plateau: Optional[torch.optim.lr_scheduler.ReduceLROnPlateau] = None  # --lr-decay < 1
        self._pending_plateau: Optional[Dict[str, Any]] = None
        # wall-clock training seconds of earlier sessions of this run (restored on resume), and this one's start
        self.seconds_before, self._fit_start = 0.0, time.time()

    # -- loss ----------------------------------------------------------------------------------
    def negative_elbo(self, x: torch.Tensor, mask: torch.Tensor, annealing_factor: float = 1.0) -> torch.Tensor:
        """Differentiable negative ELBO summed over the batch ``x`` ``(B, T, x_dim)``, ``mask`` ``(B, T)``."""
        if self.cfg.jit:
            a = torch.tensor(float(annealing_factor), device=x.device)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                return self.elbo(x, mask, a, num_steps=int(x.shape[1]), batch_size=int(x.shape[0]))
        return self.elbo(x, mask, annealing_factor=annealing_factor)

    def training_step(self, batch, batch_idx):
        x, mask = batch
        # The batch is checked once when the model and guide first see it (shapes, NaN, support:
        # pyro_dssm.validation). Pyro's own validation would check every step's distributions
        # and site values again, about a quarter of an epoch at the main job's sizes; it is off
        # here (unless --pyro-validation), and a loss that stops being finite is reported instead.
        with pyro.validation_enabled(self.cfg.pyro_validation):
            loss = self.negative_elbo(x, mask, self.cfg.annealing_factor(self.current_epoch)) / mask.sum()
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(
                f"the training loss became {float(loss.detach())} at epoch {self.current_epoch}, batch {batch_idx}: the "
                "run diverged (a network output left the range its distribution allows). Lower --lr (now "
                f"{self.cfg.lr:g}) or --clip-norm (now {self.cfg.clip_norm:g}), or resume from an earlier checkpoint.")
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=x.shape[0],
                 sync_dist=True)
        return loss

    def on_validation_epoch_start(self):
        self._val_sums = []

    def validation_step(self, batch, batch_idx):
        from ..infer import log_weight_parts

        x, mask, weight = batch
        with pyro.validation_enabled(self.cfg.pyro_validation):  # as in training: the batch is checked once
            obs, latent = log_weight_parts(self.model, self.guide, x, mask)  # (1, B) each: one particle
        obs, latent = obs[0].detach(), latent[0].detach()
        self._val_sums.append(torch.stack([-((obs + latent) * weight).sum(), -(obs * weight).sum(),
                                           -(latent * weight).sum(), (mask.sum(-1) * weight).sum()]))

    def on_validation_epoch_end(self):
        total = torch.stack(self._val_sums).sum(0) if self._val_sums else torch.zeros(4, device=self.device)
        total = self.trainer.strategy.reduce(total, reduce_op="sum")
        self.log(VAL_METRIC, total[0] / total[3], prog_bar=True, sync_dist=False)
        # the two terms of eq. (9): a KL near 0 per step is a collapsed posterior
        self.log(VAL_RECON, total[1] / total[3], sync_dist=False)
        self.log(VAL_KL, total[2] / total[3], sync_dist=False)
        if self._plateau is not None and not self.trainer.sanity_checking:
            # stepped here, before the epoch's checkpoints are written (Lightning's own scheduler
            # step comes after them, so a resumed run would miss one decay)
            self._plateau.step(float(total[0] / total[3]))

    def configure_optimizers(self):
        """Adam (AdamW with ``weight_decay``); with ``lr_decay < 1`` the learning rate is multiplied by
        ``lr_decay`` after ``lr_patience`` validation epochs without a better validation ELBO
        (``ReduceLROnPlateau``, stepped after each validation; its state is kept in the checkpoints)."""
        cfg = self.cfg
        opt = (torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay) if cfg.weight_decay
               else torch.optim.Adam(self.parameters(), lr=cfg.lr))
        self._plateau = None
        if cfg.lr_decay < 1:
            self._plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.lr_decay,
                                                                       patience=cfg.lr_patience)
            if self._pending_plateau is not None:  # a resume: the optimiser's own lr is restored by Lightning
                self._plateau.load_state_dict(self._pending_plateau)
                self._pending_plateau = None
        return opt

    # -- exact resume --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        kind, key, pos, has_gauss, cached = np.random.get_state()
        # plain types and tensors only: checkpoints load with torch.load(weights_only=True)
        checkpoint["rng_states"] = {"torch": torch.get_rng_state(),
                                    "numpy": [kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, cached],
                                    "python": random.getstate()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["pyro_dssm_config"] = self.cfg.to_dict()
        if self._plateau is not None:
            checkpoint["lr_plateau"] = self._plateau.state_dict()
        checkpoint["train_seconds"] = self.train_seconds()

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        self._pending_rng = checkpoint.get("rng_states")
        self._pending_plateau = checkpoint.get("lr_plateau")
        self.seconds_before = float(checkpoint.get("train_seconds", 0.0))

    def on_fit_start(self) -> None:
        self._fit_start = time.time()

    def train_seconds(self) -> float:
        """Wall-clock seconds spent training this run so far, over every resumed session."""
        return self.seconds_before + time.time() - self._fit_start

    def on_train_epoch_start(self) -> None:
        # restored here, not on load: anything run between loading and training
        # (set-up, a sanity check) must not shift the random stream
        if self._pending_rng is not None:
            s = self._pending_rng
            torch.set_rng_state(s["torch"])
            kind, key, pos, has_gauss, cached = s["numpy"]
            np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, cached))
            random.setstate(s["python"])
            if "cuda" in s and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(s["cuda"])
            self._pending_rng = None


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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file and renames it into place.

    A run killed while saving leaves the previous checkpoint intact, never a
    truncated one.

    Every checkpoint is read with ``torch.load(weights_only=True)``: tensors and plain
    Python values only, never arbitrary objects. (Lightning leaves ``weights_only`` to
    torch's default, which is ``False`` before torch 2.6, and the package accepts
    ``torch>=2.1``.)
    """

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        atomic_write_bytes(path, buf.getvalue())

    def load_checkpoint(self, path, map_location=None, weights_only: Optional[bool] = None) -> Dict[str, Any]:
        if weights_only is False:
            raise ValueError("pyro-dssm checkpoints are loaded with weights_only=True only")
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate_split(model, guide, seqs: Sequence[np.ndarray], *, batch_size: int = 50, elbo_particles: int = 10,
                   iwae_particles: int = 0, seed: int = 0) -> Dict[str, Any]:
    """Test metrics of Table II on a list of ``(T, x_dim)`` sequences.

    The draws use their own stream seeded with ``seed``; the caller's random state
    (torch, numpy, Python) is the same afterwards as before.

    Returns:
        ``nelbo_per_step``: negative ELBO summed over sequences divided by the
        number of steps (``elbo_particles`` draws averaged); ``steps``; and, with
        ``iwae_particles = K > 0``, ``nll_per_step`` (the K-sample importance-weighted
        bound, an estimate of the NLL) plus the per-sequence lists.
    """
    from ..data.corpus import pad_sequences
    from ..infer import elbo_per_sequence, iwae_per_sequence

    from pyro.util import get_rng_state, set_rng_state

    outer_rng = get_rng_state()  # restored below: an evaluation between epochs must not shift training's stream
    pyro.set_rng_seed(seed)
    was_training = model.training, guide.training
    model.eval(), guide.eval()
    n = len(seqs)
    elbos, iwaes = [0.0] * n, [0.0] * n
    lengths = [int(np.shape(s)[0]) for s in seqs]
    try:
        # batches of similar lengths (little padding); each result goes back to its sequence's place
        for idx in (length_sorted_batches(lengths, batch_size) if n else []):
            x, mask = pad_sequences([seqs[i] for i in idx])
            mean, _ = elbo_per_sequence(model, guide, x, mask, num_particles=elbo_particles)
            for i, v in zip(idx, mean.tolist()):
                elbos[i] = v
            if iwae_particles:
                for i, v in zip(idx, iwae_per_sequence(model, guide, x, mask, num_particles=iwae_particles).tolist()):
                    iwaes[i] = v
    finally:
        model.train(was_training[0]), guide.train(was_training[1])
        set_rng_state(outer_rng)
    steps = int(sum(lengths))
    out: Dict[str, Any] = {"sequences": len(seqs), "steps": steps,
                           "nelbo_per_step": -float(np.sum(elbos)) / steps, "elbo_particles": elbo_particles,
                           "per_sequence": {"length": [int(n) for n in lengths], "elbo": elbos}}
    if iwae_particles:
        out["nll_per_step"] = -float(np.sum(iwaes)) / steps
        out["iwae_particles"] = iwae_particles
        out["per_sequence"]["iwae"] = iwaes
    return out


# ----------------------------------------------------------------------------------------------
# A whole run
# ----------------------------------------------------------------------------------------------

class RunCSVLogger(Logger):
    """``RUN_DIR/logs/metrics.csv``: one row per logging call, kept over every session of a run.

    Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when a fit starts in
    its folder, so each resume would lose the rows before it. This logger appends, and
    rewrites the file (atomically) only when a new column appears. Epochs that a resume
    repeats (killed between logging and checkpointing) appear twice;
    :func:`training_history` keeps the later row.
    """

    FILENAME = "metrics.csv"

    def __init__(self, run_dir):
        super().__init__()
        self._root = Path(run_dir)

    @property
    def name(self) -> str:
        return "logs"

    @property
    def version(self) -> str:
        return ""

    @property
    def root_dir(self) -> str:
        return str(self._root)

    @property
    def log_dir(self) -> str:
        return str(self._root / "logs")

    @property
    def path(self) -> Path:
        return self._root / "logs" / self.FILENAME

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass  # the run's config.yaml holds them

    @rank_zero_only
    def log_metrics(self, metrics: Dict[str, Any], step: Optional[int] = None) -> None:
        row = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}
        row["step"] = step
        append_csv_row(self.path, row)


def _read_csv(path: Path) -> Tuple[List[str], List[Dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        # a row torn by a kill has too few fields (None values) or too many (a None key)
        rows = [r for r in reader if None not in r and None not in r.values()]
        return list(reader.fieldnames or []), rows


def append_csv_row(path: Path, row: Dict[str, Any]) -> None:
    """Append ``row`` to the CSV file ``path``; a new column rewrites the file atomically with the wider header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, newline="") if path.is_file() else contextlib.nullcontext(io.StringIO()) as f:
        header = next(csv.reader(f), [])
    if not header or set(row) - set(header):
        header, rows = _read_csv(path) if header else ([], [])
        fields = sorted(set(header) | set(row))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows + [row])
        atomic_write_text(path, buf.getvalue())
        return
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=header).writerow(row)
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n":
            f.write(b"\n")  # end a row that a kill tore, so that the new row starts on its own line
        f.write(buf.getvalue().encode("utf-8"))


def _loggers(run_dir: Path):
    loggers: List[Logger] = [RunCSVLogger(run_dir)]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(str(run_dir), name="logs", version="tensorboard"))
    except ImportError:
        pass
    return loggers


class _DropLightningTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ... litlogger / litmodels" advertisements, which have no switch."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


@contextlib.contextmanager
def quiet_lightning(resume: bool = False):
    """Within the block, Lightning prints no advertisements and no ``LeafSpec`` deprecation warning.

    Only those: Lightning's other messages and every other warning still show. The
    ``FutureWarning`` comes from Lightning's own use of ``torch.utils._pytree.LeafSpec``
    (torch >= 2.9), not from this package, and a user can do nothing about it. With
    ``resume``, also the warning that the checkpoint folder is not empty: a resumed run's is.
    """
    from lightning_utilities.core import rank_zero

    tip_filter = _DropLightningTips()
    # rank_zero_info logs through the logger that lightning last installed in lightning_utilities
    loggers = {rank_zero.log, *(logging.getLogger(n) for n in ("lightning.pytorch.utilities.rank_zero",
                                                               "lightning.fabric.utilities.rank_zero"))}
    for lg in loggers:
        lg.addFilter(tip_filter)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                    category=FutureWarning)
            if resume:
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            yield
    finally:
        for lg in loggers:
            lg.removeFilter(tip_filter)


def _devices(value):
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def make_trainer(cfg: TrainConfig, run_dir: Path, extra_callbacks=()) -> L.Trainer:
    ckpt_dir = run_dir / "checkpoints"
    callbacks = [
        ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor=VAL_METRIC, mode="min", save_top_k=1,
                        enable_version_counter=False),
        # every epoch, improved or not: Lightning's save_last writes last.ckpt only when the monitored
        # checkpoint was saved, so a resume would restart from the last improvement
        ModelCheckpoint(dirpath=str(ckpt_dir), filename="last", monitor=None, save_top_k=1,
                        enable_version_counter=False),
        *extra_callbacks,
    ]
    if cfg.patience:
        callbacks.append(EarlyStopping(monitor=VAL_METRIC, mode="min", patience=cfg.patience))
    if cfg.ema_decay:
        # validation, checkpoints' state_dict and the final weights are the average; the checkpoint
        # keeps the raw weights too (current_model_state), so --resume continues both exactly
        callbacks.append(EMAWeightAveraging(decay=cfg.ema_decay, update_starting_at_step=cfg.ema_start))
    return L.Trainer(
        max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=_devices(cfg.devices), num_nodes=cfg.num_nodes,
        strategy=cfg.strategy, gradient_clip_val=cfg.clip_norm, gradient_clip_algorithm="norm",
        check_val_every_n_epoch=cfg.val_every, callbacks=callbacks, logger=_loggers(run_dir),
        plugins=[AtomicCheckpointIO()], use_distributed_sampler=False, num_sanity_val_steps=0,
        enable_progress_bar=cfg.progress, enable_model_summary=False, log_every_n_steps=1,
        deterministic=False, default_root_dir=str(run_dir))


def init_output_from_corpus(model, corpus: Corpus) -> None:
    """``model.init_from_data`` on every training sequence of ``corpus`` (one long sequence: statistics only)."""
    x = torch.cat([torch.as_tensor(np.asarray(s), dtype=torch.float32) for s in corpus.splits["train"]])
    model.init_from_data(x.unsqueeze(0))


def _initialise(task: DSSMTask, data: SequenceDataModule) -> None:
    """One forward pass so that every lazily created parameter exists before the optimiser is built."""
    x, mask = data.collate([data.datasets["train"][i] for i in range(min(2, len(data.datasets["train"])))])
    with torch.no_grad():
        TraceMeanField_ELBO().differentiable_loss(task.model, task.guide, x, mask)


def _prepare(cfg: TrainConfig, log=None):
    corpus = build_corpus(cfg, log)
    emission = resolve_emission(cfg, corpus)
    model, guide = build_model_and_guide(cfg, corpus.x_dim, emission, missing=corpus.has_missing)
    buckets = length_buckets(corpus.lengths("train"), cfg.num_buckets) if cfg.jit else None
    data = SequenceDataModule(corpus, cfg.batch_size, cfg.seed, buckets, cfg.num_workers, cfg.bucket_by_length)
    task = DSSMTask(model, guide, cfg)
    return corpus, emission, task, data


# How runs saved before a field existed were trained: a resume continues them that way.
_BEFORE_FIELD = {"bucket_by_length": False}


def load_run_config(run_dir) -> TrainConfig:
    """The config a run was trained with: ``RUN_DIR/config.yaml``, or the one its last checkpoint keeps.

    A run saved before a default changed gets the setting it was trained with: random
    batches (before length bucketing), and ``z_1`` from the transition (``initial: transition``)
    when its checkpoints have no learned initial distribution.
    """
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    last = run_dir / "checkpoints" / "last.ckpt"
    saved = check_checkpoint(last).get("pyro_dssm_config") if not path.is_file() and last.is_file() else None
    if path.is_file():
        cfg = TrainConfig.from_dict({**_BEFORE_FIELD, **load_config(path)}, where=str(path))
    elif isinstance(saved, dict):
        cfg = TrainConfig.from_dict({**_BEFORE_FIELD, **saved}, where=str(last))
    else:
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.yaml")
    return _with_initial_of_checkpoints(cfg, run_dir)


def _with_initial_of_checkpoints(cfg: TrainConfig, run_dir: Path) -> TrainConfig:
    """``initial: transition`` for a DSSM run whose checkpoints predate the learned ``p(z_1)``."""
    from ..models.registry import model_capabilities

    if not model_capabilities(cfg.model)["learned_initial"] or "initial" in cfg.model_options:
        return cfg
    for name in ("last.ckpt", "best.ckpt"):
        path = run_dir / "checkpoints" / name
        try:
            keys = check_checkpoint(path)["state_dict"].keys()
        except (FileNotFoundError, ValueError):  # missing or corrupt: the other one, or the caller, decides
            continue
        if not any(k.startswith("model.initial.") for k in keys):
            return cfg.replace(model_options={**cfg.model_options, "initial": "transition"})
        break
    return cfg


def _last_for_resume(run_dir) -> Path:
    """``RUN_DIR/checkpoints/last.ckpt``, which a resume starts from; a clear error when there is none."""
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise FileNotFoundError(f"cannot resume: {last} does not exist (start the run without --resume)")
    return last


def _epochs_done(ckpt: Dict[str, Any]) -> int:
    """Epochs a checkpoint has finished (``last.ckpt`` is written at the end of each epoch)."""
    return int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])


def _stopped_early(ckpt: Dict[str, Any], patience: int) -> bool:
    """Early stopping had ended the run and ``patience`` does not give it more epochs."""
    if not patience:
        return False
    for key, state in ckpt.get("callbacks", {}).items():
        if key.startswith("EarlyStopping") and isinstance(state, dict):
            return int(state.get("wait_count", 0)) >= patience
    return False


def _best_score(ckpt: Dict[str, Any]):
    """The best validation score that the best-checkpoint callback had recorded in ``ckpt``."""
    for state in ckpt.get("callbacks", {}).values():
        if isinstance(state, dict) and state.get("monitor") == VAL_METRIC:
            return state.get("best_model_score")
    return None


def train(cfg: TrainConfig, resume: bool = False, log=print, callbacks: Sequence[Any] = ()) -> Dict[str, Any]:
    """Run (or resume) a training run in ``cfg.run_dir``; returns the final metrics (also in ``metrics.json``).

    With ``resume=True`` the run continues as its ``config.yaml`` says: ``cfg`` may differ
    from it only in :data:`~pyro_dssm.config.RESUME_SAFE_FIELDS` (epochs, patience,
    hardware, progress bar), anything else raises ``ValueError``. :func:`resume_run`
    builds such a ``cfg`` from the run directory. A run with nothing left to train
    (``epochs`` reached, or stopped early) trains nothing and says so. ``callbacks``:
    extra Lightning callbacks (e.g. a per-epoch test evaluation of a benchmark).
    """
    run_dir = cfg.run_dir
    last = run_dir / "checkpoints" / "last.ckpt"
    rank_zero = int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0
    ckpt = None
    if resume:
        ckpt = check_checkpoint(_last_for_resume(run_dir))
        cfg = config_for_resume(load_run_config(run_dir), cfg.to_dict(), where=str(run_dir))
    elif last.is_file():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if rank_zero:
        for path in remove_stale_parts(run_dir):
            log(f"removed {path}, left by a killed write")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    corpus, emission, task, data = _prepare(cfg, log)
    # the resolved config: what was used, not what was left to choose (emission by the data, default out)
    cfg = cfg.replace(emission=emission, out=str(run_dir))
    task.cfg = cfg
    if cfg.init_output and not resume:  # a resume takes every weight from its checkpoint
        init_output_from_corpus(task.model, corpus)
    _initialise(task, data)
    done = _epochs_done(ckpt) if ckpt is not None else 0
    left = ckpt is None or (done < cfg.epochs and not _stopped_early(ckpt, cfg.patience))
    if rank_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        log(f"data: {corpus} (emission {emission})")
        spec = getattr(task.model.config, "spec", None)
        log(f"model: {cfg.model}{f' ({spec.name})' if spec else ''}, guide: {cfg.guide}, IAFs: {cfg.iaf}, "
            f"parameters: {sum(p.numel() for p in task.parameters())}")
    before = None
    before_path = run_dir / "untrained_test.json"
    if rank_zero and not resume:
        before = evaluate_split(task.model, task.guide, corpus.splits["test"], batch_size=cfg.batch_size,
                                elbo_particles=cfg.eval_particles, seed=cfg.seed)
        before.pop("per_sequence")
        atomic_write_text(before_path, json.dumps(before, indent=2))
        log(f"untrained: test negative ELBO per step {before['nelbo_per_step']:.4f}")
        L.seed_everything(cfg.seed, workers=True, verbose=False)  # training starts from the seed's own stream
    metrics_path = run_dir / "metrics.json"
    if not left:
        why = (f"early stopping ended it after {done} epochs (--patience {cfg.patience}; raise it to go on)"
               if done < cfg.epochs else f"it has trained {done} of --epochs {cfg.epochs} (raise --epochs to go on)")
        log(f"nothing left to train in {run_dir}: {why}")
        if metrics_path.is_file():
            metrics = json.loads(metrics_path.read_text())
            if metrics.get("epochs_run") == done:
                return metrics
        # killed after its last epoch but before the final evaluation: evaluate now
    with quiet_lightning(resume=resume):
        trainer = make_trainer(cfg, run_dir, callbacks)
        if left:
            trainer.fit(task, datamodule=data, ckpt_path=str(last) if resume else None)
    if not trainer.is_global_zero:
        return {}
    epochs_run = trainer.current_epoch if left else done
    seconds = task.train_seconds() if left else float(ckpt.get("train_seconds", 0.0))  # over every session
    best = run_dir / "checkpoints" / "best.ckpt"
    chosen = best if best.is_file() else last
    load_weights(task, chosen)
    after = evaluate_split(task.model, task.guide, corpus.splits["test"], batch_size=cfg.batch_size,
                           elbo_particles=cfg.eval_particles, seed=cfg.seed)
    after.pop("per_sequence")
    if before is None and before_path.is_file():
        before = json.loads(before_path.read_text())
    best_score = trainer.checkpoint_callback.best_model_score if left else _best_score(ckpt)
    metrics = {
        "model": cfg.model, "guide": cfg.guide, "iaf": cfg.iaf, "data": corpus.name, "emission": emission,
        "epochs_run": epochs_run, "train_seconds": seconds, "checkpoint": chosen.name,
        "best_val_nelbo_per_step": _float(best_score),
        "test_nelbo_per_step_untrained": before["nelbo_per_step"] if before else None,
        "test_nelbo_per_step": after["nelbo_per_step"], "test": after,
    }
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2))
    untrained = metrics["test_nelbo_per_step_untrained"]
    if left:
        n = epochs_run - done
        session = f"{n} epoch{'s' * (n != 1)}"
        if done:
            span = f"epoch {epochs_run}" if n == 1 else f"epochs {done + 1}-{epochs_run}"
            session += f" ({span} of the run)"
        log(f"trained {session} in {task.train_seconds() - task.seconds_before:.0f} s"
            + (f" ({seconds:.0f} s over all sessions)" if done else ""))
    log(f"test negative ELBO per step: {'' if untrained is None else f'{untrained:.4f} (untrained) -> '}"
        f"{after['nelbo_per_step']:.4f} ({chosen.name})")
    return metrics


def resume_run(run_dir, log=print, **changes) -> Dict[str, Any]:
    """Continue the run in ``run_dir`` as its ``config.yaml`` says, e.g. ``resume_run("runs/x", epochs=60)``.

    ``changes`` may touch only :data:`~pyro_dssm.config.RESUME_SAFE_FIELDS`; anything else raises
    ``ValueError`` naming the field and both values.
    """
    _last_for_resume(run_dir)
    saved = load_run_config(run_dir)
    cfg = config_for_resume(saved, {**changes, "out": str(run_dir)}, where=str(run_dir))
    return train(cfg, resume=True, log=log)


def _float(v):
    return None if v is None else float(v)


# ----------------------------------------------------------------------------------------------
# Reading runs back
# ----------------------------------------------------------------------------------------------

def check_checkpoint(path: Path) -> Dict[str, Any]:
    """Load a checkpoint file, turning a corrupt or foreign file into a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise ValueError(f"checkpoint {path} is corrupt or not a checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"checkpoint {path} has no state_dict: not a pyro-dssm training checkpoint")
    return ckpt


def load_weights(task: DSSMTask, path: Path) -> None:
    ckpt = check_checkpoint(path)
    try:
        task.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path} does not fit the run's model ({e})") from e


def load_run(run_dir, checkpoint: str = "best", jit: bool = False):
    """Rebuild a run's corpus, model and guide from ``RUN_DIR/config.yaml`` and a checkpoint.

    Args:
        run_dir: a directory written by :func:`train`.
        checkpoint: ``best``, ``last`` or a path to a ``.ckpt`` file.

    Returns:
        ``(cfg, corpus, model, guide)`` with the model and guide in eval mode.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.yaml")
    cfg = load_run_config(run_dir).replace(jit=jit, out=str(run_dir))
    path = Path(checkpoint) if checkpoint not in ("best", "last") else run_dir / "checkpoints" / f"{checkpoint}.ckpt"
    if checkpoint == "best" and not path.is_file():
        path = run_dir / "checkpoints" / "last.ckpt"
    corpus, _, task, _ = _prepare(cfg)
    load_weights(task, path)
    task.model.eval(), task.guide.eval()
    return cfg, corpus, task.model, task.guide


def training_history(run_dir) -> Dict[str, List[float]]:
    """Per-epoch curves of a run, read from ``RUN_DIR/logs/metrics.csv``.

    Returns:
        ``{"epoch": [...], "train": [...], "val": [...], "val_recon": [...], "val_kl": [...]}``:
        the training loss (negative ELBO per step, KL-annealed), the validation negative
        ELBO per step of each epoch and its reconstruction and KL terms, ``nan`` where an epoch has none (``--val-every``),
        over every session of a resumed run. Epochs that a resume repeated keep their
        last value.
    """
    import csv

    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a run directory or has not trained yet")
    rows: Dict[int, Dict[str, float]] = {}
    for row in _read_csv(path)[1]:  # every session's rows; a row torn by a kill is skipped
        if not row.get("epoch"):
            continue
        epoch = rows.setdefault(int(row["epoch"]), {})
        for key, col in _HISTORY_COLUMNS.items():
            if row.get(col):
                epoch[key] = float(row[col])
    epochs = sorted(rows)
    return {"epoch": epochs, **{k: [rows[e].get(k, float("nan")) for e in epochs] for k in _HISTORY_COLUMNS}}


_HISTORY_COLUMNS = {"train": "train/loss", "val": VAL_METRIC, "val_recon": VAL_RECON, "val_kl": VAL_KL}


def open_run(run_dir, checkpoint: str = "best"):
    """:func:`load_run` for command-line scripts: on a bad run directory or checkpoint it prints
    ``error: ...`` to stderr and returns ``None`` (the script then exits with status 2).

    ``run_dir`` may also name a pretrained model (:func:`pyro_dssm.list_pretrained`) when no
    such directory exists; ``checkpoint`` does not apply to it.
    """
    import sys

    from ..pretrained import list_pretrained, load_pretrained_run

    try:
        if not Path(run_dir).exists() and str(run_dir) in list_pretrained():
            return load_pretrained_run(str(run_dir))
        return load_run(run_dir, checkpoint)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def run_output_dir(run_dir, out=None) -> Path:
    """Where a script writes its outputs: ``out``, else the run directory, else (a pretrained
    model's name) ``runs/pretrained-NAME``."""
    if out is not None:
        return Path(out)
    return Path(run_dir) if Path(run_dir).is_dir() else Path("runs") / f"pretrained-{run_dir}"


def evaluation_corpus(cfg: TrainConfig, data: str, model) -> Corpus:
    """Another corpus for a trained model: ``data`` (any ``--data``: a corpus name, a folder, a file)
    read with the run's own pre-processing (frames per quarter, STFT, normalisation).

    Raises:
        ValueError: its dimension differs from the model's, or it is not binary for a Bernoulli model.
        FileNotFoundError: it names no corpus, file or folder.
    """
    corpus = build_corpus(cfg.replace(data=str(data), max_sequences=None, max_files=None))
    x_dim = model.config.x_dim
    if corpus.x_dim != x_dim:
        raise ValueError(f"data {str(data)!r} has {corpus.x_dim} features per step, but the model was trained on "
                         f"{x_dim} ({cfg.data}); evaluate it on data of the same dimension (for music: 88 piano keys, "
                         f"for speech: the run's STFT with {cfg.stft_n_fft // 2 + 1} bins)")
    check_support(model.config.emission, corpus, what=f"data {str(data)!r}")
    return corpus


__all__ += ["open_run", "run_output_dir", "evaluation_corpus", "data_label", "training_history", "check_checkpoint", "load_weights", "make_trainer", "resolve_emission",
            "load_run_config", "resume_run", "RunCSVLogger", "append_csv_row", "quiet_lightning"]
