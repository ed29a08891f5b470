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
record_index (long), the contract's categoricals (tostring: "" when null, Kusto strings are never
null) and numerics (todouble: null when missing or not a number), in the columns of the export
layout the exporter passes (functions/shared/export_table.py), and `_misfit`: "" for a record
whose keys are exactly the contract's features, its JSON (tostring) for any other — the exporter
quarantines those instead of reading them as rows of nulls.

Feature names are data (a contract allows any name of up to 128 characters, "sepal length (cm)"):
each enters the query only as an escaped string literal in a bracket accessor, rec["<name>"]
(kql_string), and its column is projected under a name KQL takes (`kql_columns`). What KQL takes
is the Kusto entity-name rules (https://learn.microsoft.com/kusto/query/schema-entities/entity-names,
read for this adapter): an identifier holds letters, digits, '_', and — only when quoted as
['name'] or ["name"] — spaces, '.' and '-'; no other character (parentheses, ';', ':' …), even
quoted; names beginning or ending with "__" are reserved; keywords (where, project …) must be
quoted. So every feature column is projected quoted, ["credit_limit"], when its name is made of
those characters, and under a generated name (`_f<index>`) otherwise; `typed_table` renames the
answer's columns back. tests/fake_inference_logs.py holds the fake service to the same rules.

Reading the answer is the hot path (query_answer.py reads it with Arrow's CSV reader, not a Python
object per cell). Requests go through the client's own pipeline (`send_request`: bearer token,
retries, user agent) with `stream=True`; while one answer is parsed, the next one downloads
(`prefetch`). The export's end-to-end throughput through this module is printed by
`make bench-export` (bench/export.py).

