"""The export by a model's contract (functions/shared/export_table.py ExportLayout, the stored
contracts of functions/services/contracts.py): models the project has never seen — a regression
on scikit-learn's diabetes data and a multiclass classifier on its iris data, with the data sets'
own column names ("sepal length (cm)") — exported from both sources (the local console logs, and
the fake Log Analytics service through the real azure-monitor-query client: `integration`) and
checked row by row; feature names no KQL identifier can be; records of another contract
quarantined, never read as rows of nulls; no contract, no export; and the stored state's layout:
parts and watermarks written before contracts are the credit-card layout they are.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from functions.adapters.azure.inference_logs import fetch_query, kql_columns
from functions.adapters.local.inference_logs import LocalInferenceLogs
from functions.adapters.local.store import DirectoryStore
from functions.services.contracts import (
    current_contract,
    current_key,
    make_current,
    store_contract,
    version_contract,
    version_key,
)
from functions.services.export import ExportError, export_model, export_models, part_key, quarantine_key, \
    read_watermark, watermark_key
from functions.shared.contract import ContractError, ModelContract
from functions.shared.export_table import (
    LEGACY_FINGERPRINT,
    META_COLUMNS,
    META_COLUMNS_KEY,
    META_FEATURES,
    ExportLayout,
    columns_fingerprint,
    part_fingerprint,
)
from ml import schema
from tests.export_helpers import (
    CREDIT,
    CREDIT_LAYOUT,
    MODEL,
    NOW,
    T0,
    WORKSPACE,
    ListSource,
    client_fixture,  # noqa: F401 (fixture)
    console,
    fake_fixture,  # noqa: F401 (fixture)
    fake_server_fixture,  # noqa: F401 (fixture)
    local_home_from,
    source_fixture,  # noqa: F401 (fixture)
    traffic,
    with_contract,
)
from tests.fake_log_analytics import CONSOLE_TABLE
from tests.fakes import MemoryStore
from tests.model_contracts import (
    DIABETES_MODEL,
    IRIS_MODEL,
    diabetes_contract,
    diabetes_frame,
    iris_contract,
    iris_frame,
    with_colour,
)

LEGACY_PART = Path(__file__).parent / "payloads" / "export-part-before-contracts.parquet"


# --- models the project has never seen ---------------------------------------------------------

def model_records(model: str, n: int, seed: int = 0, shift: float = 0.0) -> list[dict[str, Any]]:
    """`n` records of the model's features as its clients send them (a sample of the data set's
    rows, `shift` added to every numeric feature)."""
    contract = iris_contract() if model == IRIS_MODEL else diabetes_contract()
    frame = with_colour(iris_frame()) if model == IRIS_MODEL else diabetes_frame()
    rows = frame.sample(n=n, replace=True, random_state=seed)
    out = []
    for _, row in rows.iterrows():
        out.append({f.name: (str(row[f.name]) if f.kind == "categorical" else float(row[f.name]) + shift)
                    for f in contract.features})
    return out


def console_traffic(model: str, records: list[dict[str, Any]], version: str = "1", per_request: int = 3,
                    start=T0, span: timedelta = timedelta(minutes=50)) -> tuple[list[dict], list[dict]]:
    """Console rows (score.py's InputData lines, `per_request` records a request) in [start, start +
    span) and the export rows they should become."""
    rows, expected = [], []
    requests = [records[i:i + per_request] for i in range(0, len(records), per_request)]
    step = span / max(1, len(requests))
    for j, batch in enumerate(requests):
        at = start + step * j + timedelta(microseconds=123)
        request_id = f"req-{j:04d}"
        rows.append(console(at, request_id, batch, version=version, deployment="blue" if j % 2 else "green",
                            model=model))
        for index, record in enumerate(batch):
            expected.append({"TimeGenerated": at, "request_id": request_id, "model_version": version,
                             "deployment": "blue" if j % 2 else "green", "record_index": index, **record})
    return rows, expected


def exported_iris_hour(tmp_path: Path, rows: int, seed: int, shift: float = 0.0):
    """An hour of the iris model's traffic exported into a store that names version 1 as production
    (its contract stored), and that version's reference sample: (store, reference, export report)."""
    from functions.services.records import RolloutStore
    from tests.model_contracts import iris_frame, with_colour

    store = DirectoryStore(tmp_path / "store")
    store_contract(store, IRIS_MODEL, "1", iris_contract(), current=True)
    RolloutStore(store).set_production({"model": IRIS_MODEL, "version": "1", "id": "rollout-1"}, "blue",
                                       {"blue": 100}, NOW.isoformat())
    reference = tmp_path / "reference.parquet"
    with_colour(iris_frame()).to_parquet(reference, index=False)
    console_rows, _ = console_traffic(IRIS_MODEL, model_records(IRIS_MODEL, rows, seed=seed, shift=shift), start=T0)
    local_home_from(console_rows, tmp_path / "home")
    report = export_model(IRIS_MODEL, LocalInferenceLogs(tmp_path / "home"), store,
                          now=T0 + timedelta(hours=1, minutes=15), since=T0)
    return store, reference, report


