"""The ONNX adapters: ONNX Runtime and onnx's reference evaluator on one BatchNormalization model.

Each engine runs ``examples/ordinary.json`` through ``check_case`` and passes every quantity
it observes; the gradients come back ``unsupported`` with the reason.  The snippets reproduce
``run`` in an interpreter where bn-conformance cannot be imported.  The suite itself
(``bnconf run --profile ci``) confirms the declared conventions, with one probe, the
momentum direction, that float64 cannot confirm: ONNX's float attributes are 32-bit, which
the ledger explains and which a direct float32 check settles here.  The dtypes each engine
declares are those it runs, and a dtype it rejects is declared unsupported, not an error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the ONNX adapters need onnx")
pytest.importorskip("onnxruntime", reason="the onnxruntime adapter needs onnxruntime")

from adapters.base import LayerSpec
from adapters.onnx import OnnxReferenceAdapter, OnnxRuntimeAdapter, build_model
from conformance.judging.check import check_case
from datamodel.case import Case, Generator
from datamodel.casefile import load_case

ROOT = Path(__file__).parent.parent
REGISTRATION = "onnxruntime=adapters.onnx:OnnxRuntimeAdapter,onnx-reference=adapters.onnx:OnnxReferenceAdapter"
ENGINES = {"onnxruntime": OnnxRuntimeAdapter, "onnx-reference": OnnxReferenceAdapter}
GRADIENTS = ("dx", "dgamma", "dbeta")
#: A snippet's numbers against the adapter's: a few units in the last place of the case's dtype.
TOLERANCE = {"float64": 1e-12, "float32": 1e-5, "float16": 4e-3, "bfloat16": 2e-2}


@pytest.fixture(params=sorted(ENGINES))
def adapter(request):
    return ENGINES[request.param]()


def test_ordinary_example_passes_and_gradients_are_unsupported(adapter):
    result = check_case(adapter, load_case(ROOT / "examples" / "ordinary.json"))
    verdicts = {c.quantity: c.verdict for c in result.comparisons}
    assert verdicts == {"y_eval": "pass", "y_train": "pass", "running_mean": "pass", "running_var": "pass",
                        "y_eval_after": "pass", **dict.fromkeys(GRADIENTS, "unsupported")}  # fmt: skip
    for comparison in result.comparisons:
        if comparison.quantity in GRADIENTS:
            assert "gradients phase is not supported" in comparison.message


def test_gradients_come_back_unsupported_with_the_reason_not_as_errors(adapter):
    case = Case(shape=(4, 3), channel_axis=1, dtype="float32", x=Generator(seed=1))
    outcomes = adapter.run(case)
    for name in GRADIENTS:
        assert outcomes[name].value is None
        assert outcomes[name].error is None
        assert "it runs: inference, training" in outcomes[name].unsupported
    assert all(outcomes[name].value is not None for name in ("y_eval", "y_train", "running_mean", "running_var"))


# -- the snippet --------------------------------------------------------------------------------

GUARD = "import sys\nfor _name in ('adapters', 'conformance', 'datamodel', 'reference', 'reports'):\n    sys.modules[_name] = None\n"


def _snippet_cases(adapter) -> list[Case]:
    cases = [
        Case(shape=(3, 2, 4), channel_axis=1, dtype="float32", x=Generator(seed=3, loc=1.0, scale=2.0), eps=1e-3, decay=0.8,
             training_steps=2, gamma=[0.5, 2.0], beta=[0.1, -0.3], running_mean=[0.2, -1.0], running_var=[1.5, 0.5]),
        Case(shape=(3, 2, 4), channel_axis=1, dtype="float64", x=Generator(seed=4), affine=False, training_steps=2),  # defaults
        Case(shape=(2, 3, 2, 4), channel_axis=1, dtype="float16", x=Generator(seed=5, loc=-1.0, scale=0.5), eps=1e-4,
             decay=0.95, training_steps=3, gamma=[1.5, -0.5, 1.0], beta=[0.0, 0.2, -0.2], running_mean=[0.1, 0.0, -0.1],
             running_var=[2.0, 1.0, 0.5]),
    ]  # fmt: skip
    if "bfloat16" in adapter.capabilities.dtypes:
        cases.append(Case(shape=(5, 2, 3, 2, 2), channel_axis=1, dtype="bfloat16", x=Generator(seed=6), eps=1e-2, decay=0.5))
    return cases


def test_snippet_reproduces_the_adapters_outcome(adapter, tmp_path):
    cases = _snippet_cases(adapter)
    snippets = GUARD + "\n".join(adapter.snippet(case) for case in cases)
    completed = subprocess.run([sys.executable, "-c", snippets], capture_output=True, text=True, env=dict(os.environ),
                               cwd=tmp_path, timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    printed = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == len(cases)
    for case, observed in zip(cases, printed, strict=True):
        outcomes = {name: o for name, o in adapter.run(case).items() if o.unsupported is None}
        assert set(observed) == set(outcomes), f"{adapter.label} {case.dtype}: quantities differ"
        tolerance = TOLERANCE[case.dtype]
        for name, outcome in outcomes.items():
            assert outcome.error is None, f"{adapter.label}: {name} failed in the adapter: {outcome.error}"
            np.testing.assert_allclose(np.asarray(observed[name], dtype=np.float64), outcome.value, rtol=tolerance,
                                       atol=tolerance, err_msg=f"{adapter.label} {case.dtype} {name}: snippet vs adapter")  # fmt: skip


# -- conventions ----------------------------------------------------------------------------------


def test_the_suite_confirms_the_declared_conventions(tmp_path):
    """``bnconf run --profile ci`` on both engines: nothing unexpected, every ledger entry reproduces,
    and every convention probe agrees with the declaration except the float64 momentum direction,
    which the float32-attributes entry explains (nearest candidate: the declared one)."""
    environment = {**os.environ, "BNCONF_ADAPTERS": REGISTRATION}
    completed = subprocess.run(
        [sys.executable, "-m", "conformance.orchestration.cli", "run", "--profile", "ci", "--frameworks",
         "onnxruntime,onnx-reference", "--out", str(tmp_path)],
        capture_output=True, text=True, env=environment, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["totals"]["unexpected"] == 0
    assert not summary["ledger"]["not_reproduced"]
    probes = {}
    for name in ENGINES:
        for line in (tmp_path / "records" / f"{name}.jsonl").read_text().splitlines():
            record = json.loads(line)
            if record["kind"] == "probe":
                probes[name, record["quantity"]] = record
    for name in ENGINES:
        for convention in ("running_variance", "eps_placement", "eps_default", "default_decay"):
            assert probes[name, convention]["verdict"] == "pass", probes[name, convention]["message"]
        direction = probes[name, "momentum_form"]
        assert direction["known"] == f"{name}-float64-float32-attributes"
        evidence = direction["evidence"]
        assert abs(evidence["observed_running_mean"] - evidence["predicted[old_weight]"]) < 1e-7  # float32(0.8), not 0.8
        assert abs(evidence["observed_running_mean"] - evidence["predicted[new_weight]"]) > 1


def test_momentum_weights_the_old_statistic_and_the_running_variance_is_biased(adapter):
    """The direction probe's question in float32, where the attributes are exact: momentum 0.8
    keeps 0.8 of the old statistic, and the running variance is fed σ², not N/(N − 1)·σ²."""
    x = np.array([[1.0], [3.0], [5.0], [7.0]])  # mean 4, biased variance 5
    case = Case(shape=x.shape, channel_axis=1, dtype="float32", x=x, eps=1e-5, decay=0.8, running_mean=[10.0],
                running_var=[2.0])  # fmt: skip
    outcomes = adapter.run(case, phases=("training",))
    assert outcomes["running_mean"].value[0, 0] == pytest.approx(0.8 * 10 + 0.2 * 4, rel=1e-6)
    assert outcomes["running_var"].value[0, 0] == pytest.approx(0.8 * 2 + 0.2 * 5, rel=1e-6)


def test_float64_differences_are_the_float32_attributes_and_nothing_else(adapter):
    """The ledger's float64 entry: the same case passes once ε and the decay are float32 numbers."""
    case = load_case(ROOT / "conformance" / "data" / "ledger" / "cases" / "onnx-float64-float32-attributes.json")
    as_given = check_case(adapter, case, phases=("inference", "training")).comparisons
    assert {c.quantity for c in as_given if c.verdict == "discrepancy"} == {"y_eval", "y_train", "running_mean",
                                                                           "running_var", "y_eval_after"}  # fmt: skip
    rounded = case.with_(eps=float(np.float32(case.eps)), decay=float(np.float32(case.decay)))
    assert all(c.verdict == "pass" for c in check_case(adapter, rounded, phases=("inference", "training")).comparisons)


