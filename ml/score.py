"""Scoring script for azureml-inference-server-http (the runtime of AzureML managed online endpoints).

Request  {"data": [{<23 features>}, ...]}   →   200 {"predictions": [P(default), ...]}
Invalid requests get a 4xx JSON error naming the problem, never a 500 with a stack trace.

Every request writes one JSON line per input and output to stdout in the scenario's shape, which
is what lands in the endpoint console log (AmlOnlineEndpointConsoleLog) for export:
    {"service_name": "online/<model>/<version>", "type": "InputData",  "request_id": ..., "data": "<json rows>",
     "time": "2026-05-09T07:00:00.123456+00:00"}
    {"service_name": "online/<model>/<version>", "type": "OutputData", "request_id": ..., "data": [p, ...], "time": ...}
Errors write a serialisable {"type": "Exception"} record; rejected requests an "InvalidRequest" one.
"time" (UTC ISO 8601 with microseconds, taken once per request) stamps local console logs the way
Log Analytics' TimeGenerated stamps the table rows; the export reads it from local logs.

Self-contained on purpose: it validates against the model card inside the artifact (so the contract
travels with the model) and imports nothing from this repository.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
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
DEFAULT_MAX_ROWS = 10_000

model = None
card: dict[str, Any] = {}
service_name = "online/unknown/unknown"
max_rows = DEFAULT_MAX_ROWS
_categorical: dict[str, frozenset[str]] = {}
_numeric: tuple[str, ...] = ()
_feature_order: list[str] = []
_expected: frozenset[str] = frozenset()


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def init() -> None:
    """Load the artifact from AZUREML_MODEL_DIR (the folder itself or its single subfolder)."""
    global model, card, service_name, max_rows
    import joblib

    root = Path(os.environ.get("AZUREML_MODEL_DIR", "."))
    folder = _artifact_dir(root)
    card = json.loads((folder / CARD_FILE).read_text())
    configure(card)
    model = joblib.load(folder / MODEL_FILE)
    max_rows = int(os.environ.get("MODELOPS_MAX_ROWS", DEFAULT_MAX_ROWS))
    service_name = os.environ.get("MODELOPS_SERVICE_NAME") or _service_name(root, card)


def configure(model_card: dict[str, Any]) -> None:
    """Derive the request contract from the model card."""
    global card, _categorical, _numeric, _feature_order, _expected
    card = model_card
    features = model_card["features"]
    _categorical = {f["name"]: frozenset(f.get("domain", ())) for f in features if f["type"] == "categorical"}
    _numeric = tuple(f["name"] for f in features if f["type"] == "numeric")
    _feature_order = [f["name"] for f in features]
    _expected = frozenset(_feature_order)


@rawhttp
def run(request: Any) -> Any:
    request_id = _request_id(request)
    started = time.perf_counter()
    at = datetime.now(timezone.utc).isoformat()  # one timestamp for every record of this request
    try:
        if getattr(request, "method", "POST") != "POST":
            raise RequestError(405, "use POST with a JSON body {\"data\": [...]}")
        records, unseen = parse_request(request.get_data(cache=False))
        _log("InputData", request_id, at, json.dumps(records, separators=(",", ":")))
        if unseen:
            _log("UnseenCategories", request_id, at, unseen)
        predictions = predict(records)
        _log("OutputData", request_id, at, predictions)
        return AMLResponse({"predictions": predictions}, 200, {}, json_str=True)
    except RequestError as exc:
        _log("InvalidRequest", request_id, at, {"status": exc.status, "error": exc.message})
        return AMLResponse({"error": exc.message, "request_id": request_id}, exc.status, {}, json_str=True)
    except Exception as exc:  # never let a stack trace reach the caller; keep the record serialisable
        _log(
            "Exception",
            request_id,
            at,
            {"error_type": type(exc).__name__, "message": str(exc)[:2000],
             "elapsed_ms": round((time.perf_counter() - started) * 1000, 3)},
        )
        return AMLResponse({"error": "internal error while scoring", "request_id": request_id}, 500, {},
                           json_str=True)


def parse_request(body: bytes | str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Validate a request body against the card. Returns the rows and unseen-level counts."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError(400, "request body must be a JSON object with a \"data\" list")
    if "data" not in payload:
        raise RequestError(400, "request body has no \"data\" key")
    rows = payload["data"]
    if not isinstance(rows, list):
        raise RequestError(400, f"\"data\" must be a list of records, got {type(rows).__name__}")
    if not rows:
        raise RequestError(400, "\"data\" is an empty list")
    if len(rows) > max_rows:
        raise RequestError(413, f"\"data\" has {len(rows)} records; the maximum is {max_rows}")
    unseen: dict[str, int] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(400, f"data[{i}] must be an object of feature values")
        keys = row.keys()
        if keys != _expected:
            missing = sorted(_expected - keys)
            extra = sorted(k for k in keys if k not in _expected)
            parts = []
            if missing:
                parts.append(f"missing feature(s) {', '.join(missing)}")
            if extra:
                parts.append(f"unknown feature(s) {', '.join(map(str, extra))}")
            raise RequestError(400, f"data[{i}]: " + "; ".join(parts))
        for name, domain in _categorical.items():
            value = row[name]
            if value is None:
                continue  # imputed by the pipeline
            if not isinstance(value, str):
                raise RequestError(400, f"data[{i}].{name} must be a string, got {type(value).__name__}")
            if value not in domain:
                unseen[name] = unseen.get(name, 0) + 1
        for name in _numeric:
            value = row[name]
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise RequestError(400, f"data[{i}].{name} must be a number, got {type(value).__name__}")
            if not math.isfinite(value):
                raise RequestError(400, f"data[{i}].{name} must be a finite number")
    return rows, unseen


def predict(records: list[dict[str, Any]]) -> list[float]:
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
    return model.predict_proba(frame)[:, 1].tolist()


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


def _artifact_dir(root: Path) -> Path:
    if (root / CARD_FILE).is_file():
        return root
    found = sorted(p.parent for p in root.glob(f"*/{CARD_FILE}"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one {CARD_FILE} in {root} or one subfolder, found {len(found)}")
    return found[0]


def _service_name(root: Path, model_card: dict[str, Any]) -> str:
    # AzureML mounts models at .../azureml-models/<name>/<version>; the local platform mirrors it.
    name = os.environ.get("MODELOPS_MODEL_NAME")
    version = os.environ.get("MODELOPS_MODEL_VERSION")
    parts = root.resolve().parts
    if not (name and version) and len(parts) >= 2 and parts[-1].isdigit():
        name, version = name or parts[-2], version or parts[-1]
    return f"online/{name or model_card.get('model_name', 'unknown')}/{version or 'unknown'}"
