/**
 * Autotuning: build candidate variants of a model, measure each on a hardware profile and pick the best
 * within an accuracy budget.
 */
export * from './autotune.ts';
export * from './candidates.ts';
export * from './pareto.ts';
export * from './select.ts';
export * from './types.ts';
export { inputLayout, evaluateSession, sampleFeed, timeSession } from './measure.ts';
export type { InputLayout } from './measure.ts';
export { measureMemoryInChild } from './memory.ts';
export type { MemoryRequest, MemoryResult } from './memory.ts';
