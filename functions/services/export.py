"""Inference-log export: score.py's InputData records → Parquet (and optionally CSV) in the Store,
exactly once, in hour partitions.

    exports/<model>/<version>/<YYYY-MM-DD>/<HH>/part-<slice start, e.g. 20260509T070000Z>.parquet
    watermarks/export/<model>.json      high-water time, totals, the files of the recent slices

Where the records come from is a port (`InferenceLogSource`): Log Analytics in Azure
(adapters/azure/inference_logs.py), the local endpoints' console logs on a laptop
(adapters/local/inference_logs.py). This module imports no SDK; pyarrow is imported when an export
runs, not when the module is imported.

How "exactly once, no gaps" holds:
- Time is cut into slices [t, t + slice) aligned to the slice length (which divides an hour, so a
  slice never spans two hour partitions). Only whole slices that end at or before now − lag are
  exported (the lag covers ingestion delay: Azure Monitor documents 3–10 min for resource logs).
- A slice's output objects are written create-only under deterministic names, with bytes that
  depend only on the slice's rows: rows are sorted by a total key (TimeGenerated, request_id,
  record_index, deployment, then every feature) and written with fixed writer settings in row
  groups of a fixed size, whatever batches the source happened to deliver them in. A rerun (crash,
  timer retry, a second instance) that finds an object with identical bytes takes it as its own;
  different bytes is an error (the source's data changed after the lag — the watermark stays put
  and a person looks).
- The watermark moves only after every object of the slice is written, by compare-and-swap on the
  Store etag. An instance that loses the swap re-reads the watermark and carries on from there;
  it never writes a second copy of rows, because names are per slice and contents identical.
- A source failure (e.g. Log Analytics keeps answering partial results) raises ExportError and
  the watermark stays where it was: the next run retries the same slice. So does a store that is
  down: an outage is never a reason to give up on a slice's rows.
- A record can never stop the export. A batch that cannot be typed as the export schema (a
  string that cannot be UTF-8, such as a lone surrogate from a JSON "\\ud800" escape; a value of
  the wrong type; a table column whose values cannot be cast) is narrowed to the records that
  cannot be written — per record, on that failure path only — and those go to the slice's
  quarantine object instead of its parts, `quarantine/export/<model>/<YYYY-MM-DD>/<HH>/part-<slice
  start>.jsonl`: one JSON line per record (its reason and its raw values, escaped so the file is
  ASCII and so always valid UTF-8), sorted, written create-only like the parts — a rerun writes
  the same bytes. They are counted as `quarantined`, apart from `malformed` (lines that could not
  even be parsed, whose samples the same object keeps when the source has them), and the
  watermark moves past the slice. What decides is `conform_batch`, for every source.

Memory is bounded by the source's batch size plus one row group per (version, format) being
written: a slice is streamed into temporary files, never held whole.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.ports import Conflict, InferenceLogSource, Malformed, PlatformError, Store  # noqa: F401 (re-exported)
from ml.schema import CATEGORICAL, FEATURE_NAMES, NUMERIC

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

WATERMARK_PREFIX = "watermarks/export/"
EXPORT_PREFIX = "exports/"
QUARANTINE_PREFIX = "quarantine/export/"
MAX_REASON_CHARS = 500  # a reason names the column and Arrow's complaint; the raw values are beside it
META_COLUMNS = ("TimeGenerated", "request_id", "model_version", "deployment", "record_index")
COLUMNS = META_COLUMNS + FEATURE_NAMES
SORT_KEYS = ("TimeGenerated", "request_id", "record_index", "deployment") + FEATURE_NAMES
FORMATS = ("parquet", "csv")
DEFAULT_LAG = timedelta(minutes=10)
DEFAULT_SLICE = timedelta(hours=1)
DEFAULT_LOOKBACK = timedelta(hours=24)
ROW_GROUP_SIZE = 100_000
RECENT_SLICES = 48  # slices whose file lists the watermark keeps
MAX_CONFLICTS = 20

# AzureML asset names (as functions/domain/events.py) minus a trailing '.', which no Store key may
# end a segment with. Nothing else can reach a query or a key: the alphabet has no quote,
# backslash, whitespace, slash or control character.
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,49}")

# Parquet writer settings: fixed, so a rerun writes the same bytes (with the same pyarrow).
# Dictionary encoding only where values repeat (versions, deployments, categoricals): trying it on
# request ids and amounts costs ~2x the write time for nothing. Snappy: the export is CPU-bound;
# measured on 100,000 export rows (CPU per row, size): snappy 1.4 µs, 7.6 MB; zstd level 1 2.1 µs,
# 5.6 MB; zstd level 3 2.5 µs, 5.1 MB.
PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "compression": "snappy",
    "use_dictionary": ["model_version", "deployment", *CATEGORICAL],
    "write_statistics": True,
    "data_page_size": 1 << 20,
}


class InvalidModelName(ValueError):
    """A model name that is not an AzureML asset name (and so never reaches a query or a key)."""


def check_model_name(name: Any) -> str:
    if not isinstance(name, str) or not _MODEL.fullmatch(name) or name.endswith("."):
        raise InvalidModelName(
            f"model name {name!r} is invalid: 1–255 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit and not ending with '.'")
    return name


def valid_version(version: Any) -> bool:
    return isinstance(version, str) and bool(_VERSION.fullmatch(version)) and not version.endswith(".")


# --- the port -----------------------------------------------------------------------------------

# --- schema and conversion --------------------------------------------------------------------

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
    times = [_utc(t if isinstance(t, datetime) else _parse_time(t)) for t in columns["TimeGenerated"]]
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
            times.append(_utc(value if isinstance(value, datetime) else _parse_time(value)))
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


def _sort(table: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    if len(table) <= 1:
        return table
    # model_version first: each version's rows are then one contiguous run (sliced, not filtered);
    # within a version — within one output object — the order is SORT_KEYS. Nulls last.
    order = pc.sort_indices(table, sort_keys=[("model_version", "ascending")] + [(k, "ascending") for k in SORT_KEYS])
    return table.take(order)


# --- keys and times ---------------------------------------------------------------------------

def watermark_key(model: str) -> str:
    return f"{WATERMARK_PREFIX}{check_model_name(model)}.json"


def part_key(model: str, version: str, slice_start: datetime, fmt: str = "parquet") -> str:
    t = _utc(slice_start)
    # with seconds, always: sub-minute slices get distinct names, and names sort in time order
    return f"{EXPORT_PREFIX}{check_model_name(model)}/{version}/{t:%Y-%m-%d}/{t:%H}/part-{t:%Y%m%dT%H%M%S}Z.{fmt}"


def quarantine_key(model: str, slice_start: datetime) -> str:
    """The slice's quarantine object: per model, not per version (a version may be what is wrong)."""
    t = _utc(slice_start)
    return f"{QUARANTINE_PREFIX}{check_model_name(model)}/{t:%Y-%m-%d}/{t:%H}/part-{t:%Y%m%dT%H%M%S}Z.jsonl"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _parse_time(text: Any) -> datetime:
    if not isinstance(text, str):
        raise ValueError(f"TimeGenerated {text!r} is not a time")
    text = text.strip()
    match = re.fullmatch(r"(.*?\.\d{6})\d*(Z|[+-]\d\d:?\d\d)?", text)
    if match:  # fromisoformat takes at most 6 fractional digits
        text = match.group(1) + (match.group(2) or "")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return _utc(value)


