import { OutpostError } from '@outpost/protocol';
import { mulberry32 } from '../bench/index.ts';

/**
 * Seeded image augmentation for building a distillation *transfer set*: extra inputs near the training
 * distribution that the teacher labels (soft targets), so the student learns the teacher's function on
 * more points than the labelled set holds. Small random affine maps (rotation, scale, shift) plus an
 * optional smooth elastic displacement, sampled bilinearly with zeros outside the image — the classic
 * MNIST augmentations (Simard et al. 2003), kept mild so the digit's class does not change.
 */
export interface AugmentOptions {
  /** Augmented copies per training sample (0 = none). */
  copies: number;
  /** Maximum shift in pixels along each axis (default 2). */
  maxShift?: number;
  /** Maximum rotation in degrees, either way (default 12). */
  maxRotation?: number;
  /** Maximum relative zoom, either way (default 0.1 → scale in [0.9, 1.1]). */
  maxScale?: number;
  /** Maximum elastic displacement in pixels of a smooth random field (default 1; 0 = none). */
  elastic?: number;
  /** Image [height, width]; default: the last two dims of the model input, or a square. */
  imageShape?: [number, number];
}

/** Control points per side of the coarse elastic displacement grid (bilinearly upsampled). */
const ELASTIC_GRID = 4;

function validate(opts: AugmentOptions): Required<Omit<AugmentOptions, 'imageShape'>> {
  const o = {
    copies: opts.copies,
    maxShift: opts.maxShift ?? 2,
    maxRotation: opts.maxRotation ?? 12,
    maxScale: opts.maxScale ?? 0.1,
    elastic: opts.elastic ?? 1,
  };
  if (!Number.isInteger(o.copies) || o.copies < 0) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `augment.copies must be a non-negative integer, got ${o.copies}`,
    );
  }
  for (const [k, v] of Object.entries(o)) {
    if (!Number.isFinite(v) || v < 0) {
      throw new OutpostError('VALIDATION_FAILED', `augment.${k} must be a finite number ≥ 0, got ${v}`);
    }
  }
  if (o.maxScale >= 1) throw new OutpostError('VALIDATION_FAILED', `augment.maxScale must be < 1`);
  return o;
}

/**
 * The [height, width] of the images in a sample of `features` values: `imageShape` when given, else
 * the last two dims of `sampleShape` (e.g. [1, 28, 28]), else the square root of the feature count.
 * Any remaining factor is the number of channels (planar, each transformed alike).
 */
export function resolveImageShape(
  features: number,
  sampleShape: number[] | undefined,
  imageShape?: [number, number],
): { h: number; w: number; channels: number } {
  let hw = imageShape;
  if (!hw && sampleShape && sampleShape.length >= 2) {
    hw = sampleShape.slice(-2) as [number, number];
  }
  if (!hw) {
    const side = Math.round(Math.sqrt(features));
    hw = [side, side];
  }
  const [h, w] = hw;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1 || features % (h * w) !== 0) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `augmentation needs images: ${features} values per sample are not a whole number of ${h}×${w} planes`,
    );
  }
  return { h, w, channels: features / (h * w) };
}

function bilinear(img: Float32Array, base: number, h: number, w: number, y: number, x: number): number {
  const y0 = Math.floor(y);
  const x0 = Math.floor(x);
  const fy = y - y0;
  const fx = x - x0;
  let v = 0;
  for (let dy = 0; dy <= 1; dy++) {
    const yy = y0 + dy;
    if (yy < 0 || yy >= h) continue;
    const wy = dy === 0 ? 1 - fy : fy;
    for (let dx = 0; dx <= 1; dx++) {
      const xx = x0 + dx;
      if (xx < 0 || xx >= w) continue;
      v += wy * (dx === 0 ? 1 - fx : fx) * (img[base + yy * w + xx] ?? 0);
    }
  }
  return v;
}

/**
 * Returns `copies` augmented versions of each of the `n` samples in `x` (sample-major: all copies of
 * sample 0, then of sample 1, ...), `n * copies * features` values. Deterministic for a given seed.
 *
 * @example
 * const extra = augmentImages(train.x, train.n, { copies: 2, maxShift: 2, maxRotation: 10 }, 7, [1, 28, 28]);
 */
export function augmentImages(
  x: Float32Array,
  n: number,
  opts: AugmentOptions,
  seed: number,
  sampleShape?: number[],
): Float32Array {
  const o = validate(opts);
  if (n <= 0 || x.length % n !== 0) {
    throw new OutpostError('VALIDATION_FAILED', `${x.length} values do not split into ${n} samples`);
  }
  const features = x.length / n;
  const { h, w, channels } = resolveImageShape(features, sampleShape, opts.imageShape);
  const out = new Float32Array(n * o.copies * features);
  const rand = mulberry32(seed);
  const u = (m: number) => (rand() * 2 - 1) * m;
  const cy = (h - 1) / 2;
  const cx = (w - 1) / 2;
  const g = ELASTIC_GRID;
  const field = new Float32Array(g * g * 2);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < o.copies; c++) {
      const theta = (u(o.maxRotation) * Math.PI) / 180;
      const scale = 1 + u(o.maxScale);
      const ty = u(o.maxShift);
      const tx = u(o.maxShift);
      for (let k = 0; k < field.length; k++) field[k] = u(o.elastic);
      // Inverse map: output pixel p → source = R(−θ)·(p − c − t)/scale + c (+ elastic offset).
      const cos = Math.cos(theta) / scale;
      const sin = Math.sin(theta) / scale;
      const dst = (i * o.copies + c) * features;
      for (let py = 0; py < h; py++) {
        const gy = (py / Math.max(1, h - 1)) * (g - 1);
        const gy0 = Math.min(g - 2, Math.floor(gy));
        const fy = gy - gy0;
        for (let px = 0; px < w; px++) {
          const gx = (px / Math.max(1, w - 1)) * (g - 1);
          const gx0 = Math.min(g - 2, Math.floor(gx));
          const fx = gx - gx0;
          let ey = 0;
          let ex = 0;
          if (o.elastic > 0 && g >= 2) {
            const at = (yy: number, xx: number, d: number) => field[(yy * g + xx) * 2 + d] ?? 0;
            for (let d = 0; d < 2; d++) {
              const v =
                (1 - fy) * ((1 - fx) * at(gy0, gx0, d) + fx * at(gy0, gx0 + 1, d)) +
                fy * ((1 - fx) * at(gy0 + 1, gx0, d) + fx * at(gy0 + 1, gx0 + 1, d));
              if (d === 0) ey = v;
              else ex = v;
            }
          }
          const qy = py - cy - ty;
          const qx = px - cx - tx;
          const sy = cos * qy - sin * qx + cy + ey;
          const sx = sin * qy + cos * qx + cx + ex;
          for (let ch = 0; ch < channels; ch++) {
            const plane = ch * h * w;
            out[dst + plane + py * w + px] = bilinear(x, i * features + plane, h, w, sy, sx);
          }
        }
      }
    }
  }
  return out;
}
