import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MNIST_CNN, MNIST_EVAL_X, MNIST_EVAL_Y, MNIST_TRAIN_X, MNIST_TRAIN_Y } from '../testing/fixtures.ts';
import { buildModel, floatInput, node, randomTensor } from '../testing/build.ts';
import {
  DataType,
  decodeModel,
  encodeModel,
  floatAttr,
  int64ToNumber,
  intAttr,
  intsAttr,
  makeTensor,
  readTensor,
  tensorDims,
  toLong,
} from '../onnx/index.ts';
import type { ModelProto } from '../onnx/index.ts';
import { loadMnistU8, sliceDataset } from '../datasets/index.ts';
import { compareOutputs, evaluate } from '../evaluate/index.ts';
import { loadModel, ort, runSession } from '../runtime/index.ts';
import { mulberry32 } from '../bench/index.ts';
import { feedsFromSamples, quantizeStatic } from './index.ts';
import type { CalibrationFeed } from './index.ts';

const ops = (m: ModelProto) => (m.graph?.node ?? []).map((n) => n.op_type);

/** Deterministic random feeds for the named inputs. */
function randomFeeds(shapes: Record<string, number[]>, count: number, seed: number): CalibrationFeed[] {
  const rand = mulberry32(seed);
  return Array.from({ length: count }, () =>
    Object.fromEntries(
      Object.entries(shapes).map(([name, dims]) => [
        name,
        { data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rand() * 4 - 2), dims },
      ]),
    ),
  );
}

async function runAll(model: ModelProto, feed: CalibrationFeed): Promise<Record<string, Float32Array>> {
  const m = await loadModel(encodeModel(model));
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(feed))
      feeds[k] = new ort.Tensor('float32', t.data as Float32Array, t.dims);
    const out = await runSession(m.session, feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await m.release();
  }
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  return dot / Math.sqrt(na * nb);
}

describe('quantizeStatic on the reference CNN', async () => {
  const fp32 = readFileSync(MNIST_CNN);
  const train = await loadMnistU8(MNIST_TRAIN_X, MNIST_TRAIN_Y, 200);
  const evalSet = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y);
  const calib = feedsFromSamples('input', train.x, [1, 28, 28]);
  const ref = await evaluate(fp32, evalSet, { batchSize: 100 });

  test('defaults: ≤ 0.26× fp32, accuracy within 0.3 pt on the 2,000 eval digits, no float weights left', async () => {
    const progress: string[] = [];
    const source = decodeModel(fp32);
    const { model, report } = await quantizeStatic(source, calib, {
      onProgress: (d, t, label) => {
        if (d === t) progress.push(`${label}:${t}`);
      },
    });
    // 200 samples in batches of 32 → 7 runs; then one step per node.
    assert.deepEqual(progress, ['calibrating:7', 'quantizing:10']);
    const bytes = encodeModel(model);
    assert.equal(report.sizeAfter, bytes.length);
    assert.equal(report.sizeBefore, fp32.length);
    assert.ok(bytes.length <= 0.26 * fp32.length, `ratio ${bytes.length / fp32.length}`);
    assert.deepEqual(report.skipped, []);
    assert.equal(report.settings.calibrationSamples, 200);
    assert.equal(report.settings.perChannel, false);
    // ReLUs are folded into their producers; Q/DQ pairs everywhere else, the logits stay float.
    assert.equal(ops(model).filter((o) => o === 'Relu').length, 0);
    assert.equal(report.quantized.filter((q) => q.note?.startsWith('folded into')).length, 3);
    assert.equal(ops(model).filter((o) => o === 'QuantizeLinear').length, 7);
    const last = model.graph?.node?.at(-1);
    assert.equal(last?.op_type, 'Gemm');
    assert.deepEqual(last?.output, ['logits']);
    const inits = model.graph?.initializer ?? [];
    assert.ok(!inits.some((t) => t.data_type === DataType.FLOAT && (t.raw_data?.length ?? 0) > 4));
    assert.equal(inits.find((t) => t.name === 'f1.weight_quantized')?.data_type, DataType.INT8);
    assert.equal(inits.find((t) => t.name === 'f1.bias_quantized')?.data_type, DataType.INT32);
    // The input [0, 1] as s8: scale 1/255, zero point -128 (what ORT's reference file holds).
    assert.equal(report.ranges.input?.zeroPoint, -128);
    assert.equal(report.ranges.input?.scale, Math.fround(1 / 255));
    assert.equal(report.ranges['/MaxPool_output_0']?.sharedWith, '/Relu_output_0');
    // The source model is untouched.
    assert.ok(Buffer.from(encodeModel(source)).equals(fp32));

    const q = await evaluate(bytes, evalSet, { batchSize: 100 });
    assert.equal(q.n, 2000);
    assert.ok(Math.abs(q.accuracy - ref.accuracy) <= 0.003, `accuracy ${q.accuracy} vs ${ref.accuracy}`);
    const cmp = compareOutputs(ref, q);
    assert.ok(cmp.top1Agreement >= 0.995 && cmp.meanCosine > 0.999, JSON.stringify(cmp));
  });

  test('per-channel u8, percentile and entropy calibration all hold accuracy', async () => {
    const sub = sliceDataset(evalSet, 500);
    const subRef = await evaluate(fp32, sub, { batchSize: 100 });
    const variants = [
      { perChannel: true, activationType: 'uint8' as const, weightType: 'uint8' as const },
      { calibrationMethod: 'percentile' as const, percentile: 99.9 },
      { calibrationMethod: 'entropy' as const, calibrationBatchSize: 100 },
    ];
    const maxima: number[] = [];
    for (const opts of variants) {
      const { model, report } = await quantizeStatic(decodeModel(fp32), calib, opts);
      const cmp = compareOutputs(subRef, await evaluate(encodeModel(model), sub, { batchSize: 100 }));
      assert.ok(cmp.top1Agreement >= 0.99, `${JSON.stringify(opts)}: ${JSON.stringify(cmp)}`);
      maxima.push(report.ranges['/Relu_2_output_0']?.max ?? NaN);
      const r = report.ranges['/Relu_2_output_0'];
      assert.ok(r && r.max <= r.observedMax && r.min === 0);
      if (opts.perChannel) {
        const scale = model.graph?.initializer?.find((t) => t.name === 'c2.weight_scale');
        assert.deepEqual(tensorDims(scale!), [32]);
        const zp = model.graph?.initializer?.find((t) => t.name === 'c2.weight_zp');
        // Symmetric u8: one zero point for all channels (64 with the default 7-bit weights).
        assert.deepEqual(new Set(readTensor(zp!) as Uint8Array), new Set([64]));
        const dq = model.graph?.node?.find((n) => n.input?.[0] === 'c2.bias_quantized');
        assert.equal(int64ToNumber(dq?.attribute?.[0]?.i), 0);
        assert.equal(r.zeroPoint, 0);
      }
    }
    // Percentile and entropy clip the rare largest activations that min/max keeps.
    assert.ok(maxima[1]! < maxima[0]! && maxima[2]! < maxima[0]!, `maxima ${maxima.join(', ')}`);
  });
});

