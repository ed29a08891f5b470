"""core.export.InferenceLogSource on Azure Monitor Logs: score.py's InputData lines in the
AmlOnlineEndpointConsoleLog table of the production workspace's Log Analytics workspace.

Table columns used (Azure Monitor Logs table reference,
https://learn.microsoft.com/azure/azure-monitor/reference/tables/amlonlineendpointconsolelog):
  TimeGenerated   datetime  when the line was logged (UTC)
  Message         string    the console line: score.py's JSON record
  DeploymentName  string    the deployment whose container wrote it

The JSON work runs in Log Analytics: the query keeps this model's InputData lines, parses them
(parse_json), expands each request's data list into one row per record (mv-expand
with_itemindex) and projects the record's fields. Every projected cell is a string (tostring,
numbers through todouble first): the answer's rows are then homogeneous JSON arrays of strings,
which Arrow's C++ JSON reader turns into columns in one call, with no Python object per cell —
the SDK's own table parsing (query_workspace) builds a Python object per cell and parses every
datetime, ~10x slower. The exporter's schema types are applied by Arrow casts afterwards
(empty string = null: Kusto strings are never null). Requests go through the client's own
pipeline (`send_request`: bearer token, retries, user agent) with `stream=True`, so the body is
read once, as bytes, not decoded to JSON by the pipeline first.

Limits: Log Analytics cuts a result at 500,000 rows or 64 MB and marks it partial. Each slice is
counted first (one summarize query: records, malformed lines, message bytes) and cut into equal
sub-windows so that every query stays under `max_rows` and an estimated `max_bytes`; a partial
answer anyway (skewed traffic, or a partial failure in the service) is dropped whole and its
window fetched again as two halves, down to `min_window`; past that, PlatformError — nothing is
ever returned short.

Value safety: the model name is checked (core.export.check_model_name) and enters the KQL only as
an escaped string literal (kql_string); times are formatted from datetimes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from functions.adapters.azure.traffic_log import kql_datetime, kql_string, logs_client
from functions.core.export import Malformed, check_model_name, export_schema, normalize
from functions.ports import PlatformError
from ml.schema import CATEGORICAL, NUMERIC

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

TABLE = "AmlOnlineEndpointConsoleLog"
FETCH_COLUMNS = ("TimeGenerated", "request_id", "model_version", "deployment", "record_index") + CATEGORICAL + NUMERIC
SUMMARY_COLUMNS = ("Messages", "Records", "Malformed", "Bytes")
DEFAULT_MAX_ROWS = 100_000  # well under 500,000, and what one query's answer may cost in memory
DEFAULT_MAX_BYTES = 48 * 1024 * 1024  # under the 64 MB result limit, with room for the estimate's error
ROW_OVERHEAD = 128  # bytes a result row adds over its record's share of the Message
_TRANSIENT_STATUS = frozenset({408, 429})


# --- the queries --------------------------------------------------------------------------------

def _prefix(model: str) -> str:
    return f"online/{check_model_name(model)}/"


def _head(model: str, start: datetime, end: datetime) -> list[str]:
    prefix = kql_string(_prefix(model))
    return [
        TABLE,
        f"| where TimeGenerated >= {kql_datetime(start)} and TimeGenerated < {kql_datetime(end)}",
        # cheap term / substring filters first (the service's indexes), exact checks after parsing
        f'| where Message has "InputData" and Message contains {prefix}',
        "| extend m = parse_json(Message)",
        f'| extend mine = tostring(m.type) == "InputData" and tostring(m.service_name) startswith_cs {prefix}',
        "| extend d = parse_json(tostring(m.data))",
    ]


def summary_query(model: str, start: datetime, end: datetime) -> str:
    """One row: this model's InputData lines, their records, the unreadable lines and the lines'
    bytes, in [start, end). Malformed = a line that is not a JSON object, or an InputData line of
    this model whose data is not a JSON list."""
    return "\n".join(_head(model, start, end) + [
        "| summarize Messages = countif(mine), Records = sumif(array_length(d), mine),"
        ' Malformed = countif(gettype(m) != "dictionary" or (mine and gettype(d) != "array")),'
        " Bytes = sumif(strlen(Message), mine)",
    ])


def fetch_query(model: str, start: datetime, end: datetime) -> str:
    """One row per record of this model's InputData lines in [start, end), every cell a string."""
    offset = len(_prefix(model))
    fields = [f"{name} = tostring(rec.{name})" for name in CATEGORICAL]
    fields += [f"{name} = tostring(todouble(rec.{name}))" for name in NUMERIC]
    return "\n".join(_head(model, start, end) + [
        '| where mine and gettype(d) == "array"',
        "| mv-expand with_itemindex=Index rec = d",
        '| where gettype(rec) == "dictionary"',
        "| project TimeGenerated, request_id = tostring(m.request_id),"
        f" model_version = substring(tostring(m.service_name), {offset}), deployment = DeploymentName,"
        " record_index = tostring(Index),",
        "    " + ", ".join(fields),
    ])


