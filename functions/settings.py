"""One settings object, read from app settings / environment variables in one place.

In Azure these are Function App application settings; locally `local.settings.json` (Core Tools)
or the environment (the `modelops` CLI). Every name is documented in local.settings.json.template.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent
ML_DIR = REPO_ROOT / "ml"
SCORE_SCRIPT = ML_DIR / "score.py"
# the local stand-in for AzureML's no-code MLflow scoring script (serving: mlflow_no_code)
NO_CODE_SCORE_SCRIPT = ML_DIR / "mlflow_no_code" / "score.py"
SAMPLE_REQUEST = ML_DIR / "sample.json"


class SettingsError(ValueError):
    """A setting is present but unusable; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    platform: str = "local"  # "local" (embedded) or "azure"
    home: Path = field(default_factory=lambda: REPO_ROOT / ".modelops")  # local platform state
    serving_python: Path = field(default_factory=lambda: REPO_ROOT / ".venv-serve" / "bin" / "python")
    max_request_rows: int = 10_000
    log_level: str = "INFO"
    models_json: str | None = None  # MODELOPS_MODELS: which models are managed, and how
    models_dir: Path | None = None  # MODELOPS_MODELS_DIR: one configuration file per model
    config_refresh_seconds: float = 60.0  # how often the store's config/models/ files are re-read
    allowed_topics: tuple[str, ...] = ()  # staging workspace resource id(s) events may come from
    alert_rules_json: str | None = None  # MODELOPS_ALERT_RULES: {"<alert rule name>": "<model>"}
    retrain_cooldown_hours: float = 24.0
    alert_max_bytes: int = 256 * 1024
    webhook_tenant_id: str = ""  # Secure Webhook (Entra ID): required when an audience is set
    webhook_audience: str = ""
    webhook_role: str = ""
    operator_tenant_id: str = ""  # Entra ID for operator actions: on when an audience is set
    operator_audience: str = ""
    key_actions: str | None = None  # MODELOPS_KEY_ACTIONS: what a function key alone may do (None: all)
    retention_json: str | None = None  # MODELOPS_RETENTION_DAYS: {"exports": days, ...} over the defaults
    export_lag_minutes: float = 10.0  # export windows end at now − this (log ingestion delay)
    export_formats: tuple[str, ...] = ("parquet",)
    drift_window_hours: float = 24.0  # drift compares the last window of exported data
    drift_config_json: str | None = None  # MODELOPS_DRIFT_CONFIG: ml.drift.DriftConfig fields
    drift_job_rows: int = 2_000_000  # above this many current rows the AzureML drift job computes (0: never)
    drift_datastore: str = ""  # workspace datastore on the modelops container (the drift job's inputs/outputs)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        defaults = cls()
        platform = env.get("MODELOPS_PLATFORM", defaults.platform).strip().lower()
        if platform not in ("local", "azure"):
            raise SettingsError(f"MODELOPS_PLATFORM must be 'local' or 'azure', got {platform!r}")
        return cls(
            platform=platform,
            home=Path(env.get("MODELOPS_HOME", str(defaults.home))).expanduser(),
            serving_python=Path(env.get("MODELOPS_SERVING_PYTHON", str(defaults.serving_python))).expanduser(),
            max_request_rows=_int(env, "MODELOPS_MAX_ROWS", defaults.max_request_rows, minimum=1),
            log_level=env.get("MODELOPS_LOG_LEVEL", defaults.log_level).upper(),
            models_json=env.get("MODELOPS_MODELS") or None,
            models_dir=Path(env["MODELOPS_MODELS_DIR"]).expanduser() if env.get("MODELOPS_MODELS_DIR") else None,
            config_refresh_seconds=_float(env, "MODELOPS_CONFIG_REFRESH_SECONDS", defaults.config_refresh_seconds),
            allowed_topics=tuple(t.strip() for t in env.get("MODELOPS_STAGING_WORKSPACE_ID", "").split(",")
                                 if t.strip()),
            alert_rules_json=env.get("MODELOPS_ALERT_RULES") or None,
            retrain_cooldown_hours=_float(env, "MODELOPS_RETRAIN_COOLDOWN_HOURS", defaults.retrain_cooldown_hours),
            alert_max_bytes=_int(env, "MODELOPS_ALERT_MAX_BYTES", defaults.alert_max_bytes, minimum=1024),
            webhook_tenant_id=env.get("MODELOPS_WEBHOOK_TENANT_ID", "").strip(),
            webhook_audience=env.get("MODELOPS_WEBHOOK_AUDIENCE", "").strip(),
            webhook_role=env.get("MODELOPS_WEBHOOK_ROLE", "").strip(),
            operator_tenant_id=env.get("MODELOPS_OPERATOR_TENANT_ID", "").strip(),
            operator_audience=env.get("MODELOPS_OPERATOR_AUDIENCE", "").strip(),
            key_actions=env.get("MODELOPS_KEY_ACTIONS") or None,
            retention_json=env.get("MODELOPS_RETENTION_DAYS") or None,
            export_lag_minutes=_float(env, "MODELOPS_EXPORT_LAG_MINUTES", defaults.export_lag_minutes),
            export_formats=_formats(env.get("MODELOPS_EXPORT_FORMATS", "parquet")),
            drift_window_hours=_float(env, "MODELOPS_DRIFT_WINDOW_HOURS", defaults.drift_window_hours),
            drift_config_json=env.get("MODELOPS_DRIFT_CONFIG") or None,
            drift_job_rows=_int(env, "MODELOPS_DRIFT_JOB_ROWS", defaults.drift_job_rows, minimum=0),
            drift_datastore=env.get("MODELOPS_DRIFT_DATASTORE", "").strip(),
        )

    def drift_config(self) -> dict:
        import json

        if not self.drift_config_json:
            return {}
        try:
            value = json.loads(self.drift_config_json)
        except ValueError as exc:
            raise SettingsError(f"MODELOPS_DRIFT_CONFIG is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise SettingsError("MODELOPS_DRIFT_CONFIG must be a JSON object of drift settings")
        return value


    def retention_days(self) -> dict[str, float]:
        """How long each kind of record is kept, in days (0: forever): the defaults, then
        MODELOPS_RETENTION_DAYS over them."""
        import json

        days = dict(RETENTION_DEFAULTS)
        if not self.retention_json:
            return days
        try:
            value = json.loads(self.retention_json)
        except ValueError as exc:
            raise SettingsError(f"MODELOPS_RETENTION_DAYS is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise SettingsError("MODELOPS_RETENTION_DAYS must be a JSON object of kind → days")
        unknown = sorted(set(value) - set(RETENTION_DEFAULTS))
        if unknown:
            raise SettingsError(f"MODELOPS_RETENTION_DAYS names unknown kind(s) {', '.join(unknown)}; "
                                f"known: {', '.join(RETENTION_DEFAULTS)}")
        for kind, n in value.items():
            if isinstance(n, bool) or not isinstance(n, (int, float)) or n < 0:
                raise SettingsError(f"MODELOPS_RETENTION_DAYS[{kind!r}] must be a number of days >= 0, got {n!r}")
            days[kind] = float(n)
        return days


# exports, drift reports, gate reports, audit records (rollout and operator): kept this many days
RETENTION_DEFAULTS = {"exports": 30.0, "reports": 90.0, "gate_reports": 180.0, "audit": 365.0}


# Small readers rather than pydantic: Settings.from_env runs on every health request and before the
# first trigger, and a pydantic model of these settings would add ~170 ms to its first call (0.15 ms now).
def _formats(raw: str) -> tuple[str, ...]:
    formats = tuple(f.strip().lower() for f in raw.split(",") if f.strip())
    if not formats or any(f not in ("parquet", "csv") for f in formats):
        raise SettingsError(f"MODELOPS_EXPORT_FORMATS must list parquet and/or csv, got {raw!r}")
    return formats


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name} must not be negative, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


# ARM ids are case-insensitive (the service itself answers "resourcegroups", "microsoft.operationalinsights")
LOG_ANALYTICS_RESOURCE_ID = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.OperationalInsights/workspaces/[^/]+",
    re.IGNORECASE)


