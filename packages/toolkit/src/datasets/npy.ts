import { readFile } from 'node:fs/promises';
import { OutpostError } from '@outpost/protocol';

/** An array read from a NumPy `.npy` file (C order). */
export interface NpyArray {
  dtype: 'float32' | 'uint8';
  shape: number[];
  data: Float32Array | Uint8Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

function invalid(what: string, message: string): OutpostError {
  return new OutpostError('VALIDATION_FAILED', `${what}: ${message}`);
}

/**
 * Parses the bytes of a `.npy` file (format versions 1–3): little-endian float32 (`<f4`) or uint8
 * (`|u1`) in C order. Anything else — another dtype, big-endian, Fortran order, a header that is not the
 * dict NumPy writes, or a payload whose size disagrees with the shape — is VALIDATION_FAILED.
 *
 * @example
 * const { shape, data } = parseNpy(readFileSync('calib.npy')); // [200, 1, 28, 28], Float32Array
 */
export function parseNpy(bytes: Uint8Array, what = 'npy file'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b))
    throw invalid(what, 'not a .npy file (bad magic)');
  const major = bytes[6] as number;
  if (major < 1 || major > 3) throw invalid(what, `unsupported .npy format version ${major}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : bytes.length >= 12 ? view.getUint32(8, true) : -1;
  const start = major === 1 ? 10 : 12;
  if (headerLen < 0 || start + headerLen > bytes.length) throw invalid(what, 'truncated header');
  const header = Buffer.from(bytes.subarray(start, start + headerLen)).toString(
    major === 3 ? 'utf8' : 'latin1',
  );
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw invalid(what, `header is not a NumPy array description: ${header.trim().slice(0, 120)}`);
  }
  if (fortran === 'True') throw invalid(what, 'Fortran-order arrays are not supported; save with C order');
  let dtype: NpyArray['dtype'];
  if (descr === '<f4') dtype = 'float32';
  else if (descr === '|u1' || descr === '<u1') dtype = 'uint8';
  else throw invalid(what, `dtype ${descr} is not supported (little-endian float32 <f4 or uint8 |u1)`);
  const parts = shapeText.split(',').map((s) => s.trim());
  if (parts.at(-1) === '') parts.pop();
  const shape = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
  if (shape.some((d) => !Number.isSafeInteger(d))) throw invalid(what, `bad shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const itemSize = dtype === 'float32' ? 4 : 1;
  const payload = bytes.subarray(start + headerLen);
  if (payload.length !== count * itemSize) {
    throw invalid(
      what,
      `shape (${shape.join(', ')}) needs ${count * itemSize} bytes of data, the file has ${payload.length}`,
    );
  }
  // slice() copies into a fresh, aligned buffer (the payload offset is rarely a multiple of 4).
  const copy = Uint8Array.prototype.slice.call(payload);
  const data = dtype === 'float32' ? new Float32Array(copy.buffer) : copy;
  return { dtype, shape, data };
}

/**
 * Reads a `.npy` file (see {@link parseNpy}). A missing file is NOT_FOUND, other read errors IO_FAILED.
 *
 * @example
 * const calib = await loadNpy('calibration.npy');
 */
export async function loadNpy(path: string): Promise<NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OutpostError('NOT_FOUND', `no such file: ${path}`, { cause: err });
    throw new OutpostError('IO_FAILED', `could not read ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseNpy(bytes, path);
}
