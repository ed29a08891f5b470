"""A fake Azure Monitor Log Analytics query service: a real HTTP server on 127.0.0.1.

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

Point the client at it with `LogsQueryClient(cred, endpoint=fake.url)` and pass
`enforce_https=False` per call (the bearer policy refuses plain http otherwise).

It does NOT implement KQL. It holds in-memory tables (`TRAFFIC_TABLE`, `CONSOLE_TABLE`, or any
table registered with `create_table`) and hands each query to `fake.evaluator(query, timespan)`,
which returns the result (`Result`, or a `(columns, rows)` tuple). Tests may plug in their own.
The default, `SubsetEvaluator`, understands a small, explicit subset — enough for the adapters'
own queries — and answers 400 (SemanticError, naming the construct) for anything else, so an
adapter whose query drifts outside the subset fails loudly instead of being misread:

    <Table>
    | where <pred> [and <pred> ...]          pred: Col OP literal | fn(Col) OP literal | isempty(Col) …
                                              OP: == != =~ !~ < <= > >= contains !contains has
                                                  startswith in !in ; fn: toint tolong todouble
                                                  toreal tostring ; literals: "…", '…', @"…",
                                                  numbers, true/false, datetime(…)
    | summarize [Name =] agg(...), ... [by Col, ...]   agg: count() countif(pred) sum avg min max
                                                            percentile(Col, p) dcount(Col)
    | project Col, Alias = Col, ...   | order by Col [asc|desc], ...   | take N / limit N   | count

Known departures from the service (on purpose, documented here rather than hidden):
- the request `timespan` is applied to TimeGenerated with both ends INCLUSIVE: the service's
  exact boundary handling is not documented, so an adapter that needs a half-open window must
  say so in its KQL (and a test can catch one that does not);
- `percentile` is exact nearest-rank; Kusto estimates it (T-Digest, rank error ≤ ~1 %);
- `has` is a case-insensitive substring test, not Kusto's term index match;
- `or`, parentheses, `extend`, joins, `let`, functions other than those above: unsupported (400).

Result limits, like the service (500,000 rows / 64 MB by default, `row_limit` / `byte_limit`,
None to lift): a larger result is truncated and answered 200 with a PartialError whose inner
error is E_QUERY_RESULT_SET_TOO_LARGE — the shape the service returns when a query hits limits.
The byte limit is applied to the JSON of the rows (the service counts its internal encoding).

Value encoding follows the service: datetimes as ISO 8601 UTC with 7 fractional digits and "Z";
missing strings as "" (Kusto strings are never null); missing numbers/datetimes as null; NaN and
±infinity reals as the strings "NaN", "Infinity", "-Infinity" (see `_make_encoder`); dynamic
values as JSON text, which is how we understand the v1 API to return dynamic cells (not verified
against a live workspace; `dynamic_as_text=False` sends native JSON instead). The error bodies of
injected HTTP failures are OneAPI-shaped with plausible codes (ThrottledError,
ServiceUnavailableError, ...), not codes verified against the service; the SDK only reads the
shape (code, message, innererror chain).

Speed (the inference-log export reads ~1,000,000 rows through it): table rows are kept sorted by
TimeGenerated, so time predicates on TimeGenerated (and the timespan) cut a contiguous slice by
bisection; each stored row is JSON-encoded once (lazily, on the first query that needs it; rows
appended in time order keep the earlier encodings) and whole-row results are written by joining
those pre-encoded rows; other results are encoded in batches by
the C encoder. The body is streamed with chunked transfer encoding, so a large result is never
held in memory twice.

Test controls:
    fake = FakeLogAnalytics(workspace_ids={"ws"})     # None → any workspace id; others answer 404
    with fake: ...                                    # or fake.start() / fake.stop(); fake.url
    fake.add_rows(TRAFFIC_TABLE, [{"TimeGenerated": dt, "EndpointName": "credit", ...}, ...])
    fake.create_table("MyTable_CL", [("TimeGenerated", "datetime"), ("Props", "dynamic")])
    fake.clear_rows()                                 # all tables (or one by name)
    fake.evaluator = my_fn                            # (query, Timespan) -> Result | (columns, rows)
    fake.evaluator = fake.subset_evaluator            # back to the built-in one
    fake.table(TRAFFIC_TABLE).records(timespan)       # rows as dicts, for a custom evaluator
    fake.row_limit, fake.byte_limit = 1000, None      # service limits (None lifts them)
    fake.fail_next(503, times=3, retry_after=0)       # HTTP failures (LA error body by default;
    fake.fail_next(400, body={"error": {...}})        #   times=None: until clear_faults())
    fake.partial_next(keep_rows=10)                   # 200 + rows + PartialError
    fake.delay_next(2.0)                              # answer late (client read timeouts)
    fake.requests / fake.queries / fake.last          # RecordedRequest: .query .timespan .workspace_id
                                                      #   .headers .header(name) .body .status
    fake.errors                                       # evaluator crashes (answered 500): assert empty
    fake.table(CONSOLE_TABLE).encoded()               # pre-encode rows now (else on first query)
"""

