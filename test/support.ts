import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Shared fixtures for the end-to-end tests: reference data from ../shared and temp dirs. */

export const SHARED_MODELS = fileURLToPath(new URL('../../shared/models', import.meta.url));
export const FP32_MODEL = join(SHARED_MODELS, 'mnist_cnn.onnx');

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `outpost-${prefix}-`));
}

/** The first `n` digits of the held-out eval split: x = pixel/255 as [n,1,28,28], y = labels. */
export function evalDigits(n: number): { x: Float32Array; y: Uint8Array } {
  const xs = readFileSync(join(SHARED_MODELS, 'mnist-eval-x.u8'));
  const ys = readFileSync(join(SHARED_MODELS, 'mnist-eval-y.u8'));
  const x = new Float32Array(n * 784);
  for (let i = 0; i < n * 784; i++) x[i] = xs[i]! / 255;
  return { x, y: new Uint8Array(ys.subarray(0, n)) };
}

export const digit = (x: Float32Array, k: number) => Array.from(x.subarray(k * 784, (k + 1) * 784));

export const argmax = (v: readonly number[]) => v.indexOf(Math.max(...v));
