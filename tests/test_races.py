"""The three concurrency claims, tested as real races on every Store implementation.

1. Rollout claim (functions/services/records.py `RolloutStore.claim`, create-only): of N concurrent
   deliveries of one ModelRegistered event exactly one starts a rollout.
2. Retraining launch record (functions/services/retraining.py, `retraining/<model>/launch.json`,
   create-only then etag compare-and-swap): N concurrent duplicates of one alert, or N different
   alerts for one model within the cooldown, launch one job.
3. Export watermark (functions/services/export.py `export_model`, etag compare-and-swap): concurrent
   exporters of one model export every row exactly once.

Threads alone do not make a race: under the GIL a read → decide → write path takes microseconds,
so threads started together still run one after another and each reads the previous one's write —
such a test stays green with the conditional write removed. `RaceStore` stages the race instead:
every contender has read and decided before any of them writes, so only the store's conditional
write can pick the winner. Turning any of the three conditional writes into a plain put makes
these fast tests fail (checked by mutation, in a copy of the tree). Each test also asserts the race
was staged (`waited`/`won`/`lost`), so a code change that quietly stops contending is seen too.

Fast on MemoryStore and DirectoryStore (threads only, no processes); the BlobStore variant runs on
Azurite (tests/azurite.py) and is marked `integration`.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from functions.adapters.local.store import DirectoryStore
from functions.shared.eventgrid import model_registered_payload
from functions.domain.alerts import job_name
from functions.domain.config import load_managed_models
from functions.domain.decisions import Decision
from functions.services.export import ExportReport, export_model, read_watermark
from functions.services.handoff import accept_events, start_accepted
from functions.services.records import RolloutStore
from functions.services.retraining import AlertPolicy, AlertAnswer, handle_alert_body
from functions.ports import Conflict, PlatformError, Store
from ml.schema import FEATURES
from tests.export_helpers import with_contract
from tests.fakes import FakeJobs, MemoryStore
from tests.races import RaceNotStaged, RaceStore, run_together

pytest_plugins = ["tests.azurite"]  # the session-wide `azurite` fixture (blob param only)

MODEL = "credit-card-default"
T = TypeVar("T")


# --- one store of each implementation -------------------------------------------------------------

@dataclass(frozen=True)
class Backend:
    store: Store
    # generous: it only runs out when the race was not staged (a failing test), and a loaded CI
    # machine must not turn a slow contender into a false failure; Azurite adds HTTP round trips
    barrier_timeout: float


@pytest.fixture(params=["memory", "directory", pytest.param("blob", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return Backend(MemoryStore(), 30.0)
    if request.param == "directory":
        return Backend(DirectoryStore(tmp_path / "store"), 30.0)
    from functions.adapters.azure.blob_store import blob_store_from_settings

    conn = request.getfixturevalue("azurite")
    store = blob_store_from_settings(connection_string=conn, container=f"race-{uuid.uuid4().hex}")  # fresh per test
    return Backend(store, 60.0)


# --- the harness itself ---------------------------------------------------------------------------

def test_the_harness_fails_clearly_instead_of_hanging_when_a_contender_never_writes() -> None:
    race = RaceStore(MemoryStore(), "k/", contenders=2, timeout=0.2)
    began = time.monotonic()
    with pytest.raises(RaceNotStaged, match="race on 'k/' not staged"):
        race.put("k/x.json", b"1", if_absent=True)  # the second contender never comes
    assert time.monotonic() - began < 5
    assert race.failures and race.won == 0 and race.inner.get("k/x.json") is None


def test_the_harness_holds_only_the_first_writes_and_lets_the_store_pick_one() -> None:
    race = RaceStore(MemoryStore(), "k/", contenders=3, timeout=30.0)

    def contend(i: int) -> bool:
        try:
            race.put("k/x.json", str(i).encode(), if_absent=True)
            return True
        except Conflict:
            return False

    outcomes = run_together(3, contend, race)
    assert sorted(outcomes) == [False, False, True] and (race.waited, race.won, race.lost) == (3, 1, 2)
    race.put("k/x.json", b"later")  # past the first 3: straight through, no fourth contender needed
    race.put("other/y.json", b"y")  # outside the prefix: never held
    assert race.waited == 3 and race.inner.get("k/x.json")[0] == b"later"


# --- 1. rollout claim -----------------------------------------------------------------------------

class RecordingOrchestrations:
    """ports.Orchestrations that records every start (thread-safe: the deliveries run in threads)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.lock = threading.Lock()

    async def exists(self, instance_id: str) -> bool:
        with self.lock:
            return instance_id in self.started

    async def start(self, name: str, instance_id: str, input_: Any) -> None:
        with self.lock:
            self.started.append(instance_id)

    async def raise_event(self, instance_id: str, event: str, data: Any) -> bool:
        return False


