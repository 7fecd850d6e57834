"""The CI matrix: cells read from ``matrix.toml``, run here by ``bnconf matrix``.

The same file drives the nightly GitHub workflow (``python -m conformance.orchestration.matrix --github``
prints the cells as the JSON its ``strategy.matrix`` reads).  Locally, a cell runs when this
machine has its Python and device and each pinned package is installed at that version or
is pure Python: those are installed into ``.bnconf-cells/<cell>/site`` and put first on that
cell's ``PYTHONPATH`` alone, so two versions of one framework run side by side, each in its
own process, with the environment its adapters declare (``Adapter.process_environment``,
e.g. Keras' backend).  Cells that cannot run here are listed as skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .exitcodes import EXIT_OK, EXIT_USAGE

MATRIX_FILE = Path(__file__).parent.parent / "data" / "matrix.toml"
CELLS_DIR = Path(".bnconf-cells")
#: Packages small and pure-Python enough to install beside the environment for one cell.
OVERLAY_PACKAGES = {"keras", "flax", "optax", "orbax-checkpoint", "namex", "optree"}
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)$")


class MatrixError(ValueError):
    """A matrix file or cell selection that cannot be used; the message says what and where."""


@dataclass(frozen=True)
class Cell:
    name: str
    frameworks: tuple[str, ...]
    packages: tuple[str, ...]
    python: str
    device: str
    runs_on: tuple[str, ...] | str
    pip_args: str = ""

    def to_github(self) -> dict:
        return {"name": self.name, "frameworks": ",".join(self.frameworks), "packages": " ".join(self.packages),
                "python": self.python, "device": self.device, "runs_on": self.runs_on, "pip_args": self.pip_args}  # fmt: skip


@dataclass
class Plan:
    runnable: list[tuple[Cell, list[str]]] = field(default_factory=list)  # cell, overlay pins
    skipped: list[tuple[Cell, str]] = field(default_factory=list)


def load_matrix(path: Path = MATRIX_FILE) -> list[Cell]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise MatrixError(f"{path}: cannot read the matrix ({error})") from None
    defaults = document.get("defaults", {})
    cells, seen = [], set()
    for index, raw in enumerate(document.get("cell", [])):
        where = f"{path}: cell {index}"
        for key in ("name", "frameworks", "packages"):
            if key not in raw:
                raise MatrixError(f"{where}: missing {key!r}")
        if raw["name"] in seen:
            raise MatrixError(f"{where}: duplicate cell name {raw['name']!r}")
        seen.add(raw["name"])
        for pin in raw["packages"]:
            if not _PIN.match(pin):
                raise MatrixError(f"{where} ({raw['name']}): package {pin!r} is not an exact pin NAME==VERSION")
        device = raw.get("device", defaults.get("device", "cpu"))
        if device not in ("cpu", "gpu"):
            raise MatrixError(f"{where} ({raw['name']}): device must be cpu or gpu, got {device!r}")
        runs_on = raw.get("runs_on") or (defaults.get("gpu_runs_on") if device == "gpu" else defaults.get("runs_on"))
        cells.append(Cell(
            name=raw["name"], frameworks=tuple(raw["frameworks"]), packages=tuple(raw["packages"]),
            python=str(raw.get("python", defaults.get("python", "3.11"))), device=device,
            runs_on=tuple(runs_on) if isinstance(runs_on, list) else runs_on, pip_args=raw.get("pip_args", ""),
        ))  # fmt: skip
    if not cells:
        raise MatrixError(f"{path}: no [[cell]] entries")
    return cells


def select(cells: list[Cell], names: list[str] | None) -> list[Cell]:
    if not names:
        return cells
    known = {c.name: c for c in cells}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise MatrixError(f"unknown cell(s) {', '.join(unknown)}; known cells: {', '.join(known)}")
    return [known[n] for n in names]


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _gpu_present() -> bool:
    return shutil.which("nvidia-smi") is not None


def plan(cells: list[Cell]) -> Plan:
    """Which cells can run here (and which pins need an overlay), and why the others cannot."""
    result = Plan()
    here = ".".join(platform.python_version_tuple()[:2])
    for cell in cells:
        if cell.python != here:
            result.skipped.append((cell, f"needs Python {cell.python}; this runner has Python {here}"))
            continue
        if cell.device == "gpu" and not _gpu_present():
            result.skipped.append((cell, "needs a GPU; this machine has none (nvidia-smi not found)"))
            continue
        overlay, reason = [], None
        for pin in cell.packages:
            name, _extra, version = _PIN.match(pin).groups()
            have = _installed(name)
            if have is not None and have.split("+")[0] == version:
                continue
            if name.lower() in OVERLAY_PACKAGES:
                overlay.append(f"{name}=={version}")
                continue
            reason = (f"needs {pin}; this environment has {name} {have or 'not installed'}, and it is too large "
                      f"to install beside it (the nightly workflow installs it in the cell's own job)")  # fmt: skip
            break
        if reason:
            result.skipped.append((cell, reason))
        else:
            result.runnable.append((cell, overlay))
    return result


def prepare_overlay(cell: Cell, pins: list[str]) -> Path | None:
    """Install ``pins`` (no dependencies) into the cell's own directory; reuse it when present."""
    if not pins:
        return None
    target = CELLS_DIR / cell.name / "site"
    marker = target / ".bnconf-pins"
    wanted = "\n".join(sorted(pins))
    if marker.exists() and marker.read_text() == wanted:
        return target.resolve()
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), *pins]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise MatrixError(f"{cell.name}: installing {', '.join(pins)} failed: {completed.stderr.strip()[-500:]}")
    marker.write_text(wanted)
    return target.resolve()


