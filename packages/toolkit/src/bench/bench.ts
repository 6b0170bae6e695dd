import { percentile } from '@outpost/common';
import type { TensorSpec } from '@outpost/protocol';
import { OutpostError } from '@outpost/protocol';
import { loadModel, ort, runSession } from '../runtime/index.ts';

export interface BenchOptions {
  /** Untimed runs first, to warm caches and let ORT finish lazy initialisation (default 20). */
  warmup?: number;
  /** Timed runs (default 200). */
  iterations?: number;
  /** Value given to every symbolic dimension of the inputs (default 1). */
  batch?: number;
  /** Intra-op threads (default 1). */
  threads?: number;
  /** Exact dims for some inputs (e.g. `{ input: [1, 512] }` for an audio model), overriding the metadata. */
  inputShapes?: Record<string, number[]>;
  /** A constant value for some inputs (e.g. `{ sr: 16000 }`) instead of the synthetic default. */
  inputFill?: Record<string, number>;
  /** Called after each warm-up and timed run: `done` of `warmup + iterations`. */
  onProgress?: (done: number, total: number) => void;
}

/** How {@link syntheticFeeds} builds inputs. */
export type FeedOptions = Pick<BenchOptions, 'inputShapes' | 'inputFill'>;

export interface LatencyStats {
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
  /** Samples per second at the mean latency (batch / mean). */
  throughputPerSec: number;
}

export interface BenchResult extends LatencyStats {
  iterations: number;
  batch: number;
  threads: number;
  /** Peak resident set size of the measuring process (bytes), from getrusage. */
  peakRssBytes: number;
  /** RSS just before the session was created (runtime and Node already loaded). */
  rssBeforeLoadBytes: number;
  /** Session creation time in ms. */
  loadMs: number;
}

/**
 * Deterministic PRNG (mulberry32): benchmark inputs must not vary between runs or variants.
 *
 * @example
 * const rand = mulberry32(42); rand(); // 0.6011...
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Builds one deterministic input tensor per spec: symbolic dims take `batch`, floats are uniform in
 * [0, 1) from a fixed seed, integers and booleans are zero (a safe index / flag for most models).
 * `inputShapes` / `inputFill` override both for models whose inputs need specific sizes or values.
 *
 * @example
 * const feeds = syntheticFeeds(loaded.inputs, 1, { inputShapes: { input: [1, 512] }, inputFill: { sr: 16000 } });
 */
export function syntheticFeeds(
  inputs: TensorSpec[],
  batch: number,
  opts: FeedOptions = {},
  seed = 42,
): Record<string, ort.Tensor> {
  const rand = mulberry32(seed);
  const feeds: Record<string, ort.Tensor> = {};
  for (const spec of inputs) {
    const dims = opts.inputShapes?.[spec.name] ?? spec.shape.map((d) => (typeof d === 'number' ? d : batch));
    const count = dims.reduce((a, b) => a * b, 1);
    const fill = opts.inputFill?.[spec.name];
    if (fill !== undefined) {
      feeds[spec.name] = constantTensor(spec, dims, count, fill);
      continue;
    }
    switch (spec.dtype) {
      case 'float32': {
        const data = new Float32Array(count);
        for (let i = 0; i < count; i++) data[i] = rand();
        feeds[spec.name] = new ort.Tensor('float32', data, dims);
        break;
      }
      case 'float64': {
        const data = new Float64Array(count);
        for (let i = 0; i < count; i++) data[i] = rand();
        feeds[spec.name] = new ort.Tensor('float64', data, dims);
        break;
      }
      case 'int64':
        feeds[spec.name] = new ort.Tensor('int64', new BigInt64Array(count), dims);
        break;
      case 'int32':
        feeds[spec.name] = new ort.Tensor('int32', new Int32Array(count), dims);
        break;
      case 'uint8':
        feeds[spec.name] = new ort.Tensor('uint8', new Uint8Array(count), dims);
        break;
      case 'int8':
        feeds[spec.name] = new ort.Tensor('int8', new Int8Array(count), dims);
        break;
      case 'bool':
        feeds[spec.name] = new ort.Tensor('bool', new Uint8Array(count), dims);
        break;
      default:
        throw new OutpostError('ONNX_UNSUPPORTED', `cannot synthesise ${spec.dtype} input ${spec.name}`);
    }
  }
  return feeds;
}

function constantTensor(spec: TensorSpec, dims: number[], count: number, v: number): ort.Tensor {
  switch (spec.dtype) {
    case 'float32':
      return new ort.Tensor('float32', new Float32Array(count).fill(v), dims);
    case 'float64':
      return new ort.Tensor('float64', new Float64Array(count).fill(v), dims);
    case 'int64':
      return new ort.Tensor('int64', new BigInt64Array(count).fill(BigInt(Math.trunc(v))), dims);
    case 'int32':
      return new ort.Tensor('int32', new Int32Array(count).fill(v), dims);
    case 'uint8':
      return new ort.Tensor('uint8', new Uint8Array(count).fill(v), dims);
    case 'int8':
      return new ort.Tensor('int8', new Int8Array(count).fill(v), dims);
    case 'bool':
      return new ort.Tensor('bool', new Uint8Array(count).fill(v ? 1 : 0), dims);
    default:
      throw new OutpostError('ONNX_UNSUPPORTED', `cannot fill ${spec.dtype} input ${spec.name}`);
  }
}

