"""The LightningModule of a run: the (annealed) ELBO of a model/guide pair as a training step.

:class:`DSSMTask` holds the model and the guide, computes eq. (9) of the taxonomy paper (the
annealed negative ELBO per valid step) with Pyro's mean-field estimator, validates the
unannealed ELBO and its two terms, and keeps what an exact resume needs in its checkpoints
(random states, the learning-rate schedule, the training seconds so far).
"""

from __future__ import annotations

import random
import time
import warnings
from typing import Any, Dict, List, Optional

import lightning as L
import numpy as np
import pyro
import torch
from pyro.infer import JitTraceMeanField_ELBO

from ..config import TrainConfig
from ..infer import LeanTraceMeanField_ELBO


VAL_METRIC = "val/nelbo_per_step"
VAL_RECON = "val/recon_nll_per_step"  # -E_q log p(x | z) per step
VAL_KL = "val/kl_per_step"  # E_q [log q(z | x) - log p(z)] per step (one-sample estimate)


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
