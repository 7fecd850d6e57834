"""The real adapters: inventories, declared conventions, error outcomes, canonical form.

Agreement with the reference on ordinary data over every rank, layout and option is the
suite's ``conformance/suite/test_ordinary.py``, run by the same test command; here we pin
what the adapters report about themselves against the frameworks' documented facts.
"""

from __future__ import annotations

import numpy as np
import pytest
from fakes import CrashingAdapter, InferenceOnlyAdapter, NumpyAdapter

from adapters.base import Hyper
from adapters.registry import FrameworkUnavailableError, adapter_class, get_adapter
from conformance.judging.check import check_case
from datamodel.case import Case, Generator


def adapter_or_skip(spec: str):
    try:
        return get_adapter(spec)
    except FrameworkUnavailableError as error:
        pytest.skip(str(error))


# framework, input shape (batch included), channel axis, expected variables (name, role, trainable)
INVENTORIES = [
    ("torch", (2, 5), 1, [("weight", "scale", True), ("bias", "offset", True), ("running_mean", "running_mean", False),
                          ("running_var", "running_variance", False), ("num_batches_tracked", "counter", False)]),
    ("torch", (2, 5, 4, 3, 2), 1, None),
    ("keras", (2, 4, 4, 5), -1, [("gamma", "scale", True), ("beta", "offset", True), ("moving_mean", "running_mean", False),
                                 ("moving_variance", "running_variance", False)]),
    ("keras", (2, 5, 4, 4), 1, None),
    ("flax", (2, 7, 5), -1, [("batch_stats/mean", "running_mean", False), ("batch_stats/var", "running_variance", False),
                             ("params/scale", "scale", True), ("params/bias", "offset", True)]),
    ("flax", (2, 5, 3, 3), 1, None),
]  # fmt: skip


@pytest.mark.parametrize(("framework", "shape", "axis", "variables"), INVENTORIES)
def test_inventory(framework, shape, axis, variables):
    """Per-channel shapes along the channel axis; the framework's own totals."""
    adapter = adapter_or_skip(framework)
    channels = shape[axis]
    inventory = adapter.inventory(shape, axis)
    if variables is not None:
        assert [(v.name, v.role, v.trainable) for v in inventory.variables] == variables
    for variable in inventory.variables:
        assert variable.shape == (() if variable.role == "counter" else (channels,))
    assert inventory.trainable_count == 2 * channels
    counter = 1 if framework == "torch" else 0  # num_batches_tracked, a scalar buffer
    assert inventory.non_trainable_count == 2 * channels + counter
    assert inventory.total_count == 4 * channels + counter


def test_framework_reported_counts():
    """What each framework itself says: PyTorch's parameters() hold 2·C, Keras' count_params() 4·C."""
    torch_counts = adapter_or_skip("torch").inventory((2, 3, 8, 8), 1).reported
    assert torch_counts["sum(p.numel() for p in parameters())"] == 6
    assert torch_counts["sum(t.numel() for t in state_dict().values())"] == 13
    keras_counts = adapter_or_skip("keras").inventory((2, 8, 8, 3), -1).reported
    assert keras_counts["layer.count_params()"] == 12


@pytest.mark.parametrize(
    ("framework", "momentum_form", "momentum", "decay", "eps", "axis", "running_variance"),
    [
        ("torch", "new_weight", 0.1, 0.9, 1e-5, 1, "unbiased"),
        ("keras", "old_weight", 0.99, 0.99, 1e-3, -1, "biased"),
        ("keras-jax", "old_weight", 0.99, 0.99, 1e-3, -1, "biased"),
        ("keras-torch", "old_weight", 0.99, 0.99, 1e-3, -1, "biased"),
        ("flax", "old_weight", 0.99, 0.99, 1e-5, -1, "biased"),
    ],
)
def test_declared_conventions(framework, momentum_form, momentum, decay, eps, axis, running_variance):
    conventions = adapter_class(framework)("").conventions  # declared data: no framework import needed
    assert conventions.momentum_form == momentum_form
    assert conventions.momentum_default == momentum
    assert conventions.default_decay == pytest.approx(decay)
    assert conventions.eps_default == eps
    assert conventions.default_channel_axis == axis
    assert conventions.reference.running_variance == running_variance
    assert conventions.momentum_from_decay(conventions.decay_from_momentum(0.3)) == pytest.approx(0.3)


