"""Input checks shared by models and guides; every error names the problem."""

from __future__ import annotations

import warnings
import weakref
from typing import Optional, Tuple

import torch

from .nn.emissions import get_emission

__all__ = ["check_observations", "check_annealing", "lengths_from_mask", "BinaryDataWarning"]


class BinaryDataWarning(UserWarning):
    """Only 0/1 values met a density emission (Gaussian, Itakura-Saito, Gaussian-on-power).

    A density's log-likelihood of discrete 0/1 values is not a probability: the
    reported NLL can fall below the data's entropy, even below zero, and it cannot be
    compared with a Bernoulli model's. Use ``emission="bernoulli"`` for binary data.
    """


def lengths_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Lengths ``(B,)`` of a boolean prefix mask ``(B, T)``."""
    return mask.sum(-1)


def check_observations(
    x, mask: Optional[torch.Tensor], x_dim: int, emission: str, allow_missing: bool = False
) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
    """Validate a batch of sequences and its mask.

    Args:
        x: observations ``(B, T, x_dim)``; padding after each sequence's end
            must be finite (zeros are customary).
        mask: optional boolean ``(B, T)``, ``True`` on valid steps; each row must
            be a prefix mask (valid steps first) with at least one valid step.
        x_dim: the model's observation dimension.
        emission: the emission family, whose support ``x`` must lie in.
        allow_missing: NaN entries mark unobserved values (models that handle
            irregular sampling); each sequence needs one observed entry.

    Returns:
        ``(x, mask, lengths)`` with ``x`` a floating tensor, ``mask`` unchanged
        (``None`` stays ``None``) and ``lengths`` ``(B,)``.

    Raises:
        TypeError, ValueError: with a message naming the problem.

    The last batch that passed is remembered (by identity and version counter, so an
    in-place change is seen): the guide and the model of one ELBO check a batch once.
    """
    key = (x_dim, emission, allow_missing)
    hit = _last_checked(x, mask, key)
    if hit is not None:
        return x, mask, hit
    x, mask, lengths = _check_observations(x, mask, x_dim, emission, allow_missing)
    _remember(x, mask, key, lengths)
    return x, mask, lengths


_LAST = None  # (weakref to x, x version, weakref to mask or None, mask version, key, lengths)


def _last_checked(x, mask, key) -> Optional[torch.Tensor]:
    last = _LAST
    if last is None or not isinstance(x, torch.Tensor):
        return None
    xr, xv, mr, mv, k, lengths = last
    if xr() is not x or xv != x._version or k != key:
        return None
    if mask is None:
        return lengths if mr is None else None
    return lengths if (mr is not None and mr() is mask and mv == mask._version) else None


def _remember(x, mask, key, lengths) -> None:
    global _LAST
    _LAST = (weakref.ref(x), x._version, None if mask is None else weakref.ref(mask),
             None if mask is None else mask._version, key, lengths)


def _check_observations(x, mask, x_dim: int, emission: str, allow_missing: bool):
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x, dtype=torch.get_default_dtype())
        except Exception as e:  # noqa: BLE001 - re-raised with context
            raise TypeError(f"x must be a tensor of shape (B, T, x_dim), got {type(x).__name__}") from e
    if not torch.is_floating_point(x):
        x = x.to(torch.get_default_dtype())
    if x.dim() != 3:
        raise ValueError(f"x must have shape (B, T, x_dim) = (B, T, {x_dim}), got shape {tuple(x.shape)}")
    B, T, D = x.shape
    if D != x_dim:
        raise ValueError(f"x has x_dim={D} in its last dimension but the model expects x_dim={x_dim} "
                         f"(x shape {tuple(x.shape)})")
    if B == 0:
        raise ValueError(f"x is an empty batch (B=0), shape {tuple(x.shape)}")
    if T == 0:
        raise ValueError(f"x has zero-length sequences (T=0), shape {tuple(x.shape)}")
    if allow_missing:
        if torch.isinf(x).any():
            bad = torch.isinf(x).nonzero()[0].tolist()
            raise ValueError(f"x contains inf (first at batch {bad[0]}, step {bad[1]}, dim {bad[2]}); "
                             "only NaN may mark an unobserved entry")
    elif not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).nonzero()[0].tolist()
        raise ValueError(f"x contains NaN or inf (first at batch {bad[0]}, step {bad[1]}, dim {bad[2]}); "
                         "pad with finite values and use `mask` for missing steps")
    if mask is None:
        lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
    else:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a boolean tensor of shape (B, T), got {type(mask).__name__}")
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must have dtype torch.bool, got {mask.dtype}")
        if tuple(mask.shape) != (B, T):
            raise ValueError(f"mask must have shape (B, T) = {(B, T)} to match x, got {tuple(mask.shape)}")
        lengths = lengths_from_mask(mask)
        if (lengths == 0).any():
            i = int((lengths == 0).nonzero()[0])
            raise ValueError(f"sequence {i} of the batch has zero length (its mask row is all False)")
        prefix = torch.arange(T, device=mask.device) < lengths.unsqueeze(-1)
        if not torch.equal(prefix, mask):
            i = int((prefix != mask).any(-1).nonzero()[0])
            raise ValueError(f"mask row {i} is not a prefix mask: valid steps must come first, "
                             "then padding (sequences are right-padded)")
    if allow_missing:
        seen = ~torch.isnan(x) if mask is None else ~torch.isnan(x) & mask.unsqueeze(-1)
        if not seen.flatten(1).any(-1).all():
            i = int((~seen.flatten(1).any(-1)).nonzero()[0])
            raise ValueError(f"sequence {i} of the batch has no observed entry (all NaN)")
    # support of the emission on the valid steps (no copy of the valid part)
    family = get_emission(emission)
    nonbinary = (x != 0) & (x != 1)
    bad = family.bad_values(x)
    if mask is not None:
        nonbinary &= mask.unsqueeze(-1)
        if bad is not None:
            bad &= mask.unsqueeze(-1)
    if bad is not None and allow_missing:
        bad &= ~torch.isnan(x)
    if bad is not None and bad.any():
        raise ValueError(f"x must be {family.support} under {family.described}; found values such as "
                         f"{x[bad][:3].tolist()}")
    if family.density and not allow_missing and not nonbinary.any():
        warnings.warn(BinaryDataWarning(
            f"x holds only 0/1 values, but the emission is {emission!r}, a density: its log-likelihood of "
            "0/1 data is not a probability, and the NLL can fall below the data's entropy. For binary data "
            "use emission='bernoulli' (create_model(..., emission='bernoulli'))"), stacklevel=4)
    return x, mask, lengths


def check_annealing(factor: float) -> None:
    """KL annealing scales the latent sites by ``factor``; Pyro needs it positive."""
    if isinstance(factor, torch.Tensor):
        return  # checked by pyro.poutine.scale
    if not factor > 0:
        raise ValueError(f"annealing_factor must be > 0 (a scale on the latent sites), got {factor!r}")