from __future__ import annotations

import bisect
import json
import math
import operator
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from json.encoder import c_make_encoder, encode_basestring
from typing import Any

TRAFFIC_TABLE = "AmlOnlineEndpointTrafficLog"
CONSOLE_TABLE = "AmlOnlineEndpointConsoleLog"

# Column names and types from the Azure Monitor Logs table reference:
# https://learn.microsoft.com/azure/azure-monitor/reference/tables/amlonlineendpointtrafficlog
TRAFFIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("TenantId", "string"),
    ("TimeGenerated", "datetime"),
    ("AuthType", "string"),
    ("AzureMLWorkspaceId", "string"),
    ("AzureMLWorkspaceName", "string"),
    ("DeploymentName", "string"),
    ("EndpointName", "string"),
    ("IdentityData", "string"),
    ("Location", "string"),
    ("Method", "string"),
    ("ModelStatusCode", "int"),
    ("ModelStatusReason", "string"),
    ("OperationName", "string"),
    ("Path", "string"),
    ("Protocol", "string"),
    ("RequestDurationMs", "int"),
    ("RequestPayloadSize", "int"),
    ("RequestThrottlingDelayMs", "int"),
    ("ResponseCode", "int"),
    ("ResponseCodeReason", "string"),
    ("ResponseDurationMs", "int"),
    ("ResponsePayloadSize", "int"),
    ("ResponseThrottlingDelayMs", "int"),
    ("SourceSystem", "string"),
    ("TotalDurationMs", "int"),
    ("UserAgent", "string"),
    ("XMSClientRequestId", "string"),
    ("XRequestId", "string"),
    ("_BilledSize", "real"),
    ("_IsBillable", "string"),
    ("_ResourceId", "string"),
    ("_SubscriptionId", "string"),
    ("Type", "string"),
)

# https://learn.microsoft.com/azure/azure-monitor/reference/tables/amlonlineendpointconsolelog
CONSOLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("TenantId", "string"),
    ("TimeGenerated", "datetime"),
    ("ContainerImageName", "string"),
    ("ContainerName", "string"),
    ("DeploymentName", "string"),
    ("InstanceId", "string"),
    ("Message", "string"),
    ("OperationName", "string"),
    ("SourceSystem", "string"),
    ("_BilledSize", "real"),
    ("_IsBillable", "string"),
    ("_ResourceId", "string"),
    ("_SubscriptionId", "string"),
    ("Type", "string"),
)

COLUMN_TYPES = frozenset({"bool", "datetime", "dynamic", "guid", "int", "long", "real", "string", "timespan",
                          "decimal"})
ROW_LIMIT = 500_000
BYTE_LIMIT = 64 * 1024 * 1024
_BATCH = 20_000  # rows per encoded chunk


# --- values -----------------------------------------------------------------------------------

def kusto_time(value: datetime | str) -> str:
    """Canonical datetime text: UTC, 7 fractional digits, "Z" (fixed width, so it sorts in time
    order as a string — the tables compare and bisect these strings directly)."""
    if isinstance(value, str):
        value = parse_time(value)
    if value.tzinfo is timezone.utc:
        value = value.replace(tzinfo=None)
    elif value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "0Z"


def parse_time(text: str) -> datetime:
    """ISO 8601 (any fraction length, "Z" or offset, or none = UTC) → aware UTC datetime."""
    text = text.strip()
    match = re.fullmatch(r"(.*?\.\d{6})\d+(Z|[+-]\d\d:?\d\d)?", text)
    if match:  # more than microseconds: fromisoformat wants at most 6 digits on some versions
        text = match.group(1) + (match.group(2) or "")
    value = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text and " " in text else text)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def parse_duration(text: str) -> timedelta:
    """ISO 8601 duration as the SDK sends it ("PT3600.0S") and the usual P…DT…H…M…S forms."""
    match = re.fullmatch(r"P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?",
                         text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True)
class Timespan:
    """The request's `timespan`, resolved: `start`/`end` are aware UTC datetimes or None."""

    raw: str | None
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def parse(cls, raw: str | None, now: datetime | None = None) -> Timespan:
        if raw is None or raw == "":
            return cls(raw=None)
        now = now or datetime.now(timezone.utc)
        if "/" in raw:
            left, right = raw.split("/", 1)
            if left.startswith("P"):
                end = parse_time(right)
                return cls(raw, end - parse_duration(left), end)
            start = parse_time(left)
            end = start + parse_duration(right) if right.startswith("P") else parse_time(right)
            return cls(raw, start, end)
        return cls(raw, now - parse_duration(raw), now)

    def bounds(self) -> tuple[str | None, str | None]:
        return (kusto_time(self.start) if self.start else None, kusto_time(self.end) if self.end else None)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return kusto_time(value)
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a Log Analytics result")


