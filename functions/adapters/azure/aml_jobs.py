"""ports.Jobs on azure-ai-ml: the retraining pipeline (ml/pipelines/train.yml) as AzureML pipeline jobs.

What the SDK does on the wire (azure-ai-ml 1.35), and what this adapter does about it:

- `jobs.create_or_update(pipeline_job)` = GET workspace (a cache key for component resolution, once
  per MLClient) + resolution of `azureml:` references + ONE `PUT …/jobs/<name>?api-version=
  2024-01-01-preview`. Nothing is polled: the answer carries the job in `NotStarted` and the
  Studio URL (`properties.services.Studio.endpoint`). The adapter never waits for the job.
- The PUT carries the caller's AAD token for AzureML in an `x-azureml-token` header (pipeline jobs and
  user_identity steps run as the submitter). The SDK gets it with `credential.get_token(
  "https://ml.azure.com/.default")` and DECODES it (no signature check) to refuse a token whose
  `aud` is not `https://ml.azure.com`: fake credentials must hand out a JWT with that `aud`.
- Local component references (`component: file:../components/x.yml`) make the SDK register each
  component anonymously and upload its code snapshot and environment build context with
  azure-storage-blob — outside the MLClient pipeline (and outside an injected transport) and with
  Storage Blob Data Contributor rights on the workspace storage. `components="registered"` (the
  default) keeps submission on the management plane instead: every `file:` component of the
  pipeline YAML is replaced, at load time (`load_job(params_override=...)`), by
  `azureml:<name>:<version>` read from that component's own YAML, so the YAML stays the one
  definition of the pipeline and CI registers the components once per version
  (`az ml component create -f ml/components/<step>.yml`; bump `version` when a step changes).
  `components="local"` submits the YAML as it is (uploads included); a mapping
  {node: reference} pins nodes to other references (e.g. `azureml://registries/...`).
- An input declared with a type in the YAML (`training_data: {type: uri_file, path: ...@latest}`)
  can be overridden with a bare string (the new path). `name@latest` costs one extra
  `GET …/data/<name>` (the container's latestVersion); the PUT carries the resolved version.
- A job's name is its identity: the caller chooses it deterministically (one alert → one name), the
  adapter GETs it first and returns an existing job instead of submitting a second one. A PUT on an
  existing name is refused by the service unless nothing but description/tags/displayName/
  properties/isArchived differ (400 UserError "A job with this name already exists"); that, or a
  409, during submission means another submitter won the race: the existing job is returned.
- The service's Studio URL carries no tenant: the SDK appends `&tid=` taken from the `tid` claim of
  the ARM token it decodes (silently skipped when the token has none).
- `jobs.create_or_update` adds `mlflow.source.git.*` properties when the process runs inside a git
  checkout (a laptop); the Function App has none.
- The drift job (`submit_drift`, ml/jobs/drift.yml) is a command job: `load_job` returns a `Command`
  node, whose name the SDK LOWER-CASES (names with capitals are refused here, so the GET-before-PUT
  looks up the name that is sent) and whose PUT uses api-version 2025-01-01-preview. Its inputs and
  output are `azureml://datastores/<datastore>/paths/<key>` URIs on the datastore registered on the
  modelops storage container (the Store's keys are its paths). `code: ../..` and the environment's
  Docker build context are uploaded by the SDK with azure-storage-blob unless `drift_code` (a code
  asset: ARM id or `azureml:<name>:<version>`) and `drift_environment` (`azureml:<name>:<version>`)
  name registered assets; then submission is one PUT on the management plane.
- `jobs.list` has no status or tag-value filter: `tag=` is a tag KEY filter and `jobType=` narrows
  to pipelines; the model's tag value and the status are checked here. The list is newest first and
  paged (the SDK follows nextLink), so it grows with the workspace's retraining history.
- A model whose `retraining_pipeline` names a registered component (`azureml:<name>:<version>`,
  `azureml:<name>@latest`, `azureml://registries/<r>/components/<name>/versions/<v>` or
  `…/labels/latest`) gets a pipeline job of ONE node (`retrain`) running that component — a pipeline
  component or a command component. `components.get(name=, version=)` (or `label="latest"`: the most
  recently created version, `GET …/components/<name>/versions?$orderBy=createdtime desc&$top=1`)
  reads it: from the workspace client, or for a registry from a registry MLClient (built on first
  use: registry discovery is one more request). The component's declared inputs are checked before
  anything is sent: it must declare `model_input` (modelops sets it to the model's name), every
  other input modelops sets must be declared, and every required input without a default must be
  one modelops sets. The node is bound to the component object the service returned, so the PUT
  carries `jobs.retrain.componentId` = its id (the workspace ARM id, or the registry's
  `azureml://registries/…` id) and no component is registered or uploaded. The name, tags,
  experiment, GET-before-PUT and lost-race handling are the YAML pipeline's; `default_compute` is
  the default pipeline's (ml/pipelines/train.yml `settings.default_compute`) unless `compute` is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from functions.adapters.azure.errors import azure_errors, is_not_found
from functions.ports import Conflict, PlatformError, RetrainingRecipe
from functions.settings import ML_DIR
from functions.shared.names import ComponentRef, InvalidName, is_component_ref, parse_component_ref

DEFAULT_PIPELINE = ML_DIR / "pipelines" / "train.yml"
DEFAULT_DRIFT_JOB = ML_DIR / "jobs" / "drift.yml"
MODEL_TAG = "model"  # every retraining job carries tags[model] = <model name>; list_running filters on it
# A job is finished only in one of these three statuses of the service's JobStatus enum (azure-ai-ml
# _restclient/arm_ml_service/models/_enums.py). Every other status counts as running, so a second
# retraining cannot launch beside it: Paused and NotResponding can go back to Running ("NotResponding
# is the only state that is exempt from strict transition orders. A run can go from NotResponding to
# any of the previous states"), and Unknown, or a status newer than this SDK, may be running too.
# (The SDK's own run-history TERMINAL_STATUSES list NotResponding and Paused: it stops *streaming*
# there, which is not the same as the job being over.)
TERMINAL_STATES = frozenset({"Completed", "Failed", "Canceled"})
# AzureML run ids: letters, digits, '_' and '-' (the name is a URL path segment and the Studio run id).
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
COMPONENT_NODE = "retrain"  # the one node of a registered component's retraining job
COMPONENT_TYPES = ("pipeline", "command")
LITERAL_INPUT_TYPES = frozenset({"string", "integer", "number", "boolean"})  # others are assets: a str is a path


def is_running(status: str) -> bool:
    """Whether a job in `status` may still run (the service's enum is case-insensitive)."""
    return status.casefold() not in {s.casefold() for s in TERMINAL_STATES}


def running_states() -> frozenset[str]:
    """The statuses of the service's JobStatus enum that count as running (all but TERMINAL_STATES)."""
    from azure.ai.ml._restclient.arm_ml_service.models import JobStatus

    return frozenset(status.value for status in JobStatus if is_running(status.value))


class AzureJobs:
    """ports.Jobs over a workspace-scoped MLClient (the workspace where models register)."""

    def __init__(self, ml_client: Any, pipeline_yaml: str | Path = DEFAULT_PIPELINE, *,
                 components: str | Mapping[str, str] = "registered", model_input: str = "model_name",
                 drift_yaml: str | Path = DEFAULT_DRIFT_JOB, drift_datastore: str = "", drift_code: str = "",
                 drift_environment: str = "", registry_clients: Callable[[str], Any] | None = None,
                 compute: str | None = None) -> None:
        """`registry_clients(name)`: a registry MLClient, for models retrained by a registry's
        component; `compute`: the default compute of a component's job (None: the default pipeline's)."""
        if isinstance(components, str) and components not in ("registered", "local"):
            raise ValueError(f"components must be 'registered', 'local' or a mapping, not {components!r}")
        self._ml = ml_client
        self._registry_clients = registry_clients
        self._registries: dict[str, Any] = {}
        self.compute = compute
        self.pipeline_yaml = Path(pipeline_yaml)
        self.components = components
        self.model_input = model_input
        self.drift_yaml = Path(drift_yaml)
        self.drift_datastore = drift_datastore
        self.drift_code = drift_code
        self.drift_environment = drift_environment
        self._spec: _PipelineSpec | None = None

    # ------------------------------------------------------------------ ports.Jobs

    def submit_retraining(self, job_name: str, model: str, tags: dict[str, str],
                          inputs: dict[str, Any] | None = None, recipe: RetrainingRecipe | None = None,
                          experiment: str = "modelops-retraining", *,
                          display_name: str | None = None) -> dict[str, Any]:
        """Submit the pipeline as `job_name` and return at once: {"name", "status", "studio_url",
        "tags", "experiment", "display_name", "created_at", "submitted"}. An existing job of that name
        is returned as it is (`submitted: False`) whatever its state — a failed job is retried under a
        new name — unless it belongs to another model (Conflict). A recipe's `pipeline` (a YAML path,
        relative to the repository, or a registered component) replaces the default pipeline for that model."""
        if recipe is not None and is_component_ref(recipe.pipeline):
            try:
                ref = parse_component_ref(recipe.pipeline)
            except InvalidName as exc:
                raise PlatformError(f"retraining pipeline of {model}: {exc}") from None
            return self._submit_component(ref, job_name, model, tags, inputs, experiment, display_name)
        if recipe is not None and recipe.pipeline:
            return self._with_pipeline(recipe.pipeline).submit_retraining(
                job_name, model, tags, inputs, None, experiment, display_name=display_name)
        _check_name(job_name, "job")
        _check_name(experiment, "experiment")
        existing = self.get_job(job_name)
        if existing is not None:
            return self._existing(existing, job_name, model)
        job = self.build_job(job_name, model, tags, inputs, experiment, display_name=display_name)

        def explain(exc: Exception) -> None:
            if self.components == "registered" and _status(exc) in (400, 404):
                raise PlatformError(
                    f"submit retraining job {job_name}: HTTP {_status(exc)} {_first_line(exc)} (the pipeline "
                    f"references registered components {', '.join(self._pipeline().registered.values())}: "
                    "are they registered? `az ml component create -f ml/components/<step>.yml`)") from exc

        return self._create(job, job_name, model, "retraining", explain)

    def _submit_component(self, ref: ComponentRef, job_name: str, model: str, tags: dict[str, str],
                          inputs: dict[str, Any] | None, experiment: str, display_name: str | None) -> dict[str, Any]:
        _check_name(job_name, "job")
        _check_name(experiment, "experiment")
        existing = self.get_job(job_name)  # before the component is read: a resubmission costs one GET
        if existing is not None:
            return self._existing(existing, job_name, model)
        job = self.build_component_job(ref, job_name, model, tags, inputs, experiment, display_name=display_name)
        component = job.jobs[COMPONENT_NODE].component
        component_id = str(component if isinstance(component, str) else getattr(component, "id", "") or "")
        component_id = component_id.removeprefix("azureml:") if component_id.startswith("azureml:/") else component_id

        def explain(exc: Exception) -> None:
            if _status(exc) in (400, 404):
                raise PlatformError(f"submit retraining job {job_name}: HTTP {_status(exc)} {_first_line(exc)} (its "
                                    f"one step runs component {ref}, {component_id})") from exc

        return self._create(job, job_name, model, "retraining", explain)

    def submit_drift(self, job_name: str, model: str, inputs: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
        """Submit ml/jobs/drift.yml as `job_name` and return at once (like `submit_retraining`; an existing
        job of that name is returned with `submitted: False`). `inputs`: "reference", "current" and
        "output" as store keys/prefixes (or full azureml:// URIs), "config" (DriftConfig fields),
        "report" (False: --no-report), "datastore" (else the adapter's `drift_datastore`), "contract"
        (a store key or URI: the model's contract JSON, a uri_file input passed as --contract)."""
        _check_name(job_name, "job")
        if job_name != job_name.lower():
            raise PlatformError(f"drift job name {job_name!r} must be lower case (the SDK lower-cases command job "
                                "names, so the existence check would miss it)")
        existing = self.get_job(job_name)
        if existing is not None:
            return self._existing(existing, job_name, model)
        job = self.build_drift_job(job_name, model, inputs, tags)
        return self._create(job, job_name, model, "drift")

    def _create(self, job: Any, job_name: str, model: str, kind: str,
                explain: Callable[[Exception], None] | None = None) -> dict[str, Any]:
        """PUT the job; a lost create race (another instance submitted the same name) returns the
        existing job. `explain` may turn a failure into a clearer PlatformError."""
        with _errors(f"submit {kind} job {job_name}"):
            try:
                created = self._ml.jobs.create_or_update(job)
            except Exception as exc:
                if _lost_create_race(exc):
                    existing = self.get_job(job_name)
                    if existing is not None:
                        return self._existing(existing, job_name, model)
                elif explain is not None:
                    explain(exc)
                raise
        return {**_summary(created), "submitted": True}

    def build_drift_job(self, job_name: str, model: str, inputs: Mapping[str, Any], tags: Mapping[str, Any]) -> Any:
        """The command job `submit_drift` sends (loads YAML; makes no request)."""
        import json
        import shlex

        from azure.ai.ml import load_job

        datastore = str(inputs.get("datastore") or self.drift_datastore)
        missing = [k for k in ("reference", "current", "output") if not inputs.get(k)]
        if missing:
            raise PlatformError(f"drift job {job_name}: missing input(s) {', '.join(missing)}")

        def uri(value: str, folder: bool) -> str:
            if "://" in value:
                return value
            if not datastore:
                raise PlatformError("the drift job reads and writes the modelops container through a workspace "
                                    "datastore: set MODELOPS_DRIFT_DATASTORE")
            path = value.strip("/") + ("/" if folder else "")
            return f"azureml://datastores/{datastore}/paths/{path}"

        overrides = [
            {"inputs.reference": {"type": "uri_file", "path": uri(str(inputs["reference"]), False)}},
            {"inputs.current": {"type": "uri_folder", "path": uri(str(inputs["current"]), True)}},
            {"outputs.report": {"type": "uri_folder", "path": uri(str(inputs["output"]), True)}},
        ]
        if inputs.get("contract"):  # an input the YAML does not declare: the job reads the contract from it
            overrides.append({"inputs.contract": {"type": "uri_file", "path": uri(str(inputs["contract"]), False)}})
        with _errors(f"load drift job {self.drift_yaml}"):
            job = load_job(source=str(self.drift_yaml), params_override=overrides)
        if self.drift_code:  # set after loading: the loader takes a code string for a local path
            job.code = self._code_id(self.drift_code)
        if self.drift_environment:
            job.environment = self.drift_environment
        arguments = ["--model-name", model]
        if inputs.get("config"):
            arguments += ["--config", json.dumps(inputs["config"], separators=(",", ":"), sort_keys=True)]
        if inputs.get("report") is False:
            arguments.append("--no-report")
        contract = " --contract ${{inputs.contract}}" if inputs.get("contract") else ""  # unquoted: AzureML fills it
        job.command = f"{job.command}{contract} {shlex.join(arguments)}"
        job.name = job_name
        job.display_name = f"drift {model}"
        job.tags = {**(job.tags or {}), **{str(k): str(v) for k, v in tags.items()}, MODEL_TAG: model}
        return job

    def _code_id(self, code: str) -> str:
        """A command job's code must be a code asset ARM id (azureml:<name>:<version> is read as a local path)."""
        code = code.removeprefix("azureml:") if code.startswith("azureml:/") else code
        match = re.fullmatch(r"azureml:([^:/]+):([^:/]+)", code)
        if not match:
            return code
        return (f"/subscriptions/{self._ml.subscription_id}/resourceGroups/{self._ml.resource_group_name}"
                f"/providers/Microsoft.MachineLearningServices/workspaces/{self._ml.workspace_name}"
                f"/codes/{match.group(1)}/versions/{match.group(2)}")

    def get_job(self, name: str) -> dict[str, Any] | None:
        _check_name(name, "job")
        with _errors(f"get job {name}"):
            try:
                job = self._ml.jobs.get(name)
            except Exception as exc:
                if is_not_found(exc):
                    return None
                raise
        return _summary(job)

    def list_running(self, model: str) -> list[dict[str, Any]]:
        """Pipeline jobs tagged model=<model> in a non-terminal state, newest first."""
        running = []
        with _errors(f"list jobs of {model}"):
            for job in self._ml.jobs.list(tag=MODEL_TAG, job_type="Pipeline"):
                if job is None:  # the SDK yields None for a job it cannot parse
                    continue
                if (job.tags or {}).get(MODEL_TAG) == model and is_running(_status_text(job.status)):
                    running.append(_summary(job))
        return running

    # ------------------------------------------------------------------ building

    def build_job(self, job_name: str, model: str, tags: Mapping[str, Any], inputs: Mapping[str, Any] | None = None,
                  experiment: str = "modelops-retraining", *, display_name: str | None = None) -> Any:
        """The PipelineJob `submit_retraining` sends (loads YAML; makes no request)."""
        from azure.ai.ml import load_job

        spec = self._pipeline()
        overrides = [{f"jobs.{node}.{field}": ref} for node, (field, ref) in spec.component_overrides.items()]
        overrides += self._input_overrides(model, inputs or {})
        with _errors(f"load pipeline {self.pipeline_yaml}"):
            job = load_job(source=str(self.pipeline_yaml), params_override=overrides)
        job.name = job_name
        job.experiment_name = experiment
        job.display_name = display_name or f"retrain {model}"
        job.tags = {**(job.tags or {}), **{str(k): str(v) for k, v in tags.items()}, MODEL_TAG: model}
        return job

    def build_component_job(self, ref: ComponentRef, job_name: str, model: str, tags: Mapping[str, Any],
                            inputs: Mapping[str, Any] | None = None, experiment: str = "modelops-retraining", *,
                            display_name: str | None = None) -> Any:
        """The PipelineJob `submit_retraining` sends for a registered component: one node running it,
        with the model's name in `model_input` and `inputs` checked against what the component
        declares. Reads the component (GET; a registry's first use adds its discovery); sends nothing."""
        from azure.ai.ml import Input
        from azure.ai.ml.entities import PipelineJob, PipelineJobSettings

        component = self._component(ref)
        if component.type not in COMPONENT_TYPES:
            raise PlatformError(f"retraining component {ref} is a {component.type} component: modelops runs a "
                                f"pipeline or command component as the retraining job's one step")
        declared = dict(component.inputs or {})
        listed = ", ".join(sorted(declared)) or "none"
        if self.model_input not in declared:
            raise PlatformError(f"retraining component {ref} declares no input {self.model_input!r}: modelops passes "
                                f"the model's name in it (declare `{self.model_input}: {{type: string}}` under the "
                                f"component's inputs; it declares: {listed})")
        values = {**(inputs or {}), self.model_input: model}
        arguments: dict[str, Any] = {}
        for name, value in values.items():
            if name not in declared:
                raise PlatformError(f"retraining component {ref} has no input {name!r} (it declares: {listed})")
            kind = declared[name].type
            if isinstance(value, str) and kind not in LITERAL_INPUT_TYPES:
                value = Input(type=kind, path=value)  # a new path for an asset input
            arguments[name] = value
        missing = sorted(name for name, port in declared.items()
                         if name not in arguments and not port.optional and port.default is None)
        if missing:
            raise PlatformError(f"retraining component {ref} requires input(s) {', '.join(missing)}, which modelops "
                                f"does not set (it sets {', '.join(sorted(arguments))}): give them defaults in the "
                                "component")
        with _errors(f"build retraining job {job_name} from component {ref}"):
            node = component(**arguments)
        compute = self._component_compute()
        return PipelineJob(
            jobs={COMPONENT_NODE: node}, name=job_name, experiment_name=experiment,
            display_name=display_name or f"retrain {model}", description=f"modelops retraining of {model}: {ref}",
            tags={**{str(k): str(v) for k, v in tags.items()}, MODEL_TAG: model},
            settings=PipelineJobSettings(default_compute=compute) if compute else None,
        )

    def _component(self, ref: ComponentRef) -> Any:
        """The registered component `ref` names, as the service has it (its `id` is what the job references)."""
        action = f"get retraining component {ref}"
        with _errors(action):
            client = self._ml if ref.registry is None else self._registry(ref.registry)
            try:
                if ref.version:
                    return client.components.get(name=ref.name, version=ref.version)
                return client.components.get(name=ref.name, label=ref.label)
            except Exception as exc:
                if is_not_found(exc) or _no_such_asset(exc):
                    raise PlatformError(f"{action}: no such component in {ref.place} (register it there: `az ml "
                                        "component create -f <component>.yml"
                                        f"{' --registry-name ' + ref.registry if ref.registry else ''}`)") from exc
                raise

    def _registry(self, name: str) -> Any:
        if name not in self._registries:
            if self._registry_clients is None:
                raise PlatformError(f"registry {name}: this AzureJobs has no registry client factory "
                                    "(AzureJobs(..., registry_clients=...))")
            self._registries[name] = self._registry_clients(name)  # discovery: one request
        return self._registries[name]

    def _component_compute(self) -> str:
        """The default compute of a component's job: `compute`, else the default pipeline's."""
        if self.compute is None:
            import yaml

            try:
                doc = yaml.safe_load(DEFAULT_PIPELINE.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise PlatformError(f"cannot read the default compute from {DEFAULT_PIPELINE}: {exc}") from exc
            self.compute = str((doc.get("settings") or {}).get("default_compute") or "")
        return self.compute.removeprefix("azureml:")  # in code the SDK takes the compute's name

    def _input_overrides(self, model: str, inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
        declared = self._pipeline().inputs
        if self.model_input not in declared:
            raise PlatformError(f"pipeline {self.pipeline_yaml} has no input {self.model_input!r} for the model name")
        values = {**inputs, self.model_input: model}
        overrides = []
        for name, value in values.items():
            if "." in name:  # a raw load_job override, e.g. "jobs.evaluate.inputs.champion_model"
                overrides.append({name: value})
                continue
            if name not in declared:
                raise PlatformError(f"pipeline {self.pipeline_yaml} has no input {name!r} "
                                    f"(inputs: {', '.join(sorted(declared))})")
            spec = declared[name]
            if isinstance(value, str) and isinstance(spec, dict) and spec.get("type"):
                value = {"type": spec["type"], "path": value}  # a new path for a typed (asset) input
            overrides.append({f"inputs.{name}": value})
        return overrides

    def _with_pipeline(self, path: str) -> "AzureJobs":
        """This adapter on another pipeline YAML (kept: its spec is read once)."""
        import copy

        resolved = Path(path) if Path(path).is_absolute() else ML_DIR.parent / path
        if not resolved.is_file():
            raise PlatformError(f"retraining pipeline {path}: no such file (paths are relative to the repository)")
        cache = self.__dict__.setdefault("_by_pipeline", {})
        if str(resolved) not in cache:
            other = copy.copy(self)
            other.pipeline_yaml, other._spec, other.__dict__["_by_pipeline"] = resolved, None, {}
            cache[str(resolved)] = other
        return cache[str(resolved)]

    def _pipeline(self) -> _PipelineSpec:
        if self._spec is None:
            self._spec = _PipelineSpec.read(self.pipeline_yaml, self.components)
        return self._spec

    def _existing(self, existing: dict[str, Any], job_name: str, model: str) -> dict[str, Any]:
        owner = existing["tags"].get(MODEL_TAG)
        if owner is not None and owner != model:
            raise Conflict(f"job {job_name} exists already for model {owner}, not {model}: job names must be "
                           "unique per model")
        return {**existing, "submitted": False}


class _PipelineSpec:
    """What the adapter needs from the pipeline YAML before the SDK loads it."""

    def __init__(self, inputs: dict[str, Any], component_overrides: dict[str, tuple[str, str]]) -> None:
        self.inputs = inputs
        self.component_overrides = component_overrides  # node -> (field, reference)

    @property
    def registered(self) -> dict[str, str]:
        return {node: ref for node, (_, ref) in self.component_overrides.items()}

    @classmethod
    def read(cls, path: Path, components: str | Mapping[str, str]) -> _PipelineSpec:
        import yaml

        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise PlatformError(f"cannot read pipeline {path}: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("type") != "pipeline" or not isinstance(doc.get("jobs"), dict):
            raise PlatformError(f"{path} is not a pipeline job YAML (type: pipeline, jobs: ...)")
        overrides: dict[str, tuple[str, str]] = {}
        for node, body in doc["jobs"].items():
            field = "trial" if (body or {}).get("type") == "sweep" else "component"
            current = (body or {}).get(field)
            if isinstance(components, Mapping):
                if node in components:
                    ref = components[node]
                    if field == "trial" and (not ref.startswith("azureml:") or ref.startswith("azureml://")):
                        # azure-ai-ml 1.35 loads a sweep trial "azureml://registries/…" as
                        # "//registries/…" and then cannot resolve it.
                        raise PlatformError(f"sweep step {node}: its trial must be a workspace component "
                                            f"(azureml:<name>:<version>), not {ref!r}")
                    overrides[node] = (field, ref)
            elif components == "registered":
                overrides[node] = (field, _registered_reference(path, node, current))
        if isinstance(components, Mapping):
            unknown = sorted(set(components) - set(doc["jobs"]))
            if unknown:
                raise PlatformError(f"pipeline {path} has no step(s) {', '.join(unknown)}")
        return cls(dict(doc.get("inputs") or {}), overrides)


def _registered_reference(pipeline: Path, node: str, current: Any) -> str:
    """`azureml:<name>:<version>` of a step's component, from the component YAML the step points to."""
    import yaml

    if isinstance(current, str) and current.startswith("azureml:"):
        return current
    if not isinstance(current, str):
        raise PlatformError(f"step {node} of {pipeline} defines its component inline: it cannot be submitted as a "
                            "registered component (move it to its own YAML with a name and version)")
    file = Path(current.removeprefix("file:"))
    file = file if file.is_absolute() else (pipeline.parent / file)
    try:
        component = yaml.safe_load(file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PlatformError(f"cannot read component {file} of step {node}: {exc}") from exc
    name, version = component.get("name"), component.get("version")
    if not name or version in (None, ""):
        raise PlatformError(f"component {file} of step {node} has no name/version to reference it by")
    return f"azureml:{name}:{version}"


@contextmanager
def _errors(action: str) -> Iterator[None]:
    """azure_errors, with readable messages: the SDK's MlException text (job submission wraps every
    client-side failure in one) is ANSI-coloured and starts with boilerplate."""
    try:
        with azure_errors(action):
            yield
    except PlatformError as exc:
        cause = exc.__cause__
        if cause is None or "\x1b[" not in str(exc):
            raise
        raise type(exc)(f"{action}: {_first_line(cause)}", transient=exc.transient) from cause


def _summary(job: Any) -> dict[str, Any]:
    created = getattr(getattr(job, "creation_context", None), "created_at", None)
    return {
        "name": job.name,
        "status": _status_text(job.status),
        "studio_url": job.studio_url or "",
        "tags": dict(job.tags or {}),
        "experiment": job.experiment_name or "",
        "display_name": job.display_name or "",
        "created_at": created.isoformat() if hasattr(created, "isoformat") else (created or ""),
    }


def _status_text(value: Any) -> str:
    raw = getattr(value, "value", value)
    return str(raw) if raw is not None else "Unknown"


def _no_such_asset(exc: BaseException) -> bool:
    """azure-ai-ml's answer to `label="latest"` for a name without versions: a ValidationException
    ("Asset <name> does not exist in workspace <w>.") of type RESOURCE_NOT_FOUND, not an HTTP 404."""
    kind = getattr(exc, "error_type", None)
    return str(getattr(kind, "value", kind) or "").upper().replace(" ", "_") == "RESOURCE_NOT_FOUND"


def _status(exc: BaseException) -> int | None:
    from azure.core.exceptions import HttpResponseError

    return exc.status_code if isinstance(exc, HttpResponseError) else None


def _lost_create_race(exc: BaseException) -> bool:
    """409, or the 400 the service answers a PUT on an existing job name with different content."""
    status = _status(exc)
    return status == 409 or (status == 400 and "already exists" in str(exc).lower())


def _first_line(exc: BaseException) -> str:
    """The first line that says something ("1) Resource was not found." and the like are headings)."""
    text = ANSI_RE.sub("", str(getattr(exc, "message", None) or exc))
    for line in text.splitlines():
        line = line.strip()
        if line and not re.match(r"^(\d+\)|Resolutions|Details|Additional Resources)", line):
            return line.removeprefix("(x) ")[:500]
    return type(exc).__name__


def _check_name(name: str, kind: str) -> None:
    if not isinstance(name, str) or not JOB_NAME_RE.match(name):
        raise PlatformError(f"{kind} name {name!r} is not valid in AzureML: 1-255 letters, digits, '_' or '-', "
                            "starting with a letter or digit")