Limits: Log Analytics cuts a result at 500,000 rows or 64 MB and marks it partial. Each slice is
counted first (one summarize query: records, malformed lines, message bytes) and cut into equal
sub-windows so that every query stays under `max_rows` and an estimated `max_bytes`; a partial
answer anyway (skewed traffic, or a partial failure in the service) is dropped whole and its
window fetched again as two halves, down to `min_window`; past that, PlatformError — nothing is
ever returned short. A query over the service's timeout (3 minutes, at most 10 with `Prefer:
wait`) answers 504, and the same query would time out again: its window is halved the same way
(a summary's halves are added up; the fetch is then cut at least as finely as the summary had to
be), never sent again as it was — not even by azure-core's retry policy, which inference_logs_client
tells not to repeat a 504 (it still retries 408/429/5xx otherwise).

Value safety: the model name is checked (functions.shared.names.check_model_name) and enters the
KQL only as an escaped string literal (log_analytics.kql_string); times are formatted from datetimes.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from functions.adapters.azure.log_analytics import (
    QueryTimedOut,
    describe_error,
    error_in_body,
    is_query_timeout,
    is_transient,
    kql_datetime,
    kql_string,
    logs_client,
    platform_error,
    utc,
)
from functions.adapters.azure.query_answer import parse_answer
from functions.ports import Malformed, PlatformError
from functions.shared.export_table import META_COLUMNS, MISFIT, ExportLayout, normalize
from functions.shared.names import check_model_name

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

TABLE = "AmlOnlineEndpointConsoleLog"
SUMMARY_COLUMNS = ("Messages", "Records", "Malformed", "Bytes")
DEFAULT_MAX_ROWS = 100_000  # well under 500,000, and what one query's answer may cost in memory
DEFAULT_MAX_BYTES = 48 * 1024 * 1024  # under the 64 MB result limit, with room for the estimate's error
ROW_OVERHEAD = 128  # bytes a result row adds over its record's share of the Message


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


# A column name KQL takes when quoted (entity-names rules, see the module docstring); ASCII only:
# whether the service's "letters" include others is not said, and a generated name always works.
_QUOTABLE = re.compile(r"[A-Za-z0-9_ .\-]+")


def _quotable(name: str) -> bool:
    return bool(_QUOTABLE.fullmatch(name)) and not name.startswith("__") and not name.endswith("__") \
        and name == name.strip() and any(c.isalnum() or c == "_" for c in name)


def kql_columns(layout: ExportLayout) -> list[tuple[str, str]]:
    """(the answer's column name, the feature) for each feature, in table order: the feature's own
    name when KQL can take it quoted, else `_f<index>` (a single leading '_' and a letter: no
    keyword, not reserved), made unique against the other features' names."""
    taken = {n for n in layout.features if _quotable(n)} | set(META_COLUMNS) | {MISFIT}
    out = []
    for i, name in enumerate(layout.features):
        if _quotable(name):
            out.append((name, name))
            continue
        alias, n = f"_f{i}", 0
        while alias in taken:
            n += 1
            alias = f"_f{i}_{n}"
        taken.add(alias)
        out.append((alias, name))
    return out


def fetch_columns(layout: ExportLayout) -> tuple[str, ...]:
    """The fetch answer's columns, in order."""
    return META_COLUMNS + tuple(column for column, _ in kql_columns(layout)) + (MISFIT,)


def fetch_query(model: str, start: datetime, end: datetime, layout: ExportLayout) -> str:
    """One row per record of this model's InputData lines in [start, end), in `layout`'s columns
    (`kql_columns` names them), and `_misfit`: the record's JSON when its keys are not exactly the
    layout's features, else ""."""
    offset = len(_prefix(model))
    fields = []
    for column, name in kql_columns(layout):
        cast = "tostring" if layout.kind(name) == "categorical" else "todouble"
        fields.append(f'["{column}"] = {cast}(rec[{kql_string(name)}])')
    names = ", ".join(kql_string(name) for name in layout.features)
    fits = (f"array_length(bag_keys(rec)) == {len(layout.features)}"
            f" and array_length(set_difference(bag_keys(rec), dynamic([{names}]))) == 0")
    return "\n".join(_head(model, start, end) + [
        '| where mine and gettype(d) == "array"',
        "| mv-expand with_itemindex=record_index rec = d",
        '| where gettype(rec) == "dictionary"',
        f'| extend {MISFIT} = iff({fits}, "", tostring(rec))',
        "| project TimeGenerated, request_id = tostring(m['request_id']),"
        f" model_version = substring(tostring(m['service_name']), {offset}), deployment = DeploymentName,"
        " record_index,",
    ] + [f"    {', '.join(fields[i:i + 4])}," for i in range(0, len(fields), 4)] + [f"    {MISFIT}"])


# --- the answers ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    messages: int
    records: int
    malformed: int
    bytes: int


def typed_table(table: pa.Table, layout: ExportLayout) -> pa.Table:
    """The fetch query's answer → a table of the layout's schema (plus MISFIT when a record did
    not fit). A column whose values do not all cast (text that is no number in a real column, a
    binary column of strings UTF-8 cannot hold) is left as it is: the exporter's conform_batch
    then sets aside exactly the records it cannot write, and nothing here raises because of a value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = [c for c in fetch_columns(layout) if c not in table.column_names]
    if missing:
        raise PlatformError(f"Log Analytics answer lacks column(s) {missing}")
    schema = layout.schema
    answer_column = {name: column for column, name in kql_columns(layout)}
    arrays = []
    for f in schema:
        column = table.column(answer_column.get(f.name, f.name))
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
    misfit = table.column(MISFIT)
    marked = pc.any(pc.fill_null(pc.not_equal(misfit, ""), False)).as_py() if pa.types.is_string(misfit.type) \
        else misfit.null_count < len(misfit)
    if any(a.type != f.type for a, f in zip(arrays, schema)) or marked:  # conform_batch casts, narrows, normalizes
        return pa.Table.from_arrays(arrays + ([misfit] if marked else []),
                                    names=schema.names + ([MISFIT] if marked else []))
    return normalize(pa.Table.from_arrays(arrays, schema=schema), layout)


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
        return self._summary(model, start, end)[0]

    def _summary(self, model: str, start: datetime, end: datetime, depth: int = 0) -> tuple[Summary, int]:
        """The summary of [start, end) and how many equal pieces it took (more than 1 when the
        service timed out on the whole window: each half is summarised, recursively)."""
        start, end = utc(start), utc(end)
        query = summary_query(model, start, end)  # validates the name before anything is sent
        if end <= start:
            return Summary(0, 0, 0, 0), 1
        try:
            body = self._post(query, start, end, f"inference log summary of {model} [{start.isoformat()}, "
                                                 f"{end.isoformat()})")
        except QueryTimedOut as exc:
            self._check_split(exc, start, end, depth)
            self.splits += 1
            middle = start + (end - start) / 2
            (a, pieces_a), (b, pieces_b) = (self._summary(model, start, middle, depth + 1),
                                            self._summary(model, middle, end, depth + 1))
            return Summary(a.messages + b.messages, a.records + b.records, a.malformed + b.malformed,
                           a.bytes + b.bytes), 2 * max(pieces_a, pieces_b)
        return self._read_summary(model, body), 1

    def _read_summary(self, model: str, body: bytearray) -> Summary:
        try:
            answer = json.loads(body)
            table = answer["tables"][0]
            names = [c["name"] for c in table["columns"]]
            rows = table["rows"]
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise PlatformError(f"inference log summary of {model}: unreadable answer ({exc})", transient=True) from exc
        if answer.get("error"):
            raise PlatformError(f"inference log summary of {model}: partial result ({describe_error(answer['error'])})",
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

    def fetch(self, model: str, start: datetime, end: datetime, layout: ExportLayout) -> Iterator[Any]:
        start, end = utc(start), utc(end)
        check_model_name(model)
        fetch_query(model, start, end, layout)  # a name no query can carry fails here, before anything is sent
        summary, pieces = self._summary(model, start, end)
        if summary.malformed:
            yield Malformed(summary.malformed, "console log lines that are not readable InputData records")
        if not summary.records:
            return
        parts = max(self.plan(summary), pieces)  # a window the summary timed out on would time out here too
        step = (end - start) / parts
        bounds = [start + step * i for i in range(parts)] + [end]  # datetimes: whole microseconds
        windows = [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]
        fetched = 0
        # While one answer is parsed and written, the next one downloads (one ahead, no more: memory)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference-logs-prefetch") as pool:
            ahead = pool.submit(self._post_window, model, layout, *windows[0])
            try:
                for i, (lo, hi) in enumerate(windows):
                    try:
                        body, timed_out = ahead.result(), None
                    except QueryTimedOut as exc:
                        body, timed_out = None, exc
                    ahead = pool.submit(self._post_window, model, layout, *windows[i + 1]) \
                        if self.prefetch and i + 1 < len(windows) else None
                    for table in self._fetch_window(model, layout, lo, hi, 0, body, timed_out):
                        fetched += len(table)
                        yield table
                    del body
                    if ahead is None and i + 1 < len(windows):
                        ahead = pool.submit(self._post_window, model, layout, *windows[i + 1])
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
    def _post_window(self, model: str, layout: ExportLayout, start: datetime, end: datetime) -> bytearray:
        return self._post(fetch_query(model, start, end, layout), start, end, _action(model, start, end))

    def _fetch_window(self, model: str, layout: ExportLayout, start: datetime, end: datetime, depth: int,
                      body: bytearray | None = None, timed_out: QueryTimedOut | None = None) -> Iterator[pa.Table]:
        """The window's rows; a partial answer, or a query the service timed out on (`timed_out`:
        the prefetched query did), is fetched again as two halves."""
        action = _action(model, start, end)
        if body is None and timed_out is None:
            try:
                body = self._post_window(model, layout, start, end)
            except QueryTimedOut as exc:
                timed_out = exc
        if timed_out is not None:
            self._check_split(timed_out, start, end, depth)
        else:
            answer = parse_answer(body)
            del body
            error = answer.error
            if not error:
                if answer.table is None:
                    raise PlatformError(f"{action}: Log Analytics answer without rows")
                yield typed_table(answer.table, layout)
                return
            del answer
            if depth >= self.max_depth or end - start <= self.min_window:
                raise PlatformError(f"{action}: Log Analytics keeps returning a partial result "
                                    f"({describe_error(error)}); nothing was exported for this slice", transient=True)
        self.splits += 1
        middle = start + (end - start) / 2
        yield from self._fetch_window(model, layout, start, middle, depth + 1)
        yield from self._fetch_window(model, layout, middle, end, depth + 1)

    def _check_split(self, timed_out: QueryTimedOut, start: datetime, end: datetime, depth: int) -> None:
        """Raise when a window the service timed out on may not be halved any more."""
        if depth >= self.max_depth or end - start <= self.min_window:
            raise PlatformError(f"{timed_out}; the window was halved {depth} time(s), down to "
                                f"{end - start}, and Log Analytics still times out: nothing was exported for this "
                                "slice", transient=True) from timed_out

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
            raise platform_error(exc, action) from exc
        except OSError as exc:
            raise PlatformError(f"{action}: no answer from Log Analytics ({exc})", transient=True) from exc
        status = response.status_code
        if is_query_timeout(status):
            raise QueryTimedOut(f"{action}: HTTP {status} {error_in_body(body)}".rstrip())
        if status != 200:
            raise PlatformError(f"{action}: HTTP {status} {error_in_body(body)}".rstrip(), transient=is_transient(status))
        return body


def _action(model: str, start: datetime, end: datetime) -> str:
    return f"inference logs of {model} [{start.isoformat()}, {end.isoformat()})"


def inference_logs_client(endpoint: str | None = None, credential: Any = None, **kwargs: Any) -> Any:
    """A LogsQueryClient for the export: as traffic_log.logs_client, reading answers in 1 MiB
    blocks (the transport's default is 4 KiB: a 40 MB answer would be ten thousand reads), and
    not repeating a query the service timed out (504): the same query would time out again after
    another 3–10 minutes; the adapter splits its window instead (every other retry stays)."""
    kwargs.setdefault("connection_data_block_size", 1 << 20)
    if "retry_policy" not in kwargs:
        kwargs["retry_policy"] = _timeout_is_final_retry_policy(kwargs)
    return logs_client(endpoint=endpoint, credential=credential, **kwargs)


def _timeout_is_final_retry_policy(settings: dict[str, Any]) -> Any:
    """azure-core's RetryPolicy (the same retry_* settings) that does not retry a 504."""
    from azure.core.pipeline.policies import RetryPolicy

    class QueryTimeoutIsFinal(RetryPolicy):
        def is_retry(self, retry_settings: Any, response: Any) -> bool:
            if response.http_response.status_code == 504:
                return False
            return super().is_retry(retry_settings, response)

    return QueryTimeoutIsFinal(**settings)


def _ms(value: datetime, *, up: bool) -> str:
    ms = value.replace(microsecond=value.microsecond // 1000 * 1000)
    if up and ms < value:
        ms += timedelta(milliseconds=1)
    return ms.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms.microsecond // 1000:03d}Z"

