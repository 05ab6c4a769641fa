// Optional: built-in policies that bring Windows VMs into the event collection.
// 1. "Configure Windows virtual machines to run Azure Monitor Agent using system-assigned
//    managed identity" installs the agent. Its definition lists Virtual Machine Contributor for
//    remediation; that is far more than installing an extension needs, so its identity gets a
//    custom role limited to VM extensions and the deployment the policy runs.
// 2. "Configure Windows Machines to be associated with a Data Collection Rule or a Data
//    Collection Endpoint", pointed at the remediator's DCR, with the two roles it declares.
targetScope = 'subscription'

param environmentName string
param location string
param dataCollectionRuleId string

var agentPolicyId = '/providers/Microsoft.Authorization/policyDefinitions/ca817e41-e85a-4783-bc7f-dc532d36235e'
var dcrAssociationPolicyId = '/providers/Microsoft.Authorization/policyDefinitions/eab1f514-22e3-42e3-9a1f-e1dc9199355c'
var monitoringContributor = '749f88d5-cbae-40b8-bcfc-e573ddc772fa'
var logAnalyticsContributor = '92aaf0da-9dab-42b6-94a3-d43ce8d16293'

// What the agent policy's remediation deployment does: read the VM, put the extension.
var agentInstallerActions = [
  'Microsoft.Compute/virtualMachines/extensions/read'
  'Microsoft.Compute/virtualMachines/extensions/write'
  'Microsoft.Compute/virtualMachines/read'
  'Microsoft.Resources/deployments/operationStatuses/read'
  'Microsoft.Resources/deployments/read'
  'Microsoft.Resources/deployments/validate/action'
  'Microsoft.Resources/deployments/write'
]

resource agentInstallerRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'rdp-remediator-agent-installer', environmentName)
  properties: {
    roleName: 'RDP Remediator agent installer (${environmentName})'
    description: 'Install the Azure Monitor Agent extension on VMs through the policy\'s remediation deployment. Nothing else.'
    type: 'CustomRole'
    permissions: [
      {
        actions: agentInstallerActions
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

resource agentAssignment 'Microsoft.Authorization/policyAssignments@2026-07-01' = {
  name: take('rdp-remediator-ama-${uniqueString(subscription().id, environmentName)}', 64)
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    displayName: 'rdp-remediator: run the Azure Monitor Agent on Windows VMs'
    policyDefinitionId: agentPolicyId
  }
}

resource agentInstaller 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(agentAssignment.id, agentInstallerRole.id)
  properties: {
    roleDefinitionId: agentInstallerRole.id
    principalId: agentAssignment.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource dcrAssignment 'Microsoft.Authorization/policyAssignments@2026-07-01' = {
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

resource dcrRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [monitoringContributor, logAnalyticsContributor]: {
    name: guid(dcrAssignment.id, role)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: dcrAssignment.identity.principalId
      principalType: 'ServicePrincipal'
    }
  }
]
