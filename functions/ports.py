"""Ports: the small interfaces the control plane needs from a platform.

Each has an Azure implementation (functions/adapters/azure, on the Azure SDKs) and a local one
(functions/adapters/local, the embedded platform). Core code depends only on these Protocols and
the dataclasses here; it never imports an SDK.

Contract conventions (after MLflow's deployment plugins): `begin_*` calls return as soon as the
platform accepted the request (callers poll `get_*`); deletes are idempotent; "not found" is
`None` from getters, and every other platform failure is a `PlatformError` (`transient=True` when
retrying later may succeed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterator, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from functions.shared.contract import ModelContract
    from functions.shared.export_table import ExportLayout


class PlatformError(RuntimeError):
    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class Conflict(PlatformError):
    """A conditional write lost: the object exists (create-only) or changed (etag)."""


MAX_KEY_LENGTH = 1024  # blob name limit


def check_key(key: str) -> str:
    """A key every Store accepts: '/'-separated non-empty segments, none starting with '.' (no '..',
    no hidden/temp names) or ending with '.' (Azure advises against it), no '\\' or control chars."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or key.startswith("/"):
        raise ValueError(f"invalid store key {key!r}")
    if "\\" in key or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise ValueError(f"invalid store key {key!r}")
    for segment in key.split("/"):
        if not segment or segment.startswith(".") or segment.endswith("."):
            raise ValueError(f"invalid store key {key!r}")
    return key


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    uri: str  # azureml://registries/... or azureml:name:version in Azure; a folder path locally
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""  # workspace / registry this reference points into
    # the platform's word for the model's format: AzureML's modelType ("custom_model", "mlflow_model",
    # "triton_model"); locally "mlflow_model" for a folder with an MLmodel file; "" when not known
    model_type: str = ""
    # who registered it, when the platform knows (AzureML: the asset's creation_context.created_by,
    # a UPN or an app id; locally: the OS user of `modelops register`): self-approval refusal
    registered_by: str = ""


MLFLOW_MODEL = "mlflow_model"


@dataclass(frozen=True)
class DeploymentSpec:
    endpoint: str
    name: str
    model: ModelRef
    instance_type: str = "Standard_DS3_v2"
    instance_count: int = 1
    environment_variables: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # False: served by modelops' scoring entry point (ml/score.py) in the serving environment, for
    # every model format. True: AzureML's no-code MLflow deployment (no code, no environment: AzureML
    # supplies both for an mlflow_model), which loses modelops' request validation and inference logs;
    # it takes and answers AzureML's wire shape, not the contract's (ModelContract.for_serving).
    no_code: bool = False

    def no_code_problem(self) -> str:
        """Why this spec cannot be a no-code deployment ("" when it can, or is not one)."""
        if not self.no_code or self.model.model_type == MLFLOW_MODEL:
            return ""
        kind = f"of type {self.model.model_type}" if self.model.model_type else "of unknown type"
        return (f"deployment {self.endpoint}/{self.name}: a no-code deployment (serving: mlflow_no_code) needs an "
                f"{MLFLOW_MODEL} model, and {self.model.name}:{self.model.version} is {kind}; register it as "
                f"an MLflow model (type {MLFLOW_MODEL}) or serve it with modelops' entry point (serving: modelops)")


@dataclass(frozen=True)
class DeploymentState:
    endpoint: str
    name: str
    provisioning_state: str  # Creating | Updating | Succeeded | Failed | Deleting
    model_uri: str = ""
    error: str = ""

    @property
    def ready(self) -> bool:
        return self.provisioning_state == "Succeeded"

    @property
    def failed(self) -> bool:
        return self.provisioning_state in ("Failed", "Canceled")


@dataclass(frozen=True)
class EndpointState:
    name: str
    provisioning_state: str  # Creating | Succeeded | Failed | Deleting
    scoring_uri: str = ""
    traffic: dict[str, int] = field(default_factory=dict)
    deployments: dict[str, str] = field(default_factory=dict)  # deployment name -> provisioning state

    @property
    def ready(self) -> bool:
        return self.provisioning_state == "Succeeded"


@dataclass(frozen=True)
class ScoreResult:
    status: int
    body: Any  # parsed JSON, or {"raw": text}
    elapsed_ms: float


@dataclass(frozen=True)
class TrafficStats:
    deployment: str
    requests: int
    errors: int  # 5xx answers: the deployment's own faults, the only ones held against it
    p90_ms: float | None
    start: datetime | None = None
    end: datetime | None = None
    # 4xx answers: the callers' mistakes, reported but never held against a deployment (a client
    # sending garbage must not be able to roll a healthy canary back)
    client_errors: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@runtime_checkable
