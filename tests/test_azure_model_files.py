"""The Azure path reads every model's contract: DownloadedModelFiles (ports.ModelFiles in Azure) through
the REAL azure-ai-ml `models.download` — the management plane answered by tests/fake_arm, the blobs
by a real Azurite — then functions.shared.contract_sources.read_contract over what it downloaded; and
an MLflow model version taken from its files to its AzureML deployment, asserted on the wire.

Where the blobs go. For a workspace model the SDK builds the storage URL itself:
https://<datastore accountName>.blob.<cloud storage suffix>/<containerName> — the suffix comes from
its cloud metadata (core.windows.net), never from the datastore's `endpoint`/`protocol`, so no
datastore can point it at a loopback http endpoint. Changing the suffix needs a custom cloud
(ARM_CLOUD_METADATA_URL), and even then the URL stays https://<account>.blob.<suffix>: a TLS
Azurite and a name that resolves to loopback (*.localhost does not resolve here: /etc/hosts is
"files dns"). So the `network` fixture does what a hosts entry plus a TLS-terminating proxy would:
requests to https://devstoreaccount1.blob.core.windows.net are sent to Azurite over http with the
URL's path, query and Host header unchanged. Azurite reads the account from a production-style Host
and checks the SDK's Shared Key signature as built for that URL; nothing in the SDK is patched. For a
registry model no redirection is needed: the SDK uses the SAS URL the registry answers as given, so
the fake answers an Azurite container SAS URL (a real SAS, checked by Azurite).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from functions.adapters.azure.aml import AzureEndpoints, AzureModelRegistry, DeploymentAssets
from functions.adapters.azure.clients import registry_client, workspace_client
from functions.adapters.azure.model_files import DownloadedModelFiles
from functions.ports import DeploymentSpec, ModelFiles, ModelRef, PlatformError
from functions.services import activities as act
from functions.shared.contract_sources import read_contract
from tests.fake_arm import (
    REGISTRY,
    REGISTRY_RESOURCE_GROUP,
    REGISTRY_SUBSCRIPTION,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    FakeAzureML,
)
from tests.fake_credentials import FakeCredential
from tests.storage_network import STORAGE_HOST, Network, redirect_storage
from tests.fakes import FakeTrafficLog, MemoryStore

pytest_plugins = ["tests.azurite"]  # the session-wide `azurite` fixture
pytestmark = pytest.mark.integration

WS_ARM = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
          f"/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}")
REG_ARM = (f"/subscriptions/{REGISTRY_SUBSCRIPTION}/resourceGroups/{REGISTRY_RESOURCE_GROUP}"
           f"/providers/Microsoft.MachineLearningServices/registries/{REGISTRY}")
ACCOUNT = "devstoreaccount1"  # Azurite's one account (tests/azurite.py), named as a datastore's account
ASSETS = DeploymentAssets(code="azureml:modelops-score:1", environment="azureml:modelops-serving:1")

# A modelops artifact: its card carries the contract (ml/artifact.py's layout).
CARD_CONTRACT = {
    "features": [{"name": "age", "type": "numeric", "minimum": 18, "maximum": 100},
                 {"name": "plan", "type": "categorical", "domain": ["basic", "gold"]}],
    "target": "churned", "task": "binary_classification", "response_kind": "probability",
    "sample_request": {"data": [{"age": 40.0, "plan": "gold"}]},
}
ARTIFACT = {
    "model_card.json": json.dumps({"artifact_format": 1, "task": "binary-classification",
                                   "contract": CARD_CONTRACT}).encode(),
    "model.joblib": b"\x80\x04not-a-real-model",
    "reference.parquet": b"PAR1",
}
# An MLflow model folder as mlflow.sklearn.log_model writes it (skops format), with the example
# it saved and a contract.json for what MLmodel cannot say.
IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
MLMODEL = """artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.skops
    predict_fn: predict
    python_version: 3.11.9
  sklearn:
    code: null
    pickled_model: model.skops
    serialization_format: skops
    sklearn_version: 1.7.2
mlflow_version: 3.1.0
model_size_bytes: 5203
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  serving_input_path: serving_input_example.json
  type: dataframe
signature:
  inputs: '[{"type": "double", "name": "sepal length (cm)", "required": true}, {"type": "double", "name":
    "sepal width (cm)", "required": true}, {"type": "double", "name": "petal length (cm)", "required": true},
    {"type": "double", "name": "petal width (cm)", "required": true}]'
  outputs: '[{"type": "long", "required": true}]'
  params: null
