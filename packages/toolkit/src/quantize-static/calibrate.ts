import { OutpostError } from '@outpost/protocol';
import type { TensorSpec } from '@outpost/protocol';
import { encodeModel } from '../onnx/index.ts';
import type { ModelProto, ValueInfoProto } from '../onnx/index.ts';
import { valueInfoToSpec } from '../inspect/index.ts';
import { ort, runSession } from '../runtime/index.ts';
import { Histogram, RangeStats, entropyRange, percentileRange } from './histogram.ts';
import type {
  CalibrationArray,
  CalibrationData,
  CalibrationFeed,
  CalibrationMethod,
  CalibrationTensor,
} from './types.ts';

/**
 * Calibration as ONNX Runtime's calibrator does it: every intermediate tensor of the main graph is
 * exposed as an extra graph output (outputs without a declared type; ORT infers it), the model runs on
 * the calibration feeds in batches, and each float32 tensor's values feed a statistics collector.
 */

/**
 * The graph's real inputs (initializers that are also listed as inputs are not fed).
 *
 * @example
 * modelInputs(model) // [{ name: 'input', dtype: 'float32', shape: ['batch', 1, 28, 28] }]
 */
export function modelInputs(model: ModelProto): TensorSpec[] {
  const graph = model.graph;
  if (!graph) throw new OutpostError('ONNX_PARSE_FAILED', 'model has no graph');
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  return (graph.input ?? []).filter((vi) => !inits.has(vi.name)).map(valueInfoToSpec);
}

const ARRAY_DTYPE: [new (n: number) => CalibrationArray, string][] = [
  [Float32Array, 'float32'],
  [Int32Array, 'int32'],
  [BigInt64Array, 'int64'],
  [Uint8Array, 'uint8'],
  [Int8Array, 'int8'],
];

function dtypeOf(data: CalibrationArray): string {
  for (const [Ctor, dtype] of ARRAY_DTYPE) if (data instanceof Ctor) return dtype;
  return 'unknown';
}

function mismatch(message: string): OutpostError {
  return new OutpostError('TENSOR_SHAPE_MISMATCH', message);
}

/**
 * Checks every feed against the model's inputs: same names, element type, rank, fixed dimensions and a
 * data length equal to the product of the dims. Empty data → VALIDATION_FAILED; anything that does not
 * fit the model → TENSOR_SHAPE_MISMATCH.
 *
 * @example
 * validateCalibration(modelInputs(model), feeds);
 */
export function validateCalibration(inputs: TensorSpec[], data: CalibrationData): void {
  // (`data as unknown` so that the check does not narrow the readonly array type to any[].)
  if (!Array.isArray(data as unknown) || data.length === 0) {
    throw new OutpostError('VALIDATION_FAILED', 'the calibration set is empty: give at least one input feed');
  }
  const names = new Set(inputs.map((i) => i.name));
  data.forEach((feed, k) => {
    if (feed === null || typeof feed !== 'object') {
      throw new OutpostError('VALIDATION_FAILED', `calibration feed ${k} is not an object of tensors`);
    }
    for (const name of Object.keys(feed)) {
      if (!names.has(name)) {
        throw mismatch(`calibration feed ${k} has input ${name}, the model has ${[...names].join(', ')}`);
      }
    }
    for (const spec of inputs) {
      const t = feed[spec.name];
      if (!t) throw mismatch(`calibration feed ${k} lacks input ${spec.name}`);
      if (!ArrayBuffer.isView(t.data) || !Array.isArray(t.dims)) {
        throw new OutpostError(
          'VALIDATION_FAILED',
          `calibration feed ${k}: ${spec.name} needs data and dims`,
        );
      }
      const dtype = dtypeOf(t.data);
      if (dtype !== spec.dtype && !(spec.dtype === 'bool' && dtype === 'uint8')) {
        throw mismatch(`calibration feed ${k}: ${spec.name} is ${dtype}, the model expects ${spec.dtype}`);
      }
      const count = t.dims.reduce((a, b) => a * b, 1);
      const fits =
        t.dims.length === spec.shape.length &&
        t.dims.every(
          (d, i) =>
            Number.isInteger(d) && d >= 0 && (typeof spec.shape[i] !== 'number' || spec.shape[i] === d),
        );
      if (!fits || count !== t.data.length) {
        throw mismatch(
          `calibration feed ${k}: ${spec.name} has dims [${t.dims.join(', ')}] and ${t.data.length} values; ` +
            `the model expects [${spec.shape.join(', ')}]`,
        );
      }
    }
  });
}

