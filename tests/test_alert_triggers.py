"""The alert webhook and the model-monitor Event Grid trigger, called as the Functions host calls them."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import azure.functions as func
import pytest

from functions import bootstrap
from functions.domain.config import load_managed_models
from functions.services.activities import RolloutPorts
from functions.settings import Settings
from tests.fakes import FakeEndpoints, FakeJobs, FakeModelFiles, FakeParts, FakeRegistry, FakeTrafficLog, MemoryStore

PAYLOADS = Path(__file__).parent / "payloads"


@pytest.fixture()
def runtime(monkeypatch):
    """The App the triggers get from bootstrap.app(), on in-memory fakes."""
    ports = RolloutPorts(FakeEndpoints({}), FakeEndpoints({}), FakeRegistry(), FakeTrafficLog(), MemoryStore(),
                         FakeModelFiles())
    application = bootstrap.App(Settings.from_env({}), load_managed_models(None), FakeParts(ports, FakeJobs()))
    monkeypatch.setattr(bootstrap, "_app", application)
    return application


def post(body: bytes, params: dict | None = None) -> func.HttpResponse:
    from functions.triggers.http_alerts import alert_webhook

    fn = alert_webhook.build().get_user_function()
    return fn(func.HttpRequest("POST", "/api/alerts", body=body, params=params or {}))


def test_fired_alert_answers_202_with_the_job(runtime):
    response = post((PAYLOADS / "azmon-common-log-alerts-v2.testaction.json").read_bytes())
    body = json.loads(response.get_body())
    assert response.status_code == 202 and response.mimetype == "application/json"
    assert body["action"] == "retrain" and body["job"] in runtime.jobs.submissions


def test_resolved_alert_answers_200(runtime):
    response = post((PAYLOADS / "azmon-common-metric-static.full.json").read_bytes())
    assert response.status_code == 200 and json.loads(response.get_body())["action"] == "ignore"
    assert runtime.jobs.submissions == []


def test_dry_run_query_parameter(runtime):
    response = post((PAYLOADS / "azmon-common-log-alerts-v2.testaction.json").read_bytes(), {"dryRun": "true"})
    assert response.status_code == 202 and runtime.jobs.submissions == []


@pytest.mark.parametrize("body,status", [(b"nope", 400), (b'{"schemaId": "x"}', 400), (b"{" + b" " * 300_000 + b"}",
                                                                                         413)])
def test_bad_input_gets_4xx_json(runtime, body, status):
    response = post(body)
    assert response.status_code == status and "error" in json.loads(response.get_body())


def test_secure_webhook_requires_a_token_when_an_audience_is_configured(runtime, monkeypatch):
    from dataclasses import replace

    runtime.settings = replace(runtime.settings, webhook_audience="api://modelops", webhook_tenant_id="t-1")
    response = post((PAYLOADS / "azmon-common-log-alerts-v2.testaction.json").read_bytes())
    assert response.status_code == 401 and "error" in json.loads(response.get_body())
    assert runtime.jobs.submissions == []


def test_a_misconfigured_secure_webhook_answers_503_with_the_reason_so_the_alert_is_retried(runtime):
    from dataclasses import replace

    runtime.settings = replace(runtime.settings, webhook_audience="api://modelops")  # no tenant id
    response = post((PAYLOADS / "azmon-common-log-alerts-v2.testaction.json").read_bytes())
    assert response.status_code == 503
    assert "MODELOPS_WEBHOOK_TENANT_ID is required" in json.loads(response.get_body())["error"]
    assert runtime.jobs.submissions == []


def grid_event(tags: dict, run_id: str = "run-1") -> func.EventGridEvent:
    raw = json.loads((PAYLOADS / "eventgrid-aml-runstatuschanged.egschema.json").read_text())[0]
    data = dict(raw["data"], runId=run_id, runTags=tags)
    return func.EventGridEvent(id=raw["id"], topic=raw["topic"], subject=raw["subject"], event_type=raw["eventType"],
                               event_time=datetime(2026, 11, 1, tzinfo=timezone.utc), data=data,
                               data_version=raw["dataVersion"])


def call_monitor(event):
    from functions.triggers.model_monitor_events import run_status_changed

    return run_status_changed.build().get_user_function()(event)


def test_documented_run_status_changed_is_not_a_signal(runtime):
    assert call_monitor(grid_event({})) is None
    assert runtime.jobs.submissions == []


def test_a_breached_monitor_threshold_launches_retraining_once(runtime):
    tags = {"azureml.modelmonitor.threshold_breached": "true", "model_name": "credit-card-default"}
    call_monitor(grid_event(tags, "monitor-run-7"))
    call_monitor(grid_event(tags, "monitor-run-7"))  # redelivered
    assert len(runtime.jobs.submissions) == 1
    job = runtime.jobs.jobs[runtime.jobs.submissions[0]]
    assert job["tags"]["modelops.trigger"] == "model-monitor"


def test_transient_failure_on_a_monitor_signal_raises_for_redelivery(runtime):
    from functions.ports import PlatformError

    runtime.jobs.fail_next = PlatformError("throttled", transient=True)
    with pytest.raises(RuntimeError):
        call_monitor(grid_event({"threshold_breached": "true", "model_name": "credit-card-default"}, "run-9"))


def test_a_monitor_signal_for_an_unmanaged_model_is_dropped(runtime):
    # the documented payload's runProperties name model AutoMLad912b2d65, which is not managed
    assert call_monitor(grid_event({"threshold_breached": "true"}, "run-10")) is None
    assert runtime.jobs.submissions == []


def test_the_drift_timer_logs_every_model_then_reports_the_failed_one(runtime, monkeypatch, caplog):
    import logging

    from azure.functions.timer import TimerRequest

    from functions.triggers.timers_monitoring import drift_check

    ok = {"check": {"model": "a", "status": "no_drift", "version": "1", "dataset_drift": False,
                    "result_key": "drift/a/1/t/result.json", "report_key": ""}}
    broken = {"check": {"model": "b", "status": "error", "reason": "FileNotFoundError: reference gone", "version": None,
                        "dataset_drift": None, "result_key": None, "report_key": None},
              "error": "FileNotFoundError: reference gone"}  # check_models' item for a model whose check failed
    monkeypatch.setattr(runtime, "check_drift", lambda: [broken, ok])
    caplog.set_level(logging.INFO, logger="modelops.timers")
    with pytest.raises(RuntimeError, match="drift check failed for b"):
        drift_check.build().get_user_function()(TimerRequest(past_due=False))
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "modelops.timers"]
    assert [(e["model"], e["status"]) for e in logged] == [("b", "error"), ("a", "no_drift")]
    assert "FileNotFoundError: reference gone" in logged[0]["error"]
