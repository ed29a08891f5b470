"""The Log Analytics answer reader (functions/adapters/azure/query_answer.py) on answer bodies, no
server: the fast CSV path reads tricky values exactly as the json path does, refuses what it cannot
read safely, and partial, empty and cut-short answers are told apart."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.adapters.azure.inference_logs import fetch_columns
from functions.adapters.azure.query_answer import _parse_rows_as_csv, _parse_with_json, _Unusual, parse_answer
from functions.ports import PlatformError
from functions.shared.export_table import MISFIT
from ml.schema import CATEGORICAL, NUMERIC
from tests.export_helpers import CREDIT_LAYOUT

FETCH_COLUMNS = fetch_columns(CREDIT_LAYOUT)  # the credit-card fetch answer's columns


def _answer(rows: list[list[Any]], *, ensure_ascii: bool = False, **extra: Any) -> bytes:
    columns = [{"name": n, "type": "datetime" if n == "TimeGenerated" else "long" if n == "record_index" else
                "real" if n in NUMERIC else "string"} for n in FETCH_COLUMNS]
    body = {"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}], **extra}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=ensure_ascii).encode()


def _row(i: int, **cells: Any) -> list[Any]:
    base = {"TimeGenerated": f"2026-05-09T07:00:{i:02d}.1234567Z", "request_id": f"r{i}", "model_version": "3",
            "deployment": "blue", "record_index": i, **{n: "x" for n in CATEGORICAL}, **{n: float(i) for n in NUMERIC},
            MISFIT: ""}
    base.update(cells)
    return [base[n] for n in FETCH_COLUMNS]


# values the CSV path reads itself (no escape but \" and \\) and values that send it to the json path
PLAIN_TRICKY = ['a],["20', 'a"],["2026', '],[', '"],["20', 'quote " inside', 'back\\slash', 'ends with \\', '\\"',
                "null", "", "ünïcode ☃", "emoji 🙂", "a,b", '["20"]', "'single'"]


ESCAPED = ["tab\there", "new\nline", "\u0000 nul", "bell \a"]


def test_fast_reader_reads_tricky_values_exactly():
    rows = [_row(i, sex=v, request_id=v, education=PLAIN_TRICKY[-1 - i]) for i, v in enumerate(PLAIN_TRICKY)]
    rows.append(_row(40, credit_limit=None, age=1e20, marriage=None, bill_amount_1=-0.5))
    body = _answer(rows)

    fast, slow = _parse_rows_as_csv(body), _parse_with_json(body)  # the CSV path, no fallback

    assert fast.error is None and fast.table.num_rows == len(rows)
    assert fast.table.to_pylist() == slow.table.to_pylist()
    assert [r["sex"] for r in fast.table.to_pylist()[:len(PLAIN_TRICKY)]] == PLAIN_TRICKY
    last = fast.table.to_pylist()[-1]
    assert (last["credit_limit"], last["age"], last["marriage"], last["bill_amount_1"]) == (None, 1e20, None, -0.5)


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_answers_the_fast_reader_refuses_are_read_the_slow_way(ensure_ascii):
    rows = [_row(i, sex=v) for i, v in enumerate(ESCAPED + PLAIN_TRICKY)]
    body = _answer(rows, ensure_ascii=ensure_ascii)
    with pytest.raises(_Unusual):
        _parse_rows_as_csv(body)
    read = parse_answer(body)
    assert [r["sex"] for r in read.table.to_pylist()] == ESCAPED + PLAIN_TRICKY

    plain = _answer([_row(i) for i in range(5)])
    pretty = json.dumps(json.loads(plain), indent=1).encode()
    with pytest.raises(_Unusual):
        _parse_rows_as_csv(pretty)
    assert parse_answer(pretty).table.to_pylist() == parse_answer(plain).table.to_pylist()


def test_partial_and_empty_answers():
    for body in (_answer([_row(0)], error={"code": "PartialError", "message": "cut"}),
                 json.dumps({"error": {"code": "PartialError", "message": "cut"},
                             "tables": json.loads(_answer([_row(0)]))["tables"]}).encode()):
        partial = parse_answer(body)
        assert partial.table is None and partial.error["code"] == "PartialError"
    empty = parse_answer(_answer([]))
    assert empty.table.num_rows == 0 and empty.error is None
    with pytest.raises(PlatformError, match="unreadable"):
        parse_answer(_answer([_row(0)])[:-10])  # a body cut short (connection dropped)


@pytest.mark.parametrize("spelling", ["strings", "bare tokens"])
def test_non_finite_reals_read_the_same_on_both_paths(spelling):
    """The service writes a non-finite real as "NaN" / "Infinity" / "-Infinity" (strings; bare tokens,
    which are not JSON, are read too): NaN, +inf and -inf on the fast CSV path and on the json path
    alike, and the same typed export table after typed_table (non-finite → null)."""
    import math

    from functions.adapters.azure.inference_logs import typed_table

    rows = [_row(0, credit_limit="NaN", age="Infinity", bill_amount_1="-Infinity"), _row(1)]
    body = _answer(rows)
    if spelling == "bare tokens":
        body = body.replace(b'"NaN"', b"NaN").replace(b'"Infinity"', b"Infinity").replace(b'"-Infinity"', b"-Infinity")

    fast, slow = _parse_rows_as_csv(body), _parse_with_json(body)  # the CSV path, no fallback

    assert fast.table.schema == slow.table.schema
    for read in (fast, slow):
        first = read.table.slice(0, 1).to_pylist()[0]
        assert math.isnan(first["credit_limit"]) and first["age"] == math.inf and first["bill_amount_1"] == -math.inf
    assert typed_table(fast.table, CREDIT_LAYOUT).equals(typed_table(slow.table, CREDIT_LAYOUT))
    typed = typed_table(fast.table, CREDIT_LAYOUT).to_pylist()[0]
    assert (typed["credit_limit"], typed["age"], typed["bill_amount_1"]) == (None, None, None)
