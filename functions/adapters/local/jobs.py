"""ports.Jobs on the local platform: the training pipeline as a subprocess.

A retraining job trains on the newest labelled data for the model (`modelops train`, the same
code the AzureML pipeline's steps run) in a subprocess, then registers the artifact as the next
version in the local workspace — which emits ModelRegistered, and the rollout starts again.

    <home>/jobs/<name>/job.json     status (Queued | Running | Completed | Failed), times, tags
    <home>/jobs/<name>/job.log      the training subprocess's output
    <home>/data/<model>/labelled/   labelled data; the newest file (by name) is trained on
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from functions.ports import PlatformError

TERMINAL = ("Completed", "Failed", "Canceled")


def labelled_dir(home: Path, model: str) -> Path:
    return Path(home) / "data" / model / "labelled"


class LocalJobs:
    def __init__(self, home: Path, register: Callable[[Path, str, dict[str, str]], Any],
                 search_iterations: int = 2, python: str = sys.executable) -> None:
        self.home = Path(home)
        self.root = self.home / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.register = register
        self.search_iterations = search_iterations
        self.python = python
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._processes: dict[str, subprocess.Popen] = {}

    def submit_retraining(self, job_name: str, model: str, tags: dict[str, str],
                          inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        folder = self.root / job_name
        try:
            folder.mkdir(parents=True)  # atomic: one submission per name
        except FileExistsError:
            existing = self.get_job(job_name)
            if existing is not None:
                return existing
        data = (inputs or {}).get("training_data") or self._newest_labelled(model)
        job = {"name": job_name, "model": model, "status": "Queued", "tags": dict(tags), "training_data": str(data),
               "created": _now(), "log": str(folder / "job.log")}
        self._write(job_name, job)
        thread = threading.Thread(target=self._run, args=(job,), name=f"job-{job_name}", daemon=True)
        with self._lock:
            self._threads[job_name] = thread
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
            if job and job.get("model") == model and job.get("status") not in TERMINAL:
                out.append(job)
        return out

    def wait(self, name: str, timeout: float | None = None) -> dict[str, Any] | None:
        thread = self._threads.get(name)
        if thread is not None:
            thread.join(timeout)
        return self.get_job(name)

    def close(self) -> None:
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            if process.poll() is None:
                process.terminate()

    def _newest_labelled(self, model: str) -> Path:
        files = sorted(p for p in labelled_dir(self.home, model).glob("*") if p.suffix in (".csv", ".parquet"))
        if not files:
            raise PlatformError(f"no labelled data for {model} in {labelled_dir(self.home, model)}")
        return files[-1]

    def _run(self, job: dict[str, Any]) -> None:
        name = job["name"]
        folder = self.root / name
        out = folder / "model"
        job.update(status="Running", started=_now())
        self._write(name, job)
        command = [self.python, "-m", "functions.cli.main", "train", "--data", job["training_data"],
                   "--out", str(out), "--model-name", job["model"], "--json",
                   "--search-iterations", str(self.search_iterations)]
        try:
            with open(folder / "job.log", "wb") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           cwd=str(Path(__file__).resolve().parents[3]),
                                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
                with self._lock:
                    self._processes[name] = process
                code = process.wait()
            if code != 0:
                raise PlatformError(f"training exited with code {code}; see {folder / 'job.log'}")
            ref = self.register(out, job["model"], {**job["tags"], "modelops.job": name})
            job.update(status="Completed", registered_version=getattr(ref, "version", None))
        except Exception as exc:  # the job failed; the platform did not
            job.update(status="Failed", error=str(exc)[:1000])
        finally:
            job["finished"] = _now()
            self._write(name, job)
            with self._lock:
                self._processes.pop(name, None)

    def _write(self, name: str, job: dict[str, Any]) -> None:
        path = self.root / name / "job.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(job, indent=2))
        os.replace(tmp, path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
