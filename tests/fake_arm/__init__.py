"""A fake Azure Resource Manager / AzureML service, served to the real azure-ai-ml SDK as a
`requests` transport adapter.

Mount it on a `requests.Session`, wrap the session in azure-core's `RequestsTransport` and pass
that to `MLClient(..., transport=...)`: every REST call the SDK makes through its pipelines lands
in `FakeAzureML.send`, which answers from in-memory state and records the request (method, URL,
api-version, JSON body) for assertions. Nothing leaves the process.

The parts (each module's docstring lists its routes and what it enforces):

    transport.py   the `requests` adapter: the entry point, recorded calls, injected failures
    service.py     `FakeAzureML`: the workspace and the routing over the parts below
    endpoints.py   online endpoints and their deployments (traffic rules, keys, scoring URIs)
    diagnostics.py the endpoints' diagnostic settings (Microsoft.Insights), 403 for denied actions
    assets.py      workspace models and data assets, the registry (discovery, models, import)
    components.py  registered components (workspace and registry versions, "latest")
    storage.py     datastores (+ listSecrets) and the registry's SAS references: where model files are
    jobs.py        jobs (create, update, list)
    operations.py  long-running operations (Azure-AsyncOperation / Location polling)
    resources.py   the fake's ids (subscription, workspace, registry ...) and resource bodies

The credential the SDK is given (FakeCredential, fake_jwt) lives in tests/fake_credentials.py.
"""

from tests.fake_arm.operations import OPERATIONS_HOST
from tests.fake_arm.resources import (
    LOCATION,
    PROVIDER,
    REGISTRY,
    REGISTRY_RESOURCE_GROUP,
    REGISTRY_SUBSCRIPTION,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    WORKSPACE_GUID,
)
from tests.fake_arm.service import FakeAzureML
from tests.fake_arm.transport import MFE_PREFIX, Call
from tests.fake_credentials import TENANT

__all__ = [
    "LOCATION",
    "MFE_PREFIX",
    "OPERATIONS_HOST",
    "PROVIDER",
    "REGISTRY",
    "REGISTRY_RESOURCE_GROUP",
    "REGISTRY_SUBSCRIPTION",
    "RESOURCE_GROUP",
    "SUBSCRIPTION",
    "TENANT",
    "WORKSPACE",
    "WORKSPACE_GUID",
    "Call",
    "FakeAzureML",
]
