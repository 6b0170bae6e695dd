import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { OutpostError } from '@outpost/protocol';
import { MNIST_CNN, MNIST_EVAL_X, MNIST_EVAL_Y } from '../testing/fixtures.ts';
import { buildModel, floatInput, node, randomTensor } from '../testing/build.ts';
import { decodeModel, encodeModel, intAttr, makeTensor, readTensor } from '../onnx/index.ts';
import type { ModelProto, TensorProto } from '../onnx/index.ts';
import { loadMnistU8 } from '../datasets/index.ts';
import { evaluate } from '../evaluate/index.ts';
import { mulberry32 } from '../bench/index.ts';
import { formatMagnitudeReport, modelSizes, pruneMagnitude, zeroSmallest } from './index.ts';

const code = (c: string) => (e: unknown) => e instanceof OutpostError && e.code === c;

/**
 * A chain of MatMuls (weights w0, w1, …) ending in a Gemm with a bias. Values sit on a coarse grid
 * (multiples of 1/8, zero included) so that ties and pre-existing zeros are common: exactness must not
 * depend on all magnitudes being distinct.
 */
function chain(widths: number[], seed: number): ModelProto {
  const rand = mulberry32(seed);
  const grid = (n: number) => Float32Array.from({ length: n }, () => Math.round((rand() * 2 - 1) * 8) / 8);
  const nodes = [];
  const initializers: TensorProto[] = [];
  let prev = 'x';
  for (let i = 0; i + 1 < widths.length; i++) {
    const [a, b] = [widths[i]!, widths[i + 1]!];
    initializers.push(makeTensor(`w${i}`, grid(a * b), [a, b]));
    nodes.push(node('MatMul', [prev, `w${i}`], [`h${i}`], `mm${i}`));
    prev = `h${i}`;
  }
  const last = widths[widths.length - 1]!;
  initializers.push(makeTensor('g.w', grid(last * 3), [last, 3]), makeTensor('g.b', grid(3), [3]));
  nodes.push(node('Gemm', [prev, 'g.w', 'g.b'], ['y'], 'gemm'));
  return buildModel({
    nodes,
    inputs: [floatInput('x', ['N', widths[0]!])],
    outputs: [floatInput('y', ['N', 3])],
    initializers,
  });
}

const values = (m: ModelProto, name: string) =>
  readTensor(m.graph!.initializer!.find((t) => t.name === name)!) as Float32Array;
const zeros = (v: Float32Array) => v.reduce((a, x) => a + (x === 0 ? 1 : 0), 0);

/** Every weight either kept as it was or zeroed, and no kept magnitude below a zeroed one. */
function assertMagnitudeOrder(before: Float32Array[], after: Float32Array[]): void {
  let maxZeroed = 0;
  let minKept = Infinity;
  before.forEach((b, l) =>
    b.forEach((x, i) => {
      const y = after[l]![i]!;
      if (y === 0) maxZeroed = Math.max(maxZeroed, Math.abs(x));
      else {
        assert.equal(y, x);
        minKept = Math.min(minKept, Math.abs(x));
      }
    }),
  );
  assert.ok(maxZeroed <= minKept, `zeroed |w| ${maxZeroed} > kept |w| ${minKept}`);
}

