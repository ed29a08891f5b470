"""Inputs of the drift check: files or frames → schema-typed columns, wrong-schema rows counted and dropped.

The schema is a DriftSchema (ml/drift/config.py: the model's contract, or the credit-card one).
Categoricals become integer codes into a list of levels (a category column or a Parquet/CSV
dictionary is used as is, so a million rows of strings are never materialised as Python objects);
numerics become float64 with NaN for missing. A row is dropped as wrong-schema when a numeric cell
(or the target) holds something that is not a number (not a 0/1 label); missing cells are not
wrong, they are left out per column as Evidently does. Unseen category levels are tolerated.

A Parquet file whose column has the other kind's type — numbers where the schema has a
categorical, text where it has a numeric: a part written for another contract, where a feature
kept its name and changed its kind — is not used (DriftInputError naming the column): its values
would be read as something they are not. (CSV and JSON lines carry no types: they are coerced.)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from ml import schema
from ml.dataset import DataError, readable_file
from ml.drift.config import CREDIT_CARD, DriftInputError, DriftSchema, InputSummary

if TYPE_CHECKING:
    import pandas as pd

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
TABLE_SUFFIXES = PARQUET_SUFFIXES + CSV_SUFFIXES + JSONL_SUFFIXES


@dataclass
class Categorical:
    codes: np.ndarray  # int, -1 = missing
    levels: list[Any]  # str for the features, int 0/1 for the target

    def values(self) -> np.ndarray:
        return self.codes[self.codes >= 0] if (self.codes < 0).any() else self.codes


@dataclass
class TypedFrame:
    """Schema-typed columns of one side (valid rows only) and what was dropped on the way."""

    n_rows: int
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, Categorical] = field(default_factory=dict)
    invalid_rows: int = 0
    invalid_by_column: dict[str, int] = field(default_factory=dict)
    source: str = "data"
    quarantined: dict[str, str] = field(default_factory=dict)  # file (relative to the folder) → why unusable
    quarantined_rows: int = 0
    columns: DriftSchema = CREDIT_CARD  # what the columns are

    def __contains__(self, column: str) -> bool:
        return column in self.numeric or column in self.categorical

    def summary(self) -> InputSummary:
        has_target = self.columns.target is not None and self.columns.target in self
        return InputSummary(self.n_rows, self.invalid_rows, dict(self.invalid_by_column), has_target,
                            dict(self.quarantined), self.quarantined_rows)

    @staticmethod
    def empty(source: str, columns: DriftSchema = CREDIT_CARD) -> "TypedFrame":
        """No rows, every feature column present (and empty): what is left when nothing could be used."""
        out = TypedFrame(n_rows=0, source=source, columns=columns)
        for name in columns.categorical:
            out.categorical[name] = Categorical(np.empty(0, dtype=np.int32), [])
        for name in columns.numeric:
            out.numeric[name] = np.empty(0, dtype=np.float64)
        return out

    def to_pandas(self, columns: Sequence[str], rows: np.ndarray | None = None) -> "pd.DataFrame":
        """Plain pandas columns (object strings, float64, int64 target) as Evidently expects them."""
        import pandas as pd

        data: dict[str, Any] = {}
        for name in columns:
            if name in self.numeric:
                values = self.numeric[name]
                data[name] = values if rows is None else values[rows]
                continue
            cat = self.categorical[name]
            codes = cat.codes if rows is None else cat.codes[rows]
            if name == self.columns.target and self.columns.target_kind == "binary":
                target = codes.astype(np.float64)
                target[codes < 0] = np.nan
                data[name] = codes.astype(np.int64) if (codes >= 0).all() else target
            else:
                levels = np.array(list(cat.levels) + [None], dtype=object)
                data[name] = levels[codes]  # code -1 picks the trailing None
        return pd.DataFrame(data, columns=list(columns))

    @staticmethod
    def concat(frames: Sequence["TypedFrame"], source: str) -> "TypedFrame":
        if len(frames) == 1:
            return frames[0]
        schema_ = frames[0].columns
        columns = [c for c in schema_.columns if all(c in f for f in frames)]
        out = TypedFrame(n_rows=sum(f.n_rows for f in frames), source=source, columns=schema_)
        out.invalid_rows = sum(f.invalid_rows for f in frames)
        for f in frames:
            for name, count in f.invalid_by_column.items():
                out.invalid_by_column[name] = out.invalid_by_column.get(name, 0) + count
        for name in columns:
            if name in frames[0].numeric:
                out.numeric[name] = np.concatenate([f.numeric[name] for f in frames])
                continue
            levels: list[Any] = []
            index: dict[Any, int] = {}
            parts = []
            for f in frames:
                cat = f.categorical[name]
                lut = np.empty(len(cat.levels) + 1, dtype=np.int32)
                lut[-1] = -1
                for i, level in enumerate(cat.levels):
                    lut[i] = index.setdefault(level, len(levels))
                    if lut[i] == len(levels):
                        levels.append(level)
                parts.append(lut[cat.codes])
            out.categorical[name] = Categorical(np.concatenate(parts), levels)
        return out


# -------------------------------------------------------------------------------------- reading


def table_files(path: str | Path) -> list[Path]:
    """The data files behind an input: the file itself, or every table file under a folder."""
    from ml.dataset import table_files as files

    return files(path, TABLE_SUFFIXES, "CSV, Parquet or JSON-lines")


def load(path: str | Path, source: str | None = None, *, skip_unusable: bool = False,
         columns: DriftSchema = CREDIT_CARD) -> TypedFrame:
    """Read a file or a folder of files (concatenated) into `columns`-typed columns.

    `skip_unusable` (for a window of exported parts): a file that cannot be read (a truncated or
    corrupt Parquet file) or used (columns missing, values of a type no column can take) is left
    out and named in `quarantined` with the reason — one bad part must not make every check of
    the window fail — and the rest is read as usual. Nothing usable at all: an empty frame (the
    check then says insufficient_data, never a verdict). Without it, the first such file raises,
    as for a reference sample or a file named on purpose."""
    source = source or str(path)
    root = Path(path)
    frames: list[TypedFrame] = []
    quarantined: dict[str, str] = {}
    quarantined_rows = 0
    for p in table_files(path):
        try:
            frames.append(read_typed(p, columns))
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever makes this file unusable, it is this file's
            if not skip_unusable:
                raise
            name = str(p.relative_to(root)) if root.is_dir() else p.name
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            quarantined[name] = first.replace(str(p), name)[:500]  # no temporary folder in the record
            quarantined_rows += _footer_rows(p)
    out = TypedFrame.concat(frames, source) if frames else TypedFrame.empty(source, columns)
    out.quarantined, out.quarantined_rows = quarantined, quarantined_rows
    return out


def _footer_rows(path: Path) -> int:
    """Rows a Parquet file's footer says it holds (0 when there is no readable footer)."""
    if path.suffix.lower() not in PARQUET_SUFFIXES:
        return 0
    try:
        import pyarrow.parquet as pq

        return int(pq.read_metadata(path).num_rows)
    except Exception:  # noqa: BLE001 - a count for the record, not a new failure
        return 0


