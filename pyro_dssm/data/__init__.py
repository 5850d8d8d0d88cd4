"""Data: generated and loaded sequences as padded ``(N, T, D)`` arrays with masks. Never imports models."""

from .synthetic import LinearGaussianSSM, linear_gaussian_dataset

__all__ = ["LinearGaussianSSM", "linear_gaussian_dataset"]
