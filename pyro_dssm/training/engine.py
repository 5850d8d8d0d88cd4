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

The parts live in their own modules (this one re-exports them): :mod:`.task` (the
LightningModule), :mod:`.datamodule` (batches), :mod:`.checkpoints` (atomic checkpoint files),
:mod:`.logs` (``metrics.csv``) and :mod:`.runs` (reading runs back); this module builds the
corpus, the model and the guide, and runs, resumes and evaluates.

``resume=True`` continues from ``checkpoints/last.ckpt`` exactly where the run
stopped: the optimiser, the epoch, the early-stopping state and the random
number generators are restored, and the data order is a function of the
seed and the epoch, so an interrupted-and-resumed run ends with the same
parameters as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import lightning as L
import numpy as np
import pyro
import torch
from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint
from pyro.infer import TraceMeanField_ELBO

from ..config import TrainConfig, config_for_resume, data_label, save_config
from ..data.batching import length_sorted_batches
from ..data.corpus import Corpus, length_buckets
from ..nn.emissions import default_emission, get_emission
from ..utils import atomic_write_text, remove_stale_parts
from .checkpoints import (AtomicCheckpointIO, _best_score, _epochs_done, _last_for_resume, _stopped_early,
                          check_checkpoint, load_weights)
from .datamodule import SequenceDataModule
from .logs import RunCSVLogger, _loggers, append_csv_row, quiet_lightning, training_history
from .runs import RunDir, evaluation_corpus, load_run, load_run_config, open_run, run_output_dir
from .task import VAL_KL, VAL_METRIC, VAL_RECON, CachedJitTraceMeanField_ELBO, DSSMTask


__all__ = ["DSSMTask", "SequenceDataModule", "AtomicCheckpointIO", "build_corpus", "build_model_and_guide",
           "evaluate_split", "train", "load_run", "open_run", "run_output_dir", "evaluation_corpus", "data_label",
           "training_history", "check_checkpoint", "load_weights", "make_trainer", "resolve_emission", "check_support",
           "load_run_config", "resume_run", "RunCSVLogger", "append_csv_row", "quiet_lightning", "VAL_METRIC",
           "VAL_RECON", "VAL_KL", "CachedJitTraceMeanField_ELBO"]



# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------

def build_corpus(cfg: TrainConfig, log=None, *, augment: bool = True) -> Corpus:
    """The corpus named by ``cfg.data`` (:func:`pyro_dssm.data.registry.load_corpus`: a registered corpus,
    or a file or folder of a registered format, with ``cfg.data_options``), cut to ``max_sequences``,
    then changed by the registered transforms (irregular sampling when ``observed_fraction < 1``; key
    transposition of the training split, left out with ``augment=False``)."""
    from ..data.registry import apply_transforms, load_corpus

    corpus = load_corpus(cfg.data, cfg.data_options, data_root=cfg.data_root, seed=cfg.seed, log=log)
    if cfg.max_sequences is not None:
        corpus = corpus.head(cfg.max_sequences)
    return apply_transforms(corpus, cfg.data_options, seed=cfg.seed, training=augment)


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

def _devices(value):
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


class DeferredEMA(EMAWeightAveraging):
    """Lightning's weight EMA (App. D.1), but the average stands in for the model only once it has begun.

    ``EMAWeightAveraging`` validates, checkpoints and ends training with its averaged copy
    from the first step, and before ``update_starting_at_step`` that copy holds the
    *initial* weights: a run shorter than ``ema_start`` steps (small data: one step per
    epoch) would validate, select its best checkpoint and ship the untrained model. Here,
    until the first update, validation and the end of training use the current weights and
    checkpoints store them as the state dict (the averaging state is kept, so ``--resume``
    continues exactly); from the first update on it is ``EMAWeightAveraging`` unchanged.
    """

    def _begun(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_validation_epoch_start(self, trainer, pl_module):
        self._swapped = self._begun()
        if self._swapped:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module):
        if getattr(self, "_swapped", False):
            super().on_validation_epoch_end(trainer, pl_module)
        self._swapped = False

    def on_train_end(self, trainer, pl_module):
        if self._begun():
            super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if not self._begun() and "current_model_state" in checkpoint:
            checkpoint["state_dict"] = checkpoint["current_model_state"]


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
        # validation, checkpoints' state_dict and the final weights are the average once it has begun
        # (before: the current weights); the checkpoint keeps the raw weights too (current_model_state),
        # so --resume continues both exactly
        callbacks.append(DeferredEMA(decay=cfg.ema_decay, update_starting_at_step=cfg.ema_start))
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
        save_config(cfg, run_dir / RunDir.CONFIG)
        log(f"data: {corpus} (emission {emission})")
        spec = getattr(task.model.config, "spec", None)
        log(f"model: {cfg.model}{f' ({spec.name})' if spec else ''}, guide: {cfg.guide}, IAFs: {cfg.iaf}, "
            f"parameters: {sum(p.numel() for p in task.parameters())}")
    before = None
    before_path = run_dir / RunDir.UNTRAINED
    if rank_zero and not resume:
        before = evaluate_split(task.model, task.guide, corpus.splits["test"], batch_size=cfg.batch_size,
                                elbo_particles=cfg.eval_particles, seed=cfg.seed)
        before.pop("per_sequence")
        atomic_write_text(before_path, json.dumps(before, indent=2))
        log(f"untrained: test negative ELBO per step {before['nelbo_per_step']:.4f}")
        L.seed_everything(cfg.seed, workers=True, verbose=False)  # training starts from the seed's own stream
    metrics_path = run_dir / RunDir.METRICS
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
