/**
 * Outpost's own exporter from @tensorflow/tfjs LayersModels (single-chain MLPs and friends) to ONNX,
 * built on the toolkit's ONNX codec.
 */
export * from './export.ts';
export type { FoldRecord } from './fold.ts';
