"""The same framework on CPU and GPU, on the same case: the two must agree.

Runs with the GPU parametrization (``--bnconf-device gpu`` or ``all``); without a GPU the
``adapter`` fixture skips it with the reason.  Each device is compared with the reference
under the tolerance model, and the two devices with each other under the sum of their
tolerances (quantities ``<name>@cpu-vs-gpu``); the report shows these deltas.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.generation.strategies import cases
from conformance.judging.check import compare_outcomes, expected_values, stable_baseline, tolerances
from conformance.judging.compare import compare
from conformance.judging.tolerance import largest_finite


@given(data=st.data())
def test_cpu_and_gpu_agree(conformance, adapter, bnconf_device, max_elements, pooled_configurations, data):
    if bnconf_device != "gpu":
        pytest.skip("the CPU/GPU comparison runs with the GPU parametrization (--bnconf-device gpu or all)")
    if "cpu" not in adapter.available_devices():
        pytest.skip(f"{adapter.label}: no CPU device to compare with")
    gpu_case = data.draw(cases(capabilities=adapter.capabilities, device="gpu", max_elements=max_elements,
                               pooled=pooled_configurations), label="case")  # fmt: skip
    cpu_case = gpu_case.with_(device="cpu")
    data_arrays = gpu_case.materialize()
    settings = adapter.settings(gpu_case)
    expected = expected_values(gpu_case, data_arrays, settings)
    allowed = tolerances(gpu_case, data_arrays, settings, expected)
    stable = stable_baseline(gpu_case, data_arrays, settings, expected)
    on_gpu = conformance.observe(adapter, gpu_case, "cross_device", data_arrays)
    on_cpu = conformance.observe(adapter, cpu_case, "cross_device", data_arrays)
    max_finite = largest_finite(gpu_case.dtype)
    comparisons = compare_outcomes(expected, allowed, on_gpu, max_finite=max_finite, stable=stable)
    for name, outcome in on_gpu.items():
        other = on_cpu.get(name)
        if outcome.value is not None and other is not None and other.value is not None:
            comparisons.append(compare(f"{name}@cpu-vs-gpu", other.value, outcome.value, 2 * allowed[name], max_finite))
    conformance.record(adapter, gpu_case, "cross_device", comparisons, {"compared_with": "cpu"}, data_arrays)
