"""Defensive parsing of ModelRegistered deliveries and the pure decisions on them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.domain.config import ConfigError, deployment_name, load_managed_models
from functions.domain.decisions import Facts, decide
from functions.domain.events import (
    InvalidEvent,
    is_newer,
    iter_model_events,
    parse_model_registered,
    rollout_id,
    split_payload,
)

PAYLOADS = Path(__file__).parent / "payloads"
DOC_EG = json.loads((PAYLOADS / "eventgrid-aml-modelregistered.egschema.json").read_text())
DOC_CE = json.loads((PAYLOADS / "eventgrid-aml-modelregistered.cloudevents.json").read_text())
MANAGED = load_managed_models('{"sklearn_regression_model": {}, "credit-card-default": {}}')


def test_documented_event_grid_payload():
    event = parse_model_registered(DOC_EG[0])
    assert (event.model_name, event.model_version) == ("sklearn_regression_model", "20")
    assert event.event_id == "831e1650-001e-001b-66ab-eeb76e069631"
    assert event.tags == {"area": "diabetes", "type": "regression"}
    assert event.schema == "EventGridSchema"
    assert event.workspace == "{workspace-name}"


def test_documented_cloud_events_payload():
    event = parse_model_registered(DOC_CE[0])
    assert (event.model_name, event.model_version, event.schema) == ("sklearn_regression_model", "20", "CloudEvents")
    assert event.topic == DOC_CE[0]["source"]
    # the same registration in either schema maps to the same rollout
    assert event.instance_id == parse_model_registered(DOC_EG[0]).instance_id


def test_live_workspace_camel_case_with_string_version():
    raw = copy.deepcopy(DOC_EG[0])
    raw["data"] = {"modelName": "sklearn_regression_model", "modelVersion": "21", "modelTags": {}, "extra": 1}
    raw["somethingNew"] = True
    event = parse_model_registered(raw)
    assert event.model_version == "21"


def test_falls_back_to_the_subject_split_on_the_last_colon():
    raw = copy.deepcopy(DOC_EG[0])
    raw["data"] = {}
    raw["subject"] = "models/my-model:7"
    event = parse_model_registered(raw)
    assert (event.model_name, event.model_version) == ("my-model", "7")


@pytest.mark.parametrize("mutate,reason", [
    (lambda r: r.update(eventType="Microsoft.MachineLearningServices.RunCompleted"), "is not"),
    (lambda r: r.pop("eventType"), "(missing)"),
    (lambda r: r.pop("topic"), "no topic"),
    (lambda r: r.update(data="oops", subject=""), "data must be an object"),
    (lambda r: r.update(data={}, subject="models/"), "no model name"),
    (lambda r: r.update(data={"ModelName": "m"}, subject=""), "no model version"),
    (lambda r: r.update(data={"ModelName": "../../etc", "ModelVersion": 1}, subject=""), "not a valid AzureML"),
    (lambda r: r.update(data={"ModelName": "m", "ModelVersion": "1; drop"}, subject=""), "not a valid AzureML"),
    (lambda r: r.update(data={"ModelName": "m", "ModelVersion": True}, subject=""), "no model version"),
    (lambda r: r.update(data={"ModelName": "m", "ModelVersion": -3}, subject=""), "no model version"),
    (lambda r: r.update(data={"ModelName": "other", "ModelVersion": 1}), "subject names model"),
])
def test_malformed_events_are_invalid_with_a_reason(mutate, reason):
    raw = copy.deepcopy(DOC_EG[0])
    mutate(raw)
    with pytest.raises(InvalidEvent) as info:
        parse_model_registered(raw)
    assert reason in info.value.reason


def test_bodies_that_are_not_events():
    with pytest.raises(InvalidEvent, match="not JSON"):
        split_payload(b"\xff\xfe not json")
    with pytest.raises(InvalidEvent, match="array of events"):
        split_payload("42")
    results = list(iter_model_events([1, "x", None]))
    assert all(isinstance(e, InvalidEvent) for _, e in results)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10),
                                                                                      children, max_size=5),
                    max_leaves=20))
@settings(max_examples=300, deadline=None)
def test_arbitrary_json_never_raises_anything_but_invalid_event(raw):
    try:
        for _, event in iter_model_events(json.dumps(raw)):
            assert not isinstance(event, Exception) or isinstance(event, InvalidEvent)
    except InvalidEvent:
        pass


def test_versions_compare_numerically():
    assert is_newer("10", "9") and not is_newer("9", "10") and not is_newer("3", "3")
    assert is_newer("1", None)


def test_rollout_id_is_deterministic_and_distinguishes_workspaces():
    a = rollout_id("/ws/a", "m", "1")
    assert a == rollout_id("/WS/A", "m", "1")
    assert a != rollout_id("/ws/b", "m", "1") and a != rollout_id("/ws/a", "m", "2")


# --- decisions -----------------------------------------------------------------------------

EVENT = parse_model_registered({**DOC_EG[0], "subject": "models/credit-card-default:5",
                                "data": {"ModelName": "credit-card-default", "ModelVersion": 5}})


def test_decide_rollout_when_newer_than_production():
    d = decide(EVENT, Facts(MANAGED, production_version="4"))
    assert d.action == "rollout" and d.run_key == EVENT.instance_id and "production: 4" in d.reason


def test_decide_ignore_unmanaged():
    d = decide(EVENT, Facts(load_managed_models('{"other": {}}')))
    assert d.action == "ignore" and "not managed" in d.reason


def test_decide_skip_when_not_newer_than_production():
    d = decide(EVENT, Facts(MANAGED, production_version="12"))
    assert d.action == "skip" and "not newer than production version 12" in d.reason


def test_decide_duplicate_when_the_rollout_exists():
    d = decide(EVENT, Facts(MANAGED, existing_rollout_state="running"))
    assert d.action == "duplicate"


def test_decide_skip_when_a_newer_version_is_rolling_out():
    d = decide(EVENT, Facts(MANAGED, running_versions=("6", "3")))
    assert d.action == "skip" and "(6)" in d.reason


def test_decide_ignore_other_workspaces():
    d = decide(EVENT, Facts(MANAGED, allowed_topics=("/subscriptions/x/workspaces/prod",)))
    assert d.action == "ignore" and "not the configured staging workspace" in d.reason


def test_decide_invalid():
    d = decide(InvalidEvent("bad", "id-1"), Facts(MANAGED))
    assert d.action == "invalid" and d.event_id == "id-1"


# --- configuration -------------------------------------------------------------------------

def test_default_configuration_manages_the_scenario_model():
    managed = load_managed_models(None)
    cfg = managed.get("credit-card-default")
    assert managed.names == ["credit-card-default"]
    assert cfg.canary.steps == (10, 50, 100) and cfg.approval_required is False
    assert cfg.staging_endpoint == "credit-card-default-staging"


def test_configuration_overrides_and_errors():
    managed = load_managed_models('{"m": {"approval_required": true, "canary": {"steps": [25, 100], '
                                  '"bake_seconds": 60}, "gates": {"min_roc_auc": 0.8}}}')
    cfg = managed.get("m")
    assert cfg.approval_required and cfg.canary.steps == (25, 100) and cfg.gates.min_roc_auc == 0.8
    for raw, message in [("{", "not valid JSON"), ('{"m": {"colour": 1}}', "unknown field(s) colour"),
                         ('{"m": {"canary": {"steps": [50, 10]}}}', "rise strictly to 100"),
                         ('{"m": {"gates": {"min_roc_auc": "high"}}}', "must be float"),
                         ('{"m": {"production_endpoint": "9bad"}}', "endpoint name '9bad' is invalid"),
                         ('{"../../escaped": {}}', "model name '../../escaped' is invalid")]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_managed_models(raw)


@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_deployment_names_are_always_valid_azureml_names(model, version):
    import re

    name = deployment_name(model, version)
    assert re.fullmatch(r"[a-z][a-z0-9-]{1,30}[a-z0-9]", name), name


def test_deployment_names_are_readable_and_distinct():
    assert deployment_name("credit-card-default", "12") == "credit-card-default-v12"
    long_a = deployment_name("a-very-long-model-name-for-testing", "1")
    long_b = deployment_name("a-very-long-model-name-for-testing", "2")
    assert long_a != long_b and len(long_a) <= 32
