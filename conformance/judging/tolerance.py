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

Non-finite values are not toleranced: NaN and ±inf must appear exactly where the reference
has them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodel.case import CaseData
from reference import UNIT_ROUNDOFF, Conventions, Expected
from reference.dtypes import numpy_dtype
from reference.forward import ChannelLayout

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


def allowed_errors(inputs: ToleranceInputs, expected: Expected, safety: float = SAFETY) -> dict[str, np.ndarray]:
    """Per-element allowed absolute error of every quantity in ``expected.values``."""
    u = UNIT_ROUNDOFF[inputs.dtype]
    u_acc = min(u, _ACCUMULATION_FLOOR)
    eta = smallest_subnormal(inputs.dtype)  # x − μ formed in the compute dtype may underflow
    eta_flush = smallest_normal("float64" if inputs.dtype == "float64" else "float32")  # flush-to-zero
    layout = ChannelLayout.of(inputs.data.batches[0].shape, inputs.axis)
    bc = layout.broadcast
    axes = layout.reduced_axes
    channels = inputs.data.batches[0].shape[layout.axis]
    gamma = np.ones(channels) if inputs.data.gamma is None else inputs.data.gamma
    beta = np.zeros(channels) if inputs.data.beta is None else inputs.data.beta
    inside = inputs.conventions.eps_placement == "inside"

    with np.errstate(all="ignore"):

        def scale_of(var):
            return np.sqrt(var + inputs.eps) if inside else np.sqrt(var) + inputs.eps

        def relative_scale_error(var, dvar):
            s = scale_of(var)
            ds_dvar = 1.0 / (2.0 * s) if inside else 1.0 / (2.0 * np.sqrt(var))
            return _nan_safe(ds_dvar * dvar / s)

        def normalized_error(x, mean, dmean, var, dvar):
            """Δx̂ (elementwise) and x̂ for given statistics and their errors."""
            s = bc(scale_of(var))
            x_hat = _nan_safe((x - bc(mean)) / s)
            dx_hat = (u * (np.abs(x) + bc(np.abs(mean))) + bc(dmean) + eta) / s + np.abs(x_hat) * bc(
                relative_scale_error(var, dvar)
            )
            return _nan_safe(dx_hat), x_hat

        def output_error(x_hat, dx_hat, x, mean):
            y = bc(gamma) * x_hat + bc(beta)
            # The fused form y = (x − μ)·(γ/s) + β may flush its factor γ/s to zero: η_flush·|x − μ|.
            flushed_scale = eta_flush * _nan_safe(np.abs(x - bc(mean)))
            return bc(np.abs(gamma)) * dx_hat + u * (bc(np.abs(beta)) + np.abs(_nan_safe(y))) + flushed_scale

        def batch_errors(x, mean, var, count):
            f = growth(count)
            # The spread's rounding errors are independent (√N growth); the common offset's are
            # not (N copies of nearly one value round alike), so it gets the worst case N − 1.
            fluctuation = np.mean(np.abs(_nan_safe(x - bc(mean))), axis=axes)
            dmean = u_acc * (f * fluctuation + (count - 1) * np.abs(mean)) + u * np.abs(mean)
            spread = np.mean(np.abs(_nan_safe(x - bc(mean))) * np.abs(_nan_safe(x)), axis=axes)
            dvar = u_acc * f * 2.0 * spread + dmean**2 + u * np.abs(var)
            return _nan_safe(dmean), _nan_safe(dvar)

        allowed: dict[str, np.ndarray] = {}
        first = inputs.data.batches[0]
        zero = np.zeros(channels)

        # Inference mode with the given running statistics (exact inputs).
        if inputs.conventions.tracks_running_stats:
            eval_mean = inputs.data.running_mean
            dx_hat, x_hat = normalized_error(first, eval_mean, zero, inputs.data.running_var, zero)
        else:
            eval_mean = expected.batch_means[0]
            dmean, dvar = batch_errors(first, eval_mean, expected.batch_vars[0], expected.count)
            dx_hat, x_hat = normalized_error(first, eval_mean, dmean, expected.batch_vars[0], dvar)
        allowed["y_eval"] = output_error(x_hat, dx_hat, first, eval_mean)

        # Training steps and running statistics.
        outputs = []
        r_mean, r_var = np.abs(inputs.data.running_mean), np.abs(inputs.data.running_var)
        d_mean, d_var = zero, zero
        mean_tols, var_tols = [], []
        unbiased = inputs.conventions.running_variance == "unbiased"
        for step, (x, mean, var) in enumerate(zip(inputs.data.batches, expected.batch_means, expected.batch_vars, strict=False), 1):
            dmean, dvar = batch_errors(x, mean, var, expected.count)
            dx_hat, x_hat = normalized_error(x, mean, dmean, var, dvar)
            outputs.append(output_error(x_hat, dx_hat, x, mean))
            if inputs.conventions.averaging == "cumulative":
                keep, weight = 1.0 - 1.0 / step, 1.0 / step
            else:
                keep = inputs.decay
                weight = 1.0 - keep
            factor = expected.count / (expected.count - 1) if unbiased and expected.count > 1 else 1.0
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
        allowed["y_train"] = np.stack(outputs)
        if inputs.conventions.tracks_running_stats:
            allowed["running_mean"] = np.stack(mean_tols)
            allowed["running_var"] = np.stack(var_tols)
            final_mean = expected.values["running_mean"][-1]
            final_var = expected.values["running_var"][-1]
            dx_hat, x_hat = normalized_error(first, _nan_safe(final_mean), d_mean, _nan_safe(final_var), d_var)
            allowed["y_eval_after"] = output_error(x_hat, dx_hat, first, _nan_safe(final_mean))
        else:
            allowed["y_eval_after"] = allowed["y_eval"]

        # Gradients of the first training step.
        x, mean, var = first, expected.batch_means[0], expected.batch_vars[0]
        count = expected.count
        f = growth(count)
        dmean, dvar = batch_errors(x, mean, var, count)
        dx_hat, x_hat = normalized_error(x, mean, dmean, var, dvar)
        dy = _nan_safe(inputs.data.dy)
        abs_dy = np.abs(dy)
        dy_xhat = dy * x_hat
        if "dbeta" in expected.values:
            allowed["dbeta"] = u_acc * f * np.sum(abs_dy, axis=axes) + u * np.abs(np.sum(dy, axis=axes))
        if "dgamma" in expected.values:
            allowed["dgamma"] = (
                u_acc * f * np.sum(np.abs(dy_xhat), axis=axes)
                + np.sum(abs_dy * dx_hat, axis=axes)
                + u * np.abs(np.sum(dy_xhat, axis=axes))
            )
        s = bc(scale_of(var))
        g_mean = bc(np.abs(np.mean(dy, axis=axes)))
        gx_mean = bc(np.abs(np.mean(dy_xhat, axis=axes)))
        inner = (
            u * (abs_dy + g_mean + np.abs(x_hat) * gx_mean)
            + u_acc * f * (bc(np.mean(abs_dy, axis=axes)) + np.abs(x_hat) * bc(np.mean(np.abs(dy_xhat), axis=axes)))
            + dx_hat * gx_mean
            + np.abs(x_hat) * bc(np.mean(abs_dy * dx_hat, axis=axes))
        )
        dx_expected = np.abs(_nan_safe(expected.values["dx"]))
        allowed["dx"] = _nan_safe(
            bc(np.abs(gamma)) / s * inner + dx_expected * (bc(relative_scale_error(var, dvar)) + u)
            + eta_flush * (abs_dy + g_mean + np.abs(x_hat) * gx_mean)  # the factor γ/s flushed to zero
        )

    floor = underflow_floor(inputs.dtype, expected.count)
    return {name: safety * (_nan_safe(value) + floor) for name, value in allowed.items() if name in expected.values}
