"""MODELOPS_MODELS validation (pydantic, imported on the first parse) and the settings readers:
every wrong field is named, with the setting; nothing of it is imported at cold start."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError

import pytest

from functions.domain.config import CanaryConfig, ConfigError, ModelConfig, build_model_config, load_managed_models
from functions.settings import REPO_ROOT, AzureSettings, SettingsError

WHERE = "MODELOPS_MODELS['m']"


@pytest.mark.parametrize("fields, message", [
    ('{"instance_count": "2"}', f"{WHERE}.instance_count must be int, got '2'"),
    ('{"approval_required": "yes"}', f"{WHERE}.approval_required must be bool, got 'yes'"),
    ('{"gates": {"latency_requests": true}}', f"{WHERE}.gates.latency_requests must be int, got True"),
    ('{"gates": {"min_roc_auc": false}}', f"{WHERE}.gates.min_roc_auc must be float, got False"),
    ('{"gates": {"evaluation_rows": 5.0}}', f"{WHERE}.gates.evaluation_rows must be int, got 5.0"),
    ('{"canary": {"steps": 5}}', f"{WHERE}.canary.steps must be a list, got 5"),
    ('{"canary": {"steps": [10, "x"]}}', f"{WHERE}.canary.steps[1] must be int, got 'x'"),
    ('{"gates": 3}', f"{WHERE}.gates must be an object, got 3"),
    ('{"staging_endpoint": null}', f"{WHERE}.staging_endpoint must be str, got None"),
    ('5', f"{WHERE} must be an object, got 5"),
    ('[1]', f"{WHERE} must be an object, got [1]"),
    ('{"name": "other"}', f"{WHERE}: unknown field(s) name"),
    ('{"canary": {"bake": 1}}', f"{WHERE}.canary: unknown field(s) bake"),
])
def test_wrong_types_and_shapes_are_refused_naming_the_field(fields, message):
    with pytest.raises(ConfigError) as caught:
        load_managed_models(f'{{"m": {fields}}}')
    assert str(caught.value) == message


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_managed_models('{"m": {"colour": 1, "gates": {"min_roc_auc": "high"}, "instance_count": true}}')
    message = str(caught.value)
    for part in (f"{WHERE}: unknown field(s) colour", f"{WHERE}.gates.min_roc_auc must be float, got 'high'",
                 f"{WHERE}.instance_count must be int, got True"):
        assert part in message


def test_ints_are_floats_and_the_rules_between_fields_still_apply():
    cfg = load_managed_models('{"m": {"poll_seconds": 5, "canary": {"bake_seconds": 60}}}').get("m")
    assert cfg.poll_seconds == 5.0 and type(cfg.poll_seconds) is float and cfg.canary.bake_seconds == 60.0
    with pytest.raises(ConfigError, match=r"MODELOPS_MODELS\['m'\].instance_count must be at least 1, got 0"):
        load_managed_models('{"m": {"instance_count": 0}}')
    with pytest.raises(ConfigError, match=r"canary.max_error_rate must be within \[0, 1\]"):
        load_managed_models(None, {"canary": {"max_error_rate": 2}})
    # built in code, the rules hold too (the types are the caller's business there)
    with pytest.raises(ConfigError, match="must rise strictly to 100"):
        ModelConfig(name="m", canary=CanaryConfig(steps=(50,)))


def test_a_config_survives_its_durable_payload_round_trip_and_stays_hashable():
    cfg = load_managed_models(None, {"canary": {"health_delay_seconds": 300.0}}).get("credit-card-default")
    payload = cfg.to_dict()
    again = build_model_config(payload.pop("name"), payload)
    assert again == cfg and hash(again) == hash(cfg) and again.canary.steps == (10, 50, 100)
    with pytest.raises(FrozenInstanceError):
        again.instance_count = 2  # type: ignore[misc]


def test_serving_is_modelops_entry_point_unless_no_code_mlflow_is_asked_for():
    assert load_managed_models('{"m": {}}').get("m").serving == "modelops"
    cfg = load_managed_models('{"m": {"serving": "mlflow_no_code"}}').get("m")
    assert cfg.serving == "mlflow_no_code" and cfg.to_dict()["serving"] == "mlflow_no_code"
    payload = cfg.to_dict()
    assert build_model_config(payload.pop("name"), payload) == cfg  # through the Durable payload
    with pytest.raises(ConfigError) as caught:
        load_managed_models('{"m": {"serving": "mlflow"}}')
    assert str(caught.value) == f"{WHERE}.serving must be one of modelops, mlflow_no_code, got 'mlflow'"
    with pytest.raises(ConfigError) as caught:
        load_managed_models('{"m": {"serving": true}}')
    assert str(caught.value) == f"{WHERE}.serving must be str, got True"


def test_a_no_code_model_configured_with_a_probability_metric_is_refused():
    with pytest.raises(ConfigError) as caught:
        load_managed_models('{"m": {"serving": "mlflow_no_code", "contract": {"metric": "roc_auc"}}}')
    assert str(caught.value) == (f"{WHERE}.contract.metric 'roc_auc' needs probabilities, but serving mlflow_no_code "
                                 "answers labels (what the MLflow model's predict returns): use accuracy, f1 (binary) "
                                 "or f1_macro, or serving: modelops")
    assert load_managed_models('{"m": {"serving": "mlflow_no_code", "contract": {"metric": "f1"}}}').get("m")
    assert load_managed_models('{"m": {"contract": {"metric": "roc_auc"}}}').get("m")  # modelops answers them
    with pytest.raises(ConfigError, match="serving must be one of"):
        ModelConfig(name="m", serving="no-code")


@pytest.mark.parametrize("reference", [
    "azureml:credit-train-pipeline:3",
    "azureml:credit_train@latest",
    "azureml://registries/mlr-shared/components/credit_train_pipeline/versions/3",
    "azureml://registries/mlr-shared/components/credit_train_pipeline/labels/latest",
])
def test_a_registered_component_is_a_retraining_pipeline(reference):
    cfg = load_managed_models(json.dumps({"m": {"retraining_pipeline": reference}})).get("m")
    assert cfg.retraining_pipeline == reference
    payload = cfg.to_dict()
    assert build_model_config(payload.pop("name"), payload) == cfg  # through the Durable payload
    # and YAML paths go on working beside them
    assert load_managed_models('{"m": {"retraining_pipeline": "ml/pipelines/iris.yaml"}}').get("m").retraining_pipeline


@pytest.mark.parametrize("reference, problem", [
    ("azureml:credit-train-pipeline", ("names no version: pin one (azureml:credit-train-pipeline:<version>) or "
                                       "follow the newest (azureml:credit-train-pipeline@latest)")),
    ("azureml:credit-train@prod", "the only component label is 'latest'"),
    ("azureml://registries/mlr-shared/components/train/labels/champion", "the only component label is 'latest'"),
    ("azureml://registries/mlr-shared/components/train", ("is not a registered component reference: use "
                                                          "azureml:<name>:<version>, azureml:<name>@latest")),
    ("azureml:/subscriptions/s/resourceGroups/g/providers/x/components/c/versions/1",
     "is not a registered component reference"),
    ("azureml:../train:1", "is not a registered component reference"),
    ("azureml:train:1:2", "is not a registered component reference"),
    ("azureml:train:v1.", "version 'v1.' is invalid"),
])
def test_a_malformed_component_reference_is_refused_naming_the_field_and_the_forms(reference, problem, tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_managed_models(json.dumps({"m": {"retraining_pipeline": reference}}))
    assert str(caught.value).startswith(f"{WHERE}.retraining_pipeline: ") and problem in str(caught.value)
    # from a model's file: the file, then the field
    with pytest.raises(ConfigError) as caught:
        build_model_config("m", {"retraining_pipeline": reference}, where="models/m.yaml")
    assert str(caught.value).startswith("models/m.yaml: retraining_pipeline: ") and problem in str(caught.value)


def test_a_retraining_pipeline_that_is_neither_yaml_nor_a_component_says_both_forms():
    with pytest.raises(ConfigError) as caught:
        load_managed_models('{"m": {"retraining_pipeline": "pipelines/train.json"}}')
    assert str(caught.value) == (
        f"{WHERE}.retraining_pipeline must be a pipeline job YAML file (…/train.yml) or a registered component "
        "(azureml:<name>:<version>, azureml:<name>@latest, azureml://registries/<registry>/components/<name>/"
        "versions/<version> or azureml://registries/<registry>/components/<name>/labels/latest), got "
        "'pipelines/train.json'")


def test_the_local_platform_refuses_a_component_it_cannot_run_unless_a_local_command_is_set():
    component = {"retraining_pipeline": "azureml:credit-train-pipeline:3"}
    with pytest.raises(ConfigError) as caught:
        load_managed_models(json.dumps({"m": component}), platform="local")
    assert str(caught.value).startswith(f"{WHERE}.retraining_pipeline 'azureml:credit-train-pipeline:3' is a "
                                        "registered AzureML component, which the local platform")
    assert "set retraining_command" in str(caught.value)
    with pytest.raises(ConfigError, match=r"^models/m.yaml: retraining_pipeline 'azureml:credit-train-pipeline:3'"):
        load_managed_models(None, files={"m": ("models/m.yaml", component)}, platform="local")
    # the same configuration is fine for Azure, and locally once it says how to retrain here
    assert load_managed_models(json.dumps({"m": component}), platform="azure").get("m")
    command = {**component, "retraining_command": ["{python}", "-m", "my.train", "--out", "{output}"]}
    assert load_managed_models(json.dumps({"m": command}), platform="local").get("m").retraining_command
    # a YAML pipeline locally: the local command or the default trainer, as before
    assert load_managed_models('{"m": {"retraining_pipeline": "ml/pipelines/train.yml"}}', platform="local")


LA_RESOURCE_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/log"
AZURE_ENV = {"AZURE_SUBSCRIPTION_ID": "s", "MODELOPS_STAGING_RESOURCE_GROUP": "rg", "MODELOPS_STAGING_WORKSPACE": "w",
             "MODELOPS_PRODUCTION_WORKSPACE": "p", "MODELOPS_REGISTRY_NAME": "r",
             "MODELOPS_LOG_ANALYTICS_WORKSPACE_ID": "la", "MODELOPS_STORAGE_ACCOUNT_URL": "https://a",
             "MODELOPS_LOG_ANALYTICS_RESOURCE_ID": LA_RESOURCE_ID}


def test_azure_needs_the_log_analytics_workspace_resource_id_the_endpoints_log_to():
    assert AzureSettings.from_env(AZURE_ENV).log_analytics_resource_id == LA_RESOURCE_ID
    # ARM ids are case-insensitive: the service's own lower-cased form is accepted
    assert AzureSettings.from_env({**AZURE_ENV, "MODELOPS_LOG_ANALYTICS_RESOURCE_ID": LA_RESOURCE_ID.lower()})
    without = {k: v for k, v in AZURE_ENV.items() if k != "MODELOPS_LOG_ANALYTICS_RESOURCE_ID"}
    with pytest.raises(SettingsError, match="needs app setting.*MODELOPS_LOG_ANALYTICS_RESOURCE_ID"):
        AzureSettings.from_env(without)
    for wrong in ("la", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/components/appi"):
        with pytest.raises(SettingsError, match="MODELOPS_LOG_ANALYTICS_RESOURCE_ID must be a Log Analytics"):
            AzureSettings.from_env({**AZURE_ENV, "MODELOPS_LOG_ANALYTICS_RESOURCE_ID": wrong})


def test_the_ingestion_lag_is_read_like_every_other_number():
    env = {"AZURE_SUBSCRIPTION_ID": "s", "MODELOPS_STAGING_RESOURCE_GROUP": "rg", "MODELOPS_STAGING_WORKSPACE": "w",
           "MODELOPS_PRODUCTION_WORKSPACE": "p", "MODELOPS_REGISTRY_NAME": "r",
           "MODELOPS_LOG_ANALYTICS_WORKSPACE_ID": "la", "MODELOPS_STORAGE_ACCOUNT_URL": "https://a",
           "MODELOPS_LOG_ANALYTICS_RESOURCE_ID": LA_RESOURCE_ID}
    assert AzureSettings.from_env(env).ingestion_lag_seconds == 300.0
    assert AzureSettings.from_env({**env, "MODELOPS_INGESTION_LAG_SECONDS": "60"}).ingestion_lag_seconds == 60.0
    for raw, message in (("soon", "MODELOPS_INGESTION_LAG_SECONDS must be a number, got 'soon'"),
                         ("-5", "MODELOPS_INGESTION_LAG_SECONDS must not be negative, got -5.0")):
        with pytest.raises(SettingsError, match=message):
            AzureSettings.from_env({**env, "MODELOPS_INGESTION_LAG_SECONDS": raw})


def test_pydantic_is_not_imported_at_cold_start():
    code = ("import sys, function_app; from functions.settings import Settings; Settings.from_env({}); "
            "print('pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
