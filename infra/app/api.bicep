// The Function App on Flex Consumption (FC1, Linux, Python 3.11) and its app settings.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param instanceMemoryMB int
param maximumInstanceCount int
@description('modelops\' own settings (functions/settings.py) and host.json\'s %MODELOPS_TASK_HUB%.')
param modelopsSettings object

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:zone redundancy of a Flex Consumption plan depends on the region; set properties.zoneRedundant where the region offers it
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux (Flex Consumption runs Linux only)
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov: the checks skipped here, and why (tests/test_infra.py fails on any other failed check)
  // checkov:skip=CKV_AZURE_222:Event Grid and Azure Monitor action groups deliver over the public endpoint; a private app needs VNet integration and private endpoints (not in this template)
  // checkov:skip=CKV_AZURE_17:Event Grid and action groups cannot present client certificates; callers use function keys (and optionally Entra ID tokens: MODELOPS_WEBHOOK_AUDIENCE)
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales to zero by design; Event Grid and action groups retry, and Durable orchestrations resume from storage
  // checkov:skip=CKV_AZURE_213:App Service instance health check is not a Flex Consumption setting; GET /api/health (anonymous, ?deep=1) is there for an availability test
  name: name
  location: location
  // azd deploys the `api` service of azure.yaml to the site carrying this tag
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      alwaysOn: false
    }
    // Mandatory on Flex Consumption: where the package is, how much each instance gets, which runtime.
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Host settings. Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME (the runtime is in
// functionAppConfig) and manages FUNCTIONS_EXTENSION_VERSION itself: neither is set. No
// AzureWebJobsStorage connection string: the host reaches blob, queue and table storage (Durable
// Functions needs all three) with the managed identity; settings.py then uses
// MODELOPS_STORAGE_ACCOUNT_URL with the same identity.
var hostSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  // Entra ID ingestion (the component has local auth disabled)
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads this `appsettings` resource as the `web` config (siteConfig), whose properties it has not:
  // checkov:skip=CKV_AZURE_66:failed request tracing is an App Service web-server log; the host and app log to Application Insights
  // checkov:skip=CKV_AZURE_63:HTTP logging is an App Service web-server log; requests are in Application Insights
  // checkov:skip=CKV_AZURE_65:detailed error pages are an App Service web-server feature; the app answers JSON errors itself
  // checkov:skip=CKV_AZURE_222:not a site: public network access is the site's (skipped there, with the reason)
  // checkov:skip=CKV_AZURE_80:no .NET Framework: a Python 3.11 Function App
  // checkov:skip=CKV_AZURE_13:App Service Authentication would refuse Event Grid's and the action group's deliveries; the app checks function keys and Secure Webhook tokens itself
  // checkov:skip=CKV_AZURE_88:Azure Files content share is not used on Flex Consumption (the package is in blob storage: functionAppConfig)
  parent: site
  name: 'appsettings'
  properties: union(modelopsSettings, hostSettings)
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
