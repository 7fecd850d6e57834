r"""The tolerance model: how much error a correct implementation may make, per element.

An allowed error is derived, not chosen: it is what a numerically stable implementation
computing in the case's dtype would at most produce on *this* data.  Three things set it:

* **unit roundoff** u of the compute dtype for element-wise work and storage, and
  u_acc = min(u, u(float32)) for reductions: every framework accumulates half-precision
  statistics in at least float32 (BN in float16 overflows otherwise), so we expect that too;
* **reduction size** N, through the probabilistic rounding-error bound of a sum of N terms,
  whose error grows like √N·u rather than the worst case N·u (Higham & Mary, 2019);
  we use f(N) = √N + 1.  That bound assumes independent rounding errors, which holds for
  the data's fluctuations around the mean but not for its common offset: N nearly equal
  summands round alike, so the offset's share of the mean keeps the worst case (N − 1)·u;
* **conditioning** of the data: the error of x − μ scales with |x| + |μ| (not with the
  spread σ), the variance's condition number scales with mean(|x − μ|·|x|)/σ², and every
  error is divided by s = √(σ² + ε), so a variance small against ε damps them and a large
  mean relative to the spread amplifies them.

First-order bounds, per channel (M₁ = mean|x|, x̂ = (x − μ)/s):

    Δμ     = u_acc·(f(N)·mean|x − μ| + (N − 1)·|μ|) + u·|μ|
    Δσ²    = u_acc·f(N)·2·mean(|x − μ|·|x|) + Δμ² + u·σ²
    Δs/s   = |ds/dσ²|·Δσ²/s                       (½Δσ²/(σ²+ε) with ε inside)
    Δx̂     = (u·(|x| + |μ|) + η_sub + Δμ)/s + |x̂|·Δs/s
    Δy     = |γ|·Δx̂ + u·(|β| + |y|) + η_acc·|x − μ|          (η_acc: the factor γ/s flushed to zero)
    running statistics:  Δr_t = a_t·Δr_{t−1} + w_t·Δb_t + u·(|r_{t−1}| + |b_t| + |r_t|) + η_sub
                         for r_t = a_t·r_{t−1} + w_t·b_t (EMA: a = d, w = 1 − d; cumulative: w = 1/t)
    inference mode: Δy with the given statistics exact, plus the running statistics' Δ after training
    Δβ-grad = u_acc·f(N)·Σ|dy| + u·|Σ dy|
    Δγ-grad = u_acc·f(N)·Σ|dy·x̂| + Σ|dy|·Δx̂ + u·|Σ dy·x̂|
    Δdx     = |γ|/s·[u·(|dy| + |ḡ| + |x̂|·|ḡx̂|) + u_acc·f(N)·(m|dy| + |x̂|·m|dy·x̂|)
              + Δx̂·|ḡx̂| + |x̂|·m(|dy|·Δx̂)] + |dx|·(Δs/s + u) + η_acc·(|dy| + |ḡ| + |x̂|·|ḡx̂|)

(ḡ = mean(dy), ḡx̂ = mean(dy·x̂), m = mean over the channel.)  Underflow adds absolute terms
(the standard model fl(a ∘ b) = (a ∘ b)(1 + δ) + η): x − μ formed in the compute dtype may
lose the subnormal spacing η_sub of that dtype (gradual underflow), which the division by s
amplifies; and every output may lose up to the smallest normal number η (flush-to-zero is a
legitimate choice, and TensorFlow makes it on CPUs), once in the output dtype and at most
N + 2 times in the accumulation dtype: η_out + (N + 2)·η_acc.  Each bound is multiplied by
one safety factor, ``SAFETY``, which absorbs the constants of the first-order analysis (a
handful of roundings per element).  It was calibrated on the three frameworks and on
float32/float16 NumPy implementations over the nightly profile's hardest data; see the
README's tolerance section for the evidence and ``tests/test_detection.py`` for the proof
that broken implementations still fail.

In the code each family has its own function: ``batch_statistic_errors`` (Δμ, Δσ²),
``normalized_errors`` (Δx̂) and ``output_errors`` (Δy), ``running_statistic_errors``,
``inference_errors`` and ``gradient_errors``; ``allowed_errors`` composes them, adds the
underflow floor and applies ``SAFETY``.  s is the reference's own ``normalizer``.

Non-finite values are not toleranced: NaN and ±inf must appear exactly where the reference
has them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodel.case import CaseData
from reference import UNIT_ROUNDOFF, Conventions, Expected
from reference.dtypes import numpy_dtype
from reference.forward import ChannelLayout, normalizer
from reference.running import running_variance_sample

#: Multiplies every first-order bound; see the module docstring and the README.
SAFETY = 8.0

#: Accumulations are expected in at least float32 (see the module docstring).
_ACCUMULATION_FLOOR = UNIT_ROUNDOFF["float32"]


def smallest_normal(dtype: str) -> float:
    """η: the smallest positive normal number of ``dtype``."""
    import ml_dtypes

    return float(ml_dtypes.finfo(numpy_dtype(dtype)).smallest_normal)


def largest_finite(dtype: str) -> float:
    """The largest finite number of ``dtype``: beyond it a correctly rounded result is ±∞."""
    import ml_dtypes

    return float(ml_dtypes.finfo(numpy_dtype(dtype)).max)


def smallest_subnormal(dtype: str) -> float:
    """The spacing of ``dtype``'s subnormal numbers: what gradual underflow may lose per rounding."""
    import ml_dtypes

    return float(ml_dtypes.finfo(numpy_dtype(dtype)).smallest_subnormal)


