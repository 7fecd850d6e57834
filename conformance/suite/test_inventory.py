"""Parameter inventories: what each framework creates for a layer, against the canonical count.

Canonically a batch norm over C channels holds 2·C trainable values (γ, β) and 2·C running
statistics.  For every rank and layout the adapter supports, each per-channel variable must
have shape (C,), and the framework's own totals are compared with the canonical ones; a
difference (a counter, statistics that are not kept) is a parameter-count discrepancy.
"""

from __future__ import annotations

import pytest

from conformance.judging.compare import DISCREPANCY, PASS, Comparison
from datamodel.case import Case, Generator

PER_CHANNEL_ROLES = ("scale", "offset", "running_mean", "running_variance")
SHAPES = {2: (4, 6), 3: (4, 6, 5), 4: (2, 6, 4, 3), 5: (2, 6, 3, 2, 2)}


def _count(quantity: str, observed: int, canonical: int) -> Comparison:
    verdict = PASS if observed == canonical else DISCREPANCY
    message = "" if verdict == PASS else f"{quantity}: the framework reports {observed}, the canonical count is {canonical}"
    return Comparison(quantity, verdict, max_abs_error=float(abs(observed - canonical)), allowed=0.0,
                      error_at_worst=float(abs(observed - canonical)), ratio=0.0 if verdict == PASS else float("inf"),
                      total=1, mismatched=int(verdict != PASS), message=message)  # fmt: skip


def inventory_comparisons(adapter, case: Case) -> tuple[list[Comparison], dict]:
    """The inventory of ``adapter`` for ``case``'s shape, compared with the canonical counts."""
    shape, channel_axis = case.shape, case.layout.axis
    channels = shape[channel_axis]
    inventory = adapter.inventory(shape, channel_axis)
    wrong_shapes = [f"{v.name} {v.shape}" for v in inventory.variables if v.role in PER_CHANNEL_ROLES and v.shape != (channels,)]
    comparisons = [
        Comparison("variable_shapes", DISCREPANCY if wrong_shapes else PASS, total=len(inventory.variables),
                   mismatched=len(wrong_shapes), ratio=float("inf") if wrong_shapes else 0.0,
                   message=f"per-channel variables must have shape ({channels},): {', '.join(wrong_shapes)}" if wrong_shapes else ""),
        _count("trainable_count", inventory.trainable_count, 2 * channels),
        _count("non_trainable_count", inventory.non_trainable_count, 2 * channels),
        _count("total_count", inventory.total_count, 4 * channels),
    ]  # fmt: skip
    extra = {
        "inventory": {
            "variables": [{"name": v.name, "role": v.role, "shape": list(v.shape), "dtype": v.dtype, "trainable": v.trainable}
                          for v in inventory.variables],
            "trainable_count": inventory.trainable_count,
            "non_trainable_count": inventory.non_trainable_count,
            "total_count": inventory.total_count,
            "reported": inventory.reported,
            "canonical": {"trainable": 2 * channels, "running_statistics": 2 * channels, "total": 4 * channels},
        }
    }  # fmt: skip
    return comparisons, extra


@pytest.mark.parametrize("rank", sorted(SHAPES))
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_inventory(conformance, adapter, bnconf_device, rank, layout):
    """Variable shapes per channel axis; trainable, non-trainable and total counts vs 2·C + 2·C."""
    channel_axis = 1 if layout == "channels_first" else rank - 1
    shape = SHAPES[rank] if channel_axis == 1 else tuple(SHAPES[rank][i] for i in (0, *range(2, rank), 1))
    case = Case(shape=shape, channel_axis=channel_axis, dtype="float32", x=Generator(), device=bnconf_device)
    reason = adapter.unsupported_reason(case)
    if reason is not None:
        pytest.skip(reason)
    comparisons, extra = inventory_comparisons(adapter, case)
    conformance.record(adapter, case, "inventory", comparisons, extra)
