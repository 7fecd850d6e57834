"""Compiling engines keep their compiled programs between runs (JAX's persistent cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.orchestration.run import compile_cache_environment


def test_the_cache_is_on_by_default_in_the_working_directory():
    env = compile_cache_environment({})
    assert env["JAX_COMPILATION_CACHE_DIR"] == str(Path(".bnconf-cache", "jax").resolve())
    assert env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"  # batch norms compile in milliseconds


def test_the_users_own_settings_win_and_an_empty_directory_turns_it_off(tmp_path):
    mine = {"JAX_COMPILATION_CACHE_DIR": "/somewhere/else", "BNCONF_CACHE_DIR": str(tmp_path)}
    assert "JAX_COMPILATION_CACHE_DIR" not in compile_cache_environment(mine)
    assert compile_cache_environment({"BNCONF_CACHE_DIR": ""}) == {}
    assert compile_cache_environment({"BNCONF_CACHE_DIR": str(tmp_path)})["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "jax")


def test_a_run_fills_the_cache(tmp_path):
    """A real Flax suite process writes compiled programs into the cache directory."""
    pytest.importorskip("flax")
    env = {**os.environ, "BNCONF_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    result = subprocess.run([sys.executable, "-m", "conformance.orchestration.cli", "run", "--frameworks", "flax:two_pass",
                             "--profile", "dev", "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list((tmp_path / "cache" / "jax").iterdir())) > 10