"""
MLFLOW_FOLDER = {
    "MLmodel": MLMODEL.encode(),
    "input_example.json": json.dumps({"columns": IRIS, "data": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}).encode(),
    "contract.json": json.dumps({"target": "species", "classes": [0, 1, 2]}).encode(),
    "model.skops": b"PK\x03\x04not-a-real-model",
    "conda.yaml": b"dependencies:\n- python=3.11.9\n- pip:\n  - mlflow==3.1.0\n  - scikit-learn==1.7.2\n",
    "requirements.txt": b"mlflow==3.1.0\nscikit-learn==1.7.2\nskops\n",
}
SKOPS_TRUSTED = ["sklearn.ensemble._forest.RandomForestClassifier"]


@pytest.fixture
def network(monkeypatch, azurite) -> Network:
    """Loopback only; https://devstoreaccount1.blob.core.windows.net is Azurite (see the module
    docstring). Storage requests made while `recording` are listed, in order."""
    return redirect_storage(monkeypatch, azurite)


@pytest.fixture
def blobs(azurite, network):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite)
    return service


def account_key() -> str:
    from tests.azurite import ACCOUNT_KEY  # imported once the plugin is registered (no rewrite warning)

    return ACCOUNT_KEY


@pytest.fixture
def container() -> str:
    """The workspace datastore's container: a fresh one per test (one Azurite serves the session)."""
    return f"azureml-blobstore-{uuid.uuid4()}"


@pytest.fixture
def fake(blobs, container):
    fake = FakeAzureML()
    fake.add_datastore(account=ACCOUNT, container=container, key=account_key())  # the workspace's storage is Azurite
    blobs.create_container(container)
    blobs.create_container(fake.registry_container)
    yield fake
    fake.settle()  # let background poller threads finish
    assert fake.unhandled == [], "the SDK called routes the fake does not know"


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def ml(fake, credential):
    return workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=credential,
                            transport=fake.transport(), retry_backoff_factor=0.0)


@pytest.fixture
def registry_ml(fake, credential):
    return lambda: registry_client(REGISTRY, credential=credential, transport=fake.transport(),
                                   retry_backoff_factor=0.0)


@pytest.fixture
def files(ml, registry_ml) -> DownloadedModelFiles:
    return DownloadedModelFiles(lambda: ml, registry_ml)


def upload(blobs, container: str, prefix: str, folder: dict[str, bytes]) -> None:
    client = blobs.get_container_client(container)
    for name, data in folder.items():
        client.upload_blob(f"{prefix}{name}", data, overwrite=True)


