import { float16BitsToNumber } from '@outpost/common';
import Long from 'long';
import { OutpostError } from '@outpost/protocol';
import type { TensorDtype } from '@outpost/protocol';
import { DataType } from './types.ts';
import type { Int64, TensorProto } from './types.ts';

/**
 * Tensor helpers: read a TensorProto's values whichever storage it uses (raw_data or the typed
 * `*_data` arrays) and build initializers from typed arrays. ONNX raw_data is little-endian; every
 * platform Node runs on in practice is too, which lets raw bytes be reinterpreted after one copy
 * (the copy also fixes alignment: raw_data is usually a view at an odd offset of the file buffer).
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * int64 (Long or number) → number; throws ONNX_UNSUPPORTED beyond ±2^53 where a number would be inexact.
 *
 * @example
 * int64ToNumber(weight.dims[0]) // 128
 */
export function int64ToNumber(v: Int64 | null | undefined): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  const n = v.toNumber();
  if (!Number.isSafeInteger(n))
    throw new OutpostError('ONNX_UNSUPPORTED', `int64 value ${v.toString()} exceeds 2^53`);
  return n;
}

/**
 * number / bigint → Long (the type protobufjs decodes int64 to), for building messages.
 *
 * @example
 * const dims = [1, 28, 28].map((d) => toLong(d));
 */
export function toLong(v: number | bigint): Long {
  return typeof v === 'bigint' ? Long.fromString(v.toString()) : Long.fromNumber(v);
}

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(DataType).map(([k, v]) => [v, k]));

/**
 * ONNX data type code → its name (e.g. 1 → `FLOAT`); unknown codes read `TYPE_<n>`.
 *
 * @example
 * dataTypeName(7) // 'INT64'
 */
export function dataTypeName(code: number): string {
  return NAMES[code] ?? `TYPE_${code}`;
}

const TO_DTYPE: Partial<Record<number, TensorDtype>> = {
  [DataType.FLOAT]: 'float32',
  [DataType.FLOAT16]: 'float16',
  [DataType.DOUBLE]: 'float64',
  [DataType.INT8]: 'int8',
  [DataType.UINT8]: 'uint8',
  [DataType.INT16]: 'int16',
  [DataType.UINT16]: 'uint16',
  [DataType.INT32]: 'int32',
  [DataType.UINT32]: 'uint32',
  [DataType.INT64]: 'int64',
  [DataType.UINT64]: 'uint64',
  [DataType.BOOL]: 'bool',
  [DataType.STRING]: 'string',
};

/**
 * ONNX data type code → the protocol's `TensorDtype`, or undefined when the protocol has no equivalent.
 *
 * @example
 * dataTypeToDtype(DataType.FLOAT) // 'float32'
 */
export function dataTypeToDtype(code: number): TensorDtype | undefined {
  return TO_DTYPE[code];
}

/**
 * protocol `TensorDtype` → ONNX data type code.
 *
 * @example
 * dtypeToDataType('int64') // 7
 */
export function dtypeToDataType(dtype: TensorDtype): number {
  for (const [code, d] of Object.entries(TO_DTYPE)) if (d === dtype) return Number(code);
  throw new OutpostError('ONNX_UNSUPPORTED', `no ONNX type for ${dtype}`);
}

const ELEMENT_BYTES: Partial<Record<number, number>> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.UINT16]: 2,
  [DataType.INT16]: 2,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4,
  [DataType.UINT64]: 8,
  [DataType.COMPLEX64]: 8,
  [DataType.COMPLEX128]: 16,
  [DataType.BFLOAT16]: 2,
  [DataType.FLOAT8E4M3FN]: 1,
  [DataType.FLOAT8E4M3FNUZ]: 1,
  [DataType.FLOAT8E5M2]: 1,
  [DataType.FLOAT8E5M2FNUZ]: 1,
  [DataType.FLOAT8E8M0]: 1,
};

/**
 * Bytes per element of a fixed-size data type (4-bit types report 0.5); undefined for STRING/unknown.
 *
 * @example
 * bytesPerElement(DataType.FLOAT16) // 2
 */
