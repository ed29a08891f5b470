"""The rollout workflow under the azure-functions-durable library's own replay, from host-shaped
histories — so a non-deterministic change fails here rather than in Azure.

The local driver (functions/adapters/local/orchestrator.py) keeps one generator alive and never
replays, and test_workflow.py drives the generator with a hand-made context. Here every step is
what the Functions host does (tests/durable_history.py says what the JSON shapes were checked
against): the history so far goes, as JSON, to the entry point the Python worker calls — the
function registered in functions/triggers/rollout_orchestration.py (`Orchestrator.create` →
`handle`) — which builds its DurableOrchestrationContext from it and re-runs the workflow *from the
beginning*; the returned `actions` must repeat the recorded ones exactly (same kind, activity name,
input and timer fire time for every sequence number) and add exactly the expected next one; the host
then records it (TaskScheduled / TimerCreated), runs the activity through the real dispatcher on the
in-memory fakes (tests/fakes.py) or fires the timer, appends TaskCompleted / TaskFailed / TimerFired
/ EventRaised, and calls again. Orchestration time is the history's: bakes of 300 s and polls of
30 s cost nothing.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df
import pytest
from azure.durable_functions.models.DurableOrchestrationContext import DurableOrchestrationContext
from azure.durable_functions.models.ReplaySchema import ReplaySchema

from functions.domain.config import deployment_name, load_managed_models
from functions.domain.events import ModelRegistered
from functions.services import activities
from functions.services.activities import dispatch
from functions.services.records import RolloutStore
from functions.services.workflow import rollout_orchestrator
from functions.triggers import rollout_activity as activity_trigger
from functions.triggers import rollout_orchestration as triggers
from ml import schema
from ml import score as scoring
from ml.datagen import generate
from tests.durable_history import Episode, NonDeterminismDetected, ReplayHost, Scheduled, host_payload, parse_actions
from tests.fakes import FakeEndpoints, FakeModelFiles, FakeRegistry, FakeTrafficLog, MemoryStore, model_from_labels

MODEL = "credit-card-default"
TOPIC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/staging"
# Production timings (poll 30 s, bake 300 s, steps 10/50/100); only the gates are made small.
CONFIG = {"gates": {"latency_requests": 5, "evaluation_rows": 400}, "canary": {"health_delay_seconds": 0}}
GOOD = model_from_labels(1.0)

# The entry points the Functions worker calls in Azure: the registered orchestrator handle
# (`Orchestrator.create(workflow)`), and the name of the one dispatcher activity.
ORCHESTRATOR = triggers.rollout_orchestrator._function.get_user_function()
ORCHESTRATOR_NAME = triggers.rollout_orchestrator._function.get_function_name()
ACTIVITY = activity_trigger.rollout_activity._function.get_function_name()
# the ports the activities run against
Ports = activities.RolloutPorts


@pytest.fixture(autouse=True)
def _score_contract():
    scoring.configure(schema.schema_dict())
    scoring.max_rows = 10_000


@functools.cache
def _data() -> bytes:
    """The labelled evaluation set (generated once: the generator is slow)."""
    return generate(400, seed=99).to_csv(index=False).encode()


class World:
    """The fakes one or more rollouts run against (production state carries from one to the next)."""

    def __init__(self, overrides: dict | None = None) -> None:
        self.staging = FakeEndpoints({"1": GOOD, "2": GOOD})
        self.production = FakeEndpoints({"1": GOOD, "2": GOOD})
        self.registry = FakeRegistry()
        self.health = FakeTrafficLog()
        self.store = MemoryStore()
        evaluation = _data()
        self.store.put(f"datasets/{MODEL}/evaluation.csv", evaluation)
        self.platform = Ports(self.staging, self.production, self.registry, self.health, self.store, FakeModelFiles(),
                              workspace_id=TOPIC, clock=lambda: datetime(2026, 3, 2, tzinfo=timezone.utc))
        merged = json.loads(json.dumps(CONFIG))
        for key, value in (overrides or {}).items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
        self.config = load_managed_models(None, merged).get(MODEL)
        self.rollouts = RolloutStore(self.store)

    def host(self, version: str, orchestrator=ORCHESTRATOR, **kwargs: Any) -> ReplayHost:
        """A registered model version and its claimed rollout, ready to be played (as the Event Grid
        trigger leaves it: claimed, then `start_new(rollout_orchestrator, instance_id, input)`)."""
        self.registry.add(MODEL, version)
        event = ModelRegistered(f"evt-{version}", TOPIC, f"models/{MODEL}:{version}", "", MODEL, version)
        self.rollouts.claim({"run_key": event.instance_id, "model": MODEL, "version": version, "reason": "test"},
                            event.to_dict(), "2026-03-02T08:59:00+00:00")
        return ReplayHost(orchestrator, ORCHESTRATOR_NAME, event.instance_id,
                          {"event": event.to_dict(), "config": self.config.to_dict()}, self.run_activity, **kwargs)

    def run_activity(self, name: str, payload: Any) -> Any:
        assert name == ACTIVITY, f"the workflow called {name!r}, which is not a registered activity"
        return dispatch(self.platform, payload)


def describe(task: Scheduled, episode: Episode) -> str:
    """One scheduled task in the words of the expected sequences below."""
    if task.kind == "timer":
        fire_at = datetime.strptime(task.fire_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        return f"timer {(fire_at - episode.at).total_seconds():g}s"
    op = task.input["op"]
    return f"audit {task.input['args']['step']}" if op == "audit" else op


def play(host: ReplayHost, expected: list[str], events: dict[str, Any] | None = None) -> Episode:
    """Step the host to completion. Every replay must reproduce the recorded tasks (the host raises
    NonDeterminismDetected otherwise) and add exactly the next expected one; the last adds none."""
    for name, data in (events or {}).items():  # delivered once the orchestrator waits for it
        host.raise_event(name, data)
    seen: list[str] = []
    while True:
        episode = host.step()
        assert "error" not in episode.state, f"the orchestrator failed: {episode.state['error']}"
        if episode.done:
            break
        assert len(episode.new) == 1, f"episode {episode.index} scheduled {episode.new} (the workflow is sequential)"
        seen.append(describe(episode.new[0], episode))
        assert seen == expected[:len(seen)], f"episode {episode.index} ({episode.delivered}): {seen[-1]!r}"
    assert not episode.new and seen == expected
    # every activity ran exactly once, in scheduling order: replays repeated no side effect
    assert [t.seq for t in host.executed] == [s.seq for e in host.episodes for s in e.new if s.kind == "activity"]
    assert host.library_errors == []
    return episode


# "timer 0s": a phase boundary where an operator's abort, raised meanwhile, is taken (the workflow's
# `check_control`: a zero-length timer raced against the control event)
STAGING = ["begin", "audit started", "read_contract", "audit contract", "ensure_endpoint", "create_deployment",
           "audit staging_deployment_created",
           "get_deployment", "timer 30s", "get_deployment",  # the fake provisions after one poll
           "timer 0s", "run_gates", "audit gates", "timer 0s", "take_over_staging", "audit staging_traffic",
           "promote", "audit promoted"]
PRODUCTION = ["timer 0s", "superseded", "ensure_endpoint", "get_endpoint", "create_deployment",
              "audit production_deployment_created", "get_deployment", "timer 30s", "get_deployment", "smoke",
              "audit production_smoke", "timer 0s"]
FIRST_VERSION = STAGING + PRODUCTION + ["set_traffic", "audit traffic", "retire", "set_production",
                                        "audit succeeded", "finish"]
CANARY_STEP = ["set_traffic", "audit traffic", "timer 300s", "check_health", "audit health"]
# as in Azure, where health_delay_seconds is the Log Analytics ingestion lag: bake, then wait for the logs
LAGGED_STEP = ["set_traffic", "audit traffic", "timer 300s", "timer 120s", "check_health", "audit health"]
CANARY = STAGING + PRODUCTION + LAGGED_STEP * 3 + ["retire", "set_production", "audit succeeded", "finish"]
ROLLED_BACK = STAGING + PRODUCTION + CANARY_STEP + ["set_traffic", "delete_deployment", "audit rolled_back",
                                                   "finish"]


def _audits(sequence: list[str]) -> int:
    return sum(1 for s in sequence if s.startswith("audit "))


def test_first_version_then_a_canary_to_100_percent_replay_deterministically():
    world = World({"canary": {"health_delay_seconds": 120}})
    v1, v2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")
    endpoint = world.config.production_endpoint

    first = world.host("1")
    final = play(first, FIRST_VERSION)
    assert final.state["isDone"] is True and "error" not in final.state
    output = final.state["output"]
    assert output["state"] == "succeeded" and output["traffic"] == {v1: 100}
    assert output["id"] == first.instance_id and output["version"] == "1"
    assert final.state["customStatus"] == {"step": "succeeded", "seq": _audits(FIRST_VERSION)}
    assert world.production.live(endpoint) == {v1: 100}

    canary = world.host("2", start=datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc))
    final = play(canary, CANARY)
    output = final.state["output"]
    assert output["state"] == "succeeded" and output["traffic"] == {v2: 100}
    assert output["reason"] == "canary [10, 50, 100] healthy"
    assert final.state["customStatus"] == {"step": "succeeded", "seq": _audits(CANARY)}
    # each traffic map was set once (no replay repeated it) and names every live deployment
    maps = [m for (e, m) in world.production.traffic_history if e == endpoint]
    assert maps[-3:] == [{v1: 90, v2: 10}, {v1: 50, v2: 50}, {v1: 0, v2: 100}]
    assert world.production.live(endpoint) == {v2: 100} and (endpoint, v1) in world.production.deleted
    # the health windows are the bakes in orchestration time (from the history, not the machine clock)
    windows = [(start, end) for (dep, start, end) in world.health.calls if dep == v2]
    assert len(windows) == 3
    for start, end in windows:  # the window is the bake; the ingestion lag comes after it
        assert timedelta(seconds=300) <= end - start < timedelta(seconds=301)
        assert start > datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc)
    assert [r["step"] for r in world.rollouts.trail(MODEL, canary.instance_id)].count("health") == 3
    assert world.rollouts.production(MODEL)["version"] == "2"


def test_an_unhealthy_canary_is_rolled_back_under_replay():
    world = World()
    play(world.host("1"), FIRST_VERSION)
    v1, v2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")
    world.health.figures[v2] = (200, 40, 30.0)  # 20% 5xx at 10%

    final = play(world.host("2", start=datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc)), ROLLED_BACK)
    output = final.state["output"]
    assert output["state"] == "rolled_back" and "at 10%" in output["reason"]
    assert output["traffic"] == {v1: 100} and output["figures"]["errors"] == 40
    assert final.state["customStatus"] == {"step": "rolled_back", "seq": _audits(ROLLED_BACK)}
    endpoint = world.config.production_endpoint
    assert world.production.live(endpoint) == {v1: 100} and (endpoint, v2) in world.production.deleted
    assert world.rollouts.production(MODEL)["version"] == "1"


def test_a_quiet_canary_is_extended_to_max_bake_then_rolled_back_under_replay():
    world = World({"canary": {"max_bake_seconds": 900}})
    play(world.host("1"), FIRST_VERSION)
    v2 = deployment_name(MODEL, "2")
    world.health.figures[v2] = (5, 0, 20.0)  # fewer than min_requests (20): proves nothing
    extension = ["timer 300s", "check_health", "audit health"]
    expected = (STAGING + PRODUCTION + CANARY_STEP + extension * 2
                + ["set_traffic", "delete_deployment", "audit rolled_back", "finish"])
    final = play(world.host("2", start=datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc)), expected)
    output = final.state["output"]
    assert output["state"] == "rolled_back" and "not enough traffic" in output["reason"]
    assert output["figures"]["baked_seconds"] == 900
    windows = [(start, end) for (dep, start, end) in world.health.calls if dep == v2]
    assert [round((end - windows[0][0]).total_seconds() / 300) for _, end in windows] == [1, 2, 3]


def test_the_host_payload_is_what_the_library_parses():
    """The helpers' JSON against the library's parser and the keys of a payload recorded from the
    host (Azure/azure-functions-durable-python, tests/models/test_DurableOrchestrationContext.py)."""
    host = World().host("1")
    body = json.loads(host_payload(host.history, host.instance_id, host.input_json, 0))
    assert set(body) >= {"history", "input", "instanceId", "isReplaying", "parentInstanceId"}
    started, execution = body["history"]
    assert set(started) == {"EventType", "EventId", "IsPlayed", "Timestamp"} and started["EventType"] == 12
    assert set(execution) == {"OrchestrationInstance", "EventType", "ParentInstance", "Name", "Version", "Input",
                              "Tags", "EventId", "IsPlayed", "Timestamp"} and execution["EventType"] == 0
    assert len(started["Timestamp"].split(".")[1]) == len("3240927Z")  # .NET's seven digits
    context = DurableOrchestrationContext.from_json(json.dumps(body))
    assert context.instance_id == host.instance_id and context.get_input() == host.input
    assert context.current_utc_datetime == host.start and context._replay_schema is ReplaySchema.V3


APPROVAL = STAGING + ["audit awaiting_approval", "timer 86400s"]  # WhenAny(approval event, that timer)


def test_approval_arrives_as_an_event_raised_and_the_timeout_timer_is_cancelled():
    world = World({"approval_required": True})
    host = world.host("1")
    expected = APPROVAL + ["audit approved"] + FIRST_VERSION[len(STAGING) + 1:]  # no boundary after approval
    final = play(host, expected, events={"approval": {"approved": True, "by": "ana"}})
    assert final.state["output"]["state"] == "succeeded"
    assert any(e.delivered == "event approval" for e in host.episodes)
    waited = next(e for e in host.episodes if "approval" in e.waits)
    # raced with the timeout and with an operator's control (abort), whose one wait is reused
    assert sorted(waited.waits) == ["approval", "control"] and describe(waited.new[0], waited) == "timer 86400s"
    timer_seq = waited.new[0].seq
    # from the replay that sees the event on, the approval timer is reported cancelled; it never fires
    after = [e for e in host.episodes if e.index > waited.index]
    assert after[0].delivered == "event approval"
    assert all(parse_actions(e.state)[0][timer_seq].canceled for e in after)
    assert not any(e.delivered == f"#{timer_seq} fired" for e in host.episodes)
    approved = [r for r in world.rollouts.trail(MODEL, host.instance_id) if r["step"] == "approved"]
    assert approved[0]["details"]["approval"] == {"approved": True, "by": "ana"}


def test_approval_timeout_fires_the_timer_and_rejects():
    world = World({"approval_required": True})
    final = play(world.host("1"), APPROVAL + ["audit rejected", "finish"])
    output = final.state["output"]
    assert output["state"] == "rejected" and output["reason"] == "no approval within 86400 s"
    assert world.config.production_endpoint not in world.production.endpoints


def test_an_activity_that_fails_for_good_is_a_task_failed_and_the_rollout_ends_failed():
    world = World()
    host = world.host("1")
    world.registry.workspace.clear()  # read_contract (the first to look) raises PlatformError in the activity
    final = play(host, ["begin", "audit started", "read_contract", "audit failed", "finish"])
    assert any(e.delivered.endswith("failed") for e in host.episodes)
    output = final.state["output"]
    assert output["state"] == "failed" and "not in the staging workspace" in output["reason"]
    assert final.state["customStatus"] == {"step": "failed", "seq": 2}
    assert world.rollouts.get(MODEL, host.instance_id)["state"] == "failed"


# --- negative controls: the check must catch a non-deterministic workflow --------------------------


class _TickingClock:
    """Stands in for `datetime.now(timezone.utc)`: the machine's clock, which has moved on by the
    next replay (in Azure, seconds to days later). Ticks per read so the control is deterministic."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


