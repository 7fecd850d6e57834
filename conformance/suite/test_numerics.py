"""Training, inference and gradients against the reference, on generated cases.

Each property draws whole cases (``conformance.generation.strategies.cases``) the adapter can run:
every rank, layout, dtype, ε, decay and data conditioning the adapter declares support for.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conformance.generation.strategies import cases

from .helpers import check_property


def _cases(data, adapter, device, max_elements, pooled, **kwargs):
    strategy = cases(capabilities=adapter.capabilities, device=device, max_elements=max_elements, pooled=pooled, **kwargs)
    return data.draw(strategy, label="case")


@given(data=st.data())
def test_training(conformance, adapter, bnconf_device, max_elements, pooled_configurations, data):
    """Training-mode output, running statistics after each of several steps, then train → eval."""
    case = _cases(data, adapter, bnconf_device, max_elements, pooled_configurations)
    check_property(conformance, adapter, case, "training", ("training",))


@given(data=st.data())
def test_inference(conformance, adapter, bnconf_device, max_elements, pooled_configurations, data):
    """Inference-mode output from given running statistics."""
    case = _cases(data, adapter, bnconf_device, max_elements, pooled_configurations, max_steps=1)
    check_property(conformance, adapter, case, "inference", ("inference",))


@given(data=st.data())
def test_gradients(conformance, adapter, bnconf_device, max_elements, pooled_configurations, data):
    """dx, dγ and dβ of the training forward against the closed form."""
    case = _cases(data, adapter, bnconf_device, max_elements, pooled_configurations, max_steps=1)
    check_property(conformance, adapter, case, "gradients", ("gradients",))
