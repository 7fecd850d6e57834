"""Rounding to compute dtypes, and its use by the forward and backward passes.

``round_to`` is checked against known values and against an exact rounding written here with
``fractions.Fraction`` (round to nearest, ties to even, from the format's precision and
exponent range alone), so it is pinned by IEEE arithmetic rather than by NumPy's or
ml_dtypes' casts.  The batch-norm tests check that a ``dtype`` rounds the inputs once and
that everything after that is the float64 computation on the rounded values.
"""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from numpy.testing import assert_array_equal

from reference import DTYPES, UNIT_ROUNDOFF, batch_norm_backward, batch_norm_eval, batch_norm_train, round_to

# Significand bits p (with the implicit one), smallest normal exponent, largest exponent.
FORMATS = {"float16": (11, -14, 15), "bfloat16": (8, -126, 127), "float32": (24, -126, 127)}


def _exact_round(value: float, dtype: str) -> float:
    """``value`` rounded to nearest (ties to even) in ``dtype``, by exact rational arithmetic."""
    p, emin, emax = FORMATS[dtype]
    if value == 0 or not math.isfinite(value):
        return value
    magnitude = Fraction(abs(value))
    exponent = max(math.frexp(abs(value))[1] - 1, emin)  # subnormals share emin's spacing
    ulp = Fraction(2) ** (exponent - p + 1)
    steps, remainder = divmod(magnitude, ulp)
    if remainder > ulp / 2 or (remainder == ulp / 2 and steps % 2 == 1):
        steps += 1
    rounded = steps * ulp
    largest = (2 - Fraction(2) ** (1 - p)) * Fraction(2) ** emax
    return math.copysign(math.inf if rounded > largest else float(rounded), value)


def test_unit_roundoff_matches_the_formats():
    """u = ε_machine / 2 of each dtype, as NumPy's and ml_dtypes' finfo report it."""
    assert DTYPES == ("float16", "bfloat16", "float32", "float64")
    for name in ("float16", "float32", "float64"):
        assert UNIT_ROUNDOFF[name] == float(np.finfo(name).eps) / 2
    assert UNIT_ROUNDOFF["bfloat16"] == float(ml_dtypes.finfo(ml_dtypes.bfloat16).eps) / 2


@pytest.mark.parametrize(
    ("dtype", "value", "expected"),
    [
        ("float16", 1 + 2**-12, 1.0),  # below half the spacing 2**-10 of [1, 2)
        ("float16", 1 + 2**-11, 1.0),  # a tie: to the even neighbour 1
        ("float16", 1 + 3 * 2**-11, 1 + 2**-9),  # a tie between 1 + 2**-10 and 1 + 2**-9: to even
        ("float16", 1 + 2**-11 + 2**-40, 1 + 2**-10),  # just past the tie
        ("float16", 0.1, 0.0999755859375),  # 1638/16384
        ("float16", 65519.0, 65504.0),  # the largest finite float16
        ("float16", 2.0**-24, 2.0**-24),  # the smallest subnormal
        ("float16", 2.0**-26, 0.0),  # a quarter of it
        ("bfloat16", 0.1, 0.10009765625),  # 205/2048
        ("bfloat16", 1 + 2**-8, 1.0),  # a tie: to even
        ("bfloat16", 1 + 3 * 2**-8, 1 + 2**-6),  # a tie: to even
        ("bfloat16", 1 + 2**-8 + 2**-30, 1 + 2**-7),  # just past the tie (lost by rounding via float32)
        ("bfloat16", 3.0e38, 226 * 2.0**120),  # 3e38 = 1.7632·2**127 → 226/128·2**127
        ("bfloat16", 3.3961e38, 255 * 2.0**120),  # just below the overflow tie 255.5·2**120: the largest finite
        ("float32", 0.1, float(np.float32(0.1))),
        ("float32", 1 + 2**-25, 1.0),
        ("float32", 1 + 2**-24 + 2**-50, 1 + 2**-23),
        ("float64", 0.1, 0.1),
    ],
)
def test_round_to_known_values(dtype, value, expected):
    assert round_to(value, dtype) == expected
    assert round_to(-value, dtype) == -expected


