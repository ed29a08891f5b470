"""`undo` in Azure, asserted on the wire: the undo orchestration's activities through the REAL
azure-ai-ml adapters against the fake ARM (tests/fake_arm), the smoke test against a loopback
scoring stub (tests/test_azure_aml_adapter.py's), the orchestration on the in-process driver (its
Durable replay is tests/test_undo.py's subject). Production serves version 2; version 1's deployment
is gone: the undo re-creates it from the registry model (PUT deployment), smoke-tests it with the
deployment header, then puts 100% on it and deletes version 2's deployment."""

from __future__ import annotations

import asyncio

import pytest

from functions.adapters.azure.aml import AzureEndpoints, AzureModelRegistry, registry_client
from functions.adapters.azure.clients import arm_client
from functions.adapters.azure.diagnostic_settings import EndpointDiagnostics
from functions.adapters.local.orchestrator import LocalOrchestrations, LocalOrchestrator
from functions.domain.authorisation import Caller
from functions.domain.config import deployment_name, load_managed_models
from functions.services import activities as act
from functions.services import contracts
from functions.services.operator import Operator
from functions.services.workflow import undo_orchestrator
from functions.shared.contract import ModelContract
from functions.shared.orchestration import ACTIVITY, UNDO_ORCHESTRATOR
from tests.fake_arm import REGISTRY, SUBSCRIPTION
from tests.fakes import FakeModelFiles, FakeTrafficLog, MemoryStore, credit_card_contract
from tests.test_azure_aml_adapter import (  # noqa: F401 (fixtures)
    ASSETS,
    WS_ARM,
    credential,
    escaped,
    fake,
    ml,
    scoring_server,
)

MODEL = "credit-card-default"
LOGS = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-monitor/providers/Microsoft.OperationalInsights/"
        "workspaces/law-endpoints")


@pytest.fixture
def world(fake, ml, credential, scoring_server):
    managed = load_managed_models(None, {"poll_seconds": 0.05})
    cfg = managed.get(MODEL)
    production = AzureEndpoints(ml, ASSETS, diagnostics=EndpointDiagnostics(
        arm_client(credential, transport=fake.transport()), LOGS))
    registry = AzureModelRegistry(ml, lambda: registry_client(REGISTRY, credential=credential,
                                                               transport=fake.transport(), retry_backoff_factor=0.0),
                                  WS_ARM, registry_name=REGISTRY)
    store = MemoryStore()
    ports = act.RolloutPorts(staging=production, production=production, registry=registry,
                             traffic_log=FakeTrafficLog(), store=store, model_files=FakeModelFiles(),
                             workspace_id=WS_ARM)
    endpoint, v1, v2 = cfg.production_endpoint, deployment_name(MODEL, "1"), deployment_name(MODEL, "2")
    for version in ("1", "2"):
        fake.add_registry_model(MODEL, version)
        contracts.store_contract(store, MODEL, version, ModelContract.from_dict(credit_card_contract()))
    fake.set_scoring_uri(endpoint, scoring_server.url)
    production.begin_create_endpoint(endpoint)
    fake.settle()
    # version 2 serves (released by a rollout); version 1 served before it and was retired
    act.create_deployment(ports, {"id": "r2", "model": MODEL, "version": "2"}, "production", endpoint, v2,
                          "registry", cfg.instance_type, cfg.instance_count, contract=credit_card_contract())
    fake.settle()
    production.set_traffic(endpoint, {v2: 100})
    fake.settle()
    scoring_server.key = fake.keys[endpoint]["primaryKey"]
    ports.rollouts.set_production({"id": "r1", "model": MODEL, "version": "1"}, v1, {v1: 100},
                                  "2026-12-01T10:00:00+00:00")
    ports.rollouts.set_production({"id": "r2", "model": MODEL, "version": "2"}, v2, {v2: 100},
                                  "2026-12-01T11:00:00+00:00")
    fake.reset_calls()
    return fake, ports, managed, endpoint, v1, v2


def _settling(fake, dispatch):
    """The fake's operations finish when polled (as AzureML's do, later): settle before each activity."""
    def run(payload):
        fake.settle()
        return dispatch(payload)
    return run


def test_undo_recreates_the_previous_champion_from_the_registry_smokes_it_and_moves_traffic(world, scoring_server):
    fake, ports, managed, endpoint, v1, v2 = world
    driver = LocalOrchestrator({UNDO_ORCHESTRATOR: undo_orchestrator},
                               {ACTIVITY: _settling(fake, lambda payload: act.dispatch(ports, payload))})
    operator = Operator(ports.rollouts, ports.store, LocalOrchestrations(driver),
                        lambda a, m, r: (Caller("ops@contoso.com", "entra", ("ModelOps.Operator",)), None),
                        managed=managed, in_registry=lambda m, v: ports.registry.get_registry_model(m, v) is not None)
    answer = asyncio.run(operator.undo(MODEL, comment="v2 is slow"))
    assert answer.status == 202 and answer.body["version"] == "1"
    output = driver.wait(answer.body["rollout_id"], timeout=60).output
    assert output is not None and output["state"] == "succeeded", driver.instances[answer.body["rollout_id"]].error

    # on the wire: the deployment PUT with the registry model, then the traffic PUT, then v2's DELETE
    puts = [c for c in fake.requests_to("PUT", f"/onlineEndpoints/{endpoint}/deployments/{v1}")]
    assert puts, [f"{c.method} {c.path}" for c in fake.writes()]
    model_id = puts[0].body["properties"]["model"]
    assert model_id.startswith(f"azureml://registries/{REGISTRY}/models/{MODEL}/versions/1")
    assert "MODELOPS_CONTRACT" in puts[0].body["properties"]["environmentVariables"]
    traffic = [c for c in fake.requests_to("PUT", f"/onlineEndpoints/{endpoint}") if "/deployments/" not in c.path]
    moved = traffic[0].body["properties"]["traffic"]  # the first endpoint PUT after the deployment's
    assert moved[v1] == 100 and moved.get(v2, 0) == 0
    assert fake.requests_to("DELETE", f"/onlineEndpoints/{endpoint}/deployments/{v2}")
    writes = [(c.method, c.path.rsplit("/", 1)[-1]) for c in fake.writes() if endpoint in c.path
              and "diagnosticSettings" not in c.path]
    first_put, traffic_put = writes.index(("PUT", v1)), writes.index(("PUT", endpoint))
    assert first_put < traffic_put < writes.index(("DELETE", v2))
    # the smoke test reached the re-created deployment by its header before any traffic moved
    smoke = [r for r in scoring_server.requests if r["headers"].get("azureml-model-deployment") == v1]
    assert smoke
    assert ports.rollouts.production(MODEL)["version"] == "1"
    trail = [s["step"] for s in ports.rollouts.trail(MODEL, answer.body["rollout_id"])]
    assert trail[:2] == ["undo_started", "undo_deployment_created"] and trail[-1] == "succeeded"
