"""The composition root behind the triggers and the CLI: builds a platform from settings.

`function_app.py` registers blueprints; the blueprints ask `bootstrap` for their dependencies on
first use (so cold start stays light). Azure and local platforms are built here and only here.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from functions.domain.config import ManagedModels, load_managed_models
from functions.settings import SAMPLE_REQUEST, Settings

ORCHESTRATOR = "rollout_orchestrator"


def managed_models(settings: Settings, overrides: dict[str, Any] | None = None) -> ManagedModels:
    return load_managed_models(settings.models_json, overrides)


@dataclass
class RolloutResult:
    decisions: list[dict[str, Any]]
    rollouts: list[dict[str, Any]]


class LocalPlatform:
    """The embedded platform: filesystem workspace/registry/store, real inference-server
    deployments behind loopback front doors, and the in-process orchestration driver."""

    def __init__(self, settings: Settings, *, overrides: dict[str, Any] | None = None,
                 deployment_env: dict[str, str] | None = None) -> None:
        from functions.adapters.local.endpoints import LocalEndpoints
        from functions.adapters.local.orchestrator import LocalOrchestrator
        from functions.adapters.local.store import DirectoryStore
        from functions.adapters.local.traffic_log import LocalTrafficLog
        from functions.adapters.local.workspace import LocalModelRegistry, LocalWorkspace
        from functions.services.activities import Platform, dispatch
        from functions.services.records import RolloutStore
        from functions.services.workflow import rollout_orchestrator

        self.settings = settings
        home = Path(settings.home)
        self.home = home
        self.managed = managed_models(settings, overrides)
        self.store = DirectoryStore(home / "store")
        self.rollouts = RolloutStore(self.store)
        self.workspace = LocalWorkspace(home, "staging", on_registered=self.deliver)
        self.registry = LocalModelRegistry(self.workspace, home)
        self.staging = LocalEndpoints(home / "staging", settings.serving_python)
        self.production = LocalEndpoints(home / "production", settings.serving_python)
        self.traffic_log = LocalTrafficLog(home / "production")
        self.platform = Platform(
            staging=self.staging, production=self.production, registry=self.registry,
            traffic_log=self.traffic_log, store=self.store,
            sample_request=json.loads(SAMPLE_REQUEST.read_text()), workspace_id=self.workspace.topic,
            deployment_env=dict(deployment_env or {}),
        )
        from functions.adapters.local.jobs import LocalJobs

        self.jobs = LocalJobs(home, lambda folder, model, tags: self.workspace.register(folder, model, tags)[0],
                              store=self.store)
        self.orchestrator = LocalOrchestrator(
            {ORCHESTRATOR: rollout_orchestrator}, {"rollout_activity": lambda payload: dispatch(self.platform, payload)}
        )
        from functions.adapters.local.ownership import HomeLease

        self.lease = HomeLease(home)
        self.recovered: list[Any] = []  # rollouts a stopped owner left, ended when this one took over
        self.stop_reason = "stopped before it finished"  # said of rollouts this process leaves unfinished
        self._opened = False

    def open(self) -> "LocalPlatform":
        """Take ownership of the home (HomeBusy while another live process has it), end what a
        previous owner left unfinished (rollouts, jobs, orphaned servers), then bring the
        endpoints back at their (restored) traffic maps."""
        if self._opened:
            return self
        previous = self.lease.acquire()
        self._opened = True
        try:
            if previous is not None:  # it died without releasing: its servers and jobs may still run
                self.staging.reap_orphans()
                self.production.reap_orphans()
                self.jobs.fail_orphaned(f"the modelops process that ran it (pid {previous.pid}) died")
            why = (f"the modelops process that ran it (pid {previous.pid}, {previous.command}) died"
                   if previous is not None else "the modelops process that ran it stopped")
            self.recovered = self._end_interrupted(why)
            self.revive()
        except BaseException:
            self.close()
            raise
        return self

    def _end_interrupted(self, why: str) -> list[Any]:
        from functions.services.recovery import end_interrupted

        return end_interrupted(self.rollouts, self.managed, {"staging": self.staging, "production": self.production},
                               why)

    def deliver(self, payload: Any, *, dry_run: bool = False) -> list[Any]:
        """Event Grid delivery to the ModelRegistered handler (what the trigger does in Azure)."""
        from functions.services.handoff import accept_events, start_accepted

        accepted = accept_events(payload, self.managed, self.rollouts, self.settings.allowed_topics,
                                 dry_run=dry_run)
        if not dry_run:
            start_accepted(accepted, lambda iid, inp: self.orchestrator.start(ORCHESTRATOR, iid, inp), self.rollouts)
        return accepted

    def retry(self, model: str, version: str, *, by: str, comment: str = "") -> Any:
        """`modelops rollouts retry`: a new, audited run of a version whose rollout did not succeed."""
        from functions.services.handoff import accept_retry

        answer = accept_retry(model, version, self.managed, self.rollouts, by=by, comment=comment,
                              in_workspace=self.workspace.get(model, version) is not None)
        if answer.status == 202:
            try:
                self.orchestrator.start(ORCHESTRATOR, answer.decision.run_key, answer.orchestration_input)
            except Exception:
                self.rollouts.release(model, answer.decision.run_key)
                raise
        return answer

    def wait_all(self, timeout: float | None = None) -> list[dict[str, Any]]:
        outputs = []
        for instance_id in list(self.orchestrator.instances):
            instance = self.orchestrator.wait(instance_id, timeout)
            outputs.append(instance.output or {"id": instance_id, "state": "failed", "reason": instance.error})
        return outputs

    def approve(self, rollout_id: str, approved: bool, by: str, comment: str = "") -> bool:
        return self.orchestrator.raise_event(rollout_id, "approval",
                                             {"approved": approved, "by": by, "comment": comment})

    def revive(self, timeout: float = 180.0) -> list[str]:
        """Bring back the endpoints the previous owner left (after `open` ended its unfinished
        rollouts, their recorded traffic maps are the restored ones): same deployments, same
        traffic map, new processes and ports. Only the owner of the home calls this."""
        from functions.adapters.local.endpoints import read_states
        from functions.ports import DeploymentSpec, ModelRef

        revived = []
        for endpoints in (self.staging, self.production):
            for name, state in read_states(endpoints.home).items():
                if endpoints.get_endpoint(name) is not None:
                    continue
                deployments = {d: info for d, info in state.get("deployments", {}).items()
                               if info.get("provisioning_state") == "Succeeded" and info.get("spec")}
                if not deployments:
                    continue
                endpoints.begin_create_endpoint(name, tags=state.get("tags") or {})
                for dep_name, info in deployments.items():
                    spec = dict(info["spec"])
                    spec["model"] = ModelRef(**spec["model"])
                    endpoints.begin_create_deployment(DeploymentSpec(**spec))
                for dep_name in deployments:
                    endpoints.wait_deployment(name, dep_name, timeout=timeout)
                traffic = {d: int(w) for d, w in state.get("traffic", {}).items() if d in deployments}
                if traffic and sum(traffic.values()) in (0, 100):
                    endpoints.set_traffic(name, traffic)
                revived.append(name)
        return revived

    def alert_policy(self) -> Any:
        return alert_policy(self.settings, self.managed)

    def send_alert(self, body: bytes, *, dry_run: bool = False) -> Any:
        """An Azure Monitor action-group delivery to the webhook handler."""
        from functions.services.retraining import handle_alert_body

        return handle_alert_body(body, self.store, self.jobs, self.alert_policy(), dry_run=dry_run,
                                 max_bytes=self.settings.alert_max_bytes)

    def export_logs(self, now: Any = None, **kwargs: Any) -> dict[str, Any]:
        """The hourly export timer: the production endpoints' InputData → Parquet in the store."""
        from functions.adapters.local.inference_logs import LocalInferenceLogs

        return export_all(self.settings, self.managed, LocalInferenceLogs(self.production.home), self.store,
                          now=now, **kwargs)

    def check_drift(self, now: Any = None, *, alert: bool = True, report: bool = True,
                    window: Any = None) -> list[dict[str, Any]]:
        """The daily drift timer, then the local alert rule: drift → alert → webhook handler."""
        from functions.services.monitoring import drift_alert_payload, drift_job_inputs, run_drift_check

        def submit(name: str, model: str, version: str, staged: str, output: str, config: dict) -> dict:
            return self.jobs.submit_drift(name, model, drift_job_inputs(staged, output, config, report),
                                          {"modelops.model_version": version, "modelops.trigger": "drift-timer"})

        def reference(model: str, version: str, tmp: Path) -> Path:
            ref = self.registry.get_registry_model(model, version) or self.workspace.get(model, version)
            if ref is None:
                raise FileNotFoundError(f"model {model}:{version} not found in the registry or workspace")
            return Path(ref.uri) / "reference.parquet"

        from functions.services.monitoring import collect_drift_jobs

        def checks_of(model: str) -> list[Any]:
            # earlier windows computed by drift jobs first, then this window
            checks = collect_drift_jobs(self.store, model, now)
            checks.append(run_drift_check(model, self.store, reference, now=now, config=self.settings.drift_config(),
                                          window=window or _hours(self.settings.drift_window_hours), report=report,
                                          job_rows=self.settings.drift_job_rows, submit_drift_job=submit))
            return checks

        out = []
        for model in self.managed.names:
            checks = each_model(model, checks_of)
            if isinstance(checks, dict):  # this model's check failed; the others still run
                out.append(checks)
                continue
            for check in checks:
                item: dict[str, Any] = {"check": check.to_dict()}
                payload = drift_alert_payload(check) if alert else None
                if payload is not None:
                    answer = self.send_alert(json.dumps(payload).encode())
                    item["alert"] = {"status": answer.status, "body": answer.body}
                out.append(item)
        return out

    def close(self) -> None:
        """Stop rollouts at their next step, jobs and servers; end the rollouts left unfinished
        (previous traffic maps restored); give the home up. A failure to record the endings (a
        full disk) leaves them to the next owner."""
        import logging

        from functions.shared.logs import log_event

        logger = logging.getLogger("modelops.recovery")
        interrupted: list[Any] = []
        for label, step in (("orchestrations", self.orchestrator.stop), ("jobs", self.jobs.close),
                            ("staging endpoints", self.staging.close), ("production endpoints", self.production.close)):
            try:  # every part is stopped even if one fails (a full disk fails the state writes)
                result = step()
                if label == "orchestrations":
                    interrupted = result
            except Exception as exc:  # noqa: BLE001
                log_event(logger, "close_failed", logging.ERROR, part=label, error=f"{type(exc).__name__}: {exc}"[:500])
        if not self._opened:
            return
        try:
            if interrupted or self.rollouts.running_ids():
                self._end_interrupted(f"the modelops process that ran it (pid {os.getpid()}) {self.stop_reason}")
        except Exception as exc:  # noqa: BLE001 - the next owner reconciles; never mask the caller's error
            log_event(logger, "rollouts_left_for_next_owner", logging.ERROR,
                      error=f"{type(exc).__name__}: {exc}"[:500])
        finally:
            self.lease.release()
            self._opened = False

    def __enter__(self) -> "LocalPlatform":
        return self.open()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is KeyboardInterrupt:
            self.stop_reason = "was interrupted (SIGINT) before it finished"
        elif exc_type is SystemExit and getattr(exc, "code", None) == 143:
            self.stop_reason = "was terminated (SIGTERM) before it finished"
        elif exc_type is not None and self.stop_reason == "stopped before it finished":
            self.stop_reason = f"failed ({exc_type.__name__}) before it finished"
        self.close()


