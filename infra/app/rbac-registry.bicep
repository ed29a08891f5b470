// The app identity on the AzureML registry (deployed into the registry's resource group).
param registryName string
param principalId string

// AzureML Registry User (Microsoft Learn, "Azure built-in roles for AI + machine learning"):
// registries/read and registries/assets/*. Promotion imports a model version into the registry and
// tags it; the production deployment and drift read registry models (and a registry component for
// retraining). It cannot create, change or delete the registry itself.
var azureMLRegistryUser = '1823dd4f-9b8c-4ab6-ab4e-7397a3684615'

resource registry 'Microsoft.MachineLearningServices/registries@2024-10-01' existing = {
  name: registryName
}

resource registryUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, azureMLRegistryUser)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', azureMLRegistryUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
