import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MNIST_CNN } from '../testing/fixtures.ts';
import { buildModel, floatInput, node, randomTensor } from '../testing/build.ts';
import {
  decodeModel,
  encodeModel,
  floatAttr,
  intAttr,
  intsAttr,
  makeTensor,
  readTensor,
  tensorDims,
  toLong,
} from '../onnx/index.ts';
import type { ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../onnx/index.ts';
import { loadModel, ort, runSession } from '../runtime/index.ts';
import { mulberry32 } from '../bench/index.ts';
import { OutpostError } from '@outpost/protocol';
import { filterNorms, formatFilterReport, keepLargest, pruneFilters, sliceChannels } from './index.ts';

/** Runs a model on a fixed random batch and returns its first output. */
async function run(model: ModelProto, dims: number[], seed = 7): Promise<Float32Array> {
  const m = await loadModel(encodeModel(model));
  try {
    const rand = mulberry32(seed);
    const data = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rand() * 2 - 1);
    const out = await runSession(m.session, { [m.inputs[0]!.name]: new ort.Tensor('float32', data, dims) });
    return out[m.outputs[0]!.name]!.data as Float32Array;
  } finally {
    await m.release();
  }
}

/** Random tensor whose `zero` slices along axis 0 are exactly zero. */
function withZeroFilters(name: string, dims: number[], zero: number[], seed: number): TensorProto {
  const v = readTensor(randomTensor(name, dims, seed)) as Float32Array;
  const per = v.length / (dims[0] ?? 1);
  for (const f of zero) v.fill(0, f * per, (f + 1) * per);
  return makeTensor(name, v, dims);
}

function positive(name: string, n: number, seed: number): TensorProto {
  const rand = mulberry32(seed);
  return makeTensor(
    name,
    Float32Array.from({ length: n }, () => 0.5 + rand()),
    [n],
  );
}

type Flatten = 'Flatten' | 'Reshape';
type Head = 'GemmT' | 'Gemm' | 'MatMul';

/**
 * A small CNN: Conv(1→8, pad 1) → BN → Relu → MaxPool → Conv(8→6) → Relu → Flatten/Reshape → Gemm/MatMul.
 * Filters ZERO1 of c1 and ZERO2 of c2 are exactly zero — weights, bias, and the BN shift for c1 — so their
 * channels carry zeros all the way and removing them must not change the output.
 */
