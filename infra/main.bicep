// modelops control plane: what `azd up` provisions (subscription scope, as the Azure-Samples
// Functions azd templates do). Resources are declared directly, without `br/public:` registry
// modules, so the template compiles without reaching a module registry.
//
// Creates: a resource group with the Function App (Flex Consumption FC1, Linux, Python 3.11), its
// plan, a user-assigned managed identity, the storage account (host storage for the Functions and
// Durable runtimes, the deployment package container, modelops' state container, the Event Grid
// dead-letter container), Application Insights on its own Log Analytics workspace, and the
// identity's role assignments on what the platform team already has: the staging and production
// AzureML workspaces, the AzureML registry and the Log Analytics workspace the production endpoints
// log to (parameters below). The Event Grid subscriptions, the function key and the drift alert
// need the deployed code: they are the post-deploy layer (infra/post-deploy/main.bicep).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; part of every generated resource name.')
param environmentName string

@minLength(1)
@description('Region of the new resources. Flex Consumption is not offered in every region (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the person running azd (AZURE_PRINCIPAL_ID). When set, they get Storage Blob Data Contributor on the state container, so `modelops models put` works from their machine. Empty: no assignment.')
param principalId string = ''

@description('Kind of principal principalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Name of the resource group to create; default rg-<environmentName>.')
param resourceGroupName string = ''

// --- what the platform team already has --------------------------------------------------------
@description('Resource group of the staging AzureML workspace (where models are registered and retraining runs).')
param stagingResourceGroup string

@description('Name of the staging AzureML workspace.')
param stagingWorkspaceName string

@description('Resource group of the production AzureML workspace; default: the staging one.')
param productionResourceGroup string = ''

@description('Name of the production AzureML workspace (its online endpoints serve the models).')
param productionWorkspaceName string

@description('Resource group of the AzureML registry; default: the staging one.')
param registryResourceGroup string = ''

@description('Name of the AzureML registry promotions import into.')
param registryName string

@description('Resource group of the Log Analytics workspace the production endpoints log to; default: the production one.')
param logAnalyticsResourceGroup string = ''

@description('Name of the Log Analytics workspace the production endpoints log to (AmlOnlineEndpointTrafficLog, AmlOnlineEndpointConsoleLog).')
param logAnalyticsWorkspaceName string

@description('How the identity may write the production endpoints\' diagnostic settings: "custom" (two custom roles holding only the actions needed) or "builtin" (Monitoring Contributor, for tenants whose policy forbids custom roles).')
@allowed([
  'custom'
  'builtin'
])
param diagnosticSettingsRoles string = 'custom'

@description('Principal id of the staging workspace\'s compute identity that runs the drift job (ml/jobs/drift.yml). When set, it gets Storage Blob Data Contributor on the state container (the drift datastore). Empty: no assignment.')
param driftComputePrincipalId string = ''

// --- the Function App's settings (functions/settings.py reads each; README "Settings") -----------
@description('MODELOPS_MODELS: managed models and their settings as JSON; empty: the app\'s default.')
param modelsJson string = ''

@description('MODELOPS_MODELS_DIR: folder of per-model configuration files shipped with the app; empty: none.')
param modelsDir string = ''

@description('MODELOPS_CONFIG_REFRESH_SECONDS: how often the store\'s config/models/ files are re-read.')
param configRefreshSeconds string = '60'

@description('MODELOPS_DEPLOYMENT_CODE: registered code asset for deployments (azureml:modelops-scoring:<version>); empty: the app uploads ml/ on every deployment.')
param deploymentCode string = ''

@description('MODELOPS_DEPLOYMENT_ENVIRONMENT: registered environment for deployments (azureml:modelops-serving:<version>); empty: ml/environments/serving.yml is built.')
param deploymentEnvironment string = ''

@description('MODELOPS_DRIFT_DATASTORE: staging workspace datastore on the state container (the drift job\'s inputs and outputs); empty: drift is computed in the function.')
param driftDatastore string = ''

@description('MODELOPS_ALERT_RULES: {"<alert rule name>": "<model>"} for alerts without a model_name custom property.')
param alertRulesJson string = '{}'

@description('MODELOPS_RETRAIN_COOLDOWN_HOURS')
param retrainCooldownHours string = '24'

