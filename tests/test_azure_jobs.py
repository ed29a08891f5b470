"""AzureJobs driven through the REAL azure-ai-ml against tests/fake_arm.py.

The pipeline is ml/pipelines/train.yml itself, submitted with its steps pointing at registered
components (the adapter's default), so the SDK serialises the real pipeline job and sends it to the
fake; nothing is uploaded. A model whose retraining is a registered component (workspace or
registry) gets a one-node pipeline job the SDK builds from the component the fake serves.
Assertions are on the wire (method, path, api-version, headers, body).
"""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
import requests
import requests.adapters
from urllib.parse import urlsplit

from functions.adapters.azure.aml import registry_client, workspace_client
from functions.adapters.azure.aml_jobs import MODEL_TAG, TERMINAL_STATES, AzureJobs, running_states
from functions.ports import Conflict, Jobs, PlatformError, RetrainingRecipe
from tests.fake_arm import RESOURCE_GROUP, SUBSCRIPTION, TENANT, WORKSPACE, FakeAzureML
from tests.fake_credentials import FakeCredential, fake_jwt

MODEL = "credit-card-default"
WS_ARM = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
          f"/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}")
JOB = "retrain-credit-card-default-4f2a9c"
TAGS = {"alert_id": "/subscriptions/x/providers/Microsoft.AlertsManagement/alerts/4f2a9c", "rule": "ccd-drift"}
STEPS = {"prepare": "credit_card_default_prepare", "train": "credit_card_default_train",
         "evaluate": "credit_card_default_evaluate", "register": "credit_card_default_register"}


class EscapedNetworkCall(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def escaped(monkeypatch) -> list[str]:
    """Refuse every real socket: blob uploads or discovery calls outside the fake would land here."""
    seen: list[str] = []

    def guarded(self, request, *args, **kwargs):
        seen.append(f"{request.method} {request.url}")
        raise EscapedNetworkCall(f"test refused a real network call: {request.method} {request.url}")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", guarded)
    yield seen
    assert seen == [], "requests escaped the fake transport"


@pytest.fixture
def fake():
    fake = FakeAzureML()
    fake.add_data("credit-card-default-train", "1")
    fake.add_data("credit-card-default-train", "2")
    yield fake
    assert fake.unhandled == [], "the SDK called routes the fake does not know"


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def jobs(fake, credential) -> AzureJobs:
    ml = workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=credential,
                          transport=fake.transport(), retry_backoff_factor=0.0)
    return AzureJobs(ml)


def submit(jobs: AzureJobs, name: str = JOB, model: str = MODEL, **kw) -> dict:
    return jobs.submit_retraining(name, model, dict(TAGS), **kw)


def component_id(name: str, version: str = "1") -> str:
    return f"{WS_ARM}/components/{name}/versions/{version}"


# ------------------------------------------------------------------------------------ submission


def test_submit_puts_the_real_pipeline_under_the_callers_name(fake, jobs):
    answer = submit(jobs)

    (put,) = fake.writes()
    assert put.method == "PUT" and put.path == f"{WS_ARM}/jobs/{JOB}" and put.api_version == "2024-01-01-preview"
    props = put.body["properties"]
    assert props["jobType"] == "Pipeline"
    assert props["experimentName"] == "modelops-retraining"
    assert props["displayName"] == f"retrain {MODEL}"
    assert props["tags"] == {"project": "modelops", **TAGS, MODEL_TAG: MODEL}  # YAML tags kept
    # The four steps, each a registered component (no anonymous registration, no upload).
    steps = props["jobs"]
    assert set(steps) == set(STEPS)
    assert [steps[s]["type"] for s in ("prepare", "train", "evaluate", "register")] == [
        "command", "sweep", "command", "command"]
    for step in ("prepare", "evaluate", "register"):
        assert steps[step]["componentId"] == component_id(STEPS[step])
    sweep = steps["train"]
    assert sweep["trial"] == {"componentId": component_id(STEPS["train"])}
    assert set(sweep["search_space"]) == {"n_estimators", "max_depth", "min_samples_leaf", "max_features"}
    assert sweep["search_space"]["max_features"] == {"type": "choice", "values": ["sqrt", "0.3"]}
    assert sweep["objective"] == {"goal": "maximize", "primary_metric": "roc_auc"}
    assert sweep["limits"]["max_total_trials"] == 8 and sweep["sampling_algorithm"]["type"] == "random"
    # Wiring between steps is sent as binding strings inside untyped node dicts (snake_case keys).
    assert sweep["inputs"]["train_data"] == {"value": "${{parent.jobs.prepare.outputs.train_data}}",
                                             "job_input_type": "literal"}
    assert steps["register"]["inputs"]["metrics"]["value"] == "${{parent.jobs.evaluate.outputs.metrics}}"
    assert steps["register"]["identity"] == {"identity_type": "UserIdentity"}
    # Pipeline inputs: the model name from the caller; `@latest` resolved to a version by the SDK.
    assert props["inputs"]["model_name"] == {"value": MODEL, "jobInputType": "literal"}
    assert props["inputs"]["training_data"] == {
        "uri": f"{WS_ARM}/data/credit-card-default-train/versions/2", "jobInputType": "uri_file"}
    assert props["inputs"]["seed"] == {"value": "42", "jobInputType": "literal"}
    assert props["settings"]["default_compute"] == f"{WS_ARM}/computes/cpu-cluster"

    assert answer["name"] == JOB and answer["status"] == "NotStarted" and answer["submitted"] is True
    assert answer["studio_url"].startswith(f"https://ml.azure.com/runs/{JOB}?wsid={WS_ARM}")
    assert answer["studio_url"].endswith(f"&tid={TENANT}")  # appended by the SDK from the token's tid
    assert answer["tags"][MODEL_TAG] == MODEL and answer["experiment"] == "modelops-retraining"
    # Reads before the write: does the job exist? + workspace (component cache key) + data@latest.
    assert [(c.method, c.path.removeprefix(WS_ARM)) for c in fake.calls] == [
        ("GET", f"/jobs/{JOB}"), ("GET", ""), ("GET", "/data/credit-card-default-train"),
        ("GET", "/data/credit-card-default-train/versions/2"), ("PUT", f"/jobs/{JOB}")]


