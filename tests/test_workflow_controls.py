"""Operator controls (abort, pause, resume, promote --full) under the Durable library's own replay:
each reaches the workflow as one external event named "control" (functions/shared/orchestration.py
CONTROL_EVENT), raised at a chosen moment of a host-shaped history (tests/durable_history.py), and
every replay must reproduce the recorded tasks. Orchestration time: a 300 s bake costs nothing."""

from __future__ import annotations

import copy
import functools
from datetime import datetime, timezone
from typing import Any

from functions.domain.config import deployment_name
from tests.durable_history import ReplayHost
from tests.test_workflow_replay import (  # noqa: F401 (_score_contract: autouse fixture)
    CANARY_STEP,
    FIRST_VERSION,
    MODEL,
    PRODUCTION,
    STAGING,
    World,
    _score_contract,
    describe,
)

DAY2 = datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc)
OPS = {"by": "ops@contoso.com", "via": "entra", "at": "2026-03-03T09:20:00+00:00"}


def control(action: str, comment: str = "", **extra: Any) -> dict:
    return {"action": action, "comment": comment, **OPS, **extra}


def play_controls(host: ReplayHost, expected: list[str], raise_after: dict[int, dict]) -> Any:
    """Step to completion like test_workflow_replay.play; once the task at index i of `expected` is
    scheduled (and the host has delivered what that episode waited for), raise the control
    raise_after[i]: the host delivers it at the orchestrator's next wait for one. An episode that
    schedules nothing (paused: waiting for the control alone) is allowed. An expected "timer *"
    matches any timer (a bake resumed after a pause has a remainder that depends on when the
    control arrived)."""
    seen: list[str] = []
    while True:
        episode = host.step()
        assert "error" not in episode.state, f"the orchestrator failed: {episode.state['error']}"
        if episode.done:
            break
        if not episode.new and episode.waits:
            continue
        assert len(episode.new) == 1, f"episode {episode.index} scheduled {episode.new}"
        got = describe(episode.new[0], episode)
        want = expected[len(seen)] if len(seen) < len(expected) else "<nothing more>"
        assert got == want or (want == "timer *" and got.startswith("timer ")), \
            f"step {len(seen)} ({episode.delivered}): {got!r}, expected {want!r}; so far {seen}"
        seen.append(got)
        if len(seen) - 1 in raise_after:
            host.raise_event("control", raise_after[len(seen) - 1])
    assert len(seen) == len(expected), f"ended after {seen[len(seen) - 3:]}, expected {expected[len(seen):]}"
    assert [t.seq for t in host.executed] == [s.seq for e in host.episodes for s in e.new if s.kind == "activity"]
    assert host.library_errors == []
    return episode


def released(world: World) -> None:
    """Version 1 in production (100%), so version 2 canaries."""
    final = play_controls(world.host("1"), FIRST_VERSION, {})
    assert final.state["output"]["state"] == "succeeded"


@functools.cache
def _released() -> World:
    world = World()
    released(world)
    return world


def released_world() -> World:
    """A copy of one World with version 1 released (played once per test session: the suite's time)."""
    return copy.deepcopy(_released())


TO_CANARY = STAGING + PRODUCTION  # then the first canary step: set_traffic, audit traffic, timer 300s
BAKE = len(TO_CANARY) + 1  # raised after "audit traffic": delivered while the first step bakes


def trail_steps(world: World, host: ReplayHost) -> list[dict]:
    return world.rollouts.trail(MODEL, host.instance_id)


def test_pause_stops_the_bake_clock_and_resume_bakes_the_rest():
    world = released_world()
    host = world.host("2", start=DAY2)
    first = ["set_traffic", "audit traffic", "timer 300s", "audit paused", "audit resumed", "timer *",
             "check_health", "audit health"]
    expected = TO_CANARY + first + CANARY_STEP * 2 + ["retire", "set_production", "audit succeeded", "finish"]
    final = play_controls(host, expected, {BAKE: control("pause", "look at the dashboards"),
                                           BAKE + 2: control("resume", "all clear")})  # after "audit paused"
    assert final.state["output"]["state"] == "succeeded"
    steps = trail_steps(world, host)
    paused = next(s for s in steps if s["step"] == "paused")
    resumed = next(s for s in steps if s["step"] == "resumed")
    assert paused["details"]["control"] == {"action": "pause", "comment": "look at the dashboards", **OPS}
    assert resumed["details"]["control"]["comment"] == "all clear"
    # the clock stopped: what was baked before the pause plus what was left is the whole bake
    before, left = paused["details"]["baked_seconds"], paused["details"]["remaining_seconds"]
    assert before + left == 300 and 0 < before < 300
    # the resumed bake is the remainder (the timer after the resume), not a new 300 s
    timers = [float(describe(e.new[0], e).split()[1][:-1]) for e in host.episodes if e.new and e.new[0].kind == "timer"]
    assert any(abs(t - left) < 0.01 for t in timers) and left < 300
    health = next(s for s in steps if s["step"] == "health")
    assert health["details"]["figures"]["baked_seconds"] == 300  # paused time is not bake
    assert health["details"]["figures"]["paused_seconds"] == resumed["details"]["paused_seconds"] > 0


