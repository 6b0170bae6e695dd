import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MNIST_CNN, MNIST_EVAL_X, MNIST_EVAL_Y, sileroModels } from '../testing/fixtures.ts';
import { buildModel, floatInput, node, randomTensor } from '../testing/build.ts';
import {
  decodeModel,
  encodeModel,
  floatAttr,
  int64ToNumber,
  intAttr,
  intsAttr,
  readTensor,
  toLong,
} from '../onnx/index.ts';
import type { ModelProto, TensorProto } from '../onnx/index.ts';
import { loadMnistU8 } from '../datasets/index.ts';
import { compareOutputs, evaluate } from '../evaluate/index.ts';
import { loadModel, ort, runSession } from '../runtime/index.ts';
import { mulberry32, syntheticFeeds } from '../bench/index.ts';
import { quantizeDynamic } from './index.ts';

/** Runs a model on deterministic inputs and returns the first output. */
async function runOnce(model: ModelProto, dims: Record<string, number[]>): Promise<Float32Array> {
  const m = await loadModel(encodeModel(model));
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, d] of Object.entries(dims)) {
      const rand = mulberry32(name.length * 31 + 5);
      const data = Float32Array.from({ length: d.reduce((a, b) => a * b, 1) }, () => rand() * 2 - 1);
      feeds[name] = new ort.Tensor('float32', data, d);
    }
    const out = await runSession(m.session, feeds);
    return out[m.outputs[0]!.name]!.data as Float32Array;
  } finally {
    await m.release();
  }
}

/** ‖a − b‖ / ‖a‖: unlike the cosine, it also catches a wrong scale (e.g. a lost Gemm alpha). */
function relativeError(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += a[i]! ** 2;
  }
  return Math.sqrt(d / n);
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

/** Quantizes, checks ORT agrees with fp32 closely, returns the result for further checks. */
async function assertClose(model: ModelProto, dims: Record<string, number[]>, opts = {}) {
  const q = quantizeDynamic(model, opts);
  const a = await runOnce(model, dims);
  const b = await runOnce(q.model, dims);
  assert.equal(a.length, b.length);
  const cos = cosine(a, b);
  assert.ok(cos > 0.999, `cosine ${cos}`);
  const rel = relativeError(a, b);
  assert.ok(rel < 0.05, `relative error ${rel}`);
  return q;
}

const ops = (m: ModelProto) => (m.graph?.node ?? []).map((n) => n.op_type);

describe('quantizeDynamic on the reference CNN', () => {
  test('runs in ORT, < 0.3 size, ≥ 99% agreement and accuracy within 0.5 pt on 500 eval digits', async () => {
    const fp32Model = decodeModel(readFileSync(MNIST_CNN));
    const progress: number[] = [];
    const { model, report } = quantizeDynamic(fp32Model, { onProgress: (d, t) => progress.push(d / t) });
    assert.equal(progress.at(-1), 1);
    assert.equal(report.weightType, 'uint8');
    assert.ok(report.sizeAfter / report.sizeBefore < 0.3, `ratio ${report.sizeAfter / report.sizeBefore}`);
    assert.equal(report.sizeBefore, readFileSync(MNIST_CNN).length);
    const bytes = encodeModel(model);
    assert.equal(bytes.length, report.sizeAfter);
    assert.deepEqual(report.quantized.map((q) => q.op).sort(), ['Conv', 'Conv', 'Gemm', 'Gemm']);
    assert.equal(report.skipped.length, 6);
    assert.ok(report.skipped.every((s) => s.reason.length > 0 && !['Conv', 'Gemm'].includes(s.op)));
    // Float weights are gone, int8 ones are there; opset 17 already allows the new ops.
    const inits = model.graph?.initializer ?? [];
    assert.ok(!inits.some((t) => t.name === 'f1.weight'));
    assert.equal(inits.find((t) => t.name === 'f1.weight_quantized')?.data_type, 2);
    assert.equal(report.opsetBumped, undefined);
    assert.equal(ops(model).filter((o) => o === 'DynamicQuantizeLinear').length, 4);
    // The input model is untouched.
    assert.ok(Buffer.from(encodeModel(fp32Model)).equals(readFileSync(MNIST_CNN)));

    const ds = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 500);
    const ref = await evaluate(MNIST_CNN, ds);
    const q = await evaluate(bytes, ds);
    const cmp = compareOutputs(ref, q);
    assert.ok(cmp.top1Agreement >= 0.99, `agreement ${cmp.top1Agreement}`);
    assert.ok(Math.abs(q.accuracy - ref.accuracy) <= 0.005, `accuracy ${q.accuracy} vs ${ref.accuracy}`);
    assert.ok(cmp.meanCosine > 0.999);
  });

  test('int8 per-channel weights also hold accuracy', async () => {
    const { model, report } = quantizeDynamic(decodeModel(readFileSync(MNIST_CNN)), {
      weightType: 'int8',
      perChannel: true,
    });
    assert.equal(report.perChannel, true);
    const scale = model.graph?.initializer?.find((t) => t.name === 'c2.weight_scale');
    assert.deepEqual(scale?.dims?.map(int64ToNumber), [32, 1, 1]);
    const zp = model.graph?.initializer?.find((t) => t.name === 'c2.weight_zero_point');
    assert.deepEqual(readTensor(zp!), new Int8Array([0]));
    const ds = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 300);
    const cmp = compareOutputs(await evaluate(MNIST_CNN, ds), await evaluate(encodeModel(model), ds));
    assert.ok(cmp.top1Agreement >= 0.99);
  });
});

