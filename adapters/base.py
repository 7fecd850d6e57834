"""The adapter protocol: what every framework adapter declares and does.

An adapter drives one framework's batch-norm layer.  It declares, as data, what it can run
(``Capabilities``) and the conventions it follows (``FrameworkConventions``: among them the
state the layer keeps beyond γ, β and the running statistics, ``StateVariable``, and the
shape it stores them in, ``VARIABLE_SHAPES``), and supplies a
handful of primitives (build a layer, load its state, a forward pass, its running
statistics, a vector-Jacobian product).  The protocol itself (reset, inference, the training
steps, training then inference, gradients) runs once, here, in ``Adapter.run``, which returns
every observed quantity in canonical form, as float64 NumPy arrays (``Outcome``), or the
framework's error message.  Frameworks are imported inside the concrete adapters' methods
only, never at module import time.
"""

from __future__ import annotations

import abc
import contextlib
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from datamodel.case import CUMULATIVE, Case, CaseData
from datamodel.quantities import PHASE_QUANTITIES, PHASES
from reference import Conventions

ROLES = ("scale", "offset", "running_mean", "running_variance", "counter", "other")
#: The roles of the canonical variables: γ, β and the two running statistics, one value per channel each.
PER_CHANNEL_ROLES = ROLES[:4]
MOMENTUM_FORMS = ("new_weight", "old_weight")
#: How a layer stores γ, β and each per-channel statistic, for inputs of rank r with the channels on axis a.
VARIABLE_SHAPES = {
    "per_channel": "(C,)",
    "broadcast": "the input's rank, 1 on every reduced axis: (1, C, 1, 1) for an (N, C, H, W) input",
    "virtual_batch_broadcast": "broadcast with one more leading axis for the virtual batches: (1, 1, C, 1, 1) "
                               "for an (N, C, H, W) input",
}  # fmt: skip


@dataclass(frozen=True)
class StateVariable:
    """A variable the layer keeps beyond γ, β and the two running statistics, as declared.

    ``size`` values (a scalar counter: 1), or ``size`` values per channel with ``per_channel``
    (stored in the declared variable shape, like the running statistics).
    """

    name: str  # as the adapter's ``inventory`` names it
    role: str  # "counter" or "other"
    size: int = 1
    per_channel: bool = False
    trainable: bool = False

    def __post_init__(self) -> None:
        if self.role not in ROLES or self.role in PER_CHANNEL_ROLES:
            raise ValueError(f"extra state {self.name!r}: role must be one of {ROLES[4:]}, got {self.role!r}")
        if self.size < 1:
            raise ValueError(f"extra state {self.name!r}: size must be at least 1, got {self.size}")

    def values(self, channels: int) -> int:
        """How many values it holds in a layer over ``channels`` channels."""
        return self.size * channels if self.per_channel else self.size

    def describe(self) -> str:
        """``"num_batches_tracked (counter, 1 value)"``, ``"mean_ema/hidden (other, C values)"``."""
        count = (f"{self.size}·C" if self.size > 1 else "C") if self.per_channel else str(self.size)
        plural = "" if count == "1" else "s"
        return f"{self.name} ({self.role}, {count} value{plural}{', trainable' if self.trainable else ''})"


