"""Everything a case asks of an implementation, computed by the reference.

``simulate`` runs the canonical protocol that every adapter also runs:

1. ``y_eval``: inference mode on the first batch with the given running statistics;
2. for each training step t: ``y_train[t]`` and the running statistics after the step,
   ``running_mean[t]`` and ``running_var[t]``; y is normalized with the batch's statistics, or
   with those running statistics (``Conventions.normalization == "running"``), in which case
   a fresh layer's first step may copy the batch's into them first (``warmup``);
3. ``y_eval_after``: inference mode on the first batch after all training steps;
4. ``dx``, ``dgamma``, ``dbeta``: gradients of the first training step's output for the
   upstream gradient ``dy``, at the initial parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backward import blended_gradients, gradients_of
from .conventions import Conventions
from .dtypes import round_to
from .forward import batch_norm_blended, batch_norm_eval, batch_norm_train
from .running import RunningStatistics, running_variance_sample

QUANTITIES = ("y_train", "running_mean", "running_var", "y_eval", "y_eval_after", "dx", "dgamma", "dbeta")


@dataclass
class Expected:
    """The reference's value of each quantity (float64), plus the batch statistics behind them.

    ``train_means``/``train_vars``: the statistics each training step normalized with (the
    batch's, or the updated running ones); ``train_weights``: each step's (∂μ̃/∂μ, ∂ṽ/∂σ²),
    (1, 1) where it normalized with the batch's.  Empty lists mean "the batch's" throughout.
    """

    values: dict[str, np.ndarray]
    batch_means: list[np.ndarray] = field(default_factory=list)
    batch_vars: list[np.ndarray] = field(default_factory=list)
    count: int = 0
    train_means: list[np.ndarray] = field(default_factory=list)
    train_vars: list[np.ndarray] = field(default_factory=list)
    train_weights: list[tuple[float, float]] = field(default_factory=list)

    def normalizing(self, step: int) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(μ̃, ṽ, ∂μ̃/∂μ, ∂ṽ/∂σ²) of training step ``step`` (0-based)."""
        if not self.train_means:
            return self.batch_means[step], self.batch_vars[step], 1.0, 1.0
        return (self.train_means[step], self.train_vars[step], *self.train_weights[step])


def simulate(
    batches: list[np.ndarray],
    *,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    dy: np.ndarray,
    axis: int,
    eps: float,
    decay: float | None,
    dtype: str,
    conventions: Conventions,
) -> Expected:
    """Run the canonical protocol on ``batches`` (one per training step).

    ``decay`` is the canonical decay (ignored with ``conventions.averaging == "cumulative"``).
    ``gamma``/``beta`` of ``None`` mean the layer has no affine parameters; then ``dgamma``
    and ``dbeta`` are not part of the result.
    """
    if not batches:
        raise ValueError("simulate needs at least one batch")
    common = {"axis": axis, "eps": eps, "eps_placement": conventions.eps_placement, "dtype": dtype}
    first = batches[0]
    if decay is None and conventions.averaging != "cumulative":
        raise ValueError(f"{conventions.averaging} averaging needs a decay, got None")
    stats = RunningStatistics(
        mean=round_to(running_mean, dtype),
        var=round_to(running_var, dtype),
        decay=0.0 if decay is None else decay,
        mode=conventions.averaging,
        estimator=conventions.running_variance,
        debias_start=conventions.debias_start,
        warmup=conventions.warmup,
    )
    blend = conventions.normalization == "running"
    values: dict[str, np.ndarray] = {}

    def evaluate() -> np.ndarray:
        if not conventions.tracks_running_stats:
            return batch_norm_train(first, gamma, beta, **common).y
        return batch_norm_eval(first, gamma, beta, stats.mean, stats.var, **common)

    values["y_eval"] = evaluate()
    outputs, means, variances = [], [], []
    result = Expected(values=values)
    first_forward = None
    for batch in batches:
        forward = batch_norm_train(batch, gamma, beta, **common)
        result.batch_means.append(forward.mean)
        result.batch_vars.append(forward.var)
        result.count = forward.count
        stats.update(forward.mean, forward.var, forward.count)
        if blend:  # normalize with the running statistics this step has just updated
            var_weight = float(running_variance_sample(np.float64(stats.batch_weight), forward.count, stats.estimator))
            forward = batch_norm_blended(batch, gamma, beta, stats.mean, stats.var, forward, mean_weight=stats.batch_weight,
                                         var_weight=var_weight, **common)  # fmt: skip
            result.train_means.append(forward.mean)
            result.train_vars.append(forward.var)
            result.train_weights.append((forward.mean_weight, forward.var_weight))
        if first_forward is None:  # the gradients are the first step's
            first_forward = forward
        outputs.append(forward.y)
        means.append(stats.mean)
        variances.append(stats.var)
    values["y_train"] = np.stack(outputs)
    if conventions.tracks_running_stats:
        values["running_mean"] = np.stack(means)
        values["running_var"] = np.stack(variances)
    values["y_eval_after"] = evaluate()
    backward = blended_gradients if blend else gradients_of
    gradients = backward(first_forward, first, gamma, dy, axis=axis, eps_placement=conventions.eps_placement, dtype=dtype)
    values["dx"] = gradients.dx
    if gamma is not None:
        values["dgamma"] = gradients.dgamma
    if beta is not None:
        values["dbeta"] = gradients.dbeta
    return result
