"""AzureEndpoints / AzureModelRegistry driven through the REAL azure-ai-ml against tests/fake_arm.py.

Assertions are on the wire: what the SDK, called by the adapters, actually sends (method, path,
api-version, JSON body). The only sockets opened are to loopback scoring servers started here; any
other request that escapes the fake transport is refused and recorded (see `escaped`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import requests.adapters

from functions.adapters.azure.aml import (
    NETWORK_ERROR_STATUS,
    AzureEndpoints,
    AzureModelRegistry,
    DeploymentAssets,
    registry_client,
    workspace_client,
)
from functions.ports import Conflict, DeploymentSpec, Endpoints, ModelRef, ModelRegistry, PlatformError
from functions.settings import ML_DIR, REPO_ROOT
from tests.fake_arm import (
    REGISTRY,
    REGISTRY_RESOURCE_GROUP,
    REGISTRY_SUBSCRIPTION,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    WORKSPACE_GUID,
    FakeAzureML,
)
from tests.fake_credentials import FakeCredential

MODEL = "credit-card-default"
REG_URI = f"azureml://registries/{REGISTRY}/models/{MODEL}/versions/3"
WS_ARM = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
          f"/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}")
# Registered assets: keeps deployments on the management plane (no blob upload).
ASSETS = DeploymentAssets(code="azureml:credit-card-default-score:1",
                          environment="azureml:credit-card-default-serving:1")
TEMPLATE = ML_DIR / "endpoints" / "deployment.yml"
DISCOVERY = "https://eastus.api.azureml.ms/registrymanagement/v1.0/registries/"


class EscapedNetworkCall(RuntimeError):
    """Not a requests/azure-core error, so azure-core neither wraps nor retries it."""


@pytest.fixture(autouse=True)
def escaped(monkeypatch) -> list[str]:
    """Refuse (and record) every real socket except loopback: the fake is a BaseAdapter, not an
    HTTPAdapter, so it is unaffected."""
    seen: list[str] = []
    original = requests.adapters.HTTPAdapter.send

    def guarded(self, request, *args, **kwargs):
        if urlsplit(request.url).hostname in ("127.0.0.1", "localhost"):
            return original(self, request, *args, **kwargs)
        seen.append(f"{request.method} {request.url}")
        raise EscapedNetworkCall(f"test refused a real network call: {request.method} {request.url}")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", guarded)
    return seen


@pytest.fixture
def fake():
    fake = FakeAzureML()
    yield fake
    fake.settle()  # let background poller threads finish
    assert fake.unhandled == [], "the SDK called routes the fake does not know"


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def ml(fake, credential):
    # retry_backoff_factor=0: the SDK's own retries (3 on 429/5xx/connection errors) without sleeping.
    return workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=credential,
                            transport=fake.transport(), retry_backoff_factor=0.0)


@pytest.fixture
def endpoints(ml) -> AzureEndpoints:
    return AzureEndpoints(ml, ASSETS)


@pytest.fixture
def slow():
    """A fake whose operations finish only on settle(), and endpoints on it."""
    fake_slow = FakeAzureML(settle_after=None)
    eps = AzureEndpoints(workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=FakeCredential(),
                                          transport=fake_slow.transport()), ASSETS)
    yield fake_slow, eps
    fake_slow.settle()  # let background poller threads finish


@pytest.fixture
def registry(fake, ml, credential) -> AzureModelRegistry:
    def connect():
        return registry_client(REGISTRY, credential=credential, transport=fake.transport(), retry_backoff_factor=0.0)

    return AzureModelRegistry(ml, connect, WS_ARM)


def spec(name: str = "blue-v3", uri: str = REG_URI, endpoint: str = "ccd-staging", model_type: str = "",
         **kw) -> DeploymentSpec:
    version = uri.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return DeploymentSpec(endpoint=endpoint, name=name, model=ModelRef(MODEL, version, uri, model_type=model_type),
                          **kw)


def live_endpoint(fake: FakeAzureML, endpoints: AzureEndpoints, name: str = "ccd-prod", **deployments: int) -> None:
    """An endpoint with Succeeded deployments and the given traffic, built through the adapter."""
    endpoints.begin_create_endpoint(name)
    fake.settle()
    for dep in deployments:
        endpoints.begin_create_deployment(spec(dep, endpoint=name))
    fake.settle()
    if any(deployments.values()):
        endpoints.set_traffic(name, dict(deployments))
        fake.settle()
    fake.reset_calls()


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------- basics


def test_importing_the_adapters_imports_no_azure_sdk():
    code = (
        "import sys, functions.adapters.azure.aml\n"
        "bad = [m for m in sys.modules if m.startswith(('azure.ai.ml', 'azure.identity', 'azure.core'))]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_adapters_satisfy_the_ports(endpoints, registry, credential, fake):
    assert isinstance(endpoints, Endpoints)
    assert isinstance(registry, ModelRegistry)
    assert endpoints.get_endpoint("ccd-staging") is None
    # every call went through the fake, authenticated with the fake credential's JWT
    call = fake.calls[0]
    assert call.host == "management.azure.com" and call.headers["Authorization"].startswith("Bearer ey")
    assert ("https://management.azure.com/.default",) in credential.scopes


# ------------------------------------------------------------------------------------- endpoints


def test_create_endpoint_puts_key_auth_and_returns_without_waiting(slow):
    fake_slow, eps = slow
    try:
        eps.begin_create_endpoint("ccd-staging", tags={"stage": "staging"})
        (put,) = fake_slow.requests_to("PUT")
        assert put.path.endswith("/onlineEndpoints/ccd-staging")
        assert put.api_version == "2022-02-01-preview"
        assert put.body["properties"]["authMode"] == "Key"
        assert put.body["tags"] == {"stage": "staging"}
        assert put.body["location"] == "eastus"  # the SDK GETs the workspace for it first
        state = eps.get_endpoint("ccd-staging")
        assert state.provisioning_state == "Creating" and not state.ready
        fake_slow.settle()
        state = eps.get_endpoint("ccd-staging")
        assert state.ready and state.scoring_uri.endswith("/score") and state.traffic == {} and state.deployments == {}
    finally:
        fake_slow.settle()


def test_create_endpoint_never_re_puts_an_existing_endpoint(fake, endpoints):
    live_endpoint(fake, endpoints, "ccd-prod", blue=100)
    endpoints.begin_create_endpoint("ccd-prod", tags={"stage": "production"})
    assert fake.writes() == []  # a re-PUT would have sent traffic {} and taken blue's 100% away
    assert endpoints.get_endpoint("ccd-prod").traffic == {"blue": 100}


def test_getters_map_404_to_none(fake, endpoints, registry):
    assert endpoints.get_endpoint("nope") is None
    assert endpoints.get_deployment("nope", "blue") is None
    endpoints.begin_create_endpoint("ccd-staging")
    assert endpoints.get_deployment("ccd-staging", "blue") is None
    assert registry.get_workspace_model(MODEL, "9") is None
    assert registry.get_registry_model(MODEL, "9") is None
    statuses = {(c.method, c.status) for c in fake.calls if "/models/" in c.path}
    assert statuses == {("GET", 404)}


# ----------------------------------------------------------------------------------- deployments


def _template() -> dict:
    import yaml

    return yaml.safe_load(TEMPLATE.read_text()) if TEMPLATE.is_file() else {}


def test_deployment_put_carries_registry_model_instances_app_insights_and_template_settings(fake, endpoints, escaped):
    endpoints.begin_create_endpoint("ccd-staging")
    fake.settle()
    fake.reset_calls()
    endpoints.begin_create_deployment(spec(instance_type="Standard_DS2_v2", instance_count=2,
                                           environment_variables={"MODELOPS_STAGE": "staging"},
                                           tags={"modelops.model": "credit-card-default:3"}))
    (put,) = fake.requests_to("PUT")
    assert put.path == f"{WS_ARM}/onlineEndpoints/ccd-staging/deployments/blue-v3"
    assert put.api_version == "2023-04-01-preview"
    props = put.body["properties"]
    assert props["model"] == REG_URI
    assert props["instanceType"] == "Standard_DS2_v2" and put.body["sku"]["capacity"] == 2
    assert props["appInsightsEnabled"] is True
    assert props["endpointComputeType"] == "Managed"
    assert props["codeConfiguration"] == {
        "codeId": f"{WS_ARM}/codes/credit-card-default-score/versions/1", "scoringScript": "score.py"}
    assert props["environmentId"] == f"{WS_ARM}/environments/credit-card-default-serving/versions/1"
    assert props["environmentVariables"]["MODELOPS_STAGE"] == "staging"
    assert put.body["tags"]["modelops.model"] == "credit-card-default:3"
    template = _template()
    if template:  # probes and request settings come from ml/endpoints/deployment.yml
        for probe in ("liveness_probe", "readiness_probe"):
            wire = props["livenessProbe" if probe == "liveness_probe" else "readinessProbe"]
            for key, wire_key in (("initial_delay", "initialDelay"), ("period", "period"), ("timeout", "timeout")):
                if key in template.get(probe, {}):
                    assert wire[wire_key] == f"PT{template[probe][key]}S"
            for key, wire_key in (("failure_threshold", "failureThreshold"), ("success_threshold", "successThreshold")):
                if key in template.get(probe, {}):
                    assert wire[wire_key] == template[probe][key]
        settings = template.get("request_settings", {})
        if "request_timeout_ms" in settings:
            assert props["requestSettings"]["requestTimeout"] == f"PT{settings['request_timeout_ms'] // 1000}S"
        if "max_concurrent_requests_per_instance" in settings:
            assert props["requestSettings"]["maxConcurrentRequestsPerInstance"] == \
                settings["max_concurrent_requests_per_instance"]
        for key, value in (template.get("environment_variables") or {}).items():
            assert props["environmentVariables"][key] == str(value)
    # Quirk: with a registry model the SDK looks for a "default deployment template" through a registry
    # discovery client it builds WITHOUT the MLClient's transport (so it escapes to the network); it
    # swallows the failure and deploys anyway.
    assert escaped == [f"GET {DISCOVERY}{REGISTRY}/discovery?api-version=v1.0"]

    fake.settle()
    state = endpoints.get_deployment("ccd-staging", "blue-v3")
    assert state.ready and state.model_uri == REG_URI
    assert endpoints.get_endpoint("ccd-staging").deployments == {"blue-v3": "Succeeded"}


def test_workspace_model_reference_is_sent_as_its_arm_id(fake, endpoints):
    endpoints.begin_create_endpoint("ccd-staging")
    endpoints.begin_create_deployment(spec("green-v4", uri=f"azureml:{MODEL}:4"))
    (put,) = fake.requests_to("PUT", "/deployments/")
    assert put.body["properties"]["model"] == f"{WS_ARM}/models/{MODEL}/versions/4"
    assert endpoints.get_deployment("ccd-staging", "green-v4").model_uri == f"azureml:{MODEL}:4"


def test_recreating_a_deployment_is_a_noop_for_the_same_model_and_a_conflict_for_another(fake, endpoints):
    endpoints.begin_create_endpoint("ccd-staging")
    endpoints.begin_create_deployment(spec())
    fake.settle()
    fake.reset_calls()
    endpoints.begin_create_deployment(spec())
    assert fake.writes() == []
    with pytest.raises(Conflict, match="already serves"):
        endpoints.begin_create_deployment(spec(uri=REG_URI.replace("/versions/3", "/versions/4")))
    assert fake.writes() == []


def test_a_failed_deployment_is_re_put(slow):
    slow, eps = slow
    try:
        eps.begin_create_endpoint("ccd-staging")
        slow.settle()
        eps.begin_create_deployment(spec())
        slow.fail_operation("deployment", ("ccd-staging", "blue-v3"), "image build failed")
        failed = eps.get_deployment("ccd-staging", "blue-v3")
        assert failed.failed and "get-logs" in failed.error
        slow.reset_calls()
        eps.begin_create_deployment(spec())
        assert [c.method for c in slow.writes()] == ["PUT"]
    finally:
        slow.settle()


def test_invalid_names_and_models_are_refused_before_any_request(fake, endpoints):
    with pytest.raises(PlatformError, match="not valid"):
        endpoints.begin_create_deployment(spec(name="v3"))  # AzureML needs 3-32 characters
    with pytest.raises(PlatformError, match="not valid"):
        endpoints.begin_create_deployment(spec(name="Blue-v3"))  # traffic keys are lower-cased by the SDK
    with pytest.raises(PlatformError, match="not an AzureML model reference"):
        endpoints.begin_create_deployment(spec(uri="/tmp/models/credit-card-default/3"))
    assert fake.calls == []


def test_default_assets_use_the_repo_template_code_and_environment():
    """Without references the SDK would upload ml/ and build ml/environments/serving.yml (blob
    storage, outside the fake); here only the entity is checked — building it sends nothing."""
    deployment = AzureEndpoints(ml_client=None).build_deployment(spec(instance_count=3))
    assert Path(deployment.base_path, deployment.code_configuration.code).resolve() == ML_DIR.resolve()
    assert deployment.code_configuration.scoring_script == "score.py"
    env = deployment.environment
    assert env.name == "credit-card-default-serving" and Path(env.path).resolve() == (ML_DIR / "environments").resolve()
    assert deployment.model == REG_URI and deployment.instance_count == 3 and deployment.app_insights_enabled
    assert deployment.endpoint_name == "ccd-staging" and deployment.name == "blue-v3"


def test_a_no_code_deployment_puts_the_mlflow_model_without_code_or_environment(fake, endpoints):
    """AzureML's no-code MLflow deployment (azureml-examples cli/endpoints/online/mlflow/
    sklearn-deployment.yaml: model + instance type/count): AzureML supplies the scoring script and
    image. The template's probes, request settings and variables still go."""
    fake.add_registry_model(MODEL, "3", model_type="mlflow_model")
    endpoints.begin_create_endpoint("ccd-staging")
    fake.settle()
    fake.reset_calls()
    endpoints.begin_create_deployment(spec(model_type="mlflow_model", no_code=True, instance_count=2,
                                           environment_variables={"MODELOPS_CONTRACT": "{}"}))
    (put,) = fake.requests_to("PUT")
    props = put.body["properties"]
    assert "codeConfiguration" not in props and "environmentId" not in props
    assert props["model"] == REG_URI and props["instanceType"] == "Standard_DS3_v2" and put.body["sku"]["capacity"] == 2
    assert props["environmentVariables"]["MODELOPS_CONTRACT"] == "{}" and props["appInsightsEnabled"] is True
    if _template():
        assert props["readinessProbe"]["period"] == f"PT{_template()['readiness_probe']['period']}S"
    fake.settle()
    assert endpoints.get_deployment("ccd-staging", "blue-v3").ready


