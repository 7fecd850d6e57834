"""The inventory property expects canonical + declared: an engine's extra state and stored shapes.

An adapter declares what its layer keeps beyond γ, β and the two running statistics
(``FrameworkConventions.extra_state``) and the shape it stores them in (``variable_shape``).
With fakes of ``tests/fakes.py``: a correct declaration passes every count, and a wrong one (a
counter left undeclared, a declared size the layer does not hold, broadcast shapes declared
as per-channel, state declared but never created) is a discrepancy that names the variable.
The real engines' declarations are checked against what they create (``frameworks``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import pytest
from fakes import NumpyAdapter

from adapters.base import FrameworkConventions, Inventory, StateVariable, Variable
from conformance.suite.test_inventory import SHAPES, inventory_counts
from datamodel.case import Case, Generator
from datamodel.records import Inventory as InventoryRecord
from reference import Conventions

CASE = Case(shape=(4, 3, 5), channel_axis=1, dtype="float32", x=Generator())
C = 3


class DeclaringAdapter(NumpyAdapter):
    """The honest fake whose layer creates ``creates`` beyond the canonical four, and declares ``declares``.

    ``stored`` shapes the canonical variables ("per_channel" or "broadcast"); ``declared_shape``
    is what the conventions say.  ``running`` False declares no running statistics, ``keeps``
    False creates none (by default as declared).
    """

    name = "declaring-fake"
    variants: ClassVar[dict[str, str]] = {}

    def __init__(self, *, creates=(), declares=(), stored="per_channel", declared_shape="per_channel", running=True, keeps=None):
        super().__init__("")
        self.creates, self.declares, self.stored, self.declared_shape = creates, declares, stored, declared_shape
        self.running, self.keeps = running, running if keeps is None else keeps

    @property
    def conventions(self) -> FrameworkConventions:
        base = super().conventions
        return replace(base, extra_state=self.declares, variable_shape=self.declared_shape,
                       reference=replace(base.reference, tracks_running_stats=self.running))  # fmt: skip

    def inventory(self, shape, channel_axis, dtype="float32") -> Inventory:
        c = shape[channel_axis]
        held = (c,) if self.stored == "per_channel" else tuple(c if a == channel_axis % len(shape) else 1 for a in range(len(shape)))
        canonical = [("weight", "scale", True), ("bias", "offset", True)]
        if self.keeps:
            canonical += [("running_mean", "running_mean", False), ("running_var", "running_variance", False)]
        variables = tuple(Variable(name, role, held, dtype, trainable) for name, role, trainable in canonical) + tuple(self.creates)
        trainable = sum(v.size for v in variables if v.trainable)
        non_trainable = sum(v.size for v in variables if not v.trainable)
        return Inventory(variables, trainable, non_trainable, trainable + non_trainable, {"fake": trainable + non_trainable})


COUNTER = Variable("steps", "counter", (), "int64", False)
HIDDEN = Variable("hidden", "other", (C,), "float32", False)


def _findings(adapter, case: Case = CASE) -> dict[str, str]:
    counts, _ = inventory_counts(adapter, case)
    return {c.quantity: c.message or "" for c in counts if c.observed != c.canonical}


@pytest.mark.parametrize("adapter", [
    pytest.param(DeclaringAdapter(), id="nothing-extra"),
    pytest.param(DeclaringAdapter(creates=(COUNTER,), declares=(StateVariable("steps", "counter"),)), id="a-counter"),
    pytest.param(DeclaringAdapter(creates=(COUNTER, HIDDEN), declares=(("steps", "counter"), ("hidden", "other", 1, True))),
                 id="a-counter-and-a-raw-average"),
    pytest.param(DeclaringAdapter(stored="broadcast", declared_shape="broadcast"), id="broadcast-shapes"),
    pytest.param(DeclaringAdapter(running=False), id="no-running-statistics"),
])  # fmt: skip
def test_a_correct_declaration_passes_every_count(adapter):
    assert _findings(adapter) == {}
    counts, inventory = inventory_counts(adapter, CASE)
    assert [c.quantity for c in counts] == ["variable_shapes", "extra_state", "trainable_count", "non_trainable_count", "total_count"]
    extra = sum(v.size for v in adapter.creates)
    assert inventory.canonical.extra_state == extra
    assert inventory.canonical.total == 2 * C + (2 * C if adapter.running else 0) + extra
    InventoryRecord.model_validate(inventory.model_dump())  # the record carries the declared counts


def test_an_undeclared_counter_is_a_discrepancy_in_the_extra_state_and_the_counts():
    findings = _findings(DeclaringAdapter(creates=(COUNTER,)))
    assert set(findings) == {"extra_state", "non_trainable_count", "total_count"}
    assert "undeclared counter steps ()" in findings["extra_state"]


def test_a_declared_counter_the_layer_does_not_create_is_a_discrepancy():
    findings = _findings(DeclaringAdapter(declares=(StateVariable("steps", "counter"),)))
    assert set(findings) == {"extra_state", "non_trainable_count", "total_count"}
    assert "declared steps (counter, 1 value) is not created" in findings["extra_state"]
    assert "expected 7 = 6 running statistics + steps (counter, 1 value)" in findings["non_trainable_count"]


def test_a_wrong_size_or_role_is_a_discrepancy_naming_the_variable():
    per_channel = _findings(DeclaringAdapter(creates=(COUNTER,), declares=(StateVariable("steps", "counter", per_channel=True),)))
    assert "steps holds 1 values (), declared 3" in per_channel["extra_state"]
    role = _findings(DeclaringAdapter(creates=(COUNTER,), declares=(StateVariable("steps", "other"),)))
    assert set(role) == {"extra_state"}
    assert "steps has role counter, declared other" in role["extra_state"]


def test_undeclared_broadcast_shapes_are_a_shape_discrepancy():
    findings = _findings(DeclaringAdapter(stored="broadcast"))
    assert set(findings) == {"variable_shapes"}
    assert findings["variable_shapes"].startswith("per-channel variables must have shape (3,): weight (1, 3, 1)")


def test_broadcast_shapes_declared_where_the_layer_stores_per_channel_are_a_discrepancy():
    findings = _findings(DeclaringAdapter(declared_shape="broadcast"))
    assert findings["variable_shapes"].startswith("per-channel variables must have shape (1, 3, 1) (declared broadcast): weight (3,)")


def test_a_layer_without_running_statistics_is_canonical_only_when_declared_so():
    assert _findings(DeclaringAdapter(running=False)) == {}
    assert set(_findings(DeclaringAdapter(running=True, keeps=False))) == {"non_trainable_count", "total_count"}
    assert set(_findings(DeclaringAdapter(running=False, keeps=True))) == {"non_trainable_count", "total_count"}


@pytest.mark.parametrize(("form", "rank", "axis", "shape"), [
    ("per_channel", 4, 1, (C,)), ("broadcast", 4, 1, (1, C, 1, 1)), ("broadcast", 2, -1, (1, C)),
    ("virtual_batch_broadcast", 4, 3, (1, 1, 1, 1, C)), ("virtual_batch_broadcast", 2, 1, (1, 1, C)),
])  # fmt: skip
def test_the_declared_variable_shape_for_each_form(form, rank, axis, shape):
    declared = replace(NumpyAdapter("").conventions, variable_shape=form)
    assert declared.stored_shape(rank, axis, C) == shape


def test_a_declaration_is_validated_with_the_bad_value():
    with pytest.raises(ValueError, match=r"role must be one of \('counter', 'other'\), got 'running_mean'"):
        StateVariable("m", "running_mean")
    with pytest.raises(ValueError, match=r"variable_shape must be one of .* got 'keepdims'"):
        replace(NumpyAdapter("").conventions, variable_shape="keepdims")
    with pytest.raises(ValueError, match="extra state names must be distinct"):
        replace(NumpyAdapter("").conventions, extra_state=(("n", "counter"), ("n", "other")))
    declared = FrameworkConventions(momentum_name="m", momentum_form="new_weight", momentum_default=0.1, eps_default=1e-5,
                                    default_channel_axis=1, reference=Conventions(), parameter_names={},
                                    extra_state=(("n", "counter"),))  # fmt: skip
    assert declared.extra_state == (StateVariable("n", "counter"),)
    assert declared.declared_counts(C).non_trainable == 2 * C + 1


# -- the real engines: each declaration matches what the framework creates ------------------

#: Every engine with a declaration of its own, and what it declares (the rest declare none).
DECLARING_ENGINES = ("torch", "torch:no_running_stats", "haiku", "equinox", "equinox:batch", "tf-keras:renorm",
                     "tf-keras:virtual_batch")  # fmt: skip
UNDECLARING_ENGINES = ("flax", "nnx", "keras", "tf-keras", "onnx-reference")


@pytest.mark.frameworks
@pytest.mark.parametrize("spec", DECLARING_ENGINES + UNDECLARING_ENGINES)
def test_each_real_engine_holds_what_it_declares_for_every_rank_and_layout(spec):
    from adapters.registry import FrameworkUnavailableError, get_adapter

    try:
        adapter = get_adapter(spec)
    except FrameworkUnavailableError as error:
        pytest.skip(str(error))
    assert bool(adapter.conventions.extra_state or adapter.conventions.variable_shape != "per_channel"
                or not adapter.conventions.reference.tracks_running_stats) == (spec in DECLARING_ENGINES)  # fmt: skip
    checked = 0
    for rank, shape in SHAPES.items():
        for axis in (1, rank - 1):
            case = Case(shape=shape if axis == 1 else tuple(shape[i] for i in (0, *range(2, rank), 1)), channel_axis=axis,
                        dtype="float32", x=Generator())  # fmt: skip
            if adapter.unsupported_reason(case) is None:
                assert _findings(adapter, case) == {}, case.shape
                checked += 1
    assert checked
