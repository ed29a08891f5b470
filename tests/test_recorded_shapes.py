"""The fakes' answers against azure-sdk-for-python's recorded sessions of the same calls, field by field.

The recordings (tests/payloads/recorded/, trimmed, each naming its source path and commit) are what
the real services answered the real SDKs: online endpoint and deployment creation with their
operation status (azure-ai-ml), the registry import and the imported version (azure-ai-ml), and
Log Analytics query answers — whole, partial, timed out (azure-monitor-query). Each call is made
here through the real adapters or the query API against the fakes, and the two answers are
compared by SHAPE: the keys at every level (free-form maps — tags, traffic, properties — by their
values' types only), the JSON type of each value (null matches anything: the field is nullable),
the status, and the long-running-operation headers. What differs is listed in DIFFERENCES with
the reason it is left so; anything else that differs fails the test.

Found and fixed in the fakes by this comparison: the endpoint/deployment PUT's Location and
x-ms-async-operation-timeout headers, their three-key systemData, the fields the service fills into
a deployment (description, modelMountPath, privateNetworkConnection, egressPublicNetworkAccess,
requestSettings.maxQueueWait, sku.tier), the operation status' startTime/percentComplete and its
"Updating" while running, the import's `null` body and final 204, the registry version's
originAssetId/jobName (and no provisioningState/stage), the partial error without correlationId,
the 504 body. Values that differ but are not shapes (not compared here): the recorded endpoint has
scoringUri null while Creating (the fake gives it at once); the recorded registry version's `type`
is "models". The pipeline job PUT's answer is compared too (pipeline_job test_pipeline_job_create);
the nodes inside `jobs` are the caller's own (their keys are what was sent), so only `jobs` is a map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from functions.adapters.azure.aml import AzureEndpoints, AzureModelRegistry, DeploymentAssets, registry_client, \
    workspace_client
from functions.ports import DeploymentSpec, ModelRef
from tests.fake_arm import REGISTRY, RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML
from tests.fake_credentials import FakeCredential
from tests.fake_log_analytics import CONSOLE_TABLE, FakeLogAnalytics

RECORDED = Path(__file__).parent / "payloads" / "recorded"
MODEL = "credit-card-default"
WS_ARM = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
          f"/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}")
# Free-form maps: their keys are data, so only the types of their values are compared.
MAPS = {".tags", ".properties.tags", ".properties.properties", ".properties.traffic", ".properties.mirrorTraffic",
        ".properties.environmentVariables", ".properties.flavors", ".properties.jobs", ".properties.inputs",
        ".properties.outputs", ".properties.settings"}
# Data: what the rows hold depends on the query (the recorded and the fake's queries differ).
DATA = {".tables[].rows"}

# What the fakes answer differently, and why that is left so (every other difference fails).
DIFFERENCES: dict[str, dict[str, str]] = {
    "endpoint_put": {},
    "deployment_put": {},
    "operation_status": {},
    "import_post": {},
    "import_poll_running": {},
    "import_poll_done": {},
    "registry_version_get": {},
    "query_ok": {},
    "query_partial": {},
    "query_timeout": {},
    "job_put": {},
}


def recorded(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / name).read_text())


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def shape_differences(real: Any, fake: Any, path: str = "") -> list[str]:
    """How `fake`'s shape departs from `real`'s (see the module docstring)."""
    if real is None or fake is None or (path in DATA and _kind(real) == _kind(fake)):
        return []
    if _kind(real) != _kind(fake):
        return [f"{path or '.'}: {_kind(real)} recorded, {_kind(fake)} in the fake"]
    if isinstance(real, dict):
        if path in MAPS:
            values = {_kind(v) for v in real.values()} - {"null"}
            theirs = {_kind(v) for v in fake.values()} - {"null"}
            return [] if not values or not theirs or values == theirs else \
                [f"{path}: map of {sorted(values)} recorded, of {sorted(theirs)} in the fake"]
        out = [f"{path}.{k}: missing in the fake" for k in sorted(real.keys() - fake.keys())]
        out += [f"{path}.{k}: only in the fake" for k in sorted(fake.keys() - real.keys())]
        for key in sorted(real.keys() & fake.keys()):
            out += shape_differences(real[key], fake[key], f"{path}.{key}")
        return out
    if isinstance(real, list) and real and fake:
        return shape_differences(real[0], fake[0], f"{path}[]")
    return []


def compare(entry: dict[str, Any], status: int, headers: dict[str, str], body: Any) -> set[str]:
    found = []
    if status != entry["status"]:
        found.append(f"status {entry['status']} recorded, {status} in the fake")
    lowered = {k.lower() for k in headers}
    found += [f"header {h}: missing in the fake" for h in entry["headers"] if h.lower() not in lowered]
    if "raw_body" in entry:
        fake_raw = body if isinstance(body, str) else ("" if body is None else json.dumps(body))
        if (entry["raw_body"] == "") != (fake_raw == ""):
            found.append(f"body {entry['raw_body']!r} recorded, {fake_raw[:40]!r} in the fake")
    else:
        found += shape_differences(entry["body"], body)
    return set(found)


def check(name: str, entry: dict[str, Any], status: int, headers: dict[str, str], body: Any) -> None:
    assert compare(entry, status, headers, body) == set(DIFFERENCES[name]), name


# --------------------------------------------------------------------------------------- azure-ai-ml


@pytest.fixture
def fake():
    fake = FakeAzureML()
    yield fake
    fake.settle()
    assert fake.unhandled == []


def _first(fake: FakeAzureML, method: str, contains: str) -> Any:
    import time

    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while not fake.requests_to(method, contains):
        assert time.monotonic() < deadline, f"no {method} {contains} in time"
        time.sleep(0.01)
    return fake.requests_to(method, contains)[0]


def _answer(call) -> tuple[int, dict[str, str], Any]:
    body = call.response_body
    if isinstance(body, bytes):
        body = body.decode()
    return call.status, call.response_headers, body


def test_online_endpoint_and_deployment_answers_have_the_recorded_shapes(fake):
    rec = recorded("aml-online-deployment.json")["entries"]
    ml = workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=FakeCredential(),
                          transport=fake.transport(), retry_backoff_factor=0.0)
    endpoints = AzureEndpoints(ml, DeploymentAssets(code="azureml:credit-card-default-score:1",
                                                    environment="azureml:credit-card-default-serving:1"))
    fake.add_registry_model(MODEL, "3")

    endpoints.begin_create_endpoint("ccd-staging")
    (put,) = fake.requests_to("PUT", "/onlineEndpoints/ccd-staging")
    check("endpoint_put", rec["endpoint_put"], *_answer(put))
    status = _first(fake, "GET", "/fake-operations/")  # the SDK's background poller asks for it
    check("operation_status", rec["operation_status"], *_answer(status))

    fake.settle()
    endpoints.begin_create_deployment(DeploymentSpec(
        endpoint="ccd-staging", name="blue-v3",
        model=ModelRef(MODEL, "3", f"azureml://registries/{REGISTRY}/models/{MODEL}/versions/3")))
    (dep,) = fake.requests_to("PUT", "/deployments/blue-v3")
    check("deployment_put", rec["deployment_put"], *_answer(dep))


def test_registry_import_and_version_answers_have_the_recorded_shapes(fake):
    rec = recorded("aml-registry-promote.json")["entries"]
    ml = workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=FakeCredential(),
                          transport=fake.transport(), retry_backoff_factor=0.0)
    registry = AzureModelRegistry(ml, lambda: registry_client(REGISTRY, credential=FakeCredential(),
                                                              transport=fake.transport()), WS_ARM)
    fake.add_workspace_model(MODEL, "3", model_type="mlflow_model",
                             flavors={"python_function": {"data": {"loader_module": "mlflow.sklearn"}}})
    fake.settle_after = 2  # one poll answers "running", the next "done", as recorded

    registry.promote(registry.get_workspace_model(MODEL, "3"), {"modelops.gate_run": "g"})

    (imp,) = fake.requests_to("POST", "/import")
    check("import_post", rec["import_post"], *_answer(imp))
    polls = fake.requests_to("GET", "/fake-results/")
    check("import_poll_running", rec["import_poll_running"], *_answer(polls[0]))
    check("import_poll_done", rec["import_poll_done"], *_answer(polls[-1]))
    version = [c for c in fake.requests_to("GET", f"/registries/{REGISTRY}/models/{MODEL}/versions/3")
               if c.status == 200][0]
    check("registry_version_get", rec["registry_version_get"], *_answer(version))


def test_a_pipeline_job_put_answer_has_the_recorded_shape(fake):
    from functions.adapters.azure.aml_jobs import AzureJobs

    rec = recorded("aml-pipeline-job.json")["entries"]
    fake.add_data("credit-card-default-train", "1")
    ml = workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=FakeCredential(),
                          transport=fake.transport(), retry_backoff_factor=0.0)
    AzureJobs(ml).submit_retraining("retrain-ccd-1", MODEL, {"modelops.alert_id": "a-1"})
    (put,) = [c for c in fake.requests_to("PUT", "/jobs/retrain-ccd-1")]
    check("job_put", rec["job_put"], *_answer(put))


# ------------------------------------------------------------------------------ azure-monitor-query


def test_log_analytics_answers_have_the_recorded_shapes():
    rec = recorded("monitor-logs-query.json")["entries"]
    with FakeLogAnalytics(workspace_ids={"ws"}) as fake:
        fake.add_rows(CONSOLE_TABLE, [{"TimeGenerated": "2026-05-09T07:00:00Z", "Message": "x"}])

        def post(query: str, prefer: str = "") -> requests.Response:
            return requests.post(f"{fake.url}/v1/workspaces/ws/query", json={"query": query, "timespan": None},
                                 headers={"Authorization": "Bearer t", "Prefer": prefer}, timeout=30)

        ok = post(f"{CONSOLE_TABLE} | project TimeGenerated, Message")
        check("query_ok", rec["query_ok"], ok.status_code, dict(ok.headers), ok.json())
        fake.partial_next()
        partial = post(f"{CONSOLE_TABLE} | project TimeGenerated, Message")
        check("query_partial", rec["query_partial"], partial.status_code, dict(partial.headers), partial.json())
        fake.query_timeout_rows = 0
        timeout = post(f"{CONSOLE_TABLE} | count", prefer="wait=1")
        check("query_timeout", rec["query_timeout"], timeout.status_code, dict(timeout.headers), timeout.json())


def test_the_comparison_sees_a_departure():
    real = {"a": {"b": 1, "c": "x"}, "tags": {"k": "v"}}
    assert shape_differences(real, {"a": {"b": "1", "d": None}, "tags": {"other": "w"}}) == [
        ".a.c: missing in the fake", ".a.d: only in the fake", ".a.b: number recorded, string in the fake"]
