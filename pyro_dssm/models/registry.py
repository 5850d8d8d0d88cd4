"""Named models: ``create_model(name, **options)``, ``list_models()`` and ``preset_info(name)``.

Each entry is a few lines (timm's registry): a function, decorated with :func:`register_model`,
that returns a *config*; :func:`create_model` builds the model class registered for that
config's type (:func:`register_model_class`). The taxonomy's presets return a
:class:`ModelConfig` (family ``"dssm"``), built by the generic :class:`~pyro_dssm.models.DSSM`;
LS4 (:mod:`pyro_dssm.models.ls4`) returns an ``LS4Config`` (family ``"ls4"``). What the
training engine needs to know about a model (its emissions, whether it takes data with
unobserved entries, IAFs, the JIT, a learned ``p(z_1)``) is registered with it, so the engine
never tests a model's name.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from ..spec import Base, DSSMSpec
from .dssm import DSSM, ModelConfig

__all__ = ["register_model", "register_model_class", "create_model", "list_models", "model_config", "preset_info",
           "model_capabilities"]

_REGISTRY: Dict[str, Callable[..., Any]] = {}
_INFO: Dict[str, Dict[str, Any]] = {}
_MODEL_CLASSES: Dict[type, type] = {ModelConfig: DSSM}

#: what a taxonomy model supports; a registered family states its own (see :func:`register_model`)
DSSM_CAPABILITIES = {"family": "dssm", "emissions": None, "missing": False, "iaf": True, "jit": True,
                     "learned_initial": True}


def register_model(name: str, *, paper: str, equation: str, family: str = "dssm",
                   emissions: Optional[Sequence[str]] = None, missing: bool = False, iaf: bool = True,
                   jit: bool = True, learned_initial: bool = True):
    """Decorator registering ``fn(**options) -> config`` under ``name``.

    Args:
        paper, equation: where the model is defined (shown by :func:`preset_info` and the README).
        family: ``"dssm"`` (``fn`` returns a :class:`ModelConfig`) or another family whose config
            type has a model class registered with :func:`register_model_class`.
        emissions: the observation families the model has (``None``: any of ``ModelConfig``'s; the
            first is the default when the data does not choose).
        missing: it models data with unobserved (NaN) entries. iaf, jit: its guides take IAFs, its
            ELBO can be compiled. learned_initial: its checkpoints hold a learned ``p(z_1)``.
    """

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        _INFO[name] = {"paper": paper, "equation": equation, "doc": (fn.__doc__ or "").strip(), "family": family,
                       "emissions": None if emissions is None else tuple(emissions), "missing": missing, "iaf": iaf,
                       "jit": jit, "learned_initial": learned_initial}
        return fn

    return deco


def register_model_class(config_type: type, model_type: type) -> None:
    """Build configs of ``config_type`` with ``model_type(config)`` in :func:`create_model`."""
    _MODEL_CLASSES[config_type] = model_type


def list_models(pattern: str = "*", family: Optional[str] = None) -> List[str]:
    """Registered model names matching a glob ``pattern`` (sorted); ``family``: only ``"dssm"`` presets, or ``"ls4"``."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern)
                  and (family is None or _INFO[n]["family"] == family))


def preset_info(name: str) -> Dict[str, Any]:
    """The paper, equation, one-line description, family and capabilities of a registered model."""
    _check_name(name)
    return dict(_INFO[name])


def model_capabilities(name: Union[str, DSSMSpec, ModelConfig]) -> Dict[str, Any]:
    """What the training engine needs to know about a model name: a registered model's
    :func:`preset_info` entries, else (a taxonomy spec or spec name) a DSSM's."""
    if isinstance(name, str) and name in _REGISTRY:
        info = _INFO[name]
        return {k: info[k] for k in DSSM_CAPABILITIES}
    if isinstance(name, str):  # a spec name, or an error that names the problem
        if "+" not in name and name not in {b.value for b in Base}:
            _check_name(name)
        try:
            DSSMSpec.from_name(name)
        except ValueError as e:
            raise ValueError(f"unknown model {name!r}: {e}") from None
    return dict(DSSM_CAPABILITIES)


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {list_models()}; "
                         "or give a taxonomy spec name such as 'arhmm+tr+ar+em' (see pyro_dssm.list_specs())")


def model_config(name: Union[str, DSSMSpec, ModelConfig], **overrides):
    """The config of a registered model, a spec or a spec name, with ``overrides`` applied
    (a :class:`ModelConfig` for the taxonomy's models)."""
    if isinstance(name, str) and name in _REGISTRY and _INFO[name]["family"] != "dssm":
        return _REGISTRY[name](**overrides)
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


def create_model(name: Union[str, DSSMSpec, ModelConfig], **overrides):
    """Build a model: ``create_model("arssm", x_dim=88, z_dim=16, emission="bernoulli")``,
    ``create_model("ls4", x_dim=1, z_dim=5, H=64)``.

    Args:
        name: a model of :func:`list_models`, a spec name of
            :func:`~pyro_dssm.list_specs` (e.g. ``"fhmm+ff"``), a
            :class:`~pyro_dssm.DSSMSpec` or a :class:`ModelConfig`.
        **overrides: fields of the model's config (``x_dim`` is required): :class:`ModelConfig`'s
            for the taxonomy's models, ``LS4Config``'s for LS4 (which also takes ``h_dim`` as its
            channel count ``H``).

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
    config = model_config(name, **overrides)
    return _MODEL_CLASSES[type(config)](config)


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
