"""The rollout workflow end to end on in-memory fakes, through the local driver and the Durable
generator protocol. Real processes are exercised in test_rollout_local.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from functions.adapters.local.orchestrator import LocalOrchestrator
from functions.services.activities import RolloutPorts, dispatch
from functions.domain.config import deployment_name, load_managed_models
from functions.domain.events import ModelRegistered
from functions.services.records import RolloutStore
from functions.services.workflow import rollout_orchestrator
from ml import schema
from ml import score as scoring
from ml.datagen import generate
from tests.fakes import (FakeEndpoints, FakeModelFiles, FakeRegistry, FakeTrafficLog, MemoryStore, constant_model,
                         model_from_labels, weak_model)

MODEL = "credit-card-default"
TOPIC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/staging"
FAST = {"poll_seconds": 0.0, "canary": {"bake_seconds": 0.0}, "gates": {"latency_requests": 5,
                                                                        "evaluation_rows": 400}}


@pytest.fixture(autouse=True)
def _score_contract():
    scoring.configure(schema.schema_dict())
    scoring.max_rows = 10_000


class Harness:
    def __init__(self, models: dict, overrides: dict | None = None) -> None:
        self.staging = FakeEndpoints(models)
        self.production = FakeEndpoints(models)
        self.registry = FakeRegistry()
        self.health = FakeTrafficLog()
        self.store = MemoryStore()
        self.store.put(f"datasets/{MODEL}/evaluation.csv", generate(400, seed=99).to_csv(index=False).encode())
        self.model_files = FakeModelFiles()
        self.platform = RolloutPorts(self.staging, self.production, self.registry, self.health, self.store,
                                     self.model_files, workspace_id=TOPIC)
        merged = json.loads(json.dumps(FAST))
        for key, value in (overrides or {}).items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
        self.managed = load_managed_models(None, merged)
        self.config = self.managed.get(MODEL)
        self.driver = LocalOrchestrator({"rollout": rollout_orchestrator},
                                        {"rollout_activity": lambda p: dispatch(self.platform, p)})
        self.rollouts = RolloutStore(self.store)

    def event(self, version: str) -> ModelRegistered:
        self.registry.add(MODEL, version)
        return ModelRegistered(f"evt-{version}", TOPIC, f"models/{MODEL}:{version}", "", MODEL, version)

    def roll(self, version: str, approve: dict | None = None, timeout: float = 30) -> dict:
        event = self.event(version)
        self.rollouts.claim({"run_key": event.instance_id, "model": MODEL, "version": version, "reason": "test"},
                            event.to_dict(), datetime.now(timezone.utc).isoformat())
        self.driver.start("rollout", event.instance_id, {"event": event.to_dict(), "config": self.config.to_dict()})
        if approve is not None:
            self.driver.raise_event(event.instance_id, "approval", approve)
        instance = self.driver.wait(event.instance_id, timeout)
        assert instance.status == "Completed", instance.error
        return instance.output

    def steps(self, output: dict) -> list[str]:
        return [r["step"] for r in self.rollouts.trail(MODEL, output["id"])]


GOOD = model_from_labels(1.0)


def test_first_version_goes_straight_to_100_percent():
    h = Harness({"1": GOOD})
    out = h.roll("1")
    assert out["state"] == "succeeded", out
    dep = deployment_name(MODEL, "1")
    assert h.production.live(h.config.production_endpoint) == {dep: 100}
    assert h.staging.live(h.config.staging_endpoint) == {dep: 100}
    assert h.steps(out) == ["started", "contract", "staging_deployment_created", "gates", "staging_traffic",
                            "promoted",
                            "production_deployment_created", "production_smoke", "traffic", "succeeded"]
    # Production deployed the registry copy, with lineage tags.
    prod = h.production.deployments[(h.config.production_endpoint, dep)]
    assert prod.spec.model.uri.startswith("azureml://registries/")
    version, tags = h.registry.promotions[0]
    assert version == "1" and tags["source_event_id"] == "evt-1" and tags["source_workspace"] == TOPIC
    assert json.loads(tags["gate_results"]) == {"compatibility": True, "smoke": True, "contract": True, "latency": True, "quality": True}
    report = json.loads(h.store.get(out["gate_report"])[0])
    assert report["passed"] and [g["name"] for g in report["gates"]] == ["compatibility", "smoke", "contract", "latency",
                                                                            "quality"]
    assert h.rollouts.production(MODEL)["version"] == "1"
    record = h.rollouts.get(MODEL, out["id"])
    assert record["state"] == "succeeded" and record["finished"]


def test_second_version_canaries_through_every_step_and_retires_the_champion():
    h = Harness({"1": GOOD, "2": GOOD})
    h.roll("1")
    out = h.roll("2")
    assert out["state"] == "succeeded", out
    v1, v2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")
    endpoint = h.config.production_endpoint
    maps = [m for (e, m) in h.production.traffic_history if e == endpoint]
    assert maps[-3:] == [{v1: 90, v2: 10}, {v1: 50, v2: 50}, {v1: 0, v2: 100}]
    for m in maps:  # every update names every live deployment
        assert sum(m.values()) == 100
    assert h.production.live(endpoint) == {v2: 100}
    assert (endpoint, v1) in h.production.deleted
    # staging serves the newest validated model; the previous staging deployment is gone
    assert h.staging.live(h.config.staging_endpoint) == {v2: 100}
    assert h.steps(out).count("health") == 3


def test_a_bad_model_is_rejected_at_staging_and_production_is_untouched():
    h = Harness({"1": GOOD, "2": constant_model(0.3)})
    h.roll("1")
    before = h.production.live(h.config.production_endpoint)
    out = h.roll("2")
    assert out["state"] == "rejected"
    assert "quality" in out["reason"] and "ROC AUC 0.5000" in out["reason"]
    assert h.production.live(h.config.production_endpoint) == before
    assert (h.config.staging_endpoint, deployment_name(MODEL, "2")) in h.staging.deleted
    assert h.staging.live(h.config.staging_endpoint) == {deployment_name(MODEL, "1"): 100}
    assert "2" not in h.registry.registry
    report = json.loads(h.store.get(out["gate_report"])[0])
    assert report["passed"] is False and report["gates"][-1]["name"] == "quality"


def test_a_challenger_worse_than_the_champion_is_rejected():
    h = Harness({"1": GOOD, "2": weak_model()}, {"gates": {"min_roc_auc": 0.5}})
    h.roll("1")
    out = h.roll("2")
    assert out["state"] == "rejected" and "champion" in out["reason"]


def test_a_failing_canary_is_rolled_back_to_the_previous_traffic_map():
    h = Harness({"1": GOOD, "2": GOOD})
    h.roll("1")
    v1, v2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")
    h.health.figures[v2] = (200, 40, 30.0)
    out = h.roll("2")
    assert out["state"] == "rolled_back"
    assert "error rate 20.0% (40/200)" in out["reason"] and "at 10%" in out["reason"]
    assert out["figures"]["errors"] == 40
    endpoint = h.config.production_endpoint
    assert h.production.live(endpoint) == {v1: 100}
    assert (endpoint, v2) in h.production.deleted
    assert h.rollouts.production(MODEL)["version"] == "1"
    assert h.steps(out)[-1] == "rolled_back"


def test_slow_canary_is_rolled_back_on_p90():
    h = Harness({"1": GOOD, "2": GOOD}, {"canary": {"max_p90_ms": 100.0}})
    h.roll("1")
    h.health.figures[deployment_name(MODEL, "2")] = (200, 0, 450.0)
    out = h.roll("2")
    assert out["state"] == "rolled_back" and "p90 450 ms > 100 ms" in out["reason"]


def test_failed_provisioning_rejects_and_cleans_up():
    h = Harness({"1": GOOD})
    h.staging.fail_provisioning.add("1")
    out = h.roll("1")
    assert out["state"] == "rejected" and "did not provision" in out["reason"]
    assert h.staging.live(h.config.staging_endpoint) == {}
    assert h.config.production_endpoint not in h.production.endpoints


def test_missing_evaluation_data_fails_the_gate_with_a_clear_reason():
    h = Harness({"1": GOOD})
    h.store.delete(f"datasets/{MODEL}/evaluation.csv")
    out = h.roll("1")
    assert out["state"] == "rejected" and "no labelled evaluation data" in out["reason"]


@pytest.mark.parametrize("answer,state", [({"approved": True, "by": "ana"}, "succeeded"),
                                           ({"approved": False, "by": "ana", "comment": "not today"}, "rejected")])
def test_approval_gate(answer, state):
    h = Harness({"1": GOOD}, {"approval_required": True, "approval_timeout_seconds": 30.0})
    out = h.roll("1", approve=answer)
    assert out["state"] == state, out
    if state == "rejected":
        assert "rejected by ana: not today" in out["reason"]
        assert h.config.production_endpoint not in h.production.endpoints
    assert "awaiting_approval" in h.steps(out)


def test_approval_timeout_leaves_production_untouched():
    h = Harness({"1": GOOD}, {"approval_required": True, "approval_timeout_seconds": 0.2})
    out = h.roll("1")
    assert out["state"] == "rejected" and "no approval within" in out["reason"]
    assert h.config.production_endpoint not in h.production.endpoints
    assert "1" in h.registry.registry  # promoted (registry is shared), just not released


def test_platform_error_mid_rollout_ends_failed_not_running():
    h = Harness({"1": GOOD})
    h.registry.workspace.clear()
    event = ModelRegistered("evt-x", TOPIC, "", "", MODEL, "1")
    h.driver.start("rollout", event.instance_id, {"event": event.to_dict(), "config": h.config.to_dict()})
    out = h.driver.wait(event.instance_id, 30).output
    assert out["state"] == "failed" and "not in the staging workspace" in out["reason"]
    assert h.rollouts.get(MODEL, event.instance_id)["state"] == "failed"


def test_promotion_is_idempotent():
    h = Harness({"1": GOOD})
    h.registry.add(MODEL, "1")
    h.registry.promote(h.registry.workspace["1"], {"pre": "existing"})
    out = h.roll("1")
    assert out["state"] == "succeeded"
    assert len(h.registry.promotions) == 1
    promoted = [r for r in h.rollouts.trail(MODEL, out["id"]) if r["step"] == "promoted"][0]
    assert promoted["details"]["already"] is True


# --- the same generator under the Durable testing wrapper ------------------------------------

class _DurableTask:
    def __init__(self, result=None, exc: Exception | None = None):
        self._result, self._exc = result, exc
        self.is_completed = True

    @property
    def result(self):
        if self._exc:
            raise self._exc
        return self._result

    def cancel(self):
        pass


class _DurableContext:
    """Stands in for DurableOrchestrationContext: activities resolve through the fakes."""

    def __init__(self, platform: RolloutPorts, instance_id: str, input_: dict):
        self.platform, self.instance_id, self._input = platform, instance_id, input_
        self.current_utc_datetime = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.calls: list[str] = []

    def get_input(self):
        return self._input

    def set_custom_status(self, status):
        self.status = status

    def call_activity(self, name, input_):
        self.calls.append(input_["op"])
        try:
            return _DurableTask(dispatch(self.platform, input_))
        except Exception as exc:
            return _DurableTask(exc=exc)

    def create_timer(self, fire_at):
        self.current_utc_datetime = max(self.current_utc_datetime, fire_at)
        return _DurableTask()

    def wait_for_external_event(self, name):
        return _DurableTask({"approved": True, "by": "durable"})

    def task_any(self, tasks):
        return _DurableTask(tasks[0])


def test_durable_generator_protocol_drives_the_same_workflow():
    from azure.durable_functions.testing import orchestrator_generator_wrapper

    h = Harness({"1": GOOD}, {"approval_required": True})
    event = h.event("1")
    context = _DurableContext(h.platform, event.instance_id, {"event": event.to_dict(),
                                                               "config": h.config.to_dict()})
    results = list(orchestrator_generator_wrapper(rollout_orchestrator(context)))
    final = results[-1]
    assert final["state"] == "succeeded", final
    assert context.calls[0] == "begin" and context.calls[-1] == "finish"
    assert "promote" in context.calls and "set_traffic" in context.calls
    assert context.current_utc_datetime >= datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=0)


def test_the_configured_evaluation_data_is_used():
    h = Harness({"1": GOOD}, {"evaluation_data": "datasets/elsewhere/eval.csv"})
    out = h.roll("1")
    assert out["state"] == "rejected" and "datasets/elsewhere/eval.csv" in out["reason"]
    h2 = Harness({"1": GOOD}, {"evaluation_data": "datasets/elsewhere/eval.csv"})
    h2.store.put("datasets/elsewhere/eval.csv", h2.store.get(f"datasets/{MODEL}/evaluation.csv")[0])
    h2.store.delete(f"datasets/{MODEL}/evaluation.csv")
    assert h2.roll("1")["state"] == "succeeded"


# --- the version's contract ---------------------------------------------------------------------

def _card(contract: dict) -> dict[str, bytes]:
    return {"model_card.json": json.dumps({"artifact_format": 1, "contract": contract}).encode()}


def test_the_contract_is_read_stored_served_and_made_current_on_release():
    h = Harness({"1": GOOD})
    out = h.roll("1")
    assert out["state"] == "succeeded", out
    stored = json.loads(h.store.get(f"contracts/{MODEL}/versions/1.json")[0])
    current = json.loads(h.store.get(f"contracts/{MODEL}/current.json")[0])
    assert current == stored and stored["contract_version"] == 1
    assert stored["features"] == schema.schema_dict()["features"] and stored["source"] == "model_card.json"
    for endpoints, name in ((h.staging, h.config.staging_endpoint), (h.production, h.config.production_endpoint)):
        env = endpoints.deployments[(name, deployment_name(MODEL, "1"))].spec.environment_variables
        assert json.loads(env["MODELOPS_CONTRACT"]) == stored  # the scoring entry point answers by it
    contract_step = next(r for r in h.rollouts.trail(MODEL, out["id"]) if r["step"] == "contract")
    assert contract_step["details"]["metric"] == "roc_auc" and contract_step["details"]["features"] == 23


NO_CODE = {"serving": "mlflow_no_code", "contract": {"metric": "accuracy"}}  # labels out: a label metric


@pytest.mark.parametrize("overrides, no_code", [({"serving": "modelops"}, False), (NO_CODE, True)])
def test_the_models_serving_reaches_both_deployments(overrides, no_code):
    h = Harness({"1": GOOD}, overrides)
    assert h.roll("1")["state"] == "succeeded"
    for endpoints, name in ((h.staging, h.config.staging_endpoint), (h.production, h.config.production_endpoint)):
        spec = endpoints.deployments[(name, deployment_name(MODEL, "1"))].spec
        assert spec.no_code is no_code
        assert "MODELOPS_CONTRACT" in spec.environment_variables  # set either way (a record, for no-code)


def _serve(h: Harness, overrides: dict) -> None:
    """The model's configuration from now on (a platform team changing it between two versions)."""
    merged = json.loads(json.dumps(FAST))
    merged.update(overrides)
    h.config = load_managed_models(None, merged).get(MODEL)