def test_the_put_carries_the_submitters_azureml_token(fake, jobs, credential):
    submit(jobs)
    (put,) = fake.requests_to("PUT")
    token = put.headers["x-azureml-token"]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "https://ml.azure.com"
    assert ("https://ml.azure.com/.default",) in credential.scopes
    assert put.headers["Authorization"].startswith("Bearer ")  # the ARM token, separately


def test_a_credential_whose_azureml_token_lacks_the_audience_is_refused_before_the_put(fake):
    class NoAudience(FakeCredential):
        def _token(self, scopes):
            self.scopes.append(scopes)
            return fake_jwt("https://management.azure.com"), 2_000_000_000

    ml = workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=NoAudience(),
                          transport=fake.transport(), retry_backoff_factor=0.0)
    with pytest.raises(PlatformError, match="aml scope") as err:
        submit(AzureJobs(ml))
    assert not err.value.transient
    assert fake.writes() == []


def test_a_second_submit_with_the_same_name_returns_the_job_without_a_second_put(fake, jobs):
    first = submit(jobs)
    fake.set_job_status(JOB, "Running")
    second = submit(jobs)
    assert len(fake.requests_to("PUT")) == 1
    assert second["submitted"] is False and second["name"] == first["name"] and second["status"] == "Running"
    fake.set_job_status(JOB, "Completed")  # a finished job is still that alert's job: no resubmission
    assert submit(jobs)["status"] == "Completed"
    assert len(fake.requests_to("PUT")) == 1


def test_an_existing_name_of_another_model_is_a_conflict(fake, jobs):
    fake.add_job(JOB, tags={MODEL_TAG: "other-model"})
    with pytest.raises(Conflict, match="other-model"):
        submit(jobs)
    assert fake.writes() == []


@pytest.mark.parametrize("answer", ["409", "400 already exists"])
def test_losing_the_create_race_returns_the_winners_job(fake, jobs, answer):
    """Our GET says 'no such job', then another submitter's PUT lands before ours."""
    fake.add_job(JOB, status="Queued", tags={MODEL_TAG: MODEL, "alert_id": "winner"})
    fake.fail("GET", rf"/jobs/{JOB}$", 404, code="UserError")
    if answer == "409":
        fake.fail("PUT", rf"/jobs/{JOB}$", 409, code="Conflict")
    result = submit(jobs)
    (put,) = fake.requests_to("PUT")
    assert put.status == (409 if answer == "409" else 400)
    assert result["submitted"] is False and result["status"] == "Queued" and result["tags"]["alert_id"] == "winner"