def exported(store, model: str) -> list[dict[str, Any]]:
    out = []
    for key in sorted(k for k in store.list(f"exports/{model}/") if k.endswith(".parquet")):
        out += pq.read_table(io.BytesIO(store.get(key)[0])).to_pylist()
    return out


def key_of(row: dict[str, Any]) -> tuple:
    return row["TimeGenerated"], row["request_id"], row["record_index"]


CASES = {IRIS_MODEL: iris_contract, DIABETES_MODEL: diabetes_contract}


@pytest.mark.parametrize("model", list(CASES))
def test_the_layout_is_the_contracts_features_categoricals_then_numerics(model):
    contract = CASES[model]()
    layout = ExportLayout.for_contract(contract)
    assert layout.columns == META_COLUMNS + contract.categorical + contract.numeric
    assert [str(f.type) for f in layout.schema][len(META_COLUMNS):] == \
        ["string"] * len(contract.categorical) + ["double"] * len(contract.numeric)
    assert layout.fingerprint != LEGACY_FINGERPRINT
    metadata = layout.part_metadata()
    assert metadata[META_COLUMNS_KEY].decode() == layout.fingerprint
    assert json.loads(metadata[META_FEATURES]) == [[n, layout.kind(n)] for n in layout.features]


@pytest.mark.parametrize("model", list(CASES))
def test_a_never_seen_model_is_exported_row_by_row_from_local_console_logs(model, tmp_path):
    contract = CASES[model]()
    layout = ExportLayout.for_contract(contract)
    rows, expected = console_traffic(model, model_records(model, 60, seed=1))
    local_home_from(rows, tmp_path / "home")
    store = with_contract(DirectoryStore(tmp_path / "s"), contract, model=model, version="1")

    report = export_model(model, LocalInferenceLogs(tmp_path / "home"), store, now=NOW, since=T0, max_slices=1)

    assert (report.error, report.rows, report.malformed, report.quarantined) == ("", 60, 0, 0)
    assert report.columns == layout.fingerprint
    got = sorted(exported(store, model), key=key_of)
    assert got == sorted(expected, key=key_of)  # every value, every row
    [key] = [k for k in store.list(f"exports/{model}/")]
    part = pq.read_schema(io.BytesIO(store.get(key)[0]))
    assert part.names == list(layout.columns) and part_fingerprint(part) == layout.fingerprint
    mark, _ = read_watermark(store, model)
    assert (mark.columns, mark.layout, mark.recent[-1]["columns"]) == (layout.fingerprint, 1, layout.fingerprint)


