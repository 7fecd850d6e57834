"""``bnconf explain`` says each declared convention in words.

Every field of ``reference.Conventions`` gets a line, read at run time, so a field or value
added after the wording was written still shows as ``name: value``; each known value has its
sentence (the cumulative average of PyTorch's ``momentum=None``, Haiku's zero-debiased
averages, Equinox's training normalization with the running statistics, its first-batch copy
and its debiased average started from the loaded state, ONNX's specified formulas).
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest
from fakes import NumpyAdapter

from adapters.base import StateVariable
from conformance.orchestration.explain import explain, render_text
from conformance.orchestration.wording import REFERENCE_SENTENCES, convention_lines, framework_lines, reference_lines
from reference import Conventions

CONTEXT = {"d": 0.9, "m": "momentum"}


def test_every_field_of_the_reference_conventions_gets_a_line():
    lines = reference_lines(Conventions(), CONTEXT)
    assert len(lines) == len(dataclasses.fields(Conventions))
    assert all(line for line in lines)


def test_every_known_value_has_a_sentence_of_its_own():
    for field in dataclasses.fields(Conventions):
        assert field.name in REFERENCE_SENTENCES, field.name  # a field added since: add its sentences here
    for field, sentences in REFERENCE_SENTENCES.items():
        for value, sentence in sentences.items():
            assert not sentence.format(**CONTEXT).startswith(f"{field}:"), (field, value)


def test_a_field_or_value_not_known_yet_is_name_and_value():
    @dataclasses.dataclass(frozen=True)
    class Later(Conventions):
        blend: str = "half"

    later = Later()
    object.__setattr__(later, "averaging", "median")  # a value the wording has no sentence for
    lines = reference_lines(later, CONTEXT)
    assert lines[-1] == "blend: half"
    assert "averaging: median" in lines


@pytest.mark.parametrize(("conventions", "phrase"), [
    (Conventions(averaging="debiased_ema"), "zero-debiased moving averages: a hidden h_t = d·h_{t−1} + (1 − d)·b_t"),
    (Conventions(averaging="debiased_ema", debias_start="state"), "accumulator starts at the loaded statistics"),
    (Conventions(averaging="debiased_ema", debias_start="zero"), "accumulator starts at 0"),
    (Conventions(normalization="running"), "normalizes with the running statistics it has just updated"),
    (Conventions(warmup="copy_first_batch"), "first training step copies the batch statistics into the running ones"),
    (Conventions(averaging="cumulative"), "cumulative average of every batch so far"),
    (Conventions(tracks_running_stats=False), "keeps no running statistics: inference normalizes with the batch's"),
    (Conventions(running_variance="unbiased"), "unbiased batch variance σ²·n/(n − 1)"),
    (Conventions(eps_placement="outside"), "outside the square root"),
    (Conventions(averaging="ema"), "debias_start: zero (no effect here: averaging is ema)"),
])  # fmt: skip
def test_each_reference_convention_in_words(conventions, phrase):
    assert any(phrase in line for line in reference_lines(conventions, CONTEXT)), reference_lines(conventions, CONTEXT)


def test_the_adapters_own_declarations_in_words():
    declared = replace(NumpyAdapter("").conventions, variable_shape="broadcast", documented_forms=("y = x",),
                       extra_state=(StateVariable("steps", "counter"), StateVariable("hidden", "other", per_channel=True)))  # fmt: skip
    lines = framework_lines(declared, cumulative=True)
    assert "momentum = 0.1 weights the new batch: the decay is d = 1 − momentum = 0.9" in lines
    assert any(line.startswith("momentum=None gives a cumulative average instead") for line in lines)
    assert "beyond γ, β and the running statistics the layer keeps: steps (counter, 1 value), hidden (other, C values)" in lines
    assert any(line.startswith("γ, β and the running statistics are stored broadcast-shaped") for line in lines)
    assert "as its documentation states it: y = x" in lines
    assert not any(line.startswith(("reference:", "extra_state:")) for line in lines)


def test_explain_prints_the_conventions_in_words_and_the_declared_counts():
    adapter = NumpyAdapter("")
    info = explain(adapter, (3, 4))
    assert info["conventions_in_words"] == convention_lines(adapter)
    text = render_text(info)
    assert "conventions, in words:\n  momentum = 0.1 weights the new batch" in text
    assert "  the running variance is fed the unbiased batch variance" in text
    assert "2·C trainable + 2·C running statistics = 6 + 6 = 12" in text


@pytest.mark.frameworks
@pytest.mark.parametrize(("spec", "phrase"), [
    ("torch", "momentum=None gives a cumulative average instead"),
    ("torch:no_running_stats", "the layer keeps no running statistics"),
    ("haiku", "zero-debiased moving averages"),
    ("haiku", "batch_norm/~/mean_ema/hidden (other, C values)"),
    ("onnx-reference", "as its documentation states it: running_mean = input_mean * momentum + current_mean * (1 - momentum)"),
    ("equinox:batch", "batch_counter (counter, 1 value)"),
])  # fmt: skip
def test_each_engine_says_its_conventions(spec, phrase):
    from adapters.registry import FrameworkUnavailableError, get_adapter

    try:
        adapter = get_adapter(spec)
    except FrameworkUnavailableError as error:
        pytest.skip(str(error))
    assert any(phrase in line for line in convention_lines(adapter)), convention_lines(adapter)
