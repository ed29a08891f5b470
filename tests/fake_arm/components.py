"""Registered components in the fake ARM / AzureML service: the workspace's and the registry's.

  ws components   GET     …/workspaces/W/components/N/versions/V
                  GET     …/workspaces/W/components/N/versions (list: `$orderBy` createdtime desc|asc,
                          `$top`; `components.get(name, label="latest")` sends desc with $top=1)
  reg components  GET     …/registries/R/components/N/versions/V, …/registries/R/components/N/versions
                          (the same, on the registry's regional host, api-version 2021-10-01-dataplanepreview)

"latest" is the most recently CREATED version (systemData.createdAt), not the highest number: a
version registered after a higher one is the latest. Unknown names/versions answer 404 UserError.
The container routes (…/components/N) are not served: azure-ai-ml's `components.get` never calls
them (an unexpected call would show in `unhandled`).

Checked against azure-rest-api-specs stable/2025-09-01 examples Workspace/ComponentVersion/get.json,
Workspace/ComponentVersion/list.json, Registry/ComponentVersion/get.json and
Registry/ComponentVersion/list.json (the envelope: `id`, `name` = the version, `type`,
`properties` {description, tags, properties, isAnonymous, componentSpec}, `systemData`; a list is
{"value": [...], "nextLink"} with `$orderBy`/`$top`). The examples leave `componentSpec` opaque; its
content is as the service echoes it in azure-sdk-for-python's recorded sessions
sdk/ml/azure-ai-ml/tests/recordings/component/e2etests/
- test_component.pyTestComponenttest_command_component_get_latest_label.json: a workspace command
  component (booleans come back as the strings "True"/"False", defaults as strings,
  `is_deterministic` "True", `code`/`environment` as asset ids, `resources.instance_count` "1");
  `label="latest"` is `GET …/versions?$orderBy=createdtime desc&$top=1`;
- test_component.pyTestComponenttest_simple_pipeline_component_create.json: a pipeline component's
  spec comes back with its inputs and WITHOUT its `jobs`;
- test_component.pyTestComponenttest_component_create_get_list_from_registry.json: a registry
  version's `id` is `azureml://registries/<R>/components/<N>/versions/<V>` and its `type`
  Microsoft.MachineLearningServices/registries/components/versions.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

from tests.fake_arm.resources import WORKSPACE, _system_data, _ws_prefix
from tests.fake_arm.transport import Call, _error, _Reply

_SCHEMAS = {"pipeline": "https://azuremlschemas.azureedge.net/development/pipelineComponent.schema.json",
            "command": "https://azuremlschemas.azureedge.net/development/commandComponent.schema.json"}


class Components:
    """Workspace and registry component versions (part of `FakeAzureML`)."""

    components: dict[tuple[str | None, str, str], dict]  # (registry or None, name, version) -> body
    _component_clock: Iterator[int]

    def add_component(self, name: str, version: str, *, inputs: dict[str, dict] | None = None,
                      outputs: dict[str, dict] | None = None, component_type: str = "pipeline",
                      registry: str | None = None, tags: dict[str, str] | None = None,
                      description: str | None = None) -> dict:
        """A registered component version, in the workspace or in `registry`. `inputs`/`outputs` as a
        component YAML declares them ({"model_name": {"type": "string"}, "seed": {"type": "integer",
        "default": 42}}); the body holds them as the service echoes them (see the module docstring)."""
        n = next(self._component_clock)  # creation order: what "latest" follows
        created = f"2026-02-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.1234567+00:00"

        def echoed(port: dict) -> dict:
            out = {k: (str(v) if k == "default" else v) for k, v in port.items() if k != "optional"}
            out["optional"] = "True" if port.get("optional") else "False"
            return out

        spec: dict[str, Any] = {
            "name": name, "version": version, "display_name": name,
            "is_deterministic": "False" if component_type == "pipeline" else "True", "type": component_type,
            "tags": dict(tags or {}),
            "inputs": {k: echoed(v) for k, v in (inputs or {}).items()},
            "outputs": copy.deepcopy(outputs or {}),
            "$schema": _SCHEMAS.get(component_type, _SCHEMAS["command"]),
        }
        if description is not None:  # absent, not null, when the component has none
            spec["description"] = description
        if component_type == "command":
            spec.update({"code": f"azureml:{_ws_prefix(WORKSPACE)}/codes/{name}-code/versions/1",
                         "environment": "azureml://registries/azureml/environments/sklearn-1.5/versions/8",
                         "resources": {"instance_count": "1"}, "command": "python -m train"})
        if registry:
            arm = f"azureml://registries/{registry}/components/{name}/versions/{version}"
            kind = "Microsoft.MachineLearningServices/registries/components/versions"
        else:
            arm = f"{_ws_prefix(WORKSPACE)}/components/{name}/versions/{version}"
            kind = "Microsoft.MachineLearningServices/workspaces/components/versions"
        body = {"id": arm, "name": version, "type": kind,
                "properties": {"description": description, "tags": dict(tags or {}), "properties": {},
                               "isArchived": False, "isAnonymous": False, "componentSpec": spec},
                "systemData": {**_system_data(), "createdAt": created, "lastModifiedAt": created}}
        with self._lock:
            self.components[(registry, name, version)] = body
        return copy.deepcopy(body)

    def _component_routes(self, c: Call, registry: str | None, rest: str) -> None:
        where = f"registry {registry}" if registry else "workspace"
        m = re.fullmatch(r"/components/([^/]+)/versions/([^/]+)", rest)
        if m and c.method == "GET":
            body = self.components.get((registry, m.group(1), m.group(2)))
            if body is None:
                raise _error(404, "UserError", f"Could not find component {m.group(1)}:{m.group(2)} in {where}")
            raise _Reply(200, copy.deepcopy(body))
        m = re.fullmatch(r"/components/([^/]+)/versions", rest)
        if m and c.method == "GET":
            items = [v for (reg, name, _), v in self.components.items() if reg == registry and name == m.group(1)]
            order = (c.query.get("$orderBy") or [None])[0]
            if order not in (None, "createdtime desc", "createdtime asc"):
                raise _error(400, "UserError", f"fake: unsupported $orderBy {order!r}")
            if order:
                items.sort(key=lambda v: v["systemData"]["createdAt"], reverse=order.endswith("desc"))
            top = (c.query.get("$top") or [None])[0]
            raise _Reply(200, {"value": copy.deepcopy(items[:int(top)] if top else items)})