class Endpoints(Protocol):
    """Managed online endpoints of one workspace (staging or production)."""

    def get_endpoint(self, name: str) -> EndpointState | None: ...

    def begin_create_endpoint(self, name: str, tags: dict[str, str] | None = None) -> None: ...

    def get_deployment(self, endpoint: str, name: str) -> DeploymentState | None: ...

    def begin_create_deployment(self, spec: DeploymentSpec) -> None:
        """Create the deployment (receives no traffic until `set_traffic`). Re-creating the same
        name with the same model is a no-op."""

    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> None:
        """Replace the traffic map. It must name every live deployment (0 for none) and sum to 100
        (or be all zero); a map that drops a live deployment is refused."""

    def scale_deployment(self, endpoint: str, name: str, instance_count: int) -> int:
        """Set a deployment's instance count (begins; returns without waiting) and return the
        count it will have (an adapter that cannot scale in place says what it keeps)."""

    def begin_delete_deployment(self, endpoint: str, name: str) -> None:
        """Idempotent: deleting a deployment that does not exist is fine."""

    def score(self, endpoint: str, body: Any, deployment: str | None = None, timeout: float = 30.0) -> ScoreResult:
        """POST to the scoring URI with the endpoint key; `deployment` pins the
        `azureml-model-deployment` header (bypasses the traffic map)."""

    def ensure_logging(self, name: str) -> str:
        """Make sure the endpoint's request and console logs reach where the TrafficLog and the
        inference-log export read them (Azure: the endpoint's diagnostic setting to the Log Analytics
        workspace). Idempotent; returns what was found or done, for the audit trail; PlatformError
        when it cannot (a canary on an endpoint whose logs go nowhere would be judged blind)."""


@runtime_checkable
class TrafficLog(Protocol):
    """Per-deployment request outcomes of an endpoint (AmlOnlineEndpointTrafficLog in Azure)."""

    def stats(self, endpoint: str, deployment: str, start: datetime, end: datetime) -> TrafficStats: ...


@runtime_checkable
class ModelRegistry(Protocol):
    """The staging workspace's models and the shared AzureML registry."""

    def get_workspace_model(self, name: str, version: str) -> ModelRef | None: ...

    def get_registry_model(self, name: str, version: str) -> ModelRef | None: ...

    def promote(self, model: ModelRef, tags: dict[str, str]) -> ModelRef:
        """Copy a workspace model version into the registry with lineage tags. Idempotent: an
        existing registry version is returned as it is."""


@runtime_checkable
class Store(Protocol):
    """Small JSON/bytes objects with conditional writes (blob storage in Azure, a folder locally)."""

    def get(self, key: str) -> tuple[bytes, str] | None:
        """(content, etag) or None."""

    def put(self, key: str, data: bytes, *, if_absent: bool = False, etag: str | None = None) -> str:
        """Write and return the new etag. `if_absent` → Conflict when the key exists; `etag` →
        Conflict when the stored object changed since it was read."""

    def list(self, prefix: str) -> list[str]:
        """Keys under a prefix, sorted."""

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class RetrainingRecipe:
    """How one model is retrained. In Azure: an AzureML pipeline job YAML (`pipeline`, a path in the
    repository; "" is ml/pipelines/train.yml) or a registered component (`pipeline`
    "azureml:<name>:<version>", "azureml:<name>@latest" or "azureml://registries/<registry>/
    components/…", submitted as a one-node pipeline job; the local platform cannot run one).
    Locally: a command run in the control plane's environment (`command`; () is `modelops train`
    on the newest labelled data), with the placeholders {training_data}, {output} (the folder to
    write the model into: it is registered when the command exits 0) and {model}."""

    pipeline: str = ""
    command: tuple[str, ...] = ()


