// rdp-remediator, deployed into one subscription: a resource group with the Function App and
// the whole alert chain (event collection → log search alert → action group → POST /api/alerts),
// and, at subscription scope, a custom role holding exactly the operations the app calls. The
// app's telemetry gets a workbook and a failure-rate alert (modules/workbook.bicep).
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('Name of this deployment (azd environment name); used in resource names and tags.')
param environmentName string

@minLength(1)
@description('Region for every resource.')
param location string

@description('Resource group to create. Default: rg-<environmentName>.')
param resourceGroupName string = ''

@allowed([
  'off'
  'diagnose'
  'repair'
])
@description('Deployment-wide mode for VMs without an rdp-remediator-mode tag. diagnose only reads; repair must be opted into.')
param defaultMode string = 'diagnose'

@allowed([
  'diagnose'
  'repair'
])
@description('Mode alert-triggered remediations ask for; defaultMode and VM tags still cap it. Security-lowering actions are never granted here: only per VM, with the rdp-remediator-allow tag.')
param alertMode string = 'repair'

@description('Resource groups whose VMs the app may remediate. Empty: the whole subscription.')
param remediationResourceGroups array = []

@minValue(0)
@maxValue(4)
@description('Severity of the log search alert (0 critical … 4 verbose).')
param alertSeverity int = 2

@description('How often the log search alert runs (ISO 8601).')
param alertEvaluationFrequency string = 'PT5M'

@description('How far back each evaluation looks (ISO 8601).')
param alertWindowSize string = 'PT15M'

@description('Resolve the alert by itself when the events stop (sends a Resolved notification, which the app ignores). When false, muteActionsDuration applies.')
param alertAutoMitigate bool = false

@description('After firing for a VM, do not notify again for this long (ISO 8601); only when alertAutoMitigate is false.')
param alertMuteActionsDuration string = 'PT30M'

@description('Minutes during which further alerts for a remediated VM are counted as duplicates.')
param alertCooldownMinutes int = 30

@minValue(1)
@maxValue(168)
@description('Hours a security-lowering change (made only with explicit permission, per request or VM tag) stands before the relaxation-sweep timer restores it. A request\'s relaxForHours can only shorten it.')
param securityRelaxTtlHours int = 8

@minValue(1)
@maxValue(1000)
@description('Most Function App instances. ARM pacing per instance is derived from it so that all instances together stay within ARM\'s per-principal limits.')
param maximumInstanceCount int = 4

@description('Also assign the built-in policies that install the Azure Monitor Agent on Windows VMs and associate them with the data collection rule (remediation tasks are yours to start).')
param assignMonitoringPolicies bool = false

@description('Logs query API endpoint including /v1 (sovereign clouds differ).')
param logsEndpoint string = 'https://api.loganalytics.io/v1'

@secure()
@description('The alerts function\'s own key, which the action group uses to call POST /api/alerts (alertAuth function-key). A new one per deployment unless given.')
param alertFunctionKey string = newGuid()

// Who may call what: docs/deploy.md, "Who may call what".
@allowed([
  'function-key'
  'entra'
])
@description('How the action group authenticates to POST /api/alerts: function-key (a key of the alerts function only, in the receiver URL) or entra (secure webhook: an Entra token for the app registration below, no secret in the URL).')
param alertAuth string = 'function-key'

@allowed([
  'function-key'
  'entra'
])
@description('How callers authenticate to the remediation routes: function-key (one key per function; allow only on POST /api/remediations/allow) or entra (app roles Remediation.Read, Remediation.Request, Remediation.Allow).')
param remediationAuth string = 'function-key'

@description('Set true once the app package is deployed (the alerts function exists): only then can the alerts function\'s key be created and the action group wired to it (alertAuth function-key). Not needed for entra.')
param alertsFunctionDeployed bool = false

@description('Entra tenant whose tokens the app accepts (alertAuth or remediationAuth entra).')
param entraTenantId string = tenant().tenantId

@description('Application (client) id of the app registration that represents rdp-remediator: the audience of v2 tokens.')
param entraAppClientId string = ''

@description('Object id of that app registration (the secure webhook receiver needs it).')
param entraAppObjectId string = ''

@description('Application ID URI of that app registration (api://...): the audience of v1 tokens and what the action group asks a token for.')
param entraAppIdentifierUri string = ''

@description('Admit only the ActionGroup service tag and adminIpRanges to the app, and only adminIpRanges to its deployment (scm) endpoint. Off by default.')
param restrictInboundAccess bool = false

@description('CIDR ranges (e.g. 203.0.113.0/24) of the administrators and deployment agents; used when restrictInboundAccess is true.')
param adminIpRanges array = []

// The failure-rate alert on the app's own telemetry (modules/workbook.bicep). It notifies people,
// so its action groups are yours: never the app's own, which posts alerts to POST /api/alerts.
@minValue(0)
@maxValue(100)
@description('Failure-rate alert: fire when more than this percentage of the remediations completed in the window ended failed or restore-failed.')
param failureAlertThresholdPercent int = 20

@minValue(1)
@description('Failure-rate alert: fewest remediations completed in the window for the rate to count.')
param failureAlertMinimumRemediations int = 5

