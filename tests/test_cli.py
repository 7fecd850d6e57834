"""``bnconf explain`` and ``bnconf replay``: output, JSON form and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adapters import registry
from conformance.orchestration.cli import main
from datamodel.case import Case, Generator
from datamodel.casefile import dump_case

BNCONF = [sys.executable, "-m", "conformance.orchestration.cli"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse and UsageError exit through parser.exit
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def ordinary_case(tmp_path) -> Path:
    path = tmp_path / "case.json"
    rng = np.random.default_rng(0)
    dump_case(
        Case(shape=(6, 3, 4), channel_axis=1, dtype="float32", x=Generator(seed=4, loc=(1.0, -2.0, 0.5)), eps=1e-3,
             decay=0.9, training_steps=2, gamma=rng.uniform(0.5, 2, 3), beta=rng.uniform(-1, 1, 3)),
        path,
    )  # fmt: skip
    return path


# -- explain --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("framework", "shape", "channels", "axis", "reduced", "trainable", "non_trainable", "total"),
    [
        ("keras", "100,200,3", 3, 3, [0, 1, 2], 6, 6, 12),
        ("torch", "3,100,200", 3, 1, [0, 2, 3], 6, 7, 13),
        ("flax", "100,200,3", 3, 3, [0, 1, 2], 6, 6, 12),
        ("torch", "16", 16, 1, [0], 32, 33, 65),
    ],
)
def test_explain_json(capsys, framework, shape, channels, axis, reduced, trainable, non_trainable, total):
    pytest.importorskip({"keras": "keras", "torch": "torch", "flax": "flax"}[framework])
    code, out, _ = run_cli(capsys, "explain", framework, "--input-shape", shape, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["channel_axis"] == axis
    assert info["reduced_axes"] == reduced
    assert (info["trainable_count"], info["non_trainable_count"], info["total_count"]) == (trainable, non_trainable, total)
    assert info["canonical_count"]["total"] == total  # canonical 4·C plus the declared extra state (torch's counter)
    assert info["canonical_count"]["extra_state"] == total - 4 * channels
    assert all({"name", "shape", "trainable"} <= set(p) for p in info["parameters"])
    assert all(p["shape"] in ([channels], []) for p in info["parameters"])


def test_explain_text_names_formula_axes_update_and_table(capsys):
    pytest.importorskip("torch")
    code, out, _ = run_cli(capsys, "explain", "torch", "--input-shape", "3,32,32")
    assert code == 0
    assert "y = γ·(x − μ_B)/√(σ²_B + ε) + β" in out
    assert "averaged over:  axes [0, 2, 3]" in out
    assert "running = (1 − momentum)·running + momentum·batch_stat,  momentum = 0.1" in out
    assert "d = 0.9" in out
    assert "num_batches_tracked" in out
    assert "2·C trainable + 2·C running statistics + num_batches_tracked (counter, 1 value) = 6 + 6 + 1 = 13" in out
    assert "beyond γ, β and the running statistics the layer keeps: num_batches_tracked (counter, 1 value)" in out
    assert "momentum=None gives a cumulative average instead" in out


def test_explain_layout_moves_the_channel_axis(capsys):
    pytest.importorskip("keras")
    code, out, _ = run_cli(capsys, "explain", "keras", "--input-shape", "3,32,32", "--layout", "channels_first", "--json")
    assert code == 0
    info = json.loads(out)
    assert (info["channel_axis"], info["channels"], info["reduced_axes"]) == (1, 3, [0, 2, 3])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "mxnet", "--input-shape", "3"], "unknown framework 'mxnet'; known frameworks:"),
        (["explain", "keras", "--input-shape", "3,x"], "expected comma-separated positive integers"),
        (["explain", "torch", "--input-shape", "8,8,3", "--layout", "channels_last"], "keeps channels on axis 1 only"),
    ],
)
def test_explain_bad_usage_exits_2(capsys, argv, message):
    pytest.importorskip("torch")
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_explain_side_by_side_puts_engines_in_columns(capsys):
    """Several engines, one of them in a child process of its own (Keras on JAX)."""
    pytest.importorskip("torch")
    code, out, _ = run_cli(capsys, "explain", "--frameworks", "torch,keras,keras-jax", "--input-shape", "3,4,5",
                           "--layout", "channels_first", "--json")  # fmt: skip
    assert code == 0
    engines = {e["framework"]: e for e in json.loads(out)["engines"]}
    assert set(engines) == {"torch", "keras", "keras-jax"}
    assert "jax" in engines["keras-jax"]["version"]
    for engine in engines.values():
        assert engine["channel_axis"] == 1
        assert engine["reduced_axes"] == [0, 2, 3]
    assert engines["torch"]["conventions"]["default_decay"] == pytest.approx(0.9)
    assert engines["keras"]["conventions"]["default_decay"] == pytest.approx(0.99)
    assert (engines["torch"]["total_count"], engines["keras"]["total_count"]) == (13, 12)
    assert (engines["torch"]["canonical_count"]["total"], engines["keras"]["canonical_count"]["total"]) == (13, 12)
    assert all(isinstance(engine["ledger"], list) for engine in engines.values())
    assert any("cumulative" in line for line in engines["torch"]["conventions_in_words"])


def test_explain_side_by_side_text_and_an_impossible_layout(capsys):
    pytest.importorskip("torch")
    code, out, _ = run_cli(capsys, "explain", "--frameworks", "torch,keras", "--input-shape", "3,4,5", "--layout", "channels_last")
    assert code == 0
    header = next(line for line in out.splitlines() if line.split() == ["keras"])
    assert header.strip() == "keras"  # torch could not take channels-last: one column
    assert "torch: not explained: torch keeps channels on axis 1 only" in out
    assert "momentum=0.99 (weights the old statistic)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("explain", "--frameworks", "torch,mxnet", "--input-shape", "3,4"), "unknown framework 'mxnet'"),
        (("explain", "torch", "--frameworks", "keras", "--input-shape", "3,4"), "not both"),
    ],
)
def test_explain_side_by_side_bad_usage_exits_2(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err


# -- replay ---------------------------------------------------------------------------


def test_replay_passes_on_every_framework(capsys, ordinary_case):
    code, out, _ = run_cli(capsys, "replay", str(ordinary_case), "--frameworks", "torch,keras,keras-jax,keras-torch,tf-keras,flax,nnx", "--json")
    rows = json.loads(out)["results"]
    assert {r["framework"] for r in rows} == {"torch", "keras", "keras-jax", "keras-torch", "tf-keras", "flax", "nnx"}
    available = [r for r in rows if r["verdict"] != "unsupported"]
    assert available, "no framework installed"
    assert all(r["verdict"] == "pass" for r in available), rows
    assert {"y_train", "running_var", "y_eval_after", "dx", "dgamma", "dbeta"} <= {r["quantity"] for r in available}
    assert code == 0


def test_replay_reports_a_discrepancy_with_exit_1(capsys, ordinary_case, fake_frameworks):
    code, out, _ = run_cli(capsys, "replay", str(ordinary_case), "--frameworks", "numpy-fake,numpy-fake:no_eps")
    assert code == 1
    assert "discrepancy" in out
    rows = [line.split() for line in out.splitlines()]
    broken = [row for row in rows if row and row[0] == "numpy-fake:no_eps"]
    honest = [row for row in rows if row and row[0] == "numpy-fake"]
    assert broken[0][:3] == ["numpy-fake:no_eps", "y_eval", "discrepancy"]
    assert len(honest) == 8
    assert all(row[2] == "pass" for row in honest)


def test_replay_error_and_unavailable_rows_keep_the_others(capsys, ordinary_case, fake_frameworks):
    code, out, _ = run_cli(capsys, "replay", str(ordinary_case), "--frameworks", "crashing-fake,missing-fake,numpy-fake", "--json")
    rows = json.loads(out)["results"]
    by = {(r["framework"], r["quantity"]): r for r in rows}
    assert by[("crashing-fake", "y_train")]["verdict"] == "error"
    assert "Expected more than 1 value per channel when training <b>bold</b>" in by[("crashing-fake", "y_train")]["message"]
    assert by[("crashing-fake", "dx")]["verdict"] == "pass"
    assert by[("missing-fake", "*")]["verdict"] == "unsupported"
    assert "No module named" in by[("missing-fake", "*")]["message"]
    assert all(r["verdict"] == "pass" for r in rows if r["framework"] == "numpy-fake")
    assert code == 1


def test_replay_runs_a_process_bound_framework_in_its_own_process(capsys, ordinary_case, monkeypatch):
    """An engine fixed at import (Keras' backend) is replayed in a child process with its declared
    environment, beside engines of this process; without that it would be unavailable here."""
    monkeypatch.setenv("BNCONF_ADAPTERS", "process-bound-fake=fakes:ProcessBoundAdapter,numpy-fake=fakes:NumpyAdapter")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    monkeypatch.delenv("BNCONF_FAKE_BACKEND", raising=False)
    registry.registered.cache_clear()
    try:
        code, out, _ = run_cli(capsys, "replay", str(ordinary_case), "--frameworks", "process-bound-fake,numpy-fake", "--json")
    finally:
        registry.registered.cache_clear()
    rows = json.loads(out)["results"]
    bound = [r for r in rows if r["framework"] == "process-bound-fake"]
    assert len(bound) == 8, rows
    assert all(r["verdict"] == "pass" for r in rows), rows
    assert all(isinstance(r["ratio"], float) for r in bound)
    assert code == 0


def test_a_failing_child_process_is_one_error_row_beside_the_others(capsys, ordinary_case, monkeypatch):
    monkeypatch.setenv("BNCONF_ADAPTERS", "process-bound-refusing-fake=fakes:ProcessBoundRefusingAdapter,numpy-fake=fakes:NumpyAdapter")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    registry.registered.cache_clear()
    try:
        code, out, _ = run_cli(capsys, "replay", str(ordinary_case), "--frameworks", "process-bound-refusing-fake,numpy-fake", "--json")
    finally:
        registry.registered.cache_clear()
    rows = json.loads(out)["results"]
    failed = [r for r in rows if r["framework"] == "process-bound-refusing-fake"]
    assert len(failed) == 1
    assert failed[0]["verdict"] == "error"
    assert "failed (exit 2)" in failed[0]["message"]
    assert "BNCONF_MAX_CASE_ELEMENTS" in failed[0]["message"]  # the line names the refused size
    assert all(r["verdict"] == "pass" for r in rows if r["framework"] == "numpy-fake")
    assert code == 1


def test_the_process_bound_fake_is_unavailable_in_this_process(monkeypatch):
    """The premise of the test above: without its environment, the fake refuses to load."""
    from fakes import ProcessBoundAdapter

    monkeypatch.delenv("BNCONF_FAKE_BACKEND", raising=False)
    with pytest.raises(ImportError, match="BNCONF_FAKE_BACKEND=bound"):
        ProcessBoundAdapter().version()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 1, "shape": [2, 3], "channel_axis": 1, "dtype": "float8", "x": [[1, 2, 3], [4, 5, 6]]}', "case field 'dtype'"),
        ('{"schema_version": 1, "shape": [2, 3], "channel_axis": 1, "dtype": "float32", "x": [[1, 2, 3], [4, 5, 6]], "gamma": [1, 2]}', "case field 'gamma'"),
    ],
)
def test_replay_bad_case_file_exits_2(capsys, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, _, err = run_cli(capsys, "replay", str(path))
    assert code == 2
    assert message in err
    assert str(path) in err


def test_replay_unknown_framework_exits_2(capsys, ordinary_case):
    code, _, err = run_cli(capsys, "replay", str(ordinary_case), "--frameworks", "torch,mxnet")
    assert code == 2
    assert "unknown framework 'mxnet'" in err


def test_console_script_replays(ordinary_case):
    """The installed entry point, in a fresh process, as a user runs it."""
    result = subprocess.run([*BNCONF, "replay", str(ordinary_case), "--frameworks", "torch"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "torch" in result.stdout
    assert "pass" in result.stdout


# -- the frameworks' own log output -------------------------------------------------------


@pytest.mark.frameworks
@pytest.mark.parametrize("backend", [None, "tensorflow"], ids=["keras-in-a-child", "keras-in-this-process"])
def test_replay_keeps_tensorflows_native_log_lines_in_the_log_file(tmp_path, backend):
    """TensorFlow's C++ logging (``I0000 ... cpu_feature_guard``, the absl warning) reaches the log
    file, not the terminal, whether Keras runs in bnconf's process or a child with its backend."""
    pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    environment = {key: value for key, value in os.environ.items() if key not in ("KERAS_BACKEND", "BNCONF_FRAMEWORK_LOG")}
    environment.update(TMPDIR=str(tmp_path), **({"KERAS_BACKEND": backend} if backend else {}))
    case = Path(__file__).parent.parent / "examples" / "ordinary.json"
    result = subprocess.run([*BNCONF, "replay", str(case), "--frameworks", "keras"], capture_output=True, text=True,
                            env=environment)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "I0000" not in output
    assert "absl::InitializeLog" not in output
    assert "8 checked: 8 passed" in result.stdout
    [log] = sorted((tmp_path / "bnconf-logs").glob("replay-*.log"))
    assert result.stderr.strip() == f"bnconf: the frameworks' own log output ({len(log.read_text().splitlines())} lines) is in {log}"
    text = log.read_text()
    assert "I0000" in text or "absl::InitializeLog" in text
