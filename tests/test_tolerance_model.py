"""The tolerance model, tested head-on: correct emulations pass it, wrong ones fail it.

``tests/emulations.py`` computes batch norm in NumPy the ways frameworks do (summation
orders, Welford, fused and folded outputs, flush-to-zero), in float32 and in float16 with
float32 statistics; each must stay within ``allowed_errors`` on every data class of
``tests/tolerance_cases.py``.  Three wrong ones must exceed it where they are wrong.  Each
test prints one line: the largest ratio error/allowed a correct emulation reached (its
headroom: 1.0 is the bound), or the smallest worst ratio a wrong one reached (how clearly it
fails).  Scaling by powers of two, permuting channels and moving the channel axis must leave
verdicts and ratios alone.  Examples are derandomized: the figures are reproducible.
"""

from __future__ import annotations

import numpy as np
import pytest
from emulations import CORRECT, EPS_OUTSIDE, FLUSH_HALF_STORAGE, HALF_ACCUMULATION, ONE_PASS, Emulation
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st
from tolerance_cases import (
    CLASSES,
    VARIANCE_NEAR_EPS,
    Run,
    channel_axis_moved,
    channels_permuted,
    judge,
    reference_run,
    runs,
    scaled,
    worst,
)

from conformance.judging.compare import DISCREPANCY, PASS
from conformance.judging.tolerance import SAFETY, ToleranceInputs, allowed_errors
from datamodel.case import CaseData
from reference import Conventions, round_to


def _settings(examples: int):
    """Explicit settings: reproducible whatever hypothesis profile is loaded."""
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


