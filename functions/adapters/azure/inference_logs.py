"""core.export.InferenceLogSource on Azure Monitor Logs: score.py's InputData lines in the
AmlOnlineEndpointConsoleLog table of the production workspace's Log Analytics workspace.

Table columns used (Azure Monitor Logs table reference,
https://learn.microsoft.com/azure/azure-monitor/reference/tables/amlonlineendpointconsolelog):
  TimeGenerated   datetime  when the line was logged (UTC)
  Message         string    the console line: score.py's JSON record
  DeploymentName  string    the deployment whose container wrote it

The JSON work runs in Log Analytics: the query keeps this model's InputData lines, parses them
(parse_json), expands each request's data list into one row per record (mv-expand
with_itemindex) and projects typed columns: TimeGenerated, request_id, model_version, deployment,
record_index (long), the categoricals (tostring: "" when null, Kusto strings are never null) and
the numerics (todouble: null when missing or not a number).

Reading the answer is the hot path: the SDK's query_workspace builds a Python object per cell and
parses every datetime, and send_request + json.loads still builds one per cell (and without
stream=True the pipeline json-decodes the body once more first). The export's end-to-end
throughput through this module is printed by `make bench-export` (bench/export.py). Requests go
through the client's own pipeline (`send_request`:
bearer token, retries, user agent) with `stream=True`; the rows are cut out of the JSON text and
read by Arrow's CSV reader in C++ (see `_parse_rows_as_csv` for why that is exact); an answer it
cannot read that way is read with the json module. While one answer is parsed, the next one
downloads (`prefetch`).

Limits: Log Analytics cuts a result at 500,000 rows or 64 MB and marks it partial. Each slice is
counted first (one summarize query: records, malformed lines, message bytes) and cut into equal
sub-windows so that every query stays under `max_rows` and an estimated `max_bytes`; a partial
answer anyway (skewed traffic, or a partial failure in the service) is dropped whole and its
window fetched again as two halves, down to `min_window`; past that, PlatformError — nothing is
ever returned short.

Value safety: the model name is checked (functions.shared.names.check_model_name) and enters the KQL only as
an escaped string literal (kql_string); times are formatted from datetimes.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from functions.adapters.azure.traffic_log import kql_datetime, kql_string, logs_client
from functions.ports import Malformed
from functions.shared.export_table import export_schema, normalize
from functions.shared.names import check_model_name
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
        # bracket notation for every JSON property: no name can collide with a KQL keyword
        f"| extend mine = tostring(m['type']) == \"InputData\" and tostring(m['service_name']) startswith_cs {prefix}",
        "| extend d = parse_json(tostring(m['data']))",
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
    fields = [f"{name} = tostring(rec['{name}'])" for name in CATEGORICAL]
    fields += [f"{name} = todouble(rec['{name}'])" for name in NUMERIC]
    return "\n".join(_head(model, start, end) + [
        '| where mine and gettype(d) == "array"',
        "| mv-expand with_itemindex=record_index rec = d",
        '| where gettype(rec) == "dictionary"',
        "| project TimeGenerated, request_id = tostring(m['request_id']),"
        f" model_version = substring(tostring(m['service_name']), {offset}), deployment = DeploymentName,"
        " record_index,",
    ] + [f"    {', '.join(fields[i:i + 4])}{',' if i + 4 < len(fields) else ''}" for i in range(0, len(fields), 4)])


# --- reading answers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    messages: int
    records: int
    malformed: int
    bytes: int


@dataclass
class Answer:
    """A query answer: its columns [(name, Log Analytics type)], its rows as an Arrow table (None
    when the answer is partial: those rows are never used) and the partial error, if any."""

    columns: list[tuple[str, str]]
    table: pa.Table | None
    error: dict[str, Any] | None


class _Unusual(Exception):
    """The fast path cannot read this answer safely; the json module will."""


_ROWS_KEY = b'"rows":['
# After removing escaped backslashes (\\ pairs), a backslash before anything but a quote is an
# escape CSV cannot decode (\n, \uXXXX, \/ ...).
_OTHER_ESCAPE = re.compile(rb'\\[^"]')


def _other_escapes(region: bytes | bytearray) -> bool:
    if b"\\" not in region:  # the usual answer: no escapes at all
        return False
    return _OTHER_ESCAPE.search(region.replace(b"\\\\", b"")) is not None


_ARROW_TYPES = {"real": "float64", "double": "float64", "long": "int64", "int": "int64", "bool": "bool"}


def parse_answer(body: bytes | bytearray) -> Answer:
    """Read a query answer. Fast path: the rows are cut out of the JSON and read by Arrow's
    multi-threaded CSV reader (see `_parse_rows_as_csv`); an answer it cannot read safely (a
    partial answer with its error after the rows, escapes CSV cannot decode, an unexpected
    layout) is read with the json module instead — slower, never different."""
    try:
        return _parse_rows_as_csv(body)
    except _Unusual:
        return _parse_with_json(body)
    except Exception:  # noqa: BLE001 - pyarrow's ArrowInvalid & co: read it the slow way
        return _parse_with_json(body)


def _parse_rows_as_csv(body: bytes | bytearray) -> Answer:
    r"""The answer is {"tables":[{"name":..,"columns":[..],"rows":[["20..",..],["20..",..],..]}]}
    and the first cell of every row is TimeGenerated, a quoted time. Between two rows the text is
    `],["` followed by the time's first digits (`],["20`). Nowhere else can that occur: inside a
    JSON string every quote is escaped (\"), and the one raw quote a string has at its end is
    followed by `,` or `]`, never by a digit. Replacing `],["20` with a newline and `"20` turns
    the rows into CSV lines (quote ", escape \) that Arrow parses in C++ on all cores, typed by
    the answer's column types, with no Python object per cell: JSON strings are quoted fields,
    numbers plain fields, `null` the null value (a quoted "null" stays a string). Escapes other
    than \" and \\ would decode differently, so an answer holding one takes the json path, as
    does one with raw newlines (pretty-printed) or rows that do not start with a time. A split
    that went wrong anyway could not go unnoticed: a line with the wrong number of fields, or
    broken quoting, is an error, and the json path reads the answer again."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    at = body.find(_ROWS_KEY)
    if at < 0:
        raise _Unusual("no rows")
    start = at + len(_ROWS_KEY)
    try:
        head = json.loads(bytes(body[:start]) + b"]}]}")  # close rows, table, tables, answer
    except ValueError as exc:
        raise _Unusual("unexpected layout") from exc
    tables = head.get("tables") if isinstance(head, dict) else None
    if not isinstance(tables, list) or len(tables) != 1:
        raise _Unusual("not one table")
    columns = [(str(c["name"]), str(c.get("type", "string"))) for c in tables[0]["columns"]]
    if head.get("error"):  # partial, with the error before the rows: the rows are not needed
        return Answer(columns, None, head["error"])
    if not body.endswith(b"]}]}"):  # something after the table (an error, statistics)
        raise _Unusual("a tail after the rows")
    end = len(body) - 4  # the rows are body[start:end]: [...],[...],...,[...]
    if end == start:
        return Answer(columns, _empty_table(columns), None)
    if columns[0][0] != "TimeGenerated" or body[start:start + 2] != b'["' or not body[start + 2:start + 4].isdigit() \
            or body[end - 1:end] != b"]" or b"\n" in body or b"\r" in body or _other_escapes(body):
        raise _Unusual("not plain rows")  # (the checks look at the whole body: its head has none of these)
    century = bytes(body[start + 2:start + 4])  # every row's time starts with the same two digits ("20")
    # One copy: the head cannot hold `],["20` either, so the whole body is rewritten and the CSV
    # text is a zero-copy slice of it, between the first row's "[" and the last row's "]".
    text = pa.py_buffer(body.replace(b'],["' + century, b'\n"' + century))
    text = text.slice(start + 1, text.size - 5 - (start + 1))  # after the first "[", before "]]}]}"
    names = [name for name, _ in columns]
    table = pcsv.read_csv(
        pa.BufferReader(text),
        read_options=pcsv.ReadOptions(column_names=names, use_threads=True, block_size=1 << 20),
        # no backslash anywhere (the usual answer): parse without escape handling, which costs less CPU
        parse_options=pcsv.ParseOptions(quote_char='"', escape_char="\\" if b"\\" in body else False,
                                        double_quote=False, newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pcsv.ConvertOptions(column_types={n: _csv_type(t) for n, t in columns},
                                            null_values=["null"], strings_can_be_null=True,
                                            quoted_strings_can_be_null=False),
    )
    return Answer(columns, table, None)


def _csv_type(kind: str) -> pa.DataType:
    import pyarrow as pa

    if kind == "datetime":  # ISO 8601 with 7 fractional digits and "Z": nanoseconds, UTC
        return pa.timestamp("ns", tz="UTC")
    name = _ARROW_TYPES.get(kind)
    return getattr(pa, name)() if name else pa.string()


def _empty_table(columns: list[tuple[str, str]]) -> pa.Table:
    import pyarrow as pa

    return pa.table({name: pa.array([], _csv_type(kind)) for name, kind in columns})


def _parse_with_json(body: bytes | bytearray) -> Answer:
    """The slow, careful reader. It never raises because of a cell's value: what cannot be typed
    as its column's type stays untyped for the exporter to judge per record (core.export
    .conform_batch quarantines exactly those records) — a real column holding text that is no
    number stays text; a string that UTF-8 cannot hold (a lone surrogate, from a "\\ud800"
    escape or from bytes that were not UTF-8) makes its column binary, each such cell encoded
    with "surrogatepass" so the quarantine shows the very string."""
    import pyarrow as pa

    try:
        # surrogateescape: bytes that are not UTF-8 become lone surrogates in their own cells
        # (which the exporter quarantines) instead of failing the whole answer
        answer = json.loads(bytes(body).decode("utf-8", "surrogateescape"))
        tables = answer["tables"]
        if len(tables) != 1:
            raise PlatformError(f"expected one result table, got {len(tables)}")
        columns = [(str(c["name"]), str(c.get("type", "string"))) for c in tables[0]["columns"]]
        rows = tables[0]["rows"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise PlatformError(f"unreadable Log Analytics answer ({type(exc).__name__}: {exc})", transient=True) from exc
    error = answer.get("error")
    if error:
        return Answer(columns, None, error)
    arrays = {}
    for j, (name, kind) in enumerate(columns):
        cells = [row[j] if j < len(row) else None for row in rows]
        arrow_type = _csv_type(kind)
        if pa.types.is_floating(arrow_type):
            numbers = [_real(c) for c in cells]
            if not any(n is _NOT_A_REAL for n in numbers):
                arrays[name] = pa.array(numbers, arrow_type)
                continue
            # a real column holding text that is no number: an answer the service should never
            # give (todouble() makes such values null); kept as text for the exporter to judge
            cells = [c if c is None or isinstance(c, str) else json.dumps(c) for c in cells]
            arrow_type = pa.string()
        elif pa.types.is_integer(arrow_type):
            cells = [c if isinstance(c, int) and not isinstance(c, bool) else None for c in cells]
        elif pa.types.is_boolean(arrow_type):
            cells = [c if isinstance(c, bool) else None for c in cells]
        else:
            cells = [c if c is None or isinstance(c, str) else json.dumps(c) for c in cells]
        if pa.types.is_timestamp(arrow_type):
            try:
                arrays[name] = pa.array(cells, pa.string()).cast(arrow_type)
            except (ValueError, TypeError) as exc:  # a datetime column the service always fills: the answer is broken
                raise PlatformError(f"Log Analytics answer: column {name} holds a value that is not a datetime "
                                    f"({type(exc).__name__}: {str(exc)[:200]})") from exc
        else:
            arrays[name] = _text_array(cells) if pa.types.is_string(arrow_type) else pa.array(cells, arrow_type)
    return Answer(columns, pa.table(arrays) if arrays else None, None)


_NOT_A_REAL = object()
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _real(value: Any) -> Any:
    """A real cell: a JSON number, null, or — as the service writes non-finite reals — the text
    "NaN", "Infinity" or "-Infinity" (azure-kusto-data's dataframe_from_result_table maps exactly
    these back in real columns); text that reads as a number is taken too. Anything else:
    _NOT_A_REAL. (Non-finite values become null in functions.shared.export_table.normalize, for every reader.)"""
    if value is None:
        return None
    if isinstance(value, bool):
        return _NOT_A_REAL
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return _NOT_A_REAL
    if isinstance(value, str):
        if value in _NON_FINITE:
            return _NON_FINITE[value]
        try:
            return float(value)
        except ValueError:
            return _NOT_A_REAL
    return _NOT_A_REAL


def _text_array(cells: list[Any]) -> pa.Array:
    import pyarrow as pa

    try:
        return pa.array(cells, pa.string())
    except UnicodeEncodeError:  # a lone surrogate: binary, which the exporter's cast to string refuses per cell
        return pa.array([c.encode("utf-8", "surrogatepass") if isinstance(c, str) else c for c in cells], pa.binary())


def typed_table(table: pa.Table) -> pa.Table:
    """The fetch query's answer → a table of the export schema. A column whose values do not all
    cast (text that is no number in a real column, a binary column of strings UTF-8 cannot hold)
    is left as it is: the exporter's conform_batch then sets aside exactly the records it cannot
    write, and nothing here raises because of a value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = [c for c in FETCH_COLUMNS if c not in table.column_names]
    if missing:
        raise PlatformError(f"Log Analytics answer lacks column(s) {missing}")
    schema = export_schema()
    arrays = []
    for f in schema:
        column = table.column(f.name)
        if f.name == "TimeGenerated":
            try:
                if not pa.types.is_timestamp(column.type):  # 7 fractional digits: parse as ns, keep µs
                    column = column.cast(pa.timestamp("ns", tz="UTC"))
                arrays.append(column.cast(f.type, safe=False))
            except pa.ArrowException as exc:  # the service always fills it: the answer is broken, not a record
                raise PlatformError(f"Log Analytics answer: TimeGenerated is not a datetime ({exc})") from exc
        elif column.type == f.type:
            arrays.append(column)
        elif pa.types.is_string(column.type) and pa.types.is_floating(f.type):  # numbers sent as text
            blank = pc.equal(column, "")
            column = pc.if_else(blank, pa.scalar(None, pa.string()), column) if pc.any(blank).as_py() else column
            arrays.append(_cast_or_keep(column, f.type))
        else:
            arrays.append(_cast_or_keep(column, f.type))
    if any(a.type != f.type for a, f in zip(arrays, schema)):  # conform_batch casts, narrows and normalizes
        return pa.Table.from_arrays(arrays, names=schema.names)
    return normalize(pa.Table.from_arrays(arrays, schema=schema))


def _cast_or_keep(column: Any, arrow_type: pa.DataType) -> Any:
    import pyarrow as pa

    try:
        return column.cast(arrow_type)
    except pa.ArrowException:
        return column


# --- the source ---------------------------------------------------------------------------------

class LogAnalyticsInferenceLogs:
    """InferenceLogSource on a `LogsQueryClient` (azure-monitor-query 2.x) and a workspace id.

    `enforce_https=False` is passed per call for a local http endpoint (tests, benchmark).
    `max_rows` / `max_bytes` bound each query's answer (Log Analytics' own limits are 500,000
    rows and 64 MB); `min_window` and `max_depth` bound how far a window is halved when answers
    keep coming back partial. `server_timeout` (s) goes to the service as Prefer: wait=N.
    `prefetch`: download a slice's next sub-window while the current one is parsed and written.
    """

    def __init__(self, client: Any, workspace_id: str, *, enforce_https: bool = True,
                 max_rows: int = DEFAULT_MAX_ROWS, max_bytes: int = DEFAULT_MAX_BYTES,
                 min_window: timedelta = timedelta(seconds=1), max_depth: int = 10,
                 server_timeout: int | None = None, prefetch: bool = True) -> None:
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
        self.prefetch = prefetch
        self._count_lock = threading.Lock()
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
        try:
            answer = json.loads(body)
            table = answer["tables"][0]
            names = [c["name"] for c in table["columns"]]
            rows = table["rows"]
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise PlatformError(f"inference log summary of {model}: unreadable answer ({exc})", transient=True) from exc
        if answer.get("error"):
            raise PlatformError(f"inference log summary of {model}: partial result ({_describe(answer['error'])})",
                                transient=True)
        if any(name not in names for name in SUMMARY_COLUMNS):
            raise PlatformError(f"inference log summary of {model}: unexpected columns {names}")
        if not rows:  # no row at all: nothing there
            return Summary(0, 0, 0, 0)
        try:
            numbers = [int(rows[0][names.index(name)] or 0) for name in SUMMARY_COLUMNS]
        except (TypeError, ValueError, IndexError) as exc:
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
        windows = [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]
        fetched = 0
        # While one answer is parsed and written, the next one downloads (one ahead, no more: memory)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference-logs-prefetch") as pool:
            ahead = pool.submit(self._post_window, model, *windows[0])
            try:
                for i, (lo, hi) in enumerate(windows):
                    body = ahead.result()
                    ahead = pool.submit(self._post_window, model, *windows[i + 1]) \
                        if self.prefetch and i + 1 < len(windows) else None
                    for table in self._fetch_window(model, lo, hi, 0, body):
                        fetched += len(table)
                        yield table
                    del body
                    if ahead is None and i + 1 < len(windows):
                        ahead = pool.submit(self._post_window, model, *windows[i + 1])
            finally:
                if ahead is not None and not ahead.cancel():
                    ahead.exception()  # let a download in flight finish before the pool goes
        if fetched < summary.records:  # array elements that are not objects (the query skips them)
            yield Malformed(summary.records - fetched, "records that are not JSON objects")

    def plan(self, summary: Summary) -> int:
        """How many equal sub-windows a slice needs so each answer stays under the limits."""
        estimated_bytes = summary.bytes + summary.records * ROW_OVERHEAD
        return max(1, math.ceil(summary.records / self.max_rows), math.ceil(estimated_bytes / self.max_bytes))

    # internals
    def _post_window(self, model: str, start: datetime, end: datetime) -> bytearray:
        return self._post(fetch_query(model, start, end), start, end, _action(model, start, end))

    def _fetch_window(self, model: str, start: datetime, end: datetime, depth: int,
                      body: bytearray | None = None) -> Iterator[pa.Table]:
        action = _action(model, start, end)
        if body is None:
            body = self._post_window(model, start, end)
        answer = parse_answer(body)
        del body
        error = answer.error
        if not error:
            if answer.table is None:
                raise PlatformError(f"{action}: Log Analytics answer without rows")
            yield typed_table(answer.table)
            return
        del answer
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
        with self._count_lock:  # the prefetch thread sends too
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


def _action(model: str, start: datetime, end: datetime) -> str:
    return f"inference logs of {model} [{start.isoformat()}, {end.isoformat()})"


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

