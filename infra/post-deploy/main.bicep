// modelops post-deploy layer: what needs the deployed functions (resource-group scope: the
// Function App's resource group, AZURE_RESOURCE_GROUP). Run by the azd postdeploy hook
// (scripts/post-deploy.sh) after `azd deploy`, or by hand:
//   az deployment group create -g <group> -f infra/post-deploy/main.bicep \
//     -p infra/post-deploy/main.parameters.json -p functionAppName=... (see the script)
//
// - An Event Grid subscription to an Azure Function endpoint is validated against the deployed
//   function ("Destination endpoint not found" before the code is there, Azure/bicep#11656).
// - Function keys exist only once the runtime has started (Azure/bicep-types-az#1356).
// Both are true only after the first deployment of the code, hence this second layer.
//
// Creates: the Event Grid system topic on the staging workspace (in its resource group) with a
// subscription per trigger (ModelRegistered → model_registered, RunStatusChanged →
// run_status_changed: Azure Function endpoints, Event Grid schema, retries, dead letters), the
// action group that posts the common alert schema to POST /api/alerts with a function key, and a
// drift alert rule per model (the README's query, the model_name custom property).

@description('The Function App (main layer output AZURE_FUNCTION_APP_NAME).')
param functionAppName string

@description('Application Insights of the Function App (main layer output APPLICATIONINSIGHTS_NAME): the drift alert queries its traces.')
param applicationInsightsName string

@description('Storage account holding the dead-letter container (main layer output AZURE_STORAGE_ACCOUNT_NAME).')
param storageAccountName string

@description('Dead-letter container (main layer output EVENTGRID_DEAD_LETTER_CONTAINER).')
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('Resource group of the staging AzureML workspace (main layer output MODELOPS_STAGING_RESOURCE_GROUP).')
param stagingResourceGroup string

@description('Name of the staging AzureML workspace (main layer output MODELOPS_STAGING_WORKSPACE).')
param stagingWorkspaceName string

@description('Name of the workspace\'s Event Grid system topic. A source has at most one system topic: when the portal or another tool already made one, give its name and this template updates it (adds its system identity) instead of failing.')
param systemTopicName string = ''

@description('Event Grid delivery attempts before an event is dead-lettered (1–30).')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Minutes Event Grid keeps retrying an event (1–1440).')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

@description('Models that get a drift alert rule (one rule each, with the model_name custom property the alert webhook reads). Empty: no drift alert rule.')
param driftAlertModels array = []

@description('Severity of the drift alerts (0 critical … 4 verbose).')
@minValue(0)
@maxValue(4)
param driftAlertSeverity int = 3

@description('How often each drift rule runs its query (ISO 8601).')
param driftEvaluationFrequency string = 'PT15M'

@description('The window each run queries; the drift timer writes its record once a day.')
param driftWindowSize string = 'PT1H'

@description('Secure Webhook: the action group sends an Entra ID token for this application (set MODELOPS_WEBHOOK_AUDIENCE, _TENANT_ID, _ROLE in the main layer to require it).')
param webhookUseAadAuth bool = false

@description('Secure Webhook: object id of the Entra ID application the action group gets tokens for.')
param webhookAadObjectId string = ''

@description('Secure Webhook: the application\'s identifier URI (the token audience, = MODELOPS_WEBHOOK_AUDIENCE).')
param webhookAadIdentifierUri string = ''

@description('Tags of the resources this layer creates.')
param tags object = {}

// The trigger names registered by function_app.py (functions/triggers/*.py @bp.function_name);
// tests/test_infra.py checks they match.
var modelRegisteredFunction = 'model_registered'
var runStatusChangedFunction = 'run_status_changed'
// The alert webhook's route (functions/triggers/http_alerts.py: route "alerts", routePrefix "api").
var alertWebhookPath = '/api/alerts'

// The README's drift alert query, verbatim (tests/test_infra.py checks the file equals it).
var driftQuery = loadTextContent('drift-alert.kql')

