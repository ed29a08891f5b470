"""ports.Endpoints on azure-ai-ml: managed online endpoints of one workspace.

What the SDK does on the wire (azure-ai-ml 1.35), and what this adapter does about it:

- `online_endpoints.get` = GET endpoint + GET deployments (it fills 0 into the traffic map for
  deployments without traffic). Deployment states need a second list call.
- `online_endpoints.begin_create_or_update` = GET workspace (for its location) + PUT endpoint. The
  PUT carries the whole endpoint, traffic included: re-creating an existing endpoint from a fresh
  entity would send `traffic: {}` and take all traffic away. `begin_create_endpoint` therefore
  never re-PUTs an endpoint that exists.
- Traffic updates are that same PUT. The SDK drops 0-weight entries and lower-cases names before
  sending (`_strip_zeroes_from_traffic`), so a 0% deployment is absent from the wire map (absent
  means 0 to the service) and names must be lower-case to match. `set_traffic` validates the full
  map against the live deployments before any write.
- `online_deployments.begin_create_or_update` = GET endpoint (exists?) + asset resolution + GET
  workspace + PUT deployment. Local code/environment are uploaded to the workspace's default
  datastore with azure-storage-blob, outside the MLClient pipeline (and outside an injected
  transport); registered references (`azureml:name:version`, ARM or registry ids) are sent as ids.
  With a registry model it also calls `check_default_deployment_template`, which builds its own
  registry discovery client WITHOUT the MLClient's transport/options (one extra GET to
  https://<region>.api.azureml.ms per deployment; failures are swallowed by the SDK).
- The SDK's pollers start a daemon thread that polls the LRO (AzureMLPolling prints "." to stdout on
  every poll). `begin_*` here return without waiting; callers poll `get_*`.
- Every model format is deployed with modelops' scoring entry point (code + environment + the
  MODELOPS_* variables), MLflow models included. `DeploymentSpec.no_code` (serving: mlflow_no_code)
  is AzureML's no-code MLflow deployment: the PUT's properties carry `model`, the compute, probes,
  request settings and variables, and neither `codeConfiguration` nor `environmentId`; AzureML
  supplies both, for an `mlflow_model` only (ModelRef.model_type, AzureML's `modelType`), so any other
  model is refused here before a request.

`ensure_logging` (production endpoints, before a deployment goes on them): the endpoint's diagnostic
setting, read and written only when missing (diagnostic_settings.py), on a plain ARM pipeline with
the same credential and transport; staging's AzureEndpoints has none (`diagnostics=None`).

`score` calls the scoring URI itself (the SDK's `invoke` mutates a module-level header dict) with
the endpoint key and an explicit `azureml-model-deployment` header. A request that gets no HTTP
answer (connection refused/reset, timeout) is returned as `ScoreResult(status=599)` rather than
raised: gates and canary checks count it as a failed request (evidence about the deployment) and
keep going; failures of the management calls that fetch the URI and key are PlatformErrors.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.adapters.azure.aml_registry import model_identity, normalize_model_uri
from functions.adapters.azure.errors import azure_errors, or_none_if_missing
from functions.ports import (
    Conflict,
    DeploymentSpec,
    DeploymentState,
    EndpointState,
    PlatformError,
    ScoreResult,
)
from functions.settings import ML_DIR

NETWORK_ERROR_STATUS = 599  # no HTTP answer from the scoring URI (connection error or timeout)
# Stricter than the SDK's check: lower-case only, because traffic keys are lower-cased on the wire.
NAME_RE = re.compile(r"^[a-z][-a-z0-9]{1,30}[a-z0-9]$")


@dataclass(frozen=True)
class DeploymentAssets:
    """Where a deployment's code, environment and settings come from.

    `template`: a managed online deployment YAML (probes, request settings, env vars, code,
    environment); used when the file exists, with name/endpoint/model/instances overridden.
    `code` / `environment`: override the template's. A registered reference (`azureml:name:version`,
    an ARM id, `azureml://registries/...`) keeps deployments on the management plane — recommended
    for the Function App: register `ml/` and `ml/environments/serving.yml` once from CI. A local
    folder / environment YAML path is uploaded by the SDK on every deployment (new environment
    versions trigger image builds).
    """

    template: Path | None = ML_DIR / "endpoints" / "deployment.yml"
    code: str | None = None
    scoring_script: str = "score.py"
    environment: str | None = None


@dataclass
class _ScoringTarget:
    uri: str
    key: str


class AzureEndpoints:
    """ports.Endpoints over a workspace-scoped MLClient."""

    def __init__(self, ml_client: Any, assets: DeploymentAssets | None = None, *, session: Any = None,
                 diagnostics: Any = None) -> None:
        self._ml = ml_client
        self.assets = assets or DeploymentAssets()
        self._session = session  # requests.Session for scoring calls (tests / connection reuse)
        # diagnostic_settings.EndpointDiagnostics: where this workspace's endpoints send their logs
        # (production's; staging's endpoints are judged by the gates' own requests, and their logs
        # in the export's workspace would mix gate traffic into the production records)
        self.diagnostics = diagnostics
        self._targets: dict[str, _ScoringTarget] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ endpoints

    def get_endpoint(self, name: str) -> EndpointState | None:
        found = or_none_if_missing(f"get endpoint {name}", lambda: (
            self._ml.online_endpoints.get(name=name), list(self._ml.online_deployments.list(endpoint_name=name))))
        if found is None:
            return None
        endpoint, deployments = found
        return EndpointState(
            name=endpoint.name,
            provisioning_state=_state(endpoint.provisioning_state),
            scoring_uri=endpoint.scoring_uri or "",
            traffic={k: int(v) for k, v in (endpoint.traffic or {}).items()},
            deployments={d.name: _state(d.provisioning_state) for d in deployments},
        )

    def begin_create_endpoint(self, name: str, tags: dict[str, str] | None = None) -> None:
        _check_name(name, "endpoint")
        if self.get_endpoint(name) is not None:
            return  # a re-PUT would reset the traffic map (see module docstring)
        with azure_errors(f"create endpoint {name}"):
            from azure.ai.ml.entities import ManagedOnlineEndpoint

            endpoint = ManagedOnlineEndpoint(name=name, auth_mode="key", tags=dict(tags or {}))
            self._ml.online_endpoints.begin_create_or_update(endpoint)

    def endpoint_id(self, name: str) -> str:
        """The endpoint's ARM resource id (the scope of its diagnostic settings)."""
        ml = self._ml
        return (f"/subscriptions/{ml.subscription_id}/resourceGroups/{ml.resource_group_name}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{ml.workspace_name}/onlineEndpoints/{name}")

    def ensure_logging(self, name: str) -> str:
        """The endpoint's diagnostic setting (AmlOnlineEndpointConsoleLog and
        AmlOnlineEndpointTrafficLog → the Log Analytics workspace): read, and written only when
        missing (diagnostic_settings.py)."""
        _check_name(name, "endpoint")
        if self.diagnostics is None:
            raise PlatformError(f"endpoint {name}: no Log Analytics workspace is configured for this workspace's "
                                "endpoint logs (MODELOPS_LOG_ANALYTICS_RESOURCE_ID)")
        return self.diagnostics.ensure(self.endpoint_id(name))

    # ------------------------------------------------------------------ deployments

    def get_deployment(self, endpoint: str, name: str) -> DeploymentState | None:
        deployment = self._get_deployment_entity(endpoint, name)
        if deployment is None:
            return None
        model = deployment.model if isinstance(deployment.model, str) else getattr(deployment.model, "id", "")
        state = _state(deployment.provisioning_state)
        # The deployment resource carries no failure detail (it lives in the operation and the logs).
        error = f"provisioning {state.lower()}: see `az ml online-deployment get-logs`" if state in (
            "Failed", "Canceled") else ""
        return DeploymentState(
            endpoint=endpoint,
            name=deployment.name,
            provisioning_state=state,
            model_uri=normalize_model_uri(model or ""),
            error=error,
        )

    def begin_create_deployment(self, spec: DeploymentSpec) -> None:
        _check_name(spec.endpoint, "endpoint")
        _check_name(spec.name, "deployment")
        if model_identity(spec.model.uri) is None:
            raise PlatformError(
                f"deployment {spec.name}: model {spec.model.uri!r} is not an AzureML model reference "
                "(azureml://registries/<r>/models/<n>/versions/<v> or azureml:<n>:<v>)"
            )
        if spec.no_code_problem():  # AzureML supplies code and environment for mlflow_model models only
            raise PlatformError(spec.no_code_problem())
        existing = self._get_deployment_entity(spec.endpoint, spec.name)
        if existing is not None:
            state = _state(existing.provisioning_state)
            same_model = model_identity(existing.model or "") == model_identity(spec.model.uri)
            if not same_model:
                raise Conflict(
                    f"deployment {spec.endpoint}/{spec.name} already serves {normalize_model_uri(existing.model)}, "
                    f"not {spec.model.uri}: use a new deployment name per model version"
                )
            if state == "Deleting":
                raise PlatformError(f"deployment {spec.endpoint}/{spec.name} is being deleted", transient=True)
            if state not in ("Failed", "Canceled"):
                return  # same name, same model: nothing to do (a failed one is retried below)
        deployment = self.build_deployment(spec)
        with azure_errors(f"create deployment {spec.endpoint}/{spec.name}"):
            self._ml.online_deployments.begin_create_or_update(deployment)

    def build_deployment(self, spec: DeploymentSpec) -> Any:
        """The ManagedOnlineDeployment entity `begin_create_deployment` sends (no request made).

        Every model, MLflow models included, is served by modelops' entry point (the template's
        code + environment, or the `assets` overrides) unless `spec.no_code`: then AzureML's no-code
        MLflow deployment — the PUT carries no codeConfiguration and no environmentId, and AzureML
        supplies its MLflow scoring script and image for the mlflow_model. That serving loses what our
        entry point does (request validation by the contract, 4xx for bad requests, the InputData /
        OutputData log lines the inference-log export and drift read), hence not the default. The
        template's probes, request settings, variables and tags still apply."""
        from azure.ai.ml import load_environment, load_online_deployment
        from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment

        assets = self.assets
        with azure_errors(f"load deployment template {assets.template}"):
            if assets.template is not None and Path(assets.template).is_file():
                deployment = load_online_deployment(source=str(assets.template))
            elif spec.no_code:
                deployment = ManagedOnlineDeployment(name=spec.name)
            else:  # no template: code + environment from the repo, service defaults for the rest
                deployment = ManagedOnlineDeployment(
                    name=spec.name,
                    code_configuration=CodeConfiguration(code=str(ML_DIR), scoring_script=assets.scoring_script),
                    environment=load_environment(source=str(ML_DIR / "environments" / "serving.yml")),
                )
            deployment.name = spec.name
            deployment.endpoint_name = spec.endpoint
            deployment.model = spec.model.uri
            deployment.instance_type = spec.instance_type
            deployment.instance_count = spec.instance_count
            deployment.app_insights_enabled = True  # score.py's log lines feed the inference-log export
            env_vars = {**(deployment.environment_variables or {}), **spec.environment_variables}
            deployment.environment_variables = env_vars
            deployment.tags = {**(deployment.tags or {}), **spec.tags}
            if spec.no_code:
                deployment.code_configuration = None
                deployment.environment = None
                return deployment
            if assets.code is not None:
                code = assets.code
                if not code.startswith("azureml:") and Path(code).exists():
                    code = str(Path(code).resolve())
                deployment.code_configuration = CodeConfiguration(code=code, scoring_script=assets.scoring_script)
            if assets.environment is not None:
                env = assets.environment
                if env.endswith((".yml", ".yaml")) and Path(env).is_file():
                    deployment.environment = load_environment(source=env)
                else:
                    deployment.environment = env
        return deployment

    def scale_deployment(self, endpoint: str, name: str, instance_count: int) -> int:
        """PUT the deployment back with another `instance_count` (ARM: sku.capacity), without
        waiting. Managed online deployments have no scale to zero: 1 is the least."""
        if instance_count < 1:
            raise PlatformError(f"deployment {endpoint}/{name}: a managed online deployment needs at least 1 instance")
        existing = self._get_deployment_entity(endpoint, name)
        if existing is None:
            raise PlatformError(f"deployment {endpoint}/{name} not found")
        if existing.instance_count == instance_count:
            return instance_count  # already there: no write
        existing.instance_count = instance_count
        with azure_errors(f"scale deployment {endpoint}/{name} to {instance_count}"):
            self._ml.online_deployments.begin_create_or_update(existing)
        return instance_count

    def begin_delete_deployment(self, endpoint: str, name: str) -> None:
        or_none_if_missing(f"delete deployment {endpoint}/{name}",  # deleting what is gone is fine
                           lambda: self._ml.online_deployments.begin_delete(name=name, endpoint_name=endpoint))

    # ------------------------------------------------------------------ traffic

    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> None:
        wanted = _validated_traffic(endpoint, traffic)  # refuses bad maps before any request
        with azure_errors(f"get endpoint {endpoint}"):
            current = self._ml.online_endpoints.get(name=endpoint)  # GET endpoint + list deployments
        live = {k: int(v) for k, v in (current.traffic or {}).items()}  # includes 0% deployments
        dropped = sorted(set(live) - set(wanted))
        if dropped:
            raise PlatformError(
                f"traffic map for {endpoint} drops live deployment(s) {', '.join(dropped)}: "
                "name every deployment (0 for none)"
            )
        unknown = sorted(set(wanted) - set(live))
        if unknown:
            raise PlatformError(f"traffic map for {endpoint} names unknown deployment(s) {', '.join(unknown)}")
        if wanted == live:
            return  # already in place: no write
        current.traffic = dict(wanted)
        with azure_errors(f"set traffic on {endpoint}"):
            self._ml.online_endpoints.begin_create_or_update(current)

    # ------------------------------------------------------------------ scoring

    def score(self, endpoint: str, body: Any, deployment: str | None = None, timeout: float = 30.0) -> ScoreResult:
        import requests

        from functions.shared.scoring_client import post_json

        for attempt in (1, 2):
            target = self._scoring_target(endpoint, refresh=attempt == 2)
            try:
                answer = post_json(target.uri, body, deployment=deployment, key=target.key, timeout=timeout,
                                   session=self._session)
            except requests.RequestException as exc:
                return ScoreResult(NETWORK_ERROR_STATUS, {"error": f"{type(exc).__name__}: {exc}"[:500]}, 0.0)
            if answer.status in (401, 403) and attempt == 1:
                continue  # keys may have been regenerated: fetch them again once
            return ScoreResult(answer.status, answer.json, answer.elapsed_ms)
        raise AssertionError("unreachable")

    def _scoring_target(self, endpoint: str, refresh: bool = False) -> _ScoringTarget:
        with self._lock:
            cached = self._targets.get(endpoint)
        if cached is not None and not refresh:
            return cached
        with azure_errors(f"get scoring URI and key of {endpoint}"):
            ep = self._ml.online_endpoints.get(name=endpoint)
            keys = self._ml.online_endpoints.get_keys(name=endpoint)
        key = getattr(keys, "primary_key", None) or getattr(keys, "access_token", None)
        if not ep.scoring_uri or not key:
            raise PlatformError(f"endpoint {endpoint} has no scoring URI or key yet", transient=True)
        target = _ScoringTarget(ep.scoring_uri, key)
        with self._lock:
            self._targets[endpoint] = target
        return target

    # ------------------------------------------------------------------ helpers

    def _get_deployment_entity(self, endpoint: str, name: str) -> Any | None:
        return or_none_if_missing(f"get deployment {endpoint}/{name}",
                                  lambda: self._ml.online_deployments.get(name=name, endpoint_name=endpoint))


def _state(value: Any) -> str:
    """Provisioning state as the service spells it ('Succeeded'), whatever enum the SDK wraps it in."""
    raw = getattr(value, "value", value)
    if raw is None:
        return "Unknown"
    text = str(raw)
    return text.capitalize() if text.islower() or text.isupper() else text


def _check_name(name: str, kind: str) -> None:
    if not NAME_RE.match(name or ""):
        raise PlatformError(
            f"{kind} name {name!r} is not valid in AzureML: 3-32 characters, lower-case letters, digits and "
            "hyphens, starting with a letter and not ending with a hyphen"
        )


def _validated_traffic(endpoint: str, traffic: dict[str, int]) -> dict[str, int]:
    if not traffic:
        raise PlatformError(f"traffic map for {endpoint} is empty: name every live deployment")
    wanted: dict[str, int] = {}
    for name, weight in traffic.items():
        _check_name(name, "deployment")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise PlatformError(f"traffic for {endpoint}/{name} must be an integer 0..100, got {weight!r}")
        wanted[name] = weight
    total = sum(wanted.values())
    if total not in (0, 100):
        raise PlatformError(f"traffic map for {endpoint} sums to {total}, not 100 (or 0)")
    return wanted