@pytest.mark.parametrize("model_type, said", [("custom_model", "of type custom_model"), ("", "of unknown type")])
def test_a_no_code_deployment_of_a_model_that_is_not_mlflow_is_refused_before_any_request(fake, endpoints,
                                                                                           model_type, said):
    with pytest.raises(PlatformError) as err:
        endpoints.begin_create_deployment(spec(model_type=model_type, no_code=True))
    assert f"needs an mlflow_model model, and {MODEL}:3 is {said}" in str(err.value)
    assert "serving: modelops" in str(err.value) and not err.value.transient
    assert fake.calls == []


def test_without_a_template_a_no_code_deployment_is_the_model_and_its_compute():
    assets = DeploymentAssets(template=None, code="azureml:score:1", environment="azureml:serving:1")
    deployment = AzureEndpoints(ml_client=None, assets=assets).build_deployment(
        spec(model_type="mlflow_model", no_code=True, instance_count=3))
    assert deployment.code_configuration is None and deployment.environment is None  # the overrides do not apply
    assert deployment.model == REG_URI and deployment.instance_count == 3 and deployment.name == "blue-v3"


def test_delete_deployment_is_idempotent(fake, endpoints):
    live_endpoint(fake, endpoints, "ccd-prod", blue=100, green=0)
    endpoints.begin_delete_deployment("ccd-prod", "green")
    (delete,) = fake.requests_to("DELETE")
    assert delete.path == f"{WS_ARM}/onlineEndpoints/ccd-prod/deployments/green"
    assert delete.api_version == "2023-04-01-preview"
    wait_for(lambda: endpoints.get_deployment("ccd-prod", "green") is None)
    endpoints.begin_delete_deployment("ccd-prod", "green")  # gone: fine
    endpoints.begin_delete_deployment("no-such-endpoint", "green")  # endpoint gone too: fine