def floor_time(value: datetime, step: timedelta) -> datetime:
    value = _utc(value)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return epoch + ((value - epoch) // step) * step


def _iso(value: datetime) -> str:
    return _utc(value).isoformat()


# --- watermark and report -----------------------------------------------------------------------

@dataclass
class SliceReport:
    start: datetime
    end: datetime
    rows: int = 0
    malformed: int = 0
    quarantined: int = 0  # records that could not be written, kept in the quarantine object
    files: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # already there with identical bytes (a rerun)
    versions: dict[str, int] = field(default_factory=dict)
    by_other_instance: bool = False  # another instance advanced past this slice first
    quarantine: str = ""  # the quarantine object's key, when the slice has one

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"], out["end"] = _iso(self.start), _iso(self.end)
        return out


@dataclass
class ExportReport:
    model: str
    start: datetime | None = None  # the watermark when the run began
    high_water: datetime | None = None  # the watermark when it ended
    horizon: datetime | None = None  # now − lag: nothing at or after it was exported
    slices: list[SliceReport] = field(default_factory=list)
    error: str = ""
    transient: bool = False  # with an error: retrying later may succeed

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.slices if not s.by_other_instance)

    @property
    def malformed(self) -> int:
        return sum(s.malformed for s in self.slices if not s.by_other_instance)

    @property
    def quarantined(self) -> int:
        return sum(s.quarantined for s in self.slices if not s.by_other_instance)

    @property
    def quarantine(self) -> list[str]:
        return [s.quarantine for s in self.slices if not s.by_other_instance and s.quarantine]

    @property
    def files(self) -> list[str]:
        return [f for s in self.slices if not s.by_other_instance for f in s.files]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "start": _iso(self.start) if self.start else None,
            "high_water": _iso(self.high_water) if self.high_water else None,
            "horizon": _iso(self.horizon) if self.horizon else None,
            "rows": self.rows,
            "malformed": self.malformed,
            "quarantined": self.quarantined,
            "files": self.files,
            "quarantine": self.quarantine,
            "slices": [s.to_dict() for s in self.slices],
            "error": self.error,
            "transient": self.transient,
        }


