"""``bnconf port SRC DST``: move a batch norm's configuration and state between engines, and prove it.

The move is done on data, from the engines' declared conventions: the momentum becomes the
canonical decay and then the destination's own form, ε is carried over explicitly (a
different default cannot bite), the channel axis follows the destination's layout, and every
source variable goes to the destination variable with the same role, in the order the
destination's inventory lists them.  A variable with no counterpart (PyTorch's
``num_batches_tracked``) is named and left behind.

The proof runs both real engines on the same data, loaded with the same state: inference,
one training step (output and updated running statistics) and inference after it.  Each
quantity is compared destination against source under the sum of both engines' tolerances
(the tolerance model).  Where they differ, the reference says why: if the reference
configured with the destination's conventions differs from the one configured with the
source's by as much, the conventions themselves make an exact port impossible (a biased
against an unbiased running variance, say), and the differing conventions are named;
otherwise the difference is an engine's own, a finding to replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adapters.base import Adapter, Outcome
from conformance.judging.check import expected_values, tolerances
from conformance.judging.compare import PASS, Comparison, compare
from conformance.judging.tolerance import largest_finite
from datamodel.case import Case, Generator
from datamodel.casefile import CaseFileError, load_case

ROLES_PORTED = ("scale", "offset", "running_mean", "running_variance")
#: Quantities the proof compares (gradients are the same function of the same state).
PROVED = ("y_eval", "y_train", "running_mean", "running_var", "y_eval_after")
PER_CHANNEL = ("running_mean", "running_var")


class PortError(ValueError):
    """A state file or an argument the port cannot use; the message says what was expected."""


@dataclass
class State:
    """A batch norm's state by role, with ε and the canonical decay it runs with."""

    arrays: dict[str, np.ndarray]  # role → per-channel values (scale, offset, running_mean, running_variance)
    eps: float
    decay: float
    left_behind: dict[str, str] = field(default_factory=dict)  # source variable → why it is not carried


