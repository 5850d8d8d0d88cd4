r"""Observation families ``p(x_t | d_x(\cdot))``: one registered object per family.

A family says everything the rest of the package needs about it, in one place:

* ``num_params``: decoder outputs per observed dimension (the heads of :class:`~pyro_dssm.nn.EmissionHead`);
* :meth:`Emission.distribution`: the distribution from those outputs;
* :meth:`Emission.bad_values`: where data lies outside its support (checked on every batch);
* :meth:`Emission.initial_biases`: the output biases that start the decoder at the data's statistics;
* ``density``: a density (not a probability mass), so 0/1 data under it earns a warning;
* ``default_for``: the kind of data it is the default for (``--emission`` unset).

A new family is one subclass, decorated with :func:`register_emission`, plus its tests
(``tests/test_contract.py`` runs every registered family through the model contract).

Families here: ``bernoulli`` (binary piano rolls), ``gaussian`` (real values),
``itakura_saito`` (power spectrograms, the taxonomy paper's App. C likelihood) and
``gaussian_power`` (a Gaussian on power values, as the paper's own code does).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import pyro.distributions as dist
import torch
import torch.nn.functional as F

__all__ = ["Emission", "register_emission", "get_emission", "list_emissions", "default_emission",
           "LOG_VAR_CLAMP", "softplus_scale", "inverse_softplus", "smoothed"]

#: bounds of a predicted log-variance (an exponential's mean beyond them over- or underflows)
LOG_VAR_CLAMP = (-20.0, 20.0)

_EMISSIONS: Dict[str, "Emission"] = {}


class Emission:
    """One observation family. Subclasses set the class attributes and implement :meth:`distribution`."""

    name: str = ""
    num_params: int = 1
    density: bool = True
    support: str = "real values"
    #: ``"binary"``, ``"speech"`` or ``"real"``: the data it is chosen for when no emission is given
    default_for: Optional[str] = None

    def distribution(self, out: Sequence[torch.Tensor], min_scale: float) -> dist.TorchDistribution:
        """The distribution of ``x_t`` (event shape ``(x_dim,)``) from the decoder's ``num_params`` outputs."""
        raise NotImplementedError

    def bad_values(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """A boolean tensor marking entries of ``x`` outside the support, or ``None`` (every real value)."""
        return None

    def initial_biases(self, n: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                       min_scale: float) -> List[torch.Tensor]:
        """The ``num_params`` output biases ``(x_dim,)`` that start the decoder at the data's per-dimension
        count ``n``, mean and standard deviation."""
        raise NotImplementedError

    #: the first output is a mean in the data's units: its weights are scaled by the data's std
    scale_mean_weights: bool = False

    @property
    def described(self) -> str:
        """How errors name it: ``"the NAME emission"``."""
        return f"the {self.name} emission"

    def __repr__(self) -> str:
        return f"<emission {self.name!r}: {self.support}, {self.num_params} output(s) per dimension>"


def register_emission(cls):
    """Class decorator: register an :class:`Emission` subclass under its ``name``."""
    if not cls.name or cls.name in _EMISSIONS:
        raise ValueError(f"emission family {cls.name!r} has no name or is already registered")
    _EMISSIONS[cls.name] = cls()
    return cls


def list_emissions() -> List[str]:
    """Names of the registered families, in registration order."""
    return list(_EMISSIONS)


def get_emission(name: str) -> Emission:
    """The registered family ``name``; a ``ValueError`` naming the known ones otherwise."""
    if name not in _EMISSIONS:
        raise ValueError(f"unknown emission {name!r}; expected one of {tuple(_EMISSIONS)}")
    return _EMISSIONS[name]


def default_emission(*, speech: bool, binary: bool) -> str:
    """The family chosen when none is given: the one registered as default for speech, binary or real data."""
    kind = "speech" if speech else "binary" if binary else "real"
    for e in _EMISSIONS.values():
        if e.default_for == kind:
            return e.name
    raise ValueError(f"no emission family is registered as the default for {kind} data")


def softplus_scale(raw: torch.Tensor, min_scale: float) -> torch.Tensor:
    """A positive scale ``softplus(raw) + min_scale``."""
    return F.softplus(raw) + min_scale


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """``softplus^{-1}(y) = log(expm1(y))`` for ``y > 0``, stable for large ``y``."""
    return y + torch.log(-torch.expm1(-y))


def smoothed(n: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """A frequency from ``n`` observations of mean ``mean``, smoothed as ``(k + 1/2) / (n + 1)``."""
    return (mean * n + 0.5) / (n + 1)


@register_emission
class Bernoulli(Emission):
    """Independent Bernoulli keys with logits (binary piano rolls)."""

    name, num_params, density, support, default_for = "bernoulli", 1, False, "binary (0/1)", "binary"
    described = "a Bernoulli emission"

    def distribution(self, out, min_scale):
        return dist.Bernoulli(logits=out[0]).to_event(1)

    def bad_values(self, x):
        return (x != 0) & (x != 1)

    def initial_biases(self, n, mean, std, min_scale):
        p = smoothed(n, mean)  # a key that never sounds keeps finite log-odds
        return [torch.log(p) - torch.log1p(-p)]


@register_emission
class Gaussian(Emission):
    """A diagonal Gaussian with a learned scale, ``softplus(raw) + min_scale`` (real-valued series)."""

    name, num_params, support, default_for, scale_mean_weights = "gaussian", 2, "real values", "real", True

    def distribution(self, out, min_scale):
        loc, raw = out
        return dist.Normal(loc, softplus_scale(raw, min_scale)).to_event(1)

    def initial_biases(self, n, mean, std, min_scale):
        return [mean, inverse_softplus((std - min_scale).clamp_min(1e-3))]


@register_emission
class ItakuraSaito(Emission):
    """Power spectrogram ``x = |S|^2``, ``S`` a zero-mean circular complex Gaussian of variance ``v``: the
    power is exponential with mean ``v``, ``-log p(x|v) = log v + x / v``, the Itakura-Saito divergence
    up to terms free of ``v`` (App. C; the complex density of ``S`` differs by ``log pi`` per bin)."""

    name, num_params, support, default_for = "itakura_saito", 1, "a non-negative power spectrogram", "speech"

    def distribution(self, out, min_scale):
        log_var = out[0].clamp(*LOG_VAR_CLAMP)
        return dist.Exponential(torch.exp(-log_var)).to_event(1)

    def bad_values(self, x):
        return x < 0

    def initial_biases(self, n, mean, std, min_scale):
        power = mean.clamp_min(torch.finfo(torch.float32).tiny)
        return [power.log().clamp(*LOG_VAR_CLAMP)]


@register_emission
class GaussianPower(Gaussian):
    """A diagonal Gaussian on power values, as the taxonomy paper's own code scores spectrograms."""

    name, support, default_for = "gaussian_power", "a non-negative power spectrogram", None

    def bad_values(self, x):
        return x < 0
