"""Case files: JSON round trip (incl. non-finite values) and precise errors on malformed documents."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamodel.case import Case, Generator
from datamodel.casefile import CaseFileError, case_to_json, dump_case, load_case, parse_case

_ARRAY_FIELDS = ("gamma", "beta", "running_mean", "running_var")
_PLAIN_FIELDS = ("shape", "channel_axis", "dtype", "eps", "decay", "affine", "training_steps", "device")
_PLAIN_FIELDS += ("frameworks", "description", "extra")


def _roundtrip(case: Case) -> Case:
    text = json.dumps(case_to_json(case), allow_nan=False)  # strict JSON: no NaN/Infinity tokens
    return parse_case(json.loads(text))


def _assert_same(a: Case, b: Case) -> None:
    for name in _PLAIN_FIELDS:
        assert getattr(a, name) == getattr(b, name), name
    for name in ("x", "dy", *_ARRAY_FIELDS):
        left, right = getattr(a, name), getattr(b, name)
        if left is None or isinstance(left, Generator):
            assert left == right, name
        else:
            assert isinstance(right, np.ndarray), name
            assert right.dtype == np.float64, name
            np.testing.assert_array_equal(left, right, err_msg=name)  # NaN equals NaN here


# -- round trip ---------------------------------------------------------------------------


def test_roundtrip_of_a_full_case_with_non_finite_values():
    x = np.arange(2 * 24, dtype=np.float64).reshape(2, 2, 3, 4) / 7
    x[0, 0, 0, 0], x[1, 1, 2, 3], x[0, 1, 1, 1], x[1, 0, 0, 0] = np.nan, np.inf, -np.inf, -0.0
    case = Case(
        shape=(2, 3, 4), channel_axis=1, dtype="bfloat16", x=x, eps=1e-5, decay=0.9, affine=True,
        training_steps=2, gamma=np.array([1.0, np.nan, 2.0]), beta=np.array([0.0, -np.inf, 0.5]),
        running_mean=np.array([np.inf, 0.0, 1.0]), running_var=np.array([1.0, 2.0, 3.0]),
        dy=Generator(seed=9, distribution="student_t", loc=(1.0, 2.0, 3.0), scale=0.0, df=4.0, outliers=2),
        device="gpu", frameworks=("torch", "flax"), description="round trip", extra={"origin": [1, "a"]},
    )  # fmt: skip
    document = case_to_json(case)
    assert document["x"][0][0][0][0] == "nan"
    assert document["x"][1][1][2][3] == "inf"
    assert document["x"][0][1][1][1] == "-inf"
    assert document["gamma"] == [1.0, "nan", 2.0]
    back = _roundtrip(case)
    _assert_same(case, back)
    assert math.copysign(1.0, back.x[1, 0, 0, 0]) == -1.0


def test_roundtrip_of_a_minimal_case_keeps_defaults():
    case = Case(shape=(3, 2), channel_axis=-1, dtype="float32", x=Generator())
    back = _roundtrip(case)
    _assert_same(case, back)
    assert back.frameworks == ()
    assert back.extra == {}


def test_generator_non_finite_loc_is_written_as_a_string():
    case = Case(shape=(3, 2), channel_axis=1, dtype="float32", x=Generator(loc=(math.inf, -math.inf)))
    assert case_to_json(case)["x"]["generator"]["loc"] == ["inf", "-inf"]
    assert _roundtrip(case).x == case.x


def test_python_nan_and_infinity_tokens_are_read_back():
    text = '{"schema_version": 1, "shape": [1, 3], "channel_axis": 1, "dtype": "float64", "x": [[NaN, Infinity, -Infinity]]}'
    x = parse_case(json.loads(text)).x
    assert np.isnan(x[0, 0])
    assert x[0, 1:].tolist() == [math.inf, -math.inf]


def test_dump_and_load_case(tmp_path):
    case = Case(
        shape=(2, 2), channel_axis=0, dtype="float16", x=np.array([[1.0, np.nan], [np.inf, 0.5]]), decay="cumulative"
    )
    path = tmp_path / "case.json"
    dump_case(case, path)
    json.loads(path.read_text(), parse_constant=pytest.fail)  # strict JSON on disk
    _assert_same(case, load_case(path))
    _assert_same(case, load_case(str(path)))


_DTYPES = st.sampled_from(["float16", "bfloat16", "float32", "float64"])
_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1000, 1000).map(float))


@st.composite
def _cases(draw) -> Case:
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=2, max_size=5)))
    rank = len(shape)
    axis = draw(st.integers(-rank, rank - 1))
    channels = shape[axis]
    steps = draw(st.integers(1, 3))
    if draw(st.booleans()):
        batch_shape = draw(st.sampled_from([shape, (steps, *shape)] if steps > 1 else [shape]))
        x = np.array(draw(st.lists(_VALUES, min_size=math.prod(batch_shape), max_size=math.prod(batch_shape))))
        x = x.reshape(batch_shape)
    else:
        finite = st.floats(-1e6, 1e6)
        x = Generator(
            seed=draw(st.integers(0, 2**32)),
            distribution=draw(st.sampled_from(["normal", "uniform", "student_t"])),
            loc=draw(st.one_of(finite, st.tuples(*[finite] * channels))),
            scale=draw(st.one_of(st.floats(0, 1e3), st.tuples(*[st.floats(0, 1e3)] * channels))),
            df=draw(st.floats(0.5, 100)),
            outliers=draw(st.integers(0, 5)),
            outlier_magnitude=draw(st.floats(-1e3, 1e3)),
        )
    vector = st.lists(_VALUES, min_size=channels, max_size=channels).map(np.array)

    def vector_batch(shape):
        size = math.prod(shape)
        return st.lists(_VALUES, min_size=size, max_size=size).map(lambda v: np.array(v).reshape(shape))

    return Case(
        shape=shape, channel_axis=axis, dtype=draw(_DTYPES), x=x, training_steps=steps,
        eps=draw(st.one_of(st.none(), st.floats(0, 1), st.integers(0, 3).map(float))),
        decay=draw(st.one_of(st.none(), st.just("cumulative"), st.floats(0, 1))),
        affine=draw(st.booleans()), gamma=draw(st.one_of(st.none(), vector)), beta=draw(st.one_of(st.none(), vector)),
        running_mean=draw(st.one_of(st.none(), vector)), running_var=draw(st.one_of(st.none(), vector)),
        dy=draw(st.one_of(st.none(), st.builds(Generator, seed=st.integers(0, 99)), vector_batch(shape))),
        device=draw(st.sampled_from(["cpu", "gpu"])),
        frameworks=tuple(draw(st.lists(st.sampled_from(["torch", "keras", "flax"]), max_size=2))),
    )  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_roundtrip_property(case):
    _assert_same(case, _roundtrip(case))


# -- malformed documents ------------------------------------------------------------------


def _doc(**changes) -> dict:
    document = {"schema_version": 1, "shape": [2, 3, 4], "channel_axis": 1, "dtype": "float32", "x": {"generator": {}}}
    document.update(changes)
    return {k: v for k, v in document.items() if v is not _DROP}


_DROP = object()
_X = [[[0.0] * 4 for _ in range(3)] for _ in range(2)]
_BAD_X = [[[0.0] * 4 for _ in range(3)], [[0.0] * 4, [0.0] * 4, [0.0, 0.0, "oops", 0.0]]]


def _gen(**spec) -> dict:
    return {"generator": spec}


# (id, document, field, fragments that the message must contain)
_MALFORMED = [
    ("missing-shape", _doc(shape=_DROP), "shape", ["missing"]),
    ("missing-channel_axis", _doc(channel_axis=_DROP), "channel_axis", ["missing"]),
    ("missing-dtype", _doc(dtype=_DROP), "dtype", ["missing"]),
    ("missing-x", _doc(x=_DROP), "x", ["missing", "generator"]),
    ("null-x", _doc(x=None), "x", ["missing"]),
    ("missing-schema_version", _doc(schema_version=_DROP), "schema_version", ["missing"]),
    ("schema_version-2", _doc(schema_version=2), "schema_version", ["expected 1", "got 2"]),
    ("schema_version-string", _doc(schema_version="1"), "schema_version", ["expected 1", "got '1'"]),
    ("schema_version-true", _doc(schema_version=True), "schema_version", ["expected 1", "got True"]),
    ("dtype-unknown", _doc(dtype="float8"), "dtype", ["float16", "bfloat16", "got 'float8'"]),
    ("channel_axis-too-large", _doc(channel_axis=3), "channel_axis", ["[-3, 2]", "got 3"]),
    ("channel_axis-too-small", _doc(channel_axis=-4), "channel_axis", ["[-3, 2]", "got -4"]),
    ("channel_axis-float", _doc(channel_axis=1.0), "channel_axis", ["integer", "got 1.0"]),
    ("shape-zero", _doc(shape=[2, 0, 4]), "shape", ["positive integers", "got [2, 0, 4]"]),
    ("shape-negative", _doc(shape=[2, -3]), "shape", ["positive integers", "got [2, -3]"]),
    ("shape-non-integer", _doc(shape=[2, 3.5]), "shape", ["positive integers", "got [2, 3.5]"]),
    ("shape-rank-1", _doc(shape=[4], channel_axis=0), "shape", ["at least 2", "got [4]"]),
    ("shape-not-a-list", _doc(shape="2x3"), "shape", ["list", "got '2x3'"]),
    ("gamma-wrong-length", _doc(gamma=[1.0, 1.0]), "gamma", ["expected 3 numbers", "(2,)"]),
    ("running_var-scalar", _doc(running_var=1.0), "running_var", ["expected 3 numbers", "()"]),
    ("x-non-numeric", _doc(x=_BAD_X), "x", ["expected a number at x[1][2][2]", "got 'oops'"]),
    ("x-ragged", _doc(x=[[[0.0] * 4] * 3, [[0.0] * 4] * 2]), "x", ["ragged", "same length"]),
    ("x-wrong-shape", _doc(x=[[0.0] * 4] * 3), "x", ["[2, 3, 4]", "got shape [3, 4]"]),
    ("x-stack-wrong-steps", _doc(x=[_X] * 3, training_steps=2), "x", ["[2, 2, 3, 4]", "got shape [3, 2, 3, 4]"]),
    ("x-stack-single-step", _doc(x=[_X] * 2), "x", ["[2, 3, 4]", "got shape [2, 2, 3, 4]"]),
    ("dy-wrong-shape", _doc(dy=[_X] * 2, training_steps=2), "dy", ["[2, 3, 4]", "got shape [2, 2, 3, 4]"]),
    ("eps-negative", _doc(eps=-1e-5), "eps", [">= 0", "got -1e-05"]),
    ("eps-string", _doc(eps="1e-5"), "eps", ["number", "got '1e-5'"]),
    ("eps-nan-token", _doc(eps=math.nan), "eps", ["finite", "got nan"]),
    ("decay-1.5", _doc(decay=1.5), "decay", ["[0, 1]", "cumulative", "got 1.5"]),
    ("decay-unknown-string", _doc(decay="average"), "decay", ["[0, 1]", "got 'average'"]),
    ("training_steps-0", _doc(training_steps=0), "training_steps", ["positive integer", "got 0"]),
    ("training_steps-bool", _doc(training_steps=True), "training_steps", ["positive integer", "got True"]),
    ("affine-string", _doc(affine="yes"), "affine", ["true or false", "got 'yes'"]),
    ("unknown-top-level", _doc(momentum=0.1), "momentum", ["unknown field", "channel_axis"]),
    ("generator-unknown-field", _doc(x=_gen(mean=1.0)), "x.generator.mean", ["unknown field", "loc"]),
    ("generator-extra-key", _doc(x={"generator": {}, "seed": 1}), "x", ["generator", "got keys ['generator', 'seed']"]),
    ("generator-bad-distribution", _doc(x=_gen(distribution="cauchy")), "x.generator.distribution", ["student_t", "got 'cauchy'"]),
    ("generator-negative-scale", _doc(x=_gen(scale=[1.0, -2.0, 1.0])), "x.generator.scale", [">= 0", "-2.0"]),
    ("generator-wrong-length-loc", _doc(x=_gen(loc=[0.0, 1.0])), "x.generator.loc", ["3 numbers", "(2,)"]),
    ("generator-non-numeric-loc", _doc(x=_gen(loc=[0.0, "a", 1.0])), "x.generator.loc", ["x.generator.loc[1]", "'a'"]),
    ("generator-negative-seed", _doc(x=_gen(seed=-1)), "x.generator.seed", [">= 0", "got -1"]),
    ("generator-df-zero", _doc(x=_gen(df=0)), "x.generator.df", ["> 0", "got 0"]),
    ("generator-outliers-float", _doc(x=_gen(outliers=1.5)), "x.generator.outliers", ["integer", "got 1.5"]),
    ("dy-generator-bad", _doc(dy=_gen(distribution="x")), "dy.generator.distribution", ["normal", "got 'x'"]),
    ("device-tpu", _doc(device="tpu"), "device", ["cpu, gpu", "got 'tpu'"]),
    ("frameworks-string", _doc(frameworks="torch"), "frameworks", ["list", "got 'torch'"]),
    ("description-number", _doc(description=3), "description", ["string", "got int"]),
    ("extra-list", _doc(extra=[]), "extra", ["object", "got a list"]),
    ("root-list", [1, 2], "<root>", ["JSON object", "got a list"]),
    ("root-string", "case", "<root>", ["JSON object", "got a string"]),
    ("root-null", None, "<root>", ["JSON object", "got null"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("document", "field", "fragments"), [m[1:] for m in _MALFORMED], ids=[m[0] for m in _MALFORMED]
)
def test_malformed_document_is_rejected_naming_the_field(document, field, fragments):
    with pytest.raises(CaseFileError) as info:
        parse_case(document)
    error = info.value
    assert error.field == field
    message = str(error)
    assert repr(field) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_the_base_document_is_valid():
    case = parse_case(_doc(x=_X, gamma=[1, 2, 3]))
    assert case.shape == (2, 3, 4)
    np.testing.assert_array_equal(case.gamma, [1.0, 2.0, 3.0])


# -- files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"\x89PNG\r\n\x1a\n\x00\xff\xfe"],
    ids=["broken-json", "empty", "binary"],
)
def test_load_case_on_a_file_that_is_not_json(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(CaseFileError, match="not valid JSON") as info:
        load_case(path)
    assert info.value.field == "<file>"
    assert str(path) in str(info.value)


def test_load_case_on_a_missing_file(tmp_path):
    path = tmp_path / "missing.json"
    with pytest.raises(CaseFileError, match="cannot read") as info:
        load_case(path)
    assert info.value.field == "<file>"
    assert str(path) in str(info.value)


def test_load_case_names_the_file_and_field_of_an_invalid_case(tmp_path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(_doc(decay=2)))
    with pytest.raises(CaseFileError) as info:
        load_case(path)
    assert info.value.field == "decay"
    assert info.value.source == str(path)
    assert str(info.value).startswith(f"{path}: case field 'decay'")