# --- reading answers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    messages: int
    records: int
    malformed: int
    bytes: int


def _arrow_body_schema() -> pa.Schema:
    import pyarrow as pa

    inner = pa.struct([("code", pa.string()), ("message", pa.string())])
    detail = pa.struct([("code", pa.string()), ("message", pa.string()), ("innererror", inner)])
    table = pa.struct([
        ("name", pa.string()),
        ("columns", pa.list_(pa.struct([("name", pa.string()), ("type", pa.string())]))),
        ("rows", pa.list_(pa.list_(pa.string()))),
    ])
    error = pa.struct([("code", pa.string()), ("message", pa.string()), ("details", pa.list_(detail))])
    return pa.schema([("tables", pa.list_(table)), ("error", error)])


def parse_answer(body: bytes | bytearray) -> tuple[list[str], dict[str, pa.Array], dict[str, Any] | None]:
    """(column names, string columns, partial error or None) of a query answer whose cells are
    all strings. Arrow's JSON reader first; anything it refuses (an unexpected shape) is parsed
    again with the json module, so a surprise costs speed, never rows."""
    try:
        return _parse_with_arrow(body)
    except Exception:  # noqa: BLE001 - pyarrow raises ArrowInvalid/ArrowTypeError/...: fall back
        return _parse_with_json(body)


def _parse_with_arrow(body: bytes | bytearray) -> tuple[list[str], dict[str, pa.Array], dict[str, Any] | None]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    parsed = pj.read_json(
        pa.BufferReader(pa.py_buffer(body)),
        read_options=pj.ReadOptions(use_threads=True, block_size=max(len(body) + 1, 1 << 20)),
        parse_options=pj.ParseOptions(explicit_schema=_arrow_body_schema(), unexpected_field_behavior="ignore",
                                      newlines_in_values=True),
    )
    if parsed.num_rows != 1:
        raise ValueError(f"expected one JSON object, got {parsed.num_rows}")
    error = parsed.column("error").to_pylist()[0]
    tables = pc.list_flatten(parsed.column("tables").chunk(0))
    if len(tables) != 1:
        raise PlatformError(f"expected one result table, got {len(tables)}")
    columns = [c["name"] for c in tables.field("columns")[0].as_py()]
    rows = tables.field("rows").flatten()  # list<list<string>>: the rows
    width = len(columns)
    n = len(rows)
    if n:
        lengths = pc.min_max(pc.list_value_length(rows)).as_py()
        if lengths["min"] != width or lengths["max"] != width:
            raise ValueError("rows of uneven width")
    values = rows.flatten()
    out: dict[str, pa.Array] = {}
    for j, name in enumerate(columns):
        out[name] = values.take(pa.array(np.arange(j, n * width, width, dtype=np.int64))) if n else \
            pa.array([], pa.string())
    return columns, out, error


def _parse_with_json(body: bytes | bytearray) -> tuple[list[str], dict[str, pa.Array], dict[str, Any] | None]:
    import pyarrow as pa

    try:
        answer = json.loads(body)
        tables = answer["tables"]
        if len(tables) != 1:
            raise PlatformError(f"expected one result table, got {len(tables)}")
        columns = [c["name"] for c in tables[0]["columns"]]
        rows = tables[0]["rows"]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise PlatformError(f"unreadable Log Analytics answer ({type(exc).__name__}: {exc})", transient=True) from exc
    error = answer.get("error")
    out = {}
    for j, name in enumerate(columns):
        cells = [row[j] if j < len(row) else None for row in rows]
        out[name] = pa.array([c if c is None or isinstance(c, str) else json.dumps(c) for c in cells], pa.string())
    return columns, out, error


