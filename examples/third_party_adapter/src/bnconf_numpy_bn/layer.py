"""The engine under test: a small NumPy batch norm, written the way a library would.

It computes in the input's dtype (float32 stays float32), with a two-pass variance, ε inside
the root, a momentum that weights the old statistic, and the biased batch variance fed to
the running variance.
"""

from __future__ import annotations

import numpy as np


class BatchNorm:
    def __init__(self, channels: int, axis: int = -1, momentum: float = 0.9, epsilon: float = 1e-5,
                 dtype: str = "float32") -> None:  # fmt: skip
        self.axis, self.momentum, self.epsilon, self.dtype = axis, momentum, epsilon, np.dtype(dtype)
        self.gamma = np.ones(channels, self.dtype)
        self.beta = np.zeros(channels, self.dtype)
        self.moving_mean = np.zeros(channels, self.dtype)
        self.moving_var = np.ones(channels, self.dtype)

    def _shape(self, x: np.ndarray, vector: np.ndarray) -> np.ndarray:
        axis = self.axis % x.ndim
        return vector.reshape([-1 if a == axis else 1 for a in range(x.ndim)])

    def _axes(self, x: np.ndarray) -> tuple[int, ...]:
        return tuple(a for a in range(x.ndim) if a != self.axis % x.ndim)

    def __call__(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = x.astype(self.dtype)
        if training:
            mean = x.mean(axis=self._axes(x))
            var = ((x - self._shape(x, mean)) ** 2).mean(axis=self._axes(x))
            m = self.dtype.type(self.momentum)
            self.moving_mean = (m * self.moving_mean + (1 - m) * mean).astype(self.dtype)
            self.moving_var = (m * self.moving_var + (1 - m) * var).astype(self.dtype)
        else:
            mean, var = self.moving_mean, self.moving_var
        scale = self.gamma / np.sqrt(var + self.dtype.type(self.epsilon))
        return (x - self._shape(x, mean)) * self._shape(x, scale) + self._shape(x, self.beta)

    def backward(self, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """dx, dγ, dβ of a training-mode call at ``x`` for the upstream gradient ``dy``."""
        x, dy = x.astype(self.dtype), dy.astype(self.dtype)
        axes = self._axes(x)
        mean = self._shape(x, x.mean(axis=axes))
        var = self._shape(x, ((x - mean) ** 2).mean(axis=axes))
        inv = 1 / np.sqrt(var + self.dtype.type(self.epsilon))
        x_hat = (x - mean) * inv
        g = dy * self._shape(x, self.gamma)
        dx = inv * (g - g.mean(axis=axes, keepdims=True) - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))
        return dx, (dy * x_hat).sum(axis=axes), dy.sum(axis=axes)