class ExportError(PlatformError):
    """The export stopped; `report` says what was done before (the watermark covers exactly that)."""

    def __init__(self, message: str, report: ExportReport, *, transient: bool = False) -> None:
        super().__init__(message, transient=transient)
        self.report = report


@dataclass
class Watermark:
    model: str
    high_water: datetime
    created: str = ""
    updated: str = ""
    slices: int = 0
    rows: int = 0
    malformed: int = 0
    quarantined: int = 0
    recent: list[dict[str, Any]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        body = {
            "model": self.model, "high_water": _iso(self.high_water), "created": self.created,
            "updated": self.updated, "slices": self.slices, "rows": self.rows, "malformed": self.malformed,
            "quarantined": self.quarantined, "recent": self.recent,
        }
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, model: str) -> Watermark:
        try:
            body = json.loads(data)
            return cls(model=body.get("model", model), high_water=_parse_time(body["high_water"]),
                       created=body.get("created", ""), updated=body.get("updated", ""),
                       slices=int(body.get("slices", 0)), rows=int(body.get("rows", 0)),
                       malformed=int(body.get("malformed", 0)), quarantined=int(body.get("quarantined", 0)),
                       recent=list(body.get("recent", [])))  # (watermarks written before quarantine: 0)
        except (ValueError, KeyError, TypeError) as exc:
            raise PlatformError(f"unreadable export watermark of {model}: {exc}") from exc

    def advanced(self, done: SliceReport, now: datetime) -> Watermark:
        entry = {"start": _iso(done.start), "end": _iso(done.end), "rows": done.rows, "malformed": done.malformed,
                 "quarantined": done.quarantined, "files": list(done.files), "quarantine": done.quarantine}
        return Watermark(model=self.model, high_water=done.end, created=self.created, updated=_iso(now),
                         slices=self.slices + 1, rows=self.rows + done.rows, malformed=self.malformed + done.malformed,
                         quarantined=self.quarantined + done.quarantined,
                         recent=(self.recent + [entry])[-RECENT_SLICES:])


def read_watermark(store: Store, model: str) -> tuple[Watermark, str] | None:
    found = store.get(watermark_key(model))
    if found is None:
        return None
    return Watermark.from_bytes(found[0], model), found[1]


# --- writing one slice --------------------------------------------------------------------------

