"""The choices on which batch-norm implementations differ, as data.

The reference is configured with a framework's declared ``Conventions`` before it is
compared with that framework, so "PyTorch updates its running variance with the unbiased
estimator" is a declared, probe-able fact rather than a branch in a test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .forward import EPS_PLACEMENTS
from .running import AVERAGING_MODES, VARIANCE_ESTIMATORS


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
    """

    eps_placement: str = "inside"
    running_variance: str = "biased"
    averaging: str = "ema"
    tracks_running_stats: bool = True

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("eps_placement", self.eps_placement, EPS_PLACEMENTS),
            ("running_variance", self.running_variance, VARIANCE_ESTIMATORS),
            ("averaging", self.averaging, AVERAGING_MODES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)
