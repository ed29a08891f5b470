"""The model contract (functions/shared/contract.py) and where it is read from
(functions/shared/contract_sources.py): validation names the field, requests and answers follow the
contract's shapes, breaking changes are listed, and each source yields the contract it describes."""

from __future__ import annotations

import json

import pytest

from functions.shared.contract import ContractError, ModelContract
from functions.shared.contract_sources import read_contract

BINARY = {
    "features": [{"name": "age", "type": "numeric", "minimum": 0, "maximum": 150},
                 {"name": "sex", "type": "categorical", "domain": ["female", "male"]}],
    "target": "default", "task": "binary_classification", "response_kind": "probability",
    "sample_request": {"data": [{"age": 40.0, "sex": "male"}]},
}
IRIS_FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
IRIS = {
    "features": [{"name": n, "type": "numeric"} for n in IRIS_FEATURES], "target": "species",
    "task": "multiclass_classification", "response_kind": "label", "response_key": "result",
    "request_shape": "rows", "classes": [0, 1, 2], "sample_request": {"data": [[4.6, 3.6, 1.0, 0.2]]},
}


def test_a_contract_round_trips_and_defaults_its_metric_by_task():
    contract = ModelContract.from_dict(BINARY)
    assert contract.metric == "roc_auc" and contract.direction == "higher"
    assert contract.positive_class == 1 and contract.numeric == ("age",) and contract.categorical == ("sex",)
    assert ModelContract.from_dict(contract.to_dict()) == contract
    iris = ModelContract.from_dict(IRIS)
    assert iris.metric == "accuracy"
    regression = ModelContract.from_dict({**BINARY, "task": "regression", "response_kind": "value"})
    assert (regression.metric, regression.direction) == ("rmse", "lower")


@pytest.mark.parametrize(("change", "names"), [
    ({"features": []}, "features"),
    ({"features": [{"name": "a", "type": "text"}]}, "features[0].type"),
    ({"features": [{"name": "a", "type": "numeric"}, {"name": "a", "type": "numeric"}]}, "features[1].name"),
    ({"target": "age"}, "target 'age' is also a feature"),
    ({"task": "ranking"}, "task"),
    ({"response_kind": "value"}, "does not fit task"),
    ({"metric": "rmse"}, "metric 'rmse' cannot be computed"),
    ({"response_key": "a b"}, "response_key"),
    ({"sample_request": {"data": []}}, "sample_request"),
    ({"sample_request": {"data": [{"age": 1.0}]}}, "missing ['sex']"),
    ({"contract_version": 99}, "contract_version"),
    ({"response_kind": "class_probabilities"}, "need the class list"),
])
def test_invalid_contracts_name_the_field(change, names):
    with pytest.raises(ContractError, match=None) as info:
        ModelContract.from_dict({**BINARY, **change}, "credit/3")
    assert str(info.value).startswith("credit/3: ") and names in str(info.value)


def test_requests_and_answers_follow_the_shapes():
    iris = ModelContract.from_dict(IRIS)
    records = iris.sample_records()
    assert records == [dict(zip(IRIS_FEATURES, [4.6, 3.6, 1.0, 0.2]))]
    assert iris.request(records) == IRIS["sample_request"]
    assert iris.predictions({"result": [2]}, 1) == [2]
    with pytest.raises(ContractError, match="under 'result'"):
        iris.predictions({"predictions": [2]}, 1)
    with pytest.raises(ContractError, match="not a label"):
        iris.predictions({"result": [7]}, 1)
    binary = ModelContract.from_dict(BINARY)
    with pytest.raises(ContractError, match="not a probability"):
        binary.predictions({"predictions": [1.5]}, 1)
    with pytest.raises(ContractError, match="expected 2 answers"):
        binary.predictions({"predictions": [0.5]}, 2)
    probabilities = ModelContract.from_dict({**IRIS, "response_kind": "class_probabilities"})
    assert probabilities.predictions({"result": [[0.2, 0.3, 0.5]]}, 1) == [[0.2, 0.3, 0.5]]
    with pytest.raises(ContractError):
        probabilities.predictions({"result": [[0.2, 0.3]]}, 1)


