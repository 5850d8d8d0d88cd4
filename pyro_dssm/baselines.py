"""Reference rows for Table II: what a latent model must beat on binary piano rolls.

* :func:`independent_keys_nll`: 88 independent keys at their training frequencies, the
  plateau a model with a collapsed posterior and no autoregressive path sits on;
* :class:`GRULanguageModel`: a plain GRU language model ``p(x_t | x_{<t}) = Bernoulli(sigmoid(W h_t + b))``
  with ``h_t = GRU(x_{t-1}, h_{t-1})``, no latent variables: the model every latent model with an
  autoregressive ``x`` path contains. :func:`fit_gru_language_model` trains it with the latent
  models' recipe (the same length-bucketed batches, Adam, norm clipping, the output bias started
  at the same smoothed log-odds) and stops when the validation NLL stops improving.

Both NLLs are exact (no bound): nats per time step, summed over the keys.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["key_frequencies", "independent_keys_nll", "GRULanguageModel", "fit_gru_language_model"]


def _binary_rolls(seqs: Sequence[np.ndarray], what: str) -> np.ndarray:
    if len(seqs) == 0:
        raise ValueError(f"{what}: no sequences")
    x = np.concatenate([np.asarray(s, dtype=np.float64) for s in seqs])
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{what}: expected (T, D) piano rolls with T >= 1, got a stack of shape {x.shape}")
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError(f"{what}: piano rolls must be binary (0/1); these baselines are Bernoulli models")
    return x


def key_frequencies(train: Sequence[np.ndarray]) -> np.ndarray:
    """``(D,)`` smoothed frequencies of the training keys: the output initialisation's
    (:func:`pyro_dssm.nn.layers.smoothed_frequency`), so a key never seen is not at probability 0."""
    from .nn.layers import smoothed_frequency

    x = torch.as_tensor(_binary_rolls(train, "key_frequencies"))
    return smoothed_frequency(x.unsqueeze(0)).numpy()


def independent_keys_nll(train: Sequence[np.ndarray], test: Sequence[np.ndarray]) -> float:
    """Test NLL per step of independent Bernoulli keys at the (smoothed) training frequencies."""
    p = key_frequencies(train)
    y = _binary_rolls(test, "independent_keys_nll")
    if y.shape[1] != p.shape[0]:
        raise ValueError(f"independent_keys_nll: test rolls have {y.shape[1]} keys, training rolls {p.shape[0]}")
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).sum() / len(y))


class GRULanguageModel(nn.Module):
    """``p(x_{1:T}) = prod_t Bernoulli(x_t | sigmoid(W h_t + b))``, ``h_t = GRU(x_{t-1}, h_{t-1})``, ``x_0 = 0``.

    Args:
        x_dim: keys per frame ``D``.
        width: GRU state size ``H``.
        output_bias: optional ``(D,)`` starting log-odds of the output layer.
    """

    def __init__(self, x_dim: int, width: int, output_bias: Optional[torch.Tensor] = None):
        super().__init__()
        self.rnn = nn.GRU(x_dim, width, batch_first=True)
        self.out = nn.Linear(width, x_dim)
        if output_bias is not None:
            with torch.no_grad():
                self.out.bias.copy_(torch.as_tensor(output_bias, dtype=self.out.bias.dtype))

    def log_prob(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B,)`` log-likelihood of each padded sequence ``x: (B, T, D)`` over its valid steps ``mask: (B, T)``."""
        inp = torch.cat([x.new_zeros(x.shape[0], 1, x.shape[-1]), x[:, :-1]], 1)
        logits = self.out(self.rnn(inp)[0])
        ll = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return (ll * mask).sum(-1)

    def nll_per_step(self, seqs: Sequence[np.ndarray], batch_size: int = 64) -> float:
        """Exact NLL per step (nats) of ``(T_i, D)`` sequences, pooled over all their steps."""
        from .data import pad_sequences
        from .data.batching import length_sorted_batches

        total, steps = 0.0, 0
        with torch.no_grad():
            for idx in length_sorted_batches([len(s) for s in seqs], batch_size):
                x, m = pad_sequences([seqs[i] for i in idx])
                total -= float(self.log_prob(x, m.to(x.dtype)).sum())
                steps += int(m.sum())
        return total / steps


def fit_gru_language_model(corpus, *, width: int = 64, lr: float = 3e-3, batch_size: int = 20,
                           clip_norm: float = 10.0, epochs: int = 300, patience: int = 20, init_output: bool = True,
                           seed: int = 0, on_epoch: Optional[Callable[[int, GRULanguageModel], None]] = None
                           ) -> Dict[str, Any]:
    """Train a :class:`GRULanguageModel` on ``corpus.splits['train']`` until the validation NLL stops improving.

    Args:
        corpus: a :class:`pyro_dssm.data.Corpus` of binary rolls with ``train``, ``valid``, ``test`` splits.
        width, lr, batch_size, clip_norm: as the latent models' ``h_dim``, ``lr``, ``batch_size``, ``clip_norm``.
        epochs: at most this many passes; ``patience``: stop after this many epochs without a better
            validation NLL (0: never stop early). The best epoch's weights are kept.
        init_output: start the output bias at the smoothed log-odds of the training keys.
        on_epoch: called as ``on_epoch(epoch, net)`` after every epoch (e.g. to record a test curve).

    Returns:
        ``{"width", "seed", "epochs_run", "best_epoch", "val_nll_per_step", "test_nll_per_step",
        "train_seconds"}`` with the NLLs (exact, nats per step) of the best epoch's weights.
    """
    from .data import pad_sequences
    from .data.batching import LengthBucketBatchSampler

    train, valid, test = (corpus.splits[k] for k in ("train", "valid", "test"))
    freq = key_frequencies(train)
    torch.manual_seed(seed)
    bias = torch.as_tensor(np.log(freq) - np.log1p(-freq)) if init_output else None
    net = GRULanguageModel(freq.shape[0], width, bias)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sampler = LengthBucketBatchSampler([len(s) for s in train], batch_size, seed=seed)
    best, best_state, best_epoch, stale, t0, epoch = float("inf"), None, 0, 0, time.time(), 0
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch - 1)
        net.train()
        for idx in sampler:
            x, m = pad_sequences([train[i] for i in idx])
            m = m.to(x.dtype)
            loss = -net.log_prob(x, m).sum() / m.sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
            opt.step()
        net.eval()
        val = net.nll_per_step(valid)
        if on_epoch is not None:
            on_epoch(epoch, net)
        if val < best:
            best, best_epoch, stale = val, epoch, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if patience and stale >= patience:
                break
    net.load_state_dict(best_state)
    return {"width": width, "seed": seed, "epochs_run": epoch, "best_epoch": best_epoch, "val_nll_per_step": best,
            "test_nll_per_step": net.nll_per_step(test), "train_seconds": time.time() - t0}
