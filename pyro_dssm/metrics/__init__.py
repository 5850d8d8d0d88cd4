"""Metrics: functions of arrays that return numbers (the learned scores train their own small probes).
Never import models."""

from .audio import SI_SDR_MAX_DB, MetricUndefined, estoi, pesq_wb, si_sdr
from .generation import classification_score, prediction_score
from .music import piano_roll_stats
from .stats import summarize
from .timeseries import (crossing_time_test, crps_from_samples, crps_gaussian, crps_gaussian_mixture,
                         first_crossing_times, marginal_score, masked_mse, wasserstein_marginal)

__all__ = ["si_sdr", "pesq_wb", "estoi", "MetricUndefined", "SI_SDR_MAX_DB", "summarize", "crps_from_samples",
           "crps_gaussian", "crps_gaussian_mixture",
           "marginal_score", "wasserstein_marginal", "first_crossing_times", "crossing_time_test",
           "masked_mse", "classification_score", "prediction_score", "piano_roll_stats"]
