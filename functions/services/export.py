"""Inference-log export: score.py's InputData records → Parquet (and optionally CSV) in the Store,
exactly once, in hour partitions.

    exports/<model>/<version>/<YYYY-MM-DD>/<HH>/part-<slice start, e.g. 20260509T070000Z>.parquet
    watermarks/export/<model>.json      high-water time, totals, the files of the recent slices,
                                        the layout and columns fingerprint they were written with

The columns are the model's contract's (functions/shared/export_table.py ExportLayout), read from
the store (functions/services/contracts.py: contracts/<model>/current.json) or any ContractSource;
a model without one is not exported (fail closed: its report says why). A part records the
fingerprint of its columns in its Parquet metadata — but the credit-card layout, written exactly as
before contracts (its parts, old and new, have no metadata and the same bytes).

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
import re
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.ports import Conflict, ContractSource, InferenceLogSource, Malformed, PlatformError, Store
from functions.services.contracts import StoreContracts, current_key
from functions.services.export_parts import ROW_GROUP_SIZE, Quarantine, SliceSink, micros, scalar_micros
from functions.shared.contract import ContractError, ModelContract
from functions.shared.export_table import (
    LAYOUT_VERSION,
    LEGACY_FINGERPRINT,
    ExportLayout,
    Rejected,
    conform_batch,
    parse_time,
    utc,
)
from functions.shared.names import InvalidName, check_model_name

if TYPE_CHECKING:  # pragma: no cover
    pass

WATERMARK_PREFIX = "watermarks/export/"
EXPORT_PREFIX = "exports/"
QUARANTINE_PREFIX = "quarantine/export/"
FORMATS = ("parquet", "csv")
DEFAULT_LAG = timedelta(minutes=10)
DEFAULT_SLICE = timedelta(hours=1)
DEFAULT_LOOKBACK = timedelta(hours=24)
RECENT_SLICES = 48  # slices whose file lists the watermark keeps
MAX_CONFLICTS = 20


# --- the port -----------------------------------------------------------------------------------

# --- schema and conversion --------------------------------------------------------------------


# --- keys and times ---------------------------------------------------------------------------

def watermark_key(model: str) -> str:
    return f"{WATERMARK_PREFIX}{check_model_name(model)}.json"


def part_key(model: str, version: str, slice_start: datetime, fmt: str = "parquet") -> str:
    t = utc(slice_start)
    # with seconds, always: sub-minute slices get distinct names, and names sort in time order
    return f"{EXPORT_PREFIX}{check_model_name(model)}/{version}/{t:%Y-%m-%d}/{t:%H}/part-{t:%Y%m%dT%H%M%S}Z.{fmt}"


_PART_NAME = re.compile(r"part-(\d{8}T\d{4}(?:\d{2})?)Z\.(parquet|csv)$")


def parse_part_key(key: str) -> tuple[datetime, str] | None:
    """(slice start, format) of a part key `part_key` wrote — names written before they always
    carried seconds (`part-20260509T0700Z`) included; None for any other key."""
    match = _PART_NAME.search(key)
    if match is None:
        return None
    stamp = match.group(1)
    start = datetime.strptime(stamp, "%Y%m%dT%H%M%S" if len(stamp) == 15 else "%Y%m%dT%H%M")
    return start.replace(tzinfo=timezone.utc), match.group(2)


def exported_parts(store: Store, model: str, version: str, start: datetime, end: datetime,
                   fmt: str = "parquet") -> list[str]:
    """The `fmt` parts of `model`/`version` whose slice starts within [start, end), in time order."""
    keys = []
    hour = utc(start).replace(minute=0, second=0, microsecond=0)
    while hour < end:
        prefix = f"{EXPORT_PREFIX}{check_model_name(model)}/{version}/{hour:%Y-%m-%d}/{hour:%H}/"
        for key in store.list(prefix):
            parsed = parse_part_key(key)
            if parsed is not None and parsed[1] == fmt and start <= parsed[0] < end:
                keys.append(key)
        hour += timedelta(hours=1)
    return keys


def quarantine_key(model: str, slice_start: datetime) -> str:
    """The slice's quarantine object: per model, not per version (a version may be what is wrong)."""
    t = utc(slice_start)
    return f"{QUARANTINE_PREFIX}{check_model_name(model)}/{t:%Y-%m-%d}/{t:%H}/part-{t:%Y%m%dT%H%M%S}Z.jsonl"


