// The rdp-remediator resource group: storage reached by identity, Log Analytics and Application
// Insights without local auth, a user-assigned identity, the Flex Consumption Function App, and
// the alert chain (data collection rule → log search alert → action group → POST /api/alerts).
targetScope = 'resourceGroup'

param environmentName string
param location string
param tags object
param defaultMode string
param alertMode string
param alertSeverity int
param alertEvaluationFrequency string
param alertWindowSize string
param alertAutoMitigate bool
param alertMuteActionsDuration string
param alertCooldownMinutes int
param maximumInstanceCount int
param logsEndpoint string
@secure()
param alertFunctionKey string
@description('The subscription-scope custom role; assigned here on the workspace so the app can query RDP events.')
param remediatorRoleId string

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var deploymentContainer = 'app-package'
var alertRuleName = 'rdp-remediator-rdp-failures-${environmentName}'

// Built-in data-plane roles for the app's own storage and telemetry: no control-plane rights.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-rdp-remediator-${token}'
  location: location
  tags: tags
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'strdp${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [storageBlobDataOwner, storageQueueDataContributor, storageTableDataContributor]: {
    name: guid(storage.id, identity.id, role)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-rdp-remediator-${token}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
    features: {
      disableLocalAuth: true
    }
  }
}

resource workspaceQuery 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, identity.id, remediatorRoleId)
  scope: workspace
  properties: {
    roleDefinitionId: remediatorRoleId
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    description: 'rdp-remediator: query RDP events for workspace-targeted alerts'
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-rdp-remediator-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-rdp-remediator-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

// ARM allows 10 writes and 25 reads per second per principal and subscription (buckets of 200
// and 250). Every instance paces itself to its share, so all of them together stay within it.
var writesPerSecond = max(1, 10 / maximumInstanceCount)
var readsPerSecond = max(1, 25 / maximumInstanceCount)

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-rdp-remediator-${token}'
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [
        // The host's own storage connection, by identity (shared keys are off).
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        { name: 'AzureWebJobsStorage__blobServiceUri', value: storage.properties.primaryEndpoints.blob }
        { name: 'AzureWebJobsStorage__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
        { name: 'AzureWebJobsStorage__tableServiceUri', value: storage.properties.primaryEndpoints.table }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
        // What the app reads (src/config.ts); the README's configuration table explains each.
        { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
        { name: 'AZURE_RESOURCE_MANAGER_ENDPOINT', value: environment().resourceManager }
        { name: 'AZURE_RESOURCE_MANAGER_AUDIENCE', value: environment().resourceManager }
        { name: 'AZURE_LOGS_ENDPOINT', value: logsEndpoint }
        { name: 'AZURE_LOGS_AUDIENCE', value: replace(logsEndpoint, '/v1', '') }
        { name: 'REMEDIATION_DEFAULT_MODE', value: defaultMode }
        { name: 'REMEDIATION_TABLE', value: 'remediations' }
        { name: 'REMEDIATION_LOCK_TABLE', value: 'remediationlocks' }
        { name: 'REMEDIATION_LOCK_TTL_SECONDS', value: '1800' }
        { name: 'RUN_COMMAND_POLL_SECONDS', value: '15' }
        { name: 'RUN_COMMAND_BUSY_RETRIES', value: '5' }
        { name: 'RUN_COMMAND_BUSY_DELAY_SECONDS', value: '30' }
        { name: 'ALERT_ACCEPTED_SERVICES', value: 'Log Alerts V2,Log Analytics' }
        { name: 'ALERT_RULES', value: alertRuleName }
        { name: 'ALERT_MODE', value: alertMode }
        { name: 'ALERT_DEDUPE_SCOPE', value: 'vm' }
        { name: 'ALERT_COOLDOWN_MINUTES', value: string(alertCooldownMinutes) }
        { name: 'ARM_WRITES_PER_SECOND', value: string(writesPerSecond) }
        { name: 'ARM_WRITE_BURST', value: string(max(1, 200 / maximumInstanceCount)) }
        { name: 'ARM_READS_PER_SECOND', value: string(readsPerSecond) }
        { name: 'ARM_READ_BURST', value: string(max(1, 250 / maximumInstanceCount)) }
      ]
    }
  }
  dependsOn: [
    storageRoles
    packageContainer
  ]
}

// A key of its own for the action group, so rotating it means redeploying, not editing the receiver by hand.
resource alertKey 'Microsoft.Web/sites/host/functionKeys@2024-04-01' = {
  name: '${functionApp.name}/default/actiongroup'
  properties: {
    name: 'actiongroup'
    value: alertFunctionKey
  }
}

// Exactly the events the shipped query (queries/rdp-events.kql) reads, by provider and event ID.
resource dataCollectionRule 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: 'dcr-rdp-remediator-${token}'
  location: location
  tags: tags
  kind: 'Windows'
  properties: {
    description: 'RDP certificate, private-key and TLS failure events for rdp-remediator'
    dataSources: {
      windowsEventLogs: [
        {
          name: 'rdpFailureEvents'
          streams: [
            'Microsoft-Event'
          ]
          xPathQueries: [
            'System!*[System[Provider[@Name=\'Microsoft-Windows-TerminalServices-RemoteConnectionManager\'] and (EventID=1050 or EventID=1055 or EventID=1057 or EventID=1058 or EventID=1059)]]'
            'System!*[System[Provider[@Name=\'Schannel\'] and (EventID=36870 or EventID=36871 or EventID=36874 or EventID=36888)]]'
            'System!*[System[Provider[@Name=\'TermDD\'] and (EventID=56)]]'
            'System!*[System[Provider[@Name=\'Service Control Manager\'] and (EventID=7022)]]'
          ]
        }
      ]
    }
    destinations: {
      logAnalytics: [
        {
          name: 'rdpRemediatorWorkspace'
          workspaceResourceId: workspace.id
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          'Microsoft-Event'
        ]
        destinations: [
          'rdpRemediatorWorkspace'
        ]
      }
    ]
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-rdp-remediator-${token}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'rdpremed'
    enabled: true
    azureFunctionReceivers: [
      {
        name: 'rdp-remediator'
        functionAppResourceId: functionApp.id
        functionName: 'alerts'
        httpTriggerUrl: 'https://${functionApp.properties.defaultHostName}/api/alerts?code=${alertFunctionKey}'
        useCommonAlertSchema: true
      }
    ]
  }
  dependsOn: [
    alertKey
  ]
}

// One alert per VM: the query is split by _ResourceId, which makes the VM the alert target.
resource alertRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: alertRuleName
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'RDP certificate, key or TLS failures (rdp-remediator)'
    description: 'Fires per VM on RDP 0x904 / internal-error events; the action group calls rdp-remediator.'
    severity: alertSeverity
    enabled: true
    evaluationFrequency: alertEvaluationFrequency
    windowSize: alertWindowSize
    scopes: [
      workspace.id
    ]
    targetResourceTypes: [
      'Microsoft.Compute/virtualMachines'
    ]
    criteria: {
      allOf: [
        {
          query: loadTextContent('../queries/rdp-events.kql')
          timeAggregation: 'Count'
          resourceIdColumn: '_ResourceId'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: alertAutoMitigate
    muteActionsDuration: alertAutoMitigate ? null : alertMuteActionsDuration
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output identityPrincipalId string = identity.properties.principalId
output identityClientId string = identity.properties.clientId
output functionAppName string = functionApp.name
output functionAppUrl string = 'https://${functionApp.properties.defaultHostName}'
output dataCollectionRuleId string = dataCollectionRule.id
output alertRuleId string = alertRule.id
output workspaceId string = workspace.id
