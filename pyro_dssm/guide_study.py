"""Guides against a known teacher: how tight is each guide's bound when only the guide is learnt?

The taxonomy paper's claims about inference (Sec. II-B, II-C and App. D: full alignment gives
a tighter bound than partial alignment; IAFs help) are measured in its tables on jointly
trained models, where optimisation noise in the *model* mixes with the guide's quality. Here
the model is fixed:

1. a **teacher** (a trained model, frozen) draws synthetic sequences from its prior
   (:func:`teacher_corpus`), so that the data's true distribution is the teacher's own;
2. every guide (``partial``, ``full``, ``A``, ``B``, ``C``, each with and without IAFs) is fitted
   alone to that data, the teacher's weights fixed, until its validation ELBO stops improving
   (:func:`fit_guide_to_teacher`);
3. on the test sequences each guide gives ``K`` importance log-weights per sequence
   ``w_k = log p(x, z_k) - log q(z_k | x)`` (``z_k ~ q``); their mean is the ELBO, their
   log-mean-exp the IWAE bound. ``log p(x)`` is estimated by the IWAE bound, at the largest
   ``K``, of the guide whose bound is the largest in total (a lower bound in expectation,
   so the gaps are if anything understated); the table reports ``log p(x) - ELBO`` per step for each guide (:func:`guide_study`), and the
   IWAE bound of the best guide at growing ``K`` to show that the estimate has converged.

``scripts/guide_study.py TEACHER`` runs it on a run directory or a pretrained model. With
``cache_dir``, each guide's fit (its record, importance log-weights and weights) is kept there
when done, so that an interrupted study resumes where it stopped (:class:`FitCache`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import pyro
import torch

__all__ = ["teacher_corpus", "fit_guide_to_teacher", "importance_log_weights", "guide_study", "guide_study_table",
           "teacher_kl_per_step", "FitCache"]


def teacher_corpus(model, *, sizes: Dict[str, int], length: int, seed: int = 0, name: str = "teacher"):
    """Synthetic sequences from ``model``'s prior: ``sizes[split]`` sequences of ``length`` steps each.

    Returns:
        a :class:`~pyro_dssm.data.Corpus` with ``train``, ``valid`` and ``test`` splits of ``(length, x_dim)`` arrays.
    """
    from .data import Corpus

    if length < 1 or set(sizes) != {"train", "valid", "test"} or min(sizes.values()) < 1:
        raise ValueError(f"teacher_corpus needs length >= 1 and sizes >= 1 for train, valid and test; got "
                         f"length={length}, sizes={sizes}")
    pyro.set_rng_seed(seed)
    was = model.training
    model.eval()
    splits = {}
    try:
        with torch.no_grad():
            for split in ("train", "valid", "test"):
                x, _ = model.generate(length, batch_size=sizes[split])
                splits[split] = list(x.cpu().numpy().astype(np.float32))
    finally:
        model.train(was)
    return Corpus(splits, name=name, source=f"prior samples of a frozen teacher (seed {seed})")


def importance_log_weights(model, guide, seqs: Sequence[np.ndarray], num_particles: int, *, chunk: int = 100,
                           batch_size: int = 50) -> torch.Tensor:
    """``(K, N)`` log-weights ``log p(x, z_k) - log q(z_k | x)`` of each sequence, drawn ``chunk`` particles at a time."""
    from .data import pad_sequences
    from .data.batching import length_sorted_batches
    from .infer import log_weights

    out = torch.empty(num_particles, len(seqs), dtype=torch.float64)
    with torch.no_grad():
        for idx in length_sorted_batches([len(s) for s in seqs], batch_size):
            x, mask = pad_sequences([seqs[i] for i in idx])
            parts = [log_weights(model, guide, x, mask, num_particles=min(chunk, num_particles - k0))
                     for k0 in range(0, num_particles, chunk)]
            out[:, idx] = torch.cat(parts, 0).double()
    return out


def _guide_params(model, guide) -> List[torch.nn.Parameter]:
    own = {id(p) for p in model.parameters()}
    return [p for p in guide.parameters() if id(p) not in own]


def fit_guide_to_teacher(model, guide, corpus, *, lr: float = 3e-3, batch_size: int = 20, clip_norm: float = 10.0,
                         epochs: int = 200, patience: int = 10, val_particles: int = 10, seed: int = 0,
                         log: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Fit ``guide`` alone (``model`` frozen) to ``corpus.splits['train']`` by Adam on the ELBO, keeping the
    weights of the epoch with the best validation ELBO; stop after ``patience`` epochs without one (0: never).

    Returns:
        ``{"epochs_run", "best_epoch", "val_nelbo_per_step", "train_seconds"}``.
    """
    from .data import pad_sequences
    from .data.batching import LengthBucketBatchSampler
    from .infer import LeanTraceMeanField_ELBO
    from .training.engine import evaluate_split

    train, valid = corpus.splits["train"], corpus.splits["valid"]
    model.requires_grad_(False)
    model.eval()
    pyro.set_rng_seed(seed)
    x0, m0 = pad_sequences(train[:1])
    guide(x0, m0)  # every lazily built parameter exists before the optimiser sees them
    params = _guide_params(model, guide)
    opt = torch.optim.Adam(params, lr=lr)
    elbo = LeanTraceMeanField_ELBO()
    sampler = LengthBucketBatchSampler([len(s) for s in train], batch_size, seed=seed)
    best, best_state, best_epoch, stale, epoch, t0 = math.inf, None, 0, 0, 0, time.time()
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch - 1)
        guide.train()
        for idx in sampler:
            x, m = pad_sequences([train[i] for i in idx])
            loss = elbo.differentiable_loss(model, guide, x, m) / m.sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
            opt.step()
        val = evaluate_split(model, guide, valid, elbo_particles=val_particles, seed=seed)["nelbo_per_step"]
        if log:
            log(f"  epoch {epoch}: validation negative ELBO per step {val:.4f}")
        if val < best:
            best, best_epoch, stale = val, epoch, 0
            best_state = {k: v.detach().clone() for k, v in guide.state_dict().items()}
        else:
            stale += 1
            if patience and stale >= patience:
                break
    guide.load_state_dict(best_state)
    guide.eval()
    return {"epochs_run": epoch, "best_epoch": best_epoch, "val_nelbo_per_step": best,
            "train_seconds": time.time() - t0}


