"""Assets in the fake ARM / AzureML service: the workspace's models and data, and the registry.

  ws models       GET     …/workspaces/W/models/N/versions/V, GET …/models/N/versions (list)
  ws data         GET     …/workspaces/W/data/N (container: latestVersion, what `name@latest` reads),
                  GET     …/workspaces/W/data/N/versions/V
  discovery       GET     https://<region>.api.azureml.ms/registrymanagement/v1.0/registries/R/discovery
  registry models GET|PUT …/registries/R/models/N/versions/V, GET …/registries/R/models/N/versions
                  GET     …/registries/R/models/N (container)
                  PUT     …/registries/R/tempdatarefs/N/versions/V (409 "already exists" for an existing
                          version, which the SDK reads as "nothing to upload"; no uploads otherwise)
  registry import POST    …/registries/R/import: 202, then one of two ways (`import_answer`):
                  "location" (default) as azure-sdk-for-python's recorded session
                  sdk/ml/azure-ai-ml/tests/recordings/model/e2etests/test_model.pyTestModeltest_promote_model.json
                  (@48b79d3) has it — 202 + Location + x-ms-async-operation-timeout, body `null`; the
                  Location answers 202 while it runs, then 204 with no body;
                  "async-operation" as Microsoft's REST docs describe the import — 202 +
                  Azure-AsyncOperation only; the operation answers {"status": "Updating"|"Succeeded", …}
                  and that status body is the LRO's final answer (no Location to GET), which azure-ai-ml
                  reads as "not imported" and goes on into its upload path (see aml_registry.py).
"""

from __future__ import annotations

import copy
import re

from tests.fake_arm.resources import (
    REGISTRY_RESOURCE_GROUP,
    REGISTRY_SUBSCRIPTION,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    WORKSPACE_GUID,
    _reg_prefix,
    _registry_model_body,
    _system_data,
    _version_key,
    _ws_prefix,
)
from tests.fake_arm.transport import Call, _error, _Reply
from tests.fake_credentials import TENANT


