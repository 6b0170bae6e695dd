/**
 * @outpost/toolkit — everything that happens to a model before it ships: read/write ONNX, inspect,
 * evaluate, benchmark and quantize.
 */
export * from './onnx/index.ts';
export * from './inspect/index.ts';
export * from './datasets/index.ts';
export * from './runtime/index.ts';
export * from './evaluate/index.ts';
export * from './bench/index.ts';
export * from './quantize/index.ts';