def _make_encoder() -> Callable[[Any], str]:
    """The C JSON encoder with compact separators, called directly: ~2x faster per row than
    json.dumps(..., separators=...) which rebuilds an encoder each call.

    Non-finite reals are written as the service writes them: the JSON strings "NaN", "Infinity"
    and "-Infinity" (JSON has no such numbers; Python's NaN/Infinity tokens are not JSON at all).
    Checked against Microsoft's own client, azure-kusto-data (azure/kusto/data/helpers.py,
    parse_float used by dataframe_from_result_table), which maps exactly these three strings
    back to floats in real columns; Kusto's real type has NaN and ±inf values (real(nan),
    real(+inf), real(-inf) in the Kusto docs). The encoder refuses them (allow_nan=False) and the
    value is encoded again with them as text: the usual row pays nothing."""
    if c_make_encoder is None:  # pragma: no cover - CPython always has the C accelerator
        strict = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default,
                                  allow_nan=False).encode
    else:
        c_encode = c_make_encoder(None, _json_default, encode_basestring, None, ":", ",", False, False, False)

        def strict(value: Any) -> str:
            return "".join(c_encode(value, 0))

    def encode(value: Any) -> str:
        try:
            return strict(value)
        except ValueError:  # "Out of range float values are not JSON compliant"
            return strict(_non_finite_as_text(value))

    return encode


def _non_finite_as_text(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (list, tuple)):
        return [_non_finite_as_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _non_finite_as_text(v) for k, v in value.items()}
    return value


_encode = _make_encoder()


# --- tables -------------------------------------------------------------------------------------

class LogTable:
    """One table: a schema and rows (lists in schema order), kept sorted by TimeGenerated.

    Stored values are already what goes on the wire: datetimes as canonical text, dynamic as
    JSON text, missing strings as "". Each row's JSON is computed once after the last change.
    """

    def __init__(self, name: str, columns: Sequence[tuple[str, str]], *, tenant_id: str = "",
                 dynamic_as_text: bool = True) -> None:
        for column, kind in columns:
            if kind not in COLUMN_TYPES:
                raise ValueError(f"{name}.{column}: unknown column type {kind!r}")
        self.name = name
        self.columns = [(c, t) for c, t in columns]
        self.index = {c: i for i, (c, _) in enumerate(self.columns)}
        self.time_index = self.index.get("TimeGenerated")
        self.tenant_id = tenant_id
        self.dynamic_as_text = dynamic_as_text
        self.rows: list[list[Any]] = []
        self._times: list[str] = []  # TimeGenerated of rows[:_prepared], sorted
        self._encoded: list[str] = []  # JSON of rows[:len(_encoded)]
        self._prepared = 0
        self.lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append rows given as dicts. Missing (or None) values take the service's defaults:
        "" for strings, the table name for Type, the tenant for TenantId, null otherwise.
        Datetimes (datetime or ISO text) and dynamic values are converted; other values are
        taken as given (ints for int/long columns, floats for real ...), to keep bulk loads fast."""
        names = [c for c, _ in self.columns]
        known = frozenset(names)
        defaults = [self._default(c, t) for c, t in self.columns]
        converters = [(i, self._converter(t)) for i, (_, t) in enumerate(self.columns) if t in ("datetime", "dynamic")]
        pairs = list(zip(names, defaults))
        added: list[list[Any]] = []
        for record in rows:
            if not known.issuperset(record):
                raise KeyError(f"{self.name} has no column(s) {sorted(set(record) - known)}")
            row = [d if (v := record.get(n)) is None else v for n, d in pairs]
            for i, convert in converters:
                if row[i] is not None:
                    row[i] = convert(row[i])
            added.append(row)
        if self.time_index is not None and any(row[self.time_index] is None for row in added):
            raise ValueError(f"{self.name}: every row needs a TimeGenerated")
        with self.lock:
            self.rows.extend(added)
        return len(added)

    def clear(self) -> None:
        with self.lock:
            self.rows, self._times, self._encoded, self._prepared = [], [], [], 0

    def _default(self, column: str, kind: str) -> Any:
        if column == "Type":
            return self.name
        if column == "TenantId":
            return self.tenant_id
        return "" if kind == "string" else None

    def _converter(self, kind: str) -> Callable[[Any], Any]:
        if kind == "datetime":
            return kusto_time
        if self.dynamic_as_text:
            return lambda v: v if isinstance(v, str) else _encode(v)
        return lambda v: json.loads(v) if isinstance(v, str) else v

    def prepare(self) -> tuple[list[list[Any]], list[str]]:
        """(rows sorted by TimeGenerated, their TimeGenerated values). Rows appended in time order
        (the usual case: logs arrive in order) are merged without re-sorting or re-encoding what
        was there; an out-of-order append re-sorts the table and drops the encoded rows."""
        with self.lock:
            if self._prepared < len(self.rows) and self.time_index is not None:
                key = operator.itemgetter(self.time_index)
                new_times = list(map(key, self.rows[self._prepared:]))
                if (not self._times or new_times[0] >= self._times[-1]) and new_times == sorted(new_times):
                    self._times.extend(new_times)
                else:
                    self.rows = sorted(self.rows, key=key)  # a new list: in-flight queries keep theirs
                    self._times = list(map(key, self.rows))
                    self._encoded = []
            self._prepared = len(self.rows)
            return self.rows, self._times

    def encoded(self) -> list[str]:
        """Each row's JSON text (same order as `prepare()`), each computed once."""
        with self.lock:
            self.prepare()
            if len(self._encoded) < len(self.rows):
                self._encoded.extend(map(_encode, self.rows[len(self._encoded):]))
            return self._encoded

    def records(self, timespan: Timespan | None = None) -> list[dict[str, Any]]:
        """Rows as dicts (wire values), optionally within a timespan (inclusive): for evaluators."""
        rows, times = self.prepare()
        lo, hi = _time_slice(times, timespan.bounds() if timespan else (None, None), len(rows))
        names = [c for c, _ in self.columns]
        return [dict(zip(names, row)) for row in rows[lo:hi]]


