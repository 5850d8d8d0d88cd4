"""Named presets of the taxonomy: ``create_model(name, **sizes)`` and ``list_models()``.

Each preset is a few lines that fix a spec and a parameterisation; the generic
:class:`~pyro_dssm.models.DSSM` builds it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Callable, Dict, List, Union

from ..spec import Base, DSSMSpec
from .dssm import DSSM, ModelConfig

__all__ = ["register_model", "create_model", "list_models", "model_config", "preset_info"]

_REGISTRY: Dict[str, Callable[..., ModelConfig]] = {}
_INFO: Dict[str, Dict[str, str]] = {}


def register_model(name: str, *, paper: str, equation: str):
    """Decorator registering ``fn(**overrides) -> ModelConfig`` under ``name``."""

    def deco(fn: Callable[..., ModelConfig]) -> Callable[..., ModelConfig]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        _INFO[name] = {"paper": paper, "equation": equation, "doc": (fn.__doc__ or "").strip()}
        return fn

    return deco


def list_models(pattern: str = "*") -> List[str]:
    """Registered preset names matching a glob ``pattern`` (sorted)."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def preset_info(name: str) -> Dict[str, str]:
    """The paper, equation and one-line description of a preset."""
    _check_name(name)
    return dict(_INFO[name])


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {list_models()}; "
                         "or give a taxonomy spec name such as 'arhmm+tr+ar+em' (see pyro_dssm.list_specs())")


def model_config(name: Union[str, DSSMSpec, ModelConfig], **overrides) -> ModelConfig:
    """The :class:`ModelConfig` of a preset, a spec or a spec name, with ``overrides`` applied."""
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown model option(s) {unknown}; valid options: {sorted(fields - {'spec'})}")
    if isinstance(name, ModelConfig):
        return dataclasses.replace(name, **overrides)
    if isinstance(name, DSSMSpec):
        return ModelConfig(spec=name, **overrides)
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, DSSMSpec or ModelConfig, got {type(name).__name__}")
    if name in _REGISTRY:
        return _REGISTRY[name](**overrides)
    if "+" not in name and name not in {b.value for b in Base}:
        _check_name(name)  # raises: neither a preset nor a spec name
    try:
        spec = DSSMSpec.from_name(name)
    except ValueError as e:
        raise ValueError(f"unknown model {name!r}: {e}") from None
    return ModelConfig(spec=spec, **overrides)


def create_model(name: Union[str, DSSMSpec, ModelConfig], **overrides) -> DSSM:
    """Build a model: ``create_model("arssm", x_dim=88, z_dim=16, emission="bernoulli")``.

    Args:
        name: a preset of :func:`list_models`, a spec name of
            :func:`~pyro_dssm.list_specs` (e.g. ``"fhmm+ff"``), a
            :class:`~pyro_dssm.DSSMSpec` or a :class:`ModelConfig`.
        **overrides: fields of :class:`ModelConfig` (``x_dim`` is required).

    Defaults, where a preset does not set its own (see :class:`ModelConfig`):
    ``z_dim=16``, ``h_dim=64``, ``hidden_dim=64``, ``emission="gaussian"`` (a
    Gaussian with a learned diagonal scale), ``transition_net="mlp"``,
    ``emission_net="mlp"``, ``recurrence="separate"``, ``min_scale=1e-3``.

    The emission is **not** chosen by the data here (``scripts/train.py`` does that:
    Bernoulli for 0/1 data, Itakura-Saito for speech): pass ``emission="bernoulli"``
    for binary data such as piano rolls. A model with a density emission that is
    given only 0/1 values warns (:class:`~pyro_dssm.validation.BinaryDataWarning`):
    a density's log-likelihood of 0/1 data is not a probability and can fall below
    the data's entropy.
    """
    if "x_dim" not in overrides and not isinstance(name, ModelConfig):
        raise TypeError("create_model needs x_dim, the observation dimension (e.g. x_dim=88 for piano rolls)")
    return DSSM(model_config(name, **overrides))


def _preset(spec: DSSMSpec, overrides: dict, **defaults) -> ModelConfig:
    return ModelConfig(spec=spec, **{**defaults, **overrides})


