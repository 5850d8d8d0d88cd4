"""Guides (inference networks): ``create_guide(name, model, **options)`` and ``list_guides()``."""

from __future__ import annotations

import dataclasses
from typing import List, Union

from ..models.dssm import DSSM
from ..spec import DSSMSpec
from .guide import GUIDES, DSSMGuide, GuideConfig, GuidePlan, guide_plan

__all__ = ["DSSMGuide", "GuideConfig", "GuidePlan", "guide_plan", "create_guide", "list_guides"]


def list_guides() -> List[str]:
    """Guide names: ``partial`` and ``full`` alignment (Sec. II-B), and ``A``/``B``/``C`` (App. D)."""
    return list(GUIDES)


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
    fields = {f.name for f in dataclasses.fields(GuideConfig)}
    sizes = {"x_dim", "z_dim", "emission"}
    unknown = sorted(set(options) - fields - sizes)
    if unknown:
        raise TypeError(f"unknown guide option(s) {unknown}; valid options: {sorted(fields | sizes)}")
    config = GuideConfig(**{k: v for k, v in options.items() if k in fields})
    return DSSMGuide(model, name, config, **{k: v for k, v in options.items() if k in sizes})