def _time_slice(times: list[str], bounds: tuple[str | None, str | None], n: int) -> tuple[int, int]:
    start, end = bounds
    lo = bisect.bisect_left(times, start) if start is not None else 0
    hi = bisect.bisect_right(times, end) if end is not None else n
    return lo, max(lo, hi)


# --- results and errors ---------------------------------------------------------------------------

@dataclass
class Result:
    """What an evaluator returns. `rows` are lists in column order (JSON-able; datetimes allowed),
    or `encoded_rows` are the rows' JSON texts (used as they are). `error` (a OneAPI error object)
    turns the answer into a partial result."""

    columns: list[tuple[str, str]]
    rows: Sequence[Sequence[Any]] = ()
    encoded_rows: Sequence[str] | None = None
    error: dict[str, Any] | None = None
    table_name: str = "PrimaryResult"

    def __len__(self) -> int:
        return len(self.encoded_rows) if self.encoded_rows is not None else len(self.rows)


class QueryError(Exception):
    """Raised by an evaluator: answered as a Log Analytics error (400 by default)."""

    def __init__(self, message: str, *, code: str = "SemanticError", status: int = 400,
                 inner_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.inner_code = inner_code

    def body(self) -> dict[str, Any]:
        inner: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner_code:
            inner["innererror"] = {"code": self.inner_code, "message": self.message}
        return error_body("BadArgumentError", "The request had some invalid properties", innererror=inner)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """A OneAPI error body as Log Analytics sends it (with a correlation id)."""
    return {"error": {"message": message, "code": code, "correlationId": str(uuid.uuid4()), **extra}}


def limit_error(reason: str) -> dict[str, Any]:
    """The partial error of a result cut at the service's limits (E_QUERY_RESULT_SET_TOO_LARGE,
    0x80DA0003 = -2133196797 as a signed 32-bit code)."""
    return {
        "message": "There were some errors when processing your query.",
        "code": "PartialError",
        "correlationId": str(uuid.uuid4()),
        "details": [{
            "code": "EngineError",
            "message": "Something went wrong processing your query on the server.",
            "innererror": {
                "code": "-2133196797",
                "message": f"Query result set has exceeded the internal {reason} (E_QUERY_RESULT_SET_TOO_LARGE).",
                "severity": 2,
                "severityName": "Error",
            },
        }],
    }


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
    504: ("GatewayTimeout", "The query timed out at the gateway"),
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
        if body is None:
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


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --- the KQL subset ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>//[^\n]*)
  | (?P<op>==|!=|=~|!~|<=|>=|\.\.|[|(),=<>\[\]])
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*|!(?:contains|has|in|startswith)\b)
""", re.VERBOSE)

_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}


@dataclass(frozen=True)
class Tok:
    kind: str  # ident | op | number | string | datetime
    value: Any
    pos: int


def tokenize(query: str) -> list[Tok]:
    """KQL tokens for the subset: string literals are decoded (so escaped quotes and
    backslashes round-trip), datetime(...) is one token, // comments are dropped."""
    tokens: list[Tok] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        prefix_verbatim = ch == "@" and i + 1 < n and query[i + 1] in "\"'"
        prefix_hidden = ch in "hH" and i + 1 < n and query[i + 1] in "\"'"  # h"…": obfuscated literal
        if ch in "\"'" or prefix_verbatim or prefix_hidden:
            start = i
            if prefix_verbatim or prefix_hidden:
                i += 1
            quote = query[i]
            i += 1
            out: list[str] = []
            while True:
                if i >= n:
                    raise QueryError(f"Unterminated string literal at position {start}", code="SyntaxError")
                c = query[i]
                if c == quote:
                    if prefix_verbatim and i + 1 < n and query[i + 1] == quote:
                        out.append(quote)
                        i += 2
                        continue
                    i += 1
                    break
                if c == "\\" and not prefix_verbatim:
                    if i + 1 >= n or query[i + 1] not in _ESCAPES:
                        raise QueryError(f"Unknown escape in string literal at position {i}", code="SyntaxError")
                    out.append(_ESCAPES[query[i + 1]])
                    i += 2
                    continue
                if c == "\n" and not prefix_verbatim:
                    raise QueryError(f"Newline inside string literal at position {i}", code="SyntaxError")
                out.append(c)
                i += 1
            tokens.append(Tok("string", "".join(out), start))
            continue
        match = _TOKEN.match(query, i)
        if not match:
            raise QueryError(f"Query could not be parsed at {query[i:i + 20]!r} (position {i})", code="SyntaxError")
        kind = match.lastgroup
        text = match.group()
        if kind == "ident" and text in ("datetime", "todatetime") and query[match.end():].lstrip().startswith("("):
            open_at = query.index("(", match.end())
            close_at = query.find(")", open_at)
            if close_at < 0:
                raise QueryError("Unterminated datetime(...) literal", code="SyntaxError")
            inner = query[open_at + 1:close_at].strip()
            if inner.startswith(("'", '"')):
                inner = inner[1:-1]
            try:
                tokens.append(Tok("datetime", kusto_time(parse_time(inner)), match.start()))
            except ValueError as exc:
                raise QueryError(f"Invalid datetime literal {inner!r}: {exc}", code="SyntaxError") from None
            i = close_at + 1
            continue
        if kind == "number":
            tokens.append(Tok("number", float(text) if any(c in text for c in ".eE") else int(text), match.start()))
        elif kind in ("op", "ident"):
            tokens.append(Tok(kind, text, match.start()))
        i = match.end()
    return tokens