@dataclass(frozen=True)
class DeclaredCounts:
    """The values a layer over C channels holds: canonical (2·C γ, β and 2·C running statistics,
    none without running statistics) plus its declared extra state."""

    trainable: int
    non_trainable: int
    running_statistics: int
    extra_state: int  # trainable or not

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can run; ``unsupported_reason`` says why a case is out of reach."""

    ranks: frozenset[int]
    dtypes: frozenset[str]
    devices: frozenset[str]
    any_channel_axis: bool = True
    affine_off: bool = True
    cumulative: bool = False
    #: The protocol phases the engine runs; a missing one (an inference-only runtime, say)
    #: comes back as ``unsupported`` with ``phase_reason``, not as an error.
    phases: frozenset[str] = frozenset(PHASES)
    #: Why the missing phases are out of reach, when there is more to say than that they are missing.
    phase_note: str = ""
    #: Variants of the same adapter whose results must equal this one's on the same logical
    #: case in another memory format (compared by the layout property).
    memory_format_twins: tuple[str, ...] = ()

    def phase_reason(self, phase: str) -> str | None:
        """Why ``phase`` cannot run on this engine, or ``None`` when it can."""
        if phase in self.phases:
            return None
        runs = ", ".join(p for p in PHASES if p in self.phases)
        note = f": {self.phase_note}" if self.phase_note else ""
        return f"the {phase} phase is not supported by this engine (it runs: {runs}){note}"

    def unsupported_reason(self, case: Case, available_devices: frozenset[str] | None = None) -> str | None:
        if case.rank not in self.ranks:
            return f"rank {case.rank} is not supported (supported ranks: {sorted(self.ranks)})"
        if not self.any_channel_axis and case.layout.axis != 1:
            return f"channel axis {case.channel_axis} is not supported (only axis 1, channels-first)"
        if case.dtype not in self.dtypes:
            return f"dtype {case.dtype} is not supported (supported: {sorted(self.dtypes)})"
        if case.device not in self.devices:
            return f"device {case.device} is not supported by this adapter"
        if available_devices is not None and case.device not in available_devices:
            return f"device {case.device} is not available on this machine"
        if not case.affine and not self.affine_off:
            return "affine parameters cannot be switched off"
        if case.decay == CUMULATIVE and not self.cumulative:
            return "cumulative running averages are not supported"
        return None


@dataclass(frozen=True)
class FrameworkConventions:
    """A framework's conventions, as declared (and probed by the suite).

    ``momentum_form`` is ``"new_weight"`` when the framework's momentum m weights the new
    batch (decay = 1 − m, PyTorch) and ``"old_weight"`` when it is the decay itself (Keras,
    Flax).  ``reference`` configures the reference oracle to match.
    """

    momentum_name: str
    momentum_form: str
    momentum_default: float
    eps_default: float
    default_channel_axis: int
    reference: Conventions
    parameter_names: dict[str, str]
    normalization_variance: str = "biased"
    #: the constructor argument that takes ε ("eps" in PyTorch, "epsilon" elsewhere)
    eps_name: str = "epsilon"
    #: how the batch variance is computed: "two_pass" (mean of squared deviations) or
    #: "fast" (E[x²] − E[x]², cheaper but cancels catastrophically when |μ| ≫ σ)
    variance_algorithm: str = "two_pass"
    #: The state the layer keeps beyond γ, β and the two running statistics (PyTorch's
    #: ``num_batches_tracked``, say): the inventory property expects it in the counts, and
    #: checks the layer really creates it.  Each a ``StateVariable``, or its fields in order
    #: (``("batch_counter", "counter")``).
    extra_state: tuple[StateVariable, ...] = ()
    #: how γ, β and the per-channel statistics are stored: a key of ``VARIABLE_SHAPES``
    variable_shape: str = "per_channel"
    #: The formulas as the framework's own documentation (an operator's specification) states
    #: them, verbatim, in its own names: what ``bnconf explain`` quotes beside the canonical forms.
    documented_forms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.variable_shape not in VARIABLE_SHAPES:
            raise ValueError(f"variable_shape must be one of {tuple(VARIABLE_SHAPES)}, got {self.variable_shape!r}")
        state = tuple(v if isinstance(v, StateVariable) else StateVariable(*v) for v in self.extra_state)
        names = [v.name for v in state]
        if len(set(names)) != len(names):
            raise ValueError(f"extra state names must be distinct, got {names}")
        object.__setattr__(self, "extra_state", state)  # frozen: normalized once, here

    def stored_shape(self, rank: int, axis: int, channels: int) -> tuple[int, ...]:
        """The shape of γ, β and each per-channel statistic for a rank-``rank`` input with the channels on ``axis``."""
        if self.variable_shape == "per_channel":
            return (channels,)
        broadcast = tuple(channels if a == axis % rank else 1 for a in range(rank))
        return broadcast if self.variable_shape == "broadcast" else (1, *broadcast)

    def declared_counts(self, channels: int) -> DeclaredCounts:
        """The values a layer over ``channels`` channels holds: the canonical ones and the declared extra state."""
        running = 2 * channels if self.reference.tracks_running_stats else 0
        extra_trainable = sum(v.values(channels) for v in self.extra_state if v.trainable)
        extra = sum(v.values(channels) for v in self.extra_state)
        return DeclaredCounts(trainable=2 * channels + extra_trainable, non_trainable=running + extra - extra_trainable,
                              running_statistics=running, extra_state=extra)  # fmt: skip

    @property
    def default_decay(self) -> float:
        return self.decay_from_momentum(self.momentum_default)

    def decay_from_momentum(self, momentum: float) -> float:
        return 1.0 - momentum if self.momentum_form == "new_weight" else momentum

    def momentum_from_decay(self, decay: float) -> float:
        return 1.0 - decay if self.momentum_form == "new_weight" else decay

    def to_dict(self) -> dict:
        data = asdict(self)
        data["default_decay"] = self.default_decay
        return data


@dataclass(frozen=True)
class Variable:
    """One variable the framework creates for the layer."""

    name: str
    role: str
    shape: tuple[int, ...]
    dtype: str
    trainable: bool

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class Inventory:
    """Every variable of a layer, and the parameter totals as the framework reports them.

    ``reported`` maps a description of where a figure comes from (``"count_params()"``,
    ``"sum(p.numel() for p in parameters())"``) to that figure.
    """

    variables: tuple[Variable, ...]
    trainable_count: int
    non_trainable_count: int
    total_count: int
    reported: dict[str, int] = field(default_factory=dict)


def unknown_variant_message(name: str, variant: str, variants: dict[str, str]) -> str:
    """The one message for a variant an adapter does not offer, listing those it does."""
    known = ", ".join(f"{name}:{v}" for v in variants) or "none"
    return f"unknown variant {variant!r} of {name!r}; known variants: {known}"


def nvidia_driver() -> str | None:
    """The NVIDIA driver version, from ``nvidia-smi``, or ``None`` without one."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else None


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Run framework code with warnings silenced.

    A framework's warning is not a failure: under pytest's ``-W error`` it would become an
    exception and turn a correct result into an 'error' outcome.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclass(frozen=True)
