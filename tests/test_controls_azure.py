"""The control routes as the Function App runs them: a REAL df.DurableOrchestrationClient built from
a client binding that points at a fake of the Durable extension's HTTP API (tests/fake_durable,
which says what its shapes were checked against), each route function called with a
func.HttpRequest. Asserted on the wire: the right external event on the right instance, the undo
and retry orchestrations started with the right input, 409/403/404 answers, every one audited."""

from __future__ import annotations

import asyncio
import json

import azure.durable_functions as df
import azure.functions as func
import pytest
from azure.durable_functions.models.utils import http_utils

from functions.domain.authorisation import Caller, Policy
from functions.services.operator_audit import actions_for
from functions.shared.orchestration import UNDO_ORCHESTRATOR
from tests.fake_durable import PREFIX, FakeDurableHost, Instance
from tests.test_triggers import runtime  # noqa: F401 (fixture: the App on in-memory fakes)

MODEL = "credit-card-default"


@pytest.fixture()
def durable():
    with FakeDurableHost() as host:
        yield host


def call(function, durable, **request) -> tuple[int, dict]:
    """One invocation as the worker does it: the client binding JSON → the real client (the SDK's
    one aiohttp session is per event loop: a fresh one for each asyncio.run)."""
    http_utils._client_session = None
    fn = function.build().get_user_function()
    fn = getattr(fn, "__wrapped__", fn)
    req = func.HttpRequest(request.pop("method", "POST"), "/api/x", body=request.pop("body", b""),
                           route_params=request.pop("route", {}), headers=request.pop("headers", {}))
    client = df.DurableOrchestrationClient(durable.binding())
    response = asyncio.run(fn(req=req, client=client))
    return response.status_code, json.loads(response.get_body())


def running_rollout(application, durable, rid: str, steps: list[str], state: str = "running") -> None:
    """A claimed rollout whose trail ends with `steps`, and its instance in the fake Durable host."""
    rollouts = application.rollouts
    rollouts.claim({"run_key": rid, "model": MODEL, "version": "2", "reason": "test"},
                   {"event_id": "e", "topic": "t"}, "2026-12-01T20:00:00+00:00")
    for seq, step in enumerate(steps, 1):
        rollouts.audit({"id": rid, "model": MODEL, "version": "2"}, seq, step, "2026-12-01T20:00:00+00:00",
                       {"percent": 10} if step == "traffic" else {})
    if state != "running":
        rollouts.finish({"id": rid, "model": MODEL, "version": "2"}, {"state": state, "reason": "done"},
                        "2026-12-01T20:10:00+00:00")
    durable.instances[rid] = Instance("rollout_orchestrator", {}, "Running" if state == "running" else "Completed")


CANARY = ["started", "contract", "production_smoke", "traffic"]


def test_each_control_raises_one_control_event_on_the_wire_and_is_audited(runtime, durable):
    from functions.triggers.http_controls import rollout_action

    running_rollout(runtime, durable, "r-1", CANARY)
    status, body = call(rollout_action, durable, route={"rollout_id": "r-1", "action": "pause"},
                        body=b'{"comment": "dashboards"}')
    assert status == 202 and body["phase"] == "canary"
    status, body = call(rollout_action, durable, route={"rollout_id": "r-1", "action": "promote"},
                        body=b'{"full": true}')
    assert status == 202
    posted = [(p, b) for (m, p, b) in durable.requests if m == "POST"]
    assert [p for p, _ in posted] == [f"{PREFIX}instances/r-1/raiseEvent/control"] * 2
    pause, promote = (b for _, b in posted)
    assert (pause["action"], pause["by"], pause["via"], pause["comment"]) == \
        ("pause", "function key", "function key", "dashboards")
    assert promote["action"] == "promote" and promote["full"] is True and "at" in promote
    audited = actions_for(runtime.store, MODEL, "r-1")
    assert [(a["action"], a["outcome"], a["status"]) for a in audited] == [("pause", "accepted", 202),
                                                                           ("promote", "accepted", 202)]