@pytest.mark.integration
@pytest.mark.parametrize("model", list(CASES))
def test_a_never_seen_model_is_exported_the_same_from_log_analytics(model, fake, source, tmp_path):
    contract = CASES[model]()
    rows, expected = console_traffic(model, model_records(model, 90, seed=2))
    fake.add_rows(CONSOLE_TABLE, rows)
    local_home_from(rows, tmp_path / "home")
    from_azure = with_contract(DirectoryStore(tmp_path / "a"), contract, model=model, version="1")
    from_local = with_contract(DirectoryStore(tmp_path / "l"), contract, model=model, version="1")

    azure = export_model(model, source, from_azure, now=NOW, since=T0, max_slices=1)
    local = export_model(model, LocalInferenceLogs(tmp_path / "home"), from_local, now=NOW, since=T0, max_slices=1)

    assert (azure.error, azure.rows, azure.malformed, azure.quarantined) == ("", 90, 0, 0)
    assert sorted(exported(from_azure, model), key=key_of) == sorted(expected, key=key_of)
    assert local.rows == 90 and local.files == azure.files != []
    for key in azure.files:  # the same bytes, whichever source
        assert from_azure.get(key)[0] == from_local.get(key)[0]
    fetch = [r.query for r in fake.requests if "mv-expand" in (r.query or "")][0]
    # names enter only as string literals; columns KQL cannot name are projected under generated names
    for column, name in kql_columns(ExportLayout.for_contract(contract)):
        assert f'["{column}"] = ' in fetch and f"(rec[{json.dumps(name)}])" in fetch
    if model == IRIS_MODEL:
        assert '["petal colour"] = tostring(rec["petal colour"])' in fetch  # quotable: a space
        assert '["_f1"] = todouble(rec["sepal length (cm)"])' in fetch  # parentheses: no identifier can hold them


@pytest.mark.integration
def test_the_fake_service_refuses_the_column_names_the_real_one_refuses(fake, source):
    """Checked against the Kusto entity-name rules (tests/fake_inference_logs.py docstring): a
    quoted name may hold spaces, '.' and '-', never parentheses; "__" at either end is reserved."""
    layout = ExportLayout.for_contract(iris_contract())
    query = fetch_query(IRIS_MODEL, T0, T0 + timedelta(hours=1), layout)
    for bad in ('["sepal length (cm)"]', '["__x"]', "[\"x:y\"]", "sepal length"):
        sent = query.replace('["_f1"]', bad)
        response = source.client.send_request(_request(sent), enforce_https=False)
        assert response.status_code == 400, bad
    for good in ('["sepal-length.cm"]', "['sepal length']", "sepal_length"):
        response = source.client.send_request(_request(query.replace('["_f1"]', good)), enforce_https=False)
        assert response.status_code == 200, (good, response.text())


def _request(query: str) -> Any:
    from azure.core.rest import HttpRequest

    return HttpRequest("POST", f"/workspaces/{WORKSPACE}/query",
                       json={"query": query, "timespan": "2026-05-09T07:00:00.000Z/2026-05-09T08:00:00.000Z"})


HOSTILE_NAMES = ['quote " inside', "back\\slash", "']", "where", "__dunder__", "naïve", "$.a", "1day",
                 "-", " padded ", "x" * 128, "a, b", 'rec["x"]']


@pytest.mark.integration
def test_any_name_a_contract_allows_is_exported_from_both_sources(fake, source, tmp_path):
    contract = ModelContract.from_dict({
        "features": [{"name": n, "type": "numeric" if i % 2 else "categorical"} for i, n in enumerate(HOSTILE_NAMES)],
        "target": "y", "task": "regression", "response_kind": "value",
        "sample_request": {"data": [{n: (1.0 if i % 2 else "a") for i, n in enumerate(HOSTILE_NAMES)}]}})
    records = [{n: (i * 1.5 + k if i % 2 else f"v{k}-{i}") for i, n in enumerate(HOSTILE_NAMES)} for k in range(7)]
    model = "hostile-names"
    rows, expected = console_traffic(model, records)
    fake.add_rows(CONSOLE_TABLE, rows)
    local_home_from(rows, tmp_path / "home")
    from_azure = with_contract(DirectoryStore(tmp_path / "a"), contract, model=model, version="1")
    from_local = with_contract(DirectoryStore(tmp_path / "l"), contract, model=model, version="1")

    azure = export_model(model, source, from_azure, now=NOW, since=T0, max_slices=1)
    export_model(model, LocalInferenceLogs(tmp_path / "home"), from_local, now=NOW, since=T0, max_slices=1)

    assert (azure.error, azure.rows, azure.quarantined) == ("", 7, 0)
    assert sorted(exported(from_azure, model), key=key_of) == sorted(expected, key=key_of)
    for key in azure.files:
        assert from_azure.get(key)[0] == from_local.get(key)[0]