@runtime_checkable
class Jobs(Protocol):
    """Training pipeline jobs (AzureML pipeline jobs in Azure, subprocesses locally)."""

    def submit_retraining(self, job_name: str, model: str, tags: dict[str, str],
                          inputs: dict[str, Any] | None = None,
                          recipe: RetrainingRecipe | None = None) -> dict[str, Any]:
        """Submit the model's retraining (its `recipe`; None: the default pipeline) under a
        caller-chosen, deterministic name and return {"name", "status", ...} at once (never waits).
        Submitting an existing name returns that job."""

    def submit_drift(self, job_name: str, model: str, inputs: dict[str, Any],
                     tags: dict[str, str]) -> dict[str, Any]:
        """Submit the drift job (ml/jobs/drift.yml: python -m ml.steps.drift) under a deterministic
        name and return {"name", "status", ...} at once; an existing name returns that job. `inputs`
        are store keys: "reference" (a Parquet file), "current" (a folder prefix of Parquet parts),
        "output" (the prefix result.json and report.html land under), "config" (DriftConfig
        fields), "report" (False: no HTML report). Drift jobs are not in `list_running`."""

    def get_job(self, name: str) -> dict[str, Any] | None: ...

    def list_running(self, model: str) -> list[dict[str, Any]]:
        """Jobs for `model` that have not reached a terminal state."""


@dataclass(frozen=True)
class Malformed:
    """Yielded by a source among its batches: `count` log lines or records it could not read.

    `samples` (optional, at most `count`): what the source saw of them — raw line text or JSON-able
    values — which the exporter keeps in the slice's quarantine object for a person to look at.
    A source that has no raw text (Log Analytics only counts them) leaves it empty."""

    count: int
    reason: str = ""
    samples: tuple[Any, ...] = ()


@runtime_checkable
class InferenceLogSource(Protocol):
    """score.py's InputData records of one model, one row per scored record.

    Rows have the columns of the model's export layout (`layout.schema`, by name; missing
    `deployment` is null): TimeGenerated (when the request was logged, UTC), request_id,
    model_version (from service_name online/<model>/<version>), deployment, record_index (position
    in the request's data list) and the contract's features — plus `MISFIT`, the raw JSON of a
    record whose keys are not the layout's features ("" or null when they are)."""

    def count(self, model: str, start: datetime, end: datetime) -> int:
        """Records with start <= TimeGenerated < end (after exploding requests into records)."""

    def fetch(self, model: str, start: datetime, end: datetime, layout: ExportLayout) -> Iterator[Any]:
        """The records with start <= TimeGenerated < end, as pyarrow Tables / RecordBatches or
        lists of dicts with `layout`'s columns, plus `Malformed` markers for what could not be read.

        Contract the exporter relies on: batches come in time order — every row of a batch has a
        TimeGenerated >= every row of the batches before it (sources cut [start, end) into
        half-open sub-windows) — and an incomplete answer is an exception (PlatformError), never
        a short batch.

        A source never raises because of a record's values: a batch it cannot type (a string
        that cannot be UTF-8, a value Arrow refuses) is yielded as it is (a list of dicts, or a
        table with the column left untyped), a record that does not fit the layout is marked
        (MISFIT), and the exporter decides, per record, what cannot be written and quarantines
        exactly that (functions.shared.export_table.conform_batch)."""


@runtime_checkable
class ContractSource(Protocol):
    """The stored contracts of a model's versions (functions/services/contracts.py keeps them in
    the Store): what the export types its table by and drift compares."""

    def current(self, model: str) -> ModelContract | None:
        """The contract of the model's current production version; None when none is stored."""

    def version(self, model: str, version: str) -> ModelContract | None:
        """The contract stored for one version; None when none is."""


@runtime_checkable
class Orchestrations(Protocol):
    """Durable orchestrations by instance id (the Durable client in Azure, the local driver on a
    laptop). Async because the Durable client is: the triggers await it."""

    async def exists(self, instance_id: str) -> bool:
        """Whether an instance with this id was ever started (running or finished)."""

    async def start(self, name: str, instance_id: str, input_: Any) -> None: ...

    async def raise_event(self, instance_id: str, event: str, data: Any) -> bool:
        """Deliver an external event; False when no running instance has this id."""


@runtime_checkable
class ReferenceSource(Protocol):
    """A model version's drift reference sample (reference.parquet of its artifact)."""

    def reference_file(self, model: str, version: str, tmp: Any) -> Any:
        """A local path to the version's reference.parquet (downloaded into `tmp` if need be)."""


@runtime_checkable
class ModelFiles(Protocol):
    """The small files registered with a model version (its contract's sources: model_card.json,
    MLmodel, contract.json, an MLflow input example), read by name within the model's folder."""

    def read(self, model: ModelRef, name: str) -> bytes | None:
        """The file's bytes, or None when the version has no such file. PlatformError when the
        model's files cannot be reached."""


@dataclass(frozen=True)
class HealthCheck:
    """One deep health check (GET /api/health?deep=1, and the start-up log): what was checked,
    whether it holds, and in words what was found or is missing."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


class AuthError(Exception):
    """A caller that may not call (the alert webhook's Secure Webhook check): `status` 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
