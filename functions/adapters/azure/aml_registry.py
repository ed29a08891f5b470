"""ports.ModelRegistry on azure-ai-ml: the staging workspace's models and the shared AzureML registry.

Promotion copies a workspace model version into the registry the way `az ml model share` does, but
through a registry-scoped MLClient (`models.share()` builds its own registry client without the
injected transport, so it cannot be tested against a fake and ignores client options):

  1. GET the registry version — present → return it (idempotent; no write).
  2. GET the workspace (once; cached) for its location and GUID, which name the source asset:
     azureml://locations/<location>/workspaces/<guid>/models/<name>/versions/<version>.
  3. registry_client.models.create_or_update(WorkspaceAssetReference(...)). The SDK then sends
     GET registry versions (latest, evaluator check), GET the version (must be 404), and
     POST …/registries/<r>/import {"properties": {"referenceType": "Id", "destinationName",
     "destinationVersion", "sourceAssetId"}} (api-version 2021-10-01-dataplanepreview, on the
     registry's regional host found by discovery). It waits for the import LRO itself — the call
     blocks until the service has copied the artifacts — and then GETs the new version.
  4. The import request has no field for tags, so lineage tags are written afterwards: get the
     version, merge the tags, models.create_or_update(model). On the wire that is PUT
     …/tempdatarefs/<name>/versions/<v> (the service answers 409 "already exists", which the SDK
     treats as "nothing to upload") and PUT …/registries/<r>/models/<name>/versions/<v> with the
     tags (registry versions are immutable except description/tags/stage).

Refs carry the version's `model_type` (AzureML's `modelType`: custom_model, mlflow_model, …), which
decides whether a no-code deployment is possible; a registry copy is read for its own type (the
fake's import keeps the workspace version's, which is not checked against the service).

A crash between 3 and 4 leaves a registry version without lineage: a later promote of the same
version only adds the lineage keys that are missing (never overwrites a value), so a retry repairs
it and a second successful promote writes nothing.

How the import's LRO ends decides what azure-ai-ml does next (`_model_operations.create_or_update`,
`_registry_utils.begin_import_registry_asset`): it returns early only when the LRO's final answer has
an EMPTY body. The service's recorded session answers 202 + Location, then 204 (empty: fine). An
import answered 202 + Azure-AsyncOperation only — as Microsoft's REST docs describe it — ends on
the operation's status body ({"status": "Succeeded"}), so the SDK goes on into its upload path after
the import happened and raises AttributeError ('WorkspaceAssetReference' object has no attribute
'datastore'). So an import that fails with anything but an Azure error is followed by a GET of the
registry version: there → it was imported, and the lineage tags are written as usual; not there →
PlatformError naming what the SDK raised. No SDK exception leaves this adapter raw: an unexpected
one (a bug of the SDK, not of the service) becomes PlatformError with the call and the exception.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from functions.adapters.azure.errors import azure_errors, or_none_if_missing
from functions.ports import ModelRef, PlatformError

REGISTRY_MODEL_RE = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$"
)
WORKSPACE_SHORT_RE = re.compile(r"^azureml:(?P<name>[^:/][^:]*):(?P<version>[^:/]+)$")
WORKSPACE_ARM_RE = re.compile(
    r"^(?:azureml:)?/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/"
    r"workspaces/(?P<workspace>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)


def registry_model_uri(registry: str, name: str, version: str) -> str:
    return f"azureml://registries/{registry}/models/{name}/versions/{version}"


def workspace_model_uri(name: str, version: str) -> str:
    return f"azureml:{name}:{version}"


def model_identity(uri: str) -> tuple[str, str, str] | None:
    """(scope, name, version) of an AzureML model reference, or None if `uri` is not one.

    scope is "registry:<name>" or "workspace" (a short `azureml:n:v` and the ARM id the service
    echoes back for it name the same model)."""
    uri = (uri or "").strip()
    if m := REGISTRY_MODEL_RE.match(uri):
        return f"registry:{m['registry']}", m["name"], m["version"]
    if m := WORKSPACE_SHORT_RE.match(uri):
        return "workspace", m["name"], m["version"]
    if m := WORKSPACE_ARM_RE.match(uri):
        return "workspace", m["name"], m["version"]
    return None


def normalize_model_uri(uri: str) -> str:
    """The canonical spelling: registry ids unchanged, workspace ARM ids as `azureml:name:version`."""
    ident = model_identity(uri)
    if ident is None:
        return uri or ""
    scope, name, version = ident
    if scope.startswith("registry:"):
        return registry_model_uri(scope.split(":", 1)[1], name, version)
    return workspace_model_uri(name, version)


class AzureModelRegistry:
    """ports.ModelRegistry over a workspace MLClient and a registry MLClient.

    `registry_client` may be an MLClient or a zero-argument callable returning one: building a
    registry client costs a discovery request, so the composition root can defer it to the first
    promotion. `source_workspace_id` (the staging workspace's ARM id) is what `ModelRef.source`
    says for workspace models.
    """

    def __init__(
        self,
        workspace_client: Any,
        registry_client: Any | Callable[[], Any],
        source_workspace_id: str,
        *,
        registry_name: str | None = None,
    ) -> None:
        self._ws = workspace_client
        self._registry_client_or_factory = registry_client
        self._registry_client: Any = None
        self._registry_name = registry_name
        self.source_workspace_id = source_workspace_id
        self._workspace_asset_prefix: str | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ clients

    @property
    def registry(self) -> Any:
        with self._lock:
            if self._registry_client is None:
                candidate = self._registry_client_or_factory
                if callable(candidate) and not hasattr(candidate, "models"):
                    with _sdk_errors("connect to the AzureML registry"):
                        candidate = candidate()
                self._registry_client = candidate
            return self._registry_client

    @property
    def registry_name(self) -> str:
        if self._registry_name is None:
            scope = getattr(self.registry, "_operation_scope", None)
            name = getattr(scope, "registry_name", None)
            if not name:
                raise PlatformError("registry client has no registry name: pass registry_name=")
            self._registry_name = name
        return self._registry_name

    # ------------------------------------------------------------------ ports.ModelRegistry

    def get_workspace_model(self, name: str, version: str) -> ModelRef | None:
        action = f"get workspace model {name}:{version}"
        with _sdk_errors(action):
            model = or_none_if_missing(action, lambda: self._ws.models.get(name=name, version=str(version)))
        if model is None:
            return None
        return ModelRef(
            name=model.name,
            version=str(model.version),
            uri=workspace_model_uri(model.name, str(model.version)),
            tags=dict(model.tags or {}),
            source=self.source_workspace_id,
            model_type=_model_type(model),
            # ARM systemData.createdBy (azure-ai-ml SystemData.created_by): the registering identity
            registered_by=str(getattr(getattr(model, "creation_context", None), "created_by", None) or ""),
        )

    def get_registry_model(self, name: str, version: str) -> ModelRef | None:
        model = self._get_registry_entity(name, str(version))
        return None if model is None else self._registry_ref(model)

    def promote(self, model: ModelRef, tags: dict[str, str]) -> ModelRef:
        name, version = model.name, str(model.version)
        ident = model_identity(model.uri)
        if ident is not None and ident[0].startswith("registry:"):
            raise PlatformError(f"promote expects a workspace model, got registry model {model.uri}")
        tags = {str(k): str(v) for k, v in (tags or {}).items()}

        existing = self._get_registry_entity(name, version)
        if existing is None:
            existing = self._import(name, version, self._workspace_asset_id(name, version))
        missing = {k: v for k, v in tags.items() if k not in (existing.tags or {})}
        if missing:
            action = f"tag registry model {name}:{version}"
            with _sdk_errors(action):
                existing.tags = {**(existing.tags or {}), **missing}
                existing = self.registry.models.create_or_update(existing)
        return self._registry_ref(existing)

    # ------------------------------------------------------------------ helpers

    def _import(self, name: str, version: str, asset_id: str) -> Any:
        """Import the workspace version; blocks until the import LRO finishes (the SDK calls
        poller.result() itself). An SDK failure that is no Azure error (the upload path after an
        Azure-AsyncOperation import, see the module docstring) is checked against the registry."""
        from azure.ai.ml.entities._assets.workspace_asset_reference import WorkspaceAssetReference

        action = f"import {name}:{version} into registry {self.registry_name}"
        try:
            with azure_errors(action):
                return self.registry.models.create_or_update(
                    WorkspaceAssetReference(name=name, version=version, asset_id=asset_id))
        except PlatformError:
            raise
        except Exception as exc:  # noqa: BLE001 - the SDK's own failure: did the import happen anyway?
            imported = self._get_registry_entity(name, version)
            if imported is None:
                raise PlatformError(f"{action}: azure-ai-ml failed ({_describe(exc)}) and the registry has no "
                                    f"version {name}:{version}") from exc
            return imported

    def _get_registry_entity(self, name: str, version: str) -> Any | None:
        action = f"get registry model {name}:{version}"
        with _sdk_errors(action):
            return or_none_if_missing(action, lambda: self.registry.models.get(name=name, version=version))

    def _registry_ref(self, model: Any) -> ModelRef:
        return ModelRef(
            name=model.name,
            version=str(model.version),
            uri=registry_model_uri(self.registry_name, model.name, str(model.version)),
            tags=dict(model.tags or {}),
            source=f"azureml://registries/{self.registry_name}",
            model_type=_model_type(model),
        )

    def _workspace_asset_id(self, name: str, version: str) -> str:
        if self._workspace_asset_prefix is None:
            with _sdk_errors("get the staging workspace"):
                workspace = self._ws.workspaces.get(self._ws.workspace_name)
            guid = getattr(workspace, "_workspace_id", None)  # the SDK exposes the GUID only privately
            if not guid or not workspace.location:
                raise PlatformError(f"workspace {self._ws.workspace_name} did not report its location and id")
            self._workspace_asset_prefix = f"azureml://locations/{workspace.location}/workspaces/{guid}"
        return f"{self._workspace_asset_prefix}/models/{name}/versions/{version}"


@contextmanager
def _sdk_errors(action: str) -> Iterator[None]:
    """azure_errors, and any other exception the SDK raises (AttributeError, KeyError … from inside
    azure-ai-ml) as PlatformError naming it: callers get the ports' one error, never a raw one."""
    try:
        with azure_errors(action):
            yield
    except PlatformError:
        raise
    except Exception as exc:  # noqa: BLE001 - everything inside these blocks is a call into the SDK
        raise PlatformError(f"{action}: azure-ai-ml failed unexpectedly ({_describe(exc)})") from exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}".rstrip(": ")


def _model_type(model: Any) -> str:
    """The version's format as AzureML records it (`modelType` on the wire: custom_model,
    mlflow_model, triton_model; the SDK's Model.type)."""
    return str(getattr(model, "type", None) or "")
