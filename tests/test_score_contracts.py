"""ml/score.py by a model's contract, in process: where the contract comes from, rows requests
(validated per position, the feature named), each response kind, MLflow model folders in every
sklearn serialization format, and the skops allowlist (the platform's, never the file's).
The same through real inference servers: test_score_models_server.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from functions.shared.contract import ModelContract
from functions.shared.contract_sources import read_contract
from ml import artifact, mlflow_models, sample_models, schema
from ml import score as scoring

STATE = ("model", "card", "contract", "service_name", "max_rows", "load_error", "_categorical", "_numeric",
         "_feature_order", "_expected", "_shape", "_kind", "_key", "_classes", "_positive", "_row_categorical",
         "_row_numeric")
ENV = ("MODELOPS_CONTRACT", "MODELOPS_SKOPS_TRUSTED", "MODELOPS_MODEL_NAME", "MODELOPS_MODEL_VERSION",
       "MODELOPS_SERVICE_NAME", "MODELOPS_MAX_ROWS")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """score.py keeps its state in module globals: each test starts clean and leaves them as found."""
    saved = {name: getattr(scoring, name) for name in STATE}
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    for name, value in saved.items():
        setattr(scoring, name, value)


def folder_reader(folder: Path):
    return lambda name: (folder / name).read_bytes() if (folder / name).is_file() else None


# ---- models, trained once per module ------------------------------------------------------------

@pytest.fixture(scope="module")
def iris_pipeline():
    return mlflow_models.train_iris()


@pytest.fixture(scope="module")
def mlflow_dirs(tmp_path_factory, iris_pipeline) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mlflow-models")
    return {fmt: mlflow_models.save_iris(root / f"iris-{fmt}" / "1", serialization_format=fmt, pipeline=iris_pipeline)
            for fmt in mlflow_models.SERIALIZATION_FORMATS}


@pytest.fixture(scope="module")
def untrusted_dir(tmp_path_factory) -> Path:
    """Skops, with a step skops does not trust; the file's own skops_trusted_types list it."""
    out = tmp_path_factory.mktemp("untrusted") / "iris-untrusted" / "1"
    return mlflow_models.save_iris(out, untrusted_step=True, skops_trusted_types=[mlflow_models.UNTRUSTED_TYPE])


@pytest.fixture(scope="module")
def wine_dir(tmp_path_factory) -> Path:
    return sample_models.train_wine(tmp_path_factory.mktemp("wine") / "wine" / "1")


def rows_contract(**changes: Any) -> dict[str, Any]:
    """A rows contract with a categorical and two numerics (what the validation needs, no model)."""
    fields = {
        "features": [{"name": "colour", "type": "categorical", "domain": ["red", "white"]},
                     {"name": "acidity", "type": "numeric"}, {"name": "sugar", "type": "numeric"}],
        "target": "quality", "task": "multiclass_classification", "request_shape": "rows",
        "response_kind": "label", "response_key": "result", "classes": ["bad", "good"], "metric": "accuracy",
        "sample_request": {"data": [["red", 3.1, 2.0]]},
    }
    fields.update(changes)
    return ModelContract.from_dict(fields).to_dict()


def refused(body: Any) -> scoring.RequestError:
    with pytest.raises(scoring.RequestError) as caught:
        scoring.parse_request(body if isinstance(body, (str, bytes)) else json.dumps(body))
    assert 400 <= caught.value.status < 500
    return caught.value


# ---- rows requests -------------------------------------------------------------------------------

def test_rows_are_validated_and_returned_as_records():
    scoring.configure(rows_contract())
    records, unseen = scoring.parse_request(json.dumps({"data": [["red", 3.1, 2], ["rose", None, 1.5]]}))
    assert records == [{"colour": "red", "acidity": 3.1, "sugar": 2}, {"colour": "rose", "acidity": None, "sugar": 1.5}]
    assert unseen == {"colour": 1}


@pytest.mark.parametrize("row, message", [
    (["red", 3.1], "data[0] has 2 values, expected 3 in feature order (colour, acidity, sugar): missing sugar"),
    (["red"], "missing acidity, sugar"),
    (["red", 3.1, 2.0, 7], "data[0] has 4 values, expected 3 in feature order (colour, acidity, sugar): 1 too many"),
    ({"colour": "red", "acidity": 3.1, "sugar": 2.0},
     "data[0] must be a list of 3 values in feature order (colour, acidity, sugar), got dict"),
    (["red", "sour", 2.0], "data[0][1] (acidity) must be a number, got str"),
    (["red", True, 2.0], "data[0][1] (acidity) must be a number, got bool"),
    (["red", 3.1, 1e39], "data[0][2] (sugar) is out of range: 1e+39"),
    ([1, 3.1, 2.0], "data[0][0] (colour) must be a string, got int"),
    (["x" * 300, 3.1, 2.0], "data[0][0] (colour) is 300 characters long"),
], ids=["short", "one_value", "long", "record", "text_number", "boolean_number", "beyond_float32",
        "number_categorical", "long_text"])
