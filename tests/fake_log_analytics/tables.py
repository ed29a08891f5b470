"""The fake's in-memory tables: the Azure ML online-endpoint tables' schemas, as the Azure Monitor
Logs table reference lists them, and `LogTable`, which holds rows the way the server sends them.
"""

from __future__ import annotations

import bisect
import json
import operator
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tests.fake_log_analytics.values import Timespan, _encode, kusto_time

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
