"""The Secure Webhook validator for the alert webhook, built once per worker from settings."""

from __future__ import annotations

import functools

from functions.settings import Settings, SettingsError


@functools.lru_cache(maxsize=4)
def _validator(tenant_id: str, audience: str, role: str):
    from functions.adapters.azure.entra import EntraValidator

    return EntraValidator(tenant_id, audience, required_role=role or None)


def validator_for(settings: Settings):
    if not settings.webhook_tenant_id:
        raise SettingsError("MODELOPS_WEBHOOK_AUDIENCE is set: MODELOPS_WEBHOOK_TENANT_ID is required too")
    return _validator(settings.webhook_tenant_id, settings.webhook_audience, settings.webhook_role)
