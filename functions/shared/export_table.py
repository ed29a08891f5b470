"""The export's table: the columns every inference-log source delivers and every export part holds,
and the one place that decides what a record must look like to be written.

    TimeGenerated, request_id, model_version, deployment, record_index, <the model's features>

The features come from the model's contract (functions/shared/contract.py): `ExportLayout.for_contract`
gives the columns — the categorical features as strings, then the numeric ones as float64, each in
the contract's order — so the credit-card contract has exactly the table it always had, and its
parts keep their bytes. Nothing here knows any model's columns.

Sources (adapters/azure/inference_logs.py on Log Analytics, adapters/local/inference_logs.py on
console logs) build their batches with `layout.schema` / `normalize()`; the exporter
(functions/services/export.py) types every batch with `conform_batch`, which narrows a batch Arrow
refuses to the records that cannot be written (per record, on that failure path only) so they are
quarantined instead of stopping the slice. A source marks a record whose keys are not the
contract's features (another version's contract, a foreign writer) by putting its raw JSON in the
`MISFIT` column; conform_batch quarantines it too, naming the features missing and unexpected —
such a record is never read as a row with nulls.

What a part was written with is recorded: `layout.fingerprint` (the columns and their kinds) goes
into the part's Parquet metadata (`part_metadata`) and the export watermark. Parts written before
contracts carry no metadata: they are the credit-card layout (`LEGACY_FINGERPRINT`), which is
still written without metadata so those bytes stay the same; `part_fingerprint` tells either from
the part's own schema. pyarrow is imported inside the functions, never at module import (the
Function App imports this when it is composed).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from functions.ports import PlatformError
from functions.shared.contract import ContractError, ModelContract

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

META_COLUMNS = ("TimeGenerated", "request_id", "model_version", "deployment", "record_index")
# A source's column for a record that does not fit the contract: its raw JSON ("" or null: it fits).
# Never written to a part; reserved like the meta columns (a feature cannot be called so).
MISFIT = "_misfit"
RESERVED = frozenset(META_COLUMNS + (MISFIT,))
MAX_REASON_CHARS = 500  # a reason names the column and Arrow's complaint; the raw values are beside it

LAYOUT_VERSION = 1  # meta columns, then categoricals (string), then numerics (float64)
META_LAYOUT = b"modelops.export.layout"
META_COLUMNS_KEY = b"modelops.export.columns"  # the fingerprint
META_FEATURES = b"modelops.export.features"  # [[name, kind], ...] as JSON
# The credit-card-default layout, the only one before contracts: its parts have no metadata.
# (tests/test_export_contracts.py checks it against ml.schema's columns; functions/ never imports them.)
LEGACY_FINGERPRINT = "c2d2b2b968e94e78"


@dataclass(frozen=True)
class ExportLayout:
    """The export table of one contract: the feature columns and their kinds, the Arrow schema,
    the fingerprint that identifies them in stored state."""

    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    _schema: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def for_contract(cls, contract: ModelContract) -> ExportLayout:
        """ContractError (naming the feature) for a name the export cannot hold: one of its own
        columns, or one with a control character (no KQL literal and no log line can carry it)."""
        return cls.of(contract.categorical, contract.numeric)

    @classmethod
    def of(cls, categorical: Sequence[str], numeric: Sequence[str]) -> ExportLayout:
        names = list(categorical) + list(numeric)
        if not names:
            raise ContractError("the export needs at least one feature")
        if len(set(names)) != len(names):
            raise ContractError("a feature appears twice")
        for name in names:
            if name in RESERVED:
                raise ContractError(f"feature {name!r} has the name of one of the export's own columns "
                                    f"({', '.join(sorted(RESERVED))}): the export cannot hold it")
            bad = [ch for ch in name if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")]
            if bad:
                raise ContractError(f"feature {name!r} has a control character (U+{ord(bad[0]):04X}): the export "
                                    "cannot query or write it")
        return cls(tuple(categorical), tuple(numeric))

    @property
    def features(self) -> tuple[str, ...]:
        return self.categorical + self.numeric

    @property
    def columns(self) -> tuple[str, ...]:
        return META_COLUMNS + self.features

    def kind(self, name: str) -> str:
        return "categorical" if name in self.categorical else "numeric"

    @property
    def fingerprint(self) -> str:
        return columns_fingerprint(self.categorical, self.numeric)

    @property
    def schema(self) -> pa.Schema:
        if self._schema is None:
            import pyarrow as pa

            fields = [
                pa.field("TimeGenerated", pa.timestamp("us", tz="UTC"), nullable=False),
                pa.field("request_id", pa.string()),
                pa.field("model_version", pa.string()),
                pa.field("deployment", pa.string()),
                pa.field("record_index", pa.int32()),
            ]
            fields += [pa.field(name, pa.string()) for name in self.categorical]
            fields += [pa.field(name, pa.float64()) for name in self.numeric]
            object.__setattr__(self, "_schema", pa.schema(fields))
        return self._schema

    def part_metadata(self) -> dict[bytes, bytes] | None:
        """What a Parquet part of this layout records in its schema metadata; None for the legacy
        credit-card layout (written exactly as before contracts, so its bytes do not change)."""
        if self.fingerprint == LEGACY_FINGERPRINT:
            return None
        return {META_LAYOUT: str(LAYOUT_VERSION).encode(), META_COLUMNS_KEY: self.fingerprint.encode(),
                META_FEATURES: json.dumps([[n, self.kind(n)] for n in self.features], separators=(",", ":"),
                                          ensure_ascii=True).encode()}

    def misfit_reason(self, raw: Any) -> str:
        """Why a record (its raw JSON text, or the parsed object) does not fit: the features it lacks
        and the keys it has that the contract does not."""
        record = raw
        if isinstance(raw, (str, bytes)):
            try:
                record = json.loads(raw)
            except ValueError:
                return "does not fit the contract (its record cannot be read)"
        if not isinstance(record, Mapping):
            return "does not fit the contract (not a record)"
        names = set(self.features)
        missing = [n for n in self.features if n not in record]
        extra = sorted(str(k) for k in record if k not in names)
        parts = []
        if missing:
            parts.append(f"missing feature(s) {', '.join(missing[:10])}" + (" …" if len(missing) > 10 else ""))
        if extra:
            parts.append(f"unexpected feature(s) {', '.join(extra[:10])}" + (" …" if len(extra) > 10 else ""))
        text = "does not fit the contract: " + ("; ".join(parts) or "its features differ")
        return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "…"


def columns_fingerprint(categorical: Sequence[str], numeric: Sequence[str]) -> str:
    """16 hex digits of SHA-256 over the layout version and the feature columns with their kinds,
    in table order: what identifies the columns a part or watermark was written with."""
    body = {"layout": LAYOUT_VERSION, "features": [[n, "categorical"] for n in categorical] +
            [[n, "numeric"] for n in numeric]}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def part_fingerprint(schema: pa.Schema) -> str:
    """The fingerprint of the columns a Parquet part was written with: its metadata's, or — a
    part written before contracts, without metadata — the one of the columns its schema holds
    (the credit-card layout, for every such part the export wrote)."""
    import pyarrow as pa

    recorded = (schema.metadata or {}).get(META_COLUMNS_KEY)
    if recorded:
        return recorded.decode("ascii", "replace")
    names = [n for n in schema.names if n not in META_COLUMNS]
    categorical = [n for n in names if pa.types.is_string(schema.field(n).type)]
    numeric = [n for n in names if not pa.types.is_string(schema.field(n).type)]
    return columns_fingerprint(categorical, numeric)


def export_schema(layout: ExportLayout) -> pa.Schema:
    return layout.schema


def records_to_table(records: Sequence[Mapping[str, Any]], layout: ExportLayout) -> pa.Table:
    """Rows as dicts (TimeGenerated a datetime or ISO 8601 text) → a table of the layout's schema.
    Strict: a value that does not fit raises ValueError (`conform_batch` narrows such a batch to
    the records that cannot be written)."""
    import pyarrow as pa

    schema = layout.schema
    columns: dict[str, list[Any]] = {name: [] for name in layout.columns}
    for record in records:
        for name in layout.columns:
            columns[name].append(record.get(name))
    times = [utc(t if isinstance(t, datetime) else parse_time(t)) for t in columns["TimeGenerated"]]
    columns["TimeGenerated"] = times
    try:
        arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    except _LIST_ERRORS as exc:
        raise ValueError(f"records do not fit the export schema: {exc}") from exc
    return normalize(pa.Table.from_arrays(arrays, schema=schema), layout)


@dataclass(frozen=True)
class Rejected:
    """A record the export kept out of its parts: `kind` "record" (it could not be written:
    counted as quarantined) or "malformed" (counted as malformed, as before), why, and its raw
    values as the source gave them."""

    record: Any
    reason: str
    kind: str = "record"


def conform(item: Any, layout: ExportLayout) -> pa.Table:
    """A source's batch as a table of the layout's schema. Strict: raises ValueError when a record
    cannot be written (the export itself uses `conform_batch`)."""
    table, rejected = conform_batch(item, layout)
    if rejected:
        raise ValueError(f"{len(rejected)} record(s) do not fit the export schema, first: {rejected[0].reason}")
    return table


def conform_batch(item: Any, layout: ExportLayout) -> tuple[pa.Table, list[Rejected]]:
    """A source's batch (Table, RecordBatch or list of dicts) → (a table of the layout's schema, the
    records that cannot be written). The one place that decides what "cannot be written" means.

    The usual batch converts whole, as fast as ever; only a batch Arrow refuses is looked at per
    record (by halving: a few conversions per bad record, not one per row). Record-level: a record
    the source marked as not fitting the contract (`MISFIT`), a string that cannot be UTF-8, a
    value of the wrong type or out of range, a TimeGenerated that is missing or not a time, an
    item of a list that is not a dict. Not record-level (PlatformError, the slice is retried and
    the watermark stays): not a table at all, a missing column, a column of a type that has no
    cast to the schema's (list → double) — the source is broken, not a record."""
    import pyarrow as pa

    if isinstance(item, list):
        misfits: list[Rejected] = []
        if any(isinstance(r, Mapping) and r.get(MISFIT) for r in item):
            misfits = [_misfit(r, layout) for r in item if isinstance(r, Mapping) and r.get(MISFIT)]
            item = [r for r in item if not (isinstance(r, Mapping) and r.get(MISFIT))]
        try:
            return records_to_table(item, layout), misfits
        except _LIST_ERRORS + (AttributeError,):  # AttributeError: an item that is not a dict
            table, rejected = _narrow_records(item, layout)
            return table, misfits + rejected
    if isinstance(item, pa.RecordBatch):
        item = pa.Table.from_batches([item])
    if not isinstance(item, pa.Table):
        raise PlatformError(f"inference log source yielded {type(item).__name__}, not a table")
    item, misfits = _split_misfits(item, layout)
    table, rejected = _conform_table(item, layout)
    return table, misfits + rejected


