"""Scoring script for azureml-inference-server-http (the runtime of AzureML managed online endpoints).

Serves any model by its contract: what a request holds and what the answer is.

    records  {"data": [{<feature>: value, ...}, ...]}      rows  {"data": [[v1, v2, ...], ...]} (feature order)
    →  200 {<response_key>: [answer, ...]}, one answer per row, by the contract's response kind:
       probability          P(positive_class) from predict_proba           (binary classifiers)
       class_probabilities  predict_proba, one list per row in `classes` order
       label                predict: the class (int or string, JSON-native)
       value                predict: a float                               (regression)
The credit-card model (records, probability, "predictions") is the contract of a model card written
before contracts existed. Invalid requests get a 4xx JSON error naming the problem (and the feature),
never a 500 with a stack trace.

The contract comes from, in order: the environment variable MODELOPS_CONTRACT (the JSON of the
control plane's ModelContract.to_dict(), set on every deployment it creates); the model folder's
model_card.json (its "contract" block, else its legacy fields: a binary classifier answering
probabilities); its contract.json (over the features of an MLflow signature when it lists none); an
MLflow MLmodel signature alone.

The model: a modelops artifact (model.joblib), or an MLflow model (an MLmodel file; see
_load_mlflow). A scikit-learn model saved with skops is loaded only if every type in it that skops
does not trust by itself is on the platform's allowlist, MODELOPS_SKOPS_TRUSTED (a JSON list of type
names from the model's configuration), never the model file's own list; otherwise init() raises
UntrustedTypesError naming the types, and the inference server does not start (azmlinfsrv exits
when init() fails: the deployment fails with that message in its console log).

Every request writes one JSON line per input and output to stdout in the scenario's shape, which
is what lands in the endpoint console log (AmlOnlineEndpointConsoleLog) for export:
    {"service_name": "online/<model>/<version>", "type": "InputData",  "request_id": ..., "data": "<json records>",
     "time": "2026-05-09T07:00:00.123456+00:00"}
    {"service_name": "online/<model>/<version>", "type": "OutputData", "request_id": ..., "data": [answer, ...],
     "time": ...}
InputData's "data" is always the records as objects {feature: value}, whatever the request shape.
Errors write a serialisable {"type": "Exception"} record; rejected requests an "InvalidRequest" one.
"time" (UTC ISO 8601 with microseconds, taken once per request) stamps local console logs the way
Log Analytics' TimeGenerated stamps the table rows; the export reads it from local logs.

Self-contained on purpose: the contract travels with the deployment (or the model), and this file
imports nothing from this repository. It imports neither mlflow nor skops unless the model needs them.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
from collections.abc import KeysView
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    from azureml_inference_server_http.api.aml_request import rawhttp
    from azureml_inference_server_http.api.aml_response import AMLResponse
except ImportError:  # outside the serving runtime (unit tests of the validation): same interface
    def rawhttp(func):  # type: ignore[no-redef]
        return func

    class AMLResponse:  # type: ignore[no-redef]
        def __init__(self, message: Any, status_code: int, response_headers: dict | None = None,
                     json_str: bool = False) -> None:
            self.status_code = status_code
            self.headers = dict(response_headers or {})
            self.body = json.dumps(message) if json_str else message

        def get_json(self) -> Any:
            return json.loads(self.body)


CARD_FILE = "model_card.json"
MODEL_FILE = "model.joblib"
MLMODEL_FILE = "MLmodel"
CONTRACT_FILE = "contract.json"
CONTRACT_ENV = "MODELOPS_CONTRACT"  # the JSON of ModelContract.to_dict(), set by the control plane
SKOPS_TRUSTED_ENV = "MODELOPS_SKOPS_TRUSTED"  # JSON list of type names skops may load for this model
DEFAULT_MAX_ROWS = 10_000
# The forest's trees compute in float32: a larger magnitude becomes inf there and sklearn raises.
# The limit is float32's max as it prints (3.4028235e38). Both forms below are exactly that decimal
# for their type (the float is the nearest below it, so no float lies between), and both lie below
# the value that rounds to inf in float32: everything accepted converts to a finite float32.
NUMBER_LIMIT = 3.4028235e38
_INT_LIMIT = 34028235 * 10**31  # ints compare exactly with floats, so give them the exact decimal
# Categorical levels are short words; a longer text is not a level, and it would be copied into
# every console-log line of the request.
MAX_TEXT_LENGTH = 256
SHOWN_CHARS = 40  # of a client's text quoted in an error message
SHOWN_KEYS = 5  # unknown keys named in an error message

REQUEST_SHAPES = ("records", "rows")
RESPONSE_KINDS = ("probability", "class_probabilities", "label", "value")
_KIND_OF_TASK = {"binary_classification": "probability", "multiclass_classification": "label",
                 "regression": "value"}
_CARD_TASKS = {"binary-classification": "binary_classification", "multiclass-classification":
               "multiclass_classification", "regression": "regression"}
_MLFLOW_NUMERIC = {"double", "float", "long", "integer"}  # mlflow.types.DataType names
_MLFLOW_TEXT = {"string"}
_NEEDS_PROBA = ("probability", "class_probabilities")

model = None
card: dict[str, Any] = {}  # the model card as read (legacy fields), or {} for a model without one
contract: dict[str, Any] = {}  # the contract in effect (normalised: see _normalise)
service_name = "online/unknown/unknown"
max_rows = DEFAULT_MAX_ROWS
load_error = ""  # why init() failed, if it did
_categorical: dict[str, frozenset[str]] = {}
_numeric: tuple[str, ...] = ()
_feature_order: list[str] = []
_expected: frozenset[str] = frozenset()
_shape = "records"
_kind = "probability"
_key = "predictions"
_classes: tuple[Any, ...] = ()
_positive: Any = 1
# rows: (position, name, domain) of each categorical, (position, name) of each numeric
_row_categorical: tuple[tuple[int, str, frozenset[str]], ...] = ()
_row_numeric: tuple[tuple[int, str], ...] = ()


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ContractError(ValueError):
    """No usable contract: the message names where it came from and the field."""


class ModelLoadError(RuntimeError):
    """The model folder cannot be served as it is; the message says why."""


class UntrustedTypesError(ModelLoadError):
    """A skops file holds types the platform's allowlist for this model does not trust."""


