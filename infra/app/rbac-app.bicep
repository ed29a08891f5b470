// Role assignments inside the new resource group: the app identity on its host storage and
// Application Insights; optionally the deploying person and the drift job's compute identity on the
// state container.
param storageAccountName string
param stateContainerName string
param applicationInsightsName string
param identityPrincipalId string
param userPrincipalId string = ''
param userPrincipalType string = 'User'
param driftComputePrincipalId string = ''

// Built-in role definition ids (Microsoft Learn, "Azure built-in roles"; the same ids as the
// Azure-Samples Functions azd templates' rbac.bicep)
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName

  resource blobServices 'blobServices' existing = {
    name: 'default'

    resource stateContainer 'containers' existing = {
      name: stateContainerName
    }
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Blob: the Functions host keeps its leases, timer schedules and keys in blobs, and the identity-based
// AzureWebJobsStorage connection needs Storage Blob Data Owner (Microsoft Learn, "Connecting to host
// storage with an identity"; the Azure-Samples templates assign the same). The account holds nothing
// but this app's containers, so account scope also covers the Flex deployment package and modelops'
// state container (MODELOPS_STORAGE_ACCOUNT_URL with the same identity).
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Queue: Durable Functions' control and work-item queues (and the timer/Event Grid triggers' host
// queues). Data Contributor: read, add, delete messages; no queue-level ACLs.
resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Table: Durable Functions' history and instances tables (and the host's diagnostic events).
resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry with Entra ID (the component has local auth disabled): publish only, no read.
resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, identityPrincipalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The person running azd: `modelops models put|remove` writes config/models/ in the state container.
// Container scope, not the account: nothing of the host's storage.
resource userStateContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(storage::blobServices::stateContainer.id, userPrincipalId, storageBlobDataContributor)
  scope: storage::blobServices::stateContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// The drift job (ml/jobs/drift.yml, MODELOPS_DRIFT_DATASTORE) reads the staged inputs under
// drift-jobs/ and writes drift/<model>/<version>/<time>/ through a datastore on the state container.
resource driftComputeStateContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(driftComputePrincipalId)) {
  name: guid(storage::blobServices::stateContainer.id, driftComputePrincipalId, storageBlobDataContributor)
  scope: storage::blobServices::stateContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: driftComputePrincipalId
    principalType: 'ServicePrincipal'
  }
}
