"""Gradients of the reference, pinned by finite differences and by exact identities.

``batch_norm_backward`` is a closed form.  Here it is compared with central differences of
the scalar loss L = Σ dy · y taken through the forward pass alone, so a wrong term in the
closed form (a missing mean-gradient term, the wrong ds/dσ² for ε outside the root, a
dropped γ) shows up as a mismatch.  Central differences in float64 with a relative step of
1e-6 are accurate to about 1e-9 here, well inside the tolerances used.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from reference import batch_norm_backward, batch_norm_train

# (shape, channel axis): ranks 2..5, channels first, last and in the middle.
LAYOUTS = [
    ((5, 3), 1),
    ((3, 4), 0),
    ((6, 2), -1),
    ((3, 2, 4), 1),
    ((2, 3, 3), -1),
    ((2, 3, 2, 2), 1),
    ((2, 2, 3, 3), -1),
    ((2, 2, 3, 2), 2),
    ((2, 2, 2, 2, 2), 1),
    ((2, 2, 2, 2, 3), -1),
    ((2, 2, 3, 2, 2), 2),
]


def _loss(x, gamma, beta, dy, axis, eps, placement) -> float:
    y = batch_norm_train(x, gamma, beta, axis=axis, eps=eps, eps_placement=placement).y
    return float(np.sum(dy * y))


def _central_difference(f, v: np.ndarray, rel_step: float = 1e-6) -> np.ndarray:
    """∂f/∂v by central differences, one element of ``v`` at a time."""
    grad = np.zeros_like(v)
    for index in np.ndindex(v.shape):
        h = rel_step * max(1.0, abs(v[index]))
        up, down = v.copy(), v.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (f(up) - f(down)) / (up[index] - down[index])
    return grad


def _case(shape, axis, seed=0):
    """Inputs whose channels have distinct offsets and spreads, and a generic dy."""
    rng = np.random.default_rng(seed)
    channels = shape[axis]
    bshape = [1] * len(shape)
    bshape[axis] = channels
    offsets = rng.uniform(-3, 3, channels).reshape(bshape)
    spreads = rng.uniform(0.5, 2.0, channels).reshape(bshape)
    x = offsets + spreads * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2.0, channels) * rng.choice([-1.0, 1.0], channels)
    beta = rng.uniform(-1, 1, channels)
    dy = rng.standard_normal(shape)
    return x, gamma, beta, dy


def _assert_close(actual, expected, name):
    scale = max(1.0, float(np.max(np.abs(expected))))
    assert_allclose(actual, expected, rtol=1e-6, atol=1e-7 * scale, err_msg=name)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("placement", ["inside", "outside"])
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS, ids=[f"{s}-axis{a}" for s, a in LAYOUTS])
def test_gradients_match_finite_differences(shape, axis, placement, affine):
    """dx, dγ and dβ equal central differences of Σ dy·y for every rank, layout and ε placement.

    ε = 0.3 is large enough that inside and outside give clearly different gradients.
    Without affine parameters (γ = β = None) dγ and dβ are those of γ = 1 and β = 0.
    """
    x, gamma, beta, dy = _case(shape, axis)
    eps = 0.3
    g_arg, b_arg = (gamma, beta) if affine else (None, None)
    g_val, b_val = (gamma, beta) if affine else (np.ones_like(gamma), np.zeros_like(beta))
    grads = batch_norm_backward(x, g_arg, b_arg, dy, axis=axis, eps=eps, eps_placement=placement)

    dx = _central_difference(lambda v: _loss(v, g_arg, b_arg, dy, axis, eps, placement), x)
    dgamma = _central_difference(lambda v: _loss(x, v, b_val, dy, axis, eps, placement), g_val)
    dbeta = _central_difference(lambda v: _loss(x, g_val, v, dy, axis, eps, placement), b_val)
    assert grads.dx.shape == x.shape
    assert grads.dgamma.shape == grads.dbeta.shape == (shape[axis],)
    _assert_close(grads.dx, dx, "dx")
    _assert_close(grads.dgamma, dgamma, "dgamma")
    _assert_close(grads.dbeta, dbeta, "dbeta")


@pytest.mark.parametrize("placement", ["inside", "outside"])
def test_gradient_with_eps_zero(placement):
    """With ε = 0 both placements are the same function, so their gradients agree with each
    other and with finite differences."""
    x, gamma, beta, dy = _case((4, 3), 1, seed=1)
    grads = batch_norm_backward(x, gamma, beta, dy, eps=0.0, eps_placement=placement)
    dx = _central_difference(lambda v: _loss(v, gamma, beta, dy, 1, 0.0, placement), x)
    _assert_close(grads.dx, dx, "dx")


def test_gradient_of_a_zero_variance_channel():
    """A constant channel with ε inside: σ² has zero gradient there, so dx = γ(dy - mean dy)/√ε.

    Channel 0 is constant 2; with γ = 3, dy = [1, 0, -1, 4] (mean 1) and ε = 0.25,
    dx = 3·[0, -1, -2, 3]/0.5 = [0, -6, -12, 18].  Finite differences agree on the other channel.
    """
    x = np.array([[2.0, 1.0], [2.0, -1.0], [2.0, 0.5], [2.0, 3.0]])
    dy = np.array([[1.0, 0.5], [0.0, -1.0], [-1.0, 2.0], [4.0, 0.0]])
    gamma, beta = np.array([3.0, 1.5]), np.array([0.0, 0.0])
    grads = batch_norm_backward(x, gamma, beta, dy, eps=0.25)
    assert_allclose(grads.dx[:, 0], [0.0, -6.0, -12.0, 18.0], rtol=1e-14)
    dx = _central_difference(lambda v: _loss(v, gamma, beta, dy, 1, 0.25, "inside"), x)
    _assert_close(grads.dx[:, 1], dx[:, 1], "dx")


def test_two_values_per_channel_has_zero_dx():
    """With N = 2 and ε = 0, y = ±1 whatever x is (as long as the two values differ), so
    dx = 0 for any dy.  By hand for x = [1, 3], dy = [1, 0]: g - mean(g) = [0.5, -0.5],
    x̂·mean(g·x̂) = [-1, 1]·(-0.5) = [0.5, -0.5], difference 0.  Meanwhile dβ = Σ dy = 1 and
    dγ = Σ dy·x̂ = -1."""
    grads = batch_norm_backward([[1.0], [3.0]], None, None, [[1.0], [0.0]], eps=0.0)
    assert_array_equal(grads.dx, [[0.0], [0.0]])
    assert_array_equal(grads.dbeta, [1.0])
    assert_array_equal(grads.dgamma, [-1.0])


@pytest.mark.parametrize("placement", ["inside", "outside"])
def test_loss_independent_of_x_has_zero_dx(placement):
    """dy constant within each channel makes L = Σ dy·y = Σ_c dy_c·N·β_c (the normalized values
    of a channel sum to zero), which does not depend on x: dx = 0 and dβ = N·dy_c."""
    x, gamma, beta, _ = _case((5, 3), 1, seed=2)
    dy = np.broadcast_to([2.0, -1.0, 0.5], x.shape)
    grads = batch_norm_backward(x, gamma, beta, dy, eps=0.1, eps_placement=placement)
    assert_allclose(grads.dx, np.zeros_like(x), atol=1e-14)
    assert_allclose(grads.dbeta, [10.0, -5.0, 2.5], rtol=1e-15)


@pytest.mark.parametrize("placement", ["inside", "outside"])
def test_dx_sums_to_zero_per_channel(placement):
    """L is unchanged by adding a constant to a channel of x (training mode subtracts the
    mean), so each channel's dx sums to zero."""
    x, gamma, beta, dy = _case((2, 3, 4), 1, seed=3)
    grads = batch_norm_backward(x, gamma, beta, dy, eps=0.2, eps_placement=placement)
    assert_allclose(grads.dx.sum(axis=(0, 2)), np.zeros(3), atol=1e-12)


def test_dy_of_the_wrong_shape_raises():
    with pytest.raises(ValueError, match="dy"):
        batch_norm_backward(np.ones((3, 2)) * [[1.0], [2.0], [4.0]], None, None, np.ones((2, 3)))
