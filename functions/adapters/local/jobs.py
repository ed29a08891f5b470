"""ports.Jobs on the local platform: the training pipeline as a subprocess.

A retraining job trains on the newest labelled data for the model (`modelops train`, the same
code the AzureML pipeline's steps run) in a subprocess, then registers the artifact as the next
version in the local workspace — which emits ModelRegistered, and the rollout starts again. A model
whose retraining is a registered AzureML component runs its `retraining_command` here; without one
it is refused (PlatformError), never retrained by the default trainer in its place.

    <home>/jobs/<name>/job.json     status (Queued | Running | Completed | Failed), times, tags
    <home>/jobs/<name>/job.log      the training subprocess's output
    <home>/data/<model>/labelled/   labelled data; the newest file (by name) is trained on

A drift job (`submit_drift`, what ml/jobs/drift.yml runs on AzureML) is `python -m ml.steps.drift`
reading the staged inputs straight from the store's folder and writing <home>/jobs/<name>/output/;
on success result.json and report.html are copied into the store under the output prefix (where
the AzureML job's output lands) and the two drift records are logged, as the in-process check does.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from functions.shared.logs import log_event
from functions.shared.names import is_component_ref
from functions.ports import PlatformError, RetrainingRecipe

TERMINAL = ("Completed", "Failed", "Canceled")
drift_logger = logging.getLogger("modelops.drift")


def labelled_dir(home: Path, model: str) -> Path:
    return Path(home) / "data" / model / "labelled"


class LocalJobs:
    def __init__(self, home: Path, register: Callable[[Path, str, dict[str, str]], Any],
                 search_iterations: int = 2, python: str = sys.executable, store: Any = None) -> None:
        self.home = Path(home)
        self.store = store  # a DirectoryStore: drift jobs read its folder and write results back
        self.root = self.home / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.register = register
        self.search_iterations = search_iterations
        self.python = python
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._processes: dict[str, subprocess.Popen] = {}

    def submit_retraining(self, job_name: str, model: str, tags: dict[str, str],
                          inputs: dict[str, Any] | None = None,
                          recipe: RetrainingRecipe | None = None) -> dict[str, Any]:
        if recipe is not None and is_component_ref(recipe.pipeline) and not recipe.command:
            # refused at config load on this platform; a recipe built in code gets the same answer here
            # rather than the default trainer standing in for the model's own pipeline
            raise PlatformError(f"retraining of {model}: {recipe.pipeline} is a registered AzureML component, which "
                                "the local platform cannot run: set the model's retraining_command")
        folder = self.root / job_name
        existing = self._claim(folder)
        if existing is not None:
            return existing
        command = list(recipe.command) if recipe is not None else []
        given = (inputs or {}).get("training_data")
        # the default recipe (modelops train) needs labelled data; a model's own command may find its own
        data = given or (self._newest_labelled(model) if not command else self._newest_labelled_or_none(model))
        job = {"name": job_name, "model": model, "status": "Queued", "tags": dict(tags),
               "training_data": "" if data is None else str(data), "command": command,
               "created": _now(), "log": str(folder / "job.log")}
        return self._start(job, self._run)

    def submit_drift(self, job_name: str, model: str, inputs: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
        root = getattr(self.store, "root", None)
        if root is None:
            raise PlatformError("drift jobs need the local store (LocalJobs(..., store=DirectoryStore))")
        missing = [k for k in ("reference", "current", "output") if not inputs.get(k)]
        if missing:
            raise PlatformError(f"drift job {job_name}: missing input(s) {', '.join(missing)}")
        folder = self.root / job_name
        existing = self._claim(folder)
        if existing is not None:
            return existing
        job = {"name": job_name, "model": model, "kind": "drift", "status": "Queued", "tags": dict(tags),
               "reference": str(Path(root) / inputs["reference"]),
               "current": str(Path(root) / str(inputs["current"]).rstrip("/")),
               "output_prefix": str(inputs["output"]).rstrip("/"), "config": dict(inputs.get("config") or {}),
               "report": inputs.get("report") is not False, "created": _now(), "log": str(folder / "job.log"),
               "contract": str(Path(root) / inputs["contract"]) if inputs.get("contract") else ""}
        return self._start(job, self._run_drift)

    def _claim(self, folder: Path) -> dict[str, Any] | None:
        """Create the job's folder (atomic: one submission per name); an existing job is returned."""
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            return self.get_job(folder.name)
        return None

    def _start(self, job: dict[str, Any], target: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        self._write(job["name"], job)
        thread = threading.Thread(target=target, args=(job,), name=f"job-{job['name']}", daemon=True)
        with self._lock:
            self._threads[job["name"]] = thread
        thread.start()
        return dict(job)

    def get_job(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / name / "job.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def list_running(self, model: str) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.root.glob("*/job.json")):
            job = self.get_job(path.parent.name)
            # Retraining jobs only, as in Azure (where list_running lists pipeline jobs, not the drift job).
            if job and job.get("model") == model and job.get("kind") != "drift" and job.get("status") not in TERMINAL:
                out.append(job)
        return out

    def wait(self, name: str, timeout: float | None = None) -> dict[str, Any] | None:
        thread = self._threads.get(name)
        if thread is not None:
            thread.join(timeout)
        return self.get_job(name)

    def close(self, timeout: float = 15.0) -> None:
        """Stop running jobs' subprocesses and wait for their threads to record them Failed."""
        with self._lock:
            processes = list(self._processes.values())
            threads = list(self._threads.values())
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for thread in threads:
            thread.join(timeout)

    def fail_orphaned(self, why: str) -> list[str]:
        """Jobs a dead owner left Queued/Running: stop their subprocess (if it outlived its owner)
        and record them Failed — a job nobody runs must not count as running (it would block
        every retraining of its model)."""
        ended = []
        for path in sorted(self.root.glob("*/job.json")):
            job = self.get_job(path.parent.name)
            if not job or job.get("status") in TERMINAL or job["name"] in self._threads:
                continue
            pid = job.get("pid")
            if isinstance(pid, int) and _is_job_process(pid):
                try:
                    os.kill(pid, 15)
                except ProcessLookupError:
                    pass
            job.update(status="Failed", error=f"{why} while the job ran", finished=_now())
            self._write(job["name"], job)
            ended.append(job["name"])
        return ended

    def _newest_labelled_or_none(self, model: str) -> Path | None:
        try:
            return self._newest_labelled(model)
        except PlatformError:
            return None

    def _newest_labelled(self, model: str) -> Path:
        files = sorted(p for p in labelled_dir(self.home, model).glob("*") if p.suffix in (".csv", ".parquet"))
        if not files:
            raise PlatformError(f"no labelled data for {model} in {labelled_dir(self.home, model)}")
        return files[-1]

    def _run(self, job: dict[str, Any]) -> None:
        """A retraining job: `modelops train` on the labelled data, then register the artifact."""
        out = self.root / job["name"] / "model"
        if job.get("command"):  # the model's own recipe, its placeholders filled in
            values = {"{training_data}": job["training_data"], "{output}": str(out), "{model}": job["model"],
                      "{python}": self.python}  # only these are replaced: other braces stay as written
            command = []
            for part in job["command"]:
                for placeholder, value in values.items():
                    part = part.replace(placeholder, value)
                command.append(part)
        else:
            command = [self.python, "-m", "functions.cli.main", "train", "--data", job["training_data"],
                       "--out", str(out), "--model-name", job["model"], "--json",
                       "--search-iterations", str(self.search_iterations)]

        def registered() -> None:
            ref = self.register(out, job["model"], {**job["tags"], "modelops.job": job["name"]})
            job.update(status="Completed", registered_version=getattr(ref, "version", None))

        self._execute(job, command, "training", registered)

    def _run_drift(self, job: dict[str, Any]) -> None:
        """A drift job: `python -m ml.steps.drift` (what ml/jobs/drift.yml runs on AzureML)."""
        out = self.root / job["name"] / "output"
        command = [self.python, "-m", "ml.steps.drift", "--reference", job["reference"], "--current", job["current"],
                   "--output", str(out), "--model-name", job["model"]]
        if job["config"]:
            command += ["--config", json.dumps(job["config"])]
        if job.get("contract"):
            command += ["--contract", job["contract"]]
        if not job["report"]:
            command.append("--no-report")
        self._execute(job, command, "drift", lambda: self._drift_completed(job, out))

    def _execute(self, job: dict[str, Any], command: list[str], what: str, on_success: Callable[[], None]) -> None:
        """Run a job's subprocess (its output in job.log, its pid recorded for a later owner), then
        `on_success`; any failure is the job's (Failed with the reason), never the platform's."""
        name = job["name"]
        folder = self.root / name
        job.update(status="Running", started=_now())
        self._write(name, job)
        try:
            with open(folder / "job.log", "wb") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           cwd=str(Path(__file__).resolve().parents[3]),
                                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
                with self._lock:
                    self._processes[name] = process
                job["pid"] = process.pid
                self._write(name, job)
                code = process.wait()
            if code != 0:
                raise PlatformError(f"{what} exited with code {code}; see {folder / 'job.log'}")
            on_success()
        except Exception as exc:  # the job failed; the platform did not
            job.update(status="Failed", error=str(exc)[:1000])
        finally:
            job["finished"] = _now()
            self._write(name, job)
            with self._lock:
                self._processes.pop(name, None)

    def _drift_completed(self, job: dict[str, Any], out: Path) -> None:
        """What the AzureML job's output binding does (files into the store), plus the records as logs."""
        prefix = job["output_prefix"]
        result = (out / "result.json").read_bytes()
        self.store.put(f"{prefix}/result.json", result)
        report_key = ""
        if (out / "report.html").exists():
            report_key = f"{prefix}/report.html"
            self.store.put(report_key, (out / "report.html").read_bytes())
        payload = json.loads(result)
        for record in payload.get("records") or []:  # the scenario's KQL reads these from traces
            drift_logger.info(json.dumps(record, separators=(",", ":")))
        job.update(status="Completed", result_key=f"{prefix}/result.json", report_key=report_key,
                   drift_status=payload.get("status"), dataset_drift=payload.get("dataset_drift"))
        log_event(drift_logger, "drift_job_completed", job=job["name"], model=job["model"],
                  drift_status=payload.get("status"), dataset_drift=payload.get("dataset_drift"),
                  result_key=job["result_key"], report_key=report_key)

    def _write(self, name: str, job: dict[str, Any]) -> None:
        path = self.root / name / "job.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(job, indent=2))
        os.replace(tmp, path)


def _is_job_process(pid: int) -> bool:
    from functions.adapters.local.ownership import runs

    return runs(pid, b"functions.cli.main", b"ml.steps.drift")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
