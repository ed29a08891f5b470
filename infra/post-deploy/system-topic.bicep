// The staging workspace's Event Grid system topic (deployed into the workspace's resource group,
// in the workspace's region, as system topics must be).
param name string
param workspaceName string
param tags object = {}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-10-01' existing = {
  name: workspaceName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: workspace.location
  tags: tags
  // its own identity writes dead letters to the dead-letter container (no storage key)
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: workspace.id
    topicType: 'Microsoft.MachineLearningServices.Workspaces'
  }
}

output name string = topic.name
output principalId string = topic.identity.principalId
