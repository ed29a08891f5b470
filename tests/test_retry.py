"""A version whose rollout ended without success can be tried again — explicitly, audited, with its
own run key — while a redelivered event stays a `duplicate` (at-least-once delivery never restarts
anything). Pure decisions by direct call; the HTTP trigger as the Functions host calls it; the
workflow on the in-memory fakes."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import azure.functions as func
import pytest

from functions.domain.config import load_managed_models
from functions.domain.decisions import RetryFacts, decide_retry
from functions.services.handoff import accept_events, accept_retry
from functions.services.records import RolloutStore
from tests.races import RaceStore, run_together
from tests.test_triggers import FakeDurableClient, grid_event, runtime, user_code  # noqa: F401 (fixture)
from tests.test_workflow import GOOD, MODEL, Harness, _score_contract  # noqa: F401 (autouse fixture)

MANAGED = load_managed_models(None)


def attempt(state: str, rid: str = "rollout-x-2-abc", version: str = "2") -> dict:
    return {"id": rid, "model": MODEL, "version": version, "state": state, "reason": f"it {state}",
            "event_id": "e-1", "topic": "t"}


@pytest.mark.parametrize("state", ["rejected", "rolled_back", "failed", "abandoned", "skipped"])
def test_an_unsuccessful_rollout_can_be_retried_with_a_new_run_key(state):
    decision, status = decide_retry(MODEL, "2", MANAGED, RetryFacts(attempts=(attempt(state),), production_version="1"))
    assert (decision.action, status) == ("rollout", 202)
    assert decision.run_key == "rollout-x-2-abc-retry1"
    assert state in decision.reason


def test_each_retry_gets_the_next_run_key():
    attempts = (attempt("rolled_back"), attempt("abandoned", "rollout-x-2-abc-retry1"))
    decision, _ = decide_retry(MODEL, "2", MANAGED, RetryFacts(attempts=attempts))
    assert decision.run_key == "rollout-x-2-abc-retry2"


@pytest.mark.parametrize("facts, status, words", [
    (RetryFacts(attempts=()), 404, "no rollout of"),
    (RetryFacts(attempts=(attempt("running"),)), 409, "is running"),
    (RetryFacts(attempts=(attempt("succeeded"),)), 409, "nothing to retry"),
    (RetryFacts(attempts=(attempt("rejected"),), production_version="3"), 409, "not newer than production"),
    (RetryFacts(attempts=(attempt("rejected"),), running_versions=("5",)), 409, "newer version (5)"),
    (RetryFacts(attempts=(attempt("rejected"),), in_workspace=False), 409, "no longer registered"),
])
def test_a_retry_that_makes_no_sense_is_refused_with_the_reason(facts, status, words):
    decision, answered = decide_retry(MODEL, "2", MANAGED, facts)
    assert answered == status and decision.action != "rollout" and words in decision.reason


def test_an_unmanaged_model_is_404():
    decision, status = decide_retry("other", "1", MANAGED, RetryFacts(attempts=(attempt("rejected"),)))
    assert status == 404 and "not managed" in decision.reason


# --- on the workflow --------------------------------------------------------------------------

def test_a_rolled_back_version_retried_rolls_out_and_its_event_stays_a_duplicate():
    h = Harness({"1": GOOD, "2": GOOD})
    h.roll("1")
    h.health.figures["credit-card-default-v2"] = (200, 80, 20.0)  # a bad first canary
    first = h.roll("2")
    assert first["state"] == "rolled_back"
    # Event Grid redelivers the same event: still a duplicate, nothing starts
    redelivered = h.event("2")
    again = accept_events([{"id": "e-again", "topic": redelivered.topic, "subject": redelivered.subject,
                            "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
                            "data": {"modelName": MODEL, "modelVersion": "2"}}], h.managed, h.rollouts)
    assert again[0].decision.action == "duplicate"

    h.health.figures.pop("credit-card-default-v2")  # the fault is fixed
    answer = accept_retry(MODEL, "2", h.managed, h.rollouts, by="ana", comment="transient fault fixed")
    assert answer.status == 202
    h.driver.start("rollout", answer.decision.run_key, answer.orchestration_input)
    out = h.driver.wait(answer.decision.run_key, 30).output
    assert out["state"] == "succeeded", out
    assert out["id"] == first["id"] + "-retry1"
    started = h.rollouts.trail(MODEL, out["id"])[0]
    assert started["step"] == "started"
    assert started["details"]["retry"] == {"of": first["id"], "previous_state": "rolled_back", "by": "ana",
                                           "comment": "transient fault fixed"}
    # both runs stay in the history; the first is untouched
    states = {r["id"]: r["state"] for r in h.rollouts.list(MODEL) if r["version"] == "2"}
    assert states == {first["id"]: "rolled_back", out["id"]: "succeeded"}
    # and now there is nothing to retry
    assert accept_retry(MODEL, "2", h.managed, h.rollouts, by="ana").status == 409


def test_two_concurrent_retries_start_one_run():
    """Eight operators retry at once: every one has decided to start run `-retry1` before any claim
    is written (RaceStore), so only the create-only claim makes exactly one of them win."""
    h = Harness({"1": GOOD, "2": GOOD})
    h.roll("1")
    h.health.figures["credit-card-default-v2"] = (200, 80, 20.0)
    h.roll("2")
    race = RaceStore(h.store, f"rollouts/{MODEL}/", contenders=8, timeout=30.0)
    answers = run_together(8, lambda i: accept_retry(MODEL, "2", h.managed, RolloutStore(race), by=f"ops-{i}"),
                           race)
    assert sorted(a.status for a in answers) == [202] + [409] * 7
    assert (race.waited, race.won, race.lost) == (8, 1, 7)
    assert len({a.decision.run_key for a in answers}) == 1  # all contended for the same run


# --- over HTTP (Azure) --------------------------------------------------------------------------

def _retry(fn, client, model, version, body=b""):
    req = func.HttpRequest("POST", "/x", body=body, route_params={"model": model, "version": version})
    response = asyncio.run(fn(req=req, client=client))
    return response.status_code, json.loads(response.get_body())


def test_retry_over_http(runtime):  # noqa: F811 (the fixture)
    from functions.triggers.http_rollouts import rollout_retry
    from functions.triggers.rollout_events import model_registered

    client = FakeDurableClient()
    fn = user_code(rollout_retry)
    asyncio.run(user_code(model_registered)(event=grid_event(3), client=client))
    [(_, first_id, _)] = client.started
    rollouts = RolloutStore(runtime.store)
    runtime.ports.registry.add(MODEL, "3")

    status, body = _retry(fn, client, MODEL, "3")
    assert status == 409 and "running" in body["error"]
    rollouts.finish({"id": first_id, "model": MODEL, "version": "3"}, {"state": "rejected", "reason": "gate"},
                    datetime.now(timezone.utc).isoformat())

    assert _retry(fn, client, MODEL, "3", b"{not json")[0] == 400
    status, body = _retry(fn, client, MODEL, "3", b'{"by": "ana", "comment": "new evaluation data"}')
    assert status == 202 and body["rollout_id"] == first_id + "-retry1"
    assert [i for _, i, _ in client.started] == [first_id, first_id + "-retry1"]
    assert client.started[-1][2]["retry"]["by"] == "ana"
    assert _retry(fn, client, MODEL, "3")[0] == 409  # the retry is running now
    assert _retry(fn, client, MODEL, "9")[0] == 404
    # the original event redelivered: no third start
    asyncio.run(user_code(model_registered)(event=grid_event(3, event_id="e-again"), client=client))
    assert len(client.started) == 2
