"""Alert webhook decisions: documented payloads and variants, dedupe, cooldown, concurrency, bad input."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.domain.alerts import AlertError, job_name, parse_alert
from functions.services.retraining import AlertPolicy, handle_alert_body
from functions.ports import PlatformError
from tests.fakes import FakeJobs, MemoryStore

PAYLOADS = Path(__file__).parent / "payloads"
LOG_V2 = json.loads((PAYLOADS / "azmon-common-log-alerts-v2.testaction.json").read_text())
METRIC = json.loads((PAYLOADS / "azmon-common-metric-static.full.json").read_text())
MODEL = "credit-card-default"
POLICY = AlertPolicy(managed=[MODEL], rule_map={})


def fired(alert_id: str = "alert-1", **essentials) -> dict:
    body = copy.deepcopy(LOG_V2)
    body["data"]["essentials"].update(alertId=alert_id, monitorCondition="Fired", **essentials)
    return body


def send(body, store=None, jobs=None, policy=POLICY, **kw):
    store = store if store is not None else MemoryStore()
    jobs = jobs if jobs is not None else FakeJobs()
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body).encode()
    return handle_alert_body(raw, store, jobs, policy, **kw), store, jobs


def test_documented_log_alert_fired_launches_exactly_one_job():
    answer, store, jobs = send(LOG_V2)
    assert answer.status == 202
    assert answer.body["action"] == "retrain" and answer.body["model"] == MODEL
    assert answer.body["job"] == job_name(MODEL, LOG_V2["data"]["essentials"]["alertId"])
    assert answer.body["alert_id"] == LOG_V2["data"]["essentials"]["alertId"]
    assert jobs.submissions == [answer.body["job"]]
    tags = jobs.jobs[answer.body["job"]]["tags"]
    assert tags["modelops.alert_rule"] == "test-logAlertRule-v2" and tags["modelops.model"] == MODEL


def test_documented_metric_alert_resolved_is_recorded_and_launches_nothing():
    answer, store, jobs = send(METRIC)
    assert answer.status == 200 and answer.body["action"] == "ignore" and "resolved" in answer.body["reason"]
    assert jobs.submissions == []
    assert store.list("alerts/")


def test_a_duplicate_alert_gets_the_same_answer_and_no_second_job():
    first, store, jobs = send(fired("dup"))
    again, _, _ = send(fired("dup"), store, jobs)
    assert again.status == first.status == 202 and again.body == first.body
    assert len(jobs.submissions) == 1


# Concurrency (20 duplicates of one alert, 20 different alerts for one model → one job) is tested
# in tests/test_races.py as a staged race on every Store implementation:
# test_concurrent_duplicates_of_one_alert_launch_one_job and
# test_concurrent_different_alerts_for_one_model_launch_one_job. Threads started here without a
# barrier ran one after another on the MemoryStore and stayed green with the launch record's
# conditional write removed.


def test_a_second_alert_inside_the_cooldown_is_skipped_and_after_it_launches():
    clock = [datetime(2026, 11, 1, tzinfo=timezone.utc)]
    store, jobs = MemoryStore(), FakeJobs()
    first, _, _ = send(fired("one"), store, jobs, now=lambda: clock[0])
    jobs.finish(first.body["job"])
    clock[0] += timedelta(hours=3)
    second, _, _ = send(fired("two"), store, jobs, now=lambda: clock[0])
    assert second.status == 200 and second.body["action"] == "skip" and "cooldown" in second.body["reason"]
    assert "21.0 h left" in second.body["reason"]
    clock[0] += timedelta(hours=22)
    third, _, _ = send(fired("three"), store, jobs, now=lambda: clock[0])
    assert third.status == 202 and len(jobs.submissions) == 2


def test_a_running_retraining_skips_new_alerts():
    store, jobs = MemoryStore(), FakeJobs()
    first, _, _ = send(fired("one"), store, jobs, policy=AlertPolicy([MODEL], {}, cooldown=timedelta(0)))
    second, _, _ = send(fired("two"), store, jobs, policy=AlertPolicy([MODEL], {}, cooldown=timedelta(0)))
    assert second.body["action"] == "skip" and "already running" in second.body["reason"]
    assert second.body["job"] == first.body["job"]


def test_model_comes_from_custom_properties_then_the_rule_map_then_the_single_managed_model():
    policy = AlertPolicy(managed=["a", "b"], rule_map={"drift-rule": "b"})
    body = fired("x")
    body["data"]["alertContext"]["properties"] = {"model_name": "a"}
    assert send(body, policy=policy)[0].body["model"] == "a"
    body = fired("y", alertRule="drift-rule")
    assert send(body, policy=policy)[0].body["model"] == "b"
    body = fired("z", alertRule="unknown-rule")
    answer = send(body, policy=policy)[0]
    assert answer.status == 422 and "cannot tell which model" in answer.body["error"]
    body = fired("w")
    body["data"]["customProperties"] = {"model_name": "not-managed"}
    answer = send(body, policy=policy)[0]
    assert answer.status == 422 and "not managed" in answer.body["error"]


def test_transient_submission_failure_answers_503_and_the_retry_launches():
    store, jobs = MemoryStore(), FakeJobs()
    jobs.fail_next = PlatformError("AzureML is throttling", transient=True)
    answer, _, _ = send(fired("retry-me"), store, jobs)
    assert answer.status == 503 and "temporarily" in answer.body["error"]
    assert not store.list("alerts/")  # no answer recorded: the retry decides afresh
    retry, _, _ = send(fired("retry-me"), store, jobs)
    assert retry.status == 202 and len(jobs.submissions) == 1


def test_a_registered_component_on_the_local_platform_is_refused_with_the_reason_and_nothing_runs(tmp_path, caplog):
    """Config load refuses it on the local platform; a recipe that reaches the local job runner anyway
    (built in code) is answered 502 with the reason — logged, not retried, never the default trainer."""
    import logging

    from functions.adapters.local.jobs import LocalJobs
    from functions.ports import RetrainingRecipe

    jobs = LocalJobs(tmp_path / "home", lambda *a: pytest.fail("nothing may be registered"))
    policy = AlertPolicy(managed=[MODEL], rule_map={},
                         recipes={MODEL: RetrainingRecipe(pipeline="azureml:credit-train-pipeline:3")})
    store = MemoryStore()
    with caplog.at_level(logging.ERROR, logger="modelops.alerts"):
        answer, _, _ = send(fired("local-1"), store, jobs, policy=policy)
    assert answer.status == 502
    assert "azureml:credit-train-pipeline:3 is a registered AzureML component, which the local platform cannot " \
           "run: set the model's retraining_command" in answer.body["error"]
    assert list((tmp_path / "home" / "jobs").iterdir()) == []  # no job, no subprocess
    (record,) = [r for r in caplog.records if "retraining_refused" in r.getMessage()]
    assert "credit-train-pipeline" in record.getMessage() and MODEL in record.getMessage()
    # the launch was released: a later alert decides again (no 503 "being launched" loop, no cooldown)
    again, _, _ = send(fired("local-2"), store, jobs, policy=policy)
    assert again.status == 502 and jobs.list_running(MODEL) == []


def test_storage_outage_answers_503():
    store = MemoryStore()
    store.fail_next = PlatformError("storage down", transient=True)
    answer, _, _ = send(fired("s"), store)
    assert answer.status == 503


def test_dry_run_decides_without_launching_or_recording():
    answer, store, jobs = send(fired("dry"), dry_run=True)
    assert answer.status == 202 and answer.body["action"] == "retrain"
    assert jobs.submissions == [] and store.objects == {}


@pytest.mark.parametrize("body,status,message", [
    (b"", 400, "empty body"),
    (b"not json", 400, "not JSON"),
    (b"[1,2]", 400, "JSON object"),
    (json.dumps({"schemaId": "Microsoft.Insights/activityLogs", "data": {}}).encode(), 400, "schemaId"),
    (json.dumps({"schemaId": "azureMonitorCommonAlertSchema"}).encode(), 400, "data must be an object"),
    (json.dumps({"schemaId": "azureMonitorCommonAlertSchema", "data": {}}).encode(), 400, "essentials"),
    (json.dumps({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {"alertId": "a"}}}).encode(),
     400, "monitorCondition"),
    (b"{" + b" " * 300_000 + b"}", 413, "exceeds"),
])
def test_bad_bodies_get_a_4xx_naming_the_problem(body, status, message):
    answer, _, jobs = send(body)
    assert answer.status == status and message in answer.body["error"]
    assert jobs.submissions == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=6),
    max_leaves=25)


@given(st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"schemaId": st.just("azureMonitorCommonAlertSchema"),
                           "data": st.fixed_dictionaries({"essentials": st.dictionaries(
                               st.sampled_from(["alertId", "monitorCondition", "alertRule", "alertTargetIDs",
                                                "firedDateTime", "severity"]), json_values)})}).map(
        lambda v: json.dumps(v).encode()),
))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_bodies_never_get_a_5xx(body):
    answer, _, _ = send(body)
    assert answer.status in (200, 202, 400, 413, 422), answer
    assert isinstance(answer.body, dict)
    if answer.status >= 400:
        assert answer.body["error"]


def test_parse_reads_custom_properties_from_both_places():
    body = fired("p")
    body["data"]["customProperties"] = {"Model_Name": "x"}
    alert = parse_alert(json.dumps(body))
    assert alert.custom_properties["Model_Name"] == "x" and alert.custom_properties["customKey1"] == "value1"
    with pytest.raises(AlertError):
        parse_alert(json.dumps({**body, "schemaId": 3}))


def test_launch_records_from_before_schema_versions_count_and_newer_ones_are_refused():
    """A launch record an earlier modelops wrote (no schema_version) still holds the cooldown; the
    records written now carry version 2; one from a newer modelops is refused, never misread."""
    clock = datetime(2026, 11, 1, 3, tzinfo=timezone.utc)
    store = MemoryStore()
    old = {"at": (clock - timedelta(hours=1)).isoformat(), "job": "retrain-old", "alert_id": "old",
           "rule": "r", "reason": "alert fired", "submitted": True, "previous": None}
    store.put(f"retraining/{MODEL}/launch.json", json.dumps(old).encode())
    skipped, _, jobs = send(fired("new"), store, now=lambda: clock)
    assert skipped.body["action"] == "skip" and "cooldown" in skipped.body["reason"] and jobs.submissions == []
    [record_key] = store.list("alerts/")
    assert json.loads(store.get(record_key)[0])["schema_version"] == 2

    store.put(f"retraining/{MODEL}/launch.json", json.dumps({**old, "schema_version": 3}).encode())
    refused, _, jobs = send(fired("newer"), store, now=lambda: clock + timedelta(days=2))
    assert refused.status == 502 and "newer modelops (record schema 3" in refused.body["error"], refused.body
    assert jobs.submissions == []
