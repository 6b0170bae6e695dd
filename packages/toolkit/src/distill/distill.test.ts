import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { OutpostError } from '@outpost/protocol';
import { loadMnistU8 } from '../datasets/index.ts';
import type { Dataset } from '../datasets/index.ts';
import { evaluate } from '../evaluate/index.ts';
import { DataType, encodeModel, makeTensor } from '../onnx/index.ts';
import { inspectModel } from '../inspect/index.ts';
import { buildModel, floatInput, node, randomTensor } from '../testing/build.ts';
import { MNIST_CNN, MNIST_EVAL_X, MNIST_EVAL_Y, MNIST_TRAIN_X, MNIST_TRAIN_Y } from '../testing/fixtures.ts';
import { exportLayersModel } from '../tfjs-export/index.ts';
import { buildStudent, distill, distillationLoss, trainStudentAlone, useWasmBackend } from './index.ts';
import { forwardTraining } from './student.ts';

let train: Dataset;
let evalSet: Dataset;
let teacher: Uint8Array;

before(async () => {
  await useWasmBackend();
  train = await loadMnistU8(MNIST_TRAIN_X, MNIST_TRAIN_Y, 1200);
  evalSet = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 500);
  teacher = readFileSync(MNIST_CNN);
});

const code = (c: string) => (e: unknown) => e instanceof OutpostError && e.code === c;

/** A tiny [N,1,28,28] → [N,10] ONNX classifier whose output is then reshaped to `outShape`. */
function reshapingTeacher(outShape: number[] | null): Uint8Array {
  const nodes = [
    node('Flatten', ['input'], ['flat'], 'flatten'),
    node('MatMul', ['flat', 'w'], ['logits'], 'matmul'),
  ];
  const inits = [randomTensor('w', [784, 10], 3)];
  let out = 'logits';
  if (outShape) {
    nodes.push(node('Reshape', ['logits', 'shape'], ['reshaped'], 'reshape'));
    inits.push(makeTensor('shape', BigInt64Array.from(outShape.map(BigInt)), [outShape.length]));
    out = 'reshaped';
  }
  return encodeModel(
    buildModel({
      nodes,
      inputs: [floatInput('input', ['N', 1, 28, 28])],
      // No declared shape on the output: the check must then happen on the values that come back.
      outputs: [{ name: out, type: { tensor_type: { elem_type: DataType.FLOAT } } }],
      initializers: inits,
    }),
  );
}

