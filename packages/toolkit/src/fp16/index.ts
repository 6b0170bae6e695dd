/** float32 → float16 conversion of weights and (where the runtime has kernels for it) compute. */
export * from './convert.ts';
export { FLOAT16_MAX, FLOAT16_MIN_POSITIVE, float32ToFloat16Bits, toFloat16Array } from './half.ts';
export type { Float16Conversion } from './half.ts';
