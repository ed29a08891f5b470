"""Azure Machine Learning adapters (azure-ai-ml): the public surface.

    from functions.adapters.azure.aml import AzureEndpoints, AzureModelRegistry, workspace_client

- `workspace_client(...)` / `registry_client(...)`: MLClient factories (clients.py).
- `AzureEndpoints(ml_client, assets=DeploymentAssets(...))`: ports.Endpoints (aml_endpoints.py).
- `AzureModelRegistry(workspace_client, registry_client, source_workspace_id)`: ports.ModelRegistry
  (aml_registry.py).

Importing this module imports no Azure SDK: azure.ai.ml and azure.identity load on first use.
"""

from functions.adapters.azure.aml_endpoints import NETWORK_ERROR_STATUS, AzureEndpoints, DeploymentAssets
from functions.adapters.azure.aml_registry import (
    AzureModelRegistry,
    model_identity,
    normalize_model_uri,
    registry_model_uri,
    workspace_model_uri,
)
from functions.adapters.azure.clients import default_credential, registry_client, requests_transport, workspace_client
from functions.adapters.azure.errors import azure_errors, to_platform_error

__all__ = [
    "AzureEndpoints",
    "AzureModelRegistry",
    "DeploymentAssets",
    "NETWORK_ERROR_STATUS",
    "azure_errors",
    "default_credential",
    "model_identity",
    "normalize_model_uri",
    "registry_client",
    "registry_model_uri",
    "requests_transport",
    "to_platform_error",
    "workspace_client",
    "workspace_model_uri",
]