# ---------------------------------------------------------------------------------------- traffic


def test_traffic_update_puts_the_whole_endpoint_with_the_full_map(fake, endpoints):
    live_endpoint(fake, endpoints, "ccd-prod", blue=100, green=0, old=0)
    assert endpoints.get_endpoint("ccd-prod").traffic == {"blue": 100, "green": 0, "old": 0}
    fake.reset_calls()
    endpoints.set_traffic("ccd-prod", {"blue": 90, "green": 10, "old": 0})
    (put,) = fake.requests_to("PUT")
    assert put.path == f"{WS_ARM}/onlineEndpoints/ccd-prod" and put.api_version == "2022-02-01-preview"
    # Quirk: the SDK strips 0-weight entries before sending (absent means 0 to the service).
    assert put.body["properties"]["traffic"] == {"blue": 90, "green": 10}
    assert put.body["properties"]["authMode"] == "Key"  # the rest of the endpoint round-trips
    fake.settle()
    assert endpoints.get_endpoint("ccd-prod").traffic == {"blue": 90, "green": 10, "old": 0}
    assert set(endpoints.get_endpoint("ccd-prod").deployments) == {"blue", "green", "old"}


def test_a_map_that_drops_a_live_deployment_is_refused_before_any_write(fake, endpoints):
    live_endpoint(fake, endpoints, "ccd-prod", blue=90, green=10)
    with pytest.raises(PlatformError, match="drops live deployment.*blue"):
        endpoints.set_traffic("ccd-prod", {"green": 100})
    with pytest.raises(PlatformError, match="unknown deployment.*red"):
        endpoints.set_traffic("ccd-prod", {"blue": 0, "green": 0, "red": 100})
    assert fake.writes() == []
    assert {c.method for c in fake.calls} == {"GET"}