describe('quantizeStatic rewrites', () => {
  // x → MatMul → Add(const) → Relu (folded) → Gemm(transB=0, beta) ┬→ Relu (kept: g has two readers) → MatMul(·, z) ┬→ Concat → y
  //                                                                  └→ Sigmoid (float) ─────────────────────────────┘
  const mlp = () =>
    buildModel({
      nodes: [
        node('MatMul', ['x', 'W1'], ['h1'], 'mm1'),
        node('Add', ['h1', 'b1'], ['h2'], 'add1'),
        node('Relu', ['h2'], ['r1'], 'relu1'),
        node('Gemm', ['r1', 'W2', 'c2'], ['g'], 'gemm', [floatAttr('beta', 0.5)]),
        node('Relu', ['g'], ['r2'], 'relu2'),
        node('Sigmoid', ['g'], ['s'], 'sig'),
        node('MatMul', ['r2', 'z'], ['m2'], 'mm2'),
        node('Concat', ['m2', 's'], ['y'], 'cat', [intAttr('axis', 1)]),
      ],
      inputs: [floatInput('x', ['n', 8]), floatInput('z', [6, 6])],
      outputs: [floatInput('y', ['n', 12]), floatInput('g', ['n', 6])],
      initializers: [
        randomTensor('W1', [8, 6], 1),
        randomTensor('b1', [6], 2),
        randomTensor('W2', [6, 6], 3),
        randomTensor('c2', [6], 4),
      ],
    });

  test('weighted, folded, kept and generic nodes; graph outputs stay float; output close to fp32', async () => {
    const m = mlp();
    const calib = randomFeeds({ x: [2, 8], z: [6, 6] }, 40, 7);
    for (const perChannel of [false, true]) {
      const { model, report } = await quantizeStatic(m, calib, { perChannel, nodesToExclude: ['nothing'] });
      const notes = Object.fromEntries(report.quantized.map((q) => [q.node, q.note ?? '']));
      assert.deepEqual(Object.keys(notes), ['mm1', 'add1', 'relu1', 'gemm', 'relu2', 'mm2', 'cat']);
      assert.match(notes.relu1!, /folded into add1/);
      assert.equal(notes.relu2, '');
      assert.deepEqual(
        report.skipped.map((s) => [s.node, s.reason]),
        [['sig', 'Sigmoid has no int8 QDQ form here (stays float)']],
      );
      const names = (model.graph?.node ?? []).map((n) => n.name).filter(Boolean);
      assert.ok(!names.includes('relu1') && names.includes('relu2'));
      // Gemm bias: int32, scale = input scale × weight scale × beta.
      const inits = new Map((model.graph?.initializer ?? []).map((t) => [t.name, t]));
      const bScale = readTensor(inits.get('c2_scale')!) as Float32Array;
      const wScale = readTensor(inits.get('W2_scale')!) as Float32Array;
      assert.equal(bScale.length, perChannel ? 6 : 1);
      assert.equal(bScale[0], Math.fround(report.ranges.r1!.scale * wScale[0]! * 0.5));
      // Gemm with transB = 0: channels are the weight's columns.
      const wdq = model.graph?.node?.find((n) => n.input?.[0] === 'W2_quantized');
      assert.equal(
        perChannel ? int64ToNumber(wdq?.attribute?.[0]?.i) : undefined,
        perChannel ? 1 : undefined,
      );
      // Both MatMul operands of mm2 are activations behind Q/DQ; z (a graph input) got its own pair.
      const mm2 = model.graph?.node?.find((n) => n.name === 'mm2');
      assert.deepEqual(mm2?.input, ['r2_dq', 'z_dq']);
      // g is a graph output: the float Sigmoid and the output read the exact value, Relu the round trip.
      assert.deepEqual(model.graph?.node?.find((n) => n.name === 'sig')?.input, ['g']);
      assert.deepEqual(model.graph?.node?.find((n) => n.name === 'relu2')?.input, ['g_dq']);
      assert.ok(
        !(model.graph?.initializer ?? []).some((t) => ['W1', 'W2', 'b1', 'c2'].includes(t.name ?? '')),
      );

      const probe = randomFeeds({ x: [5, 8], z: [6, 6] }, 1, 99)[0]!;
      const a = await runAll(m, probe);
      const b = await runAll(model, probe);
      assert.ok(cosine(a.y!, b.y!) > 0.999, `y cosine ${cosine(a.y!, b.y!)}`);
      assert.ok(cosine(a.g!, b.g!) > 0.999, `g cosine ${cosine(a.g!, b.g!)}`);
    }
  });

  test('symmetric activations keep the Relu (no clamp at the zero point) and use zero point 0', async () => {
    const { model, report } = await quantizeStatic(mlp(), randomFeeds({ x: [1, 8], z: [6, 6] }, 8, 3), {
      symmetricActivations: true,
    });
    assert.equal(ops(model).filter((o) => o === 'Relu').length, 2);
    assert.ok(Object.values(report.ranges).every((r) => r.zeroPoint === 0));
  });

  test('fixed batch Conv model: per-channel axis 0, Reshape shape input untouched, GlobalAveragePool', async () => {
    const shape = makeTensor('shape', new BigInt64Array([1n, -1n]), [2]);
    const m = buildModel({
      nodes: [
        node('Conv', ['x', 'W', 'B'], ['c'], 'conv', [intAttr('group', 2), intsAttr('pads', [1, 1, 1, 1])]),
        node('Relu', ['c'], ['r'], 'relu'),
        node('GlobalAveragePool', ['r'], ['p'], 'gap'),
        node('Reshape', ['p', 'shape'], ['y'], 'reshape'),
      ],
      inputs: [floatInput('x', [1, 4, 9, 9])],
      outputs: [floatInput('y', [1, 8])],
      initializers: [randomTensor('W', [8, 2, 3, 3], 5), randomTensor('B', [8], 6), shape],
      opset: 13,
    });
    const calib = randomFeeds({ x: [1, 4, 9, 9] }, 6, 8);
    const progress: number[] = [];
    const { model, report } = await quantizeStatic(m, calib, {
      perChannel: true,
      onProgress: (d, t, l) => l === 'calibrating' && progress.push(t),
    });
    assert.equal(progress[0], 6, 'fixed batch: one run per feed');
    assert.deepEqual(
      report.quantized.map((q) => q.op),
      ['Conv', 'Relu', 'GlobalAveragePool', 'Reshape'],
    );
    const reshape = model.graph?.node?.find((n) => n.name === 'reshape');
    assert.equal(reshape?.input?.[1], 'shape');
    assert.equal(report.ranges.y, undefined, 'the graph output y has no reader, so no Q/DQ');
    const a = await runAll(m, calib[0]!);
    const b = await runAll(model, calib[0]!);
    assert.ok(cosine(a.y!, b.y!) > 0.999);
  });

  test('control flow and excluded nodes stay float; nothing quantizable returns the model itself', async () => {
    const branch = (out: string) => ({
      name: `${out}_g`,
      node: [node('Relu', ['x'], [out], `${out}_relu`)],
      output: [floatInput(out, [2, 3])],
    });
    const m = buildModel({
      nodes: [
        node('If', ['cond'], ['i'], 'if', [
          { name: 'then_branch', type: 5, g: branch('t') },
          { name: 'else_branch', type: 5, g: branch('e') },
        ]),
        node('MatMul', ['i', 'W'], ['y'], 'mm'),
      ],
      inputs: [floatInput('x', [2, 3]), floatInput('cond', [], DataType.BOOL)],
      outputs: [floatInput('y', [2, 3])],
      initializers: [randomTensor('W', [3, 3], 1)],
    });
    const feed = { ...randomFeeds({ x: [2, 3] }, 1, 1)[0]!, cond: { data: new Uint8Array([1]), dims: [] } };
    const { model, report } = await quantizeStatic(m, [feed], { nodesToExclude: ['mm'] });
    assert.equal(model, m);
    assert.deepEqual(
      report.skipped.map((s) => [s.node, s.reason]),
      [
        ['if', 'control flow: its subgraphs stay float (static quantization covers the main graph)'],
        ['mm', 'excluded by nodesToExclude'],
      ],
    );
    assert.equal(report.sizeAfter, report.sizeBefore);
  });
});

