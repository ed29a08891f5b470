"""Each production endpoint's diagnostic setting (its AmlOnlineEndpointConsoleLog and
AmlOnlineEndpointTrafficLog → the Log Analytics workspace), without which every canary window looks
quiet: AzureEndpoints.ensure_logging on the real azure-core pipeline against the fake ARM
(tests/fake_arm/diagnostics.py; the requests asserted on the wire), then what the rollout does
when it cannot be set (the workflow on the in-memory fakes)."""

from __future__ import annotations

import pytest

from functions.adapters.azure.aml import AzureEndpoints, workspace_client
from functions.adapters.azure.clients import arm_client
from functions.adapters.azure.diagnostic_settings import API_VERSION, EndpointDiagnostics
from functions.domain.config import deployment_name
from functions.ports import PlatformError
from functions.services import activities
from tests.fake_arm import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML
from tests.fake_arm.diagnostics import LINKED, READ, WRITE
from tests.fake_credentials import FakeCredential
from tests.test_workflow import GOOD, MODEL, Harness, _score_contract  # noqa: F401 (autouse fixture)

LA = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-monitor/providers/Microsoft.OperationalInsights/"
      "workspaces/log-modelops")
ENDPOINT = "ccd-prod"
CONSOLE, TRAFFIC, EVENTS = "AmlOnlineEndpointConsoleLog", "AmlOnlineEndpointTrafficLog", "AmlOnlineEndpointEventLog"
SETTINGS = "/providers/Microsoft.Insights/diagnosticSettings"


@pytest.fixture
def arm():
    fake = FakeAzureML()
    yield fake
    fake.settle()
    assert fake.unhandled == [], "a request the fake does not know"


@pytest.fixture
def endpoints(arm) -> AzureEndpoints:
    credential = FakeCredential()
    ml = workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=credential, transport=arm.transport(),
                          retry_backoff_factor=0.0)
    # retry_total=0: each failure reaches the adapter, so the activity's own retries are what is seen
    diagnostics = EndpointDiagnostics(arm_client(credential, transport=arm.transport(), retry_total=0), LA)
    eps = AzureEndpoints(ml, diagnostics=diagnostics)
    eps.begin_create_endpoint(ENDPOINT)
    arm.settle()
    arm.reset_calls()
    return eps


def settings_calls(arm: FakeAzureML) -> list:
    return [c for c in arm.calls if SETTINGS.lower() in c.path.lower()]


def test_a_new_endpoint_gets_its_diagnostic_setting_once_and_is_only_read_after(arm, endpoints):
    note = endpoints.ensure_logging(ENDPOINT)
    endpoint_id = arm.endpoints[ENDPOINT]["id"]
    calls = settings_calls(arm)
    assert [(c.method, c.path, c.api_version) for c in calls] == [
        ("GET", f"{endpoint_id}{SETTINGS}", API_VERSION),
        ("PUT", f"{endpoint_id}{SETTINGS}/modelops", API_VERSION)]
    put = calls[1]
    assert put.body == {"properties": {"workspaceId": LA, "logs": [{"category": CONSOLE, "enabled": True},
                                                                   {"category": TRAFFIC, "enabled": True}]}}
    assert put.headers["Authorization"].startswith("Bearer ") and put.status == 200
    assert note == f"diagnostic setting modelops created: {CONSOLE}, {TRAFFIC} → workspaces/log-modelops"

    arm.reset_calls()
    again = endpoints.ensure_logging(ENDPOINT)
    assert [c.method for c in settings_calls(arm)] == ["GET"] and arm.writes() == []
    assert again.startswith("diagnostic setting present:") and "modelops" in again


def test_a_setting_someone_else_made_that_sends_the_logs_is_left_alone(arm, endpoints):
    # e.g. an Azure Policy's deployIfNotExists: every category (allLogs) to the workspace, id in lower case
    arm.add_diagnostic_setting(ENDPOINT, "policy-diagnostics", {
        "workspaceId": LA.lower(), "logs": [{"categoryGroup": "allLogs", "enabled": True}]})
    note = endpoints.ensure_logging(ENDPOINT)
    assert arm.writes() == [] and "policy-diagnostics" in note


def test_what_is_missing_is_added_to_modelops_setting_without_undoing_the_rest(arm, endpoints):
    arm.add_diagnostic_setting(ENDPOINT, "modelops", {  # pointed elsewhere, traffic log switched off
        "workspaceId": LA.replace("log-modelops", "log-old"),
        "logs": [{"category": EVENTS, "enabled": True}, {"category": TRAFFIC, "enabled": False}],
        "metrics": [{"category": "AllMetrics", "enabled": True}]})
    arm.add_diagnostic_setting(ENDPOINT, "team-console", {  # the console log already goes to the workspace
        "workspaceId": LA, "logs": [{"category": CONSOLE, "enabled": True}]})
    note = endpoints.ensure_logging(ENDPOINT)
    put = next(c for c in arm.writes() if c.method == "PUT")
    # only the traffic log is written (the console log again would be refused: 409, one sink per category)
    assert put.body["properties"] == {
        "workspaceId": LA, "metrics": [{"category": "AllMetrics", "enabled": True}],
        "logs": [{"category": EVENTS, "enabled": True}, {"category": TRAFFIC, "enabled": True}]}
    assert note == f"diagnostic setting modelops updated: {TRAFFIC} → workspaces/log-modelops"
    assert endpoints.diagnostics.routing(arm.endpoints[ENDPOINT]["id"]).ok


