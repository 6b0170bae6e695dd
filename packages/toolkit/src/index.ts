/**
 * @outpost/toolkit — everything that happens to a model before it ships: read/write ONNX, inspect, evaluate,
 * benchmark, quantize (dynamic, static QDQ, fp16), prune, fine-tune, distill, export tfjs students, and choose the
 * best variant per hardware profile (autotune) with a JSON/HTML report.
 */
export * from './onnx/index.ts';
export * from './inspect/index.ts';
export * from './datasets/index.ts';
export * from './runtime/index.ts';
export * from './evaluate/index.ts';
export * from './bench/index.ts';
export * from './quantize/index.ts';
export * from './quantize-static/index.ts';
export * from './fp16/index.ts';
export * from './prune/index.ts';
export * from './finetune/index.ts';
export * from './tfjs-export/index.ts';
export * from './distill/index.ts';
export * from './profiles/index.ts';
export * from './autotune/index.ts';
export * from './report/index.ts';
