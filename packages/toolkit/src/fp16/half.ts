/**
 * float32 → IEEE 754 half precision, bit-exact round-to-nearest-even (what numpy's astype(float16) does).
 */

import { float32ToFloat16Bits } from '@outpost/common';

export { float32ToFloat16Bits };

/** Largest finite float16. */
export const FLOAT16_MAX = 65504;
/** Smallest positive (subnormal) float16, 2^-24. */
export const FLOAT16_MIN_POSITIVE = 2 ** -24;

export interface Float16Conversion {
  bits: Uint16Array;
  /** Finite values beyond ±65504, stored as ±65504. */
  overflow: number;
  /** Non-zero values that would round to 0, stored as ±2^-24 so that they keep their sign and non-zeroness. */
  underflow: number;
}

/**
 * Converts float32 values to float16 bits, clamping what float16 cannot hold (counted): finite values
 * outside ±65504 become ±65504 (not Infinity), tiny non-zero values ±2^-24 (not 0), as
 * onnxconverter-common's float16 converter does. NaN and ±Infinity stay what they are.
 *
 * @example
 * const { bits, overflow } = toFloat16Array(new Float32Array([1, 1e6])); // overflow === 1
 */
export function toFloat16Array(values: ArrayLike<number>): Float16Conversion {
  const bits = new Uint16Array(values.length);
  let overflow = 0;
  let underflow = 0;
  for (let i = 0; i < values.length; i++) {
    let v = values[i] as number;
    const a = Math.abs(v);
    if (a > FLOAT16_MAX && a !== Infinity) {
      v = Math.sign(v) * FLOAT16_MAX;
      overflow++;
    } else if (a !== 0 && a <= FLOAT16_MIN_POSITIVE / 2) {
      v = Math.sign(v) * FLOAT16_MIN_POSITIVE;
      underflow++;
    }
    bits[i] = float32ToFloat16Bits(v);
  }
  return { bits, overflow, underflow };
}
