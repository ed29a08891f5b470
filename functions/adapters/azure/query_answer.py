"""Reading a Log Analytics query answer fast: the export's hot path.

An answer is `{"tables":[{"name","columns":[{"name","type"}],"rows":[[..],..]}]}` (the query API's
response, https://learn.microsoft.com/rest/api/loganalytics/query/execute), with an `error` beside
the tables when the result is partial. The SDK's query_workspace builds a Python object per cell and
parses every datetime; `json.loads` still builds one per cell. Here the rows are cut out of the
JSON text and read by Arrow's CSV reader in C++ (`_parse_rows_as_csv` says why that is exact); an
answer it cannot read that way is read with the json module (`_parse_with_json`), slower and never
different. Neither raises because of a cell's value: what cannot be typed stays untyped for the
exporter to judge per record.

pyarrow is imported inside the functions: this module is imported when the Function App is composed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.ports import PlatformError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


@dataclass
class QueryAnswer:
    """A query answer: its columns [(name, Log Analytics type)], its rows as an Arrow table (None
    when the answer is partial: those rows are never used) and the partial error, if any."""

    columns: list[tuple[str, str]]
    table: pa.Table | None
    error: dict[str, Any] | None


class _Unusual(Exception):
    """The fast path cannot read this answer safely; the json module will."""


_ROWS_KEY = b'"rows":['
# After removing escaped backslashes (\\ pairs), a backslash before anything but a quote is an
# escape CSV cannot decode (\n, \uXXXX, \/ ...).
_OTHER_ESCAPE = re.compile(rb'\\[^"]')


def _other_escapes(region: bytes | bytearray) -> bool:
    if b"\\" not in region:  # the usual answer: no escapes at all
        return False
    return _OTHER_ESCAPE.search(region.replace(b"\\\\", b"")) is not None


_ARROW_TYPES = {"real": "float64", "double": "float64", "long": "int64", "int": "int64", "bool": "bool"}


def parse_answer(body: bytes | bytearray) -> QueryAnswer:
    """Read a query answer. Fast path: the rows are cut out of the JSON and read by Arrow's
    multi-threaded CSV reader (see `_parse_rows_as_csv`); an answer it cannot read safely (a
    partial answer with its error after the rows, escapes CSV cannot decode, an unexpected
    layout) is read with the json module instead — slower, never different."""
    try:
        return _parse_rows_as_csv(body)
    except _Unusual:
        return _parse_with_json(body)
    except Exception:  # noqa: BLE001 - pyarrow's ArrowInvalid & co: read it the slow way
        return _parse_with_json(body)


def _parse_rows_as_csv(body: bytes | bytearray) -> QueryAnswer:
    r"""The answer is {"tables":[{"name":..,"columns":[..],"rows":[["20..",..],["20..",..],..]}]}
    and the first cell of every row is TimeGenerated, a quoted time. Between two rows the text is
    `],["` followed by the time's first digits (`],["20`). Nowhere else can that occur: inside a
    JSON string every quote is escaped (\"), and the one raw quote a string has at its end is
    followed by `,` or `]`, never by a digit. Replacing `],["20` with a newline and `"20` turns
    the rows into CSV lines (quote ", escape \) that Arrow parses in C++ on all cores, typed by
    the answer's column types, with no Python object per cell: JSON strings are quoted fields,
    numbers plain fields, `null` the null value (a quoted "null" stays a string). Escapes other
    than \" and \\ would decode differently, so an answer holding one takes the json path, as
    does one with raw newlines (pretty-printed) or rows that do not start with a time. A split
    that went wrong anyway could not go unnoticed: a line with the wrong number of fields, or
    broken quoting, is an error, and the json path reads the answer again."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    at = body.find(_ROWS_KEY)
    if at < 0:
        raise _Unusual("no rows")
    start = at + len(_ROWS_KEY)
    try:
        head = json.loads(bytes(body[:start]) + b"]}]}")  # close rows, table, tables, answer
    except ValueError as exc:
        raise _Unusual("unexpected layout") from exc
    tables = head.get("tables") if isinstance(head, dict) else None
    if not isinstance(tables, list) or len(tables) != 1:
        raise _Unusual("not one table")
    columns = [(str(c["name"]), str(c.get("type", "string"))) for c in tables[0]["columns"]]
    if head.get("error"):  # partial, with the error before the rows: the rows are not needed
        return QueryAnswer(columns, None, head["error"])
    if not body.endswith(b"]}]}"):  # something after the table (an error, statistics)
        raise _Unusual("a tail after the rows")
    end = len(body) - 4  # the rows are body[start:end]: [...],[...],...,[...]
    if end == start:
        return QueryAnswer(columns, _empty_table(columns), None)
    if columns[0][0] != "TimeGenerated" or body[start:start + 2] != b'["' or not body[start + 2:start + 4].isdigit() \
            or body[end - 1:end] != b"]" or b"\n" in body or b"\r" in body or _other_escapes(body):
        raise _Unusual("not plain rows")  # (the checks look at the whole body: its head has none of these)
    century = bytes(body[start + 2:start + 4])  # every row's time starts with the same two digits ("20")
    # One copy: the head cannot hold `],["20` either, so the whole body is rewritten and the CSV
    # text is a zero-copy slice of it, between the first row's "[" and the last row's "]".
    text = pa.py_buffer(body.replace(b'],["' + century, b'\n"' + century))
    text = text.slice(start + 1, text.size - 5 - (start + 1))  # after the first "[", before "]]}]}"
    names = [name for name, _ in columns]
    table = pcsv.read_csv(
        pa.BufferReader(text),
        read_options=pcsv.ReadOptions(column_names=names, use_threads=True, block_size=1 << 20),
        # no backslash anywhere (the usual answer): parse without escape handling, which costs less CPU
        parse_options=pcsv.ParseOptions(quote_char='"', escape_char="\\" if b"\\" in body else False,
                                        double_quote=False, newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pcsv.ConvertOptions(column_types={n: _csv_type(t) for n, t in columns},
                                            null_values=["null"], strings_can_be_null=True,
                                            quoted_strings_can_be_null=False),
    )
    return QueryAnswer(columns, table, None)


def _csv_type(kind: str) -> pa.DataType:
    import pyarrow as pa

    if kind == "datetime":  # ISO 8601 with 7 fractional digits and "Z": nanoseconds, UTC
        return pa.timestamp("ns", tz="UTC")
    name = _ARROW_TYPES.get(kind)
    return getattr(pa, name)() if name else pa.string()


def _empty_table(columns: list[tuple[str, str]]) -> pa.Table:
    import pyarrow as pa

    return pa.table({name: pa.array([], _csv_type(kind)) for name, kind in columns})


def _parse_with_json(body: bytes | bytearray) -> QueryAnswer:
    """The slow, careful reader. It never raises because of a cell's value: what cannot be typed
    as its column's type stays untyped for the exporter to judge per record (core.export
    .conform_batch quarantines exactly those records) — a real column holding text that is no
    number stays text; a string that UTF-8 cannot hold (a lone surrogate, from a "\\ud800"
    escape or from bytes that were not UTF-8) makes its column binary, each such cell encoded
    with "surrogatepass" so the quarantine shows the very string."""
    import pyarrow as pa

    try:
        # surrogateescape: bytes that are not UTF-8 become lone surrogates in their own cells
        # (which the exporter quarantines) instead of failing the whole answer
        answer = json.loads(bytes(body).decode("utf-8", "surrogateescape"))
        tables = answer["tables"]
        if len(tables) != 1:
            raise PlatformError(f"expected one result table, got {len(tables)}")
        columns = [(str(c["name"]), str(c.get("type", "string"))) for c in tables[0]["columns"]]
        rows = tables[0]["rows"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise PlatformError(f"unreadable Log Analytics answer ({type(exc).__name__}: {exc})", transient=True) from exc
    error = answer.get("error")
    if error:
        return QueryAnswer(columns, None, error)
    arrays = {}
    for j, (name, kind) in enumerate(columns):
        cells = [row[j] if j < len(row) else None for row in rows]
        arrow_type = _csv_type(kind)
        if pa.types.is_floating(arrow_type):
            numbers = [_real(c) for c in cells]
            if not any(n is _NOT_A_REAL for n in numbers):
                arrays[name] = pa.array(numbers, arrow_type)
                continue
            # a real column holding text that is no number: an answer the service should never
            # give (todouble() makes such values null); kept as text for the exporter to judge
            cells = [c if c is None or isinstance(c, str) else json.dumps(c) for c in cells]
            arrow_type = pa.string()
        elif pa.types.is_integer(arrow_type):
            cells = [c if isinstance(c, int) and not isinstance(c, bool) else None for c in cells]
        elif pa.types.is_boolean(arrow_type):
            cells = [c if isinstance(c, bool) else None for c in cells]
        else:
            cells = [c if c is None or isinstance(c, str) else json.dumps(c) for c in cells]
        if pa.types.is_timestamp(arrow_type):
            try:
                arrays[name] = pa.array(cells, pa.string()).cast(arrow_type)
            except (ValueError, TypeError) as exc:  # a datetime column the service always fills: the answer is broken
                raise PlatformError(f"Log Analytics answer: column {name} holds a value that is not a datetime "
                                    f"({type(exc).__name__}: {str(exc)[:200]})") from exc
        else:
            arrays[name] = _text_array(cells) if pa.types.is_string(arrow_type) else pa.array(cells, arrow_type)
    return QueryAnswer(columns, pa.table(arrays) if arrays else None, None)


_NOT_A_REAL = object()
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _real(value: Any) -> Any:
    """A real cell: a JSON number, null, or — as the service writes non-finite reals — the text
    "NaN", "Infinity" or "-Infinity" (azure-kusto-data's dataframe_from_result_table maps exactly
    these back in real columns); text that reads as a number is taken too. Anything else:
    _NOT_A_REAL. (Non-finite values become null in functions.shared.export_table.normalize, for every reader.)"""
    if value is None:
        return None
    if isinstance(value, bool):
        return _NOT_A_REAL
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return _NOT_A_REAL
    if isinstance(value, str):
        if value in _NON_FINITE:
            return _NON_FINITE[value]
        try:
            return float(value)
        except ValueError:
            return _NOT_A_REAL
    return _NOT_A_REAL


def _text_array(cells: list[Any]) -> pa.Array:
    import pyarrow as pa

    try:
        return pa.array(cells, pa.string())
    except UnicodeEncodeError:  # a lone surrogate: binary, which the exporter's cast to string refuses per cell
        return pa.array([c.encode("utf-8", "surrogatepass") if isinstance(c, str) else c for c in cells], pa.binary())
