/** Latency / throughput / memory benchmarks of ONNX models with onnxruntime-node. */
export * from './bench.ts';
export * from './child.ts';