@dataclass(frozen=True)
class AzureSettings:
    """Where the Azure platform lives. Read only when MODELOPS_PLATFORM=azure."""

    subscription_id: str
    staging_resource_group: str
    staging_workspace: str
    production_resource_group: str
    production_workspace: str
    registry_name: str
    log_analytics_workspace_id: str  # production workspace's Log Analytics (traffic log, inference logs)
    # the same workspace's ARM resource id: where each production endpoint's diagnostic setting sends
    # its AmlOnlineEndpoint* logs (the query API takes the GUID above, a diagnostic setting this id)
    log_analytics_resource_id: str
    storage_connection_string: str = ""  # or storage_account_url + managed identity
    storage_account_url: str = ""
    storage_container: str = "modelops"
    deployment_code: str = ""  # registered code asset (azureml:...), else ml/ is uploaded
    deployment_environment: str = ""  # registered environment (azureml:name:version), else serving.yml
    ingestion_lag_seconds: float = 300.0
    logs_endpoint: str = ""  # Log Analytics query endpoint override (sovereign clouds, tests)

    @property
    def staging_workspace_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.staging_resource_group}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{self.staging_workspace}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "AzureSettings":
        env = os.environ if env is None else env
        required = {
            "subscription_id": "AZURE_SUBSCRIPTION_ID",
            "staging_resource_group": "MODELOPS_STAGING_RESOURCE_GROUP",
            "staging_workspace": "MODELOPS_STAGING_WORKSPACE",
            "production_workspace": "MODELOPS_PRODUCTION_WORKSPACE",
            "registry_name": "MODELOPS_REGISTRY_NAME",
            "log_analytics_workspace_id": "MODELOPS_LOG_ANALYTICS_WORKSPACE_ID",
            "log_analytics_resource_id": "MODELOPS_LOG_ANALYTICS_RESOURCE_ID",
        }
        missing = [name for name in required.values() if not env.get(name, "").strip()]
        if missing:
            raise SettingsError(f"MODELOPS_PLATFORM=azure needs app setting(s) {', '.join(missing)}")
        values = {field_: env[name].strip() for field_, name in required.items()}
        if not LOG_ANALYTICS_RESOURCE_ID.fullmatch(values["log_analytics_resource_id"]):
            raise SettingsError(
                "MODELOPS_LOG_ANALYTICS_RESOURCE_ID must be a Log Analytics workspace's resource id, "
                "/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.OperationalInsights/workspaces/<name>, "
                f"got {values['log_analytics_resource_id']!r}")
        connection = env.get("MODELOPS_STORAGE_CONNECTION_STRING") or env.get("AzureWebJobsStorage", "")
        account_url = env.get("MODELOPS_STORAGE_ACCOUNT_URL", "")
        if not connection and not account_url:
            raise SettingsError("set MODELOPS_STORAGE_ACCOUNT_URL (managed identity) or "
                                "MODELOPS_STORAGE_CONNECTION_STRING / AzureWebJobsStorage")
        return cls(
            **values,
            production_resource_group=env.get("MODELOPS_PRODUCTION_RESOURCE_GROUP", "").strip()
            or values["staging_resource_group"],
            storage_connection_string=connection, storage_account_url=account_url,
            storage_container=env.get("MODELOPS_STORAGE_CONTAINER", "modelops"),
            deployment_code=env.get("MODELOPS_DEPLOYMENT_CODE", ""),
            deployment_environment=env.get("MODELOPS_DEPLOYMENT_ENVIRONMENT", ""),
            ingestion_lag_seconds=_float(env, "MODELOPS_INGESTION_LAG_SECONDS", 300.0),
            logs_endpoint=env.get("MODELOPS_LOGS_ENDPOINT", ""),
        )
