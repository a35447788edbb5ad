// Exports of stored events: JSON lines, CSV, InfluxDB line protocol, streamed page by page.
export { eventToJson, formatRfc3339Nano, stringifyJson, type EventJson } from './event-json.js';
export { iterateEvents, DEFAULT_PAGE_SIZE, type EventFilter } from './event-pages.js';
export { CsvEncoder, csvField, CSV_FIXED_COLUMNS } from './csv.js';
export { InfluxEncoder, influxRole, escapeKey, escapeMeasurement, quoteString, type InfluxRole } from './influx.js';
export { ManifestResolver } from './manifest-resolver.js';
export { prepareExport, ExportError, EXPORT_FORMATS, CONTENT_TYPES, type ExportFormat, type PreparedExport, type ExportStore } from './exporter.js';
