"""GET /api/health?deep=1 and the start-up log: what the Azure platform is missing, as check results.

The Azure App is the composition root's (build_app with the Azure settings), its clients pointed at
the fakes: the real azure-ai-ml and azure-core pipelines against tests/fake_arm (endpoints and their
diagnostic settings), the real azure-monitor-query client against tests/fake_log_analytics; the
store is in memory (the blob store has its own tests against Azurite)."""

from __future__ import annotations

import json
import logging
import threading
from types import SimpleNamespace

import azure.functions as func
import pytest
import requests

from functions import bootstrap
from functions.adapters.azure.clients import arm_client, workspace_client
from functions.adapters.azure.log_analytics import logs_client
from functions.settings import Settings
from functions.triggers.http_health import health
from tests.fake_arm import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML
from tests.fake_arm.diagnostics import READ
from tests.fake_credentials import FakeCredential
from tests.fake_log_analytics import CONSOLE_COLUMNS, CONSOLE_TABLE, TRAFFIC_TABLE, FakeLogAnalytics
from tests.fakes import MemoryStore

LOGS = "5c2e8f1a-3b7d-4e9a-8f6c-1d0b2a4e7c93"
LA = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-monitor/providers/Microsoft.OperationalInsights/"
      "workspaces/log-modelops")
STAGING, PRODUCTION = "credit-card-default-staging", "credit-card-default-prod"
HEALTH = health.build().get_user_function()


@pytest.fixture(scope="module")
def la():
    with FakeLogAnalytics(workspace_ids={LOGS}) as fake:
        fake._server.handle_error = lambda request, client_address: None
        yield fake
        assert fake.errors == [], fake.errors


@pytest.fixture
def azure(la, monkeypatch):
    """The Azure App on the fakes, with every managed endpoint absent."""
    for name, value in {
        "MODELOPS_PLATFORM": "azure", "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "MODELOPS_STAGING_RESOURCE_GROUP": RESOURCE_GROUP, "MODELOPS_STAGING_WORKSPACE": WORKSPACE,
        "MODELOPS_PRODUCTION_WORKSPACE": WORKSPACE, "MODELOPS_REGISTRY_NAME": "mlr-shared",
        "MODELOPS_LOG_ANALYTICS_WORKSPACE_ID": LOGS, "MODELOPS_LOG_ANALYTICS_RESOURCE_ID": LA,
        "MODELOPS_LOGS_ENDPOINT": la.url, "MODELOPS_STORAGE_ACCOUNT_URL": "https://st.blob.core.windows.net",
    }.items():
        monkeypatch.setenv(name, value)
    arm = FakeAzureML()
    credential = FakeCredential()
    app = bootstrap.build_app(Settings.from_env())
    ml = workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=credential, transport=arm.transport(),
                          retry_backoff_factor=0.0)
    app._parts.__dict__.update(credential=credential, staging_client=ml, production_client=ml,
                               arm_client=arm_client(credential, transport=arm.transport(), retry_total=0),
                               logs_client=logs_client(la.url, FakeCredential(token="t"), retry_total=0))
    app.__dict__["store"] = MemoryStore()
    yield SimpleNamespace(app=app, arm=arm, la=la)
    arm.settle()
    assert arm.unhandled == []
    la.clear_faults()
    la.clear_requests()
    la.create_table(CONSOLE_TABLE, CONSOLE_COLUMNS)


def results(app) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.ok, c.detail) for c in app.health_checks()}


def create(azure, name: str) -> None:
    azure.app.ports.production.begin_create_endpoint(name)
    azure.arm.settle()


def test_a_fresh_platform_passes_and_says_what_the_first_rollout_will_create(azure):
    found = results(azure.app)
    assert set(found) == {"store", f"endpoint:staging/{STAGING}", f"endpoint:production/{PRODUCTION}",
                          f"table:{TRAFFIC_TABLE}", f"table:{CONSOLE_TABLE}"}
    assert all(ok for ok, _ in found.values()), found
    assert "not created yet" in found[f"endpoint:production/{PRODUCTION}"][1]
    assert "with its diagnostic setting" in found[f"endpoint:production/{PRODUCTION}"][1]
    # the table probes are harmless queries, asking for no rows
    assert sorted(azure.la.queries) == [f"{CONSOLE_TABLE} | take 0", f"{TRAFFIC_TABLE} | take 0"]


def test_a_production_endpoint_without_its_diagnostic_setting_is_reported_until_a_rollout_writes_it(azure):
    create(azure, PRODUCTION)
    ok, detail = results(azure.app)[f"logs:{PRODUCTION}"]
    assert not ok
    assert detail.startswith("AmlOnlineEndpointConsoleLog, AmlOnlineEndpointTrafficLog not sent to "
                             "workspaces/log-modelops (no diagnostic setting)")
    assert "its canary would see no requests" in detail
    assert azure.arm.writes() and not [c for c in azure.arm.writes() if "diagnosticSettings" in c.path]  # read only

    azure.app.ports.production.ensure_logging(PRODUCTION)  # what the next rollout does
    assert results(azure.app)[f"logs:{PRODUCTION}"] == (
        True, "AmlOnlineEndpointConsoleLog, AmlOnlineEndpointTrafficLog sent to workspaces/log-modelops "
              "(settings: modelops)")


