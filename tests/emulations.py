"""Batch norm emulated in NumPy, correct but rounding differently, or wrong on purpose.

Each ``Emulation`` runs the reference's protocol (``reference.simulate``: inference with the
given running statistics, 1–3 training steps with their running updates, inference with the
updated statistics, gradients of the first step) the way a framework would: in float32 for
float32 and float16 cases (half precision computes its statistics in float32 and rounds its
outputs and stored statistics to float16), with one choice of summation, variance algorithm,
output form and underflow handling.  The wrong ones make one known mistake each.  They test
the tolerance model only (``tests/test_tolerance_model.py``), never a framework.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from conformance.judging.tolerance import ToleranceInputs
from reference.dtypes import numpy_dtype

Sum = Callable[[np.ndarray, np.random.Generator, Callable], np.ndarray]


# -- summation orders: each sums a (C, N) array along axis 1 in its own dtype ------------------
def recursive_sum(a: np.ndarray, rng: np.random.Generator, flush: Callable) -> np.ndarray:
    """s ← s + x_k, k = 1..N (``np.add.accumulate`` rounds every partial sum to the dtype)."""
    return np.add.accumulate(a, axis=1)[:, -1]


def pairwise_sum(a: np.ndarray, rng: np.random.Generator, flush: Callable) -> np.ndarray:
    """A balanced tree of sums, every partial sum rounded (and flushed when ``flush`` does)."""
    while a.shape[1] > 1:
        if a.shape[1] % 2:  # a zero pad adds nothing and rounds nothing
            a = np.concatenate([a, np.zeros((a.shape[0], 1), a.dtype)], axis=1)
        a = flush(a[:, 0::2] + a[:, 1::2])
    return a[:, 0]


def blocked_sum(a: np.ndarray, rng: np.random.Generator, flush: Callable, block: int = 32) -> np.ndarray:
    """Recursive sums of blocks of ``block`` values, then a recursive sum of the block sums (GPU-style)."""
    pad = -a.shape[1] % block
    a = np.concatenate([a, np.zeros((a.shape[0], pad), a.dtype)], axis=1)
    partial = np.add.accumulate(a.reshape(a.shape[0], -1, block), axis=2)[:, :, -1]
    return np.add.accumulate(partial, axis=1)[:, -1]


def shuffled_sum(a: np.ndarray, rng: np.random.Generator, flush: Callable) -> np.ndarray:
    """A recursive sum in a random order per channel (a parallel reduction's nondeterminism)."""
    order = rng.permuted(np.tile(np.arange(a.shape[1]), (a.shape[0], 1)), axis=1)
    return recursive_sum(np.take_along_axis(a, order, axis=1), rng, flush)


def _no_flush(array):
    return array


def _flusher(dtype) -> Callable:
    """Flush-to-zero (and denormals-are-zero on the way in): subnormal results of ``dtype`` become ±0."""
    tiny = np.finfo(dtype).tiny

    def flush(array):
        array = np.asarray(array)
        return np.where(np.abs(array) < tiny, array * 0, array).astype(array.dtype)

    return flush


def _channels_first(x: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[int, ...]]:
    moved = np.moveaxis(x, axis, 0)
    return moved.reshape(moved.shape[0], -1), moved.shape


def _restore(flat: np.ndarray, moved_shape: tuple[int, ...], axis: int) -> np.ndarray:
    return np.moveaxis(flat.reshape(moved_shape), 0, axis)


@dataclass(frozen=True)
class Emulation:
    """One way to compute batch norm; ``mistake`` is empty for a correct one."""

    name: str
    summation: Sum = pairwise_sum
    variance: str = "two_pass"  # "two_pass", "welford" or "one_pass" (E[x²] − E[x]²)
    output: str = "plain"  # "plain" γ·((x − μ)/s) + β, "fused" rounded once, "folded" x·a + b
    flush: bool = False  # flush-to-zero and denormals-are-zero in the compute dtype (x86 MXCSR FTZ|DAZ)
    flush_storage: bool = False  # and when rounding outputs and stored statistics to a half-precision dtype
    accumulate_in_half: bool = False
    update_in_storage: bool = False  # the running update computed in the storage dtype (PyTorch's buffers)
    eps_outside: bool = False
    mistake: str = ""

    def run(self, inputs: ToleranceInputs, seed: int = 0) -> dict[str, np.ndarray]:
        """Every quantity of ``reference.simulate``'s protocol, as float64 arrays of its shapes."""
        return _Run(self, inputs, np.random.default_rng(seed)).quantities()


class _Run:
    """One emulated run: arrays channels-first, (C, N), computed in ``dt``, stored in ``store``."""

    def __init__(self, emulation: Emulation, inputs: ToleranceInputs, rng: np.random.Generator) -> None:
        self.em, self.inputs, self.rng = emulation, inputs, rng
        self.store = numpy_dtype(inputs.dtype).type
        self.dt = np.float64 if inputs.dtype == "float64" else np.float32
        self.acc = np.float16 if emulation.accumulate_in_half else self.dt
        self.fl = _flusher(self.dt) if emulation.flush else _no_flush
        self.fl_store = _flusher(self.store) if emulation.flush_storage else _no_flush
        self.eps = self.dt(inputs.eps)
        data = inputs.data
        channels = data.batches[0].shape[inputs.axis]
        gamma = np.ones(channels) if data.gamma is None else data.gamma
        beta = np.zeros(channels) if data.beta is None else data.beta
        self.gamma, self.beta = gamma.astype(self.dt)[:, None], beta.astype(self.dt)[:, None]

    def flat(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
        flat, moved = _channels_first(x, self.inputs.axis)
        return self.fl(flat.astype(self.dt)), moved

    def output(self, flat: np.ndarray, moved: tuple[int, ...]) -> np.ndarray:
        """Round to the storage dtype (flushed there too, when flushing), back in the input's layout."""
        with np.errstate(over="ignore"):
            stored = self.fl_store(np.asarray(flat).astype(self.store)).astype(np.float64)
        return _restore(stored, moved, self.inputs.axis) if moved else stored

    def total(self, a: np.ndarray) -> np.ndarray:
        """Σ over each channel in the accumulation dtype, returned in the compute dtype."""
        fl = _flusher(self.acc) if self.em.flush else _no_flush
        return self.em.summation(a.astype(self.acc), self.rng, fl).astype(self.dt)

    def mean(self, a: np.ndarray) -> np.ndarray:
        return self.fl(self.total(a) / self.dt(a.shape[1]))

    def statistics(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fl, n = self.fl, x.shape[1]
        if self.em.variance == "welford":
            xa = x.astype(self.acc)
            m = np.zeros(x.shape[0], self.acc)
            m2 = np.zeros(x.shape[0], self.acc)
            for k in range(n):
                delta = fl(xa[:, k] - m)
                m = fl(m + fl(delta / self.acc(k + 1)))
                m2 = fl(m2 + fl(delta * fl(xa[:, k] - m)))
            return m.astype(self.dt), fl(m2.astype(self.dt) / self.dt(n))
        mean = self.mean(x)
        if self.em.variance == "one_pass":
            return mean, np.maximum(fl(self.mean(fl(x * x)) - fl(mean * mean)), 0)
        centered = fl(x - mean[:, None])
        return mean, self.mean(fl(centered * centered))

    def scale(self, var: np.ndarray) -> np.ndarray:
        fl = self.fl
        if self.em.eps_outside:
            return fl(fl(np.sqrt(var)) + self.eps)
        return fl(np.sqrt(fl(var + self.eps)))

    def normalize(self, x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        fl, s, m = self.fl, self.scale(var)[:, None], mean[:, None]
        if self.em.output == "fused":  # y = (x − μ)·(γ/s) + β, rounded once
            wide = (x.astype(np.float64) - m) * (self.gamma.astype(np.float64) / s) + self.beta
            return self.fl_store(wide.astype(self.store)).astype(self.dt)
        if self.em.output == "folded":  # TensorFlow's form: a = γ/s, b = β − μ·a, y = x·a + b
            a = fl(self.gamma / s)
            return fl(fl(x * a) + fl(self.beta - fl(m * a)))
        return fl(fl(self.gamma * fl(fl(x - m) / s)) + self.beta)

    def quantities(self) -> dict[str, np.ndarray]:
        inputs, data, dt = self.inputs, self.inputs.data, self.dt
        conv = inputs.conventions
        r_mean, r_var = data.running_mean.astype(dt), data.running_var.astype(dt)
        first, moved = self.flat(data.batches[0])
        with np.errstate(all="ignore"):
            result = {"y_eval": self.output(self.normalize(first, r_mean, r_var), moved)}
            outputs, means, variances = [], [], []
            for step, batch in enumerate(data.batches, 1):
                x, _ = self.flat(batch)
                mean, var = self.statistics(x)
                outputs.append(self.output(self.normalize(x, mean, var), moved))
                n = x.shape[1]
                if conv.running_variance == "unbiased":
                    var = self.fl(var * dt(n / (n - 1))) if n > 1 else np.full_like(var, np.nan)
                if conv.averaging == "cumulative":  # the lerp r + (b − r)/t
                    w = dt(1.0 / step)
                    r_mean = self.fl(r_mean + self.fl(self.fl(mean - r_mean) * w))
                    r_var = self.fl(r_var + self.fl(self.fl(var - r_var) * w))
                elif self.em.update_in_storage:  # PyTorch: r·(1 − m) + m·b, m = 1 − d, in the buffer's dtype
                    r_mean, r_var = self.stored_update(r_mean, mean), self.stored_update(r_var, var)
                else:
                    keep, weight = dt(inputs.decay), dt(1.0 - inputs.decay)
                    r_mean = self.fl(self.fl(keep * r_mean) + self.fl(weight * mean))
                    r_var = self.fl(self.fl(keep * r_var) + self.fl(weight * var))
                r_mean = self.fl_store(r_mean.astype(self.store)).astype(dt)
                r_var = self.fl_store(r_var.astype(self.store)).astype(dt)
                means.append(self.output(r_mean, ()))
                variances.append(self.output(r_var, ()))
            result["y_train"] = np.stack(outputs)
            result["running_mean"], result["running_var"] = np.stack(means), np.stack(variances)
            result["y_eval_after"] = self.output(self.normalize(first, r_mean, r_var), moved)
            result.update(self.gradients(first, moved))
        return result

    def stored_update(self, running: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """r·(1 − m) + m·b with m = 1 − d rounded to the storage dtype, every step rounded there."""
        store = self.store
        with np.errstate(over="ignore"):
            m = store(1.0 - self.inputs.decay)
            kept = (running.astype(store) * (store(1.0) - m)).astype(store)
            added = (batch.astype(store) * m).astype(store)
            return (kept + added).astype(store).astype(self.dt)

    def gradients(self, x: np.ndarray, moved: tuple[int, ...]) -> dict[str, np.ndarray]:
        """dx = (g − mean(g) − x̂·mean(g·x̂))/s with g = γ·dy; dγ = Σ dy·x̂; dβ = Σ dy.

        The folded output form folds dx too, as PyTorch's CPU kernels do: per-channel
        a = γ/s, b = −a·mean(dy·x̂)/s and c = −a·mean(dy), then dx = a·dy + b·(x − μ) + c.
        """
        fl, data = self.fl, self.inputs.data
        dy, _ = self.flat(data.dy)
        mean, var = self.statistics(x)
        s = self.scale(var)[:, None]
        centered = fl(x - mean[:, None])
        x_hat = fl(centered / s)
        if self.em.output == "folded":
            a = fl(self.gamma / s)
            b = -fl(fl(a * self.mean(fl(dy * x_hat))[:, None]) / s)
            c = -fl(a * self.mean(dy)[:, None])
            dx = fl(fl(fl(a * dy) + fl(b * centered)) + c)
        else:
            g = fl(dy * self.gamma)
            g_mean = self.mean(g)[:, None]
            gx_mean = self.mean(fl(g * x_hat))[:, None]
            dx = fl(fl(fl(g - g_mean) - fl(x_hat * gx_mean)) / s)
        result = {"dx": self.output(dx, moved)}
        if data.gamma is not None:
            result["dgamma"] = self.output(self.total(fl(dy * x_hat)), ())
        if data.beta is not None:
            result["dbeta"] = self.output(self.total(dy), ())
        return result


#: Correct implementations that differ only in how they round.
CORRECT = (
    Emulation("recursive", summation=recursive_sum),
    Emulation("pairwise", summation=pairwise_sum),
    Emulation("blocked", summation=blocked_sum),
    Emulation("shuffled", summation=shuffled_sum),
    Emulation("welford", summation=recursive_sum, variance="welford"),
    Emulation("fused", output="fused"),
    Emulation("folded", output="folded"),
    Emulation("flush_to_zero", flush=True),
    Emulation("folded_flush_to_zero", output="folded", flush=True),
    Emulation("update_in_storage", update_in_storage=True),
)
#: Also flushes when rounding to float16 (F16C conversions ignore MXCSR; ARM's FZ16 does not).
FLUSH_HALF_STORAGE = Emulation("flush_to_zero_half_storage", flush=True, flush_storage=True)

#: Wrong implementations, each with one mistake.
ONE_PASS = Emulation("one_pass", variance="one_pass", mistake="variance as E[x²] − E[x]² in float32")
#: A loop that sums in float16 (pairwise float16 sums stay within the bound for N ≤ 1024: see the test).
HALF_ACCUMULATION = Emulation("half_accumulation", summation=recursive_sum, accumulate_in_half=True,
                              mistake="statistics accumulated in float16 by a running sum")  # fmt: skip
EPS_OUTSIDE = Emulation("eps_outside", eps_outside=True, mistake="ε added outside the square root")
WRONG = (ONE_PASS, HALF_ACCUMULATION, EPS_OUTSIDE)