def _report(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n[tolerance model] {line}")


# -- correct emulations stay within the bound ---------------------------------------------------
FTZ = next(e for e in CORRECT if e.flush)
#: (emulation, dtype, classes); flush-to-zero on near-underflow float32 data is a finding (below).
CORRECT_CASES = [
    pytest.param(e, dtype, CLASSES if not (e.flush and dtype == "float32") else tuple(c for c in CLASSES if c != "near_underflow"),
                 id=f"{e.name}-{dtype}")
    for e in CORRECT for dtype in ("float32", "float16")
]  # fmt: skip
EXAMPLES_PER_CLASS = 25
#: Key of the worst ratio over the quantities that depend on the batch statistics (all but y_eval).
COMPUTED = "computed"


def _headroom(emulation: Emulation, dtype: str, classes: tuple[str, ...]) -> dict[str, tuple[float, str, str]]:
    """Per class: the worst ratio over every quantity, the quantity, and the run that reached it."""
    seen: dict[str, tuple[float, str, str]] = {}
    for data_class in classes:

        @_settings(EXAMPLES_PER_CLASS)
        @given(runs(dtype=dtype, classes=(data_class,)))
        def check(run: Run) -> None:
            comparisons = judge(run, emulation.run(run.inputs, run.seed))
            ratio, quantity = worst(comparisons)
            target(min(ratio, 1e6), label="worst ratio")
            if ratio > seen.get(run.data_class, (-1.0,))[0]:
                seen[run.data_class] = (ratio, quantity, run.describe())
            # y_eval uses the given running statistics only: the same for every summation and variance.
            computed, name = worst({q: c for q, c in comparisons.items() if q != "y_eval"})
            if computed > seen.get(COMPUTED, (-1.0,))[0]:
                seen[COMPUTED] = (computed, name, run.describe())
            failed = {q: c.message for q, c in comparisons.items() if c.verdict != PASS}
            assert not failed, f"{emulation.name} exceeds the bound on {run.describe()}: {failed}"

        check()
    return seen


@pytest.mark.parametrize(("emulation", "dtype", "classes"), CORRECT_CASES)
def test_correct_emulation_stays_within_the_bound(emulation, dtype, classes, capsys):
    seen = _headroom(emulation, dtype, classes)
    ratio, quantity, where = max(seen[c] for c in classes)
    by_class = ", ".join(f"{c} {seen[c][0]:.3f}" for c in classes)
    computed = seen[COMPUTED]
    _report(capsys, f"headroom {emulation.name}/{dtype}: worst ratio {ratio:.3f} ({quantity}; {where}) | {by_class} "
                    f"| without y_eval {computed[0]:.3f} ({computed[1]})")  # fmt: skip
    assert ratio <= 1.0


@pytest.mark.xfail(strict=True, reason=(
    "finding: flush-to-zero of x − μ (and denormals-are-zero on x) is amplified by 1/s, which the model does not "
    "cover: it allows η_sub/s for x − μ, not η/s; float32 x = [1.32328958e-38, 1.02020582e-38] (one channel), "
    "ε = 1e-4, no affine: y_train 1.32e-36 where 1.52e-37 is right, ratio 2.5 (32 with ε = 1e-8)"))  # fmt: skip
def test_flush_to_zero_on_near_underflow_float32_data(capsys):
    seen = _headroom(FTZ, "float32", ("near_underflow",))
    ratio, quantity, where = seen["near_underflow"]
    _report(capsys, f"headroom flush_to_zero/float32 near_underflow: {ratio:.3g} ({quantity}; {where})")
    assert ratio <= 1.0


def _flushed_running_mean_run() -> Run:
    """float16, one channel, batch mean 3·10⁻⁵ (a float16 subnormal), ε = 0.01, γ = 3, decay 0."""
    x = round_to(np.array([[2.0e-5], [4.0e-5]]), "float16")
    data = CaseData(batches=[x], gamma=np.array([3.0]), beta=np.array([0.0]), running_mean=np.array([0.0]),
                    running_var=np.array([1.0]), dy=round_to(np.array([[1.0], [-0.5]]), "float16"))  # fmt: skip
    inputs = ToleranceInputs(data=data, axis=1, eps=0.01, decay=0.0, dtype="float16", conventions=Conventions())
    return reference_run(inputs, "near_underflow")


@pytest.mark.xfail(strict=True, reason=(
    "finding: the model lets an output flush to zero in its own dtype (η_out), but a running mean flushed when "
    "stored in float16 feeds y_eval_after, whose bound propagates only η_sub for it: float16 data [2e-5, 4e-5], "
    "ε = 0.01, γ = 3, decay 0: y_eval_after errs by γ·3e-5/√ε = 9e-4, ratio 1.5"))  # fmt: skip
def test_flush_to_zero_of_a_stored_float16_running_mean(capsys):
    run = _flushed_running_mean_run()
    ratio, quantity = worst(judge(run, FLUSH_HALF_STORAGE.run(run.inputs)))
    _report(capsys, f"flush_to_zero_half_storage/float16 on {run.describe()}: ratio {ratio:.3g} ({quantity})")
    assert ratio <= 1.0


# -- wrong emulations exceed it where they are wrong --------------------------------------------
#: Where each is wrong.  One-pass at |μ|/σ ≥ 10^3.5 with N ≤ 256: at |μ|/σ = 10³ its error, about u·μ²,
#: is comparable to the bound (8·(N − 1)·u·|μ|σ through Δμ) and lucky roundings pass (ratio 0.60 at N = 16,
#: 0.57 at N = 875).  Float16 running sums with N ≥ 2048 and |μ|/σ ≥ 10 (the sum stagnates):
#: with fewer values float16's own u·(|x| + |μ|)/s allowance covers them.
WRONG_CASES = [
    pytest.param(ONE_PASS, runs(dtype="float32", classes=("offset",), log10_offset=(3.5, 4.5), eps_range=(-8.0, -6.0),
                                min_count=16, max_count=256), id="one_pass-offset_3e3-N256"),
    pytest.param(HALF_ACCUMULATION, runs(dtype="float16", classes=("offset",), min_count=2048, max_count=4096),
                 id="half_accumulation-offset-N2048"),
    pytest.param(EPS_OUTSIDE, runs(dtype="float32", classes=(VARIANCE_NEAR_EPS,), eps_range=(-8.0, -1.0)),
                 id="eps_outside-variance_near_eps"),
]  # fmt: skip


@pytest.mark.parametrize(("emulation", "strategy"), WRONG_CASES)
def test_wrong_emulation_exceeds_the_bound_where_it_is_wrong(emulation, strategy, capsys):
    worst_ratios: list[tuple[float, str, str]] = []

    @_settings(60)
    @given(strategy)
    def check(run: Run) -> None:
        comparisons = judge(run, emulation.run(run.inputs, run.seed))
        ratio, quantity = worst(comparisons)
        target(-min(ratio, 1e6), label="negated worst ratio")
        worst_ratios.append((ratio, quantity, run.describe()))
        assert any(c.verdict == DISCREPANCY for c in comparisons.values()), (
            f"{emulation.name} ({emulation.mistake}) passes on {run.describe()}: worst ratio {ratio:.3g}"
        )

    check()
    ratio, quantity, where = min(worst_ratios)
    _report(capsys, f"wrong {emulation.name} ({emulation.mistake}): smallest worst ratio {ratio:.3g} ({quantity}; {where})")
    assert ratio > 1.0


# -- invariances ---------------------------------------------------------------------------------
INVARIANCE_CLASSES = ("ordinary", "offset", "constant", "heavy_tails")
PAIRWISE = next(e for e in CORRECT if e.name == "pairwise")
INVARIANCE_CASES = [
    pytest.param(PAIRWISE, runs(dtype="float32", classes=INVARIANCE_CLASSES), id="pairwise"),
    pytest.param(ONE_PASS, runs(dtype="float32", classes=("offset",), log10_offset=(3.0, 4.0), eps_range=(-8.0, -6.0),
                                min_count=16), id="one_pass"),
]  # fmt: skip


def _verdicts_and_ratios(emulation: Emulation, run: Run) -> dict[str, tuple[str, float]]:
    return {q: (c.verdict, c.ratio) for q, c in judge(run, emulation.run(run.inputs, run.seed)).items()}


def _assert_same_judgement(before: dict, after: dict, what: str) -> None:
    assert {q: v for q, (v, _) in after.items()} == {q: v for q, (v, _) in before.items()}, what
    # abs=1e-6: a ratio of 1e-11 is one float64 rounding of the emulation's output against a
    # bound of float32 size; where that rounding lands can change with NumPy's SIMD summation
    # (array alignment), so ratios this small are equal only to that noise, far from any verdict.
    for quantity, (_, ratio) in before.items():
        assert after[quantity][1] == pytest.approx(ratio, rel=1e-6, abs=1e-6), f"{what}: {quantity}"


@pytest.mark.parametrize(("emulation", "strategy"), INVARIANCE_CASES)
def test_scaling_by_a_power_of_two_leaves_verdicts_and_ratios_alone(emulation, strategy):
    @_settings(30)
    @given(strategy, st.sampled_from([-8, -3, 2, 5]))
    def check(run: Run, power: int) -> None:
        before = _verdicts_and_ratios(emulation, run)
        after = _verdicts_and_ratios(emulation, scaled(run, power))
        _assert_same_judgement(before, after, f"x·2^{power} on {run.describe()}")

    check()


@pytest.mark.parametrize(("emulation", "strategy"), INVARIANCE_CASES)
def test_permuting_channels_leaves_verdicts_and_ratios_alone(emulation, strategy):
    @_settings(30)
    @given(strategy, st.randoms(use_true_random=False))
    def check(run: Run, random) -> None:
        channels = run.inputs.data.batches[0].shape[run.inputs.axis]
        order = np.array(random.sample(range(channels), channels))
        before = _verdicts_and_ratios(emulation, run)
        after = _verdicts_and_ratios(emulation, channels_permuted(run, order))
        _assert_same_judgement(before, after, f"channels {order.tolist()} on {run.describe()}")

    check()


@pytest.mark.parametrize(("emulation", "strategy"), INVARIANCE_CASES)
def test_moving_the_channel_axis_leaves_verdicts_and_ratios_alone(emulation, strategy):
    @_settings(30)
    @given(strategy, st.data())
    def check(run: Run, data) -> None:
        rank = run.inputs.data.batches[0].ndim
        axis = data.draw(st.integers(0, rank - 1), label="new_axis")
        before = _verdicts_and_ratios(emulation, run)
        after = _verdicts_and_ratios(emulation, channel_axis_moved(run, axis))
        _assert_same_judgement(before, after, f"channel axis {run.inputs.axis} → {axis} on {run.describe()}")

    check()


# -- the model's own shape -----------------------------------------------------------------------
def test_allowed_errors_scale_with_the_safety_factor():
    @_settings(20)
    @given(runs(dtype="float32"))
    def check(run: Run) -> None:
        unit = allowed_errors(run.inputs, run.expected, safety=1.0)
        default = allowed_errors(run.inputs, run.expected)
        assert unit.keys() == default.keys() == run.expected.values.keys()
        for name, value in default.items():
            np.testing.assert_allclose(value, SAFETY * unit[name], rtol=1e-15, err_msg=name)

    check()


def test_allowed_errors_are_positive_and_shaped_like_their_quantities():
    @_settings(20)
    @given(runs(dtype="float16"))
    def check(run: Run) -> None:
        inputs: ToleranceInputs = run.inputs
        for name, value in allowed_errors(inputs, run.expected).items():
            assert value.shape == run.expected.values[name].shape, name
            assert np.all(np.isfinite(value)), name
            assert np.all(value > 0), name

    check()
