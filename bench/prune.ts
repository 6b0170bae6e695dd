/**
 * Pruning benchmark on the MNIST CNN, one run: fp32; unstructured magnitude pruning at 50 % and 80 %
 * (global threshold); structured pruning of 50 % of the conv filters, before and after fine-tuning
 * (full and head-only). Accuracy on the 2,000-digit eval split; fine-tuning sees only the train split.
 *
 *   node --import tsx bench/prune.ts
 *
 * Latency: onnxruntime-node, 1 thread, batch 1 and batch 32, in interleaved rounds (every round times
 * every variant, rotating the order) so that noise from the shared machine hits all variants alike.
 * Results: printed tables + bench/results/prune.json.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { atomicWriteFileSync } from '@outpost/common';
import {
  decodeModel,
  encodeModel,
  evaluate,
  loadMnistU8,
  openBenchSession,
  readTensor,
  summarizeLatencies,
} from '@outpost/toolkit';
import type { BenchSession, LatencyStats, ModelProto } from '@outpost/toolkit';
import { computeCosts, modelSizes, probeShapes, pruneFilters, pruneMagnitude } from '@outpost/toolkit';
import { finetune } from '@outpost/toolkit';
import type { FinetuneResult } from '@outpost/toolkit';
import { formatTable } from './lib/table.ts';

const root = new URL('..', import.meta.url).pathname;
const shared = process.env.OUTPOST_SHARED_MODELS ?? join(root, '..', 'shared', 'models');
const WARMUP = 50;
const LATENCY = [
  { batch: 1, rounds: 60, perRound: 250 },
  { batch: 32, rounds: 40, perRound: 40 },
] as const;

interface Variant {
  name: string;
  model: ModelProto;
  bytes: Uint8Array;
  /** Time it (variants with identical graphs share the latency of the first). */
  timed: boolean;
  accuracy?: number;
  latency: Record<number, number[]>;
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** Float initializer elements, and how many of them are non-zero. */
function paramCounts(m: ModelProto): { params: number; nonzero: number } {
  let params = 0;
  let nonzero = 0;
  for (const t of m.graph?.initializer ?? []) {
    if (t.data_type !== 1) continue;
    const v = readTensor(t) as Float32Array;
    params += v.length;
    for (const x of v) if (x !== 0) nonzero++;
  }
  return { params, nonzero };
}