def test_a_feature_the_export_cannot_hold_fails_the_model_closed(tmp_path):
    for name, why in (("request_id", "own columns"), ("_misfit", "own columns"), ("tab\there", "control character")):
        contract = ModelContract.from_dict({"features": [{"name": name, "type": "numeric"}], "target": "y",
                                            "task": "regression", "response_kind": "value",
                                            "sample_request": {"data": [{name: 1.0}]}})
        with pytest.raises(ContractError, match=why):
            ExportLayout.for_contract(contract)
        store = with_contract(DirectoryStore(tmp_path / name.replace("\t", "-")), contract, model="m", version="1")
        with pytest.raises(ExportError, match=why) as caught:
            export_model("m", ListSource([]), store, now=NOW, since=T0)
        assert caught.value.report.error and store.get(watermark_key("m")) is None


# --- records of another contract ----------------------------------------------------------------

def test_records_of_another_contract_are_quarantined_never_read_as_nulls(tmp_path):
    """v2 (current) added "petal colour"; v1's records lack it, and a foreign writer's have more."""
    current = iris_contract()
    records = model_records(IRIS_MODEL, 6, seed=3)
    older = [{k: v for k, v in r.items() if k != "petal colour"} for r in records[:3]]
    foreign = [{**records[0], "leaf count": 3.0}]
    rows, expected = console_traffic(IRIS_MODEL, records, version="2")
    old_rows, _ = console_traffic(IRIS_MODEL, older, version="1", start=T0 + timedelta(seconds=1))
    foreign_rows, _ = console_traffic(IRIS_MODEL, foreign, version="2", start=T0 + timedelta(seconds=2))
    for row in foreign_rows:
        row["Message"] = row["Message"].replace("req-0000", "foreign")
    local_home_from(rows + old_rows + foreign_rows, tmp_path / "home")
    store = with_contract(DirectoryStore(tmp_path / "s"), current, model=IRIS_MODEL, version="2")

    report = export_model(IRIS_MODEL, LocalInferenceLogs(tmp_path / "home"), store, now=NOW, since=T0, max_slices=1)

    assert (report.rows, report.quarantined, report.malformed) == (6, 4, 0)
    assert sorted(exported(store, IRIS_MODEL), key=key_of) == sorted(expected, key=key_of)
    assert store.list(f"exports/{IRIS_MODEL}/1/") == []  # no v1 part of nulls
    kept = [json.loads(line) for line in store.get(quarantine_key(IRIS_MODEL, T0))[0].splitlines()]
    reasons = sorted(k["reason"] for k in kept)
    assert reasons == ["does not fit the contract: missing feature(s) petal colour"] * 3 + [
        "does not fit the contract: unexpected feature(s) leaf count"]
    canon = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(canon(k["record"]["record"]) for k in kept if k["record"]["model_version"] == "1") == sorted(
        canon(r) for r in older)  # each record as it was logged
    assert [k["record"]["request_id"] for k in kept if k["record"]["model_version"] == "2"] == ["foreign"]
    assert all(k["kind"] == "record" for k in kept)


