"""Probe each framework's conventions by measurement, and compare with what its adapter declares.

Each probe runs a case built so that the competing conventions predict clearly different
numbers, and picks the one the framework's output is closest to:

* momentum direction: one step with decay 0.8 from a zero running mean; the declared mapping
  predicts 0.2·μ, the inverted one 0.8·μ;
* running-variance estimator: one step with decay 0 over N = 4 values; biased σ² vs 4/3·σ²;
* ε placement: variance 1 and ε = 1; inside divides by √2, outside by 2;
* ε default: variance ≈ 1e-6, so y reveals √(σ² + ε) and hence ε;
* momentum default: one step from a zero running mean with the framework's default.

Each probe writes a ``probe`` record with the ``declared`` and ``probed`` values and the
observed numbers it decided from; a mismatch is a discrepancy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from datamodel.case import Case


def _case(adapter, device, values_per_channel: list[list[float]], **fields) -> Case:
    """A rank-2 case (N values, C channels) in float64, channels on axis 1."""
    x = np.array(values_per_channel, dtype=np.float64).T  # (N, C)
    base = {"eps": 1e-5, "decay": 0.5, "affine": False, "training_steps": 1, "running_mean": np.zeros(x.shape[1]),
            "running_var": np.ones(x.shape[1])}  # fmt: skip
    base.update(fields)
    return Case(shape=x.shape, channel_axis=1, dtype="float64", x=x, device=device, **base)


def _observe(conformance, adapter, case: Case, quantity: str) -> np.ndarray:
    reason = adapter.unsupported_reason(case)
    if reason is not None:
        pytest.skip(reason)
    if quantity.startswith("running_") and not adapter.conventions.reference.tracks_running_stats:
        pytest.skip(f"{adapter.label} keeps no running statistics")
    phase = "inference" if quantity == "y_eval" else "training"
    outcome = conformance.observe(adapter, case, "conventions", phases=(phase,))[quantity]
    if outcome.error:
        pytest.fail(f"{adapter.label} raised while probing {quantity}: {outcome.error}")
    return outcome.value


def _closest(observed: float, candidates: dict[str, float]) -> str:
    return min(candidates, key=lambda name: abs(observed - candidates[name]))


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


def _probe_record(conformance, adapter, case, convention: str, declared, probed, evidence: dict[str, float]) -> None:
    """A ``probe`` record: numbers agree within 2 %, names exactly."""
    agrees = declared == probed if not isinstance(declared, float) else math.isclose(declared, probed, rel_tol=0.02)
    conformance.record_probe(adapter, case, convention=convention, declared=declared, probed=probed, agrees=agrees,
                             evidence=evidence, declared_conventions=declared_conventions(adapter))  # fmt: skip


def test_momentum_direction(conformance, adapter, bnconf_device):
    values = [[1.0, 3.0, 5.0, 7.0]]  # batch mean 4
    case = _case(adapter, bnconf_device, values, decay=0.8)
    observed = float(_observe(conformance, adapter, case, "running_mean")[0, 0])
    declared = adapter.conventions.momentum_form
    flipped = "old_weight" if declared == "new_weight" else "new_weight"
    probed = _closest(observed, {declared: 0.2 * 4.0, flipped: 0.8 * 4.0})
    _probe_record(conformance, adapter, case, "momentum_form", declared, probed, {"observed_running_mean": observed})


def test_running_variance_estimator(conformance, adapter, bnconf_device):
    values = [[1.0, 3.0, 5.0, 7.0]]  # biased variance 5, unbiased 20/3
    case = _case(adapter, bnconf_device, values, decay=0.0)
    observed = float(_observe(conformance, adapter, case, "running_var")[0, 0])
    probed = _closest(observed, {"biased": 5.0, "unbiased": 20.0 / 3.0})
    declared = adapter.conventions.reference.running_variance
    _probe_record(conformance, adapter, case, "running_variance", declared, probed, {"observed_running_var": observed})


def test_eps_placement(conformance, adapter, bnconf_device):
    values = [[-1.0, 1.0, -1.0, 1.0]]  # mean 0, variance 1
    case = _case(adapter, bnconf_device, values, eps=1.0)
    observed = float(_observe(conformance, adapter, case, "y_train")[0, 1, 0])
    probed = _closest(observed, {"inside": 1.0 / math.sqrt(2.0), "outside": 1.0 / 2.0})
    declared = adapter.conventions.reference.eps_placement
    _probe_record(conformance, adapter, case, "eps_placement", declared, probed, {"observed_y": observed})


def test_eps_default(conformance, adapter, bnconf_device):
    values = [[-1e-3, 1e-3, -1e-3, 1e-3]]  # variance 1e-6: y = x/√(1e-6 + ε) reveals ε
    case = _case(adapter, bnconf_device, values, eps=None)
    observed = float(_observe(conformance, adapter, case, "y_train")[0, 1, 0])
    probed = float((1e-3 / observed) ** 2 - 1e-6)
    probed = float(f"{probed:.2g}")
    _probe_record(conformance, adapter, case, "eps_default", float(adapter.conventions.eps_default), probed, {"observed_y": observed})


def test_momentum_default(conformance, adapter, bnconf_device):
    values = [[1.0, 3.0, 5.0, 7.0]]
    case = _case(adapter, bnconf_device, values, decay=None)
    observed = float(_observe(conformance, adapter, case, "running_mean")[0, 0])
    probed = float(f"{1.0 - observed / 4.0:.4g}")  # running = d·0 + (1 − d)·4
    declared = float(adapter.conventions.default_decay)
    _probe_record(conformance, adapter, case, "default_decay", declared, probed, {"observed_running_mean": observed})
