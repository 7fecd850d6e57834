"""The adapter registry: lazy lookup, clear errors, unavailable frameworks as reasons."""

from __future__ import annotations

import pytest

from adapters import registry
from adapters.registry import FrameworkUnavailableError, UnknownFrameworkError


def test_builtin_frameworks_are_registered():
    assert {"torch", "keras", "keras-jax", "keras-torch", "flax"} <= set(registry.registered())


def test_unknown_framework_lists_the_known_ones():
    with pytest.raises(UnknownFrameworkError, match=r"unknown framework 'mxnet'; known frameworks: .*flax.*keras.*torch"):
        registry.get_adapter("mxnet")


def test_unknown_variant_lists_the_known_ones(fake_frameworks):
    with pytest.raises(UnknownFrameworkError, match=r"unknown variant 'sideways' of 'numpy-fake'; known variants: numpy-fake:eps_outside"):
        registry.get_adapter("numpy-fake:sideways")


def test_missing_framework_is_unavailable_with_the_reason(fake_frameworks):
    with pytest.raises(FrameworkUnavailableError, match="missing-fake is not available: No module named 'no_such_framework_module'"):
        registry.get_adapter("missing-fake")
    assert "No module named" in registry.availability("missing-fake")
    assert registry.availability("numpy-fake") is None


def test_spec_selects_the_variant(fake_frameworks):
    adapter = registry.get_adapter("numpy-fake:no_eps")
    assert (adapter.name, adapter.variant, adapter.label) == ("numpy-fake", "no_eps", "numpy-fake:no_eps")


def test_all_specs_lists_variants_and_skips_missing_frameworks(fake_frameworks):
    specs = registry.all_specs(["numpy-fake", "missing-fake"])
    assert specs[0] == "numpy-fake"
    assert "numpy-fake:half_precision" in specs
    assert specs[-1] == "missing-fake"


def test_quick_specs_leave_out_slow_variants_which_a_full_run_takes(fake_frameworks, monkeypatch):
    from fakes import NumpyAdapter

    monkeypatch.setattr(NumpyAdapter, "slow_variants", {"half_precision": "slow, say"})
    quick = registry.all_specs(["numpy-fake"], quick=True)
    assert "numpy-fake:half_precision" not in quick
    assert "numpy-fake:no_eps" in quick
    assert "numpy-fake:half_precision" in registry.all_specs(["numpy-fake"])
    assert registry.get_adapter("numpy-fake:half_precision").variant == "half_precision"


def test_compiled_modes_are_execution_twins_of_their_default():
    """Every compiled (or eager) mode is a variant its engine's default is compared with, and
    only those may be slow variants (a quick run still reaches them through that comparison)."""
    modes = {"torch": {"compile"}, "keras": {"jit", "tf_function"}, "keras-jax": {"jit"}, "flax": {"eager"}, "nnx": {"eager"}}
    for name in registry.BUILTIN_ADAPTERS:
        cls = registry.adapter_class(name)
        assert set(cls.execution_modes) == modes.get(name, set()), name
        assert set(cls.execution_modes) <= set(cls.variants), name
        assert set(cls.slow_variants) <= set(cls.execution_modes), name


def test_entry_point_adapters_are_registered(monkeypatch):
    class EntryPoint:
        name, value = "thirdparty", "thirdparty_bn.adapter:Adapter"

    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint()] if group == registry.ENTRY_POINT_GROUP else [])
    registry.registered.cache_clear()
    try:
        assert registry.registered()["thirdparty"] == "thirdparty_bn.adapter:Adapter"
    finally:
        registry.registered.cache_clear()
