import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { OutpostError } from '@outpost/protocol';
import { MNIST_CNN, MNIST_EVAL_X, MNIST_EVAL_Y, MNIST_TRAIN_X, MNIST_TRAIN_Y } from '../testing/fixtures.ts';
import { buildModel, floatInput, node, randomTensor } from '../testing/build.ts';
import { decodeModel, encodeModel, floatAttr, intAttr, intsAttr, makeTensor } from '../onnx/index.ts';
import type { ModelProto } from '../onnx/index.ts';
import { loadMnistU8, sliceDataset } from '../datasets/index.ts';
import type { Dataset } from '../datasets/index.ts';
import { evaluate } from '../evaluate/index.ts';
import { mulberry32 } from '../bench/index.ts';
import { pruneFilters } from '../prune/index.ts';
import { finetune } from './index.ts';

const code = (c: string) => (e: unknown) => e instanceof OutpostError && e.code === c;
const init = (m: ModelProto, name: string) => m.graph!.initializer!.find((t) => t.name === name);

let pruned: ModelProto;
let train: Dataset;
let evalSet: Dataset;
let prunedAccuracy: number;

before(async () => {
  pruned = (await pruneFilters(decodeModel(readFileSync(MNIST_CNN)), { ratio: 0.5 })).model;
  train = await loadMnistU8(MNIST_TRAIN_X, MNIST_TRAIN_Y, 2000);
  evalSet = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 500);
  prunedAccuracy = (await evaluate(encodeModel(pruned), evalSet)).accuracy;
});

describe('finetune recovers accuracy after filter pruning', () => {
  test('head mode: trains only the classifier, deterministically, and accuracy goes up', async () => {
    const steps: number[] = [];
    const r = await finetune(pruned, train, {
      mode: 'head',
      epochs: 2,
      learningRate: 1e-3,
      onProgress: (d, t) => steps.push(d / t),
    });
    assert.deepEqual(r.trained, ['f1.weight', 'f1.bias', 'f2.weight', 'f2.bias']);
    assert.equal(r.backend, 'wasm');
    assert.deepEqual(init(r.model, 'c1.weight'), init(pruned, 'c1.weight'), 'the trunk is untouched');
    assert.notDeepEqual(init(r.model, 'f1.weight')!.raw_data, init(pruned, 'f1.weight')!.raw_data);
    assert.equal(steps.length, 2 * Math.ceil(2000 / 64));
    assert.equal(steps[steps.length - 1], 1);
    assert.equal(r.history.length, 2);
    assert.ok(r.history[1]!.loss < r.history[0]!.loss, JSON.stringify(r.history));
    const acc = (await evaluate(encodeModel(r.model), evalSet)).accuracy;
    assert.ok(acc > prunedAccuracy + 0.1, `${acc} vs pruned ${prunedAccuracy}`);

    const again = await finetune(pruned, train, { mode: 'head', epochs: 2, learningRate: 1e-3 });
    assert.deepEqual(encodeModel(again.model), encodeModel(r.model), 'same seed, same weights');
    const other = await finetune(pruned, train, { mode: 'head', epochs: 2, learningRate: 1e-3, seed: 2 });
    assert.notDeepEqual(encodeModel(other.model), encodeModel(r.model));
  });

  test('full mode: trains the convs too (WASM im2col) and the result runs in ORT', async () => {
    const small = sliceDataset(train, 768);
    const r = await finetune(pruned, small, { mode: 'full', epochs: 1, learningRate: 1e-3 });
    assert.equal(r.trained.length, 8);
    assert.notDeepEqual(init(r.model, 'c1.weight')!.raw_data, init(pruned, 'c1.weight')!.raw_data);
    const acc = (await evaluate(encodeModel(r.model), evalSet)).accuracy;
    assert.ok(acc > prunedAccuracy + 0.05, `${acc} vs pruned ${prunedAccuracy}`);
  });
});

/** Random data shaped for a model input, labels 0..classes-1. */
function randomData(n: number, features: number, classes: number): Dataset {
  const rand = mulberry32(3);
  return {
    x: Float32Array.from({ length: n * features }, () => rand()),
    y: Uint8Array.from({ length: n }, (_, i) => i % classes),
    n,
  };
}