def test_a_bad_row_is_a_400_naming_the_position_and_the_feature(row, message):
    scoring.configure(rows_contract())
    error = refused({"data": [row]})
    assert message in error.message
    assert error.status == 400


def test_a_bad_row_further_down_is_named_by_its_index():
    scoring.configure(rows_contract())
    error = refused({"data": [["white", 1.0, 1.0], ["red", 2.0, float("nan")]]})
    assert error.message == "data[1][2] (sugar) must be a finite number, got nan"


def test_a_lone_surrogate_at_a_position_is_refused_escaped():
    scoring.configure(rows_contract())
    error = refused('{"data": [["\\ud800", 1.0, 1.0]]}')
    assert error.message.startswith("data[0][0] (colour) is not valid Unicode text") and "\\ud800" in error.message


def test_rows_limits_and_messages_speak_of_rows(monkeypatch):
    scoring.configure(rows_contract())
    monkeypatch.setattr(scoring, "max_rows", 3)
    assert refused({"data": [["red", 1.0, 1.0]] * 4}).message == "\"data\" has 4 rows; the maximum is 3"
    assert refused({"data": {"colour": "red"}}).message == "\"data\" must be a list of rows, got dict"
    assert "{\"data\": [[...], ...]}" in refused("[" * 100_000).message


def test_records_requests_keep_their_messages():
    scoring.configure(schema.schema_dict())  # a card written before contracts
    assert refused({"data": [[1, 2]]}).message == "data[0] must be an object of feature values"
    assert refused({"data": {"a": 1}}).message == "\"data\" must be a list of records, got dict"


# ---- run(): answers under the contract's key, records in the log ----------------------------------

class _Request:
    method = "POST"
    headers = {"x-request-id": "req-rows"}

    def __init__(self, body: Any) -> None:
        self._body = json.dumps(body).encode()

    def get_data(self, cache: bool = False) -> bytes:
        return self._body


class _Model:
    """predict/predict_proba over a frame, with classes_: enough to check what run() answers."""

    def __init__(self, classes: list[Any], answers: Any = None, probabilities: Any = None) -> None:
        self.classes_ = np.array(classes)
        self.answers, self.probabilities = answers, probabilities
        self.frames: list[Any] = []

    def predict(self, frame: Any) -> Any:
        self.frames.append(frame)
        return np.asarray(self.answers)

    def predict_proba(self, frame: Any) -> Any:
        self.frames.append(frame)
        return np.asarray(self.probabilities)


def served(capsys, body: Any) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    response = scoring.run(_Request(body))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return response.status_code, response.get_json(), lines


def test_a_rows_request_is_answered_under_the_key_and_logged_as_records(capsys):
    scoring.configure(rows_contract())
    scoring.model = _Model(["bad", "good"], answers=np.array(["good", "bad"], dtype=object))
    status, body, lines = served(capsys, {"data": [["red", 3, 2.5], ["white", None, 1.0]]})
    assert status == 200 and body == {"result": ["good", "bad"]}
    assert [line["type"] for line in lines] == ["InputData", "OutputData"]
    assert json.loads(lines[0]["data"]) == [{"colour": "red", "acidity": 3, "sugar": 2.5},
                                            {"colour": "white", "acidity": None, "sugar": 1.0}]
    assert lines[1]["data"] == ["good", "bad"]
    frame = scoring.model.frames[0]
    assert list(frame.columns) == ["colour", "acidity", "sugar"] and str(frame["acidity"].dtype) == "float64"


def test_labels_are_json_native(capsys):
    scoring.configure(rows_contract(classes=[0, 1, 2]))
    scoring.model = _Model([0, 1, 2], answers=np.array([2, 0], dtype=np.int64))
    status, body, _ = served(capsys, {"data": [["red", 1.0, 1.0], ["red", 1.0, 1.0]]})
    assert status == 200 and body == {"result": [2, 0]} and all(type(v) is int for v in body["result"])


