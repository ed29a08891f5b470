"""ml/score.py through a real azureml-inference-server-http process on loopback."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import requests

from functions.adapters.local.inference_server import InferenceServer
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