class _WallClockContext:
    """The real context, except that its clock is the machine's — the classic mistake of
    `datetime.now()` where `context.current_utc_datetime` belongs."""

    def __init__(self, context: Any, clock: _TickingClock) -> None:
        self._context, self._clock = context, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    @property
    def current_utc_datetime(self) -> datetime:
        return self._clock()


class _Coin:
    """`random.random()` that lands one way on the first execution and the other way on replay."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


def _wall_clock_workflow(clock: _TickingClock):
    return df.Orchestrator.create(lambda context: rollout_orchestrator(_WallClockContext(context, clock)))


def _random_pause_workflow(coin: _Coin):
    def orchestrator(context):
        if coin.random() < 0.5:  # "spread the load": a branch on something that is not in the history
            yield context.create_timer(context.current_utc_datetime + timedelta(seconds=5))
        return (yield from rollout_orchestrator(context))

    return df.Orchestrator.create(orchestrator)


def _random_preflight_workflow(coin: _Coin):
    def orchestrator(context):
        event = context.get_input()["event"]
        if coin.random() < 0.5:  # an extra op through the same dispatcher activity
            yield context.call_activity(ACTIVITY, {"op": "superseded", "args": {"rollout": {
                "id": context.instance_id, "model": event["model_name"], "version": event["model_version"]}}})
        return (yield from rollout_orchestrator(context))

    return df.Orchestrator.create(orchestrator)


def test_negative_control_the_real_workflow_with_the_wall_clock_fails_the_replay_check():
    world = World()
    host = world.host("1", orchestrator=_wall_clock_workflow(_TickingClock()))
    with pytest.raises(NonDeterminismDetected) as caught:
        host.run()
    assert caught.value.episode == 1  # the first replay
    assert caught.value.rules == {"strict"}
    assert "#0 rollout_activity input differs on replay: .args.at" in str(caught.value)

    # Azure itself would not refuse it: DurableTask.Core compares kinds and names, not inputs, and
    # the library compares nothing — the rollout would run, its times taken from the machine clock.
    lax = World().host("1", orchestrator=_wall_clock_workflow(_TickingClock()), strict=False)
    assert lax.run().state["output"]["state"] == "succeeded"


def test_negative_control_a_random_branch_that_moves_a_timer_is_what_azure_refuses():
    world = World()
    host = world.host("1", orchestrator=_random_pause_workflow(_Coin(0.1, 0.9)), strict=False)
    with pytest.raises(NonDeterminismDetected) as caught:
        host.run()
    assert caught.value.episode == 1 and "host" in caught.value.rules
    assert "#0 was a timer, the replay produced a activity" in str(caught.value)
    # the library alone noticed nothing: it handed the TimerFired to the activity at sequence 0
    assert host.library_errors == []


def test_negative_control_a_random_extra_op_is_invisible_to_azure_behind_one_dispatcher():
    world = World()
    host = world.host("1", orchestrator=_random_preflight_workflow(_Coin(0.1, 0.9)))
    with pytest.raises(NonDeterminismDetected) as caught:
        host.run()
    assert caught.value.rules == {"strict"}
    assert ".op: 'superseded' then 'begin'" in str(caught.value)

    # With the host's rule only, the run completes — and `begin` never ran: the replay fed the
    # result of `superseded` to it. Every op is `rollout_activity` to Durable, so only this check sees it.
    lax_world = World()
    lax = lax_world.host("1", orchestrator=_random_preflight_workflow(_Coin(0.1, 0.9)), strict=False)
    assert lax.run().state["output"]["state"] == "succeeded"
    assert "begin" not in [t.input["op"] for t in lax.executed]