def test_inputs_override_the_pipeline_inputs(fake, jobs):
    submit(jobs, inputs={"training_data": "azureml:credit-card-default-train:1", "seed": 7, "test_size": 0.25,
                         "jobs.evaluate.inputs.champion_model": {"type": "custom_model",
                                                                 "path": "azureml:credit-card-default:3"}},
           experiment="ccd-retraining")
    (put,) = fake.requests_to("PUT")
    props = put.body["properties"]
    assert props["experimentName"] == "ccd-retraining"
    assert props["inputs"]["training_data"]["uri"] == f"{WS_ARM}/data/credit-card-default-train/versions/1"
    assert props["inputs"]["seed"]["value"] == "7" and props["inputs"]["test_size"]["value"] == "0.25"
    champion = props["jobs"]["evaluate"]["inputs"]["champion_model"]
    assert champion["uri"] == f"{WS_ARM}/models/credit-card-default/versions/3"
    assert champion["job_input_type"] == "custom_model"
    assert fake.requests_to("GET", "/data/credit-card-default-train") == []  # a pinned version: no lookup


def test_the_model_parameter_wins_over_an_input_of_the_same_name(fake, jobs):
    submit(jobs, inputs={"model_name": "something-else"})
    assert fake.requests_to("PUT")[0].body["properties"]["inputs"]["model_name"]["value"] == MODEL


def test_bad_names_and_inputs_are_refused_before_any_request(fake, jobs):
    with pytest.raises(PlatformError, match="not valid"):
        submit(jobs, name="retrain/../x")
    with pytest.raises(PlatformError, match="not valid"):
        submit(jobs, experiment="drift retraining")
    with pytest.raises(PlatformError, match="no input 'learning_rate'"):
        jobs.build_job(JOB, MODEL, TAGS, {"learning_rate": 0.1})
    assert fake.calls == []


def test_component_modes_build_the_job_without_requests(fake, jobs):
    registered = jobs.build_job(JOB, MODEL, TAGS)  # the SDK drops the "azureml:" prefix on load
    assert registered.jobs["prepare"].component == "credit_card_default_prepare:1"
    assert registered.jobs["train"].trial == "credit_card_default_train:1"

    local = AzureJobs(None, components="local").build_job(JOB, MODEL, TAGS)
    assert local.jobs["prepare"].component.command.startswith("python -m ml.steps.prepare")  # the file, loaded
    assert local.jobs["train"].trial.code is not None  # would be uploaded by the SDK

    pinned = AzureJobs(None, components={"train": "azureml:ccd_train_tuned:2",
                                         "evaluate": "azureml://registries/mlr-shared/components/ccd_eval/versions/3"})
    job = pinned.build_job(JOB, MODEL, TAGS)
    assert job.jobs["train"].trial == "ccd_train_tuned:2"
    assert job.jobs["evaluate"].component == "azureml://registries/mlr-shared/components/ccd_eval/versions/3"
    assert not isinstance(job.jobs["prepare"].component, str)  # not pinned: the local file
    # azure-ai-ml 1.35 loads a sweep trial "azureml://registries/..." as "//registries/..." and then
    # cannot resolve it: refused up front.
    with pytest.raises(PlatformError, match="sweep step train"):
        AzureJobs(None, components={"train": "azureml://registries/r/components/c/versions/1"}).build_job(
            JOB, MODEL, TAGS)
    with pytest.raises(PlatformError, match="no step"):
        AzureJobs(None, components={"tune": "azureml:x:1"}).build_job(JOB, MODEL, TAGS)
    assert fake.calls == []


# -------------------------------------------------------------------------------------- reading


def test_get_job_reports_the_status_and_none_when_missing(fake, jobs):
    assert jobs.get_job(JOB) is None
    submit(jobs)
    fake.set_job_status(JOB, "Running")
    job = jobs.get_job(JOB)
    assert job["status"] == "Running" and job["tags"]["rule"] == "ccd-drift"
    (get,) = fake.requests_to("GET", f"/jobs/{JOB}")[-1:]
    assert get.api_version == "2024-01-01-preview"


