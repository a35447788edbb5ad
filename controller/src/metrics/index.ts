// Prometheus metrics of the fleet and its pipeline (text format 0.0.4, no client library).
export { Exposition, CONTENT_TYPE as METRICS_CONTENT_TYPE, escapeHelp, escapeLabelValue, type Labels, type MetricType, type Quantiles } from './exposition.js';
export { renderFleetMetrics, LOSS_COUNTERS, type FleetMetricsInput, type IngestCounters } from './fleet-metrics.js';
export { startProcessMetrics, type ProcessMetrics } from './process-metrics.js';
export { WindowHistogram } from './window-histogram.js';