# --------------------------------------------------------------------------
# base models (Fig. 1, first row): every first-order assumption kept
# --------------------------------------------------------------------------
@register_model("hmm", paper="Tang et al. 2024, Fig. 3", equation="p(z_t|z_{t-1}) p(x_t|z_t)")
def hmm(**kw) -> ModelConfig:
    """Deep HMM base: MLP transition and emission."""
    return _preset(DSSMSpec(Base.HMM), kw)


@register_model("arhmm", paper="Tang et al. 2024, Fig. 1", equation="p(z_t|z_{t-1}) p(x_t|z_t,x_{t-1})")
def arhmm(**kw) -> ModelConfig:
    """Autoregressive HMM base."""
    return _preset(DSSMSpec(Base.ARHMM), kw)


@register_model("fhmm", paper="Tang et al. 2024, Fig. 4", equation="p(z_t|z_{t-1},x_{t-1}) p(x_t|z_t)")
def fhmm(**kw) -> ModelConfig:
    """Feedforward HMM base."""
    return _preset(DSSMSpec(Base.FHMM), kw)


@register_model("dmm_aug", paper="Tang et al. 2024, Fig. 5; Krishnan et al. 2017",
                equation="p(z_t|z_{t-1},x_{t-1}) p(x_t|z_t,x_{t-1})")
def dmm_aug(**kw) -> ModelConfig:
    """Augmented DMM base: both observation connections."""
    return _preset(DSSMSpec(Base.DMM_AUG), kw)


# --------------------------------------------------------------------------
# published models
# --------------------------------------------------------------------------
@register_model("dmm", paper="Krishnan et al. 2017 (AAAI), Sec. 5", equation="gated transition; p(x_t|z_t)")
def dmm(**kw) -> ModelConfig:
    """Deep Markov Model: HMM base with the gated transition and a two-layer emitter."""
    return _preset(DSSMSpec(Base.HMM), kw, transition_net="gated", emission_net="deep")


@register_model("rssm", paper="Tang et al. 2024, App. B; Hafner et al. 2019", equation="eq. (19)")
def rssm(**kw) -> ModelConfig:
    """RSSM: z_t ~ p(z_t|d_z(h_{t-1})), h_t = d_h(z_t, h_{t-1}), x_t ~ p(x_t|d_x(h_t))."""
    return _preset(DSSMSpec(Base.HMM, transition=True, emission=True), kw)


@register_model("fssm", paper="Tang et al. 2024, App. B, Fig. 4 (g)", equation="eq. (14)")
def fssm(**kw) -> ModelConfig:
    """FSSM: z_t ~ p(z_t|d_z(h^1_{t-1}, h^2_{t-1})), x_t ~ p(x_t|d_x(h^1_t))."""
    return _preset(DSSMSpec(Base.FHMM, transition=True, emission=True, feedforward=True), kw)


@register_model("arssm", paper="Tang et al. 2024, Sec. II-A, Fig. 1 (g)", equation="eqs. (1)-(3)")
def arssm(**kw) -> ModelConfig:
    """ArSSM: z_t ~ p(z_t|d_z(h^1_{t-1})), x_t ~ p(x_t|d_x(h^1_t, h^2_{t-1}))."""
    return _preset(DSSMSpec(Base.ARHMM, transition=True, autoregression=True, emission=True), kw)


@register_model("vrnn", paper="Chung et al. 2015; Tang et al. 2024, App. B, Fig. 5 (o)", equation="eq. (15)")
def vrnn(**kw) -> ModelConfig:
    """VRNN: z_t ~ p(z_t|d_z(x_{t-1}, h_{t-1})), h_t = d_h(x_{t-1}, z_t, h_{t-1}), x_t ~ p(x_t|d_x(h_t))."""
    return _preset(DSSMSpec(Base.DMM_AUG, True, True, True, True), kw, recurrence="joint")


@register_model("srnn", paper="Fraccaro et al. 2016; Tang et al. 2024, App. B, Fig. 5 (i)", equation="eq. (17)")
def srnn(**kw) -> ModelConfig:
    """SRNN: z_t ~ p(z_t|d_z(h_{t-1}, z_{t-1})), x_t ~ p(x_t|d_x(h_{t-1}, z_t)), h_t = d_h(x_t, h_{t-1})."""
    return _preset(DSSMSpec(Base.DMM_AUG, autoregression=True, feedforward=True), kw)
