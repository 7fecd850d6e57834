"""Case strategies: what ``conformance.generation.strategies`` may generate, how it shrinks, and its argument checks.

The suite trusts the strategies to draw only cases an adapter can run, to stay under the
element budget of the active profile, and to shrink toward small, well-conditioned, float32
cases.  These tests pin each of those promises on plain ``Capabilities`` objects, without
any framework.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from adapters.base import Capabilities
from conformance.generation.configurations import DTYPE_ORDER
from conformance.generation.strategies import CONDITIONINGS, cases, layouts, range_limits
from datamodel.case import CUMULATIVE, Case, Generator
from reference.dtypes import numpy_dtype

RESTRICTIVE = Capabilities(
    ranks=frozenset({4, 5}), dtypes=frozenset({"float32"}), devices=frozenset({"cpu"}),
    any_channel_axis=False, affine_off=False, cumulative=False,
)  # fmt: skip
PERMISSIVE = Capabilities(
    ranks=frozenset({2, 3, 4, 5}), dtypes=frozenset(DTYPE_ORDER), devices=frozenset({"cpu"}),
    any_channel_axis=True, affine_off=True, cumulative=True,
)  # fmt: skip
CAPABILITIES = [pytest.param(RESTRICTIVE, id="restrictive"), pytest.param(PERMISSIVE, id="permissive")]

EXAMPLES = settings(max_examples=50, database=None, deadline=None)
FIND = settings(database=None, deadline=None, max_examples=500)
#: for "some example exists": the first one found will do, shrinking it is wasted time
EXISTS = settings(FIND, phases=[Phase.explicit, Phase.reuse, Phase.generate])


def _per_channel(case: Case) -> int:
    return case.layout.count(case.shape)


@pytest.mark.parametrize("capabilities", CAPABILITIES)
@EXAMPLES
@given(data=st.data())
def test_cases_are_supported_by_the_capabilities(capabilities, data):
    """Every drawn case passes ``unsupported_reason``: the suite never has to skip a generated case."""
    case = data.draw(cases(capabilities=capabilities))
    assert capabilities.unsupported_reason(case) is None
    if capabilities is RESTRICTIVE:
        assert case.rank in (4, 5)
        assert case.layout.axis == 1
        assert case.affine
        assert case.decay != CUMULATIVE


@EXAMPLES
@given(
    max_elements=st.integers(1, 4096),
    min_per_channel=st.integers(1, 8),
    slack=st.none() | st.integers(0, 20),
    data=st.data(),
)
def test_layouts_respect_the_element_budget(max_elements, min_per_channel, slack, data):
    """Shape bounds hold for any legal budget: ≤ max_elements elements, min_per_channel ≤ N ≤ max_per_channel.

    A min_per_channel of 3 or more once overshot both bounds when the last axis was rounded up
    (max_elements 4, min_per_channel 4 gave shape (3, 1, 2)).
    """
    min_per_channel = min(min_per_channel, max_elements)
    max_per_channel = None if slack is None else min_per_channel + slack
    layout = data.draw(layouts(capabilities=PERMISSIVE, max_elements=max_elements, min_per_channel=min_per_channel,
                               max_per_channel=max_per_channel))  # fmt: skip
    size = int(np.prod(layout.shape))
    per_channel = size // layout.channels
    assert size <= max_elements, layout
    assert per_channel >= min_per_channel, layout
    assert max_per_channel is None or per_channel <= max_per_channel, layout
    assert 1 <= layout.channels <= 64


@pytest.mark.parametrize("capabilities", CAPABILITIES)
@EXAMPLES
@given(max_elements=st.sampled_from([2, 7, 64, 4096]), data=st.data())
def test_case_sizes_channels_and_vectors(capabilities, max_elements, data):
    """Batch size, channel count and per-channel vectors (γ, β, running statistics) of whole cases."""
    case = data.draw(cases(capabilities=capabilities, max_elements=max_elements))
    assert case.size <= max_elements
    assert _per_channel(case) >= 2
    assert 1 <= case.channels <= 64
    vectors = [case.running_mean, case.running_var] + ([case.gamma, case.beta] if case.affine else [])
    for vector in vectors:
        assert vector.shape == (case.channels,)
        assert np.all(np.isfinite(vector))
    assert np.all(case.running_var > 0)
    if not case.affine:
        assert case.gamma is None
        assert case.beta is None


@EXAMPLES
@given(data=st.data())
def test_materialized_cases_have_the_declared_shapes_and_finite_float16_data(data):
    """``materialize`` works on every case; float16 data (max 65504) stays finite after rounding."""
    case = data.draw(cases(capabilities=PERMISSIVE, dtypes=("float16", "float32"), max_elements=512))
    arrays = case.materialize()
    assert len(arrays.batches) == case.training_steps
    assert all(batch.shape == case.shape for batch in arrays.batches)
    assert arrays.dy.shape == case.shape
    if case.dtype == "float16":
        assert all(np.all(np.isfinite(batch)) for batch in arrays.batches)


@pytest.mark.parametrize("capabilities", CAPABILITIES)
@EXAMPLES
@given(data=st.data())
def test_eps_and_decay_ranges(capabilities, data):
    """ε is the framework default or in [1e-8, 1]; decay is the default, in [0, 1], or cumulative where offered."""
    case = data.draw(cases(capabilities=capabilities))
    assert case.eps is None or 1e-8 <= case.eps <= 1.0
    if case.decay == CUMULATIVE:
        assert capabilities.cumulative
    else:
        assert case.decay is None or 0.0 <= case.decay <= 1.0


# -- shrinking ----------------------------------------------------------------------------


def test_minimal_case_is_rank_2_float32_well_conditioned_with_defaults():
    """The simplest example is what a failing test should shrink toward: smallest rank, first dtype, easy data."""
    case = find(cases(capabilities=PERMISSIVE, max_elements=64), lambda c: True, settings=FIND)
    assert case.rank == 2
    assert case.shape == (2, 1)
    assert case.dtype == DTYPE_ORDER[0] == "float32"
    assert case.extra["conditioning"] == CONDITIONINGS[0] == "well"
    assert (case.eps, case.decay, case.training_steps) == (None, None, 1)


def test_minimal_rank_4_case_has_the_smallest_sizes():
    """Conditioned on rank 4, shrinking still reaches one channel and exactly min_per_channel values."""
    case = find(cases(capabilities=PERMISSIVE, max_elements=64), lambda c: c.rank == 4, settings=FIND)
    assert case.channels == 1
    assert case.size == 2
    assert case.layout.axis == 1  # channels-first
    assert case.shape == (1, 1, 1, 2)


# -- conditioning classes -------------------------------------------------------------------


def _scales(generator: Generator) -> np.ndarray:
    return np.atleast_1d(np.asarray(generator.scale, dtype=np.float64))


def _locs(generator: Generator) -> np.ndarray:
    return np.atleast_1d(np.asarray(generator.loc, dtype=np.float64))


#: what each class must look like in at least one example (found with ``hypothesis.find``)
REACHABLE = {
    "well": lambda g: g.distribution == "normal" and np.all((_scales(g) >= 0.3) & (_scales(g) <= 3.0)),
    "offset": lambda g: np.max(np.abs(_locs(g)) / _scales(g)) >= 10.0,
    "tiny_spread": lambda g: np.all(_scales(g) <= 1e-2),
    "huge_spread": lambda g: np.all(_scales(g) >= 10.0),
    "constant_channels": lambda g: np.any(_scales(g) == 0.0),
    "heavy_tails": lambda g: g.distribution == "student_t" and 1.5 <= g.df <= 4.0,
    "outliers": lambda g: 1 <= g.outliers <= 3 and g.outlier_magnitude >= 10.0,
    "near_underflow": lambda g: np.all((_scales(g) > 0) & (_scales(g) <= 1e-2)),
    "near_overflow": lambda g: np.max(np.abs(_locs(g))) >= 1e3,
    "overflowing_sum": lambda g: np.all(np.abs(_locs(g)) >= 30.0),
}


def test_every_conditioning_class_has_a_reachability_check():
    assert set(REACHABLE) == set(CONDITIONINGS)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_each_conditioning_class_is_reachable(conditioning):
    """Restricting ``conditionings`` to one class gives cases of that class, tagged in ``extra``."""
    check = REACHABLE[conditioning]
    case = find(
        cases(capabilities=PERMISSIVE, conditionings=(conditioning,)),
        lambda c: c.extra["conditioning"] == conditioning and bool(check(c.x)),
        settings=EXISTS,
    )
    assert case.extra == {"conditioning": conditioning}


@EXAMPLES
@given(data=st.data())
def test_offset_data_is_offset_in_every_channel(data):
    """ "offset" puts |loc| ≥ 10·scale in every channel: the regime where E[x²] − E[x]² cancels."""
    case = data.draw(cases(capabilities=PERMISSIVE, conditionings=("offset",)))
    assert np.all(np.abs(_locs(case.x)) / _scales(case.x) >= 10.0 - 1e-9)


@EXAMPLES
@given(data=st.data())
def test_float16_huge_spread_stays_below_the_float16_variance_limit(data):
    """float16 spreads are capped at 100 so the variance (≤ 1e4) stays below float16's 65504."""
    case = data.draw(cases(capabilities=PERMISSIVE, dtypes=("float16",), conditionings=("huge_spread",)))
    assert np.all(_scales(case.x) <= 100.0)


