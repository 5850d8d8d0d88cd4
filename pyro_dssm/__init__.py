"""pyro-dssm: the Pyro model zoo for deep state space models.

Public API::

    import pyro_dssm
    pyro_dssm.list_specs()      # the 36 graphical models of the taxonomy
    pyro_dssm.list_models()     # named presets (arssm, vrnn, srnn, ...)
    model = pyro_dssm.create_model("arssm", x_dim=88, emission="bernoulli")
    guide = pyro_dssm.create_guide("full", model, num_iafs=3, iaf_dim=20)
    pyro_dssm.list_pretrained()  # shipped trained models; load_pretrained(name) -> (model, guide)
"""

from .guides import DSSMGuide, GuideConfig, create_guide, guide_plan, list_guides
from .infer import elbo_per_sequence, iwae_per_sequence, kalman_log_likelihood, log_weights
from .models import DSSM, ModelConfig, create_model, list_models, model_config, preset_info, site_name
from .pretrained import list_pretrained, load_pretrained, pretrained_card
from .spec import Base, DSSMSpec, get_spec, list_specs

__version__ = "0.1.0"

__all__ = [
    "Base", "DSSMSpec", "get_spec", "list_specs",
    "DSSM", "ModelConfig", "create_model", "list_models", "model_config", "preset_info", "site_name",
    "DSSMGuide", "GuideConfig", "create_guide", "guide_plan", "list_guides",
    "elbo_per_sequence", "iwae_per_sequence", "kalman_log_likelihood", "log_weights",
    "list_pretrained", "load_pretrained", "pretrained_card",
]