@pytest.mark.parametrize("action, where, code", [
    (READ, "the endpoint", "AuthorizationFailed"), (WRITE, "the endpoint", "AuthorizationFailed"),
    (LINKED, "the Log Analytics workspace", "LinkedAuthorizationFailed")])  # ARM's check on the destination
def test_a_right_the_identity_lacks_is_named_and_never_retried(arm, endpoints, action, where, code):
    arm.deny(action)
    with pytest.raises(PlatformError) as caught:
        endpoints.ensure_logging(ENDPOINT)
    assert not caught.value.transient
    assert f"the identity may not perform {action} on {where} (HTTP 403 {code}: " in str(caught.value)
    assert [c.status for c in settings_calls(arm)][-1] == 403
    assert arm.diagnostic_settings.get(ENDPOINT, {}) == {}


def test_the_rollout_activity_retries_a_transient_failure_then_fails_closed(arm, endpoints, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(activities.time, "sleep", slept.append)
    arm.fail("PUT", r"/diagnosticSettings/modelops$", 503, times=1)
    assert activities._ensure_logging(endpoints, ENDPOINT).startswith("diagnostic setting modelops created")
    assert slept == [1.0] and [c.status for c in settings_calls(arm)] == [200, 503, 200, 200]

    arm.diagnostic_settings.clear()
    slept.clear()
    arm.fail("GET", r"/diagnosticSettings$", 503, times=activities.LOGGING_ATTEMPTS)
    with pytest.raises(PlatformError, match=r"production endpoint ccd-prod would not reach the traffic log .*"
                                            r"after 3 attempt\(s\).*HTTP 503"):
        activities._ensure_logging(endpoints, ENDPOINT)
    assert slept == [1.0, 2.0] and arm.diagnostic_settings.get(ENDPOINT, {}) == {}


# --- the rollout ---------------------------------------------------------------------------------

V1, V2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")


def test_production_logs_are_ensured_before_the_deployment_and_recorded():
    h = Harness({"1": GOOD})
    out = h.roll("1")
    assert out["state"] == "succeeded", out
    assert h.production.logging_ensured == [h.config.production_endpoint]
    assert h.staging.logging_ensured == []  # staging is judged by the gates' own answers
    created = next(r for r in h.rollouts.trail(MODEL, out["id"]) if r["step"] == "production_deployment_created")
    assert created["details"]["logs"] == f"fake: {h.config.production_endpoint} logs"


def test_a_production_endpoint_whose_logs_cannot_be_routed_stops_the_rollout_before_production_changes(
        monkeypatch):
    monkeypatch.setattr(activities.time, "sleep", lambda seconds: None)
    h = Harness({"1": GOOD, "2": GOOD})
    h.roll("1")
    endpoint = h.config.production_endpoint
    h.production.fail_logging = lambda: PlatformError(
        "the identity may not perform Microsoft.Insights/diagnosticSettings/write (HTTP 403 AuthorizationFailed)")
    out = h.roll("2")
    assert out["state"] == "failed", out
    assert "would not reach the traffic log" in out["reason"] and "diagnosticSettings/write" in out["reason"]
    assert h.production.live(endpoint) == {V1: 100} and (endpoint, V2) not in h.production.deployments
    assert h.rollouts.production(MODEL)["version"] == "1"
    trail = h.rollouts.trail(MODEL, out["id"])
    assert trail[-1]["step"] == "failed" and "diagnosticSettings/write" in trail[-1]["details"]["reason"]
    assert "production_deployment_created" not in [r["step"] for r in trail]


def test_the_local_platform_needs_no_setting_its_front_door_writes_the_traffic_log(tmp_path):
    import sys

    from functions.adapters.local.endpoints import LocalEndpoints
    from functions.adapters.local.traffic_log import traffic_log_path

    local = LocalEndpoints(tmp_path, sys.executable)
    try:
        with pytest.raises(PlatformError, match="endpoint ccd-prod does not exist"):
            local.ensure_logging(ENDPOINT)
        local.begin_create_endpoint(ENDPOINT)
        assert local.ensure_logging(ENDPOINT) == f"local: the front door writes {traffic_log_path(tmp_path, ENDPOINT)}"
        assert traffic_log_path(tmp_path, ENDPOINT).parent.is_dir()
    finally:
        local.close()
