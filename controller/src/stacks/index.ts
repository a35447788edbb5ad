// Stack probes at the controller: folded stacks from stored records, flame graphs (plain and
// differential, SVG with zoom and search), and stack-count anomaly detection.
export { type Folded, formatFolded, formatFoldedDiff, parseFolded, splitStack, frameKind, KERNEL_SUFFIX } from './folded.js';
export { aggregateStacks, foldRecords, scanStackRecords, storedStackProbes, checkStackProbe, stackUnit, StackError, type StackAggregate, type StackScope, type StackRecord } from './aggregate.js';
export { buildTree, buildDiffTree, type FlameNode, type DiffSummary } from './tree.js';
export { renderFlameGraph, escapeXml, type FlameGraphOptions } from './svg.js';
export { StackAnomalyDetector, detectAnomalies, DEFAULT_ANOMALY_PARAMS, type AnomalyParams, type StackAnomaly, type StackWindow } from './anomalies.js';
export { findAnomalies, type AnomalyQuery, type AnomalyReport, type AnomalyRow } from './find-anomalies.js';
export { getFlamegraph, getAnomalies } from './routes-stacks.js';