class Assets:
    """Workspace models and data assets, registry models and imports (part of `FakeAzureML`)."""

    workspace_models: dict[tuple[str, str], dict]
    registry_models: dict[tuple[str, str], dict]
    registries: dict[str, dict]
    registry_container: str
    data: dict[tuple[str, str], dict]
    import_answer: str = "location"  # or "async-operation": how POST …/import answers (module docstring)

    def add_workspace_model(self, name: str, version: str, *, tags: dict[str, str] | None = None,
                            path: str | None = None, model_type: str = "custom_model",
                            flavors: dict | None = None) -> dict:
        """A workspace model version. `model_type` is what AzureML's `modelType` says on the wire:
        "custom_model" (any folder), "mlflow_model" (an MLflow model folder: AzureML reads its
        MLmodel and reports the flavors, {"<flavor>": {"data": {...}}}), "triton_model"."""
        arm = f"{_ws_prefix(WORKSPACE)}/models/{name}/versions/{version}"
        body = {
            "id": arm, "name": version, "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
            "properties": {
                "description": f"{name} v{version}", "tags": dict(tags or {}), "properties": {},
                "isArchived": False, "isAnonymous": False, "flavors": dict(flavors or {}),
                "modelType": model_type,
                "modelUri": path or (f"azureml://subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}"
                                     f"/workspaces/{WORKSPACE}/datastores/workspaceblobstore"
                                     f"/paths/models/{name}/{version}/"),
                "jobName": f"train-{name}-{version}", "provisioningState": "Succeeded", "stage": "Development",
            },
            "systemData": _system_data(),
        }
        with self._lock:
            self.workspace_models[(name, version)] = body
        return body

    def add_registry_model(self, name: str, version: str, *, tags: dict[str, str] | None = None,
                           model_type: str = "custom_model", flavors: dict | None = None) -> dict:
        body = _registry_model_body(name, version, tags or {}, self.location, model_type=model_type,
                                    flavors=flavors, container=self.registry_container)
        with self._lock:
            self.registry_models[(name, version)] = body
        return body

    def add_data(self, name: str, version: str, *, data_type: str = "uri_file", path: str | None = None) -> dict:
        body = {
            "id": f"{_ws_prefix(WORKSPACE)}/data/{name}/versions/{version}", "name": version,
            "type": "Microsoft.MachineLearningServices/workspaces/data/versions",
            "properties": {"dataType": data_type, "dataUri": path or (
                f"azureml://subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/workspaces/{WORKSPACE}"
                f"/datastores/workspaceblobstore/paths/data/{name}/{version}/data.csv"),
                "tags": {}, "properties": {}, "isArchived": False, "isAnonymous": False},
            "systemData": _system_data(),
        }
        with self._lock:
            self.data[(name, version)] = body
        return body

    def _workspace_asset_routes(self, c: Call, ws: str, rest: str) -> None:
        m = re.fullmatch(r"/models/([^/]+)/versions/([^/]+)", rest)
        if m and c.method == "GET":
            model = self.workspace_models.get((m.group(1), m.group(2)))
            if model is None:
                raise _error(404, "UserError", f"Could not find model {m.group(1)}:{m.group(2)}")
            raise _Reply(200, model)
        m = re.fullmatch(r"/models/([^/]+)/versions", rest)
        if m and c.method == "GET":
            items = [v for k, v in self.workspace_models.items() if k[0] == m.group(1)]
            raise _Reply(200, {"value": items})
        m = re.fullmatch(r"/data/([^/]+)", rest)
        if m and c.method == "GET":
            self._data_container(ws, m.group(1))
        m = re.fullmatch(r"/data/([^/]+)/versions/([^/]+)", rest)
        if m and c.method == "GET":
            data = self.data.get((m.group(1), m.group(2)))
            if data is None:
                raise _error(404, "UserError", f"Could not find data asset {m.group(1)}:{m.group(2)}")
            raise _Reply(200, data)

    def _registry_route(self, c: Call, reg: str, rest: str) -> None:
        m = re.fullmatch(r"/models/([^/]+)/versions/([^/]+)", rest)
        if m and c.method == "GET":
            model = self.registry_models.get((m.group(1), m.group(2)))
            if model is None:
                raise _error(404, "UserError", f"Could not find model {m.group(1)}:{m.group(2)} in registry {reg}")
            raise _Reply(200, model)
        if m and c.method == "PUT":
            self._registry_model_put(c, m.group(1), m.group(2))
        m = re.fullmatch(r"/models/([^/]+)/versions", rest)
        if m and c.method == "GET":
            items = [v for k, v in self.registry_models.items() if k[0] == m.group(1)]
            raise _Reply(200, {"value": items})
        m = re.fullmatch(r"/models/([^/]+)", rest)
        if m and c.method == "GET":
            versions = [k for k in self.registry_models if k[0] == m.group(1)]
            if not versions:
                raise _error(404, "UserError", f"Could not find model container {m.group(1)}")
            latest = max(versions, key=lambda k: _version_key(k[1]))[1]
            raise _Reply(200, {"id": f"{_reg_prefix(reg)}/models/{m.group(1)}", "name": m.group(1),
                               "properties": {"latestVersion": latest, "nextVersion": str(int(latest) + 1)
                                              if latest.isdigit() else None, "tags": {}, "isArchived": False}})
        m = re.fullmatch(r"/tempdatarefs/([^/]+)/versions/([^/]+)", rest)
        if m and c.method == "PUT":
            # Upload location for a new asset version; 409 "already exists" for an existing one (the SDK
            # skips the upload on 409 and goes on to PUT the version).
            if (m.group(1), m.group(2)) in self.registry_models:
                raise _error(409, "Conflict", "Asset already exists")
            raise _error(400, "BadArgument", "fake registry does not accept uploads (no blob storage)")
        if rest == "/import" and c.method == "POST":
            self._registry_import(c, reg)
        self._registry_storage_routes(c, reg, rest)
        self._component_routes(c, reg, rest)

    # ---------------------------------------------------------------- data and jobs

    def _data_container(self, ws: str, name: str) -> None:
        versions = [k[1] for k in self.data if k[0] == name]
        if not versions:
            raise _error(404, "UserError", f"Could not find data asset {name}")
        latest = max(versions, key=_version_key)
        raise _Reply(200, {"id": f"{_ws_prefix(ws)}/data/{name}", "name": name,
                           "type": "Microsoft.MachineLearningServices/workspaces/data",
                           "properties": {"dataType": self.data[(name, latest)]["properties"]["dataType"],
                                          "latestVersion": latest, "isArchived": False, "tags": {}},
                           "systemData": _system_data()})


    # ---------------------------------------------------------------- registry

    def _discovery(self, c: Call, reg: str) -> None:
        if reg not in self.registries:
            raise _error(404, "RegistryNotFound", f"registry {reg} not found")
        raise _Reply(200, {
            "registryName": reg, "tenantId": TENANT, "primaryRegion": self.location, "regions": [self.location],
            "subscriptionId": REGISTRY_SUBSCRIPTION, "resourceGroup": REGISTRY_RESOURCE_GROUP,
            "workspaceName": None,
            "primaryRegionResourceProviderUri": f"https://cert-{self.location}.experiments.azureml.net/",
            "registryFqdns": {self.location: {"api": f"https://{self.location}.api.azureml.ms"}},
        })

    def _registry_import(self, c: Call, reg: str) -> None:
        props = (c.body or {}).get("properties") or {}
        name, version = props.get("destinationName"), props.get("destinationVersion")
        source = props.get("sourceAssetId") or ""
        m = re.fullmatch(r"azureml://locations/([^/]+)/workspaces/([^/]+)/models/([^/]+)/versions/([^/]+)", source)
        if not m:
            raise _error(400, "BadArgument", f"unsupported sourceAssetId {source!r}")
        source_key = (m.group(3), m.group(4))
        if m.group(2) != WORKSPACE_GUID or source_key not in self.workspace_models:
            raise _error(404, "UserError", f"source asset {source} not found")
        if (name, version) in self.registry_models:
            raise _error(409, "Conflict", f"model {name}:{version} already exists in registry {reg}")
        op = self._start("import", (name, version, source_key), "import")
        if self.import_answer == "async-operation":
            raise _Reply(202, None, {"Azure-AsyncOperation": self._lro_headers(op)["Azure-AsyncOperation"],
                                     "Retry-After": self.retry_after})
        if self.import_answer != "location":
            raise ValueError(f"import_answer must be 'location' or 'async-operation', not {self.import_answer!r}")
        raise _Reply(202, b"null", {**self._result_headers(op), "x-ms-async-operation-timeout": "PT1H"})

    def _registry_model_put(self, c: Call, name: str, version: str) -> None:
        body = c.body if isinstance(c.body, dict) else {}
        existing = self.registry_models.get((name, version))
        if existing is None:
            raise _error(400, "BadArgument", "fake registry only supports updating imported model versions")
        props = body.get("properties") or {}
        # Registry versions are immutable except description/tags/stage/properties.
        for field_name in ("description", "tags", "properties", "stage"):
            if field_name in props:
                existing["properties"][field_name] = props[field_name]
        raise _Reply(200, copy.deepcopy(existing))
