"""Hypothesis-drawn runs for testing the tolerance model head-on, and judging an emulation on one.

A ``Run`` is a case's arrays already rounded to its dtype (``CaseData``), its resolved settings
(``ToleranceInputs``) and the reference's values, from one conditioning class of ``CLASSES``.
``judge`` compares an emulation's quantities with the reference under ``allowed_errors``,
exactly as ``conformance.judging.check`` does for a framework.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from hypothesis import strategies as st

from conformance.judging.compare import Comparison, compare
from conformance.judging.tolerance import ToleranceInputs, allowed_errors, largest_finite
from datamodel.case import CaseData
from reference import Conventions, Expected, round_to, simulate

#: Data classes, from easy to hard (see ``_location_and_scale``).
CLASSES = ("ordinary", "offset", "constant", "tiny_variance", "heavy_tails", "near_underflow")
#: The edges of the dtype's range, exactly as the suite generates them (``strategies.generators``).
RANGE_CLASSES = ("near_overflow", "overflowing_sum")
#: Not a class of its own in ``CLASSES``: σ² from ε/4 to 4ε, where ε's placement matters most.
VARIANCE_NEAR_EPS = "variance_near_eps"


@dataclass(frozen=True)
class Run:
    """One case run: its inputs, the reference's values and the data's class (for reports)."""

    inputs: ToleranceInputs
    expected: Expected
    data_class: str
    seed: int

    def __repr__(self) -> str:  # hypothesis prints failing examples: the arrays would be kilobytes
        return f"Run({self.describe()})"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis's pretty-printer asks for this first
        printer.text(repr(self))

    def describe(self) -> str:
        shape = self.inputs.data.batches[0].shape
        return (f"{self.data_class} {self.inputs.dtype} shape {shape} axis {self.inputs.axis} "
                f"eps {self.inputs.eps:.3g} steps {len(self.inputs.data.batches)} seed {self.seed}")  # fmt: skip


def reference_run(inputs: ToleranceInputs, data_class: str = "", seed: int = 0) -> Run:
    data = inputs.data
    expected = simulate(
        data.batches, gamma=data.gamma, beta=data.beta, running_mean=data.running_mean,
        running_var=data.running_var, dy=data.dy, axis=inputs.axis, eps=inputs.eps, decay=inputs.decay,
        dtype=inputs.dtype, conventions=inputs.conventions,
    )  # fmt: skip
    return Run(inputs, expected, data_class, seed)


def judge(run: Run, observed: dict[str, np.ndarray]) -> dict[str, Comparison]:
    """Each quantity's comparison with the reference under the tolerance model."""
    allowed = allowed_errors(run.inputs, run.expected)
    limit = largest_finite(run.inputs.dtype)
    return {
        name: compare(name, value, observed[name], allowed[name], limit) for name, value in run.expected.values.items()
    }


def worst(comparisons: dict[str, Comparison]) -> tuple[float, str]:
    """The largest error/allowed ratio over every quantity, and the quantity that has it."""
    name = max(comparisons, key=lambda q: comparisons[q].ratio)
    return comparisons[name].ratio, name


