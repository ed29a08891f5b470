"""Ending a rollout whose runner stopped, decided from its records and the endpoints' recorded state
(pure: by direct call, one case per phase the runner can stop in)."""

from __future__ import annotations

import pytest

from functions.domain.reconcile import phase_of, plan_ending
from functions.ports import EndpointState

MODEL = "credit-card-default"
V1, V2 = "credit-card-default-v1", "credit-card-default-v2"
ROLLOUT = {"id": "rollout-credit-card-default-2-abc", "model": MODEL, "version": "2"}
WHY = "the modelops process that ran it (pid 42) died"


def step(name: str, **details) -> dict:
    return {"step": name, "details": details}


def endpoint(name: str, traffic: dict, states: dict | None = None) -> EndpointState:
    deployments = {d: "Succeeded" for d in traffic} | (states or {})
    return EndpointState(name, "Succeeded", "", dict(traffic), deployments)


STAGING_V1 = endpoint("cc-staging", {V1: 100})
PROD_V1 = endpoint("cc-prod", {V1: 100})
BEFORE_PROD = [step("started"), step("staging_deployment_created"), step("gates"), step("staging_traffic"),
               step("promoted")]
IN_PROD = BEFORE_PROD + [step("production_deployment_created", traffic={V1: 100})]


def test_stopped_in_staging_removes_the_unvalidated_staging_deployment_and_leaves_production():
    staging = endpoint("cc-staging", {V1: 100, V2: 0})
    ending = plan_ending(ROLLOUT, [step("started"), step("staging_deployment_created")], staging, PROD_V1, WHY)
    assert ending.state == "abandoned" and ending.phase == "staging"
    assert ending.staging.traffic == {V1: 100} and ending.staging.drop == (V2,)
    assert ending.production is None and "production untouched" in ending.reason and WHY in ending.reason


def test_stopped_after_the_staging_take_over_keeps_the_validated_deployment_in_staging():
    staging = endpoint("cc-staging", {V1: 0, V2: 100})  # take-over set traffic, died before deleting v1
    ending = plan_ending(ROLLOUT, BEFORE_PROD[:3], staging, PROD_V1, WHY)
    assert ending.staging.traffic == {V2: 100} and ending.staging.drop == (V1,)
    assert ending.production is None


@pytest.mark.parametrize("percent, traffic", [(10, {V1: 90, V2: 10}), (50, {V1: 50, V2: 50}),
                                              (100, {V1: 0, V2: 100})])
def test_stopped_in_the_canary_restores_the_champion_and_removes_the_canary(percent, traffic):
    trail = IN_PROD + [step("production_smoke"), step("traffic", traffic=traffic, percent=percent)]
    ending = plan_ending(ROLLOUT, trail, endpoint("cc-staging", {V2: 100}), endpoint("cc-prod", traffic), WHY)
    assert ending.state == "abandoned" and ending.phase == f"the canary at {percent}%"
    assert ending.production.traffic == {V1: 100} and ending.production.drop == (V2,)
    assert f"previous traffic map {{'{V1}': 100}} restored" in ending.reason


def test_stopped_between_creating_the_production_deployment_and_recording_it():
    # the deployment exists at 0% but no audit step names the map before it: the current map is it
    ending = plan_ending(ROLLOUT, BEFORE_PROD, endpoint("cc-staging", {V2: 100}), endpoint("cc-prod", {V1: 100, V2: 0}),
                         WHY)
    assert ending.production.traffic == {V1: 100} and ending.production.drop == (V2,)


def test_stopped_after_retiring_the_champion_completes_the_rollout():
    trail = IN_PROD + [step("traffic", traffic={V1: 0, V2: 100}, percent=100), step("health", percent=100)]
    prod = endpoint("cc-prod", {V2: 100}, {V1: "Deleting"})
    ending = plan_ending(ROLLOUT, trail, endpoint("cc-staging", {V2: 100}), prod, WHY)
    assert ending.state == "succeeded" and "completed" in ending.reason
    assert ending.production.traffic == {V2: 100} and ending.production.drop == (V1,)
    assert ending.production_pointer == {"deployment": V2, "traffic": {V2: 100}}


def test_a_first_version_stopped_mid_release_leaves_production_serving_nothing_it_did_not_before():
    trail = [*BEFORE_PROD, step("production_deployment_created", traffic={}), step("traffic", traffic={V2: 100},
                                                                                   percent=100)]
    ending = plan_ending(ROLLOUT, trail, endpoint("cc-staging", {V2: 100}), endpoint("cc-prod", {V2: 100}), WHY)
    assert ending.state == "abandoned"
    assert ending.production.traffic == {} and ending.production.drop == (V2,)


def test_a_map_whose_deployments_were_removed_by_hand_still_ends_valid():
    # recorded map named v0 and v1; v0 is gone: the champion left takes all the traffic
    trail = BEFORE_PROD + [step("production_deployment_created", traffic={"m-v0": 50, V1: 50})]
    ending = plan_ending(ROLLOUT, trail, None, endpoint("cc-prod", {V1: 90, V2: 10}), WHY)
    assert ending.production.traffic == {V1: 100}
    assert sum(ending.production.traffic.values()) == 100


def test_a_rollout_that_never_started_ends_without_touching_anything():
    ending = plan_ending(ROLLOUT, [], STAGING_V1, PROD_V1, WHY)
    assert ending.state == "abandoned" and ending.staging is None and ending.production is None
    assert ending.phase == "before it started"


def test_phases_are_named_for_a_person():
    assert phase_of([step("gates")]) == "the gates"
    assert phase_of([step("promoted")]) == "promotion"
    assert phase_of([step("health", percent=50)]) == "the canary at 50%"
