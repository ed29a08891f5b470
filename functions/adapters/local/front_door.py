"""The front door of one local online endpoint: auth, routing, fault injection, traffic log.

AzureML puts a router in front of a managed online endpoint's deployments; this is its local
stand-in, a stdlib ThreadingHTTPServer on 127.0.0.1 serving `POST /score`:

- `Authorization: Bearer <endpoint key>` is required (401 otherwise), as with key auth in AzureML.
- The `azureml-model-deployment` header pins a deployment and bypasses the traffic weights
  (404 when there is no such deployment); otherwise a weighted random choice over the deployments
  with weight > 0 (503 when none has any).
- The body is forwarded to the deployment's inference server; status, body and content type are
  relayed, with `azureml-model-deployment` and `x-request-id` set on the answer.

Routing is a copy-on-write table swapped under a lock. Choosing a deployment and counting the
request as in flight on it happen under that same lock, so once a deployment is removed from the
table no new request can pick it, and `drain()` can wait for the in-flight count to reach zero
before the process is stopped: nothing routed to it is ever cut off.
"""

from __future__ import annotations

import hmac
import http.client
import json
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping
from urllib.parse import urlsplit

from functions.adapters.local.traffic_log import TrafficLogWriter, utc_now_iso

DEPLOYMENT_HEADER = "azureml-model-deployment"
REQUEST_ID_HEADER = "x-request-id"
MAX_BODY_BYTES = 100 * 1024 * 1024  # AzureML's request size limit is ~100 MB too


