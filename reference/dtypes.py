"""Compute dtypes and rounding to them.

A case names the dtype a framework computes in. The reference never computes in that
dtype: it rounds the inputs to it once (so that the reference and the framework see
exactly the same numbers) and then works in float64 on those rounded values.
"""

from __future__ import annotations

import numpy as np

try:  # ml_dtypes ships with jax and tensorflow; numpy has no bfloat16 of its own.
    from ml_dtypes import bfloat16 as _bfloat16
except ImportError:  # pragma: no cover - exercised only without ml_dtypes
    _bfloat16 = None

#: Unit roundoff u = 2**-(p) of each dtype with p significand bits (incl. the implicit one),
#: i.e. half the machine epsilon: the largest relative error of rounding to nearest.
UNIT_ROUNDOFF: dict[str, float] = {
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
    "float32": 2.0**-24,
    "float64": 2.0**-53,
}

DTYPES: tuple[str, ...] = tuple(UNIT_ROUNDOFF)


def check_dtype(dtype: str) -> str:
    """Return ``dtype`` if it is a known compute dtype, else raise ``ValueError``."""
    if dtype not in UNIT_ROUNDOFF:
        raise ValueError(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return dtype


def numpy_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype that stores values of ``dtype`` exactly."""
    check_dtype(dtype)
    if dtype == "bfloat16":
        if _bfloat16 is None:  # pragma: no cover
            raise RuntimeError("bfloat16 needs the 'ml_dtypes' package")
        return np.dtype(_bfloat16)
    return np.dtype(dtype)


def round_to(values, dtype: str) -> np.ndarray:
    """Round ``values`` to ``dtype`` (nearest, ties to even) and return them as float64.

    Values beyond the dtype's range become ±inf, as the cast in any framework would.
    """
    array = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        if dtype == "bfloat16":
            array = _to_float32_round_to_odd(array)
        return array.astype(numpy_dtype(dtype)).astype(np.float64)


def _to_float32_round_to_odd(array: np.ndarray) -> np.ndarray:
    """Round float64 to float32 toward zero, setting the last bit when inexact (round to odd).

    ml_dtypes casts float64 to bfloat16 through float32, rounding twice, which can miss the
    nearest value (1 + 2**-8 + 2**-30 became 1 instead of 1 + 2**-7).  Rounding to odd first
    keeps the information the second rounding needs, so float32 -> bfloat16 (8 bits, far fewer
    than float32's 24) then rounds correctly.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        nearest = array.astype(np.float32)
        overshot = np.abs(nearest.astype(np.float64)) > np.abs(array)
        toward_zero = np.where(overshot, np.nextafter(nearest, np.float32(0)), nearest)
        inexact = (toward_zero.astype(np.float64) != array) & np.isfinite(array)
        bits = toward_zero.view(np.uint32) | inexact.astype(np.uint32)
    return bits.view(np.float32)