@pytest.mark.integration
def test_records_of_another_contract_are_quarantined_the_same_from_log_analytics(fake, source, tmp_path):
    current = iris_contract()
    records = model_records(IRIS_MODEL, 6, seed=3)
    older = [{k: v for k, v in r.items() if k != "petal colour"} for r in records[:3]]
    rows, _ = console_traffic(IRIS_MODEL, records, version="2")
    old_rows, _ = console_traffic(IRIS_MODEL, older, version="1", start=T0 + timedelta(seconds=1))
    fake.add_rows(CONSOLE_TABLE, rows + old_rows)
    local_home_from(rows + old_rows, tmp_path / "home")
    from_azure = with_contract(DirectoryStore(tmp_path / "a"), current, model=IRIS_MODEL, version="2")
    from_local = with_contract(DirectoryStore(tmp_path / "l"), current, model=IRIS_MODEL, version="2")

    azure = export_model(IRIS_MODEL, source, from_azure, now=NOW, since=T0, max_slices=1)
    local = export_model(IRIS_MODEL, LocalInferenceLogs(tmp_path / "home"), from_local, now=NOW, since=T0,
                         max_slices=1)

    assert (azure.rows, azure.quarantined) == (local.rows, local.quarantined) == (6, 3)
    kept = [json.loads(line) for line in from_azure.get(quarantine_key(IRIS_MODEL, T0))[0].splitlines()]
    assert [k["reason"] for k in kept] == ["does not fit the contract: missing feature(s) petal colour"] * 3
    assert sorted(json.dumps(k["record"]["record"], sort_keys=True) for k in kept) == sorted(
        json.dumps(r, sort_keys=True) for r in older)  # the record as it was logged (tostring(rec))
    for key in azure.files:
        assert from_azure.get(key)[0] == from_local.get(key)[0]


def test_rows_of_a_version_whose_contract_retypes_a_feature_are_quarantined(tmp_path):
    """Same names, other kinds: no record-level check can tell, the version's stored contract can."""
    current = iris_contract()
    retyped = ModelContract.from_dict({**current.to_dict(), "features": [
        {**f.to_dict(), "type": "numeric"} if f.name == "petal colour" else f.to_dict() for f in current.features]})
    records = model_records(IRIS_MODEL, 4, seed=4)
    rows, expected = console_traffic(IRIS_MODEL, records, version="2")
    old_rows, _ = console_traffic(IRIS_MODEL, records[:2], version="1", start=T0 + timedelta(seconds=1))
    local_home_from(rows + old_rows, tmp_path / "home")
    store = with_contract(DirectoryStore(tmp_path / "s"), current, model=IRIS_MODEL, version="2")
    store_contract(store, IRIS_MODEL, "1", retyped)

    report = export_model(IRIS_MODEL, LocalInferenceLogs(tmp_path / "home"), store, now=NOW, since=T0, max_slices=1)

    assert (report.rows, report.quarantined) == (4, 2)
    assert sorted(exported(store, IRIS_MODEL), key=key_of) == sorted(expected, key=key_of)
    kept = [json.loads(line) for line in store.get(quarantine_key(IRIS_MODEL, T0))[0].splitlines()]
    assert {k["reason"] for k in kept} == {
        "version 1's contract does not fit the current one (feature 'petal colour' retyped categorical → numeric)"}


# --- no contract, no export -----------------------------------------------------------------------

def test_a_model_without_a_stored_contract_is_not_exported_and_the_others_are(tmp_path):
    rows, expected = traffic(hours=1)
    store = with_contract(DirectoryStore(tmp_path / "s"))  # credit-card-default has one, "unknown" none
    home = tmp_path / "home"
    local_home_from(rows, home)

    reports = export_models(["unknown", MODEL], LocalInferenceLogs(home), store, now=NOW, since=T0, max_slices=1)

    assert reports["unknown"].error == (
        "export of unknown: no contract is stored for its production version (contracts/unknown/current.json): "
        "nothing exported (the export never guesses a model's columns)")
    assert reports["unknown"].transient is False and reports["unknown"].to_dict()["columns"] == ""
    assert store.get(watermark_key("unknown")) is None and store.list("exports/unknown/") == []
    assert reports[MODEL].error == "" and reports[MODEL].rows == len(expected)


def test_an_unreadable_stored_contract_is_named_not_taken_for_none(tmp_path):
    store = DirectoryStore(tmp_path / "s")
    store.put(current_key(MODEL), b'{"features": [')
    with pytest.raises(ExportError, match=r"contracts/credit-card-default/current.json: not JSON") as caught:
        export_model(MODEL, ListSource([]), store, now=NOW, since=T0)
    assert caught.value.report.error.startswith("export of credit-card-default: its current contract cannot be used")