class Backend:
    """One deployment's inference server, seen from the front door: a small keep-alive pool and
    the in-flight count (guarded by the front door's lock)."""

    def __init__(self, name: str, port: int, timeout: float) -> None:
        self.name = name
        self.port = port
        self.timeout = timeout
        self.inflight = 0
        self._idle: list[http.client.HTTPConnection] = []
        self._pool_lock = threading.Lock()

    def forward(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str, str]:
        """POST /score. Returns (status, body, content type, front-door error kind or "")."""
        for attempt in (0, 1):
            conn, reused = self._acquire()
            try:
                conn.request("POST", "/score", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except TimeoutError:
                conn.close()
                return _error(504, f"deployment {self.name} did not answer in {self.timeout:.0f}s", "upstream_timeout")
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                conn.close()
                # A kept-alive connection the server closed while idle: retry once on a new one.
                if reused and attempt == 0 and isinstance(exc, (ConnectionError, http.client.RemoteDisconnected)):
                    continue
                return _error(502, f"deployment {self.name} is unreachable: {type(exc).__name__}: {exc}",
                              "upstream_unreachable")
            content_type = response.getheader("Content-Type", "application/json")
            if response.will_close:
                conn.close()  # gunicorn's sync worker (azmlinfsrv's) closes after every answer
            else:
                self._release(conn)
            return response.status, data, content_type, ""
        raise AssertionError("unreachable")

    def _acquire(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._pool_lock:
            if self._idle:
                return self._idle.pop(), True
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout), False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._pool_lock:
            self._idle.append(conn)

    def close_idle(self) -> None:
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


@dataclass(frozen=True)
class Fault:
    error_rate: float = 0.0
    status: int = 500
    delay_ms: float = 0.0


@dataclass(frozen=True)
class _Routes:
    """An immutable routing table; replaced as a whole, never edited."""

    backends: Mapping[str, Backend] = field(default_factory=dict)  # ready deployments
    pending: frozenset[str] = frozenset()  # known deployments that cannot serve yet
    names: tuple[str, ...] = ()  # candidates of traffic routing (weight > 0)
    cumulative: tuple[int, ...] = ()  # running sum of their weights

    def pick(self, rng: random.Random) -> Backend | None:
        if not self.names:
            return None
        point = rng.randrange(self.cumulative[-1])
        for name, upper in zip(self.names, self.cumulative):
            if point < upper:
                return self.backends[name]
        return self.backends[self.names[-1]]


class FrontDoor:
    def __init__(self, endpoint: str, key: str, log: TrafficLogWriter, *, port: int = 0,
                 upstream_timeout: float = 90.0) -> None:
        self.endpoint = endpoint
        self._key = key.encode()
        self._log = log
        self._upstream_timeout = upstream_timeout
        self._lock = threading.Condition()
        self._routes = _Routes()
        self._weights: dict[str, int] = {}
        self._faults: dict[str, Fault] = {}
        self._rng = random.Random()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.door = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"front-door-{endpoint}", daemon=True)
        self._closed = False

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def scoring_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/score"

    def start(self) -> "FrontDoor":
        self._thread.start()
        return self

    # -- routing table ----------------------------------------------------------------------

    def declare(self, name: str) -> None:
        """A deployment exists but cannot serve yet (header routing answers 503, not 404)."""
        with self._lock:
            r = self._routes
            self._routes = _Routes(r.backends, r.pending | {name}, r.names, r.cumulative)

    def add_backend(self, name: str, port: int) -> None:
        with self._lock:
            r = self._routes
            backends = {**r.backends, name: Backend(name, port, self._upstream_timeout)}
            self._routes = self._table(backends, r.pending - {name}, self._weights)

    def remove(self, name: str) -> Backend | None:
        """Take a deployment out of routing (no new request can reach it); returns its backend
        for `drain`."""
        with self._lock:
            r = self._routes
            backend = r.backends.get(name)
            backends = {k: v for k, v in r.backends.items() if k != name}
            self._weights.pop(name, None)
            self._routes = self._table(backends, r.pending - {name}, self._weights)
            return backend

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Atomic swap: a request already routed keeps its choice, the next one sees the new map."""
        with self._lock:
            self._weights = dict(weights)
            r = self._routes
            self._routes = self._table(r.backends, r.pending, self._weights)

    @staticmethod
    def _table(backends: Mapping[str, Backend], pending: frozenset[str], weights: Mapping[str, int]) -> _Routes:
        names, cumulative, total = [], [], 0
        for name in sorted(weights):
            weight = weights[name]
            if weight > 0 and name in backends:
                total += weight
                names.append(name)
                cumulative.append(total)
        return _Routes(dict(backends), frozenset(pending), tuple(names), tuple(cumulative))

    def inflight(self, name: str) -> int:
        with self._lock:
            backend = self._routes.backends.get(name)
            return backend.inflight if backend else 0

    def drain(self, backend: Backend, timeout: float) -> bool:
        """Wait until no request is in flight on a removed backend. False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while backend.inflight > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        backend.close_idle()
        return True

    # -- faults -----------------------------------------------------------------------------

    def inject_fault(self, deployment: str, fault: Fault) -> None:
        with self._lock:
            self._faults = {**self._faults, deployment: fault}

    def clear_faults(self, deployment: str | None = None) -> None:
        with self._lock:
            self._faults = {} if deployment is None else {k: v for k, v in self._faults.items() if k != deployment}

    # -- requests ---------------------------------------------------------------------------

    def handle(self, request: "_Handler") -> None:
        started = time.perf_counter()
        request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        body = request.read_body()
        if body is None:
            return  # answered already (411/413)
        record: dict[str, Any] = {"deployment": None, "routed_by": None}
        try:
            status, payload, content_type = self._serve(request, body, request_id, record)
        except Exception as exc:  # a bug here must still answer (and be logged), not drop the connection
            record["error"] = "front_door"
            status, payload, content_type = _json(500, {"error": f"front door failure: {type(exc).__name__}: {exc}"})
        finally:
            backend = record.pop("_backend", None)
            if backend is not None:
                with self._lock:
                    backend.inflight -= 1
                    if backend.inflight == 0:
                        self._lock.notify_all()
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        entry = {"time": utc_now_iso(), "endpoint": self.endpoint, "deployment": record["deployment"],
                 "status": status, "duration_ms": duration_ms, "routed_by": record["routed_by"],
                 "request_id": request_id}
        if record.get("error"):
            entry["error"] = record["error"]
        self._log.append(entry)  # before answering: a caller that has its answer finds the line
        headers = {REQUEST_ID_HEADER: request_id}
        if record["deployment"]:
            headers[DEPLOYMENT_HEADER] = record["deployment"]
        request.answer(status, payload, content_type, headers)

    def _serve(self, request: "_Handler", body: bytes, request_id: str, record: dict) -> tuple[int, bytes, str]:
        if urlsplit(request.path).path.rstrip("/") != "/score":
            return _json(404, {"error": f"no route {request.path}; POST /score"})
        if not self._authorized(request.headers.get("Authorization", "")):
            return _json(401, {"error": "missing or invalid key: send Authorization: Bearer <endpoint key>"})
        pinned = (request.headers.get(DEPLOYMENT_HEADER) or "").strip()
        with self._lock:
            routes = self._routes
            if pinned:
                backend = routes.backends.get(pinned)
                if backend is None:
                    if pinned in routes.pending:
                        return _json(503, {"error": f"deployment {pinned} is not ready"})
                    return _json(404, {"error": f"deployment {pinned} not found on endpoint {self.endpoint}"})
            else:
                backend = routes.pick(self._rng)
                if backend is None:
                    return _json(503, {"error": "no deployment receives traffic"})
            backend.inflight += 1
            fault = self._faults.get(backend.name)
            roll = self._rng.random()
        record.update(_backend=backend, deployment=backend.name, routed_by="header" if pinned else "traffic")
        if fault is not None:
            if roll < fault.error_rate:
                record["error"] = "fault_injected"
                return _json(fault.status, {"error": f"injected fault on deployment {backend.name}",
                                            "request_id": request_id})
            if fault.delay_ms > 0:
                time.sleep(fault.delay_ms / 1000)
        upstream_headers = {
            "Content-Type": request.headers.get("Content-Type", "application/json"),
            REQUEST_ID_HEADER: request_id,
        }
        status, payload, content_type, error = backend.forward(body, upstream_headers)
        if error:
            record["error"] = error
        return status, payload, content_type

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._key)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        with self._lock:
            backends = list(self._routes.backends.values())
        for backend in backends:
            backend.close_idle()


