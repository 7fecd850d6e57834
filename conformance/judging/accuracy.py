r"""The accuracy grade: an engine's error against what a stable implementation achieves on the same data.

The tolerance model (``tolerance``) bounds what a correct implementation *may* err by on a
case, and it has to be wide: on data whose mean dwarfs its spread, the offset's rounding in
the mean may legitimately cost (N − 1)·u·|μ|, so a one-pass variance, E[x²] − E[x]², can stay
inside the bound for y and be caught only through the running variance.  The bound is kept
(it protects against false alarms); the grade is recorded beside it and says how accurate an
engine is, not whether it is allowed.

**Definition.**  For one quantity q of one check (``y_train``, ``running_var``, ``dx``, ...):

    grade(q) = max|observed − reference| / max(max|stable − reference|, floor(q))

* the reference is the float64 oracle (``reference.simulate``), as in the comparison;
* *stable* is this module's emulation of a numerically stable batch norm computing in the
  case's dtype (``emulate_stable``), on the very same inputs: every operation rounds to the
  working dtype, float32 for float32, float16 and bfloat16 cases (half-precision statistics
  accumulate in float32, as the frameworks do) and float64 for float64; the batch variance
  takes two passes, mean((x − μ)²), each a pairwise sum (NumPy's reduction along a
  contiguous axis); every output and every stored running statistic is rounded to the case's
  dtype; a step that normalizes with the running statistics it has just updated
  (``Conventions.normalization == "running"``) normalizes with them as stored in the case's
  dtype, and its gradients pass through their weights w, w_v in the working dtype
  (``reference.backward.blended_gradients``' expression).  Its formulas are the reference's:
  ``batch_statistics`` and ``normalizer`` from
  ``reference.forward`` run as they are in the working dtype, the running update is
  ``reference.running.RunningStatistics`` (its arithmetic in float64, rounded to the dtype
  when stored, which is within the floor below), and y and the gradients are the reference's
  expressions (``reference.forward``, ``reference.backward``) evaluated in the working dtype;
* both maxima are over the elements where the reference and that result are both finite
  (NaN and ±inf are the comparison's business); an observed NaN or infinity where the
  reference is finite has no finite error, and its grade is +∞.

**The floor.**  The stable emulation is one implementation's rounding pattern, and it may be
lucky: exact on a constant channel (y = β), or correctly rounding a running statistic that
another order of operations rounds three times.  So the denominator is at least

    floor(q) = max(FLOOR_ROUNDINGS · u · scale(q), η_min)

with u the unit roundoff of the case's dtype, ``FLOOR_ROUNDINGS`` = 4 (a few roundings: a
stable emulation errs by 0.3 to 4 u·scale(q) on the tolerance model's test data, median
about 1), and η_min the dtype's smallest normal number, for a quantity that is zero
everywhere.  scale(q) is the largest magnitude of the operands that produce q, where the
reference is finite: the terms the tolerance model charges one rounding each, without the
growth of its sums (the growth is what the stable emulation measures, and the offset's
(N − 1)·u·|μ| is what makes the bound wide):

    y (training; inference)   |γ|·(|x| + |μ|)/s + |β|, with the statistics that normalize
                              (in training the batch's, or the running ones just updated)
                              (storing μ alone moves y by u·|γ|·|μ|/s: on data whose mean
                              dwarfs its spread that, not |y|, is the scale)
    running statistics        |r_t| + |b_t|, the stored statistic and the batch's
    dx                        |γ|/s·(|dy| + |mean dy| + (|x| + |μ|)/s·|mean(dy·x̂)|), μ and s the
                              normalizing ones (x̂ = (x − μ̃)/s̃ with blended statistics)
    dγ                        max|dy·x̂| + |Σ dy|·max(|x| + |μ|)/s + |dγ|   (μ's rounding shifts every x̂ alike)
    dβ                        max|dy| + |dβ|

**Reading it.**  A grade near 1 (or below) means "as accurate as a stable implementation in
this dtype"; 10 means ten times less accurate.  An engine that accumulates in a wider type than
the emulation grades below 1.  Equally stable engines that round in another order grade below
2: the pairwise, blocked, fused and folded NumPy emulations of ``tests/emulations.py`` over 15
runs per class of the tolerance model's float32 test data (exponential moving averages), and
up to 16 at the top of float32's range (``near_overflow``).  What grades high is less accurate
in fact: a one-pass variance on offset data (10⁵), a Welford update on offset data (16),
recursive, shuffled or Welford sums at the range edges (10² to 10³), flush-to-zero near
underflow (10³), and the lerp form of a running update, r + w·(b − r), where the old
statistic dwarfs the new one (a first cumulative step from a running variance of 1 onto a
batch variance of 10⁻⁸ keeps u·1 of error where d·r + w·b is exact: 10⁶).  The grade is a
ratio of maxima over a whole quantity, so a large error in one channel is graded against the
stable error in the worst channel, not its own.  Quantities compared between two runs of an engine
(``dx@twin``, ``y_train@cpu-vs-gpu``) have no grade.

The emulation runs once per check (``emulate_stable``), beside the reference, not once per
quantity; ``stable_errors`` turns it into one ``StableError`` per quantity and ``graded``
puts the grade on a ``Comparison``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from datamodel.quantities import PHASE_QUANTITIES, QUANTITIES
from reference import UNIT_ROUNDOFF, Expected, RunningStatistics, batch_statistics, normalizer, round_to
from reference.forward import ChannelLayout
from reference.running import running_variance_sample

from .compare import DISCREPANCY, PASS, Comparison
from .tolerance import ToleranceInputs, smallest_normal

#: Roundings at the scale of a quantity's operands below which a stable error is not taken at
#: face value: the floor of the grade's denominator (see the module docstring).
FLOOR_ROUNDINGS = 4.0


#: Statistics are arrays (C, N): channels first, the values of each channel contiguous, so
#: every reduction along axis 1 is NumPy's pairwise sum.
_FLAT = ChannelLayout(ndim=2, axis=0)


@dataclass(frozen=True)
class StableError:
    """What the stable emulation achieves on one quantity of a case."""

    error: float  # max |stable − reference| over the elements both have finite
    floor: float  # FLOOR_ROUNDINGS·u·scale(q), at least the dtype's smallest normal number

    @property
    def baseline(self) -> float:
        """The denominator of the grade: the stable error, floored."""
        return max(self.error, self.floor)

    def grade(self, observed_error: float) -> float:
        """``observed_error`` in units of the stable implementation's error."""
        return observed_error / self.baseline


