import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import protobuf from 'protobufjs';
import { OutpostError } from '@outpost/protocol';
import { atomicWriteFile } from '@outpost/common';
import type { DecodedModel, ModelProto } from './types.ts';

/**
 * ONNX (de)serialisation with protobufjs over the hand-written `onnx.proto` beside this file.
 *
 * The schema is parsed once, lazily, with `keepCase` so that field names match the proto (and the ONNX
 * docs) exactly. int64 fields decode to `Long` (protobufjs ships with `long`), so dims, attribute ints
 * and ir_version stay exact even beyond 2^53.
 */

let modelType: protobuf.Type | undefined;

function schema(): protobuf.Type {
  if (modelType) return modelType;
  const text = readFileSync(new URL('./onnx.proto', import.meta.url), 'utf8');
  const { root } = protobuf.parse(text, { keepCase: true });
  modelType = root.lookupType('onnx.ModelProto');
  return modelType;
}

/**
 * The protobufjs reflection type of any ONNX message, e.g. `onnxType('TensorProto')`.
 *
 * @example
 * const bytes = onnxType('TensorProto').encode(tensor).finish();
 */
export function onnxType(name: string): protobuf.Type {
  return schema().root.lookupType(`onnx.${name}`);
}

function parseFailed(message: string, cause?: unknown): OutpostError {
  return new OutpostError('ONNX_PARSE_FAILED', message, cause === undefined ? undefined : { cause });
}

/**
 * Decodes ONNX protobuf bytes. Anything that is not a protobuf ModelProto with an `ir_version` and a
 * graph throws ONNX_PARSE_FAILED (never another error: decoding untrusted bytes must not crash callers).
 *
 * Fields unknown to this schema are kept (protobufjs `$unknowns`) and written back by {@link encodeModel}.
 *
 * @example
 * const model = decodeModel(await readFile('mnist.onnx'));
 * console.log(model.graph.node?.length);
 */
export function decodeModel(bytes: Uint8Array): DecodedModel {
  const type = schema();
  let decoded: protobuf.Message;
  try {
    decoded = type.decode(bytes);
  } catch (err) {
    throw parseFailed(`not an ONNX model: ${(err as Error).message}`, err);
  }
  const model = decoded as unknown as ModelProto;
  if (!Object.prototype.hasOwnProperty.call(model, 'ir_version')) {
    throw parseFailed('not an ONNX model: no ir_version');
  }
  if (!model.graph) throw parseFailed('not an ONNX model: it has no graph');
  return model as DecodedModel;
}

/**
 * Encodes a model (decoded or hand-built plain object) to ONNX protobuf bytes. Field types are checked
 * first, so a malformed object throws VALIDATION_FAILED instead of producing a corrupt file.
 *
 * @example
 * const bytes = encodeModel(decodeModel(original)); // byte-identical to `original`
 */
export function encodeModel(model: ModelProto): Uint8Array {
  const type = schema();
  const problem = type.verify(model as unknown as Record<string, unknown>);
  if (problem) throw new OutpostError('VALIDATION_FAILED', `invalid ONNX model object: ${problem}`);
  return type.encode(model as unknown as Record<string, unknown>).finish();
}

/**
 * Reads and decodes an ONNX file. A missing file is NOT_FOUND, other read errors IO_FAILED, bad
 * content ONNX_PARSE_FAILED.
 *
 * @example
 * const model = await readModelFile('models/mnist_cnn.onnx');
 */
export async function readModelFile(path: string): Promise<DecodedModel> {
  return decodeModel(await readModelBytes(path));
}

/**
 * Reads a file's bytes with Outpost's error codes (NOT_FOUND / IO_FAILED).
 *
 * @example
 * const bytes = await readModelBytes('model.onnx');
 */
export async function readModelBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OutpostError('NOT_FOUND', `no such model file: ${path}`, { cause: err });
    throw new OutpostError('IO_FAILED', `could not read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Encodes and writes a model atomically (temp file + fsync + rename), so readers never see half a model.
 *
 * @example
 * await writeModelFile('out/model.int8.onnx', quantized.model);
 */
export async function writeModelFile(path: string, model: ModelProto): Promise<number> {
  const bytes = encodeModel(model);
  await atomicWriteFile(path, bytes);
  return bytes.length;
}

/**
 * Paths of every message that carries fields this schema does not know (kept as protobufjs `$unknowns`).
 * Empty for any model that the schema fully describes; used by tests to prove the schema is complete.
 *
 * @example
 * assert.deepEqual(findUnknownFields(decodeModel(bytes)), []);
 */
export function findUnknownFields(message: unknown, path = 'model', out: string[] = []): string[] {
  if (message === null || typeof message !== 'object' || ArrayBuffer.isView(message)) return out;
  if (Array.isArray(message)) {
    message.forEach((m, i) => findUnknownFields(m, `${path}[${i}]`, out));
    return out;
  }
  const rec = message as Record<string, unknown>;
  const unknowns = rec.$unknowns;
  if (Array.isArray(unknowns) && unknowns.length > 0) out.push(path);
  for (const key of Object.keys(rec)) {
    const v = rec[key];
    if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && !isLongLike(v)) {
      findUnknownFields(v, `${path}.${key}`, out);
    }
  }
  return out;
}

function isLongLike(v: object): boolean {
  return 'low' in v && 'high' in v && 'unsigned' in v;
}
