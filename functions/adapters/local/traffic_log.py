"""The local endpoints' traffic log: one JSON line per request, per endpoint.

It mirrors AzureML's AmlOnlineEndpointTrafficLog table (one row per request the endpoint's front
door handled, with the deployment it went to, the status and the duration). Lines live at
`<home>/endpoints/<endpoint>/traffic.jsonl`:

    {"time": "2026-05-09T07:35:25.123456Z", "endpoint": "credit", "deployment": "blue",
     "status": 200, "duration_ms": 12.3, "routed_by": "traffic", "request_id": "..."}

`deployment` is null for requests that reached no deployment (bad key, unknown deployment, no
traffic). Requests the front door failed itself carry an extra "error" field
(fault_injected | upstream_unreachable | upstream_timeout).

`time` is when the answer was ready, and the line is written before the answer is sent: once a
caller has its response, the line is on disk (a gate that scores and then reads stats sees it).
"""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from functions.ports import TrafficStats

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def traffic_log_path(home: Path, endpoint: str) -> Path:
    return Path(home) / "endpoints" / endpoint / "traffic.jsonl"


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).strftime(TIME_FORMAT)


class TrafficLogWriter:
    """Thread-safe appends of whole lines to one endpoint's traffic log."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8")
        self.dropped = 0  # lines that could not be written

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file.closed:
                return  # the endpoint is shutting down; the request is already answered
            try:
                self._file.write(line)
                self._file.flush()
            except OSError:
                # a full disk must not cost the client its answer; the line is lost, so the canary's
                # window holds fewer requests — which fails its health check closed, never open
                self.dropped += 1

    def close(self) -> None:
        with self._lock:
            self._file.close()


class LocalTrafficLog:
    """ports.TrafficLog over the traffic.jsonl files of one local workspace home."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    def records(self, endpoint: str, start: datetime | None = None, end: datetime | None = None) -> Iterator[dict]:
        """Parsed lines with `start <= time < end` (naive datetimes are taken as UTC). A torn or
        malformed line (a writer killed mid-line) is skipped rather than failing the reader."""
        path = traffic_log_path(self.home, endpoint)
        lo, hi = _utc(start), _utc(end)
        try:
            handle = open(path, encoding="utf-8")
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    when = _parse_time(record["time"])
                except (ValueError, KeyError, TypeError):
                    continue
                if (lo is None or when >= lo) and (hi is None or when < hi):
                    record["time"] = when
                    yield record

    def stats(self, endpoint: str, deployment: str, start: datetime, end: datetime) -> TrafficStats:
        durations: list[float] = []
        errors = client_errors = 0
        for record in self.records(endpoint, start, end):
            if record.get("deployment") != deployment:
                continue
            durations.append(float(record.get("duration_ms", 0.0)))
            status = record.get("status")
            if isinstance(status, int) and status >= 500:
                errors += 1
            elif isinstance(status, int) and 400 <= status < 500:
                client_errors += 1
        return TrafficStats(
            deployment=deployment,
            requests=len(durations),
            errors=errors,
            p90_ms=percentile(durations, 90),
            start=start,
            end=end,
            client_errors=client_errors,
        )


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest observed value with at least q% of values <= it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _parse_time(text: str) -> datetime:
    return _utc(datetime.fromisoformat(text))  # 3.11+ reads the trailing "Z"
