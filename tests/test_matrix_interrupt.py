"""Ctrl-C on ``bnconf matrix --jobs 2`` stops every cell's process and keeps what was written.

Cells run in worker threads, and Python delivers SIGINT to the main thread only: without a
stop signal of its own each worker would go on supervising its cell until the cell ended.
Two cells of the hanging fake (it never returns from inference mode) run at once; once
both have written records, ``bnconf matrix`` gets SIGINT.  It must exit 130 within seconds,
leave no process with either records path on its command line, and render a report that
says it is partial.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_interrupt import _processes_mentioning, as_from_a_terminal, kill_processes_mentioning

HERE = Path(__file__).parent
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_ctrl_c_stops_every_running_cell(tmp_path):
    matrix = tmp_path / "matrix.toml"
    matrix.write_text("".join(
        f'[[cell]]\nname = "{name}"\nframeworks = ["hanging-fake"]\npackages = []\npython = "{PYTHON}"\n\n'
        for name in ("hang-a", "hang-b")
    ))  # fmt: skip
    out = tmp_path / "out"
    records = [out / "records" / f"{name}.jsonl" for name in ("hang-a", "hang-b")]
    env = {**os.environ, "BNCONF_ADAPTERS": "hanging-fake=fakes:HangingAdapter",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    command = [sys.executable, "-m", "conformance.orchestration.cli", "matrix", "--matrix-file", str(matrix), "--jobs", "2",
               "--profile", "dev", "--out", str(out), "--case-timeout", "300"]  # fmt: skip
    process = subprocess.Popen(as_from_a_terminal(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=HERE.parent)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not all(path.exists() and b'"kind": "probe"' in path.read_bytes() for path in records):
            assert process.poll() is None, "bnconf matrix ended before it was interrupted: " + process.communicate()[1]
            assert time.monotonic() < deadline, "the two cells wrote no records in 180 s"
            time.sleep(0.2)
        assert all(_processes_mentioning(str(path)) for path in records), "both cells are running"
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        stdout, stderr = process.communicate(timeout=60)
        seconds = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        for path in records:  # on a failure: no cell process may outlive the test
            kill_processes_mentioning(str(path))
    assert process.returncode == 130, stdout + stderr
    assert seconds < 30, f"bnconf matrix took {seconds:.0f} s to stop after Ctrl-C"
    assert "Traceback" not in stderr
    assert "interrupted (Ctrl-C)" in stdout
    assert all(_processes_mentioning(str(path)) == [] for path in records), "a cell's process survived Ctrl-C"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"], "the report of an interrupted matrix must say it is partial"
    assert {name for row in summary["partial"] for name in row["frameworks"]} == {"hanging-fake"}
