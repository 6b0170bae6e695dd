/** Model quantization: dynamic int8 (weights 8-bit, activations quantized at run time). */
export * from './dynamic.ts';
export { quantizeWeight, dequantizeWeight, computeQuantParams, quantRange, roundHalfEven } from './math.ts';
export type { WeightType, QuantParams, QuantRange, QuantizedWeight, QuantizeWeightOptions } from './math.ts';
