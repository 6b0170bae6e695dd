/**
 * Autotune benchmark: finds the best variant of the MNIST CNN for two hardware profiles, measuring every
 * candidate (fp32, dynamic and static int8, fp16, pruned+int8) with each profile's runtime on this machine.
 *
 *   node --import tsx bench/autotune.ts
 *
 * Calibration: the first 200 training digits; evaluation: the 2,000 held-out digits. Latency: batch 1,
 * interleaved rounds across candidates (rotating order) so that noise from the shared 2-core machine lands
 * on every candidate alike; still expect a few percent of noise between runs. Results: the candidate
 * tables and choices on stdout, bench/results/autotune.json (the two optimization reports) and
 * bench/results/autotune-<profile>.html.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWriteFileSync } from '@outpost/common';
import {
  autotune,
  builtinProfile,
  formatReportTable,
  loadMnistU8,
  machineFacts,
  optimizationReportJson,
  renderReportHtml,
} from '@outpost/toolkit';
import type { OptimizationReport } from '@outpost/toolkit';

const root = new URL('..', import.meta.url).pathname;
const shared = process.env.OUTPOST_SHARED_MODELS ?? join(root, '..', 'shared', 'models');
const PROFILES = ['cpu-x86-1t', 'browser-wasm'];
const ITERATIONS = 3000;
const ROUNDS = 10;
const WARMUP = 200;

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const calib = await loadMnistU8(join(shared, 'mnist-train-x.u8'), join(shared, 'mnist-train-y.u8'), 200);
  const evalSet = await loadMnistU8(join(shared, 'mnist-eval-x.u8'), join(shared, 'mnist-eval-y.u8'));
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const reports: Record<string, OptimizationReport> = {};
  for (const name of PROFILES) {
    let lastLabel = '';
    const r = await autotune(join(shared, 'mnist_cnn.onnx'), {
      calib,
      eval: evalSet,
      profile: builtinProfile(name),
      iterations: ITERATIONS,
      rounds: ROUNDS,
      warmup: WARMUP,
      onProgress: (done, total, label) => {
        const phase = (label ?? '').split(' ')[0] ?? '';
        if (phase !== lastLabel || done === total) log(`[${name}] ${done}/${total} ${label ?? ''}`);
        lastLabel = phase;
      },
    });
    const report = optimizationReportJson(r);
    reports[name] = report;
    console.log(`\n${formatReportTable(report)}\n`);
    atomicWriteFileSync(join(dir, `autotune-${name}.html`), renderReportHtml(report));
  }
  const wallSeconds = (performance.now() - t0) / 1000;
  console.log('choices:');
  for (const [name, r] of Object.entries(reports))
    console.log(`  ${name}: ${r.choice.id ?? 'none'} — ${r.choice.reason}`);
  const out = {
    benchmark: 'autotune',
    date: new Date().toISOString(),
    machine: machineFacts(),
    dataset: { calib: 'mnist-train, first 200', eval: `mnist-eval, ${evalSet.n}` },
    latency: { batch: 1, iterations: ITERATIONS, rounds: ROUNDS, warmup: WARMUP },
    reports,
    wallSeconds,
  };
  atomicWriteFileSync(join(dir, 'autotune.json'), `${JSON.stringify(out, null, 2)}\n`);
  log(
    `\nwrote bench/results/autotune.json and autotune-{${PROFILES.join(',')}}.html in ${wallSeconds.toFixed(1)} s`,
  );
}

await main();
