// The app identity on one AzureML workspace (deployed into the workspace's resource group).
param workspaceName string
param principalId string
@description('Role definition id (a GUID) that lets the identity write diagnostic settings under this workspace; empty: none (the staging workspace).')
param diagnosticSettingsRoleId string = ''

// AzureML Data Scientist (Microsoft Learn, "Azure built-in roles for AI + machine learning"):
// workspaces/*/read|write|delete|action except creating or deleting compute and changing the
// workspace itself. That is what the control plane does in a workspace: read models and their files,
// create and update online endpoints and deployments, set traffic, invoke endpoints (the gates),
// submit and read jobs (retraining, the drift job), read components and datastores. It creates no
// compute (the jobs name existing clusters), so AzureML Compute Operator is not needed.
var azureMLDataScientist = 'f6c7c914-8db3-469d-8ca1-694a8f32e121'

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-10-01' existing = {
  name: workspaceName
}

resource dataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, azureMLDataScientist)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', azureMLDataScientist)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Microsoft.Insights/diagnosticSettings/read and /write on the production endpoints (resource type
// Microsoft.MachineLearningServices/workspaces/onlineEndpoints): the control plane makes sure each
// endpoint sends AmlOnlineEndpointTrafficLog and AmlOnlineEndpointConsoleLog to Log Analytics, which
// AzureML Data Scientist does not allow. Assigned at the workspace, so it reaches that workspace's
// endpoints only.
resource diagnosticSettingsWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(diagnosticSettingsRoleId)) {
  name: guid(workspace.id, principalId, diagnosticSettingsRoleId)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', diagnosticSettingsRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
