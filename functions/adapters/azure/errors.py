"""Map Azure SDK failures onto the ports' one domain exception.

azure-core raises `HttpResponseError` (with `status_code`) for answers and `ServiceRequestError` /
`ServiceResponseError` when no answer came; azure-ai-ml adds `MlException` for client-side
validation. Transient means "the same call may succeed later": 408, 409 (AzureML answers 409 while
another operation runs on the same endpoint/deployment), 429, 5xx and connection failures.
Programming errors (TypeError, …) are not translated: they must surface as bugs.

No Azure import at module level: this is imported by adapters that are imported at cold start.
"""

from __future__ import annotations

import re

from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from functions.ports import PlatformError

TRANSIENT_STATUS = frozenset({408, 409, 429})

T = TypeVar("T")


def is_not_found(exc: BaseException) -> bool:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    if isinstance(exc, ResourceNotFoundError):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code == 404


def to_platform_error(exc: BaseException, action: str) -> PlatformError | None:
    """The PlatformError for an Azure SDK exception, or None when `exc` is not one."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, ClientAuthenticationError):
        return PlatformError(f"{action}: not authorized ({_short(exc)})")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        transient = status in TRANSIENT_STATUS or status >= 500
        return PlatformError(f"{action}: HTTP {status} {_short(exc)}", transient=transient)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return PlatformError(f"{action}: no answer from Azure ({_short(exc)})", transient=True)
    inner = getattr(exc, "inner_exception", None) or exc.__cause__
    if isinstance(exc, AzureError) and isinstance(inner, (HttpResponseError, ServiceRequestError,
                                                          ServiceResponseError)):
        # azure-ai-ml wraps storage failures (e.g. a blob GET during models.download) in MlException:
        # retrying is as likely to help as for the failure it wraps
        return PlatformError(f"{action}: {_short(exc)}", transient=to_platform_error(inner, action).transient)
    if isinstance(exc, AzureError):  # e.g. azure.identity's CredentialUnavailableError
        return PlatformError(f"{action}: {_short(exc)}")
    if _is_ml_exception(exc):
        return PlatformError(f"{action}: {_short(exc)}")
    return None


@contextmanager
def azure_errors(action: str) -> Iterator[None]:
    """Re-raise Azure SDK failures inside the block as PlatformError (chained)."""
    try:
        yield
    except PlatformError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below, unknown ones re-raised as they are
        mapped = to_platform_error(exc, action)
        if mapped is None:
            raise
        raise mapped from exc


def or_none_if_missing(action: str, call: Callable[[], T]) -> T | None:
    """`call()` under azure_errors(action), with "not found" answered as None (the ports'
    convention for getters; deletes use it for idempotency)."""
    with azure_errors(action):
        try:
            return call()
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise


def _is_ml_exception(exc: BaseException) -> bool:
    try:
        from azure.ai.ml.exceptions import MlException
    except ImportError:  # pragma: no cover - azure-ai-ml is a requirement of the Azure adapters
        return False
    return isinstance(exc, MlException)


def _short(exc: BaseException) -> str:
    """First meaningful line of an SDK message (they run to dozens of lines of advice)."""
    message = getattr(exc, "message", None) or str(exc)
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(message))  # the SDK colours client-side errors
    for line in message.splitlines():
        line = line.strip()
        if line and not line.startswith(("1)", "Resolutions", "Details", "Additional Resources")):
            return line[:500]
    return type(exc).__name__