const ZERO1 = [1, 4, 6, 7];
const ZERO2 = [0, 3, 5];
function smallCnn(flatten: Flatten, head: Head, valueInfo: ValueInfoProto[] = []): ModelProto {
  const c1b = readTensor(randomTensor('c1.b', [8], 2)) as Float32Array;
  const c2b = readTensor(randomTensor('c2.b', [6], 4)) as Float32Array;
  const bnB = readTensor(randomTensor('bn.B', [8], 5)) as Float32Array;
  const bnMean = readTensor(randomTensor('bn.mean', [8], 6)) as Float32Array;
  for (const f of ZERO1) c1b[f] = bnB[f] = bnMean[f] = 0;
  for (const f of ZERO2) c2b[f] = 0;
  const features = 6 * 2 * 2; // c2 output 6×2×2 after 8×8 → pool 4×4 → 3×3 valid conv
  const w = head === 'GemmT' ? [5, features] : [features, 5];
  const nodes: NodeProto[] = [
    node('Conv', ['x', 'c1.w', 'c1.b'], ['c1'], 'c1', [
      intsAttr('kernel_shape', [3, 3]),
      intsAttr('pads', [1, 1, 1, 1]),
    ]),
    node('BatchNormalization', ['c1', 'bn.scale', 'bn.B', 'bn.mean', 'bn.var'], ['bn'], 'bn', [
      floatAttr('epsilon', 1e-5),
    ]),
    node('Relu', ['bn'], ['r1'], 'relu1'),
    node('MaxPool', ['r1'], ['p1'], 'pool1', [intsAttr('kernel_shape', [2, 2]), intsAttr('strides', [2, 2])]),
    node('Conv', ['p1', 'c2.w', 'c2.b'], ['c2'], 'c2', [intsAttr('kernel_shape', [3, 3])]),
    node('Relu', ['c2'], ['r2'], 'relu2'),
    flatten === 'Flatten'
      ? node('Flatten', ['r2'], ['flat'], 'flatten', [intAttr('axis', 1)])
      : node('Reshape', ['r2', 'shape'], ['flat'], 'reshape'),
    head === 'MatMul'
      ? node('MatMul', ['flat', 'fc.w'], ['logits'], 'fc')
      : node('Gemm', ['flat', 'fc.w', 'fc.b'], ['logits'], 'fc', [
          intAttr('transB', head === 'GemmT' ? 1 : 0),
        ]),
  ];
  const initializers = [
    withZeroFilters('c1.w', [8, 1, 3, 3], ZERO1, 1),
    makeTensor('c1.b', c1b, [8]),
    positive('bn.scale', 8, 8),
    makeTensor('bn.B', bnB, [8]),
    makeTensor('bn.mean', bnMean, [8]),
    positive('bn.var', 8, 9),
    withZeroFilters('c2.w', [6, 8, 3, 3], ZERO2, 3),
    makeTensor('c2.b', c2b, [6]),
    randomTensor('fc.w', w, 10),
    randomTensor('fc.b', [5], 11),
  ];
  if (flatten === 'Reshape') initializers.push(makeTensor('shape', new BigInt64Array([0n, -1n]), [2]));
  const model = buildModel({
    nodes,
    inputs: [floatInput('x', ['N', 1, 8, 8])],
    outputs: [floatInput('logits', ['N', 5])],
    initializers,
  });
  if (valueInfo.length) model.graph!.value_info = valueInfo;
  return model;
}

const code = (c: string) => (e: unknown) => e instanceof OutpostError && e.code === c;

describe('pruneFilters: removing zero-norm filters leaves the outputs unchanged', () => {
  for (const [flatten, head] of [
    ['Flatten', 'GemmT'],
    ['Flatten', 'Gemm'],
    ['Reshape', 'MatMul'],
  ] as const) {
    test(`${flatten} → ${head}`, async () => {
      const model = smallCnn(flatten, head);
      const before = encodeModel(model);
      const { model: slim, report } = await pruneFilters(model, { ratio: 0.5 });
      assert.deepEqual(encodeModel(model), before, 'the input model is not modified');
      assert.deepEqual(report.pruned, ['c1', 'c2']);
      assert.deepEqual(report.skipped, []);
      const c1 = report.layers.find((l) => l.node === 'c1')!;
      const c2 = report.layers.find((l) => l.node === 'c2')!;
      const fc = report.layers.find((l) => l.node === 'fc')!;
      assert.deepEqual(c1.removedChannels, ZERO1);
      assert.deepEqual(c2.removedChannels, ZERO2);
      assert.deepEqual([c1.outChannelsBefore, c1.outChannelsAfter], [8, 4]);
      assert.deepEqual([c2.inChannelsBefore, c2.inChannelsAfter, c2.outChannelsAfter], [8, 4, 3]);
      assert.deepEqual([fc.inChannelsBefore, fc.inChannelsAfter], [24, 12]);
      assert.ok(report.paramsAfter < report.paramsBefore && report.macsAfter < report.macsBefore);
      // MACs from shapes: c1 8×8 outputs × 9 taps × (8 → 4) filters.
      assert.deepEqual([c1.macsBefore, c1.macsAfter], [64 * 8 * 9, 64 * 4 * 9]);
      assert.equal(c2.macsAfter, 4 * 3 * 4 * 9);

      const a = await run(model, [3, 1, 8, 8]);
      const b = await run(slim, [3, 1, 8, 8]);
      assert.equal(a.length, b.length);
      for (let i = 0; i < a.length; i++)
        assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-5, `output ${i}: ${a[i]} vs ${b[i]}`);
    });
  }

  test('value_info follows the new channel counts; an unexpected recorded shape is dropped', async () => {
    const vi = (name: string, c: number) => floatInput(name, ['N', c, 8, 8]);
    const model = smallCnn('Flatten', 'GemmT', [vi('c1', 8), vi('r1', 99), floatInput('flat', ['N', 24])]);
    const { model: slim } = await pruneFilters(model, { ratio: 0.5 });
    const infos = slim.graph!.value_info!;
    const dim1 = (name: string) =>
      Number(infos.find((v) => v.name === name)?.type?.tensor_type?.shape?.dim?.[1]?.dim_value);
    assert.equal(dim1('c1'), 4);
    assert.equal(dim1('flat'), 12);
    assert.equal(
      infos.find((v) => v.name === 'r1'),
      undefined,
    );
    await run(slim, [1, 1, 8, 8]);
  });

  test('l1 and l2 rank filters differently', () => {
    const w = new Float32Array([3, 0, 0, 0, 1, 1, 1, 1]); // filter 0: L1 3, L2 3; filter 1: L1 4, L2 2
    assert.deepEqual(keepLargest(filterNorms(w, 2, 'l1'), 1), [1]);
    assert.deepEqual(keepLargest(filterNorms(w, 2, 'l2'), 1), [0]);
  });

  test('sliceChannels keeps channel blocks along any axis', () => {
    // [2, 6] with blocks of 2 along axis 1: keep channels 0 and 2 → columns 0,1,4,5.
    const d = Float32Array.from({ length: 12 }, (_, i) => i);
    const r = sliceChannels(d, [2, 6], 1, 2, [0, 2]);
    assert.deepEqual(r.dims, [2, 4]);
    assert.deepEqual([...r.values], [0, 1, 4, 5, 6, 7, 10, 11]);
  });
});

