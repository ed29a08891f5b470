"""LocalInferenceLogs (functions/adapters/local/inference_logs.py), the inference-log export's local
source, over console logs laid out as the local endpoints write them (tests/export_helpers.py
write_log): malformed lines, a line still being written, every endpoint and deployment, logs last
written before the window, ml/score.py's own lines — tmp directories only — and the same exported
bytes as from Log Analytics (the one test on the fake service, `integration`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from functions.adapters.local.inference_logs import LocalInferenceLogs
from functions.adapters.local.store import DirectoryStore
from functions.services.export import export_model
from ml.schema import NUMERIC
from tests.export_helpers import (
    CREDIT_LAYOUT,
    MODEL,
    NOW,
    T0,
    client_fixture,  # noqa: F401 (fixture)
    fake_fixture,  # noqa: F401 (fixture)
    fake_server_fixture,  # noqa: F401 (fixture)
    local_home_from,
    parquet_keys,
    read_rows,
    record,
    source_fixture,  # noqa: F401 (fixture)
    traffic,
    with_contract,
    write_log,
)
from tests.fake_inference_logs import input_line
from tests.fake_log_analytics import CONSOLE_TABLE


@pytest.mark.integration
def test_local_source_exports_the_same_bytes_as_log_analytics(fake, source, tmp_path):
    rows, expected = traffic(hours=3)
    fake.add_rows(CONSOLE_TABLE, rows)
    local_home_from(rows, tmp_path / "home")
    from_azure, from_local = with_contract(DirectoryStore(tmp_path / "a")), with_contract(DirectoryStore(tmp_path / "l"))

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
    store = with_contract(DirectoryStore(tmp_path / "s"))
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
    store = with_contract(DirectoryStore(tmp_path / "s"))
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
    [table] = [b for b in local.fetch(MODEL, before - timedelta(seconds=1), after + timedelta(seconds=1), CREDIT_LAYOUT)
               if isinstance(b, pa.Table)]
    got = table.to_pylist()
    assert [(r["request_id"], r["model_version"], r["record_index"]) for r in got] == [
        ("from-score-py", "7", 0), ("from-score-py", "7", 1)]
    assert before <= got[0]["TimeGenerated"] <= after
    assert {k: got[1][k] for k in records[1]} == {k: float(v) if k in NUMERIC else v for k, v in records[1].items()}


def test_local_source_skips_logs_last_written_before_the_window(tmp_path):
    home = tmp_path / "home"
    write_log(home, "credit", "blue", [input_line(MODEL, "3", "x", [record(1)], at=T0 + timedelta(hours=2))],
              written=T0 + timedelta(minutes=30))  # claims a later time than its mtime: never read for 08:00+
    local = LocalInferenceLogs(home)
    assert local.count(MODEL, T0 + timedelta(hours=1), T0 + timedelta(hours=3)) == 0
    assert local.count(MODEL, T0, T0 + timedelta(hours=3)) == 1
