"""The local traffic log: thread-safe appends and per-deployment stats over a time window."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

from functions.adapters.local.traffic_log import (
    TIME_FORMAT,
    LocalTrafficLog,
    TrafficLogWriter,
    percentile,
    traffic_log_path,
)
from functions.ports import TrafficLog

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def line(seconds: float, deployment: str | None, status: int, duration_ms: float) -> dict:
    return {"time": (T0 + timedelta(seconds=seconds)).strftime(TIME_FORMAT), "endpoint": "ep",
            "deployment": deployment, "status": status, "duration_ms": duration_ms, "routed_by": "traffic",
            "request_id": f"r{seconds}"}


def write(tmp_path, records: list[dict], extra: str = "") -> LocalTrafficLog:
    path = traffic_log_path(tmp_path, "ep")
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + extra)
    return LocalTrafficLog(tmp_path)


def test_stats_count_requests_and_5xx_in_a_half_open_window(tmp_path):
    log = write(tmp_path, [
        line(-1, "blue", 500, 99.0),  # before the window
        line(0, "blue", 200, 10.0),  # at start: in
        line(1, "blue", 503, 20.0),
        line(2, "blue", 404, 30.0),  # a 4xx is a request, not an error
        line(3, "green", 500, 40.0),  # another deployment
        line(4, None, 401, 1.0),  # reached no deployment
        line(10, "blue", 500, 50.0),  # at end: out
    ], extra='{"time": "2026-05-01T12:00:05.000000Z", "deploy\n')  # a torn last line is skipped
    assert isinstance(log, TrafficLog)
    stats = log.stats("ep", "blue", T0, T0 + timedelta(seconds=10))
    assert (stats.deployment, stats.requests, stats.errors) == ("blue", 3, 1)
    assert stats.p90_ms == 30.0 and stats.error_rate == 1 / 3
    assert (stats.start, stats.end) == (T0, T0 + timedelta(seconds=10))
    green = log.stats("ep", "green", T0, T0 + timedelta(seconds=10))
    assert (green.requests, green.errors, green.p90_ms) == (1, 1, 40.0)


def test_naive_datetimes_are_utc_and_an_empty_window_has_no_p90(tmp_path):
    log = write(tmp_path, [line(0, "blue", 200, 10.0)])
    naive = T0.replace(tzinfo=None)
    assert log.stats("ep", "blue", naive, naive + timedelta(seconds=1)).requests == 1
    other_zone = T0.astimezone(timezone(timedelta(hours=2)))
    assert log.stats("ep", "blue", other_zone, other_zone + timedelta(seconds=1)).requests == 1
    empty = log.stats("ep", "blue", T0 + timedelta(seconds=1), T0 + timedelta(seconds=2))
    assert (empty.requests, empty.errors, empty.p90_ms, empty.error_rate) == (0, 0, None, 0.0)
    missing = LocalTrafficLog(tmp_path).stats("nope", "blue", T0, T0 + timedelta(days=1))
    assert (missing.requests, missing.p90_ms) == (0, None)


def test_p90_is_nearest_rank():
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([float(v) for v in range(1, 11)], 90) == 9.0
    assert percentile([float(v) for v in range(21, 0, -1)], 90) == 19.0  # ceil(0.9 * 21) = 19th
    assert percentile([float(v) for v in range(1, 101)], 90) == 90.0


def test_concurrent_appends_never_interleave(tmp_path):
    writer = TrafficLogWriter(traffic_log_path(tmp_path, "ep"))

    def append(worker: int) -> None:
        for i in range(300):
            writer.append({**line(i / 1000, f"d{worker}", 200, float(i)), "request_id": "x" * 500})

    threads = [threading.Thread(target=append, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    writer.append(line(0, "late", 200, 1.0))  # after close: dropped, not raised
    lines = traffic_log_path(tmp_path, "ep").read_text().splitlines()
    assert len(lines) == 2400 and all(json.loads(text)["request_id"] == "x" * 500 for text in lines)
    stats = LocalTrafficLog(tmp_path).stats("ep", "d3", T0, T0 + timedelta(seconds=1))
    assert stats.requests == 300
