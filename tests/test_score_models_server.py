"""ml/score.py serving models other than the credit-card one, each through a real
azureml-inference-server-http process (.venv-serve) on loopback: a regression (diabetes), a
multiclass classifier answering class probabilities and labels (wine), and the seeds' iris
classifier as an MLflow model in each sklearn serialization format (skops, cloudpickle, pickle),
taking rows and answering {"result": [...]}. A skops file holding a type the platform's allowlist
does not name never starts; the local platform's deployment fails with the type named.

Each model is trained once per module; each server starts once per module and serves every test
that needs it. No wall-clock figure is asserted (deadlines are hang guards).
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
import requests

from functions.adapters.local.inference_server import InferenceServer, ServingError
from functions.shared.contract import ModelContract
from functions.shared.contract_sources import read_contract
from ml import artifact, mlflow_models, sample_models
from tests.conftest import require_serving_env

pytestmark = pytest.mark.integration
STARTUP = 180.0  # hang guard; skops imports all of scikit-learn to list the types it trusts


@contextmanager
def serving(folder: Path, settings, log_dir: Path, **env: str) -> Iterator[InferenceServer]:
    require_serving_env()
    log = log_dir / f"{folder.parent.name}-{folder.name}-{uuid.uuid4().hex[:6]}.log"
    server = InferenceServer(folder, settings.serving_python, log, env=env)
    server.start(timeout=STARTUP)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


def post(http, server: InferenceServer, body: Any, request_id: str | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json", "x-request-id": request_id or uuid.uuid4().hex}
    return http.post(server.scoring_uri, data=json.dumps(body), headers=headers, timeout=60)


def log_records(server: InferenceServer, request_id: str) -> list[dict]:
    return [json.loads(line) for line in server.console_log.read_text().splitlines()
            if line.startswith("{") and f'"request_id":"{request_id}"' in line]


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("console")


# ---- models ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def diabetes_dir(models) -> Path:
    return sample_models.train_diabetes(models / "diabetes" / "1")


@pytest.fixture(scope="module")
def wine_dir(models) -> Path:
    return sample_models.train_wine(models / "wine" / "1")  # class_probabilities, records


@pytest.fixture(scope="module")
def wine_names_dir(models) -> Path:
    return sample_models.train_wine(models / "wine-names" / "2", response_kind="label", request_shape="rows",
                                    labels="names")


@pytest.fixture(scope="module")
def iris_pipeline():
    return mlflow_models.train_iris()


@pytest.fixture(scope="module")
def iris_dirs(models, iris_pipeline) -> dict[str, Path]:
    out = {}
    for fmt in mlflow_models.SERIALIZATION_FORMATS:
        # skops one level below the version folder, as AzureML mounts a registered MLflow folder
        folder = models / f"iris-{fmt}" / "1" / ("model" if fmt == "skops" else "")
        out[fmt] = mlflow_models.save_iris(folder, serialization_format=fmt, pipeline=iris_pipeline)
    return out


@pytest.fixture(scope="module")
def untrusted_dir(models) -> Path:
    """Skops with FunctionTransformer(operator.neg); MLmodel's own skops_trusted_types list the type."""
    return mlflow_models.save_iris(models / "iris-untrusted" / "1", untrusted_step=True,
                                   skops_trusted_types=[mlflow_models.UNTRUSTED_TYPE])


def frame(folder: Path) -> pd.DataFrame:
    return artifact.load_reference(folder)


# ---- a regression: values ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def diabetes_server(diabetes_dir, settings, logs):
    with serving(diabetes_dir, settings, logs) as server:
        yield server


