"""Azure Monitor alerts (common alert schema) → a retraining decision, as data.

    parse_alert(body) -> Alert | AlertError(4xx)
    resolve_model(alert, rule_map, managed) -> model | AlertError(422)
    decide_alert(alert, model, facts) -> AlertDecision(action ∈ retrain | skip | ignore, reason, ...)

Pure: storage and job submission happen in functions/services/retraining.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

COMMON_SCHEMA = "azureMonitorCommonAlertSchema"
MAX_BODY_BYTES = 256 * 1024  # Azure Monitor payloads are far smaller; anything bigger is not one
_MODEL_KEYS = ("model_name", "modelname", "model")


class AlertError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Alert:
    alert_id: str
    rule: str
    monitor_condition: str  # Fired | Resolved
    monitoring_service: str
    signal_type: str
    severity: str
    fired: str
    target_ids: tuple[str, ...]
    custom_properties: dict[str, Any] = field(default_factory=dict)
    source: str = "azure-monitor"  # or "model-monitor" (RunStatusChanged)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["target_ids"] = list(self.target_ids)
        return out


Action = Literal["retrain", "skip", "ignore"]


@dataclass(frozen=True)
class AlertDecision:
    action: Action
    reason: str
    model: str | None
    alert_id: str
    job: str | None = None

    @property
    def status(self) -> int:
        return 202 if self.action == "retrain" else 200

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason, "model": self.model, "job": self.job,
                "alert_id": self.alert_id}


@dataclass(frozen=True)
class RetrainFacts:
    now: datetime
    cooldown: timedelta
    last_launch: dict[str, Any] | None = None  # {"at": iso, "job": name, "alert_id": ...}
    running_jobs: tuple[str, ...] = ()
    frozen: str | None = None  # why the model is frozen now (functions/domain/freezes.py), else None


def parse_alert(body: bytes | str | None, max_bytes: int = MAX_BODY_BYTES) -> Alert:
    if body is None or len(body) == 0:
        raise AlertError(400, "empty body: expected an Azure Monitor common alert schema payload")
    if len(body) > max_bytes:
        raise AlertError(413, f"body of {len(body)} bytes exceeds the {max_bytes}-byte limit")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AlertError(400, f"body is not JSON: {str(exc)[:120]}") from None
    if not isinstance(payload, dict):
        raise AlertError(400, "body must be a JSON object with schemaId and data")
    schema_id = payload.get("schemaId")
    if schema_id != COMMON_SCHEMA:
        raise AlertError(400, f"schemaId must be {COMMON_SCHEMA!r} (enable the common alert schema on the action "
                              f"group), got {str(schema_id)[:80]!r}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise AlertError(400, "data must be an object")
    essentials = data.get("essentials")
    if not isinstance(essentials, dict):
        raise AlertError(400, "data.essentials is missing or not an object")
    alert_id = _text(essentials.get("alertId"))
    if not alert_id:
        raise AlertError(400, "data.essentials.alertId is missing")
    condition = _text(essentials.get("monitorCondition"))
    if condition not in ("Fired", "Resolved"):
        raise AlertError(400, f"data.essentials.monitorCondition must be Fired or Resolved, got {condition[:40]!r}")
    targets = essentials.get("alertTargetIDs") or []
    if not isinstance(targets, list):
        raise AlertError(400, "data.essentials.alertTargetIDs must be a list")
    props: dict[str, Any] = {}
    for candidate in (data.get("customProperties"), _dig(data, "alertContext", "properties")):
        if isinstance(candidate, dict):
            props.update({str(k): v for k, v in candidate.items()})
    return Alert(
        alert_id=alert_id[:1000], rule=_text(essentials.get("alertRule"))[:500],
        monitor_condition=condition, monitoring_service=_text(essentials.get("monitoringService"))[:200],
        signal_type=_text(essentials.get("signalType"))[:100], severity=_text(essentials.get("severity"))[:20],
        fired=_text(essentials.get("firedDateTime"))[:40], target_ids=tuple(_text(t)[:1000] for t in targets[:50]),
        custom_properties=props,
    )


def resolve_model(alert: Alert, rule_map: dict[str, str], managed: list[str]) -> str:
    """The model an alert is about: custom property → configured rule map → the only managed model."""
    for key, value in alert.custom_properties.items():
        if key.lower() in _MODEL_KEYS and isinstance(value, str) and value.strip():
            name = value.strip()
            if name not in managed:
                raise AlertError(422, f"alert names model {name[:100]!r}, which is not managed "
                                      f"(managed: {', '.join(managed) or 'none'})")
            return name
    if alert.rule in rule_map:
        return rule_map[alert.rule]
    if len(managed) == 1:
        return managed[0]
    raise AlertError(422, f"cannot tell which model alert rule {alert.rule[:100]!r} is about: add a custom property "
                          "model_name to the alert rule, or map the rule in MODELOPS_ALERT_RULES")


def job_name(model: str, alert_id: str) -> str:
    """Deterministic AzureML job name for an alert: a redelivered alert names the same job."""
    digest = hashlib.sha256(alert_id.encode()).hexdigest()[:16]
    slug = re.sub(r"[^a-z0-9_-]", "-", model.lower())[:40].strip("-") or "model"
    return f"retrain-{slug}-{digest}"


def decide_alert(alert: Alert, model: str, facts: RetrainFacts) -> AlertDecision:
    if alert.monitor_condition == "Resolved":
        return AlertDecision("ignore", f"alert {alert.rule!r} resolved: nothing to do", model, alert.alert_id)
    if facts.frozen is not None:
        return AlertDecision("skip", f"retraining skipped: {facts.frozen}", model, alert.alert_id)
    if facts.running_jobs:
        return AlertDecision("skip", f"a retraining of {model} is already running ({facts.running_jobs[0]})", model,
                             alert.alert_id, facts.running_jobs[0])
    if facts.last_launch:
        launched = datetime.fromisoformat(facts.last_launch["at"])
        if facts.now - launched < facts.cooldown:
            remaining = facts.cooldown - (facts.now - launched)
            return AlertDecision(
                "skip", f"within the {_hours(facts.cooldown)} cooldown: {model} was retrained at "
                        f"{facts.last_launch['at']} (job {facts.last_launch.get('job')}); "
                        f"{_hours(remaining)} left", model, alert.alert_id, facts.last_launch.get("job"))
    return AlertDecision("retrain", f"alert {alert.rule!r} fired ({alert.monitoring_service or alert.signal_type})",
                         model, alert.alert_id, job_name(model, alert.alert_id))


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} min"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


RUN_STATUS_CHANGED = "Microsoft.MachineLearningServices.RunStatusChanged"
_BREACH_KEYS = ("threshold_breached", "thresholdbreached", "signal_breached")


def alert_from_run_status(raw: Any) -> Alert | None:
    """An AzureML RunStatusChanged event as an alert, when the run's tags (or properties) say a
    model-monitor threshold was breached: a tag whose name ends in `threshold_breached` set to
    true. The model comes from the `model_name` tag. Other runs → None (not a signal).
    Raises AlertError(400) for an event that is not a RunStatusChanged event at all."""
    if not isinstance(raw, dict):
        raise AlertError(400, "event must be an object")
    kind = raw.get("eventType") or raw.get("type")
    if kind != RUN_STATUS_CHANGED:
        raise AlertError(400, f"event type {str(kind)[:80]!r} is not {RUN_STATUS_CHANGED}")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise AlertError(400, "event data must be an object")
    tags: dict[str, Any] = {}
    for source in (data.get("runProperties"), data.get("runTags")):
        if isinstance(source, dict):
            tags.update({str(k): v for k, v in source.items()})
    breached = any(k.lower().replace(".", "_").endswith(_BREACH_KEYS) and str(v).strip().lower() in ("true", "1")
                   for k, v in tags.items())
    if not breached:
        return None
    run_id = _text(data.get("runId")) or _text(raw.get("id"))
    if not run_id:
        raise AlertError(400, "RunStatusChanged event has no runId")
    model = next((v for k, v in tags.items() if k.lower() in _MODEL_KEYS and isinstance(v, str)), None)
    return Alert(
        alert_id=f"azureml-run:{run_id}"[:1000], rule=_text(data.get("experimentName"))[:500] or "model-monitor",
        monitor_condition="Fired", monitoring_service="AzureML model monitor", signal_type="ModelMonitor",
        severity="", fired=_text(raw.get("eventTime"))[:40], target_ids=(_text(raw.get("topic"))[:1000],),
        custom_properties={"model_name": model} if model else {}, source="model-monitor",
    )
