"""Case.materialize: explicit and generated data, per-channel parameters, rounding, defaults."""

from __future__ import annotations

import numpy as np
import pytest

from datamodel.case import Case, Generator


def _case(**overrides) -> Case:
    fields = {"shape": (4, 3, 5), "channel_axis": 1, "dtype": "float64", "x": Generator(seed=1)}
    fields.update(overrides)
    return Case(**fields)


def _per_channel(array: np.ndarray, axis: int) -> np.ndarray:
    """The values of each channel as the rows of a (C, N) matrix."""
    return np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)


# -- explicit data ------------------------------------------------------------------------


def test_explicit_single_batch_is_reused_for_every_training_step():
    x = np.arange(60, dtype=np.float64).reshape(4, 3, 5)
    data = _case(x=x, training_steps=3).materialize()
    assert len(data.batches) == 3
    for batch in data.batches:
        np.testing.assert_array_equal(batch, x)


def test_explicit_stack_gives_one_batch_per_training_step():
    stack = np.arange(2 * 60, dtype=np.float64).reshape(2, 4, 3, 5)
    data = _case(x=stack, training_steps=2).materialize()
    assert len(data.batches) == 2
    np.testing.assert_array_equal(data.batches[0], stack[0])
    np.testing.assert_array_equal(data.batches[1], stack[1])


def test_batches_are_float64_even_when_rounded_to_a_narrower_dtype():
    data = _case(dtype="float16", training_steps=2).materialize()
    assert all(batch.dtype == np.float64 for batch in data.batches)
    assert data.dy.dtype == np.float64


# -- generated data -----------------------------------------------------------------------


def test_generator_draws_differ_between_steps():
    data = _case(training_steps=3).materialize()
    assert len(data.batches) == 3
    assert not np.array_equal(data.batches[0], data.batches[1])
    assert not np.array_equal(data.batches[1], data.batches[2])


def test_generator_is_reproducible_for_the_same_seed():
    first = _case(x=Generator(seed=7), training_steps=2).materialize()
    second = _case(x=Generator(seed=7), training_steps=2).materialize()
    for a, b in zip(first.batches, second.batches, strict=True):
        np.testing.assert_array_equal(a, b)


def test_generator_depends_on_the_seed():
    first = _case(x=Generator(seed=7)).materialize()
    second = _case(x=Generator(seed=8)).materialize()
    assert not np.array_equal(first.batches[0], second.batches[0])


def test_first_step_does_not_depend_on_the_number_of_steps():
    one = _case(training_steps=1).materialize()
    three = _case(training_steps=3).materialize()
    np.testing.assert_array_equal(one.batches[0], three.batches[0])


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((64, 3, 8, 8), 1), ((64, 8, 8, 3), -1), ((64, 8, 8, 3), 3), ((500, 3), 1)],
    ids=["channels-first", "channels-last-negative", "channels-last-positive", "rank-2"],
)
def test_per_channel_loc_and_scale_follow_the_channel_axis(shape, axis):
    loc, scale = (1000.0, -5.0, 0.0), (1.0, 10.0, 0.01)
    case = Case(shape=shape, channel_axis=axis, dtype="float64", x=Generator(seed=3, loc=loc, scale=scale))
    (batch,) = case.materialize().batches
    assert batch.shape == shape
    rows = _per_channel(batch, axis)
    np.testing.assert_allclose(rows.mean(axis=1), loc, atol=0.5 * max(scale))
    np.testing.assert_allclose(rows.std(axis=1), scale, rtol=0.2)


def test_scalar_loc_and_scale_apply_to_every_channel():
    (batch,) = _case(shape=(2000, 2), channel_axis=-1, x=Generator(seed=2, loc=50.0, scale=2.0)).materialize().batches
    rows = _per_channel(batch, 1)
    np.testing.assert_allclose(rows.mean(axis=1), [50.0, 50.0], atol=0.3)
    np.testing.assert_allclose(rows.std(axis=1), [2.0, 2.0], rtol=0.1)


@pytest.mark.parametrize("axis", [1, -1], ids=["channels-first", "channels-last"])
def test_scale_zero_gives_constant_channels(axis):
    shape = (6, 3, 4) if axis == 1 else (6, 4, 3)
    gen = Generator(seed=4, loc=(2.5, -1.0, 7.0), scale=(0.0, 1.0, 0.0))
    data = Case(shape=shape, channel_axis=axis, dtype="float32", x=gen, training_steps=2).materialize()
    for batch in data.batches:
        rows = _per_channel(batch, axis)
        np.testing.assert_array_equal(rows[0], np.full(rows.shape[1], 2.5))
        np.testing.assert_array_equal(rows[2], np.full(rows.shape[1], 7.0))
        assert np.unique(rows[1]).size > 1


@pytest.mark.parametrize("distribution", ["normal", "uniform", "student_t"])
def test_outliers_are_present_in_every_batch(distribution):
    gen = Generator(seed=5, distribution=distribution, loc=1.0, scale=2.0, outliers=4, outlier_magnitude=100.0)
    data = _case(x=gen, training_steps=3).materialize()
    for batch in data.batches:
        # An outlier is loc ± magnitude · scale exactly; the body of the data stays far below.
        assert np.count_nonzero(np.abs(batch - 1.0) == 200.0) == 4


def test_more_outliers_than_values_replaces_every_value():
    gen = Generator(seed=5, outliers=1000, outlier_magnitude=3.0)
    (batch,) = _case(shape=(2, 3), x=gen).materialize().batches
    np.testing.assert_array_equal(np.abs(batch), np.full((2, 3), 3.0))