def registry_sas(fake: FakeAzureML, network: Network, *, sign: bool = True) -> str:
    """An Azurite container SAS URL for the registry's storage, as the registry hands one out."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(ACCOUNT, fake.registry_container, account_key=account_key(),
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    if not sign:
        sas = sas.replace("sig=", "sig=AAAA")
    return f"http://127.0.0.1:{network.port}/{ACCOUNT}/{fake.registry_container}?{sas}"


def workspace_path(prefix: str) -> str:
    return (f"azureml://subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/workspaces/{WORKSPACE}"
            f"/datastores/workspaceblobstore/paths/{prefix}")


def ws_model(name: str, version: str) -> ModelRef:
    return ModelRef(name, version, f"azureml:{name}:{version}")


def reg_model(name: str, version: str) -> ModelRef:
    return ModelRef(name, version, f"azureml://registries/{REGISTRY}/models/{name}/versions/{version}")


def contract_of(files: ModelFiles, model: ModelRef, overrides: dict | None = None):
    return read_contract(lambda name: files.read(model, name), overrides, where=f"model {model.name}:{model.version}")


def storage_calls(network: Network) -> list[tuple[str, str, dict]]:
    """(method, path, query without the SAS) of the recorded storage requests."""
    out = []
    for line in network.storage:
        method, url = line.split(" ", 1)
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items() if k in ("restype", "comp", "prefix", "delimiter",
                                                                             "include")}
        out.append((method, parts.path, query))
    return out


# ------------------------------------------------------------------------------ workspace models


def test_a_modelops_artifact_in_the_workspace_gives_its_cards_contract(fake, blobs, files, network, container):
    upload(blobs, container, "models/churn/3/", ARTIFACT)
    fake.add_workspace_model("churn", "3", path=workspace_path("models/churn/3/"))
    assert isinstance(files, ModelFiles)
    network.recording = True
    contract = contract_of(files, ws_model("churn", "3"))
    assert contract.source == "model_card.json"
    assert contract.feature_names == ("age", "plan") and contract.task == "binary_classification"
    assert contract.sample_records() == [{"age": 40.0, "plan": "gold"}] and contract.metric == "roc_auc"

    # the management plane: the version (for its path), the datastore, its key
    assert [(c.method, c.path.removeprefix(WS_ARM), c.api_version) for c in fake.calls] == [
        ("GET", "/models/churn/versions/3", "2023-08-01-preview"),
        ("GET", "/datastores/workspaceblobstore", "2024-10-01-preview"),
        ("POST", "/datastores/workspaceblobstore/listSecrets", "2024-10-01-preview"),
    ]
    assert fake.calls[2].body == {"expirableSecret": True, "expireAfterHours": 1}
    # the storage account the datastore names, with the key listSecrets gave (Azurite checked the signature)
    base = f"/{container}"
    assert storage_calls(network) == [
        ("HEAD", f"{base}/models/churn/3/", {}),  # a blob of that name? (404)
        ("GET", base, {"restype": "container", "comp": "list", "prefix": "models/churn/3/", "delimiter": "/"}),
        ("GET", base, {"restype": "container", "comp": "list", "prefix": "models/churn/3/", "include": "metadata"}),
        *[("GET", f"{base}/models/churn/3/{name}", {}) for name in sorted(ARTIFACT)],
    ]
    assert all(line.split(" ", 1)[1].startswith(f"https://{STORAGE_HOST}/") for line in network.storage)
    assert network.escaped == []

    # the other reads are served from the downloaded folder; a missing file is None
    fake.reset_calls()
    network.storage.clear()
    assert files.read(ws_model("churn", "3"), "MLmodel") is None
    assert files.read(ws_model("churn", "3"), "model.joblib") == ARTIFACT["model.joblib"]
    assert files.read(ws_model("churn", "3"), "../../etc/passwd") is None  # names only, never paths
    assert fake.calls == [] and network.storage == []


def test_an_mlflow_model_registered_from_a_run_folder_is_read_by_mlmodel_example_and_contract(fake, blobs, files,
                                                                                              container):
    # `az ml model create --path ./model --type mlflow_model` lands under LocalUpload/<hash>/model/
    upload(blobs, container, "LocalUpload/0a1b2c/model/", MLFLOW_FOLDER)
    fake.add_workspace_model("iris", "2", path=workspace_path("LocalUpload/0a1b2c/model/"), model_type="mlflow_model",
                             flavors={"python_function": {"data": {"loader_module": "mlflow.sklearn"}},
                                      "sklearn": {"data": {"serialization_format": "skops"}}})
    contract = contract_of(files, ws_model("iris", "2"))
    assert contract.source == "MLmodel + contract.json"
    assert contract.feature_names == tuple(IRIS) and contract.target == "species"
    assert (contract.task, contract.response_kind, contract.metric, contract.classes) == \
        ("multiclass_classification", "label", "accuracy", (0, 1, 2))
    assert contract.sample_records() == [dict(zip(IRIS, [5.1, 3.5, 1.4, 0.2])), dict(zip(IRIS, [6.2, 2.9, 4.3, 1.3]))]
    assert contract.extras["mlflow"]["serialization_format"] == "skops"


def test_a_model_that_is_a_single_file_is_read_by_its_name(fake, blobs, files, container):
    upload(blobs, container, "models/solo/1/", {"contract.json": json.dumps({**CARD_CONTRACT, "target": "y"}).encode()})
    fake.add_workspace_model("solo", "1", path=workspace_path("models/solo/1/contract.json"))
    contract = contract_of(files, ws_model("solo", "1"))
    assert contract.source == "contract.json" and contract.target == "y"


# ------------------------------------------------------------------------------- registry models


def test_a_registry_mlflow_model_is_read_through_the_registrys_sas(fake, blobs, files, network):
    upload(blobs, fake.registry_container, "iris/2/", MLFLOW_FOLDER)
    body = fake.add_registry_model("iris", "2", model_type="mlflow_model")
    fake.set_registry_sas(REGISTRY, registry_sas(fake, network))
    network.recording = True
    contract = contract_of(files, reg_model("iris", "2"))
    assert contract.source == "MLmodel + contract.json" and contract.feature_names == tuple(IRIS)

    assert [(c.method, c.host, c.path.removeprefix(REG_ARM), c.api_version) for c in fake.calls] == [
        ("GET", "eastus.api.azureml.ms", f"/registrymanagement/v1.0/registries/{REGISTRY}/discovery", "v1.0"),
        ("GET", "cert-eastus.experiments.azureml.net", "/models/iris/versions/2", "2021-10-01-dataplanepreview"),
        ("POST", "cert-eastus.experiments.azureml.net", "/datarefs/iris/versions/2", "2021-10-01-dataplanepreview"),
    ]
    assert fake.calls[2].body == {"assetId": f"azureml://registries/{REGISTRY}/models/iris/versions/2",
                                  "blobUri": body["properties"]["modelUri"]}
    # the SAS URL as given (the registry's storage), the blob prefix from the version's modelUri
    base = f"/{ACCOUNT}/{fake.registry_container}"
    assert storage_calls(network) == [
        ("HEAD", f"{base}/iris/2/", {}),
        ("GET", base, {"restype": "container", "comp": "list", "prefix": "iris/2/", "delimiter": "/"}),
        ("GET", base, {"restype": "container", "comp": "list", "prefix": "iris/2/", "include": "metadata"}),
        *[("GET", f"{base}/iris/2/{name}", {}) for name in sorted(MLFLOW_FOLDER)],
    ]
    assert all("sig=" in line for line in network.storage) and network.escaped == []


# -------------------------------------------------------------------------------------- failures


def test_a_version_that_is_not_registered_is_a_platform_error(fake, files):
    with pytest.raises(PlatformError, match="download workspace model churn:9: HTTP 404") as info:
        files.read(ws_model("churn", "9"), "model_card.json")
    assert not info.value.transient


def test_a_refused_storage_key_is_a_platform_error_and_a_later_download_starts_clean(fake, blobs, files, container):
    upload(blobs, container, "models/churn/3/", ARTIFACT)
    fake.add_workspace_model("churn", "3", path=workspace_path("models/churn/3/"))
    fake.add_datastore(account=ACCOUNT, container=container, key="d3Jvbmcta2V5")  # a key Azurite refuses
    with pytest.raises(PlatformError, match="HTTP 403") as info:
        files.read(ws_model("churn", "3"), "model_card.json")
    assert not info.value.transient
    fake.add_datastore(account=ACCOUNT, container=container, key=account_key())
    assert files.read(ws_model("churn", "3"), "model_card.json") == ARTIFACT["model_card.json"]


def test_a_management_plane_outage_is_a_transient_platform_error(fake, files):
    fake.add_workspace_model("churn", "3", path=workspace_path("models/churn/3/"))
    fake.fail("POST", r"/listSecrets$", 503, times=10)  # beyond the SDK's own retries
    with pytest.raises(PlatformError, match="HTTP 503") as info:
        files.read(ws_model("churn", "3"), "model_card.json")
    assert info.value.transient


def test_a_sas_that_storage_refuses_is_a_platform_error(fake, blobs, files, network):
    upload(blobs, fake.registry_container, "iris/2/", MLFLOW_FOLDER)
    fake.add_registry_model("iris", "2", model_type="mlflow_model")
    fake.set_registry_sas(REGISTRY, registry_sas(fake, network, sign=False))
    with pytest.raises(PlatformError, match="download registry model iris:2") as info:
        files.read(reg_model("iris", "2"), "MLmodel")
    assert "403" in str(info.value) and not info.value.transient


@pytest.mark.parametrize("status, transient", [(503, True), (500, True), (403, False), (None, True)])
def test_a_blob_failure_inside_the_download_keeps_its_transience(status, transient):
    """BlobStorageClient.download wraps what storage answered in an MlException (after
    azure-storage-blob's own retries, which take minutes: not provoked here)."""
    from azure.ai.ml.exceptions import ErrorTarget, MlException
    from azure.core.exceptions import HttpResponseError, ServiceResponseError

    from functions.adapters.azure.errors import azure_errors

    if status is None:
        cause: Exception = ServiceResponseError("Connection aborted.")
    else:
        cause = HttpResponseError(message=f"storage said {status}")
        cause.status_code = status
    with pytest.raises(PlatformError) as info:
        with azure_errors("download workspace model churn:3"):
            try:
                raise cause
            except Exception as e:  # as azure.ai.ml._artifacts._blob_storage_helper does it
                raise MlException(message=f"Saving blob with prefix models/churn/3/ was unsuccessful. exception={e}",
                                  no_personal_data_message="Saving blob", target=ErrorTarget.ARTIFACT,
                                  error=e) from e
    assert info.value.transient is transient
    assert str(info.value).startswith("download workspace model churn:3: Saving blob with prefix models/churn/3/")


def test_a_version_whose_path_holds_no_files_is_a_platform_error(fake, files):
    fake.add_workspace_model("ghost", "1", path=workspace_path("models/ghost/1/"))
    with pytest.raises(PlatformError, match="the version has no files"):
        files.read(ws_model("ghost", "1"), "model_card.json")


def test_only_the_newest_downloads_are_kept(fake, blobs, ml, registry_ml, container):
    files = DownloadedModelFiles(lambda: ml, registry_ml, keep=1)
    for version in ("1", "2"):
        upload(blobs, container, f"models/churn/{version}/", ARTIFACT)
        fake.add_workspace_model("churn", version, path=workspace_path(f"models/churn/{version}/"))
    assert files.read(ws_model("churn", "1"), "model_card.json") is not None
    first = files._folders[ws_model("churn", "1").uri][0]
    assert files.read(ws_model("churn", "2"), "model_card.json") is not None
    assert not first.exists() and list(files._folders) == [ws_model("churn", "2").uri]
    fake.reset_calls()
    assert files.read(ws_model("churn", "1"), "model_card.json") is not None  # downloaded again
    assert [c.method for c in fake.calls] == ["GET", "GET", "POST"]


# ------------------------------------------------- an MLflow version from its files to its deployment


@pytest.fixture
def ports(fake, ml, registry_ml, files, credential) -> act.RolloutPorts:
    from functions.adapters.azure.clients import arm_client
    from functions.adapters.azure.diagnostic_settings import EndpointDiagnostics

    staging = AzureEndpoints(ml, ASSETS)
    # production's endpoints send their logs to the Log Analytics workspace (as bootstrap wires it)
    logs = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-monitor/providers/Microsoft.OperationalInsights/"
            "workspaces/law-endpoints")
    production = AzureEndpoints(ml, ASSETS, diagnostics=EndpointDiagnostics(
        arm_client(credential, transport=fake.transport()), logs))
    staging.begin_create_endpoint("iris-staging")
    production.begin_create_endpoint("iris-prod")
    fake.settle()
    return act.RolloutPorts(staging=staging, production=production,
                            registry=AzureModelRegistry(ml, registry_ml, WS_ARM, registry_name=REGISTRY),
                            traffic_log=FakeTrafficLog(), store=MemoryStore(), model_files=files,
                            workspace_id=WS_ARM)


