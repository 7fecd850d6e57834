"""The conditioning numbers recorded with each result, which ledger entries match on."""

from __future__ import annotations

import math

import numpy as np

from conformance.judging.conditioning import worst_channel_offset
from datamodel.case import Case

#: Two training steps on a (2, 2) batch: channel 1 is well spread in the first batch and
#: nearly constant around 10 in the second; channel 0 is centred on 0 in both.
_BATCHES = np.array([
    [[-1.0, 9.0], [1.0, 11.0]],
    [[-1.0, 10.0], [1.0, 10.002]],
])  # fmt: skip


def _case_and_data():
    case = Case(shape=(2, 2), channel_axis=1, dtype="float64", x=_BATCHES, training_steps=2)
    return case, case.materialize()


def test_a_stepped_quantity_is_measured_in_the_batch_of_its_worst_step():
    case, data = _case_and_data()
    first, second = (worst_channel_offset(case, data, "y_train", (step, 0, 1)) for step in (0, 1))
    assert math.isclose(first, 10.0)  # |mean| 10, std 1
    assert math.isclose(second, 10.001 / 0.001, rel_tol=1e-6)  # the second batch's channel 1
    assert math.isclose(worst_channel_offset(case, data, "running_var@twin", (1, 1)), second)
    assert math.isclose(worst_channel_offset(case, data, "running_mean", (0, 1)), first)


def test_unstepped_quantities_use_the_first_batch_and_their_own_channel_position():
    case, data = _case_and_data()
    assert math.isclose(worst_channel_offset(case, data, "dx", (1, 1)), 10.0)
    assert worst_channel_offset(case, data, "dgamma", (0,)) == 0.0  # channel 0: mean 0
    assert worst_channel_offset(case, data, "dx", None) is None
    assert worst_channel_offset(case, data, "y_train", (5, 0, 1)) is None  # no such step