describe('pruneFilters on the reference MNIST CNN', () => {
  test('50 % of filters: ORT runs it with half the parameters and under a third of the MACs', async () => {
    const model = decodeModel(readFileSync(MNIST_CNN));
    const steps: string[] = [];
    const { model: slim, report } = await pruneFilters(model, {
      ratio: 0.5,
      onProgress: (_d, _t, label) => steps.push(label ?? ''),
    });
    assert.equal(report.paramsBefore, 108618);
    assert.equal(report.paramsAfter, 80 + 1168 + 51328 + 1290);
    assert.ok(report.macsAfter / report.macsBefore < 0.35, `${report.macsAfter}/${report.macsBefore}`);
    assert.ok(report.sizeAfter < report.sizeBefore * 0.55);
    assert.deepEqual(
      report.layers.map((l) => [l.node, l.outChannelsAfter]),
      [
        ['/c1/Conv', 8],
        ['/c2/Conv', 16],
        ['/f1/Gemm', 128],
        ['/f2/Gemm', 10],
      ],
    );
    assert.deepEqual(tensorDims(slim.graph!.initializer!.find((t) => t.name === 'f1.weight')!), [128, 400]);
    assert.equal(steps.length, 4);
    assert.match(formatFilterReport(report), /800 → 400/);
    const out = await run(slim, [2, 1, 28, 28]);
    assert.equal(out.length, 20);
    assert.ok(out.every(Number.isFinite));
  });

  test('nodes restricts pruning to the named convs', async () => {
    const model = decodeModel(readFileSync(MNIST_CNN));
    const { report } = await pruneFilters(model, { ratio: 0.25, nodes: ['/c2/Conv'], criterion: 'l2' });
    assert.deepEqual(report.pruned, ['/c2/Conv']);
    assert.equal(report.layers[0]!.outChannelsAfter, 16);
    assert.equal(report.layers[1]!.outChannelsAfter, 24);
  });
});

