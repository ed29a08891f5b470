"""In-memory fakes of the ports (Cosmic Python style): the workflow is tested without processes.

They enforce the same rules as the real platforms where the workflow depends on them: a traffic
map must name every live deployment and sum to 100 (or 0); a deployment with traffic cannot be
deleted; promotion is idempotent; conditional store writes conflict.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from functions.ports import check_key
from functions.ports import (
    Conflict,
    DeploymentSpec,
    DeploymentState,
    EndpointState,
    ModelRef,
    PlatformError,
    ScoreResult,
    TrafficStats,
)

Model = Callable[[list[dict]], list[float]]  # rows -> probabilities


class MemoryStore:
    """ports.Store in memory, with the same conditional-write semantics as blob storage."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.writes = 0
        self.lock = threading.Lock()
        self.fail_next: Exception | None = None  # raised by the next call (transient outage)

    def __deepcopy__(self, memo: dict) -> "MemoryStore":
        """A snapshot (tests share one expensive setup and copy it): the same objects, its own lock."""
        copy = MemoryStore()
        copy.objects, copy.etags, copy.writes = dict(self.objects), dict(self.etags), self.writes
        memo[id(self)] = copy
        return copy

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def get(self, key: str) -> tuple[bytes, str] | None:
        check_key(key)
        self._maybe_fail()
        with self.lock:
            data = self.objects.get(key)
            return None if data is None else (data, self.etags[key])

    def put(self, key: str, data: bytes, *, if_absent: bool = False, etag: str | None = None) -> str:
        check_key(key)
        self._maybe_fail()
        with self.lock:
            if if_absent and key in self.objects:
                raise Conflict(f"{key} exists")
            if not if_absent and etag is not None and self.etags.get(key) != etag:
                raise Conflict(f"{key} changed")
            self.writes += 1
            self.objects[key] = data
            self.etags[key] = f"e{self.writes}"
            return self.etags[key]

    def list(self, prefix: str) -> list[str]:
        if prefix:
            check_key(prefix + "x")
        with self.lock:
            return sorted(k for k in self.objects if k.startswith(prefix))

    def delete(self, key: str) -> None:
        check_key(key)
        with self.lock:
            self.objects.pop(key, None)
            self.etags.pop(key, None)


@dataclass
class FakeDeployment:
    spec: DeploymentSpec
    model: Model
    state: str = "Creating"
    polls_until_ready: int = 1
    error_rate: float = 0.0


@dataclass
class FakeEndpoints:
    """Endpoints whose deployments score with a Python function chosen per model version."""

    models: dict[str, Model]  # version -> model function
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[tuple[str, str], FakeDeployment] = field(default_factory=dict)
    traffic_history: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    scaled: list[tuple[str, str, int]] = field(default_factory=list)
    fail_provisioning: set[str] = field(default_factory=set)  # model versions whose deployment fails
    logging_ensured: list[str] = field(default_factory=list)  # endpoints whose logs were ensured
    fail_logging: Callable[[], Exception] | None = None  # ensure_logging raises this instead

    def get_endpoint(self, name: str) -> EndpointState | None:
        ep = self.endpoints.get(name)
        if ep is None:
            return None
        deps = {d: self.deployments[(name, d)].state for (e, d) in self.deployments if e == name}
        return EndpointState(name, "Succeeded", f"fake://{name}/score", dict(ep["traffic"]), deps)

    def begin_create_endpoint(self, name: str, tags: dict[str, str] | None = None) -> None:
        self.endpoints.setdefault(name, {"traffic": {}})

    def ensure_logging(self, name: str) -> str:
        if self.fail_logging is not None:
            raise self.fail_logging()
        if name not in self.endpoints:
            raise PlatformError(f"no endpoint {name}")
        self.logging_ensured.append(name)
        return f"fake: {name} logs"

    def get_deployment(self, endpoint: str, name: str) -> DeploymentState | None:
        dep = self.deployments.get((endpoint, name))
        if dep is None:
            return None
        if dep.state == "Creating":
            dep.polls_until_ready -= 1
            if dep.polls_until_ready < 0:
                dep.state = "Failed" if dep.spec.model.version in self.fail_provisioning else "Succeeded"
        return DeploymentState(endpoint, name, dep.state, dep.spec.model.uri,
                               "image build failed" if dep.state == "Failed" else "")

    def begin_create_deployment(self, spec: DeploymentSpec) -> None:
        if spec.endpoint not in self.endpoints:
            raise PlatformError(f"no endpoint {spec.endpoint}")
        existing = self.deployments.get((spec.endpoint, spec.name))
        if existing is not None:
            if existing.spec.model.uri != spec.model.uri:
                raise PlatformError("deployment exists with another model")
            return
        self.deployments[(spec.endpoint, spec.name)] = FakeDeployment(spec, self.models[spec.model.version])
        self.endpoints[spec.endpoint]["traffic"].setdefault(spec.name, 0)

    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> None:
        live = {d for (e, d) in self.deployments if e == endpoint}
        if set(traffic) != live:
            raise PlatformError(f"traffic map {traffic} must name exactly the live deployments {sorted(live)}")
        if sum(traffic.values()) not in (0, 100):
            raise PlatformError(f"traffic map {traffic} must sum to 100")
        self.endpoints[endpoint]["traffic"] = dict(traffic)
        self.traffic_history.append((endpoint, dict(traffic)))

    def scale_deployment(self, endpoint: str, name: str, instance_count: int) -> int:
        if (endpoint, name) not in self.deployments:
            raise PlatformError(f"no deployment {endpoint}/{name}")
        self.scaled.append((endpoint, name, instance_count))
        return instance_count

    def begin_delete_deployment(self, endpoint: str, name: str) -> None:
        if self.endpoints.get(endpoint, {}).get("traffic", {}).get(name, 0) > 0:
            raise PlatformError(f"{name} still has traffic")
        if self.deployments.pop((endpoint, name), None) is not None:
            self.endpoints[endpoint]["traffic"].pop(name, None)
            self.deleted.append((endpoint, name))

    def score(self, endpoint: str, body: Any, deployment: str | None = None, timeout: float = 30.0) -> ScoreResult:
        import json

        from ml import score as scoring

        dep = self.deployments.get((endpoint, deployment)) if deployment else None
        if deployment and dep is None:
            return ScoreResult(404, {"error": f"no deployment {deployment}"}, 1.0)
        if dep is None:
            traffic = self.endpoints[endpoint]["traffic"]
            name = max(traffic, key=traffic.get)
            dep = self.deployments[(endpoint, name)]
        raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
        if dep.spec.no_code:
            return _no_code_answer(dep, raw)
        try:
            rows, _ = scoring.parse_request(raw)
        except scoring.RequestError as exc:
            return ScoreResult(exc.status, {"error": exc.message}, 1.0)
        return ScoreResult(200, {"predictions": dep.model(rows)}, 2.0)

    def live(self, endpoint: str) -> dict[str, int]:
        return dict(self.endpoints.get(endpoint, {}).get("traffic", {}))


