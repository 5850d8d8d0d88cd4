"""Guides (inference networks): ``create_guide(name, model, **options)`` and ``list_guides()``.

The taxonomy's models take the guides derived from their spec (:class:`DSSMGuide`: partial and
full alignment, App. D's A, B, C, each with optional IAFs); LS4 has its own inference network
(:class:`~pyro_dssm.models.LS4Guide`, eq. 13), named ``"ls4"``.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Sequence, Union

from ..models.dssm import DSSM
from ..models.ls4 import LS4Guide, LS4Model
from ..spec import DSSMSpec
from .guide import GUIDES, DSSMGuide, GuideConfig, GuidePlan, guide_plan

__all__ = ["DSSMGuide", "GuideConfig", "GuidePlan", "guide_plan", "create_guide", "list_guides", "inapplicable_guides",
           "LS4_GUIDES"]


#: LS4's inference network, and the names it answers to (``full``: it conditions on all of ``x_{<=n}``)
LS4_GUIDES = ("ls4", "full")


def list_guides(model=None) -> List[str]:
    """Guide names: ``partial`` and ``full`` alignment (Sec. II-B), ``A``/``B``/``C`` (App. D), and ``ls4``;
    with ``model`` (a model or a model name), those that exist for it (``full`` being LS4's own for LS4)."""
    if model is None:
        return list(GUIDES) + ["ls4"]
    if isinstance(model, LS4Model) or (isinstance(model, str) and _family(model) == "ls4"):
        return ["ls4"]
    bad = inapplicable_guides(model, GUIDES)
    return [g for g in GUIDES if g not in bad]


def inapplicable_guides(model, guides: Sequence[str] = GUIDES) -> Dict[str, str]:
    """``{guide: why}`` for each of ``guides`` that ``model``'s graph does not admit (e.g. App. D's C reuses a
    generative RNN over ``z``, which SRNN does not have); checked from the spec, nothing is built."""
    out = {}
    for name in guides:
        try:
            guide_plan(name, model)
        except ValueError as e:
            out[name] = str(e)
    return out


def _family(name: str) -> str:
    from ..models.registry import model_capabilities

    return model_capabilities(name)["family"]


def create_guide(name: str, model: Union[DSSM, DSSMSpec, str], **options) -> DSSMGuide:
    """Build a guide: ``create_guide("full", model, num_iafs=3, iaf_dim=20)``.

    For your own Pyro model pass its spec and sizes instead of a ``DSSM``:
    ``create_guide("partial", "hmm+em", x_dim=3, z_dim=4)`` (see :class:`DSSMGuide`).

    Args:
        name: one of :func:`list_guides`.
        model: the model whose posterior to approximate, or a spec (or spec name).
        **options: fields of :class:`GuideConfig` (``rnn_dim``, ``hidden_dim``,
            ``num_iafs``, ``iaf_dim``, ``iaf_conditional``, ``min_scale``); with a
            spec also ``x_dim``, ``z_dim`` and ``emission``.
    """
    if isinstance(model, LS4Model):
        return _ls4_guide(name, model, **options)
    if name == "ls4":
        raise ValueError("guide 'ls4' is LS4's inference network (eq. 13 of the LS4 paper); this model takes "
                         f"{list_guides(model) if isinstance(model, DSSM) else list(GUIDES)}")
    fields = {f.name for f in dataclasses.fields(GuideConfig)}
    sizes = {"x_dim", "z_dim", "emission"}
    unknown = sorted(set(options) - fields - sizes)
    if unknown:
        raise TypeError(f"unknown guide option(s) {unknown}; valid options: {sorted(fields | sizes)}")
    config = GuideConfig(**{k: v for k, v in options.items() if k in fields})
    return DSSMGuide(model, name, config, **{k: v for k, v in options.items() if k in sizes})


def _ls4_guide(name: str, model: LS4Model, num_iafs: int = 0, **options) -> LS4Guide:
    """LS4's guide; ``H``, ``N``, ``depth``, ``levels`` default to the model's (other sizes do not apply)."""
    if name not in LS4_GUIDES:
        raise ValueError(f"LS4 has one inference network, q(z_n | x_<=n) (eq. 13): use --guide ls4, not {name!r}")
    if num_iafs:
        raise ValueError("--iaf and --jit are not available for LS4")
    own = {"H", "N", "depth", "levels"}
    unknown = sorted(set(options) - own - {f.name for f in dataclasses.fields(GuideConfig)})
    if unknown:
        raise TypeError(f"unknown LS4 guide option(s) {unknown}; LS4's guide takes {sorted(own)}")
    return LS4Guide(model, **{k: v for k, v in options.items() if k in own})