class _PartWriter:
    """One output object of a slice, streamed to a temporary file. Parquet row groups hold exactly
    `row_group_size` rows (the last one the rest), whatever batches arrive: the bytes depend on
    the rows only."""

    def __init__(self, path: Path, fmt: str, schema: pa.Schema, row_group_size: int) -> None:
        self.path = path
        self.fmt = fmt
        self.schema = schema
        self.row_group_size = row_group_size
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self._writer: Any = pq.ParquetWriter(str(path), schema, **PARQUET_OPTIONS)
        else:
            import pyarrow.csv as pcsv

            self._writer = pcsv.CSVWriter(str(path), schema)

    def add(self, table: pa.Table) -> None:
        self.rows += len(table)
        if self.fmt == "csv":
            self._writer.write_table(table)
            return
        self._pending.append(table)
        self._pending_rows += len(table)
        if self._pending_rows >= self.row_group_size:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        import pyarrow as pa

        if not self._pending:
            return
        buffered = pa.concat_tables(self._pending)
        offset = 0
        while len(buffered) - offset >= self.row_group_size or (final and offset < len(buffered)):
            group = buffered.slice(offset, self.row_group_size)
            self._writer.write_table(group, row_group_size=self.row_group_size)
            offset += len(group)
        rest = buffered.slice(offset)
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush(final=True)
        self._writer.close()


def _put_once(store: Store, key: str, data: bytes) -> bool:
    """Create `key` with `data`. True when written now; False when it was already there with the
    same bytes (a rerun of this slice). Different bytes → PlatformError."""
    for _ in range(3):
        try:
            store.put(key, data, if_absent=True)
            return True
        except Conflict:
            found = store.get(key)
            if found is None:
                continue  # deleted in between: try to create it again
            if found[0] == data:
                return False
            raise PlatformError(
                f"{key} already exists with different content ({len(found[0])} bytes stored, {len(data)} now): "
                "the source's data for this slice changed after it was written (is the ingestion lag long "
                "enough?). The watermark was not advanced; check the object and remove it to re-export.")
    raise PlatformError(f"{key}: could not create it (it keeps appearing and disappearing)", transient=True)


def export_slice(model: str, source: InferenceLogSource, store: Store, start: datetime, end: datetime, *,
                 formats: Sequence[str] = ("parquet",), row_group_size: int = ROW_GROUP_SIZE,
                 tmp_dir: str | Path | None = None) -> SliceReport:
    """Write one slice's objects (create-only, deterministic). Does not touch the watermark.

    Two stages overlap: this thread takes the source's batches (for Log Analytics: parses the
    answers), one writer thread sorts and encodes them, in order, one batch behind at most."""
    import pyarrow.compute as pc

    report = SliceReport(start=start, end=end)
    start_us, end_us = _micros(start), _micros(end)
    quarantine = _Quarantine()
    with tempfile.TemporaryDirectory(prefix="export-", dir=tmp_dir) as tmp:
        sink = _SliceSink(Path(tmp), formats, row_group_size)
        last_time: int | None = None
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-writer") as pool:
                pending: Future | None = None
                batches = source.fetch(model, start, end)

                def settle(raise_errors: bool) -> None:
                    close = getattr(batches, "close", None)
                    if close is not None:
                        close()  # a generator stopped early: let it finish its downloads now
                    error = pending.exception() if pending is not None else None  # waits for the writer
                    if error is not None and raise_errors:
                        raise error

                try:
                    for item in batches:
                        if isinstance(item, Malformed):
                            report.malformed += item.count
                            quarantine.add(Rejected(sample, item.reason or "unreadable", "malformed")
                                           for sample in tuple(getattr(item, "samples", ()))[:item.count])
                            continue
                        try:
                            table, rejected = conform_batch(item)
                        except ValueError as exc:
                            raise PlatformError(f"inference log source of {model}: {exc}") from exc
                        if rejected:  # records that cannot be written: kept aside, never the slice's end
                            report.quarantined += sum(1 for r in rejected if r.kind == "record")
                            quarantine.add(rejected)
                            del rejected
                        if not len(table):
                            continue
                        lo, hi = pc.min_max(table.column("TimeGenerated")).values()
                        lo_us, hi_us = _scalar_micros(lo), _scalar_micros(hi)
                        if lo_us < start_us or hi_us >= end_us:
                            raise PlatformError(f"inference log source of {model} returned rows outside "
                                                f"[{_iso(start)}, {_iso(end)})")
                        if last_time is not None and lo_us < last_time:
                            raise PlatformError(f"inference log source of {model} returned batches out of time order")
                        last_time = hi_us
                        if pending is not None:
                            pending.result()  # one batch in the writer at a time (memory), errors surface here
                        pending = pool.submit(sink.add, table)
                        del table, item
                except BaseException:
                    settle(raise_errors=False)  # the first error is the one to report
                    raise
                settle(raise_errors=True)
        finally:
            sink.close()
        report.malformed += sink.malformed
        quarantine.add(sink.rejected)
        report.rows = sink.rows
        report.versions = dict(sink.versions)
        for version in sorted(sink.writers):
            for writer in sink.writers[version]:
                key = part_key(model, version, start, writer.fmt)
                data = writer.path.read_bytes()
                writer.path.unlink()
                (report.files if _put_once(store, key, data) else report.reused).append(key)
                del data
    report.files = sorted(report.files + report.reused)
    if quarantine:
        # Written like the parts (create-only, the same bytes on a rerun) and before the watermark
        # moves: a store that fails here fails the slice, which is retried whole — an outage never
        # sends rows to quarantine, and quarantined records are never lost to one.
        report.quarantine = quarantine_key(model, start)
        if not _put_once(store, report.quarantine, quarantine.to_bytes()):
            report.reused.append(report.quarantine)
    report.reused.sort()
    return report


