"""The export's table: the columns every inference-log source delivers and every export part holds,
and the one place that decides what a record must look like to be written.

    TimeGenerated, request_id, model_version, deployment, record_index, <the model's features>

Sources (adapters/azure/inference_logs.py on Log Analytics, adapters/local/inference_logs.py on
console logs) build their batches with `export_schema()` / `normalize()`; the exporter
(functions/services/export.py) types every batch with `conform_batch`, which narrows a batch Arrow
refuses to the records that cannot be written (per record, on that failure path only) so they are
quarantined instead of stopping the slice. pyarrow is imported inside the functions, never at
module import (the Function App imports this when it is composed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from functions.ports import PlatformError
from ml.schema import CATEGORICAL, FEATURE_NAMES, NUMERIC

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

META_COLUMNS = ("TimeGenerated", "request_id", "model_version", "deployment", "record_index")
COLUMNS = META_COLUMNS + FEATURE_NAMES
MAX_REASON_CHARS = 500  # a reason names the column and Arrow's complaint; the raw values are beside it


def export_schema() -> pa.Schema:
    import pyarrow as pa

    fields = [
        pa.field("TimeGenerated", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("request_id", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("deployment", pa.string()),
        pa.field("record_index", pa.int32()),
    ]
    fields += [pa.field(name, pa.string()) for name in CATEGORICAL]
    fields += [pa.field(name, pa.float64()) for name in NUMERIC]
    return pa.schema(fields)


def records_to_table(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows as dicts (TimeGenerated a datetime or ISO 8601 text) → a table of the export schema.
    Strict: a value that does not fit raises ValueError (`conform_batch` narrows such a batch to
    the records that cannot be written)."""
    import pyarrow as pa

    schema = export_schema()
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for record in records:
        for name in COLUMNS:
            columns[name].append(record.get(name))
    times = [utc(t if isinstance(t, datetime) else parse_time(t)) for t in columns["TimeGenerated"]]
    columns["TimeGenerated"] = times
    try:
        arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    except _LIST_ERRORS as exc:
        raise ValueError(f"records do not fit the export schema: {exc}") from exc
    return normalize(pa.Table.from_arrays(arrays, schema=schema))


@dataclass(frozen=True)
class Rejected:
    """A record the export kept out of its parts: `kind` "record" (it could not be written:
    counted as quarantined) or "malformed" (counted as malformed, as before), why, and its raw
    values as the source gave them."""

    record: Any
    reason: str
    kind: str = "record"


def conform(item: Any) -> pa.Table:
    """A source's batch as a table of the export schema. Strict: raises ValueError when a record
    cannot be written (the export itself uses `conform_batch`)."""
    table, rejected = conform_batch(item)
    if rejected:
        raise ValueError(f"{len(rejected)} record(s) do not fit the export schema, first: {rejected[0].reason}")
    return table


def conform_batch(item: Any) -> tuple[pa.Table, list[Rejected]]:
    """A source's batch (Table, RecordBatch or list of dicts) → (a table of the export schema, the
    records that cannot be written). The one place that decides what "cannot be written" means.

    The usual batch converts whole, as fast as ever; only a batch Arrow refuses is looked at per
    record (by halving: a few conversions per bad record, not one per row). Record-level: a string
    that cannot be UTF-8, a value of the wrong type or out of range, a TimeGenerated that is
    missing or not a time, an item of a list that is not a dict. Not record-level (PlatformError,
    the slice is retried and the watermark stays): not a table at all, a missing column, a column
    of a type that has no cast to the schema's (list → double) — the source is broken, not a record."""
    import pyarrow as pa

    if isinstance(item, list):
        try:
            return records_to_table(item), []
        except _LIST_ERRORS + (AttributeError,):  # AttributeError: an item that is not a dict
            return _narrow_records(item)
    if isinstance(item, pa.RecordBatch):
        item = pa.Table.from_batches([item])
    if not isinstance(item, pa.Table):
        raise PlatformError(f"inference log source yielded {type(item).__name__}, not a table")
    return _conform_table(item)


# What Arrow raises for a value it refuses (ArrowInvalid is a ValueError, ArrowTypeError a
# TypeError). From a list of Python values every refusal is the value's, so "no such conversion"
# (ArrowNotImplementedError, a NotImplementedError) counts too; from a typed table column it is
# the column's type that has no cast, which no record is to blame for.
_CONVERSION_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OverflowError)


_LIST_ERRORS: tuple[type[BaseException], ...] = _CONVERSION_ERRORS + (NotImplementedError,)


def _refused(build: Any, values: Any, size: int, errors: tuple[type[BaseException], ...]) -> list[tuple[int, str]]:
    """Indices in [0, size) of the values `build(values, lo, hi)` refuses (raising one of
    `errors`), and why: the range is halved until each refusal is one value (O(bad × log n)
    builds, not one per row)."""
    out: list[tuple[int, str]] = []
    stack = [(0, size)]
    while stack:
        lo, hi = stack.pop()
        if hi <= lo:
            continue
        try:
            build(values, lo, hi)
            continue
        except errors as exc:
            if hi - lo == 1:
                out.append((lo, _reason(exc)))
                continue
        mid = (lo + hi) // 2
        stack += [(mid, hi), (lo, mid)]
    return sorted(out)


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "…"