export function bytesPerElement(code: number): number | undefined {
  if (code === DataType.INT4 || code === DataType.UINT4 || code === DataType.FLOAT4E2M1) return 0.5;
  return ELEMENT_BYTES[code];
}

/**
 * The tensor's dims as numbers.
 *
 * @example
 * tensorDims(weight) // [128, 800]
 */
export function tensorDims(t: TensorProto): number[] {
  return (t.dims ?? []).map(int64ToNumber);
}

/**
 * Number of elements (product of dims; 1 for a scalar).
 *
 * @example
 * tensorElementCount(weight) // 102400
 */
export function tensorElementCount(t: TensorProto): number {
  return tensorDims(t).reduce((a, b) => a * b, 1);
}

/**
 * Bytes the tensor's payload occupies in the file (raw_data or typed arrays).
 *
 * @example
 * const bytes = model.graph.initializer.reduce((a, t) => a + tensorByteSize(t), 0);
 */
export function tensorByteSize(t: TensorProto): number {
  if (t.raw_data && t.raw_data.length > 0) return t.raw_data.length;
  const per = bytesPerElement(t.data_type ?? 0);
  if (per !== undefined) return Math.ceil(tensorElementCount(t) * per);
  return (t.string_data ?? []).reduce((a, s) => a + s.length, 0);
}

/** Typed array produced by {@link readTensor}, by data type. */
export type TensorValues =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

type TypedCtor = {
  new (buf: ArrayBuffer): TensorValues;
  new (n: number): TensorValues;
  BYTES_PER_ELEMENT: number;
};

const CTORS: Partial<Record<number, TypedCtor>> = {
  [DataType.FLOAT]: Float32Array,
  [DataType.DOUBLE]: Float64Array,
  [DataType.INT8]: Int8Array,
  [DataType.UINT8]: Uint8Array,
  [DataType.BOOL]: Uint8Array,
  [DataType.INT16]: Int16Array,
  [DataType.UINT16]: Uint16Array,
  [DataType.FLOAT16]: Uint16Array,
  [DataType.BFLOAT16]: Uint16Array,
  [DataType.INT32]: Int32Array,
  [DataType.UINT32]: Uint32Array,
  [DataType.INT64]: BigInt64Array,
  [DataType.UINT64]: BigUint64Array,
};

/**
 * Reads a tensor's values as the typed array of its data type (FLOAT16/BFLOAT16 as raw Uint16 bits,
 * BOOL as Uint8). External data, strings, complex, 4-bit and 8-bit float types throw ONNX_UNSUPPORTED;
 * a payload whose size disagrees with the dims throws ONNX_PARSE_FAILED.
 *
 * @example
 * const w = readTensor(initializer) as Float32Array;
 */
export function readTensor(t: TensorProto): TensorValues {
  const code = t.data_type ?? 0;
  const name = t.name ?? '(unnamed)';
  if (t.data_location === 1 || (t.external_data?.length ?? 0) > 0) {
    throw new OutpostError('ONNX_UNSUPPORTED', `tensor ${name} stores its data externally`);
  }
  const Ctor = CTORS[code];
  if (!Ctor) throw new OutpostError('ONNX_UNSUPPORTED', `tensor ${name} has data type ${dataTypeName(code)}`);
  const count = tensorElementCount(t);
  const raw = t.raw_data;
  if (raw && raw.length > 0) {
    if (!LITTLE_ENDIAN) throw new OutpostError('ONNX_UNSUPPORTED', 'raw_data needs a little-endian host');
    if (raw.length !== count * Ctor.BYTES_PER_ELEMENT) {
      throw new OutpostError(
        'ONNX_PARSE_FAILED',
        `tensor ${name}: raw_data has ${raw.length} bytes, dims need ${count * Ctor.BYTES_PER_ELEMENT}`,
      );
    }
    // Uint8Array.prototype.slice copies (Buffer#slice would not), giving an aligned, private buffer.
    const copy = Uint8Array.prototype.slice.call(raw);
    return new Ctor(copy.buffer);
  }
  const src = typedSource(t, code);
  if (src.length !== count) {
    throw new OutpostError('ONNX_PARSE_FAILED', `tensor ${name}: ${src.length} values, dims need ${count}`);
  }
  const out = new Ctor(count);
  if (out instanceof BigInt64Array || out instanceof BigUint64Array) {
    const longs = src as Int64[];
    for (let i = 0; i < count; i++) {
      const v = longs[i] ?? 0;
      out[i] = typeof v === 'number' ? BigInt(v) : BigInt(v.toString());
    }
  } else {
    const nums = src as number[];
    for (let i = 0; i < count; i++) out[i] = nums[i] ?? 0;
  }
  return out;
}

