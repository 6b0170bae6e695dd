/**
 * float32 → IEEE 754 half precision, bit-exact round-to-nearest-even (what numpy's astype(float16) does).
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Largest finite float16. */
export const FLOAT16_MAX = 65504;
/** Smallest positive (subnormal) float16, 2^-24. */
export const FLOAT16_MIN_POSITIVE = 2 ** -24;

/**
 * Rounds a number to float16 and returns the 16 bits. Values beyond ±65504 round to ±Infinity and
 * magnitudes below 2^-25 to ±0, as IEEE rounding does; {@link toFloat16Array} clamps them first.
 *
 * @example
 * float32ToFloat16Bits(1) // 0x3c00
 */
export function float32ToFloat16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf, or a quiet NaN
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: value = m · 2^-24 with m = (1.mant) · 2^(e + 10), i.e. the 24-bit significand
    // shifted right by 14 − e.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and 65520 and up become Infinity).
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

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
