"""The accuracy grade (``conformance.judging.accuracy``): observed error over a stable implementation's.

A stable implementation grades about 1; a one-pass variance on data whose mean dwarfs its
spread grades far above 10 while the tolerance bound still passes it (issue 11); the floor
keeps exact results finite; the grade reaches the result records and the report's
engine × data-class table.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from emulations import CORRECT
from fakes import NumpyAdapter
from hypothesis import HealthCheck, assume, given, settings
from tolerance_cases import Run, judge, reference_run, runs

from conformance.judging import check
from conformance.judging.accuracy import (
    FLOOR_ROUNDINGS,
    StableError,
    emulate_stable,
    graded,
    stable_errors,
)
from conformance.judging.check import check_case
from conformance.judging.compare import PASS, compare
from conformance.judging.ledger import Ledger
from conformance.judging.tolerance import ToleranceInputs
from conformance.plugin.session import ConformanceSession
from datamodel.case import Case, CaseData, Generator
from datamodel.records import Conditioning, RecordWriter, ResultRecord, read_records
from datamodel.verdicts import LESS_ACCURATE
from reference import UNIT_ROUNDOFF, Conventions, round_to
from reports.render import render_report


def _case(*, loc=(1.0, -2.0, 3.0), scale=1.0, count=256, dtype="float32", **changes) -> Case:
    """Three channels of ``count`` values each, stored contiguously (channel axis 0): every NumPy
    reduction of the fakes along them is a pairwise sum, as in the stable emulation."""
    case = Case(shape=(3, count), channel_axis=0, dtype=dtype, x=Generator(seed=1, loc=loc, scale=scale), eps=1e-3,
                decay=0.9, training_steps=2, gamma=np.array([1.0, 2.0, 0.5]), beta=np.array([0.0, 1.0, -1.0]))  # fmt: skip
    return case.with_(**changes)


#: |mean|/std of 300: the one-pass variance loses about 10⁵ units of roundoff.
OFFSET = (300.0, -300.0, 600.0)


def _by_quantity(adapter, case):
    return {c.quantity: c for c in check_case(adapter, case).comparisons}


# -- a stable implementation grades about 1 -----------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("loc", [(1.0, -2.0, 3.0), OFFSET], ids=["well", "offset"])
def test_a_stable_numpy_implementation_grades_about_one(dtype, loc):
    for comparison in _by_quantity(NumpyAdapter(""), _case(loc=loc, dtype=dtype)).values():
        assert comparison.verdict == PASS
        assert comparison.accuracy_grade is not None
        assert comparison.accuracy_grade <= 2.0, (comparison.quantity, comparison.accuracy_grade)


@settings(max_examples=12, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(runs(dtype="float32", classes=("ordinary", "offset", "constant", "heavy_tails")))
def test_stable_implementations_that_round_differently_grade_below_ten(run: Run):
    """Pairwise, blocked, fused and folded two-pass emulations (``tests/emulations.py``): the
    order of their roundings differs from the stable emulation's, their accuracy does not.

    Their cumulative average is a lerp, which is less accurate where the old statistic dwarfs
    the new one (the next test), so these runs keep to the exponential moving average."""
    assume(run.inputs.conventions.averaging != "cumulative")
    stable = stable_errors(run.inputs, run.expected, emulate_stable(run.inputs))
    for emulation in (e for e in CORRECT if e.name in ("pairwise", "blocked", "fused", "folded")):
        for name, comparison in judge(run, emulation.run(run.inputs, run.seed)).items():
            grade = graded(comparison, stable[name]).accuracy_grade
            assert grade < LESS_ACCURATE, f"{emulation.name} grades {grade:.3g} on {name}: {run.describe()}"


def test_a_lerp_running_update_from_a_much_larger_old_statistic_grades_less_accurate():
    """r + w·(b − r) in float32 keeps an error of u·|r_{t−1}|: from a running variance of 1 onto a
    batch variance of 10⁻⁶ in a first cumulative step (w = 1), where d·r + w·b is exactly b."""
    x = round_to(1e-3 * np.random.default_rng(0).standard_normal((64, 2)), "float32")
    data = CaseData(batches=[x], gamma=None, beta=None, running_mean=np.zeros(2), running_var=np.ones(2),
                    dy=np.ones((64, 2)))  # fmt: skip
    conventions = Conventions(averaging="cumulative")
    run = reference_run(ToleranceInputs(data=data, axis=1, eps=1e-5, decay=None, dtype="float32", conventions=conventions))
    stable = stable_errors(run.inputs, run.expected, emulate_stable(run.inputs))
    lerp = judge(run, next(e for e in CORRECT if e.name == "pairwise").run(run.inputs))["running_var"]
    assert lerp.verdict == PASS  # the tolerance model accepts both forms of the update
    assert graded(lerp, stable["running_var"]).accuracy_grade >= 100 * LESS_ACCURATE


# -- the issue: a one-pass variance inside the bound ----------------------------------------------


def test_a_one_pass_variance_passes_the_bound_on_y_but_grades_ten_times_worse():
    """On offset data E[x²] − E[x]² in float32 passes y and dx and is caught only through the
    running variance; the grade shows it is two orders of magnitude less accurate than stable."""
    case = _case(loc=OFFSET)
    one_pass, honest = _by_quantity(NumpyAdapter("fast_variance"), case), _by_quantity(NumpyAdapter(""), case)
    for quantity in ("y_train", "dx"):
        assert one_pass[quantity].verdict == PASS
        assert one_pass[quantity].ratio < 1.0
        assert one_pass[quantity].accuracy_grade >= 10 * LESS_ACCURATE
        assert honest[quantity].accuracy_grade <= 1.0
    assert one_pass["running_var"].verdict != PASS
    assert one_pass["running_var"].accuracy_grade >= 1000


def test_a_one_pass_variance_that_passes_every_bound_is_still_graded_less_accurate():
    case = _case(loc=(30.0, -30.0, 60.0), count=1024)
    one_pass = _by_quantity(NumpyAdapter("fast_variance"), case)
    assert all(c.verdict == PASS for c in one_pass.values())
    assert {q for q, c in one_pass.items() if c.accuracy_grade >= LESS_ACCURATE} >= {"y_train", "running_var", "dx"}


# -- the floor -------------------------------------------------------------------------------------


def test_the_floor_keeps_an_exact_stable_result_from_making_the_grade_infinite():
    exact = StableError(error=0.0, floor=1e-7)
    assert exact.grade(0.0) == 0.0
    assert exact.grade(3e-7) == pytest.approx(3.0)
    assert StableError(error=5e-7, floor=1e-7).grade(5e-7) == 1.0


def test_constant_channels_are_graded_at_the_scale_of_their_inputs_not_of_y():
    """y = β exactly, and the stable emulation may hit it exactly, but storing the mean costs an
    implementation up to u·|γ|·|x|/s: that is the floor, so one rounding of the mean grades below 1."""
    case = _case(loc=(3.0, -1000.0, 0.0), scale=0.0, beta=np.zeros(3))
    data, settings_ = case.materialize(), NumpyAdapter("").settings(case)
    expected = check.expected_values(case, data, settings_)
    stable = check.stable_baseline(case, data, settings_, expected)
    u = UNIT_ROUNDOFF["float32"]
    s = math.sqrt(1e-3)
    assert stable["y_train"].floor >= FLOOR_ROUNDINGS * u * 2.0 * 1000.0 * 2.0 / s * 0.99
    one_rounding = u * 1000.0 * 2.0 / s  # μ off by u·|μ| in the channel with γ = 2
    assert 0 < stable["y_train"].grade(one_rounding) < 1.0


def test_a_quantity_that_is_zero_everywhere_is_floored_at_the_smallest_normal_number():
    case = _case(scale=0.0, loc=0.0, dy=np.zeros((3, 256)))
    data, settings_ = case.materialize(), NumpyAdapter("").settings(case)
    expected = check.expected_values(case, data, settings_)
    stable = check.stable_baseline(case, data, settings_, expected)
    assert stable["dbeta"].floor == pytest.approx(float(np.finfo(np.float32).tiny))
    assert all(math.isfinite(c.accuracy_grade) for c in check_case(NumpyAdapter(""), case, data).comparisons)


def test_nan_where_the_reference_is_finite_grades_infinite():
    comparison = compare("y_train", np.array([1.0, 2.0]), np.array([1.0, np.nan]), np.array([1e-6, 1e-6]))
    assert graded(comparison, StableError(error=1e-7, floor=1e-8)).accuracy_grade == math.inf


def test_comparisons_without_a_stable_baseline_have_no_grade():
    """Between two runs of an engine (``@twin``, ``@cpu-vs-gpu``) there is nothing to grade against."""
    comparison = compare("y_train@twin", np.ones(3), np.ones(3), np.full(3, 1e-6))
    assert graded(comparison, None).accuracy_grade is None


# -- cost and plumbing -----------------------------------------------------------------------------


def test_the_emulation_runs_once_per_check_and_only_for_its_phases(monkeypatch):
    computed = []

    def counting(inputs, quantities):
        values = emulate_stable(inputs, quantities)
        computed.append(sorted(values))
        return values

    monkeypatch.setattr(check, "emulate_stable", counting)
    comparisons = check_case(NumpyAdapter(""), _case(), phases=("inference",)).comparisons
    assert computed == [["y_eval"]]
    assert [(c.quantity, c.accuracy_grade is not None) for c in comparisons] == [("y_eval", True)]
    check_case(NumpyAdapter(""), _case())
    assert len(computed) == 2
    assert len(computed[1]) == 8


def test_the_grade_reaches_the_result_records_and_survives_a_round_trip(tmp_path):
    path = tmp_path / "records.jsonl"
    session = ConformanceSession(path, ledger=Ledger([]))
    session.check(NumpyAdapter("fast_variance"), _case(loc=(30.0, -30.0, 60.0), count=1024), "training", ("training",))
    session.close()
    results = [r for r in read_records(path) if isinstance(r, ResultRecord)]
    assert {r.quantity for r in results} == {"y_train", "running_mean", "running_var", "y_eval_after"}
    by_quantity = {r.quantity: r for r in results}
    assert by_quantity["running_var"].accuracy_grade >= LESS_ACCURATE
    assert all(r.stable_error is not None and r.stable_error >= 0 for r in results)
    line = json.loads(path.read_text().splitlines()[-1])
    assert {"accuracy_grade", "stable_error"} <= line.keys()


# -- the report ------------------------------------------------------------------------------------


def _record(framework: str, data_class: str | None, grade: float, *, quantity="y_train", verdict="pass", device="cpu"):
    conditioning = Conditioning(offset_ratio=1.0, constant_channels=0, one_value_per_channel=False, data_class=data_class)
    return ResultRecord(run_id="r", property="training", quantity=quantity, verdict=verdict, framework=framework,
                        framework_version="1", device=device, dtype="float32", ratio=0.5, max_abs_error=grade * 1e-6,
                        stable_error=1e-6, accuracy_grade=grade, conditioning=conditioning)  # fmt: skip


def _write(path, records) -> None:
    with RecordWriter(path) as writer:
        for record in records:
            writer.write(record)


def test_the_report_shows_median_and_worst_grade_per_engine_and_data_class(tmp_path):
    records = [
        _record("stable", "offset", 0.5), _record("stable", "offset", 1.5), _record("stable", "well", 0.8),
        _record("fast", "offset", 40.0), _record("fast", "offset", 500.0, quantity="running_var", verdict="discrepancy"),
        _record("fast", "offset", 12.0), _record("fast", "well", 1.2), _record("fast", "well", 11.0),
        _record("fast", None, 0.9),
    ]  # fmt: skip
    _write(tmp_path / "fakes.jsonl", records)
    summary = render_report([tmp_path / "fakes.jsonl"], tmp_path / "out")
    table = summary["accuracy"]
    rows = {(row["engine"], row["data_class"]): row for row in table["rows"]}
    offset = rows[("fast", "offset")]
    assert (offset["checks"], offset["median"], offset["worst"], offset["worst_passing"]) == (3, 40.0, 500.0, 40.0)
    assert (offset["worst_quantity"], offset["less_accurate_checks"]) == ("running_var", 3)
    assert rows[("stable", "offset")]["median"] == 1.0
    assert rows[("fast", "all")]["checks"] == 6
    assert table["grid"]["classes"] == ["offset", "well", "fixed cases", "all"]
    assert [(c["engine"], c["data_class"]) for c in table["less_accurate"]] == [("fast", "offset")]
    html = (tmp_path / "out" / "report.html").read_text()
    section = html[html.index('<table id="accuracy">'): html.index("</table>", html.index('<table id="accuracy">'))]
    assert re.search(r'<td class="num grade-median" title="3 checks;[^"]*">40 / 500</td>', section)  # fast, offset: red
    assert re.search(r'<td class="num grade-worst" title="[^"]*">6.1 / 11</td>', section)  # fast, well: amber
    assert re.search(r'<td class="num" title="[^"]*">1 / 1.5</td>', section)  # stable, offset: plain
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["accuracy"]["less_accurate"][0]["median"] == 40
    assert "fast on offset data: median 40, worst 500" in (tmp_path / "out" / "summary.md").read_text()


def test_the_report_names_the_device_when_runs_on_several_are_merged(tmp_path):
    _write(tmp_path / "fakes.jsonl", [_record("torch", "well", 1.0), _record("torch", "well", 2.0, device="gpu")])
    summary = render_report([tmp_path / "fakes.jsonl"], tmp_path / "out")
    assert summary["accuracy"]["grid"]["engines"] == ["torch (cpu)", "torch (gpu)"]


def test_records_without_grades_leave_the_table_empty(tmp_path):
    _write(tmp_path / "fakes.jsonl", [_record("old", "well", 1.0).model_copy(update={"accuracy_grade": None})])
    summary = render_report([tmp_path / "fakes.jsonl"], tmp_path / "out")
    assert summary["accuracy"]["rows"] == []
    assert "No check carries an accuracy grade." in (tmp_path / "out" / "report.html").read_text()
