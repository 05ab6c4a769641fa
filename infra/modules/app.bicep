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
@description('SECURITY_RELAX_TTL_HOURS: how long a relaxation stands before the relaxation-sweep timer restores it.')
param securityRelaxTtlHours int
param maximumInstanceCount int
param logsEndpoint string
@secure()
param alertFunctionKey string
@description('How POST /api/alerts authenticates the action group: its own function key, or the Entra secure webhook.')
param alertAuth string
@description('How the remediation routes authenticate callers: function keys per function, or Entra app roles.')
param remediationAuth string
@description('The app package is deployed, so the alerts function exists and its own key can be created.')
param alertsFunctionDeployed bool
param entraTenantId string
param entraAppClientId string
param entraAppObjectId string
param entraAppIdentifierUri string
param restrictInboundAccess bool
param adminIpRanges array
@description('The subscription-scope custom role; assigned here on the workspace so the app can query RDP events.')
param remediatorRoleId string

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var deploymentContainer = 'app-package'
var alertRuleName = 'rdp-remediator-rdp-failures-${environmentName}'

// Built-in data-plane roles for the app's own storage and telemetry: no control-plane rights.
// Blob Data Contributor covers what the host and Flex Consumption do with blobs: create its
// containers, read and write blobs (the deployment package, host secrets) and take blob leases
// (singleton locks, lease renewal). Blob Data Owner would add only POSIX ACL and ownership
// management, which matter on a hierarchical-namespace account; this one has none.
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: 'id-rdp-remediator-${token}'
  location: location
  tags: tags
}

resource storage 'Microsoft.Storage/storageAccounts@2026-09-01' = {
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

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2026-09-01' = {
  parent: storage
  name: 'default'
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2026-09-01' = {
  parent: blobService
  name: deploymentContainer
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [storageBlobDataContributor, storageQueueDataContributor, storageTableDataContributor]: {
    name: guid(storage.id, identity.id, role)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource workspace 'Microsoft.OperationalInsights/workspaces@2026-03-01' = {
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

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
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

// Who may call the app (docs/deploy.md, "Who may call what").
var alertsUseEntra = alertAuth == 'entra'
var usesEntra = alertsUseEntra || remediationAuth == 'entra'
// The action group's function key can only be created once the alerts function exists.
var alertsUseFunctionKey = !alertsUseEntra && alertsFunctionDeployed
var entraAudiences = join(filter([entraAppIdentifierUri, entraAppClientId], a => !empty(a)), ',')
// Optional access restrictions: the action groups' service tag and the admins' ranges on the
// app; the admins' ranges only on the deployment (scm) endpoint. Everything else gets 403.
var appAccessRules = concat(
  [
    {
      name: 'action-groups'
      description: 'Azure Monitor action groups (POST /api/alerts)'
      action: 'Allow'
      priority: 100
      tag: 'ServiceTag'
      ipAddress: 'ActionGroup'
    }
  ],
  adminAccessRules
)
var adminAccessRules = [
  for (ipRange, i) in adminIpRanges: {
    name: 'admins-${i}'
    description: 'Administrators'
    action: 'Allow'
    priority: 200 + i
    tag: 'Default'
    ipAddress: ipRange
  }
]

resource functionApp 'Microsoft.Web/sites@2025-03-01' = {
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
      ipSecurityRestrictions: restrictInboundAccess ? appAccessRules : []
      ipSecurityRestrictionsDefaultAction: restrictInboundAccess ? 'Deny' : 'Allow'
      scmIpSecurityRestrictionsUseMain: false
      scmIpSecurityRestrictions: restrictInboundAccess ? adminAccessRules : []
      scmIpSecurityRestrictionsDefaultAction: restrictInboundAccess ? 'Deny' : 'Allow'
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
        // Polls of a run: none before Run Command's 20 s minimum, then at the durations seen (src/adapters/run-command-polls.ts).
        { name: 'RUN_COMMAND_MIN_SECONDS', value: '20' }
        { name: 'RUN_COMMAND_POLL_SECONDS', value: '10' }
        { name: 'RUN_COMMAND_BUSY_RETRIES', value: '5' }
        { name: 'RUN_COMMAND_BUSY_DELAY_SECONDS', value: '30' }
        { name: 'ALERT_ACCEPTED_SERVICES', value: 'Log Alerts V2,Log Analytics' }
        { name: 'ALERT_RULES', value: alertRuleName }
        { name: 'ALERT_MODE', value: alertMode }
        { name: 'ALERT_DEDUPE_SCOPE', value: 'vm' }
        { name: 'ALERT_COOLDOWN_MINUTES', value: string(alertCooldownMinutes) }
        // Every instance paces by ARM's own x-ms-ratelimit-remaining-* answers, so together they
        // stay under the subscription's buckets (ARM's documented sizes below) with no fixed slice each.
        { name: 'ARM_PACING', value: 'headers' }
        { name: 'ARM_WRITES_PER_SECOND', value: '10' }
        { name: 'ARM_WRITE_BURST', value: '200' }
        { name: 'ARM_READS_PER_SECOND', value: '25' }
        { name: 'ARM_READ_BURST', value: '250' }
        // A storm's VM reads as one listing of the subscription (src/adapters/vm-views.ts).
        { name: 'ARM_VM_LIST_THRESHOLD', value: '10' }
        { name: 'ARM_VM_VIEW_TTL_SECONDS', value: '30' }
        // The relaxation-sweep timer (every 15 min) restores relaxations this long after they were made.
        // Like every timer, it needs only the host storage above: the host keeps one instance
        // running it with a blob lease (Blob Data Contributor) and its schedule status in blobs.
        { name: 'SECURITY_RELAX_TTL_HOURS', value: string(securityRelaxTtlHours) }
        // Who may call the HTTP routes (src/auth/); empty Entra settings mean function keys only.
        { name: 'AUTH_ALERTS', value: alertAuth }
        { name: 'AUTH_REMEDIATIONS', value: remediationAuth }
        { name: 'AUTH_ENTRA_TENANT_ID', value: usesEntra ? entraTenantId : '' }
        { name: 'AUTH_ENTRA_AUDIENCES', value: usesEntra ? entraAudiences : '' }
        { name: 'AUTH_ENTRA_AUTHORITY_HOST', value: environment().authentication.loginEndpoint }
      ]
    }
  }
  dependsOn: [
    storageRoles
    packageContainer
  ]
}