def read_state(path: Path, source: Adapter) -> State:
    """``source``'s state from a file: a case file (``.json``), or the engine's own format.

    The engine's own format is whatever ``Adapter.read_state_file`` reads: every adapter
    reads ``.npz`` keyed by its own variable names (with optional scalars ``eps`` and
    ``momentum`` in its own form); PyTorch also reads a saved ``state_dict`` (``.pt``).
    """
    declared = source.conventions
    if path.suffix == ".json":
        try:
            case = load_case(path)
        except CaseFileError as error:
            raise PortError(str(error)) from None
        data = case.materialize()
        channels = case.channels
        arrays = {"scale": data.gamma if data.gamma is not None else np.ones(channels),
                  "offset": data.beta if data.beta is not None else np.zeros(channels),
                  "running_mean": data.running_mean, "running_variance": data.running_var}  # fmt: skip
        decay = declared.default_decay if case.decay is None else float(case.decay)
        return State(arrays, declared.eps_default if case.eps is None else case.eps, decay)
    try:
        own = source.read_state_file(path)
    except (OSError, ValueError, KeyError) as error:
        raise PortError(f"{path}: cannot read a {source.label} state ({type(error).__name__}: {error})") from None
    roles = {name: role for role, name in declared.parameter_names.items()}
    arrays, left = {}, {}
    for name, value in own.items():
        role = roles.get(name)
        if role in ROLES_PORTED:
            arrays[role] = np.asarray(value, dtype=np.float64).reshape(-1)
        elif name not in ("eps", "momentum"):
            left[name] = f"{source.label}'s {name} ({role or 'no role'}) has no counterpart in the canonical state"
    missing = [declared.parameter_names.get(role, role) for role in ROLES_PORTED if role not in arrays]
    if missing:
        raise PortError(f"{path}: expected {source.label}'s variables {', '.join(declared.parameter_names.get(r, r) for r in ROLES_PORTED)}; "
                        f"missing {', '.join(missing)} (found: {', '.join(sorted(own)) or 'nothing'})")  # fmt: skip
    sizes = {role: a.size for role, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise PortError(f"{path}: the per-channel variables differ in length: {sizes}")
    eps = float(own["eps"]) if "eps" in own else declared.eps_default
    momentum = float(own["momentum"]) if "momentum" in own else declared.momentum_default
    return State(arrays, eps, declared.decay_from_momentum(momentum), left)


def generated_state(source: Adapter, channels: int, seed: int = 0) -> State:
    """A plausible trained state with the source's default ε and momentum, for a port without a state file."""
    rng = np.random.default_rng(seed)
    declared = source.conventions
    return State({"scale": rng.uniform(0.5, 2.0, channels), "offset": rng.normal(0, 0.5, channels),
                  "running_mean": rng.normal(0, 1, channels), "running_variance": rng.uniform(0.5, 2.0, channels)},
                 eps=declared.eps_default, decay=declared.default_decay)  # fmt: skip


def translation(source: Adapter, destination: Adapter, state: State, channel_axis: int,
                destination_variables: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """What the destination is built and loaded with: constructor arguments and variables in its order.

    ``destination_variables``: the destination's variables as its ``explain`` lists them
    (name and role, in the framework's own order).
    """
    src, dst = source.conventions, destination.conventions
    momentum = dst.momentum_from_decay(state.decay)
    arguments = {dst.momentum_name: momentum, dst.eps_name: state.eps}
    if destination.capabilities.any_channel_axis:
        arguments["axis"] = channel_axis
    variables, left_behind = [], dict(state.left_behind)
    for variable in destination_variables:
        role = variable["role"]
        if role in ROLES_PORTED:
            variables.append({"name": variable["name"], "role": role, "from": src.parameter_names.get(role, role),
                              "values": state.arrays[role].tolist()})  # fmt: skip
        else:
            variables.append({"name": variable["name"], "role": role, "from": None, "values": None,
                              "note": "no counterpart in the source: keeps the destination's own initial value"})  # fmt: skip
    src_momentum = src.momentum_from_decay(state.decay)
    return {
        "constructor": arguments,
        "momentum": f"{source.label} {src.momentum_name}={src_momentum:g} ({_weights(src.momentum_form)}) = decay {state.decay:g} "
                    f"→ {destination.label} {dst.momentum_name}={momentum:g} ({_weights(dst.momentum_form)})",
        "eps": f"{state.eps:g}, carried over explicitly ({destination.label}'s default is {dst.eps_default:g})",
        "variables": variables,
        "left_behind": left_behind,
    }  # fmt: skip


def _weights(form: str) -> str:
    return "weights the new batch" if form == "new_weight" else "weights the old statistic"


def proof_case(state: State, sample_shape: tuple[int, ...], channel_axis: int, x: np.ndarray | None, batch: int = 8) -> Case:
    """One training step on the user's data, or on data drawn around the state's running statistics."""
    shape = (batch, *sample_shape) if x is None else tuple(x.shape)
    a = state.arrays
    source = x if x is not None else Generator(seed=0, loc=tuple(a["running_mean"]), scale=tuple(np.sqrt(a["running_variance"])))
    return Case(shape=shape, channel_axis=channel_axis, dtype="float32", x=source, eps=state.eps, decay=state.decay,
                affine=True, training_steps=1, gamma=a["scale"], beta=a["offset"], running_mean=a["running_mean"],
                running_var=a["running_variance"], description="bnconf port: the proof's data")  # fmt: skip


def moved(case: Case, axis: int) -> Case:
    """``case`` with its channel axis at ``axis`` (data moved along)."""
    if case.layout.axis == axis % case.rank:
        return case
    data = case.materialize()
    new_shape = np.moveaxis(np.empty(case.shape), case.layout.axis, axis).shape
    x = np.moveaxis(data.batches[0], case.layout.axis, axis)
    return case.with_(shape=tuple(new_shape), channel_axis=axis, x=x)


def prove(source: Adapter, destination: Adapter, src_case: Case, dst_case: Case,
          src_observed: dict[str, Outcome], dst_observed: dict[str, Outcome]) -> list[dict[str, Any]]:  # fmt: skip
    """Compare the destination's quantities with the source's, and say why they differ where they do."""
    src_data, dst_data = src_case.materialize(), dst_case.materialize()
    src_settings, dst_settings = source.settings(src_case), destination.settings(dst_case)
    src_expected = expected_values(src_case, src_data, src_settings)
    dst_expected = expected_values(dst_case, dst_data, dst_settings)
    src_allowed = tolerances(src_case, src_data, src_settings, src_expected)
    dst_allowed = tolerances(dst_case, dst_data, dst_settings, dst_expected)
    allowed = _sum_in_source_layout(src_allowed, dst_allowed, src_case, dst_case)
    differing = {key: (value, dst_settings.conventions.to_dict()[key])
                 for key, value in src_settings.conventions.to_dict().items() if dst_settings.conventions.to_dict()[key] != value}  # fmt: skip
    rows = []
    for quantity in PROVED:
        theirs, ours = dst_observed.get(quantity), src_observed.get(quantity)
        failed = next((o for o in (ours, theirs) if o is None or o.value is None), None)
        if failed is not None or ours is None or theirs is None:
            why = "no value" if failed is None else (failed.error or failed.unsupported or "no value")
            rows.append({"quantity": quantity, "verdict": "error", "why": why})
            continue
        back = _to_source_layout(quantity, theirs.value, src_case, dst_case)
        comparison = compare(quantity, ours.value, back, allowed[quantity], largest_finite(src_case.dtype))
        row = _row(comparison)
        if comparison.verdict != PASS:
            reference_gap = compare(quantity, src_expected.values[quantity],
                                    _to_source_layout(quantity, dst_expected.values[quantity], src_case, dst_case),
                                    allowed[quantity])  # fmt: skip
            if reference_gap.verdict != PASS and differing:
                row["why"] = ("the conventions differ (" + "; ".join(f"{k}: {a} → {b}" for k, (a, b) in differing.items())
                              + f"): an exact port is impossible; the references differ by {reference_gap.max_abs_error:.3g} here")  # fmt: skip
                row["verdict"] = "differs by convention"
            else:
                wrong = [adapter.label for adapter, expected, observed, its_allowed in (
                    (source, src_expected, ours, src_allowed), (destination, dst_expected, theirs, dst_allowed))
                    if compare(quantity, expected.values[quantity], observed.value, its_allowed[quantity]).verdict != PASS]  # fmt: skip
                row["why"] = (f"{' and '.join(wrong) or 'an engine'} disagrees with its own reference here, not a convention: "
                              "a finding of that engine (bnconf explain lists its known ones; bnconf replay shows it)")  # fmt: skip
        rows.append(row)
    return rows


def _row(comparison: Comparison) -> dict[str, Any]:
    return {"quantity": comparison.quantity, "verdict": comparison.verdict, "max_abs_diff": comparison.max_abs_error,
            "allowed": comparison.allowed, "ratio": comparison.ratio}  # fmt: skip


def _to_source_layout(quantity: str, value: np.ndarray, src_case: Case, dst_case: Case) -> np.ndarray:
    if quantity in PER_CHANNEL or src_case.layout.axis == dst_case.layout.axis:
        return value
    offset = 1 if quantity == "y_train" else 0  # y_train stacks the steps first
    return np.moveaxis(value, dst_case.layout.axis + offset, src_case.layout.axis + offset)


def _sum_in_source_layout(src_allowed: dict, dst_allowed: dict, src_case: Case, dst_case: Case) -> dict:
    return {q: src_allowed[q] + _to_source_layout(q, dst_allowed[q], src_case, dst_case) for q in PROVED}

