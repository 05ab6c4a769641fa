/**
 * The Azure Monitor common alert schema, as much of it as intake needs. Lenient where the
 * official samples vary (nullable rule and targets in budget alerts, integer channels in
 * service health), strict where a decision depends on it.
 */
import * as z from 'zod';

export const COMMON_ALERT_SCHEMA_ID = 'azureMonitorCommonAlertSchema';

const nullableString = z.string().nullable().optional();

/** No control or format characters, no lone surrogates: what an Azure name or timestamp never holds. */
const PRINTABLE = /^[^\p{Cc}\p{Cf}\p{Cs}]*$/u;
const printable = (max: number, min = 1) => z.string().min(min).max(max).regex(PRINTABLE, 'must not contain control characters');

/**
 * Bounds on what intake reads and echoes. Alert rule names are at most 260 characters
 * (scheduledQueryRules, metricAlerts, activityLogAlerts); the rest are far above anything
 * Azure Monitor sends. The alert id has its own checks in classify (413 beyond its bound).
 */
export const ESSENTIALS_LIMITS = { alertRule: 260, monitorCondition: 64, monitoringService: 256, firedDateTime: 64 } as const;

export const EssentialsSchema = z
  .object({
    alertId: z.string().min(1),
    alertRule: printable(ESSENTIALS_LIMITS.alertRule, 0).nullable().optional(),
    severity: nullableString,
    signalType: nullableString,
    monitorCondition: printable(ESSENTIALS_LIMITS.monitorCondition),
    monitoringService: printable(ESSENTIALS_LIMITS.monitoringService),
    alertTargetIDs: z.array(z.string()).nullable().optional(),
    configurationItems: z.array(z.string()).nullable().optional(),
    originAlertId: nullableString,
    firedDateTime: printable(ESSENTIALS_LIMITS.firedDateTime),
    resolvedDateTime: nullableString,
  })
  .loose();
export type Essentials = z.infer<typeof EssentialsSchema>;

export const AlertEnvelopeSchema = z
  .object({
    schemaId: z.literal(COMMON_ALERT_SCHEMA_ID),
    data: z
      .object({
        essentials: EssentialsSchema,
        alertContext: z.unknown().optional(),
        customProperties: z.unknown().optional(),
      })
      .loose(),
  })
  .loose();
export type AlertEnvelope = z.infer<typeof AlertEnvelopeSchema>;

const Dimension = z.object({ name: z.string(), value: z.union([z.string(), z.number(), z.boolean(), z.null()]) }).loose();

/** Log Alerts V2 (scheduledQueryRules ≥ 2020-05-01). */
export const LogAlertV2ContextSchema = z
  .object({
    condition: z
      .object({
        windowSize: z.string().optional(),
        windowStartTime: z.string().optional(),
        windowEndTime: z.string().optional(),
        allOf: z
          .array(
            z
              .object({
                searchQuery: z.string().nullable().optional(),
                dimensions: z.array(Dimension).nullable().optional(),
                linkToSearchResultsAPI: z.string().nullable().optional(),
                linkToFilteredSearchResultsAPI: z.string().nullable().optional(),
              })
              .loose(),
          )
          .default([]),
      })
      .loose(),
  })
  .loose();

/** Legacy log alerts (monitoringService "Log Analytics" / "Application Insights"). */
export const LogAlertV1ContextSchema = z
  .object({
    SearchQuery: z.string().nullable().optional(),
    SearchIntervalStartTimeUtc: z.string().nullable().optional(),
    SearchIntervalEndtimeUtc: z.string().nullable().optional(),
    SearchIntervalInMinutes: z.union([z.string(), z.number()]).nullable().optional(),
    SearchIntervalDurationMin: z.union([z.string(), z.number()]).nullable().optional(),
    WorkspaceId: z.string().nullable().optional(),
    AffectedConfigurationItems: z.array(z.string()).nullable().optional(),
    Dimensions: z.array(Dimension).nullable().optional(),
  })
  .loose();
