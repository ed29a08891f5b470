"""The export's quarantine (functions/services/export.py conform_batch / _Quarantine) without servers:
a record can never stop the export — it is set aside, counted and kept — while a broken source or
a store outage still stops the slice and keeps the watermark where it is.

Sources here: a list source (the port's lists of dicts and tables, as a test writes them), the
local console-log source over real files, and the Log Analytics answer reader on answer bodies.
Stores: DirectoryStore (tests/test_export_protocol.py runs the same paths on Azurite and the fake
service). The list source, the failing store and the console-log writer build on tests/export_helpers.py.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.adapters.azure.inference_logs import fetch_columns, typed_table
from functions.adapters.azure.query_answer import parse_answer
from functions.adapters.local.inference_logs import LocalInferenceLogs
from functions.adapters.local.store import DirectoryStore
from functions.ports import Malformed, PlatformError, Store
from functions.services.export import ExportError, export_model, export_models, quarantine_key, read_watermark
from functions.shared.export_table import MISFIT, conform_batch
from ml.schema import CATEGORICAL, FEATURES, NUMERIC
from tests import export_helpers
from tests.export_helpers import CREDIT_LAYOUT, MODEL, NOW, T0, with_contract
from tests.fake_inference_logs import input_line

KEY = quarantine_key(MODEL, T0)
FETCH_COLUMNS = fetch_columns(CREDIT_LAYOUT)  # the fetch answer's columns


def record(i: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, f in enumerate(FEATURES):
        out[f.name] = f.domain[(i + k) % len(f.domain)] if f.kind == "categorical" else float(i * 100 + k)
    return out


def row(i: int, minute: int = 1, **cells: Any) -> dict[str, Any]:
    """An export row as a list source gives it."""
    return {"TimeGenerated": T0 + timedelta(minutes=minute, seconds=i), "request_id": f"r{i}", "model_version": "3",
            "deployment": "blue", "record_index": 0, **record(i), **cells}


class ListSource(export_helpers.ListSource):
    """A source yielding the given batches that belong to the asked window (each slice's own)."""

    def fetch(self, model: str, start: datetime, end: datetime, layout: Any = None):
        for batch in self.batches:
            if isinstance(batch, (list, pa.Table, Malformed)) and not _in(batch, start, end):
                continue
            yield batch


def _in(batch: Any, start: datetime, end: datetime) -> bool:
    """Whether the batch belongs to [start, end): the tests give each slice its own batches."""
    if isinstance(batch, Malformed):
        return start == T0
    rows = batch.to_pylist() if isinstance(batch, pa.Table) else batch
    times = [r["TimeGenerated"] for r in rows if isinstance(r, dict) and isinstance(r.get("TimeGenerated"), datetime)]
    return start <= min(times) < end if times else start == T0


def quarantined(store: Store, key: str = KEY) -> list[dict[str, Any]]:
    data, _ = store.get(key)
    assert data.isascii()  # \u escapes only: valid UTF-8 whatever the records held
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def exported(store: Store) -> list[dict[str, Any]]:
    out = []
    for key in store.list("exports/"):
        out += pq.read_table(io.BytesIO(store.get(key)[0])).to_pylist()
    return out


# --- what cannot be written ----------------------------------------------------------------------------

def test_records_that_cannot_be_written_are_quarantined_and_the_rest_exported(tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    bad = [
        row(2, sex="\ud800", age=float("nan")),  # a lone surrogate (JSON "\ud800"): UTF-8 cannot hold it
        row(3, age="old"),  # text where a number goes
        row(4, record_index=2**40),  # out of int32 range
        {**row(5), "TimeGenerated": None},  # no time: no slice can hold it
        {**row(6), "TimeGenerated": "yesterday-ish"},
        "not a record",
    ]
    source = ListSource([[row(1), *bad[:3]], [*bad[3:], row(7, minute=2)]])

    report = export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1)

    assert (report.rows, report.quarantined, report.malformed, report.error) == (2, 6, 0, "")
    assert sorted(r["request_id"] for r in exported(store)) == ["r1", "r7"]
    kept = quarantined(store)
    reasons = sorted(k["reason"].split(":")[0] for k in kept)
    assert reasons == ["TimeGenerated", "TimeGenerated", "age", "not a record but str", "record_index", "sex"]
    assert {k["kind"] for k in kept} == {"record"}
    assert [k["record"]["sex"] for k in kept if k["reason"].startswith("sex")] == ["\ud800"]
    assert [k["record"]["age"] for k in kept if k["reason"].startswith("sex")] == ["NaN"]  # JSON has no NaN
    assert [k["record"] for k in kept if k["reason"].startswith("not a record")] == ["not a record"]
    mark, _ = read_watermark(store, MODEL)
    assert (mark.high_water, mark.quarantined, mark.recent[-1]["quarantine"]) == (T0 + timedelta(hours=1), 6, KEY)


def test_table_values_that_do_not_cast_are_quarantined_per_row(tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    rows = [row(1), row(2), row(3), row(4)]
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    columns["age"] = ["41", "old", "12.5", None]  # numbers as text are fine; "old" is not
    columns["sex"] = [b"male", b"female", b"\xed\xa0\x80", b"male"]  # bytes: the third is no UTF-8
    columns["TimeGenerated"] = pa.array(columns["TimeGenerated"][:3] + [None], pa.timestamp("us", tz="UTC"))
    table = pa.table({k: v if isinstance(v, pa.Array) else pa.array(v) for k, v in columns.items()})

    report = export_model(MODEL, ListSource([table]), store, now=NOW, since=T0, max_slices=1)

    assert (report.rows, report.quarantined, report.error) == (1, 3, "")
    [good] = exported(store)
    assert (good["request_id"], good["age"], good["sex"]) == ("r1", 41.0, "male")
    kept = {k["record"]["request_id"]: k for k in quarantined(store)}
    assert kept["r2"]["reason"].startswith("age: ArrowInvalid") and kept["r2"]["record"]["age"] == "old"
    assert kept["r3"]["reason"].startswith("sex: ArrowInvalid") and kept["r3"]["record"]["sex"] == "\ud800"
    assert kept["r4"]["reason"] == "TimeGenerated: missing" and kept["r4"]["record"]["TimeGenerated"] is None


def test_a_broken_source_still_stops_the_slice_and_keeps_the_watermark(tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    table = pa.table({**{k: pa.array([v]) for k, v in row(1).items()}, "age": pa.array([[41]])})
    with pytest.raises(ExportError, match="'age' is not double") as caught:
        export_model(MODEL, ListSource([table]), store, now=NOW, since=T0, max_slices=1)
    assert caught.value.transient is False  # the source's bug: a person looks, the slice is not skipped
    assert read_watermark(store, MODEL)[0].high_water == T0
    assert store.list("exports/") == store.list("quarantine/") == []


def test_the_quarantine_object_does_not_depend_on_how_the_source_batched(tmp_path):
    rows = [row(i, sex="\ud800" if i % 3 == 0 else "male", minute=i % 7) for i in range(1, 30)]
    one, many = with_contract(DirectoryStore(tmp_path / "one")), with_contract(DirectoryStore(tmp_path / "many"))
    in_order = sorted(rows, key=lambda r: r["TimeGenerated"])

    export_model(MODEL, ListSource([in_order]), one, now=NOW, since=T0, max_slices=1)
    export_model(MODEL, ListSource([in_order[i:i + 4] for i in range(0, len(in_order), 4)]), many, now=NOW,
                 since=T0, max_slices=1)

    assert one.get(KEY)[0] == many.get(KEY)[0]
    assert len(quarantined(one)) == 9
    assert [k["record"]["TimeGenerated"] for k in quarantined(one)] == sorted(
        k["record"]["TimeGenerated"] for k in quarantined(one))


def test_clean_batches_take_the_fast_path_unchanged():
    rows = [row(i) for i in range(5)]
    table, rejected = conform_batch(rows, CREDIT_LAYOUT)
    assert rejected == [] and table.schema == CREDIT_LAYOUT.schema and len(table) == 5
    again, rejected = conform_batch(table, CREDIT_LAYOUT)
    assert rejected == [] and again.equals(table)


def test_non_finite_numbers_are_null_whichever_reader_took_the_answer():
    columns = [{"name": n, "type": "datetime" if n == "TimeGenerated" else "long" if n == "record_index" else
                "real" if n in NUMERIC else "string"} for n in FETCH_COLUMNS]

    def cells(i: int, **extra: Any) -> list[Any]:
        base = {"TimeGenerated": f"2026-05-09T07:00:0{i}.1234567Z", "request_id": f"r{i}", "model_version": "3",
                "deployment": "blue", "record_index": 0, **{n: "x" for n in CATEGORICAL},
                **{n: 1.5 for n in NUMERIC}, MISFIT: "", **extra}
        return [base[n] for n in FETCH_COLUMNS]

    # how the service writes non-finite reals: the strings "NaN", "Infinity", "-Infinity"
    rows = [cells(1, age="NaN", credit_limit="Infinity", bill_amount_1="-Infinity"), cells(2)]
    plain = json.dumps({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]},
                       separators=(",", ":")).encode()
    escaped = plain.replace(b'"r2"', b'"r\\u0032"')  # one \u escape: the json reader takes this answer
    for body in (plain, escaped):
        table, rejected = conform_batch(typed_table(parse_answer(body).table, CREDIT_LAYOUT), CREDIT_LAYOUT)
        first = table.to_pylist()[0]
        assert rejected == [] and (first["age"], first["credit_limit"], first["bill_amount_1"]) == (None, None, None)
        assert table.to_pylist()[1]["age"] == 1.5


def test_a_lone_surrogate_in_a_log_analytics_answer_is_quarantined_not_raised(tmp_path):
    columns = [{"name": n, "type": "datetime" if n == "TimeGenerated" else "long" if n == "record_index" else
                "real" if n in NUMERIC else "string"} for n in FETCH_COLUMNS]
    base = {"TimeGenerated": "2026-05-09T07:00:01.1234567Z", "request_id": "r1", "model_version": "3",
            "deployment": "blue", "record_index": 0, **{n: "x" for n in CATEGORICAL}, **{n: 1.0 for n in NUMERIC},
            MISFIT: ""}
    rows = [[base[n] for n in FETCH_COLUMNS],
            [{**base, "request_id": "r2", "sex": "\ud800"}[n] for n in FETCH_COLUMNS]]
    body = json.dumps({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]},
                      separators=(",", ":")).encode()
    assert b"\\ud800" in body  # ensure_ascii: the escape, as a JSON writer that escapes would send it

    answer = parse_answer(body)  # no UnicodeEncodeError
    store = with_contract(DirectoryStore(tmp_path / "s"))
    report = export_model(MODEL, ListSource([typed_table(answer.table, CREDIT_LAYOUT)]), store, now=NOW, since=T0, max_slices=1)

    assert (report.rows, report.quarantined) == (1, 1)
    [kept] = quarantined(store)
    assert kept["record"]["request_id"] == "r2" and kept["record"]["sex"] == "\ud800"


# --- the local source ------------------------------------------------------------------------------------

def write_log(home: Path, lines: list[str], deployment: str = "blue") -> None:
    export_helpers.write_log(home, "credit", deployment, lines)  # last written a day after T0


def test_the_local_source_hands_over_what_it_cannot_type_instead_of_raising(tmp_path):
    at = T0 + timedelta(minutes=3)
    write_log(tmp_path, [input_line(MODEL, "3", "ok", [record(1)], at=at),
                         input_line(MODEL, "3", "bad", [{**record(2), "education": "\udcff"}], at=at)])
    batches = list(LocalInferenceLogs(tmp_path).fetch(MODEL, T0, T0 + timedelta(hours=1), CREDIT_LAYOUT))
    [batch] = batches
    assert isinstance(batch, list) and [r["request_id"] for r in batch] == ["ok", "bad"]
    table, rejected = conform_batch(batch, CREDIT_LAYOUT)
    assert [r["request_id"] for r in table.to_pylist()] == ["ok"]
    assert [(r.record["request_id"], r.reason.split(":")[0]) for r in rejected] == [("bad", "education")]


def test_unreadable_lines_are_counted_malformed_and_their_text_kept(tmp_path):
    at = T0 + timedelta(minutes=3)
    cut = '{"service_name":"online/credit-card-default/3","type":"InputData","time":"' + at.isoformat() + '","data":"[{'
    write_log(tmp_path, [input_line(MODEL, "3", "ok", [record(1)], at=at), cut,
                         input_line(MODEL, "3", "mixed", [record(2), 7], at=at)])
    store = with_contract(DirectoryStore(tmp_path / "s"))

    report = export_model(MODEL, LocalInferenceLogs(tmp_path), store, now=NOW, since=T0, max_slices=1)

    assert (report.rows, report.malformed, report.quarantined) == (2, 2, 0)
    kept = quarantined(store)
    assert [k["kind"] for k in kept] == ["malformed", "malformed"]
    assert sorted(k["record"]["line"] for k in kept) == sorted([cut, input_line(MODEL, "3", "mixed", [record(2), 7],
                                                                                at=at)])
    assert read_watermark(store, MODEL)[0].quarantined == 0


def test_rows_whose_version_cannot_be_a_key_are_malformed_and_kept(tmp_path):
    store = with_contract(DirectoryStore(tmp_path / "s"))
    report = export_model(MODEL, ListSource([[row(1), row(2, model_version="../x")]]), store, now=NOW, since=T0,
                          max_slices=1)
    assert (report.rows, report.malformed, report.quarantined) == (1, 1, 0)
    [kept] = quarantined(store)
    assert kept["kind"] == "malformed" and kept["record"]["model_version"] == "../x"


# --- what is not a record ------------------------------------------------------------------------------

class FailingStore(export_helpers.FailingStore):
    """An outage of the matching writes, until `down` is cleared."""

    def __init__(self, inner: Store, fail_on: str) -> None:
        super().__init__(inner, fail_on, times=None)
        self.down = True

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        if self.down and self.fail_on in key:
            raise PlatformError(f"injected outage writing {key}", transient=True)
        return self.inner.put(key, data, **kwargs)


def test_a_store_outage_keeps_the_watermark_and_never_sends_rows_to_quarantine(tmp_path):
    store = FailingStore(with_contract(DirectoryStore(tmp_path / "s")), fail_on="quarantine/")
    source = ListSource([[row(1), row(2, sex="\ud800")]])

    for _ in range(2):  # the outage lasts: every run retries the same slice
        with pytest.raises(ExportError, match="injected outage") as caught:
            export_model(MODEL, source, store, now=NOW, since=T0, max_slices=1)
        assert caught.value.transient is True
        assert read_watermark(store, MODEL)[0].high_water == T0
    assert store.list("quarantine/") == []

    store.down = False
    report = export_model(MODEL, source, store, now=NOW, max_slices=1)
    assert (report.rows, report.quarantined) == (1, 1)  # the good row exported, not quarantined
    assert read_watermark(store, MODEL)[0].quarantined == 1


class ExplodingSource:
    """A source with a bug: fetch raises something no one planned for."""

    def count(self, model: str, start: datetime, end: datetime) -> int:
        return 0

    def fetch(self, model: str, start: datetime, end: datetime, layout: Any = None):
        if model == "exploding":
            raise KeyError("a bug in the source")
        yield [row(1)]


def test_one_models_unexpected_error_does_not_stop_the_others(tmp_path):
    store = with_contract(with_contract(DirectoryStore(tmp_path / "s")), model="exploding")
    reports = export_models(["exploding", MODEL], ExplodingSource(), store, now=NOW, since=T0, max_slices=1)
    assert "unexpected KeyError" in reports["exploding"].error and reports["exploding"].transient is False
    assert read_watermark(store, "exploding")[0].high_water == T0
    assert reports[MODEL].error == "" and reports[MODEL].rows == 1
    assert reports["exploding"].to_dict()["error"] and reports[MODEL].to_dict()["quarantined"] == 0


def test_a_store_that_cannot_even_read_the_watermark_is_one_models_transient_error(tmp_path):
    class DownStore(FailingStore):
        def get(self, key: str):
            if "exploding" in key:
                raise PlatformError("the store is down", transient=True)
            return self.inner.get(key)

    store = DownStore(with_contract(DirectoryStore(tmp_path / "s")), fail_on="nothing")
    reports = export_models(["exploding", MODEL], ExplodingSource(), store, now=NOW, since=T0, max_slices=1)
    assert "the store is down" in reports["exploding"].error and reports["exploding"].transient is True
    assert reports[MODEL].rows == 1