class _Stream:
    def __init__(self, tokens: list[Tok]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self, offset: int = 0) -> Tok | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def next(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise QueryError("Unexpected end of query", code="SyntaxError")
        self.i += 1
        return tok

    def accept(self, kind: str, value: Any = None) -> Tok | None:
        tok = self.peek()
        if tok is not None and tok.kind == kind and (value is None or str(tok.value).lower() == value):
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, value: Any = None) -> Tok:
        tok = self.accept(kind, value)
        if tok is None:
            got = self.peek()
            raise QueryError(f"Expected {value or kind}, got {got.value if got else 'end of query'!r}",
                             code="SyntaxError")
        return tok

    def done(self) -> bool:
        return self.i >= len(self.tokens)


_CASTS = {"toint": "int", "tolong": "long", "todouble": "real", "toreal": "real", "tostring": "string"}
_COMPARE = {"==", "!=", "=~", "!~", "<", "<=", ">", ">=", "contains", "!contains", "has", "!has",
            "startswith", "!startswith", "in", "!in"}


@dataclass
class _Expr:
    """A column reference, optionally cast: evaluates against a row list."""

    column: str
    index: int
    kind: str
    cast: str | None = None

    def value(self, row: Sequence[Any]) -> Any:
        v = row[self.index]
        if self.cast is None or v is None:
            return v
        try:
            if self.cast in ("int", "long"):
                return int(float(v)) if isinstance(v, str) else int(v)
            if self.cast == "real":
                return float(v)
            return v if isinstance(v, str) else _encode(v) if isinstance(v, (dict, list)) else str(v)
        except (TypeError, ValueError):
            return None

    @property
    def out_kind(self) -> str:
        return self.cast or self.kind