def _rollout(name: str, version: str) -> dict:
    return {"id": f"rollout-{name}-{version}", "model": name, "version": version, "event_id": "evt-1",
            "topic": WS_ARM}


def _deploy(p: act.RolloutPorts, rollout: dict, deployment: str, contract: dict, *, source: str = "workspace",
            serving: str = "modelops") -> dict:
    return act.create_deployment(p, rollout, workspace="staging", endpoint="iris-staging", deployment=deployment,
                                 source=source, instance_type="Standard_DS2_v2", instance_count=1, contract=contract,
                                 skops_trusted_types=SKOPS_TRUSTED, serving=serving)


def test_an_mlflow_version_is_served_by_modelops_entry_point_with_its_contract(fake, blobs, ports, container):
    upload(blobs, container, "LocalUpload/0a1b2c/model/", MLFLOW_FOLDER)
    fake.add_workspace_model("iris", "2", path=workspace_path("LocalUpload/0a1b2c/model/"), model_type="mlflow_model")
    rollout = _rollout("iris", "2")
    read = act.read_contract(ports, rollout, overrides={"request_shape": "rows", "response_key": "result"})
    assert read["ok"] and read["contract"]["source"] == "MLmodel + contract.json + configuration"
    fake.reset_calls()
    assert _deploy(ports, rollout, "iris-v2", read["contract"]) == {"model_uri": "azureml:iris:2"}

    (put,) = fake.requests_to("PUT", "/deployments/")
    assert put.path == f"{WS_ARM}/onlineEndpoints/iris-staging/deployments/iris-v2"
    props = put.body["properties"]
    assert props["model"] == f"{WS_ARM}/models/iris/versions/2"
    assert props["codeConfiguration"] == {"codeId": f"{WS_ARM}/codes/modelops-score/versions/1",
                                          "scoringScript": "score.py"}
    assert props["environmentId"] == f"{WS_ARM}/environments/modelops-serving/versions/1"
    env = props["environmentVariables"]
    assert json.loads(env["MODELOPS_CONTRACT"]) == read["contract"]  # score.py answers by the stored contract
    assert json.loads(env["MODELOPS_SKOPS_TRUSTED"]) == SKOPS_TRUSTED
    assert put.body["tags"]["rollout"] == rollout["id"] and put.body["tags"]["model-version"] == "2"