def test_malformed_maps_are_refused_before_any_request(fake, endpoints):
    for bad in ({"blue": 90, "green": 5}, {"blue": 110, "green": -10}, {}, {"blue": 50.5, "green": 49.5}):
        with pytest.raises(PlatformError):
            endpoints.set_traffic("ccd-prod", bad)
    assert fake.calls == []


def test_setting_the_current_map_sends_no_write(fake, endpoints):
    live_endpoint(fake, endpoints, "ccd-prod", blue=100, green=0)
    endpoints.set_traffic("ccd-prod", {"blue": 100, "green": 0})
    assert fake.writes() == []


# -------------------------------------------------------------------------------------- registry


def test_promote_imports_the_workspace_version_with_lineage_tags_and_is_idempotent(fake, registry):
    fake.add_workspace_model(MODEL, "3", tags={"roc_auc": "0.77"})
    ws_model = registry.get_workspace_model(MODEL, "3")
    assert ws_model.uri == f"azureml:{MODEL}:3" and ws_model.source == WS_ARM and ws_model.tags == {"roc_auc": "0.77"}
    assert fake.requests_to("GET", "/discovery") == []  # the registry client is built on first use
    lineage = {"modelops.source_workspace": WS_ARM, "modelops.gate_run": "gate-42"}
    fake.reset_calls()

    promoted = registry.promote(ws_model, lineage)

    assert promoted.uri == REG_URI and promoted.version == "3"
    assert promoted.tags == {"roc_auc": "0.77", **lineage}
    assert promoted.source == f"azureml://registries/{REGISTRY}"
    reg_prefix = (f"/subscriptions/{REGISTRY_SUBSCRIPTION}/resourceGroups/{REGISTRY_RESOURCE_GROUP}"
                  f"/providers/Microsoft.MachineLearningServices/registries/{REGISTRY}")
    (discovery,) = fake.requests_to("GET", "/discovery")
    assert discovery.host == "eastus.api.azureml.ms"
    (imp,) = fake.requests_to("POST", "/import")
    assert imp.path == f"{reg_prefix}/import" and imp.api_version == "2021-10-01-dataplanepreview"
    assert imp.host == "cert-eastus.experiments.azureml.net"
    assert imp.body == {"properties": {
        "referenceType": "Id", "destinationName": MODEL, "destinationVersion": "3",
        "sourceAssetId": f"azureml://locations/eastus/workspaces/{WORKSPACE_GUID}/models/{MODEL}/versions/3"}}
    tag_put = fake.requests_to("PUT", f"/registries/{REGISTRY}/models/{MODEL}/versions/3")[-1]
    assert tag_put.body["properties"]["tags"] == {"roc_auc": "0.77", **lineage}
    assert [(c.method, c.path.split(REGISTRY)[-1], c.status) for c in fake.writes()] == [
        ("POST", "/import", 202),
        ("PUT", f"/tempdatarefs/{MODEL}/versions/3", 409),  # "already exists": the SDK skips the upload
        ("PUT", f"/models/{MODEL}/versions/3", 200),
    ]
    assert registry.get_registry_model(MODEL, "3") == promoted

    fake.reset_calls()
    assert registry.promote(ws_model, lineage) == promoted
    assert fake.writes() == []


