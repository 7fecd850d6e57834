"""Probe each framework's conventions by measurement, and compare with what its adapter declares.

Each probe runs a float64 case built so that the competing conventions predict clearly
different numbers:

* momentum direction: one step with decay 0.8 from a zero running mean; the declared mapping
  predicts 0.2·μ, the inverted one 0.8·μ;
* running-variance estimator: one step with decay 0 over N = 4 values; biased σ² vs 4/3·σ²;
* ε placement: variance 1 and ε = 1; inside divides by √2, outside by 2;
* ε default: variance 1e-6, so y reveals √(σ² + ε) and hence ε; the starting running
  statistics are the batch's own (mean 0, variance 1e-6), so a framework that normalizes
  with the running statistics it has just updated (``normalization="running"``) reveals the
  same √(1e-6 + ε);
* momentum default: one step from a zero running mean with the framework's default.

The candidates' numbers are the reference's (``conformance.judging.check.expected_values``)
under each candidate's settings, and each comes with the tolerance model's allowed error.
The nearest candidate is the probed convention, but only if the observation lies within its
allowed error: a framework with a third behaviour (a debiased average, ε added twice) matches
neither, and that is a discrepancy, never a pass by proximity.  For the two defaults the
candidates are the declared value and the value the observation implies.

Each probe writes a ``probe`` record with the ``declared`` and ``probed`` values; its evidence
holds the observed number, each candidate's prediction, and the residual and allowed error
of the nearest candidate.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest

from adapters.base import Settings
from conformance.judging.check import expected_values, tolerances
from datamodel.case import Case, CaseData

#: What ``probed`` says when the observation matches no candidate.
NEITHER = "neither"


def _case(adapter, device, values_per_channel: list[list[float]], **fields) -> Case:
    """A rank-2 case (N values, C channels) in float64, channels on axis 1."""
    x = np.array(values_per_channel, dtype=np.float64).T  # (N, C)
    base = {"eps": 1e-5, "decay": 0.5, "affine": False, "training_steps": 1, "running_mean": np.zeros(x.shape[1]),
            "running_var": np.ones(x.shape[1])}  # fmt: skip
    base.update(fields)
    return Case(shape=x.shape, channel_axis=1, dtype="float64", x=x, device=device, **base)


def _observe(conformance, adapter, case: Case, data: CaseData, quantity: str) -> np.ndarray:
    reason = adapter.unsupported_reason(case)
    if reason is not None:
        pytest.skip(reason)
    if quantity.startswith("running_") and not adapter.conventions.reference.tracks_running_stats:
        pytest.skip(f"{adapter.label} keeps no running statistics")
    phase = "inference" if quantity == "y_eval" else "training"
    outcome = conformance.observe(adapter, case, "conventions", data, phases=(phase,))[quantity]
    if outcome.unsupported:
        pytest.skip(outcome.unsupported)
    if outcome.error:
        pytest.fail(f"{adapter.label} raised while probing {quantity}: {outcome.error}")
    return outcome.value


@dataclass(frozen=True)
class Prediction:
    """A candidate convention's value of the probed element, and the error the tolerance model allows."""

    value: float
    allowed: float


def _predict(case: Case, data: CaseData, settings: Settings, quantity: str, index: tuple[int, ...]) -> Prediction:
    expected = expected_values(case, data, settings)
    allowed = tolerances(case, data, settings, expected)
    return Prediction(float(expected.values[quantity][index]), float(allowed[quantity][index]))


@dataclass(frozen=True)
class Verdict:
    """Which candidate the observation is nearest to, and whether it lies within that one's allowed error."""

    nearest: str
    matches: bool
    evidence: dict[str, float]
    message: str


def _judge(convention: str, what: str, observed: float, predictions: dict[str, Prediction]) -> Verdict:
    """The nearest candidate, and whether its residual is within its allowed error.

    ``what`` names the observed element in the message ("running_mean[0, 0]").
    """
    nearest = min(predictions, key=lambda name: abs(observed - predictions[name].value))
    residual = abs(observed - predictions[nearest].value)
    allowed = predictions[nearest].allowed
    matches = bool(residual <= allowed)  # a NaN residual matches nothing
    evidence = {f"predicted[{name}]": p.value for name, p in predictions.items()}
    evidence.update(residual=residual, allowed=allowed)
    candidates = ", ".join(f"{name} → {p.value:.16g}" for name, p in predictions.items())
    message = (
        f"{convention}: observed {what} = {observed:.16g}, which no candidate predicts: {candidates} "
        f"(allowed error {allowed:.3g}; the nearest, {nearest}, is off by {residual:.3g})"
    )
    return Verdict(nearest, matches, evidence, message)


