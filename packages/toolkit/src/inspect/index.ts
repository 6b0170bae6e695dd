/** Model inspection: what an ONNX file contains, for `outpost inspect` and for building manifests. */
export * from './inspect.ts';
