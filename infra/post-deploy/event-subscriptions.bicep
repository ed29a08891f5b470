// Event Grid subscriptions of the staging workspace's system topic to the Function App's Event Grid
// triggers (deployed into the workspace's resource group). Checked against azure-rest-api-specs
// Microsoft.EventGrid stable/2022-06-15 (EventSubscriptions_CreateOrUpdateForCustomTopic_
// AzureFunctionDestination.json, SystemTopicEventSubscriptions_CreateOrUpdate.json).
param systemTopicName string
param functionAppId string
param deadLetterStorageId string
param deadLetterContainerName string
param maxDeliveryAttempts int
param eventTimeToLiveInMinutes int
@description('[{name, functionName, eventTypes}]')
param subscriptions array

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = [for s in subscriptions: {
  parent: topic
  name: s.name
  properties: {
    // AzureFunction, not WebHook: a WebHook to the host's Event Grid extension URL with a wrong
    // functionName is answered 202 and the events are dropped (Azure/azure-functions-host#8802);
    // an AzureFunction endpoint is validated against the deployed function.
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/${s.functionName}'
        // the triggers take one event per invocation (func.EventGridEvent)
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    // the triggers parse the Event Grid schema (tests/payloads/eventgrid-aml-*.egschema.json)
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: s.eventTypes
    }
    // transient failures raise in the trigger, and Event Grid redelivers with backoff
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}]

output names array = [for (s, i) in subscriptions: eventSubscription[i].name]
