"""The fake Log Analytics query service's HTTP server (see the package docstring for the parts).

It speaks the query REST API the way azure-monitor-query 2.x calls it, so adapters are tested
through the real `LogsQueryClient` (its pipeline, auth policy, retries and deserialisation):

    POST /v1/workspaces/{workspaceId}/query
    Authorization: Bearer <token>          (any non-empty token; otherwise 401)
    Prefer: wait=N,include-statistics=true  (always sent; empty when no option was asked for)
    {"query": "<KQL>", "timespan": "<start>/<end>" | "<start>/PT<n>S" | "PT<n>S" | null,
     "workspaces": [...] | null}

  200 {"tables": [{"name": "PrimaryResult", "columns": [{"name", "type"}], "rows": [[...]]}]}
  200 the same plus "error": {"code": "PartialError", ...}  → the SDK returns LogsQueryPartialResult
  4xx/5xx {"error": {"code", "message", "innererror"?}}      → the SDK raises HttpResponseError

Result limits, like the service (500,000 rows / 64 MB by default, `row_limit` / `byte_limit`,
None to lift): a larger result is truncated and answered 200 with a PartialError whose inner
error is E_QUERY_RESULT_SET_TOO_LARGE — the shape the service returns when a query hits limits.
The byte limit is applied to the JSON of the rows (the service counts its internal encoding).

The error bodies of injected HTTP failures are OneAPI-shaped with plausible codes
(ThrottledError, ServiceUnavailableError, ...), not codes verified against the service; the SDK
only reads the shape (code, message, innererror chain) — except 504, whose body is the recorded one
(results.gateway_timeout_body).

Server timeout (`query_timeout_rows`, None = never): the service gives up on a query after 3
minutes, or N seconds with `Prefer: wait=N` (at most 600), and answers 504 GatewayTimeout
(https://learn.microsoft.com/azure/azure-monitor/logs/api/timeouts; the body and the
`Preference-Applied` header as in the recorded session named in results.py). The fake's stand-in for
"takes longer than the timeout" is the number of rows of the queried table (the query's first word)
inside the request's timespan: more than `query_timeout_rows` × wait / 180 rows time out, so a
smaller window gets through and the same query over the same rows never does.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fake_log_analytics.kql import SubsetEvaluator
from tests.fake_log_analytics.results import QueryError, Result, error_body, gateway_timeout_body, limit_error
from tests.fake_log_analytics.tables import (
    COLUMN_TYPES,
    CONSOLE_COLUMNS,
    CONSOLE_TABLE,
    TRAFFIC_COLUMNS,
    TRAFFIC_TABLE,
    LogTable,
    _time_slice,
)
from tests.fake_log_analytics.values import Timespan, _encode, _number

ROW_LIMIT = 500_000
BYTE_LIMIT = 64 * 1024 * 1024
DEFAULT_WAIT, MAX_WAIT = 180, 600  # the server timeout in seconds: default, and the most Prefer: wait gets
_BATCH = 20_000  # rows per encoded chunk


DEFAULT_STATUS_BODIES = {
    400: ("BadArgumentError", "The request had some invalid properties"),
    401: ("AuthorizationRequiredError", "Valid authentication was not provided"),
    403: ("InsufficientAccessError",
          "The provided credentials have insufficient access to perform the requested operation"),
    404: ("WorkspaceNotFoundError", "The workspace could not be found"),
    408: ("RequestTimeout", "The request timed out"),
    429: ("ThrottledError", "Your request was throttled; retry later"),
    500: ("InternalServerError", "An unexpected error occurred"),
    502: ("BadGateway", "The gateway received an invalid response"),
    503: ("ServiceUnavailableError", "The service is temporarily unavailable"),
    504: ("GatewayTimeout", "Gateway timeout"),  # and the recorded inner error: results.gateway_timeout_body
}


@dataclass
class Fault:
    """One injected misbehaviour, consumed by the next matching request(s)."""

    status: int | None = None  # HTTP failure status; None → answer normally (after `delay`)
    retry_after: float | None = None
    body: Any = None  # dict → JSON; bytes/str → as is; None → a Log Analytics error body
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    partial: bool = False
    partial_error: dict[str, Any] | None = None
    keep_rows: int | None = None  # with partial: rows kept (None = all)
    times: int | None = 1  # None = until clear_faults()


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    workspace_id: str | None = None
    body: Any = None
    status: int | None = None
    received_at: float = field(default_factory=time.time)

    @property
    def query(self) -> str | None:
        return self.body.get("query") if isinstance(self.body, dict) else None

    @property
    def timespan(self) -> str | None:
        return self.body.get("timespan") if isinstance(self.body, dict) else None

    @property
    def workspaces(self) -> Any:
        return self.body.get("workspaces") if isinstance(self.body, dict) else None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


Evaluator = Callable[[str, Timespan], "Result | tuple[Sequence, Sequence]"]


# --- the server -----------------------------------------------------------------------------------

class FakeLogAnalytics:
    def __init__(self, *, workspace_ids: Iterable[str] | None = None, evaluator: Evaluator | None = None,
                 row_limit: int | None = ROW_LIMIT, byte_limit: int | None = BYTE_LIMIT,
                 dynamic_as_text: bool = True, host: str = "127.0.0.1", port: int = 0) -> None:
        self.workspace_ids = set(workspace_ids) if workspace_ids is not None else None
        self.row_limit = row_limit
        self.byte_limit = byte_limit
        self.dynamic_as_text = dynamic_as_text
        self.query_timeout_rows: int | None = None  # see the module docstring (server timeout)
        self.tables: dict[str, LogTable] = {}
        # TenantId holds the workspace id in Log Analytics rows
        self.tenant_id = min(self.workspace_ids) if self.workspace_ids else ""
        for name, columns in ((TRAFFIC_TABLE, TRAFFIC_COLUMNS), (CONSOLE_TABLE, CONSOLE_COLUMNS)):
            self.create_table(name, columns)
        self.subset_evaluator = SubsetEvaluator(self.tables)
        self.evaluator: Evaluator = evaluator or self.subset_evaluator
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []  # evaluator crashes (answered 500)
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> FakeLogAnalytics:
        if self._server is not None:
            return self
        fake = self

        class Handler(_Handler):
            owner = fake

        server = ThreadingHTTPServer((self._host, self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-log-analytics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeLogAnalytics:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("fake Log Analytics is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The `endpoint=` for LogsQueryClient (the SDK appends /v1)."""
        return f"http://{self._host}:{self.port}"

    # data
    def create_table(self, name: str, columns: Sequence[tuple[str, str]]) -> LogTable:
        """Register a table (replacing one of the same name): [(column, Log Analytics type), ...]."""
        table = LogTable(name, columns, tenant_id=self.tenant_id, dynamic_as_text=self.dynamic_as_text)
        self.tables[name] = table
        return table

    def table(self, name: str) -> LogTable:
        return self.tables[name]

    def add_rows(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append rows (dicts keyed by column; missing columns default as the service shows them).
        Unknown column names raise KeyError."""
        return self.tables[table].add(rows)

    def clear_rows(self, table: str | None = None) -> None:
        for name in [table] if table else list(self.tables):
            self.tables[name].clear()

    # faults
    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def fail_next(self, status: int, *, times: int | None = 1, retry_after: float | None = None,
                  body: Any = None, headers: dict[str, str] | None = None) -> None:
        """The next `times` requests answer `status` (with Retry-After when given)."""
        self.inject(Fault(status=status, times=times, retry_after=retry_after, body=body, headers=dict(headers or {})))

    def partial_next(self, *, times: int | None = 1, error: dict[str, Any] | None = None,
                     keep_rows: int | None = None) -> None:
        """The next `times` queries answer 200 with (at most `keep_rows` of) their rows and a
        PartialError (`error` replaces the default E_QUERY_RESULT_SET_TOO_LARGE one)."""
        self.inject(Fault(partial=True, partial_error=error, keep_rows=keep_rows, times=times))

    def delay_next(self, seconds: float, *, times: int | None = 1) -> None:
        self.inject(Fault(delay=seconds, times=times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
        self.query_timeout_rows = None

    def times_out(self, query: str, timespan: Timespan, wait: int) -> bool:
        """Whether the service would give up on `query` within `wait` seconds (module docstring)."""
        if self.query_timeout_rows is None:
            return False
        table = self.tables.get(re.split(r"[\s|]", query.strip(), maxsplit=1)[0])
        if table is None:
            return False
        rows, times = table.prepare()
        lo, hi = _time_slice(times, timespan.bounds(), len(rows))
        return hi - lo > self.query_timeout_rows * wait / DEFAULT_WAIT

    def _take_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.pop(0)
            return fault

    # recorded requests
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def queries(self) -> list[str]:
        return [r.query for r in self.requests if r.query is not None]

    @property
    def last(self) -> RecordedRequest | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()


_PATH = re.compile(r"^/v1/workspaces/([^/?#]+)/query/?$")


class _Handler(BaseHTTPRequestHandler):
    owner: FakeLogAnalytics
    protocol_version = "HTTP/1.1"
    server_version = "FakeLogAnalytics/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming (the SDK only POSTs queries)
        record = RecordedRequest(method="GET", path=self.path, headers=dict(self.headers.items()),
                                 raw_body=self._read_body())
        self.owner._record(record)
        self._send_error(404, "PathNotFoundError", "The requested path does not exist", record)

    def do_POST(self) -> None:  # noqa: N802
        fake = self.owner
        raw = self._read_body()
        path = self.path.split("?", 1)[0]
        record = RecordedRequest(method="POST", path=self.path, headers=dict(self.headers.items()), raw_body=raw)
        fake._record(record)
        match = _PATH.match(path)
        if not match:
            return self._send_error(404, "PathNotFoundError", "The requested path does not exist", record)
        record.workspace_id = match.group(1)
        try:
            record.body = json.loads(raw) if raw else None
        except ValueError:
            record.body = None
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer "):].strip():
            return self._send_error(401, "AuthorizationRequiredError", "Valid authentication was not provided", record)
        if fake.workspace_ids is not None and record.workspace_id not in fake.workspace_ids:
            return self._send_error(404, "WorkspaceNotFoundError",
                                    f"The workspace {record.workspace_id} could not be found", record)

        fault = fake._take_fault()
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            return self._send_fault(fault, record)

        body = record.body
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
            return self._send_error(400, "BadArgumentError",
                                    "The request had some invalid properties: 'query' is required", record)
        try:
            timespan = Timespan.parse(body.get("timespan"))
        except (ValueError, TypeError) as exc:
            return self._send_error(400, "BadArgumentError", f"Invalid timespan {body.get('timespan')!r}: {exc}",
                                    record)

        wait = _prefer_wait(self.headers.get("Prefer"))
        if fake.times_out(body["query"], timespan, wait or DEFAULT_WAIT):
            return self._send_json(504, gateway_timeout_body(), record,
                                   {"Preference-Applied": f"wait={wait}"} if wait else None)

        started = time.perf_counter()
        try:
            result = _as_result(fake.evaluator(body["query"], timespan))
        except QueryError as exc:
            return self._send_json(exc.status, exc.body(), record)
        except Exception as exc:  # noqa: BLE001 - a crashing evaluator is a test bug: answer 500, keep it
            fake.errors.append(exc)
            return self._send_error(500, "InternalServerError", f"fake evaluator failed: {exc!r}", record)

        error = result.error
        if fault is not None and fault.partial:
            error = fault.partial_error or limit_error("record count limit (injected)")
            if fault.keep_rows is not None:
                result = _truncate(result, fault.keep_rows)
        statistics = None
        if "include-statistics=true" in (self.headers.get("Prefer") or ""):
            statistics = {"query": {"executionTime": time.perf_counter() - started, "resourceUsage": {}}}
        self._send_result(result, error, statistics, record)

    # plumbing
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_fault(self, fault: Fault, record: RecordedRequest) -> None:
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = _number(fault.retry_after)
        body = fault.body
        if body is None and fault.status == 504:
            body = gateway_timeout_body()
        elif body is None:
            code, message = DEFAULT_STATUS_BODIES.get(fault.status or 500, ("Error", "Injected failure"))
            body = error_body(code, message)
        self._send_json(fault.status or 500, body, record, headers)

    def _send_error(self, status: int, code: str, message: str, record: RecordedRequest | None = None) -> None:
        self._send_json(status, error_body(code, message), record)

    def _send_json(self, status: int, body: Any, record: RecordedRequest | None,
                   headers: Mapping[str, str] | None = None) -> None:
        if isinstance(body, bytes):
            payload = body
        else:
            payload = (body if isinstance(body, str) else _encode(body)).encode()
        if record is not None:
            record.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_result(self, result: Result, error: dict[str, Any] | None, statistics: dict | None,
                     record: RecordedRequest) -> None:
        fake = self.owner
        record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.end_headers()
        columns = [{"name": name, "type": kind} for name, kind in result.columns]
        head = '{"tables":[{"name":' + _encode(result.table_name) + ',"columns":' + _encode(columns) + ',"rows":['
        self._chunk(head.encode())
        try:
            limited_error = _stream_rows(result, fake.row_limit, fake.byte_limit, self._chunk)
        except Exception as exc:  # noqa: BLE001 - e.g. a value JSON cannot encode, after the 200 went out
            fake.errors.append(exc)
            self.close_connection = True  # the client sees a truncated body, as after a dropped connection
            return
        tail = "]}]"
        error = error or limited_error
        if error is not None:
            tail += ',"error":' + _encode(error)
        if statistics is not None:
            tail += ',"statistics":' + _encode(statistics)
        tail += "}"
        self._chunk(tail.encode())
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def _stream_rows(result: Result, row_limit: int | None, byte_limit: int | None,
                 write: Callable[[bytes], None]) -> dict[str, Any] | None:
    """Write the rows (comma-separated JSON arrays) in batches; cut at the limits like the
    service and return the partial error then (None when everything was written)."""
    total = len(result)
    count = total if row_limit is None else min(total, row_limit)
    sent_bytes = 0
    first = True
    for lo in range(0, count, _BATCH):
        hi = min(count, lo + _BATCH)
        if result.encoded_rows is not None:
            texts: Sequence[str] | None = result.encoded_rows[lo:hi]
            chunk = ",".join(texts)
        else:
            texts = None
            chunk = _encode(list(result.rows[lo:hi]))[1:-1] if hi > lo else ""
        data = chunk.encode()
        if byte_limit is not None and sent_bytes + len(data) > byte_limit:
            # find the last row that still fits (per row only in this one batch)
            if texts is None:
                texts = [_encode(list(r)) for r in result.rows[lo:hi]]
            kept: list[str] = []
            for text in texts:
                size = len(text.encode()) + (0 if first and not kept else 1)
                if sent_bytes + size > byte_limit:
                    break
                kept.append(text)
                sent_bytes += size
            if kept:
                write((("" if first else ",") + ",".join(kept)).encode())
            return limit_error(f"data size limit {byte_limit} bytes")
        if data:
            write(data if first else b"," + data)
            sent_bytes += len(data) + (0 if first else 1)
            first = False
    if count < total:
        return limit_error(f"record count limit {row_limit} records")
    return None


def _prefer_wait(prefer: str | None) -> int | None:
    """The server timeout a `Prefer` header asks for (wait=N, capped at the service's 600 s), or None."""
    match = re.search(r"(?:^|[,;\s])wait=(\d+)", prefer or "")
    return min(int(match.group(1)), MAX_WAIT) if match else None


def _truncate(result: Result, keep: int) -> Result:
    if result.encoded_rows is not None:
        return Result(result.columns, encoded_rows=result.encoded_rows[:keep], error=result.error,
                      table_name=result.table_name)
    return Result(result.columns, rows=result.rows[:keep], error=result.error, table_name=result.table_name)


def _as_result(value: Any) -> Result:
    if isinstance(value, Result):
        result = value
    elif isinstance(value, tuple) and len(value) == 2:
        result = Result(columns=_columns(value[0]), rows=value[1])
    else:
        raise TypeError(f"an evaluator returns Result or (columns, rows), not {type(value).__name__}")
    result.columns = _columns(result.columns)
    return result


def _columns(columns: Any) -> list[tuple[str, str]]:
    out = []
    for column in columns:
        name, kind = (column["name"], column["type"]) if isinstance(column, Mapping) else column
        if kind not in COLUMN_TYPES:
            raise ValueError(f"column {name!r}: unknown Log Analytics type {kind!r}")
        out.append((name, kind))
    return out