NO_CODE_SCRIPT_ERROR = "An unexpected error occurred in scoring script. Check the logs for more info."


def _no_code_answer(dep: FakeDeployment, raw: str | bytes) -> ScoreResult:
    """A no-code MLflow deployment as AzureML serves it (what ml/mlflow_no_code/score.py does for real
    in tests/test_mlflow_no_code.py): its inference server answers 400 {"message"} for a body that is
    not a JSON object with "input_data"; the script takes a "split" frame and answers the bare list
    of pyfunc predict — here the label (1 at P ≥ 0.5) of the fake model's probability — and anything
    it cannot score is a 500."""
    from ml import score as scoring

    try:
        body = json.loads(raw)
    except ValueError as exc:
        return ScoreResult(400, {"message": f"POST body could not be decoded as JSON: {exc}"}, 1.0)
    if not isinstance(body, dict):
        return ScoreResult(400, {"message": "POST body should be a JSON dictionary."}, 1.0)
    if "input_data" not in body:
        return ScoreResult(400, {"message": "A value is not provided for the 'input_data' parameter."}, 1.0)
    frame = body["input_data"]
    try:
        records = [dict(zip(frame["columns"], row, strict=True)) for row in frame["data"]]
        rows, _ = scoring.parse_request(json.dumps({"data": records}))
    except (TypeError, KeyError, ValueError, scoring.RequestError):
        return ScoreResult(500, {"message": NO_CODE_SCRIPT_ERROR}, 1.0)
    return ScoreResult(200, [1 if p >= 0.5 else 0 for p in dep.model(rows)], 2.0)


@dataclass
class FakeRegistry:
    workspace: dict[str, ModelRef] = field(default_factory=dict)  # version -> ref
    registry: dict[str, ModelRef] = field(default_factory=dict)
    promotions: list[tuple[str, dict]] = field(default_factory=list)

    def add(self, name: str, version: str) -> ModelRef:
        ref = ModelRef(name, version, f"azureml:{name}:{version}", source="ws")
        self.workspace[version] = ref
        return ref

    def get_workspace_model(self, name: str, version: str) -> ModelRef | None:
        return self.workspace.get(version)

    def get_registry_model(self, name: str, version: str) -> ModelRef | None:
        return self.registry.get(version)

    def promote(self, model: ModelRef, tags: dict[str, str]) -> ModelRef:
        if model.version in self.registry:
            return self.registry[model.version]
        ref = ModelRef(model.name, model.version, f"azureml://registries/shared/models/{model.name}/versions/"
                                                  f"{model.version}", tags, source="registry")
        self.registry[model.version] = ref
        self.promotions.append((model.version, tags))
        return ref


