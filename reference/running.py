r"""Running-statistic updates, under every convention in use.

The canonical parameter is the **decay** d: the fraction of the old statistic that is kept.

    EMA:            r_t = d · r_{t−1} + (1 − d) · b_t
    cumulative:     r_t = r_{t−1} + (b_t − r_{t−1}) / t          (plain average of b_1..b_t)
    debiased EMA:   a_t = d · a_{t−1} + (1 − d) · b_t,  a_0 = 0,  r_t = a_t / (1 − d^t)

where b_t is the batch statistic of step t.  Frameworks spell d differently:
PyTorch's ``momentum`` m weights the *new* batch (d = 1 − m, default m = 0.1 → d = 0.9) and
``momentum=None`` selects the cumulative average; Keras' and Flax's ``momentum`` is d itself
(default 0.99).  The variance fed into the update is either the biased batch variance
σ² = Σ(x − μ)²/N or the unbiased one σ²·N/(N − 1) (PyTorch).  With N = 1 the unbiased
variance is 0/0 and is defined here as NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

AVERAGING_MODES = ("ema", "cumulative", "debiased_ema")
VARIANCE_ESTIMATORS = ("biased", "unbiased")


def running_variance_sample(var: np.ndarray, count: int, estimator: str) -> np.ndarray:
    """The variance fed into the running update: biased σ², or unbiased σ²·N/(N − 1)."""
    if estimator not in VARIANCE_ESTIMATORS:
        raise ValueError(f"variance estimator must be one of {VARIANCE_ESTIMATORS}, got {estimator!r}")
    if estimator == "biased":
        return np.asarray(var, dtype=np.float64)
    if count <= 1:
        return np.full_like(np.asarray(var, dtype=np.float64), np.nan)
    return np.asarray(var, dtype=np.float64) * (count / (count - 1))


def check_decay(decay: float) -> float:
    if not (0.0 <= decay <= 1.0):
        raise ValueError(f"decay must lie in [0, 1], got {decay!r}")
    return float(decay)


@dataclass
class RunningStatistics:
    """Running mean and variance, updated one training step at a time.

    ``mode`` is one of ``AVERAGING_MODES``; ``decay`` is ignored by the cumulative mode.
    ``steps`` counts the updates so far (PyTorch's ``num_batches_tracked``).
    """

    mean: np.ndarray
    var: np.ndarray
    decay: float = 0.9
    mode: str = "ema"
    estimator: str = "unbiased"
    steps: int = 0
    _accumulators: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in AVERAGING_MODES:
            raise ValueError(f"averaging mode must be one of {AVERAGING_MODES}, got {self.mode!r}")
        if self.estimator not in VARIANCE_ESTIMATORS:
            raise ValueError(f"variance estimator must be one of {VARIANCE_ESTIMATORS}, got {self.estimator!r}")
        if self.mode != "cumulative":
            check_decay(self.decay)
        self.mean = np.array(self.mean, dtype=np.float64)
        self.var = np.array(self.var, dtype=np.float64)

    def update(self, batch_mean: np.ndarray, batch_var: np.ndarray, count: int) -> None:
        """Fold one batch's statistics (biased ``batch_var`` over ``count`` values) in."""
        sample_var = running_variance_sample(batch_var, count, self.estimator)
        self.steps += 1
        with np.errstate(invalid="ignore", over="ignore"):
            if self.mode == "ema":
                self.mean = ema(self.mean, batch_mean, self.decay)
                self.var = ema(self.var, sample_var, self.decay)
            elif self.mode == "cumulative":
                weight = 1.0 / self.steps
                self.mean = self.mean + (batch_mean - self.mean) * weight
                self.var = self.var + (sample_var - self.var) * weight
            else:
                if self._accumulators is None:
                    self._accumulators = (np.zeros_like(self.mean), np.zeros_like(self.var))
                acc_mean = ema(self._accumulators[0], batch_mean, self.decay)
                acc_var = ema(self._accumulators[1], sample_var, self.decay)
                self._accumulators = (acc_mean, acc_var)
                correction = 1.0 - self.decay**self.steps
                if correction == 0.0:  # decay 1: the accumulator never moves from zero
                    self.mean, self.var = acc_mean, acc_var
                else:
                    self.mean, self.var = acc_mean / correction, acc_var / correction


def ema(old: np.ndarray, new: np.ndarray, decay: float) -> np.ndarray:
    """One exponential-moving-average step: d · old + (1 − d) · new."""
    return decay * np.asarray(old, dtype=np.float64) + (1.0 - decay) * np.asarray(new, dtype=np.float64)
