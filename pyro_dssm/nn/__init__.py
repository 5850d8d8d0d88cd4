"""Layers of the DSSM family (transition, emission and combiner networks, RNN helpers) and S4D layers."""

from .layers import (EMISSIONS, Combiner, EmissionHead, GatedTransition, GaussianHead,
                     LinearGaussianHead, bcat, cell_step, gru_step, reverse_padded)
from .s4 import S4D, S4DKernel, TwoStreamS4D, cached_discretisation, causal_fft_conv

__all__ = ["EMISSIONS", "Combiner", "EmissionHead", "GatedTransition", "GaussianHead",
           "LinearGaussianHead", "bcat", "cell_step", "gru_step", "reverse_padded",
           "S4D", "S4DKernel", "TwoStreamS4D", "cached_discretisation", "causal_fft_conv"]
