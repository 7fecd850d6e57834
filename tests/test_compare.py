"""Comparison of an observed quantity with the reference: verdicts, messages and the worst element.

``compare`` decides every pass/discrepancy verdict of the suite, and its ``ratio``,
``allowed`` and ``error_at_worst`` are what reports rank findings by, so the order of the
checks (shape, then NaN/inf positions, then values), the exact-equality case of a zero
tolerance, and the consistency of the worst-element fields are pinned here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conformance.judging.compare import DISCREPANCY, PASS, compare

NAN, INF = math.nan, math.inf


def test_within_tolerance_passes_with_the_worst_element_described():
    expected = np.array([1.0, 2.0, 3.0, 4.0])
    observed = expected + np.array([0.0, 0.05, -0.09, 0.01])
    result = compare("y_eval", expected, observed, 0.1)
    assert result.verdict == PASS
    assert result.message == ""
    assert result.mismatched == 0
    assert result.total == 4
    assert result.worst_index == (2,)
    assert result.ratio == pytest.approx(0.9)
    assert result.max_abs_error == pytest.approx(0.09)
    assert result.max_rel_error == pytest.approx(0.03)


def test_exactly_at_the_limit_passes():
    """ratio 1.0 is "exactly at the limit" and still passes; only ratio > 1 is a mismatch."""
    result = compare("y_eval", np.array([0.0, 1.0]), np.array([0.5, 1.0]), 0.5)
    assert result.verdict == PASS
    assert result.ratio == 1.0


def test_discrepancy_message_names_count_percentage_worst_index_and_values():
    """The message alone must let a reader see how many elements failed, where, and by how much."""
    expected = np.zeros((2, 4))
    observed = expected.copy()
    observed[0, 1], observed[1, 3], observed[1, 0] = 0.3, -0.75, 0.05
    result = compare("dx", expected, observed, 0.1)
    assert result.verdict == DISCREPANCY
    assert (result.mismatched, result.total) == (2, 8)
    assert result.worst_index == (1, 3)
    message = result.message
    assert message.startswith("dx: 2 of 8 elements (25.0%) exceed the tolerance")
    assert "worst at (1, 3)" in message
    assert "observed -0.75, reference 0.0" in message
    assert "|error| 0.75 > allowed 0.1" in message
    assert "(ratio 7.5)" in message


def test_shape_mismatch_is_a_discrepancy_before_any_value_check():
    result = compare("running_var", np.zeros((2, 3)), np.zeros((3, 2)), 1.0)
    assert result.verdict == DISCREPANCY
    assert result.total == 6
    assert result.message == "running_var: observed shape (3, 2), but the reference has shape (2, 3)"
    assert result.ratio is None
    assert result.worst_index is None


@pytest.mark.parametrize(
    ("expected", "observed", "where"),
    [
        pytest.param([1.0, NAN, 3.0], [1.0, 2.0, 3.0], 1, id="nan-expected-only"),
        pytest.param([1.0, 2.0, 3.0], [1.0, 2.0, NAN], 2, id="nan-observed-only"),
        pytest.param([INF, 2.0], [-INF, 2.0], 0, id="plus-inf-vs-minus-inf"),
        pytest.param([1.0, INF], [1.0, 1e308], 1, id="inf-vs-huge-finite"),
        pytest.param([1.0, INF], [1.0, NAN], 1, id="inf-vs-nan"),
        pytest.param([-INF, 0.0], [0.0, 0.0], 0, id="minus-inf-vs-finite"),
    ],
)
def test_nan_and_inf_positions_must_match_exactly(expected, observed, where):
    """A NaN or ±inf where the other side has something else fails even under an infinite tolerance."""
    result = compare("y_train", np.array(expected), np.array(observed), np.inf)
    assert result.verdict == DISCREPANCY
    assert "differ in NaN/inf position" in result.message
    assert f"first at ({where},)" in result.message
    assert result.mismatched >= 1


def test_nan_inf_message_names_both_values():
    result = compare("dx", np.array([2.0, INF]), np.array([2.0, -INF]), 1.0)
    assert result.message == (
        "dx: 1 of 2 elements differ in NaN/inf position; first at (1,): observed -inf, reference inf"
    )


def test_matching_nan_and_inf_positions_pass():
    """NaN where the reference has NaN, and the same-signed inf, count as agreement."""
    expected = np.array([[NAN, 1.0], [INF, -INF]])
    observed = np.array([[NAN, 1.0 + 1e-9], [INF, -INF]])
    result = compare("y_eval", expected, observed, 1e-6)
    assert result.verdict == PASS
    assert result.mismatched == 0
    assert math.isfinite(result.ratio)


@pytest.mark.parametrize(
    ("observed", "verdict", "ratio"),
    [
        pytest.param([0.0, 1.5, -2.0], PASS, 0.0, id="exact-equality-passes"),
        pytest.param([0.0, 1.5 + 2**-40, -2.0], DISCREPANCY, INF, id="any-error-fails"),
    ],
)
def test_zero_allowed_error_demands_exact_equality(observed, verdict, ratio):
    """A tolerance of 0 (e.g. exactly representable results) passes only bit-equal values; else ratio is inf."""
    result = compare("dbeta", np.array([0.0, 1.5, -2.0]), np.array(observed), 0.0)
    assert result.verdict == verdict
    assert result.ratio == ratio
    assert result.allowed == 0.0


def test_ratio_allowed_and_error_at_worst_describe_the_same_element():
    """The worst element is the one with the largest error/allowed, not the largest error.

    Element 0 has the largest absolute error but a loose tolerance; element 2 a smaller
    error and a tight one.  ``allowed`` and ``error_at_worst`` must both be element 2's,
    and ``ratio`` their quotient.
    """
    expected = np.array([100.0, 1.0, 1.0])
    observed = np.array([110.0, 1.0, 1.2])
    allowed = np.array([20.0, 1.0, 0.05])
    result = compare("y_train", expected, observed, allowed)
    assert result.worst_index == (2,)
    assert result.allowed == 0.05
    assert result.error_at_worst == pytest.approx(0.2)
    assert result.ratio == pytest.approx(result.error_at_worst / result.allowed)
    assert result.ratio == pytest.approx(4.0)
    assert result.max_abs_error == pytest.approx(10.0)
    assert result.mismatched == 1


@pytest.mark.parametrize("seed", range(5))
def test_ratio_is_error_over_allowed_at_the_worst_element_for_random_data(seed):
    """Against a direct computation: ratio = max(|obs − exp| / allowed), at ``worst_index``."""
    rng = np.random.default_rng(seed)
    expected = rng.normal(size=(3, 4, 5))
    observed = expected + rng.normal(scale=0.01, size=expected.shape)
    allowed = rng.uniform(0.001, 0.05, size=expected.shape)
    result = compare("y_eval", expected, observed, allowed)
    quotient = np.abs(observed - expected) / allowed
    assert result.worst_index == np.unravel_index(int(np.argmax(quotient)), quotient.shape)
    assert result.ratio == pytest.approx(quotient.max())
    assert result.error_at_worst == pytest.approx(abs(observed - expected)[result.worst_index])
    assert result.allowed == allowed[result.worst_index]
    assert result.mismatched == int(np.count_nonzero(quotient > 1.0))
    assert result.verdict == (DISCREPANCY if result.mismatched else PASS)


def test_scalar_tolerance_broadcasts_and_empty_arrays_pass():
    assert compare("dgamma", np.ones((2, 2)), np.ones((2, 2)), 0.0).verdict == PASS
    empty = compare("dgamma", np.zeros((0, 3)), np.zeros((0, 3)), 1.0)
    assert empty.verdict == PASS
    assert empty.total == 0
    assert empty.worst_index is None


def test_overflow_to_infinity_is_the_correctly_rounded_result():
    """Beyond the output dtype's largest finite number, ±inf of the same sign is right; the other sign is not."""
    expected = np.array([-71425.7, 1.0])
    allowed = np.array([1.0, 1e-3])
    assert compare("dx", expected, np.array([-np.inf, 1.0]), allowed, max_finite=65504.0).verdict == "pass"
    assert compare("dx", expected, np.array([np.inf, 1.0]), allowed, max_finite=65504.0).verdict == "discrepancy"
    # Without a finite limit (float64 reference range) the infinity is a NaN/inf-position mismatch.
    assert compare("dx", expected, np.array([-np.inf, 1.0]), allowed).verdict == "discrepancy"
    # A value within range that overflows is still wrong.
    within = np.array([-60000.0, 1.0])
    assert compare("dx", within, np.array([-np.inf, 1.0]), allowed, max_finite=65504.0).verdict == "discrepancy"
