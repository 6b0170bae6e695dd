/**
 * Static int8 (QDQ), float16 and dynamic int8 on the MNIST CNN, against fp32 and ONNX Runtime's own
 * reference files, in one run:
 *
 *   node --import tsx bench/quantize-static.ts
 *
 * Calibration: the first 200 digits of the train split (as ORT's reference). Accuracy: the 2,000-digit
 * eval split; top-1 agreement and mean cosine vs fp32: the first 1,000 eval digits. Latency: batch 1,
 * 1 thread, interleaved rounds (every round times every variant, rotating the order) so that noise from
 * the shared 2-core machine hits all variants alike. Results: table + bench/results/quantize-static.json.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { atomicWriteFileSync } from '@outpost/common';
import {
  compareOutputs,
  decodeModel,
  encodeModel,
  evaluate,
  loadMnistU8,
  openBenchSession,
  quantizeDynamic,
  sliceDataset,
  summarizeLatencies,
} from '@outpost/toolkit';
import type { BenchSession, EvaluationResult } from '@outpost/toolkit';
import { feedsFromSamples, quantizeStatic } from '@outpost/toolkit';
import type { QuantizeStaticOptions } from '@outpost/toolkit';
import { convertFp16 } from '@outpost/toolkit';
import { formatTable } from './lib/table.ts';

const root = new URL('..', import.meta.url).pathname;
const shared = process.env.OUTPOST_SHARED_MODELS ?? join(root, '..', 'shared', 'models');
const WARMUP = 200;
const ROUNDS = 100;
const PER_ROUND = 200;
const COMPARE_N = 1000;

interface Variant {
  name: string;
  bytes: Uint8Array;
  /** Milliseconds the Outpost transform took (calibration included). */
  buildMs?: number;
  notes?: Record<string, unknown>;
  eval?: EvaluationResult;
  session?: BenchSession;
  latencies: number[];
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const fp32Bytes = readFileSync(join(shared, 'mnist_cnn.onnx'));
  const fp32 = decodeModel(fp32Bytes);
  const train = await loadMnistU8(join(shared, 'mnist-train-x.u8'), join(shared, 'mnist-train-y.u8'), 200);
  const calib = feedsFromSamples('input', train.x, [1, 28, 28]);
  const variants: Variant[] = [{ name: 'fp32', bytes: fp32Bytes, latencies: [] }];

  const statics: [string, QuantizeStaticOptions][] = [
    ['static s8s8 minmax per-tensor (default)', {}],
    ['static u8s8 minmax per-tensor', { activationType: 'uint8' }],
    ['static s8s8 minmax per-channel', { perChannel: true }],
    ['static s8s8 percentile 99.999', { calibrationMethod: 'percentile' }],
    ['static s8s8 entropy', { calibrationMethod: 'entropy' }],
    ['static s8s8 minmax, 8-bit weights', { reduceRange: false }],
    ['static u8s8 minmax, 8-bit weights', { activationType: 'uint8', reduceRange: false }],
  ];
  for (const [name, opts] of statics) {
    const t = performance.now();
    const q = await quantizeStatic(fp32, calib, opts);
    variants.push({
      name,
      bytes: encodeModel(q.model),
      buildMs: performance.now() - t,
      notes: { settings: q.report.settings, skipped: q.report.skipped.length },
      latencies: [],
    });
    log(`built ${name}`);
  }
  for (const [name, cpuKernelsOnly] of [
    ['fp16 (CPU kernels: fp16 weights, fp32 compute)', true],
    ['fp16 (all ops fp16; ORT adds Casts)', false],
  ] as const) {
    const t = performance.now();
    const r = await convertFp16(fp32, { cpuKernelsOnly });
    variants.push({
      name,
      bytes: encodeModel(r.model),
      buildMs: performance.now() - t,
      notes: {
        converted: r.report.converted.length,
        keptFloat32: r.report.skipped.length,
        castsAdded: r.report.castsAdded,
        clamped: r.report.clamped,
      },
      latencies: [],
    });
  }
  {
    const t = performance.now();
    const d = quantizeDynamic(fp32);
    variants.push({
      name: 'dynamic u8',
      bytes: encodeModel(d.model),
      buildMs: performance.now() - t,
      latencies: [],
    });
  }
  for (const [name, file] of [
    ['ORT quantize_static QDQ s8 per-channel', 'mnist_cnn.ort_qdq_s8_perchannel.onnx'],
    ['ORT quantize_dynamic u8', 'mnist_cnn.ort_dynamic_u8.onnx'],
  ] as const) {
    variants.push({ name, bytes: readFileSync(join(shared, file)), latencies: [] });
  }

  const ds = await loadMnistU8(join(shared, 'mnist-eval-x.u8'), join(shared, 'mnist-eval-y.u8'));
  for (const v of variants) {
    v.eval = await evaluate(v.bytes, ds, { batchSize: 100 });
    log(`evaluated ${v.name}: ${(v.eval.accuracy * 100).toFixed(2)} %`);
  }
  const cut = (e: EvaluationResult) => ({
    n: COMPARE_N,
    predictions: e.predictions.subarray(0, COMPARE_N),
    logits: e.logits?.subarray(0, COMPARE_N * e.classes),
  });

  for (const v of variants) {
    v.session = await openBenchSession(v.bytes, { batch: 1, threads: 1 });
    await v.session.time(WARMUP);
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(r + k) % variants.length] as Variant;
      v.latencies.push(...(await (v.session as BenchSession).time(PER_ROUND)));
    }
    if ((r + 1) % 10 === 0) log(`latency round ${r + 1}/${ROUNDS}`);
  }
  for (const v of variants) await v.session?.release();

  const base = variants[0] as Variant;
  const baseStats = summarizeLatencies(base.latencies);
  const results = variants.map((v) => {
    const stats = summarizeLatencies(v.latencies);
    const cmp = v === base ? undefined : compareOutputs(cut(base.eval!), cut(v.eval!));
    return {
      variant: v.name,
      sizeBytes: v.bytes.length,
      sizeRatio: v.bytes.length / base.bytes.length,
      accuracy: v.eval!.accuracy,
      top1AgreementWithFp32: cmp?.top1Agreement ?? null,
      meanCosineVsFp32: cmp?.meanCosine ?? null,
      p50Ms: stats.p50Ms,
      p99Ms: stats.p99Ms,
      meanMs: stats.meanMs,
      p50RatioVsFp32: stats.p50Ms / baseStats.p50Ms,
      latencySamples: v.latencies.length,
      buildMs: v.buildMs ?? null,
      notes: v.notes ?? null,
    };
  });

  const table = formatTable(
    ['variant', 'size B', 'size ×', 'accuracy', 'top-1 agr', 'cosine', 'p50 ms', 'p99 ms', 'p50 ×'],
    results.map((r) => [
      r.variant,
      String(r.sizeBytes),
      r.sizeRatio.toFixed(3),
      `${(r.accuracy * 100).toFixed(2)} %`,
      r.top1AgreementWithFp32 === null ? '—' : `${(r.top1AgreementWithFp32 * 100).toFixed(1)} %`,
      r.meanCosineVsFp32 === null ? '—' : r.meanCosineVsFp32.toFixed(5),
      r.p50Ms.toFixed(4),
      r.p99Ms.toFixed(4),
      r.p50RatioVsFp32.toFixed(2),
    ]),
  );
  console.log(
    `\nMNIST CNN: accuracy on ${ds.n} eval digits; agreement/cosine vs fp32 on the first ${COMPARE_N}; ` +
      `latency batch 1, 1 thread, ${ROUNDS}×${PER_ROUND} interleaved runs per variant\n`,
  );
  console.log(table);

  const out = {
    benchmark: 'quantize-static',
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version },
    onnxruntime: JSON.parse(readFileSync(join(root, 'node_modules/onnxruntime-node/package.json'), 'utf8'))
      .version,
    calibration: { dataset: 'mnist-train', n: calib.length },
    dataset: { name: 'mnist-eval', n: ds.n, compareN: sliceDataset(ds, COMPARE_N).n },
    latency: { batch: 1, threads: 1, warmup: WARMUP, rounds: ROUNDS, perRound: PER_ROUND },
    results,
    wallSeconds: (performance.now() - t0) / 1000,
  };
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  atomicWriteFileSync(join(dir, 'quantize-static.json'), `${JSON.stringify(out, null, 2)}\n`);
  log(`\nwrote bench/results/quantize-static.json in ${out.wallSeconds.toFixed(1)} s`);
}

await main();