def test_torch_one_value_per_channel_is_an_error_outcome():
    """PyTorch refuses training statistics of one value; that is recorded, not raised."""
    adapter = adapter_or_skip("torch")
    case = Case(shape=(1, 3), channel_axis=1, dtype="float32", x=Generator(seed=1), eps=1e-5, decay=0.9)
    outcomes = adapter.run(case)
    assert outcomes["y_train"].error is not None
    assert "Expected more than 1 value per channel" in outcomes["y_train"].error
    assert outcomes["y_eval"].error is None  # inference mode still ran
    verdicts = {c.quantity: c.verdict for c in check_case(adapter, case).comparisons}
    assert verdicts["y_train"] == "error"
    assert verdicts["y_eval"] == "pass"


@pytest.mark.parametrize("framework", ["torch", "keras", "flax"])
def test_outputs_are_float64_in_canonical_layout(framework):
    adapter = adapter_or_skip(framework)
    axis = adapter.conventions.default_channel_axis
    shape = (4, 3, 5) if axis == 1 else (4, 5, 3)
    case = Case(shape=shape, channel_axis=axis, dtype="float16", x=Generator(seed=2), eps=1e-3, decay=0.9, training_steps=2)
    outcomes = adapter.run(case)
    assert outcomes["y_train"].value.shape == (2, *shape)
    assert outcomes["running_mean"].value.shape == (2, 3)
    assert outcomes["dx"].value.shape == shape
    assert outcomes["dgamma"].value.shape == (3,)
    assert all(o.value.dtype == np.float64 for o in outcomes.values())


def test_torch_no_running_stats_has_no_running_quantities():
    adapter = adapter_or_skip("torch:no_running_stats")
    case = Case(shape=(4, 3, 5), channel_axis=1, dtype="float32", x=Generator(seed=2), eps=1e-3, decay=0.9)
    assert "running_mean" not in adapter.run(case)
    assert all(c.verdict == "pass" for c in check_case(adapter, case).comparisons)


def test_each_compiled_torch_module_has_a_dynamo_cache_of_its_own():
    """Dynamo caches graphs on a code object: each module compiles its own, so what one adapter
    (the execution property's twin, say) compiled never decides the graphs another one runs."""
    from adapters.torch import _forward_of_its_own

    assert _forward_of_its_own().__code__ is not _forward_of_its_own().__code__
    compiled, other = adapter_or_skip("torch:compile"), adapter_or_skip("torch:compile")
    case = Case(shape=(4, 3, 2), channel_axis=1, dtype="float32", x=Generator(seed=3), eps=1e-3, decay=0.9)
    for adapter in (compiled, other):
        assert all(c.verdict == "pass" for c in check_case(adapter, case).comparisons)
    (first,), (second,) = compiled._compiled.values(), other._compiled.values()
    assert first._torchdynamo_orig_callable.__code__ is not second._torchdynamo_orig_callable.__code__


def test_unsupported_cases_name_the_reason():
    adapter = adapter_or_skip("torch")
    channels_last = Case(shape=(2, 4, 4, 3), channel_axis=-1, dtype="float32", x=Generator())
    assert "only axis 1" in adapter.unsupported_reason(channels_last)
    result = check_case(adapter_or_skip("keras"), Case(shape=(2, 3), channel_axis=1, dtype="float32", x=Generator(), decay="cumulative"))
    assert result.comparisons[0].verdict == "unsupported"
    assert "cumulative" in result.unsupported_reason


@pytest.mark.parametrize(("framework", "backend"), [("keras", "tensorflow"), ("keras-jax", "jax"), ("keras-torch", "torch")])
def test_each_keras_backend_declares_its_own_process(framework, backend):
    """Keras fixes its backend at first import: each backend is a framework with its own process."""
    assert adapter_class(framework).process_environment == {"KERAS_BACKEND": backend}