def test_list_running_filters_by_model_tag_and_non_terminal_status(fake, jobs):
    fake.add_job("a-completed", status="Completed", tags={MODEL_TAG: MODEL})
    fake.add_job("a-queued", status="Queued", tags={MODEL_TAG: MODEL})
    fake.add_job("b-running", status="Running", tags={MODEL_TAG: "other-model"})
    fake.add_job("a-failed", status="Failed", tags={MODEL_TAG: MODEL})
    fake.add_job("untagged", status="Running", tags={"rule": "x"})
    fake.add_job("a-archived", status="Running", tags={MODEL_TAG: MODEL}, archived=True)
    fake.add_job("a-command", status="Running", tags={MODEL_TAG: MODEL}, job_type="Command")
    fake.add_job("a-canceling", status="CancelRequested", tags={MODEL_TAG: MODEL})
    fake.add_job("a-paused", status="Paused", tags={MODEL_TAG: MODEL})  # may resume: not finished
    fake.add_job("a-canceled", status="Canceled", tags={MODEL_TAG: MODEL})
    fake.add_job("a-not-responding", status="NotResponding", tags={MODEL_TAG: MODEL})  # may come back
    submit(jobs)  # NotStarted
    fake.job_page_size = 2  # the SDK follows nextLink
    fake.reset_calls()

    running = jobs.list_running(MODEL)

    assert [j["name"] for j in running] == [JOB, "a-not-responding", "a-paused", "a-canceling", "a-queued"]
    assert [j["status"] for j in running] == ["NotStarted", "NotResponding", "Paused", "CancelRequested", "Queued"]
    lists = fake.requests_to("GET", "/jobs")
    assert len(lists) == 5  # 9 tagged, active pipeline jobs in pages of 2
    first = lists[0]
    assert first.path == f"{WS_ARM}/jobs" and first.api_version == "2024-01-01-preview"
    assert first.query["tag"] == [MODEL_TAG] and first.query["jobType"] == ["Pipeline"]
    assert first.query["listViewType"] == ["ActiveOnly"]
    assert jobs.list_running("nobody") == []


def test_running_states_are_every_status_of_the_services_enum_but_the_terminal_ones():
    from azure.ai.ml._restclient.arm_ml_service.models import JobStatus

    every = {s.value for s in JobStatus}
    assert TERMINAL_STATES == {"Completed", "Failed", "Canceled"} <= every
    assert running_states() == every - TERMINAL_STATES
    assert {"Paused", "NotResponding", "Unknown", "CancelRequested", "Finalizing"} <= running_states()


@pytest.mark.parametrize("status", sorted({"Paused", "NotResponding"} | {"NotStarted", "Running", "Finalizing"}))
def test_an_alert_launches_no_second_retraining_beside_an_unfinished_job(fake, jobs, status):
    """Through the retraining service (the alert webhook's use case) on the real SDK against the fake:
    a job of the model that is paused or not responding is not finished, so no second job is submitted."""
    from functions.services.retraining import AlertPolicy, handle_alert_body
    from tests.fakes import MemoryStore

    fake.add_job("retrain-earlier", status=status, tags={MODEL_TAG: MODEL})
    fake.reset_calls()
    alert = json.loads((Path(__file__).parent / "payloads" / "azmon-common-log-alerts-v2.testaction.json").read_text())
    alert["data"]["essentials"]["monitorCondition"] = "Fired"

    answer = handle_alert_body(json.dumps(alert).encode(), MemoryStore(), jobs, AlertPolicy(managed=[MODEL], rule_map={}))

    assert answer.body["action"] == "skip" and "already running (retrain-earlier)" in answer.body["reason"]
    assert fake.requests_to("PUT") == [] and set(fake.jobs) == {"retrain-earlier"}


@pytest.mark.parametrize("status", sorted(TERMINAL_STATES))
def test_an_alert_launches_a_retraining_once_the_earlier_job_is_over(fake, jobs, status):
    from functions.services.retraining import AlertPolicy, handle_alert_body
    from tests.fakes import MemoryStore

    fake.add_job("retrain-earlier", status=status, tags={MODEL_TAG: MODEL})
    alert = json.loads((Path(__file__).parent / "payloads" / "azmon-common-log-alerts-v2.testaction.json").read_text())
    alert["data"]["essentials"]["monitorCondition"] = "Fired"

    answer = handle_alert_body(json.dumps(alert).encode(), MemoryStore(), jobs, AlertPolicy(managed=[MODEL], rule_map={}))

    assert answer.body["action"] == "retrain" and answer.body["job"] in fake.jobs


def test_the_fake_reports_only_statuses_the_service_has(fake):
    with pytest.raises(ValueError, match="not a status the service reports"):
        fake.add_job("x", status="Done")
    fake.add_job("x", status="Paused")
    with pytest.raises(ValueError, match="not a status the service reports"):
        fake.set_job_status("x", "Cancelled")


def test_azure_jobs_satisfies_the_port(jobs):
    assert isinstance(jobs, Jobs)


# ------------------------------------------------------------------------------------- failures


def test_5xx_after_the_sdk_retries_is_transient(fake, jobs):
    fake.fail("GET", rf"/jobs/{JOB}$", 503, times=4)  # first try + 3 SDK retries
    with pytest.raises(PlatformError) as err:
        jobs.get_job(JOB)
    assert err.value.transient and "503" in str(err.value)
    assert len(fake.requests_to("GET", f"/jobs/{JOB}")) == 4


