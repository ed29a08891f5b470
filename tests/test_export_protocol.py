"""The inference-log export's exactly-once protocol (functions/services/export.py) on real stores:
hour (and shorter) slices, the ingestion lag and the watermark, crash and rerun, concurrent
exporters, a source failing in the middle of a slice, the contract a source must keep, and the
quarantine object across reruns.

Sources: LogAnalyticsInferenceLogs through the real azure-monitor-query LogsQueryClient against
the fake Log Analytics query service (tests/export_helpers.py), the local console-log source, a
list source. Stores: DirectoryStore, and BlobStore on a real Azurite (tests/azurite.py: in-memory,
loopback) through azure-storage-blob. Tests on the fake service or Azurite are `integration`.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from functions.adapters.azure.inference_logs import LogAnalyticsInferenceLogs
from functions.adapters.local.inference_logs import LocalInferenceLogs
from functions.adapters.local.store import DirectoryStore
from functions.ports import Malformed, Store
from functions.services.export import ExportError, export_model, part_key, quarantine_key, read_watermark, watermark_key
from ml.schema import NUMERIC
from tests.export_helpers import (
    CREDIT_LAYOUT,
    MODEL,
    NOW,
    T0,
    WORKSPACE,
    FailingStore,
    ListSource,
    RewriteFetches,
    blob_store,
    client_fixture,  # noqa: F401 (fixture)
    console,
    fake_fixture,  # noqa: F401 (fixture)
    fake_server_fixture,  # noqa: F401 (fixture)
    make_client,
    noise,
    parquet_keys,
    read_rows,
    record,
    sort_key,
    source_fixture,  # noqa: F401 (fixture)
    store_fixture,  # noqa: F401 (fixture)
    traffic,
    with_contract,
    write_log,
)
from tests.fake_inference_logs import input_line
from tests.fake_log_analytics import CONSOLE_TABLE

pytest_plugins = ["tests.azurite"]  # the session-wide `azurite` fixture (blob params only)


# --- exporting ------------------------------------------------------------------------------------

@pytest.mark.integration
def test_export_writes_hour_partitions_with_exact_rows(fake, source, store):
    rows, expected = traffic(hours=3)
    fake.add_rows(CONSOLE_TABLE, rows)

    report = export_model(MODEL, source, store, now=NOW, since=T0)

    assert report.error == "" and report.rows == len(expected) and report.malformed == 0
    assert [(s.start, s.end) for s in report.slices] == [(T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1))
                                                         for h in range(3)]
    keys = parquet_keys(store)
    assert keys == sorted(report.files) == sorted(
        part_key(MODEL, v, T0 + timedelta(hours=h)) for h in range(3) for v in ("3", "4"))
    assert keys[0] == "exports/credit-card-default/3/2026-05-09/07/part-20260509T070000Z.parquet"
    for key in keys:
        table = pq.read_table(io.BytesIO(store.get(key)[0]))
        assert table.schema == CREDIT_LAYOUT.schema
        assert set(table.column("model_version").to_pylist()) == {key.split("/")[2]}
        hour = int(key.split("/")[4])
        assert {t.hour for t in table.column("TimeGenerated").to_pylist()} == {hour}
        assert table.to_pylist() == sorted(table.to_pylist(), key=sort_key)  # sorted within each object
    assert sorted(read_rows(store, keys), key=sort_key) == sorted(expected, key=sort_key)

    mark, _ = read_watermark(store, MODEL)
    assert mark.high_water == T0 + timedelta(hours=3)
    assert (mark.slices, mark.rows, mark.malformed) == (3, len(expected), 0)
    assert [e["files"] for e in mark.recent] == [s.files for s in report.slices]

    again = export_model(MODEL, source, store, now=NOW)  # nothing new is whole yet
    assert again.slices == [] and again.high_water == T0 + timedelta(hours=3)


@pytest.mark.integration
def test_half_open_slices_put_a_boundary_row_in_the_later_hour(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    fake.add_rows(CONSOLE_TABLE, [console(T0 + timedelta(hours=1), "edge", [record(1)]),
                                  console(T0 + timedelta(hours=1) - timedelta(microseconds=1), "before", [record(2)])])
    report = export_model(MODEL, source, store, now=NOW, since=T0)
    assert [s.rows for s in report.slices] == [1, 1, 0]
    assert read_rows(store, [part_key(MODEL, "3", T0 + timedelta(hours=1))])[0]["request_id"] == "edge"
    assert read_rows(store, [part_key(MODEL, "3", T0)])[0]["request_id"] == "before"


@pytest.mark.integration
def test_windows_respect_the_ingestion_lag(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    fake.add_rows(CONSOLE_TABLE, [console(T0 + timedelta(minutes=59), "late", [record(1)])])

    early = export_model(MODEL, source, store, now=T0 + timedelta(hours=1, minutes=9), since=T0)
    assert early.slices == [] and fake.requests == []  # 08:09 − 10 min = 07:59: the 07 slice is not whole
    assert read_watermark(store, MODEL)[0].high_water == T0

    later = export_model(MODEL, source, store, now=T0 + timedelta(hours=1, minutes=10))
    assert [s.rows for s in later.slices] == [1]
    assert later.horizon == T0 + timedelta(hours=1)

    custom = export_model(MODEL, source, with_contract(DirectoryStore(tmp_path / "c")), now=T0 + timedelta(hours=1, minutes=10),
                          since=T0, lag=timedelta(minutes=30))
    assert custom.slices == []


@pytest.mark.integration
def test_first_run_starts_a_lookback_before_the_horizon(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    report = export_model(MODEL, source, store, now=NOW, lookback=timedelta(hours=2))
    # horizon 10:05, minus 2 h = 08:05, floored to the hour: slices 08 and 09
    assert report.start == T0 + timedelta(hours=1)
    assert [s.start.hour for s in report.slices] == [8, 9]


@pytest.mark.integration
def test_smaller_slices_and_csv(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    rows, expected = traffic(hours=1)
    fake.add_rows(CONSOLE_TABLE, rows)

    report = export_model(MODEL, source, store, now=NOW, since=T0, slice_length=timedelta(minutes=30),
                          formats=("parquet", "csv"), max_slices=2)

    assert [s.start.minute for s in report.slices] == [0, 30]
    keys = store.list("exports/")
    assert part_key(MODEL, "3", T0 + timedelta(minutes=30), "csv") in keys
    csv_rows = []
    for key in (k for k in keys if k.endswith(".csv")):
        csv_rows += pcsv.read_csv(io.BytesIO(store.get(key)[0]),
                                  convert_options=pcsv.ConvertOptions(column_types=CREDIT_LAYOUT.schema)).to_pylist()
    assert sorted(csv_rows, key=sort_key) == sorted(expected, key=sort_key)
    assert sorted(read_rows(store, parquet_keys(store)), key=sort_key) == sorted(expected, key=sort_key)
    with pytest.raises(ValueError, match="divides an hour"):
        export_model(MODEL, source, store, now=NOW, slice_length=timedelta(minutes=7))
    with pytest.raises(ValueError, match="formats"):
        export_model(MODEL, source, store, now=NOW, formats=("xlsx",))


@pytest.mark.integration
def test_empty_windows_advance_and_write_nothing(fake, source, store):
    fake.add_rows(CONSOLE_TABLE, noise(T0 + timedelta(minutes=3)))
    report = export_model(MODEL, source, store, now=NOW, since=T0)
    assert [s.rows for s in report.slices] == [0, 0, 0]
    assert store.list("exports/") == []
    assert read_watermark(store, MODEL)[0].high_water == T0 + timedelta(hours=3)


# --- exactly once ---------------------------------------------------------------------------------

@pytest.mark.integration
def test_crash_before_the_watermark_moves_then_rerun_gives_identical_bytes(fake, source, store):
    rows, expected = traffic(hours=3)
    fake.add_rows(CONSOLE_TABLE, rows)
    crashing = FailingStore(store, fail_on=watermark_key(MODEL), times=None)
    # the watermark is created, then the first slice's objects are written and advancing fails
    store.put(watermark_key(MODEL), b'{"model": "credit-card-default", "high_water": "2026-05-09T07:00:00+00:00"}',
              if_absent=True)

    with pytest.raises(ExportError, match="watermark could not be advanced") as caught:
        export_model(MODEL, source, crashing, now=NOW, since=T0)
    assert caught.value.transient is True
    first_objects = {k: store.get(k)[0] for k in parquet_keys(store)}
    assert sorted(first_objects) == sorted(part_key(MODEL, v, T0) for v in ("3", "4"))
    assert read_watermark(store, MODEL)[0].high_water == T0  # not advanced

    report = export_model(MODEL, source, store, now=NOW)  # the rerun

    assert [s.start for s in report.slices] == [T0 + timedelta(hours=h) for h in range(3)]
    assert sorted(report.slices[0].reused) == sorted(first_objects)  # found, identical, taken as its own
    assert all(store.get(k)[0] == data for k, data in first_objects.items())
    got = read_rows(store, parquet_keys(store))
    assert len(got) == len(expected)  # no duplicate rows
    assert sorted(got, key=sort_key) == sorted(expected, key=sort_key)


@pytest.mark.integration
def test_crash_between_two_objects_of_a_slice(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    rows, expected = traffic(hours=1)
    fake.add_rows(CONSOLE_TABLE, rows)
    crashing = FailingStore(store, fail_on="/4/")  # version 3's object is written, version 4's fails

    with pytest.raises(ExportError):
        export_model(MODEL, source, crashing, now=NOW, since=T0, max_slices=1)
    assert parquet_keys(store) == [part_key(MODEL, "3", T0)]
    assert read_watermark(store, MODEL)[0].high_water == T0

    report = export_model(MODEL, source, store, now=NOW, max_slices=1)
    assert report.slices[0].reused == [part_key(MODEL, "3", T0)]
    assert sorted(read_rows(store, parquet_keys(store)), key=sort_key) == sorted(expected, key=sort_key)


@pytest.mark.integration
def test_bytes_do_not_depend_on_how_the_source_split_the_slice(fake, client, tmp_path):
    rows, _ = traffic(hours=1, per_hour=30)
    fake.add_rows(CONSOLE_TABLE, rows)
    one_query = LogAnalyticsInferenceLogs(client, WORKSPACE, enforce_https=False)
    many_queries = LogAnalyticsInferenceLogs(client, WORKSPACE, enforce_https=False, max_rows=7)
    a, b = with_contract(DirectoryStore(tmp_path / "a")), with_contract(DirectoryStore(tmp_path / "b"))

    export_model(MODEL, one_query, a, now=NOW, since=T0, max_slices=1, row_group_size=10)
    export_model(MODEL, many_queries, b, now=NOW, since=T0, max_slices=1, row_group_size=10)

    assert one_query.queries == 2 and many_queries.queries > 5
    assert parquet_keys(a) == parquet_keys(b) != []
    for key in parquet_keys(a):
        assert a.get(key)[0] == b.get(key)[0]
    assert pq.ParquetFile(io.BytesIO(a.get(parquet_keys(a)[0])[0])).metadata.num_row_groups > 1


@pytest.mark.integration
def test_an_object_with_other_bytes_stops_the_export(fake, source, store):
    fake.add_rows(CONSOLE_TABLE, traffic(hours=1)[0])
    store.put(part_key(MODEL, "3", T0), b"something else", if_absent=True)

    with pytest.raises(ExportError, match="different content") as caught:
        export_model(MODEL, source, store, now=NOW, since=T0)
    assert caught.value.transient is False
    assert read_watermark(store, MODEL)[0].high_water == T0
    assert store.get(part_key(MODEL, "3", T0))[0] == b"something else"


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["directory", "blob"])
def test_two_concurrent_exporters_do_not_duplicate(fake, tmp_path, request, kind):
    rows, expected = traffic(hours=3, per_hour=12)
    fake.add_rows(CONSOLE_TABLE, rows)
    shared = with_contract(DirectoryStore(tmp_path / "s")) if kind == "directory" else with_contract(blob_store(request.getfixturevalue("azurite")))
    start = threading.Barrier(2)
    reports: list[Any] = [None, None]

    def run(i: int) -> None:
        source = LogAnalyticsInferenceLogs(make_client(fake), WORKSPACE, enforce_https=False, max_rows=5)
        start.wait()
        reports[i] = export_model(MODEL, source, shared, now=NOW, since=T0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert all(r is not None and r.error == "" for r in reports), reports
    mark, _ = read_watermark(shared, MODEL)
    assert mark.high_water == T0 + timedelta(hours=3)
    assert (mark.slices, mark.rows) == (3, len(expected))  # each slice advanced exactly once
    got = read_rows(shared, parquet_keys(shared))
    assert len(got) == len(expected)
    assert sorted(got, key=sort_key) == sorted(expected, key=sort_key)
    # every slice was advanced by exactly one of them
    advanced = sorted(s.start for r in reports for s in r.slices if not s.by_other_instance)
    assert advanced == [T0 + timedelta(hours=h) for h in range(3)]


@pytest.mark.integration
def test_export_models_keeps_going_past_a_failing_model(fake, source, tmp_path):
    from functions.services.export import export_models

    store = with_contract(DirectoryStore(tmp_path / "s"))
    fake.add_rows(CONSOLE_TABLE, traffic(hours=1)[0])
    reports = export_models(['bad"name', MODEL], source, store, now=NOW, since=T0, max_slices=1)
    assert "invalid" in reports['bad"name'].error
    assert reports[MODEL].error == "" and reports[MODEL].rows > 0


class FailingFetches:
    """Evaluator wrapper: fetch queries after the first `ok` answer 503 (the SDK retries, then gives up)."""

    def __init__(self, inner: Any, ok: int) -> None:
        self.inner, self.ok = inner, ok

    def __call__(self, query: str, timespan: Any) -> Any:
        from tests.fake_log_analytics import QueryError

        if "mv-expand" in query:
            if self.ok <= 0:
                raise QueryError("The service is temporarily unavailable", code="ServiceUnavailableError", status=503)
            self.ok -= 1
        return self.inner(query, timespan)


@pytest.mark.integration
def test_a_failure_in_the_middle_of_a_slice_writes_nothing_and_leaves_no_thread(fake, client, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    rows, expected = traffic(hours=1, per_hour=30)
    fake.add_rows(CONSOLE_TABLE, rows)
    source = LogAnalyticsInferenceLogs(client, WORKSPACE, enforce_https=False, max_rows=10)
    fake.evaluator = FailingFetches(fake.evaluator, ok=3)
    threads = threading.active_count()

    with pytest.raises(ExportError, match="HTTP 503") as caught:
        export_model(MODEL, source, store, now=NOW, since=T0)

    assert caught.value.transient is True
    assert store.list("exports/") == [] and read_watermark(store, MODEL)[0].high_water == T0
    assert threading.active_count() == threads  # the prefetch and writer threads are gone

    fake.evaluator = fake.evaluator.inner  # the service is back: the rerun exports the slice whole
    report = export_model(MODEL, source, store, now=NOW, max_slices=1)
    assert sorted(read_rows(store, parquet_keys(store)), key=sort_key) == sorted(expected, key=sort_key)
    assert report.rows == len(expected)


# --- the source contract --------------------------------------------------------------------------

def _flat(at: datetime, request_id: str, i: int) -> dict[str, Any]:
    return {"TimeGenerated": at, "request_id": request_id, "model_version": "3", "deployment": None,
            "record_index": 0, **{k: float(v) if k in NUMERIC else v for k, v in record(i).items()}}


def test_the_source_contract_is_enforced(tmp_path):
    early, late = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    ok = ListSource([[_flat(early, "a", 1)], Malformed(2), [_flat(late, "b", 2)]])
    report = export_model(MODEL, ok, with_contract(DirectoryStore(tmp_path / "ok")), now=NOW, since=T0, max_slices=1)
    assert (report.rows, report.malformed) == (2, 2)

    # What is wrong with the source itself (not with a record) still stops the slice: a value that
    # cannot be written is quarantined instead (tests/test_export_quarantine.py), but a column whose
    # type has no cast at all is the source's bug, and so is a batch out of order or out of the window.
    for batches, message in (([[_flat(late, "b", 2)], [_flat(early, "a", 1)]], "out of time order"),
                             ([[_flat(T0 + timedelta(hours=1), "c", 3)]], "outside"),
                             ([pa.table({**{c: pa.array([v]) for c, v in _flat(early, "e", 5).items() if c != "deployment"},
                                         "age": pa.array([[41]])})], "'age' is not double"),
                             ([{"not": "a table"}], "not a table")):
        store = with_contract(DirectoryStore(tmp_path / uuid.uuid4().hex))
        with pytest.raises(ExportError, match=message):
            export_model(MODEL, ListSource(batches), store, now=NOW, since=T0, max_slices=1)
        assert store.list("exports/") == []


# --- records that cannot be written: quarantined, counted, the watermark moves --------------------

def surrogate_record(i: int) -> dict[str, Any]:
    """A record as the old score.py accepted it: JSON "\\ud800" in a categorical is a lone surrogate
    in Python, which no UTF-8 encoder (nor Arrow) takes."""
    return {**record(i), "sex": "\ud800"}


def read_quarantine(store: Store, key: str) -> list[dict[str, Any]]:
    data, _ = store.get(key)
    text = data.decode("utf-8")  # strict: the object must be valid UTF-8
    assert data.isascii() and text.endswith("\n")  # every non-ASCII character is a \\u escape
    return [json.loads(line) for line in text.splitlines()]


def test_a_lone_surrogate_in_a_console_log_is_quarantined_and_the_export_moves_on(store, tmp_path):
    home = tmp_path / "home"
    at = T0 + timedelta(minutes=20)
    # input_line writes the line as the old score.py did: json.dumps(..., separators=(",", ":")) of a
    # record whose data string holds the escaped \ud800 (ensure_ascii, the json default)
    lines = [input_line(MODEL, "3", "before", [record(1)], at=at - timedelta(minutes=5)),
             input_line(MODEL, "3", "poisoned", [record(2), surrogate_record(3)], at=at),
             input_line(MODEL, "4", "after", [record(4)], at=at + timedelta(minutes=5)),
             input_line(MODEL, "3", "next-hour", [record(5)], at=T0 + timedelta(hours=1, minutes=1))]
    assert "\\\\ud800" in lines[1]
    write_log(home, "credit", "blue", lines)
    local = LocalInferenceLogs(home)
    key = quarantine_key(MODEL, T0)

    # first run: the slice's objects are written, then advancing the watermark fails (a crash)
    store.put(watermark_key(MODEL), b'{"model": "credit-card-default", "high_water": "2026-05-09T07:00:00+00:00"}',
              if_absent=True)
    with pytest.raises(ExportError, match="watermark could not be advanced"):
        export_model(MODEL, local, FailingStore(store, fail_on=watermark_key(MODEL), times=None), now=NOW,
                     max_slices=1)
    first = store.get(key)[0]
    parts = {k: store.get(k)[0] for k in parquet_keys(store)}
    assert read_watermark(store, MODEL)[0].high_water == T0

    # the rerun takes the same objects as its own and counts the record once
    report = export_model(MODEL, local, store, now=NOW, max_slices=1)

    assert report.error == "" and report.high_water == T0 + timedelta(hours=1)
    [done] = report.slices
    assert (done.rows, done.malformed, done.quarantined, done.quarantine) == (3, 0, 1, key)
    assert key in done.reused and store.get(key)[0] == first  # identical bytes
    assert all(store.get(k)[0] == data for k, data in parts.items())
    got = read_rows(store, parquet_keys(store))
    assert sorted((r["request_id"], r["record_index"]) for r in got) == [("after", 0), ("before", 0), ("poisoned", 0)]
    [kept] = read_quarantine(store, key)
    assert kept["kind"] == "record" and kept["reason"].startswith("sex: UnicodeEncodeError")
    assert kept["record"]["sex"] == "\ud800"  # json.loads gives the very string back
    assert (kept["record"]["request_id"], kept["record"]["record_index"]) == ("poisoned", 1)
    assert kept["record"]["age"] == float(surrogate_record(3)["age"])
    as_dict = report.to_dict()
    assert (as_dict["quarantined"], as_dict["malformed"], as_dict["quarantine"]) == (1, 0, [key])
    mark, _ = read_watermark(store, MODEL)
    assert (mark.high_water, mark.rows, mark.quarantined, mark.malformed) == (T0 + timedelta(hours=1), 3, 1, 0)
    assert mark.recent[-1]["quarantined"] == 1 and mark.recent[-1]["quarantine"] == key

    # the next slice exports normally, and nothing is counted twice
    nxt = export_model(MODEL, local, store, now=NOW, max_slices=1)
    assert (nxt.rows, nxt.quarantined, nxt.error) == (1, 0, "") and nxt.slices[0].quarantine == ""
    mark, _ = read_watermark(store, MODEL)
    assert (mark.high_water, mark.rows, mark.quarantined) == (T0 + timedelta(hours=2), 4, 1)
    assert [e["quarantined"] for e in mark.recent] == [1, 0]
    assert store.list("quarantine/") == [key]


@pytest.mark.integration
def test_text_in_a_real_column_of_an_answer_is_quarantined_not_nulled(fake, source, store):
    """An answer the service should never give (todouble() makes text null): a real column holding
    "twelve". Its records cannot be written as they are; they are kept, counted, and the slice and
    the watermark move on — a rerun finds identical objects."""
    at = T0 + timedelta(minutes=30)
    fake.add_rows(CONSOLE_TABLE, [console(at, "fine", [record(1), record(2)]),
                                  console(at + timedelta(seconds=1), "broken", [record(3), record(4)], version="4"),
                                  console(T0 + timedelta(hours=1, minutes=2), "later", [record(5)])])
    fake.evaluator = RewriteFetches(fake.evaluator, "broken", {"age": "twelve"})
    key = quarantine_key(MODEL, T0)

    report = export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1)

    [done] = report.slices
    assert sorted(r["request_id"] for r in read_rows(store, parquet_keys(store))) == ["fine", "fine"]  # not guessed
    assert (done.rows, done.quarantined, done.quarantine, report.error) == (2, 2, key, "")
    assert read_watermark(store, MODEL)[0].high_water == T0 + timedelta(hours=1)
    kept = read_quarantine(store, key)
    assert [(k["record"]["request_id"], k["record"]["record_index"], k["record"]["age"]) for k in kept] == [
        ("broken", 0, "twelve"), ("broken", 1, "twelve")]
    assert all(k["kind"] == "record" and k["reason"].startswith("age: ArrowInvalid") for k in kept)
    first = store.get(key)[0]

    # a rerun of the same slice (another instance, a timer retry) writes identical bytes, counts nothing
    again = export_slice_again(source, store)
    assert again.quarantined == 2 and key in again.reused and store.get(key)[0] == first
    assert read_watermark(store, MODEL)[0].quarantined == 2

    nxt = export_model(MODEL, source, store, now=NOW, max_slices=1)
    assert (nxt.rows, nxt.quarantined) == (1, 0)


def export_slice_again(source: Any, store: Store) -> Any:
    from functions.services.export import export_slice

    return export_slice(MODEL, source, store, T0, T0 + timedelta(hours=1), layout=CREDIT_LAYOUT)
