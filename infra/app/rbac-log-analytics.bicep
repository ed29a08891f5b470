// The app identity on the Log Analytics workspace the production endpoints log to (deployed into its
// resource group).
param workspaceName string
param principalId string
@description('Role definition id (a GUID) that lets the identity name this workspace as a diagnostic setting\'s destination.')
param diagnosticDestinationRoleId string

// Log Analytics Reader (Microsoft Learn, "Azure built-in roles for Monitor"): */read and
// workspaces/analytics/query/action, not sharedKeys/read. The canary's health query
// (AmlOnlineEndpointTrafficLog) and the inference-log export (AmlOnlineEndpointConsoleLog) only
// query; nothing writes to the workspace.
var logAnalyticsReader = '73c42c96-874c-492b-b04d-ab87d138a893'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, logAnalyticsReader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', logAnalyticsReader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Writing a diagnostic setting whose destination is this workspace is a linked-authorization check:
// ARM also requires Microsoft.OperationalInsights/workspaces/sharedKeys/action here
// ("LinkedAuthorizationFailed" otherwise; MicrosoftDocs/azure-docs#80159, Microsoft Learn "Manage
// access to Log Analytics workspaces", example 2). The app never calls that action itself.
resource diagnosticDestination 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, diagnosticDestinationRoleId)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', diagnosticDestinationRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