describe('distill', () => {
  test('a distilled student beats chance by far, runs in ORT and is a drop-in for the teacher', async () => {
    const progress: string[] = [];
    const r = await distill({
      teacher,
      train,
      student: { hidden: [16] },
      epochs: 5,
      batchSize: 64,
      learningRate: 0.005,
      seed: 3,
      augment: { copies: 1 },
      onProgress: (_d, _t, label) => {
        if (label && progress[progress.length - 1] !== label) progress.push(label);
      },
    });
    assert.deepEqual(progress, ['teacher', 'train']);
    const acc = (await evaluate(encodeModel(r.student), evalSet)).accuracy;
    assert.ok(acc > 0.7, `distilled student accuracy ${acc}`);
    const info = inspectModel(r.student);
    assert.equal(info.parameters, 784 * 16 + 16 + 16 * 10 + 10);
    assert.equal(r.report.student.parameters, info.parameters);
    assert.deepEqual(info.inputs[0]?.shape, ['batch', 1, 28, 28]);
    assert.equal(info.inputs[0]?.name, 'input'); // the teacher's names
    assert.equal(info.outputs[0]?.name, 'logits');
    assert.equal(r.report.teacher?.parameters, 108_618);
    assert.ok((r.report.parameterRatio ?? 0) > 5);
    assert.ok((r.report.teacher?.trainAccuracy ?? 0) > 0.95);
    assert.deepEqual(r.report.transferSet, { labelled: 1200, augmented: 1200, total: 2400 });
    assert.equal(r.history.length, 5);
    assert.ok((r.history[4]?.loss ?? Infinity) < (r.history[0]?.loss ?? 0), 'loss decreases');
    r.tfModel.dispose();
  });

  test('same seed, same student: runs are deterministic; the alone baseline is too', async () => {
    const small = { x: train.x.subarray(0, 300 * 784), y: train.y.subarray(0, 300), n: 300 };
    const opts = { teacher, train: small, student: { hidden: [8], dropout: 0.2 }, epochs: 2, seed: 5 };
    const a = await distill(opts);
    const b = await distill(opts);
    assert.deepEqual(encodeModel(a.student), encodeModel(b.student));
    const c = await distill({ ...opts, seed: 6 });
    assert.notDeepEqual(encodeModel(a.student), encodeModel(c.student));
    const alone = { train: small, student: { hidden: [8] }, epochs: 2, seed: 5, inputShape: [1, 28, 28] };
    const d = await trainStudentAlone(alone);
    const e = await trainStudentAlone(alone);
    assert.deepEqual(encodeModel(d.student), encodeModel(e.student));
    assert.equal(d.report.mode, 'alone');
    assert.equal(d.report.teacher, undefined);
    for (const m of [a, b, c, d, e]) m.tfModel.dispose();
  });

  test('student alone learns from hard labels; BatchNorm is folded and Dropout gone in its export', async () => {
    const r = await trainStudentAlone({
      train,
      student: { hidden: [16], batchNorm: true, dropout: 0.1 },
      epochs: 5,
      learningRate: 0.005,
      seed: 2,
    });
    const ops = (r.student.graph?.node ?? []).map((n) => n.op_type);
    assert.deepEqual(ops, ['Gemm', 'Relu', 'Gemm']);
    assert.equal(inspectModel(r.student).inputs[0]?.shape.join(','), 'batch,784');
    const acc = (await evaluate(encodeModel(r.student), evalSet)).accuracy;
    assert.ok(acc > 0.7, `alone accuracy ${acc}`);
    // The exported ONNX computes what the trained tfjs model computes.
    const x = evalSet.x.subarray(0, 20 * 784);
    const want = tf.tidy(() => (r.tfModel.predict(tf.tensor2d(x, [20, 784])) as tf.Tensor).dataSync());
    const got = (await evaluate(encodeModel(r.student), { x, y: evalSet.y.subarray(0, 20), n: 20 })).logits;
    assert.ok(got);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs((got[i] ?? 0) - (want[i] ?? 0)) < 1e-4);
    r.tfModel.dispose();
  });

  test('a cropped (and pooled) student slices the image border in its export and matches tfjs there', async () => {
    for (const inputShape of [[1, 28, 28], [784]]) {
      const r = await trainStudentAlone({ train, student: { hidden: [10], crop: 4 }, epochs: 1, inputShape });
      const ops = (r.student.graph?.node ?? []).map((n) => n.op_type);
      const lead = inputShape.length === 1 ? ['Reshape', 'Slice'] : ['Slice'];
      assert.deepEqual(ops, [...lead, 'Flatten', 'Gemm', 'Relu', 'Gemm']);
      assert.equal(r.report.student.parameters, 20 * 20 * 10 + 10 + 10 * 10 + 10);
      const x = evalSet.x.subarray(0, 8 * 784);
      const want = tf.tidy(
        () => (r.tfModel.predict(tf.tensor(x, [8, ...inputShape])) as tf.Tensor).dataSync() as Float32Array,
      );
      const got = (await evaluate(encodeModel(r.student), { x, y: evalSet.y.subarray(0, 8), n: 8 })).logits;
      assert.ok(got);
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs((got[i] ?? 0) - (want[i] ?? 0)) < 1e-4);
      r.tfModel.dispose();
    }
    await assert.rejects(
      trainStudentAlone({ train, student: { hidden: [4], crop: 14 }, inputShape: [1, 28, 28] }),
      code('VALIDATION_FAILED'),
    );
    // Crop then 2×2 average pooling: 10×10 inputs.
    const pooled = await trainStudentAlone({
      train,
      student: { hidden: [6], crop: 4, pool: 2 },
      epochs: 1,
      inputShape: [1, 28, 28],
    });
    assert.deepEqual(
      (pooled.student.graph?.node ?? []).map((n) => n.op_type),
      ['Slice', 'AveragePool', 'Flatten', 'Gemm', 'Relu', 'Gemm'],
    );
    assert.equal(pooled.report.student.parameters, 100 * 6 + 6 + 6 * 10 + 10);
    const x = evalSet.x.subarray(0, 8 * 784);
    const want = tf.tidy(
      () => (pooled.tfModel.predict(tf.tensor(x, [8, 1, 28, 28])) as tf.Tensor).dataSync() as Float32Array,
    );
    const got = (await evaluate(encodeModel(pooled.student), { x, y: evalSet.y.subarray(0, 8), n: 8 }))
      .logits;
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs((got?.[i] ?? 0) - (want[i] ?? 0)) < 1e-4);
    pooled.tfModel.dispose();
  });

  test('the training forward pass has the gradients of the stock tfjs layers', () => {
    const model = buildStudent(
      { hidden: [5, 4], activation: 'tanh', batchNorm: true, crop: 1 },
      [1, 4, 5],
      3,
      9,
    );
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const x = tf.randomUniform([6, 1, 4, 5], -1, 1, 'float32', 1);
    const y = tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32');
    const t = tf.randomNormal([6, 3], 0, 1, 'float32', 2) as tf.Tensor2D;
    const cfg = { temperature: 3, alpha: 0.6 };
    const ours = tf.variableGrads(() => distillationLoss(forwardTraining(model, x, 1), t, y, cfg), vars);
    const stock = tf.variableGrads(
      () => distillationLoss(model.apply(x, { training: true }) as tf.Tensor2D, t, y, cfg),
      vars,
    );
    close(ours.value.dataSync()[0] ?? NaN, stock.value.dataSync()[0] ?? NaN);
    for (const v of vars) {
      const a = ours.grads[v.name]?.dataSync();
      const b = stock.grads[v.name]?.dataSync();
      assert.ok(a && b && a.length === b.length, v.name);
      for (let i = 0; i < a.length; i++) close(a[i] ?? NaN, b[i] ?? NaN);
    }
    model.dispose();
  });

  test('a teacher that outputs probabilities is recognised and its log-probabilities used', async () => {
    const m = tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: [1, 28, 28] }),
        tf.layers.dense({
          units: 10,
          activation: 'softmax',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
      ],
    });
    const probTeacher = encodeModel(exportLayersModel(m, { outputName: 'probs' }));
    m.dispose();
    const small = { x: train.x.subarray(0, 200 * 784), y: train.y.subarray(0, 200), n: 200 };
    const r = await distill({ teacher: probTeacher, train: small, student: { hidden: [4] }, epochs: 1 });
    assert.equal(r.report.teacher?.outputKind, 'probabilities');
    assert.equal(inspectModel(r.student).outputs[0]?.name, 'probs');
    r.tfModel.dispose();
  });
});