def test_a_no_code_deployments_wire_is_the_split_frame_in_and_a_bare_list_out():
    """serving: mlflow_no_code — AzureML's script takes {"input_data": <split frame>} and answers the
    bare list of pyfunc predict (labels for a classifier); records and rows contracts alike."""
    binary = ModelContract.from_dict({**BINARY, "metric": "accuracy"})  # probability answers, a label metric
    wire = binary.for_serving("mlflow_no_code", "credit/3")
    assert (wire.request_shape, wire.response_kind, wire.response_key) == ("input_data", "label", "")
    records = [{"age": 40.0, "sex": "male"}, {"age": 22.5, "sex": "female"}]
    assert wire.request(records) == {"input_data": {"columns": ["age", "sex"], "index": [0, 1],
                                                    "data": [[40.0, "male"], [22.5, "female"]]}}
    assert wire.sample_request == {"input_data": {"columns": ["age", "sex"], "index": [0], "data": [[40.0, "male"]]}}
    assert wire.sample_records() == BINARY["sample_request"]["data"]
    assert wire.predictions([1, 0], 2) == [1, 0]
    assert wire.answer_place == "as a bare JSON list"
    with pytest.raises(ContractError, match="the answer is not a JSON list"):
        wire.predictions({"predictions": [1, 0]}, 2)  # what modelops' entry point would have answered
    with pytest.raises(ContractError, match="expected 2 answers as a bare JSON list, got 1"):
        wire.predictions([1], 2)
    with pytest.raises(ContractError, match="not a label"):
        ModelContract.from_dict(IRIS).for_serving("mlflow_no_code").predictions([0.7], 1)  # not one of the classes
    iris = ModelContract.from_dict(IRIS).for_serving("mlflow_no_code")  # rows in, {"result": [...]} out …
    assert iris.sample_request == {"input_data": {"columns": IRIS_FEATURES, "index": [0],
                                                  "data": [[4.6, 3.6, 1.0, 0.2]]}}  # … becomes the same wire
    assert iris.predictions([2], 1) == [2]
    regression = ModelContract.from_dict({**BINARY, "task": "regression", "response_kind": "value"})
    assert regression.for_serving("mlflow_no_code").response_kind == "value"
    # the model's contract is what the store keeps; modelops serving is the contract itself
    assert binary.for_serving("modelops") is binary and binary.request_shape == "records"


@pytest.mark.parametrize("metric", ["roc_auc", "log_loss"])
def test_a_probability_metric_cannot_gate_a_no_code_deployment(metric):
    contract = ModelContract.from_dict({**BINARY, "metric": metric})
    with pytest.raises(ContractError) as caught:
        contract.for_serving("mlflow_no_code", "model credit:3")
    assert str(caught.value) == (
        f"model credit:3: metric {metric!r} needs probabilities, but serving mlflow_no_code answers what the MLflow "
        "model's predict returns (labels): set contract.metric to accuracy, f1 or f1_macro in the model's "
        "configuration, or serve it with serving: modelops")
    multiclass = ModelContract.from_dict({**IRIS, "response_kind": "class_probabilities", "metric": metric})
    with pytest.raises(ContractError, match="set contract.metric to accuracy or f1_macro in"):
        multiclass.for_serving("mlflow_no_code")
    assert contract.for_serving("modelops") is contract  # modelops' entry point answers probabilities
    with pytest.raises(ContractError, match="serving 'mlflow' is not one of modelops, mlflow_no_code"):
        contract.for_serving("mlflow")


def test_the_no_code_wire_shape_is_not_a_contracts_request_shape():
    with pytest.raises(ContractError) as caught:
        ModelContract.from_dict({**BINARY, "request_shape": "input_data"}, "contract.json")
    assert str(caught.value) == ("contract.json: request_shape 'input_data' is the wire of serving: mlflow_no_code "
                                 "(set serving in the model's configuration); a contract's request shape is records "
                                 "or rows")


def test_changes_that_break_callers_are_listed_and_domains_are_not():
    champion = ModelContract.from_dict(BINARY)
    assert ModelContract.from_dict({**BINARY, "features": [
        {"name": "age", "type": "numeric", "maximum": 120}, {"name": "sex", "type": "categorical",
                                                            "domain": ["female", "male", "other"]}]}).changes_from(champion) == []
    challenger = ModelContract.from_dict({**BINARY, "features": [
        {"name": "age", "type": "categorical"}, {"name": "income", "type": "numeric"}],
        "sample_request": {"data": [{"age": "40", "income": 1.0}]}})
    assert challenger.changes_from(champion) == ["feature 'age' retyped numeric → categorical",
                                                 "feature 'income' added", "feature 'sex' removed"]
    reordered = ModelContract.from_dict({**IRIS, "features": list(reversed(IRIS["features"]))})
    assert reordered.changes_from(ModelContract.from_dict(IRIS)) == [
        "feature order changed (requests are rows in feature order)"]


