"""A Parquet file → schema-typed numpy columns through pyarrow alone (no pandas).

The drift check in the Function App reads only Parquet (the exported parts and the registry's
reference.parquet), so it needs neither pandas nor its ~80 MB: Arrow arrays become the TypedFrame's
numpy columns directly. The rules are data.coerce's on the frame pyarrow's to_pandas would have
made (the tests compare both readers on the same files):
- a categorical column (text, read as a dictionary; or a cat target of any type) → codes into its
  levels, each level its text stripped; empty text, null and NaN are missing;
- a numeric column (integer, float, boolean, decimal, null) → float64 with NaN for missing and ±inf;
- a binary target → 0/1 codes (-1 missing) read as ml.schema.parse_target reads a label; anything
  else present is wrong-schema and its row is dropped (counted);
- a "num" target stored as text is parsed per distinct value; text that is no number is wrong-schema.
A numeric column of another Arrow type (a timestamp, a list, …) is not guessed at: DriftInputError
naming the column, so a window's part is skipped with that reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ml.drift.config import DriftInputError, DriftSchema
from ml.drift.data import Categorical, TypedFrame, categorical_from_levels, drop_invalid, note_invalid, target_levels


def read_parquet_typed(path: Path, columns: DriftSchema, source: str) -> TypedFrame:
    """The schema's columns of one Parquet file, typed (data.load's per-file step for Parquet)."""
    from ml.drift.data import read_parquet_table

    table = read_parquet_table(path, columns)
    missing = [c for c in columns.features if c not in table.column_names]
    if missing:
        raise DriftInputError(f"{source}: missing column(s) {', '.join(missing)}")
    n = table.num_rows
    out = TypedFrame(n_rows=n, source=source, columns=columns)
    invalid = np.zeros(n, dtype=bool)
    for name in columns.categorical:
        out.categorical[name] = _categorical(table.column(name))
    for name in columns.numeric:
        out.numeric[name] = _numeric(table.column(name), f"{path.name}: column {name}")
    target = columns.target
    if target is not None and target in table.column_names:
        column = table.column(target)
        bad = None
        if columns.target_kind == "binary":
            codes, bad = _binary_target(column)
            out.categorical[target] = Categorical(codes, [0, 1])
        elif columns.target_kind == "num":
            out.numeric[target], bad = _numeric_target(column, f"{path.name}: column {target}")
        else:
            out.categorical[target] = _categorical(column)
        note_invalid(out, invalid, target, bad)
    return drop_invalid(out, invalid)


def _encoded(column: Any) -> tuple[np.ndarray, list[Any]]:
    """(int32 codes with -1 for null, the dictionary's values) of a column, dictionary-encoding it
    when it is not (values in order of first appearance, as pandas.factorize lists them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        if pa.types.is_null(column.type):
            return np.full(len(column), -1, dtype=np.int32), []
        column = pc.dictionary_encode(column)
    column = column.unify_dictionaries()
    if column.num_chunks == 0:
        return np.empty(0, dtype=np.int32), []
    dictionary = column.chunk(0).dictionary.to_pylist()
    codes = [chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
             for chunk in column.chunks]
    return (np.concatenate(codes) if len(codes) > 1 else codes[0]), dictionary


def _categorical(column: Any) -> Categorical:
    """Codes into stripped text levels; empty text, null and NaN are missing (data.categorical_from_levels)."""
    return categorical_from_levels(*_encoded(column))


def _is_number(arrow_type: Any) -> bool:
    import pyarrow as pa

    return (pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type)
            or pa.types.is_decimal(arrow_type) or pa.types.is_null(arrow_type))


def _floats(column: Any) -> np.ndarray:
    """float64 of a numeric column, NaN for null and for ±inf (Evidently drops both as missing)."""
    import pyarrow as pa

    if column.type != pa.float64():
        column = column.cast(pa.float64())
    values = column.to_numpy()  # nulls → NaN (a copy when there are any)
    infinite = np.isinf(values)
    if infinite.any():
        values = np.where(infinite, np.nan, values)
    return values


def _numeric(column: Any, name: str) -> np.ndarray:
    if not _is_number(column.type):
        raise DriftInputError(f"{name} holds {column.type}, the contract says numeric")
    return _floats(column)


def _binary_target(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """0/1 codes (-1 missing) of the label and the mask of present values that are no 0/1 label."""
    if _is_number(column.type):
        raw = column.cast("float64").to_numpy()  # ±inf stays: present, no label, wrong (as data._target)
        codes = np.full(len(raw), -1, dtype=np.int8)
        codes[raw == 0] = 0
        codes[raw == 1] = 1
        return codes, (codes < 0) & ~np.isnan(raw)
    raw_codes, uniques = _encoded(column)
    lut, wrong = target_levels(uniques)
    return lut[raw_codes], wrong[raw_codes]


def _numeric_target(column: Any, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A regression target: numbers as _numeric; text parsed per distinct value (blank and "nan"
    are missing, other text that is no number is wrong-schema)."""
    import pyarrow as pa

    if _is_number(column.type):
        return _floats(column), None
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            or (pa.types.is_dictionary(column.type) and pa.types.is_string(column.type.value_type))):
        raise DriftInputError(f"{name} holds {column.type}, the contract says numeric")
    raw_codes, uniques = _encoded(column)
    lut = np.full(len(uniques) + 1, np.nan)
    wrong = np.zeros(len(uniques) + 1, dtype=bool)
    for i, text in enumerate(uniques):
        stripped = str(text).strip()
        try:
            lut[i] = float(stripped)
        except ValueError:
            wrong[i] = stripped.lower() not in ("", "nan")
    values = lut[raw_codes]
    infinite = np.isinf(values)
    if infinite.any():
        values = np.where(infinite, np.nan, values)
    bad = wrong[raw_codes]
    return values, (bad if bad.any() else None)