/**
 * Latency percentiles (nearest rank), mean and throughput from per-run latencies.
 *
 * @example
 * const s = summarizeLatencies([1.2, 1.1, 1.3], 1); // s.p50Ms === 1.2
 */
export function summarizeLatencies(ms: number[], batch = 1): LatencyStats {
  const sorted = [...ms].sort((a, b) => a - b);
  const meanMs = ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length);
  return {
    p50Ms: percentile(sorted, 0.5),
    p95Ms: percentile(sorted, 0.95),
    p99Ms: percentile(sorted, 0.99),
    meanMs,
    minMs: sorted[0] ?? NaN,
    maxMs: sorted[sorted.length - 1] ?? NaN,
    throughputPerSec: meanMs > 0 ? (batch * 1000) / meanMs : 0,
  };
}

/** An open session that can be timed in rounds, so several variants can be measured interleaved. */
export interface BenchSession {
  inputs: TensorSpec[];
  loadMs: number;
  rssBeforeLoadBytes: number;
  /** Runs `count` inferences on the fixed synthetic inputs and returns each one's latency in ms. */
  time(count: number, onEach?: () => void): Promise<number[]>;
  release(): Promise<void>;
}

/**
 * Loads a model for benchmarking with deterministic synthetic inputs.
 *
 * @example
 * const s = await openBenchSession('model.onnx', { batch: 1, threads: 1 });
 * await s.time(20); // warm-up
 * const stats = summarizeLatencies(await s.time(200));
 * await s.release();
 */
export async function openBenchSession(
  model: string | Uint8Array,
  opts: Pick<BenchOptions, 'batch' | 'threads' | 'inputShapes' | 'inputFill'> = {},
): Promise<BenchSession> {
  const batch = opts.batch ?? 1;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new OutpostError('VALIDATION_FAILED', `batch must be a positive integer, got ${batch}`);
  }
  const rssBeforeLoadBytes = process.memoryUsage.rss();
  const loaded = await loadModel(model, { threads: opts.threads ?? 1 });
  const feeds = syntheticFeeds(loaded.inputs, batch, opts);
  return {
    inputs: loaded.inputs,
    loadMs: loaded.loadMs,
    rssBeforeLoadBytes,
    async time(count, onEach) {
      const out: number[] = [];
      for (let i = 0; i < count; i++) {
        const t0 = performance.now();
        await runSession(loaded.session, feeds);
        out.push(performance.now() - t0);
        onEach?.();
      }
      return out;
    },
    release: () => loaded.release(),
  };
}

/**
 * Benchmarks a model in this process: warm-up, then `iterations` timed single-batch runs.
 * `peakRssBytes` is this process's lifetime peak; use {@link benchmarkInChild} to attribute memory
 * to the model alone.
 *
 * @example
 * const r = await benchmark('mnist_cnn.onnx', { iterations: 500, onProgress: (d, t) => bar.update(d / t) });
 * console.log(formatBench(r));
 */
export async function benchmark(model: string | Uint8Array, opts: BenchOptions = {}): Promise<BenchResult> {
  const warmup = opts.warmup ?? 20;
  const iterations = opts.iterations ?? 200;
  const batch = opts.batch ?? 1;
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(warmup) || warmup < 0 || !Number.isInteger(iterations) || iterations < 1) {
    throw new OutpostError('VALIDATION_FAILED', `bad warmup/iterations: ${warmup}/${iterations}`);
  }
  const s = await openBenchSession(model, { ...opts, batch, threads });
  try {
    const total = warmup + iterations;
    let done = 0;
    const tick = () => opts.onProgress?.(++done, total);
    await s.time(warmup, tick);
    const ms = await s.time(iterations, tick);
    return {
      ...summarizeLatencies(ms, batch),
      iterations,
      batch,
      threads,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      rssBeforeLoadBytes: s.rssBeforeLoadBytes,
      loadMs: s.loadMs,
    };
  } finally {
    await s.release();
  }
}

const MiB = 1024 * 1024;

/**
 * Renders a benchmark result for the CLI.
 *
 * @example
 * console.log(formatBench(await benchmarkInChild('model.onnx', {})));
 */
export function formatBench(r: BenchResult): string {
  const rows: [string, string][] = [
    ['runs', `${r.iterations} × batch ${r.batch}, ${r.threads} thread${r.threads === 1 ? '' : 's'}`],
    ['latency p50', `${r.p50Ms.toFixed(3)} ms`],
    ['latency p95', `${r.p95Ms.toFixed(3)} ms`],
    ['latency p99', `${r.p99Ms.toFixed(3)} ms`],
    ['latency mean', `${r.meanMs.toFixed(3)} ms`],
    ['throughput', `${r.throughputPerSec.toFixed(1)} samples/s`],
    ['load time', `${r.loadMs.toFixed(1)} ms`],
    [
      'peak RSS',
      `${(r.peakRssBytes / MiB).toFixed(1)} MiB (before load ${(r.rssBeforeLoadBytes / MiB).toFixed(1)} MiB)`,
    ],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}
