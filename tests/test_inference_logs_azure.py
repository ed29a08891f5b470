"""LogAnalyticsInferenceLogs (functions/adapters/azure/inference_logs.py), the inference-log export's
Azure source, through the real azure-monitor-query LogsQueryClient (send_request: its pipeline,
bearer policy, retries) against the fake Log Analytics query service (tests/fake_log_analytics, a
real HTTP server on 127.0.0.1) with the export's evaluator (tests/fake_inference_logs.py): the
port, its two queries on the wire, partial answers and failures, malformed lines, hostile model
names and non-finite reals, each exercised on the wire and in the exported bytes (`integration`).

Its answer reader is also tested on answer bodies alone, without a server (not `integration`).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest

from functions.adapters.azure.inference_logs import (
    LogAnalyticsInferenceLogs,
    fetch_query,
    summary_query,
)
from functions.adapters.local.inference_logs import LocalInferenceLogs
from functions.adapters.local.store import DirectoryStore
from functions.ports import InferenceLogSource, Malformed
from functions.services.export import ExportError, export_model, part_key, read_watermark
from functions.shared.names import InvalidName
from tests.export_helpers import (
    CREDIT_LAYOUT,
    MODEL,
    NOW,
    T0,
    WORKSPACE,
    client_fixture,  # noqa: F401 (fixture)
    console,
    fake_fixture,  # noqa: F401 (fixture)
    fake_server_fixture,  # noqa: F401 (fixture)
    local_home_from,
    noise,
    parquet_keys,
    read_rows,
    record,
    sort_key,
    source_fixture,  # noqa: F401 (fixture)
    traffic,
    with_contract,
)
from tests.fake_inference_logs import input_line
from tests.fake_log_analytics import CONSOLE_TABLE, tokenize
from tests.fakes import MemoryStore

# --- the port and the queries ---------------------------------------------------------------------

@pytest.mark.integration
def test_sources_implement_the_port(source, tmp_path):
    assert isinstance(source, InferenceLogSource)
    assert isinstance(LocalInferenceLogs(tmp_path), InferenceLogSource)


@pytest.mark.integration
def test_fetch_explodes_requests_into_typed_rows(fake, source):
    rows, expected = traffic(hours=1)
    fake.add_rows(CONSOLE_TABLE, rows + noise(T0 + timedelta(minutes=1)))

    assert source.count(MODEL, T0, T0 + timedelta(hours=1)) == len(expected)
    batches = list(source.fetch(MODEL, T0, T0 + timedelta(hours=1), CREDIT_LAYOUT))

    tables = [b for b in batches if isinstance(b, pa.Table)]
    assert [b for b in batches if isinstance(b, Malformed)] == []
    got = pa.concat_tables(tables)
    assert got.schema == CREDIT_LAYOUT.schema
    assert sorted(got.to_pylist(), key=sort_key) == sorted(expected, key=sort_key)


@pytest.mark.integration
def test_queries_on_the_wire(fake, source):
    fake.add_rows(CONSOLE_TABLE, traffic(hours=1)[0])
    list(source.fetch(MODEL, T0, T0 + timedelta(hours=1), CREDIT_LAYOUT))

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
    assert fetch.query == fetch_query(MODEL, T0, T0 + timedelta(hours=1), CREDIT_LAYOUT)
    assert "| summarize Messages = countif(mine), Records = sumif(array_length(d), mine)" in summary.query
    assert '["credit_limit"] = todouble(rec["credit_limit"])' in fetch.query
    assert '["sex"] = tostring(rec["sex"])' in fetch.query
    assert "| mv-expand with_itemindex=record_index rec = d" in fetch.query


@pytest.mark.integration
def test_empty_window_sends_one_summary_and_no_fetch(fake, source):
    fake.add_rows(CONSOLE_TABLE, noise(T0 + timedelta(minutes=5)))
    assert list(source.fetch(MODEL, T0, T0 + timedelta(hours=1), CREDIT_LAYOUT)) == []
    assert len(fake.requests) == 1


# --- partial answers and failures -----------------------------------------------------------------

@pytest.mark.integration
def test_partial_answer_is_split_and_retried(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
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


@pytest.mark.integration
def test_an_injected_partial_answer_is_dropped_and_its_window_fetched_again(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
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


@pytest.mark.integration
def test_a_partial_summary_is_an_error(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    fake.add_rows(CONSOLE_TABLE, traffic(hours=1)[0])
    fake.partial_next(keep_rows=0)  # the summary comes first
    with pytest.raises(ExportError, match="partial result") as caught:
        export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1)
    assert caught.value.transient is True
    assert read_watermark(store, MODEL)[0].high_water == T0


@pytest.mark.integration
def test_a_partial_answer_that_persists_stops_the_export_and_keeps_the_watermark(fake, client, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
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


@pytest.mark.integration
def test_503_is_retried_by_the_sdk_then_transient(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    fake.add_rows(CONSOLE_TABLE, traffic(hours=1)[0])
    fake.fail_next(503, times=1)
    assert export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1).rows > 0

    fake.fail_next(503, times=None)
    with pytest.raises(ExportError) as caught:
        export_model(MODEL, source, store, now=NOW, max_slices=1)
    assert caught.value.transient is True and "HTTP 503" in str(caught.value)
    assert read_watermark(store, MODEL)[0].high_water == T0 + timedelta(hours=1)


@pytest.mark.integration
def test_a_query_over_the_server_timeout_is_split_never_sent_again_as_it_was(fake, source, tmp_path):
    """504 GatewayTimeout (the recorded body) for a query that reads more than 8 console rows: the
    summary of the hour and its fetch would time out every time; the adapter halves the window
    (the summary's halves are added up, the fetch is cut as finely) and exports every row."""
    store = with_contract(DirectoryStore(tmp_path / "s"))
    rows, expected = traffic(hours=1, per_hour=30)
    fake.add_rows(CONSOLE_TABLE, rows)
    fake.query_timeout_rows = 8  # 30 rows in the hour: the hour and its halves time out, quarters pass

    report = export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1)

    assert report.rows == len(expected) and report.malformed == 0
    assert sorted(read_rows(store, parquet_keys(store)), key=sort_key) == sorted(expected, key=sort_key)
    timed_out = [r for r in fake.requests if r.status == 504]
    assert timed_out and source.splits > 0
    # a query the service timed out is sent once: neither azure-core's retry policy (retry_total=2
    # here, which still repeats a 503) nor the adapter sends it again
    sent = [(r.query, r.timespan) for r in fake.requests]
    for query in {(r.query, r.timespan) for r in timed_out}:
        assert sent.count(query) == 1, query
    fetches = [r for r in fake.requests if "mv-expand" in (r.query or "") and r.status == 200]
    assert len(fetches) == 4  # cut as finely as the summary had to be: no fetch of a window that timed out
    assert [r for r in fake.requests if "mv-expand" in (r.query or "") and r.status != 200] == []


