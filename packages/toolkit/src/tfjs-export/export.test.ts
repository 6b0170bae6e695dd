import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { OutpostError } from '@outpost/protocol';
import { decodeModel, encodeModel, int64ToNumber } from '../onnx/index.ts';
import type { ModelProto } from '../onnx/index.ts';
import { ort } from '../runtime/index.ts';
import { mulberry32 } from '../bench/index.ts';
import { exportLayersModel, exportLayersModelWithReport } from './index.ts';

before(async () => {
  await tf.setBackend('wasm');
});

async function runOnnx(
  model: ModelProto,
  x: Float32Array,
  dims: number[],
  input = 'input',
  output = 'output',
) {
  // Encode + decode: what is tested is the file a user would write, not the in-memory object.
  const session = await ort.InferenceSession.create(encodeModel(decodeModel(encodeModel(model))));
  try {
    const out = await session.run({ [input]: new ort.Tensor('float32', x, dims) });
    const t = out[output];
    assert.ok(t, `output ${output} missing`);
    return { data: t.data as Float32Array, dims: [...t.dims] };
  } finally {
    await session.release();
  }
}

function randomInput(dims: number[], seed: number): Float32Array {
  const rand = mulberry32(seed);
  const v = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < v.length; i++) v[i] = (rand() * 2 - 1) * 2;
  return v;
}

function predict(model: tf.LayersModel, x: Float32Array, dims: number[]): Float32Array {
  return tf.tidy(() => (model.predict(tf.tensor(x, dims)) as tf.Tensor).dataSync() as Float32Array);
}

function assertClose(got: Float32Array, want: Float32Array, tol = 1e-5): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    const w = want[i] as number;
    const diff = Math.abs((got[i] as number) - w);
    assert.ok(diff <= tol * Math.max(1, Math.abs(w)), `element ${i}: got ${got[i]}, want ${w}`);
  }
}

/** Gives BatchNormalization layers non-trivial statistics (the defaults make them the identity). */
function randomizeBatchNorm(model: tf.LayersModel, seed: number): void {
  const rand = mulberry32(seed);
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const names = layer.weights.map((w) => w.name);
    layer.setWeights(
      layer.getWeights().map((w, i) => {
        const positive = /variance|gamma/.test(names[i] ?? '');
        return tf.tensor(
          Array.from({ length: w.size }, () => (positive ? 0.3 + rand() * 2 : rand() * 2 - 1)),
          w.shape,
        );
      }),
    );
  }
}

const ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'hardSigmoid',
  'tanh',
  'softmax',
  'logSoftmax',
  'elu',
  'selu',
  'softplus',
  'softsign',
  'swish',
  'mish',
  'gelu',
  'gelu_new',
] as const;

/** tfjs registers `logSoftmax` as an activation, but its TypeScript union leaves it out. */
type TfActivation = Parameters<typeof tf.layers.activation>[0]['activation'];
const act = (a: (typeof ACTIVATIONS)[number]) => a as TfActivation;

type LayerSpec =
  | { t: 'dense'; units: number; activation: (typeof ACTIVATIONS)[number]; useBias: boolean }
  | { t: 'dropout'; rate: number }
  | { t: 'batchNorm'; epsilon: number }
  | { t: 'activation'; activation: (typeof ACTIVATIONS)[number] }
  | { t: 'relu'; maxValue: number | null }
  | { t: 'leakyRelu'; alpha: number }
  | { t: 'elu' }
  | { t: 'softmax' }
  | { t: 'prelu' }
  | { t: 'thresholdedRelu'; theta: number }
  | { t: 'denseBn'; units: number; useBias: boolean; dropout: boolean };

const layerSpec: fc.Arbitrary<LayerSpec> = fc.oneof(
  fc.record({
    t: fc.constant('dense' as const),
    units: fc.integer({ min: 1, max: 7 }),
    activation: fc.constantFrom(...ACTIVATIONS),
    useBias: fc.boolean(),
  }),
  fc.record({ t: fc.constant('dropout' as const), rate: fc.double({ min: 0.05, max: 0.9, noNaN: true }) }),
  fc.record({ t: fc.constant('batchNorm' as const), epsilon: fc.constantFrom(1e-3, 1e-5, 0.1) }),
  fc.record({ t: fc.constant('activation' as const), activation: fc.constantFrom(...ACTIVATIONS) }),
  fc.record({
    t: fc.constant('relu' as const),
    maxValue: fc.option(fc.double({ min: 0.5, max: 4, noNaN: true })),
  }),
  fc.record({ t: fc.constant('leakyRelu' as const), alpha: fc.double({ min: 0.01, max: 0.5, noNaN: true }) }),
  // tfjs' ELU layer only implements alpha = 1.
  fc.record({ t: fc.constant('elu' as const) }),
  fc.record({ t: fc.constant('softmax' as const) }),
  fc.record({ t: fc.constant('prelu' as const) }),
  fc.record({
    t: fc.constant('thresholdedRelu' as const),
    theta: fc.double({ min: 0, max: 1, noNaN: true }),
  }),
  // Linear Dense (+ Dropout) + BatchNormalization: the pattern that the exporter folds.
  fc.record({
    t: fc.constant('denseBn' as const),
    units: fc.integer({ min: 1, max: 7 }),
    useBias: fc.boolean(),
    dropout: fc.boolean(),
  }),
);