def test_contracts_are_stored_per_version_and_made_current():
    store = MemoryStore()
    iris, other = iris_contract(), diabetes_contract()
    assert current_contract(store, IRIS_MODEL) is None and version_contract(store, IRIS_MODEL, "1") is None
    store_contract(store, IRIS_MODEL, "1", iris, current=True)
    store_contract(store, IRIS_MODEL, "2", other)  # a candidate: not current yet
    assert current_contract(store, IRIS_MODEL) == iris and version_contract(store, IRIS_MODEL, "2") == other
    assert json.loads(store.get(current_key(IRIS_MODEL))[0]) == iris.to_dict()  # ModelContract.to_dict() JSON
    assert make_current(store, IRIS_MODEL, "2") == other and current_contract(store, IRIS_MODEL) == other
    assert version_key(IRIS_MODEL, "2") == "contracts/iris-species/versions/2.json"
    with pytest.raises(ContractError, match="no contract is stored for iris-species:3"):
        make_current(store, IRIS_MODEL, "3")


# --- stored state written before contracts ------------------------------------------------------

def test_the_legacy_fingerprint_is_the_credit_card_layout():
    assert LEGACY_FINGERPRINT == CREDIT_LAYOUT.fingerprint == columns_fingerprint(schema.CATEGORICAL, schema.NUMERIC)
    assert CREDIT_LAYOUT.columns == META_COLUMNS + schema.FEATURE_NAMES  # the columns parts always had
    assert CREDIT_LAYOUT.part_metadata() is None  # written as before: the same bytes


def test_a_part_written_before_contracts_is_the_credit_card_layout_and_what_the_export_still_writes(tmp_path):
    """tests/payloads/export-part-before-contracts.parquet: version 3's part of the slice [07:00,
    08:00) of tests/export_helpers.traffic(hours=1), written by the export at commit 5e89cdb
    (before contracts). It carries no layout metadata; its own columns say what it is."""
    legacy = LEGACY_PART.read_bytes()
    part = pq.read_schema(io.BytesIO(legacy))
    assert META_COLUMNS_KEY not in (part.metadata or {})
    assert part_fingerprint(part) == LEGACY_FINGERPRINT

    _, expected = traffic(hours=1)
    store = with_contract(DirectoryStore(tmp_path / "s"))
    store.put(watermark_key(MODEL), b'{"model": "credit-card-default", "high_water": "2026-05-09T07:00:00+00:00"}')
    mark, _ = read_watermark(store, MODEL)  # a watermark written before contracts
    assert (mark.columns, mark.layout) == (LEGACY_FINGERPRINT, 1)

    report = export_model(MODEL, ListSource([expected]), store, now=NOW, max_slices=1)

    assert store.get(part_key(MODEL, "3", T0))[0] == legacy  # byte for byte
    assert report.columns == LEGACY_FINGERPRINT and read_watermark(store, MODEL)[0].columns == LEGACY_FINGERPRINT


def test_drift_reads_a_pre_change_part_as_the_credit_card_layout_and_never_as_another(tmp_path):
    from ml.drift import DriftInputError, DriftSchema
    from ml.drift.data import load

    window = tmp_path / "window"
    window.mkdir()
    (window / "part-0.parquet").write_bytes(LEGACY_PART.read_bytes())
    frame = load(window, skip_unusable=True, columns=DriftSchema.from_contract(CREDIT.to_dict()))
    rows = pq.read_table(LEGACY_PART).to_pylist()
    assert frame.n_rows == len(rows) and frame.quarantined == {}
    assert np.array_equal(frame.numeric["age"], np.array([r["age"] for r in rows]))

    # The same names with "age" categorical (another contract): the part is set aside, not misread.
    other = DriftSchema.from_contract({**CREDIT.to_dict(), "features": [
        {"name": f.name, "type": "categorical" if f.name == "age" else f.kind} for f in CREDIT.features]})
    skipped = load(window, skip_unusable=True, columns=other)
    assert skipped.n_rows == 0 and "column age holds double, the contract says categorical" in \
        skipped.quarantined["part-0.parquet"]
    with pytest.raises(DriftInputError, match="column age holds double"):
        load(window / "part-0.parquet", columns=other)
