"""A NumPy batch-norm adapter, correct by default and broken on request (for harness tests).

``NumpyAdapter("")`` is an honest implementation computing in the case's own precision
(float32 for float32 cases; half-precision cases are computed in float32 and rounded, as the
frameworks do).  Each variant injects one mistake a batch norm can make.  These fakes test
the harness's comparison and detection logic only; they are never evidence about a framework.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np

from adapters.base import Adapter, Capabilities, FrameworkConventions, Hyper, Inventory, LayerSpec, Settings, Variable
from datamodel.case import CaseData
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

    def _decay(self, settings: Settings) -> float | None:
        """The decay a run with ``settings`` really uses (for fakes that post-process ``train``)."""
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

    # -- the primitives: the layer is its spec, the state a dict of NumPy arrays -------------
    def build(self, spec: LayerSpec) -> LayerSpec:
        return spec

    def framework_defaults(self, layer: LayerSpec) -> tuple[float, float]:
        return self.ACTUAL_EPS, self.ACTUAL_MOMENTUM

    def load_state(self, layer: LayerSpec, data: CaseData, spec: LayerSpec) -> dict:
        dt = self._work_dtype(spec)
        gamma, beta = self._params(spec, data, dt)
        return {"gamma": gamma, "beta": beta, "mean": data.running_mean.copy(), "var": data.running_var.copy(), "steps": 0}

    def forward(self, layer: LayerSpec, state: dict, x, *, training: bool, hyper: Hyper):
        dt = self._work_dtype(layer)
        x = x.astype(dt)
        with np.errstate(all="ignore"):
            if not training:
                return self._eval(layer, state, x, hyper), state
            mean, var = self._stats(layer, x)
            y = self._out(layer, self._normalize(layer, x, mean, var, hyper.eps, state["gamma"], state["beta"], dt))
        return y, self._update(layer, state, x, mean, var, hyper)

    def running_statistics(self, layer: LayerSpec, state: dict):
        return state["mean"], state["var"]

    def vjp(self, layer: LayerSpec, state: dict, x, dy, hyper: Hyper):
        dt = self._work_dtype(layer)
        x, dy = x.astype(dt), dy.astype(dt)
        axes = self._axes(layer)
        mean, var = self._stats(layer, x)
        scale = np.sqrt(var + dt(hyper.eps))
        x_hat = (x - mean) / scale
        g = dy * state["gamma"]
        dx = g
        if self.variant != "dx_no_mean_term":
            dx = dx - g.mean(axis=axes, keepdims=True)
        if self.variant != "dx_no_variance_term":
            dx = dx - x_hat * (g * x_hat).mean(axis=axes, keepdims=True)
        if not layer.affine:
            return self._out(layer, dx / scale), None, None
        normalized = (x - mean) if self.variant == "dgamma_unnormalized" else x_hat
        dbeta = dy.mean(axis=axes) if self.variant == "dbeta_mean" else dy.sum(axis=axes)
        return self._out(layer, dx / scale), self._out(layer, (dy * normalized).sum(axis=axes)), self._out(layer, dbeta)

    # -- the implementation -------------------------------------------------------------
    def _work_dtype(self, spec: LayerSpec):
        if self.variant == "half_precision":
            return np.float16
        return np.float64 if spec.dtype == "float64" else np.float32

    def _axes(self, spec: LayerSpec):
        if self.variant == "batch_axis_only":
            return (0,) if spec.axis != 0 else (1,)
        return tuple(a for a in range(spec.rank) if a != spec.axis)

    def _shape(self, spec: LayerSpec, vector):
        return np.reshape(vector, [-1 if a == spec.axis else 1 for a in range(spec.rank)])

    def _stats(self, spec: LayerSpec, x):
        axes = self._axes(spec)
        mean = x.mean(axis=axes, keepdims=True)
        if self.variant == "fast_variance":
            var = (x * x).mean(axis=axes, keepdims=True) - mean * mean
        else:
            var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        if self.variant == "unbiased_normalization":
            count = x.size // mean.size
            var = var * count / max(count - 1, 1)
        return mean, var

    def _params(self, spec: LayerSpec, data: CaseData, dt):
        gamma = np.ones(spec.channels) if data.gamma is None else data.gamma
        beta = np.zeros(spec.channels) if data.beta is None else data.beta
        if self.variant == "gamma_beta_swapped" and data.gamma is not None:
            gamma, beta = beta, gamma
        if self.variant == "channels_reversed":
            gamma = gamma[::-1]
        return self._shape(spec, gamma.astype(dt)), self._shape(spec, beta.astype(dt))

    def _normalize(self, spec, x, mean, var, eps, gamma, beta, dt):
        eps = dt(eps)
        if self.variant == "eps_outside":
            scale = np.sqrt(var) + eps
        elif self.variant == "no_eps":
            scale = np.sqrt(var)
        else:
            scale = np.sqrt(var + eps)
        return gamma * (x - mean) / scale + beta

    def _out(self, spec: LayerSpec, y) -> np.ndarray:
        return round_to(np.asarray(y, dtype=np.float64), spec.dtype)

    def _eval(self, spec: LayerSpec, state: dict, x, hyper: Hyper) -> np.ndarray:
        dt = x.dtype.type
        if self.variant == "eval_uses_batch_stats":
            mean, var = self._stats(spec, x)
        else:
            mean, var = self._shape(spec, state["mean"].astype(dt)), self._shape(spec, state["var"].astype(dt))
        eps = 0.0 if self.variant == "eval_skips_eps" else hyper.eps
        return self._out(spec, self._normalize(spec, x, mean, var, eps, state["gamma"], state["beta"], dt))

    def _update(self, spec: LayerSpec, state: dict, x, mean, var, hyper: Hyper) -> dict:
        """The state after one training step: the running statistics' update."""
        steps = state["steps"] + 1
        count = x.size // mean.size
        flat_mean = mean.reshape(-1).astype(np.float64)
        flat_var = var.reshape(-1).astype(np.float64)
        if self.variant != "biased_running_var":
            flat_var = flat_var * count / (count - 1) if count > 1 else np.full_like(flat_var, np.nan)
        weight = 1.0 / steps if hyper.momentum is None else hyper.momentum  # momentum weights the new batch
        if self.variant == "momentum_flipped":
            weight = 1.0 - weight
        if self.variant == "stale_running_stats":
            return {**state, "steps": steps}
        return {**state, "steps": steps, "mean": round_to((1 - weight) * state["mean"] + weight * flat_mean, spec.dtype),
                "var": round_to((1 - weight) * state["var"] + weight * flat_var, spec.dtype)}  # fmt: skip

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

    def forward(self, layer, state, x, *, training, hyper):
        if training:
            raise RuntimeError("Expected more than 1 value per channel when training <b>bold</b>")
        return super().forward(layer, state, x, training=training, hyper=hyper)


