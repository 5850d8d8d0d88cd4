"""Guides (inference networks): ``create_guide(name, model, **options)`` and ``list_guides()``."""

from __future__ import annotations

import dataclasses
from typing import List

from ..models.dssm import DSSM
from .guide import GUIDES, DSSMGuide, GuideConfig, GuidePlan, guide_plan

__all__ = ["DSSMGuide", "GuideConfig", "GuidePlan", "guide_plan", "create_guide", "list_guides"]


def list_guides() -> List[str]:
    """Guide names: ``partial`` and ``full`` alignment (Sec. II-B), and ``A``/``B``/``C`` (App. D)."""
    return list(GUIDES)


def create_guide(name: str, model: DSSM, **options) -> DSSMGuide:
    """Build a guide for ``model``: ``create_guide("full", model, num_iafs=3, iaf_dim=20)``.

    Args:
        name: one of :func:`list_guides`.
        model: the model whose posterior to approximate.
        **options: fields of :class:`GuideConfig` (``rnn_dim``, ``hidden_dim``,
            ``num_iafs``, ``iaf_dim``, ``iaf_conditional``, ``min_scale``).
    """
    fields = {f.name for f in dataclasses.fields(GuideConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise TypeError(f"unknown guide option(s) {unknown}; valid options: {sorted(fields)}")
    return DSSMGuide(model, name, GuideConfig(**options))
