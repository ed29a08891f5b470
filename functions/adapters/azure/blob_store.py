"""ports.Store on Azure Blob Storage (azure-storage-blob, sync client).

Conditional writes map onto the service's own preconditions, so they hold across Function App
instances: create-only is `If-None-Match: *` (409/412 → Conflict), compare-and-swap is
`If-Match: <etag>` (412, or 404 when the blob is gone → Conflict). Etags are the service's ETag
strings, passed back unchanged.

Keys follow the same rule as DirectoryStore (see `check_key`), so a key that works locally works
here, and blob names Azure advises against (segments ending in '.', empty segments) never reach it.

Imported lazily by the composition root only: the Azure SDK imports at the top are fine here, but
nothing in functions/domain, functions/services or functions/ports may import this module.
"""

from __future__ import annotations

from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import ContainerClient

from functions.ports import Conflict, PlatformError, check_key

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

# A deployed Function answers Event Grid within 30 s: fail over to the caller's retry long before
# that instead of the SDK default (20 s connect timeout, 3 retries from 15 s backoff).
DEFAULT_CLIENT_KWARGS: dict[str, Any] = {
    "connection_timeout": 5,
    "read_timeout": 20,
    "retry_total": 2,
    "initial_backoff": 1,
    "increment_base": 2,
}


def _check_prefix(prefix: str) -> str:
    if prefix:
        check_key(prefix + "x")  # a prefix is valid when some key could start with it
    return prefix


def _code(exc: Exception) -> str:
    code = getattr(exc, "error_code", None) or ""
    return str(getattr(code, "value", code))  # a StorageErrorCode (str enum) or a plain string


def _platform_error(exc: Exception, action: str) -> PlatformError:
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        transient = status in TRANSIENT_STATUS or status >= 500
        detail = (str(exc.message or "").strip().splitlines() or [""])[0]
        return PlatformError(f"{action}: HTTP {status} {_code(exc)} {detail}".rstrip(), transient=transient)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError, ConnectionError, TimeoutError)):
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        return PlatformError(f"{action}: storage unreachable ({type(exc).__name__}: {detail})", transient=True)
    return PlatformError(f"{action}: {type(exc).__name__}: {exc}")


def _container_missing(exc: HttpResponseError) -> bool:
    return _code(exc) == "ContainerNotFound"


class BlobStore:
    """One container; keys are blob names."""

    def __init__(self, container_client: ContainerClient) -> None:
        self.container = container_client

    def get(self, key: str) -> tuple[bytes, str] | None:
        check_key(key)
        try:
            downloader = self.container.get_blob_client(key).download_blob()
            data = downloader.readall()
            return data, downloader.properties.etag
        except ResourceNotFoundError as exc:
            if _container_missing(exc):
                raise _platform_error(exc, f"store read {key}") from exc
            return None
        except ResourceModifiedError as exc:  # changed between two ranges of a large read
            raise PlatformError(f"store read {key}: changed while reading", transient=True) from exc
        except (AzureError, OSError) as exc:
            raise _platform_error(exc, f"store read {key}") from exc

    def put(self, key: str, data: bytes, *, if_absent: bool = False, etag: str | None = None) -> str:
        check_key(key)
        if if_absent:  # as DirectoryStore: create-only wins over an etag
            kwargs: dict[str, Any] = {"overwrite": False}
        elif etag is not None:
            kwargs = {"overwrite": True, "etag": etag, "match_condition": MatchConditions.IfNotModified}
        else:
            kwargs = {"overwrite": True}
        try:
            result = self.container.get_blob_client(key).upload_blob(data, **kwargs)
            return result["etag"]
        except ResourceExistsError as exc:
            if if_absent and _code(exc) in ("BlobAlreadyExists", ""):
                raise Conflict(f"{key} already exists") from exc
            raise _platform_error(exc, f"store write {key}") from exc
        except ResourceModifiedError as exc:
            if _code(exc) in ("ConditionNotMet", ""):
                raise Conflict(f"{key} already exists" if if_absent else f"{key} changed since it was read") from exc
            raise _platform_error(exc, f"store write {key}") from exc  # e.g. a lease held by someone
        except ResourceNotFoundError as exc:
            if etag is not None and not if_absent and not _container_missing(exc):
                raise Conflict(f"{key} changed since it was read (deleted)") from exc
            raise _platform_error(exc, f"store write {key}") from exc
        except (AzureError, OSError) as exc:
            raise _platform_error(exc, f"store write {key}") from exc

    def list(self, prefix: str) -> list[str]:
        _check_prefix(prefix)
        try:
            return sorted(self.container.list_blob_names(name_starts_with=prefix or None))
        except (AzureError, OSError) as exc:
            raise _platform_error(exc, f"store list {prefix!r}") from exc

    def delete(self, key: str) -> None:
        check_key(key)
        try:
            self.container.get_blob_client(key).delete_blob()
        except ResourceNotFoundError as exc:
            if _container_missing(exc):
                raise _platform_error(exc, f"store delete {key}") from exc
        except (AzureError, OSError) as exc:
            raise _platform_error(exc, f"store delete {key}") from exc


def blob_store_from_settings(
    connection_string: str | None = None,
    account_url: str | None = None,
    container: str = "modelops",
    credential: Any = None,
    **client_kwargs: Any,
) -> BlobStore:
    """A BlobStore on `container`, created if missing.

    `connection_string` (keys or Azurite) or `account_url` (https://<account>.blob.core.windows.net)
    with `credential` (default: DefaultAzureCredential, i.e. the Function App's managed identity).
    `client_kwargs` go to the SDK client (timeouts, retry_total, transport, …) over DEFAULT_CLIENT_KWARGS.
    """
    if bool(connection_string) == bool(account_url):
        raise ValueError("blob store: give exactly one of connection_string or account_url")
    kwargs = {**DEFAULT_CLIENT_KWARGS, **client_kwargs}
    if connection_string:
        client = ContainerClient.from_connection_string(connection_string, container, credential=credential, **kwargs)
    else:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        client = ContainerClient(account_url, container, credential=credential, **kwargs)
    try:
        client.create_container()
    except ResourceExistsError as exc:
        if _code(exc) == "ContainerBeingDeleted":
            raise PlatformError(f"create container {container}: being deleted", transient=True) from exc
    except (AzureError, OSError) as exc:
        raise _platform_error(exc, f"create container {container}") from exc
    return BlobStore(client)