DELIVERIES = 20


def test_concurrent_deliveries_of_one_event_start_exactly_one_rollout(backend: Backend) -> None:
    race = RaceStore(backend.store, "rollouts/", DELIVERIES, timeout=backend.barrier_timeout)
    rollouts = RolloutStore(race)
    managed = load_managed_models(None)  # credit-card-default with its defaults
    body = json.dumps([model_registered_payload("ws-staging", MODEL, "2", {})])  # one event, redelivered
    orchestrations = RecordingOrchestrations()

    def deliver(i: int) -> list[Decision]:
        accepted = accept_events(body, managed, rollouts)
        asyncio.run(start_accepted(accepted, orchestrations, rollouts))
        return [a.decision for a in accepted]

    decisions = [d for batch in run_together(DELIVERIES, deliver, race) for d in batch]

    assert Counter(d.action for d in decisions) == {"rollout": 1, "duplicate": DELIVERIES - 1}
    winner = next(d for d in decisions if d.action == "rollout")
    assert orchestrations.started == [winner.run_key]  # one orchestration start, for the winner's claim
    assert rollouts.get(MODEL, winner.run_key)["state"] == "running"
    assert [r["id"] for r in rollouts.running(MODEL)] == [winner.run_key]
    assert len(backend.store.list("rollouts/")) == 1
    # and the race was real: every contender read "no rollout yet" and decided to roll out; the
    # create-only claim alone turned the others into duplicates
    assert all("claimed by a concurrent delivery" in d.reason for d in decisions if d.action == "duplicate")
    assert (race.waited, race.won, race.lost) == (DELIVERIES, 1, DELIVERIES - 1)


# --- 2. retraining launch record --------------------------------------------------------------------

ALERTS = 20
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
POLICY = AlertPolicy(managed=[MODEL], rule_map={}, cooldown=timedelta(hours=24))
LOG_ALERT = json.loads((Path(__file__).parent / "payloads" / "azmon-common-log-alerts-v2.testaction.json").read_text())
PRIORS = ["no earlier launch", "an earlier launch past the cooldown"]  # if_absent path, etag path


def alert_body(alert_id: str) -> bytes:
    body = copy.deepcopy(LOG_ALERT)
    body["data"]["essentials"].update(alertId=alert_id, monitorCondition="Fired")
    return json.dumps(body).encode()


def seed_prior(prior: str, store: Store, jobs: FakeJobs) -> list[str]:
    """For the etag path: a launch two days ago whose job has finished, so `launch.json` exists and a
    new alert may launch again. Returns the submissions made by the seeding."""
    if prior == PRIORS[0]:
        return []
    answer = handle_alert_body(alert_body("earlier"), store, jobs, POLICY, now=lambda: NOW - timedelta(hours=48))
    assert answer.status == 202 and store.get(f"retraining/{MODEL}/launch.json") is not None
    jobs.finish(answer.body["job"])
    return list(jobs.submissions)


