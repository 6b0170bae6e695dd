/** onnxruntime-node sessions with the model's input/output specs resolved from the ONNX graph. */
export * from './session.ts';
