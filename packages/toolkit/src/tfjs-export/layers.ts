import type * as tf from '@tensorflow/tfjs';
import { OutpostError } from '@outpost/protocol';

/**
 * First stage of the exporter: each Keras-style layer of the chain becomes zero or more small
 * intermediate ops (a dense product, an affine map, an activation, a shape change). Working on this
 * list rather than emitting ONNX nodes directly is what makes BatchNormalization folding a simple
 * peephole pass (see `fold.ts`) and keeps inference-time no-ops such as Dropout out of the graph.
 */

/** Activation functions the exporter knows, with the parameters some of them take. */
export type ActivationOp =
  | { fn: 'relu' | 'sigmoid' | 'hardSigmoid' | 'tanh' | 'selu' | 'softplus' | 'softsign' }
  | { fn: 'swish' | 'mish' | 'gelu' | 'gelu_new' }
  | { fn: 'softmax' | 'logSoftmax'; axis: number }
  | { fn: 'clip'; min: number; max: number }
  | { fn: 'elu' | 'leakyRelu' | 'thresholdedRelu'; alpha: number }
  | { fn: 'prelu'; slope: Float32Array; shape: number[] };

/** One step of the exported computation; `layer` names the Keras layer it came from (node names). */
export type IrOp =
  | {
      kind: 'dense';
      layer: string;
      kernel: Float32Array;
      inDim: number;
      units: number;
      bias: Float32Array | null;
    }
  | { kind: 'affine'; layer: string; axis: number; rank: number; scale: Float32Array; shift: Float32Array }
  | ({ kind: 'act'; layer: string } & ActivationOp)
  | { kind: 'flatten'; layer: string }
  | { kind: 'reshape'; layer: string; shape: number[] }
  | { kind: 'transpose'; layer: string; perm: number[] }
  | { kind: 'slice'; layer: string; axes: number[]; starts: number[]; ends: number[] }
  | {
      kind: 'pool';
      layer: string;
      op: 'AveragePool' | 'MaxPool';
      kernel: number[];
      strides: number[];
      /** Explicit [top, left, bottom, right] padding (TF SAME: the odd pixel at the end; never negative). */
      pads: number[];
      channelsFirst: boolean;
    };

function unsupported(layer: tf.layers.Layer, why: string): OutpostError {
  return new OutpostError('ONNX_UNSUPPORTED', `layer ${layer.name} (${layer.getClassName()}): ${why}`, {
    details: { layer: layer.name, className: layer.getClassName() },
  });
}

type Config = Record<string, unknown>;

function num(cfg: Config, key: string, fallback: number): number {
  const v = cfg[key];
  return typeof v === 'number' ? v : fallback;
}

/** The weights of a layer by the last segment of their variable name (`kernel`, `gamma`, ...). */
function weightsByName(layer: tf.layers.Layer): Map<string, { values: Float32Array; shape: number[] }> {
  const out = new Map<string, { values: Float32Array; shape: number[] }>();
  const values = layer.getWeights();
  layer.weights.forEach((w, i) => {
    const t = values[i];
    if (!t) return;
    if (t.dtype !== 'float32') throw unsupported(layer, `weight ${w.name} is ${t.dtype}`);
    // Variable names look like `dense_Dense1/kernel` (plus `_1` suffixes when names collide).
    const short = (w.originalName ?? w.name).split('/').pop()?.replace(/_\d+$/, '') ?? w.name;
    out.set(short, { values: Float32Array.from(t.dataSync() as Float32Array), shape: [...t.shape] });
  });
  return out;
}

/** An activation given by name (a Dense's `activation` or an Activation layer), as ops. */
export function activationOps(layer: tf.layers.Layer, name: string, rank: number): IrOp[] {
  const base = { kind: 'act' as const, layer: layer.name };
  switch (name) {
    case 'linear':
      return [];
    case 'relu':
    case 'sigmoid':
    case 'hardSigmoid':
    case 'tanh':
    case 'selu':
    case 'softplus':
    case 'softsign':
    case 'swish':
    case 'mish':
    case 'gelu':
    case 'gelu_new':
      return [{ ...base, fn: name }];
    case 'relu6':
      return [{ ...base, fn: 'clip', min: 0, max: 6 }];
    case 'elu':
      return [{ ...base, fn: 'elu', alpha: 1 }];
    case 'softmax':
    case 'logSoftmax':
      return [{ ...base, fn: name, axis: rank - 1 }];
    default:
      throw unsupported(layer, `activation '${name}' has no ONNX mapping here`);
  }
}