def init() -> None:
    """Load the contract and the model from AZUREML_MODEL_DIR (the folder itself or its single
    subfolder holding a model_card.json or an MLflow MLmodel). Raises when the model cannot be
    served; azmlinfsrv then exits, so the deployment fails with the reason in its console log."""
    global model, card, service_name, max_rows, load_error

    root = Path(os.environ.get("AZUREML_MODEL_DIR", "."))
    model, card, load_error = None, {}, ""
    service_name = os.environ.get("MODELOPS_SERVICE_NAME") or _service_name(root, {})
    try:
        folder = _artifact_dir(root)
        fields, model_card, where = _read_contract(folder)
        _apply(fields, model_card, where)
        service_name = os.environ.get("MODELOPS_SERVICE_NAME") or _service_name(root, card)
        loaded = _load_mlflow(folder) if (folder / MLMODEL_FILE).is_file() else _load_joblib(folder)
        _check_model(loaded)
        max_rows = int(os.environ.get("MODELOPS_MAX_ROWS", DEFAULT_MAX_ROWS))
    except Exception as exc:
        load_error = f"{type(exc).__name__}: {exc}"
        _log("ModelLoadFailed", "init", datetime.now(timezone.utc).isoformat(),
             {"error_type": type(exc).__name__, "message": _encodable(str(exc)[:2000])})
        raise
    model = loaded


def configure(model_card: dict[str, Any]) -> None:
    """Derive the request contract from a contract dict (ModelContract.to_dict()), a model card with
    a "contract" block, or a model card written before contracts (features, positive_label)."""
    if "response_kind" in model_card and "contract" not in model_card:
        _apply(model_card, {}, "contract")
    else:
        _apply(_card_contract(model_card), model_card, CARD_FILE)


def _apply(fields: dict[str, Any], model_card: dict[str, Any], where: str) -> None:
    global card, contract, _categorical, _numeric, _feature_order, _expected, _shape, _kind, _key, _classes, \
        _positive, _row_categorical, _row_numeric
    normalised = _normalise(fields, where)
    card, contract = model_card, normalised
    features = contract["features"]
    _categorical = {f["name"]: frozenset(f.get("domain") or ()) for f in features if f["type"] == "categorical"}
    _numeric = tuple(f["name"] for f in features if f["type"] == "numeric")
    _feature_order = [f["name"] for f in features]
    _expected = frozenset(_feature_order)
    _row_categorical = tuple((j, f["name"], _categorical[f["name"]]) for j, f in enumerate(features)
                             if f["type"] == "categorical")
    _row_numeric = tuple((j, f["name"]) for j, f in enumerate(features) if f["type"] == "numeric")
    _shape, _kind, _key = contract["request_shape"], contract["response_kind"], contract["response_key"]
    _classes, _positive = tuple(contract["classes"]), contract["positive_class"]