/**
 * Joins consecutive feeds along dim 0 (up to `batch` rows) when every input's batch dim is symbolic and
 * the other dims agree; otherwise returns the feeds as they are. Statistics do not depend on batching.
 *
 * @example
 * batchFeeds(modelInputs(model), feeds, 32).length // 7 for 200 single-digit feeds
 */
export function batchFeeds(inputs: TensorSpec[], data: CalibrationData, batch: number): CalibrationFeed[] {
  const batchable = inputs.every((i) => i.shape.length > 0 && typeof i.shape[0] !== 'number');
  if (!batchable || batch <= 1) return [...data];
  const key = (f: CalibrationFeed) =>
    inputs.map((i) => (f[i.name] as CalibrationTensor).dims.slice(1).join('x')).join('|');
  const out: CalibrationFeed[] = [];
  let group: CalibrationFeed[] = [];
  let rows = 0;
  const flush = () => {
    if (group.length === 0) return;
    const joined: CalibrationFeed = {};
    for (const spec of inputs) {
      const parts = group.map((f) => f[spec.name] as CalibrationTensor);
      const first = parts[0] as CalibrationTensor;
      const total = parts.reduce((a, p) => a + p.data.length, 0);
      const Ctor = first.data.constructor as new (n: number) => CalibrationArray;
      const data = new Ctor(total);
      let off = 0;
      for (const p of parts) {
        (data as Float32Array).set(p.data as Float32Array, off);
        off += p.data.length;
      }
      joined[spec.name] = {
        data,
        dims: [parts.reduce((a, p) => a + (p.dims[0] ?? 0), 0), ...first.dims.slice(1)],
      };
    }
    out.push(joined);
    group = [];
    rows = 0;
  };
  for (const feed of data) {
    const n = (feed[inputs[0]?.name ?? ''] as CalibrationTensor | undefined)?.dims[0] ?? 1;
    if (group.length > 0 && (rows + n > batch || key(group[0] as CalibrationFeed) !== key(feed))) flush();
    group.push(feed);
    rows += n;
  }
  flush();
  return out;
}

/** Every value name produced by a node of the main graph, in order (subgraph internals are not visible). */
function nodeOutputs(model: ModelProto): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const n of model.graph?.node ?? []) {
    for (const o of n.output ?? []) {
      if (o && !seen.has(o)) {
        seen.add(o);
        out.push(o);
      }
    }
  }
  return out;
}