def test_the_reference_evaluator_rounds_the_new_batch_weight_to_float32_too():
    """With a float32-exact momentum below 0.5, onnx.reference's 1 − momentum (a numpy.float32
    under NEP 50) is rounded again; ONNX Runtime's is exact.  Part of the float64 ledger entry."""
    decay = float(np.float32(0.0427))
    case = Case(shape=(16, 2), channel_axis=1, dtype="float64", x=Generator(seed=3, loc=(2.0, -1.0)),
                eps=float(np.float32(1e-3)), decay=decay, running_mean=[0.5, 0.25], running_var=[1.0, 2.0])  # fmt: skip
    mean = case.materialize().batches[0].mean(axis=0)
    exact = decay * np.array([0.5, 0.25]) + (1 - decay) * mean
    float32_weight = decay * np.array([0.5, 0.25]) + float(np.float32(1) - np.float32(decay)) * mean
    assert np.abs(exact - float32_weight).min() > 1e-9  # the two differ far beyond float64 rounding
    onnxruntime = OnnxRuntimeAdapter().run(case, phases=("training",))["running_mean"].value[0]
    reference = OnnxReferenceAdapter().run(case, phases=("training",))["running_mean"].value[0]
    np.testing.assert_allclose(onnxruntime, exact, rtol=1e-14, atol=0)
    np.testing.assert_allclose(reference, float32_weight, rtol=1e-14, atol=0)