def test_throttled_submission_is_transient_and_sends_nothing_else(fake, jobs):
    fake.fail("PUT", rf"/jobs/{JOB}$", 429, times=4, code="TooManyRequests")
    with pytest.raises(PlatformError) as err:
        submit(jobs)
    assert err.value.transient and "429" in str(err.value)
    assert len(fake.requests_to("PUT")) == 4 and fake.jobs == {}


def test_a_single_503_on_list_is_absorbed_by_the_sdk_retry(fake, jobs):
    fake.fail("GET", r"/jobs$", 503, times=1)
    assert jobs.list_running(MODEL) == []


def test_a_rejected_submission_is_permanent_and_names_the_registered_components(fake, jobs):
    fake.fail("PUT", rf"/jobs/{JOB}$", 400, code="UserError")
    with pytest.raises(PlatformError, match="az ml component create") as err:
        submit(jobs)
    assert not err.value.transient and "azureml:credit_card_default_train:1" in str(err.value)


def test_a_missing_data_asset_is_permanent(fake, jobs):
    with pytest.raises(PlatformError, match="does not exist") as err:
        submit(jobs, inputs={"training_data": "azureml:no-such-data@latest"})
    assert not err.value.transient
    assert fake.writes() == []


def test_no_answer_is_transient(fake, jobs, monkeypatch):
    original = fake.send

    def refuse(request, *args, **kwargs):
        if request.method == "PUT":
            raise requests.exceptions.ConnectionError("connection reset by peer")
        return original(request, *args, **kwargs)

    monkeypatch.setattr(fake, "send", refuse)
    with pytest.raises(PlatformError, match="no answer") as err:
        submit(jobs)
    assert err.value.transient


def test_escaped_guard_sees_nothing_for_a_full_cycle(fake, jobs, escaped):
    submit(jobs)
    jobs.get_job(JOB)
    jobs.list_running(MODEL)
    assert escaped == [] and all(urlsplit(c.url).hostname == "management.azure.com" for c in fake.calls)


def test_a_models_own_pipeline_yaml_is_what_is_submitted(fake, jobs, tmp_path):
    from functions.ports import RetrainingRecipe
    from functions.settings import ML_DIR

    import shutil

    shutil.copytree(ML_DIR / "components", tmp_path / "components")  # the YAML refers to ../components/
    (tmp_path / "pipelines").mkdir()
    own = tmp_path / "pipelines" / "iris-train.yml"
    text = (ML_DIR / "pipelines" / "train.yml").read_text()
    start = text.index("description:")
    end = text.index("tags:", start)
    # the same steps under another description: one model's own pipeline
    own.write_text(text[:start] + "description: the iris team's pipeline\n" + text[end:])
    answer = submit(jobs, "retrain-iris-1", "iris", recipe=RetrainingRecipe(pipeline=str(own)))
    (put,) = fake.writes()
    assert put.body["properties"]["description"] == "the iris team's pipeline"
    assert put.body["properties"]["inputs"]["model_name"]["value"] == "iris" and answer["submitted"] is True
    # the default pipeline for a model without one, on the same adapter
    submit(jobs, "retrain-ccd-1", MODEL)
    assert fake.writes()[-1].body["properties"]["description"].startswith("prepare → sweep(train)")
    with pytest.raises(PlatformError, match="no such file"):
        submit(jobs, "retrain-iris-2", "iris", recipe=RetrainingRecipe(pipeline="ml/pipelines/missing.yml"))


# ------------------------------------------------------------------ registered components (one node)

COMPONENT = "credit-train-pipeline"
REG_COMPONENT = "ccd_train"
MODEL_INPUTS = {"model_name": {"type": "string"}, "seed": {"type": "integer", "default": 42},
                "training_data": {"type": "uri_file", "optional": True}}


@pytest.fixture
def registries() -> list[str]:
    """The registries the adapter asked a client for (each is built over the fake: discovery first)."""
    return []


@pytest.fixture
def component_jobs(fake, credential, registries) -> AzureJobs:
    def registry(name: str):
        registries.append(name)
        return registry_client(name, credential=credential, transport=fake.transport(), retry_backoff_factor=0.0)

    ml = workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=credential,
                          transport=fake.transport(), retry_backoff_factor=0.0)
    return AzureJobs(ml, registry_clients=registry)


def retrain_with(jobs: AzureJobs, reference: str, name: str = JOB, **kw) -> dict:
    return jobs.submit_retraining(name, MODEL, dict(TAGS), recipe=RetrainingRecipe(pipeline=reference), **kw)


