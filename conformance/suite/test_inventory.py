"""Parameter inventories: what each framework creates for a layer, against the canonical count.

Canonically a batch norm over C channels holds 2·C trainable values (γ, β) and 2·C running
statistics (none when it keeps no running statistics), each per-channel variable of shape
(C,).  An adapter declares what its layer keeps beyond that (``FrameworkConventions``:
``extra_state``, such as PyTorch's ``num_batches_tracked``, and ``variable_shape``, such as
Haiku's broadcast shapes), and the property expects canonical + declared: for every rank and
layout the adapter supports, the per-channel variables have the declared shape, the
framework's own totals equal the canonical counts plus the declared extra state, and the
variables beyond γ, β and the running statistics are exactly the declared ones (names,
roles, sizes).  A difference is a parameter-count discrepancy, written as a ``count`` record
with the whole inventory: a wrong declaration is a finding like a wrong count.
"""

from __future__ import annotations

import pytest

from adapters.base import PER_CHANNEL_ROLES, FrameworkConventions
from adapters.base import Variable as FoundVariable
from conformance.plugin.session import Count
from datamodel.case import Case, Generator
from datamodel.records import CanonicalCounts, Inventory, Variable

SHAPES = {2: (4, 6), 3: (4, 6, 5), 4: (2, 6, 4, 3), 5: (2, 6, 3, 2, 2)}


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def extra_state_mismatches(declared: FrameworkConventions, found: tuple[FoundVariable, ...], channels: int) -> list[str]:
    """How the variables beyond γ, β and the running statistics differ from the declared extra state.

    A variable is extra when its role is not one of the four canonical ones, or when the
    declaration names it.  Each problem is one phrase: a declared variable the layer does not
    create, one it creates undeclared, or a role, size or trainability other than declared.
    """
    expected = {v.name: v for v in declared.extra_state}
    extra = {v.name: v for v in found if v.role not in PER_CHANNEL_ROLES or v.name in expected}
    problems = []
    for name, want in expected.items():
        got = extra.get(name)
        if got is None:
            problems.append(f"declared {want.describe()} is not created")
            continue
        if got.role != want.role:
            problems.append(f"{name} has role {got.role}, declared {want.role}")
        if got.size != want.values(channels):
            problems.append(f"{name} holds {got.size} values {_shape_text(got.shape)}, declared {want.values(channels)}")
        if got.trainable != want.trainable:
            problems.append(f"{name} is {'' if got.trainable else 'not '}trainable, declared {'' if want.trainable else 'not '}trainable")
    problems += [f"undeclared {v.role} {name} {_shape_text(v.shape)} ({v.size} values)" for name, v in extra.items() if name not in expected]
    return problems


def inventory_counts(adapter, case: Case) -> tuple[list[Count], Inventory]:
    """The inventory of ``adapter`` for ``case``'s shape, and its counts against canonical + declared.

    ``variable_shapes`` counts the per-channel variables (and per-channel extra state) whose
    shape is not the declared one, (C,) unless declared otherwise; ``extra_state`` counts the
    differences between the variables beyond the canonical four and the declared extra state.
    Both are canonically 0.
    """
    shape, channel_axis = case.shape, case.layout.axis
    channels = shape[channel_axis]
    declared = adapter.conventions
    expected = declared.declared_counts(channels)
    stored = declared.stored_shape(len(shape), channel_axis, channels)
    found = adapter.inventory(shape, channel_axis)
    per_channel_state = {v.name for v in declared.extra_state if v.per_channel and v.size == 1}  # stored like the statistics
    wrong_shapes = [f"{v.name} {_shape_text(v.shape)}" for v in found.variables
                    if (v.role in PER_CHANNEL_ROLES or v.name in per_channel_state) and v.shape != stored]  # fmt: skip
    mismatches = extra_state_mismatches(declared, found.variables, channels)
    form = "" if declared.variable_shape == "per_channel" else f" (declared {declared.variable_shape})"
    extra = "".join(f" + {v.describe()}" for v in declared.extra_state)
    counts = [
        Count("variable_shapes", len(wrong_shapes), 0,
              f"per-channel variables must have shape {_shape_text(stored)}{form}: {', '.join(wrong_shapes)}" if wrong_shapes else ""),
        Count("extra_state", len(mismatches), 0,
              f"the variables beyond γ, β and the running statistics differ from the declared extra state "
              f"({', '.join(v.describe() for v in declared.extra_state) or 'none'}): {'; '.join(mismatches)}" if mismatches else ""),
        Count("trainable_count", found.trainable_count, expected.trainable),
        Count("non_trainable_count", found.non_trainable_count, expected.non_trainable,
              f"non_trainable_count: the framework reports {found.non_trainable_count}, expected {expected.non_trainable} = "
              f"{expected.running_statistics} running statistics{extra}" if found.non_trainable_count != expected.non_trainable and extra else None),
        Count("total_count", found.total_count, expected.total),
    ]  # fmt: skip
    inventory = Inventory(
        variables=[Variable(name=v.name, role=v.role, shape=list(v.shape), dtype=v.dtype, trainable=v.trainable)
                   for v in found.variables],
        trainable_count=found.trainable_count, non_trainable_count=found.non_trainable_count,
        total_count=found.total_count, reported=found.reported,
        canonical=CanonicalCounts(trainable=expected.trainable, running_statistics=expected.running_statistics,
                                  total=expected.total, extra_state=expected.extra_state,
                                  declared_extra_state=[v.describe() for v in declared.extra_state],
                                  variable_shape=list(stored)),
    )  # fmt: skip
    return counts, inventory


@pytest.mark.parametrize("rank", sorted(SHAPES))
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_inventory(conformance, adapter, bnconf_device, rank, layout):
    """Variable shapes per channel axis, the extra state, and the counts vs 2·C + 2·C + the declared extra state."""
    channel_axis = 1 if layout == "channels_first" else rank - 1
    shape = SHAPES[rank] if channel_axis == 1 else tuple(SHAPES[rank][i] for i in (0, *range(2, rank), 1))
    case = Case(shape=shape, channel_axis=channel_axis, dtype="float32", x=Generator(), device=bnconf_device)
    reason = adapter.unsupported_reason(case)
    if reason is not None:
        pytest.skip(reason)
    counts, inventory = inventory_counts(adapter, case)
    conformance.record_counts(adapter, case, counts, inventory)
