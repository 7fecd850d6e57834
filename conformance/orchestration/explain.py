"""``bnconf explain``: a framework's batch norm for one input shape, as formulas and a table.

Everything printed comes from the adapter's declared conventions and from the variables the
real framework creates for a layer built for that input; nothing is hard-coded per framework.
Each declared convention is also said in words (``wording.convention_lines``), and the
canonical count is the one the inventory property expects: 2·C + 2·C plus the state the
adapter declares beyond it.
"""

from __future__ import annotations

from typing import Any

from adapters.base import Adapter

from .texttable import text_table
from .wording import convention_lines

LAYOUTS = ("channels_first", "channels_last")


def channel_axis_for(adapter: Adapter, rank: int, layout: str | None) -> int:
    """The (non-negative) channel axis of a rank-``rank`` input in ``layout``, or the default."""
    if layout is None:
        axis = adapter.conventions.default_channel_axis
    elif layout == "channels_first":
        axis = 1
    elif layout == "channels_last":
        axis = -1
    else:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    axis %= rank
    if not adapter.capabilities.any_channel_axis and axis != 1:
        raise ValueError(
            f"{adapter.label} keeps channels on axis 1 only (layout {layout}); "
            "its memory-format variants: " + (", ".join(f"{adapter.name}:{t}" for t in adapter.capabilities.memory_format_twins) or "none")
        )
    return axis


def explain(adapter: Adapter, sample_shape: tuple[int, ...], layout: str | None = None, batch: int = 2) -> dict[str, Any]:
    """Formulas, axes, update rule and variable table for inputs of per-sample ``sample_shape``."""
    shape = (batch, *sample_shape)
    rank = len(shape)
    axis = channel_axis_for(adapter, rank, layout)
    channels = shape[axis]
    reduced = [a for a in range(rank) if a != axis]
    declared = adapter.conventions
    ref = declared.reference
    inventory = adapter.inventory(shape, axis)
    m = declared.momentum_name
    eps_term = "√(σ² + ε)" if ref.eps_placement == "inside" else "(√σ² + ε)"
    if declared.momentum_form == "new_weight":
        native = f"running = (1 − {m})·running + {m}·batch_stat,  {m} = {declared.momentum_default:g} (weights the new batch)"
    else:
        native = f"running = {m}·running + (1 − {m})·batch_stat,  {m} = {declared.momentum_default:g} (weights the old statistic)"
    variance_note = (
        "the running variance is fed the unbiased batch variance σ²·n/(n − 1)"
        if ref.running_variance == "unbiased"
        else "the running variance is fed the biased batch variance σ²"
    )
    training = f"y = γ·(x − μ_B)/{eps_term.replace('σ²', 'σ²_B')} + β   with μ_B, σ²_B the mean and biased variance over axes {reduced}"
    if "training" not in adapter.capabilities.phases:  # the engine trains otherwise (tf-keras' renorm, say)
        training = f"not the canonical formula: {adapter.capabilities.phase_note or 'the engine does not train'}"
    scale_shapes = {tuple(v.shape) for v in inventory.variables if v.role in ("scale", "offset")}
    parameter_shape = list(scale_shapes.pop()) if len(scale_shapes) == 1 else [channels]
    expected = declared.declared_counts(channels)
    extra = declared.extra_state
    formula = (f"2·C trainable + {'2·C' if expected.running_statistics else 'no'} running statistics"
               + "".join(f" + {v.describe()}" for v in extra)
               + f" = {2 * channels} + {expected.running_statistics}"
               + "".join(f" + {v.values(channels)}" for v in extra) + f" = {expected.total}")  # fmt: skip
    per_channel = " × ".join(f"{shape[a]}" for a in reduced[1:])
    values_per_channel = f"N{' × ' + per_channel if per_channel else ''} values per channel (N = batch size)"
    return {
        "framework": adapter.label,
        "version": adapter.version(),
        "input_shape": ["N", *sample_shape],
        "channel_axis": axis,
        "channels": channels,
        "reduced_axes": reduced,
        "values_per_channel": values_per_channel,
        "formulas": {
            "training": training,
            "inference": f"y = γ·(x − running_mean)/{eps_term.replace('σ²', 'running_var')} + β",
            "parameters": f"γ, β have shape {_shape_text(parameter_shape)}: one per channel along axis {axis}",
            "eps": f"ε = {declared.eps_default:g} (default), placed {ref.eps_placement} the square root",
            "variance": (
                "σ²_B = mean((x − μ_B)²) (two passes)"
                if declared.variance_algorithm == "two_pass"
                else "σ²_B = mean(x²) − μ_B² (one pass; cancels when |μ_B| ≫ σ_B)"
            ),
        },
        "running_update": {
            "native": native,
            "canonical": f"running = d·running + (1 − d)·batch_stat,  d = {declared.default_decay:g} (decay: fraction of the old statistic kept)",
            "variance": variance_note,
            "averaging": ref.averaging,
        },
        "conventions": declared.to_dict(),
        "conventions_in_words": convention_lines(adapter),
        "variable_shape": list(declared.stored_shape(rank, axis, channels)),
        "parameters": [
            {"name": v.name, "role": v.role, "shape": list(v.shape), "dtype": v.dtype, "trainable": v.trainable}
            for v in inventory.variables
        ],
        "trainable_count": inventory.trainable_count,
        "non_trainable_count": inventory.non_trainable_count,
        "total_count": inventory.total_count,
        "reported_counts": dict(inventory.reported),
        "canonical_count": {
            "trainable": expected.trainable,
            "running_statistics": expected.running_statistics,
            "extra_state": expected.extra_state,
            "total": expected.total,
            "formula": formula,
        },
    }