def _misfit(row: Mapping[str, Any], layout: ExportLayout) -> Rejected:
    """A record the source marked as not fitting: its meta columns and its raw record."""
    raw = row.get(MISFIT)
    try:
        record: Any = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except ValueError:
        record = raw
    kept = {name: row.get(name) for name in META_COLUMNS}
    kept["record"] = record
    return Rejected(kept, layout.misfit_reason(record))


def _split_misfits(item: pa.Table, layout: ExportLayout) -> tuple[pa.Table, list[Rejected]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if MISFIT not in item.column_names:
        return item, []
    column = item.column(MISFIT)
    if column.null_count == len(column):
        return item.drop_columns([MISFIT]), []
    if not pa.types.is_string(column.type):
        try:
            column = column.cast(pa.string())
        except pa.ArrowException as exc:
            raise PlatformError(f"inference log source batch: column {MISFIT!r} is not text: {exc}") from exc
    marked = pc.fill_null(pc.not_equal(column, ""), False)
    if not pc.any(marked).as_py():
        return item.drop_columns([MISFIT]), []
    misfits = [_misfit(row, layout) for row in item.filter(marked).to_pylist()]
    return item.filter(pc.invert(marked)).drop_columns([MISFIT]), misfits


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


def _narrow_records(records: Sequence[Any], layout: ExportLayout) -> tuple[pa.Table, list[Rejected]]:
    """The failure path of a list batch: per column, the records whose value Arrow refuses."""
    import pyarrow as pa

    schema = layout.schema
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
    columns: dict[str, list[Any]] = {name: [r.get(name) for r in kept] for name in layout.columns}
    columns["TimeGenerated"] = kept_times
    try:
        arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    except _LIST_ERRORS as exc:  # every value converts alone but not together: not a record's fault
        raise PlatformError(f"inference log source batch cannot be typed (no single record is to blame): {exc}"
                            ) from exc
    return normalize(pa.Table.from_arrays(arrays, schema=schema), layout), rejected


def _conform_table(item: pa.Table, layout: ExportLayout) -> tuple[pa.Table, list[Rejected]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = layout.schema
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
        return normalize(pa.Table.from_arrays(arrays, schema=schema), layout), []
    indices = sorted(bad)
    raw = item.take(pa.array(indices, pa.int64())).to_pylist()
    rejected = [Rejected(record, bad[i]) for i, record in zip(indices, raw)]
    keep = pc.invert(pc.is_in(pa.array(range(len(item)), pa.int64()), value_set=pa.array(indices, pa.int64())))
    table, more = _conform_table(item.filter(keep), layout)  # the rest converts now (else: PlatformError, above)
    return table, rejected + more


def normalize(table: pa.Table, layout: ExportLayout) -> pa.Table:
    """Empty strings → null in categoricals and deployment: Log Analytics cannot tell a null
    string from "" (Kusto strings are never null), so both sources say null for both. NaN and
    ±infinity → null in the numerics: the local source has always made them null, and Log
    Analytics sends a non-finite real as the text "NaN"/"Infinity"/"-Infinity", which its CSV
    fast path reads as a float and its json path as null — without this the bytes of a slice
    would depend on which reader an answer happened to take."""
    import pyarrow as pa
    import pyarrow.compute as pc

    null = pa.scalar(None, pa.string())
    for name in ("deployment",) + layout.categorical:
        i = table.schema.get_field_index(name)
        column = table.column(i)
        if column.null_count < len(column) and pc.any(pc.equal(column, "")).as_py():
            table = table.set_column(i, table.schema.field(i), pc.if_else(pc.equal(column, ""), null, column))
    for name in layout.numeric:
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