def _location_and_scale(
    draw, data_class: str, dtype: str, channels: int, count: int, eps: float, log10_offset: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel loc and scale of the data (x = loc + scale·z), for ``count`` values per channel."""
    if data_class in RANGE_CLASSES:
        # Imported here: importing the suite's strategies at module level changes the examples that
        # derandomized hypothesis draws for every class (the figures in the README would move).
        from conformance.generation.strategies import generators

        generator = draw(generators(channels=channels, dtype=dtype, conditioning=data_class, seed=0, count=count))
        return np.array(generator.loc, dtype=np.float64), np.array(generator.scale, dtype=np.float64)

    def uniform(low: float, high: float, label: str) -> np.ndarray:
        values = st.lists(st.floats(low, high), min_size=channels, max_size=channels)
        return np.array(draw(values, label=label))

    scale = uniform(0.3, 3.0, "scale")
    loc = uniform(-3.0, 3.0, "loc")
    if data_class == "offset":  # |μ|/σ from 10^log10_offset[0] to 10^log10_offset[1]
        scale = 10.0 ** uniform(-2.0, 0.0, "log10_scale")
        loc = np.where(uniform(-1, 1, "sign") < 0, -1.0, 1.0) * scale * 10.0 ** uniform(*log10_offset, "log10_offset")
    elif data_class == "constant":  # some channels without spread (at least the first)
        spread = np.array(draw(st.lists(st.booleans(), min_size=channels, max_size=channels), label="spread"))
        spread[0] = False
        scale = np.where(spread, scale, 0.0)
    elif data_class == "tiny_variance":  # σ² from 10⁻⁶ to 10⁻¹ of ε
        scale = np.sqrt(eps) * 10.0 ** uniform(-3.0, -0.5, "log10_scale_over_sqrt_eps")
        loc = loc * scale
    elif data_class == VARIANCE_NEAR_EPS:
        scale = np.sqrt(eps) * 10.0 ** uniform(-0.3, 0.3, "log10_scale_over_sqrt_eps")
        loc = loc * scale
    elif data_class == "near_underflow":  # around the dtype's smallest normal number
        tiny = float(np.finfo(np.float16 if dtype == "float16" else np.float32).tiny)
        scale = tiny * 10.0 ** uniform(-1.0, 2.0, "log10_scale_over_tiny")
        loc = loc * scale
    return loc, scale


@st.composite
def runs(
    draw, *, dtype: str, classes: tuple[str, ...] = CLASSES, min_count: int = 2, max_count: int = 256,
    max_channels: int = 4, max_steps: int = 3, eps_range: tuple[float, float] = (-8.0, -1.0),
    log10_offset: tuple[float, float] = (1.0, 3.0),
) -> Run:
    """A run of ``dtype`` on data of one of ``classes`` (or ``RANGE_CLASSES``) with N in [min_count, max_count] values per channel.

    Conventions: ε inside the root, biased or unbiased running variance, EMA (any decay in
    [0, 1]) or cumulative averaging; ε log-uniform over 10^eps_range.  Shrinks toward rank 2, one channel, small N, the first class.
    """
    data_class = draw(st.sampled_from(classes), label="class")
    rank = draw(st.integers(2, 4), label="rank")
    spatial = draw(st.lists(st.integers(1, 8), min_size=rank - 2, max_size=rank - 2), label="spatial")
    per_batch_row = int(np.prod(spatial, dtype=np.int64))
    low = -(-min_count // per_batch_row)
    batch = draw(st.integers(low, max(low, max_count // per_batch_row)), label="batch")
    channels = draw(st.integers(1, max_channels), label="channels")
    axis = draw(st.integers(1, rank - 1), label="channel_axis")
    shape = [batch, *spatial]
    shape.insert(axis, channels)
    eps = float(10.0 ** draw(st.floats(*eps_range), label="log10_eps"))
    count = batch * per_batch_row
    loc, scale = _location_and_scale(draw, data_class, dtype, channels, count, eps, log10_offset)
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    steps = draw(st.integers(1, max_steps), label="steps")
    heavy = data_class == "heavy_tails"
    df = draw(st.floats(3.0 if dtype == "float16" else 1.5, 4.0), label="df") if heavy else 0.0
    outliers = draw(st.integers(1, 3), label="outliers") if heavy else 0
    # float16 tops out at 65504: a variance of outliers beyond ~250σ would not fit (as in the suite's strategies).
    magnitude = 30.0 if dtype == "float16" else 1000.0

    def batch_of() -> np.ndarray:
        z = rng.standard_t(df, shape) if heavy else rng.standard_normal(shape)
        if outliers:
            flat = z.reshape(-1)
            flat[rng.choice(flat.size, size=min(outliers, flat.size), replace=False)] = magnitude * rng.choice([-1, 1])
        moved = np.moveaxis(z, axis, -1) * scale + loc
        return round_to(np.moveaxis(moved, -1, axis), dtype)

    affine = draw(st.booleans(), label="affine")

    def vector(low: float, high: float, label: str) -> np.ndarray:
        return round_to(np.array(draw(st.lists(st.floats(low, high), min_size=channels, max_size=channels), label=label)), dtype)

    data = CaseData(
        batches=[batch_of() for _ in range(steps)],
        gamma=vector(-3.0, 3.0, "gamma") if affine else None,
        beta=vector(-3.0, 3.0, "beta") * draw(st.sampled_from([1.0, 0.0]), label="beta_on") if affine else None,
        running_mean=vector(-5.0, 5.0, "running_mean"),
        running_var=vector(0.01, 10.0, "running_var"),
        dy=round_to(rng.standard_normal(shape), dtype),
    )  # fmt: skip
    cumulative = draw(st.booleans(), label="cumulative")
    decay = None if cumulative else draw(st.sampled_from([0.9, 0.99, 0.0, 1.0, 0.5]) | st.floats(0.0, 1.0), label="decay")
    conventions = Conventions(
        running_variance=draw(st.sampled_from(["biased", "unbiased"]), label="estimator"),
        averaging="cumulative" if cumulative else "ema",
    )
    inputs = ToleranceInputs(data=data, axis=axis, eps=eps, decay=decay, dtype=dtype, conventions=conventions)
    return reference_run(inputs, data_class, seed)


# -- transformations that must not change a verdict ---------------------------------------------
def scaled(run: Run, power: int) -> Run:
    """x, β and the running mean times c = 2^power; γ too, so y scales by c; ε and variances by c².

    Every rounding scales exactly, so the errors scale by c (y, running statistics) or 1 (dx,
    dγ, dβ: dy is kept), and so do the allowed errors but for the underflow floor.
    """
    c = 2.0**power
    data = run.inputs.data
    scaled_data = CaseData(
        batches=[b * c for b in data.batches],
        gamma=None if data.gamma is None else data.gamma * c,
        beta=None if data.beta is None else data.beta * c,
        running_mean=data.running_mean * c, running_var=data.running_var * c * c, dy=data.dy,
    )  # fmt: skip
    inputs = replace(run.inputs, data=scaled_data, eps=run.inputs.eps * c * c)
    return reference_run(inputs, run.data_class, run.seed)


def channels_permuted(run: Run, order: np.ndarray) -> Run:
    """The same run with its channels in ``order``."""
    data, axis = run.inputs.data, run.inputs.axis

    def vector(v):
        return None if v is None else v[order]

    permuted = CaseData(
        batches=[np.take(b, order, axis=axis) for b in data.batches], gamma=vector(data.gamma),
        beta=vector(data.beta), running_mean=data.running_mean[order], running_var=data.running_var[order],
        dy=np.take(data.dy, order, axis=axis),
    )  # fmt: skip
    return reference_run(replace(run.inputs, data=permuted), run.data_class, run.seed)


def channel_axis_moved(run: Run, axis: int) -> Run:
    """The same run with its channel axis moved to ``axis`` (every other axis keeps its order)."""
    data, old = run.inputs.data, run.inputs.axis

    def move(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(array, old, axis))

    moved = replace(data, batches=[move(b) for b in data.batches], dy=move(data.dy))
    return reference_run(replace(run.inputs, data=moved, axis=axis), run.data_class, run.seed)
