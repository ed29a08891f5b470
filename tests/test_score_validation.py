"""ml/score.py's request validation, in process: every client-caused failure is a 4xx naming the
problem, and no message or log line carries text that cannot be encoded (or unbounded input).
The same cases through the real inference server are in test_score_server.py."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml import schema
from ml import score as scoring

LIMIT = "3.4028235e+38"  # float32's max as score.py's messages print it
MESSAGE_BOUND = 1_000  # characters: generous for "data[9999]: missing ...; unknown ..." with every name


@pytest.fixture(autouse=True)
def _contract(monkeypatch) -> None:
    scoring.configure(schema.schema_dict())
    monkeypatch.setattr(scoring, "max_rows", 10_000)


@pytest.fixture(scope="module")
def row() -> dict[str, Any]:
    from ml.datagen import generate

    return generate(1, seed=4, labelled=False).to_dict(orient="records")[0]


def body_with(row: dict[str, Any], name: str, raw: str) -> str:
    """A one-record body whose `name` is the JSON text `raw`, spliced verbatim (huge literals,
    surrogate escapes: things a serializer would refuse or rewrite)."""
    fields = [f"{json.dumps(k)}: {raw if k == name else json.dumps(v)}" for k, v in row.items()]
    if name not in row:
        fields.append(f"{json.dumps(name)}: {raw}")
    return '{"data": [{' + ", ".join(fields) + "}]}"


def rejected(body: bytes | str) -> scoring.RequestError:
    with pytest.raises(scoring.RequestError) as caught:
        scoring.parse_request(body)
    error = caught.value
    assert 400 <= error.status < 500
    assert_presentable(error.message)
    return error


def assert_presentable(message: str) -> None:
    """What a client and the console log receive: printable ASCII (hostile text escaped), bounded."""
    assert message.isascii() and message.isprintable(), message
    assert len(message) <= MESSAGE_BOUND


# ---- 1. nesting ------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "[" * 100_000,  # the reproduction: unbalanced
    '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}",  # well-formed, just deep
    '{"data": [{"sex": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}]}",  # deep objects inside a field
], ids=["unbalanced_lists", "balanced_lists_in_data", "objects_in_a_field"])
def test_deep_nesting_is_a_400_saying_so(body: str) -> None:
    error = rejected(body)
    assert error.status == 400
    assert "nests too deeply" in error.message


def test_moderate_nesting_inside_a_field_is_a_type_error_naming_the_field(row) -> None:
    error = rejected(body_with(row, "sex", "[" * 500 + "]" * 500))
    assert error.message == "data[0].sex must be a string, got list"


# ---- 2. integers beyond float ----------------------------------------------------------------------

@pytest.mark.parametrize("raw, digits", [("1" + "0" * 400, 401), ("-" + "9" * 400, 400),
                                         ("7" * 5_000, 5_000)],  # beyond int's 4,300-digit parse limit
                         ids=["10**400", "negative", "beyond_the_int_digit_limit"])
def test_an_integer_too_large_for_a_float_is_a_400_naming_the_field(row, raw: str, digits: int) -> None:
    error = rejected(body_with(row, "credit_limit", raw))
    assert error.status == 400
    assert error.message.startswith("data[0].credit_limit is out of range: ")
    assert f"an integer of {digits} digits" in error.message and LIMIT in error.message


def test_a_huge_integer_in_a_categorical_is_a_type_error(row) -> None:
    error = rejected(body_with(row, "sex", "7" * 5_000))
    assert error.message == "data[0].sex must be a string, got int"  # not the stand-in's class name


# ---- 3. float32's range ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["1e39", "-1e39", "3.4028236e38", "1.7976931348623157e308",
                                 "340282350000000000000000000000000000001"])
def test_finite_numbers_beyond_float32_are_a_400_naming_the_field_and_the_limit(row, raw: str) -> None:
    error = rejected(body_with(row, "bill_amount_3", raw))
    assert error.status == 400
    assert error.message.startswith("data[0].bill_amount_3 is out of range: ")
    assert f"|x| must be <= {LIMIT}" in error.message


@pytest.mark.parametrize("raw", ["3.4028235e38", "-3.4028235e38", "340282350000000000000000000000000000000",
                                 "-340282350000000000000000000000000000000", "5e-324", "-0.0", "18446744073709551616"])
def test_the_limit_itself_and_tiny_or_wide_integers_are_accepted(row, raw: str) -> None:
    rows, _ = scoring.parse_request(body_with(row, "bill_amount_3", raw))
    assert rows[0]["bill_amount_3"] == json.loads(raw)


@pytest.mark.parametrize("raw, shown", [("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf"),
                                        ("1e400", "inf")])  # beyond float64: every JSON parser reads inf
def test_non_finite_numbers_are_still_refused_as_non_finite(row, raw: str, shown: str) -> None:
    error = rejected(body_with(row, "age", raw))
    assert error.message == f"data[0].age must be a finite number, got {shown}"


@pytest.mark.parametrize("raw, kind", [("true", "bool"), ("false", "bool"), ('"33"', "str"), ("[33]", "list"),
                                       ('{"v": 33}', "dict")])
def test_a_number_of_the_wrong_type_is_refused_by_type(row, raw: str, kind: str) -> None:
    error = rejected(body_with(row, "age", raw))
    assert error.message == f"data[0].age must be a number, got {kind}"


def test_a_boolean_categorical_is_refused_by_type(row) -> None:
    assert rejected(body_with(row, "marriage", "true")).message == "data[0].marriage must be a string, got bool"


# ---- 4. text that cannot be encoded ----------------------------------------------------------------

@pytest.mark.parametrize("raw", ['"\\ud800"', '"\\udfff"', '"married\\udc00"', '"\\ud83d"'],
                         ids=["high", "low", "after_text", "half_an_emoji_pair"])
def test_a_lone_surrogate_in_a_categorical_is_a_400_naming_the_field(row, raw: str) -> None:
    error = rejected(body_with(row, "marriage", raw))
    assert error.status == 400
    assert error.message.startswith("data[0].marriage is not valid Unicode text")
    assert error.message.endswith(": " + ascii(json.loads(raw))[1:-1])  # the value, escaped


def test_a_surrogate_encoded_as_raw_utf8_bytes_is_refused_too(row) -> None:
    # json.loads decodes bytes with "surrogatepass": ED A0 80 arrives as a lone U+D800.
    body = body_with(row, "sex", '"@"').encode().replace(b'"@"', b'"\xed\xa0\x80"')
    assert rejected(body).message.startswith("data[0].sex is not valid Unicode text")


def test_a_valid_surrogate_pair_is_an_unseen_level(row) -> None:
    rows, unseen = scoring.parse_request(body_with(row, "sex", '"\\ud83d\\ude00"'))
    assert rows[0]["sex"] == "\U0001f600" and unseen == {"sex": 1}


@pytest.mark.parametrize("key", ["\ud800", "ag\x00e", "\u202eega", "x" * 100_000, "\n"],
                         ids=["lone_surrogate", "nul", "rtl_override", "very_long", "newline"])
def test_a_hostile_key_is_named_escaped_and_truncated(row, key: str) -> None:
    error = rejected(json.dumps({"data": [dict(row, **{key: 1})]}))
    assert error.status == 400
    assert error.message.startswith("data[0]: unknown feature(s) ")
    assert len(error.message) < 200


def test_an_ordinary_unknown_key_is_named_as_it_is(row) -> None:
    assert rejected(json.dumps({"data": [dict(row, favourite_colour=1)]})).message == \
        "data[0]: unknown feature(s) favourite_colour"


def test_many_unknown_keys_are_counted_not_listed(row) -> None:
    extra = {f"k{n:05d}": 1 for n in range(10_000)}
    error = rejected(json.dumps({"data": [dict(row, **extra)]}))
    assert error.message == "data[0]: unknown feature(s) k00000, k00001, k00002, k00003, k00004 and 9995 more"


def test_missing_and_unknown_keys_are_both_named(row) -> None:
    record = {k: v for k, v in row.items() if k != "age"}
    record["\u202eage"] = 33
    assert rejected(json.dumps({"data": [record]})).message == \
        "data[0]: missing feature(s) age; unknown feature(s) \\u202eage"


# ---- long text, odd but valid text, rows ----------------------------------------------------------

def test_text_longer_than_the_limit_is_a_400_with_its_length_not_its_content(row) -> None:
    error = rejected(json.dumps({"data": [dict(row, education="é" * 100_000)]}))
    assert error.message == f"data[0].education is 100000 characters long; the maximum is {scoring.MAX_TEXT_LENGTH}"


def test_text_at_the_limit_is_an_unseen_level(row) -> None:
    rows, unseen = scoring.parse_request(json.dumps({"data": [dict(row, education="e" * scoring.MAX_TEXT_LENGTH)]}))
    assert unseen == {"education": 1}


@pytest.mark.parametrize("level", ["\x00", "\u200fmarried", "\ufeff", "marrié", ""],
                         ids=["nul", "rtl_mark", "bom", "accent", "empty"])
def test_encodable_odd_levels_are_scored_as_unseen(row, level: str) -> None:
    rows, unseen = scoring.parse_request(json.dumps({"data": [dict(row, marriage=level)]}))
    assert rows[0]["marriage"] == level and unseen == {"marriage": 1}


def test_more_rows_than_the_maximum_is_a_413(row) -> None:
    error = rejected(json.dumps({"data": [row] * 10_001}))
    assert error.status == 413 and error.message == "\"data\" has 10001 records; the maximum is 10000"


@pytest.mark.parametrize("body, message", [
    (b"\xff\xfe\xfa", "request body is not valid JSON: "),  # undecodable bytes
    ("{'data': oops", "request body is not valid JSON: "),
    ('{"data": [1]} ' + "x" * 100_000, "request body is not valid JSON: Extra data"),
])
def test_malformed_bodies_keep_their_message_and_stay_bounded(body: bytes | str, message: str) -> None:
    assert rejected(body).message.startswith(message)


def test_the_error_is_reported_for_the_first_bad_record(row) -> None:
    body = json.dumps({"data": [row, row, dict(row, age=1e39), dict(row, sex=None, age=True)]})
    assert rejected(body).message.startswith("data[2].age is out of range")


# ---- run(): the response and the console log ------------------------------------------------------

class _Request:
    method = "POST"
    headers = {"x-request-id": "req-1"}

    def __init__(self, body: bytes) -> None:
        self._body = body

    def get_data(self, cache: bool = False) -> bytes:
        return self._body


def _log_lines(capsys) -> list[dict[str, Any]]:
    lines = capsys.readouterr().out.splitlines()
    for line in lines:
        assert line.isascii()
    return [json.loads(line) for line in lines]


def test_a_rejected_request_logs_only_an_encodable_invalid_request_record(row, capsys) -> None:
    body = body_with(row, "sex", '"\\ud800"').encode()
    response = scoring.run(_Request(body))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error.startswith("data[0].sex is not valid Unicode text")
    error.encode("utf-8")  # no lone surrogate reaches the client either
    records = _log_lines(capsys)
    assert [r["type"] for r in records] == ["InvalidRequest"]
    json.dumps(records[0], ensure_ascii=False).encode("utf-8")  # would raise on a lone surrogate


def test_a_model_failure_message_is_logged_encodable(row, capsys, monkeypatch) -> None:
    class Broken:
        def predict_proba(self, frame: Any) -> Any:
            raise ValueError("cannot score \ud800")

    monkeypatch.setattr(scoring, "model", Broken())
    response = scoring.run(_Request(json.dumps({"data": [row]}).encode()))
    assert response.status_code == 500
    records = _log_lines(capsys)
    assert [r["type"] for r in records] == ["InputData", "Exception"]
    assert records[1]["data"]["message"] == "cannot score \\ud800"


# ---- any body ----------------------------------------------------------------------------------------

_HOSTILE_CHARS = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\x00", "\x1b", "\u202e", "\u200f",
                                  "\ufeff", "\u0085", "\U0001f600", '"', "\\", "é"])
_TEXT = st.one_of(st.text(max_size=12), st.lists(_HOSTILE_CHARS | st.characters(), max_size=12).map("".join),
                  st.integers(200, 3_000).map(lambda n: "x" * n))
_NUMBER_TEXT = st.one_of(
    st.integers().map(str), st.floats().map(json.dumps), st.booleans().map(json.dumps),
    st.integers(300, 6_000).map(lambda n: "9" * n),  # beyond float, and beyond int's digit limit
    st.sampled_from(["1e39", "-1e39", "3.4028235e38", "3.4028236e38", "1e400", "NaN", "-Infinity", "5e-324",
                     "340282350000000000000000000000000000000", "340282350000000000000000000000000000001"]),
)
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                     max_leaves=8)
_VALUE_TEXT = st.one_of(_NUMBER_TEXT, _TEXT.map(json.dumps), _JSON.map(json.dumps),
                        st.integers(900, 20_000).map(lambda n: "[" * n + "]" * n))


@st.composite
def request_bodies(draw: st.DrawFn, row: dict[str, Any]) -> str | bytes:
    """Random JSON, deep nesting, raw bytes, or a valid-looking record with one field mutated."""
    kind = draw(st.sampled_from(["json", "deep", "bytes", "mutated"]))
    if kind == "json":
        return json.dumps(draw(_JSON))
    if kind == "deep":
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a": ', "}")]))
        depth = draw(st.integers(1, 100_000))
        return '{"data": ' + opener * depth + "1" + closer * depth * draw(st.sampled_from([0, 1])) + "}"
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    name = draw(st.sampled_from(sorted(row) + ["favourite_colour", "\ud800", ""]))
    return body_with(row, name, draw(_VALUE_TEXT))


def _assert_valid_rows(rows: list[dict[str, Any]]) -> None:
    """What parse_request lets through is what predict() and the log export can take."""
    for record in rows:
        assert record.keys() == set(schema.FEATURE_NAMES)
        for name in schema.CATEGORICAL:
            value = record[name]
            assert value is None or (type(value) is str and len(value) <= scoring.MAX_TEXT_LENGTH)
            if value is not None:
                value.encode("utf-8")
        for name in schema.NUMERIC:
            value = record[name]
            assert value is None or (type(value) in (int, float) and math.isfinite(float(value))
                                     and abs(value) <= 34028235 * 10**31)


def test_any_body_is_accepted_validly_or_refused_with_a_presentable_4xx(row) -> None:
    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(body=request_bodies(row))
    def check(body: str | bytes) -> None:
        try:
            rows, _ = scoring.parse_request(body)
        except scoring.RequestError as error:
            assert 400 <= error.status < 500
            assert_presentable(error.message)
        else:
            _assert_valid_rows(rows)

    check()