def test_unset_eps_and_momentum_leave_the_attributes_out():
    """So the runtime's own default runs, and the probes measure it."""
    spec = LayerSpec(3, 1, 2, "float32", True, "cpu")
    assert {a.name for a in build_model(spec, training=True).graph.node[0].attribute} == {"training_mode"}
    assert {a.name for a in build_model(spec, training=False, eps=1e-3).graph.node[0].attribute} == {"epsilon"}
    for engine in ENGINES.values():
        declared = engine().conventions
        assert (declared.eps_default, declared.momentum_default) == (1e-5, 0.9)  # the schema's, before float32 rounding


# -- dtypes and inventory -------------------------------------------------------------------------


def test_onnxruntime_has_no_bfloat16_kernel_so_it_is_declared_unsupported():
    import onnxruntime

    adapter = OnnxRuntimeAdapter()
    model = build_model(LayerSpec(2, 1, 2, "bfloat16", True, "cpu"), training=False)
    with pytest.raises(Exception, match="NOT_IMPLEMENTED"):
        onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    case = Case(shape=(4, 2), channel_axis=1, dtype="bfloat16", x=Generator())
    assert "dtype bfloat16 is not supported" in adapter.unsupported_reason(case)
    assert OnnxReferenceAdapter().unsupported_reason(case) is None


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "bfloat16"])
def test_every_declared_dtype_runs_in_that_dtype(adapter, dtype):
    case = Case(shape=(4, 2, 3), channel_axis=1, dtype=dtype, x=Generator(seed=2), training_steps=2)
    if adapter.unsupported_reason(case) is not None:
        pytest.skip(adapter.unsupported_reason(case))
    outcomes = adapter.run(case, phases=("inference", "training"))
    assert all(o.error is None for o in outcomes.values()), {k: o.error for k, o in outcomes.items()}


def test_channels_other_than_axis_one_are_unsupported(adapter):
    case = Case(shape=(4, 3, 2), channel_axis=-1, dtype="float32", x=Generator())
    assert "only axis 1" in adapter.unsupported_reason(case)


@pytest.mark.parametrize("shape", [(4, 6), (2, 6, 4, 3), (2, 6, 3, 2, 2)])
def test_inventory_lists_the_four_inputs_counted_as_initializers(adapter, shape):
    channels = shape[1]
    inventory = adapter.inventory(shape, 1)
    assert [(v.name, v.role, v.shape) for v in inventory.variables] == [
        ("scale", "scale", (channels,)), ("B", "offset", (channels,)),
        ("input_mean", "running_mean", (channels,)), ("input_var", "running_variance", (channels,)),
    ]  # fmt: skip
    assert (inventory.trainable_count, inventory.non_trainable_count, inventory.total_count) == (2 * channels, 2 * channels, 4 * channels)
    assert 4 * channels in inventory.reported.values()


def test_importing_the_adapters_does_not_import_onnx():
    probe = "import adapters.onnx, sys, json\nprint(json.dumps([m for m in ('onnx', 'onnxruntime') if m in sys.modules]))"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert json.loads(output.strip().splitlines()[-1]) == []