var abbrs = loadJsonContent('../abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, functionAppName))
var topicName = empty(systemTopicName) ? '${abbrs.eventGridSystemTopics}${stagingWorkspaceName}' : systemTopicName

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName

  resource blobServices 'blobServices' existing = {
    name: 'default'

    resource deadLetterContainer 'containers' existing = {
      name: deadLetterContainerName
    }
  }
}

module systemTopic 'system-topic.bicep' = {
  name: 'modelops-system-topic'
  scope: resourceGroup(stagingResourceGroup)
  params: {
    name: topicName
    workspaceName: stagingWorkspaceName
    tags: tags
  }
}

// Storage Blob Data Contributor (ba92f5b4-2d11-453d-a403-e96b0029c9fe) for the system topic's own
// identity on the dead-letter container only: Event Grid writes the events it gave up on there
// (deadLetterWithResourceIdentity), with no storage key anywhere.
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage::blobServices::deadLetterContainer.id, topicName, storageBlobDataContributor)
  scope: storage::blobServices::deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: systemTopic.outputs.principalId
    principalType: 'ServicePrincipal'
  }
}

module eventSubscriptions 'event-subscriptions.bicep' = {
  name: 'modelops-event-subscriptions'
  scope: resourceGroup(stagingResourceGroup)
  params: {
    systemTopicName: systemTopic.outputs.name
    functionAppId: site.id
    deadLetterStorageId: storage.id
    deadLetterContainerName: deadLetterContainerName
    maxDeliveryAttempts: maxDeliveryAttempts
    eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    subscriptions: [
      {
        name: 'modelops-model-registered'
        functionName: modelRegisteredFunction
        eventTypes: [
          'Microsoft.MachineLearningServices.ModelRegistered'
        ]
      }
      {
        name: 'modelops-run-status-changed'
        functionName: runStatusChangedFunction
        eventTypes: [
          'Microsoft.MachineLearningServices.RunStatusChanged'
        ]
      }
    ]
  }
  dependsOn: [
    deadLetterWriter
  ]
}

// The alert webhook (auth level FUNCTION) takes the host's default function key as ?code=. It exists
// once the runtime has started, which is why this is the post-deploy layer.
var functionKey = listKeys(resourceId('Microsoft.Web/sites/host', functionAppName, 'default'), '2024-04-01').functionKeys.default

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${abbrs.insightsActionGroups}modelops-${resourceToken}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'modelops'
    enabled: true
    webhookReceivers: [
      {
        name: 'modelops-alert-webhook'
        serviceUri: 'https://${site.properties.defaultHostName}${alertWebhookPath}?code=${functionKey}'
        // POST /api/alerts accepts the common alert schema only (schemaId azureMonitorCommonAlertSchema)
        useCommonAlertSchema: true
        useAadAuth: webhookUseAadAuth
        objectId: webhookUseAadAuth ? webhookAadObjectId : null
        identifierUri: webhookUseAadAuth ? webhookAadIdentifierUri : null
        tenantId: webhookUseAadAuth ? tenant().tenantId : null
      }
    ]
  }
}

// One rule per model: the README's query narrowed to the model, and the model_name custom property
// the webhook resolves the model from (functions/domain/alerts.py resolve_model). Stateful
// (autoMitigate): a drifting model fires once and resolves when its records stop; the webhook
// ignores Resolved and deduplicates on alertId.
resource driftAlerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for model in driftAlertModels: {
  name: '${abbrs.insightsScheduledQueryRules}modelops-drift-${model}'
  location: applicationInsights.location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'modelops: dataset drift of ${model}'
    description: 'The drift check found dataset drift for ${model} (OverallDriftMetrics, dataset_drift true); the alert webhook starts its retraining.'
    severity: driftAlertSeverity
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: driftEvaluationFrequency
    windowSize: driftWindowSize
    criteria: {
      allOf: [
        {
          query: '${trim(driftQuery)}\n| where model_name == \'${model}\''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        model_name: model
      }
    }
  }
}]

output systemTopicName string = systemTopic.outputs.name
output eventSubscriptionNames array = eventSubscriptions.outputs.names
output actionGroupId string = actionGroup.id
output driftAlertRuleNames array = [for (model, i) in driftAlertModels: driftAlerts[i].name]