// No basic (user name and password) publishing: FTP and the scm site take Entra tokens only.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// The action group's key is a function key of the alerts function alone: it opens POST /api/alerts
// and nothing else (a host key would open every function). The function exists only once the app
// package is deployed, hence alertsFunctionDeployed. Rotating it means redeploying.
resource alertsFunction 'Microsoft.Web/sites/functions@2025-03-01' existing = {
  parent: functionApp
  name: 'alerts'
}

resource alertKey 'Microsoft.Web/sites/functions/keys@2025-03-01' = if (alertsUseFunctionKey) {
  parent: alertsFunction
  name: 'actiongroup'
  // The service takes name and value under properties; the published type puts value at the top
  // (Azure/bicep-types-az#1357), so the type check is silenced for this one property.
  #disable-next-line BCP187
  properties: {
    name: 'actiongroup'
    value: alertFunctionKey
  }
}

// Exactly the events the shipped query (queries/rdp-events.kql) reads, by provider and event ID.
resource dataCollectionRule 'Microsoft.Insights/dataCollectionRules@2024-03-11' = {
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

var alertsUrl = 'https://${functionApp.properties.defaultHostName}/api/alerts'

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-rdp-remediator-${token}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'rdpremed'
    enabled: true
    // Function key: the alerts function's own key in the receiver's URL (visible to Readers of the
    // action group, and good for POST /api/alerts only).
    azureFunctionReceivers: alertsUseFunctionKey
      ? [
          {
            name: 'rdp-remediator'
            functionAppResourceId: functionApp.id
            functionName: 'alerts'
            httpTriggerUrl: '${alertsUrl}?code=${alertFunctionKey}'
            useCommonAlertSchema: true
          }
        ]
      : []
    // Entra secure webhook: no secret in the URL; Azure Monitor sends a bearer token for the app
    // registration, which the app verifies (role ActionGroupsSecureWebhook).
    webhookReceivers: alertsUseEntra
      ? [
          {
            name: 'rdp-remediator'
            serviceUri: alertsUrl
            useCommonAlertSchema: true
            useAadAuth: true
            objectId: entraAppObjectId
            identifierUri: entraAppIdentifierUri
            tenantId: entraTenantId
          }
        ]
      : []
  }
  dependsOn: [
    alertKey
  ]
}

// One alert per VM: the query is split by _ResourceId, which makes the VM the alert target.
resource alertRule 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = {
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
output appInsightsId string = appInsights.id
