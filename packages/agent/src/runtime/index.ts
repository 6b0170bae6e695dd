/** The inference runtime: onnxruntime-node sessions with input validation, and the set of live models. */
export { ModelRuntime, type InferResult, type RuntimeOptions } from './session.ts';
export { LiveModels, type LiveModel } from './live.ts';
export { floatToHalf, halfToFloat, MAX_ELEMENTS, type OutputTensor, type TensorMeta } from './tensors.ts';
