"""The controls on the local driver (functions/adapters/local/orchestrator.py, the in-process
Durable stand-in `modelops` runs), in real time with short bakes, through the operator service
(transition check, event, audit) on the in-memory fakes: pause stops the bake clock and resume
finishes it, abort mid-canary restores the traffic map, promote --full jumps to 100%."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from functions.adapters.local.orchestrator import LocalOrchestrations
from functions.domain.authorisation import Caller
from functions.domain.config import deployment_name
from functions.services.operator import Operator
from functions.services.operator_audit import actions_for
from tests.test_workflow import GOOD, MODEL, Harness, _score_contract  # noqa: F401 (autouse fixture)

BAKE = 1.0
LONG = 600.0  # abort and promote end a bake at once: a long one makes "during the first step" certain


def canary_harness(bake: float = BAKE) -> Harness:
    h = Harness({"1": GOOD, "2": GOOD}, {"canary": {"bake_seconds": bake, "max_bake_seconds": bake,
                                                     "steps": [10, 50, 100]}})
    assert h.roll("1")["state"] == "succeeded"
    return h


def start(h: Harness, version: str) -> str:
    event = h.event(version)
    h.rollouts.claim({"run_key": event.instance_id, "model": MODEL, "version": version, "reason": "test"},
                     event.to_dict(), datetime.now(timezone.utc).isoformat())
    h.driver.start("rollout", event.instance_id, {"event": event.to_dict(), "config": h.config.to_dict()})
    return event.instance_id


def operator(h: Harness) -> Operator:
    return Operator(h.rollouts, h.store, LocalOrchestrations(h.driver),
                    lambda a, m, r: (Caller.local("dev@laptop (cli)"), None), managed=h.managed)


def wait_step(h: Harness, rid: str, step: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [s for s in h.rollouts.trail(MODEL, rid) if s["step"] == step]
        if found:
            return found[-1]
        time.sleep(0.02)
    raise AssertionError(f"no {step!r} step in {[s['step'] for s in h.rollouts.trail(MODEL, rid)]}")


def act(h: Harness, action: str, rid: str, **kwargs):
    return asyncio.run(operator(h).act(action, rid, **kwargs))


def test_pause_holds_the_step_past_its_bake_and_resume_bakes_only_the_rest():
    h = canary_harness()
    rid = start(h, "2")
    wait_step(h, rid, "traffic")
    assert act(h, "resume", rid).status == 409  # running, not paused
    assert act(h, "pause", rid, comment="hold").status == 202
    paused = wait_step(h, rid, "paused")
    held = paused["details"]["percent"]  # the step baking when the pause arrived (10% unless the host is slow)
    time.sleep(BAKE * 1.5)  # longer than the whole bake: a paused step is not judged
    steps = h.rollouts.trail(MODEL, rid)
    assert steps[-1]["step"] == "paused"
    assert not [s for s in steps if s["step"] == "health" and s["details"]["percent"] == held]
    assert act(h, "pause", rid).status == 409  # paused already
    assert act(h, "resume", rid, comment="go").status == 202
    output = h.driver.wait(rid, 30).output
    assert output["state"] == "succeeded"
    judged = next(s for s in h.rollouts.trail(MODEL, rid) if s["step"] == "health" and s["details"]["percent"] == held)
    figures = judged["details"]["figures"]
    assert abs(figures["baked_seconds"] - BAKE) < 1e-6 and figures["paused_seconds"] >= BAKE * 1.5
    assert paused["details"]["control"]["by"] == "dev@laptop (cli)"
    assert [(a["action"], a["outcome"]) for a in actions_for(h.store, MODEL, rid)] == \
        [("resume", "invalid"), ("pause", "accepted"), ("pause", "invalid"), ("resume", "accepted")]


def test_abort_mid_canary_restores_the_traffic_map_and_a_finished_rollout_refuses_more():
    h = canary_harness(LONG)
    v1, v2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")
    rid = start(h, "2")
    wait_step(h, rid, "traffic")
    assert act(h, "abort", rid, comment="bad canary").status == 202
    output = h.driver.wait(rid, 30).output
    assert output["state"] == "rolled_back" and output["reason"] == "aborted by dev@laptop (cli): bad canary"
    endpoint = h.config.production_endpoint
    assert h.production.live(endpoint) == {v1: 100} and (endpoint, v2) in h.production.deleted
    again = act(h, "abort", rid)
    assert again.status == 409 and again.body["error"] == f"rollout {rid} is rolled_back: nothing to abort"


def test_promote_full_jumps_to_100_after_the_current_steps_health_check():
    h = canary_harness(LONG)
    v2 = deployment_name(MODEL, "2")
    rid = start(h, "2")
    wait_step(h, rid, "traffic")
    assert act(h, "promote", rid, full=True).status == 202
    output = h.driver.wait(rid, 30).output
    assert output["state"] == "succeeded" and output["traffic"] == {v2: 100}
    percents = [s["details"]["percent"] for s in h.rollouts.trail(MODEL, rid) if s["step"] == "traffic"]
    assert percents == [10, 100]
    assert h.production.live(h.config.production_endpoint) == {v2: 100}


def test_a_paused_rollout_stays_paused_across_a_host_restart_and_resumes():
    """The driver records every completed task (functions/adapters/local/history.py); a new owner
    replays the paused rollout to its wait for a control — no bake timer runs — and resume finishes it."""
    from functions.adapters.local.history import OrchestrationHistory
    from functions.adapters.local.orchestrator import LocalOrchestrator
    from functions.services.activities import dispatch
    from functions.services.workflow import rollout_orchestrator

    h = canary_harness()

    def new_driver() -> LocalOrchestrator:
        return LocalOrchestrator({"rollout": rollout_orchestrator},
                                 {"rollout_activity": lambda p: dispatch(h.platform, p)},
                                 history=OrchestrationHistory(h.store))

    h.driver = new_driver()
    rid = start(h, "2")
    wait_step(h, rid, "traffic")
    assert act(h, "pause", rid).status == 202
    held = wait_step(h, rid, "paused")["details"]["percent"]
    h.driver.stop(timeout=10)  # the host stops while the rollout is paused
    assert h.driver.instances[rid].status == "Interrupted"

    h.driver = new_driver()  # the next owner
    h.driver.resume(h.driver.replay(rid))
    time.sleep(BAKE * 1.5)
    trail = h.rollouts.trail(MODEL, rid)
    assert trail[-1]["step"] == "paused"  # still held: replayed to the wait, no timer
    assert not [s for s in trail if s["step"] == "health" and s["details"]["percent"] == held]
    assert act(h, "resume", rid).status == 202
    assert h.driver.wait(rid, 30).output["state"] == "succeeded"