def test_class_probabilities_follow_the_contracts_class_order(capsys):
    scoring.configure(rows_contract(response_kind="class_probabilities", classes=["good", "bad"]))
    scoring.model = _Model(["bad", "good"], probabilities=[[0.9, 0.1], [0.25, 0.75]])  # the model's order: bad, good
    status, body, _ = served(capsys, {"data": [["red", 1.0, 1.0], ["red", 1.0, 1.0]]})
    assert status == 200 and body == {"result": [[0.1, 0.9], [0.75, 0.25]]}


def test_probability_is_of_the_positive_class(capsys):
    contract = rows_contract(task="binary_classification", response_kind="probability", classes=["no", "yes"],
                             positive_class="no", metric="roc_auc")
    scoring.configure(contract)
    scoring.model = _Model(["no", "yes"], probabilities=[[0.8, 0.2]])
    assert served(capsys, {"data": [["red", 1.0, 1.0]]})[:2] == (200, {"result": [0.8]})


def test_values_are_floats_and_a_non_finite_one_is_a_500_not_invalid_json(capsys):
    contract = rows_contract(task="regression", response_kind="value", classes=[], metric="rmse")
    scoring.configure(contract)
    scoring.model = _Model([], answers=np.array([1.5, 2], dtype=np.float32))
    assert served(capsys, {"data": [["red", 1.0, 1.0]] * 2})[:2] == (200, {"result": [1.5, 2.0]})
    scoring.model = _Model([], answers=np.array([np.inf]))
    status, body, lines = served(capsys, {"data": [["red", 1.0, 1.0]]})
    assert status == 500 and [line["type"] for line in lines] == ["InputData", "Exception"]


# ---- where the contract comes from ---------------------------------------------------------------

def test_a_legacy_card_is_a_binary_classifier_answering_predictions():
    scoring.configure({**schema.schema_dict(), "positive_label": 1})
    assert (scoring._shape, scoring._kind, scoring._key, scoring._classes) == ("records", "probability",
                                                                               "predictions", (0, 1))


def test_the_cards_contract_block_is_used(wine_dir):
    card = artifact.read_card(wine_dir)
    scoring.configure(card)
    assert (scoring._shape, scoring._kind, scoring._key) == ("records", "class_probabilities", "predictions")
    assert scoring._classes == (0, 1, 2)


def init_with(monkeypatch, folder: Path, **env: str) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(folder))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    scoring.init()


def test_the_deployments_contract_overrides_the_folders(monkeypatch, capsys, wine_dir):
    reference = artifact.load_reference(wine_dir)
    row = reference.drop(columns=[sample_models.WINE_TARGET]).iloc[0].tolist()
    contract = ModelContract.from_dict({**artifact.read_card(wine_dir)["contract"], "request_shape": "rows",
                                        "response_kind": "label", "response_key": "cultivar",
                                        "sample_request": {"data": [row]}})
    init_with(monkeypatch, wine_dir, MODELOPS_CONTRACT=json.dumps(contract.to_dict()))
    status, body, lines = served(capsys, {"data": [row]})
    assert status == 200 and body["cultivar"] in ([0], [1], [2])
    assert lines[0]["service_name"] == "online/wine/1"


def test_a_contract_json_beside_the_card_corrects_it_as_the_control_plane_reads_it(monkeypatch, tmp_path, wine_dir):
    folder = tmp_path / "wine" / "3"
    shutil.copytree(wine_dir, folder)
    (folder / "contract.json").write_text(json.dumps({"response_key": "cultivars", "response_kind": "label"}))
    init_with(monkeypatch, folder)
    control_plane = read_contract(folder_reader(folder))
    assert (scoring._key, scoring._kind) == (control_plane.response_key, control_plane.response_kind) == (
        "cultivars", "label")


def test_a_contract_env_var_that_is_not_json_stops_init(monkeypatch, wine_dir, capsys):
    with pytest.raises(scoring.ContractError, match="MODELOPS_CONTRACT is not JSON"):
        init_with(monkeypatch, wine_dir, MODELOPS_CONTRACT="{oops")
    assert scoring.model is None
    failed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert failed[-1]["type"] == "ModelLoadFailed" and "MODELOPS_CONTRACT" in failed[-1]["data"]["message"]


