"""The export's objects: the keys it writes are the keys monitoring reads back (one parser), slices
shorter than a minute get names with seconds, and the table in each object has the export's
columns, typed per the schema (these last two export from the fake Log Analytics service through
tests/export_helpers.py: `integration`).
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.adapters.local.store import DirectoryStore
from functions.services.export import export_model, exported_parts, parse_part_key, part_key
from ml.schema import CATEGORICAL, NUMERIC
from tests.export_helpers import (
    CREDIT_LAYOUT,
    MODEL,
    NOW,
    T0,
    client_fixture,  # noqa: F401 (fixture)
    console,
    fake_fixture,  # noqa: F401 (fixture)
    fake_server_fixture,  # noqa: F401 (fixture)
    parquet_keys,
    record,
    source_fixture,  # noqa: F401 (fixture)
    with_contract,
)
from tests.fake_log_analytics import CONSOLE_TABLE
from tests.fakes import MemoryStore

T = datetime(2026, 5, 9, 7, 0, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_part_key_parses_back_to_its_slice_and_format(fmt):
    key = part_key("credit-card-default", "3", T, fmt)
    assert key == f"exports/credit-card-default/3/2026-05-09/07/part-20260509T070030Z.{fmt}"
    assert parse_part_key(key) == (T, fmt)


def test_names_written_before_they_carried_seconds_still_parse():
    assert parse_part_key("exports/m/1/2026-05-09/07/part-20260509T0700Z.parquet") == (T.replace(second=0), "parquet")
    assert parse_part_key("exports/m/1/2026-05-09/07/result.json") is None


def test_exported_parts_are_the_window_s_parts_of_one_format_in_time_order():
    store = MemoryStore()
    for minutes in (-30, 0, 59, 61, 125):
        for fmt in ("parquet", "csv"):
            store.put(part_key("m", "1", T + timedelta(minutes=minutes), fmt), b"x")
    store.put("exports/m/1/2026-05-09/07/notes.txt", b"x")
    window = exported_parts(store, "m", "1", T, T + timedelta(hours=2))
    assert [parse_part_key(k)[0] - T for k in window] == [timedelta(0), timedelta(minutes=59), timedelta(minutes=61)]


# --- names and tables of exported objects ---------------------------------------------------------

@pytest.mark.integration
def test_sub_minute_slices_get_names_with_seconds(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    fake.add_rows(CONSOLE_TABLE, [console(T0 + timedelta(seconds=5), "a", [record(1)]),
                                  console(T0 + timedelta(seconds=35), "b", [record(2)])])
    report = export_model(MODEL, source, store, now=NOW, since=T0, slice_length=timedelta(seconds=30), max_slices=3)
    assert [s.rows for s in report.slices] == [1, 1, 0]
    assert parquet_keys(store) == ["exports/credit-card-default/3/2026-05-09/07/part-20260509T070000Z.parquet",
                                   "exports/credit-card-default/3/2026-05-09/07/part-20260509T070030Z.parquet"]


@pytest.mark.integration
def test_columns_are_typed_per_the_schema(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    odd = {**record(1), "sex": None, "education": "", "age": 41, "credit_limit": 1e20, "bill_amount_1": None}
    fake.add_rows(CONSOLE_TABLE, [console(T0 + timedelta(seconds=1), "r1", [odd])])

    export_model(MODEL, source, store, now=NOW, since=T0, lag=timedelta(minutes=10))

    [key] = parquet_keys(store)
    table = pq.read_table(io.BytesIO(store.get(key)[0]))
    assert table.column_names == list(CREDIT_LAYOUT.columns)
    assert table.schema.field("TimeGenerated").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("record_index").type == pa.int32()
    assert all(table.schema.field(n).type == pa.string() for n in CATEGORICAL + ("request_id", "deployment"))
    assert all(table.schema.field(n).type == pa.float64() for n in NUMERIC)
    [row] = table.to_pylist()
    assert row["TimeGenerated"] == T0 + timedelta(seconds=1)
    assert (row["sex"], row["education"]) == (None, None)  # null and "" are both null (Kusto cannot tell)
    assert (row["age"], row["credit_limit"], row["bill_amount_1"]) == (41.0, 1e20, None)
