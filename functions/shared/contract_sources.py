"""Where a model version's contract comes from, read from the files registered with it.

Sources, in order (the first present is the base; the later ones complete or correct it):
  1. modelops' own `model_card.json` (ml/artifact.py writes it: features with domains and bounds,
     target, task, metrics, and — since contracts — the sample request and response kind);
  2. an MLflow model's `MLmodel` file: the signature's input columns (names and types) and outputs,
     the saved input example as the sample request (MLflow's model format:
     https://mlflow.org/docs/latest/ml/model/signatures/ — `signature.inputs` is a JSON string of
     column specs `{"type", "name", "required"}`; `saved_input_example_info.artifact_path` names the
     example, pandas "split" orient `{"columns", "data"}`);
  3. an explicit `contract.json` registered with the model (a full contract, or the fields the other
     two cannot know: target, task, metric, classes, request shape, response key).
The model's configuration (`contract:` in its settings) is applied last: the platform team's word.

`read_contract(read, ...)` takes `read(name) -> bytes | None` over the model folder, so the same
code serves the local workspace folders and files downloaded from AzureML. Only small files are
read. PyYAML (an azure-ai-ml dependency) parses MLmodel, imported when one is read.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from functions.shared.contract import DEFAULT_METRIC, ContractError, ModelContract

CARD_FILE = "model_card.json"
MLMODEL_FILE = "MLmodel"
CONTRACT_FILE = "contract.json"
MAX_FILE_BYTES = 4 * 1024 * 1024
SAMPLE_ROWS = 2

_CARD_TASKS = {"binary-classification": "binary_classification", "multiclass-classification":
               "multiclass_classification", "regression": "regression"}
# MLflow column types (mlflow.types.DataType) → contract feature kinds
_MLFLOW_NUMERIC = {"double", "float", "long", "integer"}
_MLFLOW_CATEGORICAL = {"string"}

Read = Callable[[str], "bytes | None"]


def read_contract(read: Read, overrides: dict[str, Any] | None = None, where: str = "model") -> ModelContract:
    """The contract of the model folder `read` serves; ContractError (naming the file and the
    field) when no usable one can be made."""
    explicit = _json_file(read, CONTRACT_FILE, where)
    card = _json_file(read, CARD_FILE, where)
    if card is not None:
        base, source = contract_from_card(card), CARD_FILE
    else:
        mlmodel = read(MLMODEL_FILE)
        if mlmodel is not None:
            base, source = contract_from_mlmodel(_yaml(mlmodel, where), read, where), MLMODEL_FILE
        elif explicit is not None:
            base, source = {}, CONTRACT_FILE
        else:
            raise ContractError(f"{where}: no contract — the model folder has no {CARD_FILE}, no MLflow "
                                f"{MLMODEL_FILE} and no {CONTRACT_FILE}")
    merged = dict(base)
    sources = [source]
    for layer, name in ((explicit, CONTRACT_FILE), (overrides, "configuration")):
        if layer:
            merged.update({k: v for k, v in layer.items() if v is not None})
            if name not in sources:
                sources.append(name)
    merged["source"] = " + ".join(sources)
    if "sample_request" not in merged or not merged["sample_request"]:
        merged["sample_request"] = synthesized_sample(merged, where)
    merged["sample_request"] = _in_shape(merged["sample_request"], merged)
    label = f"{where} ({merged['source']})"
    if "metric" not in merged and merged.get("task") in DEFAULT_METRIC:
        merged["metric"] = DEFAULT_METRIC[merged["task"]]
    return ModelContract.from_dict(merged, label)


def contract_from_card(card: dict[str, Any]) -> dict[str, Any]:
    """A modelops model card's contract fields (cards written before contracts have no sample
    request or response kind: a binary classifier answering probabilities, as they all were)."""
    own = card.get("contract")
    if isinstance(own, dict):  # written by this version of ml/artifact.py
        return dict(own)
    task = _CARD_TASKS.get(str(card.get("task") or "binary-classification"), card.get("task"))
    out: dict[str, Any] = {
        "features": card.get("features"), "target": card.get("target"), "task": task,
        "response_kind": "probability" if task == "binary_classification" else None,
        "positive_class": card.get("positive_label", 1),
        "reference": (card.get("files") or {}).get("reference", ""),
    }
    if task == "binary_classification":
        out["classes"] = [0, 1]
    return {k: v for k, v in out.items() if v is not None}


def contract_from_mlmodel(mlmodel: dict[str, Any], read: Read, where: str) -> dict[str, Any]:
    """An MLflow model's contract fields: features from the signature's input columns, the response
    from its outputs, the sample request from the saved input example."""
    signature = mlmodel.get("signature") if isinstance(mlmodel, dict) else None
    if not isinstance(signature, dict) or not signature.get("inputs"):
        raise ContractError(f"{where}: {MLMODEL_FILE} has no signature (log the model with one, "
                            "e.g. mlflow.models.infer_signature, or register a contract.json)")
    inputs = _spec(signature["inputs"], f"{where}: {MLMODEL_FILE} signature.inputs")
    features = []
    for i, column in enumerate(inputs):
        kind, name = column.get("type"), column.get("name")
        at = f"{where}: {MLMODEL_FILE} signature.inputs[{i}]"
        if kind == "tensor" or not name:
            raise ContractError(f"{at}: a tensor or unnamed input; modelops needs named columns (register a "
                                "contract.json with the features)")
        if kind in _MLFLOW_NUMERIC:
            features.append({"name": name, "type": "numeric"})
        elif kind in _MLFLOW_CATEGORICAL:
            features.append({"name": name, "type": "categorical", "domain": []})
        else:
            raise ContractError(f"{at}: column {name!r} of type {kind!r} is not supported (numeric or string)")
    out: dict[str, Any] = {"features": features, "target": "target"}
    outputs = _spec(signature.get("outputs") or "[]", f"{where}: {MLMODEL_FILE} signature.outputs")
    kinds = {c.get("type") for c in outputs} | {(c.get("tensor-spec") or {}).get("dtype") for c in outputs}
    kinds.discard(None)
    if kinds & {"double", "float", "float64", "float32"} and not kinds & {"long", "integer", "string", "int64"}:
        out.update(task="regression", response_kind="value")
    elif kinds:
        out.update(task="multiclass_classification", response_kind="label")
    example = _input_example(mlmodel, read, features, where)
    if example is not None:
        out["sample_request"] = example
    flavors = mlmodel.get("flavors") or {}
    sk = flavors.get("sklearn") or {}
    out["extras"] = {"mlflow": {"flavors": sorted(flavors), "serialization_format": sk.get("serialization_format"),
                                "mlflow_version": mlmodel.get("mlflow_version"), "run_id": mlmodel.get("run_id")}}
    return out


def synthesized_sample(fields: dict[str, Any], where: str) -> dict[str, Any]:
    """A one-row request from the features' domains and bounds, for a contract that brought none
    (a card written before contracts): every value is one the model must accept."""
    features = fields.get("features")
    if not isinstance(features, list) or not features:
        raise ContractError(f"{where}: no features to build a sample request from")
    record = {}
    for f in features:
        if not isinstance(f, dict) or "name" not in f:
            raise ContractError(f"{where}: features must be objects with a name")
        if f.get("type") == "categorical":
            record[f["name"]] = (f.get("domain") or ["unknown"])[0]
        else:
            lo, hi = f.get("minimum"), f.get("maximum")
            record[f["name"]] = float((lo + hi) / 2 if lo is not None and hi is not None else lo if lo is not None
                                      else hi if hi is not None else 0.0)
    return {"data": [record]}


def _in_shape(sample: Any, fields: dict[str, Any]) -> Any:
    """A sample of records, for a model that takes rows: the same values as lists in feature order
    (MLflow's input example and a synthesized sample are records)."""
    rows = sample.get("data") if isinstance(sample, dict) else None
    features = fields.get("features")
    if fields.get("request_shape") != "rows" or not isinstance(rows, list) or not isinstance(features, list) \
            or not all(isinstance(r, dict) for r in rows) or not all(isinstance(f, dict) for f in features):
        return sample
    names = [f.get("name") for f in features]
    return {**sample, "data": [[r.get(n) for n in names] for r in rows]}


def _input_example(mlmodel: dict[str, Any], read: Read, features: list[dict], where: str) -> dict[str, Any] | None:
    info = mlmodel.get("saved_input_example_info") or {}
    path = info.get("artifact_path")
    if not path:
        return None
    example = _json_file(read, str(path), where)
    if example is None:
        return None
    if isinstance(example, dict) and "dataframe_split" in example:
        example = example["dataframe_split"]
    names = [f["name"] for f in features]
    if isinstance(example, dict) and isinstance(example.get("data"), list):
        columns = example.get("columns") or names
        rows = [dict(zip(columns, row)) for row in example["data"][:SAMPLE_ROWS] if isinstance(row, list)]
    elif isinstance(example, list) and all(isinstance(r, dict) for r in example):  # records orient
        rows = example[:SAMPLE_ROWS]
    else:
        return None
    if not rows or any(set(r) != set(names) for r in rows):
        return None  # an example of other columns: the sample is synthesized instead
    return {"data": [{n: r[n] for n in names} for r in rows]}


def _json_file(read: Read, name: str, where: str) -> Any:
    data = read(name)
    if data is None:
        return None
    if len(data) > MAX_FILE_BYTES:
        raise ContractError(f"{where}: {name} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(f"{where}: {name} is not JSON ({exc})") from None


def _yaml(data: bytes, where: str) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ContractError(f"{where}: {MLMODEL_FILE} is not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise ContractError(f"{where}: {MLMODEL_FILE} is not a YAML mapping")
    return loaded


def _spec(value: Any, what: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ContractError(f"{what} is not JSON ({exc})") from None
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise ContractError(f"{what} must be a list of column specs")
    return value
