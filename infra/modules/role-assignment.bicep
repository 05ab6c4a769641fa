// The remediator's custom role for its identity on one resource group.
targetScope = 'resourceGroup'

param roleDefinitionId string
param principalId string
param description string

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, roleDefinitionId, principalId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: description
  }
}