async function macsOf(m: ModelProto): Promise<number> {
  const decoded = decodeModel(encodeModel(m));
  return computeCosts(decoded.graph, await probeShapes(decoded)).reduce((a, c) => a + c.macs, 0);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const fp32 = decodeModel(readFileSync(join(shared, 'mnist_cnn.onnx')));
  const evalSet = await loadMnistU8(join(shared, 'mnist-eval-x.u8'), join(shared, 'mnist-eval-y.u8'));
  const train = await loadMnistU8(join(shared, 'mnist-train-x.u8'), join(shared, 'mnist-train-y.u8'));

  const mag50 = pruneMagnitude(fp32, { sparsity: 0.5, scope: 'global' });
  const mag80 = pruneMagnitude(fp32, { sparsity: 0.8, scope: 'global' });
  const filters = await pruneFilters(fp32, { ratio: 0.5, criterion: 'l1' });
  log(`filter pruning: ${filters.report.paramsBefore} → ${filters.report.paramsAfter} params`);

  const tunes: Record<string, FinetuneResult & { seconds: number }> = {};
  for (const [name, opts] of [
    ['full', { mode: 'full' as const, epochs: 3, learningRate: 5e-4 }],
    ['head', { mode: 'head' as const, epochs: 8, learningRate: 1e-3 }],
  ] as const) {
    const s0 = performance.now();
    let last = 0;
    const r = await finetune(filters.model, train, {
      ...opts,
      seed: 1,
      onProgress: (done, total, label) => {
        if (done === total || done - last >= total / 10) {
          last = done;
          log(`fine-tune ${name}: ${label} ${done}/${total}`);
        }
      },
    });
    tunes[name] = { ...r, seconds: (performance.now() - s0) / 1000 };
  }

  const variants: Variant[] = [
    { name: 'fp32', model: fp32, timed: true },
    { name: 'magnitude 50 % (global)', model: mag50.model, timed: true },
    { name: 'magnitude 80 % (global)', model: mag80.model, timed: true },
    { name: 'filters 50 %, no fine-tune', model: filters.model, timed: true },
    { name: 'filters 50 % + fine-tune (full)', model: tunes.full!.model, timed: false },
    { name: 'filters 50 % + fine-tune (head)', model: tunes.head!.model, timed: false },
  ].map((v) => ({ ...v, bytes: encodeModel(v.model), latency: {} }));

  for (const v of variants) {
    v.accuracy = (await evaluate(v.bytes, evalSet, { batchSize: 100 })).accuracy;
    log(`evaluated ${v.name}: ${(v.accuracy * 100).toFixed(2)} %`);
  }

  const timed = variants.filter((v) => v.timed);
  for (const { batch, rounds, perRound } of LATENCY) {
    const sessions: BenchSession[] = [];
    for (const v of timed) {
      const s = await openBenchSession(v.bytes, { batch, threads: 1 });
      await s.time(WARMUP);
      sessions.push(s);
      v.latency[batch] = [];
    }
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < timed.length; k++) {
        const i = (r + k) % timed.length;
        timed[i]!.latency[batch]!.push(...(await sessions[i]!.time(perRound)));
      }
    }
    for (const s of sessions) await s.release();
    log(`latency batch ${batch}: ${rounds}×${perRound} runs per variant`);
  }
  // Fine-tuning rewrites weights only: the tuned graphs are the pruned graph, so they share its latency.
  const prunedTimed = variants[3]!;
  for (const v of variants) if (!v.timed) v.latency = prunedTimed.latency;

  const base = variants[0]!;
  const baseStats = Object.fromEntries(
    LATENCY.map(({ batch }) => [batch, summarizeLatencies(base.latency[batch]!, batch)]),
  );
  const baseSizes = modelSizes(base.bytes);
  const baseMacs = await macsOf(base.model);
  const results = [];
  for (const v of variants) {
    const sizes = modelSizes(v.bytes);
    const counts = paramCounts(v.model);
    const macs = await macsOf(v.model);
    const latency = Object.fromEntries(
      LATENCY.map(({ batch }) => {
        const s: LatencyStats = summarizeLatencies(v.latency[batch]!, batch);
        const b = baseStats[batch]!;
        return [
          `batch${batch}`,
          {
            p50Ms: s.p50Ms,
            p99Ms: s.p99Ms,
            meanMs: s.meanMs,
            p50Ratio: s.p50Ms / b.p50Ms,
            p99Ratio: s.p99Ms / b.p99Ms,
            samples: v.latency[batch]!.length,
          },
        ];
      }),
    );
    results.push({
      variant: v.name,
      params: counts.params,
      nonzeroParams: counts.nonzero,
      paramsRatio: counts.params / paramCounts(base.model).params,
      macs,
      macsRatio: macs / baseMacs,
      sizeBytes: sizes.bytes,
      gzipBytes: sizes.gzipBytes,
      sizeRatio: sizes.bytes / baseSizes.bytes,
      gzipRatio: sizes.gzipBytes / baseSizes.gzipBytes,
      accuracy: v.accuracy ?? 0,
      latencyMeasured: v.timed,
      latency,
    });
  }

  const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
  const modelTable = formatTable(
    ['variant', 'params', 'non-zero', 'MACs', 'MACs ×', 'size B', 'gzip B', 'gzip ×', 'accuracy'],
    results.map((r) => [
      r.variant,
      String(r.params),
      String(r.nonzeroParams),
      String(r.macs),
      r.macsRatio.toFixed(3),
      String(r.sizeBytes),
      String(r.gzipBytes),
      r.gzipRatio.toFixed(3),
      pct(r.accuracy),
    ]),
  );
  const latencyTable = formatTable(
    ['variant', 'b1 p50 ms', 'b1 p99 ms', 'b1 p50 ×', 'b32 p50 ms', 'b32 p99 ms', 'b32 p50 ×'],
    results
      .filter((r) => r.latencyMeasured)
      .map((r) => {
        const b1 = r.latency.batch1!;
        const b32 = r.latency.batch32!;
        return [
          r.variant,
          b1.p50Ms.toFixed(4),
          b1.p99Ms.toFixed(4),
          b1.p50Ratio.toFixed(2),
          b32.p50Ms.toFixed(3),
          b32.p99Ms.toFixed(3),
          b32.p50Ratio.toFixed(2),
        ];
      }),
  );
  console.log(`\nMNIST CNN, ${evalSet.n} eval digits; fine-tuning on ${train.n} train digits\n`);
  console.log(modelTable);
  console.log(
    '\nLatency, onnxruntime-node, 1 thread, interleaved rounds (fine-tuned variants share the pruned graph)\n',
  );
  console.log(latencyTable);
  for (const [name, t] of Object.entries(tunes)) {
    console.log(
      `\nfine-tune ${name}: ${t.history.length} epochs in ${t.seconds.toFixed(1)} s on ${t.backend}; ` +
        `train loss ${t.history.map((h) => h.loss.toFixed(3)).join(' → ')}`,
    );
  }

  const out = {
    benchmark: 'prune',
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version },
    onnxruntime: JSON.parse(readFileSync(join(root, 'node_modules/onnxruntime-node/package.json'), 'utf8'))
      .version,
    dataset: { eval: evalSet.n, train: train.n },
    latency: { threads: 1, warmup: WARMUP, settings: LATENCY },
    filterReport: { ...filters.report },
    magnitudeReports: { '50': mag50.report, '80': mag80.report },
    finetune: Object.fromEntries(
      Object.entries(tunes).map(([k, t]) => [
        k,
        { mode: t.mode, backend: t.backend, seconds: t.seconds, trained: t.trained, history: t.history },
      ]),
    ),
    results,
    wallSeconds: (performance.now() - t0) / 1000,
  };
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  atomicWriteFileSync(join(dir, 'prune.json'), `${JSON.stringify(out, null, 2)}\n`);
  log(`\nwrote bench/results/prune.json in ${out.wallSeconds.toFixed(1)} s`);
}

await main();