@rawhttp
def run(request: Any) -> Any:
    request_id = _request_id(request)
    started = time.perf_counter()
    at = datetime.now(timezone.utc).isoformat()  # one timestamp for every record of this request
    try:
        if getattr(request, "method", "POST") != "POST":
            raise RequestError(405, "use POST with a JSON body {\"data\": [...]}")
        records, unseen = parse_request(request.get_data(cache=False))
        if model is None and load_error:  # init() failed: azmlinfsrv stops then; a host that goes on says why
            raise RequestError(503, f"the model is not loaded: {load_error}")
        _log("InputData", request_id, at, json.dumps(records, separators=(",", ":")))
        if unseen:
            _log("UnseenCategories", request_id, at, unseen)
        predictions = predict(records)
        _log("OutputData", request_id, at, predictions)
        return AMLResponse({_key: predictions}, 200, {}, json_str=True)
    except RequestError as exc:
        _log("InvalidRequest", request_id, at, {"status": exc.status, "error": exc.message})
        return AMLResponse({"error": exc.message, "request_id": request_id}, exc.status, {}, json_str=True)
    except Exception as exc:  # never let a stack trace reach the caller; keep the record serialisable
        _log(
            "Exception",
            request_id,
            at,
            {"error_type": type(exc).__name__, "message": _encodable(str(exc)[:2000]),
             "elapsed_ms": round((time.perf_counter() - started) * 1000, 3)},
        )
        return AMLResponse({"error": "internal error while scoring", "request_id": request_id}, 500, {},
                           json_str=True)


