"""The one fake Entra ID credential the tests hand to the Azure SDKs (azure-ai-ml against
tests/fake_arm, azure-monitor-query against tests/fake_log_analytics).

It is an azure-core TokenCredential (and SupportsTokenInfo) that records the scopes it was asked
for and hands out a far-future token per scope: by default an unsigned JWT for the scope's
audience (the SDK decodes some tokens: pipeline job submission reads `aud`), or a fixed opaque
string (`FakeCredential(token="fake-token")`: any non-empty token satisfies the fake Log
Analytics service, and a test can assert the exact Authorization header).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

TENANT = "72f988bf-0000-0000-0000-000000000000"


def fake_jwt(audience: str = "https://management.azure.com", expires_on: int | None = None) -> str:
    """An unsigned JWT. The SDK decodes some tokens (pipeline job submission reads `aud`), so a
    fake credential must hand out something that parses."""

    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    exp = expires_on or int(time.time()) + 10 * 365 * 24 * 3600
    claims = {"aud": audience, "iss": f"https://sts.windows.net/{TENANT}/", "tid": TENANT, "oid": str(uuid.UUID(int=7)),
              "exp": exp, "iat": int(time.time()), "nbf": int(time.time()) - 60}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.c2ln"


class FakeCredential:
    """TokenCredential (and SupportsTokenInfo) handing out a far-future fake JWT per scope, or
    `token` when one is given; every call's scopes are kept in `scopes`."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def _token(self, scopes: tuple[str, ...]) -> tuple[str, int]:
        self.scopes.append(scopes)
        audience = scopes[0].removesuffix("/.default") if scopes else "https://management.azure.com"
        expires = int(time.time()) + 10 * 365 * 24 * 3600
        return self.token or fake_jwt(audience, expires), expires

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        token, expires = self._token(scopes)
        return AccessToken(token, expires)

    def get_token_info(self, *scopes: str, options: Any = None):
        from azure.core.credentials import AccessTokenInfo

        token, expires = self._token(scopes)
        return AccessTokenInfo(token, expires)