def test_a_no_code_model_is_gated_in_azuremls_wire_shape_and_its_labels():
    """The fake deployments of a no-code spec answer as AzureML's script does (tests/fakes.py): only
    {"input_data": <split frame>} scores, and the answer is a bare list of labels. Every gate passes
    on that wire; with the contract's own {"data": [...]} the smoke gate could not."""
    h = Harness({"1": GOOD}, NO_CODE)
    out = h.roll("1")
    assert out["state"] == "succeeded", out
    report = json.loads(h.store.get(out["gate_report"])[0])
    gates = {g["name"]: g for g in report["gates"]}
    assert [g["name"] for g in report["gates"]] == ["compatibility", "smoke", "contract", "latency", "quality"]
    assert gates["smoke"]["reason"] == "200 with one label per record as a bare JSON list"
    assert set(gates["smoke"]["figures"]["predictions"]) <= {0, 1}
    assert gates["contract"]["figures"]["no_input_data"] == 400  # the contract's own body: refused by the server
    assert gates["contract"]["figures"]["refused_with_5xx"] == ["missing_feature", "numeric_wrong_type"]
    assert gates["quality"]["figures"]["metric"] == "accuracy" and gates["quality"]["figures"]["value"] > 0.5
    # what is stored (and compared with the next version) is the model's contract, not the wire
    assert report["serving"] == "mlflow_no_code" and report["contract"]["request_shape"] == "records"
    current = json.loads(h.store.get(f"contracts/{MODEL}/current.json")[0])
    assert current["request_shape"] == "records" and current["response_key"] == "predictions"
    production = next(r for r in h.rollouts.trail(MODEL, out["id"]) if r["step"] == "production_smoke")
    assert set(production["details"]["figures"]["predictions"]) <= {0, 1}


