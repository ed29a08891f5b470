"""Inference-log export (functions/services/export.py) from both sources into real stores:

- Azure: LogAnalyticsInferenceLogs through the real azure-monitor-query LogsQueryClient
  (send_request: its pipeline, bearer policy, retries) against the fake Log Analytics query
  service (tests/fake_log_analytics.py, a real HTTP server on 127.0.0.1) with the export's
  evaluator (tests/fake_inference_logs.py);
- local: LocalInferenceLogs over console logs laid out as the local endpoints write them;
- stores: DirectoryStore, and BlobStore on a real Azurite (tests/azurite.py: in-memory, loopback)
  through azure-storage-blob.

Crash and rerun, concurrent exporters, partial answers, empty windows, malformed lines, hostile
model names and the ingestion lag are each exercised on the wire and in the stored bytes.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from azure.core.credentials import AccessToken

from functions.adapters.azure.inference_logs import (
    FETCH_COLUMNS,
    LogAnalyticsInferenceLogs,
    _parse_rows_as_csv,
    _parse_with_json,
    fetch_query,
    inference_logs_client,
    parse_answer,
    summary_query,
)
from functions.adapters.local.inference_logs import LocalInferenceLogs
from functions.adapters.local.store import DirectoryStore
from functions.ports import InferenceLogSource, Malformed, PlatformError, Store
from functions.services.export import export_model, part_key, quarantine_key, read_watermark, watermark_key
from functions.services.export import ExportError
from functions.shared.export_table import COLUMNS, export_schema
from functions.shared.names import InvalidName
from ml.schema import CATEGORICAL, FEATURES, NUMERIC
from tests.fake_inference_logs import InferenceLogEvaluator, input_line
from tests.fake_log_analytics import BYTE_LIMIT, CONSOLE_TABLE, ROW_LIMIT, FakeLogAnalytics, Result, tokenize
from tests.fakes import MemoryStore

pytest_plugins = ["tests.azurite"]  # the session-wide `azurite` fixture
pytestmark = pytest.mark.integration

WORKSPACE = "6f1c1c6e-0000-4000-8000-00000000beef"
MODEL = "credit-card-default"
T0 = datetime(2026, 5, 9, 7, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=3, minutes=15)  # horizon 10:05: slices 07, 08, 09 are whole and past the lag


class FakeCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", int((datetime.now(timezone.utc) + timedelta(hours=1)).timestamp()))


# --- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake():
    with FakeLogAnalytics(workspace_ids={WORKSPACE}) as server:
        # The adapter streams answers (stream=True); azure-core's retry policy leaves the body of a
        # response it retries (503) unread and drops that keep-alive connection, which the stdlib
        # server reports as a reset on stderr. Harmless: keep the test output clean.
        server._server.handle_error = lambda request, client_address: None
        yield server


@pytest.fixture(autouse=True)
def clean(fake):
    fake.clear_rows()
    fake.clear_faults()
    fake.clear_requests()
    fake.evaluator = InferenceLogEvaluator(fake)
    fake.row_limit, fake.byte_limit = ROW_LIMIT, BYTE_LIMIT
    yield
    assert fake.errors == [], f"the fake evaluator crashed: {fake.errors}"


def make_client(fake: FakeLogAnalytics) -> Any:
    return inference_logs_client(endpoint=fake.url, credential=FakeCredential(), retry_total=2,
                                 retry_backoff_factor=0.01, retry_backoff_max=0.05)


@pytest.fixture(scope="module")
def client(fake):
    return make_client(fake)


@pytest.fixture
def source(client) -> LogAnalyticsInferenceLogs:
    return LogAnalyticsInferenceLogs(client, WORKSPACE, enforce_https=False)


def blob_store(conn: str) -> Store:
    from functions.adapters.azure.blob_store import blob_store_from_settings

    return blob_store_from_settings(connection_string=conn, container=f"t-{uuid.uuid4().hex}")


@pytest.fixture(params=["directory", "blob"])
def store(request, tmp_path) -> Store:
    if request.param == "directory":
        return DirectoryStore(tmp_path / "store")
    return blob_store(request.getfixturevalue("azurite"))


# --- data -----------------------------------------------------------------------------------------

def record(i: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, f in enumerate(FEATURES):
        if f.kind == "categorical":
            out[f.name] = f.domain[(i + k) % len(f.domain)]
        else:
            out[f.name] = i * 100 + k if k % 2 else i * 100.5 + k  # ints and floats, as requests send them
    return out


def console(at: datetime, request_id: str, records: list[dict], *, version: str = "3", deployment: str = "blue",
            model: str = MODEL) -> dict[str, Any]:
    return {"TimeGenerated": at, "DeploymentName": deployment, "ContainerName": "inference-server",
            "Message": input_line(model, version, request_id, records, at=at)}


def traffic(hours: int = 3, per_hour: int = 6) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Console rows (two versions on two deployments, 1–3 records per request) and the export rows
    they should become, in the exporter's order."""
    rows, expected = [], []
    n = 0
    for h in range(hours):
        for j in range(per_hour):
            at = T0 + timedelta(hours=h, minutes=j * (60 // per_hour), seconds=7, microseconds=123456)
            version, deployment = ("4", "green") if j % 3 == 2 else ("3", "blue")
            records = [record(n + r) for r in range(1 + j % 3)]
            request_id = f"req-{h}-{j}"
            rows.append(console(at, request_id, records, version=version, deployment=deployment))
            for index, rec in enumerate(records):
                expected.append({"TimeGenerated": at, "request_id": request_id, "model_version": version,
                                 "deployment": deployment, "record_index": index,
                                 **{k: (float(v) if k in NUMERIC else v) for k, v in rec.items()}})
            n += len(records)
    return rows, expected


def noise(at: datetime) -> list[dict[str, Any]]:
    """Console lines that are not InputData of this model: never rows, never malformed."""
    return [
        {"TimeGenerated": at, "DeploymentName": "blue", "Message": "2026-05-09 07:00:01,000 I [7] gunicorn.access - "
                                                                  '"POST /score HTTP/1.1" 200 38'},
        {"TimeGenerated": at, "DeploymentName": "blue",
         "Message": json.dumps({"service_name": f"online/{MODEL}/3", "type": "OutputData", "request_id": "x",
                                "data": [0.5]})},
        {"TimeGenerated": at, "DeploymentName": "blue",  # another model whose name extends ours
         "Message": input_line(MODEL + "-v2", "1", "other", [record(0)], at=at)},
        {"TimeGenerated": at, "DeploymentName": "blue",  # another model, ours mentioned in a value
         "Message": input_line("fraud", "1", "other", [{**record(0), "sex": f"online/{MODEL}/3 InputData"}], at=at)},
    ]


def read_rows(store: Store, keys: list[str]) -> list[dict[str, Any]]:
    out = []
    for key in keys:
        data, _ = store.get(key)
        out.extend(pq.read_table(io.BytesIO(data)).to_pylist())
    return out


def sort_key(row: dict[str, Any]) -> tuple:
    return (row["TimeGenerated"], row["request_id"], row["record_index"])


def parquet_keys(store: Store, model: str = MODEL) -> list[str]:
    return [k for k in store.list(f"exports/{model}/") if k.endswith(".parquet")]


class FailingStore:
    """A Store that fails (once, or always) on matching writes: a crash between two writes."""

    def __init__(self, inner: Store, fail_on: str, times: int | None = 1) -> None:
        self.inner, self.fail_on, self.times = inner, fail_on, times

    def get(self, key: str):
        return self.inner.get(key)

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        if self.fail_on in key and (self.times is None or self.times > 0):
            if self.times is not None:
                self.times -= 1
            raise PlatformError(f"injected crash writing {key}", transient=True)
        return self.inner.put(key, data, **kwargs)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


# --- the port and the queries --------------------------------------------------------------------

def test_sources_implement_the_port(source, tmp_path):
    assert isinstance(source, InferenceLogSource)
    assert isinstance(LocalInferenceLogs(tmp_path), InferenceLogSource)


def test_fetch_explodes_requests_into_typed_rows(fake, source):
    rows, expected = traffic(hours=1)
    fake.add_rows(CONSOLE_TABLE, rows + noise(T0 + timedelta(minutes=1)))

    assert source.count(MODEL, T0, T0 + timedelta(hours=1)) == len(expected)
    batches = list(source.fetch(MODEL, T0, T0 + timedelta(hours=1)))

    tables = [b for b in batches if isinstance(b, pa.Table)]
    assert [b for b in batches if isinstance(b, Malformed)] == []
    got = pa.concat_tables(tables)
    assert got.schema == export_schema()
    assert sorted(got.to_pylist(), key=sort_key) == sorted(expected, key=sort_key)


def test_queries_on_the_wire(fake, source):
    fake.add_rows(CONSOLE_TABLE, traffic(hours=1)[0])
    list(source.fetch(MODEL, T0, T0 + timedelta(hours=1)))

    summary, fetch = fake.requests
    for sent in (summary, fetch):
        assert sent.method == "POST" and sent.path == f"/v1/workspaces/{WORKSPACE}/query"
        assert sent.header("Authorization") == "Bearer fake-token"
        assert sent.header("User-Agent").startswith("azsdk-python-monitor-query/")
        assert sent.timespan == "2026-05-09T07:00:00.000Z/2026-05-09T08:00:00.000Z"
        assert "TimeGenerated >= datetime(2026-05-09T07:00:00.000000Z)" in sent.query
        assert "TimeGenerated < datetime(2026-05-09T08:00:00.000000Z)" in sent.query
        # the model name is only ever inside escaped string literals
        literals = [tokenize(text)[0].value for text in re.findall(r'"(?:[^"\\]|\\.)*"', sent.query)]
        assert sent.query.count(MODEL) == sum(lit.count(MODEL) for lit in literals) == 2
    assert summary.query == summary_query(MODEL, T0, T0 + timedelta(hours=1))
    assert fetch.query == fetch_query(MODEL, T0, T0 + timedelta(hours=1))
    assert "| summarize Messages = countif(mine), Records = sumif(array_length(d), mine)" in summary.query
    assert "credit_limit = todouble(rec['credit_limit'])" in fetch.query and "sex = tostring(rec['sex'])" in fetch.query
    assert "| mv-expand with_itemindex=record_index rec = d" in fetch.query


def test_empty_window_sends_one_summary_and_no_fetch(fake, source):
    fake.add_rows(CONSOLE_TABLE, noise(T0 + timedelta(minutes=5)))
    assert list(source.fetch(MODEL, T0, T0 + timedelta(hours=1))) == []
    assert len(fake.requests) == 1


# --- exporting -------------------------------------------------------------------------------------

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
        assert table.schema == export_schema()
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


def test_columns_are_typed_per_the_schema(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    odd = {**record(1), "sex": None, "education": "", "age": 41, "credit_limit": 1e20, "bill_amount_1": None}
    fake.add_rows(CONSOLE_TABLE, [console(T0 + timedelta(seconds=1), "r1", [odd])])

    export_model(MODEL, source, store, now=NOW, since=T0, lag=timedelta(minutes=10))

    [key] = parquet_keys(store)
    table = pq.read_table(io.BytesIO(store.get(key)[0]))
    assert table.column_names == list(COLUMNS)
    assert table.schema.field("TimeGenerated").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("record_index").type == pa.int32()
    assert all(table.schema.field(n).type == pa.string() for n in CATEGORICAL + ("request_id", "deployment"))
    assert all(table.schema.field(n).type == pa.float64() for n in NUMERIC)
    [row] = table.to_pylist()
    assert row["TimeGenerated"] == T0 + timedelta(seconds=1)
    assert (row["sex"], row["education"]) == (None, None)  # null and "" are both null (Kusto cannot tell)
    assert (row["age"], row["credit_limit"], row["bill_amount_1"]) == (41.0, 1e20, None)


def test_half_open_slices_put_a_boundary_row_in_the_later_hour(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    fake.add_rows(CONSOLE_TABLE, [console(T0 + timedelta(hours=1), "edge", [record(1)]),
                                  console(T0 + timedelta(hours=1) - timedelta(microseconds=1), "before", [record(2)])])
    report = export_model(MODEL, source, store, now=NOW, since=T0)
    assert [s.rows for s in report.slices] == [1, 1, 0]
    assert read_rows(store, [part_key(MODEL, "3", T0 + timedelta(hours=1))])[0]["request_id"] == "edge"
    assert read_rows(store, [part_key(MODEL, "3", T0)])[0]["request_id"] == "before"


def test_windows_respect_the_ingestion_lag(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    fake.add_rows(CONSOLE_TABLE, [console(T0 + timedelta(minutes=59), "late", [record(1)])])

    early = export_model(MODEL, source, store, now=T0 + timedelta(hours=1, minutes=9), since=T0)
    assert early.slices == [] and fake.requests == []  # 08:09 − 10 min = 07:59: the 07 slice is not whole
    assert read_watermark(store, MODEL)[0].high_water == T0

    later = export_model(MODEL, source, store, now=T0 + timedelta(hours=1, minutes=10))
    assert [s.rows for s in later.slices] == [1]
    assert later.horizon == T0 + timedelta(hours=1)

    custom = export_model(MODEL, source, DirectoryStore(tmp_path / "c"), now=T0 + timedelta(hours=1, minutes=10),
                          since=T0, lag=timedelta(minutes=30))
    assert custom.slices == []


def test_first_run_starts_a_lookback_before_the_horizon(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    report = export_model(MODEL, source, store, now=NOW, lookback=timedelta(hours=2))
    # horizon 10:05, minus 2 h = 08:05, floored to the hour: slices 08 and 09
    assert report.start == T0 + timedelta(hours=1)
    assert [s.start.hour for s in report.slices] == [8, 9]


def test_smaller_slices_and_csv(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
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
                                  convert_options=pcsv.ConvertOptions(column_types=export_schema())).to_pylist()
    assert sorted(csv_rows, key=sort_key) == sorted(expected, key=sort_key)
    assert sorted(read_rows(store, parquet_keys(store)), key=sort_key) == sorted(expected, key=sort_key)
    with pytest.raises(ValueError, match="divides an hour"):
        export_model(MODEL, source, store, now=NOW, slice_length=timedelta(minutes=7))
    with pytest.raises(ValueError, match="formats"):
        export_model(MODEL, source, store, now=NOW, formats=("xlsx",))


def test_empty_windows_advance_and_write_nothing(fake, source, store):
    fake.add_rows(CONSOLE_TABLE, noise(T0 + timedelta(minutes=3)))
    report = export_model(MODEL, source, store, now=NOW, since=T0)
    assert [s.rows for s in report.slices] == [0, 0, 0]
    assert store.list("exports/") == []
    assert read_watermark(store, MODEL)[0].high_water == T0 + timedelta(hours=3)


# --- exactly once ---------------------------------------------------------------------------------

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


def test_crash_between_two_objects_of_a_slice(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
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


def test_bytes_do_not_depend_on_how_the_source_split_the_slice(fake, client, tmp_path):
    rows, _ = traffic(hours=1, per_hour=30)
    fake.add_rows(CONSOLE_TABLE, rows)
    one_query = LogAnalyticsInferenceLogs(client, WORKSPACE, enforce_https=False)
    many_queries = LogAnalyticsInferenceLogs(client, WORKSPACE, enforce_https=False, max_rows=7)
    a, b = DirectoryStore(tmp_path / "a"), DirectoryStore(tmp_path / "b")

    export_model(MODEL, one_query, a, now=NOW, since=T0, max_slices=1, row_group_size=10)
    export_model(MODEL, many_queries, b, now=NOW, since=T0, max_slices=1, row_group_size=10)

    assert one_query.queries == 2 and many_queries.queries > 5
    assert parquet_keys(a) == parquet_keys(b) != []
    for key in parquet_keys(a):
        assert a.get(key)[0] == b.get(key)[0]
    assert pq.ParquetFile(io.BytesIO(a.get(parquet_keys(a)[0])[0])).metadata.num_row_groups > 1


def test_an_object_with_other_bytes_stops_the_export(fake, source, store):
    fake.add_rows(CONSOLE_TABLE, traffic(hours=1)[0])
    store.put(part_key(MODEL, "3", T0), b"something else", if_absent=True)

    with pytest.raises(ExportError, match="different content") as caught:
        export_model(MODEL, source, store, now=NOW, since=T0)
    assert caught.value.transient is False
    assert read_watermark(store, MODEL)[0].high_water == T0
    assert store.get(part_key(MODEL, "3", T0))[0] == b"something else"


@pytest.mark.parametrize("kind", ["directory", "blob"])
def test_two_concurrent_exporters_do_not_duplicate(fake, tmp_path, request, kind):
    rows, expected = traffic(hours=3, per_hour=12)
    fake.add_rows(CONSOLE_TABLE, rows)
    shared = DirectoryStore(tmp_path / "s") if kind == "directory" else blob_store(request.getfixturevalue("azurite"))
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


# --- partial answers and failures ----------------------------------------------------------------

def test_partial_answer_is_split_and_retried(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    rows, expected = traffic(hours=1, per_hour=30)
    fake.add_rows(CONSOLE_TABLE, rows)
    fake.row_limit = 20  # the service's row limit, small: whole-hour answers come back cut

    report = export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1)

    assert source.splits >= 2
    statuses = [r.status for r in fake.requests]
    assert statuses.count(200) == len(statuses)
    assert sorted(read_rows(store, parquet_keys(store)), key=sort_key) == sorted(expected, key=sort_key)
    assert report.rows == len(expected)


class PartialFetches:
    """Evaluator wrapper: the next `times` fetch answers (None: all) come back partial, cut to
    `keep_rows` rows, the way the service marks a result that hit its limits."""

    def __init__(self, inner: Any, times: int | None = 1, keep_rows: int = 3) -> None:
        self.inner, self.times, self.keep_rows = inner, times, keep_rows

    def __call__(self, query: str, timespan: Any) -> Any:
        from tests.fake_log_analytics import Result, limit_error

        result = self.inner(query, timespan)
        if "mv-expand" not in query or self.times == 0:
            return result
        if self.times is not None:
            self.times -= 1
        return Result(result.columns, encoded_rows=list(result.encoded_rows)[:self.keep_rows],
                      error=limit_error("record count limit (injected)"))


def test_an_injected_partial_answer_is_dropped_and_its_window_fetched_again(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    rows, expected = traffic(hours=1)
    fake.add_rows(CONSOLE_TABLE, rows)
    fake.evaluator = PartialFetches(fake.evaluator, times=1)

    report = export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1)

    assert source.splits == 1
    fetches = [r.query for r in fake.requests if "mv-expand" in (r.query or "")]
    assert len(fetches) == 3  # the hour (partial, dropped), then its two halves
    assert "TimeGenerated < datetime(2026-05-09T07:30:00.000000Z)" in fetches[1]
    assert sorted(read_rows(store, parquet_keys(store)), key=sort_key) == sorted(expected, key=sort_key)
    assert report.rows == len(expected)


def test_a_partial_summary_is_an_error(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    fake.add_rows(CONSOLE_TABLE, traffic(hours=1)[0])
    fake.partial_next(keep_rows=0)  # the summary comes first
    with pytest.raises(ExportError, match="partial result") as caught:
        export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1)
    assert caught.value.transient is True
    assert read_watermark(store, MODEL)[0].high_water == T0


def test_a_partial_answer_that_persists_stops_the_export_and_keeps_the_watermark(fake, client, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    fake.add_rows(CONSOLE_TABLE, traffic(hours=1)[0])
    source = LogAnalyticsInferenceLogs(client, WORKSPACE, enforce_https=False, max_depth=3)
    fake.evaluator = PartialFetches(fake.evaluator, times=None)

    with pytest.raises(ExportError, match="keeps returning a partial result") as caught:
        export_model(MODEL, source, store, now=NOW, since=T0)

    assert "E_QUERY_RESULT_SET_TOO_LARGE" in str(caught.value)
    assert caught.value.transient is True
    assert caught.value.report.slices == [] and caught.value.report.error
    assert read_watermark(store, MODEL)[0].high_water == T0
    assert parquet_keys(store) == []
    fetches = [r for r in fake.requests if "mv-expand" in (r.query or "")]
    assert len(fetches) == 4  # the hour, its first half, its first quarter, its first eighth: then give up


def test_503_is_retried_by_the_sdk_then_transient(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    fake.add_rows(CONSOLE_TABLE, traffic(hours=1)[0])
    fake.fail_next(503, times=1)
    assert export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1).rows > 0

    fake.fail_next(503, times=None)
    with pytest.raises(ExportError) as caught:
        export_model(MODEL, source, store, now=NOW, max_slices=1)
    assert caught.value.transient is True and "HTTP 503" in str(caught.value)
    assert read_watermark(store, MODEL)[0].high_water == T0 + timedelta(hours=1)


def test_400_is_permanent(fake, source, tmp_path):
    fake.fail_next(400)
    with pytest.raises(ExportError) as caught:
        export_model(MODEL, source, DirectoryStore(tmp_path / "s"), now=NOW, since=T0)
    assert caught.value.transient is False and "HTTP 400" in str(caught.value)


def test_https_is_enforced_by_default(fake, client, tmp_path):
    strict = LogAnalyticsInferenceLogs(client, WORKSPACE)
    with pytest.raises(ExportError, match="non-TLS"):
        export_model(MODEL, strict, DirectoryStore(tmp_path / "s"), now=NOW, since=T0)
    assert fake.requests == []


# --- malformed lines and hostile names ----------------------------------------------------------------

def test_malformed_lines_are_counted_not_exported(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    at = T0 + timedelta(minutes=10)
    prefix = f'{{"service_name":"online/{MODEL}/3","type":"InputData"'
    good = console(at, "ok", [record(1), record(2)])
    bad = [
        {"TimeGenerated": at, "DeploymentName": "blue", "Message": prefix + ',"request_id":"x","data":"[{'},  # cut
        {"TimeGenerated": at, "DeploymentName": "blue", "Message": prefix + ',"request_id":"y","data":"not json"}'},
        {"TimeGenerated": at, "DeploymentName": "blue", "Message": prefix + ',"request_id":"z","data":"{\\"a\\":1}"}'},
        # a list with one good record and two that are not objects: 1 row, 2 malformed records
        {"TimeGenerated": at, "DeploymentName": "blue",
         "Message": input_line(MODEL, "3", "mixed", [record(3), 7, "x"], at=at)},
    ]
    fake.add_rows(CONSOLE_TABLE, [good] + bad + noise(at))

    report = export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1)

    assert report.malformed == 3 + 2
    assert report.rows == 3
    assert sorted(r["request_id"] for r in read_rows(store, parquet_keys(store))) == ["mixed", "ok", "ok"]
    assert read_watermark(store, MODEL)[0].malformed == 5


def test_rows_with_versions_that_cannot_be_keys_are_malformed(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    at = T0 + timedelta(minutes=10)
    fake.add_rows(CONSOLE_TABLE, [console(at, "a", [record(1)], version="3"),
                                  console(at, "b", [record(2)], version="../../etc"),
                                  console(at, "c", [record(3)], version="")])
    report = export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1)
    assert (report.rows, report.malformed) == (1, 2)
    assert parquet_keys(store) == [part_key(MODEL, "3", T0)]


HOSTILE = [
    'credit" or 1 == 1 or "',
    'credit"\n| take 100000 //',
    "credit\\",
    "cr'edit",
    "credit | project Message",
    "credit\n",
    "credit.",
    "-credit",
    "cred it",
    "crédit",
    "credit\x00",
    "credit\u2028x",
    "credit/3",
    "..",
    "",
    "x" * 256,
    None,
    42,
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_model_names_are_rejected_before_any_query(fake, source, tmp_path, name):
    store = MemoryStore()
    with pytest.raises(InvalidName):
        export_model(name, source, store, now=NOW, since=T0)
    with pytest.raises(InvalidName):
        source.count(name, T0, NOW)
    with pytest.raises(InvalidName):
        list(source.fetch(name, T0, NOW))
    with pytest.raises(InvalidName):
        LocalInferenceLogs(tmp_path).count(name, T0, NOW)
    assert fake.requests == [] and store.objects == {}


@pytest.mark.parametrize("name", ["a", "credit-card-default", "Model_2.v1", "x" * 255, "0abc"])
def test_valid_model_names_pass(fake, source, name):
    assert source.count(name, T0, T0 + timedelta(hours=1)) == 0
    assert len(fake.requests) == 1


# --- the fast answer reader ----------------------------------------------------------------------------

def _answer(rows: list[list[Any]], *, ensure_ascii: bool = False, **extra: Any) -> bytes:
    columns = [{"name": n, "type": "datetime" if n == "TimeGenerated" else "long" if n == "record_index" else
                "real" if n in NUMERIC else "string"} for n in FETCH_COLUMNS]
    body = {"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}], **extra}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=ensure_ascii).encode()


def _row(i: int, **cells: Any) -> list[Any]:
    base = {"TimeGenerated": f"2026-05-09T07:00:{i:02d}.1234567Z", "request_id": f"r{i}", "model_version": "3",
            "deployment": "blue", "record_index": i, **{n: "x" for n in CATEGORICAL}, **{n: float(i) for n in NUMERIC}}
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
    from functions.adapters.azure.inference_logs import _Unusual

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


# --- the local source -----------------------------------------------------------------------------------

def write_log(home: Path, endpoint: str, deployment: str, lines: list[str], *, tail: str = "",
              written: datetime | None = T0 + timedelta(days=1)) -> Path:
    """Append console lines; the file's mtime is set to `written` (the source skips logs last
    written before a window), so the tests do not depend on today's date."""
    path = home / "endpoints" / endpoint / "deployments" / deployment / "console.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write("".join(line + "\n" for line in lines) + tail)
    if written is not None:
        os.utime(path, (written.timestamp(), written.timestamp()))
    return path


def local_home_from(rows: list[dict[str, Any]], home: Path) -> None:
    """The same console rows as local console logs (one file per deployment)."""
    by_deployment: dict[str, list[str]] = {}
    for row in rows:
        by_deployment.setdefault(row["DeploymentName"], []).append(row["Message"])
    for deployment, lines in by_deployment.items():
        write_log(home, "credit", deployment, ["2026-05-09 07:00:00,000 I [1] gunicorn.error - Booting worker"] + lines)


def test_local_source_exports_the_same_bytes_as_log_analytics(fake, source, tmp_path):
    rows, expected = traffic(hours=3)
    fake.add_rows(CONSOLE_TABLE, rows)
    local_home_from(rows, tmp_path / "home")
    from_azure, from_local = DirectoryStore(tmp_path / "a"), DirectoryStore(tmp_path / "l")

    export_model(MODEL, source, from_azure, now=NOW, since=T0)
    report = export_model(MODEL, LocalInferenceLogs(tmp_path / "home"), from_local, now=NOW, since=T0)

    assert report.rows == len(expected) and report.malformed == 0
    assert parquet_keys(from_azure) == parquet_keys(from_local) != []
    for key in parquet_keys(from_local):
        assert from_azure.get(key)[0] == from_local.get(key)[0]


def test_local_source_counts_malformed_lines_and_leaves_a_line_being_written(tmp_path):
    home = tmp_path / "home"
    at = T0 + timedelta(minutes=5)
    good = input_line(MODEL, "3", "ok", [record(1)], at=at)
    write_log(home, "credit", "blue", [
        "Azure ML Inferencing HTTP server v1.5.1",
        good,
        '{"service_name":"online/credit-card-default/3","type":"InputData","time":"' + at.isoformat() + '","data":"[{',
        '{"service_name":"online/credit-card-default/3","type":"InputData","request_id":"no-time","data":"[]"}',
        input_line(MODEL, "3", "bad-records", [record(2), 5], at=at),
        json.dumps({"service_name": f"online/{MODEL}/3", "type": "OutputData", "data": [0.1], "time": at.isoformat()}),
        input_line(MODEL, "3", "other-hour", [record(3)], at=at + timedelta(hours=1)),
        input_line(MODEL, "3", "legacy-no-time", [record(4)]),  # written before score.py stamped a time
    ], tail=input_line(MODEL, "3", "in-flight", [record(5)], at=at))
    store = DirectoryStore(tmp_path / "s")
    local = LocalInferenceLogs(home)

    assert local.count(MODEL, T0, T0 + timedelta(hours=1)) == 2
    report = export_model(MODEL, local, store, now=NOW, since=T0, max_slices=1)

    # cut line (its time salvaged) + no-time line (charged to the line before) + one non-object record
    # + the legacy line (no time: charged to the line before it, in the 08 slice)
    assert (report.rows, report.malformed) == (2, 3)
    assert sorted(r["request_id"] for r in read_rows(store, parquet_keys(store))) == ["bad-records", "ok"]
    nxt = export_model(MODEL, local, store, now=NOW, max_slices=1)
    assert (nxt.rows, nxt.malformed) == (1, 1)


def test_local_source_reads_every_endpoint_and_deployment(tmp_path):
    home = tmp_path / "home"
    at = T0 + timedelta(minutes=1)
    write_log(home, "credit", "blue", [input_line(MODEL, "3", "a", [record(1)], at=at)])
    write_log(home, "credit", "green", [input_line(MODEL, "4", "b", [record(2)], at=at + timedelta(seconds=1))])
    write_log(home, "other", "blue", [input_line(MODEL, "3", "c", [record(3)], at=at + timedelta(seconds=2)),
                                      input_line("fraud", "1", "d", [record(4)], at=at)])
    store = DirectoryStore(tmp_path / "s")
    export_model(MODEL, LocalInferenceLogs(home), store, now=NOW, since=T0, max_slices=1)
    got = read_rows(store, parquet_keys(store))
    assert sorted((r["request_id"], r["deployment"], r["model_version"]) for r in got) == [
        ("a", "blue", "3"), ("b", "green", "4"), ("c", "blue", "3")]


def test_score_py_lines_are_what_the_local_source_reads(tmp_path, capsys):
    """ml/score.py's own logging (run in-process with the scoring runtime's interface) feeds the
    local source: the contract between the two is the console line."""
    from ml import schema
    from ml import score as scoring

    class Request:
        method = "POST"
        headers = {"x-request-id": "from-score-py"}

        def __init__(self, body: bytes) -> None:
            self.body = body

        def get_data(self, cache: bool = False) -> bytes:
            return self.body

    saved_model, saved_name, saved_card = scoring.model, scoring.service_name, dict(scoring.card)
    try:
        scoring.configure(schema.schema_dict())
        scoring.service_name = f"online/{MODEL}/7"
        scoring.model = None  # predict fails after InputData is logged: an Exception record follows
        records = [record(1), record(2)]
        before = datetime.now(timezone.utc)
        scoring.run(Request(json.dumps({"data": records}).encode()))
        after = datetime.now(timezone.utc)
    finally:
        scoring.model, scoring.service_name = saved_model, saved_name
        if saved_card:
            scoring.configure(saved_card)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [json.loads(line)["type"] for line in lines] == ["InputData", "Exception"]
    assert all(json.loads(line)["time"] == json.loads(lines[0])["time"] for line in lines)
    write_log(tmp_path / "home", "credit", "blue", lines, written=None)

    local = LocalInferenceLogs(tmp_path / "home")
    [table] = [b for b in local.fetch(MODEL, before - timedelta(seconds=1), after + timedelta(seconds=1))
               if isinstance(b, pa.Table)]
    got = table.to_pylist()
    assert [(r["request_id"], r["model_version"], r["record_index"]) for r in got] == [
        ("from-score-py", "7", 0), ("from-score-py", "7", 1)]
    assert before <= got[0]["TimeGenerated"] <= after
    assert {k: got[1][k] for k in records[1]} == {k: float(v) if k in NUMERIC else v for k, v in records[1].items()}


# --- more edges --------------------------------------------------------------------------------------

def test_sub_minute_slices_get_names_with_seconds(fake, source, tmp_path):
    store = DirectoryStore(tmp_path / "s")
    fake.add_rows(CONSOLE_TABLE, [console(T0 + timedelta(seconds=5), "a", [record(1)]),
                                  console(T0 + timedelta(seconds=35), "b", [record(2)])])
    report = export_model(MODEL, source, store, now=NOW, since=T0, slice_length=timedelta(seconds=30), max_slices=3)
    assert [s.rows for s in report.slices] == [1, 1, 0]
    assert parquet_keys(store) == ["exports/credit-card-default/3/2026-05-09/07/part-20260509T070000Z.parquet",
                                   "exports/credit-card-default/3/2026-05-09/07/part-20260509T070030Z.parquet"]


def test_export_models_keeps_going_past_a_failing_model(fake, source, tmp_path):
    from functions.services.export import export_models

    store = DirectoryStore(tmp_path / "s")
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


def test_a_failure_in_the_middle_of_a_slice_writes_nothing_and_leaves_no_thread(fake, client, tmp_path):
    store = DirectoryStore(tmp_path / "s")
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


class ListSource:
    """A source yielding what it is given: lists of dicts, tables, Malformed markers."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches

    def count(self, model: str, start: datetime, end: datetime) -> int:
        return 0

    def fetch(self, model: str, start: datetime, end: datetime):
        yield from self.batches


def _flat(at: datetime, request_id: str, i: int) -> dict[str, Any]:
    return {"TimeGenerated": at, "request_id": request_id, "model_version": "3", "deployment": None,
            "record_index": 0, **{k: float(v) if k in NUMERIC else v for k, v in record(i).items()}}


def test_the_source_contract_is_enforced(tmp_path):
    early, late = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    ok = ListSource([[_flat(early, "a", 1)], Malformed(2), [_flat(late, "b", 2)]])
    report = export_model(MODEL, ok, DirectoryStore(tmp_path / "ok"), now=NOW, since=T0, max_slices=1)
    assert (report.rows, report.malformed) == (2, 2)

    # What is wrong with the source itself (not with a record) still stops the slice: a value that
    # cannot be written is quarantined instead (tests/test_export_quarantine.py), but a column whose
    # type has no cast at all is the source's bug, and so is a batch out of order or out of the window.
    for batches, message in (([[_flat(late, "b", 2)], [_flat(early, "a", 1)]], "out of time order"),
                             ([[_flat(T0 + timedelta(hours=1), "c", 3)]], "outside"),
                             ([pa.table({**{c: pa.array([v]) for c, v in _flat(early, "e", 5).items() if c != "deployment"},
                                         "age": pa.array([[41]])})], "'age' is not double"),
                             ([{"not": "a table"}], "not a table")):
        store = DirectoryStore(tmp_path / uuid.uuid4().hex)
        with pytest.raises(ExportError, match=message):
            export_model(MODEL, ListSource(batches), store, now=NOW, since=T0, max_slices=1)
        assert store.list("exports/") == []


def test_local_source_skips_logs_last_written_before_the_window(tmp_path):
    home = tmp_path / "home"
    write_log(home, "credit", "blue", [input_line(MODEL, "3", "x", [record(1)], at=T0 + timedelta(hours=2))],
              written=T0 + timedelta(minutes=30))  # claims a later time than its mtime: never read for 08:00+
    local = LocalInferenceLogs(home)
    assert local.count(MODEL, T0 + timedelta(hours=1), T0 + timedelta(hours=3)) == 0
    assert local.count(MODEL, T0, T0 + timedelta(hours=3)) == 1


# --- records that cannot be written: quarantined, counted, the watermark moves -------------------------

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


class RewriteFetches:
    """Evaluator wrapper: the fetch answer's rows of request `request_id` get `cells`, then the fake
    encodes the answer as the service does (non-finite reals as "NaN"/"Infinity"/"-Infinity")."""

    def __init__(self, inner: Any, request_id: str, cells: dict[str, Any]) -> None:
        self.inner, self.request_id, self.cells = inner, request_id, cells

    def __call__(self, query: str, timespan: Any) -> Any:
        result = self.inner(query, timespan)
        if "mv-expand" not in query:
            return result
        names = [name for name, _ in result.columns]
        rows = []
        for text in result.encoded_rows:
            row = dict(zip(names, json.loads(text)))
            if row["request_id"] == self.request_id:
                row.update(self.cells)
            rows.append([row[n] for n in names])
        return Result(result.columns, rows=rows)


def test_non_finite_reals_from_log_analytics_are_null_as_from_the_local_source(fake, source, tmp_path):
    """todouble("NaN") is a real NaN in Kusto, and the service writes a non-finite real as a string
    (the fake's encoder does as the service: see fake_log_analytics._make_encoder). The evaluator
    turns them into null itself (its departure), so the wrapper puts back what the service sends."""
    at = T0 + timedelta(minutes=7)
    odd = {**record(1), "age": "NaN", "credit_limit": "Infinity", "bill_amount_1": "-Infinity"}
    rows = [console(at, "plain", [record(2)]), console(at + timedelta(seconds=1), "nonfinite", [odd])]
    fake.add_rows(CONSOLE_TABLE, rows)
    fake.evaluator = RewriteFetches(fake.evaluator, "nonfinite",
                                    {"age": float("nan"), "credit_limit": float("inf"), "bill_amount_1": float("-inf")})
    local_home_from(rows, tmp_path / "home")
    from_azure, from_local = DirectoryStore(tmp_path / "a"), DirectoryStore(tmp_path / "l")

    azure = export_model(MODEL, source, from_azure, now=NOW, since=T0, max_slices=1)
    local = export_model(MODEL, LocalInferenceLogs(tmp_path / "home"), from_local, now=NOW, since=T0, max_slices=1)

    assert (azure.rows, local.rows) == (2, 2)
    [row] = [r for r in read_rows(from_azure, parquet_keys(from_azure)) if r["request_id"] == "nonfinite"]
    assert (row["age"], row["credit_limit"], row["bill_amount_1"]) == (None, None, None)  # not NaN / inf
    assert parquet_keys(from_azure) == parquet_keys(from_local) != []
    for key in parquet_keys(from_local):
        assert from_azure.get(key)[0] == from_local.get(key)[0]
    assert azure.quarantined == local.quarantined == 0  # a non-finite number is a missing value, not a bad record


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

    return export_slice(MODEL, source, store, T0, T0 + timedelta(hours=1))
