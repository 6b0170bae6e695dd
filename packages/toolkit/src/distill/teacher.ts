import { OutpostError } from '@outpost/protocol';
import type { TensorSpec } from '@outpost/protocol';
import { DataType, decodeModel, tensorElementCount } from '../onnx/index.ts';
import type { ModelProto } from '../onnx/index.ts';
import { loadModel, ort, pickInput, runSession } from '../runtime/index.ts';

/** The teacher's view of a transfer set, computed once before training. */
export interface TeacherOutputs {
  /** `n * classes` logits (log-probabilities when the teacher outputs probabilities). */
  logits: Float32Array;
  n: number;
  classes: number;
  /** What the teacher's output was: raw logits, or probabilities turned into log-probabilities. */
  outputKind: 'logits' | 'probabilities';
  inputName: string;
  outputName: string;
  /** Per-sample input dims the teacher was fed (e.g. [1, 28, 28]). */
  sampleShape: number[];
  /** Parameter count of the teacher ({@link floatParameters}). */
  parameters: number;
  ms: number;
}

export interface TeacherOptions {
  /** Samples per inference call (default 256). */
  batchSize?: number;
  /** Intra-op threads for onnxruntime-node (default 1). */
  threads?: number;
  onProgress?: (done: number, total: number) => void;
}

function unsupported(message: string): OutpostError {
  return new OutpostError('ONNX_UNSUPPORTED', message);
}

/**
 * Per-sample dims that hold `features` values: the input's dims after the batch, with at most one
 * symbolic dim inferred. The batch dim must be symbolic: the transfer set is fed in batches.
 */
function sampleShapeOf(input: TensorSpec, features: number): number[] {
  const [batch, ...rest] = input.shape;
  if (batch === undefined) throw unsupported(`teacher input ${input.name} is a scalar`);
  if (typeof batch === 'number' && batch !== 1) {
    // A fixed batch > 1 would need padding; every exporter we target emits a symbolic batch.
    throw unsupported(`teacher input ${input.name} has a fixed batch of ${batch}`);
  }
  const known = rest.filter((d): d is number => typeof d === 'number').reduce((a, b) => a * b, 1);
  const symbolic = rest.length - rest.filter((d) => typeof d === 'number').length;
  if (symbolic > 1 || (symbolic === 1 && features % known !== 0) || (symbolic === 0 && known !== features)) {
    throw new OutpostError(
      'TENSOR_SHAPE_MISMATCH',
      `teacher input ${input.name} has shape [${input.shape.join(', ')}], which cannot hold ${features} values per sample`,
    );
  }
  return rest.map((d) => (typeof d === 'number' ? d : features / known));
}

/** True when every row is a probability distribution (softmax already applied by the teacher). */
function looksLikeProbabilities(v: Float32Array, n: number, c: number): boolean {
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let k = i * c; k < (i + 1) * c; k++) {
      const p = v[k] ?? -1;
      if (!(p >= 0 && p <= 1)) return false;
      sum += p;
    }
    if (Math.abs(sum - 1) > 1e-3) return false;
  }
  return true;
}

/**
 * Runs the teacher (any ONNX classifier onnxruntime-node can load) over `n` samples of `x` in batches
 * and returns its logits. The output must be [N, classes] with classes ≥ 2 (else ONNX_UNSUPPORTED);
 * a teacher that ends in softmax is detected and its probabilities turned into log-probabilities,
 * which differ from logits by a per-row constant and so give the same softened distributions.
 *
 * @example
 * const t = await computeTeacherLogits(teacherBytes, train.x, train.n, { batchSize: 256 });
 * console.log(t.classes, t.sampleShape); // 10 [1, 28, 28]
 */
export async function computeTeacherLogits(
  teacher: Uint8Array,
  x: Float32Array,
  n: number,
  opts: TeacherOptions = {},
): Promise<TeacherOutputs> {
  if (n <= 0 || x.length % n !== 0) {
    throw new OutpostError('VALIDATION_FAILED', `${x.length} values do not split into ${n} samples`);
  }
  const features = x.length / n;
  const t0 = performance.now();
  const loaded = await loadModel(teacher, { threads: opts.threads ?? 1 });
  try {
    const input = pickInput(loaded.inputs);
    if (input.dtype !== 'float32')
      throw unsupported(`teacher input ${input.name} is ${input.dtype}, not float32`);
    const out = loaded.outputs[0];
    if (!out) throw unsupported('teacher has no output');
    // A declared shape must be [N, classes]; an undeclared one ([] here) is checked on the first batch.
    if (out.shape.length !== 0 && out.shape.length !== 2) {
      throw unsupported(
        `teacher output ${out.name} has shape [${out.shape.join(', ')}]; distillation needs [N, classes]`,
      );
    }
    const sampleShape = sampleShapeOf(input, features);
    const batch = Math.max(1, Math.floor(opts.batchSize ?? 256));
    let logits: Float32Array | undefined;
    let classes = 0;
    for (let start = 0; start < n; start += batch) {
      const rows = Math.min(batch, n - start);
      const data = x.slice(start * features, (start + rows) * features);
      const result = await runSession(loaded.session, {
        [input.name]: new ort.Tensor('float32', data, [rows, ...sampleShape]),
      });
      const t = result[out.name];
      if (!t || t.type !== 'float32') throw unsupported(`teacher output ${out.name} is not float32`);
      if (t.dims.length !== 2 || t.dims[0] !== rows || (t.dims[1] ?? 0) < 2) {
        throw unsupported(
          `teacher output ${out.name} came back as [${t.dims.join(', ')}] for ${rows} samples; distillation needs [N, classes ≥ 2]`,
        );
      }
      if (!logits) {
        classes = t.dims[1] as number;
        logits = new Float32Array(n * classes);
      } else if (t.dims[1] !== classes) {
        throw unsupported(`teacher output width changed from ${classes} to ${t.dims[1]} between batches`);
      }
      logits.set(t.data as Float32Array, start * classes);
      opts.onProgress?.(start + rows, n);
    }
    if (!logits) throw new OutpostError('VALIDATION_FAILED', 'no samples');
    for (const v of logits) {
      if (!Number.isFinite(v)) throw unsupported('teacher produced non-finite outputs');
    }
    const probabilities = looksLikeProbabilities(logits, n, classes);
    if (probabilities)
      for (let i = 0; i < logits.length; i++) logits[i] = Math.log(Math.max(logits[i] ?? 0, 1e-30));
    return {
      logits,
      n,
      classes,
      outputKind: probabilities ? 'probabilities' : 'logits',
      inputName: input.name,
      outputName: out.name,
      sampleShape,
      parameters: floatParameters(teacher),
      ms: performance.now() - t0,
    };
  } finally {
    await loaded.release();
  }
}

const FLOAT_TYPES = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);

/**
 * Learned parameters of a model: the elements of its floating-point initializers. Integer
 * initializers (shapes, slice bounds, axes) are graph plumbing, not parameters.
 *
 * @example
 * floatParameters(await readFile('mnist_cnn.onnx')); // 108,618
 */
export function floatParameters(model: ModelProto | Uint8Array): number {
  const graph = (model instanceof Uint8Array ? decodeModel(model) : model).graph;
  let n = 0;
  for (const t of graph?.initializer ?? []) if (FLOAT_TYPES.has(t.data_type ?? 0)) n += tensorElementCount(t);
  return n;
}
