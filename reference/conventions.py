"""The choices on which batch-norm implementations differ, as data.

The reference is configured with a framework's declared ``Conventions`` before it is
compared with that framework, so "PyTorch updates its running variance with the unbiased
estimator" is a declared, probe-able fact rather than a branch in a test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .forward import EPS_PLACEMENTS
from .running import AVERAGING_MODES, DEBIAS_STARTS, VARIANCE_ESTIMATORS, WARMUPS, check_warmup

#: Which statistics a training step normalizes with.
NORMALIZATIONS = ("batch", "running")


@dataclass(frozen=True)
class Conventions:
    """How an implementation normalizes and keeps running statistics.

    * ``eps_placement``: ``"inside"`` the square root (√(σ² + ε)) or ``"outside"`` (√σ² + ε).
    * ``running_variance``: estimator fed into the running variance, ``"biased"`` or
      ``"unbiased"`` (× N/(N − 1)); normalization itself always uses the biased one.
    * ``averaging``: ``"ema"``, ``"cumulative"`` or ``"debiased_ema"``.
    * ``tracks_running_stats``: ``False`` when there are no running statistics and
      inference mode normalizes with the batch's own statistics (PyTorch
      ``track_running_stats=False``).
    * ``normalization``: what a training step normalizes with: ``"batch"``, the batch's own
      statistics (batch normalization proper), or ``"running"``, the running statistics this
      step has just updated, d·r + (1 − d)·b, with the gradients flowing into the batch
      statistics through their weight (Equinox ``mode="ema"``).
    * ``warmup``: ``"none"``, or ``"copy_first_batch"``: a fresh layer's first training step
      replaces the running statistics with the batch's, whatever the decay (Equinox
      ``mode="ema"``, first-time flag set; EMA averaging only).
    * ``debias_start``: where a ``"debiased_ema"`` accumulator starts: ``"zero"`` (Haiku: the
      loaded statistics are read before the first step, then forgotten) or ``"state"`` (Equinox
      ``mode="batch"``: the loaded statistics are the hidden averages, and are divided by
      1 − d^t with the rest).
    """

    eps_placement: str = "inside"
    running_variance: str = "biased"
    averaging: str = "ema"
    tracks_running_stats: bool = True
    normalization: str = "batch"
    warmup: str = "none"
    debias_start: str = "zero"

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("eps_placement", self.eps_placement, EPS_PLACEMENTS),
            ("running_variance", self.running_variance, VARIANCE_ESTIMATORS),
            ("averaging", self.averaging, AVERAGING_MODES),
            ("normalization", self.normalization, NORMALIZATIONS),
            ("warmup", self.warmup, WARMUPS),
            ("debias_start", self.debias_start, DEBIAS_STARTS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        check_warmup(self.warmup, self.averaging)
        if self.normalization == "running" and not self.tracks_running_stats:
            raise ValueError("normalization 'running' needs running statistics, got tracks_running_stats=False")

    def to_dict(self) -> dict:
        return asdict(self)
