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
  the watermark stays where it was: the next run retries the same slice.

Memory is bounded by the source's batch size plus one row group per (version, format) being
written: a slice is streamed into temporary files, never held whole.
"""

from __future__ import annotations

import json
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

# AzureML asset names (as functions/core/events.py) minus a trailing '.', which no Store key may
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
    Strict: a value of the wrong type raises ValueError (sources count such records as
    malformed before they get here)."""
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
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise ValueError(f"records do not fit the export schema: {exc}") from exc
    return normalize(pa.Table.from_arrays(arrays, schema=schema))


def conform(item: Any) -> pa.Table:
    """A source's batch (Table, RecordBatch or list of dicts) as a table of the export schema."""
    import pyarrow as pa

    if isinstance(item, list):
        return records_to_table(item)
    if isinstance(item, pa.RecordBatch):
        item = pa.Table.from_batches([item])
    if not isinstance(item, pa.Table):
        raise PlatformError(f"inference log source yielded {type(item).__name__}, not a table")
    schema = export_schema()
    arrays = []
    for f in schema:
        if f.name in item.column_names:
            column = item.column(f.name)
            try:
                arrays.append(column if column.type == f.type else column.cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise PlatformError(f"inference log source batch: column {f.name!r} is not {f.type}: {exc}") from exc
        elif f.name == "deployment":
            arrays.append(pa.nulls(len(item), f.type))
        else:
            raise PlatformError(f"inference log source batch lacks column {f.name!r}")
    return normalize(pa.Table.from_arrays(arrays, schema=schema))


def normalize(table: pa.Table) -> pa.Table:
    """Empty strings → null in categoricals and deployment: Log Analytics cannot tell a null
    string from "" (Kusto strings are never null), so both sources say null for both."""
    import pyarrow as pa
    import pyarrow.compute as pc

    null = pa.scalar(None, pa.string())
    for name in ("deployment",) + CATEGORICAL:
        i = table.schema.get_field_index(name)
        column = table.column(i)
        if column.null_count < len(column) and pc.any(pc.equal(column, "")).as_py():
            table = table.set_column(i, table.schema.field(i), pc.if_else(pc.equal(column, ""), null, column))
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
    files: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # already there with identical bytes (a rerun)
    versions: dict[str, int] = field(default_factory=dict)
    by_other_instance: bool = False  # another instance advanced past this slice first

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

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.slices if not s.by_other_instance)

    @property
    def malformed(self) -> int:
        return sum(s.malformed for s in self.slices if not s.by_other_instance)

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
            "files": self.files,
            "slices": [s.to_dict() for s in self.slices],
            "error": self.error,
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
    recent: list[dict[str, Any]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        body = {
            "model": self.model, "high_water": _iso(self.high_water), "created": self.created,
            "updated": self.updated, "slices": self.slices, "rows": self.rows, "malformed": self.malformed,
            "recent": self.recent,
        }
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, model: str) -> Watermark:
        try:
            body = json.loads(data)
            return cls(model=body.get("model", model), high_water=_parse_time(body["high_water"]),
                       created=body.get("created", ""), updated=body.get("updated", ""),
                       slices=int(body.get("slices", 0)), rows=int(body.get("rows", 0)),
                       malformed=int(body.get("malformed", 0)), recent=list(body.get("recent", [])))
        except (ValueError, KeyError, TypeError) as exc:
            raise PlatformError(f"unreadable export watermark of {model}: {exc}") from exc

    def advanced(self, done: SliceReport, now: datetime) -> Watermark:
        entry = {"start": _iso(done.start), "end": _iso(done.end), "rows": done.rows, "malformed": done.malformed,
                 "files": list(done.files)}
        return Watermark(model=self.model, high_water=done.end, created=self.created, updated=_iso(now),
                         slices=self.slices + 1, rows=self.rows + done.rows, malformed=self.malformed + done.malformed,
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
                            continue
                        try:
                            table = conform(item)
                        except ValueError as exc:
                            raise PlatformError(f"inference log source of {model}: {exc}") from exc
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
    report.reused.sort()
    return report


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

    def add(self, table: pa.Table) -> None:
        table, bad = _split_bad_versions(_sort(table))
        self.malformed += bad
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


def _split_bad_versions(table: pa.Table) -> tuple[pa.Table, int]:
    """Rows whose model_version could not be part of a key (from a foreign or broken writer) are
    counted as malformed instead of exported."""
    import pyarrow as pa
    import pyarrow.compute as pc

    versions = table.column("model_version")
    unique = pc.unique(versions).to_pylist()
    bad = [v for v in unique if not valid_version(v)]
    if not bad:
        return table, 0
    keep = pc.invert(pc.is_in(versions, value_set=pa.array(bad, pa.string()), skip_nulls=False))
    keep = pc.fill_null(keep, False)
    kept = table.filter(keep)
    return kept, len(table) - len(kept)


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
        # read back rather than trust the create's etag: DirectoryStore's is stale (its ctime moves
        # when the temporary link is removed), and the read is one small request
        current = read_watermark(store, model)
        if current is None:
            raise ExportError(f"export watermark of {model} vanished", report, transient=True)
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
            raise ExportError(report.error, report, transient=True) from exc
        except PlatformError as exc:
            report.error = str(exc)
            raise ExportError(f"export of {model} [{_iso(start)}, {_iso(end)}) failed: {exc}", report,
                              transient=exc.transient) from exc
        advanced = mark.advanced(sliced, now)
        try:
            etag = store.put(key, advanced.to_bytes(), etag=etag)
        except Conflict:
            conflicts += 1
            current = read_watermark(store, model)
            if current is None or conflicts > MAX_CONFLICTS:
                report.error = f"export watermark of {model} keeps changing under this run"
                raise ExportError(report.error, report, transient=True) from None
            mark, etag = current
            if mark.high_water >= end:  # another instance exported this slice (same objects)
                sliced.by_other_instance = True
                report.slices.append(sliced)
            report.high_water = mark.high_water
            continue
        except PlatformError as exc:
            report.error = str(exc)
            raise ExportError(f"export of {model}: slice [{_iso(start)}, {_iso(end)}) written but the "
                              f"watermark could not be advanced: {exc}", report, transient=exc.transient) from exc
        mark = advanced
        report.slices.append(sliced)
        report.high_water = mark.high_water
        done += 1
    return report


def export_models(models: Iterable[str], source: InferenceLogSource, store: Store, **kwargs: Any
                  ) -> dict[str, ExportReport]:
    """`export_model` for each model; one model's failure does not stop the others (its report
    carries the error)."""
    reports: dict[str, ExportReport] = {}
    for model in models:
        try:
            reports[model] = export_model(model, source, store, **kwargs)
        except ExportError as exc:
            reports[model] = exc.report
        except InvalidModelName as exc:
            reports[model] = ExportReport(model=model, error=str(exc))
    return reports
