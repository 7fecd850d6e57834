"""Adapter registry: framework name → lazily imported adapter class.

Built-in adapters are listed here as ``"module:Class"`` strings; third parties add theirs
through the ``bnconf.adapters`` entry-point group, or for one process through the
``BNCONF_ADAPTERS`` environment variable, without editing this file.  Nothing is
imported until an adapter is asked for, and a framework that is not installed is reported
as unavailable with the reason instead of crashing.

A framework spec is ``NAME`` or ``NAME:VARIANT`` (e.g. ``torch:channels_last``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from functools import cache
from importlib.metadata import entry_points

from .base import Adapter, unknown_variant_message

BUILTIN_ADAPTERS: dict[str, str] = {
    "torch": "adapters.torch:TorchAdapter",
    "keras": "adapters.keras:KerasAdapter",
    "keras-jax": "adapters.keras:KerasJaxAdapter",
    "keras-torch": "adapters.keras:KerasTorchAdapter",
    "tf-keras": "adapters.tfkeras:TfKerasAdapter",
    "flax": "adapters.flax:FlaxAdapter",
    "nnx": "adapters.nnx:NnxAdapter",
    "haiku": "adapters.haiku:HaikuAdapter",
    "equinox": "adapters.equinox:EquinoxAdapter",
    "onnxruntime": "adapters.onnx:OnnxRuntimeAdapter",
    "onnx-reference": "adapters.onnx:OnnxReferenceAdapter",
}
ENTRY_POINT_GROUP = "bnconf.adapters"
#: Extra adapters for one process, e.g. "mine=my_package.bn:MyAdapter,other=pkg:Other".
ENVIRONMENT_VARIABLE = "BNCONF_ADAPTERS"


class UnknownFrameworkError(LookupError):
    """A framework name that no adapter is registered for."""


class FrameworkUnavailableError(RuntimeError):
    """An adapter whose framework cannot be imported here; the message says why."""


@cache
def registered() -> dict[str, str]:
    """Every known adapter name with its ``module:Class`` target (built-ins first)."""
    found = dict(BUILTIN_ADAPTERS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    for item in filter(None, (part.strip() for part in os.environ.get(ENVIRONMENT_VARIABLE, "").split(","))):
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            raise UnknownFrameworkError(
                f"{ENVIRONMENT_VARIABLE}: expected NAME=module:Class entries separated by commas, got {item!r}"
            )
        found.setdefault(name.strip(), target.strip())
    return found


def split_spec(spec: str) -> tuple[str, str]:
    name, _, variant = spec.strip().partition(":")
    return name, variant


def adapter_class(name: str) -> type[Adapter]:
    """Import and return the adapter class registered as ``name``."""
    targets = registered()
    if name not in targets:
        raise UnknownFrameworkError(f"unknown framework {name!r}; known frameworks: {', '.join(sorted(targets))}")
    module_name, _, class_name = targets[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise FrameworkUnavailableError(f"{name} is not available: {error}") from error
    return getattr(module, class_name)


def validate_spec(spec: str) -> None:
    """Raise ``UnknownFrameworkError`` for an unknown name or variant.

    A known framework that is not installed here passes: running it reports it unavailable
    with the reason, as a result rather than a usage error.
    """
    name, variant = split_spec(spec)
    try:
        cls = adapter_class(name)
    except FrameworkUnavailableError:
        return
    if variant and variant not in cls.variants:
        raise UnknownFrameworkError(unknown_variant_message(name, variant, cls.variants))


def declared_environment(spec: str) -> dict[str, str]:
    """The environment ``spec``'s adapter declares its process must start with (``Adapter.process_environment``).

    Read from the class, without importing the framework; empty for a framework that is not
    registered or cannot be imported (running it reports why).
    """
    try:
        return dict(adapter_class(split_spec(spec)[0]).process_environment)
    except (FrameworkUnavailableError, UnknownFrameworkError):
        return {}


def get_adapter(spec: str) -> Adapter:
    """An adapter instance for ``NAME[:VARIANT]``.

    Raises ``UnknownFrameworkError`` for an unknown name or variant and
    ``FrameworkUnavailableError`` when the framework is not installed or fails to load.
    """
    name, variant = split_spec(spec)
    cls = adapter_class(name)
    if variant and variant not in cls.variants:
        raise UnknownFrameworkError(unknown_variant_message(name, variant, cls.variants))
    try:
        adapter = cls(variant)
        adapter.version()
    except ImportError as error:
        raise FrameworkUnavailableError(f"{name} is not available: {error}") from error
    return adapter


def availability(spec: str) -> str | None:
    """``None`` when ``spec`` can run here, else the reason it cannot."""
    try:
        get_adapter(spec)
    except (UnknownFrameworkError, FrameworkUnavailableError) as error:
        return str(error)
    return None


def all_specs(names: list[str] | None = None, *, quick: bool = False) -> list[str]:
    """Every ``NAME`` and ``NAME:VARIANT`` spec of the given (default: all) adapters.

    ``quick`` leaves out the slow variants (``Adapter.slow_variants``): ``make test`` runs so,
    and compares those modes with their engine's default through the execution property only.
    """
    specs = []
    for name in names or list(registered()):
        specs.append(name)
        with contextlib.suppress(FrameworkUnavailableError):
            cls = adapter_class(name)
            specs.extend(f"{name}:{variant}" for variant in cls.variants if not (quick and variant in cls.slow_variants))
    return specs