class SegfaultAdapter(NumpyAdapter):
    """An adapter whose framework dies with SIGSEGV in training (a crashed process)."""

    name = "segfault-fake"
    variants: ClassVar[dict[str, str]] = {}

    def forward(self, layer, state, x, *, training, hyper):
        if training:
            import ctypes

            ctypes.string_at(0)  # reads address 0: SIGSEGV, the whole process dies
        return super().forward(layer, state, x, training=training, hyper=hyper)


class AbortAdapter(NumpyAdapter):
    """An adapter whose framework aborts (SIGABRT) in its gradients."""

    name = "abort-fake"
    variants: ClassVar[dict[str, str]] = {}

    def vjp(self, layer, state, x, dy, hyper):
        import os

        os.abort()


class HangingAdapter(NumpyAdapter):
    """An adapter whose framework never returns from the inference phase (training still works)."""

    name = "hanging-fake"
    variants: ClassVar[dict[str, str]] = {}

    def evaluate(self, case, data, settings):
        import time

        while True:
            time.sleep(1)


class InferenceOnlyAdapter(NumpyAdapter):
    """An engine that runs inference only (an exported runtime, say): the other phases are unsupported."""

    name = "inference-only-fake"
    variants: ClassVar[dict[str, str]] = {}

    @property
    def capabilities(self) -> Capabilities:
        return replace(super().capabilities, phases=frozenset({"inference"}))


class BrokenSettingsAdapter(NumpyAdapter):
    """An adapter whose own code raises before the framework runs (a harness failure, not a finding)."""

    name = "broken-settings-fake"
    variants: ClassVar[dict[str, str]] = {}

    def settings(self, case):
        raise KeyError("no such convention")


class ProcessBoundAdapter(NumpyAdapter):
    """An engine fixed at import by an environment variable, as Keras is by ``KERAS_BACKEND``.

    It refuses to load in a process started without its declared environment, so a replay
    that compares it with others must run it in a child process that has it.
    """

    name = "process-bound-fake"
    variants: ClassVar[dict[str, str]] = {}
    process_environment: ClassVar[dict[str, str]] = {"BNCONF_FAKE_BACKEND": "bound"}

    def version(self) -> str:
        import os

        if os.environ.get("BNCONF_FAKE_BACKEND") != "bound":
            raise ImportError("this fake loads only with BNCONF_FAKE_BACKEND=bound")
        return super().version()


class ProcessBoundRefusingAdapter(ProcessBoundAdapter):
    """Its declared environment makes its child process refuse every case (a limit of one element)."""

    name = "process-bound-refusing-fake"
    process_environment: ClassVar[dict[str, str]] = {"BNCONF_FAKE_BACKEND": "bound", "BNCONF_MAX_CASE_ELEMENTS": "1"}