def typed_table(columns: Mapping[str, pa.Array]) -> pa.Table:
    """String columns of the fetch query → a table of the export schema."""
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = [c for c in FETCH_COLUMNS if c not in columns]
    if missing:
        raise PlatformError(f"Log Analytics answer lacks column(s) {missing}")
    null = pa.scalar(None, pa.string())
    arrays = []
    for f in export_schema():
        column = columns[f.name]
        if f.name == "TimeGenerated":
            arrays.append(column.cast(pa.timestamp("ns", tz="UTC")).cast(f.type, safe=False))
        elif pa.types.is_string(f.type):
            arrays.append(column)
        else:
            blank = pc.equal(column, "")
            if pc.any(blank).as_py():
                column = pc.if_else(blank, null, column)
            try:
                arrays.append(column.cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                arrays.append(pa.array([_to_float(v) for v in column.to_pylist()], f.type))
    return normalize(pa.Table.from_arrays(arrays, schema=export_schema()))


def _to_float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


# --- the source ---------------------------------------------------------------------------------

class LogAnalyticsInferenceLogs:
    """InferenceLogSource on a `LogsQueryClient` (azure-monitor-query 2.x) and a workspace id.

    `enforce_https=False` is passed per call for a local http endpoint (tests, benchmark).
    `max_rows` / `max_bytes` bound each query's answer (Log Analytics' own limits are 500,000
    rows and 64 MB); `min_window` and `max_depth` bound how far a window is halved when answers
    keep coming back partial. `server_timeout` (s) goes to the service as Prefer: wait=N.
    """

    def __init__(self, client: Any, workspace_id: str, *, enforce_https: bool = True,
                 max_rows: int = DEFAULT_MAX_ROWS, max_bytes: int = DEFAULT_MAX_BYTES,
                 min_window: timedelta = timedelta(seconds=1), max_depth: int = 10,
                 server_timeout: int | None = None) -> None:
        if not workspace_id or not isinstance(workspace_id, str):
            raise ValueError("workspace_id is required")
        if max_rows < 1 or max_bytes < 1:
            raise ValueError("max_rows and max_bytes must be positive")
        self.client = client
        self.workspace_id = workspace_id
        self.enforce_https = enforce_https
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.min_window = min_window
        self.max_depth = max_depth
        self.server_timeout = server_timeout
        self.queries = 0  # sent, for tests and the benchmark
        self.splits = 0  # windows halved after a partial answer

    # port
    def count(self, model: str, start: datetime, end: datetime) -> int:
        return self.summary(model, start, end).records

    def summary(self, model: str, start: datetime, end: datetime) -> Summary:
        start, end = _utc(start), _utc(end)
        query = summary_query(model, start, end)  # validates the name before anything is sent
        if end <= start:
            return Summary(0, 0, 0, 0)
        body = self._post(query, start, end, f"inference log summary of {model}")
        columns, cells, error = _parse_with_json(body)
        if error:
            raise PlatformError(f"inference log summary of {model}: partial result ({_describe(error)})",
                                transient=True)
        values = {name: cells[name].to_pylist() for name in columns}
        if any(name not in values for name in SUMMARY_COLUMNS):
            raise PlatformError(f"inference log summary of {model}: unexpected columns {columns}")
        if not values["Records"]:  # no row at all: nothing there
            return Summary(0, 0, 0, 0)
        try:
            numbers = [int(float(values[name][0] or 0)) for name in SUMMARY_COLUMNS]
        except (TypeError, ValueError) as exc:
            raise PlatformError(f"inference log summary of {model}: unreadable row ({exc})") from exc
        return Summary(*numbers)

    def fetch(self, model: str, start: datetime, end: datetime) -> Iterator[Any]:
        start, end = _utc(start), _utc(end)
        check_model_name(model)
        summary = self.summary(model, start, end)
        if summary.malformed:
            yield Malformed(summary.malformed, "console log lines that are not readable InputData records")
        if not summary.records:
            return
        parts = self.plan(summary)
        step = (end - start) / parts
        bounds = [start + step * i for i in range(parts)] + [end]  # datetimes: whole microseconds
        fetched = 0
        for lo, hi in zip(bounds, bounds[1:]):
            if hi <= lo:
                continue
            for table in self._fetch_window(model, lo, hi, 0):
                fetched += len(table)
                yield table
        if fetched < summary.records:  # array elements that are not objects (the query skips them)
            yield Malformed(summary.records - fetched, "records that are not JSON objects")

    def plan(self, summary: Summary) -> int:
        """How many equal sub-windows a slice needs so each answer stays under the limits."""
        estimated_bytes = summary.bytes + summary.records * ROW_OVERHEAD
        return max(1, math.ceil(summary.records / self.max_rows), math.ceil(estimated_bytes / self.max_bytes))

    # internals
    def _fetch_window(self, model: str, start: datetime, end: datetime, depth: int) -> Iterator[pa.Table]:
        action = f"inference logs of {model} [{start.isoformat()}, {end.isoformat()})"
        body = self._post(fetch_query(model, start, end), start, end, action)
        columns, cells, error = parse_answer(body)
        del body
        if not error:
            yield typed_table(cells)
            return
        del cells
        if depth >= self.max_depth or end - start <= self.min_window:
            raise PlatformError(f"{action}: Log Analytics keeps returning a partial result ({_describe(error)}); "
                                "nothing was exported for this slice", transient=True)
        self.splits += 1
        middle = start + (end - start) / 2
        yield from self._fetch_window(model, start, middle, depth + 1)
        yield from self._fetch_window(model, middle, end, depth + 1)

    def _post(self, query: str, start: datetime, end: datetime, action: str) -> bytearray:
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        # the API's timespan is a coarse pre-filter (its boundary handling is not documented):
        # widen it to whole milliseconds; the query itself states the exact half-open window
        span = f"{_ms(start, up=False)}/{_ms(end, up=True)}"
        headers = {"Prefer": f"wait={int(self.server_timeout)}"} if self.server_timeout else None
        request = HttpRequest("POST", f"/workspaces/{quote(self.workspace_id, safe='')}/query",
                              json={"query": query, "timespan": span}, headers=headers)
        self.queries += 1
        try:
            response = self.client.send_request(request, stream=True, enforce_https=self.enforce_https)
            try:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
            finally:
                response.close()
        except AzureError as exc:
            raise _platform_error(exc, action) from exc
        except OSError as exc:
            raise PlatformError(f"{action}: no answer from Log Analytics ({exc})", transient=True) from exc
        status = response.status_code
        if status != 200:
            detail = _error_detail(body)
            transient = status in _TRANSIENT_STATUS or status >= 500
            raise PlatformError(f"{action}: HTTP {status} {detail}".rstrip(), transient=transient)
        return body


def inference_logs_client(endpoint: str | None = None, credential: Any = None, **kwargs: Any) -> Any:
    """A LogsQueryClient for the export: as traffic_log.logs_client, reading answers in 1 MiB
    blocks (the transport's default is 4 KiB: a 40 MB answer would be ten thousand reads)."""
    kwargs.setdefault("connection_data_block_size", 1 << 20)
    return logs_client(endpoint=endpoint, credential=credential, **kwargs)


def _platform_error(exc: BaseException, action: str) -> PlatformError:
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError

    first = (str(getattr(exc, "message", None) or exc).strip().splitlines() or [type(exc).__name__])[0][:500]
    if isinstance(exc, ClientAuthenticationError):
        return PlatformError(f"{action}: not authorized ({first})")
    if isinstance(exc, ServiceRequestError) and "non-TLS" in first:
        return PlatformError(f"{action}: {first} (pass enforce_https=False only for a local endpoint)")
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return PlatformError(f"{action}: no answer from Log Analytics ({first})", transient=True)
    return PlatformError(f"{action}: {type(exc).__name__}: {first}", transient=True)


def _error_detail(body: bytes | bytearray) -> str:
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return bytes(body[:200]).decode("utf-8", "replace")
    return _describe(error)


def _describe(error: Mapping[str, Any]) -> str:
    """code: message, then the inner messages (a partial error's own message says little)."""
    if not isinstance(error, Mapping):
        return str(error)[:500]
    parts = [f"{error.get('code') or ''}: {error.get('message') or ''}".strip(": ")]
    inner = error.get("innererror")
    while isinstance(inner, Mapping):
        if inner.get("message"):
            parts.append(str(inner["message"]))
        inner = inner.get("innererror")
    for detail in error.get("details") or []:
        if isinstance(detail, Mapping):
            text = (detail.get("innererror") or {}).get("message") or detail.get("message")
            if text:
                parts.append(str(text))
    return "; ".join(p for p in parts if p)[:1000]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _ms(value: datetime, *, up: bool) -> str:
    ms = value.replace(microsecond=value.microsecond // 1000 * 1000)
    if up and ms < value:
        ms += timedelta(milliseconds=1)
    return ms.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms.microsecond // 1000:03d}Z"