class SubsetEvaluator:
    """Evaluates the documented KQL subset over `tables` (see the module docstring)."""

    def __init__(self, tables: Mapping[str, LogTable]) -> None:
        self.tables = tables

    def __call__(self, query: str, timespan: Timespan) -> Result:
        stages = _split_pipes(tokenize(query))
        if not stages or len(stages[0]) != 1 or stages[0][0].kind != "ident":
            raise QueryError("A query must start with a table name", code="SyntaxError")
        name = stages[0][0].value
        table = self.tables.get(name)
        if table is None:
            raise QueryError(f"Failed to resolve table or column expression named '{name}'",
                             inner_code="SEM0100")
        rows, times = table.prepare()
        lo, hi = _time_slice(times, timespan.bounds(), len(rows))
        selection: range | list[int] = range(lo, hi)
        columns = list(table.columns)
        index = dict(table.index)
        data: list[list[Any]] | None = None  # None → still the table's own rows (selection)
        for stage in stages[1:]:
            s = _Stream(stage)
            op = s.next()
            keyword = str(op.value).lower()
            if keyword == "where":
                if data is not None:
                    pred = self._predicate(s, columns, index)
                    data = [r for r in data if pred(r)]
                else:
                    selection = self._where(s, table, rows, times, selection, columns, index)
            elif keyword == "summarize":
                base = data if data is not None else [rows[i] for i in selection]
                columns, data = self._summarize(s, columns, index, base)
                index = {c: i for i, (c, _) in enumerate(columns)}
            elif keyword == "project":
                base = data if data is not None else [rows[i] for i in selection]
                columns, data = self._project(s, columns, index, base)
                index = {c: i for i, (c, _) in enumerate(columns)}
            elif keyword in ("order", "sort"):
                s.expect("ident", "by")
                if data is None:
                    selection = self._order_selection(s, columns, index, rows, selection, table)
                else:
                    data = self._order_rows(s, columns, index, data)
            elif keyword in ("take", "limit"):
                count = s.expect("number").value
                if data is None:
                    selection = selection[:int(count)]
                else:
                    data = data[:int(count)]
            elif keyword == "count":
                total = len(data) if data is not None else len(selection)
                columns, data = [("Count", "long")], [[total]]
                index = {"Count": 0}
            else:
                raise QueryError(f"The fake evaluator does not support the '{op.value}' operator",
                                 code="SemanticError")
            if not s.done():
                raise QueryError(f"Unexpected {s.peek().value!r} in '{op.value}'", code="SyntaxError")
        if data is not None:
            return Result(columns, rows=data)
        encoded = table.encoded()
        if isinstance(selection, range) and selection.step == 1:
            return Result(columns, encoded_rows=encoded[selection.start:selection.stop])
        return Result(columns, encoded_rows=[encoded[i] for i in selection])

    # where
    def _where(self, s: _Stream, table: LogTable, rows: list, times: list[str], selection: range | list[int],
               columns: list, index: dict) -> range | list[int]:
        predicates = self._conjunction(s, columns, index)
        rest: list[Callable[[Sequence[Any]], bool]] = []
        for pred in predicates:
            bound = pred.time_bound if isinstance(selection, range) else None
            if bound is not None and table.time_index is not None:
                op, text = bound
                lo, hi = selection.start, selection.stop
                if op == ">=":
                    lo = max(lo, bisect.bisect_left(times, text, lo, hi))
                elif op == ">":
                    lo = max(lo, bisect.bisect_right(times, text, lo, hi))
                elif op == "<":
                    hi = min(hi, bisect.bisect_left(times, text, lo, hi))
                elif op == "<=":
                    hi = min(hi, bisect.bisect_right(times, text, lo, hi))
                selection = range(lo, max(lo, hi))
            else:
                rest.append(pred)
        if rest:
            selection = [i for i in selection if all(p(rows[i]) for p in rest)]
        return selection

    def _predicate(self, s: _Stream, columns: list, index: dict) -> Callable:
        predicates = self._conjunction(s, columns, index)
        return lambda row: all(p(row) for p in predicates)

    def _conjunction(self, s: _Stream, columns: list, index: dict) -> list[_Pred]:
        predicates = [self._one_predicate(s, columns, index)]
        while s.accept("ident", "and"):
            predicates.append(self._one_predicate(s, columns, index))
        tok = s.peek()
        if tok is not None and tok.kind == "ident" and str(tok.value).lower() == "or":
            raise QueryError("The fake evaluator does not support 'or'", code="SemanticError")
        return predicates

    def _expr(self, s: _Stream, columns: list, index: dict) -> _Expr:
        tok = s.expect("ident")
        cast = None
        name = tok.value
        if name in _CASTS and s.accept("op", "("):
            cast = _CASTS[name]
            name = s.expect("ident").value
            s.expect("op", ")")
        if name not in index:
            raise QueryError(f"Failed to resolve scalar expression named '{name}'", inner_code="SEM0100")
        return _Expr(name, index[name], columns[index[name]][1], cast)

    def _literal(self, s: _Stream) -> Any:
        tok = s.next()
        if tok.kind in ("string", "number", "datetime"):
            return tok.value
        if tok.kind == "ident" and tok.value in ("true", "false"):
            return tok.value == "true"
        raise QueryError(f"Expected a literal, got {tok.value!r}", code="SyntaxError")

    def _one_predicate(self, s: _Stream, columns: list, index: dict) -> _Pred:
        tok = s.peek()
        if tok is not None and tok.kind == "ident" and tok.value in ("isempty", "isnotempty", "isnull", "isnotnull"):
            s.next()
            s.expect("op", "(")
            expr = self._expr(s, columns, index)
            s.expect("op", ")")
            fn = tok.value
            if fn == "isnull":
                return _Pred(lambda r: expr.value(r) is None)
            if fn == "isnotnull":
                return _Pred(lambda r: expr.value(r) is not None)
            if fn == "isempty":
                return _Pred(lambda r: expr.value(r) in (None, ""))
            return _Pred(lambda r: expr.value(r) not in (None, ""))
        expr = self._expr(s, columns, index)
        op_tok = s.next()
        op = str(op_tok.value).lower() if op_tok.kind == "ident" else op_tok.value
        if op not in _COMPARE:
            raise QueryError(f"The fake evaluator does not support the operator {op_tok.value!r}", code="SemanticError")
        if op in ("in", "!in"):
            s.expect("op", "(")
            values = [self._literal(s)]
            while s.accept("op", ","):
                values.append(self._literal(s))
            s.expect("op", ")")
            member = set(values)
            return _Pred((lambda r: expr.value(r) in member) if op == "in" else (lambda r: expr.value(r) not in member))
        literal = self._literal(s)
        kind = expr.out_kind
        if kind == "datetime" and isinstance(literal, str) and not _is_canonical_time(literal):
            raise QueryError(f"Cannot compare datetime column {expr.column} with a string; use datetime(...)")
        if kind in ("int", "long", "real") and not isinstance(literal, (int, float)):
            raise QueryError(f"Cannot compare {kind} column {expr.column} with {type(literal).__name__}")
        if kind == "string" and op in ("<", "<=", ">", ">=") :
            raise QueryError(f"Ordering comparison on string column {expr.column} is not supported")
        pred = _Pred(_comparison(expr, op, literal))
        if expr.column == "TimeGenerated" and expr.cast is None and op in ("<", "<=", ">", ">="):
            pred.time_bound = (op, literal)
        return pred

    # summarize
    def _summarize(self, s: _Stream, columns: list, index: dict, base: list[list[Any]]) -> tuple[list, list]:
        aggregates: list[tuple[str, str, Callable[[list], Any]]] = []
        while True:
            alias = None
            if s.peek(1) is not None and s.peek(1).kind == "op" and s.peek(1).value == "=" and s.peek().kind == "ident":
                alias = s.next().value
                s.next()
            fn_tok = s.expect("ident")
            fn = fn_tok.value
            s.expect("op", "(")
            aggregates.append(self._aggregate(fn, alias, s, columns, index))
            if not s.accept("op", ","):
                break
        by: list[_Expr] = []
        if s.accept("ident", "by"):
            by.append(self._expr(s, columns, index))
            while s.accept("op", ","):
                by.append(self._expr(s, columns, index))
        out_columns = [(e.column, e.out_kind) for e in by] + [(name, kind) for name, kind, _ in aggregates]
        if not by:
            return out_columns, [[agg(base) for _, _, agg in aggregates]]
        groups: dict[tuple, list] = {}
        for row in base:
            groups.setdefault(tuple(e.value(row) for e in by), []).append(row)
        return out_columns, [list(key) + [agg(members) for _, _, agg in aggregates] for key, members in groups.items()]

    def _aggregate(self, fn: str, alias: str | None, s: _Stream, columns: list, index: dict):
        if fn == "count":
            s.expect("op", ")")
            return alias or "count_", "long", len
        if fn == "countif":
            pred = self._predicate(s, columns, index)
            s.expect("op", ")")
            return alias or "countif_", "long", lambda rows: sum(1 for r in rows if pred(r))
        expr = self._expr(s, columns, index)
        if fn == "percentile":
            s.expect("op", ",")
            q = s.expect("number").value
            s.expect("op", ")")
            kind = "real" if expr.out_kind == "real" else "long"
            return (alias or f"percentile_{expr.column}_{_number(q)}", kind,
                    lambda rows: _nearest_rank([expr.value(r) for r in rows], q))
        s.expect("op", ")")
        if fn == "dcount":
            return alias or f"dcount_{expr.column}", "long", lambda rows: len({expr.value(r) for r in rows} - {None})
        if fn in ("sum", "min", "max", "avg"):
            kind = "real" if fn == "avg" else expr.out_kind if fn in ("min", "max") else (
                "real" if expr.out_kind == "real" else "long")

            def agg(rows: list, fn: str = fn) -> Any:
                values = [v for v in (expr.value(r) for r in rows) if v is not None]
                if not values:
                    return 0 if fn == "sum" else None
                return {"sum": sum, "min": min, "max": max}[fn](values) if fn != "avg" else sum(values) / len(values)
            return alias or f"{fn}_{expr.column}", kind, agg
        raise QueryError(f"The fake evaluator does not support the aggregation '{fn}'", code="SemanticError")

    # project / order
    def _project(self, s: _Stream, columns: list, index: dict, base: list[list[Any]]) -> tuple[list, list]:
        exprs: list[tuple[str, _Expr]] = []
        while True:
            alias = None
            if s.peek(1) is not None and s.peek(1).kind == "op" and s.peek(1).value == "=":
                alias = s.expect("ident").value
                s.next()
            expr = self._expr(s, columns, index)
            exprs.append((alias or expr.column, expr))
            if not s.accept("op", ","):
                break
        out_columns = [(name, e.out_kind) for name, e in exprs]
        if all(e.cast is None for _, e in exprs):
            picks = [e.index for _, e in exprs]
            return out_columns, [[row[i] for i in picks] for row in base]
        return out_columns, [[e.value(row) for _, e in exprs] for row in base]

    def _order_keys(self, s: _Stream, columns: list, index: dict) -> list[tuple[_Expr, bool]]:
        keys = []
        while True:
            expr = self._expr(s, columns, index)
            descending = True  # Kusto's default order is descending
            if s.accept("ident", "asc"):
                descending = False
            elif s.accept("ident", "desc"):
                descending = True
            keys.append((expr, descending))
            if not s.accept("op", ","):
                break
        return keys

    def _order_selection(self, s: _Stream, columns: list, index: dict, rows: list, selection: range | list[int],
                         table: LogTable) -> range | list[int]:
        keys = self._order_keys(s, columns, index)
        if len(keys) == 1 and keys[0][0].column == "TimeGenerated" and keys[0][0].cast is None \
                and isinstance(selection, range):
            return selection if not keys[0][1] else list(reversed(selection))
        ordered = list(selection)
        for expr, descending in reversed(keys):  # stable sorts, last key first
            ordered.sort(key=lambda i: _sort_key(expr.value(rows[i])), reverse=descending)
        return ordered

    def _order_rows(self, s: _Stream, columns: list, index: dict, data: list[list[Any]]) -> list[list[Any]]:
        keys = self._order_keys(s, columns, index)
        for expr, descending in reversed(keys):
            data = sorted(data, key=lambda r: _sort_key(expr.value(r)), reverse=descending)
        return data


