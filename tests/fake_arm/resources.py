"""The fake ARM / AzureML service's ids (subscription, resource groups, workspace, registry) and
the resource bodies shared by its parts."""

from __future__ import annotations

import uuid

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
RESOURCE_GROUP = "rg-modelops"
WORKSPACE = "mlw-staging"
REGISTRY = "mlr-shared"
REGISTRY_SUBSCRIPTION = "00000000-0000-0000-0000-000000000002"
REGISTRY_RESOURCE_GROUP = "rg-registry"
LOCATION = "eastus"
WORKSPACE_GUID = "11111111-2222-3333-4444-555555555555"

PROVIDER = "/providers/Microsoft.MachineLearningServices"


def _ws_prefix(ws: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}{PROVIDER}/workspaces/{ws}"


def _reg_prefix(reg: str) -> str:
    return f"/subscriptions/{REGISTRY_SUBSCRIPTION}/resourceGroups/{REGISTRY_RESOURCE_GROUP}{PROVIDER}/registries/{reg}"


def _registry_model_body(name: str, version: str, tags: dict, location: str, description: str | None = None, *,
                         model_type: str = "custom_model", flavors: dict | None = None,
                         container: str = "", origin: str | None = None) -> dict:
    """A registry model version. Its files sit in the registry's own storage account (the
    `modelUri` is a plain https blob URL, which `models.download` reads through a SAS from
    …/datarefs: see storage.py); `container` is that storage's container; `origin` the workspace
    asset it was imported from (`originAssetId`). Keys as azure-sdk-for-python's recorded session
    of an import has them (tests/payloads/recorded/aml-registry-promote.json)."""
    container = container or uuid.uuid4().hex[:12]
    account = f"{REGISTRY.replace('-', '')}{location}"
    return {
        "id": f"azureml://registries/{REGISTRY}/models/{name}/versions/{version}",
        "name": version, "type": "Microsoft.MachineLearningServices/registries/models/versions",
        "properties": {
            "description": description, "tags": tags, "properties": {}, "isArchived": False, "isAnonymous": False,
            "flavors": dict(flavors or {}), "modelType": model_type,
            "modelUri": f"https://{account}.blob.core.windows.net/{container}/{name}/{version}/",
            "originAssetId": origin, "jobName": None,
        },
        "systemData": _system_data(),
    }


def _version_key(v: str) -> tuple:
    return (0, int(v), "") if v.isdigit() else (1, 0, v)


def _system_data() -> dict:
    return {"createdAt": "2026-01-01T00:00:00Z", "createdBy": "fake", "createdByType": "User",
            "lastModifiedAt": "2026-01-01T00:00:00Z", "lastModifiedBy": "fake", "lastModifiedByType": "User"}
