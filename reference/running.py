r"""Running-statistic updates, under every convention in use.

The canonical parameter is the **decay** d: the fraction of the old statistic that is kept.

    EMA:            r_t = d · r_{t−1} + (1 − d) · b_t
    cumulative:     r_t = r_{t−1} + (b_t − r_{t−1}) / t          (plain average of b_1..b_t)
    debiased EMA:   a_t = d · a_{t−1} + (1 − d) · b_t,  r_t = a_t / (1 − d^t)
                    a_0 = 0 (``debias_start="zero"``, Haiku) or a_0 = r_0, the statistics the
                    layer was loaded with (``"state"``, Equinox's ``mode="batch"``); r_0 is read
                    as it is before the first step

where b_t is the batch statistic of step t.  The zero start is what zero-debiasing is for: the
division by 1 − d^t undoes exactly the weight an average that started at 0 is missing.  The
state start divides an average that did not start at 0 as well, so it is r_t = d^t·r_0/(1 − d^t)
plus the debiased average: 9·r_0 after one step with d = 0.9.

Warm-up (``warmup="copy_first_batch"``, EMA only): a fresh layer's first update *replaces* the
statistics with the batch's, whatever the decay (Equinox's ``mode="ema"``); later steps are the
EMA.  ``batch_weight`` is ∂r_t/∂b_t of the last update (1 − d for the EMA, 1 for a copy,
(1 − d)/(1 − d^t) debiased, 1/t cumulative): what a training step that normalizes with the
updated statistics passes back to the batch's mean (the variance's is that times N/(N − 1) for
the unbiased estimator).  Frameworks spell d differently:
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
#: Where a debiased EMA's accumulator starts: at 0, or at the loaded running statistics.
DEBIAS_STARTS = ("zero", "state")
#: What a fresh layer's first update does: nothing special, or copy the batch statistics.
WARMUPS = ("none", "copy_first_batch")


def running_variance_sample(var: np.ndarray, count: int, estimator: str) -> np.ndarray:
    """The variance fed into the running update: biased σ², or unbiased σ²·N/(N − 1)."""
    if estimator not in VARIANCE_ESTIMATORS:
        raise ValueError(f"variance estimator must be one of {VARIANCE_ESTIMATORS}, got {estimator!r}")
    if estimator == "biased":
        return np.asarray(var, dtype=np.float64)
    if count <= 1:
        return np.full_like(np.asarray(var, dtype=np.float64), np.nan)
    return np.asarray(var, dtype=np.float64) * (count / (count - 1))


def check_warmup(warmup: str, mode: str) -> str:
    """``warmup`` if it is known and fits the averaging ``mode`` (a copy only makes sense for the EMA)."""
    if warmup not in WARMUPS:
        raise ValueError(f"warmup must be one of {WARMUPS}, got {warmup!r}")
    if warmup == "copy_first_batch" and mode != "ema":
        raise ValueError(f"warmup 'copy_first_batch' is defined for 'ema' averaging, got {mode!r} "
                         "(a cumulative or zero-debiased average copies its first batch anyway)")  # fmt: skip
    return warmup


def check_decay(decay: float) -> float:
    if not (0.0 <= decay <= 1.0):
        raise ValueError(f"decay must lie in [0, 1], got {decay!r}")
    return float(decay)


@dataclass
class RunningStatistics:
    """Running mean and variance, updated one training step at a time.

    ``mode`` is one of ``AVERAGING_MODES``; ``decay`` is ignored by the cumulative mode.
    ``steps`` counts the updates so far (PyTorch's ``num_batches_tracked``).  ``debias_start``
    (``DEBIAS_STARTS``) matters to ``"debiased_ema"`` only, ``warmup`` (``WARMUPS``) is for ``"ema"``
    only; ``batch_weight`` is ∂r/∂b of the last update (see the module docstring).
    """

    mean: np.ndarray
    var: np.ndarray
    decay: float = 0.9
    mode: str = "ema"
    estimator: str = "unbiased"
    steps: int = 0
    debias_start: str = "zero"
    warmup: str = "none"
    batch_weight: float = field(default=float("nan"), init=False)
    _accumulators: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in AVERAGING_MODES:
            raise ValueError(f"averaging mode must be one of {AVERAGING_MODES}, got {self.mode!r}")
        if self.estimator not in VARIANCE_ESTIMATORS:
            raise ValueError(f"variance estimator must be one of {VARIANCE_ESTIMATORS}, got {self.estimator!r}")
        if self.debias_start not in DEBIAS_STARTS:
            raise ValueError(f"debias_start must be one of {DEBIAS_STARTS}, got {self.debias_start!r}")
        check_warmup(self.warmup, self.mode)
        if self.mode != "cumulative":
            check_decay(self.decay)
        self.mean = np.array(self.mean, dtype=np.float64)
        self.var = np.array(self.var, dtype=np.float64)

    def update(self, batch_mean: np.ndarray, batch_var: np.ndarray, count: int) -> None:
        """Fold one batch's statistics (biased ``batch_var`` over ``count`` values) in."""
        sample_var = running_variance_sample(batch_var, count, self.estimator)
        self.steps += 1
        with np.errstate(invalid="ignore", over="ignore"):
            if self.warmup == "copy_first_batch" and self.steps == 1:
                self.batch_weight = 1.0
                self.mean = np.array(batch_mean, dtype=np.float64)
                self.var = np.array(sample_var, dtype=np.float64)
            elif self.mode == "ema":
                self.batch_weight = 1.0 - self.decay
                self.mean = ema(self.mean, batch_mean, self.decay)
                self.var = ema(self.var, sample_var, self.decay)
            elif self.mode == "cumulative":
                weight = self.batch_weight = 1.0 / self.steps
                self.mean = self.mean + (batch_mean - self.mean) * weight
                self.var = self.var + (sample_var - self.var) * weight
            else:
                if self._accumulators is None:
                    if self.debias_start == "state":  # Equinox: the loaded statistics are the hidden averages
                        self._accumulators = (self.mean.copy(), self.var.copy())
                    else:
                        self._accumulators = (np.zeros_like(self.mean), np.zeros_like(self.var))
                acc_mean = ema(self._accumulators[0], batch_mean, self.decay)
                acc_var = ema(self._accumulators[1], sample_var, self.decay)
                self._accumulators = (acc_mean, acc_var)
                correction = 1.0 - self.decay**self.steps
                if correction == 0.0:  # decay 1: the accumulator never moves (from zero or the state)
                    self.batch_weight = 0.0
                    self.mean, self.var = acc_mean, acc_var
                else:
                    self.batch_weight = (1.0 - self.decay) / correction
                    self.mean, self.var = acc_mean / correction, acc_var / correction


def ema(old: np.ndarray, new: np.ndarray, decay: float) -> np.ndarray:
    """One exponential-moving-average step: d · old + (1 − d) · new."""
    return decay * np.asarray(old, dtype=np.float64) + (1.0 - decay) * np.asarray(new, dtype=np.float64)