@description('MODELOPS_INGESTION_LAG_SECONDS: Log Analytics ingestion lag the canary waits for.')
param ingestionLagSeconds string = '300'

@description('MODELOPS_EXPORT_LAG_MINUTES')
param exportLagMinutes string = '10'

@description('MODELOPS_EXPORT_FORMATS: parquet and/or csv.')
param exportFormats string = 'parquet'

@description('MODELOPS_DRIFT_WINDOW_HOURS')
param driftWindowHours string = '24'

@description('MODELOPS_DRIFT_CONFIG: drift settings as JSON.')
param driftConfigJson string = '{"min_current_rows": 500}'

@description('MODELOPS_DRIFT_JOB_ROWS: above this many current rows the drift job runs on AzureML compute (0: never).')
param driftJobRows string = '2000000'

@description('MODELOPS_WEBHOOK_AUDIENCE: Secure Webhook (Entra ID) audience for POST /api/alerts; empty: function key only.')
param webhookAudience string = ''

@description('MODELOPS_WEBHOOK_ROLE: app role the alert caller\'s token must carry (Secure Webhook).')
param webhookRole string = ''

@description('MODELOPS_OPERATOR_AUDIENCE: Entra ID audience of operator tokens (approve, abort, freeze, …: app roles decide); empty: function key only.')
param operatorAudience string = ''

@description('MODELOPS_KEY_ACTIONS: operator actions a function key alone may do (comma-separated, or none); empty: every action.')
param keyActions string = ''

@description('MODELOPS_RETENTION_DAYS: days each kind of record is kept ({"exports", "reports", "gate_reports", "audit"}; 0: forever).')
param retentionDaysJson string = '{"exports": 30, "reports": 90, "gate_reports": 180, "audit": 365}'

@description('MODELOPS_LOGS_ENDPOINT: Log Analytics query endpoint override (sovereign clouds); empty: public cloud.')
param logsEndpoint string = ''

@description('Memory of each Flex Consumption instance (2048 or 4096 MB).')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most Flex Consumption instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}modelops-${resourceToken}'
// Flex Consumption reads its code from this blob container (functionAppConfig.deployment.storage).
var deploymentContainerName = 'app-package-${take(resourceToken, 13)}'
// modelops' own state: rollouts, audit, gate reports, exports, drift results (MODELOPS_STORAGE_CONTAINER).
var stateContainerName = 'modelops'
// Events Event Grid could not deliver after its retries (post-deploy layer's dead-letter destination).
var deadLetterContainerName = 'eventgrid-deadletter'
var productionRg = empty(productionResourceGroup) ? stagingResourceGroup : productionResourceGroup
var registryRg = empty(registryResourceGroup) ? stagingResourceGroup : registryResourceGroup
var logAnalyticsRg = empty(logAnalyticsResourceGroup) ? productionRg : logAnalyticsResourceGroup
var stagingWorkspaceId = resourceId(subscription().subscriptionId, stagingResourceGroup, 'Microsoft.MachineLearningServices/workspaces', stagingWorkspaceName)
var endpointsLogAnalyticsId = resourceId(subscription().subscriptionId, logAnalyticsRg, 'Microsoft.OperationalInsights/workspaces', logAnalyticsWorkspaceName)

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// The Log Analytics workspace the endpoints log to: its GUID (customerId) is what the query API takes.
resource endpointsLogAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsWorkspaceName
  scope: resourceGroup(logAnalyticsRg)
}

module resources 'app/resources.bicep' = {
  name: 'modelops-resources'
  scope: rg
  params: {
    location: location
    tags: tags
    identityName: '${abbrs.managedIdentityUserAssignedIdentities}modelops-${resourceToken}'
    storageAccountName: '${abbrs.storageStorageAccounts}${resourceToken}'
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    containerNames: [
      deploymentContainerName
      stateContainerName
      deadLetterContainerName
    ]
  }
}