# -- argument checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        pytest.param({"max_elements": 0}, "max_elements must be a positive integer, got 0", id="max_elements-zero"),
        pytest.param({"max_elements": 8, "min_channels": -1}, "min_channels must be a positive integer, got -1", id="min_channels-negative"),
        pytest.param({"max_elements": 8, "min_per_channel": 2.5}, "min_per_channel must be a positive integer, got 2.5", id="min_per_channel-float"),
        pytest.param({"max_elements": 5, "min_channels": 3}, "= 6 exceeds max_elements 5", id="channels-times-values-over-budget"),
    ],
)  # fmt: skip
def test_layouts_reject_bad_bounds_naming_the_values(bounds, message):
    """Bad bounds fail fast with the offending values, not deep inside hypothesis."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        find(layouts(capabilities=PERMISSIVE, **bounds), lambda layout: True, settings=FIND)


@pytest.mark.parametrize(
    ("capabilities", "dtypes"),
    [
        pytest.param(PERMISSIVE, ("float8",), id="unknown-dtype"),
        pytest.param(RESTRICTIVE, ("float64", "bfloat16"), id="dtypes-the-adapter-lacks"),
    ],
)
def test_cases_reject_dtypes_nobody_supports(capabilities, dtypes):
    """Asking for dtypes the adapter cannot run is an error that names them and what is supported."""
    with pytest.raises(ValueError, match=r"none of the dtypes .* is supported \(supported: ") as raised:
        find(cases(capabilities=capabilities, dtypes=dtypes), lambda c: True, settings=FIND)
    assert repr(dtypes[0]) in str(raised.value)


# -- the edges of the range ----------------------------------------------------------------


def _per_channel_rows(case: Case, batch: np.ndarray) -> np.ndarray:
    """(C, N): each channel's values in a row."""
    moved = np.moveaxis(batch, case.layout.axis, 0)
    return moved.reshape(moved.shape[0], -1)