@dataclass
class FakeTrafficLog:
    """Health figures per deployment, as the canary would observe them: (requests, 5xx, p90) or
    (requests, 5xx, p90, 4xx), or a callable (deployment, start, end) -> such a tuple for figures
    that change between windows; `fail` raises instead (a health query that cannot answer)."""

    figures: dict[str, Any] = field(default_factory=dict)
    fail: Callable[[], Exception] | None = None
    calls: list[tuple[str, datetime, datetime]] = field(default_factory=list)

    def stats(self, endpoint: str, deployment: str, start: datetime, end: datetime) -> TrafficStats:
        self.calls.append((deployment, start, end))
        if self.fail is not None:
            raise self.fail()
        found = self.figures.get(deployment, (100, 0, 20.0))
        if callable(found):
            found = found(deployment, start, end)
        requests, errors, p90, *rest = found
        return TrafficStats(deployment, requests, errors, p90 if requests else None, start, end,
                            client_errors=rest[0] if rest else 0)


def model_from_labels(signal: float) -> Model:
    """A 'model' whose probability tracks the generated data's risk features (for quality gates)."""

    def predict(rows: list[dict]) -> list[float]:
        out = []
        for r in rows:
            late = 0 if r["repayment_status_1"] in ("duly_paid", "no_delay", None) else 1
            util = (r["bill_amount_1"] or 0) / max(r["credit_limit"] or 1, 1)
            out.append(min(max(0.1 + signal * (0.5 * late + 0.2 * min(util, 1.0)), 0.0), 1.0))
        return out

    return predict


def constant_model(value: float = 0.2) -> Model:
    return lambda rows: [value] * len(rows)


def weak_model() -> Model:
    """Ranks by utilisation only: better than chance, clearly worse than model_from_labels."""

    def predict(rows: list[dict]) -> list[float]:
        return [min(max((r["bill_amount_1"] or 0) / max(r["credit_limit"] or 1, 1), 0.0), 1.0) for r in rows]

    return predict


class FakeJobs:
    """ports.Jobs in memory: counts submissions; jobs stay 'Running' until finished by the test."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict] = {}
        self.submissions: list[str] = []
        self.recipes: dict[str, Any] = {}  # job name -> the recipe it was submitted with
        self.lock = threading.Lock()
        self.fail_next: Exception | None = None

    def submit_retraining(self, job_name: str, model: str, tags: dict[str, str], inputs: dict | None = None,
                          recipe: Any = None) -> dict:
        with self.lock:
            self.recipes[job_name] = recipe
            if self.fail_next is not None:
                exc, self.fail_next = self.fail_next, None
                raise exc
            self.submissions.append(job_name)
            job = self.jobs.setdefault(job_name, {"name": job_name, "model": model, "status": "Running",
                                                  "tags": dict(tags)})
            return dict(job)

    def get_job(self, name: str) -> dict | None:
        return self.jobs.get(name)

    def list_running(self, model: str) -> list[dict]:
        with self.lock:
            return [dict(j) for j in self.jobs.values() if j["model"] == model and j["status"] == "Running"]

    def finish(self, name: str, status: str = "Completed") -> None:
        self.jobs[name]["status"] = status


@functools.cache
def _credit_card_sample() -> str:
    from ml.datagen import generate

    return json.dumps({"data": generate(2, seed=5, labelled=False).to_dict(orient="records")})


def credit_card_contract(sample: dict | None = None) -> dict[str, Any]:
    """The scenario model's contract, as its model card carries it (ml/artifact.py)."""
    from ml import schema

    return {"features": schema.schema_dict()["features"], "target": schema.TARGET, "task": "binary_classification",
            "response_kind": "probability", "classes": [0, 1], "positive_class": 1, "metric": "roc_auc",
            "sample_request": sample or json.loads(_credit_card_sample()),
            "reference": "reference.parquet"}


@dataclass
class FakeModelFiles:
    """ports.ModelFiles: every version is a credit-card artifact (a model card with its contract)
    unless `files[(name, version)]` gives the version's own files ({file name: bytes})."""

    files: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    reads: list[tuple[str, str, str]] = field(default_factory=list)

    def read(self, model: ModelRef, name: str) -> bytes | None:
        self.reads.append((model.name, model.version, name))
        files = self.files.get((model.name, model.version))
        if files is None:
            files = {"model_card.json": json.dumps({"artifact_format": 1, "contract": credit_card_contract()}).encode()}
        return files.get(name)


class FakeParts:
    """The parts of a bootstrap.App for trigger tests: given ports, and the real Durable adapter
    over whatever fake Durable client the test passes (as the host passes its binding)."""

    def __init__(self, ports: Any, jobs: Any = None) -> None:
        self._ports, self._jobs = ports, jobs or FakeJobs()

    def store(self) -> Any:
        return self._ports.store

    def rollout_ports(self, store: Any) -> Any:
        return self._ports

    def jobs(self) -> Any:
        return self._jobs

    def inference_logs(self) -> Any:
        raise AssertionError("not used by these tests")

    def references(self) -> Any:
        raise AssertionError("not used by these tests")

    def orchestrations(self, client: Any = None) -> Any:
        from functions.adapters.azure.durable import DurableOrchestrations

        return DurableOrchestrations(client)