describe('quantizeDynamic rewrites', () => {
  test('a model with no quantizable node: everything skipped, model unchanged', () => {
    const m = buildModel({
      nodes: [node('Relu', ['x'], ['r']), node('Add', ['r', 'b'], ['y'])],
      inputs: [floatInput('x', ['n', 4])],
      outputs: [floatInput('y', ['n', 4])],
      initializers: [randomTensor('b', [4], 1)],
    });
    const before = encodeModel(m);
    const { model, report } = quantizeDynamic(m);
    assert.equal(model, m);
    assert.ok(Buffer.from(encodeModel(model)).equals(before));
    assert.deepEqual(report.quantized, []);
    assert.deepEqual(
      report.skipped.map((s) => s.op),
      ['Relu', 'Add'],
    );
    assert.equal(report.sizeAfter, report.sizeBefore);
  });

  test('Gemm with transA, alpha, beta and a constant bias', async () => {
    const m = buildModel({
      nodes: [
        node('Gemm', ['x', 'W', 'C'], ['y'], 'gemm', [
          intAttr('transA', 1),
          floatAttr('alpha', 0.5),
          floatAttr('beta', 2),
        ]),
      ],
      inputs: [floatInput('x', [16, 3])], // transA: A is [K=16, M=3]
      outputs: [floatInput('y', [3, 8])],
      initializers: [randomTensor('W', [16, 8], 2), randomTensor('C', [8], 3)],
    });
    const q = await assertClose(m, { x: [16, 3] });
    assert.deepEqual(ops(q.model), [
      'Transpose',
      'DynamicQuantizeLinear',
      'MatMulInteger',
      'Cast',
      'Mul',
      'Mul',
      'Add',
    ]);
    assert.ok(!(q.model.graph?.initializer ?? []).some((t) => t.name === 'C'), 'C replaced by beta*C');
  });

  test('Gemm with transB and a run-time bias scaled by beta', async () => {
    const m = buildModel({
      nodes: [node('Gemm', ['x', 'W', 'c'], ['y'], 'gemm', [intAttr('transB', 1), floatAttr('beta', -1.5)])],
      inputs: [floatInput('x', [4, 12]), floatInput('c', [1, 6])],
      outputs: [floatInput('y', [4, 6])],
      initializers: [randomTensor('W', [6, 12], 4)],
    });
    const q = await assertClose(m, { x: [4, 12], c: [1, 6] });
    assert.ok(ops(q.model).includes('Mul'));
    assert.equal(q.report.quantized[0]?.node, 'gemm');
  });

  test('batched MatMul per-channel, weight shared by two nodes is quantized once', async () => {
    const m = buildModel({
      nodes: [
        node('MatMul', ['x', 'W'], ['h']),
        node('Relu', ['h'], ['r']),
        node('MatMul', ['x', 'W'], ['y2']),
      ],
      inputs: [floatInput('x', [2, 3, 10])],
      outputs: [floatInput('r', [2, 3, 10]), floatInput('y2', [2, 3, 10])],
      initializers: [randomTensor('W', [10, 10], 5)],
    });
    const q = await assertClose(m, { x: [2, 3, 10] }, { perChannel: true });
    const inits = (q.model.graph?.initializer ?? []).map((t) => t.name);
    assert.deepEqual(inits.sort(), ['W_quantized', 'W_scale', 'W_zero_point']);
    // One DynamicQuantizeLinear for the shared activation x.
    assert.equal(ops(q.model).filter((o) => o === 'DynamicQuantizeLinear').length, 1);
  });

  test('grouped, strided, padded Conv; Conv with a run-time bias; Conv without bias', async () => {
    const attrs = [
      intAttr('group', 2),
      intsAttr('kernel_shape', [3, 3]),
      intsAttr('strides', [2, 2]),
      intsAttr('pads', [1, 1, 1, 1]),
    ];
    const m = buildModel({
      nodes: [
        node('Conv', ['x', 'W1', 'b1'], ['c1'], 'conv1', attrs),
        node('Conv', ['c1', 'W2', 'b2'], ['c2'], 'conv2'),
        node('Conv', ['c2', 'W3'], ['y'], 'conv3'),
      ],
      inputs: [floatInput('x', [1, 4, 9, 9]), floatInput('b2', [6])],
      outputs: [floatInput('y', [1, 2, 3, 3])],
      initializers: [
        randomTensor('W1', [8, 2, 3, 3], 6),
        randomTensor('b1', [8], 7),
        randomTensor('W2', [6, 8, 1, 1], 8),
        randomTensor('W3', [2, 6, 3, 3], 9),
      ],
    });
    for (const perChannel of [false, true]) {
      const q = await assertClose(m, { x: [1, 4, 9, 9], b2: [6] }, { perChannel, weightType: 'int8' });
      assert.equal(q.report.quantized.length, 3);
      const conv = q.model.graph?.node?.find((n) => n.op_type === 'ConvInteger');
      assert.deepEqual(
        conv?.attribute?.map((a) => a.name),
        ['group', 'kernel_shape', 'strides', 'pads'],
      );
      assert.ok(ops(q.model).includes('Reshape'), 'run-time bias reshaped to [M,1,1]');
    }
  });

  test('non-constant weights, overridable initializers, exclusions and opTypes are skipped with reasons', () => {
    const m = buildModel({
      nodes: [
        node('MatMul', ['x', 'w_dyn'], ['a'], 'dyn'),
        node('MatMul', ['x', 'W_in'], ['b'], 'overridable'),
        node('MatMul', ['x', 'W'], ['c'], 'excluded'),
        node('Gemm', ['x', 'W'], ['d'], 'gemm'),
        node('MatMul', ['x', 'V'], ['e'], 'vector'),
      ],
      inputs: [floatInput('x', [2, 4]), floatInput('w_dyn', [4, 4]), floatInput('W_in', [4, 4])],
      outputs: ['a', 'b', 'c', 'd', 'e'].map((o) => floatInput(o, [2, 4])),
      initializers: [
        randomTensor('W_in', [4, 4], 1),
        randomTensor('W', [4, 4], 2),
        randomTensor('V', [4], 3),
      ],
    });
    const { report } = quantizeDynamic(m, { nodesToExclude: ['excluded'], opTypes: ['MatMul', 'Conv'] });
    const why = Object.fromEntries(report.skipped.map((s) => [s.node, s.reason]));
    assert.match(why.dyn!, /computed at run time/);
    assert.match(why.overridable!, /overridable/);
    assert.equal(why.excluded, 'excluded by nodesToExclude');
    assert.equal(why.gemm, 'Gemm not in opTypes');
    assert.match(why.vector!, /1-D/);
    assert.deepEqual(report.quantized, []);
  });

  test('old opset is raised to 11 for DynamicQuantizeLinear', async () => {
    const m = buildModel({
      nodes: [node('MatMul', ['x', 'W'], ['y'])],
      inputs: [floatInput('x', [3, 5])],
      outputs: [floatInput('y', [3, 4])],
      initializers: [randomTensor('W', [5, 4], 11)],
      opset: 9,
    });
    const q = await assertClose(m, { x: [3, 5] });
    assert.deepEqual(q.report.opsetBumped, { from: 9, to: 11 });
    assert.equal(int64ToNumber(q.model.opset_import?.[0]?.version), 11);
  });

  test('weights from Constant nodes and from an outer scope inside an If branch', async () => {
    const constW: TensorProto = randomTensor('unused', [6, 3], 12);
    const branch = (out: string, w: string) => ({
      name: `${out}_branch`,
      node: [node('MatMul', ['x', w], [out], `${out}_mm`)],
      output: [floatInput(out, [2, 3])],
    });
    const m = buildModel({
      nodes: [
        node('Constant', [], ['Wc'], 'const', [{ name: 'value', type: 4, t: constW }]),
        node('If', ['cond'], ['y'], 'if', [
          { name: 'then_branch', type: 5, g: branch('t', 'Wc') },
          { name: 'else_branch', type: 5, g: branch('e', 'Wo') },
        ]),
      ],
      inputs: [floatInput('x', [2, 6]), floatInput('cond', [], 9)],
      outputs: [floatInput('y', [2, 3])],
      initializers: [randomTensor('Wo', [6, 3], 13)],
    });
    const { model, report } = quantizeDynamic(m);
    assert.deepEqual(
      report.quantized.map((q) => [q.node, q.graph]),
      [
        ['t_mm', 'if/then_branch'],
        ['e_mm', 'if/else_branch'],
      ],
    );
    // The Constant and the outer float initializer are no longer needed.
    assert.ok(!ops(model).includes('Constant'));
    assert.ok(!(model.graph?.initializer ?? []).some((t) => t.name === 'Wo'));
    const s = await loadModel(encodeModel(model));
    const feeds = syntheticFeeds(s.inputs, 2, { inputFill: { cond: 1 } });
    const out = await runSession(s.session, feeds);
    assert.equal(out.y?.dims.join(), '2,3');
    await s.release();
  });
});

