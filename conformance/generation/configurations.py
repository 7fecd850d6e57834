"""Layouts and the fixed pool of compile configurations the ``ci`` and ``dev`` profiles draw from.

A compiling engine compiles once per *configuration*: shape, channel axis, dtype and whether
γ and β exist, and for engines that read them when they trace (Keras' compiled modes,
``torch.compile``) ε and the decay too.  Drawn freely, nearly every example of a short run is
a new configuration, and a compiling engine spends most of the run compiling (69–89% of a
cold ``ci`` run before this pool).  ``configuration_pool`` builds a small fixed set instead,
from the adapter's capabilities alone, that still covers what a short run must cover:

* every supported rank, with a small and a larger shape each (two values per channel and one
  channel; a batch of one; a channel count of 16; 4,096 elements, the ``ci`` bound);
* the channels first, last and in between where the adapter takes any channel axis;
* every supported dtype, each with and without γ and β where they can be switched off;
* ε from 10⁻⁸ to 1 and the framework's default, the decay's ends, usual values and the
  cumulative average where offered.

Each configuration takes the next value of every one of these lists, cycling, so the pool has
as many configurations as the longest list has values, and every value appears.  The data,
its conditioning, γ, β, the running statistics and the number of steps are still drawn for
every example.  The ``nightly`` profile explores configurations freely (``strategies.layouts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from adapters.base import Capabilities
from datamodel.case import CUMULATIVE

#: Orders in which values are taken: the first is the simplest, what a failure shrinks to.
DTYPE_ORDER = ("float32", "float64", "float16", "bfloat16")
POOL_EPSILONS = (None, 1e-3, 1e-5, 0.1, 1e-8, 1.0)
POOL_DECAYS = (None, 0.9, 0.0, 0.99, 1.0, 0.3)

#: Shapes with the channels at index 1, and where the channels go ("first": index 1, "last",
#: "middle": index 2 of a rank ≥ 4 batch).  Fitted to the element bound by ``_fit``.
_SHAPES = (
    ((2, 1), "first"),  # the least a batch norm takes: one channel, two values
    ((32, 16), "first"),
    ((2, 3, 1), "last"),
    ((4, 5, 7), "first"),
    ((2, 3, 4, 4), "first"),
    ((1, 6, 5, 3), "last"),  # a batch of one: the statistics come from the spatial axes
    ((16, 8, 8, 4), "middle"),  # 4,096 elements, 512 values per channel
    ((2, 2, 3, 3, 3), "first"),
    ((1, 4, 2, 5, 3), "last"),
)


@dataclass(frozen=True)
class Layout:
    shape: tuple[int, ...]
    channel_axis: int

    @property
    def channels(self) -> int:
        return self.shape[self.channel_axis]


@dataclass(frozen=True)
class Configuration:
    """What a compiling engine compiles for: the layout, dtype, affine, ε and decay of a case."""

    layout: Layout
    dtype: str
    affine: bool
    eps: float | None
    decay: float | str | None


def _fit(shape: tuple[int, ...], *, max_elements: int, min_per_channel: int) -> tuple[int, ...]:
    """``shape`` (channels at index 1) cut down to ``max_elements`` with ``min_per_channel`` values per channel."""
    channels = min(shape[1], max(1, max_elements // min_per_channel))
    others = [shape[0], *shape[2:]]
    while channels * int(np.prod(others)) > max_elements:
        largest = int(np.argmax(others))
        others[largest] = max(1, others[largest] // 2)
    if int(np.prod(others)) < min_per_channel:  # grow the batch; past the bound, the batch alone holds N
        rest = int(np.prod(others[1:]))
        others[0] = -(-min_per_channel // rest)
        if channels * others[0] * rest > max_elements:
            others = [min_per_channel] + [1] * (len(others) - 1)
    return (others[0], channels, *others[1:])


def _layout(shape: tuple[int, ...], where: str, any_channel_axis: bool) -> Layout:
    rank = len(shape)
    if not any_channel_axis or rank == 2 or where == "first" or (where == "middle" and rank < 4):
        return Layout(shape, 1)
    target = 2 if where == "middle" else rank - 1
    moved = list(shape)
    moved.insert(target, moved.pop(1))
    return Layout(tuple(moved), -1 if target == rank - 1 else target)


def _layouts(capabilities: Capabilities, max_elements: int, min_per_channel: int) -> list[Layout]:
    shapes = [entry for entry in _SHAPES if len(entry[0]) in capabilities.ranks]
    shapes += [((2, 3, *[2] * (rank - 2)), "first") for rank in sorted(capabilities.ranks)
               if not any(len(shape) == rank for shape, _ in _SHAPES)]  # fmt: skip
    found: list[Layout] = []
    for shape, where in shapes:
        fitted = _fit(shape, max_elements=max_elements, min_per_channel=min_per_channel)
        layout = _layout(fitted, where, capabilities.any_channel_axis)
        if layout not in found:
            found.append(layout)
    return found


def supported_dtypes(capabilities: Capabilities, dtypes: tuple[str, ...] | None = None) -> list[str]:
    """``dtypes`` (default: all, in ``DTYPE_ORDER``) that ``capabilities`` supports; an error if none is."""
    allowed = [d for d in (dtypes or DTYPE_ORDER) if d in capabilities.dtypes]
    if not allowed:
        raise ValueError(f"none of the dtypes {dtypes} is supported (supported: {sorted(capabilities.dtypes)})")
    return allowed


@cache
def configuration_pool(capabilities: Capabilities, *, max_elements: int, min_per_channel: int = 2,
                       dtypes: tuple[str, ...] | None = None) -> tuple[Configuration, ...]:  # fmt: skip
    """The fixed configurations for ``capabilities`` (see the module docstring); the first is the simplest."""
    if min_per_channel < 1 or max_elements < min_per_channel:
        raise ValueError(f"need 1 ≤ min_per_channel ≤ max_elements, got min_per_channel {min_per_channel!r}, "
                         f"max_elements {max_elements!r}")  # fmt: skip
    allowed = supported_dtypes(capabilities, dtypes)
    layouts = _layouts(capabilities, max_elements, min_per_channel)
    if not layouts:
        raise ValueError(f"no rank to draw: the capabilities list ranks {sorted(capabilities.ranks)}")
    affines = (True, False) if capabilities.affine_off else (True,)
    decays = (*POOL_DECAYS, CUMULATIVE) if capabilities.cumulative else POOL_DECAYS
    size = max(len(layouts), len(allowed) * len(affines), len(POOL_EPSILONS), len(decays))
    return tuple(
        Configuration(
            layout=layouts[i % len(layouts)],
            dtype=allowed[i % len(allowed)],
            affine=affines[(i // len(allowed)) % len(affines)],
            eps=POOL_EPSILONS[i % len(POOL_EPSILONS)],
            decay=decays[i % len(decays)],
        )
        for i in range(size)
    )