def test_abort_mid_canary_rolls_back_now_and_says_who_and_why():
    world = released_world()
    v1, v2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")
    host = world.host("2", start=DAY2)
    expected = TO_CANARY + ["set_traffic", "audit traffic", "timer 300s", "set_traffic", "delete_deployment",
                            "audit rolled_back", "finish"]
    final = play_controls(host, expected, {BAKE: control("abort", "error budget burning")})
    output = final.state["output"]
    assert output["state"] == "rolled_back"
    assert output["reason"] == "aborted by ops@contoso.com: error budget burning"
    endpoint = world.config.production_endpoint
    assert world.production.live(endpoint) == {v1: 100} and (endpoint, v2) in world.production.deleted
    rolled = trail_steps(world, host)[-1]
    assert rolled["step"] == "rolled_back" and rolled["details"]["control"]["by"] == "ops@contoso.com"
    assert world.health.calls == [] or all(dep != v2 for dep, *_ in world.health.calls)  # never judged


def test_promote_full_goes_to_100_after_the_current_steps_health_check():
    world = released_world()
    v2 = deployment_name(MODEL, "2")
    host = world.host("2", start=DAY2)
    expected = TO_CANARY + ["set_traffic", "audit traffic", "timer 300s", "audit promoted_full", "check_health",
                            "audit health", "set_traffic", "audit traffic",
                            "retire", "set_production", "audit succeeded", "finish"]
    final = play_controls(host, expected, {BAKE: control("promote", "hotfix", full=True)})
    output = final.state["output"]
    assert output["state"] == "succeeded" and output["traffic"] == {v2: 100}
    assert "promote --full" in output["reason"] and "[10]" in output["reason"]
    traffic = [s for s in trail_steps(world, host) if s["step"] == "traffic"]
    assert [t["details"]["percent"] for t in traffic] == [10, 100] and traffic[-1]["details"]["promoted_full"]
    assert world.rollouts.production(MODEL)["version"] == "2"


def test_promote_full_with_an_unhealthy_step_rolls_back_as_usual():
    world = released_world()
    world.health.figures[deployment_name(MODEL, "2")] = (200, 40, 30.0)
    host = world.host("2", start=DAY2)
    expected = TO_CANARY + ["set_traffic", "audit traffic", "timer 300s", "audit promoted_full", "check_health",
                            "audit health", "set_traffic", "delete_deployment", "audit rolled_back", "finish"]
    final = play_controls(host, expected, {BAKE: control("promote", full=True)})
    assert final.state["output"]["state"] == "rolled_back" and "health check failed at 10%" in \
        final.state["output"]["reason"]


def test_abort_during_staging_is_taken_at_the_next_boundary_and_deletes_the_staging_deployment():
    world = World()
    host = world.host("1")
    boundary = STAGING.index("timer 0s")
    expected = STAGING[:boundary + 1] + ["delete_deployment", "audit rejected", "finish"]
    # raised while the staging deployment provisions (after its create), taken at the boundary before the gates
    final = play_controls(host, expected, {STAGING.index("create_deployment"): control("abort", "wrong data")})
    output = final.state["output"]
    assert output["state"] == "rejected" and output["reason"] == "aborted by ops@contoso.com: wrong data"
    staging = world.config.staging_endpoint
    assert (staging, deployment_name(MODEL, "1")) in world.staging.deleted
    assert world.config.production_endpoint not in world.production.endpoints


def test_abort_while_awaiting_approval_rejects_and_cancels_the_approval_timer():
    world = World({"approval_required": True})
    host = world.host("1")
    expected = STAGING + ["audit awaiting_approval", "timer 86400s", "audit rejected", "finish"]
    final = play_controls(host, expected, {len(STAGING): control("abort", "not this week")})
    assert final.state["output"]["state"] == "rejected"
    assert final.state["output"]["reason"] == "aborted by ops@contoso.com: not this week"
    timer_seq = next(e.new[0].seq for e in host.episodes if e.new and describe(e.new[0], e) == "timer 86400s")
    assert not any(e.delivered == f"#{timer_seq} fired" for e in host.episodes)


def test_a_control_that_means_nothing_in_a_phase_is_recorded_as_ignored():
    world = World()
    host = world.host("1")
    expected = STAGING[:STAGING.index("timer 0s") + 1] + ["audit control_ignored"] + \
        STAGING[STAGING.index("timer 0s") + 1:] + FIRST_VERSION[len(STAGING):]
    final = play_controls(host, expected, {STAGING.index("create_deployment"): control("pause")})
    assert final.state["output"]["state"] == "succeeded"
    ignored = next(s for s in trail_steps(world, host) if s["step"] == "control_ignored")
    assert ignored["details"]["control"]["action"] == "pause" and "only abort" in ignored["details"]["reason"]