def _fingerprint(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a.detach().cpu().numpy() if torch.is_tensor(a) else a)
        h.update(str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


class FitCache:
    """Each finished guide fit of a study, kept in a folder so that an interrupted study resumes.

    ``key`` says what the fits depend on (teacher weights, data, widths, fit options, K, seed);
    it is written to ``FOLDER/key.json`` with the first fit, and a folder holding fits made
    with another key is refused rather than mixed in. One file per fit,
    ``FOLDER/GUIDE-iafN.pt``: the fit's record, its ``(K, N)`` importance log-weights and the
    guide's weights, each written atomically.
    """

    def __init__(self, folder, key: Dict[str, Any]):
        self.folder, self.key = Path(folder), json.loads(json.dumps(key))
        path = self.folder / "key.json"
        if path.is_file():
            old = json.loads(path.read_text())
            if old != self.key:
                changed = sorted(k for k in set(old) | set(self.key) if old.get(k) != self.key.get(k))
                raise ValueError(f"the guide fits kept in {self.folder} were made with other settings ({changed}); "
                                 "remove that folder or write the study elsewhere")

    def _path(self, name: str, iafs: int) -> Path:
        return self.folder / f"{name}-iaf{iafs}.pt"

    def load(self, name: str, iafs: int, guide, model, x: torch.Tensor, mask: torch.Tensor):
        """``(fit, log_weights)`` of a kept fit, its weights loaded into ``guide``; ``None`` when not kept."""
        path = self._path(name, iafs)
        if not path.is_file():
            return None
        blob = torch.load(path, map_location="cpu", weights_only=True)
        with torch.no_grad():
            guide(x, mask)  # every lazily built parameter exists before the weights go in
        if hasattr(model, "clear_shared_states"):  # states the guide left for a model call that will not come
            model.clear_shared_states()
        guide.load_state_dict(blob["guide"])
        guide.eval()
        return blob["fit"], blob["log_weights"]

    def save(self, name: str, iafs: int, guide, fit: Dict[str, Any], log_weights: torch.Tensor) -> None:
        from .utils import atomic_write_bytes, atomic_write_text

        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / "key.json", json.dumps(self.key, indent=2))
        buf = io.BytesIO()
        torch.save({"fit": fit, "log_weights": log_weights, "guide": guide.state_dict()}, buf)
        atomic_write_bytes(self._path(name, iafs), buf.getvalue())