module api 'app/api.bicep' = {
  name: 'modelops-api'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: resources.outputs.identityId
    identityClientId: resources.outputs.identityClientId
    storageAccountName: resources.outputs.storageAccountName
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: resources.outputs.applicationInsightsName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    // Every setting functions/settings.py reads (tests/test_infra.py checks the names match), with
    // its default where the platform team gave none. MODELOPS_HOME and MODELOPS_SERVING_PYTHON are
    // the local platform's; MODELOPS_STORAGE_CONNECTION_STRING is replaced by the account URL and
    // the managed identity.
    modelopsSettings: {
      MODELOPS_PLATFORM: 'azure'
      MODELOPS_TASK_HUB: 'modelops' // host.json: the Durable task hub's name
      MODELOPS_LOG_LEVEL: 'INFO'
      MODELOPS_MAX_ROWS: '10000'
      MODELOPS_MODELS: modelsJson
      MODELOPS_MODELS_DIR: modelsDir
      MODELOPS_CONFIG_REFRESH_SECONDS: configRefreshSeconds
      // DefaultAzureCredential picks the user-assigned identity by this client id
      AZURE_CLIENT_ID: resources.outputs.identityClientId
      AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
      MODELOPS_STAGING_RESOURCE_GROUP: stagingResourceGroup
      MODELOPS_STAGING_WORKSPACE: stagingWorkspaceName
      // the only topic events are accepted from: the staging workspace's system topic source
      MODELOPS_STAGING_WORKSPACE_ID: stagingWorkspaceId
      MODELOPS_PRODUCTION_RESOURCE_GROUP: productionRg
      MODELOPS_PRODUCTION_WORKSPACE: productionWorkspaceName
      MODELOPS_REGISTRY_NAME: registryName
      MODELOPS_LOG_ANALYTICS_WORKSPACE_ID: endpointsLogAnalytics.properties.customerId
      MODELOPS_LOG_ANALYTICS_RESOURCE_ID: endpointsLogAnalyticsId
      MODELOPS_INGESTION_LAG_SECONDS: ingestionLagSeconds
      MODELOPS_LOGS_ENDPOINT: logsEndpoint
      MODELOPS_STORAGE_ACCOUNT_URL: resources.outputs.blobEndpoint
      MODELOPS_STORAGE_CONTAINER: stateContainerName
      MODELOPS_DEPLOYMENT_CODE: deploymentCode
      MODELOPS_DEPLOYMENT_ENVIRONMENT: deploymentEnvironment
      MODELOPS_ALERT_RULES: alertRulesJson
      MODELOPS_RETRAIN_COOLDOWN_HOURS: retrainCooldownHours
      MODELOPS_ALERT_MAX_BYTES: '262144'
      MODELOPS_WEBHOOK_TENANT_ID: empty(webhookAudience) ? '' : tenant().tenantId
      MODELOPS_WEBHOOK_AUDIENCE: webhookAudience
      MODELOPS_WEBHOOK_ROLE: webhookRole
      MODELOPS_OPERATOR_TENANT_ID: empty(operatorAudience) ? '' : tenant().tenantId
      MODELOPS_OPERATOR_AUDIENCE: operatorAudience
      MODELOPS_KEY_ACTIONS: keyActions
      MODELOPS_RETENTION_DAYS: retentionDaysJson
      MODELOPS_EXPORT_LAG_MINUTES: exportLagMinutes
      MODELOPS_EXPORT_FORMATS: exportFormats
      MODELOPS_DRIFT_WINDOW_HOURS: driftWindowHours
      MODELOPS_DRIFT_CONFIG: driftConfigJson
      MODELOPS_DRIFT_JOB_ROWS: driftJobRows
      MODELOPS_DRIFT_DATASTORE: driftDatastore
    }
  }
}

// --- role assignments (least privilege; each justified where it is declared) ---------------------

// Host storage (blob/queue/table data roles) and Application Insights ingestion, in the new group.
module appRbac 'app/rbac-app.bicep' = {
  name: 'modelops-rbac-app'
  scope: rg
  params: {
    storageAccountName: resources.outputs.storageAccountName
    stateContainerName: stateContainerName
    applicationInsightsName: resources.outputs.applicationInsightsName
    identityPrincipalId: resources.outputs.identityPrincipalId
    userPrincipalId: principalId
    userPrincipalType: principalType
    driftComputePrincipalId: driftComputePrincipalId
  }
}

// The custom roles for writing the production endpoints' diagnostic settings ('custom' mode). Their
// ids are fixed here (guid of the subscription and resourceToken), so the assignments below need no
// output of a module that may not be deployed.
var endpointDiagnosticSettingsRoleId = guid(subscription().id, resourceToken, 'modelops-endpoint-diagnostic-settings')
var logAnalyticsDestinationRoleId = guid(subscription().id, resourceToken, 'modelops-log-analytics-destination')

