"""Builds the activities' Platform on Azure: AzureML (staging, production, registry) through
azure-ai-ml, blob storage for state, Log Analytics for the production traffic log.

Imported only when MODELOPS_PLATFORM=azure and a trigger first needs the platform.
"""

from __future__ import annotations

import json
from datetime import timedelta

from functions.services.activities import Platform
from functions.settings import SAMPLE_REQUEST, AzureSettings, Settings


def build_azure_platform(settings: Settings, azure: AzureSettings | None = None) -> Platform:
    from functions.adapters.azure.aml import (
        AzureEndpoints,
        AzureModelRegistry,
        DeploymentAssets,
        default_credential,
        registry_client,
        workspace_client,
    )
    from functions.adapters.azure.blob_store import blob_store_from_settings
    from functions.adapters.azure.traffic_log import LogAnalyticsTrafficLog, logs_client

    azure = azure or AzureSettings.from_env()
    credential = default_credential()
    staging_client = workspace_client(azure.subscription_id, azure.staging_resource_group, azure.staging_workspace,
                                      credential=credential)
    production_client = workspace_client(azure.subscription_id, azure.production_resource_group,
                                         azure.production_workspace, credential=credential)
    assets = DeploymentAssets(code=azure.deployment_code or None, environment=azure.deployment_environment or None)
    store = blob_store_from_settings(
        connection_string=azure.storage_connection_string or None,
        account_url=None if azure.storage_connection_string else azure.storage_account_url,
        container=azure.storage_container,
        credential=None if azure.storage_connection_string else credential,
    )
    traffic = LogAnalyticsTrafficLog(
        logs_client(azure.logs_endpoint or None, credential), azure.log_analytics_workspace_id,
        ingestion_lag=timedelta(0),  # the workflow waits canary.health_delay_seconds before it reads
    )
    return Platform(
        staging=AzureEndpoints(staging_client, assets),
        production=AzureEndpoints(production_client, assets),
        registry=AzureModelRegistry(staging_client, lambda: registry_client(azure.registry_name,
                                                                            credential=credential),
                                    azure.staging_workspace_id, registry_name=azure.registry_name),
        traffic_log=traffic,
        store=store,
        sample_request=json.loads(SAMPLE_REQUEST.read_text()),
        workspace_id=azure.staging_workspace_id,
    )


def build_azure_jobs(settings: Settings, azure: AzureSettings | None = None):
    """Retraining pipeline jobs run in the staging (development) workspace, where models register."""
    from functions.adapters.azure.aml import default_credential, workspace_client
    from functions.adapters.azure.aml_jobs import AzureJobs

    azure = azure or AzureSettings.from_env()
    client = workspace_client(azure.subscription_id, azure.staging_resource_group, azure.staging_workspace,
                              credential=default_credential())
    return AzureJobs(client)


def build_azure_inference_logs(settings: Settings, azure: AzureSettings | None = None):
    """Export source: score.py's InputData lines in the production workspace's Log Analytics."""
    from functions.adapters.azure.aml import default_credential
    from functions.adapters.azure.inference_logs import LogAnalyticsInferenceLogs, inference_logs_client

    azure = azure or AzureSettings.from_env()
    return LogAnalyticsInferenceLogs(inference_logs_client(azure.logs_endpoint or None, default_credential()),
                                     azure.log_analytics_workspace_id)


def download_reference(settings: Settings, model: str, version: str, tmp, azure: AzureSettings | None = None):
    """The production model's reference sample, downloaded from the shared registry."""
    from pathlib import Path

    from functions.adapters.azure.aml import default_credential, registry_client

    azure = azure or AzureSettings.from_env()
    client = registry_client(azure.registry_name, credential=default_credential())
    target = Path(tmp) / "model"
    client.models.download(name=model, version=version, download_path=str(target))
    found = sorted(target.rglob("reference.parquet"))
    if not found:
        raise FileNotFoundError(f"{model}:{version} in registry {azure.registry_name} has no reference.parquet")
    return found[0]