describe('distill: bad input', () => {
  const small = () => ({ x: train.x.subarray(0, 50 * 784), y: train.y.subarray(0, 50), n: 50 });

  test('empty or inconsistent datasets and bad hyper-parameters are VALIDATION_FAILED', async () => {
    const empty = { x: new Float32Array(0), y: new Uint8Array(0), n: 0 };
    await assert.rejects(
      distill({ teacher, train: empty, student: { hidden: [4] } }),
      code('VALIDATION_FAILED'),
    );
    await assert.rejects(
      trainStudentAlone({ train: empty, student: { hidden: [4] } }),
      code('VALIDATION_FAILED'),
    );
    const ragged = { x: new Float32Array(10), y: new Uint8Array(3), n: 3 };
    await assert.rejects(
      distill({ teacher, train: ragged, student: { hidden: [4] } }),
      code('VALIDATION_FAILED'),
    );
    for (const bad of [
      { alpha: 1.5 },
      { temperature: 0 },
      { epochs: 0 },
      { batchSize: 0 },
      { learningRate: -1 },
      { seed: -2 },
      { student: { hidden: [0] } },
      { student: { hidden: [4], dropout: 1 } },
      { student: { hidden: [4], activation: 'cube' as 'relu' } },
    ]) {
      await assert.rejects(
        distill({ teacher, train: small(), student: { hidden: [4] }, ...bad }),
        code('VALIDATION_FAILED'),
        JSON.stringify(bad),
      );
    }
  });

  test('labels out of range for the teacher’s classes are VALIDATION_FAILED', async () => {
    const ds = small();
    const y = Uint8Array.from(ds.y);
    y[7] = 12;
    await assert.rejects(
      distill({ teacher, train: { ...ds, y }, student: { hidden: [4] } }),
      (e) => code('VALIDATION_FAILED')(e) && /label 12 at index 7/.test((e as Error).message),
    );
    await assert.rejects(
      trainStudentAlone({ train: { ...ds, y }, student: { hidden: [4] }, classes: 10 }),
      code('VALIDATION_FAILED'),
    );
  });

  test('a teacher whose output is not [N, classes] is ONNX_UNSUPPORTED; garbage is ONNX_PARSE_FAILED', async () => {
    const ds = small();
    const opts = { train: ds, student: { hidden: [4] }, epochs: 1 };
    await assert.rejects(
      distill({ ...opts, teacher: reshapingTeacher([0, 2, 5]) }),
      code('ONNX_UNSUPPORTED'),
    );
    await assert.rejects(distill({ ...opts, teacher: reshapingTeacher([-1]) }), code('ONNX_UNSUPPORTED'));
    // The same graph without the reshape is a fine (if random) teacher.
    const ok = await distill({ ...opts, teacher: reshapingTeacher(null) });
    ok.tfModel.dispose();
    await assert.rejects(
      distill({ ...opts, teacher: new Uint8Array([1, 2, 3, 4]) }),
      code('ONNX_PARSE_FAILED'),
    );
    const wrongSize = { x: new Float32Array(4 * 100), y: new Uint8Array(4), n: 4 };
    await assert.rejects(distill({ ...opts, train: wrongSize, teacher }), code('TENSOR_SHAPE_MISMATCH'));
  });
});

function close(a: number, b: number): void {
  assert.ok(Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)), `${a} vs ${b}`);
}
