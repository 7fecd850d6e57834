"""The float64 reference batch normalization: the oracle every framework is compared with.

Importing this package imports NumPy (and ml_dtypes, for bfloat16) only, never a framework.
"""

from .backward import Gradients, batch_norm_backward, blended_gradients
from .conventions import NORMALIZATIONS, Conventions
from .dtypes import DTYPES, UNIT_ROUNDOFF, round_to
from .forward import (
    BlendedResult,
    ChannelLayout,
    TrainResult,
    batch_norm_blended,
    batch_norm_eval,
    batch_norm_train,
    batch_statistics,
    normalizer,
)
from .running import (
    AVERAGING_MODES,
    DEBIAS_STARTS,
    VARIANCE_ESTIMATORS,
    WARMUPS,
    RunningStatistics,
    running_variance_sample,
)
from .simulate import Expected, simulate

__all__ = [
    "AVERAGING_MODES",
    "DEBIAS_STARTS",
    "DTYPES",
    "NORMALIZATIONS",
    "UNIT_ROUNDOFF",
    "VARIANCE_ESTIMATORS",
    "WARMUPS",
    "BlendedResult",
    "ChannelLayout",
    "Conventions",
    "Expected",
    "Gradients",
    "RunningStatistics",
    "TrainResult",
    "batch_norm_backward",
    "batch_norm_blended",
    "batch_norm_eval",
    "batch_norm_train",
    "batch_statistics",
    "blended_gradients",
    "normalizer",
    "round_to",
    "running_variance_sample",
    "simulate",
]