describe('the tfjs translation agrees with ONNX Runtime', () => {
  test('strided/padded/dilated/grouped conv, BN, ceil-mode pools, Gemm alpha/beta, Softmax output', async () => {
    const model = buildModel({
      nodes: [
        node('Conv', ['x', 'c1.w', 'c1.b'], ['c1'], 'c1', [
          intsAttr('kernel_shape', [3, 3]),
          intsAttr('strides', [2, 2]),
          intsAttr('pads', [1, 0, 2, 1]),
        ]),
        node('BatchNormalization', ['c1', 'bn.s', 'bn.b', 'bn.m', 'bn.v'], ['bn'], 'bn'),
        node('LeakyRelu', ['bn'], ['r1'], 'lrelu', [floatAttr('alpha', 0.2)]),
        node('Conv', ['r1', 'c2.w'], ['c2'], 'c2', [
          intsAttr('kernel_shape', [3, 3]),
          intsAttr('dilations', [2, 2]),
          intAttr('group', 2),
          intsAttr('pads', [2, 2, 2, 2]),
        ]),
        node('MaxPool', ['c2'], ['p1'], 'mp', [
          intsAttr('kernel_shape', [3, 3]),
          intsAttr('strides', [2, 2]),
          intsAttr('pads', [1, 1, 1, 1]),
          intAttr('ceil_mode', 1),
        ]),
        node('Clip', ['p1', 'lo', 'hi'], ['cl'], 'clip'),
        node('AveragePool', ['cl'], ['p2'], 'ap', [intsAttr('kernel_shape', [2, 2])]),
        node('GlobalAveragePool', ['cl'], ['gp'], 'gap'),
        node('Flatten', ['p2'], ['f1'], 'flat1'),
        node('Flatten', ['gp'], ['f2'], 'flat2'),
        node('Concat', ['f1', 'f2'], ['f'], 'cat', [intAttr('axis', 1)]),
        node('Gemm', ['f', 'fc.w', 'fc.b'], ['z'], 'fc', [
          floatAttr('alpha', 0.7),
          floatAttr('beta', 1.3),
          intAttr('transB', 1),
        ]),
        node('Softmax', ['z'], ['y'], 'softmax', [intAttr('axis', -1)]),
      ],
      inputs: [floatInput('x', ['N', 2, 13, 11])],
      outputs: [floatInput('y', ['N', 4])],
      initializers: [
        randomTensor('c1.w', [6, 2, 3, 3], 1),
        randomTensor('c1.b', [6], 2),
        randomTensor('bn.s', [6], 3),
        randomTensor('bn.b', [6], 4),
        randomTensor('bn.m', [6], 5),
        makeTensor('bn.v', new Float32Array(6).fill(0.7), [6]),
        randomTensor('c2.w', [4, 3, 3, 3], 6),
        makeTensor('lo', new Float32Array([-0.5]), []),
        makeTensor('hi', new Float32Array([2]), []),
        // c1 6×7×5 → c2 4×7×5 → MaxPool (ceil) 4×4×3 → AveragePool 4×3×2: 24 + 4 (global pool) = 28 features.
        randomTensor('fc.w', [4, 28], 7),
        randomTensor('fc.b', [4], 8),
      ],
    });
    const r = await finetune(model, randomData(40, 2 * 13 * 11, 4), { epochs: 1, batchSize: 16 });
    assert.deepEqual(r.trained, ['c1.w', 'c1.b', 'c2.w', 'fc.w', 'fc.b']);
    const after = await evaluate(encodeModel(r.model), randomData(8, 2 * 13 * 11, 4));
    assert.equal(after.classes, 4);
  });
});

describe('finetune input validation', () => {
  test('bad options and data are VALIDATION_FAILED / TENSOR_SHAPE_MISMATCH', async () => {
    const data = sliceDataset(train, 64);
    for (const opts of [{ epochs: 0 }, { batchSize: 0 }, { learningRate: -1 }, { mode: 'all' as 'full' }]) {
      await assert.rejects(finetune(pruned, data, opts), code('VALIDATION_FAILED'), JSON.stringify(opts));
    }
    await assert.rejects(
      finetune(pruned, { x: new Float32Array(), y: new Uint8Array(), n: 0 }),
      code('VALIDATION_FAILED'),
    );
    const badLabels = { ...data, y: new Uint8Array(64).fill(12) };
    await assert.rejects(finetune(pruned, badLabels, { mode: 'head' }), code('VALIDATION_FAILED'));
    const wrongSize = { x: new Float32Array(64 * 100), y: data.y, n: 64 };
    await assert.rejects(finetune(pruned, wrongSize), code('TENSOR_SHAPE_MISMATCH'));
  });

  test('an op it cannot train through is ONNX_UNSUPPORTED; no graph is ONNX_PARSE_FAILED', async () => {
    const model = buildModel({
      nodes: [
        node('LRN', ['x'], ['l'], 'lrn', [intAttr('size', 3)]),
        node('MatMul', ['l', 'w'], ['y'], 'mm'),
      ],
      inputs: [floatInput('x', ['N', 4])],
      outputs: [floatInput('y', ['N', 3])],
      initializers: [randomTensor('w', [4, 3], 1)],
    });
    await assert.rejects(
      finetune(model, randomData(8, 4, 3)),
      (e: unknown) => code('ONNX_UNSUPPORTED')(e) && /LRN/.test(String(e)),
    );
    await assert.rejects(finetune({}, randomData(8, 4, 3)), code('ONNX_PARSE_FAILED'));
  });
});
