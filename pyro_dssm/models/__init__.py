"""Generative models: the generic :class:`DSSM` and its registry of presets, and LS4."""

from .dssm import DSSM, ModelConfig, site_name
from .ls4 import LS4Config, LS4Guide, LS4Model
from .registry import create_model, list_models, model_config, preset_info, register_model

__all__ = ["DSSM", "ModelConfig", "site_name", "LS4Config", "LS4Guide", "LS4Model", "create_model", "list_models",
           "model_config", "preset_info", "register_model"]
