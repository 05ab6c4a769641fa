// Optional: the built-in policy "Configure Windows Machines to be associated with a Data
// Collection Rule or a Data Collection Endpoint", pointed at the remediator's DCR. Its
// remediation identity gets only the two roles that policy definition declares.
targetScope = 'subscription'

param environmentName string
param location string
param dataCollectionRuleId string

var dcrAssociationPolicyId = '/providers/Microsoft.Authorization/policyDefinitions/eab1f514-22e3-42e3-9a1f-e1dc9199355c'
var monitoringContributor = '749f88d5-cbae-40b8-bcfc-e573ddc772fa'
var logAnalyticsContributor = '92aaf0da-9dab-42b6-94a3-d43ce8d16293'

resource assignment 'Microsoft.Authorization/policyAssignments@2024-04-01' = {
  name: take('rdp-remediator-dcr-${uniqueString(subscription().id, environmentName)}', 64)
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    displayName: 'rdp-remediator: associate Windows VMs with the RDP event collection rule'
    policyDefinitionId: dcrAssociationPolicyId
    parameters: {
      DcrResourceId: {
        value: dataCollectionRuleId
      }
    }
  }
}

resource roles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [monitoringContributor, logAnalyticsContributor]: {
    name: guid(assignment.id, role)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: assignment.identity.principalId
      principalType: 'ServicePrincipal'
    }
  }
]
