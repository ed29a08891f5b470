"""MLClient factory for a workspace and for an AzureML registry.

azure.ai.ml (~0.7 s) and azure.identity are imported inside these functions only: the Function
App's cold start must not pay for them unless an Azure adapter is actually used.

`transport` is injected by tests (an azure-core `RequestsTransport` over a fake session); in Azure
it is left out and the SDK builds its own. Telemetry and progress output are always off: the SDK's
App Insights handler would otherwise ship our calls to Microsoft's telemetry key, and progress bars
are noise in Function logs.
"""

from __future__ import annotations

from typing import Any


def default_credential() -> Any:
    """DefaultAzureCredential: the Function App's managed identity in Azure, az login on a laptop."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def _common_kwargs(transport: Any, extra: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"enable_telemetry": False, "show_progress": False, **extra}
    if transport is not None:
        kwargs["transport"] = transport
    return kwargs


def workspace_client(
    subscription_id: str,
    resource_group: str,
    workspace_name: str,
    *,
    credential: Any = None,
    transport: Any = None,
    **kwargs: Any,
) -> Any:
    """An MLClient scoped to one workspace. Makes no request until an operation is called."""
    from azure.ai.ml import MLClient

    return MLClient(
        credential or default_credential(),
        subscription_id=subscription_id,
        resource_group_name=resource_group,
        workspace_name=workspace_name,
        **_common_kwargs(transport, kwargs),
    )


def registry_client(
    registry_name: str,
    *,
    credential: Any = None,
    transport: Any = None,
    **kwargs: Any,
) -> Any:
    """An MLClient scoped to an AzureML registry.

    Unlike the workspace client, constructing it sends a request: the SDK asks the registry
    discovery service (`GET https://<cloud-region>.api.azureml.ms/registrymanagement/v1.0/
    registries/<name>/discovery`) for the registry's subscription, resource group and regional
    endpoint, so build it lazily (on first promotion), not at import or start-up.
    """
    from azure.ai.ml import MLClient

    return MLClient(
        credential or default_credential(), registry_name=registry_name, **_common_kwargs(transport, kwargs)
    )


def requests_transport(session: Any) -> Any:
    """An azure-core transport over a given `requests.Session` (tests mount a fake on it)."""
    from azure.core.pipeline.transport import RequestsTransport

    return RequestsTransport(session=session, session_owner=False)


PUBLIC_ARM = "https://management.azure.com"


def arm_base_url(ml_client: Any) -> str:
    """The Resource Manager endpoint an MLClient talks to (azure-ai-ml reads it from its cloud's
    metadata: sovereign clouds differ), the public cloud's when it does not say."""
    return str(getattr(ml_client, "_base_url", "") or PUBLIC_ARM).rstrip("/")


def arm_client(credential: Any = None, *, base_url: str = PUBLIC_ARM, transport: Any = None, **kwargs: Any) -> Any:
    """A plain Resource Manager pipeline (azure-mgmt-core, which azure-ai-ml is built on) for the
    few ARM calls no azure-ai-ml operation makes — the endpoints' diagnostic settings
    (Microsoft.Insights): bearer token for `base_url`, azure-core's retries of 408/429/5xx, and the
    same injectable transport as the MLClients (tests route it to the fake ARM). A whole
    azure-mgmt-monitor client would add a package for two requests."""
    from azure.core.pipeline import policies
    from azure.mgmt.core import ARMPipelineClient
    from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy, ARMHttpLoggingPolicy

    base_url = base_url.rstrip("/")
    pipeline = [
        policies.RequestIdPolicy(),
        policies.HeadersPolicy(),
        policies.UserAgentPolicy(sdk_moniker="modelops"),
        policies.RetryPolicy(**{k: v for k, v in kwargs.items() if k.startswith("retry_")}),
        ARMChallengeAuthenticationPolicy(credential or default_credential(), f"{base_url}/.default"),
        policies.ContentDecodePolicy(),
        ARMHttpLoggingPolicy(),
    ]
    extra = {"transport": transport} if transport is not None else {}
    return ARMPipelineClient(base_url, policies=pipeline, **extra)