def test_a_workspace_pipeline_component_is_the_one_node_of_the_job(fake, component_jobs):
    fake.add_component(COMPONENT, "3", inputs=MODEL_INPUTS)

    answer = retrain_with(component_jobs, f"azureml:{COMPONENT}:3")

    assert [(c.method, c.path.removeprefix(WS_ARM), c.api_version) for c in fake.calls] == [
        ("GET", f"/jobs/{JOB}", "2024-01-01-preview"),  # does the job exist?
        ("GET", f"/components/{COMPONENT}/versions/3", "2024-01-01-preview"),  # the component, as registered
        ("GET", "", "2024-10-01-preview"),  # the SDK's component cache key
        ("PUT", f"/jobs/{JOB}", "2024-01-01-preview")]
    props = fake.requests_to("PUT")[0].body["properties"]
    assert props["jobType"] == "Pipeline" and props["experimentName"] == "modelops-retraining"
    assert props["displayName"] == f"retrain {MODEL}" and props["tags"] == {**TAGS, MODEL_TAG: MODEL}
    # one node, referencing the registered component by its ARM id: nothing registered, nothing uploaded
    assert props["jobs"] == {"retrain": {
        "type": "pipeline", "_source": "REMOTE.WORKSPACE.COMPONENT",
        "componentId": f"{WS_ARM}/components/{COMPONENT}/versions/3",
        "inputs": {"model_name": {"value": MODEL, "job_input_type": "literal"}}}}  # defaults stay the component's
    assert props["settings"]["default_compute"] == f"{WS_ARM}/computes/cpu-cluster"  # train.yml's
    assert answer["name"] == JOB and answer["status"] == "NotStarted" and answer["submitted"] is True
    assert answer["studio_url"].endswith(f"&tid={TENANT}")


def test_latest_is_the_most_recently_created_version(fake, component_jobs):
    fake.add_component(COMPONENT, "3", inputs=MODEL_INPUTS)
    fake.add_component(COMPONENT, "2", inputs=MODEL_INPUTS)  # registered after 3: the latest

    retrain_with(component_jobs, f"azureml:{COMPONENT}@latest")

    (listing,) = fake.requests_to("GET", f"/components/{COMPONENT}/versions")
    assert listing.path == f"{WS_ARM}/components/{COMPONENT}/versions"
    assert listing.query["$orderBy"] == ["createdtime desc"] and listing.query["$top"] == ["1"]
    node = fake.requests_to("PUT")[0].body["properties"]["jobs"]["retrain"]
    assert node["componentId"] == f"{WS_ARM}/components/{COMPONENT}/versions/2"


def test_a_registry_component_is_read_with_a_registry_client_and_referenced_by_its_registry_id(
        fake, component_jobs, registries):
    from tests.fake_arm import REGISTRY, REGISTRY_RESOURCE_GROUP, REGISTRY_SUBSCRIPTION

    fake.add_component(REG_COMPONENT, "5", component_type="command", registry=REGISTRY,
                       inputs={"model_name": {"type": "string"}, "max_depth": {"type": "integer", "optional": True}})
    reg_arm = (f"/subscriptions/{REGISTRY_SUBSCRIPTION}/resourceGroups/{REGISTRY_RESOURCE_GROUP}"
               f"/providers/Microsoft.MachineLearningServices/registries/{REGISTRY}")

    answer = retrain_with(component_jobs, f"azureml://registries/{REGISTRY}/components/{REG_COMPONENT}/versions/5",
                          inputs={"max_depth": 12})

    assert registries == [REGISTRY]
    discovery, get = fake.calls[1], fake.calls[2]
    assert discovery.path == f"/registrymanagement/v1.0/registries/{REGISTRY}/discovery"
    assert get.method == "GET" and get.path == f"{reg_arm}/components/{REG_COMPONENT}/versions/5"
    assert get.api_version == "2021-10-01-dataplanepreview" and get.url.startswith("https://cert-eastus.experiments")
    (put,) = fake.writes()
    assert put.path == f"{WS_ARM}/jobs/{JOB}"  # the job runs in the workspace
    node = put.body["properties"]["jobs"]["retrain"]
    assert node["componentId"] == f"azureml://registries/{REGISTRY}/components/{REG_COMPONENT}/versions/5"
    assert node["type"] == "command" and node["_source"] == "REMOTE.REGISTRY"
    assert node["inputs"] == {"model_name": {"value": MODEL, "job_input_type": "literal"},
                              "max_depth": {"value": "12", "job_input_type": "literal"}}
    assert answer["submitted"] is True

    # labels/latest: the registry's newest version; the registry client is kept (no second discovery)
    fake.add_component(REG_COMPONENT, "6", component_type="command", registry=REGISTRY,
                       inputs={"model_name": {"type": "string"}})
    fake.reset_calls()
    retrain_with(component_jobs, f"azureml://registries/{REGISTRY}/components/{REG_COMPONENT}/labels/latest",
                 name="retrain-ccd-2")
    assert registries == [REGISTRY] and not fake.requests_to("GET", "/discovery")
    (listing,) = fake.requests_to("GET", f"/components/{REG_COMPONENT}/versions")
    assert listing.path.startswith(reg_arm) and listing.query["$top"] == ["1"]
    assert fake.writes()[-1].body["properties"]["jobs"]["retrain"]["componentId"].endswith("/versions/6")