def test_promote_repairs_missing_lineage_without_overwriting(fake, registry):
    fake.add_workspace_model(MODEL, "3")
    fake.add_registry_model(MODEL, "3", tags={"modelops.gate_run": "gate-1"})  # imported, then crashed
    ws_model = registry.get_workspace_model(MODEL, "3")
    promoted = registry.promote(ws_model, {"modelops.gate_run": "gate-2", "modelops.source_workspace": WS_ARM})
    assert promoted.tags == {"modelops.gate_run": "gate-1", "modelops.source_workspace": WS_ARM}
    assert fake.requests_to("POST", "/import") == []


def test_promote_of_a_missing_workspace_model_is_a_platform_error(fake, registry):
    with pytest.raises(PlatformError, match="HTTP 404") as err:
        registry.promote(ModelRef(MODEL, "8", f"azureml:{MODEL}:8"), {})
    assert not err.value.transient


def test_model_refs_carry_the_type_azureml_reports_and_the_import_keeps_it(fake, registry):
    fake.add_workspace_model("iris", "2", model_type="mlflow_model",
                             flavors={"python_function": {"data": {"loader_module": "mlflow.sklearn"}}})
    fake.add_workspace_model(MODEL, "3")
    iris = registry.get_workspace_model("iris", "2")
    assert iris.model_type == "mlflow_model" and registry.get_workspace_model(MODEL, "3").model_type == "custom_model"
    (get,) = fake.requests_to("GET", "/models/iris/versions/2")
    assert get.status == 200 and fake.workspace_models[("iris", "2")]["properties"]["modelType"] == "mlflow_model"
    promoted = registry.promote(iris, {"modelops.gate_run": "g"})
    assert promoted.model_type == "mlflow_model"
    assert registry.get_registry_model("iris", "2").model_type == "mlflow_model"
    assert fake.registry_models[("iris", "2")]["properties"]["flavors"] == {
        "python_function": {"data": {"loader_module": "mlflow.sklearn"}}}


