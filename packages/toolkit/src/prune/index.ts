/**
 * Pruning: unstructured magnitude pruning (zeros; smaller gzip, same dense latency) and structured
 * filter pruning (Conv output channels removed and the graph rewritten; fewer parameters and MACs).
 */
export { pruneMagnitude, zeroSmallest } from './magnitude.ts';
export type {
  MagnitudePruneOptions,
  MagnitudeLayer,
  MagnitudeReport,
  MagnitudePruneResult,
} from './magnitude.ts';
export { pruneFilters, sliceChannels, filterNorms, keepLargest } from './filters.ts';
export type {
  FilterPruneOptions,
  FilterPruneLayer,
  FilterPruneReport,
  FilterPruneResult,
} from './filters.ts';
export { probeShapes } from './probe.ts';
export { computeCosts } from './cost.ts';
export type { OpCost } from './cost.ts';
export { modelSizes } from './size.ts';
export type { ModelSizes } from './size.ts';
export { formatMagnitudeReport, formatFilterReport } from './format.ts';
export type { PruneSkip, ProgressFn } from './types.ts';