def read_typed(path: str | Path, columns: DriftSchema = CREDIT_CARD) -> TypedFrame:
    """One file's schema columns, typed: Parquet through pyarrow alone (ml/drift/parquet.py — the
    Function App's drift check reads only Parquet and has no pandas), CSV and JSON lines through
    pandas (read_frame, then coerce)."""
    if Path(path).suffix.lower() not in PARQUET_SUFFIXES:
        return coerce(read_frame(path, columns), source=str(path), columns=columns)
    from ml.drift.parquet import read_parquet_typed

    path = readable_file(path)
    try:
        return read_parquet_typed(path, columns, source=str(path))
    except DataError:
        raise
    except Exception as exc:  # pyarrow's errors on a truncated or corrupt file: one line naming the file
        raise DataError(f"{path}: cannot be read as a table: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_frame(path: str | Path, columns: DriftSchema = CREDIT_CARD) -> "pd.DataFrame":
    """The schema's columns of one file (others are not read), categoricals as pandas categories."""
    path = readable_file(path)
    suffix = path.suffix.lower()
    wanted = frozenset(columns.columns)
    try:
        if suffix in PARQUET_SUFFIXES:
            return _read_parquet(path, columns)
        if suffix in JSONL_SUFFIXES:
            import pandas as pd

            frame = pd.read_json(path, lines=True, dtype=False)
            return frame[[c for c in frame.columns if c in wanted]]
        return _read_csv(path, columns)
    except DataError:
        raise
    except Exception as exc:  # pyarrow/pandas parse errors: one line naming the file
        raise DataError(f"{path}: cannot be read as a table: {_first_line(exc)}") from None


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def _read_parquet(path: Path, columns: DriftSchema = CREDIT_CARD) -> "pd.DataFrame":
    return _to_pandas(read_parquet_table(path, columns))


def read_parquet_table(path: Path, columns: DriftSchema = CREDIT_CARD) -> Any:
    """The schema's columns of a Parquet file as an Arrow table, text categoricals read as
    dictionaries; DriftInputError for a column of the other kind (see the module's docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file_schema = pq.read_schema(path)
    wanted = frozenset(columns.columns)
    present = [name for name in file_schema.names if name in wanted]
    for name in present:  # a column of the other kind: written for another contract, never read as this one
        arrow_type = file_schema.field(name).type
        if pa.types.is_null(arrow_type):
            continue
        if name in columns.categorical and not _is_text(arrow_type):
            raise DriftInputError(f"{path.name}: column {name} holds {arrow_type}, the contract says categorical "
                                  "(written for another contract?)")
        if name in columns.numeric and _is_text(arrow_type):
            raise DriftInputError(f"{path.name}: column {name} holds text, the contract says numeric "
                                  "(written for another contract?)")
    as_dictionary = [
        name
        for name in present
        if name in columns.categorical
        and (pa.types.is_string(file_schema.field(name).type) or pa.types.is_large_string(file_schema.field(name).type))
    ]
    return pq.read_table(path, columns=present, read_dictionary=as_dictionary)


def _read_csv(path: Path, columns: DriftSchema = CREDIT_CARD) -> "pd.DataFrame":
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pv

    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    header = [h.strip() for h in header]
    wanted = frozenset(columns.columns)
    present = [name for name in header if name in wanted]
    if not present:
        return _empty_frame(header)
    types = {
        name: pa.dictionary(pa.int32(), pa.string()) if name in columns.categorical else pa.string()
        for name in present
    }
    table = pv.read_csv(
        path,
        read_options=pv.ReadOptions(column_names=header, skip_rows=1),
        convert_options=pv.ConvertOptions(column_types=types, include_columns=present, strings_can_be_null=True),
    )
    for name in present:
        if name in columns.numeric or (name == columns.target and columns.target_kind == "num"):
            try:  # the common case in C++; cells arrow cannot parse go to the careful pandas path
                table = table.set_column(table.schema.get_field_index(name), name, pc.cast(table[name], pa.float64()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    return _to_pandas(table)


def _to_pandas(table: Any) -> "pd.DataFrame":
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _empty_frame(columns: Iterable[str]) -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame(columns=list(columns))


# ------------------------------------------------------------------------------------- coercion


def coerce(frame: "pd.DataFrame", source: str = "data", columns: DriftSchema = CREDIT_CARD) -> TypedFrame:
    """Type the schema's columns of ``frame``; rows with a wrong-schema cell are dropped and counted.

    Raises DriftInputError naming every missing feature column. The target is optional.
    """
    missing = [c for c in columns.features if c not in frame.columns]
    if missing:
        raise DriftInputError(f"{source}: missing column(s) {', '.join(missing)}")
    n = len(frame)
    out = TypedFrame(n_rows=n, source=source, columns=columns)
    invalid = np.zeros(n, dtype=bool)
    for name in columns.categorical:
        out.categorical[name] = _categorical(frame[name])
    for name in columns.numeric:
        values, bad = _numeric(frame[name])
        out.numeric[name] = values
        note_invalid(out, invalid, name, bad)
    target = columns.target
    if target is not None and target in frame.columns:
        if columns.target_kind == "binary":
            codes, bad = _target(frame[target])
            out.categorical[target] = Categorical(codes, [0, 1])
        elif columns.target_kind == "num":
            out.numeric[target], bad = _numeric(frame[target])
        else:
            out.categorical[target], bad = _categorical(frame[target]), None
        note_invalid(out, invalid, target, bad)
    return drop_invalid(out, invalid)


def drop_invalid(out: TypedFrame, invalid: np.ndarray) -> TypedFrame:
    """`out` without the rows some column found wrong-schema (counted in invalid_rows). Shared by
    the pandas and the pyarrow readers."""
    if out.invalid_by_column:
        keep = ~invalid
        out.invalid_rows = int(invalid.sum())
        out.n_rows -= out.invalid_rows
        out.numeric = {k: v[keep] for k, v in out.numeric.items()}
        for cat in out.categorical.values():
            cat.codes = cat.codes[keep]
    return out


def note_invalid(out: TypedFrame, invalid: np.ndarray, name: str, bad: np.ndarray | None) -> None:
    if bad is not None and bad.any():
        out.invalid_by_column[name] = int(bad.sum())
        invalid |= bad


def _categorical(series: "pd.Series") -> Categorical:
    """Codes into stripped text levels; empty text is missing. Work is per level, not per row."""
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        raw_levels = series.cat.categories
    else:
        codes, raw_levels = pd.factorize(series, use_na_sentinel=True)
    return categorical_from_levels(codes, raw_levels)


def categorical_from_levels(codes: np.ndarray, raw_levels: Any) -> Categorical:
    """Codes into the raw levels (-1 missing) → codes into stripped text levels, where empty
    text, None and NaN are missing and levels equal once stripped merge. Work is per level, not
    per row; both readers (pandas here, Arrow in parquet.py) end here."""
    codes = codes.astype(np.int32, copy=False)
    levels: list[str] = []
    index: dict[str, int] = {}
    lut = np.empty(len(raw_levels) + 1, dtype=np.int32)
    lut[-1] = -1
    for i, raw in enumerate(raw_levels):
        text = "" if raw is None or (isinstance(raw, float) and raw != raw) else str(raw).strip()
        if not text:
            lut[i] = -1
            continue
        lut[i] = index.setdefault(text, len(levels))
        if lut[i] == len(levels):
            levels.append(text)
    if len(levels) == len(raw_levels) and np.array_equal(lut[:-1], np.arange(len(levels))):
        return Categorical(codes, levels)
    return Categorical(lut[codes], levels)


def _numeric(series: "pd.Series") -> tuple[np.ndarray, np.ndarray | None]:
    """float64 with NaN for missing (±inf too, as Evidently drops it); mask of unparseable cells."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
        values = series.to_numpy(dtype=np.float64, copy=False)  # a view when it is float64 already
        bad = None
    elif dtype.kind in "fiub":  # pandas nullable Int64/Float64/boolean
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = None
    else:
        raw = series.astype(object) if isinstance(dtype, pd.CategoricalDtype) else series
        parsed = pd.to_numeric(raw, errors="coerce")
        values = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
        present = raw.notna().to_numpy()
        unparsed = np.isnan(values) & present
        if unparsed.any():  # blank text is missing, not wrong; literal "nan" stays missing too
            text = raw[unparsed].astype(str).str.strip().str.lower()
            wrong = ~text.isin(["", "nan"]).to_numpy()
            bad = np.zeros(len(values), dtype=bool)
            bad[np.flatnonzero(unparsed)[wrong]] = True
        else:
            bad = None
    infinite = np.isinf(values)
    if infinite.any():
        values = np.where(infinite, np.nan, values)
    return values, bad


def _target(series: "pd.Series") -> tuple[np.ndarray, np.ndarray | None]:
    """0/1 codes (-1 missing) for the label; anything else that is present is wrong-schema."""
    import pandas as pd

    if series.dtype.kind in "fiub":
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        codes = np.full(len(values), -1, dtype=np.int8)
        codes[values == 0] = 0
        codes[values == 1] = 1
        bad = (codes < 0) & ~np.isnan(values)
        return codes, bad
    raw_codes, uniques = pd.factorize(series, use_na_sentinel=True)
    lut, wrong_levels = target_levels(uniques)
    return lut[raw_codes], wrong_levels[raw_codes]


def target_levels(uniques: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """For a binary target's distinct values (factorized; code -1 = missing): the 0/1 code of each
    (-1: blank or not a label) and which are present but no label — indexable by the codes, -1
    included (the last slot). Shared by the pandas and the pyarrow readers."""
    lut = np.empty(len(uniques) + 1, dtype=np.int8)
    lut[-1] = -1
    wrong = np.zeros(len(uniques) + 1, dtype=bool)
    for i, value in enumerate(uniques):
        if isinstance(value, str) and not value.strip():
            lut[i] = -1
            continue
        try:
            lut[i] = schema.parse_target(value)
        except ValueError:
            lut[i] = -1
            wrong[i] = True
    return lut, wrong