def guide_study(model, corpus, *, guides: Sequence[str] = ("partial", "full", "A", "B", "C"),
                iafs: Sequence[int] = (0, 3), ks: Sequence[int] = (10, 100, 1000), rnn_dim: int = 128,
                hidden_dim: int = 128, iaf_dim: int = 20, teacher_guide=None, seed: int = 0,
                logp_ks: Sequence[int] = (), cache_dir=None, log: Callable[[str], None] = print,
                **fit_options) -> Dict[str, Any]:
    """Fit every (guide, IAF count) to the teacher's data and score its bound against the estimated ``log p(x)``.

    Args:
        model: the frozen teacher.
        corpus: its synthetic sequences (:func:`teacher_corpus`).
        ks: the particle counts at which every guide's IWAE bounds are reported; at the largest, the guide
            whose IWAE bound is the tightest is chosen to estimate ``log p(x)``.
        logp_ks: larger particle counts for that guide alone (e.g. ``(10000,)``): ``log p(x)`` is then its
            IWAE bound at the largest of them, and ``log_p_by_k`` shows whether the estimate has converged
            in K (it costs one guide's draws, not every guide's).
        teacher_guide: optionally the teacher's own (jointly trained) guide, scored as one more row.
        cache_dir: keep each finished fit there and reuse the kept ones (:class:`FitCache`): an interrupted
            study resumes; a folder of fits made with other settings is refused.
        **fit_options: :func:`fit_guide_to_teacher`'s options.

    Returns:
        ``{"steps", "ks", "log_p_per_step", "log_p_k", "log_p_by_k", "rows": [...]}``; each row: ``guide``, ``iaf``,
        ``nelbo_per_step``, ``gap_per_step`` (``log p(x) - ELBO``), ``iwae_per_step`` (per K), the fit's record.
    """
    from .guides import create_guide, inapplicable_guides

    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive particle counts, got {ks}")
    test = corpus.splits["test"]
    steps = sum(len(s) for s in test)
    K = ks[-1]
    logp_ks = sorted({int(k) for k in logp_ks})
    if logp_ks and logp_ks[0] <= K:
        raise ValueError(f"logp_ks must exceed the largest of ks ({K}), got {logp_ks}")
    bad = inapplicable_guides(model, guides)
    if bad:  # before any fit, not after an hour of them
        raise ValueError("guide(s) that do not apply to this teacher: " + "; ".join(f"{k}: {v}" for k, v in bad.items()))
    entries = [(g, n) for n in iafs for g in guides]
    cache = None
    if cache_dir is not None:
        from .data import pad_sequences

        key = {"teacher": _fingerprint(model.state_dict().values()),
               "data": _fingerprint([a for split in ("train", "valid", "test") for a in corpus.splits[split]]),
               "K": K, "rnn_dim": rnn_dim, "hidden_dim": hidden_dim, "iaf_dim": iaf_dim, "seed": seed,
               "fit_options": {k: fit_options[k] for k in sorted(fit_options) if k != "log"}}
        cache = FitCache(cache_dir, key)
        x0, m0 = pad_sequences(test[:1])
    rows, weights = [], []
    for i, (name, n) in enumerate(entries):
        torch.manual_seed(seed + i)
        guide = create_guide(name, model, rnn_dim=rnn_dim, hidden_dim=hidden_dim, num_iafs=n, iaf_dim=iaf_dim)
        label = f"[guide] {name}" + (f" + {n} IAF" if n else "")
        kept = cache.load(name, n, guide, model, x0, m0) if cache is not None else None
        if kept is not None:
            fit, lw = kept
            log(f"{label}: kept from an earlier run ({cache.folder})")
        else:
            log(label)
            fit = fit_guide_to_teacher(model, guide, corpus, seed=seed, **fit_options)
            pyro.set_rng_seed(seed + 1000)
            lw = importance_log_weights(model, guide, test, K)
            if cache is not None:
                cache.save(name, n, guide, fit, lw)
        weights.append(lw)
        rows.append({"guide": name, "iaf": n, "fit": fit, "_lw": lw, "_guide": guide})
    if teacher_guide is not None:
        pyro.set_rng_seed(seed + 1000)
        lw = importance_log_weights(model, teacher_guide, test, K)
        weights.append(lw)
        rows.append({"guide": "teacher's own", "iaf": None, "fit": None, "_lw": lw, "_guide": teacher_guide})
    iwae = torch.stack([torch.logsumexp(lw, 0) - math.log(K) for lw in weights])  # (G, N)
    best = int(iwae.sum(-1).argmax())
    lw_best = weights[best]
    if logp_ks:  # more draws of the chosen guide only: does the estimate still move with K?
        log(f"[log p(x)] {logp_ks[-1]} importance draws of the tightest guide")
        pyro.set_rng_seed(seed + 2000)
        lw_best = torch.cat([lw_best, importance_log_weights(model, rows[best]["_guide"], test, logp_ks[-1] - K)], 0)
    K_logp = lw_best.shape[0]
    # the tightest guide's bound: a lower bound in expectation (a per-sequence max would not be)
    log_p = torch.logsumexp(lw_best, 0) - math.log(K_logp)
    by_k = {str(k): float((torch.logsumexp(lw_best[:k], 0) - math.log(k)).sum() / steps) for k in ks + logp_ks}
    for row in rows:
        lw = row.pop("_lw")
        row.pop("_guide")
        elbo = lw.mean(0)
        row.update(nelbo_per_step=float(-elbo.sum() / steps), gap_per_step=float((log_p - elbo).sum() / steps),
                   iwae_per_step={str(k): float((torch.logsumexp(lw[:k], 0) - math.log(k)).sum() / steps)
                                  for k in ks})
    out = {"steps": steps, "sequences": len(test), "ks": ks, "log_p_per_step": float(log_p.sum() / steps),
           "log_p_k": K_logp, "log_p_by_k": by_k, "best_guide": rows[best]["guide"], "best_iaf": rows[best]["iaf"],
           "rows": rows}
    if teacher_guide is not None:
        out["teacher_kl_per_step"] = teacher_kl_per_step(model, teacher_guide, test, seed=seed)
    return out


