"""Eager and compiled execution of one engine give the same numbers, within both tolerances.

What production runs is usually compiled, and compilers rewrite batch norm (fusions,
reassociated reductions, FMA).  An engine's default variant declares the variants that run the
same layer another way (``Adapter.execution_modes``: ``torch.compile``; Keras under XLA or
a ``tf.function`` graph; Flax and NNX without ``jax.jit``).  Each example draws one of them and
a case both can run; ``twins.check_twins`` judges each against the reference and the two
against each other (``<quantity>@twin``, recorded with the mode, which answers for a
difference from its eager engine), all as property ``execution``.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from conformance.generation.strategies import cases

from .twins import check_twins, twin_adapter


@given(data=st.data())
def test_execution_modes(conformance, adapter, bnconf_device, max_elements, pooled_configurations, data):
    modes = adapter.execution_twins
    if not modes:
        pytest.skip(f"{adapter.label} declares no other execution mode")
    twin = twin_adapter(f"{adapter.name}:{data.draw(st.sampled_from(modes), label='mode')}")
    case = data.draw(cases(capabilities=adapter.capabilities, device=bnconf_device, max_elements=max_elements,
                           pooled=pooled_configurations, max_steps=2), label="case")  # fmt: skip
    assume(twin.unsupported_reason(case) is None)
    case_data = case.materialize()
    check_twins(conformance, "execution", (adapter, case, case_data), (twin, case, case_data), blame_second=True)
