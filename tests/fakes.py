"""A NumPy batch-norm adapter, correct by default and broken on request (for harness tests).

``NumpyAdapter("")`` is an honest implementation computing in the case's own precision
(float32 for float32 cases; half-precision cases are computed in float32 and rounded, as the
frameworks do).  Each variant injects one mistake a batch norm can make.  These fakes test
the harness's comparison and detection logic only; they are never evidence about a framework.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from adapters.base import Adapter, Capabilities, FrameworkConventions, Inventory, Settings, Variable
from datamodel.case import Case, CaseData
from reference import Conventions
from reference.dtypes import round_to

BUGS = {
    "eps_outside": "normalization: ε added outside the square root",
    "no_eps": "normalization: ε left out",
    "unbiased_normalization": "statistics: normalizes with the unbiased variance",
    "batch_axis_only": "statistics: reduces over the batch axis only, not the spatial axes",
    "momentum_flipped": "running update: new batch weighted by the decay instead of 1 − decay",
    "biased_running_var": "running update: biased variance where unbiased is declared",
    "stale_running_stats": "running update: running statistics never updated",
    "eval_uses_batch_stats": "inference mode: normalizes with the batch's statistics",
    "eval_skips_eps": "inference mode: ε left out",
    "gamma_beta_swapped": "per-channel parameters: scale and offset swapped",
    "channels_reversed": "per-channel parameters: γ applied in reversed channel order",
    "half_precision": "precision: computes everything in float16",
    "fast_variance": "precision: variance as E[x²] − E[x]² in the compute dtype",
    "dx_no_mean_term": "gradient: dx misses the mean(g) term",
    "dx_no_variance_term": "gradient: dx misses the x̂·mean(g·x̂) term",
    "dgamma_unnormalized": "gradient: dγ uses x − μ instead of x̂",
    "dbeta_mean": "gradient: dβ is the mean of dy instead of its sum",
    "wrong_declared_defaults": "conventions: declares ε 1e-3 and momentum 0.3; really uses 1e-5 and 0.1",
}


class NumpyAdapter(Adapter):
    name = "numpy-fake"
    variants: ClassVar[dict[str, str]] = BUGS

    def version(self) -> str:
        return f"numpy {np.__version__}"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            ranks=frozenset({2, 3, 4, 5}), dtypes=frozenset({"float16", "bfloat16", "float32", "float64"}),
            devices=frozenset({"cpu"}), any_channel_axis=True, affine_off=True, cumulative=True,
        )  # fmt: skip

    #: What this "framework" really uses when a case leaves ε or the momentum unset.
    ACTUAL_EPS, ACTUAL_MOMENTUM = 1e-5, 0.1

    def _eps(self, settings: Settings) -> float:
        return settings.eps if settings.eps_given else self.ACTUAL_EPS

    def _decay(self, settings: Settings) -> float | None:
        if not settings.momentum_given:
            return 1.0 - self.ACTUAL_MOMENTUM
        return settings.decay

    @property
    def conventions(self) -> FrameworkConventions:
        wrong = self.variant == "wrong_declared_defaults"
        return FrameworkConventions(
            momentum_name="momentum", momentum_form="new_weight", momentum_default=0.3 if wrong else 0.1,
            eps_default=1e-3 if wrong else 1e-5,
            default_channel_axis=1, reference=Conventions(running_variance="unbiased"),
            parameter_names={"scale": "weight", "offset": "bias", "running_mean": "running_mean", "running_variance": "running_var"},
        )  # fmt: skip

    # -- the implementation -------------------------------------------------------------
    def _work_dtype(self, case: Case):
        if self.variant == "half_precision":
            return np.float16
        return np.float64 if case.dtype == "float64" else np.float32

    def _axes(self, case: Case):
        if self.variant == "batch_axis_only":
            return (0,) if case.layout.axis != 0 else (1,)
        return case.layout.reduced_axes

    def _shape(self, case: Case, vector):
        return case.layout.broadcast(vector)

    def _stats(self, case: Case, x):
        axes = self._axes(case)
        mean = x.mean(axis=axes, keepdims=True)
        if self.variant == "fast_variance":
            var = (x * x).mean(axis=axes, keepdims=True) - mean * mean
        else:
            var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        if self.variant == "unbiased_normalization":
            count = x.size // mean.size
            var = var * count / max(count - 1, 1)
        return mean, var

    def _params(self, case: Case, data: CaseData, dt):
        gamma = np.ones(case.channels) if data.gamma is None else data.gamma
        beta = np.zeros(case.channels) if data.beta is None else data.beta
        if self.variant == "gamma_beta_swapped" and data.gamma is not None:
            gamma, beta = beta, gamma
        if self.variant == "channels_reversed":
            gamma = gamma[::-1]
        return self._shape(case, gamma.astype(dt)), self._shape(case, beta.astype(dt))

    def _normalize(self, case, x, mean, var, eps, gamma, beta, dt):
        eps = dt(eps)
        if self.variant == "eps_outside":
            scale = np.sqrt(var) + eps
        elif self.variant == "no_eps":
            scale = np.sqrt(var)
        else:
            scale = np.sqrt(var + eps)
        return gamma * (x - mean) / scale + beta

    def _out(self, case: Case, y) -> np.ndarray:
        return round_to(np.asarray(y, dtype=np.float64), case.dtype)

    def evaluate(self, case: Case, data: CaseData, settings: Settings) -> np.ndarray:
        return self._eval(case, data, settings, data.running_mean, data.running_var)

    def _eval(self, case, data, settings, running_mean, running_var):
        dt = self._work_dtype(case)
        x = data.batches[0].astype(dt)
        gamma, beta = self._params(case, data, dt)
        if self.variant == "eval_uses_batch_stats":
            mean, var = self._stats(case, x)
        else:
            mean = self._shape(case, np.asarray(running_mean).astype(dt))
            var = self._shape(case, np.asarray(running_var).astype(dt))
        eps = 0.0 if self.variant == "eval_skips_eps" else self._eps(settings)
        with np.errstate(all="ignore"):
            return self._out(case, self._normalize(case, x, mean, var, eps, gamma, beta, dt))

    def train(self, case: Case, data: CaseData, settings: Settings) -> dict[str, np.ndarray]:
        dt = self._work_dtype(case)
        gamma, beta = self._params(case, data, dt)
        r_mean, r_var = data.running_mean.copy(), data.running_var.copy()
        outputs, means, variances = [], [], []
        for step, batch in enumerate(data.batches, 1):
            x = batch.astype(dt)
            mean, var = self._stats(case, x)
            with np.errstate(all="ignore"):
                outputs.append(self._out(case, self._normalize(case, x, mean, var, self._eps(settings), gamma, beta, dt)))
            count = x.size // mean.size
            flat_mean = mean.reshape(-1).astype(np.float64)
            flat_var = var.reshape(-1).astype(np.float64)
            if self.variant != "biased_running_var":
                flat_var = flat_var * count / (count - 1) if count > 1 else np.full_like(flat_var, np.nan)
            decay = self._decay(settings)
            weight = 1.0 / step if decay is None else 1.0 - decay
            if self.variant == "momentum_flipped":
                weight = 1.0 - weight
            if self.variant != "stale_running_stats":
                r_mean = round_to((1 - weight) * r_mean + weight * flat_mean, case.dtype)
                r_var = round_to((1 - weight) * r_var + weight * flat_var, case.dtype)
            means.append(r_mean)
            variances.append(r_var)
        return {
            "y_train": np.stack(outputs), "running_mean": np.stack(means), "running_var": np.stack(variances),
            "y_eval_after": self._eval(case, data, settings, r_mean, r_var),
        }  # fmt: skip

    def gradients(self, case: Case, data: CaseData, settings: Settings) -> dict[str, np.ndarray]:
        dt = self._work_dtype(case)
        x = data.batches[0].astype(dt)
        dy = data.dy.astype(dt)
        gamma, _ = self._params(case, data, dt)
        axes = self._axes(case)
        mean, var = self._stats(case, x)
        scale = np.sqrt(var + dt(self._eps(settings)))
        x_hat = (x - mean) / scale
        g = dy * gamma
        dx = g
        if self.variant != "dx_no_mean_term":
            dx = dx - g.mean(axis=axes, keepdims=True)
        if self.variant != "dx_no_variance_term":
            dx = dx - x_hat * (g * x_hat).mean(axis=axes, keepdims=True)
        dx = dx / scale
        result = {"dx": self._out(case, dx)}
        if case.affine:
            normalized = (x - mean) if self.variant == "dgamma_unnormalized" else x_hat
            dbeta = dy.mean(axis=axes) if self.variant == "dbeta_mean" else dy.sum(axis=axes)
            result.update(dgamma=self._out(case, (dy * normalized).sum(axis=axes)), dbeta=self._out(case, dbeta))
        return {k: v.reshape(-1) if k != "dx" else v for k, v in result.items()}

    def inventory(self, shape, channel_axis, dtype="float32") -> Inventory:
        c = shape[channel_axis]
        variables = (
            Variable("weight", "scale", (c,), dtype, True), Variable("bias", "offset", (c,), dtype, True),
            Variable("running_mean", "running_mean", (c,), dtype, False),
            Variable("running_var", "running_variance", (c,), dtype, False),
        )  # fmt: skip
        return Inventory(variables, 2 * c, 2 * c, 4 * c, {"fake": 4 * c})


class CrashingAdapter(NumpyAdapter):
    """An adapter whose framework raises in every training step (an 'error' outcome)."""

    name = "crashing-fake"
    variants: ClassVar[dict[str, str]] = {}

    def train(self, case, data, settings):
        raise RuntimeError("Expected more than 1 value per channel when training <b>bold</b>")


class SegfaultAdapter(NumpyAdapter):
    """An adapter whose framework dies with SIGSEGV in training (a crashed process)."""

    name = "segfault-fake"
    variants: ClassVar[dict[str, str]] = {}

    def train(self, case, data, settings):
        import ctypes

        ctypes.string_at(0)  # reads address 0: SIGSEGV, the whole process dies


class AbortAdapter(NumpyAdapter):
    """An adapter whose framework aborts (SIGABRT) in its gradients."""

    name = "abort-fake"
    variants: ClassVar[dict[str, str]] = {}

    def gradients(self, case, data, settings):
        import os

        os.abort()


class HangingAdapter(NumpyAdapter):
    """An adapter whose framework never returns from inference mode."""

    name = "hanging-fake"
    variants: ClassVar[dict[str, str]] = {}

    def evaluate(self, case, data, settings):
        import time

        while True:
            time.sleep(1)


class BrokenSettingsAdapter(NumpyAdapter):
    """An adapter whose own code raises before the framework runs (a harness failure, not a finding)."""

    name = "broken-settings-fake"
    variants: ClassVar[dict[str, str]] = {}

    def settings(self, case):
        raise KeyError("no such convention")
