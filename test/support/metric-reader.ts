/** A metric reader a test collects from when it wants (an exporter's reader exports on its own schedule). */
import { AggregationTemporality, MetricReader, type MetricData } from '@opentelemetry/sdk-metrics';

export class CollectingReader extends MetricReader {
  public constructor() {
    // As the Azure Monitor exporter selects it: delta, so a gauge not observed sends nothing.
    super({ aggregationTemporalitySelector: () => AggregationTemporality.DELTA });
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  /** Every metric of one collection. */
  public async metrics(): Promise<MetricData[]> {
    const { resourceMetrics } = await this.collect();
    return resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
  }
}
