"""Hypothesis strategies that generate conformance cases.

``cases(...)`` draws a whole ``Case``: rank 2–5, 1–64 channels, batch and spatial sizes down
to the smallest legal ones, channel axis first, last or in between (where the adapter
allows), every compute dtype, ε log-uniform over ten decades or left to the framework,
decay over [0, 1] including both ends (and the cumulative average where offered), affine
on or off, one to four training steps with different batches, and data from
well-conditioned to ill-conditioned, and out to the edges of each dtype's range
(``CONDITIONINGS``).  Every batch has at most ``max_elements`` elements.

The range classes (``near_underflow``, ``near_overflow``, ``overflowing_sum``) are scaled to
the case's dtype and to N, the values per channel (``range_limits``).  They stay inside the
domain the tolerance model assumes of a correct implementation: Σx and Σ(x − μ)² fit the
accumulation dtype (float32, or float64 for float64 data), and so does the variance computed
from a mean that errs by the model's worst case, 8·N·u·|μ|.  The variance also fits the
dtype itself: it is stored there as the running variance and carried into the next step,
where an infinite one becomes 0·∞ = NaN with decay 0 and ∞ − ∞ in the cumulative average,
while the reference keeps its running statistics in float64 and has a finite number.  So
float16 data reach 10⁴ with spreads up to 16, and their outputs (not their statistics)
overflow: y in inference mode, γ·(x − m)/√(v + ε) with small running variances.  A float32 channel around 10³⁰ is
outside it: its mean errs by ulps of 10²³, whose squares overflow float32, so every float32
implementation gets σ² = +∞, dx = 0 and, with decay 1, a running variance 0·∞ = NaN; such
data would test the accumulator's width, not the implementation.

Examples shrink toward rank 2, few channels, small batches, float32, the framework's
defaults and well-conditioned data.  Draws are labelled, so a failing example prints as
readable steps.  Shape and channel axis are drawn once and shared (``st.shared``) by the
strategies of the per-channel vectors.

With ``pooled=True`` (the ``dev`` and ``ci`` profiles, see ``profiles.pooled``) the shape,
channel axis, dtype, affine, ε and decay come together from the small fixed pool of
``configurations.configuration_pool`` instead, so a compiling engine compiles a handful of
programs rather than one per example; everything else is drawn as above.  ``nightly`` draws
all of it freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adapters.base import Capabilities
from datamodel.case import CUMULATIVE, Case, Generator
from reference.dtypes import numpy_dtype

from .configurations import Configuration, Layout, configuration_pool, supported_dtypes

#: Data conditioning classes, from easy to hard; each sets per-channel location and scale.
#: The last three reach the edges of the dtype's range (see the module docstring).
CONDITIONINGS = ("well", "offset", "tiny_spread", "huge_spread", "constant_channels", "heavy_tails", "outliers",
                 "near_underflow", "near_overflow", "overflowing_sum")  # fmt: skip
#: float16 cannot hold a variance beyond 65504: spreads stay below this there.
_MAX_SCALE = {"float16": 100.0}
#: The model's worst-case factor on a mean's error (its SAFETY): the range classes keep the
#: variance finite even when the mean errs by this many times (N − 1)·u·|μ|.
_MEAN_ERROR_FACTOR = 8.0


@dataclass(frozen=True)
class RangeLimits:
    """The edges of a dtype's range for data with ``count`` values per channel.

    ``smallest_normal``: the dtype's; ``spread``: the largest per-channel spread whose variance
    the dtype holds (it is stored as the running variance) and whose N squared deviations the
    accumulation dtype holds, with a factor 16 to spare on the spread (sample variances of
    small N and the unbiased estimator's N/(N − 1) need it); ``magnitude``: the largest |μ|
    whose sum fits the accumulation dtype, whose values fit the dtype (a quarter of its largest
    number), whose spacing in the dtype is at most ``spread`` (rounding may spread a nearly
    constant channel by one spacing), and whose mean's worst-case error is at most ``spread``.
    ``wider_accumulator``: whether N values near the dtype's largest number sum within the
    accumulation dtype (float16: its sums may overflow 65504 and must not).
    """

    largest: float
    smallest_normal: float
    spread: float
    magnitude: float
    wider_accumulator: bool


def range_limits(dtype: str, count: int) -> RangeLimits:
    """The ``RangeLimits`` of ``dtype`` for ``count`` values per channel."""
    import ml_dtypes  # ships with jax and tensorflow; NumPy has no bfloat16 of its own

    info = ml_dtypes.finfo(numpy_dtype(dtype))
    accumulation = np.finfo(np.float64 if dtype == "float64" else np.float32)
    largest, acc_largest, acc_u = float(info.max), float(accumulation.max), float(accumulation.eps) / 2
    count = max(count, 1)
    spread = np.sqrt(min(largest, acc_largest / count)) / 16.0
    spacing = float(info.eps)  # the spacing of the numbers near |μ| is at most eps·|μ|
    magnitude = min(largest / 4.0, acc_largest / count / 4.0, spread / spacing,
                    spread / (count * acc_u * _MEAN_ERROR_FACTOR))  # fmt: skip
    return RangeLimits(largest=largest, smallest_normal=float(info.smallest_normal), spread=float(spread),
                       magnitude=float(magnitude), wider_accumulator=acc_largest >= 16.0 * count * largest)  # fmt: skip


@cache
def vectors(channels: int, low: float, high: float, dtype: type = np.float64) -> st.SearchStrategy[np.ndarray]:
    """One value per channel in [low, high] (no subnormals), as an array.

    Built once per signature and kept: hypothesis caches facts about strategy objects,
    and rebuilding them on every draw made replays of shrunk examples inconsistent.
    """
    if dtype is np.float64:
        elements = st.floats(low, high, allow_subnormal=False)
    elif dtype is np.int8:
        elements = st.sampled_from([int(low), int(high)])
    else:
        elements = st.booleans()
    return hnp.arrays(dtype, channels, elements=elements)


def _check_bounds(**bounds: int) -> None:
    for name, value in bounds.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


@st.composite
def layouts(
    draw,
    *,
    capabilities: Capabilities,
    max_elements: int,
    min_channels: int = 1,
    max_channels: int = 64,
    min_per_channel: int = 2,
    max_per_channel: int | None = None,
) -> Layout:
    """A shape and channel axis the adapter supports, with ``min_per_channel`` ≤ N ≤ ``max_per_channel``.

    N is the number of values per channel (the product of every non-channel axis).
    Shrinks toward rank 2, one channel, the smallest sizes, channels-first.
    """
    _check_bounds(max_elements=max_elements, min_channels=min_channels, max_channels=max_channels,
                  min_per_channel=min_per_channel)  # fmt: skip
    if min_channels > max_channels:
        raise ValueError(f"min_channels {min_channels} exceeds max_channels {max_channels}")
    if max_per_channel is not None and max_per_channel < min_per_channel:
        raise ValueError(f"max_per_channel {max_per_channel} is below min_per_channel {min_per_channel}")
    if min_channels * min_per_channel > max_elements:
        raise ValueError(f"min_channels·min_per_channel = {min_channels * min_per_channel} exceeds max_elements {max_elements}")
    rank = draw(st.sampled_from(sorted(capabilities.ranks)), label="rank")
    channels = draw(st.integers(min_channels, min(max_channels, max_elements // min_per_channel)), label="channels")
    budget = max_elements // channels
    if max_per_channel is not None:
        budget = min(budget, max_per_channel)
    per_channel_budget = budget
    sizes = []
    for axis in range(rank - 1):
        remaining_axes = rank - 2 - axis
        size = draw(st.integers(1, max(1, min(16 if axis == 0 else 8, budget))), label=f"size[{axis}]")
        if remaining_axes == 0 and np.prod([*sizes, size]) < min_per_channel:
            before = int(np.prod(sizes, dtype=np.int64))
            size = -(-min_per_channel // before)
            if before * size > per_channel_budget:  # rounding up overshoots: N on this axis alone
                sizes, size = [1] * len(sizes), min_per_channel
        sizes.append(size)
        budget = max(1, budget // size)
    per_channel = int(np.prod(sizes, dtype=np.int64))
    if per_channel < min_per_channel:  # rank 2: only the batch axis; grow it
        sizes[0] = int(np.ceil(min_per_channel / (per_channel // sizes[0])))
    axes = [1] if (rank == 2 or not capabilities.any_channel_axis) else list(range(1, rank))
    axis = draw(st.sampled_from(axes), label="channel_axis")
    shape = list(sizes)
    shape.insert(axis, channels)
    return Layout(tuple(int(s) for s in shape), axis if axis < rank - 1 or rank == 2 else -1)


def epsilons(*, allow_default: bool = True) -> st.SearchStrategy[float | None]:
    """ε log-uniform over [1e-8, 1], or ``None`` (the framework's default)."""
    drawn = st.floats(-8.0, 0.0).map(lambda e: float(10.0**e))
    return st.one_of(st.none(), drawn) if allow_default else drawn


def decays(*, cumulative: bool) -> st.SearchStrategy[float | str | None]:
    """Canonical decay in [0, 1] (both ends included), ``None`` (default), or cumulative."""
    options = [st.none(), st.sampled_from([0.0, 1.0, 0.9, 0.99]), st.floats(0.0, 1.0)]
    if cumulative:
        options.append(st.just(CUMULATIVE))
    return st.one_of(*options)


@st.composite
def generators(draw, *, channels: int, dtype: str, conditioning: str, seed: int, count: int = 2) -> Generator:
    """Seeded data of one conditioning class for ``channels`` channels of ``count`` values each."""
    max_scale = _MAX_SCALE.get(dtype, 1e4)

    def vector(low: float, high: float, label: str) -> tuple[float, ...]:
        return tuple(draw(vectors(channels, low, high), label=label).tolist())

    scale = vector(0.3, 3.0, "scale")
    loc = vector(-3.0, 3.0, "loc")
    kwargs: dict = {}
    if conditioning == "offset":
        exponents = vector(1.0, 4.0, "log10_offset")
        signs = draw(vectors(channels, -1, 1, np.int8), label="offset_sign")
        loc = tuple(float(s * 10.0**e) for s, e in zip(signs, exponents, strict=False))
        scale = vector(0.01, 1.0, "scale")
    elif conditioning == "tiny_spread":
        scale = tuple(float(10.0**-e) for e in vector(2.0, 6.0, "log10_tiny_scale"))
    elif conditioning == "huge_spread":
        scale = tuple(min(max_scale, float(10.0**e)) for e in vector(1.0, 4.0, "log10_huge_scale"))
    elif conditioning == "constant_channels":
        constant = draw(vectors(channels, 0, 1, np.bool_), label="constant")
        scale = tuple(0.0 if c else s for c, s in zip(constant, scale, strict=False))
    elif conditioning == "heavy_tails":
        # float16 tops out at 65504: tails heavier than df = 3 would overflow the data itself.
        kwargs = {"distribution": "student_t", "df": draw(st.floats(3.0 if dtype == "float16" else 1.5, 4.0), label="df")}
    elif conditioning == "outliers":
        kwargs = {"outliers": draw(st.integers(1, 3), label="outliers"),
                  "outlier_magnitude": draw(st.floats(10.0, 1000.0 if dtype != "float16" else 30.0), label="outlier_magnitude")}  # fmt: skip
    elif conditioning == "near_underflow":  # spreads around the dtype's smallest normal number
        tiny = range_limits(dtype, count).smallest_normal
        scale = tuple(tiny * 10.0**e for e in vector(-1.0, 2.0, "log10_scale_over_tiny"))
        loc = tuple(s * m for s, m in zip(scale, vector(-3.0, 3.0, "loc_over_scale"), strict=False))
    elif conditioning in ("near_overflow", "overflowing_sum"):
        loc, scale = _range_edge(draw, channels, range_limits(dtype, count), conditioning, count)
    return Generator(seed=seed, loc=loc, scale=scale, **kwargs)


def _range_edge(draw, channels: int, limits: RangeLimits, conditioning: str, count: int):
    """loc and scale per channel at the top of the dtype's range (see ``RangeLimits``).

    ``near_overflow``: each channel either sits near the largest magnitude the domain allows
    ("wide"; its spread may be below the spacing of the numbers there, which makes it
    constant), or spreads as far as the domain allows around a mean of at most three spreads.
    ``overflowing_sum``: where the accumulator is wider than the dtype (float16), every value is
    finite but the channel's sum exceeds the dtype's largest number 2 to 20 times over (a value
    is at most two-thirds of it, so N = 2 suffices); elsewhere no sum can overflow the dtype
    without overflowing the accumulator, and the channel sits at the domain's largest
    magnitude.  Spreads are 10⁻² to 1 times the domain's limit.
    """

    def exponents(low: float, high: float, label: str) -> np.ndarray:
        return 10.0 ** draw(vectors(channels, low, high), label=label)

    sign = draw(vectors(channels, -1, 1, np.int8), label="sign").astype(np.float64)
    spread = limits.spread * exponents(-2.0, 0.0, "log10_spread_over_limit")
    if conditioning == "near_overflow":
        wide = draw(vectors(channels, 0, 1, np.bool_), label="wide")
        near_limit = limits.magnitude * exponents(-1.0, 0.0, "log10_magnitude_over_limit")
        loc = sign * np.where(wide, near_limit, spread * draw(vectors(channels, 0.0, 3.0), label="mean_over_spread"))
    elif limits.wider_accumulator:
        total = 2.0 * limits.largest * exponents(0.0, 1.0, "log10_sum_over_2max")
        loc = sign * np.minimum(limits.largest / 1.5, total / count)
    else:
        loc = sign * limits.magnitude * exponents(-0.5, 0.0, "log10_magnitude_over_limit")
    return tuple(float(v) for v in loc), tuple(float(v) for v in spread)


@st.composite
def cases(
    draw,
    *,
    capabilities: Capabilities,
    device: str = "cpu",
    max_elements: int = 4096,
    dtypes: tuple[str, ...] | None = None,
    conditionings: tuple[str, ...] = CONDITIONINGS,
    max_steps: int = 4,
    min_per_channel: int = 2,
    pooled: bool = False,
) -> Case:
    """A whole case the adapter can run (see the module docstring for what varies).

    ``pooled``: take the layout, dtype, affine, ε and decay from ``configuration_pool`` (the
    ``ci`` and ``dev`` profiles) instead of drawing each freely (``nightly``).
    """
    allowed_dtypes = supported_dtypes(capabilities, dtypes)
    # One layout per example, shared (st.shared) by every per-channel draw below.
    if pooled:
        pool = configuration_pool(capabilities, max_elements=max_elements, min_per_channel=min_per_channel,
                                  dtypes=tuple(allowed_dtypes))  # fmt: skip
        shared = st.shared(st.sampled_from(pool), key="bnconf-configuration")
        configuration: Configuration | None = draw(shared, label="configuration")
        layout = configuration.layout
    else:
        shared = st.shared(
            layouts(capabilities=capabilities, max_elements=max_elements, min_per_channel=min_per_channel), key="bnconf-layout"
        )
        configuration, layout = None, draw(shared, label="layout")

    def per_channel(low: float, high: float) -> st.SearchStrategy[np.ndarray]:
        return shared.flatmap(lambda drawn: vectors((drawn.layout if pooled else drawn).channels, low, high))

    dtype = configuration.dtype if configuration else draw(st.sampled_from(allowed_dtypes), label="dtype")
    conditioning = draw(st.sampled_from(conditionings), label="conditioning")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    count = int(np.prod(layout.shape, dtype=np.int64)) // layout.channels
    if configuration:
        affine = configuration.affine
    else:
        affine = draw(st.booleans(), label="affine") if capabilities.affine_off else True
    return Case(
        shape=layout.shape,
        channel_axis=layout.channel_axis,
        dtype=dtype,
        x=draw(generators(channels=layout.channels, dtype=dtype, conditioning=conditioning, seed=seed, count=count), label="x"),
        eps=configuration.eps if configuration else draw(epsilons(), label="eps"),
        decay=configuration.decay if configuration else draw(decays(cumulative=capabilities.cumulative), label="decay"),
        affine=affine,
        training_steps=draw(st.integers(1, max_steps), label="training_steps"),
        gamma=draw(per_channel(-3.0, 3.0), label="gamma") if affine else None,
        beta=draw(per_channel(-3.0, 3.0), label="beta") if affine else None,
        running_mean=draw(per_channel(-5.0, 5.0), label="running_mean"),
        running_var=draw(per_channel(0.01, 10.0), label="running_var"),
        dy=Generator(seed=(seed + 1) % 2**32),
        device=device,
        extra={"conditioning": conditioning},
    )
