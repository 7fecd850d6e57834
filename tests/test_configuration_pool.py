"""The fixed pool of compile configurations that the ``ci`` and ``dev`` profiles draw from.

The pool exists so that compiling engines compile a few configurations per run, not one per
example (``conformance.generation.configurations``).  These tests pin what it must still
cover for any capabilities an adapter may declare, that pooled cases take nothing else, that
the data stay drawn, that only ``nightly`` explores freely, and that the suite passes the
profile's choice to every generated property.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import Capabilities
from conformance.generation import profiles
from conformance.generation.configurations import (
    DTYPE_ORDER,
    POOL_DECAYS,
    POOL_EPSILONS,
    Configuration,
    configuration_pool,
)
from conformance.generation.strategies import CONDITIONINGS, cases
from datamodel.case import CUMULATIVE, Case, Generator
from datamodel.casefile import parse_case

HERE = Path(__file__).parent
EXAMPLES = settings(max_examples=60, database=None, deadline=None)


@st.composite
def capabilities_(draw) -> Capabilities:
    return Capabilities(
        ranks=frozenset(draw(st.sets(st.sampled_from([2, 3, 4, 5]), min_size=1))),
        dtypes=frozenset(draw(st.sets(st.sampled_from(DTYPE_ORDER), min_size=1))),
        devices=frozenset({"cpu"}),
        any_channel_axis=draw(st.booleans()),
        affine_off=draw(st.booleans()),
        cumulative=draw(st.booleans()),
    )


def _case(configuration: Configuration) -> Case:
    layout = configuration.layout
    return Case(shape=layout.shape, channel_axis=layout.channel_axis, dtype=configuration.dtype, x=Generator(seed=0),
                eps=configuration.eps, decay=configuration.decay, affine=configuration.affine)  # fmt: skip


def _key(case: Case) -> tuple:
    return (case.shape, case.layout.axis, case.dtype, case.affine, case.eps, case.decay)


def _pool_keys(pool) -> set[tuple]:
    return {_key(_case(configuration)) for configuration in pool}


@EXAMPLES
@given(capabilities=capabilities_(), max_elements=st.integers(1, 8192), min_per_channel=st.integers(1, 6))
def test_every_configuration_is_runnable_and_within_the_bounds(capabilities, max_elements, min_per_channel):
    if min_per_channel > max_elements:
        with pytest.raises(ValueError, match=f"min_per_channel {min_per_channel}.*max_elements {max_elements}"):
            configuration_pool(capabilities, max_elements=max_elements, min_per_channel=min_per_channel)
        return
    pool = configuration_pool(capabilities, max_elements=max_elements, min_per_channel=min_per_channel)
    for configuration in pool:
        case = _case(configuration)
        assert capabilities.unsupported_reason(case) is None, configuration
        assert case.size <= max_elements, configuration
        assert case.layout.count(case.shape) >= min_per_channel, configuration


@EXAMPLES
@given(capabilities=capabilities_())
def test_the_pool_covers_every_rank_dtype_affine_eps_and_decay(capabilities):
    pool = configuration_pool(capabilities, max_elements=4096)
    cases_ = [_case(c) for c in pool]
    assert {c.rank for c in cases_} == set(capabilities.ranks)
    assert {c.dtype for c in cases_} == set(capabilities.dtypes)
    affines = {True, False} if capabilities.affine_off else {True}
    assert {(c.dtype, c.affine) for c in cases_} == {(d, a) for d in capabilities.dtypes for a in affines}
    assert {c.eps for c in cases_} == set(POOL_EPSILONS)
    decays = {*POOL_DECAYS, CUMULATIVE} if capabilities.cumulative else set(POOL_DECAYS)
    assert {c.decay for c in cases_} == decays
    # small enough to save compilations: the longest of the lists above sets its size
    assert len(pool) <= max(9 + 4, 2 * len(DTYPE_ORDER), len(decays))


@EXAMPLES
@given(capabilities=capabilities_())
def test_the_pool_covers_channel_axes_and_the_edges_of_shapes(capabilities):
    cases_ = [_case(c) for c in configuration_pool(capabilities, max_elements=4096)]
    axes = {c.channel_axis for c in cases_}
    if capabilities.any_channel_axis and capabilities.ranks & {3, 4, 5}:
        assert {1, -1} <= axes, "channels first and channels last"
        if 4 in capabilities.ranks:
            assert 2 in axes, "channels in between (axis 2 of a rank-4 batch)"
    else:
        assert axes == {1}
    if capabilities.ranks & {2, 3}:
        assert min(c.layout.count(c.shape) for c in cases_) == 2, "the fewest values a channel may have"
    if 2 in capabilities.ranks:
        assert min(c.shape[c.channel_axis] for c in cases_) == 1, "one channel"
    if capabilities.ranks & {4, 5}:
        assert any(c.shape[0] == 1 for c in cases_), "a batch of one, statistics from the spatial axes"
    if 4 in capabilities.ranks:
        assert max(c.size for c in cases_) == 4096, "the element bound, reached"


def test_the_first_configuration_is_the_simplest():
    capabilities = Capabilities(ranks=frozenset({2, 3, 4, 5}), dtypes=frozenset(DTYPE_ORDER), devices=frozenset({"cpu"}),
                                cumulative=True)  # fmt: skip
    first = configuration_pool(capabilities, max_elements=4096)[0]
    assert (first.layout.shape, first.dtype, first.affine, first.eps, first.decay) == ((2, 1), "float32", True, None, None)


def test_the_pool_names_what_it_cannot_build():
    capabilities = Capabilities(ranks=frozenset({4}), dtypes=frozenset({"float32"}), devices=frozenset({"cpu"}))
    with pytest.raises(ValueError, match=r"none of the dtypes \('float64',\) is supported \(supported: \['float32'\]\)"):
        configuration_pool(capabilities, max_elements=4096, dtypes=("float64",))
    empty = Capabilities(ranks=frozenset(), dtypes=frozenset({"float32"}), devices=frozenset({"cpu"}))
    with pytest.raises(ValueError, match=r"no rank to draw: the capabilities list ranks \[\]"):
        configuration_pool(empty, max_elements=4096)


@EXAMPLES
@given(capabilities=capabilities_(), data=st.data())
def test_pooled_cases_take_their_configuration_from_the_pool_only(capabilities, data):
    case = data.draw(cases(capabilities=capabilities, pooled=True))
    assert _key(case) in _pool_keys(configuration_pool(capabilities, max_elements=4096))
    assert capabilities.unsupported_reason(case) is None
    channels = case.shape[case.channel_axis]
    for vector in (case.gamma, case.beta, case.running_mean, case.running_var):
        assert vector is None or np.shape(vector) == (channels,)


def test_pooled_cases_still_draw_data_conditioning_and_steps():
    capabilities = Capabilities(ranks=frozenset({2, 3, 4, 5}), dtypes=frozenset(DTYPE_ORDER), devices=frozenset({"cpu"}))
    drawn: list[Case] = []

    @settings(max_examples=200, database=None, deadline=None)
    @given(cases(capabilities=capabilities, pooled=True))
    def collect(case):
        drawn.append(case)

    collect()
    assert {c.extra["conditioning"] for c in drawn} == set(CONDITIONINGS)
    assert {c.training_steps for c in drawn} == {1, 2, 3, 4}
    pool = configuration_pool(capabilities, max_elements=4096)
    assert len({c.x.seed for c in drawn}) > 4 * len(pool), "the data's seed is drawn, not tied to the configuration"
    assert len({_key(c) for c in drawn}) == len(pool)


def test_only_the_nightly_profile_explores_configurations_freely():
    assert [profiles.pooled(p) for p in profiles.PROFILES] == [True, True, False]


@pytest.mark.parametrize(("profile", "pooled"), [("ci", True), ("nightly", False)])
def test_the_suite_draws_as_its_profile_says(tmp_path, profile, pooled):
    """A real suite run on the honest NumPy engine: ``ci`` cases come from the pool, ``nightly`` ones do not."""
    results = tmp_path / "records.jsonl"
    path = [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "BNCONF_ADAPTERS": "numpy-fake=fakes:NumpyAdapter", "PYTHONPATH": os.pathsep.join(filter(None, path))}
    command = [sys.executable, "-m", "pytest", str(HERE.parent / "conformance" / "suite" / "test_numerics.py"),
               "-q", "-p", "no:cacheprovider", "-k", "test_inference", "--bnconf-frameworks=numpy-fake",
               f"--bnconf-profile={profile}", f"--bnconf-results={results}", "--tb=line", "--hypothesis-seed=0"]  # fmt: skip
    # (in tmp_path: the nightly profile keeps hypothesis' example database in the working directory)
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    keys = {_key(parse_case(r["case"])) for r in map(json.loads, results.read_text().splitlines()) if r.get("case")}
    from fakes import NumpyAdapter

    pool = _pool_keys(configuration_pool(NumpyAdapter().capabilities, max_elements=profiles.max_elements(profile)))
    assert len(keys) >= 5
    if pooled:
        assert keys <= pool
    else:
        assert len(keys - pool) >= len(keys) // 2