@pytest.mark.parametrize("prior", PRIORS)
def test_concurrent_duplicates_of_one_alert_launch_one_job(backend: Backend, prior: str) -> None:
    jobs = FakeJobs()
    seeded = seed_prior(prior, backend.store, jobs)
    race = RaceStore(backend.store, f"retraining/{MODEL}/", ALERTS, timeout=backend.barrier_timeout)
    body = alert_body("storm")

    answers: list[AlertAnswer] = run_together(
        ALERTS, lambda i: handle_alert_body(body, race, jobs, POLICY, now=lambda: NOW), race)

    assert jobs.submissions[len(seeded):] == [job_name(MODEL, "storm")]
    launched = [a for a in answers if a.status == 202]
    assert launched and all(a == launched[0] for a in launched), {json.dumps(a.body) for a in answers}
    assert launched[0].body["action"] == "retrain" and launched[0].body["job"] == job_name(MODEL, "storm")
    # a loser that looked while the winner was still submitting is told to retry (and nothing is recorded
    # for it); its retry gets the winner's answer
    in_flight = [a for a in answers if a.status != 202]
    assert all(a.status == 503 and "being launched" in a.body["error"] for a in in_flight), in_flight
    assert handle_alert_body(body, backend.store, jobs, POLICY, now=lambda: NOW) == launched[0]
    assert (race.waited, race.won, race.lost) == (ALERTS, 1, ALERTS - 1)  # the race was real: all decided to launch


@pytest.mark.parametrize("prior", PRIORS)
def test_concurrent_different_alerts_for_one_model_launch_one_job(backend: Backend, prior: str) -> None:
    jobs = FakeJobs()
    seeded = seed_prior(prior, backend.store, jobs)
    race = RaceStore(backend.store, f"retraining/{MODEL}/", ALERTS, timeout=backend.barrier_timeout)

    answers: list[AlertAnswer] = run_together(
        ALERTS, lambda i: handle_alert_body(alert_body(f"alert-{i}"), race, jobs, POLICY, now=lambda: NOW), race)

    launched = jobs.submissions[len(seeded):]
    assert len(launched) == 1, launched
    winner = next(a for a in answers if a.body.get("action") == "retrain")
    assert winner.status == 202 and winner.body["job"] == launched[0]
    losers = [a for a in answers if a is not winner]
    # the losers are told why (the winner's job is running, or the cooldown) and which job it is — or,
    # while the winner is still submitting, to retry shortly
    skipped = [a for a in losers if a.status == 200]
    assert all(a.body["action"] == "skip" and a.body["job"] == launched[0] for a in skipped)
    assert all(a.status == 503 and "being launched" in a.body["error"] for a in losers if a.status != 200)
    launch = json.loads(backend.store.get(f"retraining/{MODEL}/launch.json")[0])
    assert launch["job"] == launched[0] and launch["alert_id"] == winner.body["alert_id"]
    assert (race.waited, race.won, race.lost) == (ALERTS, 1, ALERTS - 1)  # the race was real: all decided to launch


class SubmitRacedByADuplicate(FakeJobs):
    """Jobs whose submission fails (AzureML unavailable) after a duplicate of the same alert was
    answered while it was in flight: the interleaving of a staged race, made deterministic."""

    def __init__(self, store: Store, body: bytes) -> None:
        super().__init__()
        self.store, self.body = store, body
        self.duplicate: AlertAnswer | None = None

    def submit_retraining(self, job_name: str, model: str, tags: dict[str, str], inputs: dict | None = None,
                          recipe: Any = None) -> dict:
        self.duplicate = handle_alert_body(self.body, self.store, FakeJobs(), POLICY, now=lambda: NOW)
        raise PlatformError("AzureML unavailable", transient=True)


def test_a_failed_submission_is_retried_even_when_a_duplicate_answered_meanwhile() -> None:
    """A duplicate that arrives while the launch is in flight is told to retry (503, not recorded):
    it can never pin a 202 for a job that was never submitted. Once the submission fails and the
    launch is released, the action group's retry launches."""
    store, body = MemoryStore(), alert_body("flaky")
    flaky = SubmitRacedByADuplicate(store, body)
    first = handle_alert_body(body, store, flaky, POLICY, now=lambda: NOW)
    assert first.status == 503 and flaky.duplicate is not None
    assert flaky.duplicate.status == 503 and "being launched" in flaky.duplicate.body["error"]
    jobs = FakeJobs()
    retry = handle_alert_body(body, store, jobs, POLICY, now=lambda: NOW)  # the action group retries the 503
    assert retry.status == 202 and jobs.submissions == [job_name(MODEL, "flaky")]
    again = handle_alert_body(body, store, FakeJobs(), POLICY, now=lambda: NOW)  # and a late duplicate
    assert again.status == 202 and again.body == retry.body


