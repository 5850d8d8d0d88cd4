"""Layers of the DSSM family (transition, emission and combiner networks, RNN helpers)."""

from .layers import (EMISSIONS, Combiner, EmissionHead, GatedTransition, GaussianHead,
                     LinearGaussianHead, bcat, cell_step, gru_step, reverse_padded)

__all__ = ["EMISSIONS", "Combiner", "EmissionHead", "GatedTransition", "GaussianHead",
           "LinearGaussianHead", "bcat", "cell_step", "gru_step", "reverse_padded"]
