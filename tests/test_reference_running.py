"""Running statistics and the canonical protocol (``simulate``) of the reference.

The running-statistic tests follow EMA, cumulative and debiased-EMA updates step by step with
numbers worked out by hand.  The ``simulate`` tests recompute every quantity of a small case
with independent, textbook NumPy code written inline (``np.var(ddof=1)``, the textbook
backward formula), so the protocol's wiring (which batch, which statistic, which step) is
checked against something other than the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from reference import Conventions, RunningStatistics, running_variance_sample, simulate

TIGHT = {"rtol": 1e-13, "atol": 1e-14}


def test_variance_estimators():
    """Biased passes σ² through; unbiased multiplies by N/(N - 1): [2, 6]·4/3 = [8/3, 8]."""
    assert_array_equal(running_variance_sample(np.array([2.0, 6.0]), 4, "biased"), [2.0, 6.0])
    assert_allclose(running_variance_sample(np.array([2.0, 6.0]), 4, "unbiased"), [8 / 3, 8.0], **TIGHT)
    with pytest.raises(ValueError, match="estimator"):
        running_variance_sample(np.array([1.0]), 4, "sample")


def test_unbiased_variance_of_a_single_value_is_nan():
    """N = 1 makes σ²·N/(N - 1) = 0/0: NaN in the running variance, while the mean still updates."""
    stats = RunningStatistics(mean=[0.0], var=[1.0], decay=0.9, estimator="unbiased")
    stats.update(np.array([5.0]), np.array([0.0]), count=1)
    assert np.isnan(stats.var[0])
    assert_allclose(stats.mean, [0.5], **TIGHT)


def test_ema_two_steps_by_hand():
    """Decay 0.9 keeps 90 % of the old value: r = 0.9·old + 0.1·new, with unbiased variance.

    Step 1: batch mean [1, 2], biased var [4, 4] over N = 5 → unbiased [5, 5].
        mean = 0.9·[0, 10] + 0.1·[1, 2] = [0.1, 9.2];  var = 0.9·[1, 1] + 0.1·[5, 5] = [1.4, 1.4].
    Step 2: batch mean [3, -8], biased var [0.8, 0] → unbiased [1, 0].
        mean = 0.9·[0.1, 9.2] + 0.1·[3, -8] = [0.39, 7.48];  var = [1.26 + 0.1, 1.26] = [1.36, 1.26].
    """
    stats = RunningStatistics(mean=[0.0, 10.0], var=[1.0, 1.0], decay=0.9, mode="ema", estimator="unbiased")
    stats.update(np.array([1.0, 2.0]), np.array([4.0, 4.0]), count=5)
    assert_allclose(stats.mean, [0.1, 9.2], **TIGHT)
    assert_allclose(stats.var, [1.4, 1.4], **TIGHT)
    stats.update(np.array([3.0, -8.0]), np.array([0.8, 0.0]), count=5)
    assert_allclose(stats.mean, [0.39, 7.48], **TIGHT)
    assert_allclose(stats.var, [1.36, 1.26], **TIGHT)
    assert stats.steps == 2


@pytest.mark.parametrize("mode", ["ema", "debiased_ema"])
def test_decay_zero_takes_the_batch_value(mode):
    """Decay 0 keeps nothing of the old statistic: after each step it equals the batch value."""
    stats = RunningStatistics(mean=[7.0], var=[7.0], decay=0.0, mode=mode, estimator="biased")
    for mean, var in ((1.0, 2.0), (-3.0, 0.5)):
        stats.update(np.array([mean]), np.array([var]), count=8)
        assert_array_equal(stats.mean, [mean])
        assert_array_equal(stats.var, [var])


def test_ema_decay_one_keeps_the_initial_value():
    """Decay 1 keeps everything: the running statistics never leave their initial values."""
    stats = RunningStatistics(mean=[7.0, -1.0], var=[3.0, 2.0], decay=1.0, mode="ema")
    for _ in range(3):
        stats.update(np.array([1.0, 1.0]), np.array([9.0, 9.0]), count=4)
    assert_array_equal(stats.mean, [7.0, -1.0])
    assert_array_equal(stats.var, [3.0, 2.0])


def test_cumulative_is_the_plain_average_of_batch_statistics():
    """Cumulative averaging discards the initial value and, after t steps, holds the plain
    average of b_1..b_t (here with biased variance: means 1, 2, 6 → 1, 1.5, 3; variances
    4, 0, 2 → 4, 2, 2).  Its decay is ignored, so even an out-of-range one is accepted."""
    stats = RunningStatistics(mean=[100.0], var=[100.0], decay=5.0, mode="cumulative", estimator="biased")
    expected_means, expected_vars = [1.0, 1.5, 3.0], [4.0, 2.0, 2.0]
    for step, (mean, var) in enumerate(((1.0, 4.0), (2.0, 0.0), (6.0, 2.0))):
        stats.update(np.array([mean]), np.array([var]), count=3)
        assert_allclose(stats.mean, [expected_means[step]], **TIGHT)
        assert_allclose(stats.var, [expected_vars[step]], **TIGHT)


def test_debiased_ema_by_hand():
    """Debiased EMA starts its accumulator at 0 (the initial value is ignored) and divides by
    1 - d^t.  Step 1 gives exactly b_1; step 2 gives (d·b_1 + b_2)/(1 + d).

    With d = 0.5 every operation is exact: step 2 mean = (0.5·4 + 10)/1.5 = 8, var = (0.5·2 + 5)/1.5 = 4.
    """
    stats = RunningStatistics(mean=[-50.0], var=[50.0], decay=0.5, mode="debiased_ema", estimator="biased")
    stats.update(np.array([4.0]), np.array([2.0]), count=3)
    assert_array_equal(stats.mean, [4.0])
    assert_array_equal(stats.var, [2.0])
    stats.update(np.array([10.0]), np.array([5.0]), count=3)
    assert_array_equal(stats.mean, [8.0])
    assert_array_equal(stats.var, [4.0])


def test_debiased_ema_with_decay_point_nine():
    """d = 0.9: step 1 returns b_1 (up to rounding of 1 - 0.9); step 2 is (0.9·b_1 + b_2)/1.9."""
    stats = RunningStatistics(mean=[0.0, 0.0], var=[1.0, 1.0], decay=0.9, mode="debiased_ema", estimator="biased")
    stats.update(np.array([3.0, -1.0]), np.array([1.0, 2.0]), count=10)
    assert_allclose(stats.mean, [3.0, -1.0], **TIGHT)
    stats.update(np.array([1.0, 1.0]), np.array([3.0, 0.0]), count=10)
    assert_allclose(stats.mean, [(2.7 + 1.0) / 1.9, (-0.9 + 1.0) / 1.9], **TIGHT)
    assert_allclose(stats.var, [(0.9 + 3.0) / 1.9, 1.8 / 1.9], **TIGHT)


@pytest.mark.parametrize("decay", [-0.1, 1.1, float("nan")])
@pytest.mark.parametrize("mode", ["ema", "debiased_ema"])
def test_invalid_decay_raises(mode, decay):
    with pytest.raises(ValueError, match="decay"):
        RunningStatistics(mean=[0.0], var=[1.0], decay=decay, mode=mode)


def test_invalid_mode_and_estimator_raise():
    """An unknown averaging mode or variance estimator is refused at construction."""
    with pytest.raises(ValueError, match="averaging mode"):
        RunningStatistics(mean=[0.0], var=[1.0], mode="window")
    with pytest.raises(ValueError, match="estimator"):
        RunningStatistics(mean=[0.0], var=[1.0], estimator="population")
    with pytest.raises(ValueError, match="running_variance"):
        Conventions(running_variance="population")


# -- simulate: the canonical protocol ------------------------------------------------------

BATCHES = [
    np.array([[1.0, 4.0], [2.0, 0.0], [6.0, 2.0]]),
    np.array([[0.0, 1.0], [3.0, 3.0], [3.0, 8.0]]),
    np.array([[-2.0, 5.0], [2.0, 5.5], [9.0, 4.0]]),
]
GAMMA, BETA = np.array([2.0, 0.5]), np.array([1.0, -1.0])
RUN_MEAN, RUN_VAR = np.array([0.5, -1.0]), np.array([2.0, 1.0])
DY = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]])
DECAY, EPS = 0.8, 0.1


def _textbook(placement: str, estimator: str, averaging: str, gamma=GAMMA, beta=BETA) -> dict:
    """Every quantity of the protocol, computed the textbook way for channels on axis 1."""
    gamma = np.ones(2) if gamma is None else gamma
    beta = np.zeros(2) if beta is None else beta

    def denom(var):
        return np.sqrt(var + EPS) if placement == "inside" else np.sqrt(var) + EPS

    def normalize(x, mean, var):
        return gamma * (x - mean) / denom(var) + beta

    rm, rv, acc_m, acc_v = RUN_MEAN, RUN_VAR, np.zeros(2), np.zeros(2)
    y_train, means, variances, seen_m, seen_v = [], [], [], [], []
    for t, x in enumerate(BATCHES, start=1):
        mu, var = x.mean(axis=0), x.var(axis=0)
        fed = x.var(axis=0, ddof=1) if estimator == "unbiased" else var
        y_train.append(normalize(x, mu, var))
        seen_m.append(mu)
        seen_v.append(fed)
        if averaging == "ema":
            rm, rv = DECAY * rm + (1 - DECAY) * mu, DECAY * rv + (1 - DECAY) * fed
        elif averaging == "cumulative":
            rm, rv = np.mean(seen_m, axis=0), np.mean(seen_v, axis=0)
        else:
            acc_m, acc_v = DECAY * acc_m + (1 - DECAY) * mu, DECAY * acc_v + (1 - DECAY) * fed
            rm, rv = acc_m / (1 - DECAY**t), acc_v / (1 - DECAY**t)
        means.append(rm)
        variances.append(rv)
    x = BATCHES[0]
    mu, var = x.mean(axis=0), x.var(axis=0)
    s = denom(var)
    x_hat = (x - mu) / s
    g = gamma * DY
    # Textbook dx = (g - mean(g) - k·x̂·mean(g·x̂)) / s, with k = 1 for ε inside the root
    # and k = s/σ for ε outside it (d(σ + ε)/dσ² = 1/(2σ) rather than 1/(2s)).
    k = 1.0 if placement == "inside" else s / np.sqrt(var)
    dx = (g - g.mean(axis=0) - k * x_hat * (g * x_hat).mean(axis=0)) / s
    return {
        "y_eval": normalize(x, RUN_MEAN, RUN_VAR),
        "y_train": np.stack(y_train),
        "running_mean": np.stack(means),
        "running_var": np.stack(variances),
        "y_eval_after": normalize(x, rm, rv),
        "dx": dx,
        "dgamma": (DY * x_hat).sum(axis=0),
        "dbeta": DY.sum(axis=0),
    }


def _simulate(conventions: Conventions, gamma=GAMMA, beta=BETA):
    return simulate(
        BATCHES, gamma=gamma, beta=beta, running_mean=RUN_MEAN, running_var=RUN_VAR, dy=DY,
        axis=1, eps=EPS, decay=DECAY, dtype="float64", conventions=conventions,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("placement", "estimator", "averaging"),
    [("inside", "unbiased", "ema"), ("outside", "biased", "cumulative"), ("inside", "biased", "debiased_ema")],
)
def test_simulate_matches_textbook(placement, estimator, averaging):
    """Each of the eight quantities of ``simulate`` equals the inline textbook computation."""
    conventions = Conventions(eps_placement=placement, running_variance=estimator, averaging=averaging)
    result = _simulate(conventions)
    expected = _textbook(placement, estimator, averaging)
    assert set(result.values) == set(expected)
    for name, value in expected.items():
        assert result.values[name].shape == value.shape, name
        assert_allclose(result.values[name], value, rtol=1e-12, atol=1e-12, err_msg=name)
    assert result.count == 3
    assert_allclose(result.batch_means, [b.mean(axis=0) for b in BATCHES], **TIGHT)
    assert_allclose(result.batch_vars, [b.var(axis=0) for b in BATCHES], **TIGHT)


def test_simulate_without_running_statistics():
    """tracks_running_stats=False: inference mode uses the first batch's own statistics (so
    y_eval = y_eval_after = y_train[0]) and no running_* quantity is reported."""
    result = _simulate(Conventions(tracks_running_stats=False))
    expected = _textbook("inside", "biased", "ema")
    assert "running_mean" not in result.values
    assert "running_var" not in result.values
    for name in ("y_eval", "y_eval_after"):
        assert_allclose(result.values[name], expected["y_train"][0], rtol=1e-12, atol=1e-12, err_msg=name)


def test_simulate_without_affine_parameters():
    """γ = β = None normalizes with γ = 1, β = 0 and reports no dgamma or dbeta."""
    result = _simulate(Conventions(), gamma=None, beta=None)
    expected = _textbook("inside", "biased", "ema", gamma=None, beta=None)
    assert set(result.values) == set(expected) - {"dgamma", "dbeta"}
    for name in ("y_train", "y_eval", "dx"):
        assert_allclose(result.values[name], expected[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_simulate_needs_a_batch():
    with pytest.raises(ValueError, match="at least one batch"):
        simulate(
            [], gamma=None, beta=None, running_mean=RUN_MEAN, running_var=RUN_VAR, dy=DY,
            axis=1, eps=EPS, decay=DECAY, dtype="float64", conventions=Conventions(),
        )  # fmt: skip
