"""Live traffic for the local platform: a few client threads posting single-row requests at a
target rate through an endpoint's front door, recording every answer (status, serving deployment,
latency). The demo and the rollout tests use it to show that a rollout loses no request."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Observed:
    """One request as the client saw it."""

    at: float
    status: int
    deployment: str
    latency_ms: float


@dataclass
class LoadGenerator:
    target: Callable[[], tuple[str, str]]  # () -> (scoring_uri, key): re-read, the endpoint may move
    rows: list[dict[str, Any]]
    rate: float = 25.0  # requests per second, all threads together
    threads: int = 4
    max_seconds: float = 900.0  # bounded: the generator stops by itself
    answers: list[Observed] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "LoadGenerator":
        self._stop.clear()
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)
        self._workers.clear()

    def __enter__(self) -> "LoadGenerator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, index: int) -> None:
        import requests

        interval = self.threads / self.rate
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic() + index * interval / self.threads
        i = index
        with requests.Session() as session:
            while not self._stop.is_set() and time.monotonic() < deadline:
                uri, key = self.target()
                body = json.dumps({"data": [self.rows[i % len(self.rows)]]})
                i += self.threads
                started = time.perf_counter()
                try:
                    response = session.post(uri, data=body, timeout=30, headers={
                        "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
                    status, deployment = response.status_code, response.headers.get("azureml-model-deployment", "")
                except Exception:
                    status, deployment = 0, ""  # connection-level failure counts as failed
                answer = Observed(time.time(), status, deployment, (time.perf_counter() - started) * 1000)
                with self._lock:
                    self.answers.append(answer)
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.monotonic()

    def summary(self) -> dict[str, Any]:
        with self._lock:
            answers = list(self.answers)
        if not answers:
            return {"requests": 0, "failed": 0, "rate": 0.0, "by_deployment": {}, "failed_by_deployment": {}}
        span = max(a.at for a in answers) - min(a.at for a in answers)
        failed = [a for a in answers if a.status != 200]
        return {
            "requests": len(answers),
            "failed": len(failed),
            "rate": round(len(answers) / span, 1) if span > 0 else float(len(answers)),
            "by_deployment": dict(Counter(a.deployment for a in answers)),
            "failed_by_deployment": dict(Counter(a.deployment or "(none)" for a in failed)),
            "statuses": dict(Counter(a.status for a in answers)),
        }
