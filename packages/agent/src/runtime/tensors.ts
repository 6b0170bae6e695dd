import { float16BitsToNumber, float32ToFloat16Bits } from '@outpost/common';
import ort from 'onnxruntime-node';
import { OutpostError, type InferenceTensor, type TensorDtype } from '@outpost/protocol';

/**
 * Request validation and conversion between the local API's JSON tensors and onnxruntime tensors.
 * Every check happens here, before `session.run`, so a bad request is a clear TENSOR_SHAPE_MISMATCH naming the
 * input and the dimension instead of an opaque native error (or a crash).
 */

/** What the session says about one input or output. */
export interface TensorMeta {
  name: string;
  /** onnxruntime's element type (`float32`, `int64`, ...); null for non-tensor values. */
  dtype: string | null;
  /** Fixed sizes as numbers, symbolic dims as strings; null when the model does not declare a shape. */
  shape: (number | string)[] | null;
}

export interface OutputTensor {
  dtype: string;
  shape: number[];
  data: (number | string)[];
}

const BYTES_PER_ELEMENT: Partial<Record<TensorDtype, number>> = {
  float32: 4,
  float16: 2,
  float64: 8,
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  uint64: 8,
  bool: 1,
};

const INT_RANGE: Partial<Record<TensorDtype, [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};

/** Largest tensor accepted, in elements: bounds the allocation a single request can cause. */
export const MAX_ELEMENTS = 64 * 1024 * 1024;

function mismatch(message: string): OutpostError {
  return new OutpostError('TENSOR_SHAPE_MISMATCH', message);
}

const fmtShape = (s: readonly (number | string)[]) => `[${s.join(',')}]`;

/**
 * Checks one request tensor against the session's metadata; returns the element count.
 *
 * @example
 * checkTensor('input', { dtype: 'float32', shape: [1, 2], data: [0, 1] }, { name: 'input', dtype: 'float32', shape: ['batch', 2] }); // 2
 */
export function checkTensor(name: string, t: InferenceTensor, meta: TensorMeta): number {
  if (meta.dtype !== null && t.dtype !== meta.dtype) {
    throw mismatch(`input '${name}': dtype ${t.dtype}, the model expects ${meta.dtype}`);
  }
  if (meta.shape !== null && meta.shape.length > 0) {
    if (t.shape.length !== meta.shape.length) {
      throw mismatch(
        `input '${name}': rank ${t.shape.length} ${fmtShape(t.shape)}, the model expects rank ${meta.shape.length} ${fmtShape(meta.shape)}`,
      );
    }
    meta.shape.forEach((want, i) => {
      const got = t.shape[i] ?? -1;
      if (typeof want === 'number' && want >= 0) {
        if (got !== want) {
          throw mismatch(
            `input '${name}': dimension ${i} is ${got}, the model expects ${want} (shape ${fmtShape(meta.shape ?? [])})`,
          );
        }
      } else if (got < 1) {
        throw mismatch(`input '${name}': dimension ${i} (${String(want)}) must be at least 1, got ${got}`);
      }
    });
  }
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (count > MAX_ELEMENTS)
    throw mismatch(`input '${name}': ${count} elements exceed the cap of ${MAX_ELEMENTS}`);
  if (t.data !== undefined) {
    if (t.data.length !== count) {
      throw mismatch(
        `input '${name}': ${t.data.length} values for shape ${fmtShape(t.shape)}, which needs ${count} (the product of the shape)`,
      );
    }
    checkValues(name, t.dtype, t.data);
  } else {
    const width = BYTES_PER_ELEMENT[t.dtype];
    if (width === undefined) throw mismatch(`input '${name}': dtype ${t.dtype} cannot be given as dataB64`);
    const bytes = base64Length(t.dataB64 ?? '');
    if (bytes !== count * width) {
      throw mismatch(
        `input '${name}': dataB64 holds ${bytes} bytes, shape ${fmtShape(t.shape)} of ${t.dtype} needs ${count * width}`,
      );
    }
  }
  return count;
}