describe('pruneMagnitude hits the requested sparsity exactly', () => {
  const arb = fc.record({
    widths: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 2, maxLength: 5 }),
    sparsity: fc.double({ min: 0, max: 1, noNaN: true }),
    seed: fc.integer({ min: 0, max: 1e6 }),
  });

  test('global: round(s·N) of all weights (more only where zeros already were), smallest first', () => {
    fc.assert(
      fc.property(arb, ({ widths, sparsity, seed }) => {
        const model = chain(widths, seed);
        const names = model.graph!.initializer!.map((t) => t.name!).filter((n) => n !== 'g.b');
        const before = names.map((n) => values(model, n));
        const { model: out, report } = pruneMagnitude(model, { sparsity, scope: 'global' });
        const after = names.map((n) => values(out, n));
        const n = before.reduce((a, v) => a + v.length, 0);
        const pre = before.reduce((a, v) => a + zeros(v), 0);
        const k = Math.round(sparsity * n);
        assert.equal(report.zeroed, Math.max(k, pre));
        assert.equal(
          after.reduce((a, v) => a + zeros(v), 0),
          report.zeroed,
        );
        assert.equal(report.params, n);
        assertMagnitudeOrder(before, after);
        assert.deepEqual(values(out, 'g.b'), values(model, 'g.b'), 'biases untouched');
      }),
      { numRuns: 150 },
    );
  });

  test('per-layer: round(s·n) of each layer, and perLayer overrides', () => {
    fc.assert(
      fc.property(arb, fc.double({ min: 0, max: 1, noNaN: true }), ({ widths, sparsity, seed }, override) => {
        const model = chain(widths, seed);
        const { model: out, report } = pruneMagnitude(model, {
          sparsity,
          scope: 'per-layer',
          perLayer: { gemm: override },
        });
        for (const l of report.layers) {
          const b = values(model, l.tensor);
          const a = values(out, l.tensor);
          const target = l.node === 'gemm' ? override : sparsity;
          assert.equal(l.target, target);
          assert.equal(zeros(a), Math.max(Math.round(target * b.length), zeros(b)), l.node);
          assertMagnitudeOrder([b], [a]);
        }
      }),
      { numRuns: 150 },
    );
  });

  test('zeroSmallest breaks ties in order and zeroes exactly k', () => {
    const v = new Float32Array([1, -1, 1, 2, -1]);
    zeroSmallest([v], 2);
    assert.deepEqual([...v], [0, 0, 1, 2, -1]);
    const a = new Float32Array([3, 1]);
    const b = new Float32Array([2, 0.5]);
    zeroSmallest([a, b], 3);
    assert.deepEqual([...a, ...b], [3, 0, 0, 0]);
  });
});

describe('pruneMagnitude on the reference MNIST CNN', () => {
  test('global 50 %: exact sparsity, same file size, smaller gzip, runs in ORT with accuracy within 1 pt', async () => {
    const bytes = readFileSync(MNIST_CNN);
    const model = decodeModel(bytes);
    const progress: number[] = [];
    const { model: sparse, report } = pruneMagnitude(model, {
      sparsity: 0.5,
      scope: 'global',
      onProgress: (d) => progress.push(d),
    });
    assert.equal(report.params, 108432); // weights only: the 186 bias values are not in scope
    assert.equal(report.zeroed, 54216);
    assert.equal(report.globalSparsity, 0.5);
    // A global threshold takes more from the big, redundant f1 than from the small first conv.
    const s = Object.fromEntries(report.layers.map((l) => [l.node, l.sparsity]));
    assert.ok(s['/f1/Gemm']! > 0.5 && s['/c1/Conv']! < 0.5, JSON.stringify(s));
    assert.deepEqual(progress, [1]);
    const before = modelSizes(bytes);
    const after = modelSizes(sparse);
    assert.equal(after.bytes, before.bytes);
    assert.ok(after.gzipBytes < before.gzipBytes * 0.7, `${after.gzipBytes} vs ${before.gzipBytes}`);
    assert.deepEqual(values(sparse, 'f1.bias'), values(model, 'f1.bias'));
    assert.match(formatMagnitudeReport(report), /50\.0 %/);

    const ds = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 500);
    const base = await evaluate(bytes, ds);
    const pruned = await evaluate(encodeModel(sparse), ds);
    assert.ok(pruned.accuracy >= base.accuracy - 0.01, `${pruned.accuracy} vs ${base.accuracy}`);
  });

  test('minParams leaves small layers dense; opTypes narrows the scope', () => {
    const model = decodeModel(readFileSync(MNIST_CNN));
    const r = pruneMagnitude(model, { sparsity: 0.8, minParams: 2000, opTypes: ['Conv', 'Gemm'] });
    assert.deepEqual(
      r.report.layers.map((l) => l.node),
      ['/c2/Conv', '/f1/Gemm'],
    );
    assert.deepEqual(
      r.report.skipped.map((s) => s.node),
      ['/c1/Conv', '/f2/Gemm'],
    );
    assert.match(r.report.skipped[0]!.reason, /144 weights < minParams 2000/);
    const only = pruneMagnitude(model, { sparsity: 0.5, opTypes: ['Conv'] });
    assert.deepEqual(
      only.report.layers.map((l) => l.op),
      ['Conv', 'Conv'],
    );
  });
});

