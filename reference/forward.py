r"""Forward batch normalization in float64: training mode and inference mode.

For an input x with a channel axis c, every other axis is reduced. Per channel, over the
N = x.size / C values that share it:

    μ  = (1/N) Σ x                       (batch mean)
    σ² = (1/N) Σ (x − μ)²                (biased batch variance; normalization always uses it)
    y  = γ · (x − μ) / √(σ² + ε) + β     (ε inside the root: the standard placement)
    y  = γ · (x − μ) / (√σ² + ε) + β     (ε outside the root: the alternative placement)

γ (scale) and β (offset) are vectors with one entry per channel; without affine parameters
γ = 1 and β = 0.  In inference mode μ and σ² are replaced by given running statistics.  A
training step that normalizes with the running statistics it has just updated
(``Conventions.normalization == "running"``) is ``batch_norm_blended``: μ and σ² replaced by
μ̃ = d·r + (1 − d)·μ and ṽ = d·r_v + (1 − d)·σ², which still depend on the batch.

Degenerate input is defined, not accidental:
* a zero-variance channel gives x − μ = 0, so y = β (for ε > 0);
* one value per channel (N = 1) has σ² = 0 and is handled the same way;
* NaN or ±inf in x propagates through μ and σ² as IEEE arithmetic does;
* an empty batch (N = 0) is an error: its mean is undefined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .dtypes import round_to

EPS_PLACEMENTS = ("inside", "outside")


@dataclass(frozen=True)
class ChannelLayout:
    """Which axis holds the channels of an input, and which axes are reduced over."""

    ndim: int
    axis: int

    @classmethod
    def of(cls, shape: tuple[int, ...], axis: int) -> ChannelLayout:
        ndim = len(shape)
        if ndim < 2:
            raise ValueError(f"batch norm needs an input of rank >= 2, got shape {tuple(shape)}")
        if not -ndim <= axis < ndim:
            raise ValueError(f"channel axis {axis} is out of range for rank {ndim}")
        return cls(ndim=ndim, axis=axis % ndim)

    # Computed once per layout: a check calls these a few hundred times on small arrays.
    @cached_property
    def reduced_axes(self) -> tuple[int, ...]:
        return tuple(a for a in range(self.ndim) if a != self.axis)

    @cached_property
    def _broadcast_shape(self) -> tuple[int, ...]:
        return tuple(-1 if a == self.axis else 1 for a in range(self.ndim))

    def broadcast(self, per_channel: np.ndarray) -> np.ndarray:
        """Reshape a length-C vector so it broadcasts along the channel axis."""
        return np.asarray(per_channel).reshape(self._broadcast_shape)

    def count(self, shape: tuple[int, ...]) -> int:
        """N: how many values each channel's statistics are taken over."""
        return math.prod(int(shape[a]) for a in self.reduced_axes)


@dataclass(frozen=True)
class TrainResult:
    """What one training-mode forward pass computes (all float64).

    ``mean`` and ``var`` are the batch statistics (biased variance), one entry per
    channel; ``count`` is N, the number of values behind each statistic.
    """

    y: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    count: int
    x_hat: np.ndarray
    scale: np.ndarray  # the per-channel denominator √(σ² + ε) or √σ² + ε


def _check_eps(eps: float, eps_placement: str) -> None:
    if eps_placement not in EPS_PLACEMENTS:
        raise ValueError(f"eps_placement must be one of {EPS_PLACEMENTS}, got {eps_placement!r}")
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")


def normalizer(var: np.ndarray, eps: float, eps_placement: str = "inside") -> np.ndarray:
    """The denominator that divides x − μ: √(σ² + ε) (inside) or √σ² + ε (outside)."""
    _check_eps(eps, eps_placement)
    if eps_placement == "inside":
        return np.sqrt(var + eps)
    return np.sqrt(var) + eps