def test_an_mlflow_folder_without_env_reads_contract_json_over_the_signature(monkeypatch, mlflow_dirs):
    folder = mlflow_dirs["skops"]
    init_with(monkeypatch, folder)
    control_plane = read_contract(folder_reader(folder))
    assert scoring._feature_order == list(control_plane.feature_names) == list(mlflow_models.IRIS_FEATURES)
    assert (scoring._shape, scoring._kind, scoring._key) == (control_plane.request_shape,
                                                             control_plane.response_kind, control_plane.response_key)
    assert control_plane.sample_request == {"data": [[5.1, 3.5, 1.4, 0.2], [4.9, 3.0, 1.4, 0.2]]}


# ---- MLflow model folders -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", mlflow_models.SERIALIZATION_FORMATS)
def test_each_sklearn_serialization_format_is_served(monkeypatch, capsys, mlflow_dirs, iris_pipeline, fmt):
    mlmodel = (mlflow_dirs[fmt] / "MLmodel").read_text()
    assert f"serialization_format: {fmt}" in mlmodel
    init_with(monkeypatch, mlflow_dirs[fmt])
    assert type(scoring.model).__name__ == "Pipeline"  # the sklearn flavor itself, not a pyfunc wrapper
    rows = [[4.6, 3.6, 1.0, 0.2], [6.7, 3.0, 5.2, 2.3]]
    status, body, _ = served(capsys, {"data": rows})
    expected = iris_pipeline.predict(pd.DataFrame(rows, columns=list(mlflow_models.IRIS_FEATURES))).tolist()
    assert status == 200 and body == {"result": expected} and expected == [0, 2]


def test_an_mlmodel_without_serialization_format_is_pickle_as_mlflow_reads_it(monkeypatch, tmp_path, mlflow_dirs):
    folder = tmp_path / "old" / "1"
    shutil.copytree(mlflow_dirs["pickle"], folder)
    text = (folder / "MLmodel").read_text()
    (folder / "MLmodel").write_text(text.replace("    serialization_format: pickle\n", ""))
    init_with(monkeypatch, folder)
    assert type(scoring.model).__name__ == "Pipeline"


def test_an_mlflow_model_one_level_below_the_mount_is_found(monkeypatch, tmp_path, mlflow_dirs):
    shutil.copytree(mlflow_dirs["cloudpickle"], tmp_path / "iris" / "4" / "model")
    init_with(monkeypatch, tmp_path / "iris" / "4")
    assert scoring.model is not None and scoring.service_name == "online/iris/4"


def test_other_flavors_go_through_pyfunc_and_answer_labels(monkeypatch, capsys, tmp_path, mlflow_dirs):
    import yaml

    folder = tmp_path / "pyfunc" / "1"
    shutil.copytree(mlflow_dirs["pickle"], folder)
    spec = yaml.safe_load((folder / "MLmodel").read_text())
    del spec["flavors"]["sklearn"]  # python_function only: score.py cannot read the file itself
    (folder / "MLmodel").write_text(yaml.safe_dump(spec))
    init_with(monkeypatch, folder)
    assert type(scoring.model).__name__ == "PyFuncModel"
    status, body, _ = served(capsys, {"data": [[4.6, 3.6, 1.0, 0.2]]})
    assert status == 200 and body == {"result": [0]}


def test_a_pyfunc_cannot_answer_probabilities_and_init_says_so(monkeypatch, tmp_path, mlflow_dirs):
    import yaml

    folder = tmp_path / "pyfunc" / "1"
    shutil.copytree(mlflow_dirs["pickle"], folder)
    spec = yaml.safe_load((folder / "MLmodel").read_text())
    del spec["flavors"]["sklearn"]
    (folder / "MLmodel").write_text(yaml.safe_dump(spec))
    contract = {**json.loads((folder / "contract.json").read_text()), "response_kind": "class_probabilities"}
    (folder / "contract.json").write_text(json.dumps(contract))
    with pytest.raises(scoring.ModelLoadError, match="needs predict_proba"):
        init_with(monkeypatch, folder)


def test_a_pickled_model_outside_the_folder_is_refused(monkeypatch, tmp_path, mlflow_dirs):
    folder = tmp_path / "escape" / "1"
    shutil.copytree(mlflow_dirs["pickle"], folder)
    text = (folder / "MLmodel").read_text()
    (folder / "MLmodel").write_text(text.replace("pickled_model: model.pkl", "pickled_model: ../../model.pkl"))
    with pytest.raises(scoring.ModelLoadError, match="points outside the model folder"):
        init_with(monkeypatch, folder)


# ---- the skops allowlist is the platform's ---------------------------------------------------------

