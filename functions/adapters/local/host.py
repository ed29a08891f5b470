"""The embedded platform: every local port under one MODELOPS_HOME, and its lifecycle.

    <home>/owner.json   the process that owns the home (ownership.py)
    <home>/store/       the Store (rollout records, audit, exports, drift results; the driver's
                        orchestration histories under orchestrations/: history.py)
    <home>/workspace/ <home>/registry/   model versions (workspace.py)
    <home>/staging/ <home>/production/   endpoints: front doors + inference servers (endpoints.py)
    <home>/jobs/        retraining and drift jobs (jobs.py)

Local mechanics only: taking the home over (stop what a dead owner left running), bringing the
endpoints back, stopping everything in order. What must happen to the *rollouts* a stopped owner
left is a service (functions/services/recovery.py); the composition root hands it in as `recover`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from functions.adapters.local.endpoints import LocalEndpoints
from functions.adapters.local.history import OrchestrationHistory
from functions.adapters.local.inference_logs import LocalInferenceLogs
from functions.adapters.local.jobs import LocalJobs
from functions.adapters.local.orchestrator import LocalOrchestrations, LocalOrchestrator
from functions.adapters.local.ownership import HomeLease, Owner
from functions.adapters.local.store import DirectoryStore
from functions.adapters.local.traffic_log import LocalTrafficLog
from functions.adapters.local.workspace import LocalModelRegistry, LocalWorkspace
from functions.shared.logs import log_event

logger = logging.getLogger("modelops.local")
Recover = Callable[[str], list[Any]]  # why the runner stopped → how its rollouts were ended


class EmbeddedPlatform:
    def __init__(self, home: Path, serving_python: Path) -> None:
        self.home = Path(home)
        self.store = DirectoryStore(self.home / "store")
        self.workspace = LocalWorkspace(self.home, "staging")
        self.registry = LocalModelRegistry(self.workspace, self.home)
        self.staging = LocalEndpoints(self.home / "staging", serving_python)
        self.production = LocalEndpoints(self.home / "production", serving_python)
        self.traffic_log = LocalTrafficLog(self.home / "production")
        self.inference_logs = LocalInferenceLogs(self.home / "production")
        self.jobs = LocalJobs(self.home, register=self._register_job_model, store=self.store)
        self.history = OrchestrationHistory(self.store)
        # the composition root registers the workflow; every completed task is recorded (a host resumes)
        self.driver = LocalOrchestrator({}, {}, history=self.history)
        self.orchestrations = LocalOrchestrations(self.driver)
        self.lease = HomeLease(self.home)
        self.opened = False

    def _register_job_model(self, folder: Path, model: str, tags: dict[str, str]) -> Any:
        return self.workspace.register(folder, model, tags)[0]  # emits ModelRegistered, like AzureML

    def reference_file(self, model: str, version: str, tmp: Any) -> Path:
        """ports.ReferenceSource: the version's reference sample, from the registry copy (or the
        workspace's, before promotion)."""
        ref = self.registry.get_registry_model(model, version) or self.workspace.get(model, version)
        if ref is None:
            raise FileNotFoundError(f"model {model}:{version} not found in the registry or workspace")
        return Path(ref.uri) / "reference.parquet"

    def forget_histories(self, keep: set[str]) -> None:
        """Remove every orchestration history but `keep`'s (ended rollouts are never replayed)."""
        for instance_id in self.history.instances():
            if instance_id not in keep:
                self.history.remove(instance_id)

    def open(self, recover: Recover) -> list[Any]:
        """Take the home (HomeBusy while another live process has it); stop the servers and jobs a
        dead owner left; let `recover` end its unfinished rollouts (restoring their endpoints'
        recorded maps); then bring the endpoints back. Returns what `recover` ended."""
        previous: Owner | None = self.lease.acquire()
        self.opened = True
        try:
            if previous is not None:  # it died without releasing: its servers and jobs may still run
                self.staging.reap_orphans()
                self.production.reap_orphans()
                self.jobs.fail_orphaned(f"the modelops process that ran it (pid {previous.pid}) died")
            why = (f"the modelops process that ran it (pid {previous.pid}, {previous.command}) died"
                   if previous is not None else "the modelops process that ran it stopped")
            ended = recover(why)
            self.staging.revive()
            self.production.revive()
        except BaseException:
            self.close(lambda why: [], "failed while it started")
            raise
        return ended

    def close(self, recover: Recover, stop_reason: str) -> None:
        """Stop rollouts at their next step, jobs and servers (every part, even when one fails —
        a full disk fails the state writes); let `recover` end the rollouts left unfinished; give
        the home up. A failure to record the endings leaves them to the next owner."""
        for label, step in (("orchestrations", self.driver.stop), ("jobs", self.jobs.close),
                            ("staging endpoints", self.staging.close), ("production endpoints", self.production.close)):
            try:
                step()
            except Exception as exc:  # noqa: BLE001
                log_event(logger, "close_failed", logging.ERROR, part=label, error=f"{type(exc).__name__}: {exc}"[:500])
        if not self.opened:
            return
        try:
            recover(f"the modelops process that ran it (pid {os.getpid()}) {stop_reason}")
        except Exception as exc:  # noqa: BLE001 - the next owner reconciles; never mask the caller's error
            log_event(logger, "rollouts_left_for_next_owner", logging.ERROR, error=f"{type(exc).__name__}: {exc}"[:500])
        finally:
            self.lease.release()
            self.opened = False