def each_model(model: str, checks_of: Callable[[str], list[Any]]) -> list[Any] | dict[str, Any]:
    """One model's drift checks, or — when they fail — an error item for it: one model's broken
    reference or store never stops the others' checks (the timer reports the failure)."""
    import logging

    from functions.shared.logs import log_event

    try:
        return checks_of(model)
    except Exception as exc:  # noqa: BLE001 - reported per model, never swallowed
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
        log_event(logging.getLogger("modelops.drift"), "drift_check_failed", logging.ERROR, model=model, error=error)
        return {"check": {"model": model, "status": "error", "reason": error, "version": None,
                          "dataset_drift": None, "result_key": None, "report_key": None}, "error": error}


def _hours(value: float) -> Any:
    from datetime import timedelta

    return timedelta(hours=value)


def export_all(settings: Settings, managed: ManagedModels, source: Any, store: Any, now: Any = None,
               **kwargs: Any) -> dict[str, Any]:
    from datetime import datetime, timedelta, timezone

    from functions.services.export import export_models

    kwargs.setdefault("lag", timedelta(minutes=settings.export_lag_minutes))
    kwargs.setdefault("formats", settings.export_formats)
    reports = export_models(managed.names, source, store, now=now or datetime.now(timezone.utc), **kwargs)
    return {model: report.to_dict() for model, report in reports.items()}


