"""The Azure entry points, called as the Functions host calls them (fake Durable client, memory store)."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import azure.functions as func
import pytest

from functions import bootstrap
from functions.domain.config import load_managed_models
from functions.services.activities import RolloutPorts
from functions.services.records import RolloutStore
from functions.ports import PlatformError
from functions.settings import Settings
from tests.fakes import FakeEndpoints, FakeModelFiles, FakeParts, FakeRegistry, FakeTrafficLog, MemoryStore
from tests.races import RaceStore, run_together

TOPIC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/staging"


class Status:
    def __init__(self, runtime_status):
        self.runtime_status = runtime_status


class FakeDurableClient:
    def __init__(self) -> None:
        self.started: list[tuple[str, str, dict]] = []
        self.events: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()

    async def get_status(self, instance_id: str):
        with self.lock:
            known = any(i == instance_id for _, i, _ in self.started)
        return Status("Running" if known else None)

    async def start_new(self, name: str, instance_id: str, client_input: dict):
        with self.lock:
            self.started.append((name, instance_id, client_input))
        return instance_id

    async def raise_event(self, instance_id: str, event_name: str, event_data=None):
        self.events.append((instance_id, event_name, event_data))


@pytest.fixture()
def runtime(monkeypatch):
    """The App the triggers get from bootstrap.app(), on in-memory fakes."""
    ports = RolloutPorts(FakeEndpoints({}), FakeEndpoints({}), FakeRegistry(), FakeTrafficLog(), MemoryStore(),
                         FakeModelFiles())
    settings = Settings.from_env({})
    application = bootstrap.App(settings, load_managed_models(None), FakeParts(ports))
    monkeypatch.setattr(bootstrap, "_app", application)
    return application


def grid_event(version, *, data=None, event_type="Microsoft.MachineLearningServices.ModelRegistered",
               subject=None, event_id="e-1") -> func.EventGridEvent:
    return func.EventGridEvent(
        id=event_id, topic=TOPIC, subject=subject if subject is not None else f"models/credit-card-default:{version}",
        event_type=event_type, event_time=datetime(2026, 11, 1, tzinfo=timezone.utc), data_version="2",
        data=data if data is not None else {"modelName": "credit-card-default", "modelVersion": str(version)},
    )


def user_code(function):
    """The decorated coroutine; the Durable client middleware (which builds the client from the
    host's JSON binding) is unwrapped so a fake client can be passed."""
    fn = function.build().get_user_function()
    return getattr(fn, "__wrapped__", fn)


def call_trigger(event, client):
    from functions.triggers.rollout_events import model_registered

    return asyncio.run(user_code(model_registered)(event=event, client=client))


def test_a_new_version_starts_one_orchestration_with_a_deterministic_id(runtime):
    client = FakeDurableClient()
    assert call_trigger(grid_event(3), client) is None
    assert len(client.started) == 1
    name, instance_id, payload = client.started[0]
    assert name == "rollout_orchestrator" and instance_id.startswith("rollout-credit-card-default-3-")
    assert payload["event"]["model_version"] == "3" and payload["config"]["name"] == "credit-card-default"
    call_trigger(grid_event(3, event_id="e-redelivered"), client)  # redelivery: no-op
    assert len(client.started) == 1


def test_fifty_concurrent_deliveries_start_one_rollout(runtime):
    """Through the real trigger: every delivery has read "no rollout yet" and decided to claim it
    before any claim is written (RaceStore), so only the create-only claim stops 49 of them."""
    client = FakeDurableClient()
    race = RaceStore(runtime.store, "rollouts/credit-card-default/", contenders=50, timeout=30.0)
    runtime.store = race
    run_together(50, lambda i: call_trigger(grid_event(7), client), race)
    assert len(client.started) == 1
    assert (race.waited, race.won, race.lost) == (50, 1, 49)
    rollouts = RolloutStore(race.inner)
    actions = [d["action"] for d in rollouts.decisions(200)]
    assert actions.count("duplicate") == 49  # each recorded with its reason
    assert [r["state"] for r in rollouts.list("credit-card-default")] == ["running"]  # the one rollout


def test_an_older_version_after_a_newer_one_is_skipped_with_a_reason(runtime):
    rollouts = RolloutStore(runtime.store)
    rollouts.set_production({"id": "r5", "model": "credit-card-default", "version": "5"}, "d5", {"d5": 100}, "now")
    client = FakeDurableClient()
    call_trigger(grid_event(4), client)
    assert client.started == []
    skipped = [r for r in rollouts.list("credit-card-default") if r["version"] == "4"]
    assert skipped and skipped[0]["state"] == "skipped"
    assert "not newer than production version 5" in skipped[0]["reason"]


@pytest.mark.parametrize("event", [
    grid_event(1, data={"modelName": "credit-card-default"}, subject=""),
    grid_event(1, event_type="Microsoft.MachineLearningServices.DatasetDriftDetected"),
    grid_event(1, data={"modelName": "x" * 300, "modelVersion": "1"}, subject=""),
    grid_event(1, data={"modelName": "credit-card-default", "modelVersion": {"nested": True}}, subject=""),
])
def test_malformed_events_are_logged_and_dropped_without_an_exception(runtime, event, caplog):
    client = FakeDurableClient()
    with caplog.at_level("INFO"):
        assert call_trigger(event, client) is None
    assert client.started == []
    decision = RolloutStore(runtime.store).decisions()[-1]
    assert decision["action"] == "invalid" and decision["reason"]
    assert any('"action":"invalid"' in r.message for r in caplog.records)


def test_unmanaged_models_are_ignored(runtime):
    client = FakeDurableClient()
    call_trigger(grid_event(1, data={"modelName": "other-model", "modelVersion": "1"}, subject=""), client)
    assert client.started == []
    assert RolloutStore(runtime.store).decisions()[-1]["action"] == "ignore"


def test_storage_outage_raises_so_event_grid_retries(runtime):
    runtime.store.fail_next = PlatformError("blob storage unavailable", transient=True)
    with pytest.raises(PlatformError):
        call_trigger(grid_event(2), FakeDurableClient())
    client = FakeDurableClient()
    call_trigger(grid_event(2), client)  # the retry goes through
    assert len(client.started) == 1


def test_a_failed_start_releases_the_claim(runtime):
    class Broken(FakeDurableClient):
        async def start_new(self, *args, **kwargs):
            raise ConnectionError("task hub unavailable")

    with pytest.raises(ConnectionError):
        call_trigger(grid_event(9), Broken())
    client = FakeDurableClient()
    call_trigger(grid_event(9), client)
    assert len(client.started) == 1


def test_documented_payload_through_the_trigger(runtime, monkeypatch):
    raw = json.loads((Path(__file__).parent / "payloads" / "eventgrid-aml-modelregistered.egschema.json")
                     .read_text())[0]
    runtime.managed = load_managed_models('{"sklearn_regression_model": {}}')
    event = func.EventGridEvent(id=raw["id"], topic=raw["topic"], subject=raw["subject"], event_type=raw["eventType"],
                                event_time=datetime(2017, 6, 26, tzinfo=timezone.utc), data=raw["data"],
                                data_version=raw["dataVersion"])
    client = FakeDurableClient()
    call_trigger(event, client)
    assert client.started and client.started[0][2]["event"]["model_version"] == "20"


# --- HTTP ------------------------------------------------------------------------------------

def test_rollouts_endpoint_lists_records(runtime):
    call_trigger(grid_event(3), FakeDurableClient())
    from functions.triggers.http_rollouts import list_rollouts, rollout_detail

    response = list_rollouts.build().get_user_function()(func.HttpRequest("GET", "/api/rollouts", body=b""))
    body = json.loads(response.get_body())
    assert response.status_code == 200 and body["rollouts"][0]["state"] == "running"
    rid = body["rollouts"][0]["id"]
    detail = rollout_detail.build().get_user_function()(
        func.HttpRequest("GET", "/x", body=b"", route_params={"model": "credit-card-default", "rollout_id": rid}))
    assert detail.status_code == 200 and json.loads(detail.get_body())["id"] == rid
    missing = rollout_detail.build().get_user_function()(
        func.HttpRequest("GET", "/x", body=b"", route_params={"model": "m", "rollout_id": "nope"}))
    assert missing.status_code == 404 and "error" in json.loads(missing.get_body())


@pytest.mark.parametrize("body,status", [(b"not json", 400), (b'{"approved": "yes", "by": "a"}', 400),
                                         (b'{"approved": true}', 400), (b'{"approved": true, "by": "ana"}', 202)])
def test_approval_endpoint(runtime, body, status):
    from functions.triggers.http_rollouts import rollout_approval

    client = FakeDurableClient()
    client.started.append(("rollout_orchestrator", "r-1", {}))
    fn = user_code(rollout_approval)
    response = asyncio.run(fn(req=func.HttpRequest("POST", "/x", body=body, route_params={"rollout_id": "r-1"}),
                              client=client))
    assert response.status_code == status
    assert isinstance(json.loads(response.get_body()), dict)
    if status == 202:
        assert client.events == [("r-1", "approval", {"approved": True, "by": "ana", "comment": ""})]
    unknown = asyncio.run(fn(req=func.HttpRequest("POST", "/x", body=b'{"approved": true, "by": "a"}',
                                                  route_params={"rollout_id": "nope"}), client=client))
    assert unknown.status_code == 404