def test_a_no_code_model_gated_on_a_probability_metric_is_rejected_before_anything_is_deployed():
    h = Harness({"1": GOOD}, {"serving": "mlflow_no_code"})  # the credit-card contract's metric: roc_auc
    out = h.roll("1")
    assert out["state"] == "rejected"
    assert out["reason"] == (
        "no usable contract: model credit-card-default:1 (serving: mlflow_no_code): metric 'roc_auc' needs "
        "probabilities, but serving mlflow_no_code answers what the MLflow model's predict returns (labels): set "
        "contract.metric to accuracy, f1 or f1_macro in the model's configuration, or serve it with serving: modelops")
    assert h.staging.deployments == {} and h.production.deployments == {}
    assert h.steps(out) == ["started", "rejected"]
    assert h.store.get(f"contracts/{MODEL}/versions/1.json") is None


def test_two_versions_served_no_code_have_the_same_contract_and_the_champion_is_asked_on_its_wire():
    h = Harness({"1": GOOD, "2": GOOD}, NO_CODE)
    assert h.roll("1")["state"] == "succeeded"
    out = h.roll("2")
    assert out["state"] == "succeeded", out
    gates = {g["name"]: g for g in json.loads(h.store.get(out["gate_report"])[0])["gates"]}
    assert gates["compatibility"]["figures"]["changes"] == []
    # the champion (no-code too) answered the same rows as the challenger: the same accuracy
    assert gates["quality"]["figures"]["champion_value"] == gates["quality"]["figures"]["value"]


