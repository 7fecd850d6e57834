"""Driving ``bnconf port``: read the state, translate it, run both engines, render the answer.

The translation and the proof are in ``port.py``; this module runs the engines (each in
this process, or in a child process with its declared environment, as ``replay`` does) and
turns the result into text or JSON.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from adapters.base import Outcome
from adapters.registry import FrameworkUnavailableError, adapter_class, get_adapter, split_spec
from datamodel.case import Case
from datamodel.casefile import dump_case
from datamodel.jsoncodec import decode_float

from .childproc import environment_to_start, run_json_command
from .exitcodes import EXIT_FOUND, EXIT_OK
from .explain import channel_axis_for, explain_engines
from .port import PortError, State, generated_state, moved, proof_case, prove, read_state, translation
from .texttable import text_table


def observe_here(spec: str, case: Case) -> dict[str, Any]:
    """Run ``case`` on ``spec`` in this process: its version, snippet and every quantity."""
    try:
        adapter = get_adapter(spec)
    except FrameworkUnavailableError as error:
        return {"framework": spec, "unavailable": str(error)}
    quantities = {}
    for name, outcome in adapter.run(case).items():
        if outcome.value is not None:
            quantities[name] = {"value": outcome.value.tolist()}
        else:
            quantities[name] = {"error": outcome.error} if outcome.error else {"unsupported": outcome.unsupported}
    return {"framework": spec, "version": adapter.version(), "snippet": adapter.snippet(case), "quantities": quantities}


def observe(spec: str, case: Case) -> dict[str, Any]:
    """``observe_here``, in a child process when ``spec`` needs an environment this one lacks."""
    environment = environment_to_start(spec)
    if environment is None:
        return observe_here(spec, case)
    with tempfile.TemporaryDirectory(prefix="bnconf-port-") as directory:
        path = Path(directory) / "case.json"
        dump_case(case, path)
        document, why = run_json_command(["observe", str(path), "--frameworks", spec], environment)
    return document if isinstance(document, dict) else {"framework": spec, "unavailable": why}


def _outcomes(observed: dict[str, Any]) -> dict[str, Outcome]:
    outcomes = {}
    for name, entry in observed.get("quantities", {}).items():
        if "value" in entry:
            outcomes[name] = Outcome(value=np.asarray(_floats(entry["value"]), dtype=np.float64))
        else:
            outcomes[name] = Outcome(error=entry.get("error"), unsupported=entry.get("unsupported"))
    return outcomes


def _floats(value: Any) -> Any:
    """Nested lists back to floats (the JSON codec writes NaN and ±inf as strings)."""
    return [_floats(v) for v in value] if isinstance(value, list) else decode_float(value)


def port(source_spec: str, destination_spec: str, sample_shape: tuple[int, ...], *, state_path: Path | None = None,
         layout: str | None = None, to_layout: str | None = None, data_path: Path | None = None,
         eps: float | None = None, momentum: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Translate ``source_spec``'s state for ``destination_spec`` and prove it on real engines."""
    source = _declaring_adapter(source_spec)
    destination = _declaring_adapter(destination_spec)
    rank = len(sample_shape) + 1
    try:
        src_axis = channel_axis_for(source, rank, layout)
        dst_axis = channel_axis_for(destination, rank, to_layout)
    except ValueError as error:
        raise PortError(str(error)) from None
    channels = sample_shape[src_axis - 1]
    state = read_state(state_path, source) if state_path is not None else generated_state(source, channels)
    if eps is not None:
        state.eps = eps
    if momentum is not None:
        state.decay = source.conventions.decay_from_momentum(momentum)
    if state.arrays["scale"].size != channels:
        raise PortError(f"the state has {state.arrays['scale'].size} channels; --input-shape {','.join(map(str, sample_shape))} "
                        f"has {channels} on the source's channel axis {src_axis}")  # fmt: skip
    x = _read_data(data_path, (None, *sample_shape)) if data_path is not None else None
    src_case = proof_case(state, sample_shape, src_axis, x)
    dst_case = moved(src_case, dst_axis)
    explained = explain_engines([destination_spec], tuple(dst_case.shape[1:]), None if destination.capabilities.any_channel_axis is False
                                else ("channels_first" if dst_axis == 1 else "channels_last"))["engines"][0]  # fmt: skip
    if "unavailable" in explained:
        raise PortError(f"{destination_spec} cannot be built here: {explained['unavailable']}")
    translated = translation(source, destination, state, dst_axis, explained["parameters"])
    src_observed, dst_observed = observe(source_spec, src_case), observe(destination_spec, dst_case)
    for observed in (src_observed, dst_observed):
        if "unavailable" in observed:
            raise PortError(f"{observed['framework']} cannot run here: {observed['unavailable']}")
    rows = prove(source, destination, src_case, dst_case, _outcomes(src_observed), _outcomes(dst_observed))
    unexplained = [r for r in rows if r["verdict"] not in ("pass", "differs by convention")]
    src_conventions, dst_conventions = source.conventions.reference.to_dict(), destination.conventions.reference.to_dict()
    differing = {key: [value, dst_conventions[key]] for key, value in src_conventions.items() if dst_conventions[key] != value}
    return {
        "source": {"framework": source_spec, "version": src_observed.get("version"), "channel_axis": src_axis},
        "destination": {"framework": destination_spec, "version": dst_observed.get("version"), "channel_axis": dst_axis},
        "input_shape": ["N", *sample_shape],
        "state": "generated" if state_path is None else str(state_path),
        **translated,
        "differing_conventions": differing,
        "proof": rows,
        "snippet": dst_observed.get("snippet", ""),
        "exit_code": EXIT_FOUND if unexplained else EXIT_OK,
    }