def _json(status: int, payload: dict) -> tuple[int, bytes, str]:
    return status, json.dumps(payload).encode(), "application/json"


def _error(status: int, message: str, kind: str) -> tuple[int, bytes, str, str]:
    return status, json.dumps({"error": message}).encode(), "application/json", kind


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # the default of 5 resets connections under a burst of new clients
    door: FrontDoor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # a client that went away mid-answer (a load generator stopping): nothing to report
        super().handle_error(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Kept-alive client connections outlive shutdown(): cut them so their threads end."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for clients that reuse connections
    server_version = "modelops-local-endpoint"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are dropped after this
    # Headers and body as one segment: two small writes + Nagle + the client's delayed ACK cost
    # ~40 ms per answer. handle_one_request() flushes after each request.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        self.server.door.handle(self)

    def do_GET(self) -> None:  # noqa: N802
        if urlsplit(self.path).path in ("", "/"):
            self.answer(200, b'{"status":"ok"}', "application/json", {})  # liveness of the front door
        else:
            self.answer(405 if urlsplit(self.path).path.rstrip("/") == "/score" else 404,
                        b'{"error":"POST /score"}', "application/json", {})

    def read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self.close_connection = True
                self.answer(411, b'{"error":"send Content-Length"}', "application/json", {})
                return None
            return b""
        try:
            size = int(length)
        except ValueError:
            size = -1
        if size < 0 or size > MAX_BODY_BYTES:
            self.close_connection = True
            self.answer(413 if size > 0 else 400, b'{"error":"bad Content-Length"}', "application/json", {})
            return None
        return self.rfile.read(size)

    def answer(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing to tell it

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the traffic log records every request
