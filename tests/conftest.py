"""Shared fixtures of the harness's own tests."""

from __future__ import annotations

import pytest

from adapters import registry


@pytest.fixture
def fake_frameworks(monkeypatch):
    """Register the NumPy fakes of ``tests/fakes.py`` as frameworks for one test."""
    monkeypatch.setitem(registry.BUILTIN_ADAPTERS, "numpy-fake", "fakes:NumpyAdapter")
    monkeypatch.setitem(registry.BUILTIN_ADAPTERS, "crashing-fake", "fakes:CrashingAdapter")
    monkeypatch.setitem(registry.BUILTIN_ADAPTERS, "missing-fake", "no_such_framework_module:Adapter")
    registry.registered.cache_clear()
    yield
    registry.registered.cache_clear()