/** A session over the model with `extra` exposed as untyped graph outputs. */
async function augmentedSession(model: ModelProto, threads: number): Promise<ort.InferenceSession> {
  const graph = model.graph;
  if (!graph) throw new OutpostError('ONNX_PARSE_FAILED', 'model has no graph');
  const declared = new Set((graph.output ?? []).map((o) => o.name));
  const extra: ValueInfoProto[] = nodeOutputs(model)
    .filter((n) => !declared.has(n))
    .map((name) => ({ name }));
  const augmented: ModelProto = {
    ...model,
    graph: { ...graph, output: [...(graph.output ?? []), ...extra] },
  };
  try {
    return await ort.InferenceSession.create(encodeModel(augmented), {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      // Exact float values of every intermediate: no fusion may change what a tensor holds.
      graphOptimizationLevel: 'disabled',
      logSeverityLevel: 3,
    });
  } catch (err) {
    if (err instanceof OutpostError) throw err;
    throw new OutpostError(
      'ONNX_UNSUPPORTED',
      `ONNX Runtime cannot load the model: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/**
 * Element types of every value of the main graph (inputs and node outputs) as ONNX Runtime infers them,
 * e.g. `float32` or `int64`; values ORT cannot type are absent.
 *
 * @example
 * const types = await probeTensorTypes(model); // Map { '/c1/Conv_output_0' => 'float32', ... }
 */
export async function probeTensorTypes(model: ModelProto): Promise<Map<string, string>> {
  const session = await augmentedSession(model, 1);
  try {
    const types = new Map<string, string>();
    for (const m of [...session.inputMetadata, ...session.outputMetadata]) {
      if (m.isTensor) types.set(m.name, m.type);
    }
    return types;
  } finally {
    await session.release();
  }
}

export type Collector = RangeStats | Histogram;

export interface Calibration {
  /** One collector per float32 tensor (graph inputs and node outputs). */
  stats: Map<string, Collector>;
  /** Element type of every main-graph value, from ONNX Runtime. */
  types: Map<string, string>;
  /** Number of samples (rows of dim 0, or runs for unbatched models). */
  samples: number;
  runs: number;
}

export interface CalibrateOptions {
  method: CalibrationMethod;
  histogramBins: number;
  batchSize: number;
  threads?: number;
  onProgress?: (done: number, total: number, label?: string) => void;
}

function toOrt(t: CalibrationTensor, spec: TensorSpec | undefined): ort.Tensor {
  // Booleans travel as one byte each (Uint8Array), the layout ORT expects for 'bool'.
  if (spec?.dtype === 'bool') return new ort.Tensor('bool', t.data as Uint8Array, t.dims);
  const type = dtypeOf(t.data) as 'float32' | 'int32' | 'int64' | 'uint8' | 'int8';
  return new ort.Tensor(type, t.data, t.dims);
}

/**
 * Runs the model over the calibration set and collects statistics of every float32 tensor.
 *
 * @example
 * const cal = await collectCalibration(model, feeds, { method: 'minmax', histogramBins: 2048, batchSize: 32 });
 */
export async function collectCalibration(
  model: ModelProto,
  data: CalibrationData,
  opts: CalibrateOptions,
): Promise<Calibration> {
  const inputs = modelInputs(model);
  validateCalibration(inputs, data);
  const batches = batchFeeds(inputs, data, opts.batchSize);
  const session = await augmentedSession(model, opts.threads ?? 1);
  const stats = new Map<string, Collector>();
  const types = new Map<string, string>();
  for (const m of [...session.inputMetadata, ...session.outputMetadata])
    if (m.isTensor) types.set(m.name, m.type);
  const observe = (name: string, values: Float32Array) => {
    let c = stats.get(name);
    if (!c) {
      c = opts.method === 'minmax' ? new RangeStats() : new Histogram(opts.histogramBins);
      stats.set(name, c);
    }
    c.observe(values);
  };
  let samples = 0;
  try {
    for (let b = 0; b < batches.length; b++) {
      const feed = batches[b] as CalibrationFeed;
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feed)) {
        feeds[name] = toOrt(
          t,
          inputs.find((i) => i.name === name),
        );
        if (t.data instanceof Float32Array) observe(name, t.data);
      }
      const out = await runSession(session, feeds);
      for (const [name, t] of Object.entries(out)) {
        if (t.type === 'float32') observe(name, t.data as Float32Array);
        t.dispose();
      }
      samples += inputs.length > 0 ? ((feed[inputs[0]?.name ?? ''] as CalibrationTensor).dims[0] ?? 1) : 1;
      opts.onProgress?.(b + 1, batches.length, 'calibrating');
    }
  } finally {
    await session.release();
  }
  return { stats, types, samples, runs: batches.length };
}

/**
 * The range a calibration method picks for one tensor: raw min/max, a percentile, or the entropy threshold.
 *
 * @example
 * const [lo, hi] = rangeOf(cal.stats.get('/Relu_output_0')!, 'percentile', { percentile: 99.999, symmetric: false });
 */
export function rangeOf(
  c: Collector,
  method: CalibrationMethod,
  opts: { percentile: number; symmetric: boolean; quantizedBins: number },
): [number, number] {
  if (c instanceof Histogram) {
    if (method === 'percentile') return percentileRange(c, opts.percentile, opts.symmetric);
    if (method === 'entropy') return entropyRange(c, opts.quantizedBins);
    return [c.range.min, c.range.max];
  }
  return c.count === 0 ? [0, 0] : [c.min, c.max];
}

/** Observed min/max of a collector. */
export function observedRange(c: Collector): [number, number] {
  const r = c instanceof Histogram ? c.range : c;
  return r.count === 0 ? [0, 0] : [r.min, r.max];
}

/**
 * Calibration feeds from a flat array of samples (e.g. MNIST pixels): `count` feeds of shape
 * `[1, ...sampleDims]` under input `name`. Views, no copy.
 *
 * @example
 * const feeds = feedsFromSamples('input', train.x, [1, 28, 28], 200);
 */
export function feedsFromSamples(
  name: string,
  x: Float32Array,
  sampleDims: number[],
  count?: number,
): CalibrationFeed[] {
  const per = sampleDims.reduce((a, b) => a * b, 1);
  if (!(per > 0) || x.length % per !== 0) {
    throw new OutpostError(
      'TENSOR_SHAPE_MISMATCH',
      `${x.length} values do not split into samples of [${sampleDims.join(', ')}]`,
    );
  }
  const n = Math.min(x.length / per, count ?? Infinity);
  return Array.from({ length: n }, (_, i) => ({
    [name]: { data: x.subarray(i * per, (i + 1) * per), dims: [1, ...sampleDims] },
  }));
}