@pytest.mark.parametrize(
    ("dtype", "value"),
    [("float16", 70000.0), ("float16", 65520.0), ("bfloat16", 1e39), ("bfloat16", 3.3962e38), ("float32", 1e39)],
)
def test_overflow_becomes_inf(dtype, value):
    """Beyond the range (65520 is the tie past 65504, rounding to even goes up) gives ±inf,
    without a RuntimeWarning (pytest turns warnings into errors here)."""
    assert_array_equal(round_to([value, -value], dtype), [np.inf, -np.inf])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_round_to_matches_exact_rounding(dtype):
    """Random magnitudes across the range, and values just around the midpoints between
    neighbours (where double rounding goes wrong), round exactly as IEEE says."""
    p, emin, emax = FORMATS[dtype]
    rng = np.random.default_rng(7)
    values = list(rng.standard_normal(300) * 2.0 ** rng.integers(emin - p - 2, emax + 2, 300))
    for base in rng.uniform(1, 2, 40) * 2.0 ** rng.integers(emin - p + 3, emax, 40):
        ulp = 2.0 ** (math.frexp(base)[1] - p)
        midpoint = math.floor(base / ulp) * ulp + ulp / 2
        values += [midpoint, midpoint * (1 + 2**-40), midpoint * (1 - 2**-40), -midpoint]
    values = np.array(values)
    expected = np.array([_exact_round(float(v), dtype) for v in values])
    assert_array_equal(round_to(values, dtype), expected)


def test_round_to_keeps_specials_and_shape():
    """NaN, ±inf and -0 survive; the result is a float64 array of the input's shape."""
    for dtype in DTYPES:
        out = round_to([[np.nan, np.inf], [-np.inf, -0.0]], dtype)
        assert out.dtype == np.float64
        assert out.shape == (2, 2)
        assert np.isnan(out[0, 0])
        assert_array_equal(out[0, 1:], [np.inf])
        assert out[1, 0] == -np.inf
        assert out[1, 1] == 0.0
        assert np.signbit(out[1, 1])


@pytest.mark.parametrize("dtype", ["float8", "half", "int8", "fp16"])
def test_unknown_dtype_raises_naming_it(dtype):
    with pytest.raises(ValueError, match=dtype):
        round_to([1.0], dtype)
    with pytest.raises(ValueError, match=dtype):
        batch_norm_train(np.ones((2, 2)), dtype=dtype)


def _case():
    """Inputs with plenty of digits, so that rounding them to any dtype changes them."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 3, 5)) * [[[1.0], [30.0], [0.01]]] + [[[0.3], [-7.1], [100.0]]]
    return x, rng.uniform(0.5, 2, 3), rng.uniform(-1, 1, 3), rng.standard_normal((4, 3, 5))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_train_computes_on_rounded_inputs(dtype):
    """dtype=d is float64 batch norm on x, γ and β rounded to d, bit for bit; and the
    rounding really happens (the float64 result on unrounded inputs differs)."""
    x, gamma, beta, _ = _case()
    result = batch_norm_train(x, gamma, beta, dtype=dtype)
    rounded = batch_norm_train(round_to(x, dtype), round_to(gamma, dtype), round_to(beta, dtype))
    for name in ("y", "mean", "var", "x_hat", "scale"):
        assert_array_equal(getattr(result, name), getattr(rounded, name), err_msg=name)
    assert not np.array_equal(result.y, batch_norm_train(x, gamma, beta).y)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_eval_and_backward_compute_on_rounded_inputs(dtype):
    """Inference mode also rounds the given statistics, and the backward pass rounds dy."""
    x, gamma, beta, dy = _case()
    mean, var = np.array([0.31, -7.05, 100.001]), np.array([1.1, 901.3, 1.01e-4])
    r = {name: round_to(value, dtype) for name, value in (("x", x), ("g", gamma), ("b", beta), ("dy", dy))}
    y = batch_norm_eval(x, gamma, beta, mean, var, dtype=dtype)
    expected = batch_norm_eval(r["x"], r["g"], r["b"], round_to(mean, dtype), round_to(var, dtype))
    assert_array_equal(y, expected)
    grads = batch_norm_backward(x, gamma, beta, dy, dtype=dtype)
    ref = batch_norm_backward(r["x"], r["g"], r["b"], r["dy"])
    for name in ("dx", "dgamma", "dbeta"):
        assert_array_equal(getattr(grads, name), getattr(ref, name), err_msg=name)


def test_float16_overflow_in_input_reaches_only_its_channel():
    """70000 overflows float16 to inf, which makes its channel NaN; the others stay finite."""
    with np.errstate(invalid="ignore"):
        y = batch_norm_train([[1.0, 70000.0], [2.0, 3.0]], dtype="float16").y
    assert np.all(np.isnan(y[:, 1]))
    assert np.all(np.isfinite(y[:, 0]))