def alert_policy(settings: Settings, managed: ManagedModels) -> Any:
    from datetime import timedelta

    from functions.domain.config import ConfigError
    from functions.services.retraining import AlertPolicy

    rule_map: dict[str, str] = {}
    if settings.alert_rules_json:
        try:
            rule_map = json.loads(settings.alert_rules_json)
        except ValueError as exc:
            raise ConfigError(f"MODELOPS_ALERT_RULES is not valid JSON: {exc}") from None
        if not isinstance(rule_map, dict) or not all(isinstance(v, str) for v in rule_map.values()):
            raise ConfigError('MODELOPS_ALERT_RULES must be {"<alert rule name>": "<model name>"}')
        unknown = sorted(set(rule_map.values()) - set(managed.names))
        if unknown:
            raise ConfigError(f"MODELOPS_ALERT_RULES maps to unmanaged model(s) {', '.join(unknown)}")
    return AlertPolicy(managed=managed.names, rule_map=rule_map,
                       cooldown=timedelta(hours=settings.retrain_cooldown_hours))


def seed_evaluation_data(store: Any, model: str, rows: int = 2_000, seed: int = 1234,
                         frame_fn: Callable[..., Any] | None = None) -> str:
    """Write a labelled evaluation set for the quality gate (generated; same population as training)."""
    from ml.datagen import generate

    frame = (frame_fn or generate)(rows, seed=seed)
    key = f"datasets/{model}/evaluation.csv"
    store.put(key, frame.to_csv(index=False).encode())
    return key