def test_a_launch_whose_process_died_before_submitting_does_not_block_retraining() -> None:
    from functions.services.retraining import LAUNCH_TIMEOUT

    store = MemoryStore()
    stuck = {"at": NOW.isoformat(), "job": "retrain-x", "alert_id": "gone", "rule": "r", "reason": "fired",
             "submitted": False, "previous": None}
    store.put(f"retraining/{MODEL}/launch.json", json.dumps(stuck).encode(), if_absent=True)
    body = alert_body("later")
    soon = handle_alert_body(body, store, FakeJobs(), POLICY, now=lambda: NOW + timedelta(seconds=30))
    assert soon.status == 503  # it may still be submitting
    jobs = FakeJobs()
    later = handle_alert_body(body, store, jobs, POLICY, now=lambda: NOW + LAUNCH_TIMEOUT + timedelta(seconds=1))
    assert later.status == 202 and jobs.submissions == [job_name(MODEL, "later")]


# --- 3. export watermark --------------------------------------------------------------------------

EXPORTERS = 3
T0 = datetime(2026, 5, 9, 7, 0, tzinfo=timezone.utc)
SLICE = timedelta(minutes=15)
SLICES = 4  # the window [T0, T0 + 1 h)
LAG = timedelta(minutes=10)
EXPORT_NOW = T0 + SLICES * SLICE + LAG  # horizon = the window's end


def export_row(i: int, at: datetime) -> dict[str, Any]:
    """One exported row (the export schema's columns), distinct per i, two versions interleaved."""
    row: dict[str, Any] = {"TimeGenerated": at, "request_id": f"req-{i}", "model_version": "3" if i % 3 else "4",
                           "deployment": "blue" if i % 3 else "green", "record_index": 0}
    for k, feature in enumerate(FEATURES):
        row[feature.name] = (feature.domain[(i + k) % len(feature.domain)] if feature.kind == "categorical"
                             else float(i * 100 + k))
    return row


