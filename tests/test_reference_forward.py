"""Forward batch norm of the reference, pinned by small cases worked out by hand.

Every expected value in this file comes from arithmetic written out in a comment, never
from the reference itself, so a wrong mean, variance, ε placement, channel axis or affine
step in ``reference.forward`` makes one of these tests fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from reference import batch_norm_eval, batch_norm_train, normalizer

# Hand-computed values are exact or close to it; 1e-14 leaves room for the last-bit rounding.
TIGHT = {"rtol": 1e-14, "atol": 1e-14}


def test_rank2_channels_first_hand_computed():
    """x = [[1, 2], [3, 6]], channels on axis 1: μ = [2, 4], σ² = [1, 4], y = [[-1, -1], [1, 1]].

    Channel 0 holds {1, 3}: μ = 2, σ² = ((-1)² + 1²)/2 = 1.
    Channel 1 holds {2, 6}: μ = 4, σ² = ((-2)² + 2²)/2 = 4 (biased: divided by N = 2, not N - 1).
    """
    result = batch_norm_train([[1.0, 2.0], [3.0, 6.0]], axis=1, eps=0.0)
    assert_array_equal(result.mean, [2.0, 4.0])
    assert_array_equal(result.var, [1.0, 4.0])
    assert_array_equal(result.scale, [1.0, 2.0])
    assert result.count == 2
    assert_array_equal(result.y, [[-1.0, -1.0], [1.0, 1.0]])


def test_rank2_channels_on_axis_0():
    """The same numbers with channels on axis 0 reduce over rows instead of columns.

    Row 0 {1, 2}: μ = 1.5, σ² = 0.25, y = ±1.  Row 1 {3, 6}: μ = 4.5, σ² = 2.25, y = ±1.
    """
    result = batch_norm_train([[1.0, 2.0], [3.0, 6.0]], axis=0, eps=0.0)
    assert_array_equal(result.mean, [1.5, 4.5])
    assert_array_equal(result.var, [0.25, 2.25])
    assert_array_equal(result.y, [[-1.0, 1.0], [-1.0, 1.0]])


def test_rank3_with_eps_and_affine_hand_computed():
    """Rank 3, shape (N=2, C=2, L=2), channels on axis 1, ε = 1 inside, γ = [2, 3], β = [10, -1].

    Channel 0 holds {0, 0, 0, 4}: μ = 1, σ² = (1 + 1 + 1 + 9)/4 = 3, √(3 + 1) = 2,
        x̂ = [-0.5, -0.5, -0.5, 1.5], y = 2·x̂ + 10 = [9, 9, 9, 13].
    Channel 1 holds {-1, 7, 3, 3}: μ = 3, σ² = (16 + 16 + 0 + 0)/4 = 8, √(8 + 1) = 3,
        x̂ = [-4/3, 4/3, 0, 0], y = 3·x̂ - 1 = [-5, 3, -1, -1].
    """
    x = np.array([[[0.0, 0.0], [-1.0, 7.0]], [[0.0, 4.0], [3.0, 3.0]]])
    result = batch_norm_train(x, [2.0, 3.0], [10.0, -1.0], axis=1, eps=1.0)
    assert_allclose(result.mean, [1.0, 3.0], **TIGHT)
    assert_allclose(result.var, [3.0, 8.0], **TIGHT)
    assert_allclose(result.scale, [2.0, 3.0], **TIGHT)
    assert result.count == 4
    expected = np.array([[[9.0, 9.0], [-5.0, 3.0]], [[9.0, 13.0], [-1.0, -1.0]]])
    assert_allclose(result.y, expected, **TIGHT)


def test_rank4_image_hand_computed():
    """Rank 4, shape (1, C=2, 2, 2), ε = 2 inside, γ = [2, -1], β = [1, 0.5].

    Channel 0 image [[0, 2], [2, 4]]: μ = 2, σ² = (4 + 0 + 0 + 4)/4 = 2, √(2 + 2) = 2,
        x̂ = [[-1, 0], [0, 1]], y = 2·x̂ + 1 = [[-1, 1], [1, 3]].
    Channel 1 image [[9, -7], [3, -1]]: μ = 1, σ² = (64 + 64 + 4 + 4)/4 = 34, √(34 + 2) = 6,
        x̂ = [[4/3, -4/3], [1/3, -1/3]], y = -x̂ + 0.5 = [[-5/6, 11/6], [1/6, 5/6]].
    """
    x = np.array([[[[0.0, 2.0], [2.0, 4.0]], [[9.0, -7.0], [3.0, -1.0]]]])
    result = batch_norm_train(x, [2.0, -1.0], [1.0, 0.5], axis=1, eps=2.0)
    assert_allclose(result.mean, [2.0, 1.0], **TIGHT)
    assert_allclose(result.var, [2.0, 34.0], **TIGHT)
    expected = np.array([[[[-1.0, 1.0], [1.0, 3.0]], [[-5 / 6, 11 / 6], [1 / 6, 5 / 6]]]])
    assert_allclose(result.y, expected, **TIGHT)


@pytest.mark.parametrize("axis", [-1, 2])
def test_rank3_channels_last_hand_computed(axis):
    """Channels last (axis -1, the same as axis 2 for rank 3), shape (2, 2, C=2), ε = 0.

    Channel 0 takes x[..., 0] = {1, 3, 5, 7}: μ = 4, σ² = (9 + 1 + 1 + 9)/4 = 5, y = (x - 4)/√5.
    Channel 1 takes x[..., 1] = {10, 10, 20, 20}: μ = 15, σ² = 25, y = (x - 15)/5 = ±1.
    """
    x = np.array([[[1.0, 10.0], [3.0, 10.0]], [[5.0, 20.0], [7.0, 20.0]]])
    result = batch_norm_train(x, axis=axis, eps=0.0)
    assert_allclose(result.mean, [4.0, 15.0], **TIGHT)
    assert_allclose(result.var, [5.0, 25.0], **TIGHT)
    root5 = np.sqrt(5.0)
    expected = np.array([[[-3 / root5, -1.0], [-1 / root5, -1.0]], [[1 / root5, 1.0], [3 / root5, 1.0]]])
    assert_allclose(result.y, expected, **TIGHT)


def test_gamma_and_beta_apply_per_channel():
    """With x̂ = [[-1, -1], [1, 1]] (the rank-2 case), γ = [2, -3] and β = [5, 7] give
    y = [[2·-1 + 5, -3·-1 + 7], [2·1 + 5, -3·1 + 7]] = [[3, 10], [7, 4]]; only γ or only β
    applies that one with the other left at its identity."""
    x = [[1.0, 2.0], [3.0, 6.0]]
    assert_array_equal(batch_norm_train(x, [2.0, -3.0], [5.0, 7.0], eps=0.0).y, [[3.0, 10.0], [7.0, 4.0]])
    assert_array_equal(batch_norm_train(x, [2.0, -3.0], None, eps=0.0).y, [[-2.0, 3.0], [2.0, -3.0]])
    assert_array_equal(batch_norm_train(x, None, [5.0, 7.0], eps=0.0).y, [[4.0, 6.0], [6.0, 8.0]])


@pytest.mark.parametrize(
    ("placement", "denominator"),
    [("inside", np.sqrt(5.0)), ("outside", 3.0)],
)
def test_eps_inside_versus_outside(placement, denominator):
    """σ² = 4 and ε = 1: inside divides by √(4 + 1) = √5, outside by √4 + 1 = 3.

    x = [[0], [4]] has μ = 2 and σ² = 4, so y = ±2 / denominator.
    """
    result = batch_norm_train([[0.0], [4.0]], eps=1.0, eps_placement=placement)
    assert_allclose(result.scale, [denominator], **TIGHT)
    assert_allclose(result.y, [[-2.0 / denominator], [2.0 / denominator]], **TIGHT)
    assert_allclose(normalizer(np.array([4.0]), 1.0, placement), [denominator], **TIGHT)


@pytest.mark.parametrize(
    ("placement", "var", "expected"),
    [
        # scale = √([3, 8] + 1) = [2, 3]; y = γ·(x - mean)/scale + β with mean [1, 2], γ [2, 1], β [0, 1]:
        # row 0: [2·0/2 + 0, 1·0/3 + 1] = [0, 1];  row 1: [2·2/2 + 0, 1·4/3 + 1] = [2, 7/3].
        ("inside", [3.0, 8.0], [[0.0, 1.0], [2.0, 7 / 3]]),
        # scale = √[4, 9] + 1 = [3, 4]: row 0: [0, 1];  row 1: [2·2/3, 4/4 + 1] = [4/3, 2].
        ("outside", [4.0, 9.0], [[0.0, 1.0], [4 / 3, 2.0]]),
    ],
)
def test_eval_uses_given_statistics(placement, var, expected):
    """Inference mode normalizes with the given mean and variance, not those of the batch."""
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    y = batch_norm_eval(x, [2.0, 1.0], [0.0, 1.0], [1.0, 2.0], var, eps=1.0, eps_placement=placement)
    assert_allclose(y, expected, **TIGHT)
    # No batch statistic is involved, so each row is normalized on its own.
    row = batch_norm_eval(x[1:], [2.0, 1.0], [0.0, 1.0], [1.0, 2.0], var, eps=1.0, eps_placement=placement)
    assert_allclose(row, np.asarray(expected)[1:], **TIGHT)


def test_eval_channels_last_without_affine():
    """Channels last, γ = β = None: y = (x - mean)/√(var + ε) with mean [1, -1], var [3, 0], ε = 1,
    so channel 0 divides x - 1 by 2 and channel 1 divides x + 1 by 1."""
    x = np.array([[[5.0, 2.0]], [[1.0, -3.0]]])
    y = batch_norm_eval(x, None, None, [1.0, -1.0], [3.0, 0.0], axis=-1, eps=1.0)
    assert_allclose(y, [[[2.0, 3.0]], [[0.0, -2.0]]], **TIGHT)


# -- degenerate input --------------------------------------------------------------------


def test_zero_variance_channel_gives_beta():
    """A constant channel has x - μ = 0 exactly, so y = β there (ε > 0), whatever γ is."""
    x = np.array([[7.0, 1.0], [7.0, 3.0], [7.0, 8.0]])
    result = batch_norm_train(x, [3.0, 1.0], [0.25, 0.0], eps=1e-5)
    assert_array_equal(result.var[0], 0.0)
    assert_array_equal(result.y[:, 0], [0.25, 0.25, 0.25])
    assert np.all(np.isfinite(result.y))


def test_one_value_per_channel_gives_beta():
    """Shape (1, C): each channel has N = 1 value, so μ = x, σ² = 0 and y = β."""
    result = batch_norm_train([[3.0, -2.0, 1e6]], None, [1.0, 2.0, 3.0], eps=1e-3)
    assert result.count == 1
    assert_array_equal(result.mean, [3.0, -2.0, 1e6])
    assert_array_equal(result.var, [0.0, 0.0, 0.0])
    assert_array_equal(result.y, [[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_stay_in_their_channel(bad):
    """A NaN or ±inf in one channel makes that channel's statistics and outputs NaN (IEEE
    arithmetic: inf - inf is NaN) and leaves every other channel finite and correct."""
    x = np.array([[1.0, 2.0, 0.0], [3.0, bad, 1.0], [5.0, 4.0, 2.0]])
    result = batch_norm_train(x, eps=0.0)
    assert np.isnan(result.var[1])
    assert np.all(np.isnan(result.y[:, 1]))
    # Channel 0 {1, 3, 5}: μ = 3, σ² = 8/3, y = ±2/√(8/3) = ±√1.5.  Channel 2 {0, 1, 2}: σ² = 2/3, ±1/√(2/3) = ±√1.5.
    expected = np.array([-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    assert_allclose(result.y[:, 0], expected, **TIGHT)
    assert_allclose(result.y[:, 2], expected, **TIGHT)


def test_empty_batch_raises():
    """N = 0 leaves the mean undefined: the reference refuses it rather than returning NaN."""
    with pytest.raises(ValueError, match="empty"):
        batch_norm_train(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="empty"):
        batch_norm_train(np.zeros((2, 3, 0)), axis=1)


@pytest.mark.parametrize("x", [np.array([1.0, 2.0, 3.0]), np.array(1.0)])
def test_rank_below_two_raises(x):
    """Batch norm needs a batch axis and a channel axis."""
    with pytest.raises(ValueError, match="rank"):
        batch_norm_train(x)


@pytest.mark.parametrize("axis", [2, -3, 5])
def test_out_of_range_channel_axis_raises(axis):
    with pytest.raises(ValueError, match="out of range"):
        batch_norm_train(np.ones((2, 3)), axis=axis)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": -1e-5}, "eps must be"),
        ({"eps": float("nan")}, "eps must be"),
        ({"eps_placement": "around"}, "eps_placement"),
        ({"gamma": [1.0, 2.0]}, "gamma must have shape"),
        ({"beta": [[0.0]]}, "beta must have shape"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    """A negative or NaN ε, an unknown ε placement, or γ/β of the wrong shape are errors."""
    with pytest.raises(ValueError, match=message):
        batch_norm_train(np.ones((2, 3)) * [[1.0], [2.0]], **kwargs)