def render_text(info: dict[str, Any]) -> str:
    """The human-readable form of ``explain``'s result."""
    shape = ", ".join(str(s) for s in info["input_shape"])
    lines = [
        f"{info['framework']} {info['version']} — batch norm for input shape ({shape})",
        "",
        f"channel axis:   {info['channel_axis']}  (C = {info['channels']})",
        f"averaged over:  axes {info['reduced_axes']}  — {info['values_per_channel']}",
        "",
        f"training:       {info['formulas']['training']}",
        f"inference:      {info['formulas']['inference']}",
        f"γ and β:        {info['formulas']['parameters']}",
        f"ε:              {info['formulas']['eps']}",
        f"batch variance: {info['formulas']['variance']}",
        "",
        "running statistics:",
        f"  framework's form: {info['running_update']['native']}",
        f"  canonical form:   {info['running_update']['canonical']}",
        f"  {info['running_update']['variance']}",
        "",
        "conventions, in words:",
        *(f"  {line}" for line in info["conventions_in_words"]),
        "",
    ]
    headers = ("variable", "role", "shape", "dtype", "trainable")
    rows = [
        (p["name"], p["role"], _shape_text(p["shape"]), p["dtype"], "yes" if p["trainable"] else "no")
        for p in info["parameters"]
    ]  # fmt: skip
    lines.extend(text_table(headers, rows))
    lines += [
        "",
        f"framework's totals: trainable {info['trainable_count']}, non-trainable {info['non_trainable_count']}, "
        f"total {info['total_count']}",
    ]
    lines.extend(f"  {where}: {count}" for where, count in info["reported_counts"].items())
    lines.append(f"canonical count:    {info['canonical_count']['formula']}")
    return "\n".join(lines)


# -- several engines side by side -----------------------------------------------------------


def explain_engines(specs: list[str], sample_shape: tuple[int, ...], layout: str | None = None) -> dict[str, Any]:
    """``explain`` for each engine: ``{"input_shape", "layout", "engines": [info, ...]}``.

    An engine whose declared process environment this process lacks (a Keras backend) is
    explained in a child process; one that is not installed, or cannot take the layout, is an
    entry with ``"unavailable"`` and the reason.  Unknown names must be rejected before this.
    """
    from adapters.registry import FrameworkUnavailableError, get_adapter

    from .childproc import environment_to_start, run_json_command

    engines = []
    for spec in specs:
        environment = environment_to_start(spec)
        if environment is not None:
            arguments = ["explain", spec, "--input-shape", ",".join(map(str, sample_shape)), "--json"]
            document, why = run_json_command(arguments + (["--layout", layout] if layout else []), environment)
            engines.append(document if isinstance(document, dict) and "framework" in document
                           else {"framework": spec, "unavailable": why or "the child process printed no explanation"})  # fmt: skip
            continue
        try:
            engines.append(explain(get_adapter(spec), sample_shape, layout))
        except FrameworkUnavailableError as error:
            engines.append({"framework": spec, "unavailable": str(error)})
        except ValueError as error:  # the layout is impossible for this engine
            engines.append({"framework": spec, "unavailable": str(error)})
    from conformance.judging.ledger import default_ledger

    ledger = default_ledger()
    for engine in engines:
        if "unavailable" not in engine:
            engine["ledger"] = [entry.id for entry in ledger.for_framework(engine["framework"])]
    return {"input_shape": ["N", *sample_shape], "layout": layout or "each engine's default", "engines": engines}


