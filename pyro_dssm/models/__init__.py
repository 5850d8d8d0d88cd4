"""Generative models: the generic :class:`DSSM` and its registry of presets."""

from .dssm import DSSM, ModelConfig, site_name
from .registry import create_model, list_models, model_config, preset_info, register_model

__all__ = ["DSSM", "ModelConfig", "site_name", "create_model", "list_models", "model_config",
           "preset_info", "register_model"]
