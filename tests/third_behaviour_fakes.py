"""NumPy batch norms with a third behaviour: neither the declared convention nor the obvious alternative.

A convention probe that only picks the nearer of two candidates would pass them, or name the
wrong one; the probes must see that the observation matches neither.  Each fake is the honest
``fakes.NumpyAdapter`` with one step changed, and declares the honest conventions.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from fakes import NumpyAdapter


class EpsTwiceAdapter(NumpyAdapter):
    """Adds ε inside the square root and again outside it: √(σ² + ε) + ε.

    At the default ε = 1e-5 and σ² = 1e-6 this is 0.3 % off the declared √(σ² + ε), so an
    ε estimated from the output rounds to the declared 1e-05 and a nearest-candidate probe passes.
    """

    name = "eps-twice-fake"
    variants: ClassVar[dict[str, str]] = {}

    def _normalize(self, case, x, mean, var, eps, gamma, beta, dt):
        eps = dt(eps)
        return gamma * (x - mean) / (np.sqrt(var + eps) + eps) + beta


class DebiasedAverageAdapter(NumpyAdapter):
    """Divides the running mean by 1 − dᵗ after step t (Adam-style bias correction from a zero start).

    One step with decay 0.8 from zero gives the batch mean itself, 4, where the declared
    mapping predicts 0.8 and the inverted one 3.2: nearer the inverted one, yet neither.
    """

    name = "debiased-fake"
    variants: ClassVar[dict[str, str]] = {}

    def train(self, case, data, settings):
        result = super().train(case, data, settings)
        decay = self._decay(settings)
        if decay is not None and decay != 0.0:
            steps = np.arange(1, len(result["running_mean"]) + 1, dtype=np.float64)
            result["running_mean"] = result["running_mean"] / (1.0 - decay**steps)[:, None]
        return result