def test_an_untrusted_skops_type_is_refused_with_the_type_named(monkeypatch, untrusted_dir):
    with pytest.raises(scoring.UntrustedTypesError) as caught:
        init_with(monkeypatch, untrusted_dir)
    assert mlflow_models.UNTRUSTED_TYPE in str(caught.value) and "MODELOPS_SKOPS_TRUSTED" in str(caught.value)
    assert scoring.model is None and mlflow_models.UNTRUSTED_TYPE in scoring.load_error


def test_the_model_files_own_trusted_types_are_ignored(monkeypatch, untrusted_dir):
    """MLflow writes save_model(skops_trusted_types=...) into MLmodel and its own loader trusts them.
    This file lists the untrusted type; trusting the file would load it. score.py must not."""
    assert mlflow_models.UNTRUSTED_TYPE in (untrusted_dir / "MLmodel").read_text()
    import mlflow.sklearn

    assert mlflow.sklearn.load_model(str(untrusted_dir)) is not None  # MLflow's loader: the file vouches for itself
    with pytest.raises(scoring.UntrustedTypesError):
        init_with(monkeypatch, untrusted_dir)


def test_the_platforms_allowlist_lets_the_named_type_load(monkeypatch, capsys, untrusted_dir):
    init_with(monkeypatch, untrusted_dir, MODELOPS_SKOPS_TRUSTED=json.dumps([mlflow_models.UNTRUSTED_TYPE]))
    status, body, _ = served(capsys, {"data": [[4.6, 3.6, 1.0, 0.2]]})
    assert status == 200 and body == {"result": [0]}


def test_an_allowlist_naming_other_types_still_refuses(monkeypatch, untrusted_dir):
    with pytest.raises(scoring.UntrustedTypesError, match="_operator.neg"):
        init_with(monkeypatch, untrusted_dir, MODELOPS_SKOPS_TRUSTED=json.dumps(["builtins.eval"]))


@pytest.mark.parametrize("raw", ["_operator.neg", '{"types": []}', "[1]"])
def test_an_allowlist_that_is_not_a_json_list_of_names_is_refused(monkeypatch, untrusted_dir, raw):
    with pytest.raises(scoring.ModelLoadError, match="MODELOPS_SKOPS_TRUSTED"):
        init_with(monkeypatch, untrusted_dir, MODELOPS_SKOPS_TRUSTED=raw)


def test_score_py_imports_neither_mlflow_nor_skops_for_a_joblib_artifact():
    import subprocess
    import sys

    from functions.settings import REPO_ROOT

    code = ("import sys; sys.path.insert(0, 'ml'); import score; "
            "print(sorted(m for m in ('mlflow', 'skops', 'yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---- artifacts with contracts ------------------------------------------------------------------------

def test_save_model_writes_a_contract_the_control_plane_accepts(wine_dir):
    card = artifact.read_card(wine_dir)
    contract = ModelContract.from_dict(card["contract"])
    reference = artifact.load_reference(wine_dir)
    names = list(contract.feature_names)
    assert contract.sample_records() == reference[names].head(2).to_dict(orient="records")
    assert contract.reference == artifact.REFERENCE_FILE and (wine_dir / contract.reference).is_file()
    assert read_contract(folder_reader(wine_dir)).source == "model_card.json"


def test_save_model_builds_the_sample_in_the_rows_shape(tmp_path):
    out = sample_models.train_diabetes(tmp_path / "diabetes" / "1", request_shape="rows")
    contract = ModelContract.from_dict(artifact.read_card(out)["contract"])
    assert contract.request_shape == "rows" and contract.task == "regression" and contract.metric == "rmse"
    first = contract.sample_request["data"][0]
    assert isinstance(first, list) and len(first) == len(contract.features)
    assert contract.feature("sex").kind == "categorical" and set(contract.feature("sex").domain) == {"1", "2"}


def test_the_credit_card_artifact_carries_its_contract(artifact_dir):
    card = artifact.read_card(artifact_dir)
    contract = ModelContract.from_dict(card["contract"])
    assert (contract.task, contract.response_kind, contract.request_shape, contract.response_key) == (
        "binary_classification", "probability", "records", "predictions")
    assert list(contract.classes) == [0, 1] and contract.positive_class == 1 and contract.metric == "roc_auc"
    assert contract.feature_names == schema.FEATURE_NAMES
    assert len(contract.sample_request["data"]) == 2
    scoring.configure(card)
    scoring.parse_request(json.dumps(contract.sample_request))  # the sample passes score.py's own checks