class RowsSource:
    """ports.InferenceLogSource over rows in memory: each window's rows in time order, in small
    batches (as sources deliver them). Read-only, so shared by the exporters' threads."""

    def __init__(self, rows: list[dict[str, Any]], batch: int = 7) -> None:
        self.rows = sorted(rows, key=lambda r: (r["TimeGenerated"], r["request_id"]))
        self.batch = batch

    def _window(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        return [r for r in self.rows if start <= r["TimeGenerated"] < end]

    def count(self, model: str, start: datetime, end: datetime) -> int:
        return len(self._window(start, end))

    def fetch(self, model: str, start: datetime, end: datetime, layout: Any = None) -> Iterator[list[dict[str, Any]]]:
        rows = self._window(start, end)
        for offset in range(0, len(rows), self.batch):
            yield rows[offset:offset + self.batch]


def window_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows across the window (some on slice boundaries) and after its end (not exported yet)."""
    inside = [export_row(i, T0 + i * timedelta(minutes=1, seconds=13)) for i in range(48)]  # 0 … 58 min
    inside += [export_row(100 + s, T0 + s * SLICE) for s in range(SLICES)]  # exactly on each slice start
    after = [export_row(200 + i, T0 + SLICES * SLICE + i * timedelta(minutes=2)) for i in range(5)]
    return inside, after


def stored_rows(store: Store, keys: list[str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    out = []
    for key in keys:
        data, _ = store.get(key)
        out.extend(pq.read_table(io.BytesIO(data)).to_pylist())
    return out


def row_id(row: dict[str, Any]) -> tuple:
    return row["TimeGenerated"], row["request_id"], row["record_index"]


def check_exported_exactly_once(store: Store, reports: list[ExportReport], inside: list[dict[str, Any]]) -> None:
    """What exactly-once means to a reader of the store and of the reports, whoever won what."""
    assert all(r.error == "" for r in reports), [r.error for r in reports]
    slice_starts = [T0 + s * SLICE for s in range(SLICES)]
    counted = sorted(s.start for r in reports for s in r.slices if not s.by_other_instance)
    assert counted == slice_starts  # each slice counted by exactly one instance
    assert sum(r.rows for r in reports) == len(inside)
    exported = stored_rows(store, [f for r in reports for f in r.files])  # the files of the counted slices
    assert sorted(exported, key=row_id) == sorted(inside, key=row_id)
    everything = [k for k in store.list(f"exports/{MODEL}/") if k.endswith(".parquet")]
    assert sorted(stored_rows(store, everything), key=row_id) == sorted(inside, key=row_id)
    mark, _ = read_watermark(store, MODEL)
    assert mark.high_water == T0 + SLICES * SLICE
    assert (mark.slices, mark.rows) == (SLICES, len(inside))
    assert [e["start"] for e in mark.recent] == [s.isoformat() for s in slice_starts]


def test_concurrent_exporters_on_every_timer_tick_export_each_slice_exactly_once(backend: Backend) -> None:
    """One timer tick per slice, each run by every instance at once: every slice's watermark
    advance is contended by all of them, and the etag alone lets one through."""
    inside, after = window_rows()
    source = RowsSource(inside + after)
    with_contract(backend.store)  # the model's current contract: the export types its parts by it
    # the watermark exists before the race (a first run with nothing whole to export yet), so every
    # contender of a tick reads the same version of it
    seeded = export_model(MODEL, source, backend.store, now=T0 + LAG, lag=LAG, slice_length=SLICE, since=T0)
    assert seeded.slices == [] and read_watermark(backend.store, MODEL)[0].high_water == T0
    reports: list[ExportReport] = []
    for tick in range(SLICES):
        race = RaceStore(backend.store, "watermarks/export/", EXPORTERS, timeout=backend.barrier_timeout)
        now = T0 + (tick + 1) * SLICE + LAG  # the tick's horizon ends the tick's slice
        ticked: list[ExportReport] = run_together(
            EXPORTERS, lambda i: export_model(MODEL, source, race, now=now, lag=LAG, slice_length=SLICE), race)
        for r in ticked:  # each instance saw the tick's slice, as its own or as another's
            assert [s.start for s in r.slices] == [T0 + tick * SLICE] and r.high_water == T0 + (tick + 1) * SLICE
        assert sum(not s.by_other_instance for r in ticked for s in r.slices) == 1, f"tick {tick}"
        # and the race was real: every instance had read the watermark and exported the slice before
        # any advance reached the store
        assert (race.waited, race.won, race.lost) == (EXPORTERS, 1, EXPORTERS - 1), f"tick {tick}"
        reports += ticked
    check_exported_exactly_once(backend.store, reports, inside)


def test_concurrent_first_runs_create_one_watermark_and_export_each_slice_exactly_once(backend: Backend) -> None:
    """Every instance's first run at once, over a window of several slices: the create-only
    watermark and the first advance are contended by all; after that they run free (a loser
    re-reads and carries on from the watermark, possibly ahead of it)."""
    inside, after = window_rows()
    source = RowsSource(inside + after)
    with_contract(backend.store)
    # Only these two rounds are certain to be contended by all. Later rounds are not held: a loser
    # can skip ahead of a slice, or lose spuriously and write once more (a DirectoryStore reader
    # that races a create-only write can get an etag the unchanged object no longer has).
    race = RaceStore(backend.store, "watermarks/export/", EXPORTERS, rounds=2, timeout=backend.barrier_timeout)

    reports: list[ExportReport] = run_together(
        EXPORTERS, lambda i: export_model(MODEL, source, race, now=EXPORT_NOW, lag=LAG, slice_length=SLICE,
                                          since=T0), race)

    for r in reports:  # every instance ends at the window's end, whoever exported what
        assert r.high_water == T0 + SLICES * SLICE and r.slices
    check_exported_exactly_once(backend.store, reports, inside)
    assert race.waited == 2 * EXPORTERS  # the race was real: the create and the first advance held all