def test_a_table_that_does_not_exist_is_reported_as_such(azure):
    del azure.la.tables[CONSOLE_TABLE]
    ok, detail = results(azure.app)[f"table:{CONSOLE_TABLE}"]
    assert not ok
    assert detail.startswith(f"HTTP 400: table {CONSOLE_TABLE} does not exist in Log Analytics workspace {LOGS}")
    assert "need a diagnostic setting" in detail
    assert results(azure.app)[f"table:{TRAFFIC_TABLE}"][0]


def test_the_fakes_unknown_table_answer_has_the_services_shape(la):
    # the body users reported from the service for an unknown table (CDCgov/prime-reportstream#11773):
    # 400, BadArgumentError > SemanticError "A semantic error occurred." > SEM0100 naming the operator
    answer = requests.post(f"{la.url}/v1/workspaces/{LOGS}/query", headers={"Authorization": "Bearer t"},
                           json={"query": "NoSuchTable_CL | take 0"}, timeout=30)
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["code"] == "BadArgumentError"
    assert error["message"] == "The request had some invalid properties"
    assert {k: error["innererror"][k] for k in ("code", "message")} == {
        "code": "SemanticError", "message": "A semantic error occurred."}
    assert error["innererror"]["innererror"] == {
        "code": "SEM0100", "message": "'take' operator: Failed to resolve table or column expression named "
                                      "'NoSuchTable_CL'"}


def test_each_operation_the_identity_may_not_perform_is_named(azure):
    create(azure, PRODUCTION)
    azure.arm.deny(READ)
    azure.arm.fail("GET", rf"/onlineEndpoints/{STAGING}$", 403, code="AuthorizationFailed")
    azure.la.fail_next(403, times=2)
    found = results(azure.app)
    assert not found[f"endpoint:staging/{STAGING}"][0]
    assert found[f"endpoint:staging/{STAGING}"][1].startswith(
        "the identity may not perform Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read: ")
    assert not found[f"logs:{PRODUCTION}"][0]
    assert "the identity may not perform Microsoft.Insights/diagnosticSettings/read" in found[f"logs:{PRODUCTION}"][1]
    for table in (TRAFFIC_TABLE, CONSOLE_TABLE):
        ok, detail = found[f"table:{table}"]
        assert not ok and "may not query" in detail and "Microsoft.OperationalInsights/workspaces/query/read" in detail
    assert found["store"][0] and found[f"endpoint:production/{PRODUCTION}"][0]


def test_deep_health_answers_503_naming_the_failing_checks_and_plain_health_touches_nothing(azure, monkeypatch):
    monkeypatch.setattr(bootstrap, "_app", azure.app)
    create(azure, PRODUCTION)
    azure.arm.reset_calls()
    azure.la.clear_requests()

    plain = HEALTH(func.HttpRequest("GET", "/api/health", body=b""))
    assert plain.status_code == 200 and "checks" not in json.loads(plain.get_body())
    assert azure.arm.calls == [] and azure.la.requests == []

    deep = HEALTH(func.HttpRequest("GET", "/api/health", body=b"", params={"deep": "1"}))
    body = json.loads(deep.get_body())
    assert deep.status_code == 503 and body["status"] == "failing" and body["failing"] == [f"logs:{PRODUCTION}"]
    assert {c["name"] for c in body["checks"]} >= {"store", f"logs:{PRODUCTION}", f"table:{TRAFFIC_TABLE}"}

    azure.app.ports.production.ensure_logging(PRODUCTION)
    deep = HEALTH(func.HttpRequest("GET", "/api/health", body=b"", params={"deep": "1"}))
    assert deep.status_code == 200 and json.loads(deep.get_body())["failing"] == []


def test_the_azure_app_logs_its_checks_once_on_start_up_without_waiting_for_them(azure, monkeypatch, caplog):
    create(azure, PRODUCTION)
    monkeypatch.setattr(bootstrap, "_app", None)
    monkeypatch.setattr(bootstrap, "build_app", lambda settings: azure.app)
    caplog.set_level(logging.INFO, logger=bootstrap.logger.name)
    assert bootstrap.app() is azure.app
    [thread] = [t for t in threading.enumerate() if t.name == "modelops-start-up-checks"] or [None]
    if thread is not None:
        thread.join(timeout=120)
    logged = [(r.levelno, json.loads(r.getMessage())) for r in caplog.records
              if r.name == bootstrap.logger.name and '"health_check"' in r.getMessage()]
    assert {event["check"]: event["ok"] for _, event in logged}[f"logs:{PRODUCTION}"] is False
    assert [event["check"] for level, event in logged if level == logging.WARNING] == [f"logs:{PRODUCTION}"]
