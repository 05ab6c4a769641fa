// What the app's own telemetry shows, on its Application Insights component: a shared workbook
// (outcomes, causes, failed runs, relaxed VMs, time to fix, Run Command durations) and a log
// search alert on the share of remediations that failed. Every query is a file under
// ../queries/telemetry/, loaded here, reading only the names src/telemetry/names.ts declares
// (test/unit/telemetry-queries.test.ts checks both).
targetScope = 'resourceGroup'

param environmentName string
param location string
param tags object
@description('The Application Insights component the app sends its telemetry to: the workbook\'s source and the alert\'s scope.')
param appInsightsId string
@description('Fire when more than this percentage of the remediations completed in the window failed.')
param failureAlertThresholdPercent int
@description('Fewest remediations completed in the window for the alert to judge the rate at all.')
param failureAlertMinimumRemediations int
@description('How far back each evaluation looks (ISO 8601).')
param failureAlertWindowSize string
@description('How often the alert runs (ISO 8601).')
param failureAlertEvaluationFrequency string
@description('Severity of the alert (0 critical … 4 verbose).')
param failureAlertSeverity int
@description('Action groups to notify (resource ids). Never the app\'s own action group, which posts alerts to the app.')
param failureAlertActionGroupIds array

// A fixed name per resource group and environment, so that each deployment updates the same workbook.
var workbookName = guid(resourceGroup().id, 'rdp-remediator-workbook', environmentName)
var failureAlertName = 'rdp-remediator-failure-rate-${environmentName}'

var timeRangeParameter = 'TimeRange'
var oneDayMs = 86400000
// A relaxation stands at most 168 hours: relaxed-vms.kql reads this far back whatever the picker says.
var relaxationLookbackMs = 8 * oneDayMs

// One workbook tile: a Logs query over the component.
func queryTile(name string, title string, query string, visualization string, width string, timeContext object, source string) object => {
  type: 3
  name: name
  customWidth: width
  content: union(
    {
      version: 'KqlItem/1.0'
      title: title
      query: query
      size: 0
      queryType: 0
      resourceType: 'microsoft.insights/components'
      crossComponentResources: [
        source
      ]
      visualization: visualization
    },
    timeContext
  )
}

var pickedTime = {
  timeContextFromParameter: timeRangeParameter
  timeContext: {
    durationMs: oneDayMs
  }
}

var workbook = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'about'
      content: {
        json: '## rdp-remediator (${environmentName})\nWhat the remediator did: outcomes, causes, failures, relaxations in force, time to fix and Run Command durations, from its OpenTelemetry spans (`dependencies`) and metrics (`customMetrics`).'
      }
    }
    {
      type: 9
      name: 'parameters'
      content: {
        version: 'KqlParameterItem/1.0'
        style: 'pills'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        parameters: [
          {
            id: 'time-range'
            version: 'KqlParameterItem/1.0'
            name: timeRangeParameter
            label: 'Time range'
            type: 4
            isRequired: true
            value: {
              durationMs: oneDayMs
            }
            typeSettings: {
              selectableValues: [
                { durationMs: 3600000 }
                { durationMs: 14400000 }
                { durationMs: 43200000 }
                { durationMs: oneDayMs }
                { durationMs: 3 * oneDayMs }
                { durationMs: 7 * oneDayMs }
                { durationMs: 30 * oneDayMs }
              ]
              allowCustom: true
            }
          }
        ]
      }
    }
    queryTile('outcomes-over-time', 'Completed remediations by outcome', loadTextContent('../queries/telemetry/outcomes-over-time.kql'), 'timechart', '70', pickedTime, appInsightsId)
    queryTile('failure-rate', 'Failure rate (what the alert computes)', loadTextContent('../queries/telemetry/failure-rate.kql'), 'table', '30', pickedTime, appInsightsId)
    queryTile('top-causes', 'Top causes', loadTextContent('../queries/telemetry/top-causes.kql'), 'table', '50', pickedTime, appInsightsId)
    queryTile('findings', 'Blocking findings', loadTextContent('../queries/telemetry/findings.kql'), 'table', '50', pickedTime, appInsightsId)
    queryTile('failed-runs', 'Failed and restore-failed remediations', loadTextContent('../queries/telemetry/failed-runs.kql'), 'table', '100', pickedTime, appInsightsId)
    queryTile('relaxed-vms', 'VMs relaxed now, and until when (last 8 days of spans)', loadTextContent('../queries/telemetry/relaxed-vms.kql'), 'table', '70', { timeContext: { durationMs: relaxationLookbackMs } }, appInsightsId)
    queryTile('relaxed-vm-count', 'Relaxed VMs, as the sweep counts them', loadTextContent('../queries/telemetry/relaxed-vm-count.kql'), 'timechart', '30', pickedTime, appInsightsId)
    queryTile('time-to-fix', 'Time to fix, p50 and p95 (seconds)', loadTextContent('../queries/telemetry/time-to-fix.kql'), 'timechart', '50', pickedTime, appInsightsId)
    queryTile('run-command-duration', 'Run Command durations by payload (seconds)', loadTextContent('../queries/telemetry/run-command-duration.kql'), 'table', '50', pickedTime, appInsightsId)
  ]
  fallbackResourceIds: [
    appInsightsId
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource telemetryWorkbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: workbookName
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'rdp-remediator (${environmentName})'
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: string(workbook)
  }
}

// The query file yields one row (rate, failed, completed); the rule keeps it only with enough
// remediations behind it, so one failure out of two does not page anyone.
var failureRateQuery = '${loadTextContent('../queries/telemetry/failure-rate.kql')}| where Completed >= ${failureAlertMinimumRemediations}\n'

resource failureRateAlert 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = {
  name: failureAlertName
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Remediation failure rate (rdp-remediator)'
    description: 'More than ${failureAlertThresholdPercent}% of at least ${failureAlertMinimumRemediations} remediations completed in the window ended failed or restore-failed.'
    severity: failureAlertSeverity
    enabled: true
    evaluationFrequency: failureAlertEvaluationFrequency
    windowSize: failureAlertWindowSize
    scopes: [
      appInsightsId
    ]
    criteria: {
      allOf: [
        {
          query: failureRateQuery
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'FailureRatePercent'
          operator: 'GreaterThan'
          threshold: failureAlertThresholdPercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // For people: it resolves by itself once the rate is back under the threshold.
    autoMitigate: true
    actions: {
      actionGroups: failureAlertActionGroupIds
    }
  }
}

output workbookId string = telemetryWorkbook.id
output failureAlertRuleId string = failureRateAlert.id
