"""When a host may continue an interrupted rollout (functions/domain/resumable.py) and what it does
with the others (functions/services/resumption.py + recovery): pure decisions and the store, no
processes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from functions.adapters.local.store import DirectoryStore
from functions.domain.config import ManagedModels, build_model_config
from functions.domain.resumable import why_not_resumable
from functions.ports import EndpointState
from functions.services import resumption
from functions.services.recovery import end_interrupted
from functions.services.records import RolloutStore

MODEL = "iris"
OLD, NEW = "iris-v1", "iris-v2"
ROLLOUT = {"id": "r-2", "model": MODEL, "version": "2", "event_id": "e", "topic": "t"}


def step(seq, name, **details):
    return {"seq": seq, "step": name, "details": details}


CANARY_TRAIL = [step(1, "started"), step(2, "staging_deployment_created"), step(3, "gates", passed=True),
                step(4, "staging_traffic"), step(5, "promoted"),
                step(6, "production_deployment_created", traffic={OLD: 100}), step(7, "production_smoke"),
                step(8, "traffic", percent=10, traffic={OLD: 90, NEW: 10})]


def state(name, traffic, deployments):
    return EndpointState(name=name, provisioning_state="Succeeded", traffic=traffic, deployments=deployments)


STAGING = state("iris-staging", {NEW: 100}, {NEW: "Succeeded"})
PRODUCTION = state("iris-prod", {OLD: 90, NEW: 10}, {OLD: "Succeeded", NEW: "Succeeded"})


def test_a_canary_whose_endpoints_are_as_it_left_them_may_continue():
    assert why_not_resumable(ROLLOUT, CANARY_TRAIL, STAGING, PRODUCTION, managed=True) is None


def test_a_deployment_still_creating_is_revived_so_the_rollout_may_wait_for_it():
    staging = state("iris-staging", {}, {NEW: "Creating"})
    assert why_not_resumable(ROLLOUT, CANARY_TRAIL[:2], staging, None, managed=True) is None


@pytest.mark.parametrize("trail, staging, production, managed, reason", [
    (CANARY_TRAIL, STAGING, PRODUCTION, False, "model iris is no longer managed"),
    (CANARY_TRAIL, STAGING, state("iris-prod", {OLD: 100}, {OLD: "Succeeded"}), True,
     "its production deployment iris-v2 is gone"),
    (CANARY_TRAIL, STAGING, state("iris-prod", {OLD: 100}, {OLD: "Succeeded", NEW: "Failed"}), True,
     "its production deployment iris-v2 is Failed"),
    (CANARY_TRAIL, state("iris-staging", {}, {NEW: "Deleting"}), PRODUCTION, True,
     "its staging deployment iris-v2 is Deleting"),
    (CANARY_TRAIL, STAGING, None, True, "its production endpoint has no recorded state"),
    (CANARY_TRAIL, STAGING, state("iris-prod", {OLD: 50, NEW: 10, "hand": 40},
                                  {OLD: "Succeeded", NEW: "Succeeded", "hand": "Succeeded"}), True,
     "is not one this rollout set"),
    (CANARY_TRAIL, STAGING, state("iris-prod", {OLD: 90, NEW: 20}, {OLD: "Succeeded", NEW: "Succeeded"}), True,
     "is not one this rollout set"),
])
def test_a_rollout_whose_world_changed_is_not_resumed(trail, staging, production, managed, reason):
    assert reason in why_not_resumable(ROLLOUT, trail, staging, production, managed=managed)


def test_after_its_outcome_is_audited_the_rollout_only_finishes_even_if_its_canary_is_gone():
    trail = [*CANARY_TRAIL, step(9, "rolled_back", traffic={OLD: 100})]
    production = state("iris-prod", {OLD: 100}, {OLD: "Succeeded"})
    assert why_not_resumable(ROLLOUT, trail, STAGING, production, managed=True) is None


# --- choose, then end the rest (services) ---------------------------------------------------------------

@dataclass
class Replayed:
    completed: int
    closed: bool = False

    @property
    def generator(self):
        outer = self

        class _Gen:
            def close(self):
                outer.closed = True
        return _Gen()


@dataclass
class FakeDriver:
    """Stands in for LocalOrchestrator.replay/resume: refuses the ids in `refuse` with a reason."""

    refuse: dict[str, str] = field(default_factory=dict)
    resumed: list = field(default_factory=list)
    replayed: dict = field(default_factory=dict)

    def replay(self, instance_id):
        if instance_id in self.refuse:
            raise ValueError(self.refuse[instance_id])
        self.replayed[instance_id] = Replayed(8)
        return self.replayed[instance_id]

    def resume(self, replayed):
        self.resumed.append(replayed)


class Stopped:
    def __init__(self, states):
        self.states = {s.name: s for s in states}
        self.amended = {}

    def recorded(self, name):
        return self.states.get(name)

    def amend_stopped(self, name, traffic, drop=()):
        self.amended[name] = (traffic, drop)
        return {}


@pytest.fixture
def rollouts(tmp_path):
    r = RolloutStore(DirectoryStore(tmp_path / "store"))
    config = {"staging_endpoint": "iris-staging", "production_endpoint": "iris-prod"}
    for rollout in (ROLLOUT, {**ROLLOUT, "id": "r-3", "version": "3"}):
        r.claim({"run_key": rollout["id"], "model": MODEL, "version": rollout["version"], "reason": "new"},
                {"event_id": "e", "topic": "t"}, "2026-01-01T00:00:00+00:00")
        r.start(rollout, {}, config, "2026-01-01T00:00:00+00:00")
        for record in CANARY_TRAIL:
            r.audit(rollout, record["seq"], record["step"], "2026-01-01T00:00:00+00:00", record["details"])
    return r


def managed():
    return ManagedModels({MODEL: build_model_config(MODEL, {"staging_endpoint": "iris-staging",
                                                            "production_endpoint": "iris-prod"})})


def test_the_host_keeps_what_it_can_resume_and_ends_the_rest_saying_why_not(rollouts):
    driver = FakeDriver(refuse={"r-3": "the workflow diverges from its history at task 9"})
    endpoints = {"staging": Stopped([STAGING]), "production": Stopped([PRODUCTION])}
    chosen, refused = resumption.choose(rollouts, managed(), endpoints, driver)
    assert [c.rollout_id for c in chosen] == ["r-2"]
    assert refused == {"r-3": "the workflow diverges from its history at task 9"}

    ended = end_interrupted(rollouts, managed(), endpoints, "the process that ran it (pid 7) died",
                            keep=frozenset({"r-2"}), not_resumed=refused)
    assert [e.rollout_id for e in ended] == ["r-3"]
    assert rollouts.get(MODEL, "r-2")["state"] == "running"
    record = rollouts.get(MODEL, "r-3")
    assert record["state"] == "abandoned"
    assert record["reason"].startswith("the process that ran it (pid 7) died and it was not resumed (the workflow "
                                       "diverges from its history at task 9) during the canary at 10%")

    assert resumption.resume(rollouts, driver, chosen, by="modelops (pid 9)", after="pid 7 died") == ["r-2"]
    assert driver.resumed == [driver.replayed["r-2"]]
    note = rollouts.get(MODEL, "r-2")["resumed"]
    assert note[0]["by"] == "modelops (pid 9)" and note[0]["from_task"] == 8


def test_an_unsafe_rollout_is_not_continued_and_its_replay_is_closed(rollouts):
    driver = FakeDriver()
    gone = state("iris-prod", {OLD: 100}, {OLD: "Succeeded"})
    chosen, refused = resumption.choose(rollouts, managed(), {"staging": Stopped([STAGING]),
                                                              "production": Stopped([gone])}, driver)
    assert chosen == [] and set(refused) == {"r-2", "r-3"}
    assert "production deployment iris-v2 is gone" in refused["r-2"]
    assert all(r.closed for r in driver.replayed.values())  # its generator closed: nothing of it runs


def test_a_stopping_host_suspends_what_has_a_history_and_a_non_host_then_says_why_it_ends_it(rollouts):
    suspended, orphans = resumption.suspend(rollouts, "modelops (pid 9)", "was terminated (SIGTERM)",
                                            has_history=lambda rid: rid == "r-2")
    assert suspended == ["r-2"] and orphans == {"r-3"}
    assert rollouts.get(MODEL, "r-2")["suspended"][0]["why"] == "was terminated (SIGTERM)"
    assert "suspended" not in rollouts.get(MODEL, "r-3")
    why = resumption.not_resumed_by_this_owner(rollouts)
    assert set(why) == {"r-2"} and "only `modelops up` does" in why["r-2"]