module diagnosticRoles 'app/diagnostic-roles.bicep' = if (diagnosticSettingsRoles == 'custom') {
  name: 'modelops-diagnostic-roles'
  params: {
    resourceToken: resourceToken
    endpointDiagnosticSettingsRoleId: endpointDiagnosticSettingsRoleId
    logAnalyticsDestinationRoleId: logAnalyticsDestinationRoleId
    productionWorkspaceGroupId: subscriptionResourceId('Microsoft.Resources/resourceGroups', productionRg)
    logAnalyticsGroupId: subscriptionResourceId('Microsoft.Resources/resourceGroups', logAnalyticsRg)
  }
}

// Monitoring Contributor (749f88d5-cbae-40b8-bcfc-e573ddc772fa): the 'builtin' alternative to the
// custom roles; it holds Microsoft.Insights/diagnosticSettings/* and
// Microsoft.OperationalInsights/workspaces/sharedKeys/action, and more (alert rules, action groups…)
// on the two scopes it is assigned at.
var monitoringContributorRoleId = '749f88d5-cbae-40b8-bcfc-e573ddc772fa'

module stagingWorkspaceRbac 'app/rbac-workspace.bicep' = {
  name: 'modelops-rbac-staging'
  scope: resourceGroup(stagingResourceGroup)
  params: {
    workspaceName: stagingWorkspaceName
    principalId: resources.outputs.identityPrincipalId
    diagnosticSettingsRoleId: ''
  }
}

module productionWorkspaceRbac 'app/rbac-workspace.bicep' = {
  name: 'modelops-rbac-production'
  scope: resourceGroup(productionRg)
  params: {
    workspaceName: productionWorkspaceName
    principalId: resources.outputs.identityPrincipalId
    // writing each production endpoint's diagnostic setting (AzureML Data Scientist does not grant
    // Microsoft.Insights/diagnosticSettings/write): assigned at the workspace, inherited by its
    // onlineEndpoints, and nowhere else
    diagnosticSettingsRoleId: (diagnosticSettingsRoles == 'custom') ? endpointDiagnosticSettingsRoleId : monitoringContributorRoleId
  }
  dependsOn: [
    diagnosticRoles
  ]
}

module registryRbac 'app/rbac-registry.bicep' = {
  name: 'modelops-rbac-registry'
  scope: resourceGroup(registryRg)
  params: {
    registryName: registryName
    principalId: resources.outputs.identityPrincipalId
  }
}

module logAnalyticsRbac 'app/rbac-log-analytics.bicep' = {
  name: 'modelops-rbac-log-analytics'
  scope: resourceGroup(logAnalyticsRg)
  params: {
    workspaceName: logAnalyticsWorkspaceName
    principalId: resources.outputs.identityPrincipalId
    diagnosticDestinationRoleId: (diagnosticSettingsRoles == 'custom') ? logAnalyticsDestinationRoleId : monitoringContributorRoleId
  }
  dependsOn: [
    diagnosticRoles
  ]
}

// --- outputs: azd stores them in the environment (.azure/<env>/.env); the post-deploy hook reads them
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = 'https://${api.outputs.defaultHostName}'
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = resources.outputs.identityClientId
output AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID string = resources.outputs.identityPrincipalId
output APPLICATIONINSIGHTS_NAME string = resources.outputs.applicationInsightsName
output AZURE_STORAGE_ACCOUNT_NAME string = resources.outputs.storageAccountName
output MODELOPS_STORAGE_ACCOUNT_URL string = resources.outputs.blobEndpoint
output MODELOPS_STORAGE_CONTAINER string = stateContainerName
output EVENTGRID_DEAD_LETTER_CONTAINER string = deadLetterContainerName
output MODELOPS_STAGING_RESOURCE_GROUP string = stagingResourceGroup
output MODELOPS_STAGING_WORKSPACE string = stagingWorkspaceName
output MODELOPS_STAGING_WORKSPACE_ID string = stagingWorkspaceId
output MODELOPS_PRODUCTION_RESOURCE_GROUP string = productionRg
output MODELOPS_PRODUCTION_WORKSPACE string = productionWorkspaceName
output MODELOPS_REGISTRY_NAME string = registryName
output MODELOPS_LOG_ANALYTICS_RESOURCE_ID string = endpointsLogAnalyticsId