def _declaring_adapter(spec: str):
    """An adapter instance for its declarations only (no framework import, so any process will do)."""
    name, variant = split_spec(spec)
    try:
        return adapter_class(name)(variant)
    except FrameworkUnavailableError as error:
        raise PortError(str(error)) from None


def _read_data(path: Path, expected: tuple[int | None, ...]) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise PortError(f"{path}: expected a .npy array ({type(error).__name__}: {error})") from None
    if x.ndim != len(expected) or tuple(x.shape[1:]) != tuple(expected[1:]):
        raise PortError(f"{path}: expected a batch of shape (N, {', '.join(map(str, expected[1:]))}), got {x.shape}")
    return np.asarray(x, dtype=np.float64)


def render_port(result: dict[str, Any], snippet: bool = False) -> str:
    src, dst = result["source"], result["destination"]
    arguments = ", ".join(f"{key}={value!r}" for key, value in result["constructor"].items())
    lines = [
        f"port {src['framework']} {src['version']} → {dst['framework']} {dst['version']}, input ({', '.join(map(str, result['input_shape']))}),"
        f" channel axis {src['channel_axis']} → {dst['channel_axis']}, state: {result['state']}",
        "",
        f"constructor:  {dst['framework']} batch norm with {arguments}",
        f"momentum:     {result['momentum']}",
        f"epsilon:      {result['eps']}",
        "",
        f"variables, in {dst['framework']}'s order:",
    ]  # fmt: skip
    for variable in result["variables"]:
        source = f"← {src['framework']}'s {variable['from']}" if variable["from"] else f"({variable['note']})"
        lines.append(f"  {variable['name']:<24} {source}")
    lines.extend(f"  left behind: {why}" for why in result["left_behind"].values())
    if result["differing_conventions"]:
        lines += ["", "conventions that differ (no constructor argument changes them, so an exact port is impossible;"
                      " how much it shows depends on the data):"]  # fmt: skip
        lines.extend(f"  {key}: {a} → {b}" for key, (a, b) in result["differing_conventions"].items())
    lines += ["", "proof (the destination against the source on the same data, one training step):"]
    headers = ("quantity", "verdict", "max abs diff", "allowed", "ratio")
    rows = [(r["quantity"], r["verdict"], _number(r.get("max_abs_diff")), _number(r.get("allowed")), _number(r.get("ratio")))
            for r in result["proof"]]  # fmt: skip
    lines.extend(text_table(headers, rows))
    lines.extend(f"  {r['quantity']}: {r['why']}" for r in result["proof"] if r.get("why"))
    matched = [r["quantity"] for r in result["proof"] if r["verdict"] == "pass"]
    lines += ["", f"matched: {', '.join(matched) or 'nothing'}"]
    if snippet:
        lines += ["", f"# standalone {dst['framework']} snippet that loads the ported state and reproduces the proof:", result["snippet"]]
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


__all__ = ["PortError", "State", "observe", "observe_here", "port", "render_port"]
