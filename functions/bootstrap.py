"""The composition root: `build_app(settings)` builds the whole application — every port, the
credential and the settings once — for Azure or for the embedded local platform.

The Functions triggers get it from `app()` (built on the first invocation in a worker, so cold
start stays light: nothing heavy is imported until a port is first used); the CLI and the demo call
`build_app` and use the App as a context manager (on the local platform that takes the home:
functions/adapters/local/host.py). Services receive ports from the App; nothing else builds one.

    triggers / cli ──► App (this module) ──► services ──► domain
                            │                   │
                            └──► adapters ──► ports ◄┘
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from functions.domain.config import ManagedModels
from functions.services.model_configs import ModelConfigs
from functions.ports import Jobs, Orchestrations, ReferenceSource, Store
from functions.services.activities import RolloutPorts
from functions.services.records import RolloutStore
from functions.settings import AzureSettings, Settings, SettingsError
from functions.shared.logs import log_event

logger = logging.getLogger(__name__)


class App:
    """What every entry point needs. Ports are built on first use and then kept."""

    def __init__(self, settings: Settings, managed: ManagedModels | ModelConfigs, parts: Any, *,
                 resume: bool = False) -> None:
        self.settings = settings
        # a host (`modelops up`) resumes the rollouts a previous owner left, when safe, and leaves
        # its own resumable when it stops; every other owner ends them (services/resumption.py)
        self.resumes = resume
        self.resumed: list[str] = []  # rollouts this owner continued when it took the home over
        self._chosen: list[Any] = []
        self._took_over = ""
        self._configs = managed
        self._parts = parts
        self.local = getattr(parts, "embedded", None)  # the embedded platform (None in Azure)
        self.recovered: list[Any] = []  # rollouts a stopped owner left, ended when this one took over
        self.stop_reason = "stopped before it finished"  # said of rollouts this process leaves unfinished

    @property
    def managed(self) -> ManagedModels:
        """The managed models now: the setting's and the folder's, plus the store's config/models/
        files (re-read every MODELOPS_CONFIG_REFRESH_SECONDS: services/model_configs.py)."""
        if isinstance(self._configs, ModelConfigs):
            return self._configs.current(self.store)
        return self._configs

    @managed.setter
    def managed(self, value: ManagedModels) -> None:
        self._configs = value

    # -- ports -----------------------------------------------------------------------------------

    @cached_property
    def store(self) -> Store:
        return self._parts.store()

    @cached_property
    def rollouts(self) -> RolloutStore:
        return RolloutStore(self.store)

    @cached_property
    def ports(self) -> RolloutPorts:
        """The rollout activities' ports."""
        return self._parts.rollout_ports(self.store)

    @cached_property
    def jobs(self) -> Jobs:
        return self._parts.jobs()

    @cached_property
    def inference_logs(self) -> Any:
        return self._parts.inference_logs()

    @cached_property
    def references(self) -> ReferenceSource:
        return self._parts.references()

    @property
    def alert_policy(self) -> Any:
        """The alert policy over the models managed now (rebuilt when the configuration changes)."""
        from functions.services.retraining import AlertPolicy

        from functions.ports import RetrainingRecipe

        managed = self.managed
        cached = self.__dict__.get("_alert_policy")
        if cached is not None and cached[0] is managed:
            return cached[1]
        recipes = {name: RetrainingRecipe(cfg.retraining_pipeline, cfg.retraining_command)
                   for name, cfg in managed.models.items()
                   if cfg.retraining_pipeline or cfg.retraining_command}
        policy = AlertPolicy.from_settings(self.settings.alert_rules_json, managed.names,
                                           self.settings.retrain_cooldown_hours, recipes)
        self.__dict__["_alert_policy"] = (managed, policy)
        return policy

    def orchestrations(self, client: Any = None) -> Orchestrations:
        """Durable orchestrations: over the trigger's Durable client in Azure, the local driver here."""
        return self._parts.orchestrations(client)

    def operator(self, headers: Any = None, client: Any = None) -> Any:
        """Operator actions (services/operator.py) for one request: its caller authorised by
        `authorisation_check` (the operator service audits every answer itself; an unusable token
        raises ports.AuthError 401/503), events raised / orchestrations started on this platform's
        orchestrations."""
        from functions.services.operator import Operator

        def authorise(action: str, model: str | None, record: dict[str, Any] | None) -> tuple[Any, str | None]:
            return self.authorisation_check(action, headers, model=model, rollout=record)

        registry = self.ports.registry
        return Operator(self.rollouts, self.store, self.orchestrations(client), authorise, managed=self.managed,
                        in_workspace=lambda m, v: registry.get_workspace_model(m, v) is not None,
                        in_registry=lambda m, v: registry.get_registry_model(m, v) is not None)

    def authorize_webhook(self, header: str | None) -> None:
        """The alert webhook's Secure Webhook check (ports.AuthError when refused); a no-op unless
        MODELOPS_WEBHOOK_AUDIENCE is set."""
        if self.settings.webhook_audience:
            self._webhook_validator.validate(header)

    @cached_property
    def _webhook_validator(self) -> Any:
        if not self.settings.webhook_tenant_id:
            raise SettingsError("MODELOPS_WEBHOOK_AUDIENCE is set: MODELOPS_WEBHOOK_TENANT_ID is required too")
        from functions.adapters.azure.entra import EntraValidator

        return EntraValidator(self.settings.webhook_tenant_id, self.settings.webhook_audience,
                              required_role=self.settings.webhook_role or None)

    # -- operator authorisation (functions/domain/authorisation.py) ---------------------------------

    @cached_property
    def authorisation(self) -> Any:
        """The Policy: MODELOPS_KEY_ACTIONS (what a function key alone may do) and the app roles."""
        from functions.domain.authorisation import Policy

        try:
            return Policy.from_setting(self.settings.key_actions)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    def caller(self, headers: Any) -> Any:
        """Who sent an operator request. Entra ID is on when MODELOPS_OPERATOR_AUDIENCE is set: a
        bearer token is validated (ports.AuthError 401 when invalid, 503 when the keys cannot be
        fetched) and names the caller and their app roles; a request without one is the function-key
        caller (the host has checked the key before the route runs)."""
        from functions.domain.authorisation import Caller

        header = _header(headers, "authorization")
        if not self.settings.operator_audience or not header:
            return Caller.function_key()
        claims = self._operator_validator.validate(header)
        ids = tuple(str(claims[c]) for c in ("oid", "preferred_username", "upn", "unique_name", "appid", "azp")
                    if isinstance(claims.get(c), str) and claims[c])
        identity = next((str(claims[c]) for c in ("preferred_username", "upn", "name", "oid", "azp", "appid")
                         if isinstance(claims.get(c), str) and claims[c]), "unknown (token names nobody)")
        roles = claims.get("roles")
        return Caller(identity, "entra", tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list)
                      else (), ids)

    @cached_property
    def _operator_validator(self) -> Any:
        if not self.settings.operator_tenant_id:
            raise SettingsError("MODELOPS_OPERATOR_AUDIENCE is set: MODELOPS_OPERATOR_TENANT_ID is required too")
        from functions.adapters.azure.entra import EntraValidator

        # no required role: which role is needed depends on the action (Policy.roles)
        return EntraValidator(self.settings.operator_tenant_id, self.settings.operator_audience)

    def authorisation_check(self, action: str, headers: Any, *, model: str | None = None,
                            rollout: dict | None = None) -> tuple[Any, str | None]:
        """(the Caller, the refusal reason — None when allowed), auditing nothing: for a caller
        that audits every answer itself (it knows 404/409 too). ports.AuthError(401 | 503) when the
        bearer token is unusable. Self-approval: `rollout["started_by"]` (who started it: a retry's
        or undo's asker) and who registered the version (recorded on the rollout, else the
        registry's registered_by), looked up for approve/reject by a verified caller only."""
        from functions.domain.authorisation import APPROVER_ACTIONS, authorise

        who = self.caller(headers)
        started_by: list[str] = []
        registered_by: list[str] = []
        if who.verified and action in APPROVER_ACTIONS and rollout:
            started = rollout.get("started_by")
            started_by = [started] if isinstance(started, str) else [s for s in started or () if isinstance(s, str)]
            registered_by = [self._registered_by(rollout)]
        return who, authorise(action, who, self.authorisation, started_by=started_by, registered_by=registered_by)

    def authorise(self, action: str, headers: Any, *, model: str | None, rollout: dict | None = None,
                  comment: str = "") -> Any:
        """The Caller when `action` is allowed; else ports.AuthError(401 | 403 | 503) after the
        refusal is in the operator audit. Accepted actions are audited by the caller, which knows
        the outcome."""
        from functions.ports import AuthError
        from functions.services.operator_audit import record_action

        rollout_id = (rollout or {}).get("id")
        try:
            who, reason = self.authorisation_check(action, headers, model=model, rollout=rollout)
        except AuthError as exc:
            record_action(self.store, action=action, caller=_Anonymous(), model=model, rollout_id=rollout_id,
                          outcome="refused", status=exc.status, reason=exc.message, comment=comment)
            raise
        if reason is not None:
            record_action(self.store, action=action, caller=who, model=model, rollout_id=rollout_id,
                          outcome="refused", status=403, reason=reason, comment=comment)
            log_event(logger, "operator_action_refused", logging.WARNING, action=action, model=model,
                      rollout_id=rollout_id, by=who.identity, reason=reason)
            raise AuthError(403, reason)
        return who

    def _registered_by(self, rollout: dict) -> str:
        """Who registered the rollout's version: recorded on the rollout, else the registry's word."""
        if rollout.get("registered_by"):
            return str(rollout["registered_by"])
        ref = self.ports.registry.get_workspace_model(str(rollout.get("model", "")), str(rollout.get("version", "")))
        return ref.registered_by if ref is not None else ""

    # -- use cases, bound to this App's ports ------------------------------------------------------

    def deliver(self, payload: Any, *, dry_run: bool = False, client: Any = None) -> list[Any]:
        """An Event Grid delivery of ModelRegistered events: decide, claim, start (sync wrapper of
        what the trigger awaits)."""
        from functions.services.handoff import accept_events, start_accepted

        accepted = accept_events(payload, self.managed, self.rollouts, self.settings.allowed_topics, dry_run=dry_run,
                                 freezes=self.freezes)
        if not dry_run:
            asyncio.run(start_accepted(accepted, self.orchestrations(client), self.rollouts))
            asyncio.run(self.release_due_freezes(client))  # an expired freeze, noticed on the next event
        return accepted

    # -- freezes (functions/services/freezes.py) ---------------------------------------------------

    @cached_property
    def freezes(self) -> Any:
        from functions.services.freezes import Freezes

        return Freezes(self.store)

    def _freeze_hand_off(self, client: Any) -> Any:
        from functions.services.handoff import release_hand_off

        return release_hand_off(self.managed, self.rollouts, self.settings.allowed_topics,
                                self.orchestrations(client), self.freezes)

    def freeze(self, model: str | None, *, caller: Any, until: str | None = None,
               comment: str = "") -> tuple[dict[str, Any], int]:
        """Freeze a model (None: every model), audited. (body, 201 new | 200 replaced)."""
        from functions.domain.freezes import GLOBAL
        from functions.services.operator_audit import record_action

        record, created = self.freezes.freeze(model or GLOBAL, by=caller.identity, comment=comment, until=until)
        status = 201 if created else 200
        record_action(self.store, action="freeze", caller=caller, model=model, rollout_id=None, outcome="accepted",
                      status=status, reason=record.describe(), comment=comment)
        return {"freeze": record.to_dict(), "frozen": record.describe()}, status

    async def unfreeze(self, model: str | None, *, caller: Any, client: Any = None,
                       comment: str = "") -> tuple[dict[str, Any], int]:
        """Unfreeze and release the newest held version (of each model, for the global freeze),
        audited. 404 when neither a freeze nor anything held was there."""
        from functions.domain.freezes import GLOBAL
        from functions.services.operator_audit import record_action

        removed = self.freezes.unfreeze(model or GLOBAL)
        released = await self.freezes.release(model or GLOBAL, self._freeze_hand_off(client))
        still = self.freezes.frozen(model) if model else None
        if removed is None and not released:
            reason = f"{'model ' + model if model else 'the global freeze'} is not frozen" + (
                f" by its own freeze ({still})" if still else "")
            record_action(self.store, action="unfreeze", caller=caller, model=model, rollout_id=None,
                          outcome="not_found", status=404, reason=reason, comment=comment)
            return {"error": reason}, 404
        body: dict[str, Any] = {"unfrozen": removed.to_dict() if removed else None, "released": released}
        if still:
            body["still_frozen"] = still
        record_action(self.store, action="unfreeze", caller=caller, model=model, rollout_id=None,
                      outcome="accepted", status=200, reason=json.dumps(released, default=str)[:2000],
                      comment=comment)
        return body, 200

    def freezes_view(self) -> dict[str, Any]:
        """GET /api/freezes, `modelops freezes`: what is frozen now and what it holds."""
        held = [{k: h[k] for k in ("model", "version", "run_key", "at")} for h in self.freezes.held()]
        return {"freezes": [f.to_dict() | {"frozen": f.describe()} for f in self.freezes.active()], "held": held}

    async def release_due_freezes(self, client: Any = None) -> list[dict[str, Any]]:
        """The freeze timer (and the next event): expired freezes end, their held versions release."""
        return await self.freezes.release_due(self._freeze_hand_off(client))

    def retry(self, model: str, version: str, *, by: str, comment: str = "") -> Any:
        """A new, audited run of a version whose rollout did not succeed."""
        from functions.services.handoff import accept_retry, start_retry

        answer = accept_retry(model, version, self.managed, self.rollouts, by=by, comment=comment,
                              in_workspace=self.ports.registry.get_workspace_model(model, version) is not None)
        asyncio.run(start_retry(answer, self.orchestrations(), self.rollouts))
        return answer

    def send_alert(self, body: bytes, *, dry_run: bool = False) -> Any:
        """An Azure Monitor action-group delivery to the webhook handler."""
        from functions.services.retraining import handle_alert_body

        return handle_alert_body(body, self.store, self.jobs, self.alert_policy, dry_run=dry_run,
                                 max_bytes=self.settings.alert_max_bytes)

    def export_logs(self, now: datetime | None = None, **kwargs: Any) -> dict[str, Any]:
        """The hourly export timer: every managed model's inference records → Parquet in the store."""
        from functions.services.export import export_models

        kwargs.setdefault("lag", timedelta(minutes=self.settings.export_lag_minutes))
        kwargs.setdefault("formats", self.settings.export_formats)
        self.adopt_contracts()
        reports = export_models(self.managed.names, self.inference_logs, self.store,
                                now=now or datetime.now(timezone.utc), **kwargs)
        return {model: report.to_dict() for model, report in reports.items()}

    def check_drift(self, now: datetime | None = None, *, alert: bool = True, report: bool = True,
                    window: timedelta | None = None) -> list[dict[str, Any]]:
        """The daily drift timer. Locally, a drifted check is alerted the way Azure Monitor's log
        alert rule would (to the webhook handler); in Azure that rule reads the drift records."""
        from functions.services.monitoring import check_models, drift_job_submitter

        local = self.local is not None
        extra = {} if local else {"datastore": self.settings.drift_datastore}
        # without MODELOPS_DRIFT_DATASTORE an AzureML job cannot reach the store: compute in the function
        submit = drift_job_submitter(self.jobs, extra, report) if local or self.settings.drift_datastore else None
        sink = (lambda payload: _answer(self.send_alert(json.dumps(payload).encode()))) if local and alert else None
        self.adopt_contracts()
        return check_models(self.managed.names, self.store, self.references.reference_file, now=now,
                            window=window or timedelta(hours=self.settings.drift_window_hours),
                            config=self._drift_settings, report=report,
                            job_rows=self.settings.drift_job_rows, submit_drift_job=submit, alert=sink)

    def apply_retention(self, now: datetime | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        """The daily retention timer (MODELOPS_RETENTION_DAYS): old, unreferenced records go."""
        from functions.services.retention import apply_retention

        return apply_retention(self.store, self.settings.retention_days(), now=now, dry_run=dry_run,
                               drift_window=timedelta(hours=self.settings.drift_window_hours))

    def _drift_settings(self, model: str) -> dict[str, Any]:
        """MODELOPS_DRIFT_CONFIG, then the model's own `drift` settings over it."""
        cfg = self.managed.get(model)
        return {**self.settings.drift_config(), **(dict(cfg.drift) if cfg is not None else {})}

    def adopt_contracts(self) -> dict[str, str]:
        """Models released before contracts get their production version's contract (once; see
        services.contracts.adopt_production_contracts). A platform that cannot answer now is logged
        and left to the next timer: the export and drift check then fail closed for that model."""
        from functions.ports import PlatformError
        from functions.services.contracts import adopt_production_contracts

        try:
            done = adopt_production_contracts(self.managed.names, self.store, self.rollouts.production,
                                              self.ports.registry, self.ports.model_files,
                                              lambda model: dict(self.managed.get(model).contract))
        except PlatformError as exc:
            log_event(logger, "contract_adoption_failed", logging.WARNING, error=str(exc)[:300])
            return {}
        for model, what in done.items():
            log_event(logger, "contract_adoption", model=model, result=what[:300])
        return done

    def health_checks(self) -> list[Any]:
        """What the platform is missing, as ports.HealthCheck results (GET /api/health?deep=1, the
        start-up log): each probes an operation the control plane performs, harmlessly."""
        from functions.ports import HealthCheck

        try:
            configs = [self.managed.get(name) for name in self.managed.names]
        except Exception as exc:  # noqa: BLE001 - reported as a check, never raised from a health probe
            return [HealthCheck("models", False, f"{type(exc).__name__}: {str(exc)[:300]}")]
        return [self._store_check(), *self._parts.health_checks(self, configs)]

    def _store_check(self) -> Any:
        from functions.ports import HealthCheck, PlatformError

        try:
            self.store.get("health/probe.json")  # a read of a key that is never written
        except PlatformError as exc:
            return HealthCheck("store", False, str(exc)[:500])
        return HealthCheck("store", True, "readable")

    def log_health_checks(self) -> list[Any]:
        """Run the deep checks and log each (a WARNING for a failing one): what the Function App
        does once on start-up, beside the first invocation, so a missing right or diagnostic
        setting is in the logs before a rollout finds it."""
        try:
            checks = self.health_checks()
        except Exception as exc:  # noqa: BLE001 - a start-up report must never take the worker down
            log_event(logger, "health_checks_failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}"[:300])
            return []
        for check in checks:
            log_event(logger, "health_check", logging.INFO if check.ok else logging.WARNING, check=check.name,
                      ok=check.ok, detail=check.detail[:500])
        return checks

    def wait_all(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Local only: wait for the orchestrations this process started."""
        return self.local.driver.wait_all(timeout)

    # -- lifecycle (the embedded platform; nothing to do in Azure) ----------------------------------

    def open(self) -> "App":
        if self.local is not None and not self.local.opened:
            self.recovered = self.local.open(self._recover)
            if self._chosen:  # the endpoints are back: continue the resumable rollouts
                from functions.services.resumption import resume

                chosen, self._chosen = self._chosen, []
                self.resumed = resume(self.rollouts, self.local.driver, chosen, by=self._owner,
                                      after=self._took_over)
        return self

    def close(self) -> None:
        if self.local is not None:
            self.local.close(self._suspend if self.resumes else self._recover, self.stop_reason)

    @property
    def _owner(self) -> str:
        import os

        return f"modelops (pid {os.getpid()})"

    def _recover(self, why: str) -> list[Any]:
        """End the rollouts a stopped owner left (or, as a host, resume those it safely can)."""
        from functions.services.recovery import end_interrupted
        from functions.services import resumption

        endpoints = {"staging": self.local.staging, "production": self.local.production}
        keep: set[str] = set()
        if self.resumes and not self.local.driver.instances:  # taking the home over, nothing run yet
            self._took_over = why
            self._chosen, refused = resumption.choose(self.rollouts, self.managed, endpoints, self.local.driver)
            keep = {c.rollout_id for c in self._chosen}
        else:
            refused = resumption.not_resumed_by_this_owner(self.rollouts)
        ended = end_interrupted(self.rollouts, self.managed, endpoints, why, keep=frozenset(keep),
                                not_resumed=refused)
        self.local.forget_histories(keep)  # only after the endings are recorded (a failure keeps them)
        return ended

    def _suspend(self, why: str) -> list[Any]:
        """A host stops: its running rollouts stay resumable by the next host (noted `suspended`);
        one without a history (nothing to resume from) is ended as recovery ends it."""
        from functions.services.recovery import end_interrupted
        from functions.services import resumption

        recorded = set(self.local.history.instances())
        suspended, orphans = resumption.suspend(self.rollouts, self._owner, why, has_history=recorded.__contains__)
        if not orphans:
            return []
        keep = frozenset(suspended)
        return end_interrupted(self.rollouts, self.managed,
                               {"staging": self.local.staging, "production": self.local.production}, why,
                               keep=keep, not_resumed={rid: "it has no orchestration history" for rid in orphans})

    def __enter__(self) -> "App":
        return self.open()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is KeyboardInterrupt:
            self.stop_reason = "was interrupted (SIGINT) before it finished"
        elif exc_type is SystemExit and getattr(exc, "code", None) == 143:
            self.stop_reason = "was terminated (SIGTERM) before it finished"
        elif exc_type is not None and self.stop_reason == "stopped before it finished":
            self.stop_reason = f"failed ({exc_type.__name__}) before it finished"
        self.close()


class _Anonymous:
    """The caller of a request whose token did not validate (audited as such)."""

    identity = "unauthenticated"
    via = "invalid bearer token"
    roles: tuple[str, ...] = ()


def _header(headers: Any, name: str) -> str | None:
    """A header by name, case-insensitively (func.HttpRequest's headers are; a plain dict is not)."""
    if headers is None:
        return None
    value = headers.get(name) if hasattr(headers, "get") else None
    if value is None:
        value = next((v for k, v in dict(headers).items() if str(k).lower() == name), None)
    return value or None


def _answer(answer: Any) -> dict[str, Any]:
    return {"status": answer.status, "body": answer.body}


# --- the two platforms ---------------------------------------------------------------------------

class _LocalParts:
    """The embedded platform's ports (functions/adapters/local)."""

    def __init__(self, settings: Settings, deployment_env: dict[str, str] | None) -> None:
        from functions.adapters.local.host import EmbeddedPlatform

        self.embedded = EmbeddedPlatform(settings.home, settings.serving_python)
        self.deployment_env = dict(deployment_env or {})

    def store(self) -> Store:
        return self.embedded.store

    def rollout_ports(self, store: Store) -> RolloutPorts:
        from functions.adapters.local.model_files import FolderModelFiles

        e = self.embedded
        return RolloutPorts(staging=e.staging, production=e.production, registry=e.registry, traffic_log=e.traffic_log,
                            store=store, model_files=FolderModelFiles(), workspace_id=e.workspace.topic,
                            deployment_env=self.deployment_env)

    def jobs(self) -> Jobs:
        return self.embedded.jobs

    def inference_logs(self) -> Any:
        return self.embedded.inference_logs

    def references(self) -> ReferenceSource:
        return self.embedded

    def orchestrations(self, client: Any = None) -> Orchestrations:
        return self.embedded.orchestrations

    def health_checks(self, app_: App, configs: list[Any]) -> list[Any]:
        """Nothing beyond the store: the embedded platform's endpoints need no diagnostic setting
        (each front door writes its own traffic log) and it has no rights to lack."""
        return []


class _AzureParts:
    """AzureML (staging, production, registry) through azure-ai-ml, blob storage for state, Log
    Analytics for the traffic and inference logs — one credential and one settings read for all."""

    def __init__(self, settings: Settings) -> None:
        self.azure = AzureSettings.from_env()

    @cached_property
    def credential(self) -> Any:
        from functions.adapters.azure.clients import default_credential

        return default_credential()

    @cached_property
    def staging_client(self) -> Any:
        from functions.adapters.azure.clients import workspace_client

        a = self.azure
        return workspace_client(a.subscription_id, a.staging_resource_group, a.staging_workspace,
                                credential=self.credential)

    @cached_property
    def production_client(self) -> Any:
        from functions.adapters.azure.clients import workspace_client

        a = self.azure
        return workspace_client(a.subscription_id, a.production_resource_group, a.production_workspace,
                                credential=self.credential)

    @cached_property
    def registry_client(self) -> Any:
        from functions.adapters.azure.clients import registry_client

        return registry_client(self.azure.registry_name, credential=self.credential)

    @cached_property
    def arm_client(self) -> Any:
        """Resource Manager calls azure-ai-ml makes none of (the endpoints' diagnostic settings)."""
        from functions.adapters.azure.clients import arm_base_url, arm_client

        return arm_client(self.credential, base_url=arm_base_url(self.production_client))

    @cached_property
    def logs_client(self) -> Any:
        from functions.adapters.azure.log_analytics import logs_client

        return logs_client(self.azure.logs_endpoint or None, self.credential)

    def store(self) -> Store:
        from functions.adapters.azure.blob_store import blob_store_from_settings

        a = self.azure
        return blob_store_from_settings(
            connection_string=a.storage_connection_string or None,
            account_url=None if a.storage_connection_string else a.storage_account_url,
            container=a.storage_container,
            credential=None if a.storage_connection_string else self.credential,
        )

    def rollout_ports(self, store: Store) -> RolloutPorts:
        from functions.adapters.azure.aml_endpoints import AzureEndpoints, DeploymentAssets
        from functions.adapters.azure.aml_registry import AzureModelRegistry
        from functions.adapters.azure.diagnostic_settings import EndpointDiagnostics
        from functions.adapters.azure.model_files import DownloadedModelFiles
        from functions.adapters.azure.log_analytics import https_required
        from functions.adapters.azure.traffic_log import LogAnalyticsTrafficLog

        a = self.azure
        assets = DeploymentAssets(code=a.deployment_code or None, environment=a.deployment_environment or None)
        return RolloutPorts(
            staging=AzureEndpoints(self.staging_client, assets),
            # production endpoints send their logs where the traffic log and the export read them
            production=AzureEndpoints(self.production_client, assets,
                                      diagnostics=EndpointDiagnostics(self.arm_client, a.log_analytics_resource_id)),
            registry=AzureModelRegistry(self.staging_client, lambda: self.registry_client, a.staging_workspace_id,
                                        registry_name=a.registry_name),
            # the workflow waits canary.health_delay_seconds (the ingestion lag) before it reads
            traffic_log=LogAnalyticsTrafficLog(self.logs_client, a.log_analytics_workspace_id,
                                               ingestion_lag=timedelta(0),
                                               enforce_https=https_required(a.logs_endpoint)),
            store=store, model_files=DownloadedModelFiles(lambda: self.staging_client, lambda: self.registry_client),
            workspace_id=a.staging_workspace_id,
        )

    def registry_client_named(self, name: str) -> Any:
        """A registry MLClient: the configured registry's, or another one a model's retraining
        component lives in (AzureJobs keeps what it gets)."""
        if name == self.azure.registry_name:
            return self.registry_client
        from functions.adapters.azure.clients import registry_client

        return registry_client(name, credential=self.credential)

    def jobs(self) -> Jobs:
        from functions.adapters.azure.aml_jobs import AzureJobs

        # retraining runs where models register: staging; a registry's component is read with its client
        return AzureJobs(self.staging_client, registry_clients=self.registry_client_named)

    def inference_logs(self) -> Any:
        from functions.adapters.azure.inference_logs import LogAnalyticsInferenceLogs, inference_logs_client
        from functions.adapters.azure.log_analytics import https_required

        return LogAnalyticsInferenceLogs(inference_logs_client(self.azure.logs_endpoint or None, self.credential),
                                         self.azure.log_analytics_workspace_id,
                                         enforce_https=https_required(self.azure.logs_endpoint))

    def references(self) -> ReferenceSource:
        from functions.adapters.azure.references import RegistryReferences

        return RegistryReferences(lambda: self.registry_client, self.azure.registry_name)

    def health_checks(self, app_: App, configs: list[Any]) -> list[Any]:
        from functions.adapters.azure.health_checks import endpoint_checks, table_checks
        from functions.adapters.azure.log_analytics import https_required

        ports = app_.ports
        return [
            *endpoint_checks("staging", ports.staging, [c.staging_endpoint for c in configs]),
            *endpoint_checks("production", ports.production, [c.production_endpoint for c in configs], logs=True),
            *table_checks(self.logs_client, self.azure.log_analytics_workspace_id,
                          enforce_https=https_required(self.azure.logs_endpoint)),
        ]

    def orchestrations(self, client: Any = None) -> Orchestrations:
        from functions.adapters.azure.durable import DurableOrchestrations

        if client is None:
            raise RuntimeError("Durable orchestrations in Azure need the trigger's durable client binding")
        return DurableOrchestrations(client)


def build_app(settings: Settings, *, overrides: dict[str, Any] | None = None,
              deployment_env: dict[str, str] | None = None, resume: bool = False) -> App:
    """The application for `settings.platform`. `overrides` apply to every managed model's
    configuration (e.g. short bakes in the demo). `resume` (the local host, `modelops up`): on
    taking the home over, continue the rollouts a previous owner left where that is safe, and on
    stopping leave its own to the next host (services/resumption.py); ignored in Azure, where
    Durable Functions resumes every orchestration itself."""
    if settings.platform == "azure":
        parts: Any = _AzureParts(settings)
        overrides = {"canary": {"health_delay_seconds": parts.azure.ingestion_lag_seconds}, **(overrides or {})}
        if not settings.allowed_topics:  # only the configured staging workspace may trigger rollouts
            from dataclasses import replace

            settings = replace(settings, allowed_topics=(parts.azure.staging_workspace_id,))
        return App(settings, _configs(settings, overrides), parts)
    managed = _configs(settings, overrides)
    parts = _LocalParts(settings, deployment_env)
    app_ = App(settings, managed, parts, resume=resume)
    _wire_local(app_, parts.embedded)
    return app_


def build_store(settings: Settings) -> Store:
    """Only the state store of `settings.platform` (for commands that read or write configuration
    beside a running platform: no home is taken, no endpoint or client built)."""
    if settings.platform == "azure":
        return _AzureParts(settings).store()
    from functions.adapters.local.store import DirectoryStore

    return DirectoryStore(settings.home / "store")


def _configs(settings: Settings, overrides: dict[str, Any] | None) -> ModelConfigs:
    return ModelConfigs(settings.models_json, settings.models_dir, overrides, platform=settings.platform,
                        refresh_seconds=settings.config_refresh_seconds)


def _wire_local(app_: App, embedded: Any) -> None:
    """The embedded platform calls back into the application the way Azure would: a registration
    emits ModelRegistered to the hand-off, and the driver runs the workflow's one activity."""
    from functions.services.activities import dispatch
    from functions.services.workflow import rollout_orchestrator, undo_orchestrator
    from functions.shared.orchestration import ACTIVITY, ORCHESTRATOR, UNDO_ORCHESTRATOR

    embedded.workspace.on_registered = app_.deliver
    embedded.driver.orchestrators[ORCHESTRATOR] = rollout_orchestrator
    embedded.driver.orchestrators[UNDO_ORCHESTRATOR] = undo_orchestrator
    embedded.driver.activities[ACTIVITY] = lambda payload: dispatch(app_.ports, payload)


_app: App | None = None
_app_lock = threading.Lock()


def app() -> App:
    """The App of this worker process (the Functions triggers), built on first use."""
    global _app
    with _app_lock:
        if _app is None:
            built = build_app(Settings.from_env())
            _app = built.open()  # locally (Core Tools): this worker owns the home
            if built.settings.platform == "azure":  # beside the first invocation, never in its way
                threading.Thread(target=built.log_health_checks, name="modelops-start-up-checks",
                                 daemon=True).start()
        return _app



def use(application: App | None) -> None:
    """Make `application` the App the triggers get from `app()` in this process — what a
    `modelops up` host does with the App it opened (None forgets it again, at stop)."""
    global _app
    with _app_lock:
        _app = application