# -- the emulation -----------------------------------------------------------------------------


class _Stable:
    """One case computed the stable way: arrays (C, N) in the working dtype ``dt``."""

    def __init__(self, inputs: ToleranceInputs) -> None:
        self.inputs = inputs
        first = inputs.data.batches[0]
        self.layout = ChannelLayout.of(first.shape, inputs.axis)
        self.moved = np.moveaxis(first, self.layout.axis, 0).shape  # the input, channels first
        self.dt = np.float64 if inputs.dtype == "float64" else np.float32
        channels = self.moved[0]
        data = inputs.data
        self.gamma = self.column(np.ones(channels) if data.gamma is None else data.gamma)
        self.beta = self.column(np.zeros(channels) if data.beta is None else data.beta)

    def column(self, per_channel: np.ndarray) -> np.ndarray:
        return np.asarray(per_channel).astype(self.dt)[:, None]

    def flat(self, array: np.ndarray) -> np.ndarray:
        """The input's values as (C, N) in the working dtype (exact: they are already in the case's dtype)."""
        moved = np.moveaxis(array, self.layout.axis, 0)
        return np.ascontiguousarray(moved.reshape(moved.shape[0], -1)).astype(self.dt)

    def output(self, flat: np.ndarray) -> np.ndarray:
        """Rounded to the case's dtype (as float64), back in the input's layout."""
        stored = round_to(np.asarray(flat).astype(np.float64), self.inputs.dtype)
        return np.moveaxis(stored.reshape(self.moved), 0, self.layout.axis)

    def stored(self, per_channel: np.ndarray) -> np.ndarray:
        return round_to(np.asarray(per_channel).astype(np.float64), self.inputs.dtype)

    def scale(self, var: np.ndarray) -> np.ndarray:
        """s = √(σ² + ε) or √σ² + ε, in the working dtype: ``reference.forward.normalizer``."""
        conventions = self.inputs.conventions
        return normalizer(np.asarray(var, dtype=self.dt), float(self.dt(self.inputs.eps)), conventions.eps_placement)

    def normalize(self, x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """y = γ·((x − μ)/s) + β (``reference.forward``), every step rounded to the working dtype."""
        x_hat = (x - self.column(mean)) / self.scale(var)[:, None]
        return self.gamma * x_hat + self.beta

    def quantities(self, wanted: Collection[str]) -> dict[str, np.ndarray]:
        """The protocol of ``reference.simulate`` for the quantities in ``wanted`` (and what they need)."""
        inputs, data = self.inputs, self.inputs.data
        conventions = inputs.conventions
        first = self.flat(data.batches[0])
        values: dict[str, np.ndarray] = {}

        def evaluate(stats: RunningStatistics) -> np.ndarray:
            if not conventions.tracks_running_stats:
                return self.output(self.normalize(first, *batch_statistics(first, _FLAT)))
            return self.output(self.normalize(first, stats.mean.astype(self.dt), stats.var.astype(self.dt)))

        stats = self.running_statistics()
        blended = conventions.normalization == "running"
        if "y_eval" in wanted:
            values["y_eval"] = evaluate(stats)
        if set(wanted) & set(PHASE_QUANTITIES["training"]):
            outputs, means, variances = [], [], []
            for batch in data.batches:
                x = self.flat(batch)
                mean, var = batch_statistics(x, _FLAT)
                stats.update(mean.astype(np.float64), var.astype(np.float64), x.shape[1])
                stats.mean, stats.var = self.stored(stats.mean), self.stored(stats.var)  # kept in the case's dtype
                if blended:  # normalized with the running statistics just updated, as stored
                    mean, var = stats.mean.astype(self.dt), stats.var.astype(self.dt)
                outputs.append(self.output(self.normalize(x, mean, var)))
                means.append(stats.mean)
                variances.append(stats.var)
            values["y_train"] = np.stack(outputs)
            if conventions.tracks_running_stats:
                values["running_mean"], values["running_var"] = np.stack(means), np.stack(variances)
            values["y_eval_after"] = evaluate(stats)
        if set(wanted) & set(PHASE_QUANTITIES["gradients"]):
            values.update(self.gradients(first))
        return values

    def running_statistics(self) -> RunningStatistics:
        """The running statistics as loaded (stored in the case's dtype), under the declared conventions."""
        inputs, data, conventions = self.inputs, self.inputs.data, self.inputs.conventions
        return RunningStatistics(
            mean=self.stored(data.running_mean), var=self.stored(data.running_var),
            decay=0.0 if inputs.decay is None else inputs.decay, mode=conventions.averaging,
            estimator=conventions.running_variance, debias_start=conventions.debias_start, warmup=conventions.warmup,
        )  # fmt: skip

    def gradients(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """dβ = Σ dy, dγ = Σ dy·x̂ and ``reference.backward``'s dx, in the working dtype.

        dx = (g − mean(g))/s − (2·s′/(N·s²))·(x − μ)·Σ g·(x − μ), with g = γ·dy and s′ = ds/dσ²,
        is evaluated as ((g − mean(g)) − x̂·mean(g·x̂)·2·s′·s)/s: the same expression with
        x − μ = s·x̂, which keeps N·s² (beyond float32's range near overflow) out of it.  With
        ε inside the root 2·s′·s = 1 and this is the textbook (g − mean(g) − x̂·mean(g·x̂))/s.

        Normalized with the running statistics just updated (μ̃, ṽ, stored in the case's dtype, and
        their weights w, w_v, ``reference.backward.blended_gradients``): x̃ = (x − μ̃)/s̃ takes x̂'s
        place in mean(g·x̃) and dγ, z = (x − μ)/s̃ multiplies it, and
        dx = (g − w·mean(g) − w_v·z·mean(g·x̃)·2·s̃′·s̃)/s̃.
        """
        data = self.inputs.data
        dy = self.flat(data.dy)
        mean, var = batch_statistics(x, _FLAT)
        weight = var_weight = self.dt(1.0)
        normalizing_mean, normalizing_var = mean, var
        if self.inputs.conventions.normalization == "running":
            stats = self.running_statistics()
            stats.update(mean.astype(np.float64), var.astype(np.float64), x.shape[1])
            normalizing_mean, normalizing_var = self.stored(stats.mean).astype(self.dt), self.stored(stats.var).astype(self.dt)
            weight = self.dt(stats.batch_weight)
            var_weight = self.dt(running_variance_sample(np.float64(stats.batch_weight), x.shape[1], stats.estimator))
        s = self.scale(normalizing_var)[:, None]
        x_hat = (x - self.column(normalizing_mean)) / s
        centred = (x - self.column(mean)) / s  # x̂ itself under batch normalization
        g = dy * self.gamma
        g_mean = weight * np.mean(g, axis=1, keepdims=True)
        gx_mean = var_weight * np.mean(g * x_hat, axis=1, keepdims=True)
        if self.inputs.conventions.eps_placement == "inside":
            dx = (g - g_mean - centred * gx_mean) / s
        else:  # s′ = 1/(2√σ²): 2·s′·s = s/√σ²
            dx = (g - g_mean - centred * gx_mean * (s / np.sqrt(normalizing_var.astype(self.dt))[:, None])) / s
        result = {"dx": self.output(dx)}
        if data.gamma is not None:
            result["dgamma"] = self.stored(np.sum(dy * x_hat, axis=1))
        if data.beta is not None:
            result["dbeta"] = self.stored(np.sum(dy, axis=1))
        return result


def emulate_stable(inputs: ToleranceInputs, quantities: Collection[str] = QUANTITIES) -> dict[str, np.ndarray]:
    """The stable implementation's value of each of ``quantities`` (float64 arrays of the reference's shapes).

    Phases none of whose quantities are wanted are not computed.
    """
    with np.errstate(all="ignore"):
        return _Stable(inputs).quantities(quantities)


def stable_errors(inputs: ToleranceInputs, expected: Expected, emulated: dict[str, np.ndarray]) -> dict[str, StableError]:
    """The stable emulation's error and floor for each quantity it computed (see the module docstring)."""
    u, tiny = UNIT_ROUNDOFF[inputs.dtype], smallest_normal(inputs.dtype)
    scales = _Scales(inputs, expected)
    errors = {}
    for name, stable in emulated.items():
        reference = np.asarray(expected.values[name], dtype=np.float64)
        with np.errstate(all="ignore"):
            finite = np.isfinite(reference) & np.isfinite(stable)
            error = float(np.abs(stable - reference)[finite].max(initial=0.0))
            scale = scales.of(name, reference)
        errors[name] = StableError(error=error, floor=max(FLOOR_ROUNDINGS * u * scale, tiny))
    return errors


class _Scales:
    """The magnitude of the operands behind each quantity, element by element (see the module docstring)."""

    def __init__(self, inputs: ToleranceInputs, expected: Expected) -> None:
        self.inputs, self.expected = inputs, expected
        data = inputs.data
        self.layout = ChannelLayout.of(data.batches[0].shape, inputs.axis)
        channels = data.batches[0].shape[self.layout.axis]
        self.gamma = np.abs(np.ones(channels) if data.gamma is None else data.gamma)
        self.beta = np.abs(np.zeros(channels) if data.beta is None else data.beta)

    def of(self, name: str, reference: np.ndarray) -> float:
        """max over the elements where the reference and the scale are finite."""
        scale = np.broadcast_to(getattr(self, name)(), reference.shape)
        usable = np.isfinite(reference) & np.isfinite(scale)
        return float(scale[usable].max(initial=0.0))

    def _scale(self, var: np.ndarray) -> np.ndarray:
        return normalizer(np.abs(var), self.inputs.eps, self.inputs.conventions.eps_placement)

    def _y(self, x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """|γ|·(|x| + |μ|)/s + |β|: x and μ in units of s (merely storing μ moves y by u·|μ|/s)."""
        bc = self.layout.broadcast
        return bc(self.gamma) * (np.abs(x) + bc(np.abs(mean))) / bc(self._scale(var)) + bc(self.beta)

    def _inference_statistics(self, after: bool) -> tuple[np.ndarray, np.ndarray]:
        data, expected = self.inputs.data, self.expected
        if not self.inputs.conventions.tracks_running_stats:
            return expected.batch_means[0], expected.batch_vars[0]
        if after:  # the reference normalizes with the running statistics stored in the case's dtype
            return (round_to(expected.values["running_mean"][-1], self.inputs.dtype),
                    round_to(expected.values["running_var"][-1], self.inputs.dtype))  # fmt: skip
        return data.running_mean, data.running_var

    def y_eval(self) -> np.ndarray:
        return self._y(self.inputs.data.batches[0], *self._inference_statistics(after=False))

    def y_eval_after(self) -> np.ndarray:
        return self._y(self.inputs.data.batches[0], *self._inference_statistics(after=True))

    def y_train(self) -> np.ndarray:
        """With the statistics each step normalized with: the batch's, or the running ones just updated."""
        steps = [(x, *self.expected.normalizing(step)[:2]) for step, x in enumerate(self.inputs.data.batches)]
        return np.stack([self._y(x, mean, var) for x, mean, var in steps])

    def running_mean(self) -> np.ndarray:
        """|r_t| + |b_t|: the stored statistic and the batch's (d·r_{t−1} is at most about |r_t|)."""
        return np.abs(self.expected.values["running_mean"]) + np.abs(np.stack(self.expected.batch_means))

    def running_var(self) -> np.ndarray:
        estimator = self.inputs.conventions.running_variance
        samples = [running_variance_sample(var, self.expected.count, estimator) for var in self.expected.batch_vars]
        return np.abs(self.expected.values["running_var"]) + np.abs(np.stack(samples))

    @cached_property
    def _gradient_operands(self):
        bc, axes = self.layout.broadcast, self.layout.reduced_axes
        x, dy = self.inputs.data.batches[0], self.inputs.data.dy
        mean, var, _, _ = self.expected.normalizing(0)  # the batch's, or the blended statistics
        s = bc(self._scale(var))
        x_hat = (x - bc(mean)) / s
        reach = (np.abs(x) + bc(np.abs(mean))) / s  # what storing x − μ costs x̂, in units of u
        return bc, axes, dy, s, x_hat, reach

    def dx(self) -> np.ndarray:
        """|γ|/s·(|dy| + |mean dy| + (|x| + |μ|)/s·|mean(dy·x̂)|): the terms of dx and x̂'s rounding."""
        bc, axes, dy, s, x_hat, reach = self._gradient_operands
        g_mean = bc(np.abs(np.mean(dy, axis=axes)))
        gx_mean = bc(np.abs(np.mean(dy * x_hat, axis=axes)))
        return bc(self.gamma) / s * (np.abs(dy) + g_mean + reach * gx_mean)

    def dgamma(self) -> np.ndarray:
        """max|dy·x̂| + |Σ dy|·(|x| + |μ|)/s (a common shift of x̂ by μ's rounding) + |dγ|."""
        _, axes, dy, _, x_hat, reach = self._gradient_operands
        shifted = np.abs(np.sum(dy, axis=axes)) * np.max(reach, axis=axes, initial=0.0)
        return np.max(np.abs(dy * x_hat), axis=axes, initial=0.0) + shifted + np.abs(np.sum(dy * x_hat, axis=axes))

    def dbeta(self) -> np.ndarray:
        """max|dy| + |dβ|: a partial sum rounds at least at the scale of its terms."""
        dy, axes = self.inputs.data.dy, self.layout.reduced_axes
        return np.max(np.abs(dy), axis=axes, initial=0.0) + np.abs(np.sum(dy, axis=axes))


def graded(comparison: Comparison, stable: StableError | None) -> Comparison:
    """``comparison`` with its accuracy grade, where it measured an error and a stable one exists."""
    if stable is None or comparison.verdict not in (PASS, DISCREPANCY) or comparison.max_abs_error is None:
        return comparison
    # error_at_worst is +∞ for NaN or ±inf where the reference is finite (or the reverse)
    grade = math.inf if comparison.error_at_worst == math.inf else stable.grade(comparison.max_abs_error)
    return replace(comparison, stable_error=stable.error, accuracy_grade=grade)
