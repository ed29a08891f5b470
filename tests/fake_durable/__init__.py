"""A fake of the Durable Functions extension's HTTP API on loopback (the RPC endpoint a Python
worker's DurableOrchestrationClient calls), so the Function App's routes run with a REAL
`df.DurableOrchestrationClient(binding_json)` and what they ask of Durable is asserted on the wire.

What it was checked against:
* Microsoft's "HTTP API reference" for Durable Functions
  (learn.microsoft.com/azure/azure-functions/durable-functions/durable-functions-http-api):
  start — POST …/orchestrators/{functionName}[/{instanceId}] → 202 with the instance's id and
  management URLs; status — GET …/instances/{instanceId} → 200 completed, 202 running/pending,
  400 failed/terminated, 404 unknown; raise event — POST …/instances/{id}/raiseEvent/{eventName}
  → 202 accepted, 404 unknown, 410 completed or failed;
* the client, azure-functions-durable (.venv, models/DurableOrchestrationClient.py): it builds every
  URL from the binding JSON's `rpcBaseUrl` (`{rpcBaseUrl}orchestrators/{name}/{id}`,
  `{rpcBaseUrl}instances/{id}/raiseEvent/{event}`, RpcManagementOptions.to_url →
  `{rpcBaseUrl}instances/{id}?…`), reads `id` from the start answer, maps raise-event 202/404/410
  and status 200/202/400/404/500 as above; models/DurableOrchestrationBindings.py takes
  `taskHubName`, `creationUrls`, `managementUrls`, `rpcBaseUrl`; models/utils/http_utils.py
  posts with aiohttp `json=` a body the client has already JSON-encoded (so the wire body is a JSON
  string holding JSON — the extension decodes it; so does this fake).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

PREFIX = "/runtime/webhooks/durabletask/"


@dataclass
class Instance:
    name: str
    input: Any
    status: str = "Running"  # Running | Pending | Completed | Failed | Terminated
    events: list[tuple[str, Any]] = field(default_factory=list)


class FakeDurableHost:
    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, decoded body)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def rpc_base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{PREFIX}"

    def binding(self) -> str:
        """The client binding JSON the Functions host hands a `durable_client_input` parameter."""
        base = self.rpc_base_url
        return json.dumps({
            "taskHubName": "modelops", "rpcBaseUrl": base, "requiredQueryStringParameters": "code=systemkey",
            "creationUrls": {"createNewInstancePostUri": f"{base}orchestrators/{{functionName}}[/{{instanceId}}]"},
            "managementUrls": {"id": "INSTANCEID", "statusQueryGetUri": f"{base}instances/INSTANCEID",
                               "sendEventPostUri": f"{base}instances/INSTANCEID/raiseEvent/{{eventName}}"},
        })

    def __enter__(self) -> "FakeDurableHost":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def events(self, instance_id: str) -> list[tuple[str, Any]]:
        return list(self.instances[instance_id].events) if instance_id in self.instances else []

    def _handler(self) -> type:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> Any:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not raw:
                    return None
                data = json.loads(raw)
                return json.loads(data) if isinstance(data, str) else data  # the client's double encoding

            def _send(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                path = unquote(urlsplit(self.path).path)
                host.requests.append(("GET", path, None))
                if not path.startswith(PREFIX + "instances/"):
                    return self._send(404)
                instance = host.instances.get(path[len(PREFIX + "instances/"):])
                if instance is None:
                    return self._send(404)
                iid = path[len(PREFIX + "instances/"):]
                body = {"name": instance.name, "instanceId": iid, "runtimeStatus": instance.status,
                        "input": instance.input, "customStatus": None, "output": None,
                        "createdTime": "2026-12-01T20:00:00Z", "lastUpdatedTime": "2026-12-01T20:00:01Z"}
                code = {"Completed": 200, "Failed": 400, "Terminated": 400}.get(instance.status, 202)
                self._send(code, body)

            def do_POST(self) -> None:  # noqa: N802
                path = unquote(urlsplit(self.path).path)
                body = self._body()
                host.requests.append(("POST", path, body))
                rest = path[len(PREFIX):] if path.startswith(PREFIX) else ""
                parts = rest.split("/")
                if parts[0] == "orchestrators" and len(parts) in (2, 3):
                    iid = parts[2] if len(parts) == 3 else f"generated-{len(host.instances)}"
                    host.instances[iid] = Instance(parts[1], body)
                    base = host.rpc_base_url
                    return self._send(202, {"id": iid, "statusQueryGetUri": f"{base}instances/{iid}",
                                            "sendEventPostUri": f"{base}instances/{iid}/raiseEvent/{{eventName}}"})
                if parts[0] == "instances" and len(parts) == 4 and parts[2] == "raiseEvent":
                    instance = host.instances.get(parts[1])
                    if instance is None:
                        return self._send(404)
                    if instance.status not in ("Running", "Pending"):
                        return self._send(410)
                    instance.events.append((parts[3], body))
                    return self._send(202)
                self._send(404)

        return Handler
