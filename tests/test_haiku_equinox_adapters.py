"""The Haiku and Equinox adapters: ordinary data, state loading, snippets, and what the
suite's probes cannot see.

Each engine and variant runs ``examples/ordinary.json`` through ``check_case``: every
quantity passes, or its discrepancy is one the ledger explains for that engine.  Equinox's
documented behaviours are declared conventions, so none is left: ``mode="ema"`` normalizes
with its updated running statistics (``normalization="running"``), a fresh one copies its
first batch (``warmup="copy_first_batch"``, ``equinox:fresh``), and ``equinox:batch`` debiases
hidden averages that start at the loaded statistics (``debias_start="state"``).  The loaded state reads back as the case's statistics and has
the structure the framework itself creates.  The snippets reproduce ``run``.  Direct checks
pin the behaviours the one-step convention probes cannot tell apart: Haiku's zero-debiased
average (which forgets its starting value, whatever the decay, after one step), Equinox's
warm-up, and the debiasing factor of a long-trained Equinox layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adapters.base import Hyper, LayerSpec
from conformance.judging.check import check_case
from conformance.judging.conditioning import at_worst, conditioning
from conformance.judging.ledger import default_ledger
from datamodel.case import Case, Generator
from datamodel.casefile import load_case
from datamodel.records import result_record

ROOT = Path(__file__).parent.parent
REGISTRATION = "haiku=adapters.haiku:HaikuAdapter,equinox=adapters.equinox:EquinoxAdapter"
SPECS = ("haiku", "equinox", "equinox:fresh", "equinox:batch", "equinox:batch_trained")
#: What ordinary.json may show on each spec, beyond passes: the ledger's known behaviour (none: the
#: blend, the warm-up and the debiased state are declared conventions).
EXPECTED_FINDINGS = {spec: set() for spec in SPECS}
#: A snippet's numbers against the adapter's: a few units in the last place of the case's dtype.
TOLERANCE = {"float64": 1e-12, "float32": 1e-5, "float16": 4e-3, "bfloat16": 2e-2}


def _adapter(spec: str):
    name, _, variant = spec.partition(":")
    if name == "haiku":
        pytest.importorskip("haiku")
        from adapters.haiku import HaikuAdapter

        return HaikuAdapter(variant)
    pytest.importorskip("equinox")
    from adapters.equinox import EquinoxAdapter

    return EquinoxAdapter(variant)


@pytest.mark.parametrize("spec", SPECS)
def test_ordinary_example_passes_or_shows_only_the_ledgers_findings(spec):
    adapter = _adapter(spec)
    case = load_case(ROOT / "examples" / "ordinary.json")
    data = case.materialize()
    result = check_case(adapter, case, data)
    hard = conditioning(case, data)
    ledger = default_ledger()
    found = set()
    for comparison in result.comparisons:
        if comparison.verdict == "pass":
            continue
        record = result_record(run_id=None, prop="ordinary", framework=adapter.label, framework_version=adapter.version(),
                               case=case, comparison=comparison,
                               conditioning=at_worst(hard, case, data, comparison.quantity, comparison.worst_index))  # fmt: skip
        entry = ledger.explain(record)
        assert entry is not None, f"{spec}: unexplained {comparison.verdict} in {comparison.quantity}: {comparison.message}"
        found.add(comparison.quantity)
    assert found == EXPECTED_FINDINGS[spec]


def _small_case(axis: int = -1, shape=(6, 4, 3), **fields) -> Case:
    channels = shape[axis]
    rng = np.random.default_rng(1)
    base = {"eps": 1e-3, "decay": 0.8, "training_steps": 2, "gamma": rng.uniform(0.5, 2, channels),
            "beta": rng.uniform(-1, 1, channels), "running_mean": rng.uniform(-1, 1, channels),
            "running_var": rng.uniform(0.5, 2, channels)}  # fmt: skip
    base.update(fields)
    return Case(shape=shape, channel_axis=axis, dtype="float32", x=Generator(seed=2, loc=0.5, scale=1.5), **base)


@pytest.mark.parametrize(("axis", "shape"), [(-1, (6, 4, 3)), (1, (6, 3, 4)), (2, (2, 4, 3, 5))])
def test_haiku_state_round_trips_and_has_haikus_own_structure(axis, shape):
    """The loaded state reads back as the case's statistics and matches hk.transform_with_state's init."""
    adapter = _adapter("haiku")
    hk = pytest.importorskip("haiku")
    import jax
    import jax.numpy as jnp

    from adapters.haiku import MODULE, layout_arguments

    case = _small_case(axis, shape)
    data, spec = case.materialize(), LayerSpec.of(case)
    params, state = adapter.load_state(adapter.build(spec), data, spec)
    mean, var = adapter.running_statistics(None, (params, state))
    np.testing.assert_array_equal(adapter.to_numpy(mean), np.float32(data.running_mean))
    np.testing.assert_array_equal(adapter.to_numpy(var), np.float32(data.running_var))

    def forward(x):
        return hk.BatchNorm(True, True, 0.9, name=MODULE, **layout_arguments(len(shape), spec.axis))(x, is_training=True)

    own_params, own_state = hk.transform_with_state(forward).init(None, jnp.zeros(shape, jnp.float32))

    def structure(tree):
        return jax.tree_util.tree_map(lambda leaf: (leaf.shape, str(leaf.dtype)), tree)

    assert structure(params) == structure(own_params)
    assert structure(state) == structure(own_state)
    # Haiku's own fresh state: counter 0 and hidden 0, which the adapter keeps (only "average" is the case's).
    for ema in own_state.values():
        assert int(ema["counter"]) == 0
        assert not np.any(np.asarray(ema["hidden"]))


@pytest.mark.parametrize("spec", ["equinox", "equinox:fresh", "equinox:batch", "equinox:batch_trained"])
def test_equinox_state_round_trips_and_fits_equinoxs_state(spec):
    adapter = _adapter(spec)
    eqx = pytest.importorskip("equinox")
    import jax

    case = _small_case(1, (6, 3, 4))
    data, spec_ = case.materialize(), LayerSpec.of(case)
    arrays = adapter.load_state(adapter.build(spec_), data, spec_)
    mean, var = adapter.running_statistics(None, arrays)
    np.testing.assert_array_equal(adapter.to_numpy(mean), np.float32(data.running_mean))
    np.testing.assert_array_equal(adapter.to_numpy(var), np.float32(data.running_var))
    np.testing.assert_array_equal(adapter.to_numpy(arrays["weight"]), np.float32(data.gamma))
    # The loaded flag or counter and statistics have the shapes and dtypes of Equinox's own state.
    _, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(3, "batch", dtype="float32", mode=adapter.mode)
    own = jax.tree_util.tree_leaves(state)
    loaded = [arrays["index"], *arrays["statistics"]]
    assert [(a.shape, a.dtype) for a in loaded] == [(a.shape, a.dtype) for a in own]
    # After one training step the running statistics still come back through running_statistics.
    layer_and_functions = adapter.build(spec_)
    x = adapter.tensor(data.batches[0], spec_)
    _, after = adapter.forward(layer_and_functions, arrays, x, training=True, hyper=Hyper(eps=1e-3, momentum=0.8))
    assert adapter.to_numpy(adapter.running_statistics(None, after)[0]).shape == (3,)


def _driver_and_snippets(spec: str, tmp_path: Path) -> None:
    """Run ``adapter.run`` and ``adapter.snippet`` in a driver process, then the snippets in a
    fresh interpreter where bn-conformance cannot be imported; their numbers must agree."""
    driver = f"""
import json
from adapters.registry import get_adapter
from datamodel.case import Case, Generator

adapter = get_adapter({spec!r})
axis = adapter.conventions.default_channel_axis
shape = (3, 2, 4) if axis == 1 else (3, 4, 2)
cases = [
    Case(shape=shape, channel_axis=axis, dtype="float32", x=Generator(seed=3, loc=1.0, scale=2.0), eps=1e-3, decay=0.8,
         training_steps=2, gamma=[0.5, 2.0], beta=[0.1, -0.3], running_mean=[0.2, -1.0], running_var=[1.5, 0.5]),
    Case(shape=shape, channel_axis=axis, dtype="float64", x=Generator(seed=4), affine=False, training_steps=2),
    Case(shape=(2, 3, 2, 4) if axis == 1 else (2, 4, 3, 2), channel_axis=1 if axis == 1 else 2, dtype="float64",
         x=Generator(seed=5, loc=-1.0, scale=0.5), eps=1e-4, decay=0.95, training_steps=3, gamma=[1.5, -0.5, 1.0],
         beta=[0.0, 0.2, -0.2], running_mean=[0.1, 0.0, -0.1], running_var=[2.0, 1.0, 0.5]),
]
result = []
for case in cases:
    outcomes = adapter.run(case)
    result.append({{"dtype": case.dtype, "snippet": adapter.snippet(case),
                   "outcomes": {{k: (o.value.tolist() if o.value is not None else o.error) for k, o in outcomes.items()}}}})
