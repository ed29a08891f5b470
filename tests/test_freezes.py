"""Freezes: pure decisions by direct call; held events and their release on the in-memory store;
the release race (two unfreezes and the timer at once → one start) on DirectoryStore and the blob
store (Azurite); the HTTP routes as the Functions host calls them."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import azure.functions as func
import pytest

from functions.domain.alerts import Alert, RetrainFacts, decide_alert
from functions.domain.config import load_managed_models
from functions.domain.decisions import Facts, decide
from functions.domain.events import parse_model_registered
from functions.domain.freezes import GLOBAL, Freeze, frozen_reason, parse_until
from functions.services.freezes import Freezes
from functions.services.handoff import accept_events, release_hand_off
from functions.services.records import RolloutStore
from functions.shared.eventgrid import model_registered_payload
from tests.fakes import MemoryStore
from tests.races import RaceStore, run_together
from tests.test_races import Backend, RecordingOrchestrations, backend  # noqa: F401 (fixture)
from tests.test_triggers import FakeDurableClient, runtime, user_code  # noqa: F401 (fixture)

pytest_plugins = ["tests.azurite"]

MODEL = "credit-card-default"
MANAGED = load_managed_models(None)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def event(version: str) -> dict:
    return model_registered_payload("ws-staging", MODEL, version, {})


# --- pure decisions -------------------------------------------------------------------------------

def test_a_frozen_model_holds_a_version_that_would_roll_out_and_only_that():
    ev = parse_model_registered(event("3"))
    held = decide(ev, Facts(managed=MANAGED, production_version="1", frozen="model m is frozen"))
    assert held.action == "held" and "model m is frozen" in held.reason
    # what would not roll out anyway is decided as before
    assert decide(ev, Facts(managed=MANAGED, production_version="5", frozen="x")).action == "skip"
    superseded = decide(ev, Facts(managed=MANAGED, superseded_by="4"))
    assert superseded.action == "skip" and "superseded by version 4" in superseded.reason
    assert decide(ev, Facts(managed=MANAGED)).action == "rollout"


def test_the_models_own_freeze_or_the_global_one_freezes_it_until_it_expires():
    mine = Freeze(MODEL, NOW.isoformat(), "ops", "release week", until=(NOW + timedelta(hours=1)).isoformat())
    everyone = Freeze(GLOBAL, NOW.isoformat(), "ops")
    assert "model credit-card-default is frozen until" in frozen_reason(MODEL, [everyone, mine], NOW)
    assert "all models are frozen" in frozen_reason("other", [everyone, mine], NOW)
    assert frozen_reason(MODEL, [mine], NOW + timedelta(hours=2)) is None  # expired: off
    assert frozen_reason("other", [mine], NOW) is None


def test_an_expiry_is_a_future_time_or_a_duration():
    assert parse_until(None, "2h", NOW) == (NOW + timedelta(hours=2)).isoformat()
    assert parse_until("2026-12-24T18:00:00Z", None, NOW) == "2026-12-24T18:00:00+00:00"
    assert parse_until("2026-12-24T18:00:00", None, NOW) == "2026-12-24T18:00:00+00:00"  # no offset: UTC
    assert parse_until(None, None, NOW) is None
    for until, for_, words in [("2020-01-01T00:00:00Z", None, "not in the future"), ("soon", None, "ISO 8601"),
                               (None, "2 fortnights", "s, m, h, d or w"), ("2027-01-01T00:00:00Z", "1h", "not both")]:
        with pytest.raises(ValueError, match=words):
            parse_until(until, for_, NOW)


def test_retraining_is_skipped_while_frozen_with_the_reason():
    alert = Alert("a-1", "drift", "Fired", "Log Analytics", "Log", "Sev2", NOW.isoformat(), ())
    skipped = decide_alert(alert, MODEL, RetrainFacts(NOW, timedelta(hours=24), frozen="model m is frozen"))
    assert skipped.action == "skip" and skipped.reason == "retraining skipped: model m is frozen"
    assert decide_alert(alert, MODEL, RetrainFacts(NOW, timedelta(hours=24))).action == "retrain"


# --- held events and their release -----------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def deliver(payload, rollouts, freezes, orchestrations) -> list:
    from functions.services.handoff import start_accepted

    accepted = accept_events(json.dumps([payload]), MANAGED, rollouts, freezes=freezes)
    asyncio.run(start_accepted(accepted, orchestrations, rollouts))
    return [a.decision for a in accepted]


def test_while_frozen_events_are_held_and_unfreezing_releases_the_newest_only():
    store, clock, orchestrations = MemoryStore(), Clock(), RecordingOrchestrations()
    rollouts, freezes = RolloutStore(store), Freezes(store, clock)
    freezes.freeze(MODEL, by="ops@contoso.com", comment="quarter end")
    payloads = {v: event(v) for v in ("2", "4", "3")}
    decisions = [d for p in payloads.values() for d in deliver(p, rollouts, freezes, orchestrations)]
    assert [d.action for d in decisions] == ["held", "held", "held"]
    assert orchestrations.started == [] and rollouts.list(MODEL) == []  # recorded, not claimed
    assert sorted(h["version"] for h in freezes.held(MODEL)) == ["2", "3", "4"]
    # a redelivery while frozen is held once
    again = deliver(payloads["4"], rollouts, freezes, orchestrations)
    assert again[0].action == "held" and "already held" in again[0].reason and len(freezes.held(MODEL)) == 3

    freezes.unfreeze(MODEL)
    released = asyncio.run(freezes.release(MODEL, release_hand_off(MANAGED, rollouts, (), orchestrations, freezes)))
    assert {(r["version"], r["outcome"]) for r in released} == {("4", "released"), ("3", "superseded"),
                                                                ("2", "superseded")}
    [started] = orchestrations.started
    assert rollouts.get(MODEL, started)["version"] == "4" and freezes.held(MODEL) == []
    # at-least-once: a late redelivery of a superseded version never rolls out; of the released one is a duplicate
    late = deliver(payloads["2"], rollouts, freezes, orchestrations)[0]
    assert late.action == "skip" and "superseded by version 4" in late.reason
    assert deliver(payloads["4"], rollouts, freezes, orchestrations)[0].action == "duplicate"
    assert len(orchestrations.started) == 1


def test_a_model_unfrozen_under_a_global_freeze_stays_held_and_an_expired_freeze_is_released_by_the_timer():
    store, clock, orchestrations = MemoryStore(), Clock(), RecordingOrchestrations()
    rollouts, freezes = RolloutStore(store), Freezes(store, clock)
    hand_off = release_hand_off(MANAGED, rollouts, (), orchestrations, freezes)
    freezes.freeze(GLOBAL, by="ops", until=(NOW + timedelta(minutes=30)).isoformat())
    freezes.freeze(MODEL, by="ops")
    assert deliver(event("2"), rollouts, freezes, orchestrations)[0].action == "held"
    freezes.unfreeze(MODEL)
    assert asyncio.run(freezes.release(MODEL, hand_off)) == [] and len(freezes.held(MODEL)) == 1  # global still on
    assert asyncio.run(freezes.release_due(hand_off)) == []  # not expired yet
    clock.now = NOW + timedelta(minutes=31)
    # lazily: a new event after the expiry is not held even before the timer ran
    assert freezes.frozen(MODEL) is None
    [released] = asyncio.run(freezes.release_due(hand_off))
    assert (released["version"], released["outcome"]) == ("2", "released") and len(orchestrations.started) == 1
    assert freezes.active(include_expired=True) == []  # the expired freeze is gone
    assert asyncio.run(freezes.release_due(hand_off)) == [] and len(orchestrations.started) == 1  # idempotent


CONTENDERS = 3  # two unfreezes and the timer


def test_two_unfreezes_and_the_timer_racing_release_once(backend: Backend) -> None:
    race = RaceStore(backend.store, "rollouts/", CONTENDERS, timeout=backend.barrier_timeout)
    clock = Clock()
    rollouts, freezes, orchestrations = RolloutStore(race), Freezes(race, clock), RecordingOrchestrations()
    freezes.freeze(MODEL, by="ops", until=(NOW + timedelta(minutes=5)).isoformat())
    for v in ("2", "3"):
        deliver(event(v), rollouts, freezes, orchestrations)
    clock.now = NOW + timedelta(minutes=6)  # expired: the timer releases it while two people unfreeze it
    hand_off = release_hand_off(MANAGED, rollouts, (), orchestrations, freezes)

    def contend(i: int) -> list:
        if i < 2:
            freezes.unfreeze(MODEL)
            return asyncio.run(freezes.release(MODEL, hand_off))
        return asyncio.run(freezes.release_due(hand_off))

    outcomes = [r for batch in run_together(CONTENDERS, contend, race) for r in batch]
    decisions = Counter(d["action"] for r in outcomes if r["outcome"] == "released" for d in r["decision"])
    assert decisions == {"rollout": 1, "duplicate": CONTENDERS - 1}
    [started] = orchestrations.started
    assert rollouts.get(MODEL, started)["version"] == "3" and freezes.held(MODEL) == []
    assert (race.waited, race.won, race.lost) == (CONTENDERS, 1, CONTENDERS - 1)  # the race was real


# --- the HTTP routes -------------------------------------------------------------------------------

def request(method: str, body: dict | None = None, params: dict | None = None, headers: dict | None = None):
    return func.HttpRequest(method, "/api/freezes", body=json.dumps(body).encode() if body is not None else b"",
                            params=params or {}, headers=headers or {})


def test_the_routes_freeze_list_and_unfreeze_with_every_change_audited(runtime):  # noqa: F811
    from functions.triggers import http_freezes

    freeze, listing = user_code(http_freezes.freeze), user_code(http_freezes.list_freezes)
    unfreeze, client = user_code(http_freezes.unfreeze), FakeDurableClient()
    answer = freeze(request("POST", {"model": MODEL, "for": "2h", "comment": "release week"}))
    assert answer.status_code == 201
    assert json.loads(answer.get_body())["freeze"]["comment"] == "release week"
    assert freeze(request("POST", {"comment": "everything"})).status_code == 201  # global
    assert freeze(request("POST", {"model": MODEL})).status_code == 200  # replaced
    for bad, status in [({"model": "nope"}, 404), ({"until": "yesterday"}, 400), ({"model": 3}, 400),
                        ({"colour": "red"}, 400)]:
        answer = freeze(request("POST", bad))
        assert answer.status_code == status and "error" in json.loads(answer.get_body())
    runtime.deliver([event("2")], client=client)
    view = json.loads(listing(request("GET")).get_body())
    assert len(view["freezes"]) == 2 and [h["version"] for h in view["held"]] == ["2"]

    answer = asyncio.run(unfreeze(request("DELETE", params={"model": MODEL}), client=client))
    body = json.loads(answer.get_body())
    assert answer.status_code == 200 and body["released"] == [] and "all models are frozen" in body["still_frozen"]
    answer = asyncio.run(unfreeze(request("DELETE"), client=client))
    assert answer.status_code == 200 and json.loads(answer.get_body())["released"][0]["version"] == "2"
    assert [i for _, i, _ in client.started] == [json.loads(answer.get_body())["released"][0]["decision"][0]["run_key"]]
    assert asyncio.run(unfreeze(request("DELETE"), client=client)).status_code == 404

    store = runtime.store
    audit = [json.loads(store.get(k)[0]) for k in store.list("operator/")]
    assert [(a["action"], a["status"]) for a in audit] == [("freeze", 201), ("freeze", 201), ("freeze", 200),
                                                           ("unfreeze", 200), ("unfreeze", 200), ("unfreeze", 404)]


def test_a_refused_freeze_is_403_with_the_reason(runtime, monkeypatch):  # noqa: F811
    from dataclasses import replace

    from functions.triggers import http_freezes

    runtime.settings = replace(runtime.settings, key_actions="abort")
    answer = user_code(http_freezes.freeze)(request("POST", {"model": MODEL}))
    assert answer.status_code == 403 and "may not freeze" in json.loads(answer.get_body())["error"]
    assert Freezes(runtime.store).active() == []


def test_the_event_grid_trigger_holds_a_frozen_models_event_and_the_route_releases_it(runtime):  # noqa: F811
    """The Azure path: the trigger with its Durable client binding (a fake of the client), then the
    unfreeze route starting the held version's orchestration through the same client."""
    from functions.triggers import http_freezes
    from tests.test_triggers import call_trigger, grid_event

    client = FakeDurableClient()
    runtime.freezes.freeze(MODEL, by="ops")
    call_trigger(grid_event(2, event_id="e-2"), client)
    call_trigger(grid_event(3, event_id="e-3"), client)
    assert client.started == [] and sorted(h["version"] for h in runtime.freezes.held(MODEL)) == ["2", "3"]
    answer = asyncio.run(user_code(http_freezes.unfreeze)(request("DELETE", params={"model": MODEL}), client=client))
    assert answer.status_code == 200
    [(_, instance_id, input_)] = client.started
    assert input_["event"]["model_version"] == "3" and runtime.rollouts.get(MODEL, instance_id)["version"] == "3"