def test_switching_a_model_to_no_code_serving_is_a_change_for_its_callers():
    h = Harness({"1": GOOD, "2": GOOD, "3": GOOD}, {"contract": {"metric": "accuracy"}})
    assert h.roll("1")["state"] == "succeeded"
    _serve(h, NO_CODE)
    out = h.roll("2")
    assert out["state"] == "rejected"
    assert out["reason"].startswith("gate failed: compatibility: the contract changes what callers send or receive: "
                                    "serving 'modelops' → 'mlflow_no_code' (another request body and answer: the "
                                    "contract's request and response → {\"input_data\": <split frame>} in, a bare "
                                    "list out)")
    _serve(h, {**NO_CODE, "allow_contract_change": True})
    out = h.roll("3")
    assert out["state"] == "succeeded", out
    quality = {g["name"]: g for g in json.loads(h.store.get(out["gate_report"])[0])["gates"]}["quality"]
    # the modelops champion answers probabilities, the challenger labels: the bound only
    assert quality["figures"]["champion_value"] is None and "answers otherwise" in quality["figures"]["champion_note"]


def test_a_model_without_a_usable_contract_is_rejected_with_the_reason_and_nothing_deployed():
    h = Harness({"1": GOOD})
    h.model_files.files[(MODEL, "1")] = {"MLmodel": b"flavors: {python_function: {}}\n"}
    out = h.roll("1")
    assert out["state"] == "rejected"
    assert out["reason"].startswith("no usable contract: model credit-card-default:1") and "no signature" in out["reason"]
    assert h.staging.deployments == {} and h.production.deployments == {}
    assert h.steps(out) == ["started", "rejected"]
    assert h.rollouts.get(MODEL, out["id"])["state"] == "rejected"  # recorded: a redelivery is a duplicate