def declared_conventions(adapter) -> dict[str, str]:
    """Every convention the adapter declares, as the report's conventions table shows it."""
    declared = adapter.conventions
    new_weight = declared.momentum_form == "new_weight"
    return {
        "momentum": f"{declared.momentum_name} = {declared.momentum_default:g} "
                    f"({'weights the new batch' if new_weight else 'weights the old statistic'})",
        "canonical decay": f"{declared.default_decay:g} (d = {'1 − momentum' if new_weight else 'momentum'})",
        "ε default": f"{declared.eps_default:g}",
        "ε placement": declared.reference.eps_placement,
        "running-variance estimator": declared.reference.running_variance,
        "normalization variance": declared.normalization_variance,
        "variance algorithm": declared.variance_algorithm,
        "running average": declared.reference.averaging if declared.reference.tracks_running_stats else "none kept",
        "default channel axis": str(declared.default_channel_axis),
    }  # fmt: skip


def _probe_named(
    conformance, adapter, case: Case, data: CaseData, *, convention: str, declared: str, quantity: str,
    index: tuple[int, ...], candidates: dict[str, Settings], observed_key: str,
) -> None:  # fmt: skip
    """Probe a convention with named candidates (``declared`` among them); record the verdict."""
    observed = float(_observe(conformance, adapter, case, data, quantity)[index])
    predictions = {name: _predict(case, data, settings, quantity, index) for name, settings in candidates.items()}
    verdict = _judge(convention, f"{quantity}{list(index)}", observed, predictions)
    probed = verdict.nearest if verdict.matches else NEITHER
    conformance.record_probe(adapter, case, convention=convention, declared=declared, probed=probed,
                             agrees=probed == declared, evidence={observed_key: observed, **verdict.evidence},
                             declared_conventions=declared_conventions(adapter),
                             message=None if verdict.matches else verdict.message)  # fmt: skip


def _probe_default(
    conformance, adapter, case: Case, data: CaseData, *, convention: str, label: str, declared: float,
    quantity: str, index: tuple[int, ...], with_value, implied_by, observed_key: str,
) -> None:  # fmt: skip
    """Probe a default value: the declared one must predict the observation within its allowed error.

    ``with_value(v)``: the settings with the default replaced by ``v``; ``implied_by(observed)``:
    the value the observation implies (NaN when it implies none).  Otherwise the probed value
    is the implied one, or ``neither`` when that does not predict the observation either.
    """
    observed = float(_observe(conformance, adapter, case, data, quantity)[index])
    implied = float(implied_by(observed))
    candidates = {f"declared {label} {declared:g}": declared}
    if math.isfinite(implied) and implied >= 0:
        candidates[f"implied {label} {implied:.6g}"] = implied
    predictions = {name: _predict(case, data, with_value(v), quantity, index) for name, v in candidates.items()}
    verdict = _judge(convention, f"{quantity}{list(index)}", observed, predictions)
    declared_name = next(iter(candidates))
    if verdict.matches and verdict.nearest == declared_name:
        probed: float | str = declared
    elif verdict.matches:
        probed = float(f"{implied:.4g}")
    else:
        probed = NEITHER
    evidence = {observed_key: observed, f"implied {label}": implied, **verdict.evidence}
    message = None
    if probed != declared:
        message = verdict.message if probed == NEITHER else (
            f"{convention}: declared {declared:g}, but observed {quantity}{list(index)} = {observed:.16g} implies "
            f"{implied:.6g} (declared predicts {predictions[declared_name].value:.16g}, allowed error "
            f"{predictions[declared_name].allowed:.3g})"
        )  # fmt: skip
    conformance.record_probe(adapter, case, convention=convention, declared=declared, probed=probed,
                             agrees=probed == declared, evidence=evidence,
                             declared_conventions=declared_conventions(adapter), message=message)  # fmt: skip