def test_invalid_transitions_are_409_naming_the_state_and_nothing_is_raised(runtime, durable):
    from functions.triggers.http_controls import rollout_action

    running_rollout(runtime, durable, "r-done", ["started", "succeeded"], state="succeeded")
    running_rollout(runtime, durable, "r-run", CANARY)
    status, body = call(rollout_action, durable, route={"rollout_id": "r-done", "action": "abort"})
    assert status == 409 and body["error"] == "rollout r-done is succeeded: nothing to abort"
    status, body = call(rollout_action, durable, route={"rollout_id": "r-run", "action": "resume"})
    assert status == 409 and "not paused" in body["error"]
    status, body = call(rollout_action, durable, route={"rollout_id": "r-run", "action": "approve"})
    assert status == 409 and "not awaiting approval" in body["error"]
    status, body = call(rollout_action, durable, route={"rollout_id": "nope", "action": "abort"})
    assert status == 404 and "error" in body
    status, body = call(rollout_action, durable, route={"rollout_id": "r-run", "action": "deploy"})
    assert status == 404 and "unknown action" in body["error"]
    status, body = call(rollout_action, durable, route={"rollout_id": "r-run", "action": "abort"}, body=b"[1]")
    assert status == 400 and "error" in body
    assert not [r for r in durable.requests if "raiseEvent" in r[1]]
    outcomes = [(a["action"], a["outcome"]) for a in actions_for(runtime.store, None, None)]
    assert outcomes == [("abort", "invalid"), ("resume", "invalid"), ("approve", "invalid"), ("abort", "not_found")]


def test_a_refused_caller_gets_403_with_the_reason_audited(runtime, durable, monkeypatch):
    from functions.triggers.http_controls import rollout_action

    running_rollout(runtime, durable, "r-1", CANARY)
    monkeypatch.setattr(type(runtime), "authorisation", property(lambda self: Policy.from_setting("approve")))
    status, body = call(rollout_action, durable, route={"rollout_id": "r-1", "action": "abort"})
    assert status == 403 and "a function key alone may not abort" in body["error"]
    audit = actions_for(runtime.store, MODEL, "r-1")
    assert [(a["outcome"], a["status"], a["via"]) for a in audit] == [("refused", 403, "function key")]
    assert not [r for r in durable.requests if "raiseEvent" in r[1]]
    assert Caller.function_key().via == "function key"


def test_retry_by_rollout_id_starts_a_new_run_on_the_wire(runtime, durable):
    from functions.triggers.http_controls import rollout_action

    runtime.ports.registry.add(MODEL, "2")
    running_rollout(runtime, durable, "r-bad", ["started", "rolled_back"], state="rolled_back")
    status, body = call(rollout_action, durable, route={"rollout_id": "r-bad", "action": "retry"},
                        body=b'{"comment": "fixed the data"}')
    assert status == 202 and body["retry_id"] == "r-bad-retry1"
    started = [(p, b) for (m, p, b) in durable.requests if m == "POST" and "/orchestrators/" in p]
    assert started[0][0] == f"{PREFIX}orchestrators/rollout_orchestrator/r-bad-retry1"
    assert started[0][1]["retry"]["of"] == "r-bad" and started[0][1]["retry"]["comment"] == "fixed the data"
    assert started[0][1]["event"]["model_version"] == "2"


def test_undo_starts_the_undo_orchestration_towards_the_previous_champion(runtime, durable):
    from functions.triggers.http_controls import model_undo

    rollouts, registry = runtime.rollouts, runtime.ports.registry
    for version in ("1", "2"):
        registry.add(MODEL, version)
        registry.promote(registry.get_workspace_model(MODEL, version), {})
        rollouts.set_production({"id": f"r{version}", "model": MODEL, "version": version},
                                f"ccd-{version}", {f"ccd-{version}": 100}, f"2026-12-01T2{version}:00:00+00:00")
    status, body = call(model_undo, durable, route={"model": MODEL}, body=b'{"comment": "v2 is slow"}')
    assert status == 202 and body["version"] == "1" and body["from_version"] == "2"
    (path, sent), = [(p, b) for (m, p, b) in durable.requests if m == "POST"]
    assert path == f"{PREFIX}orchestrators/{UNDO_ORCHESTRATOR}/{body['rollout_id']}"
    assert (sent["undo"]["version"], sent["undo"]["comment"], sent["config"]["name"]) == ("1", "v2 is slow", MODEL)
    record = rollouts.get(MODEL, body["rollout_id"])
    assert record["kind"] == "undo" and record["state"] == "running"
    # the same version again, and an unmanaged model: 409 and 404, audited
    status, again = call(model_undo, durable, route={"model": MODEL}, body=b'{"to": "2"}')
    assert status == 409 and "serves already" in again["error"]
    status, _ = call(model_undo, durable, route={"model": "other"})
    assert status == 404
    assert [a["outcome"] for a in actions_for(runtime.store, None, None)] == ["accepted", "invalid", "not_found"]
