"""Bearer-token validation for Azure Monitor's "Secure Webhook" action (Microsoft Entra ID).

What the action group sends: `Authorization: Bearer <JWT>`, an app-only token that the Action Groups
first-party application ("AzNS AAD Webhook", appId 461e8683-5575-4561-ac7f-899cc907d62a) obtains
for the webhook's Entra application (the "Application ID URI" / object id set on the action).
Which token version arrives is decided by the webhook application's manifest
(`accessTokenAcceptedVersion`, `requestedAccessTokenVersion` in Graph), not by the caller:

- v1 (the default, null/1): `iss` = https://sts.windows.net/<tenant>/, `aud` = the Application ID
  URI (e.g. api://modelops-alerts), caller in `appid`;
- v2: `iss` = https://login.microsoftonline.com/<tenant>/v2.0, `aud` = the application (client) id
  GUID, caller in `azp`.

Both versions are signed with the tenant's keys from .../discovery/v2.0/keys (RS256), so one JWKS
serves both; pass both audience forms to accept either. Authorization is an app role: the documented
setup adds an `ActionGroupsSecureWebhook` role to the webhook application and assigns it to the Action
Groups service principal, so the token's `roles` carries it. That role is granted to the Action
Groups service as a whole: any action group in the tenant can call the webhook with it, so the
payload must still be checked (the alert rule and the target workspace).

Errors: `AuthError(401)` for a missing/unusable/invalid token, `AuthError(403)` for a valid token
without the required role or from another client, `AuthError(503)` when the signing keys cannot be
fetched (the action group retries 503; answering 401 would drop a genuine alert).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from functions.ports import AuthError

ACTION_GROUPS_APP_ID = "461e8683-5575-4561-ac7f-899cc907d62a"  # "AzNS AAD Webhook", Microsoft's first-party app
ALGORITHMS = ("RS256",)  # what Entra ID signs access tokens with; nothing else is accepted


def jwks_url(tenant_id: str) -> str:
    return f"https://login.microsoftonline.com/{tenant_id}/discovery/v2.0/keys"


def default_issuers(tenant_id: str) -> tuple[str, str]:
    return f"https://sts.windows.net/{tenant_id}/", f"https://login.microsoftonline.com/{tenant_id}/v2.0"


def fetch_jwks(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET the JWKS document (no SDK: this runs on the webhook's hot path, imported at first use)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - https URL built above
        return json.loads(response.read())


class EntraValidator:
    """Validate Secure Webhook bearer tokens of one tenant.

    `audience`: the accepted `aud` value(s): a string (comma-separated values allowed, so that one app
    setting can hold the Application ID URI and the client id) or an iterable.
    `jwks_fetcher(url) -> {"keys": [...]}`: injectable (tests); keys are cached for `cache_ttl`
    seconds and fetched again at most once per validation when a token names an unknown `kid`
    (key rotation). No fetch is attempted more often than every `min_refresh` seconds (a stream of
    tokens with made-up kids must not turn into a stream of JWKS requests); when a fetch fails the
    cached keys stay in use.
    `allowed_client_ids`: when given, the token's caller (`appid` v1 / `azp` v2) must be one of them
    (e.g. ACTION_GROUPS_APP_ID) → 403 otherwise.
    """

    def __init__(self, tenant_id: str, audience: str | Iterable[str], *, required_role: str | None = None,
                 jwks_fetcher: Callable[[str], dict[str, Any]] | None = None, issuers: Iterable[str] | None = None,
                 leeway: float = 60, allowed_client_ids: Iterable[str] | None = None, cache_ttl: float = 3600.0,
                 min_refresh: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not tenant_id:
            raise ValueError("tenant_id is required")
        audiences = [a.strip() for a in audience.split(",")] if isinstance(audience, str) else list(audience)
        self.audiences = [a for a in audiences if a]
        if not self.audiences:
            raise ValueError("audience is required")
        self.tenant_id = tenant_id
        self.required_role = required_role or None
        self.issuers = list(issuers) if issuers is not None else list(default_issuers(tenant_id))
        self.leeway = leeway
        self.allowed_client_ids = frozenset(allowed_client_ids) if allowed_client_ids is not None else None
        self.jwks_url = jwks_url(tenant_id)
        self._fetch = jwks_fetcher or fetch_jwks
        self._ttl = cache_ttl
        self._min_refresh = min_refresh
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._next_attempt = float("-inf")
        self._last_error = ""
        self.fetches = 0  # successful JWKS fetches (observability, tests)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ validation

    def validate(self, authorization_header: str | None) -> dict[str, Any]:
        """The token's claims, or AuthError(401 | 403 | 503)."""
        import jwt

        token = _bearer_token(authorization_header)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"malformed bearer token: {exc}") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:  # before any key lookup: "none", HS256-with-the-public-key, ...
            raise AuthError(401, f"token algorithm {alg!r} is not accepted (RS256 only)")
        kid = header.get("kid")
        if not kid or not isinstance(kid, str):
            raise AuthError(401, "token header has no key id (kid)")
        key = self._signing_key(kid)
        try:
            claims = jwt.decode(
                token, key, algorithms=list(ALGORITHMS), audience=self.audiences, issuer=self.issuers,
                leeway=self.leeway, options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError(401, "token is not yet valid (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise AuthError(401, f"token audience {_unverified(token, 'aud')!r} is not "
                                 f"{' or '.join(self.audiences)}") from None
        except jwt.InvalidIssuerError:
            raise AuthError(401, f"token issuer {_unverified(token, 'iss')!r} is not this tenant's "
                                 f"({' or '.join(self.issuers)})") from None
        except jwt.InvalidSignatureError:
            raise AuthError(401, "token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(401, f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"invalid token: {exc}") from None
        if self.allowed_client_ids is not None:
            caller = claims.get("appid") or claims.get("azp")
            if caller not in self.allowed_client_ids:
                raise AuthError(403, f"token was issued to client {caller!r}, which may not call this webhook")
        if self.required_role is not None:
            roles = claims.get("roles")
            if not isinstance(roles, list) or self.required_role not in roles:
                raise AuthError(403, f"token lacks the app role {self.required_role!r}")
        return claims

    # ------------------------------------------------------------------ keys

    def _signing_key(self, kid: str) -> Any:
        with self._lock:
            now = self._clock()
            refreshed = False
            due = self._fetched_at is None or now - self._fetched_at >= self._ttl
            if due and now >= self._next_attempt:
                self._refresh(now)
                refreshed = True
            if kid not in self._keys and not refreshed and now >= self._next_attempt:
                self._refresh(now)  # key rotation: a kid we have not seen, fetched once
            if not self._keys:
                raise AuthError(503, f"cannot fetch the tenant's signing keys from {self.jwks_url}: "
                                     f"{self._last_error}"[:500])
            key = self._keys.get(kid)
        if key is None:
            raise AuthError(401, f"token signing key {kid!r} is not one of the tenant's keys")
        return key

    def _refresh(self, now: float) -> None:
        """Fetch the JWKS; on failure keep the keys we have (tokens signed with them still verify)."""
        self._next_attempt = now + self._min_refresh
        try:
            keys = _parse_jwks(self._fetch(self.jwks_url))
        except Exception as exc:  # noqa: BLE001 - network, HTTP, JSON: all mean "no new keys now"
            self._last_error = f"{type(exc).__name__}: {exc}"
            return
        self._keys = keys
        self._fetched_at = now
        self.fetches += 1


def _bearer_token(header: str | None) -> str:
    if header is None or not header.strip():
        raise AuthError(401, "missing Authorization header (Secure Webhook sends a bearer token)")
    parts = header.strip().split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise AuthError(401, "Authorization header is not 'Bearer <token>'")
    return parts[1]


def _parse_jwks(document: Any) -> dict[str, Any]:
    """kid -> RSA public key for the signing keys of a JWKS document."""
    import jwt

    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    keys: dict[str, Any] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig" or not jwk.get("kid"):
            continue
        try:
            keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="RS256").key
        except jwt.PyJWTError:
            continue  # one unusable key must not hide the others
    if not keys:
        raise ValueError("the JWKS document has no RSA signing keys")
    return keys


def _unverified(token: str, claim: str) -> Any:
    import jwt

    try:
        return jwt.decode(token, options={"verify_signature": False}).get(claim)
    except jwt.PyJWTError:
        return None
