"""How hard a case's data is, in the terms of the tolerance model; recorded with every result.

Ledger entries match on these numbers (``conditioning.worst_channel_offset_ratio``: a
cancellation that only shows where a channel's mean dwarfs its spread), and the report
plots each check's error against them.
"""

from __future__ import annotations

import numpy as np

from datamodel.case import Case, CaseData
from datamodel.records import Conditioning

#: Quantities indexed (step, channel) or (channel,) rather than like the input.
_PER_CHANNEL_INDEX = {"running_mean": 1, "running_var": 1, "dgamma": 0, "dbeta": 0}
#: Quantities with one entry per training step first: their worst element names its batch.
_STEPPED = ("y_train", "running_mean", "running_var")


def conditioning(case: Case, data: CaseData) -> Conditioning:
    """How hard the case's first batch is.

    ``offset_ratio``: the largest per-channel |mean|/std (∞ for a constant channel away from 0);
    ``constant_channels``: channels with no spread; ``one_value_per_channel``: N = 1;
    ``min_var_over_eps``: the smallest per-channel variance relative to ε (``None`` when ε
    is the framework's default); ``data_class``: the strategy's label for the data.
    """
    x = data.batches[0]
    axes = case.layout.reduced_axes
    with np.errstate(all="ignore"):
        mean = np.mean(x, axis=axes)
        std = np.std(x, axis=axes)
        # A constant channel away from zero is the limit of a large mean against a small
        # spread: its ratio is infinite (and 0 for a constant zero channel).
        offset = np.where(std > 0, np.abs(mean) / std, np.where(mean != 0, np.inf, 0.0))
    known = offset[~np.isnan(offset)]
    with np.errstate(over="ignore"):  # float64 data near its largest number: σ²/ε is +∞ there
        variances = (std**2)[np.isfinite(std)]
        min_var_over_eps = float(variances.min() / case.eps) if case.eps and variances.size else None
    return Conditioning(
        offset_ratio=float(known.max()) if known.size else 0.0,
        constant_channels=int(np.count_nonzero(std == 0)),
        one_value_per_channel=case.layout.count(case.shape) == 1,
        min_var_over_eps=min_var_over_eps,
        data_class=case.extra.get("conditioning"),
    )


def worst_channel_offset(case: Case, data: CaseData, quantity: str, worst_index: tuple[int, ...] | None) -> float | None:
    """|mean|/std of the channel that holds a comparison's worst element (∞ for a constant one).

    The channel is measured in the batch the worst element came from: the training step's
    batch for the quantities stacked by step (y_train, the running statistics), the first
    batch otherwise (inference and the gradients see one batch).  ``quantity`` may carry a
    suffix (``dx@twin``); only the part before ``@`` names the layout.
    """
    if worst_index is None:
        return None
    name = quantity.split("@")[0]
    position = _PER_CHANNEL_INDEX.get(name)
    if position is None:
        position = case.layout.axis + (1 if name == "y_train" else 0)  # y_train stacks the steps first
    if position >= len(worst_index):
        return None
    channel = worst_index[position]
    step = worst_index[0] if name in _STEPPED else 0  # their channel position is ≥ 1, checked above
    if not 0 <= step < len(data.batches):
        return None
    x = np.moveaxis(data.batches[step], case.layout.axis, 0)[channel]
    with np.errstate(all="ignore"):
        mean, std = float(np.mean(x)), float(np.std(x))
    if std > 0:
        return abs(mean) / std
    return float("inf") if mean != 0 else 0.0


def at_worst(hard: Conditioning, case: Case, data: CaseData, quantity: str, worst_index) -> Conditioning:
    """``hard`` with the worst element's channel offset of one comparison filled in."""
    offset = worst_channel_offset(case, data, quantity, tuple(worst_index) if worst_index is not None else None)
    return hard.model_copy(update={"worst_channel_offset_ratio": offset})
