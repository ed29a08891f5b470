"""Retention: what is old and unreferenced goes; what a running rollout or the current production
version references stays (its gate report, audit trail and operator records; the newest drift
result/report of the production version and the exports it names; exports in the drift window);
a second run deletes nothing. On DirectoryStore and the blob store (Azurite)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from functions.adapters.local.store import DirectoryStore
from functions.domain.retention import Stored, expired
from functions.services.retention import apply_retention
from functions.settings import Settings, SettingsError

pytest_plugins = ["tests.azurite"]

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
OLD = "2025-01-01T00:00:00+00:00"
DAYS = {"exports": 30.0, "reports": 90.0, "gate_reports": 180.0, "audit": 365.0}


@pytest.fixture(params=["directory", pytest.param("blob", marks=pytest.mark.integration)])
def store(request, tmp_path):
    if request.param == "directory":
        return DirectoryStore(tmp_path / "store")
    from functions.adapters.azure.blob_store import blob_store_from_settings

    return blob_store_from_settings(connection_string=request.getfixturevalue("azurite"),
                                    container=f"retention-{uuid.uuid4().hex}")


def put(store, key: str, value) -> None:
    store.put(key, value if isinstance(value, bytes) else json.dumps(value).encode())


def part(version: str, at: datetime) -> str:
    return f"exports/m/{version}/{at:%Y-%m-%d}/{at:%H}/part-{at:%Y%m%dT%H%M%S}Z.parquet"


def seed(store) -> dict[str, list[str]]:
    put(store, "production/m.json", {"model": "m", "version": "2", "rollout_id": "r2", "at": OLD})
    put(store, "running/m/r3.json", {"id": "r3", "model": "m", "version": "3"})
    for rid, version, state in (("r1", "1", "rolled_back"), ("r2", "2", "succeeded"), ("r3", "3", "running")):
        put(store, f"rollouts/m/{rid}.json", {"id": rid, "model": "m", "version": version, "state": state,
                                              "started": OLD, "finished": None if state == "running" else OLD})
        put(store, f"gate-reports/m/{version}/{rid}.json", {"at": OLD})
        put(store, f"audit/m/{rid}/00001-started.json", {"at": OLD})
    put(store, "operator/2025-01-01/000000000000-aaaaaaaa-abort.json", {"rollout_id": "r1", "at": OLD})
    put(store, "operator/2025-01-01/000000000001-bbbbbbbb-pause.json", {"rollout_id": "r3", "at": OLD})
    put(store, "operator/2026-11-30/000000000000-cccccccc-freeze.json", {"rollout_id": None})
    put(store, "decisions/2025-01-01/000000-e1-ignore.json", {"at": OLD})
    put(store, "decisions/2026-11-30/000000-e2-ignore.json", {"at": OLD})
    named = part("2", datetime(2025, 2, 1, tzinfo=timezone.utc))
    put(store, named, b"PAR1")
    put(store, "drift/m/2/20250201T000000Z/result.json", {"window": {"parts": [named]}})
    put(store, "drift/m/2/20250201T000000Z/report.html", b"<html/>")
    put(store, "drift/m/2/20250101T000000Z/result.json", {"window": {"parts": []}})
    put(store, "drift/m/1/20250101T000000Z/result.json", {"window": {"parts": []}})
    put(store, "drift/m/history.json", {"verdicts": []})
    put(store, part("1", datetime(2025, 1, 1, tzinfo=timezone.utc)), b"PAR1")
    put(store, part("1", NOW - timedelta(days=40)), b"PAR1")  # old: beyond 30 days
    recent = part("3", NOW - timedelta(hours=1))
    put(store, recent, b"PAR1")
    return {
        "gone": sorted(["gate-reports/m/1/r1.json", "audit/m/r1/00001-started.json",
                        "operator/2025-01-01/000000000000-aaaaaaaa-abort.json", "decisions/2025-01-01/000000-e1-ignore.json",
                        "drift/m/2/20250101T000000Z/result.json", "drift/m/1/20250101T000000Z/result.json",
                        part("1", datetime(2025, 1, 1, tzinfo=timezone.utc)), part("1", NOW - timedelta(days=40))]),
        "kept": ["gate-reports/m/2/r2.json", "gate-reports/m/3/r3.json", "audit/m/r2/00001-started.json",
                 "audit/m/r3/00001-started.json", "operator/2025-01-01/000000000001-bbbbbbbb-pause.json",
                 "operator/2026-11-30/000000000000-cccccccc-freeze.json", "decisions/2026-11-30/000000-e2-ignore.json",
                 "drift/m/2/20250201T000000Z/result.json", "drift/m/2/20250201T000000Z/report.html", named,
                 "drift/m/history.json", recent, "production/m.json", "rollouts/m/r1.json"],
    }


def test_old_unreferenced_records_go_and_what_is_referenced_stays(store):
    expected = seed(store)
    done = apply_retention(store, DAYS, now=NOW, drift_window=timedelta(hours=24))
    assert done["keys"] == expected["gone"]
    assert done["deleted"] == {"gate_reports": 1, "audit": 3, "reports": 2, "exports": 2}
    for key in expected["gone"]:
        assert store.get(key) is None, key
    for key in expected["kept"]:
        assert store.get(key) is not None, key
    again = apply_retention(store, DAYS, now=NOW, drift_window=timedelta(hours=24))
    assert again["keys"] == [] and again["deleted"] == {}  # idempotent


def test_a_dry_run_deletes_nothing_and_zero_days_keeps_a_kind_forever(tmp_path):
    store = DirectoryStore(tmp_path / "store")
    expected = seed(store)
    assert apply_retention(store, DAYS, now=NOW, dry_run=True)["keys"] == expected["gone"]
    assert all(store.get(k) is not None for k in expected["gone"])
    done = apply_retention(store, {**DAYS, "audit": 0.0}, now=NOW)
    assert "audit" not in done["deleted"] and store.get("audit/m/r1/00001-started.json") is not None


def test_the_decision_and_the_setting():
    items = [Stored("a", "audit", NOW - timedelta(days=400)), Stored("b", "audit", NOW - timedelta(days=10)),
             Stored("c", "audit", NOW - timedelta(days=400))]
    assert expired(items, {"audit": 365}, NOW, protected={"c"}) == ["a"]
    assert Settings.from_env({"MODELOPS_RETENTION_DAYS": '{"exports": 7}'}).retention_days()["exports"] == 7.0
    assert Settings().retention_days() == DAYS
    for raw, words in [('{"logs": 1}', "unknown kind"), ('{"exports": -1}', ">= 0"), ("[]", "JSON object"),
                       ("{", "not valid JSON"), ('{"audit": true}', ">= 0")]:
        with pytest.raises(SettingsError, match=words):
            Settings.from_env({"MODELOPS_RETENTION_DAYS": raw}).retention_days()
