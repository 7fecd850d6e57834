"""Everything a case asks of an implementation, computed by the reference.

``simulate`` runs the canonical protocol that every adapter also runs:

1. ``y_eval``: inference mode on the first batch with the given running statistics;
2. for each training step t: ``y_train[t]`` and the running statistics after the step,
   ``running_mean[t]`` and ``running_var[t]``;
3. ``y_eval_after``: inference mode on the first batch after all training steps;
4. ``dx``, ``dgamma``, ``dbeta``: gradients of the first training step's output for the
   upstream gradient ``dy``, at the initial parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backward import gradients_of
from .conventions import Conventions
from .dtypes import round_to
from .forward import batch_norm_eval, batch_norm_train
from .running import RunningStatistics

QUANTITIES = ("y_train", "running_mean", "running_var", "y_eval", "y_eval_after", "dx", "dgamma", "dbeta")


@dataclass
class Expected:
    """The reference's value of each quantity (float64), plus the batch statistics behind them."""

    values: dict[str, np.ndarray]
    batch_means: list[np.ndarray] = field(default_factory=list)
    batch_vars: list[np.ndarray] = field(default_factory=list)
    count: int = 0


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
    )
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
        if first_forward is None:  # the gradients are the first step's
            first_forward = forward
        outputs.append(forward.y)
        result.batch_means.append(forward.mean)
        result.batch_vars.append(forward.var)
        result.count = forward.count
        stats.update(forward.mean, forward.var, forward.count)
        means.append(stats.mean)
        variances.append(stats.var)
    values["y_train"] = np.stack(outputs)
    if conventions.tracks_running_stats:
        values["running_mean"] = np.stack(means)
        values["running_var"] = np.stack(variances)
    values["y_eval_after"] = evaluate()
    gradients = gradients_of(first_forward, first, gamma, dy, axis=axis, eps_placement=conventions.eps_placement, dtype=dtype)
    values["dx"] = gradients.dx
    if gamma is not None:
        values["dgamma"] = gradients.dgamma
    if beta is not None:
        values["dbeta"] = gradients.dbeta
    return result