def _folder(files: dict[str, object]):
    def read(name: str) -> bytes | None:
        value = files.get(name)
        if value is None:
            return None
        return value if isinstance(value, bytes) else json.dumps(value).encode()
    return read


LEGACY_CARD = {"artifact_format": 1, "task": "binary-classification", "positive_label": 1, "target": "default",
               "features": BINARY["features"], "files": {"model": "model.joblib", "reference": "reference.parquet"}}


def test_a_card_written_before_contracts_is_a_binary_probability_model_with_a_synthesized_sample():
    contract = read_contract(_folder({"model_card.json": LEGACY_CARD}), where="credit/1")
    assert (contract.task, contract.response_kind, contract.classes, contract.reference) == \
        ("binary_classification", "probability", (0, 1), "reference.parquet")
    assert contract.sample_request == {"data": [{"age": 75.0, "sex": "female"}]}  # mid-range, first level
    assert contract.source == "model_card.json"


def test_a_card_with_its_contract_and_configuration_overrides():
    card = {**LEGACY_CARD, "contract": {**BINARY, "metric": "f1"}}
    contract = read_contract(_folder({"model_card.json": card}), overrides={"metric": "accuracy"})
    assert contract.metric == "accuracy" and contract.source == "model_card.json + configuration"


MLMODEL = """
artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
    model_path: model.skops
  sklearn:
    pickled_model: model.skops
    serialization_format: skops
    sklearn_version: 1.7.2
mlflow_version: 3.1.0
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  type: dataframe
signature:
  inputs: '[{"type": "double", "name": "sepal length (cm)", "required": true}, {"type": "double", "name":
    "sepal width (cm)", "required": true}, {"type": "double", "name": "petal length (cm)", "required": true},
    {"type": "double", "name": "petal width (cm)", "required": true}]'
  outputs: '[{"type": "long", "required": true}]'
  params: null
"""


def test_an_mlflow_model_with_its_contract_file():
    files = {"MLmodel": MLMODEL.encode(),
             "input_example.json": {"columns": IRIS_FEATURES, "data": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3],
                                                                       [7.7, 3.0, 6.1, 2.3]]},
             "contract.json": {"target": "species", "request_shape": "rows", "response_key": "result"}}
    contract = read_contract(_folder(files), where="iris/1")
    assert contract.feature_names == tuple(IRIS_FEATURES) and contract.numeric == tuple(IRIS_FEATURES)
    assert (contract.task, contract.response_kind, contract.metric) == ("multiclass_classification", "label", "accuracy")
    assert contract.request_shape == "rows" and contract.response_key == "result" and contract.target == "species"
    assert contract.sample_records() == [dict(zip(IRIS_FEATURES, [5.1, 3.5, 1.4, 0.2])),
                                         dict(zip(IRIS_FEATURES, [6.2, 2.9, 4.3, 1.3]))]
    assert contract.request(contract.sample_records()) == {"data": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}
    assert contract.source == "MLmodel + contract.json"
    assert contract.extras["mlflow"]["serialization_format"] == "skops"


@pytest.mark.parametrize(("files", "reason"), [
    ({}, "no model_card.json, no MLflow MLmodel and no contract.json"),
    ({"MLmodel": b"flavors: {}\n"}, "has no signature"),
    ({"MLmodel": b"signature:\n  inputs: '[{\"type\": \"tensor\", \"tensor-spec\": {}}]'\n"}, "tensor or unnamed"),
    ({"MLmodel": b": : :"}, "not YAML"),
    ({"model_card.json": b"{oops"}, "model_card.json is not JSON"),
    ({"contract.json": {"target": "y"}}, "features"),
])
def test_a_model_without_a_usable_contract_is_refused_with_the_reason(files, reason):
    with pytest.raises(ContractError) as info:
        read_contract(_folder(files), where="m/1")
    assert reason in str(info.value) and str(info.value).startswith("m/1")