def test_uniform_distribution_has_unit_variance_and_bounded_support():
    gen = Generator(seed=6, distribution="uniform")
    (batch,) = _case(shape=(20000, 2), x=gen).materialize().batches
    assert np.all(np.abs(batch) <= np.sqrt(3.0))
    assert batch.std() == pytest.approx(1.0, rel=0.05)
    assert batch.mean() == pytest.approx(0.0, abs=0.05)


def test_student_t_distribution_is_heavier_tailed_than_normal():
    shape = (20000, 2)
    (normal,) = _case(shape=shape, x=Generator(seed=6)).materialize().batches
    (heavy,) = _case(shape=shape, x=Generator(seed=6, distribution="student_t", df=2.5)).materialize().batches
    assert np.abs(heavy).max() > 2 * np.abs(normal).max()


def test_student_t_degrees_of_freedom_matter():
    one = _case(x=Generator(seed=6, distribution="student_t", df=3.0)).materialize().batches[0]
    other = _case(x=Generator(seed=6, distribution="student_t", df=30.0)).materialize().batches[0]
    assert not np.array_equal(one, other)


# -- rounding to the dtype ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_values_are_exactly_representable_in_the_dtype(dtype):
    from reference.dtypes import numpy_dtype

    data = _case(dtype=dtype, gamma=np.array([0.1, 0.2, 0.3]), training_steps=2).materialize()
    arrays = [*data.batches, data.gamma, data.beta, data.running_mean, data.running_var, data.dy]
    for array in arrays:
        narrow = array.astype(numpy_dtype(dtype))
        np.testing.assert_array_equal(narrow.astype(np.float64), array)


def test_explicit_values_are_rounded_to_float16():
    x = np.full((4, 3, 5), 0.1)
    (batch,) = _case(x=x, dtype="float16").materialize().batches
    assert batch[0, 0, 0] == float(np.float16(0.1))
    assert batch[0, 0, 0] != 0.1


def test_float64_values_are_kept_unchanged():
    x = np.random.default_rng(0).standard_normal((4, 3, 5))
    (batch,) = _case(x=x).materialize().batches
    np.testing.assert_array_equal(batch, x)


def test_values_beyond_the_dtype_range_become_infinite():
    x = np.full((4, 3, 5), 1e6)
    x[0, 0, 0] = -1e6
    (batch,) = _case(x=x, dtype="float16").materialize().batches
    assert batch[0, 0, 0] == -np.inf
    assert np.all(batch.reshape(-1)[1:] == np.inf)


def test_non_finite_explicit_values_survive():
    x = np.zeros((4, 3, 5))
    x[0, 0, 0], x[1, 1, 1], x[2, 2, 2] = np.nan, np.inf, -np.inf
    (batch,) = _case(x=x, dtype="float32").materialize().batches
    assert np.isnan(batch[0, 0, 0])
    assert batch[1, 1, 1] == np.inf
    assert batch[2, 2, 2] == -np.inf


# -- parameters, running statistics and dy --------------------------------------------------


def test_defaults_are_unit_gamma_zero_beta_and_initial_running_statistics():
    data = _case(shape=(2, 5, 3), channel_axis=-1, dtype="bfloat16").materialize()
    np.testing.assert_array_equal(data.gamma, np.ones(3))
    np.testing.assert_array_equal(data.beta, np.zeros(3))
    np.testing.assert_array_equal(data.running_mean, np.zeros(3))
    np.testing.assert_array_equal(data.running_var, np.ones(3))


def test_explicit_vectors_are_used():
    vectors = {
        name: np.array([1.0, 2.0, 3.0]) + i for i, name in enumerate(("gamma", "beta", "running_mean", "running_var"))
    }
    data = _case(**vectors).materialize()
    for name, value in vectors.items():
        np.testing.assert_array_equal(getattr(data, name), value)


def test_affine_false_gives_no_gamma_or_beta():
    data = _case(affine=False, gamma=np.array([2.0, 2.0, 2.0])).materialize()
    assert data.gamma is None
    assert data.beta is None
    np.testing.assert_array_equal(data.running_mean, np.zeros(3))
    np.testing.assert_array_equal(data.running_var, np.ones(3))


@pytest.mark.parametrize(("shape", "axis"), [((4, 3, 5), 1), ((2, 6, 6, 3), -1), ((7, 2), 0)])
def test_default_dy_is_deterministic_and_of_the_batch_shape(shape, axis):
    first = Case(shape=shape, channel_axis=axis, dtype="float32", x=Generator(seed=1)).materialize().dy
    second = Case(shape=shape, channel_axis=axis, dtype="float32", x=Generator(seed=99)).materialize().dy
    assert first.shape == shape
    assert np.all(np.isfinite(first))
    assert np.unique(first).size > 1
    np.testing.assert_array_equal(first, second)  # independent of x's seed


def test_dy_from_a_generator_and_explicit():
    data = _case(dy=Generator(seed=11, loc=3.0, scale=0.0)).materialize()
    np.testing.assert_array_equal(data.dy, np.full((4, 3, 5), 3.0))
    dy = np.linspace(-1, 1, 60).reshape(4, 3, 5)
    np.testing.assert_array_equal(_case(dy=dy).materialize().dy, dy)


def test_case_properties():
    case = _case(shape=(2, 5, 7, 3), channel_axis=-1)
    assert (case.channels, case.rank, case.size, case.layout.axis) == (3, 4, 210, 3)
    changed = case.with_(dtype="float16")
    assert changed.dtype == "float16"
    assert case.dtype == "float64"
