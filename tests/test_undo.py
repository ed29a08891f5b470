"""`undo`: production back to the previous champion or a named version, under the Durable library's
replay (tests/durable_history.py) on the in-memory fakes — including a version whose deployment is
gone (re-created from the registry, waited for, smoke-tested before any traffic moves) and a failed
smoke that leaves production as it was."""

from __future__ import annotations

import asyncio
import copy
import functools
from datetime import datetime, timezone

from functions.domain.authorisation import Caller
from functions.domain.config import deployment_name
from functions.services.operator import Operator, undo_target
from functions.triggers import rollout_orchestration as triggers
from tests.durable_history import ReplayHost
from tests.test_workflow_controls import play_controls, released_world
from tests.test_workflow_replay import (  # noqa: F401 (_score_contract: autouse fixture)
    CANARY_STEP,
    FIRST_VERSION,
    MODEL,
    PRODUCTION,
    STAGING,
    World,
    _score_contract,
)

UNDO = triggers.undo_orchestrator._function.get_user_function()
UNDO_NAME = triggers.undo_orchestrator._function.get_function_name()
DAY2 = datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc)
CANARY = STAGING + PRODUCTION + CANARY_STEP * 3 + ["retire", "set_production", "audit succeeded", "finish"]


class _Recorder:
    """ports.Orchestrations that keeps what the operator started (the test plays it on a ReplayHost)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, dict]] = []

    async def exists(self, instance_id: str) -> bool:
        return False

    async def start(self, name: str, instance_id: str, input_: dict) -> None:
        self.started.append((name, instance_id, input_))

    async def raise_event(self, instance_id: str, event: str, data) -> bool:
        return False


@functools.cache
def _two_releases() -> World:
    world = released_world()
    final = play_controls(world.host("2", start=DAY2), CANARY, {})
    assert final.state["output"]["state"] == "succeeded"
    return world


def two_releases() -> World:
    """A copy of one World where version 2 replaced version 1 through a canary (played once)."""
    return copy.deepcopy(_two_releases())


def start_undo(world: World, to: str | None = None) -> ReplayHost:
    """The operator service's undo (its decision, record and start), then its orchestration played."""
    recorder = _Recorder()
    registry = world.registry
    operator = Operator(world.rollouts, world.store, recorder, lambda a, m, r: (Caller.local("dev (cli)"), None),
                        managed=_Managed(world), in_registry=lambda m, v: registry.get_registry_model(m, v) is not None)
    answer = asyncio.run(operator.undo(MODEL, to=to, comment="v2 answers slowly"))
    assert answer.status == 202, answer.body
    ((name, instance_id, input_),) = recorder.started
    assert name == UNDO_NAME
    return ReplayHost(UNDO, UNDO_NAME, instance_id, input_, world.run_activity,
                      start=datetime(2026, 3, 4, 9, 0, tzinfo=timezone.utc))


class _Managed:
    def __init__(self, world: World) -> None:
        self.world = world

    def get(self, name: str):
        return self.world.config if name == MODEL else None


RECREATE = ["begin", "audit undo_started", "get_endpoint", "version_contract", "create_deployment",
            "audit undo_deployment_created", "get_deployment", "timer 30s", "get_deployment", "smoke",
            "audit undo_smoke", "set_traffic", "audit traffic", "retire", "set_production", "audit succeeded",
            "finish"]


def test_undo_goes_back_to_the_previous_champion_recreating_its_deployment_from_the_registry():
    world = two_releases()
    v1, v2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")
    endpoint = world.config.production_endpoint
    assert world.production.live(endpoint) == {v2: 100} and (endpoint, v1) in world.production.deleted
    assert undo_target(world.rollouts, MODEL, world.rollouts.production(MODEL), None)[0] == "1"
    host = start_undo(world)
    final = play_controls(host, RECREATE, {})
    output = final.state["output"]
    assert output["state"] == "succeeded" and output["kind"] == "undo" and output["traffic"] == {v1: 100}
    assert world.production.live(endpoint) == {v1: 100}
    recreated = world.production.deployments[(endpoint, v1)].spec
    assert recreated.model.uri == world.registry.get_registry_model(MODEL, "1").uri  # from the registry
    assert "MODELOPS_CONTRACT" in recreated.environment_variables
    production = world.rollouts.production(MODEL)
    assert (production["version"], production["rollout_id"]) == ("1", host.instance_id)
    record = world.rollouts.get(MODEL, host.instance_id)
    assert (record["kind"], record["state"], record["from_version"]) == ("undo", "succeeded", "2")
    started = world.rollouts.trail(MODEL, host.instance_id)[0]
    assert started["details"]["control"]["by"] == "dev (cli)" and started["details"]["to"] == "1"
    # and again: the previous champion is now 2 (the history's newest other version)
    assert undo_target(world.rollouts, MODEL, world.rollouts.production(MODEL), None)[0] == "2"


def test_a_failed_smoke_leaves_production_as_it_was():
    world = two_releases()
    v2 = deployment_name(MODEL, "2")
    endpoint = world.config.production_endpoint
    world.production.models["1"] = lambda rows: []  # answers nothing: the smoke test fails
    host = start_undo(world, to="1")
    expected = RECREATE[:RECREATE.index("smoke") + 1] + ["delete_deployment", "audit rejected", "finish"]
    final = play_controls(host, expected, {})
    output = final.state["output"]
    assert output["state"] == "rejected" and "smoke test" in output["reason"] and "production unchanged" in \
        output["reason"]
    assert world.production.live(endpoint) == {v2: 100}
    assert world.rollouts.production(MODEL)["version"] == "2"


def test_undo_is_refused_when_there_is_nothing_to_go_back_to():
    world = released_world()
    target, why = undo_target(world.rollouts, MODEL, world.rollouts.production(MODEL), None)
    assert target is None and "no previous champion" in why
    assert "serves already" in undo_target(world.rollouts, MODEL, world.rollouts.production(MODEL), "1")[1]


def test_an_interrupted_undo_ends_consistently_never_removing_what_production_serves():
    from functions.domain.reconcile import plan_ending
    from functions.ports import EndpointState

    v1, v2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")
    undo = {"id": "undo-1", "model": MODEL, "version": "1", "kind": "undo"}
    created = [{"seq": 1, "step": "undo_started", "details": {}},
               {"seq": 2, "step": "undo_deployment_created", "details": {}}]
    # traffic already moved and v2 retired: completed, the pointer follows what serves
    moved = plan_ending(undo, created, None, EndpointState("ep", "Succeeded", traffic={v1: 100},
                                                            deployments={v1: "Succeeded"}), "process 9 died")
    assert moved.state == "succeeded" and moved.production.traffic == {v1: 100} and moved.production.drop == ()
    assert moved.production_pointer == {"deployment": v1, "traffic": {v1: 100}}
    # before the move: production untouched, the re-created deployment (0%) removed
    before = plan_ending(undo, created, None, EndpointState("ep", "Succeeded", traffic={v1: 0, v2: 100},
                                                             deployments={v1: "Succeeded", v2: "Succeeded"}), "x")
    assert before.state == "abandoned" and before.production.traffic == {v2: 100} and before.production.drop == (v1,)
    # a target that existed before the undo is never removed by its ending
    kept = plan_ending(undo, created[:1], None, EndpointState("ep", "Succeeded", traffic={v1: 0, v2: 100},
                                                               deployments={v1: "Succeeded", v2: "Succeeded"}), "x")
    assert kept.state == "abandoned" and kept.production is None
