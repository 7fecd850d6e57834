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

    Δμ     = u_acc·(f(N)·mean|x − μ| + (N − 1)·|μ|) + u·|μ| + 2·η_acc
    Δσ²    = u_acc·f(N)·2·mean(|x − μ|·|x|) + Δμ² + u·σ² + 2·η_acc
    Δs/s   = |ds/dσ²|·Δσ²/s                       (½Δσ²/(σ²+ε) with ε inside; for running statistics
                                                   at least s/s(max(σ² − Δσ², 0)) − 1)
    Δx̂     = (u·(|x| + |μ|) + η_sub + 3·η_acc + Δμ)/s + |x̂|·Δs/s
    Δy     = |γ|·Δx̂ + u·(|β| + |y|) + η_acc·|x − μ|          (η_acc: the factor γ/s flushed to zero)
    running statistics:  Δr_t = a_t·Δr_{t−1} + w_t·Δb_t + u·(|r_{t−1}| + |b_t| + |r_t|) + η_sub + η_store(r_t)
                         for r_t = a_t·r_{t−1} + w_t·b_t (EMA: a = d, w = 1 − d; cumulative: w = 1/t)
    inference mode: Δy with the given statistics exact, plus the running statistics' Δ after training
    Δβ-grad = u_acc·f(N)·Σ|dy| + u·|Σ dy|
    Δγ-grad = u_acc·f(N)·Σ|dy·x̂| + Σ|dy|·Δx̂ + u·|Σ dy·x̂|
    Δdx     = |γ|/s·[u·(|dy| + |ḡ| + |x̂|·|ḡx̂|) + u_acc·f(N)·(m|dy| + |x̂|·m|dy·x̂|)
              + Δx̂·|ḡx̂| + |x̂|·m(|dy|·Δx̂)] + |dx|·(Δs/s + u) + η_acc·(|dy| + |ḡ| + |x̂|·|ḡx̂| + |x − μ|_b)

(ḡ = mean(dy), ḡx̂ = mean(dy·x̂), m = mean over the channel.)

**Debiased averages** (``averaging="debiased_ema"``) are followed through their accumulator
a_t = d·a_{t−1} + (1 − d)·b_t, which errs as an EMA does (from a_0 = 0, or from the loaded
statistics with ``debias_start="state"``), and r_t = a_t/c_t with c_t = 1 − d^t:

    Δr_t = Δa_t/c_t + |r_t|·(Δc/c + u),   Δc/c = u·((t + 2)·d^t/c_t + 1)

(the decay rounded to the working dtype, |δd| ≤ u·d, moves d^t by t·u·d^t; the power and the
subtraction round once each).  Near d = 1 the division amplifies: at d = 0.99 a correct float32
layer's r_1 may err by 300·u relatively, and Equinox's ``mode="batch"``, whose accumulator
starts at the loaded statistics, does.

**Blended normalization** (``normalization="running"``): a training step normalizes with the
running statistics it has just updated, μ̃ = r_t and ṽ = r_v,t.  Their errors are the running
statistics' own Δr_t above, d·Δr_{t−1} + (1 − d)·Δb_t + the update's roundings (the first step
of a fresh layer that copies its batch, ``warmup="copy_first_batch"``: Δb_1 plus the roundings),
so Δy is the inference-mode bound with μ̃, ṽ erring by Δr_t (x̃ = (x − μ̃)/s̃ is not bounded by √N,
and Δs̃/s̃ is the beyond-first-order bound of an independent variance).  The gradients are
those of ``reference.backward.blended_gradients``, dx = γ/s̃·[dy − w·ḡ − w_v·z·ḡx̃] with
z = (x − μ)/s̃ and the weights w = ∂μ̃/∂μ, w_v = ∂ṽ/∂σ²; their bound is Δdx above with x̂ → x̃
in ḡx̃ and dγ, x̂ → z (with Δz from Δμ and Δs̃) where the batch mean centres, and the sums'
terms times their weights (``gradient_errors``).  With d = 0 every bound is batch
normalization's, bit for bit.