class _Quarantine:
    """The records of one slice kept out of its parts: the lines of its quarantine object.

    One JSON object per line, {"kind", "reason", "record"}: kind "record" (could not be written,
    counted as quarantined) or "malformed" (counted as malformed: unreadable lines a source kept
    samples of, rows whose version cannot be a key), and the raw values. json.dumps with
    ensure_ascii=True writes every non-ASCII character as a \\uXXXX escape — a lone surrogate
    included, which no UTF-8 encoder would take — so the object is ASCII, always valid UTF-8, and
    json.loads gives the very string back. Lines are sorted (time, request id, record index, then
    the text): the bytes do not depend on how the source batched the slice."""

    def __init__(self) -> None:
        self._lines: list[tuple[tuple[str, str, str], bytes]] = []

    def __bool__(self) -> bool:
        return bool(self._lines)

    def add(self, rejected: Iterable[Rejected]) -> None:
        for item in rejected:
            record = _jsonable(item.record)
            line = json.dumps({"kind": item.kind, "reason": item.reason, "record": record}, ensure_ascii=True,
                              sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")
            fields = record if isinstance(record, dict) else {}
            key = tuple(str(fields.get(name, "")) for name in ("TimeGenerated", "request_id", "record_index"))
            self._lines.append((key, line))  # type: ignore[arg-type]

    def to_bytes(self) -> bytes:
        return b"".join(line + b"\n" for _, line in sorted(self._lines))


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Raw values as JSON values that say what they were: non-finite floats as "NaN"/"Infinity"/
    "-Infinity" (JSON has no such numbers), times as ISO text, bytes as text (undecodable bytes
    as \\x escapes), anything else as its repr."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if depth > 32:
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8", "surrogatepass")  # the adapters' encoding of a lone surrogate
        except UnicodeDecodeError:
            return raw.decode("utf-8", "backslashreplace")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth + 1) for v in value]
    return repr(value)