def _shape_text(shape: list[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _momentum_cell(conventions: dict[str, Any]) -> str:
    weights = "new batch" if conventions["momentum_form"] == "new_weight" else "old statistic"
    return f"{conventions['momentum_name']}={conventions['momentum_default']:g} (weights the {weights})"


#: The rows of the side-by-side table: a label and how to read it from one engine's ``explain``.
SIDE_BY_SIDE_ROWS: tuple[tuple[str, Any], ...] = (
    ("version", lambda e: e["version"]),
    ("channel axis (C)", lambda e: f"{e['channel_axis']} (C = {e['channels']})"),
    ("averaged over axes", lambda e: str(e["reduced_axes"])),
    ("values per channel", lambda e: e["values_per_channel"].split(" values")[0]),
    ("γ, β shape", lambda e: _shape_text(e.get("variable_shape", [e["channels"]]))),
    ("statistics shape", lambda e: _shape_text(e.get("variable_shape", [e["channels"]]))),
    ("extra state (declared)", lambda e: ", ".join(v["name"] for v in e["conventions"].get("extra_state", [])) or "none"),
    ("ε default, placement", lambda e: f"{e['conventions']['eps_default']:g}, {e['conventions']['reference']['eps_placement']} √"),
    ("momentum, own form", lambda e: _momentum_cell(e["conventions"])),
    ("decay d (canonical)", lambda e: f"{e['conventions']['default_decay']:g}"),
    ("running var is fed", lambda e: "unbiased σ²·n/(n − 1)" if e["conventions"]["reference"]["running_variance"] == "unbiased" else "biased σ²"),
    ("batch variance", lambda e: "two-pass" if e["conventions"]["variance_algorithm"] == "two_pass" else "E[x²] − E[x]² (one pass)"),
    ("variables, in order", lambda e: ", ".join(p["name"] for p in e["parameters"])),
    ("trainable (own count)", lambda e: str(e["trainable_count"])),
    ("non-trainable (own count)", lambda e: str(e["non_trainable_count"])),
    ("total (own count)", lambda e: str(e["total_count"])),
    ("known findings (ledger)", lambda e: ", ".join(e.get("ledger", [])) or "none"),
    ("canonical + declared", lambda e: f"{e['canonical_count']['trainable']} + {e['canonical_count']['running_statistics']}"
                                       f" + {e['canonical_count'].get('extra_state', 0)} = {e['canonical_count']['total']}"),
)


def render_side_by_side(result: dict[str, Any]) -> str:
    """One table, a column per available engine, then the engines that could not be explained."""
    available = [e for e in result["engines"] if "unavailable" not in e]
    shape = ", ".join(map(str, result["input_shape"]))
    lines = [
        f"batch norm for input shape ({shape}), layout: {result['layout']}",
        "",
        "training:   y = γ·(x − μ_B)/√(σ²_B + ε) + β, with μ_B and σ²_B over every axis but the channel axis",
        "inference:  y = γ·(x − running_mean)/√(running_var + ε) + β",
        "update:     running = d·running + (1 − d)·batch_stat (each engine's momentum converted to the decay d below)",
        "",
    ]
    if available:
        headers = ("", *(e["framework"] for e in available))
        rows = [(label, *(read(e) for e in available)) for label, read in SIDE_BY_SIDE_ROWS]
        lines.extend(text_table(headers, rows))
    for engine in result["engines"]:
        if "unavailable" in engine:
            lines.append(f"{engine['framework']}: not explained: {engine['unavailable']}")
    return "\n".join(lines)
