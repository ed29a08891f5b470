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
            {"error_type": type(exc).__name__, "message": _encodable(str(exc)[:2000]),
             "elapsed_ms": round((time.perf_counter() - started) * 1000, 3)},
        )
        return AMLResponse({"error": "internal error while scoring", "request_id": request_id}, 500, {},
                           json_str=True)


def parse_request(body: bytes | str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Validate a request body against the card. Returns the rows and unseen-level counts."""
    payload = _parse_json(body)
    if not isinstance(payload, dict):
        raise RequestError(400, "request body must be a JSON object with a \"data\" list")
    if "data" not in payload:
        raise RequestError(400, "request body has no \"data\" key")
    rows = payload["data"]
    if not isinstance(rows, list):
        raise RequestError(400, f"\"data\" must be a list of records, got {_type_name(rows)}")
    if not rows:
        raise RequestError(400, "\"data\" is an empty list")
    if len(rows) > max_rows:
        raise RequestError(413, f"\"data\" has {len(rows)} records; the maximum is {max_rows}")
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
                _check_text(i, name, value)
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
            raise RequestError(400, _number_error(i, name, value))
    return rows, unseen


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
        raise RequestError(400, "request body nests too deeply: a request is {\"data\": [{...}, ...]}, "
                                "three levels") from None
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


def _check_text(i: int, name: str, value: str) -> None:
    """Reject a level that could not be logged, exported or shown as text."""
    if len(value) > MAX_TEXT_LENGTH:
        raise RequestError(400, f"data[{i}].{name} is {len(value)} characters long; the maximum is "
                                f"{MAX_TEXT_LENGTH}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): no UTF-8 form exists
            raise RequestError(400, f"data[{i}].{name} is not valid Unicode text (a lone surrogate): "
                                    f"{_show(value)}") from None


def _number_error(i: int, name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"data[{i}].{name} must be a number, got {_type_name(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"data[{i}].{name} must be a finite number, got {value!r}"
    if isinstance(value, float):
        shown = repr(value)
    else:
        digits = value.digits if isinstance(value, _LongInt) else len(str(abs(value)))
        shown = f"an integer of {digits} digits"
    return (f"data[{i}].{name} is out of range: {shown}; the model computes in float32, so |x| must be "
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
