import { OutpostError } from '@outpost/protocol';
import type { TensorSpec } from '@outpost/protocol';
import type { Dataset } from '../datasets/index.ts';
import type { EvaluationResult } from '../evaluate/index.ts';
import { valueInfoToSpec } from '../inspect/index.ts';
import type { ModelProto } from '../onnx/index.ts';
import type { FloatFeed, ProfileSession } from '../profiles/index.ts';

/** How samples are fed to the model's single float input. */
export interface InputLayout {
  name: string;
  /** Dims of one sample (the input's shape without the batch dim). */
  perSample: number[];
  /** Set when the batch dim is fixed in the graph (the last batch is then zero-padded). */
  fixedBatch?: number;
  features: number;
}

/**
 * Works out how a dataset with `features` values per sample feeds the model's one real input: dim 0 is
 * the batch, the rest must hold exactly `features` values (one symbolic non-batch dim is inferred).
 * Models with several inputs, or a non-float32 input, are ONNX_UNSUPPORTED; a size that cannot fit is
 * TENSOR_SHAPE_MISMATCH.
 *
 * @example
 * inputLayout(decodeModel(bytes), 784); // { name: 'input', perSample: [1, 28, 28], features: 784 }
 */
export function inputLayout(model: ModelProto, features: number): InputLayout {
  const inits = new Set((model.graph?.initializer ?? []).map((t) => t.name));
  const inputs: TensorSpec[] = (model.graph?.input ?? [])
    .filter((vi) => !inits.has(vi.name))
    .map(valueInfoToSpec);
  const input = inputs[0];
  if (inputs.length !== 1 || !input) {
    throw new OutpostError(
      'ONNX_UNSUPPORTED',
      `autotune needs a model with one input; this one has ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`,
    );
  }
  if (input.dtype !== 'float32') {
    throw new OutpostError(
      'ONNX_UNSUPPORTED',
      `input ${input.name} is ${input.dtype}; autotune feeds float32`,
    );
  }
  const { shape } = input;
  if (shape.length === 0) throw new OutpostError('TENSOR_SHAPE_MISMATCH', `input ${input.name} is a scalar`);
  const rest = shape.slice(1);
  const known = rest.filter((d): d is number => typeof d === 'number').reduce((a, b) => a * b, 1);
  const symbolic = rest.filter((d) => typeof d !== 'number').length;
  if (symbolic > 1 || (symbolic === 1 && features % known !== 0) || (symbolic === 0 && known !== features)) {
    throw new OutpostError(
      'TENSOR_SHAPE_MISMATCH',
      `input ${input.name} has shape [${shape.join(', ')}], which cannot hold ${features} values per sample`,
    );
  }
  const layout: InputLayout = {
    name: input.name,
    perSample: rest.map((d) => (typeof d === 'number' ? d : features / known)),
    features,
  };
  if (typeof shape[0] === 'number') layout.fixedBatch = shape[0];
  return layout;
}

/**
 * Batch-1 feed of sample `index` (the latency benchmark input: a real sample, not noise, so that dynamic
 * quantization sees realistic activation ranges).
 *
 * @example
 * const feed = sampleFeed(layout, evalSet, 0);
 */
export function sampleFeed(layout: InputLayout, ds: Dataset, index: number): Record<string, FloatFeed> {
  const rows = layout.fixedBatch ?? 1;
  const data = new Float32Array(rows * layout.features);
  data.set(ds.x.subarray(index * layout.features, (index + 1) * layout.features));
  return { [layout.name]: { data, dims: [rows, ...layout.perSample] } };
}

/**
 * Top-1 accuracy of a classifier session over a dataset, keeping predictions and logits so that
 * `compareOutputs` can score agreement with fp32.
 *
 * @example
 * const r = await evaluateSession(session, layout, evalSet, 100);
 */
export async function evaluateSession(
  session: ProfileSession,
  layout: InputLayout,
  ds: Dataset,
  batchSize = 64,
): Promise<EvaluationResult> {
  const { n } = ds;
  const features = layout.features;
  const batch = layout.fixedBatch ?? Math.max(1, Math.floor(batchSize));
  const outputName = session.outputNames[0];
  if (!outputName) throw new OutpostError('ONNX_UNSUPPORTED', 'model has no output');
  const predictions = new Uint8Array(n);
  let logits: Float32Array | undefined;
  let classes = 0;
  let correct = 0;
  for (let start = 0; start < n; start += batch) {
    const count = Math.min(batch, n - start);
    const rows = layout.fixedBatch ?? count;
    const data = new Float32Array(rows * features);
    data.set(ds.x.subarray(start * features, (start + count) * features));
    const out = await session.run({ [layout.name]: { data, dims: [rows, ...layout.perSample] } });
    const t = out[outputName];
    if (!t || t.type !== 'float32' || !(t.data instanceof Float32Array)) {
      throw new OutpostError('INFERENCE_FAILED', `output ${outputName} is not float32`);
    }
    const values = t.data;
    const c = values.length / rows;
    if (classes === 0) {
      classes = c;
      logits = new Float32Array(n * c);
    }
    for (let i = 0; i < count; i++) {
      const row = values.subarray(i * c, (i + 1) * c);
      let best = 0;
      for (let k = 1; k < c; k++) if ((row[k] ?? -Infinity) > (row[best] ?? -Infinity)) best = k;
      predictions[start + i] = best;
      if (best === ds.y[start + i]) correct++;
      logits?.set(row, (start + i) * c);
    }
  }
  const result: EvaluationResult = { n, accuracy: correct / n, predictions, classes };
  if (logits) result.logits = logits;
  return result;
}

/**
 * Times `count` runs of one feed; returns each latency in ms.
 *
 * @example
 * const ms = await timeSession(session, feed, 100);
 */
export async function timeSession(
  session: ProfileSession,
  feed: Record<string, FloatFeed>,
  count: number,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await session.run(feed);
    out.push(performance.now() - t0);
  }
  return out;
}