# ------------------------------------------------------------------------------------ failures


def test_5xx_after_the_sdk_retries_is_a_transient_platform_error(fake, endpoints):
    fake.fail("GET", r"/onlineEndpoints/ccd-prod$", 503, times=4)  # first try + 3 SDK retries
    with pytest.raises(PlatformError) as err:
        endpoints.get_endpoint("ccd-prod")
    assert err.value.transient and "503" in str(err.value)
    assert len(fake.requests_to("GET", "/onlineEndpoints/ccd-prod")) == 4


def test_a_single_503_is_absorbed_by_the_sdk_retry(fake, endpoints):
    fake.fail("GET", r"/onlineEndpoints/ccd-prod$", 503, times=1)
    assert endpoints.get_endpoint("ccd-prod") is None  # retried, then the real 404


def test_throttling_on_a_write_is_transient_and_a_400_is_not(fake, endpoints):
    fake.fail("PUT", r"/onlineEndpoints/ccd-staging$", 429, times=4, code="TooManyRequests")
    with pytest.raises(PlatformError) as err:
        endpoints.begin_create_endpoint("ccd-staging")
    assert err.value.transient
    fake.fail("PUT", r"/onlineEndpoints/ccd-staging$", 400, code="BadArgument")
    with pytest.raises(PlatformError) as err:
        endpoints.begin_create_endpoint("ccd-staging")
    assert not err.value.transient and "400" in str(err.value)


