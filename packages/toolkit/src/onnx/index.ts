/**
 * ONNX model I/O: a hand-written proto2 schema of the ONNX IR (`onnx.proto`), protobufjs codec with
 * byte-stable round trips, tensor and attribute helpers.
 */
export * from './types.ts';
export * from './codec.ts';
export * from './tensor.ts';
export * from './attributes.ts';
