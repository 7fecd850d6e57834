"""Hostile input: oversized cases, malformed case files and arguments, nothing checked.

Whatever a user or a file hands ``bnconf``, it answers with exit code 2 and one line naming
the problem (never a traceback, a hang or a runaway allocation), and a replay that checked
nothing does not pass (exit code 3).  The fuzz tests draw a bounded number of inputs with
fixed settings, independent of the suite's hypothesis profiles.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.orchestration.cli import main
from conformance.orchestration.exitcodes import EXIT_NOTHING_CHECKED, EXIT_USAGE
from datamodel.casefile import CaseFileError, load_case, parse_case
from datamodel.limits import CaseLimits

FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
VALID = {"schema_version": 1, "shape": [4, 3], "channel_axis": 1, "dtype": "float32", "x": {"generator": {"seed": 1}}}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_case(tmp_path, document) -> str:
    path = tmp_path / "case.json"
    path.write_text(json.dumps(document))
    return str(path)


# -- limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"shape": [100000, 100000]}, "shape", "74.5 GiB"),
        ({"training_steps": 100_000_000}, "training_steps", "BNCONF_MAX_TRAINING_STEPS"),
        ({"shape": [1000, 1000], "training_steps": 20}, "shape", "× 20 steps"),
        ({"shape": [2**40, 2**40, 2**40]}, "shape", "BNCONF_MAX_CASE_ELEMENTS"),
    ],
)
def test_an_oversized_case_is_refused_before_allocating(capsys, tmp_path, changes, field, words):
    started = time.monotonic()
    code, _, err = run_cli(capsys, "replay", write_case(tmp_path, {**VALID, **changes}), "--frameworks", "torch")
    assert code == EXIT_USAGE
    assert f"case field {field!r}" in err
    assert words in err
    assert len(err.strip().splitlines()) == 1
    assert time.monotonic() - started < 5  # refused on reading, not after trying


def test_the_limits_are_configurable(monkeypatch):
    big = {**VALID, "shape": [4000, 3000]}
    with pytest.raises(CaseFileError, match="over the limit"):
        parse_case(big)
    monkeypatch.setenv("BNCONF_MAX_CASE_ELEMENTS", "20000000")
    assert parse_case(big).shape == (4000, 3000)
    assert parse_case({**VALID, "training_steps": 10}, CaseLimits(max_steps=10)).training_steps == 10
    with pytest.raises(CaseFileError, match="training steps exceed the limit of 9"):
        parse_case({**VALID, "training_steps": 10}, CaseLimits(max_steps=9))


def test_a_malformed_limit_setting_is_a_usage_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BNCONF_MAX_TRAINING_STEPS", "lots")
    code, _, err = run_cli(capsys, "replay", write_case(tmp_path, VALID))
    assert code == EXIT_USAGE
    assert "BNCONF_MAX_TRAINING_STEPS: expected a positive integer, got 'lots'" in err


def test_explain_refuses_an_oversized_input_shape(capsys):
    code, _, err = run_cli(capsys, "explain", "torch", "--input-shape", "100000,100000")
    assert code == EXIT_USAGE
    assert "--input-shape" in err
    assert "over the limit" in err


def test_deeply_nested_json_is_a_bad_case_file(capsys, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = run_cli(capsys, "replay", str(path))
    assert code == EXIT_USAGE
    assert "nested too deeply" in err or "expected a JSON object" in err


# -- nothing checked is not a pass ------------------------------------------------------


def test_a_replay_that_checks_nothing_exits_3(capsys, tmp_path, fake_frameworks):
    code, out, _ = run_cli(capsys, "replay", write_case(tmp_path, VALID), "--frameworks", "missing-fake")
    assert code == EXIT_NOTHING_CHECKED
    assert "nothing was checked" in out


def test_a_replay_where_every_case_is_unsupported_exits_3(capsys, tmp_path, fake_frameworks):
    on_gpu = {**VALID, "device": "gpu"}  # the NumPy fake runs on the CPU only
    code, out, _ = run_cli(capsys, "replay", write_case(tmp_path, on_gpu), "--frameworks", "numpy-fake", "--json")
    assert code == EXIT_NOTHING_CHECKED
    document = json.loads(out)
    assert {row["verdict"] for row in document["results"]} == {"unsupported"}
    assert document["summary"].startswith("nothing was checked")


# -- fuzzing ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(sorted({*VALID, "eps", "decay", "affine", "training_steps", "gamma", "beta", "running_mean",
                                      "running_var", "dy", "device", "frameworks", "description", "extra", "bogus"}))  # fmt: skip


@FUZZ
@given(changes=st.dictionaries(field_names, json_values, max_size=3), dropped=st.sets(field_names, max_size=2))
def test_fuzzed_case_documents_parse_or_fail_cleanly(changes, dropped):
    document = {k: v for k, v in {**VALID, **changes}.items() if k not in dropped}
    try:
        case = parse_case(document)
    except CaseFileError as error:
        message = str(error)
    else:
        assert case.size * case.training_steps <= CaseLimits().max_elements
        return
    assert message.startswith("case field ")
    assert "\n" not in message


@FUZZ
@given(content=st.binary(max_size=200) | json_values.map(json.dumps).map(str.encode))
def test_fuzzed_case_files_load_or_fail_cleanly(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("fuzz") / "case.json"
    path.write_bytes(content)
    try:
        load_case(path)
    except CaseFileError as error:
        message = str(error)
    else:
        return
    assert message.startswith(str(path))
    assert "\n" not in message


_words = st.sampled_from(["replay", "explain", "report", "run", "matrix", "--frameworks", "--device", "--input-shape",
                          "--layout", "--json", "--jobs", "--profile", "--cells", "-o", "gpu", "tpu", "0", "-1", "1,2",
                          "x,y", "nightly", "mxnet", "", "/no/such/file.json"])  # fmt: skip


@settings(FUZZ, max_examples=100)
@given(argv=st.lists(_words | st.text(max_size=6), max_size=5))
def test_fuzzed_arguments_fail_with_a_usage_error_not_a_traceback(capsys, tmp_path, monkeypatch, argv):
    """Arguments that cannot start real work: a fuzzed ``run`` always ends naming an unknown
    framework, a fuzzed ``matrix`` only lists, and anything written lands in a scratch folder."""
    monkeypatch.chdir(tmp_path)
    if argv[:1] == ["run"]:
        argv = [*argv, "--frameworks", "mxnet"]  # the last --frameworks wins: never a real run
    if argv[:1] == ["matrix"]:
        argv = [*argv, "--list", "--cells", "no-such-cell"]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    assert code in (0, 1, 2, 3), (argv, code)
    assert "Traceback" not in captured.err
    if code == EXIT_USAGE:
        assert captured.err.strip().splitlines()[-1].startswith(("bnconf: error:", "error:", "usage:")) or "bnconf" in captured.err


def test_a_run_where_every_framework_is_unavailable_exits_3(tmp_path):
    """``bnconf run`` on a framework that cannot load: every check skipped, so nothing passed."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "BNCONF_ADAPTERS": "missing-fake=no_such_framework_module:Adapter"}
    command = [sys.executable, "-m", "conformance.orchestration.cli", "run", "--frameworks", "missing-fake",
               "--profile", "dev", "--out", str(tmp_path / "out")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == EXIT_NOTHING_CHECKED, result.stdout[-2000:] + result.stderr[-2000:]
    assert "nothing was checked" in result.stdout
