"""Degenerate inputs: the outcome is recorded and compared with the reference's defined behaviour.

* one value per channel (N = 1): σ² = 0, so y = β; the unbiased running variance is NaN;
* zero variance (every channel constant): y = β;
* NaN in x: the channels that hold a NaN are NaN in every output, the others are unaffected.

A framework that raises instead records an ``error`` outcome with its message.
"""

from __future__ import annotations

import numpy as np
import pytest

from datamodel.case import Case, Generator

from .helpers import check_or_skip, default_layout_axis

SHAPES = {1: (1, 3, 1, 1), -1: (1, 1, 1, 3)}


def _case(adapter, device, **fields) -> Case:
    axis = default_layout_axis(adapter)
    shape = fields.pop("shape", (4, 3, 2, 2) if axis == 1 else (4, 2, 2, 3))
    base = {"eps": 1e-3, "decay": 0.9, "training_steps": 2, "gamma": np.array([1.5, -0.5, 2.0]),
            "beta": np.array([0.25, -1.0, 0.5])}  # fmt: skip
    base.update(fields)
    return Case(shape=shape, channel_axis=axis, dtype="float32", device=device, **base)


def test_one_value_per_channel(conformance, adapter, bnconf_device):
    case = _case(adapter, bnconf_device, shape=SHAPES[default_layout_axis(adapter)], x=Generator(seed=3))
    check_or_skip(conformance, adapter, case, "degenerate")


@pytest.mark.parametrize("level", [0.0, 3.0, 1000.0])
def test_zero_variance(conformance, adapter, bnconf_device, level):
    case = _case(adapter, bnconf_device, x=Generator(seed=4, loc=level, scale=0.0))
    check_or_skip(conformance, adapter, case, "degenerate")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_in_x(conformance, adapter, bnconf_device, value):
    axis = default_layout_axis(adapter)
    shape = (4, 3, 2, 2) if axis == 1 else (4, 2, 2, 3)
    x = Generator(seed=5).draw(shape, Case(shape=shape, channel_axis=axis, dtype="float32", x=Generator()).layout, 1)[0]
    index = (1, 1, 0, 1) if axis == 1 else (1, 0, 1, 1)  # channel 1 in both layouts
    x[index] = value
    case = _case(adapter, bnconf_device, x=x, training_steps=1)
    check_or_skip(conformance, adapter, case, "degenerate")
