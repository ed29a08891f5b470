"""Loading labelled data with the schema's columns, with one-line errors that name the problem."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from ml import schema

if TYPE_CHECKING:
    import pandas as pd


class DataError(ValueError):
    """The data cannot be used as it is; the message names the problem in one line."""


def table_files(path: str | Path, suffixes: tuple[str, ...] = (".csv", ".parquet", ".pq"),
                kinds: str = "CSV or Parquet") -> list[Path]:
    """The data files behind an input: the file itself (uri_file), or every table file under a
    folder (uri_folder), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise DataError(f"{path}: the folder holds no {kinds} file")
    return files


def readable_file(path: str | Path) -> Path:
    """`path` as a Path once it is a non-empty file (DataError naming the problem otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    return path


def read_table(path: str | Path) -> "pd.DataFrame":
    """Read a CSV or Parquet file as raw columns (no schema coercion yet)."""
    import pandas as pd

    path = readable_file(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        # Categoricals stay text; numbers are parsed per column below so errors can name the cell.
        return pd.read_csv(path, dtype=str, keep_default_na=True, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be parsed as a table: {first}{_header_hint(path)}") from None


# Delimiters people export CSV with (Excel in many locales writes ';'), and what to call them.
_OTHER_DELIMITERS = ((";", "semicolon"), ("\t", "tab"), ("|", "pipe"))


def delimiter_hint(columns: "list[str] | pd.Index") -> str:
    """'; the header looks <x>-delimited (...)' when splitting the header names on another delimiter
    finds more of the schema's columns than the comma did; '' otherwise."""
    expected = set(schema.COLUMNS)
    names = [str(c) for c in columns]
    found = len({n.strip() for n in names} & expected)
    for delimiter, label in _OTHER_DELIMITERS:
        split = {part.strip().strip('"') for n in names for part in n.split(delimiter)}
        if len(split & expected) > found:
            return f"; the header looks {label}-delimited (modelops reads comma-separated CSV)"
    return ""


def _header_hint(path: Path) -> str:
    """The delimiter hint from a CSV file's first line (pandas could not parse the file)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return ""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            header = handle.readline(64 * 1024)
    except OSError:
        return ""
    return delimiter_hint(header.rstrip("\r\n").split(","))


def coerce_features(frame: "pd.DataFrame", source: str = "data") -> "pd.DataFrame":
    """Return the 23 feature columns typed per the schema (extra columns are dropped).

    Missing cells stay missing (the pipeline imputes them); a cell that is present but not a
    (finite) number in a numeric column, or outside the column's range in the schema (a negative
    age), is an error naming the column, the row and the value.
    """
    import numpy as np
    import pandas as pd

    missing = [c for c in schema.FEATURE_NAMES if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}{delimiter_hint(frame.columns)}")
    out = pd.DataFrame(index=frame.index)
    for name in schema.CATEGORICAL:
        col = frame[name]
        out[name] = col.where(col.isna(), col.astype(str).str.strip()).astype(object)
    for name in schema.NUMERIC:
        raw = frame[name]
        parsed = pd.to_numeric(raw, errors="coerce")
        bad = parsed.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(
                f"{source}: column {name} has a value that is not a number: {raw.iloc[row]!r} "
                f"(data row {row + 1})"
            )
        parsed = parsed.astype("float64")
        # 'inf' parses as a number, but no estimator can use it.
        infinite = np.isinf(parsed.to_numpy())
        if infinite.any():
            row = int(infinite.nonzero()[0][0])
            raise DataError(f"{source}: column {name} has a value that is not finite: {raw.iloc[row]!r} "
                            f"(data row {row + 1})")
        _check_range(schema.NUMERIC_BY_NAME[name], parsed, source)
        out[name] = parsed
    return out[list(schema.FEATURE_NAMES)]


def _check_range(feature: schema.Feature, values: "pd.Series", source: str) -> None:
    """A value outside the feature's declared range (a negative age, ...) is an error naming the cell."""
    import pandas as pd

    outside = pd.Series(False, index=values.index)  # missing cells compare False: imputed, not refused
    if feature.minimum is not None:
        outside |= values < feature.minimum
    if feature.maximum is not None:
        outside |= values > feature.maximum
    if not outside.any():
        return
    row = int(outside.to_numpy().nonzero()[0][0])
    value = float(values.iloc[row])
    if feature.minimum is not None and value < feature.minimum:
        bound = f"below the minimum {_number(feature.minimum)}"
    else:
        bound = f"above the maximum {_number(feature.maximum)}"
    raise DataError(f"{source}: column {feature.name} has a value {bound}: {_number(value)} (data row {row + 1})")


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else repr(value)


def require_values(features: "pd.DataFrame", source: str = "data") -> None:
    """Training needs at least one value in every feature column (an all-missing column cannot be
    imputed; sklearn would warn from every worker and drop it). Checked on the whole training set,
    not per file: a folder's slices may each lack a column the others have."""
    empty = [name for name in features.columns if not features[name].notna().any()]
    if empty:
        columns = ", ".join(empty)
        raise DataError(f"{source}: column{'s' if len(empty) > 1 else ''} {columns} "
                        f"{'have' if len(empty) > 1 else 'has'} no values")


def coerce_target(frame: "pd.DataFrame", source: str = "data") -> "pd.Series":
    import pandas as pd

    if schema.TARGET not in frame.columns:
        raise DataError(f"{source}: missing target column {schema.TARGET}")
    raw = frame[schema.TARGET]
    values = []
    for row, cell in enumerate(raw.tolist()):
        if cell is None or (isinstance(cell, float) and cell != cell):
            raise DataError(f"{source}: target {schema.TARGET} is empty (data row {row + 1})")
        try:
            values.append(schema.parse_target(cell))
        except ValueError:
            raise DataError(
                f"{source}: target {schema.TARGET} must be 1/0 or true/false, got {cell!r} "
                f"(data row {row + 1})"
            ) from None
    return pd.Series(values, index=frame.index, name=schema.TARGET, dtype="int64")


def load_labelled(path: str | Path) -> tuple["pd.DataFrame", "pd.Series"]:
    """Features and target from a CSV/Parquet file, validated for training."""
    frame = read_table(path)
    source = str(path)
    if len(frame) == 0:
        raise DataError(f"{source}: the file has a header but no rows")
    features = coerce_features(frame, source)
    target = coerce_target(frame, source)
    classes = sorted(set(target.tolist()))
    if len(classes) < 2:
        raise DataError(
            f"{source}: target {schema.TARGET} has only one class ({classes[0]}); "
            "training needs both defaults and non-defaults"
        )
    return features, target


def fingerprint(features: "pd.DataFrame", target: "pd.Series | None" = None) -> str:
    """A content hash of the data (independent of file formatting), for the model card."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(",".join(features.columns).encode())
    digest.update(pd.util.hash_pandas_object(features, index=False).to_numpy().tobytes())
    if target is not None:
        digest.update(pd.util.hash_pandas_object(target, index=False).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()
