"""EntraValidator on locally generated RSA keys: a JWKS built from them, tokens signed here, a fake
fetcher and a manual clock. No network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from functions.adapters.azure.entra import (
    ACTION_GROUPS_APP_ID,
    AuthError,
    EntraValidator,
    default_issuers,
    jwks_url,
)

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "0a0b0c0d-0000-4000-8000-000000000000"
APP_ID_URI = "api://modelops-alerts"
CLIENT_ID = "5c3e3c1e-7f6a-4e4c-9d8a-1b2c3d4e5f60"
ROLE = "ActionGroupsSecureWebhook"
V1_ISS, V2_ISS = f"https://sts.windows.net/{TENANT}/", f"https://login.microsoftonline.com/{TENANT}/v2.0"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEYS = {"k1": _key(), "k2": _key()}
ATTACKER = _key()


def jwk(kid: str, key: rsa.RSAPrivateKey | None = None) -> dict:
    public = (key or KEYS[kid]).public_key()
    return {**jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True), "kid": kid, "use": "sig",
            "x5t": kid, "issuer": V2_ISS}


class FakeJWKS:
    """The tenant's discovery/v2.0/keys endpoint: records fetches, can rotate or fail."""

    def __init__(self, *kids: str) -> None:
        self.kids = list(kids)
        self.urls: list[str] = []
        self.down = False

    def __call__(self, url: str) -> dict:
        self.urls.append(url)
        if self.down:
            raise OSError("connection refused")
        # Entra publishes other key types too; the validator skips what it cannot use.
        return {"keys": [jwk(k) for k in self.kids] + [{"kty": "EC", "kid": "ec", "use": "sig", "crv": "P-256"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jwks() -> FakeJWKS:
    return FakeJWKS("k1")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def validator(jwks, clock) -> EntraValidator:
    return EntraValidator(TENANT, f"{APP_ID_URI},{CLIENT_ID}", required_role=ROLE, jwks_fetcher=jwks, clock=clock)


def claims(**overrides) -> dict:
    """An app-only v1 access token as the Action Groups app gets it for the webhook's application."""
    now = int(time.time())
    base = {"aud": APP_ID_URI, "iss": V1_ISS, "iat": now - 10, "nbf": now - 10, "exp": now + 3600,
            "appid": ACTION_GROUPS_APP_ID, "appidacr": "2", "idp": V1_ISS, "oid": str(uuid.uuid4()),
            "roles": [ROLE], "sub": str(uuid.uuid4()), "tid": TENANT, "ver": "1.0"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(kid: str = "k1", key: rsa.RSAPrivateKey | None = None, **overrides) -> str:
    return jwt.encode(claims(**overrides), key or KEYS[kid], algorithm="RS256", headers={"kid": kid, "typ": "JWT"})


def bearer(tok: str) -> str:
    return f"Bearer {tok}"


def reject(validator: EntraValidator, header: str | None, status: int, match: str) -> AuthError:
    with pytest.raises(AuthError, match=match) as err:
        validator.validate(header)
    assert err.value.status == status and err.value.message == str(err.value)
    return err.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ------------------------------------------------------------------------------------------- valid


def test_a_valid_v1_token_yields_its_claims_and_keys_are_cached(validator, jwks):
    got = validator.validate(bearer(token()))
    assert got["appid"] == ACTION_GROUPS_APP_ID and got["roles"] == [ROLE] and got["aud"] == APP_ID_URI
    assert jwks.urls == [f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"]
    validator.validate(bearer(token()))
    validator.validate(f"bearer   {token()}  ")  # scheme is case-insensitive; whitespace tolerated
    assert len(jwks.urls) == 1


def test_a_valid_v2_token_with_the_client_id_audience(validator):
    got = validator.validate(bearer(token(iss=V2_ISS, aud=CLIENT_ID, ver="2.0", appid=None,
                                          azp=ACTION_GROUPS_APP_ID, azpacr="2")))
    assert got["iss"] == V2_ISS


def test_urls_and_issuers_follow_the_tenant():
    assert jwks_url(TENANT) == f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"
    assert default_issuers(TENANT) == (V1_ISS, V2_ISS)
    assert EntraValidator(TENANT, [APP_ID_URI]).issuers == [V1_ISS, V2_ISS]
    with pytest.raises(ValueError):
        EntraValidator(TENANT, " , ")


# --------------------------------------------------------------------------------------- invalid


def test_wrong_audience_is_401(validator):
    reject(validator, bearer(token(aud="https://management.azure.com")), 401,
           "audience 'https://management.azure.com' is not api://modelops-alerts or " + CLIENT_ID)


def test_issuer_of_another_tenant_is_401(validator):
    reject(validator, bearer(token(iss=f"https://sts.windows.net/{OTHER_TENANT}/")), 401,
           "issuer .* is not this tenant")


def test_custom_issuers_replace_the_defaults(jwks, clock):
    only_v2 = EntraValidator(TENANT, APP_ID_URI, issuers=[V2_ISS], jwks_fetcher=jwks, clock=clock)
    reject(only_v2, bearer(token()), 401, "issuer")
    assert only_v2.validate(bearer(token(iss=V2_ISS)))["iss"] == V2_ISS


def test_expiry_and_not_before_honour_the_leeway(validator):
    now = int(time.time())
    reject(validator, bearer(token(exp=now - 120)), 401, "expired")
    assert validator.validate(bearer(token(exp=now - 30)))  # within the 60 s leeway
    reject(validator, bearer(token(nbf=now + 300)), 401, "not yet valid")
    assert validator.validate(bearer(token(nbf=now + 30)))
    strict = EntraValidator(TENANT, APP_ID_URI, jwks_fetcher=FakeJWKS("k1"), leeway=0)
    reject(strict, bearer(token(exp=now - 30)), 401, "expired")


def test_missing_expiry_is_401(validator):
    reject(validator, bearer(token(exp=None)), 401, "lacks the 'exp' claim")


def test_a_signature_by_another_key_is_401(validator):
    reject(validator, bearer(token(kid="k1", key=ATTACKER)), 401, "signature does not verify")


def test_a_tampered_payload_is_401(validator):
    head, _, sig = token().split(".")
    forged = b64(json.dumps(claims(roles=[ROLE, "Admin"])).encode())
    reject(validator, bearer(f"{head}.{forged}.{sig}"), 401, "signature does not verify")


def test_unknown_kid_is_refetched_once_then_401_and_refetches_are_rate_limited(validator, jwks, clock):
    validator.validate(bearer(token()))
    stranger = bearer(token(kid="k9", key=ATTACKER))
    clock.now += 30
    reject(validator, stranger, 401, "signing key 'k9' is not one of the tenant's keys")
    assert len(jwks.urls) == 2  # the initial fetch + one refresh for the unknown kid
    reject(validator, stranger, 401, "not one of the tenant's keys")
    assert len(jwks.urls) == 2  # within min_refresh: no new fetch
    clock.now += 30
    reject(validator, stranger, 401, "not one of the tenant's keys")
    assert len(jwks.urls) == 3


def test_alg_none_is_401_without_fetching_keys(validator, jwks):
    unsigned = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'}).encode())}." \
               f"{b64(json.dumps(claims()).encode())}."
    reject(validator, bearer(unsigned), 401, "algorithm 'none' is not accepted")
    assert jwks.urls == []


def test_hs256_signed_with_the_public_key_is_401(validator, jwks):
    """The classic key-confusion forgery: HMAC keyed with the (public) RSA key's PEM."""
    pem = KEYS["k1"].public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'}).encode())}." \
                    f"{b64(json.dumps(claims()).encode())}"
    sig = b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
    reject(validator, bearer(f"{signing_input}.{sig}"), 401, "algorithm 'HS256' is not accepted")
    assert jwks.urls == []


def test_a_token_without_kid_is_401(validator):
    no_kid = jwt.encode(claims(), KEYS["k1"], algorithm="RS256")
    reject(validator, bearer(no_kid), 401, "no key id")


def test_missing_role_is_403(validator):
    reject(validator, bearer(token(roles=None)), 403, f"lacks the app role '{ROLE}'")
    reject(validator, bearer(token(roles=["Reader"])), 403, "lacks the app role")
    reject(validator, bearer(token(roles=ROLE)), 403, "lacks the app role")  # a string is not a role list


def test_no_role_required_accepts_a_token_without_roles(jwks, clock):
    assert EntraValidator(TENANT, APP_ID_URI, jwks_fetcher=jwks, clock=clock).validate(bearer(token(roles=None)))


def test_allowed_clients_check_appid_and_azp(jwks, clock):
    only_action_groups = EntraValidator(TENANT, [APP_ID_URI, CLIENT_ID], required_role=ROLE, jwks_fetcher=jwks,
                                        allowed_client_ids=[ACTION_GROUPS_APP_ID], clock=clock)
    assert only_action_groups.validate(bearer(token()))
    assert only_action_groups.validate(bearer(token(iss=V2_ISS, aud=CLIENT_ID, appid=None,
                                                    azp=ACTION_GROUPS_APP_ID)))
    reject(only_action_groups, bearer(token(appid=str(uuid.UUID(int=1)))), 403, "issued to client")


@pytest.mark.parametrize("header, match", [
    (None, "missing Authorization header"),
    ("", "missing Authorization header"),
    ("   ", "missing Authorization header"),
    ("Basic dXNlcjpwYXNz", "not 'Bearer <token>'"),
    ("Bearer", "not 'Bearer <token>'"),
    ("Bearer a b", "not 'Bearer <token>'"),
    ("Bearer not-a-jwt", "malformed bearer token"),
    ("Bearer e30.e30", "malformed bearer token"),
])
def test_missing_or_malformed_headers_are_401(validator, jwks, header, match):
    reject(validator, header, 401, match)
    assert jwks.urls == []


# ------------------------------------------------------------------------------------------- keys


def test_key_rotation_refreshes_once_and_then_uses_the_cache(validator, jwks, clock):
    validator.validate(bearer(token("k1")))
    jwks.kids.append("k2")  # Entra publishes a new signing key
    clock.now += 15
    assert validator.validate(bearer(token("k2")))["roles"] == [ROLE]
    assert len(jwks.urls) == 2
    for kid in ("k2", "k1", "k2"):
        validator.validate(bearer(token(kid)))
    assert len(jwks.urls) == 2 and validator.fetches == 2


def test_keys_expire_after_the_ttl(validator, jwks, clock):
    validator.validate(bearer(token()))
    clock.now += 3599
    validator.validate(bearer(token()))
    assert len(jwks.urls) == 1
    clock.now += 2
    validator.validate(bearer(token()))
    assert len(jwks.urls) == 2


def test_unreachable_keys_are_503_then_recover(validator, jwks, clock):
    jwks.down = True
    err = reject(validator, bearer(token()), 503, "cannot fetch the tenant's signing keys")
    assert "connection refused" in err.message
    jwks.down = False
    reject(validator, bearer(token()), 503, "cannot fetch")  # no retry before min_refresh
    clock.now += 11
    assert validator.validate(bearer(token()))


def test_cached_keys_survive_a_failed_refresh(validator, jwks, clock):
    validator.validate(bearer(token()))
    jwks.down = True
    clock.now += 4000  # TTL over, refresh fails: the cached keys still verify
    assert validator.validate(bearer(token()))
    reject(validator, bearer(token("k2")), 401, "not one of the tenant's keys")


def test_a_jwks_without_usable_keys_is_a_failed_fetch(clock):
    validator = EntraValidator(TENANT, APP_ID_URI, jwks_fetcher=lambda url: {"keys": [{"kty": "oct", "k": "x"}]},
                               clock=clock)
    reject(validator, bearer(token()), 503, "no RSA signing keys")
