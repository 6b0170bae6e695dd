import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MNIST_CNN, MNIST_CNN_ORT_DYNAMIC_U8, MNIST_EVAL_X, MNIST_EVAL_Y } from '../testing/fixtures.ts';
import { loadMnistU8, sliceDataset } from '../datasets/index.ts';
import { DataType, encodeModel, makeTensor, toLong } from '../onnx/index.ts';
import type { ModelProto } from '../onnx/index.ts';
import { compareOutputs, evaluate } from './index.ts';

/** y = x · W with W [784, 10] picking pixel k*78 for class k: a tiny [N,784]-input classifier. */
function pixelPickerModel(batchDim: number | string): Uint8Array {
  const w = new Float32Array(784 * 10);
  for (let k = 0; k < 10; k++) w[k * 78 * 10 + k] = 1;
  const dim = (d: number | string) => (typeof d === 'string' ? { dim_param: d } : { dim_value: toLong(d) });
  const model: ModelProto = {
    ir_version: toLong(8),
    opset_import: [{ domain: '', version: toLong(17) }],
    graph: {
      name: 'picker',
      node: [{ op_type: 'MatMul', input: ['x', 'W'], output: ['y'], name: 'mm' }],
      initializer: [makeTensor('W', w, [784, 10])],
      input: [
        {
          name: 'x',
          type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [dim(batchDim), dim(784)] } } },
        },
      ],
      output: [
        {
          name: 'y',
          type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [dim(batchDim), dim(10)] } } },
        },
      ],
    },
  };
  return encodeModel(model);
}

describe('evaluate', () => {
  test('reference CNN on 300 eval digits: high accuracy, batch size does not change results', async () => {
    const ds = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 300);
    const progress: number[] = [];
    const a = await evaluate(MNIST_CNN, ds, {
      batchSize: 64,
      onProgress: (done, total) => progress.push(done / total),
    });
    assert.equal(a.n, 300);
    assert.ok(a.accuracy > 0.95, `accuracy ${a.accuracy}`);
    assert.equal(a.classes, 10);
    assert.equal(a.logits?.length, 3000);
    assert.deepEqual(
      progress,
      [64, 128, 192, 256, 300].map((d) => d / 300),
    );
    // Recount accuracy independently from the predictions.
    let correct = 0;
    for (let i = 0; i < 300; i++) if (a.predictions[i] === ds.y[i]) correct++;
    assert.equal(a.accuracy, correct / 300);
    const b = await evaluate(readFileSync(MNIST_CNN), ds, { batchSize: 7 });
    assert.deepEqual(b.predictions, a.predictions);
    const cmp = compareOutputs(a, b);
    assert.equal(cmp.top1Agreement, 1);
    assert.ok(cmp.meanCosine > 0.99999);
  });

  test('ORT dynamic u8 reference agrees with fp32', async () => {
    const ds = sliceDataset(await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 200), 200);
    const fp32 = await evaluate(MNIST_CNN, ds);
    const q = await evaluate(MNIST_CNN_ORT_DYNAMIC_U8, ds);
    const cmp = compareOutputs(fp32, q);
    assert.ok(cmp.top1Agreement >= 0.98, `agreement ${cmp.top1Agreement}`);
    assert.ok(cmp.meanCosine > 0.999 && cmp.meanCosine <= 1.0000001);
  });

  test('[N,784] input layout, and a fixed batch dimension with a padded last batch', async () => {
    const ds = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 13);
    const expected = new Uint8Array(13);
    for (let i = 0; i < 13; i++) {
      let best = 0;
      for (let k = 1; k < 10; k++) if (ds.x[i * 784 + k * 78]! > ds.x[i * 784 + best * 78]!) best = k;
      expected[i] = best;
    }
    const dynamic = await evaluate(pixelPickerModel('n'), ds, { batchSize: 5 });
    assert.deepEqual(dynamic.predictions, expected);
    const fixed = await evaluate(pixelPickerModel(4), ds);
    assert.deepEqual(fixed.predictions, expected);
    assert.equal(fixed.n, 13);
  });

  test('a dataset that does not fit the input shape is TENSOR_SHAPE_MISMATCH', async () => {
    const ds = { x: new Float32Array(2 * 100), y: new Uint8Array(2), n: 2 };
    await assert.rejects(evaluate(MNIST_CNN, ds), { code: 'TENSOR_SHAPE_MISMATCH' });
    await assert.rejects(evaluate(MNIST_CNN, ds, { inputName: 'nope' }), { code: 'TENSOR_SHAPE_MISMATCH' });
    await assert.rejects(evaluate(new Uint8Array([9, 9, 9]), ds), { code: 'ONNX_PARSE_FAILED' });
  });
});

describe('compareOutputs', () => {
  test('agreement and cosine computed per sample', () => {
    const a = { n: 2, predictions: new Uint8Array([0, 1]), logits: new Float32Array([1, 0, 0, 1]) };
    const b = { n: 2, predictions: new Uint8Array([0, 0]), logits: new Float32Array([2, 0, 1, 0]) };
    const r = compareOutputs(a, b);
    assert.equal(r.top1Agreement, 0.5);
    assert.ok(Math.abs(r.meanCosine - 0.5) < 1e-12);
    assert.throws(() => compareOutputs(a, { ...b, n: 3 }), { code: 'VALIDATION_FAILED' });
    assert.throws(() => compareOutputs({ n: 2, predictions: a.predictions }, b), {
      code: 'VALIDATION_FAILED',
    });
  });
});