def teacher_kl_per_step(model, guide, seqs: Sequence[np.ndarray], *, particles: int = 10, seed: int = 0) -> float:
    """``E_q [log q(z | x) - log p(z)]`` per step (nats) under ``guide``: how much the posterior carries."""
    from .data import pad_sequences
    from .data.batching import length_sorted_batches
    from .infer import log_weight_parts

    pyro.set_rng_seed(seed)
    total, steps = 0.0, 0
    with torch.no_grad():
        for idx in length_sorted_batches([len(s) for s in seqs], 50):
            x, mask = pad_sequences([seqs[i] for i in idx])
            _, latent = log_weight_parts(model, guide, x, mask, particles)
            total -= float(latent.mean(0).sum())
            steps += int(mask.sum())
    return total / steps


def guide_study_table(result: Dict[str, Any]) -> str:
    """Markdown: per guide, ``-ELBO``, ``log p(x) - ELBO`` and the IWAE bounds, all per step."""
    ks = result["ks"]
    lines = ["| guide | IAF | −ELBO/step | log p(x) − ELBO per step | " + " | ".join(f"−IWAE K={k}" for k in ks)
             + " | epochs (best) |", "|---|---|---|---|" + "---|" * len(ks) + "---|"]
    for r in sorted(result["rows"], key=lambda r: r["gap_per_step"]):
        fit = r["fit"]
        epochs = f"{fit['epochs_run']} ({fit['best_epoch']})" if fit else "joint"
        lines.append(f"| {r['guide']} | {'–' if r['iaf'] is None else r['iaf']} | {r['nelbo_per_step']:.4f} | "
                     f"{r['gap_per_step']:.4f} | " + " | ".join(f"{-r['iwae_per_step'][str(k)]:.4f}" for k in ks)
                     + f" | {epochs} |")
    conv = ", ".join(f"K={k}: {-v:.4f}" for k, v in result["log_p_by_k"].items())
    lines.append("")
    if result.get("teacher_kl_per_step") is not None:
        lines.append(f"The teacher's posterior (its own guide) carries {result['teacher_kl_per_step']:.2f} nats per step "
                     "(KL to the prior).")
    best = result["best_guide"] + (f" + {result['best_iaf']} IAF" if result["best_iaf"] else "")
    lines.append(f"−log p(x) per step ≈ {-result['log_p_per_step']:.4f} (the tightest guide's IWAE bound, {best}, at "
                 f"K={result.get('log_p_k', ks[-1])}; {result['sequences']} sequences, {result['steps']} steps). "
                 f"Best guide's −IWAE per step by K: {conv}.")
    return "\n".join(lines)
