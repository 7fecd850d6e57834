"""Comparison of one observed quantity with the reference, under per-element tolerances.

Order of checks, as in ``torch.testing``: shape, then the positions of NaN and ±inf (which
must match exactly), then values, in float64.  The result says how far the worst element
was from its allowed error (``ratio``: 1.0 is exactly at the limit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodel.verdicts import DISCREPANCY, ERROR, PASS, UNSUPPORTED, VERDICTS

__all__ = ["DISCREPANCY", "ERROR", "PASS", "UNSUPPORTED", "VERDICTS", "Comparison", "compare"]


@dataclass(frozen=True)
class Comparison:
    """How one observed quantity compares with the reference."""

    quantity: str
    verdict: str
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    allowed: float | None = None  # allowed error at the worst element (largest error/allowed)
    error_at_worst: float | None = None  # |error| at that element
    ratio: float | None = None  # |error| / allowed at that element
    mismatched: int = 0
    total: int = 0
    #: elements whose allowed error is at least their own size: the check says little there
    #: (ill-conditioned data can make a correct result that uncertain); a pass is not a proof
    uninformative: int = 0
    worst_index: tuple[int, ...] | None = None
    message: str = ""
    #: the largest error a numerically stable implementation in the case's dtype makes on this
    #: quantity of this case, and ``max_abs_error`` in units of it (floored): see ``accuracy``
    stable_error: float | None = None
    accuracy_grade: float | None = None


def _nonfinite_mismatch(expected: np.ndarray, observed: np.ndarray) -> np.ndarray:
    same_nan = np.isnan(expected) == np.isnan(observed)
    exp_inf, obs_inf = np.isinf(expected), np.isinf(observed)
    same_inf = (exp_inf == obs_inf) & (~exp_inf | (np.sign(expected) == np.sign(observed)))
    return ~(same_nan & same_inf)


def compare(
    quantity: str, expected: np.ndarray, observed: np.ndarray, allowed: np.ndarray, max_finite: float = np.inf
) -> Comparison:
    """Compare ``observed`` with ``expected`` element by element under ``allowed`` errors.

    ``max_finite`` is the largest finite number of the output dtype: where the reference's
    value (give or take its tolerance) lies beyond it, the correctly rounded result is ±∞,
    so an observed infinity of the same sign is the right answer there.
    """
    expected = np.asarray(expected, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    if expected.shape != observed.shape:
        return Comparison(
            quantity, DISCREPANCY, total=expected.size,
            message=f"{quantity}: observed shape {observed.shape}, but the reference has shape {expected.shape}",
        )  # fmt: skip
    allowed = np.broadcast_to(np.asarray(allowed, dtype=np.float64), expected.shape)
    with np.errstate(all="ignore"):
        overflows = np.isfinite(expected) & (np.abs(expected) + allowed > max_finite)
        rounded_to_inf = overflows & np.isinf(observed) & (np.sign(observed) == np.sign(expected))
    if np.any(rounded_to_inf):  # the correctly rounded result: count it as exact
        observed = np.where(rounded_to_inf, expected, observed)
    wrong_special = _nonfinite_mismatch(expected, observed)
    finite = np.isfinite(expected) & np.isfinite(observed)
    with np.errstate(all="ignore"):
        error = np.where(finite, np.abs(observed - expected), 0.0)
        relative = np.where(finite & (expected != 0), error / np.abs(expected), np.where(error > 0, np.inf, 0.0))
        ratio = np.where(allowed > 0, error / allowed, np.where(error > 0, np.inf, 0.0))
    mismatched_values = ratio > 1.0
    uninformative = int(np.count_nonzero(np.isfinite(expected) & (expected != 0) & (allowed >= np.abs(expected))))
    mismatched = int(np.count_nonzero(mismatched_values | wrong_special))
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else None
    worst_ratio = float(ratio[worst]) if worst is not None else 0.0
    common = {
        "max_abs_error": float(error.max(initial=0.0)),
        "max_rel_error": float(relative.max(initial=0.0)),
        "allowed": float(allowed[worst]) if worst is not None else 0.0,
        "error_at_worst": float(error[worst]) if worst is not None else 0.0,
        "ratio": worst_ratio,
        "mismatched": mismatched,
        "total": int(expected.size),
        "uninformative": uninformative,
        "worst_index": tuple(int(i) for i in worst) if worst is not None else None,
    }
    if np.any(wrong_special):
        where = tuple(int(i) for i in np.argwhere(wrong_special)[0])
        # The worst element is the first NaN/inf mismatch; no tolerance covers it.
        common.update(worst_index=where, ratio=float("inf"), allowed=float(allowed[where]),
                      error_at_worst=float("inf"))  # fmt: skip
        return Comparison(
            quantity, DISCREPANCY, **common,
            message=(
                f"{quantity}: {int(np.count_nonzero(wrong_special))} of {expected.size} elements differ in NaN/inf "
                f"position; first at {where}: observed {float(observed[where])!r}, reference {float(expected[where])!r}"
            ),
        )  # fmt: skip
    if mismatched:
        return Comparison(
            quantity, DISCREPANCY, **common,
            message=(
                f"{quantity}: {mismatched} of {expected.size} elements ({100.0 * mismatched / expected.size:.1f}%) "
                f"exceed the tolerance; worst at {common['worst_index']}: observed {float(observed[worst])!r}, reference "
                f"{float(expected[worst])!r}, |error| {common['error_at_worst']:.3g} > allowed {common['allowed']:.3g} "
                f"(ratio {worst_ratio:.3g})"
            ),
        )  # fmt: skip
    return Comparison(quantity, PASS, **common)
