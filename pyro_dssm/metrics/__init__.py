"""Metrics: pure functions, arrays in and numbers out. Never import models."""

from .audio import estoi, pesq_wb, si_sdr
from .stats import summarize
from .timeseries import crps_from_samples, marginal_score, masked_mse

__all__ = ["si_sdr", "pesq_wb", "estoi", "summarize", "crps_from_samples", "marginal_score", "masked_mse"]