describe('quantizeDynamic on Silero VAD', () => {
  for (const path of sileroModels()) {
    test(`${path.split('/').pop()}: quantizes (or skips with reasons) and still runs`, async () => {
      const bytes = readFileSync(path);
      const { model, report } = quantizeDynamic(decodeModel(bytes));
      assert.ok(report.quantized.length > 0);
      assert.ok(report.sizeAfter < report.sizeBefore);
      for (const s of report.skipped) assert.ok(s.reason.length > 0);
      const lstm = report.skipped.find((s) => s.op === 'LSTM');
      if (lstm) assert.match(lstm.reason, /no dynamic int8 form/);
      const fp = await loadModel(bytes);
      const q = await loadModel(encodeModel(model));
      const opts = { inputShapes: { input: [1, 512] }, inputFill: { sr: 16000 } };
      const a = (await runSession(fp.session, syntheticFeeds(fp.inputs, 1, opts))).output
        ?.data as Float32Array;
      const b = (await runSession(q.session, syntheticFeeds(q.inputs, 1, opts))).output?.data as Float32Array;
      await fp.release();
      await q.release();
      assert.ok(Number.isFinite(b[0]) && b[0]! >= 0 && b[0]! <= 1, `speech probability ${b[0]}`);
      assert.ok(Math.abs(a[0]! - b[0]!) < 0.1, `fp32 ${a[0]} vs int8 ${b[0]}`);
    });
  }
});

test('quantizeDynamic validates options and input', () => {
  assert.throws(() => quantizeDynamic({ ir_version: toLong(8) }), { code: 'ONNX_PARSE_FAILED' });
  const m = decodeModel(readFileSync(MNIST_CNN));
  assert.throws(() => quantizeDynamic(m, { weightType: 'int4' as 'int8' }), { code: 'VALIDATION_FAILED' });
});
