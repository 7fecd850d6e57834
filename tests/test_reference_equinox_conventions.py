"""The reference's conventions for Equinox's documented behaviours, with numbers worked out by hand.

* ``normalization="running"`` (``mode="ema"``): a training step normalizes with the running
  statistics it has just updated, μ̃ = d·r + (1 − d)·μ and ṽ = d·r_v + (1 − d)·σ², and its
  gradients reach the batch statistics through the weight 1 − d;
* ``warmup="copy_first_batch"`` (a fresh ``mode="ema"`` layer): the first step copies the batch
  statistics into the running ones;
* ``debias_start="state"`` (``mode="batch"``): the debiased average's accumulator starts at the
  loaded statistics instead of 0.

Each is checked on arrays small enough to compute by hand, the blended backward against
central finite differences, and each reduces to the existing form where it should: d = 0 is
batch normalization bit for bit, and ``debias_start="zero"`` is Haiku's average.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from reference import Conventions, RunningStatistics, simulate

BLENDED = Conventions(normalization="running")
FRESH = Conventions(normalization="running", warmup="copy_first_batch")


def _one_channel(batches: list[list[float]], *, decay: float, eps: float, conventions: Conventions,
                 running_mean: float = 0.0, running_var: float = 3.0, dy: list[float] | None = None, gamma=None):  # fmt: skip
    """``simulate`` on one channel (N values per batch, channels on axis 1), no β unless γ is given."""
    xs = [np.array(b, dtype=np.float64)[:, None] for b in batches]
    upstream = np.array(dy if dy is not None else [1.0] * len(batches[0]))[:, None]
    return simulate(xs, gamma=None if gamma is None else np.array([gamma]), beta=None if gamma is None else np.array([0.0]),
                    running_mean=np.array([running_mean]), running_var=np.array([running_var]), dy=upstream, axis=1,
                    eps=eps, decay=decay, dtype="float64", conventions=conventions)  # fmt: skip


# -- blended normalization -------------------------------------------------------------------------
def test_blended_step_normalizes_with_the_updated_running_statistics_by_hand():
    """x = [1, 3]: μ = 2, σ² = 1; from r = 0, r_v = 3 with d = 0.5: μ̃ = 1, ṽ = 2, and ε = 2 gives
    s̃ = 2, so y = (x − 1)/2 = [0, 1] (batch normalization would give [−1, 1]/√3)."""
    result = _one_channel([[1.0, 3.0]], decay=0.5, eps=2.0, conventions=BLENDED)
    assert_array_equal(result.values["y_train"][0, :, 0], [0.0, 1.0])
    assert_array_equal(result.values["running_mean"][0], [1.0])
    assert_array_equal(result.values["running_var"][0], [2.0])
    assert result.normalizing(0) == (np.array([1.0]), np.array([2.0]), 0.5, 0.5)
    ordinary = _one_channel([[1.0, 3.0]], decay=0.5, eps=2.0, conventions=Conventions())
    assert_allclose(ordinary.values["y_train"][0, :, 0], [-1 / np.sqrt(3), 1 / np.sqrt(3)], rtol=1e-15)


def test_blended_gradients_by_hand():
    """The same step with dy = [0, 1] (w = w_v = 1 − d = 1/2, N = 2, s̃ = 2, Σdy = 1, Σdy·(x − μ̃) = 2):

        dx_i = 1/s̃·[dy_i − w·Σdy/N − w_v/N·(x_i − μ)·Σdy·(x − μ̃)/s̃²] = 1/2·[dy_i − 1/4 − (x_i − 2)/8]

    = [−1/16, 5/16]; dγ = Σ dy·x̃ = 1 and dβ = Σ dy = 1 (γ = 1, β = 0).
    """
    result = _one_channel([[1.0, 3.0]], decay=0.5, eps=2.0, conventions=BLENDED, dy=[0.0, 1.0], gamma=1.0)
    assert_array_equal(result.values["dx"][:, 0], [-1 / 16, 5 / 16])
    assert_array_equal(result.values["dgamma"], [1.0])
    assert_array_equal(result.values["dbeta"], [1.0])


def _loss_and_dx(x, others, conventions, *, decay, placement):
    rng = np.random.default_rng(11)
    gamma, beta = np.array([1.5, -0.5, 2.0]), np.array([0.1, 0.2, -0.3])
    dy = rng.normal(size=x.shape)
    result = simulate([x, *others], gamma=gamma, beta=beta, running_mean=np.array([0.3, -1.0, 2.0]),
                      running_var=np.array([2.0, 0.5, 1.5]), dy=dy, axis=1, eps=1e-2, decay=decay, dtype="float64",
                      conventions=Conventions(**{**conventions.to_dict(), "eps_placement": placement}))  # fmt: skip
    return float(np.sum(result.values["y_train"][0] * dy)), result


@pytest.mark.parametrize("decay", [0.3, 0.9])
@pytest.mark.parametrize("placement", ["inside", "outside"])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_blended_gradients_match_finite_differences(decay, placement, estimator):
    """dx, dγ, dβ of L = Σ dy·y_train[0] against central differences (h = 1e-6), shape (5, 3, 2)."""
    rng = np.random.default_rng(3)
    x = rng.normal(0.5, 1.5, size=(5, 3, 2))
    conventions = Conventions(normalization="running", running_variance=estimator)
    _, result = _loss_and_dx(x, [], conventions, decay=decay, placement=placement)
    numeric = np.zeros_like(x)
    h = 1e-6
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        numeric[index] = (_loss_and_dx(up, [], conventions, decay=decay, placement=placement)[0]
                          - _loss_and_dx(down, [], conventions, decay=decay, placement=placement)[0]) / (2 * h)  # fmt: skip
    assert_allclose(result.values["dx"], numeric, rtol=1e-6, atol=1e-8)
    # dγ = Σ dy·x̃ and dβ = Σ dy: y is linear in γ and β.
    dy = np.random.default_rng(11).normal(size=x.shape)
    mean, var, _, _ = result.normalizing(0)
    s = np.sqrt(var + 1e-2) if placement == "inside" else np.sqrt(var) + 1e-2
    assert_allclose(result.values["dgamma"], np.sum(dy * (x - mean[:, None]) / s[:, None], axis=(0, 2)), rtol=1e-12)
    assert_allclose(result.values["dbeta"], np.sum(dy, axis=(0, 2)), rtol=1e-12)


def test_blended_with_decay_zero_is_batch_normalization_bit_for_bit():
    rng = np.random.default_rng(5)
    batches = [rng.normal(1.0, 2.0, size=(4, 3, 2)) for _ in range(3)]
    common = {"gamma": np.array([1.5, -0.5, 2.0]), "beta": np.array([0.1, 0.2, -0.3]), "running_mean": np.array([0.3, -1.0, 2.0]),
              "running_var": np.array([2.0, 0.5, 1.5]), "dy": rng.normal(size=(4, 3, 2)), "axis": 1, "eps": 1e-3,
              "decay": 0.0, "dtype": "float32"}  # fmt: skip
    for base in (Conventions(), Conventions(eps_placement="outside", running_variance="biased")):
        ordinary = simulate(batches, conventions=base, **common)
        blended = simulate(batches, conventions=Conventions(**{**base.to_dict(), "normalization": "running"}), **common)
        assert set(blended.values) == set(ordinary.values)
        for name, value in ordinary.values.items():
            assert_array_equal(blended.values[name], value, err_msg=name)


def test_blended_with_decay_one_normalizes_with_the_starting_statistics_and_passes_no_gradient_to_them():
    """d = 1 freezes r: y_train is inference with r (mean 0, var 3, ε = 1: y = x/2) and dx = γ·dy/s."""
    result = _one_channel([[1.0, 3.0, 8.0]], decay=1.0, eps=1.0, conventions=BLENDED, dy=[1.0, -2.0, 0.5], gamma=3.0)
    assert_array_equal(result.values["y_train"][0, :, 0], [1.5, 4.5, 12.0])
    assert_array_equal(result.values["y_eval"], result.values["y_train"][0])
    assert_array_equal(result.values["dx"][:, 0], [1.5, -3.0, 0.75])


def test_running_normalization_needs_running_statistics():
    with pytest.raises(ValueError, match="normalization 'running' needs running statistics"):
        Conventions(normalization="running", tracks_running_stats=False)
    with pytest.raises(ValueError, match="normalization must be one of"):
        Conventions(normalization="ema")


# -- first-batch copy ----------------------------------------------------------------------------
def test_fresh_layer_copies_its_first_batch_then_blends_by_hand():
    """Batches [1, 3] (μ 2, σ² 1) and [5, 7] (μ 6, σ² 1), d = 0.5, ε = 0, from r = 0, r_v = 3:
    step 1 copies (r = 2, r_v = 1, y = [−1, 1]); step 2 blends to r = 4, r_v = 1, so y = [1, 3]."""
    result = _one_channel([[1.0, 3.0], [5.0, 7.0]], decay=0.5, eps=0.0, conventions=FRESH)
    assert_array_equal(result.values["running_mean"][:, 0], [2.0, 4.0])
    assert_array_equal(result.values["running_var"][:, 0], [1.0, 1.0])
    assert_array_equal(result.values["y_train"][:, :, 0], [[-1.0, 1.0], [1.0, 3.0]])
    assert result.train_weights == [(1.0, 1.0), (0.5, 0.5)]
    # Inference before training still reads the loaded statistics: x/√3.
    assert_allclose(result.values["y_eval"][:, 0], [1 / np.sqrt(3), 3 / np.sqrt(3)], rtol=1e-15)


@pytest.mark.parametrize("decay", [0.0, 0.9, 1.0])
def test_fresh_layers_first_step_and_gradients_are_batch_normalizations(decay):
    """Whatever the decay, step 1 of a fresh layer is batch normalization: y, the copied statistics, dx, dγ, dβ."""
    rng = np.random.default_rng(8)
    batches = [rng.normal(-1.0, 0.5, size=(6, 2)) for _ in range(2)]
    common = {"gamma": np.array([2.0, -1.0]), "beta": np.array([0.5, 0.0]), "running_mean": np.array([5.0, 5.0]),
              "running_var": np.array([9.0, 9.0]), "dy": rng.normal(size=(6, 2)), "axis": 1, "eps": 1e-3,
              "decay": decay, "dtype": "float32"}  # fmt: skip
    fresh = simulate(batches, conventions=FRESH, **common)
    ordinary = simulate(batches, conventions=Conventions(running_variance="biased"), **common)
    assert_array_equal(fresh.values["y_train"][0], ordinary.values["y_train"][0])
    assert_array_equal(fresh.values["running_mean"][0], ordinary.batch_means[0])
    assert_array_equal(fresh.values["running_var"][0], ordinary.batch_vars[0])
    for name in ("dx", "dgamma", "dbeta", "y_eval"):
        assert_array_equal(fresh.values[name], ordinary.values[name], err_msg=name)


def test_first_batch_copy_is_for_the_ema_only():
    with pytest.raises(ValueError, match="copy_first_batch' is defined for 'ema' averaging, got 'cumulative'"):
        Conventions(averaging="cumulative", warmup="copy_first_batch")
    with pytest.raises(ValueError, match="warmup must be one of"):
        RunningStatistics(mean=[0.0], var=[1.0], warmup="copy")


# -- where the debiased accumulator starts ---------------------------------------------------------
def test_debiased_average_from_the_loaded_state_by_hand():
    """Equinox's mode="batch": h₀ = (1, 3), d = 0.5, batches (2, 1) then (6, 1).

    Step 1: h = 0.5·(1, 3) + 0.5·(2, 1) = (1.5, 2), divided by 1 − 0.5 = (3, 4).
    Step 2: h = 0.5·(1.5, 2) + 0.5·(6, 1) = (3.75, 1.5), divided by 1 − 0.25 = (5, 2).
    From zero (Haiku): a₁ = (1, 0.5), step 1 (2, 1); a₂ = (0.5 + 3, 0.25 + 0.5), step 2 (14/3, 1).
    """
    state = RunningStatistics(mean=[1.0], var=[3.0], decay=0.5, mode="debiased_ema", estimator="biased", debias_start="state")
    zero = RunningStatistics(mean=[1.0], var=[3.0], decay=0.5, mode="debiased_ema", estimator="biased")
    for stats in (state, zero):
        stats.update(np.array([2.0]), np.array([1.0]), count=4)
    assert (state.mean[0], state.var[0], state.batch_weight) == (3.0, 4.0, 1.0)
    assert (zero.mean[0], zero.var[0], zero.batch_weight) == (2.0, 1.0, 1.0)
    for stats in (state, zero):
        stats.update(np.array([6.0]), np.array([1.0]), count=4)
    assert (state.mean[0], state.var[0]) == (5.0, 2.0)
    assert_allclose([zero.mean[0], zero.var[0]], [14 / 3, 1.0], rtol=1e-15)
    assert zero.batch_weight == pytest.approx(0.5 / 0.75, rel=1e-15)


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.99])
def test_state_start_is_the_zero_start_plus_the_divided_state(decay):
    """a_t = d^t·h₀ + (zero-started a_t), so r_t(state) = r_t(zero) + d^t·h₀/(1 − d^t), step by step."""
    rng = np.random.default_rng(2)
    h0_mean, h0_var = np.array([0.5, -2.0]), np.array([1.0, 4.0])
    state = RunningStatistics(mean=h0_mean, var=h0_var, decay=decay, mode="debiased_ema", estimator="unbiased", debias_start="state")
    zero = RunningStatistics(mean=h0_mean, var=h0_var, decay=decay, mode="debiased_ema", estimator="unbiased")
    for t in range(1, 5):
        mean, var = rng.normal(size=2), rng.uniform(0.5, 2.0, size=2)
        state.update(mean, var, count=8)
        zero.update(mean, var, count=8)
        excess = decay**t / (1 - decay**t)
        assert_allclose(state.mean, zero.mean + excess * h0_mean, rtol=1e-12, atol=1e-12)
        assert_allclose(state.var, zero.var + excess * h0_var, rtol=1e-12, atol=1e-12)


def test_simulate_with_a_state_started_debiased_average_matches_equinoxs_arithmetic():
    """``simulate`` under debias_start="state" is h = m·h + (1 − m)·b, read as h/(1 − m^t) (h itself before training)."""
    rng = np.random.default_rng(4)
    batches = [rng.normal(2.0, 1.0, size=(8, 2)) for _ in range(3)]
    start_mean, start_var, m = np.array([0.0, 1.0]), np.array([1.0, 2.0]), 0.9
    result = simulate(batches, gamma=None, beta=None, running_mean=start_mean, running_var=start_var, dy=np.ones((8, 2)),
                      axis=1, eps=1e-5, decay=m, dtype="float64",
                      conventions=Conventions(averaging="debiased_ema", running_variance="biased", debias_start="state"))  # fmt: skip
    hidden_mean, hidden_var = start_mean.copy(), start_var.copy()
    for t, x in enumerate(batches, 1):
        hidden_mean = hidden_mean * m + x.mean(axis=0) * (1 - m)
        hidden_var = hidden_var * m + x.var(axis=0) * (1 - m)
        assert_allclose(result.values["running_mean"][t - 1], hidden_mean / (1 - m**t), rtol=1e-13)
        assert_allclose(result.values["running_var"][t - 1], hidden_var / (1 - m**t), rtol=1e-13)
    assert_allclose(result.values["y_eval"], batches[0] / np.sqrt(start_var + 1e-5) - start_mean / np.sqrt(start_var + 1e-5),
                    rtol=1e-13)  # fmt: skip
    # Training normalizes with the batch statistics, as batch normalization does.
    assert_allclose(result.values["y_train"][0], (batches[0] - batches[0].mean(axis=0)) / np.sqrt(batches[0].var(axis=0) + 1e-5),
                    rtol=1e-12)  # fmt: skip


def test_zero_start_is_the_default_and_ignores_the_state():
    """debias_start defaults to "zero": Haiku's form, whose first step is the batch's statistic whatever was loaded."""
    assert Conventions().debias_start == "zero"
    stats = RunningStatistics(mean=[100.0], var=[100.0], decay=0.99, mode="debiased_ema", estimator="biased")
    stats.update(np.array([4.0]), np.array([2.0]), count=3)
    assert_allclose([stats.mean[0], stats.var[0]], [4.0, 2.0], rtol=1e-13)
    with pytest.raises(ValueError, match="debias_start must be one of"):
        Conventions(debias_start="one")