describe('quantizeStatic input errors', () => {
  const m = decodeModel(readFileSync(MNIST_CNN));
  const ok = { input: { data: new Float32Array(784), dims: [1, 1, 28, 28] } };

  test('corrupt or graph-less models are ONNX_PARSE_FAILED', async () => {
    assert.throws(() => decodeModel(new Uint8Array([8, 1, 0xff, 0xff])), { code: 'ONNX_PARSE_FAILED' });
    await assert.rejects(quantizeStatic({ ir_version: toLong(8) }, [ok]), { code: 'ONNX_PARSE_FAILED' });
  });

  test('an empty calibration set is VALIDATION_FAILED', async () => {
    await assert.rejects(quantizeStatic(m, []), { code: 'VALIDATION_FAILED', message: /empty/ });
  });

  test('feeds that do not fit the model are TENSOR_SHAPE_MISMATCH', async () => {
    const bad: [string, CalibrationFeed][] = [
      ['wrong dims', { input: { data: new Float32Array(784), dims: [1, 784] } }],
      ['wrong fixed dim', { input: { data: new Float32Array(784 * 2), dims: [1, 2, 28, 28] } }],
      ['wrong length', { input: { data: new Float32Array(783), dims: [1, 1, 28, 28] } }],
      ['wrong type', { input: { data: new Int32Array(784), dims: [1, 1, 28, 28] } }],
      ['missing input', {}],
      ['unknown input', { ...ok, other: { data: new Float32Array(1), dims: [1] } }],
    ];
    for (const [what, feed] of bad) {
      await assert.rejects(quantizeStatic(m, [ok, feed]), { code: 'TENSOR_SHAPE_MISMATCH' }, what);
    }
  });

  test('bad options are VALIDATION_FAILED; old opsets ONNX_UNSUPPORTED', async () => {
    for (const opts of [
      { activationType: 'int16' as 'int8' },
      { calibrationMethod: 'mse' as 'minmax' },
      { percentile: 0 },
      { histogramBins: 100.5 },
      { calibrationBatchSize: 0 },
    ]) {
      await assert.rejects(
        quantizeStatic(m, [ok], opts),
        { code: 'VALIDATION_FAILED' },
        JSON.stringify(opts),
      );
    }
    const old = { ...m, opset_import: [{ domain: '', version: toLong(11) }] };
    await assert.rejects(quantizeStatic(old, [ok], { perChannel: true }), { code: 'ONNX_UNSUPPORTED' });
    const older = { ...m, opset_import: [{ domain: '', version: toLong(9) }] };
    await assert.rejects(quantizeStatic(older, [ok]), { code: 'ONNX_UNSUPPORTED' });
  });
});