def _narrow_records(records: Sequence[Any]) -> tuple[pa.Table, list[Rejected]]:
    """The failure path of a list batch: per column, the records whose value Arrow refuses."""
    import pyarrow as pa

    schema = export_schema()
    rejected: list[Rejected] = []
    good: list[Mapping[str, Any]] = []
    times: list[datetime] = []
    for record in records:
        if not isinstance(record, Mapping):
            rejected.append(Rejected(record, f"not a record but {type(record).__name__}"))
            continue
        value = record.get("TimeGenerated")
        try:
            times.append(utc(value if isinstance(value, datetime) else parse_time(value)))
        except (ValueError, TypeError, OverflowError) as exc:
            rejected.append(Rejected(record, f"TimeGenerated: {_reason(exc)}"))
            continue
        good.append(record)
    bad: dict[int, str] = {}
    for f in schema:
        if f.name == "TimeGenerated":
            continue
        column = [r.get(f.name) for r in good]
        for i, why in _refused(lambda v, lo, hi, t=f.type: pa.array(v[lo:hi], type=t), column, len(column),
                               _LIST_ERRORS):
            bad.setdefault(i, f"{f.name}: {why}")
    rejected += [Rejected(good[i], why) for i, why in sorted(bad.items())]
    kept = [r for i, r in enumerate(good) if i not in bad]
    kept_times = [t for i, t in enumerate(times) if i not in bad]
    columns: dict[str, list[Any]] = {name: [r.get(name) for r in kept] for name in COLUMNS}
    columns["TimeGenerated"] = kept_times
    try:
        arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    except _LIST_ERRORS as exc:  # every value converts alone but not together: not a record's fault
        raise PlatformError(f"inference log source batch cannot be typed (no single record is to blame): {exc}"
                            ) from exc
    return normalize(pa.Table.from_arrays(arrays, schema=schema)), rejected


def _conform_table(item: pa.Table) -> tuple[pa.Table, list[Rejected]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = export_schema()
    arrays: list[Any] = []
    bad: dict[int, str] = {}
    for f in schema:
        if f.name not in item.column_names:
            if f.name == "deployment":
                arrays.append(pa.nulls(len(item), f.type))
                continue
            raise PlatformError(f"inference log source batch lacks column {f.name!r}")
        column = item.column(f.name)
        if column.type == f.type:
            arrays.append(column)
            continue
        try:
            arrays.append(column.cast(f.type))
            continue
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise PlatformError(f"inference log source batch: column {f.name!r} is not {f.type}: {exc}") from exc
        except pa.ArrowInvalid as exc:  # some values do not cast (text that is no number, bytes that are no UTF-8)
            refused = _refused(lambda c, lo, hi, t=f.type: c.slice(lo, hi - lo).cast(t), column, len(column),
                               (pa.ArrowInvalid,))
            if not refused:
                raise PlatformError(f"inference log source batch: column {f.name!r} is not {f.type}: {exc}") from exc
            for i, why in refused:
                bad.setdefault(i, f"{f.name}: {why}")
            arrays.append(None)
    times = arrays[schema.get_field_index("TimeGenerated")]
    if times is not None and times.null_count:  # a row no slice can hold
        for i in pc.indices_nonzero(pc.is_null(times)).to_pylist():
            bad.setdefault(i, "TimeGenerated: missing")
    if not bad:
        return normalize(pa.Table.from_arrays(arrays, schema=schema)), []
    indices = sorted(bad)
    raw = item.take(pa.array(indices, pa.int64())).to_pylist()
    rejected = [Rejected(record, bad[i]) for i, record in zip(indices, raw)]
    keep = pc.invert(pc.is_in(pa.array(range(len(item)), pa.int64()), value_set=pa.array(indices, pa.int64())))
    table, more = _conform_table(item.filter(keep))  # the rest converts now (else: PlatformError, above)
    return table, rejected + more


def normalize(table: pa.Table) -> pa.Table:
    """Empty strings → null in categoricals and deployment: Log Analytics cannot tell a null
    string from "" (Kusto strings are never null), so both sources say null for both. NaN and
    ±infinity → null in the numerics: the local source has always made them null, and Log
    Analytics sends a non-finite real as the text "NaN"/"Infinity"/"-Infinity", which its CSV
    fast path reads as a float and its json path as null — without this the bytes of a slice
    would depend on which reader an answer happened to take."""
    import pyarrow as pa
    import pyarrow.compute as pc

    null = pa.scalar(None, pa.string())
    for name in ("deployment",) + CATEGORICAL:
        i = table.schema.get_field_index(name)
        column = table.column(i)
        if column.null_count < len(column) and pc.any(pc.equal(column, "")).as_py():
            table = table.set_column(i, table.schema.field(i), pc.if_else(pc.equal(column, ""), null, column))
    for name in NUMERIC:
        i = table.schema.get_field_index(name)
        column = table.column(i)
        if column.null_count == len(column):
            continue
        total = pc.sum(column).as_py()  # one vectorised pass; NaN or ±inf anywhere makes it non-finite
        if total is not None and not math.isfinite(total):
            finite = pc.if_else(pc.is_finite(column), column, pa.scalar(None, column.type))
            table = table.set_column(i, table.schema.field(i), finite)
    if table.column("TimeGenerated").null_count:
        raise PlatformError("inference log source returned rows without TimeGenerated")
    return table


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def parse_time(text: Any) -> datetime:
    if not isinstance(text, str):
        raise ValueError(f"TimeGenerated {text!r} is not a time")
    text = text.strip()
    match = re.fullmatch(r"(.*?\.\d{6})\d*(Z|[+-]\d\d:?\d\d)?", text)
    if match:  # fromisoformat takes at most 6 fractional digits
        text = match.group(1) + (match.group(2) or "")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return utc(value)
