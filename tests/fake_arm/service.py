"""`FakeAzureML`: the fake ARM / AzureML service, its parts put together (see the package docstring).

  workspace       GET     /subscriptions/S/resourceGroups/G/providers/Microsoft.MachineLearningServices/workspaces/W
"""

from __future__ import annotations

import itertools
import re
import threading
import uuid

from tests.fake_arm.assets import Assets
from tests.fake_arm.components import Components
from tests.fake_arm.diagnostics import DiagnosticSettings
from tests.fake_arm.endpoints import OnlineEndpoints
from tests.fake_arm.jobs import Jobs
from tests.fake_arm.operations import Operations, _Operation
from tests.fake_arm.resources import (
    LOCATION,
    PROVIDER,
    REGISTRY,
    WORKSPACE,
    WORKSPACE_GUID,
    _system_data,
    _ws_prefix,
)
from tests.fake_arm.storage import Storage
from tests.fake_arm.transport import Call, Transport, _error, _Failure, _Reply
from tests.fake_credentials import TENANT


class FakeAzureML(OnlineEndpoints, DiagnosticSettings, Assets, Components, Storage, Jobs, Operations, Transport):
    """In-memory ARM + AzureML registry answering the SDK's REST calls (see the package docstring)."""

    def __init__(self, *, settle_after: int | None = 1, location: str = LOCATION, retry_after: float = 0.02) -> None:
        super().__init__()
        self.settle_after = settle_after
        self.retry_after = str(retry_after)
        self.location = location
        self.calls: list[Call] = []
        self.unhandled: list[Call] = []
        self._lock = threading.RLock()
        self._ops: dict[str, _Operation] = {}
        self._failures: list[_Failure] = []
        self._seq = itertools.count(1)
        self.workspaces: dict[str, dict] = {}
        self.endpoints: dict[str, dict] = {}
        self.deployments: dict[tuple[str, str], dict] = {}
        self.keys: dict[str, dict] = {}
        self.diagnostic_settings: dict[str, dict[str, dict]] = {}
        self.denied_actions: set[str] = set()
        self.workspace_models: dict[tuple[str, str], dict] = {}
        self.registry_models: dict[tuple[str, str], dict] = {}
        self.registries: dict[str, dict] = {}
        self.registry_container = f"{REGISTRY}-{uuid.uuid4().hex[:8]}"  # the registry storage's container
        self.registry_sas: dict[str, str] = {}
        self.datastores: dict[tuple[str, str], dict] = {}
        self.datastore_keys: dict[tuple[str, str], str] = {}
        self.scoring_uris: dict[str, str] = {}
        self.data: dict[tuple[str, str], dict] = {}
        self.jobs: dict[str, dict] = {}  # insertion order = creation order
        self.components: dict[tuple[str | None, str, str], dict] = {}  # (registry or None, name, version)
        self._component_clock = itertools.count(1)
        self.job_page_size: int | None = None
        self.add_workspace(WORKSPACE)
        self.add_registry(REGISTRY)
        self.add_datastore()  # every workspace has its default workspaceblobstore

    # ---------------------------------------------------------------- seeding / inspection

    def add_workspace(self, name: str, guid: str = WORKSPACE_GUID) -> None:
        self.workspaces[name] = {"name": name, "guid": guid}

    def add_registry(self, name: str) -> None:
        self.registries[name] = {"name": name}

    # ---------------------------------------------------------------- routing

    def _route(self, c: Call) -> None:
        p = c.path
        m = re.fullmatch(r"/registrymanagement/v1\.0/registries/([^/]+)/discovery", p)
        if m:
            self._discovery(c, m.group(1))
        m = re.fullmatch(r"/fake-operations/([^/]+)", p)
        if m:
            self._operation_status(c, m.group(1))
        m = re.fullmatch(r"/fake-results/([^/]+)", p)
        if m:
            self._operation_result(c, m.group(1))

        ws = re.fullmatch(rf"/subscriptions/[^/]+/resourceGroups/[^/]+{PROVIDER}/workspaces/([^/]+)(/.*)?", p, re.I)
        if ws:
            if ws.group(1) not in self.workspaces:
                raise _error(404, "ResourceNotFound", f"workspace {ws.group(1)} not found")
            self._workspace_route(c, ws.group(1), ws.group(2) or "")
        reg = re.fullmatch(rf"/subscriptions/[^/]+/resourceGroups/[^/]+{PROVIDER}/registries/([^/]+)(/.*)?", p, re.I)
        if reg:
            if reg.group(1) not in self.registries:
                raise _error(404, "ResourceNotFound", f"registry {reg.group(1)} not found")
            self._registry_route(c, reg.group(1), reg.group(2) or "")

    def _workspace_route(self, c: Call, ws: str, rest: str) -> None:
        if rest == "" and c.method == "GET":
            raise _Reply(200, self._workspace_body(ws))
        self._endpoint_routes(c, rest)
        self._diagnostic_routes(c, rest)
        self._workspace_asset_routes(c, ws, rest)
        self._datastore_routes(c, ws, rest)
        self._component_routes(c, None, rest)
        self._job_routes(c, rest)

    # ---------------------------------------------------------------- workspace

    def _workspace_body(self, ws: str) -> dict:
        return {
            "id": _ws_prefix(ws), "name": ws, "type": "Microsoft.MachineLearningServices/workspaces",
            "location": self.location, "kind": "Default", "tags": {},
            "identity": {"type": "SystemAssigned", "principalId": str(uuid.UUID(int=3)), "tenantId": TENANT},
            "sku": {"name": "Basic", "tier": "Basic"},
            "properties": {
                "workspaceId": self.workspaces[ws]["guid"], "friendlyName": ws, "provisioningState": "Succeeded",
                "discoveryUrl": f"https://{self.location}.api.azureml.ms/discovery",
                "mlFlowTrackingUri": f"azureml://{self.location}.api.azureml.ms/mlflow/v1.0{_ws_prefix(ws)}",
                "publicNetworkAccess": "Enabled", "hbiWorkspace": False,
            },
            "systemData": _system_data(),
        }
