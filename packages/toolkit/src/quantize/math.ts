/**
 * Linear 8-bit quantization of weights, following ONNX Runtime's python quantizer so results are
 * comparable with `quantize_dynamic`: the range always includes 0 (so 0.0 is exact, which padding and
 * ReLU rely on), int8 weights are symmetric in [-127, 127] with zero point 0, uint8 weights asymmetric
 * in [0, 255], values rounded half-to-even like numpy.
 */

export type WeightType = 'int8' | 'uint8';

export interface QuantParams {
  scale: number;
  zeroPoint: number;
}

export interface QuantRange {
  qmin: number;
  qmax: number;
}

/**
 * numpy-style round half to even.
 *
 * @example
 * roundHalfEven(2.5) // 2
 */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Integer range of a weight type. `reduceRange` uses 7 bits, which keeps u8×s8 dot products from
 * saturating 16-bit accumulators on CPUs without VNNI (what ORT's `reduce_range` is for).
 *
 * @example
 * quantRange('int8', true) // { qmin: -127, qmax: 127 }
 */
export function quantRange(type: WeightType, symmetric: boolean, reduceRange = false): QuantRange {
  if (type === 'uint8') return reduceRange ? { qmin: 0, qmax: 127 } : { qmin: 0, qmax: 255 };
  if (reduceRange) return symmetric ? { qmin: -64, qmax: 64 } : { qmin: -64, qmax: 63 };
  return symmetric ? { qmin: -127, qmax: 127 } : { qmin: -128, qmax: 127 };
}

/**
 * Scale and zero point for values in [rmin, rmax] (widened to include 0).
 *
 * @example
 * computeQuantParams(-1, 3, { qmin: 0, qmax: 255 }, false) // { scale: 4/255, zeroPoint: 64 }
 */
export function computeQuantParams(
  rmin: number,
  rmax: number,
  range: QuantRange,
  symmetric: boolean,
): QuantParams {
  let lo = Math.min(rmin, 0);
  let hi = Math.max(rmax, 0);
  if (symmetric) {
    const absMax = Math.max(Math.abs(lo), Math.abs(hi));
    lo = -absMax;
    hi = absMax;
  }
  const scale = Math.fround((hi - lo) / (range.qmax - range.qmin));
  if (!(scale > 0) || !Number.isFinite(scale)) {
    // All-zero (or degenerate) tensor: any scale represents it exactly; zero point at the range's 0.
    return { scale: 1, zeroPoint: symmetric ? roundHalfEven((range.qmin + range.qmax) / 2) : range.qmin };
  }
  const zeroPoint = symmetric
    ? roundHalfEven((range.qmin + range.qmax) / 2)
    : Math.min(range.qmax, Math.max(range.qmin, roundHalfEven(range.qmin - lo / scale)));
  return { scale, zeroPoint };
}

/**
 * Quantizes `values[i]` with `params` into `out[i]`, clamped to the range.
 *
 * @example
 * quantizeInto(values, indices, { scale: 0.1, zeroPoint: 0 }, quantRange('int8', true), out);
 */
export function quantizeInto(
  values: ArrayLike<number>,
  indices: ArrayLike<number>,
  params: QuantParams,
  range: QuantRange,
  out: Int8Array | Uint8Array,
): void {
  const scale = params.scale;
  for (let j = 0; j < indices.length; j++) {
    const i = indices[j] as number;
    const q = roundHalfEven(Math.fround((values[i] as number) / scale)) + params.zeroPoint;
    out[i] = q < range.qmin ? range.qmin : q > range.qmax ? range.qmax : q;
  }
}

export interface QuantizedWeight {
  data: Int8Array | Uint8Array;
  /** One entry per channel (or a single one for per-tensor). */
  scales: Float32Array;
  zeroPoints: Int8Array | Uint8Array;
}

export interface QuantizeWeightOptions {
  type: WeightType;
  symmetric: boolean;
  reduceRange?: boolean;
  /** Quantize each slice along this axis separately (per-channel); undefined for per-tensor. */
  axis?: number;
}

/**
 * Quantizes a float tensor of shape `dims`, per tensor or per channel along `axis`.
 *
 * @example
 * const q = quantizeWeight(w, [128, 800], { type: 'uint8', symmetric: false });
 */
export function quantizeWeight(
  values: Float32Array,
  dims: number[],
  opts: QuantizeWeightOptions,
): QuantizedWeight {
  const range = quantRange(opts.type, opts.symmetric, opts.reduceRange);
  const data = opts.type === 'int8' ? new Int8Array(values.length) : new Uint8Array(values.length);
  const groups = channelIndices(dims, opts.axis);
  const scales = new Float32Array(groups.length);
  const zeroPoints = opts.type === 'int8' ? new Int8Array(groups.length) : new Uint8Array(groups.length);
  groups.forEach((idx, c) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (let j = 0; j < idx.length; j++) {
      const v = values[idx[j] as number] as number;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const p = computeQuantParams(idx.length ? lo : 0, idx.length ? hi : 0, range, opts.symmetric);
    scales[c] = p.scale;
    zeroPoints[c] = p.zeroPoint;
    quantizeInto(values, idx, p, range, data);
  });
  return { data, scales, zeroPoints };
}

/** Flat element indices of each slice along `axis` (one group of all indices when axis is undefined). */
function channelIndices(dims: number[], axis: number | undefined): Int32Array[] {
  const total = dims.reduce((a, b) => a * b, 1);
  if (axis === undefined) return [Int32Array.from({ length: total }, (_, i) => i)];
  const channels = dims[axis] ?? 1;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = total / (channels * inner);
  const groups = Array.from({ length: channels }, () => new Int32Array(outer * inner));
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      const g = groups[c] as Int32Array;
      const base = (o * channels + c) * inner;
      for (let k = 0; k < inner; k++) g[o * inner + k] = base + k;
    }
  }
  return groups;
}

/**
 * Transposes a row-major [rows, cols] matrix.
 *
 * @example
 * transpose2d(new Float32Array([1, 2, 3, 4, 5, 6]), 2, 3) // [1, 4, 2, 5, 3, 6]
 */
export function transpose2d(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c] as number;
  return out;
}

/**
 * Reconstructs float values from a quantized weight (for tests and error measurement).
 *
 * @example
 * const approx = dequantizeWeight(quantizeWeight(w, dims, opts), dims);
 */
export function dequantizeWeight(q: QuantizedWeight, dims: number[], axis?: number): Float32Array {
  const out = new Float32Array(q.data.length);
  const groups = channelIndices(dims, axis);
  groups.forEach((idx, c) => {
    const s = q.scales[c] as number;
    const z = q.zeroPoints[c] as number;
    for (const i of idx) out[i] = ((q.data[i] as number) - z) * s;
  });
  return out;
}