def test_registry_503_is_transient(fake, registry):
    fake.fail("GET", rf"/registries/{REGISTRY}/models/{MODEL}/versions/3$", 503, times=4)
    with pytest.raises(PlatformError) as err:
        registry.get_registry_model(MODEL, "3")
    assert err.value.transient


# ---------------------------------------------------------------------------------------- scoring


class _ScoringServer:
    """A tiny loopback scoring endpoint that checks the key and records each request."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.key = ""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                ok = self.headers.get("Authorization") == f"Bearer {outer.key}"
                payload = {"predictions": [0.25] * len(json.loads(body)["data"])} if ok else {"error": "bad key"}
                data = json.dumps(payload).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/score"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scoring_server():
    server = _ScoringServer()
    yield server
    server.close()


def test_score_posts_with_the_endpoint_key_and_the_deployment_header(fake, endpoints, scoring_server):
    fake.set_scoring_uri("ccd-prod", scoring_server.url)
    live_endpoint(fake, endpoints, "ccd-prod", blue=90, green=10)
    scoring_server.key = fake.keys["ccd-prod"]["primaryKey"]
    body = {"data": [{"credit_limit": 1000}, {"credit_limit": 2000}]}

    result = endpoints.score("ccd-prod", body, deployment="green", timeout=5)

    assert result.status == 200 and result.body == {"predictions": [0.25, 0.25]} and result.elapsed_ms > 0
    (seen,) = scoring_server.requests
    assert seen["headers"]["Authorization"] == f"Bearer {scoring_server.key}"
    assert seen["headers"]["azureml-model-deployment"] == "green"
    assert seen["body"] == body
    assert len(fake.requests_to("POST", "/listKeys")) == 1

    endpoints.score("ccd-prod", body)  # URI and key are cached; no deployment header without one
    assert len(fake.requests_to("POST", "/listKeys")) == 1
    assert "azureml-model-deployment" not in {k.lower() for k in scoring_server.requests[-1]["headers"]}


def test_score_refetches_the_key_once_after_a_401(fake, endpoints, scoring_server):
    fake.set_scoring_uri("ccd-prod", scoring_server.url)
    live_endpoint(fake, endpoints, "ccd-prod", blue=100)
    scoring_server.key = fake.keys["ccd-prod"]["primaryKey"]
    assert endpoints.score("ccd-prod", {"data": [{}]}).status == 200
    scoring_server.key = fake.rotate_keys("ccd-prod")["primaryKey"]
    assert endpoints.score("ccd-prod", {"data": [{}]}).status == 200
    assert len(fake.requests_to("POST", "/listKeys")) == 2


def test_score_without_an_http_answer_is_status_599(fake, endpoints):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake.set_scoring_uri("ccd-prod", f"http://127.0.0.1:{port}/score")
    live_endpoint(fake, endpoints, "ccd-prod", blue=100)
    result = endpoints.score("ccd-prod", {"data": [{}]}, timeout=2)
    assert result.status == NETWORK_ERROR_STATUS and "ConnectionError" in result.body["error"]


def test_score_on_a_missing_endpoint_is_a_platform_error(fake, endpoints):
    with pytest.raises(PlatformError, match="404"):
        endpoints.score("nope", {"data": [{}]})


def test_recreating_a_deployment_that_is_being_deleted_is_transient(slow):
    slow, eps = slow
    try:
        eps.begin_create_endpoint("ccd-staging")
        slow.settle()
        eps.begin_create_deployment(spec())
        slow.settle()
        eps.begin_delete_deployment("ccd-staging", "blue-v3")
        assert eps.get_deployment("ccd-staging", "blue-v3").provisioning_state == "Deleting"
        with pytest.raises(PlatformError, match="being deleted") as err:
            eps.begin_create_deployment(spec())
        assert err.value.transient
    finally:
        slow.settle()


# ------------------------------------------------------------- registry import answered two ways


@pytest.mark.parametrize("answer", ["location", "async-operation"])
def test_promote_survives_both_ways_the_import_is_answered_and_writes_the_lineage(fake, registry, answer):
    """202 + Location then 204 (the recorded session), or 202 + Azure-AsyncOperation only (Microsoft's
    REST docs): with the second, azure-ai-ml goes on into its upload path after the import and raises
    AttributeError; promote re-reads the version and tags it all the same."""
    fake.import_answer = answer
    fake.add_workspace_model(MODEL, "3", tags={"roc_auc": "0.77"})
    ws_model = registry.get_workspace_model(MODEL, "3")
    lineage = {"modelops.source_workspace": WS_ARM, "modelops.gate_run": "gate-42"}
    fake.reset_calls()

    promoted = registry.promote(ws_model, lineage)

    assert promoted.uri == REG_URI and promoted.tags == {"roc_auc": "0.77", **lineage}
    assert fake.registry_models[(MODEL, "3")]["properties"]["tags"] == {"roc_auc": "0.77", **lineage}
    (imp,) = fake.requests_to("POST", "/import")
    assert imp.status == 202
    if answer == "location":
        assert [c.status for c in fake.requests_to("GET", "/fake-results/")][-1] == 204
    else:
        assert fake.requests_to("GET", "/fake-results/") == []  # no Location: the status body is final
        assert [c.status for c in fake.requests_to("GET", "/fake-operations/")][-1] == 200
    tag_puts = fake.requests_to("PUT", f"/registries/{REGISTRY}/models/{MODEL}/versions/3")
    assert len(tag_puts) == 1 and tag_puts[0].body["properties"]["tags"] == {"roc_auc": "0.77", **lineage}
    assert registry.get_registry_model(MODEL, "3") == promoted
    fake.reset_calls()
    assert registry.promote(ws_model, lineage) == promoted and fake.writes() == []


def test_an_sdk_failure_with_no_imported_version_is_a_platform_error_naming_it(fake, registry, monkeypatch):
    fake.add_workspace_model(MODEL, "3")
    ws_model = registry.get_workspace_model(MODEL, "3")
    client = registry.registry

    def broken(*args, **kwargs):
        raise AttributeError("'WorkspaceAssetReference' object has no attribute 'datastore'")

    monkeypatch.setattr(client.models, "create_or_update", broken)
    with pytest.raises(PlatformError) as err:
        registry.promote(ws_model, {"modelops.gate_run": "g"})
    message = str(err.value)
    assert message.startswith(f"import {MODEL}:3 into registry {REGISTRY}: azure-ai-ml failed (AttributeError: ")
    assert "the registry has no version" in message and not err.value.transient
    assert isinstance(err.value.__cause__, AttributeError)


def test_an_unexpected_sdk_exception_while_tagging_or_reading_is_a_platform_error(fake, registry, monkeypatch):
    fake.add_workspace_model(MODEL, "3")
    fake.add_registry_model(MODEL, "3")
    ws_model = registry.get_workspace_model(MODEL, "3")
    client = registry.registry
    monkeypatch.setattr(client.models, "create_or_update", lambda *a, **k: (_ for _ in ()).throw(KeyError("path")))
    with pytest.raises(PlatformError, match=rf"^tag registry model {MODEL}:3: azure-ai-ml failed unexpectedly "
                                            r"\(KeyError: 'path'\)"):
        registry.promote(ws_model, {"modelops.gate_run": "g"})
    monkeypatch.setattr(client.models, "get", lambda *a, **k: (_ for _ in ()).throw(TypeError("bad")))
    with pytest.raises(PlatformError, match=rf"^get registry model {MODEL}:3: azure-ai-ml failed unexpectedly"):
        registry.get_registry_model(MODEL, "3")