def parse_request(body: bytes | str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Validate a request body against the contract. Returns the rows as records {feature: value}
    (whatever the request shape) and unseen-level counts."""
    payload = _parse_json(body)
    what = "records" if _shape == "records" else "rows"
    if not isinstance(payload, dict):
        raise RequestError(400, "request body must be a JSON object with a \"data\" list")
    if "data" not in payload:
        raise RequestError(400, "request body has no \"data\" key")
    rows = payload["data"]
    if not isinstance(rows, list):
        raise RequestError(400, f"\"data\" must be a list of {what}, got {_type_name(rows)}")
    if not rows:
        raise RequestError(400, "\"data\" is an empty list")
    if len(rows) > max_rows:
        raise RequestError(413, f"\"data\" has {len(rows)} {what}; the maximum is {max_rows}")
    if _shape == "rows":
        return _parse_rows(rows)
    unseen: dict[str, int] = {}
    limit, int_limit = NUMBER_LIMIT, _INT_LIMIT
    # Hot path: one type test and one comparison or set lookup per value; anything unusual goes to
    # the slow helpers, which only run to phrase the error.
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(400, f"data[{i}] must be an object of feature values")
        keys = row.keys()
        if keys != _expected:
            raise RequestError(400, _key_error(i, keys))
        for name, domain in _categorical.items():
            value = row[name]
            if type(value) is str:
                if value in domain:
                    continue
                _check_text(f"data[{i}].{name}", value)
                unseen[name] = unseen.get(name, 0) + 1
            elif value is not None:  # None is imputed by the pipeline
                raise RequestError(400, f"data[{i}].{name} must be a string, got {_type_name(value)}")
        for name in _numeric:
            value = row[name]
            kind = type(value)  # exact types: bool is an int subclass, and not a number here
            if kind is float:
                if -limit <= value <= limit:  # NaN fails both comparisons
                    continue
            elif kind is int:
                if -int_limit <= value <= int_limit:
                    continue
            elif value is None:
                continue
            raise RequestError(400, _number_error(f"data[{i}].{name}", value))
    return rows, unseen


def _parse_rows(rows: list[Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows as lists in feature order: the same checks per position, the feature named in errors."""
    unseen: dict[str, int] = {}
    limit, int_limit = NUMBER_LIMIT, _INT_LIMIT
    width = len(_feature_order)
    for i, row in enumerate(rows):
        if type(row) is not list or len(row) != width:
            raise RequestError(400, _row_error(i, row))
        for j, name, domain in _row_categorical:
            value = row[j]
            if type(value) is str:
                if value in domain:
                    continue
                _check_text(f"data[{i}][{j}] ({name})", value)
                unseen[name] = unseen.get(name, 0) + 1
            elif value is not None:
                raise RequestError(400, f"data[{i}][{j}] ({name}) must be a string, got {_type_name(value)}")
        for j, name in _row_numeric:
            value = row[j]
            kind = type(value)
            if kind is float:
                if -limit <= value <= limit:
                    continue
            elif kind is int:
                if -int_limit <= value <= int_limit:
                    continue
            elif value is None:
                continue
            raise RequestError(400, _number_error(f"data[{i}][{j}] ({name})", value))
    names = _feature_order
    return [dict(zip(names, row)) for row in rows], unseen


def _row_error(i: int, row: Any) -> str:
    names = _feature_order
    order = ", ".join(_show(n) for n in names[:SHOWN_KEYS * 4]) + (", ..." if len(names) > SHOWN_KEYS * 4 else "")
    if not isinstance(row, list):
        return f"data[{i}] must be a list of {len(names)} values in feature order ({order}), got {_type_name(row)}"
    if len(row) < len(names):
        missing = names[len(row):]
        shown = ", ".join(_show(n) for n in missing[:SHOWN_KEYS])
        more = f" and {len(missing) - SHOWN_KEYS} more" if len(missing) > SHOWN_KEYS else ""
        return (f"data[{i}] has {len(row)} values, expected {len(names)} in feature order ({order}): "
                f"missing {shown}{more}")
    return (f"data[{i}] has {len(row)} values, expected {len(names)} in feature order ({order}): "
            f"{len(row) - len(names)} too many")


class _LongInt(int):
    """Stands in for an integer literal longer than Python will convert (4,300 digits by default),
    so that the field holding it can be named; its value is out of range on purpose."""

    digits: int


def _parse_json(body: bytes | str) -> Any:
    try:
        try:
            return json.loads(body)
        except ValueError as exc:
            if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
                raise
            # Not a syntax error: an integer literal beyond int's digit limit. Parse again with a
            # stand-in for it, so that validation names the field instead of blaming the body.
            return json.loads(body, parse_int=_long_int_aware)
    except RecursionError:  # the C decoder recurses per level: a client can exhaust the stack
        shape = "{\"data\": [{...}, ...]}" if _shape == "records" else "{\"data\": [[...], ...]}"
        raise RequestError(400, f"request body nests too deeply: a request is {shape}, three levels") from None
    except ValueError as exc:
        raise RequestError(400, f"request body is not valid JSON: {_show(str(exc), 200)}") from None


def _long_int_aware(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        stand_in = _LongInt(-(2 ** 200) if text.startswith("-") else 2 ** 200)
        stand_in.digits = len(text.lstrip("-"))
        return stand_in


def _key_error(i: int, keys: KeysView[str]) -> str:
    missing = sorted(_expected - keys)
    extra = sorted(k for k in keys if k not in _expected)
    parts = []
    if missing:
        parts.append(f"missing feature(s) {', '.join(missing)}")
    if extra:
        shown = ", ".join(_show(k) for k in extra[:SHOWN_KEYS])
        more = f" and {len(extra) - SHOWN_KEYS} more" if len(extra) > SHOWN_KEYS else ""
        parts.append(f"unknown feature(s) {shown}{more}")
    return f"data[{i}]: " + "; ".join(parts)


def _check_text(where: str, value: str) -> None:
    """Reject a level that could not be logged, exported or shown as text."""
    if len(value) > MAX_TEXT_LENGTH:
        raise RequestError(400, f"{where} is {len(value)} characters long; the maximum is {MAX_TEXT_LENGTH}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): no UTF-8 form exists
            raise RequestError(400, f"{where} is not valid Unicode text (a lone surrogate): "
                                    f"{_show(value)}") from None


def _number_error(where: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{where} must be a number, got {_type_name(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} must be a finite number, got {value!r}"
    if isinstance(value, float):
        shown = repr(value)
    else:
        digits = value.digits if isinstance(value, _LongInt) else len(str(abs(value)))
        shown = f"an integer of {digits} digits"
    return (f"{where} is out of range: {shown}; the model computes in float32, so |x| must be "
            f"<= {NUMBER_LIMIT!r}")


def _type_name(value: Any) -> str:
    return "int" if isinstance(value, _LongInt) else type(value).__name__


def _show(text: str, limit: int = SHOWN_CHARS) -> str:
    """A client's text as it may appear in a message: bounded, and escaped to printable ASCII when
    it holds anything else (lone surrogates, NUL, bidi controls), so that no reader or log pipeline
    chokes on it or is fooled by it."""
    head = text[:limit]
    if not (head.isascii() and head.isprintable()):
        head = ascii(head)[1:-1]
    return head if len(text) <= limit else f"{head}... ({len(text)} characters)"


def _encodable(text: str) -> str:
    # An exception's message may quote client input; the Exception record must stay exportable.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# ---- predicting -----------------------------------------------------------------------------------

def predict(records: list[dict[str, Any]]) -> list[Any]:
    """The answers for validated records, by the contract's response kind."""
    frame = _frame(records)
    if _kind == "probability":
        return model.predict_proba(frame)[:, _positive_column(model)].tolist()
    if _kind == "class_probabilities":
        probabilities = model.predict_proba(frame)
        order = _class_columns(model)
        return (probabilities if order is None else probabilities[:, order]).tolist()
    answers = _flat(model.predict(frame))
    if _kind == "label":
        return answers.tolist()  # numpy ints, floats, bools and strings become their JSON-native kinds
    values = answers.astype("float64").tolist()
    if not all(math.isfinite(v) for v in values):
        raise ValueError("the model answered a value that is not a finite number")
    return values


def _frame(records: list[dict[str, Any]]) -> Any:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame.from_records(records, columns=_feature_order)
    # Rewrite only the columns that need it: replacing every column costs ~8 ms on a one-row
    # request (a third of the request), and is a no-op for float64 numerics and None-free text.
    dtypes = frame.dtypes
    for name in _numeric:
        if dtypes[name] != "float64":  # ints, or all-None (object)
            frame[name] = frame[name].astype("float64")
    for name in _categorical:
        if dtypes[name] != object or any(row[name] is None for row in records):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), np.nan)
    return frame


def _flat(answers: Any) -> Any:
    """predict()'s answers as a 1-d numpy array (an MLflow pyfunc may answer a Series or a frame)."""
    import numpy as np

    if hasattr(answers, "to_numpy"):
        answers = answers.to_numpy()
    answers = np.asarray(answers)
    if answers.ndim == 2 and answers.shape[1] == 1:
        answers = answers[:, 0]
    if answers.ndim != 1:
        raise ValueError(f"the model answered an array of shape {answers.shape}, not one answer per row")
    return answers


def _model_classes(m: Any) -> list[Any] | None:
    classes = getattr(m, "classes_", None)
    return None if classes is None else list(classes)


def _same_label(a: Any, b: Any) -> bool:
    """Whether a contract's class (JSON: int, float, str, bool) names a model's (numpy) class:
    numbers by value, anything else by its text (a JSON contract may spell 1 as "1")."""
    a, b = (x.item() if hasattr(x, "item") else x for x in (a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return str(a) == str(b)


def _index_of(label: Any, labels: list[Any]) -> int | None:
    return next((k for k, other in enumerate(labels) if _same_label(label, other)), None)


def _positive_column(m: Any) -> int:
    labels = _model_classes(m)
    if labels is None:
        return 1  # a model without classes_ (as the card's binary classifiers always were): column 1
    index = _index_of(_positive, labels)
    if index is None:
        raise ValueError(f"positive_class {_positive!r} is not one of the model's classes {labels}")
    return index


def _class_columns(m: Any) -> list[int] | None:
    """predict_proba's columns in the contract's class order (None: as the model has them)."""
    labels = _model_classes(m)
    if not _classes or labels is None:
        return None
    order = [_index_of(c, labels) for c in _classes]
    if None in order or len(labels) != len(_classes):
        raise ValueError(f"the contract's classes {list(_classes)} are not the model's classes {labels}")
    return None if order == list(range(len(labels))) else order


def _check_model(m: Any) -> None:
    """Refuse, at start-up, a model that cannot answer the contract's kind."""
    if _kind in _NEEDS_PROBA and not callable(getattr(m, "predict_proba", None)):
        raise ModelLoadError(f"the contract answers {_kind!r}, which needs predict_proba, and the model "
                             f"({type(m).__name__}) has none: use response_kind 'label' or serve the "
                             "scikit-learn flavor")
    if _kind not in _NEEDS_PROBA and not callable(getattr(m, "predict", None)):
        raise ModelLoadError(f"the model ({type(m).__name__}) has no predict()")
    if _kind == "probability":
        _positive_column(m)
    elif _kind == "class_probabilities":
        _class_columns(m)


# ---- the contract ---------------------------------------------------------------------------------

def _read_contract(folder: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(the contract's fields, the model card or {}, where they came from): the control plane's
    contract, else the folder's model card or MLmodel signature with its contract.json over it."""
    model_card = _json_file(folder / CARD_FILE) if (folder / CARD_FILE).is_file() else {}
    raw = os.environ.get(CONTRACT_ENV, "").strip()
    if raw:
        try:
            given = json.loads(raw)
        except ValueError as exc:
            raise ContractError(f"{CONTRACT_ENV} is not JSON: {exc}") from None
        if not isinstance(given, dict):
            raise ContractError(f"{CONTRACT_ENV} must be a JSON object (ModelContract.to_dict()), "
                                f"not {type(given).__name__}")
        return given, model_card, CONTRACT_ENV
    explicit = _json_file(folder / CONTRACT_FILE) if (folder / CONTRACT_FILE).is_file() else None
    if model_card:  # contract.json corrects the card, as the control plane reads them (contract_sources)
        fields = _card_contract(model_card)
        fields.update({k: v for k, v in (explicit or {}).items() if v is not None})
        return fields, model_card, f"{CARD_FILE} + {CONTRACT_FILE}" if explicit else CARD_FILE
    if (folder / MLMODEL_FILE).is_file():
        fields = {} if explicit and explicit.get("features") else _mlmodel_contract(_mlmodel(folder))
        fields.update({k: v for k, v in (explicit or {}).items() if v is not None})
        return fields, {}, f"{CONTRACT_FILE} + {MLMODEL_FILE}" if explicit else MLMODEL_FILE
    if explicit is not None:
        return explicit, {}, CONTRACT_FILE
    raise ContractError(f"no contract: {CONTRACT_ENV} is not set and {folder} has no {CARD_FILE}, "
                        f"{CONTRACT_FILE} or {MLMODEL_FILE}")


def _card_contract(model_card: dict[str, Any]) -> dict[str, Any]:
    own = model_card.get("contract")
    return dict(own) if isinstance(own, dict) else _legacy_contract(model_card)


def _legacy_contract(model_card: dict[str, Any]) -> dict[str, Any]:
    """A model card written before contracts: a binary classifier answering P(default) per record."""
    task = _CARD_TASKS.get(str(model_card.get("task") or "binary-classification"), "binary_classification")
    return {"features": model_card.get("features"), "task": task, "response_kind": _KIND_OF_TASK[task],
            "request_shape": "records", "response_key": "predictions",
            "classes": [0, 1] if task == "binary_classification" else [],
            "positive_class": model_card.get("positive_label", 1)}


def _mlmodel_contract(spec: dict[str, Any]) -> dict[str, Any]:
    """Features from an MLflow signature's named input columns; the task guessed from its outputs
    (floats: regression; anything else: labels), as the control plane's contract_sources does."""
    signature = spec.get("signature") or {}
    inputs = _column_specs(signature.get("inputs"), "signature.inputs")
    features = []
    for i, column in enumerate(inputs):
        kind, name = column.get("type"), column.get("name")
        if kind in _MLFLOW_NUMERIC and name:
            features.append({"name": name, "type": "numeric"})
        elif kind in _MLFLOW_TEXT and name:
            features.append({"name": name, "type": "categorical", "domain": []})
        else:
            raise ContractError(f"{MLMODEL_FILE} signature.inputs[{i}]: {kind!r} column {name!r} is not a named "
                                f"numeric or string column; set {CONTRACT_ENV} or add a {CONTRACT_FILE} with the "
                                "features")
    outputs = _column_specs(signature.get("outputs") or "[]", "signature.outputs")
    kinds = {c.get("type") for c in outputs} | {(c.get("tensor-spec") or {}).get("dtype") for c in outputs}
    regression = bool(kinds & {"double", "float", "float64", "float32"}) and \
        not kinds & {"long", "integer", "string", "int64", "int32"}
    return {"features": features, "task": "regression" if regression else "multiclass_classification"}


def _column_specs(value: Any, what: str) -> list[dict[str, Any]]:
    if value is None:
        raise ContractError(f"{MLMODEL_FILE} has no {what}: log the model with a signature, or set {CONTRACT_ENV}")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ContractError(f"{MLMODEL_FILE} {what} is not JSON: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise ContractError(f"{MLMODEL_FILE} {what} must be a list of column specs")
    return value


def _normalise(fields: dict[str, Any], where: str) -> dict[str, Any]:
    """The fields score.py works by, checked enough to serve by (the control plane validates
    contracts fully before it deploys one): each error names where and the field."""
    features = fields.get("features")
    if not isinstance(features, list) or not features:
        raise ContractError(f"{where}: features must be a non-empty list of {{name, type}}")
    seen: set[str] = set()
    for i, f in enumerate(features):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"]:
            raise ContractError(f"{where}: features[{i}] must be an object with a name")
        if f.get("type") not in ("numeric", "categorical"):
            raise ContractError(f"{where}: features[{i}].type {f.get('type')!r} is not numeric or categorical")
        if f["name"] in seen:
            raise ContractError(f"{where}: features[{i}].name {f['name']!r} appears twice")
        domain = f.get("domain") or []
        if f["type"] == "categorical" and not (isinstance(domain, list) and all(isinstance(d, str) for d in domain)):
            raise ContractError(f"{where}: features[{i}].domain must be a list of strings")
        seen.add(f["name"])
    task = fields.get("task") or "binary_classification"
    kind = fields.get("response_kind") or _KIND_OF_TASK.get(task)
    if kind not in RESPONSE_KINDS:
        raise ContractError(f"{where}: response_kind {kind!r} is not one of {', '.join(RESPONSE_KINDS)}")
    shape = fields.get("request_shape") or "records"
    if shape not in REQUEST_SHAPES:
        raise ContractError(f"{where}: request_shape {shape!r} is not one of {', '.join(REQUEST_SHAPES)}")
    key = fields.get("response_key") or "predictions"
    if not isinstance(key, str) or key in ("error", "request_id"):
        raise ContractError(f"{where}: response_key must be a string other than 'error' and 'request_id'")
    classes = fields.get("classes") or []
    if not isinstance(classes, list) or any(isinstance(c, (dict, list)) for c in classes):
        raise ContractError(f"{where}: classes must be a list of labels")
    positive = fields.get("positive_class")
    if positive is None:
        positive = 1
    return {**fields, "features": features, "task": task, "response_kind": kind, "request_shape": shape,
            "response_key": key, "classes": classes, "positive_class": positive}


def _json_file(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except ValueError as exc:
        raise ContractError(f"{path.name} is not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ContractError(f"{path.name} must be a JSON object")
    return loaded


# ---- loading the model ----------------------------------------------------------------------------

def _load_joblib(folder: Path) -> Any:
    import joblib

    return joblib.load(folder / MODEL_FILE)


def _mlmodel(folder: Path) -> dict[str, Any]:
    import yaml  # PyYAML: in the serving environment with MLflow (ml/environments/mlflow-pins.txt)

    try:
        spec = yaml.safe_load((folder / MLMODEL_FILE).read_text())
    except yaml.YAMLError as exc:
        raise ModelLoadError(f"{MLMODEL_FILE} is not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(spec, dict):
        raise ModelLoadError(f"{MLMODEL_FILE} is not a YAML mapping")
    return spec


# What mlflow.sklearn.save_model (MLflow 3.15.0, verified; 3.17.2 writes the same) wrote for a
# scikit-learn pipeline with a signature and an input example, default serialization (skops):
#
#   flavors:
#     python_function:
#       env: {conda: conda.yaml, virtualenv: python_env.yaml}
#       loader_module: mlflow.sklearn
#       model_path: model.skops
#       predict_fn: predict
#       python_version: 3.11.7
#     sklearn:
#       code: null
#       pickled_model: model.skops
#       serialization_format: skops            # "cloudpickle" / "pickle": pickled_model is model.pkl
#       sklearn_version: 1.7.2
#       skops_trusted_types: null              # save_model(skops_trusted_types=[...]) lists them here
#   mlflow_version: 3.15.0
#   saved_input_example_info: {artifact_path: input_example.json, pandas_orient: split,
#                              serving_input_path: serving_input_example.json, type: dataframe}
#   signature:
#     inputs: '[{"type": "double", "name": "sepal_length", "required": true}, ...]'
#     outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
#     params: null
#
# and beside it conda.yaml, python_env.yaml, requirements.txt, input_example.json ({"columns": [...],
# "data": [[...], ...]}) and serving_input_example.json. mlflow.sklearn.log_model (a run's artifacts,
# what AzureML registers) writes the same, plus artifact_path, model_id and run_id in MLmodel and a
# registered_model_meta file. MLflow's own loader
# (mlflow.sklearn._load_model_from_local_file) reads serialization_format (default "pickle" when the
# key is missing, as in files of old MLflow versions) and passes the file's skops_trusted_types to
# skops.io.load: a model file would vouch for itself. Here the allowlist is the platform's.
SKLEARN_FORMATS = ("skops", "cloudpickle", "pickle")


def _load_mlflow(folder: Path) -> Any:
    """An MLflow model: the sklearn flavor's file in its serialization format, else any flavor
    through mlflow.pyfunc (labels and values only: a pyfunc has no predict_proba)."""
    spec = _mlmodel(folder)
    flavors = spec.get("flavors") or {}
    sk = flavors.get("sklearn")
    if isinstance(sk, dict):
        fmt = sk.get("serialization_format") or "pickle"
        if fmt not in SKLEARN_FORMATS:
            raise ModelLoadError(f"{MLMODEL_FILE} flavors.sklearn.serialization_format {fmt!r} is not one of "
                                 f"{', '.join(SKLEARN_FORMATS)}")
        path = _inside(folder, sk.get("pickled_model"), "flavors.sklearn.pickled_model")
        _add_code_path(folder, sk.get("code"))
        if fmt == "skops":
            return _load_skops(path)
        with open(path, "rb") as handle:
            if fmt == "cloudpickle":
                import cloudpickle

                return cloudpickle.load(handle)
            import pickle

            return pickle.load(handle)
    if isinstance(flavors.get("python_function"), dict):
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(folder))
    raise ModelLoadError(f"{MLMODEL_FILE} has no sklearn or python_function flavor (flavors: "
                         f"{', '.join(sorted(map(str, flavors))) or 'none'})")


def skops_allowlist() -> list[str]:
    """The platform's allowlist for this model's skops file: MODELOPS_SKOPS_TRUSTED, a JSON list
    of type names ("" or unset: none beyond what skops trusts by itself)."""
    raw = os.environ.get(SKOPS_TRUSTED_ENV, "").strip()
    if not raw:
        return []
    try:
        trusted = json.loads(raw)
    except ValueError as exc:
        raise ModelLoadError(f"{SKOPS_TRUSTED_ENV} is not JSON: {exc}") from None
    if not isinstance(trusted, list) or not all(isinstance(t, str) and t for t in trusted):
        raise ModelLoadError(f"{SKOPS_TRUSTED_ENV} must be a JSON list of type names, e.g. "
                             "[\"sklearn.preprocessing._function_transformer.FunctionTransformer\"]")
    return trusted


def _load_skops(path: Path) -> Any:
    import skops.io

    trusted = skops_allowlist()
    untrusted = skops.io.get_untrusted_types(file=path)
    refused = sorted(set(untrusted) - set(trusted))
    if refused:
        # The types first: the local platform shows the first 300 characters of this line.
        raise UntrustedTypesError(
            f"{path.name} holds {', '.join(refused)}: not trusted by skops nor by this model's allowlist "
            f"({SKOPS_TRUSTED_ENV}={json.dumps(trusted)}). If safe, add to the model's skops trusted types in "
            "modelops' configuration (the model file's own list is never used)")
    return skops.io.load(path, trusted=trusted)


def _inside(folder: Path, name: Any, what: str) -> Path:
    if not isinstance(name, str) or not name:
        raise ModelLoadError(f"{MLMODEL_FILE} has no {what}")
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ModelLoadError(f"{MLMODEL_FILE} {what} {name!r} points outside the model folder")
    if not path.is_file():
        raise ModelLoadError(f"{MLMODEL_FILE} {what} {name!r} is not a file in the model folder")
    return path


def _add_code_path(folder: Path, code: Any) -> None:
    """The flavor's `code` folder (mlflow's code_paths): importable, as MLflow's loader makes it."""
    if isinstance(code, str) and code:
        path = (folder / code).resolve()
        if path.is_dir() and path.is_relative_to(folder.resolve()) and str(path) not in sys.path:
            sys.path.insert(0, str(path))


# ---- logging and naming ---------------------------------------------------------------------------

def _log(kind: str, request_id: str, at: str, data: Any) -> None:
    line = json.dumps({"service_name": service_name, "type": kind, "request_id": request_id, "data": data,
                       "time": at}, separators=(",", ":"), default=str)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _request_id(request: Any) -> str:
    try:
        from flask import g

        if getattr(g, "request_id", ""):
            return g.request_id
    except (ImportError, RuntimeError):
        pass
    headers = getattr(request, "headers", {}) or {}
    return headers.get("x-request-id") or uuid.uuid4().hex


_MARKERS = (CARD_FILE, MLMODEL_FILE)


def _artifact_dir(root: Path) -> Path:
    """The model folder: `root` itself or its single subfolder holding a model_card.json or an
    MLmodel (AzureML mounts a registered folder as AZUREML_MODEL_DIR/<folder name>/)."""
    if any((root / marker).is_file() for marker in _MARKERS):
        return root
    found = sorted({p.parent for marker in _MARKERS for p in root.glob(f"*/{marker}")})
    if len(found) != 1:
        raise FileNotFoundError(f"expected one {CARD_FILE} or {MLMODEL_FILE} in {root} or one subfolder, "
                                f"found {len(found)}")
    return found[0]


def _service_name(root: Path, model_card: dict[str, Any]) -> str:
    # AzureML mounts models at .../azureml-models/<name>/<version>; the local platform mirrors it.
    name = os.environ.get("MODELOPS_MODEL_NAME")
    version = os.environ.get("MODELOPS_MODEL_VERSION")
    parts = root.resolve().parts
    if not (name and version) and len(parts) >= 2 and parts[-1].isdigit():
        name, version = name or parts[-2], version or parts[-1]
    return f"online/{name or model_card.get('model_name', 'unknown')}/{version or 'unknown'}"
