import * as ort from 'onnxruntime-node';
import type { TensorSpec } from '@outpost/protocol';
import { OutpostError } from '@outpost/protocol';
import { decodeModel, readModelBytes } from '../onnx/index.ts';
import { valueInfoToSpec } from '../inspect/index.ts';

/**
 * A loaded onnxruntime-node session plus what the toolkit needs to feed it: the encoded bytes and the
 * graph's real inputs/outputs as protocol TensorSpecs (taken from the ONNX graph itself, so symbolic
 * dims keep their names).
 */
export interface LoadedModel {
  session: ort.InferenceSession;
  bytes: Uint8Array;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Milliseconds spent creating the session (graph optimisation + weight prepacking). */
  loadMs: number;
  release(): Promise<void>;
}

export interface SessionOptions {
  /** Intra-op threads (default 1: reproducible timings, and edge devices often have one core to spare). */
  threads?: number;
}

/**
 * Reads a model path (or takes bytes) and returns its bytes; errors are NOT_FOUND / IO_FAILED.
 *
 * @example
 * const bytes = await modelBytesOf(pathOrBytes);
 */
export async function modelBytesOf(model: string | Uint8Array): Promise<Uint8Array> {
  return typeof model === 'string' ? readModelBytes(model) : model;
}

/**
 * Opens an onnxruntime-node CPU session. Unparseable bytes are ONNX_PARSE_FAILED; a model ONNX Runtime
 * refuses to load (unknown op, bad graph) is ONNX_UNSUPPORTED.
 *
 * @example
 * const m = await loadModel('mnist_cnn.onnx', { threads: 1 });
 * console.log(m.inputs[0].shape); // ['batch', 1, 28, 28]
 * await m.release();
 */
export async function loadModel(model: string | Uint8Array, opts: SessionOptions = {}): Promise<LoadedModel> {
  const bytes = await modelBytesOf(model);
  const decoded = decodeModel(bytes);
  const inits = new Set((decoded.graph.initializer ?? []).map((t) => t.name));
  const inputs = (decoded.graph.input ?? []).filter((vi) => !inits.has(vi.name)).map(valueInfoToSpec);
  const outputs = (decoded.graph.output ?? []).map(valueInfoToSpec);
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new OutpostError('VALIDATION_FAILED', `threads must be a positive integer, got ${threads}`);
  }
  const t0 = performance.now();
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    });
  } catch (err) {
    throw new OutpostError(
      'ONNX_UNSUPPORTED',
      `ONNX Runtime cannot load the model: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const loadMs = performance.now() - t0;
  return { session, bytes, inputs, outputs, loadMs, release: () => session.release() };
}

/**
 * Runs a session, mapping runtime failures to INFERENCE_FAILED.
 *
 * @example
 * const out = await runSession(m.session, { input: tensor });
 */
export async function runSession(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
): Promise<ort.InferenceSession.ReturnType> {
  try {
    return await session.run(feeds);
  } catch (err) {
    throw new OutpostError('INFERENCE_FAILED', `inference failed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Picks the input to feed: `name` when given, else the single real input of the graph.
 *
 * @example
 * const input = pickInput(loaded.inputs, opts.inputName);
 */
export function pickInput(inputs: TensorSpec[], name?: string): TensorSpec {
  if (name !== undefined) {
    const found = inputs.find((i) => i.name === name);
    if (!found) {
      throw new OutpostError(
        'TENSOR_SHAPE_MISMATCH',
        `model has no input ${name} (inputs: ${inputs.map((i) => i.name).join(', ')})`,
      );
    }
    return found;
  }
  if (inputs.length !== 1 || !inputs[0]) {
    throw new OutpostError(
      'TENSOR_SHAPE_MISMATCH',
      `model has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}); say which one to feed`,
    );
  }
  return inputs[0];
}

export { ort };
