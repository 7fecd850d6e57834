"""Metamorphic properties of training-mode batch norm, checked with hypothesis.

Each property relates the reference's output on one input to its output on a transformed
input (shifted, scaled, permuted, transposed), or to statistics recomputed with plain NumPy.
None of them can hold by construction: a statistic taken over the wrong axes, ε in the wrong
place or γ/β applied along the wrong axis breaks them.

Inputs are small arrays of well-scaled finite floats; channels that are (nearly) constant
are skipped with ``assume``, because normalizing them is ill-conditioned and the properties
are then about rounding, not about batch norm.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from numpy.testing import assert_allclose

from reference import batch_norm_backward, batch_norm_train

SETTINGS = settings(max_examples=50, deadline=None)
VALUES = st.floats(-100, 100, allow_nan=False, allow_infinity=False)
CLOSE = {"rtol": 1e-9, "atol": 1e-9}


@st.composite
def batches(draw, channels_axis=None):
    """(x, channel axis, γ, β): rank 2..4, at most 5 per side, every channel well spread."""
    shape = draw(array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=5))
    ndim = len(shape)
    axis = draw(st.integers(-ndim, ndim - 1)) if channels_axis is None else channels_axis
    x = draw(arrays(np.float64, shape, elements=VALUES, fill=st.nothing()))
    reduced = tuple(a for a in range(ndim) if a != axis % ndim)
    spread = np.ptp(x, axis=reduced)
    assume(np.all(spread > 1e-3 * (1.0 + np.max(np.abs(x), axis=reduced))))
    channels = shape[axis]
    gamma = draw(arrays(np.float64, channels, elements=st.floats(-5, 5).filter(lambda g: abs(g) > 1e-3)))
    beta = draw(arrays(np.float64, channels, elements=st.floats(-5, 5)))
    return x, axis, gamma, beta


def _per_channel(vector: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return vector.reshape(shape)


@SETTINGS
@given(case=batches(), data=st.data())
def test_shift_invariance(case, data):
    """Adding a constant to each channel of x moves the batch mean by it and leaves the
    variance and the output unchanged."""
    x, axis, gamma, beta = case
    shift = data.draw(arrays(np.float64, x.shape[axis], elements=VALUES))
    base = batch_norm_train(x, gamma, beta, axis=axis, eps=1e-3)
    moved = batch_norm_train(x + _per_channel(shift, x.ndim, axis), gamma, beta, axis=axis, eps=1e-3)
    assert_allclose(moved.mean, base.mean + shift, rtol=1e-12, atol=1e-10)
    assert_allclose(moved.var, base.var, rtol=1e-8, atol=1e-8)
    assert_allclose(moved.y, base.y, **CLOSE)


@SETTINGS
@given(case=batches(), data=st.data(), placement=st.sampled_from(["inside", "outside"]))
def test_scale_invariance(case, data, placement):
    """Scaling each channel by c > 0 leaves y unchanged when ε scales along: ε·c² inside the
    root (√(c²σ² + c²ε) = c√(σ² + ε)), ε·c outside (√(c²σ²) + cε = c(σ + ε)); with ε = 0 there
    is nothing to scale.  Scaling by -1 instead reflects y about β: y(-x) = 2β - y(x)."""
    x, axis, gamma, beta = case
    c = data.draw(arrays(np.float64, x.shape[axis], elements=st.floats(1e-2, 1e2)))
    eps = data.draw(st.sampled_from([0.0, 1e-5, 0.5]))
    scaled_x = x * _per_channel(c, x.ndim, axis)
    base = batch_norm_train(x, gamma, beta, axis=axis, eps=eps, eps_placement=placement)
    if eps == 0.0:
        scaled = batch_norm_train(scaled_x, gamma, beta, axis=axis, eps=0.0, eps_placement=placement)
        assert_allclose(scaled.y, base.y, **CLOSE)
    for k in np.unique(c):  # one scale for all channels, so one ε fits them all
        factor = k**2 if placement == "inside" else k
        scaled = batch_norm_train(x * k, gamma, beta, axis=axis, eps=eps * factor, eps_placement=placement)
        assert_allclose(scaled.y, base.y, **CLOSE)
    flipped = batch_norm_train(-x, gamma, beta, axis=axis, eps=eps, eps_placement=placement)
    assert_allclose(flipped.y, 2 * _per_channel(beta, x.ndim, axis) - base.y, **CLOSE)


@SETTINGS
@given(case=batches(channels_axis=-1), data=st.data())
def test_batch_permutation(case, data):
    """Reordering the samples of the batch reorders y the same way and leaves the statistics alone."""
    x, axis, gamma, beta = case
    order = np.array(data.draw(st.permutations(range(x.shape[0]))), dtype=np.intp)
    base = batch_norm_train(x, gamma, beta, axis=axis)
    permuted = batch_norm_train(x[order], gamma, beta, axis=axis)
    assert_allclose(permuted.mean, base.mean, rtol=1e-12, atol=1e-12)
    assert_allclose(permuted.var, base.var, rtol=1e-10, atol=1e-10)
    assert_allclose(permuted.y, base.y[order], **CLOSE)


@SETTINGS
@given(case=batches(channels_axis=1), placement=st.sampled_from(["inside", "outside"]))
def test_channels_first_versus_channels_last(case, placement):
    """The same data laid out channels-last (np.moveaxis(x, 1, -1), axis -1) gives the
    channels-first result moved the same way, with the same per-channel statistics."""
    x, _, gamma, beta = case
    first = batch_norm_train(x, gamma, beta, axis=1, eps=0.1, eps_placement=placement)
    last = batch_norm_train(np.moveaxis(x, 1, -1), gamma, beta, axis=-1, eps=0.1, eps_placement=placement)
    assert_allclose(last.mean, first.mean, rtol=1e-12, atol=1e-12)
    assert_allclose(last.var, first.var, rtol=1e-10, atol=1e-10)
    assert_allclose(last.y, np.moveaxis(first.y, 1, -1), **CLOSE)


@SETTINGS
@given(case=batches(), eps=st.sampled_from([0.0, 1e-5, 0.1, 2.0]), placement=st.sampled_from(["inside", "outside"]))
def test_output_statistics(case, eps, placement):
    """Per channel, y has mean β and variance γ²·σ²/(σ² + ε) (inside) or γ²·σ²/(σ + ε)²
    (outside), where μ and σ² are recomputed here with np.mean and np.var."""
    x, axis, gamma, beta = case
    reduced = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    var = np.var(x, axis=reduced)
    assert_allclose(batch_norm_train(x, axis=axis).mean, np.mean(x, axis=reduced), rtol=1e-12, atol=1e-12)
    result = batch_norm_train(x, gamma, beta, axis=axis, eps=eps, eps_placement=placement)
    assert_allclose(result.var, var, rtol=1e-10, atol=1e-12)
    denominator = var + eps if placement == "inside" else (np.sqrt(var) + eps) ** 2
    assert_allclose(np.mean(result.y, axis=reduced), beta, **CLOSE)
    assert_allclose(np.var(result.y, axis=reduced), gamma**2 * var / denominator, **CLOSE)


@SETTINGS
@given(case=batches(), data=st.data(), placement=st.sampled_from(["inside", "outside"]))
def test_gradients_are_shift_invariant_and_sum_to_zero(case, data, placement):
    """y does not depend on a per-channel shift of x, so neither do the gradients, and each
    channel's dx sums to zero; dβ is Σ dy and dγ is Σ dy·x̂ with x̂ recomputed with NumPy."""
    x, axis, gamma, beta = case
    dy = data.draw(arrays(np.float64, x.shape, elements=st.floats(-10, 10)))
    shift = _per_channel(data.draw(arrays(np.float64, x.shape[axis], elements=VALUES)), x.ndim, axis)
    reduced = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    grads = batch_norm_backward(x, gamma, beta, dy, axis=axis, eps=0.1, eps_placement=placement)
    moved = batch_norm_backward(x + shift, gamma, beta, dy, axis=axis, eps=0.1, eps_placement=placement)
    scale = 1.0 + np.max(np.abs(grads.dx))
    assert_allclose(moved.dx, grads.dx, rtol=1e-7, atol=1e-7 * scale)
    assert_allclose(np.sum(grads.dx, axis=reduced), 0.0, atol=1e-9 * scale * x.size)
    std = np.sqrt(np.var(x, axis=reduced, keepdims=True))
    x_hat = (x - np.mean(x, axis=reduced, keepdims=True)) / (
        np.sqrt(std**2 + 0.1) if placement == "inside" else std + 0.1
    )
    assert_allclose(grads.dbeta, np.sum(dy, axis=reduced), rtol=1e-12, atol=1e-10)
    assert_allclose(grads.dgamma, np.sum(dy * x_hat, axis=reduced), rtol=1e-9, atol=1e-9)