/** Conv(4) → Relu → (one of the topologies) with a second Conv(4 → 4) somewhere after. */
function topology(kind: 'residual' | 'concat' | 'depthwise' | 'output'): ModelProto {
  const conv = (name: string, input: string, out: string, attrs: ReturnType<typeof intAttr>[] = []) =>
    node('Conv', [input, `${name}.w`, `${name}.b`], [out], name, [
      intsAttr('kernel_shape', [3, 3]),
      intsAttr('pads', [1, 1, 1, 1]),
      ...attrs,
    ]);
  const nodes = [conv('a', 'x', 'ya'), node('Relu', ['ya'], ['ra'], 'relu_a')];
  let bw = [4, 4, 3, 3];
  let outputs = [floatInput('y', ['N', 4, 6, 6])];
  if (kind === 'residual') {
    nodes.push(conv('b', 'ra', 'yb'), node('Add', ['ra', 'yb'], ['y'], 'add'));
  } else if (kind === 'concat') {
    nodes.push(conv('b', 'ra', 'yb'), node('Concat', ['ra', 'yb'], ['y'], 'concat', [intAttr('axis', 1)]));
    outputs = [floatInput('y', ['N', 8, 6, 6])];
  } else if (kind === 'depthwise') {
    bw = [4, 1, 3, 3];
    nodes.push(conv('b', 'ra', 'y', [intAttr('group', 4)]));
  } else {
    nodes.push(conv('b', 'ra', 'y'));
    outputs.push(floatInput('ra', ['N', 4, 6, 6]));
  }
  return buildModel({
    nodes,
    inputs: [floatInput('x', ['N', 2, 6, 6])],
    outputs,
    initializers: [
      randomTensor('a.w', [4, 2, 3, 3], 1),
      randomTensor('a.b', [4], 2),
      randomTensor('b.w', bw, 3),
      randomTensor('b.b', [4], 4),
    ],
  });
}

describe('pruneFilters skips what it cannot follow, and says why', () => {
  for (const [kind, reason] of [
    ['residual', /merges two runtime tensors/],
    ['concat', /Concat/],
    ['depthwise', /grouped\/depthwise/],
    ['output', /graph output/],
  ] as const) {
    test(kind, async () => {
      const model = topology(kind);
      const { model: out, report } = await pruneFilters(model, { ratio: 0.5 });
      const a = report.skipped.find((s) => s.node === 'a');
      assert.ok(a, JSON.stringify(report.skipped));
      assert.match(a.reason, reason);
      assert.ok(!report.pruned.includes('a'));
      assert.deepEqual(
        out.graph!.initializer!.find((t) => t.name === 'a.w'),
        model.graph!.initializer!.find((t) => t.name === 'a.w'),
      );
      // Whatever was or was not pruned, the result runs.
      await run(out, [1, 2, 6, 6]);
    });
  }
});

describe('pruneFilters input validation', () => {
  const model = () => decodeModel(readFileSync(MNIST_CNN));
  for (const ratio of [-0.1, 1, 1.5, Number.NaN, '0.5' as unknown as number]) {
    test(`ratio ${String(ratio)} is VALIDATION_FAILED`, async () => {
      await assert.rejects(pruneFilters(model(), { ratio }), code('VALIDATION_FAILED'));
    });
  }
  test('bad criterion or unknown nodes are VALIDATION_FAILED', async () => {
    await assert.rejects(
      pruneFilters(model(), { ratio: 0.5, criterion: 'l3' as 'l1' }),
      code('VALIDATION_FAILED'),
    );
    await assert.rejects(
      pruneFilters(model(), { ratio: 0.5, nodes: ['/f1/Gemm'] }),
      code('VALIDATION_FAILED'),
    );
  });
  test('a corrupt model is ONNX_PARSE_FAILED', async () => {
    assert.throws(
      () => decodeModel(new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02])),
      code('ONNX_PARSE_FAILED'),
    );
    await assert.rejects(pruneFilters({ ir_version: toLong(8) }, { ratio: 0.5 }), code('ONNX_PARSE_FAILED'));
  });
});
