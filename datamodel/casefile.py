"""The case file: a case's JSON form, versioned, so a counterexample replays exactly.

``load_case``/``parse_case`` validate every field and raise ``CaseFileError`` naming the
field and saying what was expected and what was seen; ``case_to_json`` is their inverse.
A case larger than the limits of ``datamodel.limits`` is refused before anything is
allocated.
Non-finite numbers are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` (JSON
has no literal for them); both those strings and Python's ``NaN``/``Infinity`` tokens are
read back.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from reference.dtypes import DTYPES

from . import jsoncodec
from .case import CUMULATIVE, DEVICES, DISTRIBUTIONS, SCHEMA_VERSION, Case, Generator
from .jsoncodec import NON_FINITE_VALUES
from .limits import CaseLimits, LimitSettingError

_KNOWN_FIELDS = {
    "schema_version", "shape", "channel_axis", "dtype", "eps", "decay", "affine", "training_steps",
    "x", "gamma", "beta", "running_mean", "running_var", "dy", "device", "frameworks", "description",
    "extra",
}  # fmt: skip
_GENERATOR_FIELDS = {"seed", "distribution", "loc", "scale", "df", "outliers", "outlier_magnitude"}


class CaseFileError(ValueError):
    """A case file that cannot be used; the message names the field and the problem."""

    def __init__(self, field: str, problem: str, source: str | None = None):
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}case field {field!r}: {problem}")


def load_case(path: str | Path) -> Case:
    """Read and validate a case file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CaseFileError("<file>", f"cannot read the case file: {error.strerror or error}", str(path)) from None
    except UnicodeDecodeError as error:
        raise CaseFileError(
            "<file>", f"not valid JSON (not UTF-8 text: {error.reason} at byte {error.start})", str(path)
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise CaseFileError(
            "<file>", f"not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})", str(path)
        ) from None
    except RecursionError:
        raise CaseFileError("<file>", "JSON nested too deeply to read", str(path)) from None
    try:
        return parse_case(document)
    except CaseFileError as error:
        raise CaseFileError(error.field, error.problem, str(path)) from None


def parse_case(document: Any, limits: CaseLimits | None = None) -> Case:
    """Validate a decoded case document and build the ``Case``.

    ``limits`` defaults to ``CaseLimits.from_environment()``.
    """
    if limits is None:
        try:
            limits = CaseLimits.from_environment()
        except LimitSettingError as error:
            raise CaseFileError("<limits>", str(error)) from None
    if not isinstance(document, dict):
        raise CaseFileError("<root>", f"expected a JSON object, got {_kind(document)}")
    unknown = sorted(set(document) - _KNOWN_FIELDS)
    if unknown:
        raise CaseFileError(unknown[0], f"unknown field; known fields are {', '.join(sorted(_KNOWN_FIELDS))}")
    version = _required(document, "schema_version")
    if not _is_int(version) or version != SCHEMA_VERSION:
        raise CaseFileError("schema_version", f"expected {SCHEMA_VERSION}, got {version!r}")

    shape = _required(document, "shape")
    if not (isinstance(shape, list) and len(shape) >= 2 and all(_is_int(n) and n >= 1 for n in shape)):
        raise CaseFileError("shape", f"expected a list of at least 2 positive integers, got {shape!r}")
    shape = tuple(shape)
    axis = _required(document, "channel_axis")
    if not _is_int(axis) or not -len(shape) <= axis < len(shape):
        raise CaseFileError("channel_axis", f"expected an integer in [{-len(shape)}, {len(shape) - 1}], got {axis!r}")
    channels = shape[axis]
    dtype = _required(document, "dtype")
    if dtype not in DTYPES:
        raise CaseFileError("dtype", f"expected one of {', '.join(DTYPES)}, got {dtype!r}")

    eps = document.get("eps")
    if eps is not None and not (_is_number(eps) and math.isfinite(eps) and eps >= 0):
        raise CaseFileError("eps", f"expected a finite number >= 0 or null (framework default), got {eps!r}")
    decay = document.get("decay")
    if decay is not None and decay != CUMULATIVE and not (_is_number(decay) and 0 <= decay <= 1):
        raise CaseFileError("decay", f"expected a number in [0, 1], {CUMULATIVE!r} or null (framework default), got {decay!r}")
    affine = document.get("affine", True)
    if not isinstance(affine, bool):
        raise CaseFileError("affine", f"expected true or false, got {affine!r}")
    steps = document.get("training_steps", 1)
    if not (_is_int(steps) and steps >= 1):
        raise CaseFileError("training_steps", f"expected a positive integer, got {steps!r}")
    problem = limits.steps_problem(steps)
    if problem:
        raise CaseFileError("training_steps", problem)
    problem = limits.size_problem(shape, steps)
    if problem:
        raise CaseFileError("shape", problem)
    device = document.get("device", "cpu")
    if device not in DEVICES:
        raise CaseFileError("device", f"expected one of {', '.join(DEVICES)}, got {device!r}")
    frameworks = document.get("frameworks", [])
    if not (isinstance(frameworks, list) and all(isinstance(f, str) for f in frameworks)):
        raise CaseFileError("frameworks", f"expected a list of framework names, got {frameworks!r}")
    description = document.get("description", "")
    if not isinstance(description, str):
        raise CaseFileError("description", f"expected a string, got {_kind(description)}")
    extra = document.get("extra", {})
    if not isinstance(extra, dict):
        raise CaseFileError("extra", f"expected an object, got {_kind(extra)}")

    x = _array_source(document, "x", shape, channels, steps, required=True)
    dy = _array_source(document, "dy", shape, channels, 1, required=False)
    vectors = {
        name: _vector(document, name, channels) for name in ("gamma", "beta", "running_mean", "running_var")
    }
    return Case(
        shape=shape, channel_axis=axis, dtype=dtype, x=x, eps=None if eps is None else float(eps),
        decay=decay if decay in (None, CUMULATIVE) else float(decay), affine=affine, training_steps=steps,
        dy=dy, device=device, frameworks=tuple(frameworks), description=description, extra=extra, **vectors,
    )  # fmt: skip


def case_to_json(case: Case) -> dict:
    """The case file document of ``case`` (inverse of ``parse_case``)."""
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "shape": list(case.shape),
        "channel_axis": case.channel_axis,
        "dtype": case.dtype,
        "eps": case.eps,
        "decay": case.decay,
        "affine": case.affine,
        "training_steps": case.training_steps,
        "device": case.device,
        "x": _source_to_json(case.x),
    }
    if case.dy is not None:
        document["dy"] = _source_to_json(case.dy)
    for name in ("gamma", "beta", "running_mean", "running_var"):
        value = getattr(case, name)
        if value is not None:
            document[name] = _numbers_to_json(value)
    if case.frameworks:
        document["frameworks"] = list(case.frameworks)
    if case.description:
        document["description"] = case.description
    if case.extra:
        document["extra"] = case.extra
    return document


