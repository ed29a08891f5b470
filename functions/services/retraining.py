"""Alert → retraining, with the state that makes it safe under at-least-once delivery.

    alerts/<sha of alertId>.json      the first answer to an alert: duplicates get the same answer
    retraining/<model>/launch.json    the last launch (time, job, alert, submitted); written with
                                      an etag compare-and-swap, so concurrent alerts cannot both
                                      launch

A launch is recorded (`submitted: false`) before the job is submitted, and marked submitted after.
While it is in flight, any other alert for the model — a concurrent duplicate included — is
answered 503 and NOT recorded: if the submission then fails and the launch is released, the
action group's retries decide again and launch; a duplicate can never pin a 202 for a job that
was never submitted. A launch left unsubmitted longer than LAUNCH_TIMEOUT (its process died) no
longer counts.

Transient platform failures answer 503 (the action group retries 408/429/503/504); bad input gets
its 4xx from core/alerts.py; nothing here answers 500 for input.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from functions.domain.alerts import Alert, AlertDecision, AlertError, RetrainFacts, decide_alert, parse_alert, \
    resolve_model
from functions.shared.logs import log_event
from functions.shared.versioned import readable_version, stamped
from functions.ports import Conflict, Jobs, PlatformError, RetrainingRecipe, Store
from functions.services.freezes import Freezes

logger = logging.getLogger("modelops.alerts")
LAUNCH_TIMEOUT = timedelta(minutes=5)  # an unsubmitted launch older than this was abandoned by its process


@dataclass(frozen=True)
class AlertPolicy:
    managed: list[str]
    rule_map: dict[str, str]
    cooldown: timedelta = timedelta(hours=24)
    recipes: dict[str, RetrainingRecipe] = field(default_factory=dict)  # per model; absent: the default

    @classmethod
    def from_settings(cls, rules_json: str | None, managed: list[str], cooldown_hours: float,
                      recipes: dict[str, RetrainingRecipe] | None = None) -> "AlertPolicy":
        """MODELOPS_ALERT_RULES ({"<alert rule name>": "<model>"}) checked against the managed models."""
        from functions.domain.config import ConfigError

        rule_map: dict[str, str] = {}
        if rules_json:
            try:
                rule_map = json.loads(rules_json)
            except ValueError as exc:
                raise ConfigError(f"MODELOPS_ALERT_RULES is not valid JSON: {exc}") from None
            if not isinstance(rule_map, dict) or not all(isinstance(v, str) for v in rule_map.values()):
                raise ConfigError('MODELOPS_ALERT_RULES must be {"<alert rule name>": "<model name>"}')
            unknown = sorted(set(rule_map.values()) - set(managed))
            if unknown:
                raise ConfigError(f"MODELOPS_ALERT_RULES maps to unmanaged model(s) {', '.join(unknown)}")
        return cls(managed=list(managed), rule_map=rule_map, cooldown=timedelta(hours=cooldown_hours),
                   recipes=dict(recipes or {}))


@dataclass(frozen=True)
class AlertAnswer:
    status: int
    body: dict[str, Any]


def _alert_key(alert_id: str) -> str:
    return f"alerts/{hashlib.sha256(alert_id.encode()).hexdigest()[:32]}.json"


def _launch_key(model: str) -> str:
    return f"retraining/{model}/launch.json"


def handle_alert_body(body: bytes | None, store: Store, jobs: Jobs, policy: AlertPolicy, *,
                      now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                      dry_run: bool = False, max_bytes: int | None = None) -> AlertAnswer:
    try:
        alert = parse_alert(body) if max_bytes is None else parse_alert(body, max_bytes)
    except AlertError as exc:
        return AlertAnswer(exc.status, {"error": exc.message})
    return handle_alert(alert, store, jobs, policy, now=now, dry_run=dry_run)


def handle_alert(alert: Alert, store: Store, jobs: Jobs, policy: AlertPolicy, *,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc), dry_run: bool = False) -> AlertAnswer:
    try:
        model = resolve_model(alert, policy.rule_map, policy.managed)
    except AlertError as exc:
        return AlertAnswer(exc.status, {"error": exc.message, "alert_id": alert.alert_id})
    try:
        return _decide_and_launch(alert, model, store, jobs, policy, now, dry_run)
    except PlatformError as exc:
        if exc.transient:
            log_event(logger, "alert_transient_failure", logging.WARNING, alert_id=alert.alert_id, error=str(exc))
            return AlertAnswer(503, {"error": f"temporarily unable to process the alert: {str(exc)[:300]}",
                                "alert_id": alert.alert_id})
        # permanent (a component without the model input, one the platform cannot run, …): the action
        # group does not retry a 502, so this log record is where the reason stays
        log_event(logger, "retraining_refused", logging.ERROR, alert_id=alert.alert_id, model=model, error=str(exc))
        return AlertAnswer(502, {"error": f"platform refused the retraining: {str(exc)[:300]}",
                            "alert_id": alert.alert_id})


def _decide_and_launch(alert: Alert, model: str, store: Store, jobs: Jobs, policy: AlertPolicy,
                       now: Callable[[], datetime], dry_run: bool) -> AlertAnswer:
    first = store.get(_alert_key(alert.alert_id))
    if first is not None:  # a duplicate delivery: the same answer as the first time
        recorded = _read(first[0], _alert_key(alert.alert_id))
        return AlertAnswer(recorded["status"], recorded["body"])

    for _ in range(20):  # compare-and-swap loop on the model's launch record
        found = store.get(_launch_key(model))
        last = _read(found[0], _launch_key(model)) if found else None
        if last and not last.get("submitted", True):
            if now() - datetime.fromisoformat(last["at"]) < LAUNCH_TIMEOUT:
                # a launch is in flight (perhaps of this very alert): not decided yet, so not recorded
                return AlertAnswer(503, {"error": f"a retraining of {model} is being launched (job {last.get('job')}); "
                                             "retry shortly", "alert_id": alert.alert_id})
            last = last.get("previous") or None  # abandoned before its submission: it never happened
        if last and last.get("alert_id") == alert.alert_id:  # a duplicate of the alert that launched
            decision = AlertDecision("retrain", last.get("reason", "alert fired"), model, alert.alert_id,
                                     last.get("job"))
            return _record(store, alert, decision, dry_run)
        running = tuple(j["name"] for j in jobs.list_running(model))
        frozen = Freezes(store, now).frozen(model)
        decision = decide_alert(alert, model, RetrainFacts(now(), policy.cooldown, last, running, frozen))
        if decision.action != "retrain" or dry_run:
            return _record(store, alert, decision, dry_run)
        launch = {"at": now().isoformat(), "job": decision.job, "alert_id": alert.alert_id, "rule": alert.rule,
                  "reason": decision.reason, "submitted": False,
                  "previous": {k: v for k, v in (last or {}).items() if k != "previous"} or None}
        try:
            if found:
                etag = store.put(_launch_key(model), _dump(launch), etag=found[1])
            else:
                etag = store.put(_launch_key(model), _dump(launch), if_absent=True)
        except Conflict:
            continue  # someone else launched (or is launching): look again
        try:
            job = jobs.submit_retraining(decision.job, model, {
                "modelops.alert_id": alert.alert_id[:256], "modelops.alert_rule": alert.rule[:256],
                "modelops.model": model, "modelops.trigger": alert.source,
            }, recipe=policy.recipes.get(model))
        except Exception:
            _release(store, model, launch, last)
            raise
        _mark_submitted(store, model, launch, etag)
        log_event(logger, "retraining_launched", model=model, job=job.get("name"), alert_id=alert.alert_id)
        return _record(store, alert, decision, dry_run)
    raise PlatformError(f"too much contention deciding alert {alert.alert_id}", transient=True)


# launch and alert records: 1 = before the field existed (same fields), 2 = stamped
RECORD_SCHEMA = 2


def _dump(record: dict[str, Any]) -> bytes:
    return json.dumps(stamped(record, RECORD_SCHEMA)).encode()


def _read(data: bytes, key: str) -> dict[str, Any]:
    """A launch or alert record; one from a newer modelops is refused (PlatformError), never misread."""
    record = json.loads(data)
    readable_version(record, key, RECORD_SCHEMA)
    return record


def _mark_submitted(store: Store, model: str, launch: dict, etag: str) -> None:
    """The job exists: the launch counts from now on (for the cooldown and for duplicates)."""
    done = {**launch, "submitted": True}
    for _ in range(5):
        try:
            store.put(_launch_key(model), _dump(done), etag=etag)
            return
        except Conflict:  # rewritten meanwhile (only an expired-launch takeover could): keep theirs
            found = store.get(_launch_key(model))
            if found is None or _read(found[0], _launch_key(model)).get("alert_id") != launch["alert_id"]:
                return
            etag = found[1]


def _release(store: Store, model: str, launch: dict, last: dict | None) -> None:
    """Undo our launch record so a retry can launch — only if it is still ours (compare-and-swap:
    never delete a record someone else wrote in between)."""
    found = store.get(_launch_key(model))
    if found and _read(found[0], _launch_key(model)).get("alert_id") == launch["alert_id"]:
        try:
            if last is None:
                # no earlier launch to restore: an expired, unsubmitted marker says "nothing launched"
                expired = {**launch, "at": (datetime.fromisoformat(launch["at"]) - LAUNCH_TIMEOUT).isoformat()}
                store.put(_launch_key(model), _dump(expired), etag=found[1])
            else:
                store.put(_launch_key(model), _dump(last), etag=found[1])
        except Conflict:
            pass


def _record(store: Store, alert: Alert, decision: AlertDecision, dry_run: bool) -> AlertAnswer:
    answer = AlertAnswer(decision.status, decision.to_dict())
    log_event(logger, "alert_decision", **decision.to_dict(), condition=alert.monitor_condition,
              rule=alert.rule, dry_run=dry_run)
    if dry_run:
        return answer
    record = {"status": answer.status, "body": answer.body, "alert": alert.to_dict(),
              "at": datetime.now(timezone.utc).isoformat()}
    try:
        store.put(_alert_key(alert.alert_id), _dump(record), if_absent=True)
    except Conflict:
        existing = store.get(_alert_key(alert.alert_id))
        if existing:
            recorded = _read(existing[0], _alert_key(alert.alert_id))
            return AlertAnswer(recorded["status"], recorded["body"])
    return answer