def test_a_regression_answers_values_under_its_key_and_logs_records(diabetes_server, http, diabetes_dir):
    reference = frame(diabetes_dir)
    features = reference.drop(columns=[sample_models.DIABETES_TARGET]).head(5)
    records = features.to_dict(orient="records")
    request_id = uuid.uuid4().hex
    response = post(http, diabetes_server, {"data": records}, request_id)
    assert response.status_code == 200, response.text
    values = response.json()["predictions"]
    expected = artifact.load_pipeline(diabetes_dir).predict(features)
    assert values == pytest.approx(expected.tolist(), rel=1e-9)
    assert all(type(v) is float for v in values)
    lines = log_records(diabetes_server, request_id)
    assert [r["type"] for r in lines] == ["InputData", "OutputData"]
    assert json.loads(lines[0]["data"]) == records and lines[0]["service_name"] == "online/diabetes/1"


def test_the_contracts_sample_request_scores(diabetes_server, http, diabetes_dir):
    contract = ModelContract.from_dict(artifact.read_card(diabetes_dir)["contract"])
    response = post(http, diabetes_server, contract.sample_request)
    assert response.status_code == 200
    contract.predictions(response.json(), len(contract.sample_request["data"]))  # ContractError if not


def test_a_categorical_of_a_regression_is_checked_by_name(diabetes_server, http, diabetes_dir):
    record = frame(diabetes_dir).drop(columns=[sample_models.DIABETES_TARGET]).iloc[0].to_dict()
    response = post(http, diabetes_server, {"data": [{**record, "sex": 2}]})
    assert response.status_code == 400 and response.json()["error"] == "data[0].sex must be a string, got int"


# ---- the deployment's contract (MODELOPS_CONTRACT) over the folder's: rows -----------------------------

@pytest.fixture(scope="module")
def diabetes_rows_contract(diabetes_dir) -> ModelContract:
    card = artifact.read_card(diabetes_dir)
    reference = frame(diabetes_dir)
    names = [f["name"] for f in card["contract"]["features"]]
    return ModelContract.from_dict({**card["contract"], "request_shape": "rows", "response_key": "progression",
                                    "sample_request": {"data": reference[names].head(2).values.tolist()}})


@pytest.fixture(scope="module")
def diabetes_rows_server(diabetes_dir, diabetes_rows_contract, settings, logs):
    with serving(diabetes_dir, settings, logs, MODELOPS_CONTRACT=json.dumps(diabetes_rows_contract.to_dict())) as srv:
        yield srv


def test_the_deployments_contract_decides_the_shape_and_the_key(diabetes_rows_server, http, diabetes_dir,
                                                                 diabetes_rows_contract):
    names = list(diabetes_rows_contract.feature_names)
    rows = frame(diabetes_dir)[names].head(3).values.tolist()
    request_id = uuid.uuid4().hex
    response = post(http, diabetes_rows_server, {"data": rows}, request_id)
    assert response.status_code == 200, response.text
    expected = artifact.load_pipeline(diabetes_dir).predict(pd.DataFrame(rows, columns=names))
    assert response.json()["progression"] == pytest.approx(expected.tolist(), rel=1e-9)
    logged = json.loads(log_records(diabetes_rows_server, request_id)[0]["data"])
    assert logged == [dict(zip(names, row)) for row in rows]  # records, whatever the request shape


@pytest.mark.parametrize("change, message", [
    (lambda row: row[:-1], "data[0] has 9 values, expected 10 in feature order"),
    (lambda row: row + [1.0], "1 too many"),
    (lambda row: [row[0], 2, *row[2:]], "data[0][1] (sex) must be a string, got int"),
    (lambda row: [row[0], row[1], "fat", *row[3:]], "data[0][2] (bmi) must be a number, got str"),
    (lambda row: [*row[:-1], 1e39], "data[0][9] (s6) is out of range"),
], ids=["too_short", "too_long", "categorical_wrong_type", "numeric_wrong_type", "beyond_float32"])
def test_rows_errors_are_4xx_naming_the_feature(diabetes_rows_server, http, diabetes_rows_contract, change, message):
    row = list(diabetes_rows_contract.sample_request["data"][0])
    request_id = uuid.uuid4().hex
    response = post(http, diabetes_rows_server, {"data": [change(row)]}, request_id)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert [r["type"] for r in log_records(diabetes_rows_server, request_id)] == ["InvalidRequest"]


