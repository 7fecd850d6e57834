"""The case: everything needed to run one check on any framework.

A ``Case`` is framework-neutral.  ``eps`` and ``decay`` may be left to the framework
(``None``); an adapter resolves them with its declared defaults.  Data is either explicit
(arrays) or a seeded ``Generator`` with per-channel location and scale, so ill-conditioned
data (a large mean relative to the spread, constant channels, heavy tails, outliers) can be
described in a few numbers and regenerated exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from reference import round_to
from reference.forward import ChannelLayout

SCHEMA_VERSION = 1
DISTRIBUTIONS = ("normal", "uniform", "student_t")
DEVICES = ("cpu", "gpu")
CUMULATIVE = "cumulative"


@dataclass(frozen=True)
class Generator:
    """Seeded data: ``loc + scale · z`` per channel, z from ``distribution``.

    ``loc`` and ``scale`` are a number or one number per channel; a scale of 0 gives a
    constant channel.  ``outliers`` values per batch are replaced by ±``outlier_magnitude``
    (times the channel's scale, added to its loc).  ``df`` is Student's t degrees of freedom.
    """

    seed: int = 0
    distribution: str = "normal"
    loc: float | tuple[float, ...] = 0.0
    scale: float | tuple[float, ...] = 1.0
    df: float = 3.0
    outliers: int = 0
    outlier_magnitude: float = 100.0

    def draw(self, shape: tuple[int, ...], layout: ChannelLayout, count: int) -> list[np.ndarray]:
        """``count`` arrays of ``shape`` from one random stream (so steps differ)."""
        rng = np.random.default_rng(self.seed)
        loc = layout.broadcast(np.broadcast_to(np.asarray(self.loc, dtype=np.float64), (shape[layout.axis],)))
        scale = layout.broadcast(np.broadcast_to(np.asarray(self.scale, dtype=np.float64), (shape[layout.axis],)))
        arrays = []
        for _ in range(count):
            if self.distribution == "normal":
                z = rng.standard_normal(shape)
            elif self.distribution == "uniform":
                z = rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), shape)
            else:
                z = rng.standard_t(self.df, shape)
            if self.outliers:
                flat = z.reshape(-1)
                where = rng.choice(flat.size, size=min(self.outliers, flat.size), replace=False)
                flat[where] = rng.choice([-1.0, 1.0], size=where.size) * self.outlier_magnitude
            arrays.append(loc + scale * z)
        return arrays


ArraySource = np.ndarray | Generator


@dataclass(frozen=True, eq=False)
class Case:
    """One conformance check, independent of any framework.

    ``x`` holds either one batch of ``shape`` (used for every training step), a stack of
    ``training_steps`` batches, or a ``Generator``.  ``gamma``/``beta`` default to ones and
    zeros, running statistics to the usual initial 0 and 1, ``dy`` to a seeded normal draw.
    ``decay`` is the canonical decay (fraction of the old running statistic kept), the string
    ``"cumulative"`` for a plain cumulative average, or ``None`` for the framework default.
    """

    shape: tuple[int, ...]
    channel_axis: int
    dtype: str
    x: ArraySource
    eps: float | None = None
    decay: float | str | None = None
    affine: bool = True
    training_steps: int = 1
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    dy: ArraySource | None = None
    device: str = "cpu"
    frameworks: tuple[str, ...] = ()
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def layout(self) -> ChannelLayout:
        return ChannelLayout.of(self.shape, self.channel_axis)

    @property
    def channels(self) -> int:
        return self.shape[self.layout.axis]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        """Elements per batch."""
        return int(np.prod(self.shape, dtype=np.int64))

    def with_(self, **changes) -> Case:
        return replace(self, **changes)

    def materialize(self) -> CaseData:
        """The case's arrays, rounded to its dtype (as float64)."""
        layout = self.layout
        if isinstance(self.x, Generator):
            batches = self.x.draw(self.shape, layout, self.training_steps)
        elif self.x.shape == self.shape:
            batches = [self.x] * self.training_steps
        else:
            batches = list(self.x)
        if isinstance(self.dy, Generator):
            dy = self.dy.draw(self.shape, layout, 1)[0]
        elif self.dy is None:
            dy = Generator(seed=0x5EED).draw(self.shape, layout, 1)[0]
        else:
            dy = self.dy
        channels = self.channels

        def vector(value, default):
            return round_to(np.full(channels, default) if value is None else value, self.dtype)

        return CaseData(
            batches=[round_to(b, self.dtype) for b in batches],
            gamma=vector(self.gamma, 1.0) if self.affine else None,
            beta=vector(self.beta, 0.0) if self.affine else None,
            running_mean=vector(self.running_mean, 0.0),
            running_var=vector(self.running_var, 1.0),
            dy=round_to(dy, self.dtype),
        )


@dataclass(frozen=True, eq=False)
class CaseData:
    """A case's concrete arrays, already rounded to the case's dtype, stored as float64."""

    batches: list[np.ndarray]
    gamma: np.ndarray | None
    beta: np.ndarray | None
    running_mean: np.ndarray
    running_var: np.ndarray
    dy: np.ndarray