def floor_time(value: datetime, step: timedelta) -> datetime:
    value = utc(value)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return epoch + ((value - epoch) // step) * step


def _iso(value: datetime) -> str:
    return utc(value).isoformat()


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
    columns: str = ""  # the fingerprint of the columns its parts were written with (ExportLayout)

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
    columns: str = ""  # the fingerprint of the layout this run wrote with ("": it never got one)

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
            "columns": self.columns,
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
    # The layout the last slice was written with: its version and the fingerprint of its columns
    # (ExportLayout). A watermark written before contracts has neither: the credit-card layout.
    layout: int = LAYOUT_VERSION
    columns: str = LEGACY_FINGERPRINT

    def to_bytes(self) -> bytes:
        body = {
            "model": self.model, "high_water": _iso(self.high_water), "created": self.created,
            "updated": self.updated, "slices": self.slices, "rows": self.rows, "malformed": self.malformed,
            "quarantined": self.quarantined, "recent": self.recent, "layout": self.layout, "columns": self.columns,
        }
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, model: str) -> Watermark:
        try:
            body = json.loads(data)
            return cls(model=body.get("model", model), high_water=parse_time(body["high_water"]),
                       created=body.get("created", ""), updated=body.get("updated", ""),
                       slices=int(body.get("slices", 0)), rows=int(body.get("rows", 0)),
                       malformed=int(body.get("malformed", 0)), quarantined=int(body.get("quarantined", 0)),
                       recent=list(body.get("recent", [])),  # (watermarks written before quarantine: 0)
                       layout=int(body.get("layout", LAYOUT_VERSION)),
                       columns=str(body.get("columns") or LEGACY_FINGERPRINT))  # (before contracts: credit card)
        except (ValueError, KeyError, TypeError) as exc:
            raise PlatformError(f"unreadable export watermark of {model}: {exc}") from exc

    def advanced(self, done: SliceReport, now: datetime) -> Watermark:
        columns = done.columns or self.columns
        entry = {"start": _iso(done.start), "end": _iso(done.end), "rows": done.rows, "malformed": done.malformed,
                 "quarantined": done.quarantined, "files": list(done.files), "quarantine": done.quarantine,
                 "columns": columns}
        return Watermark(model=self.model, high_water=done.end, created=self.created, updated=_iso(now),
                         slices=self.slices + 1, rows=self.rows + done.rows, malformed=self.malformed + done.malformed,
                         quarantined=self.quarantined + done.quarantined,
                         recent=(self.recent + [entry])[-RECENT_SLICES:], layout=LAYOUT_VERSION, columns=columns)


def read_watermark(store: Store, model: str) -> tuple[Watermark, str] | None:
    found = store.get(watermark_key(model))
    if found is None:
        return None
    return Watermark.from_bytes(found[0], model), found[1]


# --- writing one slice --------------------------------------------------------------------------


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
                 layout: ExportLayout, formats: Sequence[str] = ("parquet",), row_group_size: int = ROW_GROUP_SIZE,
                 tmp_dir: str | Path | None = None, version_misfit: Any = None) -> SliceReport:
    """Write one slice's objects (create-only, deterministic) in `layout`'s columns. Does not touch
    the watermark. `version_misfit(version)`: why a version's rows cannot be read by this layout
    (its own contract differs), or None — those rows are quarantined.

    Two stages overlap: this thread takes the source's batches (for Log Analytics: parses the
    answers), one writer thread sorts and encodes them, in order, one batch behind at most."""
    import pyarrow.compute as pc

    report = SliceReport(start=start, end=end, columns=layout.fingerprint)
    start_us, end_us = micros(start), micros(end)
    quarantine = Quarantine()
    with tempfile.TemporaryDirectory(prefix="export-", dir=tmp_dir) as tmp:
        sink = SliceSink(Path(tmp), formats, row_group_size, layout, version_misfit)
        last_time: int | None = None
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-writer") as pool:
                pending: Future | None = None
                batches = source.fetch(model, start, end, layout)

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
                            table, rejected = conform_batch(item, layout)
                        except ValueError as exc:
                            raise PlatformError(f"inference log source of {model}: {exc}") from exc
                        if rejected:  # records that cannot be written: kept aside, never the slice's end
                            report.quarantined += sum(1 for r in rejected if r.kind == "record")
                            quarantine.add(rejected)
                            del rejected
                        if not len(table):
                            continue
                        lo, hi = pc.min_max(table.column("TimeGenerated")).values()
                        lo_us, hi_us = scalar_micros(lo), scalar_micros(hi)
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
        report.quarantined += sink.quarantined
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


# --- the export ---------------------------------------------------------------------------------

