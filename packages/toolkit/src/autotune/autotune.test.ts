import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { OutpostError, sha256Of } from '@outpost/protocol';
import { loadMnistU8 } from '../datasets/index.ts';
import type { Dataset } from '../datasets/index.ts';
import { decodeModel } from '../onnx/index.ts';
import { builtinProfile } from '../profiles/index.ts';
import { optimizationReportJson, parseOptimizationReport, renderReportHtml } from '../report/index.ts';
import { MNIST_CNN, MNIST_EVAL_X, MNIST_EVAL_Y, MNIST_TRAIN_X, MNIST_TRAIN_Y } from '../testing/fixtures.ts';
import { autotune } from './index.ts';
import type { CandidateResult, CandidateSpec } from './index.ts';

type C = CandidateResult;

const brokenBuild: CandidateSpec = {
  id: 'broken-build',
  method: 'static-int8',
  settings: {},
  description: 'a pass that throws',
  default: false,
  build: () => {
    throw new OutpostError('ONNX_UNSUPPORTED', 'this pass cannot handle the model');
  },
};

/** Builds fine, but no runtime knows the op: fails at load. */
const badOp: CandidateSpec = {
  id: 'bad-op',
  method: 'pruned',
  settings: {},
  description: 'a graph with an unknown op',
  default: false,
  build: (model) => {
    const g = model.graph;
    if (!g?.node?.[0]) throw new Error('no nodes');
    g.node[0].op_type = 'NoSuchOp';
    return { model };
  },
};

let calib: Dataset;
let evalSet: Dataset;
const cnn = () => new Uint8Array(readFileSync(MNIST_CNN));

async function data(): Promise<void> {
  calib ??= await loadMnistU8(MNIST_TRAIN_X, MNIST_TRAIN_Y, 50);
  evalSet ??= await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 300);
}

const fast = { iterations: 40, rounds: 4, warmup: 5 };

