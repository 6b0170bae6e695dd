import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { OutpostError } from '@outpost/protocol';
import { resolveImageShape } from './augment.ts';

/** Hidden-layer activations a student may use (all exported by the tfjs → ONNX exporter). */
export const STUDENT_ACTIVATIONS = ['relu', 'tanh', 'elu', 'selu', 'sigmoid', 'swish', 'gelu'] as const;
export type StudentActivation = (typeof STUDENT_ACTIVATIONS)[number];

/**
 * A student network: a Dense MLP on the flattened input, ending in a linear layer of one logit per class.
 *
 * @example
 * const spec: StudentSpec = { hidden: [24], activation: 'relu' }; // 784 → 24 → 10: 19,090 parameters
 */
export interface StudentSpec {
  /** Units of each hidden layer, input side first; `[]` is a linear (softmax-regression) student. */
  hidden: number[];
  /** Hidden activation (default `relu`). */
  activation?: StudentActivation;
  /** Dropout rate after each hidden layer during training (default 0; removed in the export). */
  dropout?: number;
  /** BatchNormalization before each hidden activation (folded into the Dense in the export). */
  batchNorm?: boolean;
  /**
   * Pixels cropped from every border of an image input before flattening (default 0). MNIST digits
   * sit in the central 20×20 box, so `crop: 4` drops border pixels that are almost always blank and
   * lets the same parameter budget buy ~2× wider hidden layers.
   */
  crop?: number;
  /**
   * Average-pooling factor applied to the (cropped) image before flattening (default 1 = none):
   * `pool: 2` turns 28×28 into 14×14, a quarter of the inputs for the first Dense layer.
   */
  pool?: number;
}

/**
 * Checks a student spec, throwing VALIDATION_FAILED with the offending field.
 *
 * @example
 * validateStudentSpec({ hidden: [32], dropout: 0.1 });
 */
export function validateStudentSpec(spec: StudentSpec): void {
  if (
    !Array.isArray(spec.hidden) ||
    !spec.hidden.every((u) => Number.isInteger(u) && u >= 1 && u <= 1 << 16)
  ) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `student.hidden must be a list of positive integers, got ${JSON.stringify(spec.hidden)}`,
    );
  }
  const act = spec.activation ?? 'relu';
  if (!(STUDENT_ACTIVATIONS as readonly string[]).includes(act)) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `student.activation ${JSON.stringify(act)} is not one of ${STUDENT_ACTIVATIONS.join(', ')}`,
    );
  }
  const c = spec.crop ?? 0;
  if (!Number.isInteger(c) || c < 0) {
    throw new OutpostError('VALIDATION_FAILED', `student.crop must be a non-negative integer, got ${c}`);
  }
  const p = spec.pool ?? 1;
  if (!Number.isInteger(p) || p < 1) {
    throw new OutpostError('VALIDATION_FAILED', `student.pool must be a positive integer, got ${p}`);
  }
  const d = spec.dropout ?? 0;
  if (!Number.isFinite(d) || d < 0 || d >= 1) {
    throw new OutpostError('VALIDATION_FAILED', `student.dropout must be in [0, 1), got ${d}`);
  }
}

/**
 * Builds the student as a `tf.sequential` taking `inputShape` (per sample, e.g. [1, 28, 28] so the
 * student is a drop-in replacement for the teacher), flattening it, and producing `classes` logits.
 * Kernels use seeded Glorot-uniform initializers (seed, seed + 1, ...), biases start at zero, so the
 * initial weights are a function of the seed alone.
 *
 * @example
 * const model = buildStudent({ hidden: [24] }, [1, 28, 28], 10, 42);
 * model.countParams(); // 19,090
 */
export function buildStudent(
  spec: StudentSpec,
  inputShape: number[],
  classes: number,
  seed: number,
): tf.Sequential {
  validateStudentSpec(spec);
  const act = spec.activation ?? 'relu';
  // Fixed layer names (tfjs would number them per process) make the exported ONNX a function of the
  // spec and seed alone, so equal runs give byte-identical files.
  const layers: tf.layers.Layer[] = [tf.layers.inputLayer({ inputShape, name: 'input' })];
  const crop = spec.crop ?? 0;
  const pool = spec.pool ?? 1;
  if (crop > 0 || pool > 1) {
    const features = inputShape.reduce((a, b) => a * b, 1);
    const { h, w, channels } = resolveImageShape(features, inputShape);
    if (h - 2 * crop < pool || w - 2 * crop < pool) {
      throw new OutpostError(
        'VALIDATION_FAILED',
        `student.crop ${crop} and pool ${pool} leave nothing of a ${h}×${w} image`,
      );
    }
    const image = [channels, h, w];
    if (inputShape.join() !== image.join())
      layers.push(tf.layers.reshape({ name: 'image', targetShape: image }));
  }
  if (crop > 0) {
    layers.push(
      tf.layers.cropping2D({
        name: 'crop',
        cropping: [
          [crop, crop],
          [crop, crop],
        ],
        dataFormat: 'channelsFirst',
      }),
    );
  }
  if (pool > 1) {
    layers.push(
      tf.layers.averagePooling2d({
        name: 'pool',
        poolSize: pool,
        strides: pool,
        dataFormat: 'channelsFirst',
      }),
    );
  }
  if (inputShape.length > 1 || crop > 0 || pool > 1) layers.push(tf.layers.flatten({ name: 'flatten' }));
  spec.hidden.forEach((units, i) => {
    const k = i + 1;
    layers.push(
      tf.layers.dense({
        name: `hidden${k}`,
        units,
        activation: spec.batchNorm ? 'linear' : act,
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }),
        biasInitializer: 'zeros',
      }),
    );
    if (spec.batchNorm) {
      // Momentum 0.9 rather than Keras' 0.99: student runs are a few hundred steps, and slow moving
      // averages would leave the inference statistics far from the trained ones.
      layers.push(tf.layers.batchNormalization({ name: `bn${k}`, momentum: 0.9 }));
      layers.push(tf.layers.activation({ name: `act${k}`, activation: act }));
    }
    if ((spec.dropout ?? 0) > 0)
      layers.push(tf.layers.dropout({ name: `dropout${k}`, rate: spec.dropout ?? 0 }));
  });
  layers.push(
    tf.layers.dense({
      name: 'logits',
      units: classes,
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + spec.hidden.length }),
      biasInitializer: 'zeros',
    }),
  );
  return tf.sequential({ layers, name: 'student' });
}