print(json.dumps(result))
"""
    environment = {**os.environ, "BNCONF_ADAPTERS": REGISTRATION}
    completed = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, env=environment, cwd=ROOT,
                               timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    cases = json.loads(completed.stdout.strip().splitlines()[-1])
    guard = "import sys\nfor _name in ('adapters', 'conformance', 'datamodel', 'reference', 'reports'):\n    sys.modules[_name] = None\n"
    snippets = guard + "\n".join(case["snippet"] for case in cases)
    completed = subprocess.run([sys.executable, "-c", snippets], capture_output=True, text=True, env=dict(os.environ),
                               cwd=tmp_path, timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    printed = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")][-len(cases) :]
    assert len(printed) == len(cases)
    for case, observed in zip(cases, printed, strict=True):
        assert set(observed) == set(case["outcomes"]), f"{spec} {case['dtype']}: quantities differ"
        tolerance = TOLERANCE[case["dtype"]]
        for name, value in case["outcomes"].items():
            assert not isinstance(value, str), f"{spec}: {name} failed in the adapter: {value}"
            np.testing.assert_allclose(np.asarray(observed[name], dtype=np.float64), np.asarray(value, dtype=np.float64),
                                       rtol=tolerance, atol=tolerance, err_msg=f"{spec} {case['dtype']} {name}: snippet vs adapter")  # fmt: skip


@pytest.mark.parametrize("spec", SPECS)
def test_snippet_reproduces_the_adapters_outcome(spec, tmp_path):
    _adapter(spec)  # skips when the framework is missing
    _driver_and_snippets(spec, tmp_path)


# -- what the one-step convention probes cannot see ---------------------------------------------


def _run_training(adapter, decay: float, batches: list[list[float]], running_mean: float = 3.0):
    """Running means after each step of a one-channel case whose batches are given."""
    x = np.array(batches, dtype=np.float64)[..., None]  # (steps, N, 1)
    case = Case(shape=x.shape[1:], channel_axis=1, dtype="float64", x=x, eps=1e-5, decay=decay, affine=False,
                training_steps=len(batches), running_mean=[running_mean], running_var=[1.0])  # fmt: skip
    return adapter.run(case, phases=("training",))["running_mean"].value[:, 0]


def test_haiku_average_is_zero_debiased_and_forgets_its_start():
    """Step 1 gives the batch mean whatever the decay and start; step 2 gives (d·b₁ + b₂)/(1 + d)."""
    adapter = _adapter("haiku")
    means = _run_training(adapter, 0.8, [[1.0, 3.0], [5.0, 7.0]])  # b₁ = 2, b₂ = 6
    assert means[0] == pytest.approx(2.0, abs=1e-14)
    assert means[1] == pytest.approx((0.8 * 2.0 + 6.0) / 1.8, abs=1e-14)  # decay_rate weights the old statistic


def test_equinox_ema_mode_warm_up_copies_the_first_batch():
    """A fresh mode="ema" layer (first-time flag set) takes the first batch's statistics whatever the momentum."""
    eqx = pytest.importorskip("equinox")
    _adapter("equinox")
    import jax
    import jax.numpy as jnp

    layer, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(1, "batch", momentum=0.9, dtype=jnp.float64, mode="ema")
    x = jnp.array([[1.0], [3.0], [5.0], [7.0]])
    batched = jax.vmap(layer, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
    _, state = batched(x, state)
    mean, var = state.get(layer.ema_state_index)
    assert float(mean[0]) == 4.0
    assert float(var[0]) == 5.0  # biased
    _, state = batched(x + 4.0, state)
    assert float(state.get(layer.ema_state_index)[0][0]) == pytest.approx(0.9 * 4.0 + 0.1 * 8.0)


def test_equinox_fresh_variant_loads_the_first_time_flag_and_copies_its_first_batch():
    """``equinox:fresh`` holds Equinox's own flag (True): step 1 takes the batch's statistics whatever
    the decay and the loaded 3.0, step 2 blends; ``equinox`` (flag False) blends from step 1."""
    fresh, trained = _adapter("equinox:fresh"), _adapter("equinox")
    assert fresh.conventions.reference.warmup == "copy_first_batch"
    assert trained.conventions.reference.warmup == "none"
    assert fresh.conventions.reference.normalization == trained.conventions.reference.normalization == "running"
    means = _run_training(fresh, 0.8, [[1.0, 3.0], [5.0, 7.0]])  # b₁ = 2, b₂ = 6
    assert means[0] == 2.0
    assert means[1] == pytest.approx(0.8 * 2.0 + 0.2 * 6.0, abs=1e-14)
    assert _run_training(trained, 0.8, [[1.0, 3.0]])[0] == pytest.approx(0.8 * 3.0 + 0.2 * 2.0, abs=1e-14)


def test_equinox_batch_mode_fresh_layer_inflates_its_running_variance():
    """make_with_state's hidden variance is 1, and the debiasing divides it in: σ² + m/(1 − m) after one step."""
    adapter = _adapter("equinox:batch")
    x = np.array([[1.0], [3.0], [5.0], [7.0]])
    case = Case(shape=x.shape, channel_axis=1, dtype="float64", x=x, eps=1e-5, decay=0.9, affine=False)  # defaults 0, 1
    outcome = adapter.run(case, phases=("training",))
    assert outcome["running_mean"].value[0, 0] == pytest.approx(4.0, abs=1e-12)
    assert outcome["running_var"].value[0, 0] == pytest.approx(5.0 + 0.9 / 0.1, abs=1e-12)


def test_equinox_long_trained_layer_has_a_debiasing_factor_of_one():
    """With counter 2⁶², 1 − m^counter is exactly 1 even for the largest float64 below 1."""
    pytest.importorskip("equinox")
    import jax.numpy as jnp

    from adapters.equinox import TRAINED_COUNTER

    counter = jnp.array(TRAINED_COUNTER)
    for momentum in (0.0, 0.5, 0.99, 1 - 2**-53):
        assert float(1 - momentum**counter) == 1.0
    adapter = _adapter("equinox:batch_trained")
    means = _run_training(adapter, 0.8, [[1.0, 3.0], [5.0, 7.0]])
    assert means[0] == pytest.approx(0.8 * 3.0 + 0.2 * 2.0, abs=1e-14)  # a plain EMA from the loaded 3.0


def test_declared_defaults_are_the_frameworks():
    """ε defaults read from the frameworks; Equinox's momentum 0.99; Haiku has no decay_rate default."""
    hk = pytest.importorskip("haiku")
    eqx = pytest.importorskip("equinox")
    import inspect

    parameters = inspect.signature(hk.BatchNorm.__init__).parameters
    assert parameters["decay_rate"].default is inspect.Parameter.empty
    assert parameters["eps"].default == _adapter("haiku").conventions.eps_default == 1e-5
    layer = eqx.nn.BatchNorm(3, "batch", mode="batch")
    declared = _adapter("equinox:batch").conventions
    assert (layer.eps, layer.momentum) == (declared.eps_default, declared.momentum_default) == (1e-5, 0.99)
    with pytest.warns(UserWarning, match="defaults to 'ema'"):
        assert eqx.nn.BatchNorm(3, "batch").mode == "ema"  # mode left unset: the `equinox` variant's mode


@pytest.mark.parametrize(("spec", "shape", "axis", "non_trainable"), [
    ("haiku", (2, 8, 8, 3), -1, 4 * 3 + 2), ("haiku", (2, 3, 5), 1, 4 * 3 + 2),
    ("equinox", (2, 3, 8, 8), 1, 2 * 3 + 1), ("equinox:batch", (2, 3), 1, 2 * 3 + 1),
])  # fmt: skip
def test_inventory_counts_as_the_frameworks_report_them(spec, shape, axis, non_trainable):
    adapter = _adapter(spec)
    inventory = adapter.inventory(shape, axis)
    assert inventory.trainable_count == 2 * 3
    assert inventory.non_trainable_count == non_trainable
    assert sum(inventory.reported.values()) == inventory.total_count == 2 * 3 + non_trainable
    roles = [v.role for v in inventory.variables]
    assert roles.count("running_mean") == roles.count("running_variance") == 1
    per_channel = {v.shape for v in inventory.variables if v.role in ("scale", "offset", "running_mean", "running_variance")}
    expected = tuple(3 if a == axis % len(shape) else 1 for a in range(len(shape))) if spec == "haiku" else (3,)
    assert per_channel == {expected}