class Runtime:
    """What the Functions triggers need, built once per worker process on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        overrides: dict[str, Any] = {}
        if settings.platform == "azure":
            from functions.settings import AzureSettings

            azure = AzureSettings.from_env()
            overrides = {"canary": {"health_delay_seconds": azure.ingestion_lag_seconds}}
            if not settings.allowed_topics:  # only the configured staging workspace may trigger rollouts
                from dataclasses import replace

                self.settings = settings = replace(settings, allowed_topics=(azure.staging_workspace_id,))
        self.managed = managed_models(settings, overrides)
        self._platform: Any = None
        self._jobs: Any = None
        self._local: LocalPlatform | None = None
        self._lock = threading.RLock()  # `jobs` builds the platform under the same lock

    @property
    def platform(self) -> Any:
        """The activities' Platform (Azure SDK clients or the embedded local platform)."""
        with self._lock:
            if self._platform is None:
                if self.settings.platform == "azure":
                    from functions.azure_platform import build_azure_platform

                    self._platform = build_azure_platform(self.settings)
                else:
                    self._local = LocalPlatform(self.settings).open()
                    self._platform = self._local.platform
            return self._platform

    @property
    def rollouts(self) -> Any:
        from functions.services.records import RolloutStore

        return RolloutStore(self.platform.store)

    @property
    def jobs(self) -> Any:
        with self._lock:
            if self._jobs is None:
                if self.settings.platform == "azure":
                    from functions.azure_platform import build_azure_jobs

                    self._jobs = build_azure_jobs(self.settings)
                else:
                    self.platform  # noqa: B018 - builds the local platform
                    self._jobs = self._local.jobs
            return self._jobs

    @property
    def alert_policy(self) -> Any:
        return alert_policy(self.settings, self.managed)

    def export_logs(self) -> dict[str, Any]:
        if self.settings.platform == "azure":
            from functions.azure_platform import build_azure_inference_logs

            return export_all(self.settings, self.managed, build_azure_inference_logs(self.settings),
                              self.platform.store)
        self.platform  # noqa: B018 - builds the local platform
        return self._local.export_logs()

    def check_drift(self) -> list[dict[str, Any]]:
        if self.settings.platform == "azure":
            from functions.azure_platform import download_reference
            from functions.services.monitoring import drift_job_inputs, run_drift_check

            def submit(name: str, model: str, version: str, staged: str, output: str, config: dict) -> dict:
                inputs = {**drift_job_inputs(staged, output, config), "datastore": self.settings.drift_datastore}
                return self.jobs.submit_drift(name, model, inputs, {"modelops.model_version": version,
                                                                    "modelops.trigger": "drift-timer"})

            from functions.services.monitoring import collect_drift_jobs

            # In Azure the alert is Azure Monitor's log alert rule on the drift records (README):
            # finished drift jobs' records are logged by collect_drift_jobs for it.
            # Without MODELOPS_DRIFT_DATASTORE the job cannot reach the store: compute in the function.
            def checks_of(model: str) -> list[Any]:
                return [*collect_drift_jobs(self.platform.store, model), run_drift_check(
                    model, self.platform.store, lambda m, v, tmp: download_reference(self.settings, m, v, tmp),
                    config=self.settings.drift_config(), window=_hours(self.settings.drift_window_hours),
                    job_rows=self.settings.drift_job_rows,
                    submit_drift_job=submit if self.settings.drift_datastore else None)]

            out: list[dict[str, Any]] = []
            for model in self.managed.names:
                checks = each_model(model, checks_of)
                out += [checks] if isinstance(checks, dict) else [{"check": c.to_dict()} for c in checks]
            return out
        self.platform  # noqa: B018
        return self._local.check_drift()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(Settings.from_env())
        return _runtime