@description('Failure-rate alert: how far back each evaluation looks (ISO 8601).')
param failureAlertWindowSize string = 'PT1H'

@description('Failure-rate alert: how often it runs (ISO 8601).')
param failureAlertEvaluationFrequency string = 'PT15M'

@minValue(0)
@maxValue(4)
@description('Failure-rate alert: severity (0 critical … 4 verbose).')
param failureAlertSeverity int = 2

@description('Failure-rate alert: resource ids of the action groups to notify. Empty: the alert fires in Azure Monitor and notifies nobody.')
param failureAlertActionGroupIds array = []

var rgName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
var tags = {
  'azd-env-name': environmentName
  application: 'rdp-remediator'
}

// The ARM and Logs operations the app calls, and nothing else. test/e2e/least-privilege.test.ts
// checks this list against what the app actually sent to the emulator in an end-to-end run.
var remediatorActions = [
  'Microsoft.Compute/locations/operations/read'
  'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read'
  'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action'
  'Microsoft.Compute/virtualMachines/read'
  'Microsoft.Compute/virtualMachines/runCommand/action'
  'Microsoft.OperationalInsights/workspaces/query/Event/read'
  'Microsoft.OperationalInsights/workspaces/query/read'
]

resource rg 'Microsoft.Resources/resourceGroups@2025-04-01' = {
  name: rgName
  location: location
  tags: tags
}

resource remediatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'rdp-remediator', environmentName)
  properties: {
    roleName: 'RDP Remediator (${environmentName})'
    description: 'Read VMs and run the rdp-remediator payloads on them through Run Command; query RDP events in Log Analytics. Nothing else.'
    type: 'CustomRole'
    permissions: [
      {
        actions: remediatorActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

module app 'modules/app.bicep' = {
  name: 'rdp-remediator-app'
  scope: rg
  params: {
    environmentName: environmentName
    location: location
    tags: tags
    defaultMode: defaultMode
    alertMode: alertMode
    alertSeverity: alertSeverity
    alertEvaluationFrequency: alertEvaluationFrequency
    alertWindowSize: alertWindowSize
    alertAutoMitigate: alertAutoMitigate
    alertMuteActionsDuration: alertMuteActionsDuration
    alertCooldownMinutes: alertCooldownMinutes
    securityRelaxTtlHours: securityRelaxTtlHours
    maximumInstanceCount: maximumInstanceCount
    logsEndpoint: logsEndpoint
    alertFunctionKey: alertFunctionKey
    alertAuth: alertAuth
    remediationAuth: remediationAuth
    alertsFunctionDeployed: alertsFunctionDeployed
    entraTenantId: entraTenantId
    entraAppClientId: entraAppClientId
    entraAppObjectId: entraAppObjectId
    entraAppIdentifierUri: entraAppIdentifierUri
    restrictInboundAccess: restrictInboundAccess
    adminIpRanges: adminIpRanges
    remediatorRoleId: remediatorRole.id
  }
}

// The workbook and the failure-rate alert, on the app's Application Insights component.
module telemetryViews 'modules/workbook.bicep' = {
  name: 'rdp-remediator-workbook'
  scope: rg
  params: {
    environmentName: environmentName
    location: location
    tags: tags
    appInsightsId: app.outputs.appInsightsId
    failureAlertThresholdPercent: failureAlertThresholdPercent
    failureAlertMinimumRemediations: failureAlertMinimumRemediations
    failureAlertWindowSize: failureAlertWindowSize
    failureAlertEvaluationFrequency: failureAlertEvaluationFrequency
    failureAlertSeverity: failureAlertSeverity
    failureAlertActionGroupIds: failureAlertActionGroupIds
  }
}

// Whoever can run commands on a VM is SYSTEM on it: the role goes only where it is needed.
resource subscriptionAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (empty(remediationResourceGroups)) {
  name: guid(subscription().id, remediatorRole.id, environmentName)
  properties: {
    roleDefinitionId: remediatorRole.id
    principalId: app.outputs.identityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'rdp-remediator: VMs of the whole subscription'
  }
}

module resourceGroupAssignments 'modules/role-assignment.bicep' = [
  for name in remediationResourceGroups: {
    name: 'rdp-remediator-role-${uniqueString(name)}'
    scope: resourceGroup(name)
    params: {
      roleDefinitionId: remediatorRole.id
      principalId: app.outputs.identityPrincipalId
      description: 'rdp-remediator: VMs of this resource group'
    }
  }
]

module monitoringPolicies 'modules/monitoring-policies.bicep' = if (assignMonitoringPolicies) {
  name: 'rdp-remediator-monitoring-policies'
  params: {
    environmentName: environmentName
    location: location
    dataCollectionRuleId: app.outputs.dataCollectionRuleId
  }
}

output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.functionAppName
output AZURE_FUNCTION_APP_URL string = app.outputs.functionAppUrl
output AZURE_CLIENT_ID string = app.outputs.identityClientId
output REMEDIATOR_ROLE_ID string = remediatorRole.id
output ALERT_RULE_ID string = app.outputs.alertRuleId
output TELEMETRY_WORKBOOK_ID string = telemetryViews.outputs.workbookId
output FAILURE_ALERT_RULE_ID string = telemetryViews.outputs.failureAlertRuleId
