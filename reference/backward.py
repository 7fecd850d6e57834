r"""Closed-form gradients of training-mode batch norm.

With x̂ = (x − μ)/s, y = γ x̂ + β and an upstream gradient g_y = ∂L/∂y, per channel over
its N values:

    ∂L/∂β = Σ g_y
    ∂L/∂γ = Σ g_y · x̂
    ∂L/∂x = (g − mean(g)) / s − (2 s′ / (N s²)) · (x − μ) · Σ g · (x − μ),   g = γ · g_y

where s′ = ds/dσ² is 1/(2s) for s = √(σ² + ε) (ε inside), which gives the textbook

    ∂L/∂x = (1/s) · (g − mean(g) − x̂ · mean(g · x̂)),

and 1/(2√σ²) for s = √σ² + ε (ε outside).  The batch mean and variance depend on x, which
is why the two subtracted terms appear.

**Blended statistics** (``Conventions.normalization == "running"``, ``blended_gradients``): a
step that normalizes with μ̃ = k_μ + w·μ and ṽ = k_v + w_v·σ² (the running statistics after the
update; for the EMA k = d·r, w = 1 − d, and w_v = w or w·N/(N − 1) with the unbiased estimator),
s̃ = s(ṽ), x̃ = (x − μ̃)/s̃, passes back only the weights' share:

    ∂L/∂β = Σ g_y,   ∂L/∂γ = Σ g_y · x̃
    ∂L/∂x = (g − w·mean(g)) / s̃ − (2 s̃′ w_v / (N s̃²)) · (x − μ) · Σ g · (x − μ̃)

(∂ṽ/∂x_i = w_v·2(x_i − μ)/N: the *batch* mean centres it, the blended one the sum).  With ε
inside that is γ/s̃·[g_y − w·mean(g_y) − w_v/N·(x − μ)·Σ g_y·(x − μ̃)/s̃²]; with w = w_v = 1 (d = 0)
it is the formula above, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dtypes import round_to
from .forward import BlendedResult, ChannelLayout, TrainResult, batch_norm_train


@dataclass(frozen=True)
class Gradients:
    """∂L/∂x, ∂L/∂γ and ∂L/∂β (float64); the parameter gradients are per channel."""

    dx: np.ndarray
    dgamma: np.ndarray
    dbeta: np.ndarray


def batch_norm_backward(
    x,
    gamma,
    beta,
    dy,
    *,
    axis: int = 1,
    eps: float = 1e-5,
    eps_placement: str = "inside",
    dtype: str = "float64",
) -> Gradients:
    """Gradients of ``batch_norm_train`` for the upstream gradient ``dy``.

    ``gamma``/``beta`` of ``None`` mean no affine parameters (γ = 1; their gradients are
    still returned, as the gradients a γ of ones and β of zeros would receive).
    """
    forward = batch_norm_train(x, gamma, beta, axis=axis, eps=eps, eps_placement=eps_placement, dtype=dtype)
    return gradients_of(forward, x, gamma, dy, axis=axis, eps_placement=eps_placement, dtype=dtype)


def _gradient_inputs(x, gamma, dy, *, axis: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, ChannelLayout]:
    """x, dy and γ (ones without affine parameters) rounded to ``dtype``, and the channel layout;
    a dy of another shape than x is refused."""
    x = round_to(x, dtype)
    dy = round_to(dy, dtype)
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x {x.shape}, got {dy.shape}")
    layout = ChannelLayout.of(x.shape, axis)
    gamma = np.ones(x.shape[layout.axis]) if gamma is None else round_to(gamma, dtype)
    return x, dy, gamma, layout


def gradients_of(forward: TrainResult, x, gamma, dy, *, axis: int, eps_placement: str, dtype: str) -> Gradients:
    """The gradients, given the training forward pass of ``x`` (``simulate`` has computed it already)."""
    x, dy, gamma, layout = _gradient_inputs(x, gamma, dy, axis=axis, dtype=dtype)
    axes, bc = layout.reduced_axes, layout.broadcast
    n = forward.count
    s = forward.scale
    # Three buffers the size of x, reused in place; the operations are the formulas', in order.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        dbeta = np.sum(dy, axis=axes)
        product = np.multiply(dy, forward.x_hat)
        dgamma = np.sum(product, axis=axes)
        g = np.multiply(dy, bc(gamma))
        centered = np.subtract(x, bc(forward.mean))
        ds_dvar = 1.0 / (2.0 * s) if eps_placement == "inside" else 1.0 / (2.0 * np.sqrt(forward.var))
        g_mean = np.mean(g, axis=axes)
        g_dot_centered = np.sum(np.multiply(g, centered, out=product), axis=axes)
        del product
        # dx = (g − mean(g))/s − (2·s′·Σ g·(x − μ)/(N·s²))·(x − μ)
        dx = np.subtract(g, bc(g_mean), out=g)
        np.divide(dx, bc(s), out=dx)
        np.multiply(bc(2.0 * ds_dvar * g_dot_centered / (n * s * s)), centered, out=centered)
        np.subtract(dx, centered, out=dx)
    return Gradients(dx=dx, dgamma=dgamma, dbeta=dbeta)


def blended_gradients(blended: BlendedResult, x, gamma, dy, *, axis: int, eps_placement: str, dtype: str) -> Gradients:
    """The gradients of a step normalized with blended statistics (``forward.batch_norm_blended``)."""
    x, dy, gamma, layout = _gradient_inputs(x, gamma, dy, axis=axis, dtype=dtype)
    axes, bc = layout.reduced_axes, layout.broadcast
    n = blended.batch.count
    s, w, w_var = blended.scale, blended.mean_weight, blended.var_weight
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        dbeta = np.sum(dy, axis=axes)
        dgamma = np.sum(dy * blended.x_hat, axis=axes)
        g = dy * bc(gamma)
        ds_dvar = 1.0 / (2.0 * s) if eps_placement == "inside" else 1.0 / (2.0 * np.sqrt(blended.var))
        g_dot_blended = np.sum(g * (x - bc(blended.mean)), axis=axes)  # Σ g·(x − μ̃)
        # dx = (g − w·mean(g))/s̃ − (2·s̃′·w_v·Σ g·(x − μ̃)/(N·s̃²))·(x − μ)
        dx = (g - bc(w * np.mean(g, axis=axes))) / bc(s)
        dx -= bc(2.0 * ds_dvar * w_var * g_dot_blended / (n * s * s)) * (x - bc(blended.batch.mean))
    return Gradients(dx=dx, dgamma=dgamma, dbeta=dbeta)