def test_framework_defaults_are_read_from_the_built_layer_not_the_declaration():
    """A case that leaves ε and the momentum unset runs with what the framework really holds."""
    adapter = NumpyAdapter("wrong_declared_defaults")  # declares 1e-3 and 0.3, really uses 1e-5 and 0.1
    case = Case(shape=(4, 3), channel_axis=1, dtype="float64", x=Generator(seed=1))
    _, _, hyper = adapter.configured(case, adapter.settings(case))
    assert hyper == Hyper(eps=1e-5, momentum=0.1)
    given = case.with_(eps=1e-2, decay=0.75)
    assert adapter.configured(given, adapter.settings(given))[2] == Hyper(eps=1e-2, momentum=0.25)


def test_layers_are_built_once_per_configuration():
    adapter = NumpyAdapter("")
    built = []
    adapter.build = lambda spec: built.append(spec) or spec  # type: ignore[method-assign]
    case = Case(shape=(4, 3, 2), channel_axis=1, dtype="float32", x=Generator(seed=1), eps=1e-3, decay=0.9)
    for eps in (1e-3, 1e-4):
        adapter.run(case.with_(eps=eps))
    adapter.run(case.with_(dtype="float64"))
    assert len(built) == 2


def test_a_phase_the_engine_does_not_run_is_unsupported_with_the_reason():
    """An inference-only engine: its training and gradient quantities are unsupported, not errors."""
    adapter = InferenceOnlyAdapter("")
    case = Case(shape=(4, 3, 2), channel_axis=1, dtype="float32", x=Generator(seed=1), eps=1e-3, decay=0.9)
    outcomes = adapter.run(case)
    assert outcomes["y_eval"].value is not None
    assert "training phase is not supported" in outcomes["y_train"].unsupported
    verdicts = {c.quantity: (c.verdict, c.message) for c in check_case(adapter, case).comparisons}
    assert verdicts["y_eval"][0] == "pass"
    assert {verdicts[q][0] for q in ("y_train", "running_mean", "dx", "dgamma")} == {"unsupported"}
    assert verdicts["dx"][1] == "the gradients phase is not supported by this engine (it runs: inference)"


def test_a_framework_error_in_one_phase_leaves_the_others():
    case = Case(shape=(4, 3), channel_axis=1, dtype="float32", x=Generator(seed=1), eps=1e-3, decay=0.9)
    outcomes = CrashingAdapter("").run(case)
    assert {outcomes[q].error is not None for q in ("y_train", "running_mean", "running_var", "y_eval_after")} == {True}
    assert outcomes["y_eval"].error is None
    assert outcomes["dx"].error is None


@pytest.fixture
def xla_compilations():
    """Counts the XLA programs JAX compiles while the test runs, by function name."""
    jax = pytest.importorskip("jax")
    from collections import Counter

    from jax._src import dispatch

    counted: Counter = Counter()

    def listener(event: str, seconds: float, fun_name: str = "", **_) -> None:
        if event == dispatch.BACKEND_COMPILE_EVENT:
            counted[fun_name] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield counted
    jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("framework", ["flax", "nnx", "haiku", "equinox"])
def test_a_jitted_jax_engine_compiles_each_phase_once_per_configuration(framework, dtype, xla_compilations):
    """The compile budget: one XLA program per phase (inference, training step, gradients) for a
    new input shape, however many training steps the case takes, and none for moving arrays
    in or out.  Flax keeps half-precision running statistics in float32, so statistics loaded in
    float16 once compiled the training step and inference twice."""
    adapter = adapter_or_skip(framework)
    axis = adapter.conventions.default_channel_axis
    shape = (7, 3, 5) if axis == 1 else (7, 5, 3)  # a shape no other test of this process compiles
    case = Case(shape=shape, channel_axis=axis, dtype=dtype, x=Generator(seed=4), eps=1e-3, decay=0.9, training_steps=3)
    adapter.run(case)  # builds the layer; a first build may run its initializers as small programs
    xla_compilations.clear()
    adapter.run(Case(shape=(9, *shape[1:]), channel_axis=axis, dtype=dtype, x=Generator(seed=5), eps=1e-2, decay=0.5,
                     training_steps=3))  # fmt: skip
    assert dict(xla_compilations) == {"jit(evaluate)": 1, "jit(train_step)": 1, "jit(gradients)": 1}