def test_missing_features_of_a_short_row_are_named(diabetes_rows_server, http, diabetes_rows_contract):
    row = list(diabetes_rows_contract.sample_request["data"][0])[:7]
    error = post(http, diabetes_rows_server, {"data": [row]}).json()["error"]
    assert error.endswith("missing s4, s5, s6")


def test_a_record_is_refused_where_rows_are_expected(diabetes_rows_server, http, diabetes_rows_contract):
    response = post(http, diabetes_rows_server, {"data": diabetes_rows_contract.sample_records()})
    assert response.status_code == 400
    assert response.json()["error"].startswith("data[0] must be a list of 10 values in feature order (age, sex, bmi")


# ---- multiclass: class probabilities (records) and labels (rows, string classes) -----------------------

@pytest.fixture(scope="module")
def wine_server(wine_dir, settings, logs):
    with serving(wine_dir, settings, logs) as server:
        yield server


def test_class_probabilities_are_one_list_per_row_in_class_order(wine_server, http, wine_dir):
    reference = frame(wine_dir)
    features = reference.drop(columns=[sample_models.WINE_TARGET]).iloc[[0, 70, 150]]
    response = post(http, wine_server, {"data": features.to_dict(orient="records")})
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    contract = ModelContract.from_dict(artifact.read_card(wine_dir)["contract"])
    contract.predictions(response.json(), 3)
    expected = artifact.load_pipeline(wine_dir).predict_proba(features)
    assert [len(a) for a in answers] == [3, 3, 3]
    assert answers == [pytest.approx(row, abs=1e-12) for row in expected.tolist()]
    assert [max(range(3), key=a.__getitem__) for a in answers] == [0, 1, 2]  # the three cultivars


@pytest.fixture(scope="module")
def wine_names_server(wine_names_dir, settings, logs):
    with serving(wine_names_dir, settings, logs) as server:
        yield server


def test_labels_are_the_class_names(wine_names_server, http, wine_names_dir):
    reference = frame(wine_names_dir)
    names = [c for c in reference.columns if c != sample_models.WINE_TARGET]
    rows = reference[names].iloc[[0, 70, 150]].values.tolist()
    request_id = uuid.uuid4().hex
    response = post(http, wine_names_server, {"data": rows}, request_id)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": ["class_0", "class_1", "class_2"]}
    records = json.loads(log_records(wine_names_server, request_id)[0]["data"])
    assert records[0] == dict(zip(names, rows[0])) and "od280/od315_of_diluted_wines" in records[0]


# ---- the iris classifier as an MLflow model, in each sklearn serialization format ---------------------