/** The activation identifier of a layer's config (`'relu'`, or a serialized `{ className }`). */
function activationName(cfg: Config): string {
  const a = cfg.activation;
  if (a === undefined || a === null) return 'linear';
  if (typeof a === 'string') return a;
  if (typeof a === 'object' && 'className' in a && typeof a.className === 'string') return a.className;
  return String(a);
}

function normalizeAxis(layer: tf.layers.Layer, axis: unknown, rank: number): number {
  const a = Array.isArray(axis) && axis.length === 1 ? axis[0] : axis;
  if (typeof a !== 'number' || !Number.isInteger(a)) {
    throw unsupported(layer, `axis ${JSON.stringify(axis)} (only a single axis is supported)`);
  }
  const abs = a < 0 ? a + rank : a;
  if (abs < 1 || abs >= rank) throw unsupported(layer, `axis ${a} for a rank-${rank} tensor`);
  return abs;
}

/**
 * Translates one layer of the chain to intermediate ops. Inference-time no-ops (InputLayer, every
 * dropout/noise layer) give an empty list; a layer class without a mapping throws ONNX_UNSUPPORTED
 * naming the class. `inputShape` is the shape of the layer's input, batch (null) included.
 */
export function layerToOps(layer: tf.layers.Layer, inputShape: (number | null)[]): IrOp[] {
  const rank = inputShape.length;
  const cls = layer.getClassName();
  const cfg = layer.getConfig() as Config;
  const name = layer.name;
  switch (cls) {
    case 'InputLayer':
    case 'Dropout':
    case 'SpatialDropout1D':
    case 'GaussianNoise':
    case 'GaussianDropout':
    case 'AlphaDropout':
      // Identity at inference: the exported graph never contains them.
      return [];
    case 'Dense': {
      const w = weightsByName(layer);
      const kernel = w.get('kernel');
      if (!kernel || kernel.shape.length !== 2) throw unsupported(layer, 'no 2-D kernel');
      const [inDim, units] = kernel.shape as [number, number];
      const bias = cfg.useBias === false ? null : (w.get('bias')?.values ?? null);
      const dense: IrOp = { kind: 'dense', layer: name, kernel: kernel.values, inDim, units, bias };
      return [dense, ...activationOps(layer, activationName(cfg), rank)];
    }
    case 'Activation':
      return activationOps(layer, activationName(cfg), rank);
    case 'ReLU': {
      const max = cfg.maxValue;
      return typeof max === 'number'
        ? [{ kind: 'act', layer: name, fn: 'clip', min: 0, max }]
        : [{ kind: 'act', layer: name, fn: 'relu' }];
    }
    case 'LeakyReLU':
      return [{ kind: 'act', layer: name, fn: 'leakyRelu', alpha: num(cfg, 'alpha', 0.3) }];
    case 'ELU':
      return [{ kind: 'act', layer: name, fn: 'elu', alpha: num(cfg, 'alpha', 1) }];
    case 'ThresholdedReLU':
      return [{ kind: 'act', layer: name, fn: 'thresholdedRelu', alpha: num(cfg, 'theta', 1) }];
    case 'Softmax':
      // tfjs' Softmax *layer* defaults to axis 1 (unlike the activation, which uses the last axis).
      return [{ kind: 'act', layer: name, fn: 'softmax', axis: normalizeAxis(layer, cfg.axis ?? 1, rank) }];
    case 'PReLU': {
      const alpha = weightsByName(layer).get('alpha');
      if (!alpha) throw unsupported(layer, 'no alpha weight');
      return [{ kind: 'act', layer: name, fn: 'prelu', slope: alpha.values, shape: alpha.shape }];
    }
    case 'BatchNormalization':
      return [batchNormToAffine(layer, cfg, rank)];
    case 'Flatten': {
      const ops: IrOp[] = [];
      // channelsFirst Flatten moves channels last before flattening (Keras semantics).
      if (cfg.dataFormat === 'channelsFirst' && rank > 2) {
        const perm = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2), 1];
        ops.push({ kind: 'transpose', layer: name, perm });
      }
      ops.push({ kind: 'flatten', layer: name });
      return ops;
    }
    case 'Reshape': {
      const target = cfg.targetShape;
      if (!Array.isArray(target) || !target.every((d) => typeof d === 'number' && d !== 0)) {
        throw unsupported(layer, `targetShape ${JSON.stringify(target)}`);
      }
      return [{ kind: 'reshape', layer: name, shape: target as number[] }];
    }
    case 'Permute': {
      const dims = cfg.dims;
      if (!Array.isArray(dims)) throw unsupported(layer, 'no dims');
      return [{ kind: 'transpose', layer: name, perm: [0, ...(dims as number[])] }];
    }
    case 'Cropping2D':
      return [croppingToSlice(layer, cfg, inputShape)];
    case 'AveragePooling2D':
    case 'MaxPooling2D': {
      const pair = (v: unknown) => (Array.isArray(v) ? (v as number[]) : [v as number, v as number]);
      const kernel = pair(cfg.poolSize ?? 2);
      const strides = pair(cfg.strides ?? kernel);
      const channelsFirst = cfg.dataFormat === 'channelsFirst';
      const spatial = (channelsFirst ? [2, 3] : [1, 2]).map((a) => inputShape[a]);
      if (
        rank !== 4 ||
        (cfg.padding !== 'valid' && cfg.padding !== 'same') ||
        !spatial.every((d) => typeof d === 'number')
      ) {
        throw unsupported(layer, `padding ${String(cfg.padding)} on a [${inputShape.join(', ')}] input`);
      }
      const pads = [0, 0, 0, 0];
      if (cfg.padding === 'same') {
        (spatial as number[]).forEach((n, i) => {
          const s = strides[i] as number;
          const total = Math.max(0, (Math.ceil(n / s) - 1) * s + (kernel[i] as number) - n);
          pads[i] = Math.floor(total / 2);
          pads[i + 2] = total - Math.floor(total / 2);
        });
      }
      const op = cls === 'MaxPooling2D' ? ('MaxPool' as const) : ('AveragePool' as const);
      return [{ kind: 'pool', layer: name, op, kernel, strides, pads, channelsFirst }];
    }
    default:
      throw unsupported(layer, `layer class ${cls} has no ONNX mapping in this exporter`);
  }
}