def test_an_mlflow_version_can_be_deployed_no_code_from_the_workspace_and_the_registry(fake, blobs, ports, container):
    upload(blobs, container, "LocalUpload/0a1b2c/model/", MLFLOW_FOLDER)
    fake.add_workspace_model("iris", "2", path=workspace_path("LocalUpload/0a1b2c/model/"), model_type="mlflow_model")
    rollout = _rollout("iris", "2")
    contract = act.read_contract(ports, rollout)["contract"]
    fake.reset_calls()
    _deploy(ports, rollout, "iris-v2", contract, serving="mlflow_no_code")
    promoted = act.promote(ports, rollout, gate_report="gate-reports/iris/2/r.json", gate_summary={})
    assert promoted["uri"] == f"azureml://registries/{REGISTRY}/models/iris/versions/2"
    assert fake.registry_models[("iris", "2")]["properties"]["modelType"] == "mlflow_model"  # the import kept it
    act.create_deployment(ports, rollout, workspace="production", endpoint="iris-prod", deployment="iris-v2",
                          source="registry", model_uri=promoted["uri"], instance_type="Standard_DS2_v2",
                          instance_count=1, contract=contract, serving="mlflow_no_code")

    staging_put, production_put = fake.requests_to("PUT", "/deployments/")
    for put, model in ((staging_put, f"{WS_ARM}/models/iris/versions/2"), (production_put, promoted["uri"])):
        props = put.body["properties"]
        assert props["model"] == model
        assert "codeConfiguration" not in props and "environmentId" not in props  # AzureML supplies both
        assert json.loads(props["environmentVariables"]["MODELOPS_CONTRACT"]) == contract  # kept as a record
        assert props["instanceType"] == "Standard_DS2_v2" and props["endpointComputeType"] == "Managed"
        assert props["livenessProbe"]["initialDelay"] == "PT30S"  # the template's settings still apply
    fake.settle()
    assert ports.staging.get_deployment("iris-staging", "iris-v2").ready
    assert ports.production.get_deployment("iris-prod", "iris-v2").ready


