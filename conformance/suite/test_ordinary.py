"""Every adapter against the reference on ordinary data, over a fixed grid.

The grid covers every rank, layout and option an adapter declares; a combination an
adapter cannot run is skipped with its reason.  Property-based search over harder data
lives in the other modules of this suite.
"""

from __future__ import annotations

import numpy as np
import pytest

from datamodel.case import CUMULATIVE, Case, Generator

from .helpers import check_or_skip

SHAPES = {2: (6, 3), 3: (4, 3, 5), 4: (3, 3, 4, 5), 5: (2, 3, 3, 4, 2)}


def _grid():
    for rank, shape in SHAPES.items():
        for layout in ("channels_first", "channels_last"):
            if rank == 2 and layout == "channels_last":
                continue  # (N, C): both layouts are the same
            for affine in (True, False):
                yield pytest.param(rank, shape, layout, affine, id=f"rank{rank}-{layout}-{'affine' if affine else 'plain'}")


def _case(shape, layout, affine, device, **changes) -> Case:
    axis = 1 if layout == "channels_first" else -1
    channels = shape[axis]
    rng = np.random.default_rng(len(shape))
    base = Case(
        shape=tuple(shape), channel_axis=axis, dtype="float32",
        x=Generator(seed=7, loc=tuple(rng.uniform(-2, 2, channels)), scale=tuple(rng.uniform(0.5, 2, channels))),
        eps=1e-3, decay=0.8, affine=affine, training_steps=3,
        gamma=rng.uniform(0.5, 1.5, channels) if affine else None,
        beta=rng.uniform(-1, 1, channels) if affine else None,
        running_mean=rng.uniform(-1, 1, channels), running_var=rng.uniform(0.5, 2, channels), device=device,
    )  # fmt: skip
    return base.with_(**changes)


@pytest.mark.parametrize(("rank", "shape", "layout", "affine"), list(_grid()))
def test_ordinary_data(conformance, adapter, bnconf_device, rank, shape, layout, affine):
    """Training, running statistics, inference and gradients on well-conditioned data."""
    check_or_skip(conformance, adapter, _case(shape, layout, affine, bnconf_device), "ordinary")


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_ordinary_dtypes(conformance, adapter, bnconf_device, dtype):
    """Every compute dtype, on a rank-4 input in the adapter's default layout."""
    layout = "channels_first" if adapter.conventions.default_channel_axis == 1 else "channels_last"
    shape = (3, 3, 4, 5) if layout == "channels_first" else (3, 4, 5, 3)
    check_or_skip(conformance, adapter, _case(shape, layout, True, bnconf_device, dtype=dtype), "ordinary")


@pytest.mark.parametrize("setting", ["defaults", "cumulative"])
def test_ordinary_momentum_settings(conformance, adapter, bnconf_device, setting):
    """The framework's own ε and momentum defaults, and the cumulative average where offered."""
    layout = "channels_first" if adapter.conventions.default_channel_axis == 1 else "channels_last"
    shape = (4, 3, 5) if layout == "channels_first" else (4, 5, 3)
    decay = None if setting == "defaults" else CUMULATIVE
    check_or_skip(conformance, adapter, _case(shape, layout, True, bnconf_device, eps=None, decay=decay), "ordinary")