class Outcome:
    """One observed quantity: a float64 array in canonical form, the framework's error, or the
    reason the engine does not run the quantity's phase (``unsupported``)."""

    value: np.ndarray | None = None
    error: str | None = None
    unsupported: str | None = None

    @classmethod
    def capture(cls, compute: Callable[[], np.ndarray]) -> Outcome:
        try:
            with quiet_warnings():
                return cls(value=np.asarray(compute(), dtype=np.float64))
        except Exception as error:  # a framework's failure is a result, not a crash
            return cls.failed(error)

    @classmethod
    def failed(cls, error: BaseException) -> Outcome:
        message = str(error).strip() or "".join(traceback.format_exception_only(type(error), error)).strip()
        return cls(error=f"{type(error).__name__}: {message}")


@dataclass(frozen=True)
class Settings:
    """A case resolved against an adapter: concrete ε, decay and reference conventions."""

    eps: float
    decay: float | None  # None with cumulative averaging
    momentum: float | None  # in the framework's own form; None for cumulative
    conventions: Conventions
    #: False when the case leaves ε (or the decay) to the framework: the adapter must then not
    #: pass it, so the framework's real default is what runs (and the declared one is probed).
    eps_given: bool = True
    momentum_given: bool = True


@dataclass(frozen=True)
class LayerSpec:
    """What a layer is built for: the part of a case a framework fixes at construction.

    Adapters build (and the base caches) one layer per spec; ε and the momentum change per
    case and reach the layer through ``Hyper`` at call time.
    """

    rank: int
    axis: int  # non-negative
    channels: int
    dtype: str
    affine: bool
    device: str

    @classmethod
    def of(cls, case: Case) -> LayerSpec:
        return cls(case.rank, case.layout.axis, case.channels, case.dtype, case.affine, case.device)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The input shape with only the channels known, as layers that must be built want it."""
        return tuple(self.channels if a == self.axis else None for a in range(self.rank))


@dataclass(frozen=True)
class Hyper:
    """ε and the momentum a layer runs with, in the framework's own form.

    Either the case's values or, where the case leaves them unset, the framework's own
    defaults as read from a freshly built layer (``Adapter.framework_defaults``).
    """

    eps: float
    momentum: float | None  # None: a cumulative average


class Adapter(abc.ABC):
    """Drives one framework (and one variant of it, such as a memory format).

    A concrete adapter declares ``version``, ``capabilities``, ``conventions`` and
    ``inventory``, and supplies the primitives below (``build`` … ``vjp``); ``run`` drives
    them through the protocol.  A primitive may return framework values: the base converts
    arrays in with ``tensor`` and out with ``to_numpy``.  For a stateful module the state
    ``load_state`` returns may be the layer itself; a functional framework returns its
    variables, and ``forward`` returns the updated ones.
    """

    #: registry name, e.g. "torch"
    name: str = ""
    #: variants this adapter understands, with a one-line description each
    variants: ClassVar[dict[str, str]] = {}
    #: Variants a quick run (``bnconf run --quick``, as ``make test`` runs) leaves out, each with
    #: the reason (a compiled mode that recompiles for every ε, say); every other run takes them.
    slow_variants: ClassVar[dict[str, str]] = {}
    #: Variants that run the same layer another way (compiled, or eager where the default is
    #: compiled): the execution property compares each with the default variant on the same case.
    execution_modes: ClassVar[tuple[str, ...]] = ()
    #: Environment variables its suite process must start with (a framework that fixes a
    #: setting at import, such as Keras' backend, needs a process of its own); ``bnconf run``
    #: and ``bnconf matrix`` apply them to that framework's process.  A class attribute, so
    #: it is read without importing the framework.
    process_environment: ClassVar[dict[str, str]] = {}

    def __init__(self, variant: str = "") -> None:
        if variant and variant not in self.variants:
            raise ValueError(unknown_variant_message(self.name, variant, self.variants))
        self.variant = variant
        self._layers: dict[LayerSpec, tuple[Any, tuple[float, float | None]]] = {}

    @property
    def label(self) -> str:
        return f"{self.name}:{self.variant}" if self.variant else self.name

    # -- declarations ---------------------------------------------------------------
    @abc.abstractmethod
    def version(self) -> str:
        """The framework's version string."""

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    @abc.abstractmethod
    def conventions(self) -> FrameworkConventions: ...

    def available_devices(self) -> frozenset[str]:
        """Devices present on this machine for this framework."""
        return frozenset({"cpu"})

    @property
    def execution_twins(self) -> tuple[str, ...]:
        """The execution modes the default variant is compared with (a variant has none of its own)."""
        return () if self.variant else self.execution_modes

    def unsupported_reason(self, case: Case) -> str | None:
        return self.capabilities.unsupported_reason(case, self.available_devices())

    def settings(self, case: Case) -> Settings:
        """Resolve the case's framework defaults (ε, decay) with this adapter's conventions."""
        declared = self.conventions
        eps = declared.eps_default if case.eps is None else case.eps
        reference = declared.reference
        if case.decay == CUMULATIVE:
            reference = Conventions(**{**reference.to_dict(), "averaging": "cumulative"})
            return Settings(eps=eps, decay=None, momentum=None, conventions=reference, eps_given=case.eps is not None)
        decay = declared.default_decay if case.decay is None else float(case.decay)
        return Settings(eps=eps, decay=decay, momentum=declared.momentum_from_decay(decay), conventions=reference,
                        eps_given=case.eps is not None, momentum_given=case.decay is not None)  # fmt: skip

    @abc.abstractmethod
    def inventory(self, shape: tuple[int, ...], channel_axis: int, dtype: str = "float32") -> Inventory:
        """Build the layer for inputs of ``shape`` (batch included) and list its variables."""

    # -- primitives ---------------------------------------------------------------------
    @abc.abstractmethod
    def build(self, spec: LayerSpec) -> Any:
        """A layer for ``spec``, built without ε or momentum so that it holds the framework's own defaults."""

    @abc.abstractmethod
    def framework_defaults(self, layer: Any) -> tuple[float, float | None]:
        """The ε and momentum (the framework's own form) a freshly built ``layer`` holds."""

    @abc.abstractmethod
    def load_state(self, layer: Any, data: CaseData, spec: LayerSpec) -> Any:
        """Set γ, β and the running statistics from ``data``; return the state ``forward`` takes."""

    @abc.abstractmethod
    def forward(self, layer: Any, state: Any, x: Any, *, training: bool, hyper: Hyper) -> tuple[Any, Any]:
        """``(y, new_state)``: one call in training mode (batch statistics, updating the running ones) or inference mode."""

    @abc.abstractmethod
    def running_statistics(self, layer: Any, state: Any) -> tuple[Any, Any] | None:
        """The running mean and variance held in ``state``; ``None`` when the layer keeps none."""

    @abc.abstractmethod
    def vjp(self, layer: Any, state: Any, x: Any, dy: Any, hyper: Hyper) -> tuple[Any, Any, Any]:
        """``(dx, dγ, dβ)`` of a training-mode call at ``x`` for the upstream gradient ``dy`` (dγ, dβ ``None`` without affine)."""

    def read_state_file(self, path: Path) -> dict[str, np.ndarray]:
        """A saved state in this framework's own format, keyed by its own variable names.

        Every adapter reads ``.npz`` (``numpy.savez(path, **{name: values})``, with optional
        scalars ``eps`` and ``momentum`` in the framework's own form); an adapter overrides
        this to read its framework's native files too.
        """
        if path.suffix != ".npz":
            raise ValueError(f"expected a .npz file of {self.label}'s variables, got {path.name}")
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    def tensor(self, array: np.ndarray, spec: LayerSpec) -> Any:
        """A float64 NumPy array as the framework's input in ``spec``'s dtype and device."""
        return array

    def to_numpy(self, value: Any) -> np.ndarray:
        """A framework value as a float64 NumPy array that does not alias live state."""
        return np.array(value, dtype=np.float64)

    def placement(self, spec: LayerSpec) -> contextlib.AbstractContextManager:
        """The context the framework's calls run in: device placement, backend flags."""
        return contextlib.nullcontext()

    # -- the protocol, once -------------------------------------------------------------
    def run(self, case: Case, data: CaseData | None = None, phases: tuple[str, ...] = PHASES) -> dict[str, Outcome]:
        """Run the canonical protocol (see ``reference.simulate``) and return every quantity.

        ``phases`` selects among ``"inference"``, ``"training"`` and ``"gradients"``.  A
        framework error in one phase becomes an error outcome for that phase's quantities;
        the other phases still run.  A phase the engine does not run is ``unsupported``.
        """
        data = case.materialize() if data is None else data
        settings = self.settings(case)
        steps = {
            "inference": lambda: {"y_eval": self.evaluate(case, data, settings)},
            "training": lambda: self.train(case, data, settings),
            "gradients": lambda: self.gradients(case, data, settings),
        }
        outcomes: dict[str, Outcome] = {}
        for phase in (p for p in PHASES if p in phases):
            names = PHASE_QUANTITIES[phase] if phase != "gradients" or case.affine else ("dx",)
            reason = self.capabilities.phase_reason(phase)
            if reason is not None:
                outcomes.update(dict.fromkeys(names, Outcome(unsupported=reason)))
            else:
                outcomes.update(self._phase(steps[phase], names))
        return outcomes

    @staticmethod
    def _phase(compute: Callable[[], dict[str, np.ndarray]], names: tuple[str, ...]) -> dict[str, Outcome]:
        try:
            with quiet_warnings():
                values = compute()
        except Exception as error:  # a framework's failure is a result, not a crash
            failure = Outcome.failed(error)
            return dict.fromkeys(names, failure)
        return {name: Outcome(value=np.asarray(value, dtype=np.float64)) for name, value in values.items()}

    def configured(self, case: Case, settings: Settings) -> tuple[Any, LayerSpec, Hyper]:
        """The cached layer for ``case``, its spec, and the ε and momentum to run it with."""
        spec = LayerSpec.of(case)
        if spec not in self._layers:
            with self.placement(spec):
                layer = self.build(spec)
            self._layers[spec] = (layer, self.framework_defaults(layer))
        layer, (default_eps, default_momentum) = self._layers[spec]
        hyper = Hyper(eps=settings.eps if settings.eps_given else default_eps,
                      momentum=settings.momentum if settings.momentum_given else default_momentum)  # fmt: skip
        return layer, spec, hyper

    def evaluate(self, case: Case, data: CaseData, settings: Settings) -> np.ndarray:
        """Inference-mode output on the first batch with the case's running statistics."""
        layer, spec, hyper = self.configured(case, settings)
        state = self.load_state(layer, data, spec)
        with self.placement(spec):
            y, _ = self.forward(layer, state, self.tensor(data.batches[0], spec), training=False, hyper=hyper)
            return self.to_numpy(y)

    def train(self, case: Case, data: CaseData, settings: Settings) -> dict[str, np.ndarray]:
        """Every training step on one layer, then inference mode on the first batch.

        Returns ``y_train`` (steps × shape), ``running_mean`` and ``running_var``
        (steps × C; omitted without running statistics) and ``y_eval_after``.
        """
        layer, spec, hyper = self.configured(case, settings)
        state = self.load_state(layer, data, spec)
        outputs, means, variances = [], [], []
        with self.placement(spec):
            for batch in data.batches:
                y, state = self.forward(layer, state, self.tensor(batch, spec), training=True, hyper=hyper)
                outputs.append(self.to_numpy(y))
                statistics = self.running_statistics(layer, state)
                if statistics is not None:  # converted now: a stateful layer overwrites them next step
                    means.append(self.to_numpy(statistics[0]))
                    variances.append(self.to_numpy(statistics[1]))
            after, _ = self.forward(layer, state, self.tensor(data.batches[0], spec), training=False, hyper=hyper)
            result = {"y_train": np.stack(outputs), "y_eval_after": self.to_numpy(after)}
        if means:
            result.update(running_mean=np.stack(means), running_var=np.stack(variances))
        return result

    def gradients(self, case: Case, data: CaseData, settings: Settings) -> dict[str, np.ndarray]:
        """dx (and dgamma, dbeta with affine parameters) of the first training step for dy."""
        layer, spec, hyper = self.configured(case, settings)
        state = self.load_state(layer, data, spec)
        with self.placement(spec):
            dx, dgamma, dbeta = self.vjp(layer, state, self.tensor(data.batches[0], spec), self.tensor(data.dy, spec), hyper)
            result = {"dx": self.to_numpy(dx)}
            if case.affine:
                result.update(dgamma=self.to_numpy(dgamma).reshape(-1), dbeta=self.to_numpy(dbeta).reshape(-1))
        return result

    # -- reporting ----------------------------------------------------------------------
    def device_info(self) -> dict[str, str]:
        """What a record should say about the devices: accelerator names, driver, CUDA, cuDNN."""
        driver = nvidia_driver()
        return {"driver": driver} if driver else {}

    def snippet(self, case: Case) -> str:
        """Standalone code in the framework's own API that reproduces ``case`` (no bn-conformance needed).

        It ends by printing one JSON line (``snippets.RESULT_PREFIX``) with every quantity
        the protocol observes, so a test can check it reproduces ``run``.
        """
        return f"# {self.label}: no standalone snippet available for this adapter"