describe('autotune', () => {
  test('end to end on the MNIST CNN for cpu-x86-1t: every candidate measured or kept with its error', async () => {
    await data();
    const progress: [number, number][] = [];
    const r = await autotune(MNIST_CNN, {
      calib,
      eval: evalSet,
      profile: builtinProfile('cpu-x86-1t'),
      candidates: ['dynamic-u8', 'static-s8-minmax-pc', 'broken-build', 'bad-op'],
      extraCandidates: [brokenBuild, badOp],
      ...fast,
      onProgress: (d, t) => progress.push([d, t]),
    });
    assert.deepEqual(
      r.candidates.map((c) => [c.id, c.status]),
      [
        ['fp32', 'measured'],
        ['dynamic-u8', 'measured'],
        ['static-s8-minmax-pc', 'measured'],
        ['broken-build', 'failed'],
        ['bad-op', 'failed'],
      ],
    );
    const [fp32, u8, qdq, broken, bad] = r.candidates as [C, C, C, C, C];
    assert.equal(r.model.name, 'mnist_cnn');
    assert.equal(r.model.sha256, sha256Of(cnn()));
    assert.equal(fp32.sha256, r.model.sha256);
    assert.ok(fp32.metrics && u8.metrics);
    assert.ok(fp32.metrics.accuracy > 0.95);
    assert.equal(fp32.metrics.accuracyDropPp, 0);
    assert.equal(fp32.metrics.top1AgreementWithFp32, 1);
    assert.equal(fp32.metrics.latencySamples, 40);
    assert.ok(fp32.metrics.p50Ms > 0 && fp32.metrics.p99Ms >= fp32.metrics.p50Ms);
    assert.ok((fp32.metrics.peakRssDeltaBytes ?? 0) > 0, 'memory measured in a child');
    assert.ok(Math.abs(fp32.metrics.energyMjEstimate - fp32.metrics.p50Ms * 4) < 1e-12);
    assert.ok(u8.metrics.top1AgreementWithFp32 > 0.97);
    assert.ok((u8.sizeRatioVsFp32 ?? 1) < 0.3);
    assert.ok((qdq.metrics?.top1AgreementWithFp32 ?? 0) > 0.97, 'static int8 calibrated on training digits');
    assert.equal(qdq.build?.calibrationSamples, 50);
    assert.ok((qdq.sizeRatioVsFp32 ?? 1) < 0.3);
    assert.ok(Math.abs(u8.metrics.p50RatioVsFp32 - u8.metrics.p50Ms / fp32.metrics.p50Ms) < 1e-12);
    assert.deepEqual(broken.error, {
      code: 'ONNX_UNSUPPORTED',
      stage: 'build',
      message: 'this pass cannot handle the model',
    });
    assert.equal(bad.error?.stage, 'load');
    assert.equal(bad.error?.code, 'ONNX_UNSUPPORTED');
    assert.match(r.findings.join('\n'), /broken-build failed at build \(ONNX_UNSUPPORTED\)/);

    // The choice: never slower than fp32 for latency, and the slower variant is called out.
    const chosen = r.candidates.find((c) => c.chosen);
    assert.ok(chosen?.metrics);
    assert.equal(chosen.id, r.chosen);
    assert.ok(chosen.metrics.p50Ms <= fp32.metrics.p50Ms);
    for (const c of [u8, qdq]) {
      const ratio = (c.metrics?.p50Ms ?? 0) / fp32.metrics.p50Ms;
      if (ratio >= 1) {
        assert.notEqual(r.chosen, c.id);
        // ≥ 3 % slower is "N× slower"; closer than that is reported as no faster, within noise.
        const said = ratio >= 1.03 ? 'slower than fp32 on cpu-x86-1t' : 'no faster than fp32 on cpu-x86-1t';
        assert.ok(
          r.findings.some((f) => f.startsWith(`${c.id} is `) && f.includes(said)),
          r.findings.join('\n'),
        );
      }
    }
    assert.ok(r.candidates.every((c) => c.verdict.length > 0));
    assert.ok(fp32.pareto || u8.pareto);

    assert.deepEqual(Object.keys(r.models).sort(), ['bad-op', 'dynamic-u8', 'fp32', 'static-s8-minmax-pc']);
    assert.equal(sha256Of(r.models['dynamic-u8'] as Uint8Array), u8.sha256);
    assert.doesNotThrow(() => decodeModel(r.models['dynamic-u8'] as Uint8Array));
    assert.deepEqual(progress.at(-1), [progress[0]?.[1], progress[0]?.[1]]);
    assert.ok(progress.every(([d], i) => i === 0 || d > (progress[i - 1]?.[0] ?? 0)));

    // The report round-trips through its schema and renders every candidate.
    const report = parseOptimizationReport(JSON.stringify(optimizationReportJson(r)));
    assert.equal(report.choice.id, r.chosen);
    assert.equal(report.choice.optimization?.sourceSha256, r.model.sha256);
    const html = renderReportHtml(report);
    for (const c of r.candidates) assert.ok(html.includes(`data-candidate="${c.id}"`));
  });

  test('browser-wasm profile runs on onnxruntime-web; size objective picks the smallest', async () => {
    await data();
    const r = await autotune(cnn(), {
      calib,
      eval: evalSet,
      profile: builtinProfile('browser-wasm'),
      candidates: ['dynamic-u8'],
      objective: 'size',
      measureMemory: false,
      ...fast,
    });
    assert.equal(r.settings.memoryMethod, 'not-measured');
    assert.ok(r.machine.runtimes['onnxruntime-web']);
    assert.equal(r.model.name, 'model');
    assert.ok(r.candidates.every((c) => c.status === 'measured' && c.metrics?.peakRssDeltaBytes === null));
    assert.equal(r.chosen, 'dynamic-u8');
  });

  test('a GPU profile without CUDA: every candidate is reported as not measurable, nothing chosen', async (t) => {
    if (existsSync('/dev/nvidiactl')) return t.skip('this machine has an NVIDIA driver');
    await data();
    const r = await autotune(cnn(), {
      calib,
      eval: evalSet,
      profile: builtinProfile('jetson-nano-gpu'),
      candidates: ['dynamic-u8'],
      ...fast,
    });
    assert.equal(r.measurable, false);
    assert.equal(r.chosen, null);
    assert.match(r.notMeasurableReason ?? '', /CUDA|nvidiactl/);
    for (const c of r.candidates) {
      assert.equal(c.status, 'not-measurable');
      assert.equal(c.metrics, undefined);
      assert.match(c.verdict, /not measurable here/);
      assert.ok((c.sizeBytes ?? 0) > 0, 'the variant was still built');
    }
    assert.match(r.findings.join('\n'), /nothing was estimated or simulated/);
    assert.match(renderReportHtml(r), /No chart: no candidate could be measured/);
  });

  test('bad input: corrupt model, empty or unlabelled eval set, wrong sample size, unknown candidate', async () => {
    await data();
    const profile = builtinProfile('cpu-x86-1t');
    const base = { calib, eval: evalSet, profile, ...fast };
    await assert.rejects(autotune(new Uint8Array([1, 2, 3, 4, 5]), base), { code: 'ONNX_PARSE_FAILED' });
    const empty = { x: new Float32Array(0), y: new Uint8Array(0), n: 0 };
    await assert.rejects(autotune(cnn(), { ...base, eval: empty }), {
      code: 'VALIDATION_FAILED',
      message: /empty/,
    });
    await assert.rejects(autotune(cnn(), { ...base, eval: { ...evalSet, y: new Uint8Array(0) } }), {
      code: 'VALIDATION_FAILED',
      message: /label/,
    });
    const wrong = { x: new Float32Array(10 * 100), y: new Uint8Array(10), n: 10 };
    await assert.rejects(autotune(cnn(), { ...base, eval: wrong }), { code: 'TENSOR_SHAPE_MISMATCH' });
    await assert.rejects(autotune(cnn(), { ...base, candidates: ['nope'] }), {
      code: 'VALIDATION_FAILED',
      message: /unknown candidate/,
    });
    await assert.rejects(autotune(cnn(), { ...base, maxAccuracyDrop: -1 }), { code: 'VALIDATION_FAILED' });
    await assert.rejects(autotune('/nonexistent/model.onnx', base), { code: 'NOT_FOUND' });
  });
});
