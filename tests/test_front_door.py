"""The front door against stub backends (stdlib HTTP servers): fast, no serving environment.

What needs a stub rather than a real inference server: unreachable and slow deployments, stale
kept-alive connections, exact draining, and routing statistics over thousands of requests.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from functions.adapters.local.front_door import DEPLOYMENT_HEADER, Fault, FrontDoor
from functions.adapters.local.inference_server import free_port
from functions.adapters.local.traffic_log import LocalTrafficLog, TrafficLogWriter, traffic_log_path

pytestmark = pytest.mark.integration  # local HTTP servers
KEY = "secret-key"


HANG_GUARD = 60.0  # seconds: only for something that never happens, never a figure under test


class Stub:
    """A backend that echoes what it received; `delay` slows it, `hold` (an Event) keeps every
    request waiting until the test sets it (so "in flight" is a state the test controls, not a
    race against a sleep), `keep_alive` makes it HTTP/1.1 with a short idle timeout (it closes idle
    connections, like a real server would; `closed` counts the connections it has closed)."""

    def __init__(self, delay: float = 0.0, keep_alive: bool = False, hold: threading.Event | None = None) -> None:
        stub = self
        self.delay = delay
        self.hold = hold
        self.seen: list[dict] = []
        self.connections = 0
        self.closed = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
            # idle timeout: long enough that the test's back-to-back calls reuse the connection on a
            # loaded machine, short enough to wait for (the test waits for the close, not a sleep)
            timeout = 1.0 if keep_alive else None

            def setup(self) -> None:
                super().setup()
                stub.connections += 1

            def finish(self) -> None:
                super().finish()
                stub.closed += 1

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.seen.append({"body": body, "request_id": self.headers.get("x-request-id"),
                                  "auth": self.headers.get("Authorization")})
                time.sleep(stub.delay)
                if stub.hold is not None:
                    stub.hold.wait(HANG_GUARD)
                payload = json.dumps({"echo": body.decode()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def door(tmp_path, request):
    # A generous upstream timeout unless a test asks for a short one (indirect parametrization):
    # a request held by a stub must not turn into a 504 on a slow machine.
    log = TrafficLogWriter(traffic_log_path(tmp_path, "ep"))
    front = FrontDoor("ep", KEY, log, upstream_timeout=getattr(request, "param", HANG_GUARD)).start()
    yield front
    front.close()
    log.close()


@pytest.fixture()
def stubs():
    made: list[Stub] = []

    def make(**kwargs) -> Stub:
        made.append(Stub(**kwargs))
        return made[-1]

    yield make
    for stub in made:
        stub.close()


def call(door: FrontDoor, body: bytes = b'{"data": [1]}', session=None, key: str = KEY, **headers: str):
    sent = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
            **{k.replace("_", "-"): v for k, v in headers.items()}}
    return (session or requests).post(door.scoring_uri, data=body, headers=sent, timeout=HANG_GUARD)


def records(tmp_path) -> list[dict]:
    return [json.loads(line) for line in traffic_log_path(tmp_path, "ep").read_text().splitlines()]


def test_forwards_the_body_and_relays_the_answer(door, stubs, tmp_path):
    stub = stubs()
    door.add_backend("blue", stub.port)
    door.set_weights({"blue": 100})
    response = call(door, b'{"data": [42]}', x_request_id="abc")
    assert response.status_code == 200 and response.json() == {"echo": '{"data": [42]}'}
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers[DEPLOYMENT_HEADER] == "blue" and response.headers["x-request-id"] == "abc"
    assert stub.seen == [{"body": b'{"data": [42]}', "request_id": "abc", "auth": None}]  # the key stays here
    [record] = records(tmp_path)
    assert record["deployment"] == "blue" and record["status"] == 200 and record["routed_by"] == "traffic"
    assert record["duration_ms"] > 0 and "error" not in record


def test_auth_paths_and_bodies_are_checked_first(door, stubs, tmp_path):
    door.add_backend("blue", stubs().port)
    door.set_weights({"blue": 100})
    assert call(door, key="nope").status_code == 401
    assert requests.post(door.scoring_uri, data=b"{}", timeout=5).status_code == 401
    assert requests.post(door.scoring_uri.replace("/score", "/other"), timeout=5,
                         headers={"Authorization": f"Bearer {KEY}"}).status_code == 404
    assert requests.get(door.scoring_uri.replace("/score", "/"), timeout=5).status_code == 200
    assert requests.get(door.scoring_uri, timeout=5).status_code == 405
    chunked = requests.post(door.scoring_uri, data=iter([b"{}"]), timeout=5,
                            headers={"Authorization": f"Bearer {KEY}"})
    assert chunked.status_code == 411
    assert [r["status"] for r in records(tmp_path)] == [401, 401, 404]
    assert {r["deployment"] for r in records(tmp_path)} == {None}


def test_pinned_routing_knows_pending_and_unknown_deployments(door, stubs):
    door.add_backend("blue", stubs().port)
    door.declare("green")
    door.set_weights({"blue": 0, "green": 0})
    assert call(door).status_code == 503
    assert call(door, azureml_model_deployment="blue").headers[DEPLOYMENT_HEADER] == "blue"
    assert call(door, azureml_model_deployment="green").json() == {"error": "deployment green is not ready"}
    assert call(door, azureml_model_deployment="nope").status_code == 404


def test_weighted_choice_follows_weights_and_skips_zero(door, stubs):
    for name in ("a", "b", "c"):
        door.add_backend(name, stubs().port)
    door.set_weights({"a": 70, "b": 30, "c": 0})
    counts = {"a": 0, "b": 0, "c": 0}
    with requests.Session() as session:
        for _ in range(1000):
            counts[call(door, session=session).headers[DEPLOYMENT_HEADER]] += 1
    assert counts["c"] == 0 and abs(counts["b"] / 1000 - 0.30) < 0.05, counts  # ±3.4 sd


@pytest.mark.parametrize("door", [1.0], indirect=True)  # a 1 s upstream timeout
def test_unreachable_and_slow_deployments_are_502_and_504(door, stubs, tmp_path):
    release = threading.Event()
    door.add_backend("gone", free_port())  # nothing listens there
    door.add_backend("slow", stubs(hold=release).port)  # answers only once released: after the timeout
    unreachable = call(door, azureml_model_deployment="gone")
    assert unreachable.status_code == 502 and "unreachable" in unreachable.json()["error"]
    try:
        slow = call(door, azureml_model_deployment="slow")
    finally:
        release.set()
    assert slow.status_code == 504 and slow.headers[DEPLOYMENT_HEADER] == "slow"
    assert [(r["deployment"], r["status"], r["error"]) for r in records(tmp_path)] == [
        ("gone", 502, "upstream_unreachable"), ("slow", 504, "upstream_timeout")]
    stats = LocalTrafficLog(tmp_path).stats("ep", "gone", datetime(2000, 1, 1), datetime.now(timezone.utc))
    assert (stats.requests, stats.errors) == (1, 1)


def test_a_kept_alive_connection_the_backend_closed_is_retried(door, stubs):
    stub = stubs(keep_alive=True)
    door.add_backend("blue", stub.port)
    door.set_weights({"blue": 100})
    assert call(door).status_code == 200
    wait_until(lambda: stub.closed == 1, "the stub to drop the idle pooled connection")
    assert [call(door).status_code for _ in range(3)] == [200, 200, 200]
    assert stub.connections == 2  # one reconnect, then the new connection is reused


def test_faults_abort_or_delay_requests_of_one_deployment(door, stubs, tmp_path):
    door.add_backend("blue", stubs().port)
    door.add_backend("green", stubs().port)
    door.inject_fault("blue", Fault(error_rate=1.0, status=500))
    door.inject_fault("green", Fault(delay_ms=200))
    aborted = call(door, azureml_model_deployment="blue")
    assert aborted.status_code == 500 and "injected" in aborted.json()["error"]
    started = time.perf_counter()
    assert call(door, azureml_model_deployment="green").status_code == 200
    assert time.perf_counter() - started >= 0.2  # a lower bound: the delay happened (slowness only adds)
    door.clear_faults("blue")
    assert call(door, azureml_model_deployment="blue").status_code == 200
    assert [r.get("error") for r in records(tmp_path)] == ["fault_injected", None, None]


def test_drain_waits_for_requests_in_flight_after_removal(door, stubs):
    """Proved by ordering, not by seconds: the stub holds three requests until the test releases
    them; while held, a removed backend cannot drain; drain returns only after the release."""
    release = threading.Event()
    door.add_backend("blue", stubs(hold=release).port)
    door.set_weights({"blue": 100})
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(call(door).status_code)) for _ in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: door.inflight("blue") == 3, "three requests in flight")
    door.set_weights({"blue": 0})
    backend = door.remove("blue")
    assert call(door).status_code == 503  # no new request reaches it
    assert backend.inflight == 3
    assert door.drain(backend, timeout=0.05) is False  # held: it cannot be drained yet

    events: list[str] = []
    drained: list[bool] = []

    def drain() -> None:
        drained.append(door.drain(backend, timeout=HANG_GUARD))
        events.append("drained")

    drainer = threading.Thread(target=drain)
    drainer.start()
    assert backend.inflight == 3 and answers == []  # still waiting on the held requests
    events.append("released")
    release.set()
    drainer.join(HANG_GUARD)
    for t in threads:
        t.join(HANG_GUARD)
    assert events == ["released", "drained"] and drained == [True]
    assert backend.inflight == 0
    assert answers == [200, 200, 200]  # every request routed before the removal got its answer


def test_drain_gives_up_after_its_timeout(door, stubs):
    release = threading.Event()
    door.add_backend("blue", stubs(hold=release).port)
    answers: list[int] = []
    worker = threading.Thread(target=lambda: answers.append(call(door, azureml_model_deployment="blue").status_code))
    worker.start()
    wait_until(lambda: door.inflight("blue") == 1, "one request in flight")
    backend = door.remove("blue")
    assert door.drain(backend, timeout=0.1) is False  # the request is held: the timeout is all it can end on
    release.set()
    worker.join(HANG_GUARD)
    assert answers == [200] and backend.inflight == 0


def wait_until(predicate, what: str) -> None:
    """Poll until `predicate()`; the deadline is a hang guard (the condition never came), not a figure."""
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_close_cuts_kept_alive_clients(tmp_path, stubs):
    log = TrafficLogWriter(traffic_log_path(tmp_path, "ep"))
    door = FrontDoor("ep", KEY, log).start()
    door.add_backend("blue", stubs().port)
    door.set_weights({"blue": 100})
    session = requests.Session()
    assert call(door, session=session).status_code == 200  # a kept-alive connection
    door.close()
    door.close()
    with pytest.raises(requests.ConnectionError):
        call(door, session=session)
    log.close()