IRIS_ROWS = [[4.6, 3.6, 1.0, 0.2], [6.1, 2.8, 4.7, 1.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module", params=mlflow_models.SERIALIZATION_FORMATS)
def iris_server(request, iris_dirs, settings, logs):
    folder = iris_dirs[request.param]
    mount = folder.parent if folder.name == "model" else folder  # AZUREML_MODEL_DIR: the version folder
    with serving(mount, settings, logs) as server:
        yield request.param, server


def test_an_mlflow_model_takes_rows_and_answers_result(iris_server, http, iris_dirs, iris_pipeline):
    fmt, server = iris_server
    assert f"serialization_format: {fmt}" in (iris_dirs[fmt] / "MLmodel").read_text()
    request_id = uuid.uuid4().hex
    response = post(http, server, {"data": IRIS_ROWS}, request_id)
    assert response.status_code == 200, response.text
    expected = iris_pipeline.predict(pd.DataFrame(IRIS_ROWS, columns=list(mlflow_models.IRIS_FEATURES))).tolist()
    assert response.json() == {"result": expected} and expected == [0, 1, 2]
    lines = log_records(server, request_id)
    assert [r["type"] for r in lines] == ["InputData", "OutputData"]
    assert lines[0]["service_name"] == f"online/iris-{fmt}/1"
    assert json.loads(lines[0]["data"]) == [dict(zip(mlflow_models.IRIS_FEATURES, r)) for r in IRIS_ROWS]
    assert lines[1]["data"] == expected


def test_an_mlflow_models_contract_sample_scores(iris_server, http, iris_dirs):
    fmt, server = iris_server
    folder = iris_dirs[fmt]
    contract = read_contract(lambda n: (folder / n).read_bytes() if (folder / n).is_file() else None)
    response = post(http, server, contract.sample_request)
    assert response.status_code == 200
    assert contract.predictions(response.json(), 2) == [0, 0]


def test_an_mlflow_models_rows_are_validated(iris_server, http):
    _, server = iris_server
    response = post(http, server, {"data": [[4.6, 3.6, "1.0", 0.2]]})
    assert response.status_code == 400
    assert response.json()["error"] == "data[0][2] (petal_length) must be a number, got str"
    assert post(http, server, {"data": [[4.6, 3.6, 1.0]]}).json()["error"].endswith("missing petal_width")


# ---- skops: the platform's allowlist, never the file's ---------------------------------------------------

def test_an_untrusted_skops_type_stops_the_server_with_the_type_named(untrusted_dir, settings, logs):
    """The file lists the type in its own skops_trusted_types: if score.py trusted the file, this
    server would start."""
    assert mlflow_models.UNTRUSTED_TYPE in (untrusted_dir / "MLmodel").read_text()
    with pytest.raises(ServingError) as caught:
        with serving(untrusted_dir, settings, logs):
            pass
    first_line = str(caught.value).splitlines()[0]
    assert "inference server exited" in first_line and "UntrustedTypesError" in first_line
    assert mlflow_models.UNTRUSTED_TYPE in first_line and "MODELOPS_SKOPS_TRUSTED" in first_line


def test_the_allowlist_from_the_environment_lets_it_serve(untrusted_dir, settings, logs, http):
    trusted = json.dumps([mlflow_models.UNTRUSTED_TYPE])
    with serving(untrusted_dir, settings, logs, MODELOPS_SKOPS_TRUSTED=trusted) as server:
        response = post(http, server, {"data": IRIS_ROWS})
        assert response.status_code == 200 and response.json() == {"result": [0, 1, 2]}


# ---- the local platform: deployments of MLflow models ----------------------------------------------------

def test_local_deployments_of_mlflow_models(iris_dirs, untrusted_dir, settings, tmp_path):
    """A deployment's environment variables reach score.py: the MLflow model serves through the
    front door; the untrusted one fails to deploy, its error naming the type."""
    from functions.adapters.local.endpoints import LocalEndpoints
    from functions.ports import DeploymentSpec, ModelRef

    require_serving_env()
    folder = iris_dirs["cloudpickle"]
    contract = read_contract(lambda n: (folder / n).read_bytes() if (folder / n).is_file() else None)
    env = {"MODELOPS_CONTRACT": json.dumps(contract.to_dict()), "MODELOPS_SKOPS_TRUSTED": "[]"}
    with LocalEndpoints(tmp_path / "home", settings.serving_python, startup_timeout=STARTUP) as eps:
        eps.begin_create_endpoint("iris")
        eps.begin_create_deployment(DeploymentSpec("iris", "iris-v1", ModelRef("iris", "1", str(folder)),
                                                   environment_variables=env))
        eps.begin_create_deployment(DeploymentSpec("iris", "iris-v2", ModelRef("iris", "2", str(untrusted_dir)),
                                                   environment_variables=env))
        good = eps.wait_deployment("iris", "iris-v1", timeout=STARTUP)
        bad = eps.wait_deployment("iris", "iris-v2", timeout=STARTUP)
        assert good.ready, good.error
        assert bad.failed and "UntrustedTypesError" in bad.error and mlflow_models.UNTRUSTED_TYPE in bad.error
        eps.set_traffic("iris", {"iris-v1": 100, "iris-v2": 0})
        answer = eps.score("iris", {"data": IRIS_ROWS})
        assert (answer.status, answer.body) == (200, {"result": [0, 1, 2]})