class _SliceSink:
    """The writer stage of a slice: sorts each batch, sets aside rows whose version cannot be a
    key, and streams each version's rows into its part writers. Used from one thread at a time."""

    def __init__(self, folder: Path, formats: Sequence[str], row_group_size: int) -> None:
        self.folder = folder
        self.formats = tuple(formats)
        self.row_group_size = row_group_size
        self.schema = export_schema()
        self.writers: dict[str, list[_PartWriter]] = {}
        self.versions: dict[str, int] = {}
        self.rows = 0
        self.malformed = 0
        self.rejected: list[Rejected] = []

    def add(self, table: pa.Table) -> None:
        table, bad = _split_bad_versions(_sort(table))
        if bad is not None:
            self.malformed += len(bad)
            self.rejected += [Rejected(row, f"model_version {row.get('model_version')!r} cannot be part of a key",
                                       "malformed") for row in bad.to_pylist()]
        for version, part in _by_version(table):
            if version not in self.writers:
                self.writers[version] = [
                    _PartWriter(self.folder / f"{len(self.writers)}.{fmt}", fmt, self.schema, self.row_group_size)
                    for fmt in self.formats]
            for writer in self.writers[version]:
                writer.add(part)
            self.versions[version] = self.versions.get(version, 0) + len(part)
            self.rows += len(part)

    def close(self) -> None:
        errors = []
        for parts in self.writers.values():
            for writer in parts:
                try:
                    writer.close()
                except Exception as exc:  # noqa: BLE001 - close them all; report the first
                    errors.append(exc)
        if errors:
            raise PlatformError(f"could not finish an export object: {errors[0]}") from errors[0]


def _micros(value: datetime) -> int:
    delta = _utc(value) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _scalar_micros(value: Any) -> int:
    return value.value  # a timestamp[us] scalar: int64 microseconds since the epoch