def underflow_floor(dtype: str, count: int) -> float:
    """η_out + (N + 2)·η_acc: what flushing subnormals to zero may cost (see the module docstring)."""
    accumulation = "float64" if dtype == "float64" else "float32"
    return smallest_normal(dtype) + (count + 2) * smallest_normal(accumulation)


def growth(count: int) -> float:
    """f(N) = √N + 1: probabilistic growth of the rounding error of an N-term sum."""
    return float(np.sqrt(max(count, 1))) + 1.0


@dataclass(frozen=True)
class ToleranceInputs:
    """What the model needs to know about one case run: its arrays and resolved settings."""

    data: CaseData
    axis: int
    eps: float
    decay: float | None
    dtype: str
    conventions: Conventions


def _nan_safe(array: np.ndarray) -> np.ndarray:
    """Non-finite expected values are compared by position, not by tolerance."""
    return np.where(np.isfinite(array), array, 0.0)


@dataclass(frozen=True)
class _Model:
    """The constants of one case run that every family's bound shares."""

    inputs: ToleranceInputs
    layout: ChannelLayout
    gamma: np.ndarray
    beta: np.ndarray
    u: float  # unit roundoff of the compute dtype
    u_acc: float  # unit roundoff of the accumulation: min(u, u(float32))
    eta_sub: float  # subnormal spacing of the compute dtype: x − μ may underflow gradually
    eta_flush: float  # smallest normal of the accumulation dtype: flush-to-zero

    @classmethod
    def of(cls, inputs: ToleranceInputs) -> _Model:
        layout = ChannelLayout.of(inputs.data.batches[0].shape, inputs.axis)
        channels = inputs.data.batches[0].shape[layout.axis]
        u = UNIT_ROUNDOFF[inputs.dtype]
        return cls(
            inputs=inputs, layout=layout,
            gamma=np.ones(channels) if inputs.data.gamma is None else inputs.data.gamma,
            beta=np.zeros(channels) if inputs.data.beta is None else inputs.data.beta,
            u=u, u_acc=min(u, _ACCUMULATION_FLOOR), eta_sub=smallest_subnormal(inputs.dtype),
            eta_flush=smallest_normal("float64" if inputs.dtype == "float64" else "float32"),
        )  # fmt: skip

    @property
    def channels(self) -> int:
        return self.gamma.shape[0]

    def scale(self, var: np.ndarray) -> np.ndarray:
        """s: the reference's own denominator, √(σ² + ε) or √σ² + ε."""
        return normalizer(var, self.inputs.eps, self.inputs.conventions.eps_placement)

    def per_channel_mean(self, array: np.ndarray) -> np.ndarray:
        return np.mean(array, axis=self.layout.reduced_axes)

    def per_channel_sum(self, array: np.ndarray) -> np.ndarray:
        return np.sum(array, axis=self.layout.reduced_axes)


def relative_scale_error(model: _Model, var: np.ndarray, dvar: np.ndarray) -> np.ndarray:
    """Δs/s = |ds/dσ²|·Δσ²/s, per channel."""
    s = model.scale(var)
    inside = model.inputs.conventions.eps_placement == "inside"
    ds_dvar = 1.0 / (2.0 * s) if inside else 1.0 / (2.0 * np.sqrt(var))
    return _nan_safe(ds_dvar * dvar / s)


def batch_statistic_errors(model: _Model, x: np.ndarray, mean: np.ndarray, var: np.ndarray, count: int):
    """Δμ and Δσ², per channel, for the batch statistics of ``x`` (over ``count`` values each)."""
    bc = model.layout.broadcast
    f = growth(count)
    # The spread's rounding errors are independent (√N growth); the common offset's are
    # not (N copies of nearly one value round alike), so it gets the worst case N − 1.
    fluctuation = model.per_channel_mean(np.abs(_nan_safe(x - bc(mean))))
    dmean = model.u_acc * (f * fluctuation + (count - 1) * np.abs(mean)) + model.u * np.abs(mean)
    spread = model.per_channel_mean(np.abs(_nan_safe(x - bc(mean))) * np.abs(_nan_safe(x)))
    dvar = model.u_acc * f * 2.0 * spread + dmean**2 + model.u * np.abs(var)
    return _nan_safe(dmean), _nan_safe(dvar)


