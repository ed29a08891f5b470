"""Long-running operations of the fake ARM / AzureML service.

  LRO status      GET     /fake-operations/<id> (Azure-AsyncOperation target: {"status": ...})
                  GET     /fake-results/<id>    (Location target: 202 while running, then 204 with no
                          body — for an import too, as the recorded session assets.py names shows:
                          azure-ai-ml treats a non-empty final body as "not imported" and goes on into
                          its upload path)

Long-running operations: a PUT/DELETE answers "Creating"/"Updating"/"Deleting" with an operation
URL and Retry-After 0.02 s, so azure-core's background poller threads do not sleep 5-30 s (the
initial DELETE answer carries none: the generated client parses that header as an int). The
resource settles (`Succeeded`, or gone for a delete) after `settle_after` status reads of it or its
operation — 1 by default; 0 settles on write; None only on an explicit `settle()` or `finish(op)`.

`on_operation`, when set, is called with each new operation (under the fake's lock: it must only
hand the operation on). The data plane (data_plane.py) uses it with `settle_after=None` to settle a
resource when what it stands for is really up — a deployment when its inference server answers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable

from tests.fake_arm.resources import WORKSPACE_GUID, _registry_model_body
from tests.fake_arm.transport import Call, _error, _Reply

OPERATIONS_HOST = "https://management.azure.com"


@dataclass
class _Operation:
    id: str
    kind: str  # endpoint | deployment | import
    key: tuple
    action: str  # create | update | delete | import
    remaining: int | None
    status: str = "InProgress"
    error: dict | None = None




class Operations:
    """A PUT/DELETE's operation, polled until it settles (part of `FakeAzureML`)."""

    settle_after: int | None
    retry_after: str
    _ops: dict[str, _Operation]
    _seq: itertools.count
    on_operation: Callable[[_Operation], None] | None = None

    def finish(self, op: _Operation) -> bool:
        """Settle one operation now (False when it was superseded, failed or already settled)."""
        with self._lock:
            if op.status != "InProgress":
                return False
            self._finish(op)
            return True

    def settle(self) -> None:
        """Finish every pending operation now."""
        with self._lock:
            for op in list(self._ops.values()):
                if op.status == "InProgress":
                    self._finish(op)

    def _start(self, kind: str, key: tuple, action: str) -> _Operation:
        for op in self._ops.values():  # a newer write supersedes an unfinished one on the same resource
            if op.kind == kind and op.key == key and op.status == "InProgress":
                op.status = "Canceled"
        op = _Operation(f"op-{next(self._seq)}", kind, key, action, self.settle_after)
        self._ops[op.id] = op
        if op.remaining == 0:
            self._finish(op)
        elif self.on_operation is not None:
            self.on_operation(op)
        return op

    def _lro_headers(self, op: _Operation, location: bool = False) -> dict[str, str]:
        url = f"{OPERATIONS_HOST}/fake-operations/{op.id}?api-version=fake"
        headers = {"Azure-AsyncOperation": url, "Retry-After": self.retry_after}
        if location:
            headers["Location"] = f"{OPERATIONS_HOST}/fake-results/{op.id}"
            # The generated delete client parses an initial Retry-After as an int: send none (the
            # poller thread then waits its default interval; nothing here waits for it).
            del headers["Retry-After"]
        return headers

    def _result_headers(self, op: _Operation) -> dict[str, str]:
        return {"Location": f"{OPERATIONS_HOST}/fake-results/{op.id}", "Retry-After": self.retry_after}

    def _tick(self, kind: str, key: tuple) -> None:
        for op in list(self._ops.values()):
            if op.kind == kind and op.key == key:
                self._advance(op)

    def _advance(self, op: _Operation) -> None:
        if op.status != "InProgress" or op.remaining is None:
            return
        op.remaining -= 1
        if op.remaining <= 0:
            self._finish(op)

    def _finish(self, op: _Operation) -> None:
        op.status = "Succeeded"
        if op.kind == "endpoint":
            ep = self.endpoints.get(op.key[0])
            if ep is not None:
                if op.action == "delete":
                    del self.endpoints[op.key[0]]
                    for k in [k for k in self.deployments if k[0] == op.key[0]]:
                        del self.deployments[k]
                else:
                    ep["properties"]["provisioningState"] = "Succeeded"
        elif op.kind == "deployment":
            dep = self.deployments.get(op.key)
            if dep is not None:
                if op.action == "delete":
                    del self.deployments[op.key]
                else:
                    dep["properties"]["provisioningState"] = "Succeeded"
        elif op.kind == "import":
            name, version, source_key = op.key
            source = self.workspace_models[source_key]
            # The service copies the workspace version (artifacts, tags, properties, type and flavors) into
            # the registry. (The fake copies no blobs: a test that downloads the copy puts them there.)
            self.registry_models[(name, version)] = _registry_model_body(
                name, version, dict(source["properties"].get("tags") or {}), self.location,
                description=source["properties"].get("description"),
                model_type=source["properties"].get("modelType") or "custom_model",
                flavors=source["properties"].get("flavors"), container=self.registry_container,
                origin=f"azureml://locations/{self.location}/workspaces/{WORKSPACE_GUID}/models/{source_key[0]}"
                       f"/versions/{source_key[1]}")

    def fail_operation(self, kind: str, key: tuple, message: str = "fake failure") -> None:
        """Make the pending operation on a resource end in Failed (e.g. an image build error)."""
        with self._lock:
            for op in self._ops.values():
                if op.kind == kind and op.key == key and op.status == "InProgress":
                    op.status, op.error = "Failed", {"code": "DeploymentFailed", "message": message}
                    if kind == "deployment" and op.key in self.deployments:
                        self.deployments[op.key]["properties"]["provisioningState"] = "Failed"
                    if kind == "endpoint" and op.key[0] in self.endpoints:
                        self.endpoints[op.key[0]]["properties"]["provisioningState"] = "Failed"

    def _operation_status(self, c: Call, op_id: str) -> None:
        op = self._ops.get(op_id)
        if op is None:
            raise _error(404, "NotFound", f"operation {op_id} not found")
        self._advance(op)
        # As the recorded session has it (tests/payloads/recorded/aml-online-deployment.json): "Updating"
        # while it runs (azure-core reads any non-terminal status as running), a start time, a percentage.
        body: dict[str, Any] = {"id": f"/fake-operations/{op.id}", "name": op.id, "startTime": "2026-01-01T00:00:00+00:00",
                                "percentComplete": 0.0 if op.status == "InProgress" else 100.0,
                                "status": "Updating" if op.status == "InProgress" else op.status}
        if op.error:
            body["error"] = op.error
        raise _Reply(200, body)

    def _operation_result(self, c: Call, op_id: str) -> None:
        op = self._ops.get(op_id)
        if op is None:
            raise _error(404, "NotFound", f"operation {op_id} not found")
        self._advance(op)
        if op.status == "InProgress":
            raise _Reply(202, None, self._result_headers(op))
        if op.status == "Failed":
            raise _Reply(500, {"error": op.error})
        raise _Reply(204, None)
