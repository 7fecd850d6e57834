"""Each convention an engine declares, in words, for ``bnconf explain``.

``convention_lines`` gives one line per field of the reference's ``Conventions`` (read with
``dataclasses.fields`` when called, so a field added since this was written still gets its
line) and one per convention the adapter declares besides (``FrameworkConventions``, and the
cumulative average its capabilities offer).  A value known here gets its sentence; any other
field or value gets ``name: value``, never an error.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from adapters.base import VARIABLE_SHAPES, Adapter, FrameworkConventions

#: A sentence per known value of each field of ``reference.Conventions``; ``{d}`` is the
#: default decay and ``{m}`` the framework's momentum argument.
REFERENCE_SENTENCES: dict[str, dict[Any, str]] = {
    "eps_placement": {
        "inside": "ε is added to the variance inside the square root: (x − μ)/√(σ² + ε)",
        "outside": "ε is added outside the square root: (x − μ)/(√σ² + ε)",
    },
    "running_variance": {
        "biased": "the running variance is fed the biased batch variance σ² (divided by n)",
        "unbiased": "the running variance is fed the unbiased batch variance σ²·n/(n − 1); normalization still uses the biased one",
    },
    "averaging": {
        "ema": "the running statistics are an exponential moving average: r ← d·r + (1 − d)·b, d = {d:g} by default",
        "cumulative": "the running statistics are the cumulative average of every batch so far: r_t = r_{{t−1}} + (b_t − r_{{t−1}})/t",
        "debiased_ema": "the running statistics are zero-debiased moving averages: a hidden h_t = d·h_{{t−1}} + (1 − d)·b_t, "
                        "read as h_t/(1 − d^t) after t steps (Adam-style), so the first steps are not pulled toward h's start",
    },
    "tracks_running_stats": {
        True: "the layer keeps running statistics, and inference normalizes with them",
        False: "the layer keeps no running statistics: inference normalizes with the batch's own statistics, as training does",
    },
    "normalization": {
        "batch": "a training step normalizes with the batch's own mean and biased variance",
        "running": "a training step normalizes with the running statistics it has just updated, d·r + (1 − d)·b, and the "
                   "gradients reach the batch statistics only through their weight 1 − d",
    },
    "warmup": {
        "none": "the first training step updates the running statistics like every other step",
        "copy_first_batch": "a fresh layer's first training step copies the batch statistics into the running ones, "
                            "whatever the decay; later steps average",
    },
    "debias_start": {
        "zero": "the debiased average's hidden accumulator starts at 0: the loaded statistics are read before the first "
                "training step, then forgotten (after one step the average is the batch's)",
        "state": "the debiased average's hidden accumulator starts at the loaded statistics, which are divided by "
                 "1 − d^t with the rest",
    },
}  # fmt: skip
#: A field that matters only when another has a value: (that field, the value).
APPLIES_WITH = {"debias_start": ("averaging", "debiased_ema"), "warmup": ("averaging", "ema")}
#: The ``FrameworkConventions`` fields worded by ``framework_lines`` (the rest: ``name: value``).
WORDED_FIELDS = frozenset({"momentum_name", "momentum_form", "momentum_default", "eps_default", "eps_name",
                           "default_channel_axis", "reference", "parameter_names", "normalization_variance",
                           "variance_algorithm", "extra_state", "variable_shape", "documented_forms"})  # fmt: skip
ROLE_WORDS = {"scale": "γ", "offset": "β", "running_mean": "the running mean", "running_variance": "the running variance",
              "counter": "the counter"}  # fmt: skip


def _sentence(field: str, value: Any, context: dict[str, Any]) -> str:
    try:
        template = REFERENCE_SENTENCES.get(field, {}).get(value)
    except TypeError:  # an unhashable value of a field added since
        template = None
    return template.format(**context) if template else f"{field}: {value}"


def reference_lines(conventions: Any, context: dict[str, Any]) -> list[str]:
    """One line per field of ``conventions`` (a ``reference.Conventions``), in declaration order."""
    lines = []
    for field in dataclasses.fields(conventions):
        value = getattr(conventions, field.name)
        line = _sentence(field.name, value, context)
        needs = APPLIES_WITH.get(field.name)
        if needs is not None and getattr(conventions, needs[0], needs[1]) != needs[1]:
            line = f"{field.name}: {value} (no effect here: {needs[0]} is {getattr(conventions, needs[0])})"
        lines.append(line)
    return lines


def framework_lines(declared: FrameworkConventions, *, cumulative: bool = False, any_channel_axis: bool = True) -> list[str]:
    """The adapter's own declarations in words: momentum, ε, layout, variables and their state."""
    m, d = declared.momentum_name, declared.default_decay
    if declared.momentum_form == "new_weight":
        momentum = f"{m} = {declared.momentum_default:g} weights the new batch: the decay is d = 1 − {m} = {d:g}"
    elif declared.momentum_form == "old_weight":
        momentum = f"{m} = {declared.momentum_default:g} weights the old statistic: it is the decay d itself"
    else:
        momentum = f"momentum_form: {declared.momentum_form} ({m} = {declared.momentum_default:g})"
    lines = [momentum]
    if cumulative:
        lines.append(f"{m}=None gives a cumulative average instead: r_t = r_{{t−1}} + (b_t − r_{{t−1}})/t, the plain mean "
                     "of every batch so far, with no decay")  # fmt: skip
    lines.append(f"ε ({declared.eps_name}) defaults to {declared.eps_default:g}")
    lines.append(f"the channels are on axis {declared.default_channel_axis} by default"
                 + ("; any axis can be given" if any_channel_axis else "; no other axis is offered"))  # fmt: skip
    lines.append({"two_pass": "the batch variance is computed in two passes, mean((x − μ)²)",
                  "fast": "the batch variance is computed in one pass, E[x²] − E[x]², which cancels when |μ| ≫ σ"}
                 .get(declared.variance_algorithm, f"variance_algorithm: {declared.variance_algorithm}"))  # fmt: skip
    lines.append({"biased": "training normalizes with the biased batch variance (divided by n)",
                  "unbiased": "training normalizes with the unbiased batch variance (divided by n − 1)"}
                 .get(declared.normalization_variance, f"normalization_variance: {declared.normalization_variance}"))  # fmt: skip
    names = ", ".join(f"{ROLE_WORDS.get(role, role)} is {name}" for role, name in declared.parameter_names.items())
    lines.append(f"its variables: {names}" if names else "parameter_names: none declared")
    shape = VARIABLE_SHAPES.get(declared.variable_shape)
    lines.append("γ, β and the running statistics are stored with shape (C,)" if declared.variable_shape == "per_channel"
                 else f"γ, β and the running statistics are stored {declared.variable_shape.replace('_', ' ')}-shaped: {shape}"
                 if shape else f"variable_shape: {declared.variable_shape}")  # fmt: skip
    extra = ", ".join(v.describe() for v in declared.extra_state)
    lines.append(f"beyond γ, β and the running statistics the layer keeps: {extra}" if extra
                 else "the layer keeps nothing beyond γ, β and the running statistics")  # fmt: skip
    lines.extend(f"as its documentation states it: {form}" for form in declared.documented_forms)
    lines.extend(f"{f.name}: {getattr(declared, f.name)}" for f in dataclasses.fields(declared) if f.name not in WORDED_FIELDS)
    return lines


def convention_lines(adapter: Adapter) -> list[str]:
    """Every convention ``adapter`` declares, one line each: its own, then the reference's."""
    declared = adapter.conventions
    capabilities = adapter.capabilities
    context = {"d": declared.default_decay, "m": declared.momentum_name}
    return [*framework_lines(declared, cumulative=capabilities.cumulative, any_channel_axis=capabilities.any_channel_axis),
            *reference_lines(declared.reference, context)]  # fmt: skip
