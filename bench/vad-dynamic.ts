/**
 * Silero VAD under dynamic int8 quantization: fp32 against `quantizeDynamic` (default settings and the
 * per-model recipe), streamed frame by frame with the recurrent state carried as @ricky0123/vad-web does,
 * on deterministic speech-like audio (8 seeds × ~9 s: seeded noise, harmonic vowels with formant
 * envelopes and syllabic amplitude modulation, fricative noise bursts, silences).
 *
 *   node --import tsx bench/vad-dynamic.ts
 *
 * Prints per model: size ratio, max |p_int8 − p_fp32| over all frames per seed, agreement of the speech
 * decision (p > 0.5), and a per-node sensitivity scan (only that node quantized) that explains the
 * recipe. Exits 1 when a recipe exceeds 0.05. Results: bench/results/vad-dynamic.json.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { atomicWriteFileSync } from '@outpost/common';
import { decodeModel, encodeModel, quantizeDynamic } from '@outpost/toolkit';
import type { QuantizeDynamicOptions } from '@outpost/toolkit';
import { sileroModels } from '../packages/toolkit/src/testing/fixtures.ts';
import {
  SILERO_DYNAMIC_RECIPES,
  streamVad,
  synthSpeech,
  vadLayout,
} from '../packages/toolkit/src/testing/vad.ts';
import { modelInputs } from '@outpost/toolkit';
import { formatTable } from './lib/table.ts';

const root = new URL('..', import.meta.url).pathname;
/** Seeds 7–9 were used to pick the recipes; 10–14 are held out. */
const SEEDS = [7, 8, 9, 10, 11, 12, 13, 14];
const PICKED = 3;
const LIMIT = 0.05;

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function agreement(a: Float32Array, b: Float32Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i]! > 0.5 === b[i]! > 0.5) same++;
  return same / a.length;
}

interface VariantResult {
  model: string;
  variant: string;
  settings: QuantizeDynamicOptions;
  quantizedNodes: number;
  sizeRatio: number;
  maxAbsDiffPerSeed: number[];
  maxAbsDiff: number;
  decisionAgreement: number;
  msPerFrame: number;
  frames: number;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const audios = SEEDS.map((s) => synthSpeech(s));
  const results: VariantResult[] = [];
  const sensitivity: Record<string, { node: string; onlyThisNode: number }[]> = {};
  for (const path of sileroModels()) {
    const name = path.split('/').pop() ?? path;
    const bytes = readFileSync(path);
    const model = decodeModel(bytes);
    vadLayout(modelInputs(model).map((i) => i.name)); // fails early on a model that is not Silero
    let ms = performance.now();
    const refs: Float32Array[] = [];
    for (const a of audios) refs.push(await streamVad(bytes, a));
    const frames = refs.reduce((n, r) => n + r.length, 0);
    const fpMs = (performance.now() - ms) / frames;
    log(`${name}: fp32 streamed ${frames} frames`);
    results.push({
      model: name,
      variant: 'fp32',
      settings: {},
      quantizedNodes: 0,
      sizeRatio: 1,
      maxAbsDiffPerSeed: SEEDS.map(() => 0),
      maxAbsDiff: 0,
      decisionAgreement: 1,
      msPerFrame: fpMs,
      frames,
    });
    const variants: [string, QuantizeDynamicOptions][] = [
      ['dynamic u8 (defaults)', {}],
      ['dynamic u8 per-channel', { perChannel: true }],
      ['recipe', SILERO_DYNAMIC_RECIPES[name] ?? {}],
    ];
    for (const [variant, settings] of variants) {
      const q = quantizeDynamic(model, settings);
      const qBytes = encodeModel(q.model);
      ms = performance.now();
      const outs: Float32Array[] = [];
      for (const a of audios) outs.push(await streamVad(qBytes, a));
      const perSeed = outs.map((o, i) => maxDiff(refs[i]!, o));
      const agree = outs.reduce((s, o, i) => s + agreement(refs[i]!, o) * o.length, 0) / frames;
      results.push({
        model: name,
        variant,
        settings,
        quantizedNodes: q.report.quantized.length,
        sizeRatio: q.report.sizeAfter / q.report.sizeBefore,
        maxAbsDiffPerSeed: perSeed,
        maxAbsDiff: Math.max(...perSeed),
        decisionAgreement: agree,
        msPerFrame: (performance.now() - ms) / frames,
        frames,
      });
      log(`${name}: ${variant} max |Δp| ${Math.max(...perSeed).toFixed(4)}`);
    }
    // Sensitivity: quantize one node at a time (default settings), first audio seed. Nodes of the 8 kHz
    // branch never run at 16 kHz and are left out.
    const all = quantizeDynamic(model).report.quantized.map((n) => n.node);
    const scan: { node: string; onlyThisNode: number }[] = [];
    for (const node of all) {
      const only = quantizeDynamic(model, { nodesToExclude: all.filter((n) => n !== node) });
      const d = maxDiff(refs[0]!, await streamVad(encodeModel(only.model), audios[0]!));
      if (d > 0) scan.push({ node, onlyThisNode: d });
    }
    scan.sort((a, b) => b.onlyThisNode - a.onlyThisNode);
    sensitivity[name] = scan;
  }

  const table = formatTable(
    ['model', 'variant', 'nodes', 'size ×', '|Δp| s7–9', '|Δp| s10–14', 'max |Δp|', 'p>0.5 agr', 'ms/frame'],
    results.map((r) => [
      r.model,
      r.variant,
      String(r.quantizedNodes),
      r.sizeRatio.toFixed(3),
      Math.max(...r.maxAbsDiffPerSeed.slice(0, PICKED)).toFixed(4),
      Math.max(...r.maxAbsDiffPerSeed.slice(PICKED)).toFixed(4),
      r.maxAbsDiff.toFixed(4),
      `${(r.decisionAgreement * 100).toFixed(1)} %`,
      r.msPerFrame.toFixed(3),
    ]),
  );
  console.log(
    `\nSilero VAD, fp32 vs dynamic int8, ${SEEDS.length} seeds of ~9 s synthetic speech (7–9 picked the recipes, 10–14 held out), frame by frame\n`,
  );
  console.log(table);
  for (const [name, scan] of Object.entries(sensitivity)) {
    console.log(`\n${name}: max |Δp| with only this node quantized (top 6)`);
    console.log(
      formatTable(
        ['node', '|Δp|'],
        scan.slice(0, 6).map((s) => [s.node, s.onlyThisNode.toFixed(4)]),
      ),
    );
  }

  const out = {
    benchmark: 'vad-dynamic',
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version },
    audio: { seeds: SEEDS, sampleRate: 16000, seconds: audios[0]!.length / 16000 },
    limit: LIMIT,
    results,
    sensitivity,
    wallSeconds: (performance.now() - t0) / 1000,
  };
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  atomicWriteFileSync(join(dir, 'vad-dynamic.json'), `${JSON.stringify(out, null, 2)}\n`);
  log(`\nwrote bench/results/vad-dynamic.json in ${out.wallSeconds.toFixed(1)} s`);
  const failed = results.filter((r) => r.variant === 'recipe' && r.maxAbsDiff > LIMIT);
  if (failed.length > 0) {
    console.error(
      `FAILED: ${failed.map((r) => `${r.model} ${r.maxAbsDiff.toFixed(4)}`).join(', ')} > ${LIMIT}`,
    );
    process.exitCode = 1;
  }
}

await main();
