"""The one JSON codec for numbers JSON cannot hold: NaN and ±infinity travel as text.

Strict JSON has no ``NaN``/``Infinity`` tokens, and many readers (browsers' ``JSON.parse``,
``jq``, most languages' standard parsers) refuse them.  Every JSON this project writes
(result records, report summaries, the CLI's ``--json`` output) goes through ``encode``,
which writes a non-finite float as the string ``"nan"``, ``"inf"`` or ``"-inf"`` (the
spelling case files use too, see ``datamodel.casefile``).  Readers turn those strings back
into floats with ``decode_float`` *only where a number is expected*: a message that happens
to say "inf" stays text.
"""

from __future__ import annotations

import json
import math
from pathlib import PurePath
from typing import Any

import numpy as np

#: The text each non-finite float is written as, and what each text reads back as.
NON_FINITE_TEXT = ("nan", "inf", "-inf")
NON_FINITE_VALUES = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}


def encode(value: Any) -> Any:
    """``value`` as plain JSON data: non-finite floats as text, NumPy scalars and arrays as
    Python numbers and lists, tuples as lists, paths as text.

    Raises ``TypeError`` naming the type of anything else that JSON cannot hold.
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, dict):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON: expected numbers, text, lists, objects or paths")


def dumps(value: Any, **options: Any) -> str:
    """Strict JSON text of ``value`` (``encode`` first; ``options`` go to ``json.dumps``)."""
    return json.dumps(encode(value), allow_nan=False, **options)


def decode_float(value: Any) -> Any:
    """A number field as read back: ``"nan"``, ``"inf"``, ``"+inf"`` and ``"-inf"`` become floats.

    Anything else is returned unchanged, for the caller (or a pydantic validator) to judge.
    """
    if isinstance(value, str):
        return NON_FINITE_VALUES.get(value.strip().lower(), value)
    return value


def as_number(value: Any) -> float | None:
    """``value`` as a float when it is a number (or a non-finite text), else ``None``."""
    value = decode_float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
