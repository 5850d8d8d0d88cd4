"""Layers of the DSSM family (transition, emission and combiner networks, RNN helpers), the emission
families' registry, S4D and LS4 layers."""

from .emissions import Emission, default_emission, get_emission, list_emissions, register_emission

from .layers import (EMISSIONS, Combiner, EmissionHead, GatedTransition, GaussianHead, InitialGaussian,
                     LinearGaussianHead, bcat, cell_step, gru_step, hoisted_steps, reverse_padded)
from .ls4 import LS4Block, LS4GenBlock, LS4GenStack, LS4Stack, LS4UNet, ResBlock
from .s4 import S4D, S4DKernel, TwoStreamS4D, cached_discretisation, causal_fft_conv

__all__ = ["Emission", "default_emission", "get_emission", "list_emissions", "register_emission", "EMISSIONS", "Combiner", "EmissionHead", "GatedTransition", "GaussianHead", "InitialGaussian",
           "LinearGaussianHead", "bcat", "cell_step", "gru_step", "hoisted_steps", "reverse_padded",
           "S4D", "S4DKernel", "TwoStreamS4D", "cached_discretisation", "causal_fft_conv",
           "LS4Block", "LS4GenBlock", "LS4GenStack", "LS4Stack", "LS4UNet", "ResBlock"]