@dataclass
class _Pred:
    fn: Callable[[Sequence[Any]], bool]
    time_bound: tuple[str, str] | None = None

    def __call__(self, row: Sequence[Any]) -> bool:
        return self.fn(row)


def _comparison(expr: _Expr, op: str, literal: Any) -> Callable[[Sequence[Any]], bool]:
    value = expr.value
    if op == "==":
        return lambda r: value(r) == literal
    if op == "!=":
        return lambda r: (v := value(r)) is not None and v != literal
    if op in ("=~", "!~"):
        folded = str(literal).casefold()
        if op == "=~":
            return lambda r: isinstance(v := value(r), str) and v.casefold() == folded
        return lambda r: isinstance(v := value(r), str) and v.casefold() != folded
    if op in ("contains", "!contains", "has", "!has"):
        folded = str(literal).casefold()
        if op.startswith("!"):
            return lambda r: isinstance(v := value(r), str) and folded not in v.casefold()
        return lambda r: isinstance(v := value(r), str) and folded in v.casefold()
    if op in ("startswith", "!startswith"):
        folded = str(literal).casefold()
        if op == "startswith":
            return lambda r: isinstance(v := value(r), str) and v.casefold().startswith(folded)
        return lambda r: isinstance(v := value(r), str) and not v.casefold().startswith(folded)
    compare = {"<": lambda a: a < literal, "<=": lambda a: a <= literal,
               ">": lambda a: a > literal, ">=": lambda a: a >= literal}[op]
    return lambda r: (v := value(r)) is not None and compare(v)