def normalized_errors(model: _Model, x, mean, dmean, var, dvar) -> tuple[np.ndarray, np.ndarray]:
    """Δx̂ (elementwise) and x̂, for statistics ``mean``/``var`` that err by ``dmean``/``dvar``."""
    bc = model.layout.broadcast
    s = bc(model.scale(var))
    x_hat = _nan_safe((x - bc(mean)) / s)
    dx_hat = (model.u * (np.abs(x) + bc(np.abs(mean))) + bc(dmean) + model.eta_sub) / s + np.abs(x_hat) * bc(
        relative_scale_error(model, var, dvar)
    )
    return _nan_safe(dx_hat), x_hat


def output_errors(model: _Model, x_hat: np.ndarray, dx_hat: np.ndarray, x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Δy = |γ|·Δx̂ + u·(|β| + |y|) + η_acc·|x − μ|, elementwise."""
    bc = model.layout.broadcast
    y = bc(model.gamma) * x_hat + bc(model.beta)
    # The fused form y = (x − μ)·(γ/s) + β may flush its factor γ/s to zero: η_flush·|x − μ|.
    flushed_scale = model.eta_flush * _nan_safe(np.abs(x - bc(mean)))
    return bc(np.abs(model.gamma)) * dx_hat + model.u * (bc(np.abs(model.beta)) + np.abs(_nan_safe(y))) + flushed_scale


def training_output_errors(model: _Model, x: np.ndarray, mean: np.ndarray, var: np.ndarray, count: int) -> np.ndarray:
    """Δy of a training step: normalized with its own batch statistics, which err too."""
    dmean, dvar = batch_statistic_errors(model, x, mean, var, count)
    dx_hat, x_hat = normalized_errors(model, x, mean, dmean, var, dvar)
    return output_errors(model, x_hat, dx_hat, x, mean)


def _update_weights(model: _Model, step: int) -> tuple[float, float]:
    """(a_t, w_t) of r_t = a_t·r_{t−1} + w_t·b_t: the reference's ``RunningStatistics.update`` as weights."""
    if model.inputs.conventions.averaging == "cumulative":
        return 1.0 - 1.0 / step, 1.0 / step
    keep = model.inputs.decay
    return keep, 1.0 - keep


def _variance_factor(count: int, estimator: str) -> float:
    """N/(N − 1) for the unbiased estimator, 1 for the biased one: the reference's sample variance of σ² = 1.

    With N = 1 the unbiased running variance is NaN, compared by position; its factor is taken as 1.
    """
    factor = float(running_variance_sample(np.ones(()), count, estimator))
    return factor if np.isfinite(factor) else 1.0


def running_statistic_errors(model: _Model, expected: Expected) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Δ of the running mean and variance after each training step (see the module docstring)."""
    data, u, eta = model.inputs.data, model.u, model.eta_sub
    r_mean, r_var = np.abs(data.running_mean), np.abs(data.running_var)
    d_mean = d_var = np.zeros(model.channels)
    factor = _variance_factor(expected.count, model.inputs.conventions.running_variance)
    mean_tols, var_tols = [], []
    steps = zip(data.batches, expected.batch_means, expected.batch_vars, strict=False)
    for step, (x, mean, var) in enumerate(steps, 1):
        dmean, dvar = batch_statistic_errors(model, x, mean, var, expected.count)
        keep, weight = _update_weights(model, step)
        sample_var = np.abs(var) * factor
        new_mean = np.abs(keep * r_mean) + np.abs(weight * mean)
        new_var = np.abs(keep * r_var) + np.abs(weight * sample_var)
        # Rounding: u·(|r_{t−1}| + |b_t| + |r_t|) covers both algebraic forms of the update,
        # d·r + (1 − d)·b and r + (1 − d)·(b − r) (a lerp, whose error scales with |r_{t−1}|
        # even when the weight of r_{t−1} is 0, as in the first cumulative step).
        # Stored in the compute dtype, a running statistic may also land among its subnormals: + η_sub.
        d_mean = keep * d_mean + weight * dmean + u * (r_mean + np.abs(mean) + new_mean) + eta
        d_var = keep * d_var + weight * dvar * factor + u * (r_var + sample_var + new_var) + eta
        r_mean, r_var = new_mean, new_var
        mean_tols.append(d_mean)
        var_tols.append(d_var)
    return mean_tols, var_tols


def inference_errors(model: _Model, expected: Expected, mean, dmean, var, dvar) -> np.ndarray:
    """Δy in inference mode on the first batch, normalized by ``mean``/``var`` that err by ``dmean``/``dvar``.

    Without running statistics, inference mode normalizes with the batch's own statistics.
    """
    first = model.inputs.data.batches[0]
    if not model.inputs.conventions.tracks_running_stats:
        mean, var = expected.batch_means[0], expected.batch_vars[0]
        dmean, dvar = batch_statistic_errors(model, first, mean, var, expected.count)
    dx_hat, x_hat = normalized_errors(model, first, mean, dmean, var, dvar)
    return output_errors(model, x_hat, dx_hat, first, mean)


def gradient_errors(model: _Model, expected: Expected) -> dict[str, np.ndarray]:
    """Δdβ, Δdγ and Δdx of the first training step (see the module docstring)."""
    bc, u, u_acc = model.layout.broadcast, model.u, model.u_acc
    mean_of, sum_of = model.per_channel_mean, model.per_channel_sum
    x, mean, var = model.inputs.data.batches[0], expected.batch_means[0], expected.batch_vars[0]
    f = growth(expected.count)
    dmean, dvar = batch_statistic_errors(model, x, mean, var, expected.count)
    dx_hat, x_hat = normalized_errors(model, x, mean, dmean, var, dvar)
    dy = _nan_safe(model.inputs.data.dy)
    abs_dy = np.abs(dy)
    dy_xhat = dy * x_hat
    allowed = {
        "dbeta": u_acc * f * sum_of(abs_dy) + u * np.abs(sum_of(dy)),
        "dgamma": u_acc * f * sum_of(np.abs(dy_xhat)) + sum_of(abs_dy * dx_hat) + u * np.abs(sum_of(dy_xhat)),
    }
    s = bc(model.scale(var))
    g_mean = bc(np.abs(mean_of(dy)))
    gx_mean = bc(np.abs(mean_of(dy_xhat)))
    inner = (
        u * (abs_dy + g_mean + np.abs(x_hat) * gx_mean)
        + u_acc * f * (bc(mean_of(abs_dy)) + np.abs(x_hat) * bc(mean_of(np.abs(dy_xhat))))
        + dx_hat * gx_mean
        + np.abs(x_hat) * bc(mean_of(abs_dy * dx_hat))
    )
    dx_expected = np.abs(_nan_safe(expected.values["dx"]))
    allowed["dx"] = _nan_safe(
        bc(np.abs(model.gamma)) / s * inner + dx_expected * (bc(relative_scale_error(model, var, dvar)) + u)
        + model.eta_flush * (abs_dy + g_mean + np.abs(x_hat) * gx_mean)  # the factor γ/s flushed to zero
    )  # fmt: skip
    return allowed


def allowed_errors(inputs: ToleranceInputs, expected: Expected, safety: float = SAFETY) -> dict[str, np.ndarray]:
    """Per-element allowed absolute error of every quantity in ``expected.values``.

    Composed of one bound per family: ``training_output_errors`` (y of each step, through
    ``batch_statistic_errors`` and ``normalized_errors``), ``running_statistic_errors``,
    ``inference_errors`` (before and after training) and ``gradient_errors``; then the
    underflow floor is added and the sum scaled by ``safety``.
    """
    model = _Model.of(inputs)
    data = inputs.data
    zero = np.zeros(model.channels)
    with np.errstate(all="ignore"):
        # Inference mode with the given running statistics (exact inputs).
        allowed = {"y_eval": inference_errors(model, expected, data.running_mean, zero, data.running_var, zero)}
        allowed["y_train"] = np.stack([
            training_output_errors(model, x, mean, var, expected.count)
            for x, mean, var in zip(data.batches, expected.batch_means, expected.batch_vars, strict=False)
        ])  # fmt: skip
        if inputs.conventions.tracks_running_stats:
            mean_tols, var_tols = running_statistic_errors(model, expected)
            allowed["running_mean"] = np.stack(mean_tols)
            allowed["running_var"] = np.stack(var_tols)
            final_mean = _nan_safe(expected.values["running_mean"][-1])
            final_var = _nan_safe(expected.values["running_var"][-1])
            after = (final_mean, mean_tols[-1], final_var, var_tols[-1])
            allowed["y_eval_after"] = inference_errors(model, expected, *after)
        else:
            allowed["y_eval_after"] = allowed["y_eval"]
        allowed.update(gradient_errors(model, expected))
    floor = underflow_floor(inputs.dtype, expected.count)
    return {name: safety * (_nan_safe(value) + floor) for name, value in allowed.items() if name in expected.values}
