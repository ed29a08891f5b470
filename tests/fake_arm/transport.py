"""The fake ARM / AzureML service as a `requests` transport adapter: every REST call the SDK makes
lands in `Transport.send`, is recorded (`calls`) and answered by the routes of `FakeAzureML`
(tests/fake_arm/service.py) or by an injected failure (`fail`).

Routes are matched on the path without host; the registry's regional "MFE" host carries the
prefix /mferp/managementfrontend, which is stripped. Unknown routes answer 404 code FakeNoRoute
and are listed in `unhandled`.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter

MFE_PREFIX = "/mferp/managementfrontend"


# ------------------------------------------------------------------------------------------- records


@dataclass
class Call:
    method: str
    url: str
    host: str
    path: str  # without the MFE prefix
    api_version: str | None
    query: dict[str, list[str]]
    body: Any  # parsed JSON, raw text, or None
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0
    # what the fake answered (for comparing its shapes with recorded sessions: test_recorded_shapes.py)
    response_body: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_write(self) -> bool:
        return self.method in ("PUT", "POST", "PATCH", "DELETE") and not self.path.endswith(("/listKeys", "/token"))

    def __repr__(self) -> str:  # short, for assertion messages
        return f"{self.method} {self.path}?api-version={self.api_version} -> {self.status}"


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern
    status: int
    times: int
    body: dict
    headers: dict[str, str]


class _Reply(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def _error(status: int, code: str, message: str) -> _Reply:
    return _Reply(status, {"error": {"code": code, "message": message}})



class Transport(BaseAdapter):
    """The wiring, the recorded calls and the injected failures of `FakeAzureML` (its state is set
    up in FakeAzureML.__init__; `_route` is FakeAzureML's)."""

    calls: list[Call]
    unhandled: list[Call]
    _lock: threading.RLock
    _failures: list[_Failure]

    # ---------------------------------------------------------------- wiring

    def session(self) -> requests.Session:
        s = requests.Session()
        s.mount("https://", self)
        s.mount("http://", self)
        return s

    def transport(self):
        from azure.core.pipeline.transport import RequestsTransport

        return RequestsTransport(session=self.session(), session_owner=False)

    def close(self) -> None:
        pass

    def fail(self, method: str, path_regex: str, status: int = 503, *, times: int = 1,
             code: str = "ServiceUnavailable", headers: dict[str, str] | None = None) -> None:
        """Answer the next `times` matching requests with `status` (retries count as requests)."""
        with self._lock:
            self._failures.append(_Failure(method.upper(), re.compile(path_regex), status, times,
                                           {"error": {"code": code, "message": f"fake {status}"}}, headers or {}))


    def requests_to(self, method: str | None = None, contains: str = "") -> list[Call]:
        with self._lock:
            return [c for c in self.calls if (method is None or c.method == method) and contains in c.path]

    def writes(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.is_write]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    # ---------------------------------------------------------------- transport entry point

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        parts = urlsplit(request.url)
        path = parts.path
        if path.startswith(MFE_PREFIX):
            path = path[len(MFE_PREFIX):]
        query = parse_qs(parts.query)
        raw = request.body
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        call = Call(request.method or "GET", request.url, parts.netloc, path, (query.get("api-version") or [None])[0],
                    query, body, dict(request.headers))
        with self._lock:
            self.calls.append(call)
            try:
                self._inject_failure(call)
                self._route(call)
                raise _error(404, "FakeNoRoute", f"fake has no route for {call.method} {call.path}")
            except _Reply as reply:
                if isinstance(reply.body, dict) and reply.body.get("error", {}).get("code") == "FakeNoRoute":
                    self.unhandled.append(call)
                call.status = reply.status
                response = self._response(request, reply)
                call.response_body, call.response_headers = reply.body, dict(response.headers)
                return response

    def _inject_failure(self, call: Call) -> None:
        for failure in self._failures:
            if failure.times > 0 and failure.method == call.method and failure.pattern.search(call.path):
                failure.times -= 1
                raise _Reply(failure.status, failure.body, failure.headers)

    def _response(self, request: requests.PreparedRequest, reply: _Reply) -> requests.Response:
        response = requests.Response()
        response.status_code = reply.status
        response.request = request
        response.url = request.url
        response.reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
                           403: "Forbidden", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests",
                           503: "Service Unavailable"}.get(reply.status, "Status")
        # bytes go as they are (e.g. the import's literal `null` body); anything else as JSON
        content = reply.body if isinstance(reply.body, bytes) else \
            b"" if reply.body is None else json.dumps(reply.body).encode()
        headers = {"x-ms-request-id": str(uuid.uuid4()), **reply.headers}
        if content:
            headers["Content-Type"] = "application/json; charset=utf-8"
        headers["Content-Length"] = str(len(content))
        response.headers = requests.structures.CaseInsensitiveDict(headers)
        response._content = content
        response._content_consumed = True
        response.raw = _BytesRaw(content)
        response.encoding = "utf-8"
        return response



class _BytesRaw:
    """Minimal stand-in for urllib3's response, enough for requests/azure-core to stream a body."""

    def __init__(self, content: bytes) -> None:
        self._content = content
        self._read = False

    def read(self, amt: int | None = None, decode_content: bool = True) -> bytes:
        if self._read:
            return b""
        self._read = True
        return self._content

    def stream(self, chunk_size: int = 1024, decode_content: bool = True):
        for i in range(0, len(self._content), chunk_size or len(self._content) or 1):
            yield self._content[i:i + (chunk_size or len(self._content))]

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass

