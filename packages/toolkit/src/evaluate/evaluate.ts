import { OutpostError } from '@outpost/protocol';
import type { Dataset } from '../datasets/index.ts';
import { loadModel, ort, pickInput, runSession } from '../runtime/index.ts';

export interface EvaluateOptions {
  /** Samples per inference call when the batch dimension is symbolic (default 64). */
  batchSize?: number;
  /** Intra-op threads (default 1). */
  threads?: number;
  /** Which input to feed; required only when the model has several. */
  inputName?: string;
  /** Keep the raw outputs (needed by {@link compareOutputs}; default true). */
  keepLogits?: boolean;
  /** Called after every batch. */
  onProgress?: (done: number, total: number) => void;
}

export interface EvaluationResult {
  n: number;
  /** Fraction of samples whose arg-max equals the label (0–1). */
  accuracy: number;
  predictions: Uint8Array;
  /** Output values, `n * classes`, when `keepLogits` is on. */
  logits?: Float32Array;
  /** Number of output values per sample. */
  classes: number;
}

/**
 * Resolves the per-sample shape from the model input: dim 0 is the batch, the remaining dims must hold
 * exactly `features` values. A single symbolic non-batch dim is inferred; anything else that does not
 * fit is TENSOR_SHAPE_MISMATCH.
 */
function sampleShape(shape: (number | string)[], features: number, name: string): number[] {
  if (shape.length === 0) throw new OutpostError('TENSOR_SHAPE_MISMATCH', `input ${name} is a scalar`);
  const rest = shape.slice(1);
  const known = rest.filter((d): d is number => typeof d === 'number').reduce((a, b) => a * b, 1);
  const symbolic = rest.filter((d) => typeof d !== 'number').length;
  if (symbolic > 1 || (symbolic === 1 && features % known !== 0) || (symbolic === 0 && known !== features)) {
    throw new OutpostError(
      'TENSOR_SHAPE_MISMATCH',
      `input ${name} has shape [${shape.join(', ')}], which cannot hold ${features} values per sample`,
    );
  }
  return rest.map((d) => (typeof d === 'number' ? d : features / known));
}

/**
 * Runs a classifier over a dataset with onnxruntime-node and scores top-1 accuracy. The input layout
 * (e.g. [N,1,28,28] or [N,784]) comes from the model's input metadata; a fixed batch dimension is
 * honoured (the last batch is zero-padded and the padding discarded).
 *
 * @example
 * const r = await evaluate('mnist_cnn.onnx', await loadMnistU8(x, y), { onProgress: bar.update });
 * console.log(`${(r.accuracy * 100).toFixed(2)} %`);
 */
export async function evaluate(
  model: string | Uint8Array,
  dataset: Dataset,
  opts: EvaluateOptions = {},
): Promise<EvaluationResult> {
  const { n } = dataset;
  if (n <= 0 || dataset.x.length % n !== 0 || dataset.y.length < n) {
    throw new OutpostError('VALIDATION_FAILED', `dataset of ${n} samples has ${dataset.x.length} values`);
  }
  const features = dataset.x.length / n;
  const loaded = await loadModel(model, { threads: opts.threads ?? 1 });
  try {
    const input = pickInput(loaded.inputs, opts.inputName);
    if (input.dtype !== 'float32') {
      throw new OutpostError(
        'ONNX_UNSUPPORTED',
        `input ${input.name} is ${input.dtype}; evaluate feeds float32`,
      );
    }
    const perSample = sampleShape(input.shape, features, input.name);
    const fixedBatch = typeof input.shape[0] === 'number' ? input.shape[0] : undefined;
    const batch = fixedBatch ?? Math.max(1, Math.floor(opts.batchSize ?? 64));
    const outputName = loaded.outputs[0]?.name;
    if (!outputName) throw new OutpostError('ONNX_UNSUPPORTED', 'model has no output');

    const predictions = new Uint8Array(n);
    let logits: Float32Array | undefined;
    let classes = 0;
    let correct = 0;
    for (let start = 0; start < n; start += batch) {
      const count = Math.min(batch, n - start);
      const rows = fixedBatch ?? count;
      const data = new Float32Array(rows * features);
      data.set(dataset.x.subarray(start * features, (start + count) * features));
      const out = await runSession(loaded.session, {
        [input.name]: new ort.Tensor('float32', data, [rows, ...perSample]),
      });
      const t = out[outputName];
      if (!t || t.type !== 'float32')
        throw new OutpostError('INFERENCE_FAILED', `output ${outputName} is not float32`);
      const values = t.data as Float32Array;
      const c = values.length / rows;
      if (classes === 0) {
        classes = c;
        if (opts.keepLogits !== false) logits = new Float32Array(n * c);
      }
      for (let i = 0; i < count; i++) {
        const row = values.subarray(i * c, (i + 1) * c);
        let best = 0;
        for (let k = 1; k < c; k++) if ((row[k] ?? -Infinity) > (row[best] ?? -Infinity)) best = k;
        predictions[start + i] = best;
        if (best === dataset.y[start + i]) correct++;
        logits?.set(row, (start + i) * c);
      }
      opts.onProgress?.(start + count, n);
    }
    const result: EvaluationResult = { n, accuracy: correct / n, predictions, classes };
    if (logits) result.logits = logits;
    return result;
  } finally {
    await loaded.release();
  }
}

export interface OutputComparison {
  /** Fraction of samples on which both variants predict the same class. */
  top1Agreement: number;
  /** Mean over samples of the cosine similarity of the two output vectors. */
  meanCosine: number;
}

/**
 * Compares two evaluations of the same dataset (e.g. fp32 vs int8): how often they agree on the class
 * and how close their output vectors are.
 *
 * @example
 * const { top1Agreement, meanCosine } = compareOutputs(fp32Result, int8Result);
 */
export function compareOutputs(
  a: Pick<EvaluationResult, 'n' | 'predictions' | 'logits'>,
  b: Pick<EvaluationResult, 'n' | 'predictions' | 'logits'>,
): OutputComparison {
  if (a.n !== b.n || a.n === 0)
    throw new OutpostError('VALIDATION_FAILED', `cannot compare ${a.n} with ${b.n} samples`);
  let agree = 0;
  for (let i = 0; i < a.n; i++) if (a.predictions[i] === b.predictions[i]) agree++;
  if (!a.logits || !b.logits || a.logits.length !== b.logits.length) {
    throw new OutpostError('VALIDATION_FAILED', 'both results need logits of the same size (keepLogits)');
  }
  const c = a.logits.length / a.n;
  let cosSum = 0;
  for (let i = 0; i < a.n; i++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let k = i * c; k < (i + 1) * c; k++) {
      const x = a.logits[k] ?? 0;
      const y = b.logits[k] ?? 0;
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    // Two all-zero vectors are identical; one zero vector against a non-zero one shares no direction.
    cosSum += na === 0 && nb === 0 ? 1 : na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
  }
  return { top1Agreement: agree / a.n, meanCosine: cosSum / a.n };
}