def _affine(
    channels: int, gamma, beta, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    gamma = np.ones(channels) if gamma is None else round_to(gamma, dtype)
    beta = np.zeros(channels) if beta is None else round_to(beta, dtype)
    for name, vector in (("gamma", gamma), ("beta", beta)):
        if vector.shape != (channels,):
            raise ValueError(f"{name} must have shape ({channels},), got {vector.shape}")
    return gamma, beta


def batch_statistics(x: np.ndarray, layout: ChannelLayout) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance, computed in two passes (numerically stable)."""
    mean, var, _ = _centered_statistics(x, layout)
    return mean, var


def _centered_statistics(x: np.ndarray, layout: ChannelLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean, the biased variance and x − μ, whose buffer the caller may reuse.

    Arrays the size of the input are few and reused in place (``out=``): on 10⁷ elements each
    new one costs a pass of page faults, more than the arithmetic.  The operations and their
    order are those of the formulas, so the results are the same to the last bit.
    """
    if layout.count(x.shape) == 0:
        raise ValueError(f"empty batch: input of shape {x.shape} has no values per channel")
    with np.errstate(invalid="ignore", over="ignore"):
        mean = np.mean(x, axis=layout.reduced_axes)
        centered = x - layout.broadcast(mean)
        squares = np.multiply(centered, centered)
        var = np.mean(squares, axis=layout.reduced_axes)
    return mean, var, centered


def batch_norm_train(
    x,
    gamma=None,
    beta=None,
    *,
    axis: int = 1,
    eps: float = 1e-5,
    eps_placement: str = "inside",
    dtype: str = "float64",
) -> TrainResult:
    """Training-mode batch norm: normalize with the statistics of this batch.

    ``x`` is rounded to ``dtype`` first (as are γ and β); everything after that is float64.
    ``gamma``/``beta`` of ``None`` mean no affine parameters (γ = 1, β = 0).
    """
    x = round_to(x, dtype)
    layout = ChannelLayout.of(x.shape, axis)
    gamma, beta = _affine(x.shape[layout.axis], gamma, beta, dtype)
    mean, var, x_hat = _centered_statistics(x, layout)
    scale = normalizer(var, eps, eps_placement)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        np.divide(x_hat, layout.broadcast(scale), out=x_hat)  # x̂ = (x − μ)/s
        y = np.multiply(x_hat, layout.broadcast(gamma))
        np.add(y, layout.broadcast(beta), out=y)  # y = γ·x̂ + β
    return TrainResult(y=y, mean=mean, var=var, count=layout.count(x.shape), x_hat=x_hat, scale=scale)


@dataclass(frozen=True)
class BlendedResult:
    """A training step normalized with blended statistics μ̃, ṽ (all float64, per channel but ``y``/``x_hat``).

    ``batch`` is the step's own ``TrainResult`` (μ, σ², N); ``mean_weight`` = ∂μ̃/∂μ and
    ``var_weight`` = ∂ṽ/∂σ², through which the gradients reach the batch statistics.
    """

    y: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    x_hat: np.ndarray  # (x − μ̃)/s̃
    scale: np.ndarray  # s̃ = √(ṽ + ε) or √ṽ + ε
    batch: TrainResult
    mean_weight: float
    var_weight: float


def batch_norm_blended(
    x, gamma, beta, mean, var, batch: TrainResult, *, mean_weight: float, var_weight: float,
    axis: int = 1, eps: float = 1e-5, eps_placement: str = "inside", dtype: str = "float64",
) -> BlendedResult:  # fmt: skip
    """Training-mode batch norm normalizing with ``mean``/``var`` (μ̃, ṽ), blends of the batch's statistics.

    y = γ·(x − μ̃)/s̃ + β.  Unlike ``batch_norm_eval`` the statistics are not rounded to
    ``dtype``: they are an intermediate of the step, kept in float64 like every other.
    ``batch`` is ``batch_norm_train`` of the same ``x``; the weights are recorded for the gradients.
    """
    x = round_to(x, dtype)
    layout = ChannelLayout.of(x.shape, axis)
    gamma, beta = _affine(x.shape[layout.axis], gamma, beta, dtype)
    mean, var = np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
    scale = normalizer(var, eps, eps_placement)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        x_hat = np.subtract(x, layout.broadcast(mean))
        np.divide(x_hat, layout.broadcast(scale), out=x_hat)
        y = np.multiply(x_hat, layout.broadcast(gamma))
        np.add(y, layout.broadcast(beta), out=y)
    return BlendedResult(y=y, mean=mean, var=var, x_hat=x_hat, scale=scale, batch=batch,
                         mean_weight=float(mean_weight), var_weight=float(var_weight))  # fmt: skip


def batch_norm_eval(
    x,
    gamma,
    beta,
    mean,
    var,
    *,
    axis: int = 1,
    eps: float = 1e-5,
    eps_placement: str = "inside",
    dtype: str = "float64",
) -> np.ndarray:
    """Inference-mode batch norm: normalize with given (running) statistics.

    y = γ · (x − mean) / √(var + ε) + β, per channel; no statistic of ``x`` is used.
    """
    x = round_to(x, dtype)
    layout = ChannelLayout.of(x.shape, axis)
    channels = x.shape[layout.axis]
    gamma, beta = _affine(channels, gamma, beta, dtype)
    mean = round_to(mean, dtype)
    var = round_to(var, dtype)
    for name, vector in (("mean", mean), ("var", var)):
        if vector.shape != (channels,):
            raise ValueError(f"{name} must have shape ({channels},), got {vector.shape}")
    scale = normalizer(var, eps, eps_placement)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        y = np.subtract(x, layout.broadcast(mean))  # one buffer, reused: γ·(x − mean)/s + β
        np.divide(y, layout.broadcast(scale), out=y)
        np.multiply(y, layout.broadcast(gamma), out=y)
        return np.add(y, layout.broadcast(beta), out=y)