function makeLayers(s: LayerSpec, seed: number): tf.layers.Layer[] {
  if (s.t !== 'denseBn') return [makeLayer(s, seed)];
  return [
    makeLayer({ t: 'dense', units: s.units, activation: 'linear', useBias: s.useBias }, seed),
    ...(s.dropout ? [tf.layers.dropout({ rate: 0.5 })] : []),
    tf.layers.batchNormalization(),
  ];
}

function makeLayer(s: Exclude<LayerSpec, { t: 'denseBn' }>, seed: number): tf.layers.Layer {
  switch (s.t) {
    case 'dense':
      return tf.layers.dense({
        units: s.units,
        activation: act(s.activation),
        useBias: s.useBias,
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
        biasInitializer: tf.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: seed + 1 }),
      });
    case 'dropout':
      return tf.layers.dropout({ rate: s.rate });
    case 'batchNorm':
      return tf.layers.batchNormalization({ epsilon: s.epsilon });
    case 'activation':
      return tf.layers.activation({ activation: act(s.activation) });
    case 'relu':
      return s.maxValue === null ? tf.layers.reLU() : tf.layers.reLU({ maxValue: s.maxValue });
    case 'leakyRelu':
      return tf.layers.leakyReLU({ alpha: s.alpha });
    case 'elu':
      return tf.layers.elu();
    case 'softmax':
      return tf.layers.softmax({ axis: -1 });
    case 'prelu':
      return tf.layers.prelu({
        alphaInitializer: tf.initializers.randomUniform({ minval: -1, maxval: 1, seed }),
      });
    case 'thresholdedRelu':
      return tf.layers.thresholdedReLU({ theta: s.theta });
  }
}