/**
 * `x · w` whose gradient only goes to `w` and uses explicit transposes. Two reasons: tfjs-backend-wasm
 * 4.22 runs MatMul with a transpose flag 4–9× slower than Transpose + MatMul (measured: 2.4 ms vs
 * 0.65 ms for [784×64]·[64×24]), and tfjs' stock gradient for the fused Dense product computes the
 * gradient of the input as well — for the first layer that is the data, which needs none.
 */
function matMulWeightGrad(x: tf.Tensor2D, w: tf.Variable): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [wt, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    // Saved, not just captured: tfjs frees the forward pass's intermediates (x may be one, e.g. a
    // cropped input) before running the backward pass; saved tensors are kept for it.
    save([x]);
    return {
      value: tf.matMul(x, wt),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) =>
        tf.matMul(tf.transpose(saved[0] as tf.Tensor2D), dy as tf.Tensor2D),
    };
  });
  return f(w) as tf.Tensor2D;
}

/** `x · w` with gradients to both operands through explicit transposes (see {@link matMulWeightGrad}). */
const matMulBothGrads = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      const g = dy as tf.Tensor2D;
      return [tf.matMul(g, tf.transpose(sb)), tf.matMul(tf.transpose(sa), g)];
    },
  };
});

const activationLayers = new Map<string, tf.layers.Layer>();

function applyActivation(name: string, h: tf.Tensor): tf.Tensor {
  if (name === 'linear') return h;
  let layer = activationLayers.get(name);
  if (!layer) {
    layer = tf.layers.activation({ activation: name as StudentActivation });
    activationLayers.set(name, layer);
  }
  return layer.apply(h) as tf.Tensor;
}

/**
 * Forward pass in training mode, layer by layer. Dense layers are computed here (see
 * {@link matMulWeightGrad}) from the layers' own variables, so the trained weights live in the model;
 * Flatten is a reshape.
 * Dropout masks are drawn with a per-step seed rather than by the Dropout layer: a tfjs Dropout layer
 * with a fixed seed draws the *same* mask on every call, and one without a seed uses Math.random —
 * neither gives reproducible, varying masks. Other layers (Reshape, Cropping2D, BatchNormalization,
 * Activation) run their own training-mode `apply`.
 */
export function forwardTraining(model: tf.Sequential, x: tf.Tensor, stepSeed: number): tf.Tensor2D {
  let h: tf.Tensor = x;
  let first = true;
  model.layers.forEach((layer, i) => {
    const cls = layer.getClassName();
    if (cls === 'InputLayer') return;
    if (cls === 'Flatten') {
      h = tf.reshape(h, [h.shape[0] ?? -1, -1]);
    } else if (cls === 'Dense') {
      const [kernel, bias] = layer.trainableWeights.map((w) => w.read() as tf.Variable);
      if (!kernel || h.rank !== 2)
        throw new OutpostError('INTERNAL', `dense layer ${layer.name} needs a 2-D input`);
      h = first ? matMulWeightGrad(h as tf.Tensor2D, kernel) : matMulBothGrads(h as tf.Tensor2D, kernel);
      if (bias) h = tf.add(h, bias);
      h = applyActivation(String((layer.getConfig() as { activation?: unknown }).activation ?? 'linear'), h);
      first = false;
    } else if (cls === 'Dropout') {
      const rate = (layer.getConfig() as { rate: number }).rate;
      h = tf.dropout(h, rate, undefined, stepSeed * 31 + i);
    } else {
      h = layer.apply(h, { training: true }) as tf.Tensor;
    }
  });
  return h as tf.Tensor2D;
}

/**
 * Switches tfjs to the WebAssembly backend (the pure-JS `cpu` backend is several times slower for these
 * matrix products; tfjs-node would need a native build). The backend is process-global in tfjs.
 *
 * @example
 * await useWasmBackend();
 */
export async function useWasmBackend(): Promise<void> {
  if (tf.getBackend() === 'wasm') return;
  const ok = await tf.setBackend('wasm');
  if (!ok) throw new OutpostError('INTERNAL', 'the tfjs WASM backend could not be initialised');
  await tf.ready();
}
