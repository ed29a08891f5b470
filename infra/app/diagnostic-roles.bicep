// Two custom roles holding exactly what writing a production endpoint's diagnostic setting needs
// (subscription scope; assignable only in the two resource groups concerned). The alternative,
// Monitoring Contributor, also manages alert rules, action groups, workbooks and more.
targetScope = 'subscription'

param resourceToken string
@description('Name (a GUID) of the role on the production workspace.')
param endpointDiagnosticSettingsRoleId string
@description('Name (a GUID) of the role on the endpoints\' Log Analytics workspace.')
param logAnalyticsDestinationRoleId string
param productionWorkspaceGroupId string
param logAnalyticsGroupId string

// Assigned at the production AzureML workspace, inherited by its online endpoints.
resource endpointDiagnosticSettings 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: endpointDiagnosticSettingsRoleId
  properties: {
    roleName: 'modelops endpoint diagnostic settings (${resourceToken})'
    description: 'Read and write diagnostic settings (the modelops control plane routes each production online endpoint\'s traffic and console logs to Log Analytics).'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Insights/diagnosticSettings/read'
          'Microsoft.Insights/diagnosticSettings/write'
        ]
        notActions: []
      }
    ]
    assignableScopes: [
      productionWorkspaceGroupId
    ]
  }
}

// Assigned at the Log Analytics workspace: ARM's linked-authorization check for a diagnostic
// setting with this destination (workspaces/sharedKeys/action; read is in Log Analytics Reader).
resource logAnalyticsDestination 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: logAnalyticsDestinationRoleId
  properties: {
    roleName: 'modelops Log Analytics diagnostic destination (${resourceToken})'
    description: 'Use the workspace as the destination of diagnostic settings (the modelops control plane).'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.OperationalInsights/workspaces/read'
          'Microsoft.OperationalInsights/workspaces/sharedKeys/action'
        ]
        notActions: []
      }
    ]
    assignableScopes: [
      logAnalyticsGroupId
    ]
  }
}
