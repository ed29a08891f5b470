"""Which models modelops manages, and how: endpoints, compute, gate thresholds, canary plan.

Read from the `MODELOPS_MODELS` app setting (JSON: {"<model>": {<overrides>}} — any field below)
and from one file per model (`<model>.json` / `.yaml` in MODELOPS_MODELS_DIR, read by
functions/services/model_configs.py), with sensible defaults. With no configuration at all the
scenario's model `credit-card-default` is managed. A model configured in two places is an error.
Pure: no I/O beyond parsing the string it is given. pydantic checks the types (imported by the first
parse: this module is on the cold-start path); ModelConfig checks the rules, for configs built in code too.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from functions.shared.contract import NO_CODE_SERVING, PROBABILITY_METRICS, SERVING_MODES
from functions.shared.names import (
    COMPONENT_FORMS,
    InvalidName,
    check_endpoint_name,
    check_model_name,
    is_component_ref,
    parse_component_ref,
)

DEFAULT_MODEL = "credit-card-default"
STAGING_CLEANUP = ("scale_to_min", "delete", "keep")  # ModelConfig.staging_cleanup
# ModelConfig.serving (SERVING_MODES): modelops' scoring entry point, or AzureML's no-code MLflow deployment


class ConfigError(ValueError):
    """The configuration is unusable; the message names the setting and field."""


@dataclass(frozen=True)
class GateConfig:
    latency_requests: int = 50
    latency_p95_ms: float = 500.0
    min_roc_auc: float = 0.70  # absolute floor when the contract's metric is ROC AUC (and min_metric is unset)
    # the bound on the contract's metric: a floor for higher-is-better metrics (ROC AUC, accuracy,
    # F1, R²), a ceiling for lower-is-better ones (log loss, RMSE, MAE); None: the champion only
    min_metric: float | None = None
    champion_tolerance: float = 0.01  # challenger no worse than champion by more than this (metric units)
    evaluation_rows: int = 2_000  # labelled rows scored for the quality gate
    batch_rows: int = 500  # rows per scoring request during the quality gate


@dataclass(frozen=True)
class CanaryConfig:
    steps: tuple[int, ...] = (10, 50, 100)
    bake_seconds: float = 300.0
    max_error_rate: float = 0.01  # 5xx share of the new deployment's requests in a bake window
    max_p90_ms: float = 1_000.0
    # No data is not success: a window with fewer of the canary's requests than this is extended
    # (another bake window, up to max_bake_seconds at the step), then fails. Never below 1.
    min_requests: int = 20
    max_bake_seconds: float = 1_800.0  # the longest one canary step may bake while waiting for traffic
    # wait this long after a bake window before reading its figures: Log Analytics ingestion lags
    # minutes in Azure (the Azure platform defaults it to MODELOPS_INGESTION_LAG_SECONDS)
    health_delay_seconds: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    # pydantic's rules for this class and the two above (nested dataclasses inherit them): unknown fields
    # refused; strict: an int is accepted for a float, a bool or "1" never for a number. A plain dict.
    __pydantic_config__ = {"strict": True, "extra": "forbid"}

    name: str
    staging_endpoint: str = ""
    production_endpoint: str = ""
    instance_type: str = "Standard_DS3_v2"
    instance_count: int = 1
    gates: GateConfig = field(default_factory=GateConfig)
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    approval_required: bool = False
    approval_timeout_seconds: float = 24 * 3600.0
    provisioning_timeout_seconds: float = 3600.0
    poll_seconds: float = 30.0
    evaluation_data: str = ""  # store key of the labelled evaluation set; default datasets/<model>/evaluation.csv
    # contract fields the model's files cannot say (target, task, metric, classes, request_shape,
    # response_key, response_kind …): applied over model_card.json / MLmodel / contract.json
    contract: dict[str, Any] = field(default_factory=dict, hash=False)  # (a dict: left out of the hash)
    allow_contract_change: bool = False  # release a version whose contract breaks the champion's callers
    # this model's drift settings (ml.drift.DriftConfig's fields: thresholds, per-column methods and
    # thresholds naming its own columns, min_current_rows …), over MODELOPS_DRIFT_CONFIG's; checked
    # against the model's contract when its drift check runs, and by `modelops models validate`
    drift: dict[str, Any] = field(default_factory=dict, hash=False)
    # skops types this model's files may load (MLflow models saved with skops): the platform's list,
    # never the file's own
    skops_trusted_types: tuple[str, ...] = ()
    # how this model is retrained (ports.RetrainingRecipe): its AzureML pipeline job YAML or registered
    # component (azureml:<name>:<version>, azureml://registries/…), and the local platform's command
    # ({training_data}, {output}, {model} are filled in)
    retraining_pipeline: str = ""
    retraining_command: tuple[str, ...] = ()
    # how deployments serve the model: "modelops" — modelops' scoring entry point (ml/score.py, which
    # validates requests by the contract and logs inputs/outputs for drift) in the serving environment,
    # for every format, MLflow models included; "mlflow_no_code" — AzureML's no-code MLflow deployment
    # (AzureML supplies the scoring script and environment; the model must be registered as an
    # mlflow_model). No-code serving loses modelops' request validation and inference logging;
    # AzureML's script takes {"input_data": <split frame>} and answers a bare list of labels or
    # values, which is what the gates then send and read (ModelContract.for_serving): the quality
    # metric must be one computed from labels (or a regression's).
    serving: str = "modelops"
    # cost: what becomes of the staging deployment once its version is in production or was
    # rejected (approval, production smoke, rollback): "scale_to_min" (the default: staging keeps
    # serving the newest validated version, on one instance — AzureML managed online deployments
    # cannot scale to zero), "delete" (nothing left running in staging), "keep" (as created)
    staging_cleanup: str = "scale_to_min"

    def __post_init__(self) -> None:
        try:
            check_model_name(self.name)
        except InvalidName as exc:
            raise ConfigError(f"MODELOPS_MODELS: {exc}") from None
        slug = re.sub(r"[^a-z0-9-]", "-", self.name.lower()).strip("-")[:20].strip("-") or "model"
        if not slug[0].isalpha():  # endpoint names start with a letter; model names need not
            slug = f"m-{slug}"[:20].strip("-")
        if not self.staging_endpoint:
            object.__setattr__(self, "staging_endpoint", f"{slug}-staging")
        if not self.production_endpoint:
            object.__setattr__(self, "production_endpoint", f"{slug}-prod")
        if not self.evaluation_data:
            object.__setattr__(self, "evaluation_data", f"datasets/{self.name}/evaluation.csv")
        _check(self)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["canary"]["steps"] = list(self.canary.steps)
        out["skops_trusted_types"] = list(self.skops_trusted_types)
        out["retraining_command"] = list(self.retraining_command)
        return out


def _check(cfg: ModelConfig) -> None:
    where = f"MODELOPS_MODELS[{cfg.name!r}]"
    steps = cfg.canary.steps
    if not steps or any(not (0 < s <= 100) for s in steps) or list(steps) != sorted(set(steps)) or steps[-1] != 100:
        raise ConfigError(f"{where}.canary.steps must rise strictly to 100 (e.g. [10, 50, 100]), got {list(steps)}")
    for label, value in (("instance_count", cfg.instance_count), ("gates.latency_requests", cfg.gates.latency_requests)):
        if value < 1:
            raise ConfigError(f"{where}.{label} must be at least 1, got {value}")
    if cfg.retraining_command and not any("{output}" in part for part in cfg.retraining_command):
        raise ConfigError(f"{where}.retraining_command must write the model to {{output}} (it is registered from "
                          "there), e.g. [\"python\", \"-m\", \"my.train\", \"--out\", \"{output}\"]")
    if is_component_ref(cfg.retraining_pipeline):
        try:
            parse_component_ref(cfg.retraining_pipeline)
        except InvalidName as exc:
            raise ConfigError(f"{where}.retraining_pipeline: {exc}") from None
    elif cfg.retraining_pipeline and not cfg.retraining_pipeline.endswith((".yml", ".yaml")):
        raise ConfigError(f"{where}.retraining_pipeline must be a pipeline job YAML file (…/train.yml) or a "
                          f"registered component ({COMPONENT_FORMS}), got {cfg.retraining_pipeline!r}")
    if cfg.staging_cleanup not in STAGING_CLEANUP:
        raise ConfigError(f"{where}.staging_cleanup must be one of {', '.join(STAGING_CLEANUP)}, "
                          f"got {cfg.staging_cleanup!r}")
    if cfg.serving not in SERVING_MODES:
        raise ConfigError(f"{where}.serving must be one of {', '.join(SERVING_MODES)}, got {cfg.serving!r}")
    if cfg.serving == NO_CODE_SERVING and cfg.contract.get("metric") in PROBABILITY_METRICS:
        raise ConfigError(f"{where}.contract.metric {cfg.contract['metric']!r} needs probabilities, but serving "
                          f"{NO_CODE_SERVING} answers labels (what the MLflow model's predict returns): use "
                          "accuracy, f1 (binary) or f1_macro, or serving: modelops")
    if cfg.contract:
        from functions.shared.contract import ModelContract

        unknown = sorted(set(cfg.contract) - set(ModelContract.__dataclass_fields__) - {"contract_version"})
        if unknown:
            known = sorted(set(ModelContract.__dataclass_fields__) - {"source", "extras"})
            raise ConfigError(f"{where}.contract: unknown field(s) {', '.join(unknown)} (known: {', '.join(known)})")
    if not 0 <= cfg.canary.max_error_rate <= 1:
        raise ConfigError(f"{where}.canary.max_error_rate must be within [0, 1]")
    if cfg.canary.min_requests < 1:
        raise ConfigError(f"{where}.canary.min_requests must be at least 1 (a window without requests proves "
                          f"nothing), got {cfg.canary.min_requests}")
    if cfg.canary.max_bake_seconds < cfg.canary.bake_seconds:
        raise ConfigError(f"{where}.canary.max_bake_seconds ({cfg.canary.max_bake_seconds:g}) must be at least "
                          f"bake_seconds ({cfg.canary.bake_seconds:g})")
    for endpoint in (cfg.staging_endpoint, cfg.production_endpoint):
        try:
            check_endpoint_name(endpoint)
        except InvalidName as exc:
            raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class ManagedModels:
    models: dict[str, ModelConfig]
    # models whose configuration file in the store does not validate (and that have no earlier valid
    # one): not managed until it is fixed, and every decision about them says why
    invalid: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> ModelConfig | None:
        return self.models.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self.models)


def load_managed_models(raw: str | None, overrides: Mapping[str, Any] | None = None,
                        files: Mapping[str, tuple[str, Any]] | None = None,
                        platform: str | None = None) -> ManagedModels:
    """Parse MODELOPS_MODELS and the per-model files ({model: (file, values)}). `overrides` apply
    to every model (e.g. short bake times in a demo); `platform` ("local", "azure") adds what that
    platform cannot do (see build_model_config)."""
    files = dict(files or {})
    if raw is None or not raw.strip():
        spec: dict[str, Any] = {} if files else {DEFAULT_MODEL: {}}
    else:
        try:
            spec = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"MODELOPS_MODELS is not valid JSON: {exc}") from None
        if isinstance(spec, list):  # ["model-a", "model-b"] → defaults for each
            spec = {name: {} for name in spec}
        if not isinstance(spec, dict) or not all(isinstance(k, str) for k in spec):
            raise ConfigError('MODELOPS_MODELS must be a JSON object {"<model>": {...}} or a list of names')
    twice = sorted(set(spec) & set(files))
    if twice:
        raise ConfigError(f"model(s) {', '.join(twice)} configured twice: in MODELOPS_MODELS and in "
                          f"{', '.join(files[n][0] for n in twice)} (keep one)")
    entries = [(name, values, None) for name, values in spec.items()]
    entries += [(name, values, path) for name, (path, values) in files.items()]
    models = {}
    for name, values, path in entries:
        values = values or {}  # null: the defaults; not an object: build_model_config says so
        models[name] = build_model_config(name, _merge(dict(overrides or {}), values)
                                          if isinstance(values, Mapping) else values, where=path, platform=platform)
    return ManagedModels(models)


def build_model_config(name: str, values: Mapping[str, Any], where: str | None = None,
                       platform: str | None = None) -> ModelConfig:
    """ModelConfig from a model's overrides; the ConfigError names every field that is wrong (and
    `where` they came from: MODELOPS_MODELS['<model>'] or the model's file).
    The values are JSON data (the app setting, a Durable payload): pydantic reads them as JSON, where
    strict means JSON's types (an array for canary.steps, an object for gates).
    With `platform` "local", a configuration the embedded platform cannot carry out is refused too
    (a registered component as the only retraining: only AzureML runs components)."""
    from pydantic import ValidationError

    setting = f"MODELOPS_MODELS[{name!r}]"
    where = where or setting
    if isinstance(values, Mapping):
        if "name" in values:  # the key names the model; a field cannot rename it
            raise ConfigError(f"{where}: unknown field(s) name")
        values = {**values, "name": name}
    try:
        cfg = _validator().validate_json(json.dumps(values))
    except ValidationError as exc:
        problems = "; ".join(_problem(setting, error) for error in exc.errors())
        raise ConfigError(_in_file(problems, setting, where)) from None
    if platform == "local" and is_component_ref(cfg.retraining_pipeline) and not cfg.retraining_command:
        raise ConfigError(_in_file(
            f"{setting}.retraining_pipeline {cfg.retraining_pipeline!r} is a registered AzureML component, which "
            "the local platform (MODELOPS_PLATFORM=local) cannot run: set retraining_command, its local "
            'equivalent (e.g. ["{python}", "-m", "my.train", "--out", "{output}"]), or check this '
            "configuration with MODELOPS_PLATFORM=azure", setting, where))
    return cfg


def _in_file(message: str, setting: str, where: str) -> str:
    """A problem found in a model's file names the file, then the field: `models/iris.yaml:
    gates.min_metric must be float` (the setting's own errors read MODELOPS_MODELS['iris'].gates…)."""
    if where == setting:
        return message
    return message.replace(f"{setting}.", f"{where}: ").replace(f"{setting}: ", f"{where}: ") \
        .replace(setting, where).replace("MODELOPS_MODELS: ", f"{where}: ")


@functools.cache
def _validator() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(ModelConfig)


_WANTS = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str",
          "tuple_type": "a list", "dataclass_type": "an object"}  # pydantic error type → what was wanted


def _problem(where: str, error: Any) -> str:
    """One pydantic error in the setting's words: MODELOPS_MODELS['m'].gates.min_roc_auc must be float, got 'x'."""
    *parent, last = [where, *(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])]
    if error["type"] == "unexpected_keyword_argument":
        return f"{''.join(parent)}: unknown field(s) {last[1:]}"
    if error["type"] == "value_error":  # a ConfigError from ModelConfig.__post_init__: it names itself
        return str(error["ctx"]["error"])
    path, wants = "".join(parent) + last, _WANTS.get(error["type"])
    return f"{path} must be {wants}, got {error['input']!r}" if wants else f"{path}: {error['msg']}"


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def deployment_name(model: str, version: str) -> str:
    """A valid AzureML deployment name for a model version: 3–32 chars, letter first,
    letters/digits/hyphens. Long names keep a hash so two versions never collide."""
    import hashlib

    base = re.sub(r"[^a-z0-9-]", "-", f"{model.lower()}")
    base = re.sub(r"-+", "-", base).strip("-") or "model"
    ver = re.sub(r"[^a-z0-9]", "-", version.lower()).strip("-") or "0"
    name = f"{base}-v{ver}"
    if len(name) > 32 or not name[0].isalpha():
        digest = hashlib.sha256(f"{model}:{version}".encode()).hexdigest()[:6]
        prefix = base if base[0].isalpha() else f"m-{base}"
        tail = f"-v{ver[:12].strip('-') or '0'}-{digest}"
        name = f"{prefix[: 32 - len(tail)].rstrip('-') or 'm'}{tail}"
    return name