def test_a_contract_change_that_breaks_callers_is_rejected_unless_allowed():
    from tests.fakes import credit_card_contract

    changed = credit_card_contract()
    changed["features"] = [f for f in changed["features"] if f["name"] != "age"]  # callers' "age" now refused
    changed["sample_request"] = {"data": [{k: v for k, v in row.items() if k != "age"}
                                          for row in changed["sample_request"]["data"]]}
    h = Harness({"1": GOOD, "2": GOOD})
    h.roll("1")
    h.model_files.files[(MODEL, "2")] = _card(changed)
    out = h.roll("2")
    assert out["state"] == "rejected" and "compatibility" in out["reason"] and "feature 'age' removed" in out["reason"]
    report = json.loads(h.store.get(out["gate_report"])[0])
    assert report["gates"][0]["figures"]["changes"] == ["feature 'age' removed"]
    assert h.production.live(h.config.production_endpoint) == {deployment_name(MODEL, "1"): 100}

    allowed = Harness({"1": GOOD, "2": GOOD}, {"allow_contract_change": True})
    allowed.roll("1")
    allowed.model_files.files[(MODEL, "2")] = _card(changed)
    out = allowed.roll("2")
    report = json.loads(allowed.store.get(out["gate_report"])[0])
    first = report["gates"][0]
    assert first["name"] == "compatibility" and first["passed"] and "allowed by the configuration" in first["reason"]


def test_the_quality_gate_uses_the_contracts_metric_and_direction():
    from tests.fakes import credit_card_contract

    h = Harness({"1": GOOD, "2": weak_model()}, {"gates": {"min_metric": 0.95}})
    h.model_files.files[(MODEL, "1")] = _card({**credit_card_contract(), "metric": "accuracy"})
    out = h.roll("1")
    assert out["state"] == "rejected" and "accuracy" in out["reason"] and "< floor 0.9500" in out["reason"]
    h2 = Harness({"1": GOOD}, {"gates": {"min_metric": 0.1}})
    h2.model_files.files[(MODEL, "1")] = _card({**credit_card_contract(), "metric": "log_loss"})
    out = h2.roll("1")  # log loss is lower-is-better: 0.1 is a ceiling
    assert out["state"] == "rejected" and "log_loss" in out["reason"] and "> ceiling 0.1000" in out["reason"]