RANGE = ("near_underflow", "near_overflow", "overflowing_sum")


@EXAMPLES
@given(data=st.data())
def test_range_classes_stay_in_the_domain_of_the_tolerance_model(data):
    """Finite values whose Σx and Σ(x − μ)² fit the accumulation dtype and whose variance fits the dtype.

    Beyond that domain no implementation accumulating in float32 can give the reference's
    finite answer (see the strategies' docstring); the tolerance model assumes it.
    """
    case = data.draw(cases(capabilities=PERMISSIVE, conditionings=RANGE, max_elements=2048))
    largest = float(ml_dtypes.finfo(numpy_dtype(case.dtype)).max)
    accumulation = float(np.finfo(np.float64 if case.dtype == "float64" else np.float32).max)
    for batch in case.materialize().batches:
        rows = _per_channel_rows(case, batch)
        count = rows.shape[1]
        assert np.all(np.isfinite(rows)), case.x
        assert np.all(np.abs(rows).sum(axis=1) < accumulation / 4), case.x
        with np.errstate(over="ignore"):
            squares = ((rows - rows.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        assert np.all(squares < accumulation / 16), case.x
        assert np.all(squares / max(count - 1, 1) < largest), case.x  # the unbiased running variance fits


@EXAMPLES
@given(data=st.data())
def test_float16_overflowing_sums_exceed_65504_from_finite_values(data):
    """ "overflowing_sum" in float16: each channel's sum is beyond float16's range, each value within it."""
    case = data.draw(cases(capabilities=PERMISSIVE, dtypes=("float16",), conditionings=("overflowing_sum",), max_elements=1024))
    rows = _per_channel_rows(case, case.materialize().batches[0])
    assert np.all(np.abs(rows) < 65504.0)
    assert np.all(np.abs(rows.sum(axis=1)) > 65504.0), case.x


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@EXAMPLES
@given(data=st.data())
def test_near_overflow_reaches_the_top_of_the_domain(dtype, data):
    """Some channel sits within a factor 10 of the largest magnitude ``range_limits`` allows, or spreads that far."""
    case = data.draw(cases(capabilities=PERMISSIVE, dtypes=(dtype,), conditionings=("near_overflow",), max_elements=1024))
    limits = range_limits(dtype, _per_channel(case))
    reach = np.maximum(np.abs(_locs(case.x)) / limits.magnitude, _scales(case.x) / limits.spread)
    assert np.max(reach) >= 1e-2 - 1e-12, case.x
    assert np.all(np.abs(_locs(case.x)) <= limits.magnitude * (1 + 1e-12) + 3 * limits.spread), case.x


@pytest.mark.parametrize(("dtype", "smallest_normal"), [("float16", 6.103515625e-05), ("float32", 1.1754943508222875e-38)])
@EXAMPLES
@given(data=st.data())
def test_near_underflow_spreads_around_the_smallest_normal_number(dtype, smallest_normal, data):
    case = data.draw(cases(capabilities=PERMISSIVE, dtypes=(dtype,), conditionings=("near_underflow",), max_elements=256))
    scales = _scales(case.x) / smallest_normal
    assert np.all((scales >= 0.1 - 1e-9) & (scales <= 100.0 + 1e-9)), case.x
    assert np.all(np.abs(_locs(case.x)) <= 3.0 * _scales(case.x) * (1 + 1e-12)), case.x