function typedSource(t: TensorProto, code: number): number[] | Int64[] {
  switch (code) {
    case DataType.FLOAT:
      return t.float_data ?? [];
    case DataType.DOUBLE:
      return t.double_data ?? [];
    case DataType.INT64:
      return t.int64_data ?? [];
    case DataType.UINT32:
      return (t.uint64_data ?? []).map(int64ToNumber);
    case DataType.UINT64:
      return t.uint64_data ?? [];
    default:
      // INT8/UINT8/INT16/UINT16/INT32/BOOL and the 16-bit floats (as bits) live in int32_data.
      return t.int32_data ?? [];
  }
}

/**
 * IEEE half-precision bits → number.
 *
 * @example
 * float16ToNumber(0x3c00) // 1
 */
export const float16ToNumber: (h: number) => number = float16BitsToNumber;

/**
 * Reads any real numeric tensor as float32 (FLOAT16/BFLOAT16 decoded, integers converted).
 *
 * @example
 * const bias = tensorToFloat32(graph.initializer[1]);
 */
export function tensorToFloat32(t: TensorProto): Float32Array {
  const values = readTensor(t);
  const code = t.data_type ?? 0;
  if (values instanceof Float32Array) return values;
  const out = new Float32Array(values.length);
  if (code === DataType.FLOAT16) {
    for (let i = 0; i < values.length; i++) out[i] = float16ToNumber(Number(values[i]));
  } else if (code === DataType.BFLOAT16) {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < values.length; i++) u32[i] = Number(values[i]) << 16;
  } else {
    for (let i = 0; i < values.length; i++) out[i] = Number(values[i]);
  }
  return out;
}

/**
 * Reads an integer tensor (INT64/INT32/...) as plain numbers, e.g. shapes and axes.
 *
 * @example
 * const shape = tensorToNumbers(shapeInitializer); // [1, -1]
 */
export function tensorToNumbers(t: TensorProto): number[] {
  return Array.from(readTensor(t) as ArrayLike<number | bigint>, (v) => Number(v));
}

function dataTypeOf(values: TensorValues): number {
  if (values instanceof Float32Array) return DataType.FLOAT;
  if (values instanceof Float64Array) return DataType.DOUBLE;
  if (values instanceof Int8Array) return DataType.INT8;
  if (values instanceof Uint8Array) return DataType.UINT8;
  if (values instanceof Int16Array) return DataType.INT16;
  if (values instanceof Uint16Array) return DataType.UINT16;
  if (values instanceof Int32Array) return DataType.INT32;
  if (values instanceof Uint32Array) return DataType.UINT32;
  if (values instanceof BigInt64Array) return DataType.INT64;
  return DataType.UINT64;
}

/**
 * Builds a TensorProto (stored as raw_data) from a typed array; the data type follows the array type
 * unless `dataType` overrides it (e.g. BOOL for a Uint8Array, FLOAT16 for Uint16 bits).
 *
 * @example
 * const scale = makeTensor('w_scale', new Float32Array([0.02]), []);
 * const shape = makeTensor('shape', new BigInt64Array([1n, -1n]), [2]);
 */
export function makeTensor(
  name: string,
  values: TensorValues,
  dims: number[],
  dataType?: number,
): TensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== values.length) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `tensor ${name}: ${values.length} values for dims [${dims.join(',')}]`,
    );
  }
  if (!LITTLE_ENDIAN) throw new OutpostError('ONNX_UNSUPPORTED', 'raw_data needs a little-endian host');
  return {
    dims: dims.map((d) => toLong(d)),
    data_type: dataType ?? dataTypeOf(values),
    name,
    raw_data: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
  };
}