describe('tfjs → ONNX exporter', () => {
  test('property: random layer stacks match model.predict within 1e-5', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          // [features] for a flat input, or [rows, cols] for a rank-3 input that the stack flattens.
          inShape: fc.oneof(
            fc.tuple(fc.integer({ min: 1, max: 9 })).map((t) => [...t]),
            fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })).map((t) => [...t]),
            fc
              .tuple(
                fc.integer({ min: 1, max: 3 }),
                fc.integer({ min: 3, max: 6 }),
                fc.integer({ min: 3, max: 6 }),
              )
              .map((t) => [...t]),
          ),
          // Rank-4 inputs only: Cropping2D [[top, bottom], [left, right]] (each ≤ 1) and its data format.
          crop: fc.option(
            fc.record({
              sides: fc.tuple(fc.nat(1), fc.nat(1), fc.nat(1), fc.nat(1)),
              channelsFirst: fc.boolean(),
              // then an optional 2-D pooling layer over the cropped image
              pool: fc.option(
                fc.record({
                  max: fc.boolean(),
                  size: fc.integer({ min: 1, max: 2 }),
                  stride: fc.integer({ min: 1, max: 2 }),
                  same: fc.boolean(),
                }),
              ),
            }),
          ),
          head: fc.array(layerSpec, { maxLength: 3 }),
          flatten: fc.constantFrom('flatten', 'reshape'),
          tail: fc.array(layerSpec, { minLength: 1, maxLength: 5 }),
          batch: fc.integer({ min: 1, max: 5 }),
          seed: fc.integer({ min: 1, max: 1_000_000 }),
        }),
        async ({ inShape: generated, crop, head, flatten, tail, batch, seed }) => {
          // Generated rank-3 shapes are [C, H, W]; channels-last inputs are [H, W, C].
          const inShape =
            generated.length === 3 && crop && !crop.channelsFirst
              ? [generated[1] as number, generated[2] as number, generated[0] as number]
              : generated;
          const layers: tf.layers.Layer[] = [tf.layers.inputLayer({ inputShape: inShape })];
          let k = 0;
          const shape = [...inShape];
          if (crop && shape.length === 3) {
            const [t, b, l, r] = crop.sides;
            const [h, w] = crop.channelsFirst ? [1, 2] : [0, 1];
            layers.push(
              tf.layers.cropping2D({
                cropping: [
                  [t, b],
                  [l, r],
                ],
                dataFormat: crop.channelsFirst ? 'channelsFirst' : 'channelsLast',
              }),
            );
            shape[h] = (shape[h] as number) - t - b;
            shape[w] = (shape[w] as number) - l - r;
            const p = crop.pool;
            // (a VALID pool larger than the image would give an empty tensor, which tfjs cannot run)
            if (p && (p.same || ((shape[h] as number) >= p.size && (shape[w] as number) >= p.size))) {
              const args = {
                poolSize: p.size,
                strides: p.stride,
                padding: p.same ? ('same' as const) : ('valid' as const),
                dataFormat: crop.channelsFirst ? ('channelsFirst' as const) : ('channelsLast' as const),
              };
              layers.push(p.max ? tf.layers.maxPooling2d(args) : tf.layers.averagePooling2d(args));
              for (const d of [h, w]) {
                const n = shape[d] as number;
                shape[d] = p.same ? Math.ceil(n / p.stride) : Math.floor((n - p.size) / p.stride) + 1;
              }
            }
          }
          for (const s of head) {
            layers.push(...makeLayers(s, seed + 7 * k++));
            if (s.t === 'dense' || s.t === 'denseBn') shape[shape.length - 1] = s.units; // Dense acts on the last axis
          }
          if (inShape.length > 1) {
            const size = shape.reduce((a, b) => a * b, 1);
            layers.push(
              flatten === 'flatten' ? tf.layers.flatten() : tf.layers.reshape({ targetShape: [size] }),
            );
          }
          for (const s of tail) layers.push(...makeLayers(s, seed + 7 * k++));
          const model = tf.sequential({ layers });
          try {
            randomizeBatchNorm(model, seed);
            const dims = [batch, ...inShape];
            const x = randomInput(dims, seed);
            const onnx = exportLayersModel(model);
            const got = await runOnnx(onnx, x, dims);
            assert.deepEqual(
              got.dims,
              model.outputs[0]?.shape.map((d, i) => (i === 0 ? batch : d)),
            );
            assertClose(got.data, predict(model, x, dims));
            const ops = (onnx.graph?.node ?? []).map((n) => n.op_type);
            assert.ok(!ops.includes('Dropout'));
          } finally {
            model.dispose();
          }
        },
      ),
      { numRuns: 150, seed: 20240611 },
    );
  });

  test('BatchNormalization after a linear Dense is folded into its Gemm, numerically exact', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [6],
          units: 4,
          kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
        }),
        tf.layers.batchNormalization({ epsilon: 1e-3 }),
        tf.layers.dropout({ rate: 0.3 }),
        tf.layers.batchNormalization({ epsilon: 0.1 }),
        tf.layers.activation({ activation: 'relu' }),
      ],
    });
    randomizeBatchNorm(model, 11);
    const { model: onnx, report } = exportLayersModelWithReport(model);
    assert.deepEqual(
      (onnx.graph?.node ?? []).map((n) => n.op_type),
      ['Gemm', 'Relu'],
    );
    assert.equal(report.folded.length, 2);
    assert.deepEqual(report.removed, [model.layers[2]?.name]);

    // Hand computation of the same network, in float64, from the tfjs weights.
    const [kernel, bias] = model.layers[0]!.getWeights().map((w) => w.dataSync());
    const bn = [model.layers[1]!, model.layers[3]!].map((l) => ({
      w: l.getWeights().map((w) => w.dataSync()),
      eps: (l.getConfig() as { epsilon: number }).epsilon,
    }));
    const x = randomInput([3, 6], 5);
    const want = new Float32Array(3 * 4);
    for (let n = 0; n < 3; n++) {
      for (let j = 0; j < 4; j++) {
        let v = bias![j]!;
        for (let i = 0; i < 6; i++) v += x[n * 6 + i]! * kernel![i * 4 + j]!;
        for (const { w, eps } of bn) {
          const [gamma, beta, mean, variance] = w;
          v = (gamma![j]! * (v - mean![j]!)) / Math.sqrt(variance![j]! + eps) + beta![j]!;
        }
        want[n * 4 + j] = Math.max(0, v);
      }
    }
    const got = await runOnnx(onnx, x, [3, 6]);
    assertClose(got.data, want);
    assertClose(got.data, predict(model, x, [3, 6]));
  });

  test('BatchNormalization that cannot be folded becomes Mul + Add', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [5], units: 3, activation: 'tanh' }),
        tf.layers.batchNormalization(),
      ],
    });
    randomizeBatchNorm(model, 2);
    const onnx = exportLayersModel(model);
    assert.deepEqual(
      (onnx.graph?.node ?? []).map((n) => n.op_type),
      ['Gemm', 'Tanh', 'Mul', 'Add'],
    );
    const x = randomInput([4, 5], 9);
    assertClose((await runOnnx(onnx, x, [4, 5])).data, predict(model, x, [4, 5]));
  });

  test('BatchNormalization on a non-last axis follows the Keras formula per channel', async () => {
    // tfjs' own inference kernels index the statistics as if the axis were the last one, so the
    // reference here is the formula itself, not model.predict.
    const model = tf.sequential({ layers: [tf.layers.batchNormalization({ inputShape: [3, 4], axis: 1 })] });
    randomizeBatchNorm(model, 4);
    const [gamma, beta, mean, variance] = model.layers[0]!.getWeights().map((w) => w.dataSync());
    const x = randomInput([2, 3, 4], 1);
    const want = x.map((v, i) => {
      const c = Math.floor(i / 4) % 3;
      return (gamma![c]! * (v - mean![c]!)) / Math.sqrt(variance![c]! + 1e-3) + beta![c]!;
    });
    assertClose((await runOnnx(exportLayersModel(model), x, [2, 3, 4])).data, want);
  });

  test('names, opset, IR version and the symbolic batch dimension', async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [3], units: 2 }), tf.layers.dropout({ rate: 0.5 })],
    });
    const onnx = decodeModel(
      encodeModel(exportLayersModel(model, { inputName: 'pixels', outputName: 'logits', batchDim: 'N' })),
    );
    assert.equal(int64ToNumber(onnx.ir_version), 8);
    assert.equal(int64ToNumber(onnx.opset_import?.[0]?.version), 17);
    const inp = onnx.graph.input?.[0];
    assert.equal(inp?.name, 'pixels');
    assert.equal(inp?.type?.tensor_type?.shape?.dim?.[0]?.dim_param, 'N');
    assert.equal(int64ToNumber(inp?.type?.tensor_type?.shape?.dim?.[1]?.dim_value), 3);
    assert.equal(onnx.graph.output?.[0]?.name, 'logits');
    for (const batch of [1, 7]) {
      const x = randomInput([batch, 3], batch);
      const got = await runOnnx(onnx, x, [batch, 3], 'pixels', 'logits');
      assert.deepEqual(got.dims, [batch, 2]);
      assertClose(got.data, predict(model, x, [batch, 3]));
    }
    model.dispose();
  });

  test('a model that computes nothing exports as Identity', async () => {
    const model = tf.sequential({ layers: [tf.layers.dropout({ inputShape: [4], rate: 0.5 })] });
    const onnx = exportLayersModel(model);
    assert.deepEqual(
      (onnx.graph?.node ?? []).map((n) => n.op_type),
      ['Identity'],
    );
    const x = randomInput([2, 4], 3);
    assertClose((await runOnnx(onnx, x, [2, 4])).data, x);
  });

  test('unsupported layers and topologies are ONNX_UNSUPPORTED naming the layer class', () => {
    const conv = tf.sequential({
      layers: [tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 2, kernelSize: 3 }), tf.layers.flatten()],
    });
    assert.throws(
      () => exportLayersModel(conv),
      (e) => e instanceof OutpostError && e.code === 'ONNX_UNSUPPORTED' && /Conv2D/.test(e.message),
    );
    const a = tf.input({ shape: [4] });
    const b = tf.input({ shape: [4] });
    const merged = tf.layers.add().apply([a, b]) as tf.SymbolicTensor;
    assert.throws(
      () => exportLayersModel(tf.model({ inputs: [a, b], outputs: merged })),
      (e) => e instanceof OutpostError && e.code === 'ONNX_UNSUPPORTED',
    );
    const x = tf.input({ shape: [4] });
    const h = tf.layers.dense({ units: 4 }).apply(x) as tf.SymbolicTensor;
    const sum = tf.layers.add().apply([h, x]) as tf.SymbolicTensor;
    assert.throws(
      () => exportLayersModel(tf.model({ inputs: x, outputs: sum })),
      (e) => e instanceof OutpostError && e.code === 'ONNX_UNSUPPORTED' && /Add/.test(e.message),
    );
    const bad = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 2 })] });
    assert.throws(
      () => exportLayersModel(bad, { inputName: 'x', outputName: 'x' }),
      (e) => e instanceof OutpostError && e.code === 'VALIDATION_FAILED',
    );
  });

  test('a functional single chain exports like its sequential twin', async () => {
    const x = tf.input({ shape: [5] });
    let h = tf.layers.dense({ units: 6, activation: 'relu6' }).apply(x) as tf.SymbolicTensor;
    h = tf.layers.dropout({ rate: 0.2 }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.dense({ units: 3, activation: 'softmax' }).apply(h) as tf.SymbolicTensor;
    const model = tf.model({ inputs: x, outputs: h });
    const onnx = exportLayersModel(model);
    assert.deepEqual(
      (onnx.graph?.node ?? []).map((n) => n.op_type),
      ['Gemm', 'Clip', 'Gemm', 'Softmax'],
    );
    const input = randomInput([4, 5], 8).map((v) => v * 3);
    assertClose((await runOnnx(onnx, input, [4, 5])).data, predict(model, input, [4, 5]));
  });
});