/**
 * BatchNormalization at inference is an affine map per channel:
 * y = gamma·(x − mean)/√(var + ε) + beta = x·s + (beta − mean·s) with s = gamma/√(var + ε).
 * Computed in float64 so the folded weights carry no extra rounding beyond the final float32 cast.
 */
function batchNormToAffine(layer: tf.layers.Layer, cfg: Config, rank: number): IrOp {
  const axis = normalizeAxis(layer, cfg.axis ?? -1, rank);
  const w = weightsByName(layer);
  const mean = w.get('moving_mean')?.values;
  const variance = w.get('moving_variance')?.values;
  if (!mean || !variance) throw unsupported(layer, 'no moving statistics');
  const gamma = cfg.scale === false ? undefined : w.get('gamma')?.values;
  const beta = cfg.center === false ? undefined : w.get('beta')?.values;
  const eps = num(cfg, 'epsilon', 1e-3);
  const c = mean.length;
  const scale = new Float32Array(c);
  const shift = new Float32Array(c);
  for (let i = 0; i < c; i++) {
    const s = (gamma?.[i] ?? 1) / Math.sqrt((variance[i] ?? 1) + eps);
    scale[i] = s;
    shift[i] = (beta?.[i] ?? 0) - (mean[i] ?? 0) * s;
  }
  return { kind: 'affine', layer: layer.name, axis, rank, scale, shift };
}

/** Cropping2D → Slice over the two spatial axes (H, W of NCHW or NHWC). */
function croppingToSlice(layer: tf.layers.Layer, cfg: Config, inputShape: (number | null)[]): IrOp {
  const crop = cfg.cropping;
  const first = cfg.dataFormat === 'channelsFirst';
  const axes = first ? [2, 3] : [1, 2];
  const dims = axes.map((a) => inputShape[a]);
  if (
    inputShape.length !== 4 ||
    !Array.isArray(crop) ||
    crop.length !== 2 ||
    !crop.every((c) => Array.isArray(c) && c.length === 2 && c.every((v) => Number.isInteger(v) && v >= 0)) ||
    !dims.every((d) => typeof d === 'number')
  ) {
    throw unsupported(layer, `cropping ${JSON.stringify(crop)} of a [${inputShape.join(', ')}] input`);
  }
  const [[top, bottom], [left, right]] = crop as [[number, number], [number, number]];
  const [h, w] = dims as [number, number];
  return { kind: 'slice', layer: layer.name, axes, starts: [top, left], ends: [h - bottom, w - right] };
}