def _nearest_rank(values: list[Any], q: float) -> Any:
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    rank = max(1, math.ceil(q / 100 * len(present)))
    return present[min(rank, len(present)) - 1]


def _sort_key(value: Any) -> tuple:
    return (value is None, value if value is not None else 0)


def _is_canonical_time(text: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", text))


def _split_pipes(tokens: list[Tok]) -> list[list[Tok]]:
    stages: list[list[Tok]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.kind == "op" and tok.value == "(":
            depth += 1
        elif tok.kind == "op" and tok.value == ")":
            depth -= 1
        if tok.kind == "op" and tok.value == "|" and depth == 0:
            stages.append([])
        else:
            stages[-1].append(tok)
    if any(not stage for stage in stages):
        raise QueryError("Empty pipeline stage", code="SyntaxError")
    return stages


__all__ = [
    "CONSOLE_COLUMNS",
    "CONSOLE_TABLE",
    "FakeLogAnalytics",
    "Fault",
    "LogTable",
    "QueryError",
    "RecordedRequest",
    "Result",
    "SubsetEvaluator",
    "TRAFFIC_COLUMNS",
    "TRAFFIC_TABLE",
    "Timespan",
    "error_body",
    "kusto_time",
    "limit_error",
    "parse_time",
    "tokenize",
]

