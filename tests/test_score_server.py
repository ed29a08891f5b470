"""ml/score.py through a real azureml-inference-server-http process on loopback."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.adapters.local.inference_server import InferenceServer
from functions.domain import gates
from ml import artifact, schema
from ml.datagen import generate
from tests.conftest import require_serving_env

pytestmark = pytest.mark.integration
MAX_ROWS = 2_000


@pytest.fixture(scope="module")
def server(artifact_dir, settings, tmp_path_factory):
    require_serving_env()
    log = tmp_path_factory.mktemp("serve") / "console.log"
    with InferenceServer(artifact_dir, settings.serving_python, log, env={"MODELOPS_MAX_ROWS": str(MAX_ROWS)}) as srv:
        yield srv


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


def post(http, server, body, request_id: str | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json", "x-request-id": request_id or uuid.uuid4().hex}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return http.post(server.scoring_uri, data=data, headers=headers, timeout=60)


def log_records(server: InferenceServer, request_id: str) -> list[dict]:
    records = []
    for line in server.console_log.read_text().splitlines():
        if line.startswith("{") and f'"request_id":"{request_id}"' in line:
            records.append(json.loads(line))
    return records


def rows(n: int, seed: int = 1) -> list[dict]:
    return generate(n, seed=seed, labelled=False).to_dict(orient="records")


def test_sample_request_scores_and_logs_input_and_output(server, http, sample_request):
    request_id = uuid.uuid4().hex
    response = post(http, server, sample_request, request_id)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 1 and 0.0 <= predictions[0] <= 1.0

    records = log_records(server, request_id)
    assert [r["type"] for r in records] == ["InputData", "OutputData"]
    for record in records:
        assert record["service_name"] == "online/credit-card-default/3"  # <name>/<version> of the mount
        assert record["request_id"] == request_id
    assert json.loads(records[0]["data"]) == sample_request["data"]  # the scenario logs inputs as a JSON string
    assert records[1]["data"] == predictions


def test_batch_predictions_match_the_pipeline(server, http, artifact_dir):
    import pandas as pd

    batch = rows(50)
    response = post(http, server, {"data": batch})
    assert response.status_code == 200
    expected = artifact.load_pipeline(artifact_dir).predict_proba(pd.DataFrame(batch))[:, 1]
    assert response.json()["predictions"] == pytest.approx(expected.tolist(), abs=1e-12)


def test_large_batch_up_to_the_limit_is_scored(server, http):
    response = post(http, server, {"data": rows(MAX_ROWS, seed=2)})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == MAX_ROWS


def test_missing_values_are_imputed_and_unseen_levels_counted_not_rejected(server, http):
    batch = rows(3, seed=3)
    batch[0]["age"] = None
    batch[1]["education"] = "phd"
    batch[2]["education"] = "phd"
    batch[2]["marriage"] = "divorced"
    request_id = uuid.uuid4().hex
    response = post(http, server, {"data": batch}, request_id)
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 3
    unseen = [r for r in log_records(server, request_id) if r["type"] == "UnseenCategories"]
    assert unseen and unseen[0]["data"] == {"education": 2, "marriage": 1}


def _one(**change) -> dict:
    row = rows(1, seed=4)[0]
    row.update(change)
    return {"data": [row]}


def _without(name: str) -> dict:
    row = rows(1, seed=4)[0]
    del row[name]
    return {"data": [row]}


def _raw(name: str, literal: str) -> str:
    """A one-record body with `literal` spliced in as the JSON text of `name`: what a client sends
    that a serializer would refuse or rewrite (huge integer literals, surrogate escapes)."""
    fields = [f"{json.dumps(k)}: {literal if k == name else json.dumps(v)}" for k, v in _ROW.items()]
    return '{"data": [{' + ", ".join(fields) + "}]}"


_ROW = rows(1, seed=4)[0]


INVALID = {
    "not_json": ("{'data': oops", 400, "not valid JSON"),
    "not_an_object": ("[1, 2, 3]", 400, "JSON object"),
    "no_data": ({"rows": []}, 400, "no \"data\" key"),
    "data_not_a_list": ({"data": {"sex": "male"}}, 400, "must be a list"),
    "empty_list": ({"data": []}, 400, "empty list"),
    "record_not_an_object": ({"data": [[1, 2]]}, 400, "data[0] must be an object"),
    "missing_feature": (_without("age"), 400, "missing feature(s) age"),
    "extra_feature": (_one(favourite_colour="blue"), 400, "unknown feature(s) favourite_colour"),
    "categorical_wrong_type": (_one(sex=1), 400, "data[0].sex must be a string"),
    "numeric_wrong_type": (_one(age="thirty"), 400, "data[0].age must be a number"),
    "numeric_boolean": (_one(credit_limit=True), 400, "data[0].credit_limit must be a number"),
    "too_many_rows": ({"data": [rows(1)[0]] * (MAX_ROWS + 1)}, 413, f"maximum is {MAX_ROWS}"),
    "non_finite_number": (_one(age=float("nan")), 400, "data[0].age must be a finite number"),
    "text_too_long": (_one(education="x" * 100_000), 400, "data[0].education is 100000 characters long"),
    "hostile_key": (_one(**{"\u202e\ud800": 1}), 400, "unknown feature(s) \\u202e\\ud800"),
    "integer_beyond_digit_limit": (_raw("age", "9" * 5_000), 400, "data[0].age is out of range"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_requests_get_a_4xx_json_error_naming_the_problem(server, http, case):
    body, status, message = INVALID[case]
    request_id = uuid.uuid4().hex
    response = post(http, server, body, request_id)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert message in error
    assert "Traceback" not in response.text
    records = log_records(server, request_id)
    assert [r["type"] for r in records] == ["InvalidRequest"]
    assert records[0]["data"] == {"status": status, "error": error}


def _assert_400_naming(response: requests.Response, *expected: str) -> str:
    assert response.status_code == 400, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    for text in expected:
        assert text in error
    error.encode("utf-8")  # a lone surrogate in the message would raise here
    return error


def _still_scores(http, server, sample_request) -> None:
    response = post(http, server, sample_request)
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1


def test_finding_1_deep_nesting_is_a_400_not_a_500(server, http, sample_request):
    response = post(http, server, "[" * 100_000)
    _assert_400_naming(response, "nests too deeply")
    _still_scores(http, server, sample_request)


def test_finding_2_an_integer_too_large_for_a_float_is_a_400_naming_the_field(server, http, sample_request):
    response = post(http, server, _raw("credit_limit", str(10 ** 400)))
    _assert_400_naming(response, "data[0].credit_limit is out of range", "an integer of 401 digits")
    _still_scores(http, server, sample_request)


def test_finding_3_a_number_beyond_float32_is_a_400_naming_the_field_and_the_limit(server, http, sample_request):
    response = post(http, server, _one(bill_amount_2=1e39))
    _assert_400_naming(response, "data[0].bill_amount_2 is out of range: 1e+39", "3.4028235e+38")
    _still_scores(http, server, sample_request)


@pytest.mark.parametrize("encoded", [b'"\\ud800"', b'"\xed\xa0\x80"'], ids=["json_escape", "raw_utf8_bytes"])
def test_finding_4_a_lone_surrogate_is_a_400_naming_the_field_and_never_logged(server, http, sample_request,
                                                                                encoded):
    request_id = uuid.uuid4().hex
    body = _raw("sex", '"@"').encode().replace(b'"@"', encoded)
    response = post(http, server, body, request_id)
    error = _assert_400_naming(response, "data[0].sex is not valid Unicode text", "\\ud800")
    records = log_records(server, request_id)
    assert [r["type"] for r in records] == ["InvalidRequest"]  # no InputData line for the export to trip on
    assert records[0]["data"]["error"] == error
    _still_scores(http, server, sample_request)


def test_every_kind_the_contract_gate_sends_is_a_4xx_with_an_error(server, http, sample_request):
    answers = {}
    from functions.shared.contract import ModelContract
    from tests.fakes import credit_card_contract

    contract = ModelContract.from_dict(credit_card_contract({"data": sample_request["data"][:1]}))
    for kind, body in gates.invalid_requests(contract).items():
        response = post(http, server, body)
        answers[kind] = (response.status_code, response.json())
    result = gates.judge_contract(answers)
    assert result.passed, result.reason
    _still_scores(http, server, sample_request)


_HOSTILE_CHARS = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\x00", "\x1b", "\u202e", "\u200f",
                                  "\ufeff", "\u0085", "\U0001f600", '"', "\\", "é"])
_TEXT = st.one_of(st.text(max_size=10), st.lists(_HOSTILE_CHARS | st.characters(), max_size=10).map("".join),
                  st.integers(200, 5_000).map(lambda n: "x" * n))
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                     max_leaves=8)
_LITERAL = st.one_of(  # JSON text for one field of an otherwise valid record
    st.integers().map(str), st.floats().map(json.dumps), st.booleans().map(json.dumps), st.just("null"),
    st.integers(300, 6_000).map(lambda n: "9" * n),  # beyond float, and beyond int's parse limit
    st.sampled_from(["1e39", "-1e39", "3.4028235e38", "3.4028236e38", "1e400", "NaN", "-Infinity", "5e-324"]),
    _TEXT.map(json.dumps), _JSON.map(json.dumps),
    st.integers(900, 50_000).map(lambda n: "[" * n + "]" * n),
)


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """Random JSON, deep nesting, raw bytes, or a valid-looking record with one field mutated."""
    kind = draw(st.sampled_from(["json", "deep", "bytes", "mutated", "mutated", "mutated"]))
    if kind == "json":
        return json.dumps(draw(_JSON)).encode()  # ensure_ascii: surrogates go as \ud800, as clients send them
    if kind == "deep":
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a": ', "}")]))
        depth = draw(st.integers(1, 100_000))
        return ('{"data": ' + opener * depth + "1" + closer * depth * draw(st.sampled_from([0, 1])) + "}").encode()
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    name = draw(st.sampled_from(list(schema.FEATURE_NAMES) + ["favourite_colour", "\ud800", "\x00"]))
    row = dict(_ROW) if name in _ROW else {**_ROW, name: None}
    fields = [f"{json.dumps(k)}: {draw(_LITERAL) if k == name else json.dumps(v)}" for k, v in row.items()]
    return ('{"data": [{' + ", ".join(fields) + "}]}").encode()


def test_generated_bodies_never_get_a_5xx_and_the_server_keeps_scoring(server, http, sample_request):
    statuses: dict[int, int] = {}

    @settings(max_examples=250, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(body=_bodies())
    def answer(body: bytes) -> None:
        response = post(http, server, body)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (body[:200], response.text[:300])
        if response.status_code == 200:
            assert len(response.json()["predictions"]) == 1
        else:
            assert 400 <= response.status_code < 500
            error = response.json()["error"]
            assert isinstance(error, str) and error and len(error) <= 1_000
            error.encode("utf-8")

    answer()
    assert 200 in statuses and 400 in statuses  # the generator reaches both sides of the contract
    _still_scores(http, server, sample_request)
    # Everything score.py logged in this module's requests can be re-encoded as UTF-8 (the export's need).
    for line in server.console_log.read_text().splitlines():
        if line.startswith('{"service_name"'):
            record = json.loads(line)
            if record["type"] == "InputData":
                record["data"] = json.loads(record["data"])
            json.dumps(record, ensure_ascii=False).encode("utf-8")


def test_get_is_refused_and_health_is_ok(server, http):
    assert http.get(server.scoring_uri, timeout=10).status_code == 405
    assert http.get(server.health_uri, timeout=10).status_code == 200


def test_a_model_that_fails_gives_a_500_json_and_a_serialisable_exception_record(
    artifact_dir, settings, tmp_path, sample_request
):
    """The scenario's script crashed while logging an exception; ours logs a JSON record and answers."""
    import joblib
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import Pipeline

    require_serving_env()
    broken = tmp_path / "credit-card-default" / "9"
    shutil.copytree(artifact_dir, broken)
    # A pipeline fitted on another column: predict_proba raises inside run().
    wrong = Pipeline([("ct", ColumnTransformer([("p", "passthrough", ["zzz"])])), ("m", DummyClassifier())])
    wrong.fit(pd.DataFrame({"zzz": [0.0, 1.0]}), [0, 1])
    joblib.dump(wrong, broken / artifact.MODEL_FILE)
    with InferenceServer(broken, settings.serving_python, tmp_path / "console.log") as srv, requests.Session() as s:
        request_id = uuid.uuid4().hex
        response = post(s, srv, sample_request, request_id)
        assert response.status_code == 500
        assert response.json() == {"error": "internal error while scoring", "request_id": request_id}
        assert "Traceback" not in response.text
        records = log_records(srv, request_id)
        assert [r["type"] for r in records] == ["InputData", "Exception"]
        assert records[1]["data"]["error_type"] == "ValueError"
        assert records[1]["service_name"] == "online/credit-card-default/9"
        # The server survives and keeps answering.
        assert post(s, srv, {"data": []}).status_code == 400


def test_schema_in_the_card_drives_the_contract(artifact_dir):
    card = artifact.read_card(artifact_dir)
    domains = {f["name"]: f.get("domain") for f in card["features"]}
    assert domains["repayment_status_1"] == list(schema.REPAYMENT_STATUS)
    assert Path(artifact_dir, artifact.MODEL_FILE).is_file()
