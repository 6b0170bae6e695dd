import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { OutpostError, type InferenceTensor, type TensorSpec } from '@outpost/protocol';
import { checkTensor, fromOrtTensor, toOrtTensor, type OutputTensor, type TensorMeta } from './tensors.ts';

export interface RuntimeOptions {
  /** onnxruntime intra-op threads (per session). */
  intraOpThreads: number;
  /** When given, the model's input and output names (and dtypes) must be exactly these. */
  expect?: { inputs: readonly TensorSpec[]; outputs: readonly TensorSpec[] };
}

export interface InferResult {
  outputs: Record<string, OutputTensor>;
  /** Milliseconds spent inside `session.run`. */
  inferMs: number;
}

/** How long `release()` waits for in-flight runs before it frees the session anyway. */
const DRAIN_TIMEOUT_MS = 30_000;

function metaOf(m: ort.InferenceSession.ValueMetadata): TensorMeta {
  if (!m.isTensor) return { name: m.name, dtype: null, shape: null };
  return { name: m.name, dtype: m.type, shape: m.shape.length ? [...m.shape] : null };
}

/**
 * One loaded ONNX model: an onnxruntime-node session plus the input checks and the drain logic that lets a
 * deployment swap models while requests are running (the old session is released only when its last run ends).
 */
export class ModelRuntime {
  readonly inputs: readonly TensorMeta[];
  readonly outputs: readonly TensorMeta[];
  private readonly session: ort.InferenceSession;
  private inflight = 0;
  private released = false;
  private drained: (() => void) | null = null;

  private constructor(session: ort.InferenceSession) {
    this.session = session;
    this.inputs = session.inputMetadata.map(metaOf);
    this.outputs = session.outputMetadata.map(metaOf);
  }

  /**
   * Loads a model file. A file onnxruntime cannot parse is ONNX_PARSE_FAILED; names or dtypes that differ from
   * `expect` (the signed manifest) are VALIDATION_FAILED, so a manifest cannot describe another model.
   *
   * @example
   * const rt = await ModelRuntime.load('/var/lib/outpost/models/mnist/1.0.0.onnx', { intraOpThreads: 1 });
   * const { outputs } = await rt.infer({ input: { dtype: 'float32', shape: [1, 1, 28, 28], data } });
   */
  static async load(path: string, opts: RuntimeOptions): Promise<ModelRuntime> {
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(path, {
        intraOpNumThreads: opts.intraOpThreads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
    } catch (err) {
      throw new OutpostError(
        'ONNX_PARSE_FAILED',
        `onnxruntime could not load the model: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const rt = new ModelRuntime(session);
    if (opts.expect) {
      try {
        rt.checkAgainst('input', rt.inputs, opts.expect.inputs);
        rt.checkAgainst('output', rt.outputs, opts.expect.outputs);
      } catch (err) {
        await session.release();
        throw err;
      }
    }
    return rt;
  }

  private checkAgainst(kind: string, actual: readonly TensorMeta[], expected: readonly TensorSpec[]): void {
    const got = actual.map((m) => m.name).sort();
    const want = expected.map((s) => s.name).sort();
    if (got.join('\0') !== want.join('\0')) {
      throw new OutpostError(
        'VALIDATION_FAILED',
        `the model's ${kind}s [${got.join(', ')}] differ from the manifest's [${want.join(', ')}]`,
      );
    }
    for (const spec of expected) {
      const m = actual.find((a) => a.name === spec.name);
      if (m?.dtype && m.dtype !== spec.dtype) {
        throw new OutpostError(
          'VALIDATION_FAILED',
          `${kind} '${spec.name}' is ${m.dtype} in the model but ${spec.dtype} in the manifest`,
        );
      }
    }
  }

  /**
   * Validates every input against the session metadata (TENSOR_SHAPE_MISMATCH on any difference) and runs the
   * model. A runtime failure after validation is INFERENCE_FAILED.
   */
  async infer(inputs: Record<string, InferenceTensor>): Promise<InferResult> {
    if (this.released) throw new OutpostError('NO_ACTIVE_MODEL', 'the model is being replaced; retry');
    const feeds: Record<string, ort.Tensor> = {};
    for (const meta of this.inputs) {
      const t = inputs[meta.name];
      if (!t) {
        throw new OutpostError(
          'TENSOR_SHAPE_MISMATCH',
          `missing input '${meta.name}' (the model's inputs: ${this.inputs.map((i) => i.name).join(', ')})`,
        );
      }
      checkTensor(meta.name, t, meta);
    }
    for (const name of Object.keys(inputs)) {
      if (!this.inputs.some((m) => m.name === name)) {
        throw new OutpostError(
          'TENSOR_SHAPE_MISMATCH',
          `unknown input '${name}' (the model's inputs: ${this.inputs.map((i) => i.name).join(', ')})`,
        );
      }
    }
    for (const meta of this.inputs) feeds[meta.name] = toOrtTensor(inputs[meta.name] as InferenceTensor);
    // Counted synchronously (no await above), so release() can never free the session under a started run.
    this.inflight++;
    try {
      const t0 = performance.now();
      let results: ort.InferenceSession.ReturnType;
      try {
        results = await this.session.run(feeds);
      } catch (err) {
        throw new OutpostError('INFERENCE_FAILED', `the runtime failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      const inferMs = performance.now() - t0;
      const outputs: Record<string, OutputTensor> = {};
      for (const [name, tensor] of Object.entries(results)) outputs[name] = fromOrtTensor(tensor);
      return { outputs, inferMs };
    } finally {
      this.inflight--;
      if (this.inflight === 0 && this.drained) this.drained();
    }
  }

  /** Stops new runs, waits for running ones (bounded), then frees the native session. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, DRAIN_TIMEOUT_MS);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await this.session.release();
  }
}
