"""The same two never-seen models as tests/test_many_models_local.py — the seeds' iris classifier
registered as an MLflow model (multiclass, rows in) and a diabetes regression (records, a value per
row) — through the Azure path, by configuration only: the composition root's Azure parts (the
real azure-ai-ml, azure-monitor-query and azure-storage-blob clients) against the fake ARM
(tests/fake_arm), Azurite for the store and the models' files, and the fake Log Analytics query API
(tests/fake_log_analytics). Behind the fake's endpoints, ManagedOnlineDataPlane
(tests/fake_arm/data_plane.py) runs what AzureML would: a real inference server per deployment,
with its model read from storage, and the endpoint's traffic and console logs sent to Log Analytics.

What differs from a Function App: the clients get the fake's transport and a fake credential, and
the Durable orchestration runs in the in-process driver (the same orchestrator and activities;
Durable's replay is tests/test_workflow_replay.py's subject). Staging and production are one
fake workspace (the endpoints' names differ), which Azure allows too.

Asserted: Event Grid ModelRegistered → contract read from the downloaded files → gates on each
model's own metric → promotion into the registry (files copied by the import) → production
deployment from the registry → a v2 canary under live traffic with health from
AmlOnlineEndpointTrafficLog → export of each model's InputData records from
AmlOnlineEndpointConsoleLog into Parquet in blob storage → drift against each model's reference
downloaded from the registry: only the shifted one drifts. No wall-clock figure is asserted.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from functions.adapters.local.loadgen import LoadGenerator
from functions.adapters.local.orchestrator import LocalOrchestrations, LocalOrchestrator
from functions.bootstrap import App, build_app
from functions.settings import ML_DIR, Settings
from tests.conftest import SERVING_PYTHON, require_serving_env
from tests.model_contracts import diabetes_records, iris_rows
from tests.fake_arm import REGISTRY, RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML
from tests.fake_arm.data_plane import ManagedOnlineDataPlane
from tests.fake_credentials import FakeCredential
from tests.fake_inference_logs import InferenceLogEvaluator
from tests.fake_log_analytics import CONSOLE_TABLE, TRAFFIC_TABLE, FakeLogAnalytics
from tests.storage_network import ACCOUNT, redirect_storage

pytest_plugins = ["tests.azurite"]  # the session-wide `azurite` fixture
pytestmark = pytest.mark.integration

IRIS, DIABETES = "iris", "diabetes"
LOGS_WORKSPACE = "0f9b6b1c-6c52-4a8e-9a8c-3d6f0e5b7a21"  # the Log Analytics workspace id (a GUID)
LOGS_RESOURCE = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"  # and its ARM id
                 "/providers/Microsoft.OperationalInsights/workspaces/log-modelops")
WS_ID = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
         f"/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}")
BAKE = 3.0
SLICE = timedelta(seconds=5)
LAG = timedelta(seconds=1)
OVERRIDES = {
    "poll_seconds": 0.2,
    "canary": {"bake_seconds": BAKE, "max_error_rate": 0.02, "max_p90_ms": 2000.0, "min_requests": 3,
               "max_bake_seconds": 6 * BAKE},
    "gates": {"latency_requests": 10, "latency_p95_ms": 2000.0, "evaluation_rows": 500},
}
MODELS = {IRIS: {"gates": {"min_metric": 0.9}},
          DIABETES: {"gates": {"min_metric": 80.0, "champion_tolerance": 1.0}}}


@dataclass
class Azure:
    app: App
    arm: FakeAzureML
    logs: FakeLogAnalytics
    plane: ManagedOnlineDataPlane
    blobs: Any
    container: str  # the workspace datastore's container
    driver: LocalOrchestrator

    def register(self, name: str, folder: Path, *, mlflow: bool = False) -> str:
        """What `az ml model create --path <folder>` leaves: the files under LocalUpload/<hash>/<folder
        name>/ on the workspace's datastore and a model version pointing there; then the event
        Event Grid delivers for it."""
        version = str(1 + sum(1 for key in self.arm.workspace_models if key[0] == name))
        prefix = f"LocalUpload/{uuid.uuid4().hex[:12]}/{folder.name}/"
        client = self.blobs.get_container_client(self.container)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            client.upload_blob(prefix + path.relative_to(folder).as_posix(), path.read_bytes(), overwrite=True)
        flavors = {"python_function": {"data": {"loader_module": "mlflow.sklearn"}}, "sklearn": {"data": {}}}
        self.arm.add_workspace_model(
            name, version, model_type="mlflow_model" if mlflow else "custom_model", flavors=flavors if mlflow else None,
            path=(f"azureml://subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/workspaces/{WORKSPACE}"
                  f"/datastores/workspaceblobstore/paths/{prefix}"))
        event = {"topic": WS_ID, "subject": f"models/{name}:{version}", "id": str(uuid.uuid4()),
                 "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
                 "eventTime": datetime.now(timezone.utc).isoformat(), "dataVersion": "", "metadataVersion": "1",
                 "data": {"ModelName": name, "ModelVersion": version, "ModelTags": {}, "ModelProperties": {}}}
        accepted = self.app.deliver([event])
        assert [a.decision.action for a in accepted] == ["rollout"], [a.decision for a in accepted]
        return version

    def target(self, model: str):
        endpoint = self.app.managed.get(model).production_endpoint

        def resolve() -> tuple[str, str]:  # what `az ml online-endpoint show` / `get-credentials` answer
            with self.arm._lock:
                return (self.arm.endpoints[endpoint]["properties"]["scoringUri"],
                        self.arm.keys[endpoint]["primaryKey"])

        return resolve


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from ml.mlflow_models import save_iris
    from ml.sample_models import train_diabetes

    root = tmp_path_factory.mktemp("azure-models")
    return {IRIS: save_iris(root / "iris" / "model"), DIABETES: train_diabetes(root / "diabetes" / "model",
                                                                               model_name=DIABETES)}


@pytest.fixture(scope="module")
def azure(tmp_path_factory, azurite) -> Azure:
    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

    from functions.adapters.azure.clients import arm_client, registry_client, workspace_client
    from functions.services.activities import dispatch
    from functions.services.workflow import rollout_orchestrator
    from functions.shared.orchestration import ACTIVITY, ORCHESTRATOR
    from ml.mlflow_models import IRIS_TARGET, iris_frame
    from ml.sample_models import diabetes_frame
    from tests.azurite import ACCOUNT_KEY

    require_serving_env()
    patch = pytest.MonkeyPatch()
    redirect_storage(patch, azurite)
    blobs = BlobServiceClient.from_connection_string(azurite)
    arm = FakeAzureML()
    container = f"azureml-blobstore-{uuid.uuid4()}"
    blobs.create_container(container)
    blobs.create_container(arm.registry_container)
    arm.add_datastore(account=ACCOUNT, container=container, key=ACCOUNT_KEY)
    sas = generate_container_sas(ACCOUNT, arm.registry_container, account_key=ACCOUNT_KEY,
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=2))
    port = azurite.rsplit(":", 1)[1].split("/", 1)[0]
    arm.set_registry_sas(REGISTRY, f"http://127.0.0.1:{port}/{ACCOUNT}/{arm.registry_container}?{sas}")
    logs = FakeLogAnalytics(workspace_ids={LOGS_WORKSPACE}).start()
    logs._server.handle_error = lambda request, client_address: None  # dropped keep-alives after retries
    logs.evaluator = InferenceLogEvaluator(logs)
    for name, value in {  # the app settings infra/ would set, pointed at the fakes
        "MODELOPS_PLATFORM": "azure", "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "MODELOPS_STAGING_RESOURCE_GROUP": RESOURCE_GROUP, "MODELOPS_STAGING_WORKSPACE": WORKSPACE,
        "MODELOPS_PRODUCTION_WORKSPACE": WORKSPACE, "MODELOPS_REGISTRY_NAME": REGISTRY,
        "MODELOPS_LOG_ANALYTICS_WORKSPACE_ID": LOGS_WORKSPACE, "MODELOPS_LOGS_ENDPOINT": logs.url,
        "MODELOPS_LOG_ANALYTICS_RESOURCE_ID": LOGS_RESOURCE,
        "MODELOPS_STORAGE_CONNECTION_STRING": azurite, "MODELOPS_STORAGE_CONTAINER": f"modelops-{uuid.uuid4().hex}",
        "MODELOPS_DEPLOYMENT_CODE": "azureml:modelops-score:1",
        "MODELOPS_DEPLOYMENT_ENVIRONMENT": "azureml:modelops-serving:1",
        "MODELOPS_INGESTION_LAG_SECONDS": "1",  # the data plane's rows arrive within 0.2 s
        "MODELOPS_MODELS": json.dumps(MODELS), "MODELOPS_DRIFT_CONFIG": json.dumps({"min_current_rows": 60}),
    }.items():
        patch.setenv(name, value)
    app = build_app(Settings.from_env(), overrides=OVERRIDES)
    parts, credential = app._parts, FakeCredential()
    clients = {"retry_backoff_factor": 0.0, "credential": credential}
    workspace = workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, transport=arm.transport(), **clients)
    # the parts build these on first use; here they are the fakes' (cached_property values)
    parts.__dict__.update(credential=credential, staging_client=workspace, production_client=workspace,
                          registry_client=registry_client(REGISTRY, transport=arm.transport(), **clients),
                          arm_client=arm_client(credential, transport=arm.transport(), retry_backoff_factor=0.0))
    driver = LocalOrchestrator({ORCHESTRATOR: rollout_orchestrator},
                               {ACTIVITY: lambda payload: dispatch(app.ports, payload)})
    parts.orchestrations = lambda client=None: LocalOrchestrations(driver)
    features, labels = iris_frame()
    app.store.put(app.managed.get(IRIS).evaluation_data,
                  features.assign(**{IRIS_TARGET: labels.to_numpy()}).to_csv(index=False).encode())
    app.store.put(app.managed.get(DIABETES).evaluation_data, diabetes_frame().to_csv(index=False).encode())
    plane = ManagedOnlineDataPlane(arm, logs, blobs, home=tmp_path_factory.mktemp("data-plane"),
                                   serving_python=SERVING_PYTHON, code_assets={"modelops-score": ML_DIR})
    try:
        with plane:
            yield Azure(app, arm, logs, plane, blobs, container, driver)
            driver.stop()
    finally:
        logs.stop()
        patch.undo()
    assert plane.errors == [], plane.errors
    assert arm.unhandled == [], "the SDK called routes the fake does not know"
    assert logs.errors == [], logs.errors


def stored_json(app: App, key: str) -> dict:
    return json.loads(app.store.get(key)[0])


def test_two_never_seen_models_roll_out_export_and_drift_check_on_the_azure_path(azure, models, tmp_path):
    from ml.sample_models import train_diabetes

    app = azure.app
    # 1. Both registered at once in the staging workspace; Event Grid delivers both events.
    versions = {IRIS: azure.register(IRIS, models[IRIS], mlflow=True), DIABETES: azure.register(DIABETES,
                                                                                                models[DIABETES])}
    outcomes = {o["model"]: o for o in azure.driver.wait_all(timeout=600)}
    for name in (IRIS, DIABETES):
        assert outcomes[name]["state"] == "succeeded", (outcomes[name], app.rollouts.trail(name, outcomes[name]["id"]))
        assert app.rollouts.production(name)["version"] == versions[name]
    iris_contract = stored_json(app, f"contracts/{IRIS}/current.json")
    diabetes_contract = stored_json(app, f"contracts/{DIABETES}/current.json")
    assert iris_contract["source"] == "MLmodel + contract.json" and iris_contract["request_shape"] == "rows"
    assert diabetes_contract["task"] == "regression" and diabetes_contract["source"] == "model_card.json"
    for name, metric in ((IRIS, "accuracy"), (DIABETES, "rmse")):
        report = stored_json(app, outcomes[name]["gate_report"])
        quality = next(g for g in report["gates"] if g["name"] == "quality")
        assert quality["passed"] and quality["figures"]["metric"] == metric, quality
    # promoted through the registry: the production deployments serve the registry's copies
    for name in (IRIS, DIABETES):
        assert (name, versions[name]) in azure.arm.registry_models
        endpoint = app.managed.get(name).production_endpoint
        served = [d["properties"]["model"] for (e, _), d in azure.arm.deployments.items() if e == endpoint]
        assert served == [f"azureml://registries/{REGISTRY}/models/{name}/versions/{versions[name]}"], served
    put = next(c for c in azure.arm.writes() if c.method == "PUT" and "/deployments/" in c.path
               and app.managed.get(IRIS).production_endpoint in c.path)
    assert json.loads(put.body["properties"]["environmentVariables"]["MODELOPS_CONTRACT"])["request_shape"] == "rows"
    # each production endpoint got its diagnostic setting (its logs → the Log Analytics workspace), once
    for name in (IRIS, DIABETES):
        endpoint = app.managed.get(name).production_endpoint
        setting = [c for c in azure.arm.writes() if c.path.endswith(f"/onlineEndpoints/{endpoint}/providers/"
                                                                    "Microsoft.Insights/diagnosticSettings/modelops")]
        assert [(c.method, c.status) for c in setting] == [("PUT", 200)], setting
        assert setting[0].body["properties"]["workspaceId"] == LOGS_RESOURCE
    staging_endpoints = {app.managed.get(name).staging_endpoint for name in (IRIS, DIABETES)}
    assert not [c for c in azure.arm.writes() if "diagnosticSettings" in c.path
                and any(f"/onlineEndpoints/{e}/" in c.path for e in staging_endpoints)]
    answer = app.ports.production.score(app.managed.get(IRIS).production_endpoint, {"data": [[5.1, 3.5, 1.4, 0.2]]})
    assert answer.status == 200 and answer.body == {"result": [0]}, answer

    # 2. Live traffic on both production endpoints; diabetes v2 rolls out as a canary meanwhile.
    with LoadGenerator(azure.target(IRIS), iris_rows(), rate=12, threads=3, max_seconds=900) as iris_load, \
            LoadGenerator(azure.target(DIABETES), diabetes_records(shifted=True), rate=12, threads=3,
                          max_seconds=900) as diabetes_load:
        start = datetime.now(timezone.utc)
        v2 = azure.register(DIABETES, train_diabetes(tmp_path / "v2" / "model", model_name=DIABETES, seed=1))
        second = [o for o in azure.driver.wait_all(timeout=600) if (o["model"], o["version"]) == (DIABETES, v2)]
        assert second[0]["state"] == "succeeded", second
        assert len([c for c in azure.arm.writes() if "/diagnosticSettings/" in c.path]) == 2  # read, not rewritten
        trail = app.rollouts.trail(DIABETES, second[0]["id"])
        health = [r["details"] for r in trail if r["step"] == "health" and not r["details"].get("extended")]
        assert [(h["percent"], h["healthy"]) for h in health] == [(10, True), (50, True), (100, True)], trail
        assert all(h["figures"]["requests"] >= OVERRIDES["canary"]["min_requests"] for h in health), health
        while min(len(iris_load.answers), len(diabetes_load.answers)) < 150:
            time.sleep(0.5)
        end = datetime.now(timezone.utc)
        time.sleep((SLICE + LAG).total_seconds() + 1)  # the window's last slice closes

        # 3. Export: each model's InputData records, from the console log into Parquet in blob storage.
        exported = app.export_logs(now=datetime.now(timezone.utc), slice_length=SLICE, lag=LAG,
                                   since=start.replace(microsecond=0) - timedelta(seconds=10))
        for name, contract in ((IRIS, iris_contract), (DIABETES, diabetes_contract)):
            report = exported[name]
            assert report["error"] == "" and report["rows"] > 0 and report["quarantined"] == 0, report
            columns = set(pq.read_schema(io.BytesIO(app.store.get(report["files"][0])[0])).names)
            assert {f["name"] for f in contract["features"]} <= columns, columns

        # 4. Drift against each production version's reference, downloaded from the registry.
        checks = {item["check"]["model"]: item["check"] for item in app.check_drift(
            now=end + timedelta(seconds=SLICE.seconds), window=end - start + SLICE * 2)}
        assert checks[IRIS]["status"] == "no_drift", checks[IRIS]
        assert checks[DIABETES]["status"] == "drift" and checks[DIABETES]["version"] == v2, checks[DIABETES]
    for load in (iris_load, diabetes_load):
        assert load.summary()["failed"] == 0, load.summary()
    assert app.rollouts.production(IRIS)["version"] == versions[IRIS]  # iris untouched
    assert app.rollouts.production(DIABETES)["version"] == v2
    # the health checks and the export read what the data plane sent to Log Analytics
    assert len(azure.logs.table(TRAFFIC_TABLE)) > 0 and len(azure.logs.table(CONSOLE_TABLE)) > 0