@pytest.mark.integration
def test_prefer_wait_gives_the_query_more_time(fake, client, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    rows, expected = traffic(hours=1, per_hour=30)
    fake.add_rows(CONSOLE_TABLE, rows)
    fake.query_timeout_rows = 10  # 10 rows in the default 180 s: 40 rows in wait=720 → capped at 600 s: 33
    patient = LogAnalyticsInferenceLogs(client, WORKSPACE, enforce_https=False, server_timeout=720)

    report = export_model(MODEL, patient, store, now=NOW, since=T0, max_slices=1)

    assert report.rows == len(expected) and patient.splits == 0
    assert {r.status for r in fake.requests} == {200}
    assert {r.header("Prefer") for r in fake.requests} == {"wait=720"}


@pytest.mark.integration
def test_a_query_that_times_out_at_every_size_stops_the_export_and_keeps_the_watermark(fake, client, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    fake.add_rows(CONSOLE_TABLE, traffic(hours=1)[0])
    fake.query_timeout_rows = 0  # even one row is too much
    source = LogAnalyticsInferenceLogs(client, WORKSPACE, enforce_https=False, max_depth=2)

    with pytest.raises(ExportError, match="still times out") as caught:
        export_model(MODEL, source, store, now=NOW, since=T0)

    assert caught.value.transient is True and "HTTP 504 GatewayTimeout: Gateway timeout; ADX query timed out" in \
        str(caught.value)
    assert read_watermark(store, MODEL)[0].high_water == T0 and parquet_keys(store) == []
    assert len(fake.requests) == 3  # the hour, its first half, its first quarter (each sent once): give up


@pytest.mark.integration
def test_the_fakes_504_is_the_recorded_one(fake, client):
    """Checked against azure-sdk-for-python's recorded session (tests/payloads/recorded/, test_recorded_shapes.py
    compares the whole shape): the SDK's own query_workspace raises HttpResponseError with the inner message."""
    from azure.core.exceptions import HttpResponseError

    fake.fail_next(504, times=None)
    with pytest.raises(HttpResponseError) as caught:
        client.query_workspace(WORKSPACE, "AmlOnlineEndpointConsoleLog | count", timespan=None, enforce_https=False,
                               server_timeout=1)
    assert caught.value.status_code == 504 and "Gateway timeout" in str(caught.value)
    assert "ADX query timed out" in str(caught.value)
    assert fake.last.header("Prefer") == "wait=1"


@pytest.mark.integration
def test_400_is_permanent(fake, source, tmp_path):
    fake.fail_next(400)
    with pytest.raises(ExportError) as caught:
        export_model(MODEL, source, with_contract(DirectoryStore(tmp_path / "s")), now=NOW, since=T0)
    assert caught.value.transient is False and "HTTP 400" in str(caught.value)


@pytest.mark.integration
def test_https_is_enforced_by_default(fake, client, tmp_path):
    strict = LogAnalyticsInferenceLogs(client, WORKSPACE)
    with pytest.raises(ExportError, match="non-TLS"):
        export_model(MODEL, strict, with_contract(DirectoryStore(tmp_path / "s")), now=NOW, since=T0)
    assert fake.requests == []


# --- malformed lines, hostile names, non-finite reals ---------------------------------------------

@pytest.mark.integration
def test_malformed_lines_are_counted_not_exported(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
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


@pytest.mark.integration
def test_rows_with_versions_that_cannot_be_keys_are_malformed(fake, source, tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
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


@pytest.mark.integration
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_model_names_are_rejected_before_any_query(fake, source, tmp_path, name):
    store = MemoryStore()
    with pytest.raises(InvalidName):
        export_model(name, source, store, now=NOW, since=T0)
    with pytest.raises(InvalidName):
        source.count(name, T0, NOW)
    with pytest.raises(InvalidName):
        list(source.fetch(name, T0, NOW, CREDIT_LAYOUT))
    with pytest.raises(InvalidName):
        LocalInferenceLogs(tmp_path).count(name, T0, NOW)
    assert fake.requests == [] and store.objects == {}


@pytest.mark.integration
@pytest.mark.parametrize("name", ["a", "credit-card-default", "Model_2.v1", "x" * 255, "0abc"])
def test_valid_model_names_pass(fake, source, name):
    assert source.count(name, T0, T0 + timedelta(hours=1)) == 0
    assert len(fake.requests) == 1


NON_FINITE = {"age": "NaN", "credit_limit": "Infinity", "bill_amount_1": "-Infinity"}


def _non_finite_rows() -> list[dict[str, Any]]:
    at = T0 + timedelta(minutes=7)
    return [console(at, "plain", [record(2)]),
            console(at + timedelta(seconds=1), "nonfinite", [{**record(1), **NON_FINITE}])]


@pytest.mark.integration
def test_the_fake_answers_non_finite_reals_as_the_service_writes_them(fake):
    """todouble("NaN") / todouble("Infinity") are a real NaN / ±∞ in Kusto, and the service writes a
    non-finite real as the string "NaN" / "Infinity" / "-Infinity" (see _make_encoder in
    tests/fake_log_analytics/values.py): the fake's fetch answer carries exactly those, not nulls."""
    from tests.fake_log_analytics import Timespan

    fake.add_rows(CONSOLE_TABLE, _non_finite_rows())
    end = T0 + timedelta(hours=1)
    result = fake.evaluator(fetch_query(MODEL, T0, end, CREDIT_LAYOUT), Timespan.parse(f"{T0.isoformat()}/{end.isoformat()}"))
    names = [name for name, _ in result.columns]
    [odd] = [row for row in map(json.loads, result.encoded_rows) if row[names.index("request_id")] == "nonfinite"]
    assert {name: odd[names.index(name)] for name in NON_FINITE} == NON_FINITE
    assert dict(result.columns)["age"] == "real"


@pytest.mark.integration
@pytest.mark.parametrize("reader", ["csv", "json"])
def test_non_finite_reals_from_log_analytics_are_null_as_from_the_local_source(fake, source, tmp_path, monkeypatch,
                                                                                reader):
    """The same console lines exported from the fake Log Analytics (answer read by the fast CSV path,
    or by the json path) and from the local console logs: byte-identical Parquet, the non-finite
    values null in both (a non-finite number is a missing value, not a bad record)."""
    from functions.adapters.azure import query_answer

    def refuse(body):
        raise query_answer._Unusual(f"forced: the {reader} path only")

    # the fetch answers are read by the one path under test (the summary is read apart, with json.loads)
    monkeypatch.setattr(query_answer, "_parse_rows_as_csv" if reader == "json" else "_parse_with_json", refuse)
    rows = _non_finite_rows()
    fake.add_rows(CONSOLE_TABLE, rows)
    local_home_from(rows, tmp_path / "home")
    from_azure, from_local = with_contract(DirectoryStore(tmp_path / "a")), with_contract(DirectoryStore(tmp_path / "l"))

    azure = export_model(MODEL, source, from_azure, now=NOW, since=T0, max_slices=1)
    local = export_model(MODEL, LocalInferenceLogs(tmp_path / "home"), from_local, now=NOW, since=T0, max_slices=1)

    assert (azure.rows, local.rows) == (2, 2)
    [row] = [r for r in read_rows(from_azure, parquet_keys(from_azure)) if r["request_id"] == "nonfinite"]
    assert (row["age"], row["credit_limit"], row["bill_amount_1"]) == (None, None, None)  # not NaN / inf
    assert parquet_keys(from_azure) == parquet_keys(from_local) != []
    for key in parquet_keys(from_local):
        assert from_azure.get(key)[0] == from_local.get(key)[0]
    assert azure.quarantined == local.quarantined == 0  # a non-finite number is a missing value, not a bad record