def test_momentum_direction(conformance, adapter, bnconf_device):
    values = [[1.0, 3.0, 5.0, 7.0]]  # batch mean 4
    case = _case(adapter, bnconf_device, values, decay=0.8)
    settings = adapter.settings(case)
    declared = adapter.conventions.momentum_form
    flipped = "old_weight" if declared == "new_weight" else "new_weight"
    # The inverted mapping hands the framework 1 − d where it expects d.
    inverted = dataclasses.replace(settings, decay=1.0 - settings.decay)
    _probe_named(conformance, adapter, case, case.materialize(), convention="momentum_form", declared=declared,
                 quantity="running_mean", index=(0, 0), candidates={declared: settings, flipped: inverted},
                 observed_key="observed_running_mean")  # fmt: skip


def test_running_variance_estimator(conformance, adapter, bnconf_device):
    values = [[1.0, 3.0, 5.0, 7.0]]  # biased variance 5, unbiased 20/3
    case = _case(adapter, bnconf_device, values, decay=0.0)
    settings = adapter.settings(case)
    candidates = {
        estimator: dataclasses.replace(settings, conventions=dataclasses.replace(settings.conventions, running_variance=estimator))
        for estimator in ("biased", "unbiased")
    }
    _probe_named(conformance, adapter, case, case.materialize(), convention="running_variance",
                 declared=adapter.conventions.reference.running_variance, quantity="running_var", index=(0, 0),
                 candidates=candidates, observed_key="observed_running_var")  # fmt: skip


def test_eps_placement(conformance, adapter, bnconf_device):
    values = [[-1.0, 1.0, -1.0, 1.0]]  # mean 0, variance 1
    case = _case(adapter, bnconf_device, values, eps=1.0)
    settings = adapter.settings(case)
    candidates = {
        placement: dataclasses.replace(settings, conventions=dataclasses.replace(settings.conventions, eps_placement=placement))
        for placement in ("inside", "outside")
    }
    _probe_named(conformance, adapter, case, case.materialize(), convention="eps_placement",
                 declared=adapter.conventions.reference.eps_placement, quantity="y_train", index=(0, 1, 0),
                 candidates=candidates, observed_key="observed_y")  # fmt: skip


def test_eps_default(conformance, adapter, bnconf_device):
    values = [[-1e-3, 1e-3, -1e-3, 1e-3]]  # variance 1e-6: y = x/√(1e-6 + ε) reveals ε
    # Running statistics equal to the batch's: a blend d·r + (1 − d)·b normalizes with them too.
    case = _case(adapter, bnconf_device, values, eps=None, running_var=np.array([1e-6]))
    settings = adapter.settings(case)
    inside = settings.conventions.eps_placement == "inside"

    def implied(y: float) -> float:  # solve y = 1e-3/√(σ² + ε) (inside) or 1e-3/(σ + ε) (outside) for ε
        with np.errstate(all="ignore"):
            return float((1e-3 / y) ** 2 - 1e-6) if inside else float(1e-3 / y - 1e-3)

    _probe_default(conformance, adapter, case, case.materialize(), convention="eps_default", label="ε",
                   declared=float(adapter.conventions.eps_default), quantity="y_train", index=(0, 1, 0),
                   with_value=lambda eps: dataclasses.replace(settings, eps=eps), implied_by=implied,
                   observed_key="observed_y")  # fmt: skip


def test_momentum_default(conformance, adapter, bnconf_device):
    values = [[1.0, 3.0, 5.0, 7.0]]
    case = _case(adapter, bnconf_device, values, decay=None)
    settings = adapter.settings(case)
    conventions = adapter.conventions

    def with_decay(decay: float) -> Settings:
        return dataclasses.replace(settings, decay=decay, momentum=conventions.momentum_from_decay(decay))

    _probe_default(conformance, adapter, case, case.materialize(), convention="default_decay", label="decay",
                   declared=float(conventions.default_decay), quantity="running_mean", index=(0, 0),
                   with_value=with_decay, implied_by=lambda running: 1.0 - running / 4.0,  # running = d·0 + (1 − d)·4
                   observed_key="observed_running_mean")  # fmt: skip
