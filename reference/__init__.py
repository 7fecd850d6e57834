"""The float64 reference batch normalization: the oracle every framework is compared with.

Importing this package imports NumPy (and ml_dtypes, for bfloat16) only, never a framework.
"""

from .backward import Gradients, batch_norm_backward
from .conventions import Conventions
from .dtypes import DTYPES, UNIT_ROUNDOFF, round_to
from .forward import ChannelLayout, TrainResult, batch_norm_eval, batch_norm_train, batch_statistics, normalizer
from .running import AVERAGING_MODES, VARIANCE_ESTIMATORS, RunningStatistics, running_variance_sample
from .simulate import Expected, simulate

__all__ = [
    "AVERAGING_MODES",
    "DTYPES",
    "UNIT_ROUNDOFF",
    "VARIANCE_ESTIMATORS",
    "ChannelLayout",
    "Conventions",
    "Expected",
    "Gradients",
    "RunningStatistics",
    "TrainResult",
    "batch_norm_backward",
    "batch_norm_eval",
    "batch_norm_train",
    "batch_statistics",
    "normalizer",
    "round_to",
    "running_variance_sample",
    "simulate",
]