def dump_case(case: Case, path: str | Path) -> None:
    Path(path).write_text(json.dumps(case_to_json(case), indent=1) + "\n")


# -- helpers ---------------------------------------------------------------------------


def _source_to_json(source) -> Any:
    if isinstance(source, Generator):
        fields = {name: getattr(source, name) for name in _GENERATOR_FIELDS}
        fields = {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}
        fields["loc"], fields["scale"] = _numbers_to_json(source.loc), _numbers_to_json(source.scale)
        return {"generator": fields}
    return _numbers_to_json(source)


def _numbers_to_json(array: np.ndarray) -> Any:
    return jsoncodec.encode(np.asarray(array, dtype=np.float64))


def _required(document: dict, name: str) -> Any:
    if name not in document:
        raise CaseFileError(name, "missing required field")
    return document[name]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _numbers(name: str, value: Any) -> np.ndarray:
    """Nested lists of numbers (or the non-finite strings) as a float64 array."""

    def decode(item: Any, path: str) -> Any:
        if isinstance(item, list):
            return [decode(sub, f"{path}[{i}]") for i, sub in enumerate(item)]
        if _is_number(item):
            return float(item)
        if isinstance(item, str) and item.lower() in NON_FINITE_VALUES:
            return NON_FINITE_VALUES[item.lower()]
        raise CaseFileError(name, f"expected a number at {path}, got {item!r}")

    try:
        decoded = decode(value, name)
    except RecursionError:
        raise CaseFileError(name, "nested too deeply for an array of at most a few dimensions") from None
    try:
        return np.array(decoded, dtype=np.float64)
    except ValueError:
        raise CaseFileError(name, "nested lists are ragged: every row must have the same length") from None