function checkValues(name: string, dtype: TensorDtype, data: readonly (number | boolean | string)[]): void {
  const range = INT_RANGE[dtype];
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    let ok: boolean;
    if (dtype === 'string') ok = typeof v === 'string';
    else if (dtype === 'bool') ok = typeof v === 'boolean' || v === 0 || v === 1;
    else if (range) ok = typeof v === 'number' && Number.isInteger(v) && v >= range[0] && v <= range[1];
    else ok = typeof v === 'number';
    if (!ok) throw mismatch(`input '${name}': value ${i} (${JSON.stringify(v)}) is not a valid ${dtype}`);
  }
}

/** Decoded length of a base64 string, or -1 when it is not base64. */
function base64Length(b64: string): number {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) return -1;
  const pad = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  return (b64.length / 4) * 3 - pad;
}

/**
 * Builds an onnxruntime tensor from an already checked request tensor.
 *
 * @example
 * toOrtTensor({ dtype: 'int64', shape: [2], data: [1, 2] }).data; // BigInt64Array [1n, 2n]
 */
export function toOrtTensor(t: InferenceTensor): ort.Tensor {
  const dims = t.shape;
  if (t.dataB64 !== undefined) {
    const buf = Buffer.from(t.dataB64, 'base64');
    // Copy into a fresh, aligned ArrayBuffer: a Buffer may sit at an odd offset of a shared pool.
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    return makeTensor(t.dtype, ab, dims);
  }
  const data = t.data ?? [];
  switch (t.dtype) {
    case 'string':
      return new ort.Tensor('string', data as string[], dims);
    case 'bool':
      return new ort.Tensor(
        'bool',
        Uint8Array.from(data, (v) => (v === true || v === 1 ? 1 : 0)),
        dims,
      );
    case 'int64':
      return new ort.Tensor(
        'int64',
        BigInt64Array.from(data as number[], (v) => BigInt(v)),
        dims,
      );
    case 'uint64':
      return new ort.Tensor(
        'uint64',
        BigUint64Array.from(data as number[], (v) => BigInt(v)),
        dims,
      );
    case 'float16':
      return new ort.Tensor('float16', Uint16Array.from(data as number[], floatToHalf), dims);
    default: {
      const Ctor = TYPED[t.dtype];
      return new ort.Tensor(t.dtype as 'float32', Ctor.from(data as number[]) as Float32Array, dims);
    }
  }
}

type NumericCtor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor;

const TYPED: Record<Exclude<TensorDtype, 'string' | 'bool' | 'int64' | 'uint64' | 'float16'>, NumericCtor> = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
};

function makeTensor(dtype: TensorDtype, ab: ArrayBuffer, dims: number[]): ort.Tensor {
  switch (dtype) {
    case 'int64':
      return new ort.Tensor('int64', new BigInt64Array(ab), dims);
    case 'uint64':
      return new ort.Tensor('uint64', new BigUint64Array(ab), dims);
    case 'float16':
      return new ort.Tensor('float16', new Uint16Array(ab), dims);
    case 'bool':
      return new ort.Tensor('bool', new Uint8Array(ab), dims);
    case 'string':
      throw mismatch('string tensors cannot be given as dataB64');
    default:
      return new ort.Tensor(dtype as 'float32', new TYPED[dtype](ab) as Float32Array, dims);
  }
}

/**
 * Converts a session output to JSON-friendly values (64-bit ints as numbers, float16 decoded, bool as 0/1).
 *
 * @example
 * fromOrtTensor(new ort.Tensor('float32', new Float32Array([1, 2]), [2])); // { dtype: 'float32', shape: [2], data: [1, 2] }
 */
export function fromOrtTensor(t: ort.Tensor): OutputTensor {
  const raw = t.data as ArrayLike<number | bigint | string>;
  let data: (number | string)[];
  if (t.type === 'float16') data = Array.from(raw as Uint16Array, halfToFloat);
  else if (t.type === 'string') data = Array.from(raw as string[]);
  else data = Array.from(raw, (v) => (typeof v === 'bigint' ? Number(v) : (v as number)));
  return { dtype: t.type, shape: [...t.dims], data };
}

/** IEEE-754 binary32 → binary16 bits, round to nearest even (shared with the toolkit, in @outpost/common). */
export const floatToHalf: (value: number) => number = float32ToFloat16Bits;
/** IEEE-754 binary16 bits → number. */
export const halfToFloat: (h: number) => number = float16BitsToNumber;