**Underflow.**  Underflow adds absolute terms: the standard model with underflow is
fl(a ∘ b) = (a ∘ b)(1 + δ) + η with δ·η = 0, where η ≠ 0 only if the result lies below the
smallest normal number η_min of the dtype it is rounded to; |η| ≤ η_sub/2 (half the
subnormal spacing) with gradual underflow, |η| < η_min with flush-to-zero (FTZ), and
denormals-are-zero (DAZ) reads a subnormal operand as 0, an input error below η_min.  Both
are legitimate (TensorFlow sets FTZ and DAZ on x86 CPUs), so the model allows them in the
arithmetic dtype, float32 for every dtype but float64 (η_acc, its smallest normal), and in the
storage dtype (η_store, the case dtype's smallest normal).  Term by term:

* the mean: DAZ on each x_j and FTZ on each of the N − 1 partial sums lose below η_acc each,
  and they are averaged, so μ loses below 2·η_acc (Δμ); the same holds for σ² (Δσ²);
* x − μ: x and μ may each be read as zero (DAZ), and their difference flushed: 3·η_acc.
  Unlike a flushed output, this loss is divided by s, so a variance small against ε turns a
  loss below η_acc into an output error of η_acc/s (up to 10⁴·η_acc for ε = 10⁻⁸).
  Gradual underflow of x − μ in a half-precision dtype loses η_sub of that dtype, as before;
* a running statistic stored in the case's dtype may land among its subnormals (η_sub), or
  be flushed to zero there.  A flush replaces a computed value ṽ below the dtype's smallest
  normal η_store by 0, so the error grows from |ṽ − r_t| to |r_t| ≤ |ṽ − r_t| + min(|r_t|, η_store),
  and it can only happen where the reference's value is within the statistic's own allowed
  error of η_store: the term is η_store(r_t) = min(|r_t|, η_store) where
  |r_t| < η_store + SAFETY·Δr_t, and 0 elsewhere.  Where Δr_t ≥ η_store it at most doubles
  Δr_t; where Δr_t < η_store it is nonzero only for |r_t| < (1 + SAFETY)·η_store.  The
  condition matters for float16, whose η_store = 6.1·10⁻⁵ is not small: added everywhere,
  it would pass an error of γ·η_store/s into y_eval_after for every running mean (12% of
  the rounding allowance of an x near 1, far more near 0).  The allowance is carried into
  y_eval_after like any other error of the running statistics;
* every output may lose up to the smallest normal number once in the output dtype and at
  most N + 2 times in the accumulation dtype: η_out + (N + 2)·η_acc (the floor);
* a per-channel factor may flush to zero: γ/s of the fused output y = (x − μ)·(γ/s) + β,
  η_acc·|x − μ| in Δy; in dx, γ/s of γ/s·[dy − ḡ − x̂·ḡx̂], η_acc·(|dy| + |ḡ| + |x̂|·|ḡx̂|), or
  the coefficients of the folded form dx = a·dy + b·(x − μ) + c (a = γ/s, b = −γ·ḡx̂/s²,
  c = −a·ḡ; PyTorch's CPU kernels), of which b = γ·ḡx̂/s² underflows first: η_acc·|x − μ|_b,
  where |x − μ|_b is |x − μ| in channels whose b, less SAFETY times its error, lies below η_acc,
  and 0 elsewhere (as for a stored statistic, a flush can only happen there; added everywhere,
  η_acc·|x − μ| would outweigh the rounding allowance of dx wherever s² > |γ·ḡx̂|·u/η_acc,
  as on float32 data spreading by 10¹⁵).  These are the factors of the closed form and of its
  folded form.  An implementation that
  forms a smaller intermediate, such as automatic differentiation's d rsqrt(v)/dv = −½·v^(−3/2),
  which underflows in float32 once s exceeds 4·10¹² while dx and all these factors are
  representable, loses more, and that is its result (``flax-rsqrt-jvp-underflow``).

The η_acc terms are absolute and tiny (1.2·10⁻³⁸ for float32), and they only matter where
the data are near underflow: a nonzero difference of two floats is a multiple of the smaller
operand's spacing, at least u·min(|a|, |b|), so x − μ can only be subnormal where
|x|, |μ| < 2·η_acc/u, and only there is 3·η_acc comparable to the rounding term u·(|x| + |μ|).
The η_store term is conditional on the value (above), so it cannot matter elsewhere either.

**Overflow.**  Where the reference's value of a quantity lies beyond the output dtype's largest
finite number, the correctly rounded result is ±∞, and ``compare`` accepts an infinity of
the right sign there (and only there): γ·(x − m)/√(v + ε) in inference mode with float16 data
near 10⁴ and a small running variance, for instance.  The reference normalizes in inference
mode with the running statistics rounded to the case dtype, so a running variance stored as
+∞ gives y = β there, as in any implementation.

The model assumes that a correct implementation's own quantities fit their dtypes: Σx and
Σ(x − μ)² the accumulation dtype, the variance σ² (also computed from a mean that errs by the
model's worst case) the accumulation dtype and the case dtype, where it is stored as the
running variance.  The data generator keeps its cases within that domain (``strategies``:
``near_overflow``, ``overflowing_sum``).  Sums that overflow the *input* dtype but not the
accumulation dtype, float16 channels whose Σx exceeds 65504, are in the domain: an
implementation that accumulates them in float16 is wrong; and so are Σx² beyond float32's
range where Σ(x − μ)² is within it: a one-pass variance that overflows there is wrong too.
Beyond the domain no implementation can give the reference's finite answer: a float32 channel
near 10³⁰ has a computed mean off by ulps of 10²³, whose squares overflow, so every float32
implementation gets σ² = +∞ and dx = 0; and a running variance stored as +∞ becomes
0·∞ = NaN in the next update with decay 0 (∞ − ∞ in the cumulative average), while the
reference, which keeps its running statistics in float64 between steps, carries a finite one.

The bounds are computed in float64 from the finite data (non-finite entries set to 0: they
are compared by position).  Near float64's own range a bound can overflow: Δσ²/ε for a
constant float64 channel near 10¹⁶⁷ whose mean errs by 10¹⁵¹.  Such a bound is +∞ (so is a
NaN from 0·∞ there): the computation is hopeless at that precision, and the element says so
as ``uninformative``; it never becomes 0, which would demand exactness.  Products are ordered
so that a bound does not overflow where its value does not: u·f(N)·2·|x| before |x − μ|.

**Beyond first order.**  Δs/s is linear in Δσ² only while Δσ² is small against σ².  In
training mode that is enough: x̂ is formed with the batch's own computed σ², so |x̂| ≤ √N
whatever it is.  In inference mode the running variance is independent of the batch, and a
correct update can round it far below its value (PyTorch's r·(1 − m) + m·b with m = 1 − d
rounded to a bfloat16 buffer keeps nothing of r when d < u, and a float16 lerp from a large
initial variance may land on 0): s then falls to √ε, which the linear term does not reach.
For running statistics Δs/s is therefore at least s/s(max(σ² − Δσ², 0)) − 1, the square root
followed exactly; it equals the linear term while Δσ² ≪ σ² and exceeds it only where the
running variance's own allowed error is comparable with it.

Each bound is multiplied by one safety factor, ``SAFETY``, which absorbs the constants of the
first-order analysis (a handful of roundings per element).  It was calibrated on the three
frameworks and on float32/float16 NumPy implementations over the nightly profile's hardest
data; see the README's tolerance section for the evidence and ``tests/test_detection.py`` for
the proof that broken implementations still fail.

In the code each family has its own function: ``batch_statistic_errors`` (Δμ, Δσ²),
``normalized_errors`` (Δx̂) and ``output_errors`` (Δy), ``running_statistic_errors``,
``blended_output_errors``, ``inference_errors`` and ``gradient_errors``; ``allowed_errors`` composes them, adds the
underflow floor and applies ``SAFETY``.  s is the reference's own ``normalizer``.

Non-finite values are not toleranced: NaN and ±inf must appear exactly where the reference
has them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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


def _zero_nonfinite(array: np.ndarray) -> np.ndarray:
    """``_nan_safe`` in place, on an array the caller owns (a temporary of the bound)."""
    np.copyto(array, 0.0, where=~np.isfinite(array))
    return array


def _bound(array: np.ndarray) -> np.ndarray:
    """A bound computed from finite data (``_finite_inputs``), where +∞ and NaN mean overflow: +∞.

    A bound beyond float64's range says the computation is hopeless at that precision (float64
    data near its largest number, where ε alone stands between a mean's rounding error squared
    and a division); it allows anything.  NaN can then only be 0·∞ (an exact zero of the
    reference, such as x̂ = 0 on a constant channel, times an overflowing relative error), and
    which factor wins is unknown, so it is +∞ too.  Neither may become 0, which would demand
    exactness instead.
    """
    return np.where(np.isnan(array), np.inf, array)


def _bound_in_place(array: np.ndarray) -> np.ndarray:
    """``_bound`` on an array the caller owns."""
    np.copyto(array, np.inf, where=np.isnan(array))
    return array


def _finite_inputs(inputs: ToleranceInputs, expected: Expected) -> tuple[ToleranceInputs, Expected]:
    """The data and reference values with non-finite entries set to 0 (compared by position).

    So the bounds of the finite rest are computed from finite numbers, and an infinite bound
    can only mean an overflow of the bound itself.
    """

    def finite(value):
        if value is None:
            return None
        value = np.asarray(value, dtype=np.float64)
        return value if np.isfinite(value).all() else _nan_safe(value)  # a copy only where one is needed

    data = inputs.data
    clean = CaseData(batches=[finite(b) for b in data.batches], gamma=finite(data.gamma), beta=finite(data.beta),
                     running_mean=finite(data.running_mean), running_var=finite(data.running_var), dy=finite(data.dy))  # fmt: skip
    values = {name: finite(value) for name, value in expected.values.items()}
    return replace(inputs, data=clean), Expected(values=values, batch_means=[finite(m) for m in expected.batch_means],
                                                 batch_vars=[finite(v) for v in expected.batch_vars], count=expected.count,
                                                 train_means=[finite(m) for m in expected.train_means],
                                                 train_vars=[finite(v) for v in expected.train_vars],
                                                 train_weights=list(expected.train_weights))  # fmt: skip


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
    eta_flush: float  # η_acc, smallest normal of the arithmetic dtype: flush-to-zero, denormals-are-zero
    eta_store: float  # smallest normal of the case dtype: a stored statistic may be flushed there

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
            eta_store=smallest_normal(inputs.dtype),
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

    def per_channel_sum_and_mean(self, array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both from one pass: ``np.mean`` is the sum divided by the count, to the last bit."""
        total = self.per_channel_sum(array)
        return total, total / self.layout.count(array.shape)


def relative_scale_error(model: _Model, var: np.ndarray, dvar: np.ndarray, *, independent: bool = False) -> np.ndarray:
    """Δs/s: how far s/s̃ − 1 may go when σ² errs by Δσ², per channel.

    To first order it is |ds/dσ²|·Δσ²/s (½·Δσ²/(σ² + ε) with ε inside).  That suffices where the
    variance comes from the same data it normalizes (training mode: the computed x̂ is bounded
    by √N whatever the computed σ² is).  A variance ``independent`` of the data, a running
    statistic, may fall further: where Δσ² is not small against σ² the square root is not
    linear, and s may drop to s_low = s(max(σ² − Δσ², 0)), down to s(0) where Δσ² ≥ σ²; the
    bound is the larger of the first-order value and s/s_low − 1 (a running variance that a
    correct update rounds to 0, with ε far below it).
    """
    s = model.scale(var)
    inside = model.inputs.conventions.eps_placement == "inside"
    ds_dvar = 1.0 / (2.0 * s) if inside else 1.0 / (2.0 * np.sqrt(var))
    first_order = ds_dvar * dvar / s
    if not independent:
        return _bound(first_order)
    lost = np.minimum(dvar, var)  # how far σ² may fall
    if inside:  # s/s_low − 1 = 1/√(1 − r) − 1, without cancellation
        falls = np.expm1(-0.5 * np.log1p(-lost / (var + model.inputs.eps)))
    else:  # (√σ² − √σ²_low)/(√σ²_low + ε)
        low = np.sqrt(var - lost)
        falls = lost / ((np.sqrt(var) + low) * (low + model.inputs.eps))
    return _bound(np.maximum(first_order, falls))


def batch_statistic_errors(model: _Model, x: np.ndarray, mean: np.ndarray, var: np.ndarray, count: int):
    """Δμ and Δσ², per channel, for the batch statistics of ``x`` (over ``count`` values each)."""
    bc = model.layout.broadcast
    f = growth(count)
    # The spread's rounding errors are independent (√N growth); the common offset's are
    # not (N copies of nearly one value round alike), so it gets the worst case N − 1.
    deviation = _zero_nonfinite(np.subtract(x, bc(mean)))  # |x − μ|, one buffer, reused below
    np.abs(deviation, out=deviation)
    fluctuation = model.per_channel_mean(deviation)
    # 2·η_acc: inputs read as zero (DAZ) and flushed partial sums, each below η_acc, averaged.
    flushed = 2.0 * model.eta_flush
    dmean = model.u_acc * (f * fluctuation + (count - 1) * np.abs(mean)) + model.u * np.abs(mean) + flushed
    # u_acc·f(N)·2 multiplies before the mean: near float64's range |x − μ|·|x| alone overflows
    # where the bound itself does not (a spread of 10¹⁵² around 10¹⁶⁷: the product is 10³¹⁹).
    weight = _zero_nonfinite(np.abs(x))
    np.multiply(weight, model.u_acc * f * 2.0, out=weight)
    spread = model.per_channel_mean(np.multiply(deviation, weight, out=deviation))
    dvar = spread + dmean**2 + model.u * np.abs(var) + flushed
    return _bound(dmean), _bound(dvar)


def normalized_errors(model: _Model, x, mean, dmean, var, dvar, *, independent: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Δx̂ (elementwise) and x̂, for statistics ``mean``/``var`` that err by ``dmean``/``dvar``."""
    bc = model.layout.broadcast
    s = bc(model.scale(var))
    x_hat = _zero_nonfinite(np.divide(np.subtract(x, bc(mean)), s))
    # Underflow of x − μ, amplified by 1/s: gradual in the compute dtype (η_sub), or x and μ
    # read as zero and their difference flushed (3·η_acc); see the module docstring.
    underflow = model.eta_sub + 3.0 * model.eta_flush
    # (u·(|x| + |μ|) + Δμ + underflow)/s + |x̂|·Δs/s, in two buffers (every step in place).
    dx_hat = np.abs(x)
    dx_hat += bc(np.abs(mean))
    dx_hat *= model.u
    dx_hat += bc(dmean)
    dx_hat += underflow
    dx_hat /= s
    scaled = np.abs(x_hat)
    scaled *= bc(relative_scale_error(model, var, dvar, independent=independent))
    dx_hat += scaled
    return _bound_in_place(dx_hat), x_hat


def output_errors(model: _Model, x_hat: np.ndarray, dx_hat: np.ndarray, x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Δy = |γ|·Δx̂ + u·(|β| + |y|) + η_acc·|x − μ|, elementwise."""
    bc = model.layout.broadcast
    rounding = np.multiply(x_hat, bc(model.gamma))  # y = γ·x̂ + β, then u·(|β| + |y|), in place
    rounding += bc(model.beta)
    np.abs(_zero_nonfinite(rounding), out=rounding)
    rounding += bc(np.abs(model.beta))
    rounding *= model.u
    allowed = np.multiply(dx_hat, bc(np.abs(model.gamma)))
    allowed += rounding
    # The fused form y = (x − μ)·(γ/s) + β may flush its factor γ/s to zero: η_flush·|x − μ|.
    flushed_scale = _zero_nonfinite(np.abs(np.subtract(x, bc(mean), out=rounding), out=rounding))
    flushed_scale *= model.eta_flush
    allowed += flushed_scale
    return allowed


def training_output_errors(model: _Model, x: np.ndarray, mean: np.ndarray, var: np.ndarray,
                           statistics: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, tuple]:  # fmt: skip
    """Δy of a training step: normalized with its own batch statistics, which err by ``statistics`` (Δμ, Δσ²).

    Also returns ``(Δμ, Δσ², Δx̂, x̂)``, which the gradients of the first step share.
    """
    dmean, dvar = statistics
    dx_hat, x_hat = normalized_errors(model, x, mean, dmean, var, dvar)
    return output_errors(model, x_hat, dx_hat, x, mean), (dmean, dvar, dx_hat, x_hat)


def blended_output_errors(model: _Model, x: np.ndarray, mean: np.ndarray, var: np.ndarray,
                          running: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, tuple]:  # fmt: skip
    """Δy of a training step normalized with the running statistics it has just updated.

    ``mean``/``var`` are μ̃ = r_t and ṽ = r_v,t, which err by ``running`` (Δr_t of the mean and
    the variance, ``running_statistic_errors``: d·Δr_{t−1} + (1 − d)·Δb_t + the update's
    roundings).  They are not the batch's own, so x̃ is not bounded by √N and Δs/s takes the
    beyond-first-order bound of an independent variance.  Returns Δy and ``(Δμ̃, Δṽ, Δx̃, x̃)``.
    """
    dmean, dvar = running
    dx_hat, x_hat = normalized_errors(model, x, mean, dmean, var, dvar, independent=True)
    return output_errors(model, x_hat, dx_hat, x, mean), (dmean, dvar, dx_hat, x_hat)


def _update_weights(model: _Model, step: int) -> tuple[float, float]:
    """(a_t, w_t) of r_t = a_t·r_{t−1} + w_t·b_t: the reference's ``RunningStatistics.update`` as weights.

    For a debiased EMA these are the weights of its accumulator (``running_statistic_errors``).
    """
    conventions = model.inputs.conventions
    if conventions.warmup == "copy_first_batch" and step == 1:  # r_1 = b_1
        return 0.0, 1.0
    if conventions.averaging == "cumulative":
        return 1.0 - 1.0 / step, 1.0 / step
    keep = model.inputs.decay
    return keep, 1.0 - keep


def debiasing_error(model: _Model, step: int) -> float:
    """Relative error of the computed 1 − d^t, or ``None`` where d^t = 1 (d = 1: no division).

    The decay is rounded to the working dtype (|δd| ≤ u·d, so δ(d^t) ≤ t·u·d^t), the power
    rounds once more and the subtraction once: Δc/c ≤ u·((t + 2)·d^t/(1 − d^t) + 1).
    """
    power = model.inputs.decay**step
    correction = 1.0 - power
    if correction == 0.0:
        return None
    return model.u * ((step + 2) * power / correction + 1.0)


def _variance_factor(count: int, estimator: str) -> float:
    """N/(N − 1) for the unbiased estimator, 1 for the biased one: the reference's sample variance of σ² = 1.

    With N = 1 the unbiased running variance is NaN, compared by position; its factor is taken as 1.
    """
    factor = float(running_variance_sample(np.ones(()), count, estimator))
    return factor if np.isfinite(factor) else 1.0


def stored_underflow(model: _Model, value: np.ndarray, error: np.ndarray) -> np.ndarray:
    """What storing ``value`` (computed within ``error``) in the case dtype may lose to underflow.

    η_sub everywhere (gradual underflow).  A flush to zero stores 0 in place of a computed
    value ṽ below the smallest normal η_store, so it adds at most min(|value|, η_store) to
    the error ṽ already had, and it can happen only where |value| < η_store + SAFETY·error.
    """
    magnitude = np.abs(_nan_safe(value))
    flushed = np.minimum(magnitude, model.eta_store)
    return model.eta_sub + np.where(magnitude < model.eta_store + SAFETY * error, flushed, 0.0)


def running_statistic_errors(model: _Model, expected: Expected,
                             statistics: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """Δ of the running mean and variance after each training step (see the module docstring).

    ``statistics``: each step's (Δμ, Δσ²), from ``batch_statistic_errors``.  A debiased EMA is
    followed through its accumulator a_t = d·a_{t−1} + (1 − d)·b_t (from 0, or from the loaded
    statistics with ``debias_start="state"``), which errs like an EMA, and then divided:
    Δr_t = Δa_t/c_t + |r_t|·(Δc/c + u) with c_t = 1 − d^t (``debiasing_error``).
    """
    data, u = model.inputs.data, model.u
    conventions = model.inputs.conventions
    debiased = conventions.averaging == "debiased_ema"
    r_mean, r_var = np.abs(data.running_mean), np.abs(data.running_var)
    if debiased and conventions.debias_start == "zero":
        r_mean, r_var = np.zeros(model.channels), np.zeros(model.channels)
    d_mean = d_var = np.zeros(model.channels)
    factor = _variance_factor(expected.count, conventions.running_variance)
    mean_tols, var_tols = [], []
    steps = zip(expected.batch_means, expected.batch_vars, statistics, strict=False)
    for step, (mean, var, (dmean, dvar)) in enumerate(steps, 1):
        stored_mean, stored_var = expected.values["running_mean"][step - 1], expected.values["running_var"][step - 1]
        keep, weight = _update_weights(model, step)
        sample_var = np.abs(var) * factor
        new_mean = np.abs(keep * r_mean) + np.abs(weight * mean)
        new_var = np.abs(keep * r_var) + np.abs(weight * sample_var)
        # Rounding: u·(|r_{t−1}| + |b_t| + |r_t|) covers both algebraic forms of the update,
        # d·r + (1 − d)·b and r + (1 − d)·(b − r) (a lerp, whose error scales with |r_{t−1}|
        # even when the weight of r_{t−1} is 0, as in the first cumulative step).
        # Stored in the case dtype, a running statistic may also land among its subnormals, or
        # be flushed to zero where it is that small (``stored_underflow``).
        d_mean = keep * d_mean + weight * dmean + u * (r_mean + np.abs(mean) + new_mean)
        d_var = keep * d_var + weight * dvar * factor + u * (r_var + sample_var + new_var)
        r_mean, r_var = new_mean, new_var
        relative = debiasing_error(model, step) if debiased else None
        if relative is None:  # the stored statistic is the average itself
            d_mean = d_mean + stored_underflow(model, stored_mean, d_mean)
            d_var = d_var + stored_underflow(model, stored_var, d_var)
            mean_tols.append(d_mean)
            var_tols.append(d_var)
            continue
        # Debiased: the stored accumulator c·r_t may underflow; r_t = a_t/c adds the division's errors.
        correction = 1.0 - model.inputs.decay**step
        d_mean = d_mean + stored_underflow(model, _nan_safe(stored_mean) * correction, d_mean)
        d_var = d_var + stored_underflow(model, _nan_safe(stored_var) * correction, d_var)
        mean_tols.append(d_mean / correction + np.abs(_nan_safe(stored_mean)) * (relative + u))
        var_tols.append(d_var / correction + np.abs(_nan_safe(stored_var)) * (relative + u))
    return mean_tols, var_tols


def inference_errors(model: _Model, expected: Expected, mean, dmean, var, dvar, first_statistics) -> np.ndarray:
    """Δy in inference mode on the first batch, normalized by ``mean``/``var`` that err by ``dmean``/``dvar``.

    Without running statistics, inference mode normalizes with the batch's own statistics,
    which err by ``first_statistics`` (the first step's Δμ, Δσ²).
    """
    first = model.inputs.data.batches[0]
    running = model.inputs.conventions.tracks_running_stats
    if not running:
        mean, var = expected.batch_means[0], expected.batch_vars[0]
        dmean, dvar = first_statistics
    # Running statistics do not come from this batch: s may fall beyond first order (Δs/s).
    dx_hat, x_hat = normalized_errors(model, first, mean, dmean, var, dvar, independent=running)
    return output_errors(model, x_hat, dx_hat, first, mean)


def gradient_errors(model: _Model, expected: Expected, normalized: tuple,
                    first_statistics: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """Δdβ, Δdγ and Δdx of the first training step (see the module docstring).

    ``normalized`` is the first step's ``(dmean, dvar, dx_hat, x_hat)`` of the statistics it
    normalizes with, which the training output of step 1 computes too
    (``training_output_errors``, ``blended_output_errors``).  Arrays the
    size of the input are few buffers reused in place; each sum is taken once, and a per-channel
    mean is that sum divided by N, as ``np.mean`` computes it.

    Blended statistics (μ̃, ṽ with weights w = ∂μ̃/∂μ, w_v = ∂ṽ/∂σ²; ``first_statistics`` is the
    batch's (Δμ, Δσ²)): dx = γ/s̃·[dy − w·ḡ − w_v·z·ḡx̃] with x̃ = (x − μ̃)/s̃ and z = (x − μ)/s̃
    (ε inside), so the bound is the one above with x̂ → x̃ in ḡx̃ and in dγ, x̂ → z where the batch
    mean centres, and the weights on the terms they multiply:

        Δdx = |γ|/s̃·[u·(|dy| + |ḡ| + |z|·|ḡx̃|) + u_acc·f(N)·(w·m|dy| + w_v·|z|·m|dy·x̃|)
              + w_v·(Δz·|ḡx̃| + |z|·m(|dy|·Δx̃))] + |dx|·(Δs̃/s̃ + u) + η_acc·(…)

    The u terms are not weighted: the weight itself, computed from the decay rounded to the
    working dtype, errs by u·d ≤ u in absolute terms.  With w = w_v = 1 and μ̃ = μ it is the
    batch-normalization bound, bit for bit.
    """
    bc, u, u_acc = model.layout.broadcast, model.u, model.u_acc
    x, mean = model.inputs.data.batches[0], expected.batch_means[0]
    _, var, mean_weight, var_weight = expected.normalizing(0)
    blended = model.inputs.conventions.normalization == "running"
    f = growth(expected.count)
    _, dvar, dx_hat, x_hat = normalized
    if blended:  # z = (x − μ)/s̃, centred by the batch mean, scaled by the blended s̃
        centred_error, centred = normalized_errors(model, x, mean, first_statistics[0], var, dvar, independent=True)
    else:
        centred_error, centred = dx_hat, x_hat
    dy = model.inputs.data.dy  # finite: ``_finite_inputs`` set its non-finite entries to 0
    both = model.per_channel_sum_and_mean
    sum_dy, mean_dy = both(dy)
    abs_dy = np.abs(dy)
    sum_abs_dy, mean_abs_dy = both(abs_dy)
    work = np.multiply(dy, x_hat)  # dy·x̂
    sum_dy_xhat, mean_dy_xhat = both(work)
    sum_abs_dy_xhat, mean_abs_dy_xhat = both(np.abs(work, out=work))
    sum_dy_dxhat, mean_dy_dxhat = both(np.multiply(abs_dy, dx_hat, out=work))  # |dy|·Δx̂
    allowed = {
        "dbeta": u_acc * f * sum_abs_dy + u * np.abs(sum_dy),
        "dgamma": u_acc * f * sum_abs_dy_xhat + sum_dy_dxhat + u * np.abs(sum_dy_xhat),
    }
    s = bc(model.scale(var))
    g_mean = bc(np.abs(mean_dy))
    gx_mean = bc(np.abs(mean_dy_xhat))
    abs_x_hat = np.abs(centred)  # |z|; |x̂| itself under batch normalization
    # inner = u·(|dy| + |ḡ| + |z|·|ḡx̃|) + u_acc·f(N)·(w·m|dy| + w_v·|z|·m|dy·x̃|) + w_v·(Δz·|ḡx̃| + |z|·m(|dy|·Δx̃))
    inner = np.add(abs_dy, g_mean)
    inner += np.multiply(abs_x_hat, gx_mean, out=work)
    inner *= u
    term = np.multiply(abs_x_hat, bc(var_weight * mean_abs_dy_xhat), out=work)
    term += bc(mean_weight * mean_abs_dy)
    term *= u_acc * f
    inner += term
    inner += np.multiply(centred_error, var_weight * gx_mean, out=work)
    inner += np.multiply(abs_x_hat, bc(var_weight * mean_dy_dxhat), out=work)
    scale_error = bc(relative_scale_error(model, var, dvar, independent=blended))
    # Flush-to-zero of the per-channel factors: γ/s of the form γ/s·[dy − ḡ − x̂·ḡx̂], or a, b, c
    # of the folded form dx = a·dy + b·(x − μ) + c.  b = −γ·ḡx̂/s² underflows first, and only
    # where its computed value may lie below η_acc: its value less SAFETY times its error (ḡx̂
    # errs by Δdγ/N, s by Δs/s).
    gx_error = bc(allowed["dgamma"]) / expected.count
    b_lowest = bc(np.abs(model.gamma) * var_weight) * np.maximum(gx_mean - SAFETY * gx_error, 0.0) / (s * s * (1.0 + SAFETY * scale_error) ** 2)
    flushed = np.add(abs_dy, g_mean, out=abs_dy)  # η_acc·(|dy| + |ḡ| + |x̂|·|ḡx̂| + |x − μ|_b)
    del abs_dy
    flushed += np.multiply(abs_x_hat, gx_mean, out=work)
    folded = np.abs(np.subtract(x, bc(mean), out=work), out=work)
    np.copyto(folded, 0.0, where=~(b_lowest < model.eta_flush))
    flushed += folded
    flushed *= model.eta_flush
    dx = np.multiply(inner, bc(np.abs(model.gamma)) / s, out=inner)  # |γ|/s·inner + |dx|·(Δs/s + u) + flushed
    dx_expected = _zero_nonfinite(np.abs(expected.values["dx"], out=work))
    dx_expected *= scale_error + u
    dx += dx_expected
    dx += flushed
    allowed["dx"] = _bound_in_place(dx)
    return allowed


def allowed_errors(inputs: ToleranceInputs, expected: Expected, safety: float = SAFETY) -> dict[str, np.ndarray]:
    """Per-element allowed absolute error of every quantity in ``expected.values``.

    Composed of one bound per family: ``training_output_errors`` (y of each step, through
    ``batch_statistic_errors`` and ``normalized_errors``), ``running_statistic_errors``,
    ``inference_errors`` (before and after training) and ``gradient_errors``; then the
    underflow floor is added and the sum scaled by ``safety``.
    """
    inputs, expected = _finite_inputs(inputs, expected)
    model = _Model.of(inputs)
    data = inputs.data
    zero = np.zeros(model.channels)
    steps = list(zip(data.batches, expected.batch_means, expected.batch_vars, strict=False))
    with np.errstate(all="ignore"):
        # Each step's Δμ and Δσ² are computed once: y_train, the running statistics, inference
        # without running statistics and the gradients share them.
        statistics = [batch_statistic_errors(model, x, mean, var, expected.count) for x, mean, var in steps]
        # Inference mode with the given running statistics (exact inputs).
        allowed = {"y_eval": inference_errors(model, expected, data.running_mean, zero, data.running_var, zero, statistics[0])}
        if inputs.conventions.tracks_running_stats:
            mean_tols, var_tols = running_statistic_errors(model, expected, statistics)
        blended = inputs.conventions.normalization == "running"
        y_train = first_normalized = None
        for step, ((x, mean, var), errors) in enumerate(zip(steps, statistics, strict=True)):
            if blended:  # normalized with the running statistics after the step, which err by Δr_t
                blend_mean, blend_var, _, _ = expected.normalizing(step)
                step_allowed, normalized = blended_output_errors(model, x, blend_mean, blend_var,
                                                                 (mean_tols[step], var_tols[step]))  # fmt: skip
            else:
                step_allowed, normalized = training_output_errors(model, x, mean, var, errors)
            if y_train is None:
                y_train, first_normalized = np.empty((len(steps), *step_allowed.shape)), normalized
            y_train[step] = step_allowed
        allowed["y_train"] = y_train
        if inputs.conventions.tracks_running_stats:
            allowed["running_mean"] = np.stack(mean_tols)
            allowed["running_var"] = np.stack(var_tols)
            final_mean = _nan_safe(expected.values["running_mean"][-1])
            final_var = _nan_safe(expected.values["running_var"][-1])
            after = (final_mean, mean_tols[-1], final_var, var_tols[-1])
            allowed["y_eval_after"] = inference_errors(model, expected, *after, statistics[0])
        else:
            allowed["y_eval_after"] = allowed["y_eval"]
        allowed.update(gradient_errors(model, expected, first_normalized, statistics[0]))
        del first_normalized
        # safety·(bound + floor), in place, once per array (y_eval_after may be y_eval itself).
        floor = underflow_floor(inputs.dtype, expected.count)
        finished: dict[int, np.ndarray] = {}
        result = {}
        for name, value in allowed.items():
            if name not in expected.values:
                continue
            if id(value) in finished:
                result[name] = finished[id(value)].copy()
                continue
            array = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=np.float64)
            _bound_in_place(array)
            array += floor
            array *= safety
            result[name] = finished[id(value)] = array
        return result