def test_a_component_job_is_submitted_once_per_name(fake, component_jobs):
    fake.add_component(COMPONENT, "3", inputs=MODEL_INPUTS)
    first = retrain_with(component_jobs, f"azureml:{COMPONENT}:3")
    fake.set_job_status(JOB, "Running")
    fake.reset_calls()

    second = retrain_with(component_jobs, f"azureml:{COMPONENT}:3")

    assert second["submitted"] is False and second["name"] == first["name"] and second["status"] == "Running"
    assert [(c.method, c.path.removeprefix(WS_ARM)) for c in fake.calls] == [("GET", f"/jobs/{JOB}")]
    fake.add_job("retrain-other", tags={MODEL_TAG: "other-model"})
    with pytest.raises(Conflict, match="other-model"):
        retrain_with(component_jobs, f"azureml:{COMPONENT}:3", name="retrain-other")


def test_losing_the_create_race_of_a_component_job_returns_the_winners_job(fake, component_jobs):
    fake.add_component(COMPONENT, "3", inputs=MODEL_INPUTS)
    fake.add_job(JOB, status="Queued", tags={MODEL_TAG: MODEL, "alert_id": "winner"})
    fake.fail("GET", rf"/jobs/{JOB}$", 404, code="UserError")
    fake.fail("PUT", rf"/jobs/{JOB}$", 409, code="Conflict")
    result = retrain_with(component_jobs, f"azureml:{COMPONENT}:3")
    assert result["submitted"] is False and result["tags"]["alert_id"] == "winner"


@pytest.mark.parametrize("inputs, problem", [
    ({"seed": {"type": "integer", "default": 1}},
     ("retraining component azureml:credit-train-pipeline:3 declares no input 'model_name': modelops passes the "
      "model's name in it (declare `model_name: {type: string}` under the component's inputs; it declares: seed)")),
    ({**MODEL_INPUTS, "training_data": {"type": "uri_file"}},
     ("retraining component azureml:credit-train-pipeline:3 requires input(s) training_data, which modelops does "
      "not set (it sets model_name): give them defaults in the component")),
])
def test_a_component_without_what_modelops_sets_is_refused_before_the_put(fake, component_jobs, inputs, problem):
    fake.add_component(COMPONENT, "3", inputs=inputs)
    with pytest.raises(PlatformError) as err:
        retrain_with(component_jobs, f"azureml:{COMPONENT}:3")
    assert str(err.value) == problem and not err.value.transient
    assert fake.writes() == []


def test_inputs_are_checked_against_the_component_and_asset_paths_typed(fake, component_jobs):
    fake.add_component(COMPONENT, "3", inputs=MODEL_INPUTS)
    with pytest.raises(PlatformError, match=r"has no input 'learning_rate' \(it declares: model_name, seed, "
                                            r"training_data\)"):
        retrain_with(component_jobs, f"azureml:{COMPONENT}:3", inputs={"learning_rate": 0.1})
    with pytest.raises(PlatformError, match="has no input 'jobs.evaluate.inputs.champion_model'"):
        retrain_with(component_jobs, f"azureml:{COMPONENT}:3", inputs={"jobs.evaluate.inputs.champion_model": "x"})
    assert fake.writes() == []
    retrain_with(component_jobs, f"azureml:{COMPONENT}:3",
                 inputs={"training_data": "azureml:credit-card-default-train:1", "seed": 7, "model_name": "other"})
    node = fake.writes()[0].body["properties"]["jobs"]["retrain"]
    assert node["inputs"] == {
        "model_name": {"value": MODEL, "job_input_type": "literal"},  # the model parameter wins
        "seed": {"value": "7", "job_input_type": "literal"},
        "training_data": {"uri": f"{WS_ARM}/data/credit-card-default-train/versions/1", "job_input_type": "uri_file"}}