def _split_bad_versions(table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
    """Rows whose model_version could not be part of a key (from a foreign or broken writer) are
    counted as malformed instead of exported (and kept in the quarantine object): (kept, set aside
    or None)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    versions = table.column("model_version")
    unique = pc.unique(versions).to_pylist()
    bad = [v for v in unique if not valid_version(v)]
    if not bad:
        return table, None
    keep = pc.invert(pc.is_in(versions, value_set=pa.array(bad, pa.string()), skip_nulls=False))
    keep = pc.fill_null(keep, False)
    return table.filter(keep), table.filter(pc.invert(keep))


def _by_version(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """(version, rows) runs of a table sorted by `_sort` (model_version first): zero-copy slices."""
    import pyarrow.compute as pc

    if not len(table):
        return
    counts = pc.value_counts(table.column("model_version"))  # in order of first appearance = sorted
    offset = 0
    for entry in counts.to_pylist():
        yield entry["values"], table.slice(offset, entry["counts"])
        offset += entry["counts"]


# --- the export ---------------------------------------------------------------------------------

def export_model(model: str, source: InferenceLogSource, store: Store, *, now: datetime,
                 lag: timedelta = DEFAULT_LAG, slice_length: timedelta = DEFAULT_SLICE,
                 since: datetime | None = None, lookback: timedelta = DEFAULT_LOOKBACK,
                 formats: Sequence[str] = ("parquet",), max_slices: int | None = None,
                 row_group_size: int = ROW_GROUP_SIZE, tmp_dir: str | Path | None = None) -> ExportReport:
    """Export every whole slice of `model`'s records from the watermark up to now − lag.

    First run (no watermark): starts at `since`, else at now − lag − lookback, floored to the
    slice length. `max_slices` bounds one run (a timer invocation has a time limit; the next
    run continues). Returns the report; raises ExportError (with the report of what was done)
    when a slice cannot be exported — the watermark then still points at that slice."""
    check_model_name(model)
    formats = tuple(formats)
    if not formats or any(f not in FORMATS for f in formats) or len(set(formats)) != len(formats):
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {formats!r}")
    if lag < timedelta(0):
        raise ValueError("lag cannot be negative")
    if slice_length <= timedelta(0) or timedelta(hours=1) % slice_length or slice_length % timedelta(seconds=1):
        raise ValueError("slice_length must be a whole number of seconds that divides an hour")
    if row_group_size < 1:
        raise ValueError("row_group_size must be positive")
    now = _utc(now)
    horizon = now - lag
    key = watermark_key(model)
    report = ExportReport(model=model, horizon=horizon)

    current = read_watermark(store, model)
    if current is None:
        first = floor_time(since if since is not None else horizon - lookback, slice_length)
        created = Watermark(model=model, high_water=first, created=_iso(now), updated=_iso(now))
        try:
            store.put(key, created.to_bytes(), if_absent=True)
        except Conflict:  # another instance created it first: theirs is the start
            pass
        # read back: after a lost create the etag to swap against is the winner's, and a
        # read is one small request
        current = read_watermark(store, model)
        if current is None:
            report.error, report.transient = f"export watermark of {model} vanished", True
            raise ExportError(report.error, report, transient=True)
    mark, etag = current
    report.start = report.high_water = mark.high_water

    conflicts = 0
    done = 0
    while True:
        start = mark.high_water
        end = floor_time(start, slice_length) + slice_length  # the slice divides an hour: same hour
        if end > horizon or (max_slices is not None and done >= max_slices):
            break
        try:
            sliced = export_slice(model, source, store, start, end, formats=formats, row_group_size=row_group_size,
                                  tmp_dir=tmp_dir)
        except OSError as exc:  # the temporary files (disk full ...): worth a retry
            report.error = f"export of {model}: local temporary files: {exc}"
            report.transient = True
            raise ExportError(report.error, report, transient=True) from exc
        except PlatformError as exc:
            report.error = str(exc)
            report.transient = exc.transient
            raise ExportError(f"export of {model} [{_iso(start)}, {_iso(end)}) failed: {exc}", report,
                              transient=exc.transient) from exc
        except Exception as exc:  # noqa: BLE001 - a bug or a library's surprise: this model's error, not the timer's
            report.error = f"export of {model} [{_iso(start)}, {_iso(end)}): unexpected {type(exc).__name__}: {exc}"
            raise ExportError(report.error, report, transient=False) from exc
        advanced = mark.advanced(sliced, now)
        try:
            etag = store.put(key, advanced.to_bytes(), etag=etag)
        except Conflict:
            conflicts += 1
            current = read_watermark(store, model)
            if current is None or conflicts > MAX_CONFLICTS:
                report.error = f"export watermark of {model} keeps changing under this run"
                report.transient = True
                raise ExportError(report.error, report, transient=True) from None
            mark, etag = current
            if mark.high_water >= end:  # another instance exported this slice (same objects)
                sliced.by_other_instance = True
                report.slices.append(sliced)
            report.high_water = mark.high_water
            continue
        except PlatformError as exc:
            report.error = str(exc)
            report.transient = exc.transient
            raise ExportError(f"export of {model}: slice [{_iso(start)}, {_iso(end)}) written but the "
                              f"watermark could not be advanced: {exc}", report, transient=exc.transient) from exc
        mark = advanced
        report.slices.append(sliced)
        report.high_water = mark.high_water
        done += 1
    return report


def export_models(models: Iterable[str], source: InferenceLogSource, store: Store, **kwargs: Any
                  ) -> dict[str, ExportReport]:
    """`export_model` for each model; one model's failure — whatever it is — does not stop the
    others: its report carries the error (and whether it is transient), and the caller (the
    timer) decides what a failed model means for the run only after every model had its turn."""
    reports: dict[str, ExportReport] = {}
    for model in models:
        try:
            reports[model] = export_model(model, source, store, **kwargs)
        except ExportError as exc:
            exc.report.transient = exc.transient
            reports[model] = exc.report
        except InvalidModelName as exc:
            reports[model] = ExportReport(model=model, error=str(exc))
        except PlatformError as exc:  # e.g. the watermark could not be read: the store is down
            reports[model] = ExportReport(model=model, error=f"export of {model}: {exc}", transient=exc.transient)
        except Exception as exc:  # noqa: BLE001 - never let one model's surprise stop the rest
            reports[model] = ExportReport(model=model,
                                          error=f"export of {model}: unexpected {type(exc).__name__}: {exc}")
    return reports