def _vector(document: dict, name: str, channels: int) -> np.ndarray | None:
    if document.get(name) is None:
        return None
    array = _numbers(name, document[name])
    if array.shape != (channels,):
        raise CaseFileError(name, f"expected {channels} numbers (one per channel), got shape {array.shape}")
    return array


def _array_source(document: dict, name: str, shape: tuple, channels: int, steps: int, *, required: bool):
    if name not in document or document[name] is None:
        if required:
            raise CaseFileError(name, "missing required field (nested lists, or {\"generator\": {...}})")
        return None
    value = document[name]
    if isinstance(value, dict):
        return _generator(name, value, channels)
    array = _numbers(name, value)
    allowed = [shape] if name == "dy" else [shape, (steps, *shape)]
    if array.shape not in allowed:
        expected = " or ".join(str(list(s)) for s in allowed)
        raise CaseFileError(name, f"expected an array of shape {expected}, got shape {list(array.shape)}")
    return array


def _generator(name: str, value: dict, channels: int) -> Generator:
    if set(value) != {"generator"} or not isinstance(value["generator"], dict):
        raise CaseFileError(name, f"expected nested lists or {{\"generator\": {{...}}}}, got keys {sorted(value)}")
    spec = value["generator"]
    unknown = sorted(set(spec) - _GENERATOR_FIELDS)
    if unknown:
        raise CaseFileError(f"{name}.generator.{unknown[0]}", f"unknown field; known: {', '.join(sorted(_GENERATOR_FIELDS))}")
    kwargs: dict[str, Any] = {}
    if "seed" in spec:
        if not (_is_int(spec["seed"]) and spec["seed"] >= 0):
            raise CaseFileError(f"{name}.generator.seed", f"expected an integer >= 0, got {spec['seed']!r}")
        kwargs["seed"] = spec["seed"]
    if "distribution" in spec:
        if spec["distribution"] not in DISTRIBUTIONS:
            raise CaseFileError(
                f"{name}.generator.distribution", f"expected one of {', '.join(DISTRIBUTIONS)}, got {spec['distribution']!r}"
            )
        kwargs["distribution"] = spec["distribution"]
    for key in ("loc", "scale"):
        if key in spec:
            field = f"{name}.generator.{key}"
            array = _numbers(field, spec[key])
            if array.ndim == 0:
                kwargs[key] = float(array)
            elif array.shape == (channels,):
                kwargs[key] = tuple(float(v) for v in array)
            else:
                raise CaseFileError(field, f"expected a number or {channels} numbers (one per channel), got shape {array.shape}")
            if key == "scale" and np.any(np.asarray(kwargs[key]) < 0):
                raise CaseFileError(field, f"expected scales >= 0, got {spec[key]!r}")
    for key, check, expectation in (
        ("df", lambda v: _is_number(v) and v > 0, "a number > 0"),
        ("outliers", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
        ("outlier_magnitude", lambda v: _is_number(v) and math.isfinite(v), "a finite number"),
    ):
        if key in spec:
            if not check(spec[key]):
                raise CaseFileError(f"{name}.generator.{key}", f"expected {expectation}, got {spec[key]!r}")
            kwargs[key] = spec[key]
    return Generator(**kwargs)