describe('pruneMagnitude skips what it must not touch', () => {
  test('a runtime weight, a weight shared with another op, and a subgraph node are skipped with reasons', () => {
    const model = buildModel({
      nodes: [
        node('MatMul', ['x', 'z'], ['a'], 'dynamic'),
        node('MatMul', ['a', 'w'], ['b'], 'shared'),
        node('Add', ['b', 'w'], ['c'], 'add'),
        node('If', ['cond'], ['y'], 'if', [
          {
            name: 'then_branch',
            type: 5,
            g: {
              name: 'then',
              node: [node('MatMul', ['c', 'w2'], ['t'], 'inner')],
              initializer: [randomTensor('w2', [4, 4], 3)],
              output: [floatInput('t', [4, 4])],
            },
          },
          {
            name: 'else_branch',
            type: 5,
            g: {
              name: 'else',
              node: [node('Identity', ['c'], ['e'], 'id')],
              output: [floatInput('e', [4, 4])],
            },
          },
        ]),
      ],
      inputs: [floatInput('x', [4, 4]), floatInput('z', [4, 4]), floatInput('cond', [], 9)],
      outputs: [floatInput('y', [4, 4])],
      initializers: [randomTensor('w', [4, 4], 1)],
    });
    const { report } = pruneMagnitude(model, { sparsity: 0.5 });
    assert.deepEqual(report.layers, []);
    const why = Object.fromEntries(report.skipped.map((s) => [s.node, s.reason]));
    assert.match(why.dynamic!, /not a constant initializer/);
    assert.match(why.shared!, /also read by add \(Add\)/);
    assert.match(why.inner!, /subgraph/);
  });

  test('a weight shared by two prunable nodes is pruned once', () => {
    const model = buildModel({
      nodes: [node('MatMul', ['x', 'w'], ['a'], 'm1'), node('MatMul', ['a', 'w'], ['y'], 'm2')],
      inputs: [floatInput('x', ['N', 6])],
      outputs: [floatInput('y', ['N', 6])],
      initializers: [randomTensor('w', [6, 6], 5)],
    });
    const { report } = pruneMagnitude(model, { sparsity: 0.5 });
    assert.deepEqual(
      report.layers.map((l) => [l.node, l.zeroed]),
      [['m1', 18]],
    );
  });

  test('bad options are VALIDATION_FAILED; a model without a graph is ONNX_PARSE_FAILED', () => {
    const model = chain([3, 3], 1);
    for (const sparsity of [-0.1, 1.01, Number.NaN, '0.5' as unknown as number]) {
      assert.throws(() => pruneMagnitude(model, { sparsity }), code('VALIDATION_FAILED'));
    }
    assert.throws(
      () => pruneMagnitude(model, { sparsity: 0.5, scope: 'all' as 'global' }),
      code('VALIDATION_FAILED'),
    );
    assert.throws(
      () => pruneMagnitude(model, { sparsity: 0.5, perLayer: { nope: 0.5 } }),
      code('VALIDATION_FAILED'),
    );
    assert.throws(
      () => pruneMagnitude(model, { sparsity: 0.5, perLayer: { mm0: 2 } }),
      code('VALIDATION_FAILED'),
    );
    assert.throws(() => pruneMagnitude(model, { sparsity: 0.5, minParams: -1 }), code('VALIDATION_FAILED'));
    assert.throws(() => pruneMagnitude(model, { sparsity: 0.5, opTypes: [] }), code('VALIDATION_FAILED'));
    assert.throws(() => pruneMagnitude({}, { sparsity: 0.5 }), code('ONNX_PARSE_FAILED'));
    // Gemm transB is irrelevant to unstructured pruning but must not break it.
    const g = chain([2, 2], 3);
    g.graph!.node![1]!.attribute = [intAttr('transB', 0)];
    assert.equal(pruneMagnitude(g, { sparsity: 1 }).report.globalSparsity, 1);
  });
});