@pytest.mark.parametrize("reference, place", [
    (f"azureml:{COMPONENT}:9", "the workspace"),
    (f"azureml:{COMPONENT}@latest", "the workspace"),
    ("azureml://registries/mlr-shared/components/nothing/versions/1", "registry mlr-shared"),
])
def test_an_unregistered_component_is_a_permanent_refusal_naming_it(fake, component_jobs, reference, place):
    fake.add_component("someone-else", "1", inputs=MODEL_INPUTS)
    with pytest.raises(PlatformError) as err:
        retrain_with(component_jobs, reference)
    assert str(err.value).startswith(f"get retraining component {reference}: no such component in {place}")
    assert "az ml component create" in str(err.value) and not err.value.transient
    assert fake.writes() == []


def test_a_rejected_component_job_names_the_component(fake, component_jobs):
    fake.add_component(COMPONENT, "3", inputs=MODEL_INPUTS)
    fake.fail("PUT", rf"/jobs/{JOB}$", 400, code="UserError")
    with pytest.raises(PlatformError) as err:
        retrain_with(component_jobs, f"azureml:{COMPONENT}:3")
    assert str(err.value) == (f"submit retraining job {JOB}: HTTP 400 (UserError) fake 400 (its one step runs "
                              f"component azureml:{COMPONENT}:3, {WS_ARM}/components/{COMPONENT}/versions/3)")
    assert not err.value.transient


def test_a_component_reference_needs_a_registry_client_for_a_registry(fake, jobs):
    with pytest.raises(PlatformError, match="registry mlr-shared: this AzureJobs has no registry client"):
        retrain_with(jobs, "azureml://registries/mlr-shared/components/c/versions/1")


def test_a_drift_alert_retrains_with_the_models_configured_component(fake, component_jobs):
    """From the model's configuration through the alert handler to the wire."""
    from functions.domain.config import load_managed_models
    from functions.services.retraining import AlertPolicy, handle_alert_body
    from tests.fakes import MemoryStore

    fake.add_component(COMPONENT, "3", inputs=MODEL_INPUTS)
    managed = load_managed_models(f'{{"{MODEL}": {{"retraining_pipeline": "azureml:{COMPONENT}:3"}}}}',
                                  platform="azure")
    cfg = managed.get(MODEL)
    policy = AlertPolicy(managed=managed.names, rule_map={},
                         recipes={MODEL: RetrainingRecipe(cfg.retraining_pipeline, cfg.retraining_command)})
    alert = {"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {
        "alertId": "/subscriptions/x/providers/Microsoft.AlertsManagement/alerts/c0ffee", "alertRule": "ccd-drift",
        "monitorCondition": "Fired", "firedDateTime": "2026-03-01T00:00:00Z", "severity": "Sev3",
        "signalType": "Log", "monitoringService": "Log Alerts V2", "alertTargetIDs": []}, "alertContext": {}}}

    answer = handle_alert_body(json.dumps(alert).encode(), MemoryStore(), component_jobs, policy)

    assert answer.status == 202, answer.body
    (put,) = fake.writes()
    assert put.path == f"{WS_ARM}/jobs/{answer.body['job']}"
    node = put.body["properties"]["jobs"]["retrain"]
    assert node["componentId"] == f"{WS_ARM}/components/{COMPONENT}/versions/3"
    assert node["inputs"]["model_name"]["value"] == MODEL
    assert put.body["properties"]["tags"]["modelops.alert_rule"] == "ccd-drift"


def test_the_azure_app_gives_the_jobs_adapter_the_registry_clients(monkeypatch):
    from functions import bootstrap
    from functions.adapters.azure import clients
    from functions.settings import Settings

    for key, value in {"AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "MODELOPS_STAGING_RESOURCE_GROUP": RESOURCE_GROUP,
                       "MODELOPS_STAGING_WORKSPACE": WORKSPACE, "MODELOPS_PRODUCTION_WORKSPACE": "mlw-prod",
                       "MODELOPS_REGISTRY_NAME": "mlr-shared", "MODELOPS_LOG_ANALYTICS_WORKSPACE_ID": "la",
                       "MODELOPS_STORAGE_ACCOUNT_URL": "https://st.blob.core.windows.net",
                       "MODELOPS_LOG_ANALYTICS_RESOURCE_ID": "/subscriptions/s/resourceGroups/rg/providers/"
                                                             "Microsoft.OperationalInsights/workspaces/log"}.items():
        monkeypatch.setenv(key, value)
    parts = bootstrap._AzureParts(Settings(platform="azure"))
    shared, credential = object(), object()
    parts.__dict__.update(staging_client=object(), registry_client=shared, credential=credential)
    monkeypatch.setattr(clients, "registry_client", lambda name, credential: ("built", name, credential))
    jobs = parts.jobs()
    assert jobs._registry("mlr-shared") is shared  # the configured registry's client, not a second one
    assert jobs._registry("mlr-platform") == ("built", "mlr-platform", credential)
