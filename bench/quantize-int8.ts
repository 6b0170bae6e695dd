/**
 * Dynamic int8 quantization benchmark: Outpost's quantizer against fp32 and ONNX Runtime's own
 * `quantize_dynamic` output, on the 2,000-digit MNIST eval split, in one run.
 *
 *   node --import tsx bench/quantize-int8.ts
 *
 * Accuracy figures come from a full pass over the split; latency from batch-1, 1-thread runs measured
 * in interleaved rounds (every round times every variant, in a rotating order) so that noise from the
 * shared machine hits all variants alike. Results: printed table + bench/results/quantize-int8.json.
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
  summarizeLatencies,
} from '@outpost/toolkit';
import type { BenchSession, EvaluationResult, LatencyStats } from '@outpost/toolkit';
import { formatTable } from './lib/table.ts';

const root = new URL('..', import.meta.url).pathname;
const shared = process.env.OUTPOST_SHARED_MODELS ?? join(root, '..', 'shared', 'models');
const WARMUP = 100;
const ROUNDS = 60;
const PER_ROUND = 250;

interface Variant {
  name: string;
  bytes: Uint8Array;
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
  const fp32Model = decodeModel(fp32Bytes);
  const variants: Variant[] = [{ name: 'fp32', bytes: fp32Bytes, latencies: [] }];
  const quantizeReports: Record<string, unknown> = {};
  for (const [name, opts] of [
    ['outpost dynamic u8', { weightType: 'uint8' as const }],
    ['outpost dynamic s8', { weightType: 'int8' as const }],
    ['outpost dynamic u8 per-channel', { weightType: 'uint8' as const, perChannel: true }],
  ] as const) {
    const q = quantizeDynamic(fp32Model, opts);
    quantizeReports[name] = {
      quantized: q.report.quantized.length,
      skipped: q.report.skipped.length,
      opsetBumped: q.report.opsetBumped ?? null,
    };
    variants.push({ name, bytes: encodeModel(q.model), latencies: [] });
  }
  variants.push({
    name: 'ORT quantize_dynamic u8',
    bytes: readFileSync(join(shared, 'mnist_cnn.ort_dynamic_u8.onnx')),
    latencies: [],
  });

  const ds = await loadMnistU8(join(shared, 'mnist-eval-x.u8'), join(shared, 'mnist-eval-y.u8'));
  for (const v of variants) {
    v.eval = await evaluate(v.bytes, ds, { batchSize: 100 });
    log(`evaluated ${v.name}: ${(v.eval.accuracy * 100).toFixed(2)} %`);
  }

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
  const baseEval = base.eval as EvaluationResult;
  const baseStats = summarizeLatencies(base.latencies);
  const results = variants.map((v) => {
    const stats: LatencyStats = summarizeLatencies(v.latencies);
    const cmp = v === base ? undefined : compareOutputs(baseEval, v.eval as EvaluationResult);
    return {
      variant: v.name,
      sizeBytes: v.bytes.length,
      sizeRatio: v.bytes.length / base.bytes.length,
      accuracy: (v.eval as EvaluationResult).accuracy,
      top1AgreementWithFp32: cmp?.top1Agreement ?? null,
      meanCosineVsFp32: cmp?.meanCosine ?? null,
      p50Ms: stats.p50Ms,
      p95Ms: stats.p95Ms,
      p99Ms: stats.p99Ms,
      meanMs: stats.meanMs,
      p50RatioVsFp32: stats.p50Ms / baseStats.p50Ms,
      latencySamples: v.latencies.length,
    };
  });

  const table = formatTable(
    ['variant', 'size B', 'size ×', 'accuracy', 'top-1 agr', 'cosine', 'p50 ms', 'p95 ms', 'p99 ms', 'p50 ×'],
    results.map((r) => [
      r.variant,
      String(r.sizeBytes),
      r.sizeRatio.toFixed(3),
      `${(r.accuracy * 100).toFixed(2)} %`,
      r.top1AgreementWithFp32 === null ? '—' : `${(r.top1AgreementWithFp32 * 100).toFixed(2)} %`,
      r.meanCosineVsFp32 === null ? '—' : r.meanCosineVsFp32.toFixed(5),
      r.p50Ms.toFixed(4),
      r.p95Ms.toFixed(4),
      r.p99Ms.toFixed(4),
      r.p50RatioVsFp32.toFixed(2),
    ]),
  );
  console.log(
    `\nMNIST CNN, ${ds.n} eval digits; latency: batch 1, 1 thread, ${ROUNDS}×${PER_ROUND} interleaved runs per variant\n`,
  );
  console.log(table);

  const out = {
    benchmark: 'quantize-int8',
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version },
    onnxruntime: JSON.parse(readFileSync(join(root, 'node_modules/onnxruntime-node/package.json'), 'utf8'))
      .version,
    dataset: { name: 'mnist-eval', n: ds.n },
    latency: { batch: 1, threads: 1, warmup: WARMUP, rounds: ROUNDS, perRound: PER_ROUND },
    quantizeReports,
    results,
    wallSeconds: (performance.now() - t0) / 1000,
  };
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  atomicWriteFileSync(join(dir, 'quantize-int8.json'), `${JSON.stringify(out, null, 2)}\n`);
  log(`\nwrote bench/results/quantize-int8.json in ${out.wallSeconds.toFixed(1)} s`);
}

await main();
