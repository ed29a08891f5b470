"""Never promote blind, in Azure too: the real workflow (in-memory endpoints and registry,
tests/test_workflow.py's Harness) judging its canary with the Azure traffic-log adapter,
LogAnalyticsTrafficLog, on the real azure-monitor-query client against the fake Log Analytics
query API (tests/fake_log_analytics). An empty table, a table that does not exist, 403 and 504:
none of them promotes, and the audit trail says why. With the canary's requests in the table the
same path promotes (so the refusals are the faults', not the harness's)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from functions.adapters.azure.log_analytics import logs_client
from functions.adapters.azure.traffic_log import LogAnalyticsTrafficLog
from functions.domain.config import deployment_name
from functions.services import activities
from tests.fake_credentials import FakeCredential
from tests.fake_log_analytics import TRAFFIC_COLUMNS, TRAFFIC_TABLE, FakeLogAnalytics
from tests.test_workflow import GOOD, MODEL, Harness, _score_contract  # noqa: F401 (autouse fixture)

WORKSPACE = "3b5f1c9e-8a4d-4f7e-9c2b-6d1e0a7f4b21"
V1, V2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")
# each step: a 0.05 s bake, extended twice when it sees too few requests (then judged final)
CANARY = {"canary": {"bake_seconds": 0.05, "max_bake_seconds": 0.15, "min_requests": 5}}


@pytest.fixture(scope="module")
def server():
    with FakeLogAnalytics(workspace_ids={WORKSPACE}) as fake:
        fake._server.handle_error = lambda request, client_address: None  # keep-alives the client dropped
        yield fake
        assert fake.errors == [], fake.errors


@pytest.fixture
def logs(server, monkeypatch):
    monkeypatch.setattr(activities.time, "sleep", lambda seconds: None)  # the activity's 1 s, 2 s retries
    yield server
    server.clear_faults()
    server.clear_requests()
    server.evaluator = server.subset_evaluator
    server.create_table(TRAFFIC_TABLE, TRAFFIC_COLUMNS)  # empty again (and back if a test dropped it)


def azure_canary(logs: FakeLogAnalytics) -> Harness:
    """v1 in production (first version: no canary), v2 ready to canary, health from Log Analytics."""
    h = Harness({"1": GOOD, "2": GOOD}, CANARY)
    assert h.roll("1")["state"] == "succeeded"
    # one retry inside the client (azure-core's policy), without sleeping; the activity retries too
    client = logs_client(logs.url, FakeCredential(token="fake-token"), retry_total=1, retry_backoff_factor=0.0)
    h.platform.traffic_log = LogAnalyticsTrafficLog(client, WORKSPACE, enforce_https=False)
    return h


def health_records(h: Harness, out: dict) -> list[dict]:
    return [r["details"] for r in h.rollouts.trail(MODEL, out["id"]) if r["step"] == "health"]


def assert_not_promoted(h: Harness, out: dict, cause: str) -> dict:
    assert out["state"] == "rolled_back", out
    assert cause in out["reason"], out["reason"]
    endpoint = h.config.production_endpoint
    assert h.production.live(endpoint) == {V1: 100}  # the champion serves alone again
    assert (endpoint, V2) in h.production.deleted
    assert h.rollouts.production(MODEL)["version"] == "1"
    trail = h.rollouts.trail(MODEL, out["id"])
    rolled_back = [r["details"] for r in trail if r["step"] == "rolled_back"]
    assert len(rolled_back) == 1 and cause in rolled_back[0]["reason"]
    assert "succeeded" not in [r["step"] for r in trail]
    health = health_records(h, out)
    assert health and not health[-1]["healthy"] and cause in health[-1]["reason"]
    return health[-1]


def canary_queries(logs: FakeLogAnalytics) -> list[str]:
    return [q for q in logs.queries if f'DeploymentName == "{V2}"' in q]


def test_an_empty_traffic_table_is_not_traffic_the_canary_is_rolled_back(logs):
    h = azure_canary(logs)
    out = h.roll("2")
    last = assert_not_promoted(h, out, "not enough traffic to judge the canary: 0 request(s)")
    assert [d["verdict"] for d in health_records(h, out)] == ["insufficient"] * 3
    assert last["figures"]["requests"] == 0 and last["figures"]["baked_seconds"] == pytest.approx(0.15)
    assert len(canary_queries(logs)) == 3  # each look really asked Log Analytics


def test_a_traffic_table_that_does_not_exist_fails_closed_naming_the_table(logs):
    del logs.tables[TRAFFIC_TABLE]  # no endpoint ever sent a row: Log Analytics has no such table
    h = azure_canary(logs)
    out = h.roll("2")
    last = assert_not_promoted(h, out, f"table {TRAFFIC_TABLE} does not exist in Log Analytics workspace {WORKSPACE}")
    assert "health query failed after 1 attempt(s)" in out["reason"]  # a fact, not retried
    assert "the production endpoints need a diagnostic setting" in out["reason"]
    assert "HTTP 400" in last["figures"]["query_error"]
    assert [r.status for r in logs.requests if r.query in canary_queries(logs)] == [400]


def test_a_query_the_identity_may_not_run_fails_closed_naming_the_right(logs):
    logs.fail_next(403, times=None)
    h = azure_canary(logs)
    out = h.roll("2")
    assert_not_promoted(h, out, f"the identity may not query Log Analytics workspace {WORKSPACE}")
    assert "Microsoft.OperationalInsights/workspaces/query/read" in out["reason"]
    assert "health query failed after 1 attempt(s)" in out["reason"] and "HTTP 403" in out["reason"]
    assert len(canary_queries(logs)) == 1


def test_a_query_that_times_out_at_the_gateway_is_retried_then_fails_closed(logs):
    logs.fail_next(504, times=None)
    h = azure_canary(logs)
    out = h.roll("2")
    assert_not_promoted(h, out, "HTTP 504")
    assert f"health query failed after {activities.HEALTH_QUERY_ATTEMPTS} attempt(s)" in out["reason"]
    # the activity's 3 attempts, each retried once by the client: nothing answered, nothing promoted
    assert len(canary_queries(logs)) == 2 * activities.HEALTH_QUERY_ATTEMPTS


def test_with_the_canarys_requests_in_the_table_the_same_path_promotes(logs):
    served: set[tuple] = set()

    def with_traffic(query, timespan):  # what the endpoint's diagnostic setting would have sent
        deployment = re.search(r'DeploymentName == "([^"]+)"', query).group(1)
        if timespan.start is not None and (deployment, timespan.start) not in served:
            served.add((deployment, timespan.start))
            logs.add_rows(TRAFFIC_TABLE, [{
                "TimeGenerated": timespan.start + timedelta(milliseconds=1 + i), "EndpointName": endpoint,
                "DeploymentName": deployment, "ResponseCode": 200, "TotalDurationMs": 20} for i in range(10)])
        return logs.subset_evaluator(query, timespan)

    h = azure_canary(logs)
    endpoint = h.config.production_endpoint
    logs.evaluator = with_traffic
    out = h.roll("2")
    assert out["state"] == "succeeded", out
    assert h.production.live(endpoint) == {V2: 100}
    judged = [d for d in health_records(h, out) if d["verdict"] != "insufficient"]
    assert [(d["percent"], d["healthy"], d["figures"]["requests"]) for d in judged] == [
        (10, True, 10), (50, True, 10), (100, True, 10)]