def run_matrix(names: list[str] | None, jobs: int, profile: str, out: str | Path, case_timeout: float,
               matrix_file: Path = MATRIX_FILE) -> int:  # fmt: skip
    """Run the cells this machine can, ``jobs`` at a time; merge them into one report."""
    from adapters.registry import declared_environment
    from reports.render import render_report

    from .exitcodes import EXIT_FOUND, EXIT_INTERRUPTED
    from .parallel import run_parallel
    from .run import run_framework

    out = Path(out)
    stop_requested = threading.Event()
    cells = select(load_matrix(matrix_file), names)
    decided = plan(cells)
    for cell, reason in decided.skipped:
        print(f"[{cell.name}] skipped: {reason}", flush=True)
    runs: list[dict] = [{"framework": cell.name, "specs": list(cell.frameworks), "exit_code": None,
                         "outcome": f"skipped: {reason}", "seconds": 0, "records": "", "log": ""}
                        for cell, reason in decided.skipped]  # fmt: skip

    def run_cell(item: tuple[Cell, list[str]]) -> dict:
        cell, overlay = item
        try:
            site = prepare_overlay(cell, overlay)
        except MatrixError as error:
            print(f"[{cell.name}] skipped: {error}", flush=True)
            return {"framework": cell.name, "specs": list(cell.frameworks), "exit_code": None,
                    "outcome": f"skipped: {error}", "seconds": 0, "records": "", "log": ""}  # fmt: skip
        env = dict(os.environ)
        if site:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        for spec in cell.frameworks:
            env.update(declared_environment(spec))  # e.g. the Keras backend an adapter fixes per process
        return run_framework(cell.name, list(cell.frameworks), cell.device, profile, out, case_timeout, env=env,
                             label=cell.name, stop_requested=stop_requested)  # fmt: skip

    def not_started(item: tuple[Cell, list[str]]) -> dict:
        cell, _overlay = item
        return {"framework": cell.name, "specs": list(cell.frameworks), "exit_code": None,
                "outcome": "not started: interrupted", "seconds": 0, "records": "", "log": ""}  # fmt: skip

    ran, interrupted = run_parallel(run_cell, decided.runnable, jobs, stop_requested, not_started=not_started)
    runs = ran + runs
    files = [r["records"] for r in ran if r["records"] and Path(r["records"]).exists()]
    summary = render_report(files, out, runs=runs, profile=profile)
    print()
    print(summary["text"])
    print(f"cells: {len(ran)} run, {len(runs) - len(ran)} skipped")
    print(f"\nreport: {summary['html']}")
    if interrupted:
        print("bnconf: interrupted (Ctrl-C): every cell's process was stopped; the report covers the records written before it")
        return EXIT_INTERRUPTED
    failed = [r for r in ran if r["exit_code"] != 0]
    return EXIT_OK if ran and not failed else EXIT_FOUND


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.orchestration.matrix", description="Print the CI matrix.")
    parser.add_argument("--github", action="store_true", help="print the cells as JSON for strategy.matrix")
    parser.add_argument("--device", choices=("cpu", "gpu"), help="only cells of this device")
    parser.add_argument("--cells", default="", help="comma-separated cell names (empty: every cell)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.cells.split(",") if n.strip()]
    try:
        cells = [c for c in select(load_matrix(), names) if args.device in (None, c.device)]
    except MatrixError as error:
        parser.exit(EXIT_USAGE, f"error: {error}\n")
    if args.github:
        print(json.dumps([c.to_github() for c in cells]))
    else:
        for cell in cells:
            print(f"{cell.name:32} {cell.device:4} python {cell.python}  {' '.join(cell.packages)}")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