def test_a_no_code_deployment_of_a_model_that_is_not_mlflow_is_refused_before_any_write(fake, blobs, ports, container):
    upload(blobs, container, "models/churn/3/", ARTIFACT)
    fake.add_workspace_model("churn", "3", path=workspace_path("models/churn/3/"))  # custom_model
    rollout = _rollout("churn", "3")
    contract = act.read_contract(ports, rollout)["contract"]
    fake.reset_calls()
    with pytest.raises(PlatformError, match="needs an mlflow_model model, and churn:3 is of type custom_model"):
        _deploy(ports, rollout, "churn-v3", contract, serving="mlflow_no_code")
    assert fake.writes() == []
    _deploy(ports, rollout, "churn-v3", contract)  # served by modelops' entry point, as every model can be
    (put,) = fake.requests_to("PUT", "/deployments/")
    assert put.body["properties"]["codeConfiguration"]["scoringScript"] == "score.py"


def test_the_fake_itself_refuses_a_no_code_put_for_a_model_that_is_not_mlflow(fake, ports, ml):
    """If the adapter's knowledge of the type were wrong, the service (here the fake) would refuse."""
    fake.add_workspace_model("churn", "3")  # custom_model on the wire
    lying = DeploymentSpec("iris-staging", "churn-v3", ModelRef("churn", "3", "azureml:churn:3",
                                                                 model_type="mlflow_model"), no_code=True)
    with pytest.raises(PlatformError, match="HTTP 400"):
        AzureEndpoints(ml, ASSETS).begin_create_deployment(lying)