def export_model(model: str, source: InferenceLogSource, store: Store, *, now: datetime,
                 lag: timedelta = DEFAULT_LAG, slice_length: timedelta = DEFAULT_SLICE,
                 since: datetime | None = None, lookback: timedelta = DEFAULT_LOOKBACK,
                 formats: Sequence[str] = ("parquet",), max_slices: int | None = None,
                 row_group_size: int = ROW_GROUP_SIZE, tmp_dir: str | Path | None = None,
                 contracts: ContractSource | None = None) -> ExportReport:
    """Export every whole slice of `model`'s records from the watermark up to now − lag, in the
    columns of the contract of its current production version (`contracts.current(model)`;
    default: the Store's, functions/services/contracts.py).

    Fails closed: without a usable current contract nothing is read or written (ExportError, the
    reason in the report) — a model's columns are never guessed. A record that does not fit that
    contract (other features: another version's contract, a foreign writer) is quarantined, and
    so are the rows of a version whose own stored contract types a feature differently.

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
    now = utc(now)
    horizon = now - lag
    key = watermark_key(model)
    report = ExportReport(model=model, horizon=horizon)
    contracts = contracts if contracts is not None else StoreContracts(store)
    contract, layout = _current_layout(model, contracts, report)
    report.columns = layout.fingerprint
    version_misfit = _version_check(model, contract, layout, contracts)

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
            sliced = export_slice(model, source, store, start, end, layout=layout, formats=formats,
                                  row_group_size=row_group_size, tmp_dir=tmp_dir, version_misfit=version_misfit)
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


def _current_layout(model: str, contracts: ContractSource, report: ExportReport) -> tuple[ModelContract, ExportLayout]:
    """The current contract and its layout, or ExportError (fail closed) saying why there is none."""
    try:
        contract = contracts.current(model)
        if contract is None:
            report.error = (f"export of {model}: no contract is stored for its production version "
                            f"({current_key(model)}): nothing exported (the export never guesses a model's columns)")
            raise ExportError(report.error, report)
        return contract, ExportLayout.for_contract(contract)
    except ContractError as exc:
        report.error = f"export of {model}: its current contract cannot be used: {exc}"
        raise ExportError(report.error, report) from exc
    except PlatformError as exc:
        if isinstance(exc, ExportError):
            raise
        report.error, report.transient = f"export of {model}: its contract could not be read: {exc}", exc.transient
        raise ExportError(report.error, report, transient=exc.transient) from exc


def _version_check(model: str, current: ModelContract, layout: ExportLayout, contracts: ContractSource) -> Any:
    """`version_misfit` for export_slice: why the rows of `version` cannot be read by the current
    layout — its own stored contract has other feature columns or kinds (a feature retyped keeps
    its name, so no record-level check can tell) — or None (the same columns, or no contract
    stored for it: then only its records' keys are checked). Asked once per version and run."""
    cache: dict[str, str | None] = {}
    ours = {(n, layout.kind(n)) for n in layout.features}

    def misfit(version: str) -> str | None:
        if version in cache:
            return cache[version]
        try:
            theirs = contracts.version(model, version)
            why = None
            if theirs is not None:
                other = ExportLayout.for_contract(theirs)
                if {(n, other.kind(n)) for n in other.features} != ours:
                    changes = "; ".join(theirs.changes_from(current)) or "its feature columns differ"
                    why = f"version {version}'s contract does not fit the current one ({changes})"[:500]
        except ContractError as exc:  # a broken stored contract: its rows are kept aside, not guessed at
            why = f"version {version}'s stored contract cannot be used: {exc}"[:500]
        cache[version] = why
        return why

    return misfit


def export_models(models: Iterable[str], source: InferenceLogSource, store: Store, **kwargs: Any
                  ) -> dict[str, ExportReport]:
    """`export_model` for each model; one model's failure — whatever it is — does not stop the
    others: its report carries the error (and whether it is transient), and the caller (the
    timer) decides what a failed model means for the run only after every model had its turn.
    A model without a stored contract is such a failure (its report says so)."""
    reports: dict[str, ExportReport] = {}
    for model in models:
        try:
            reports[model] = export_model(model, source, store, **kwargs)
        except ExportError as exc:
            exc.report.transient = exc.transient
            reports[model] = exc.report
        except InvalidName as exc:
            reports[model] = ExportReport(model=model, error=str(exc))
        except PlatformError as exc:  # e.g. the watermark could not be read: the store is down
            reports[model] = ExportReport(model=model, error=f"export of {model}: {exc}", transient=exc.transient)
        except Exception as exc:  # noqa: BLE001 - never let one model's surprise stop the rest
            reports[model] = ExportReport(model=model,
                                          error=f"export of {model}: unexpected {type(exc).__name__}: {exc}")
    return reports
