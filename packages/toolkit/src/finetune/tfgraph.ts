import type * as TF from '@tensorflow/tfjs';
import { OutpostError } from '@outpost/protocol';
import {
  attrFloat,
  attrInt,
  attrInts,
  attrString,
  attrTensor,
  tensorDims,
  tensorToFloat32,
  tensorToNumbers,
} from '../onnx/index.ts';
import type { NodeProto, TensorProto } from '../onnx/index.ts';

/**
 * A small ONNX → TensorFlow.js interpreter for training: it runs the nodes of a (CNN-style) ONNX graph
 * as tfjs ops so that gradients flow to the Conv/Gemm/MatMul weights.
 *
 * Why convolution is written out as im2col + matMul: the tfjs WASM backend has no Conv2DBackpropFilter
 * kernel (no gradient for conv weights), and the pure-JS 'cpu' backend has one that is far too slow —
 * measured here: 1.8 s per batch of 64 for the 50 %-pruned MNIST CNN's second conv alone, ≈ 5 min per
 * epoch for the whole model. Built from pad/slice/concat/reshape/matMul — all of which have WASM
 * kernels and gradients — the same convolution trains at ≈ 16 s per epoch on WASM.
 *
 * 4-D activations are kept channels-last (NHWC, what tfjs's pools want) and converted back to ONNX's
 * NCHW only where the layout matters (Flatten, Reshape, Transpose, Concat, broadcasting with tensors).
 */

export type Tf = typeof TF;

interface Val {
  t: TF.Tensor;
  nhwc: boolean;
}

export interface Program {
  /** Nodes to execute, in graph order. */
  nodes: NodeProto[];
  /** The value fed with the batch (the graph input, or the feature value in head mode). */
  input: string;
  /** The value read as logits. */
  logits: string;
  /** Initializers by name (read as constants unless trainable). */
  initializers: Map<string, TensorProto>;
}

const SUPPORTED = new Set([
  'Conv',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'BatchNormalization',
  'Relu',
  'LeakyRelu',
  'Sigmoid',
  'Tanh',
  'Elu',
  'Softplus',
  'Abs',
  'Neg',
  'Exp',
  'Sqrt',
  'Identity',
  'Dropout',
  'Clip',
  'Flatten',
  'Reshape',
  'Gemm',
  'MatMul',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Softmax',
  'Transpose',
  'Concat',
  'Constant',
]);

/** Ops of `nodes` this interpreter cannot run (empty when it can run them all). */
export function unsupportedOps(nodes: NodeProto[]): string[] {
  const bad = new Set<string>();
  for (const n of nodes) {
    const op = n.op_type ?? '';
    if ((n.domain && n.domain !== 'ai.onnx') || !SUPPORTED.has(op))
      bad.add(n.domain ? `${n.domain}.${op}` : op);
  }
  return [...bad];
}

const BIG = 3.4e38;

function unsupported(n: NodeProto, why: string): OutpostError {
  return new OutpostError('ONNX_UNSUPPORTED', `fine-tuning cannot run ${n.name || n.op_type}: ${why}`);
}

/** Begin/end padding of one spatial axis from auto_pad / pads. */
function padsFor(n: NodeProto, size: number, k: number, s: number, d: number, axis: number, rank: number) {
  const autoPad = attrString(n, 'auto_pad', 'NOTSET');
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const out = Math.ceil(size / s);
    const total = Math.max((out - 1) * s + (k - 1) * d + 1 - size, 0);
    const small = Math.floor(total / 2);
    return autoPad === 'SAME_UPPER' ? [small, total - small] : [total - small, small];
  }
  if (autoPad === 'VALID') return [0, 0];
  const pads = attrInts(n, 'pads', new Array<number>(2 * rank).fill(0));
  return [pads[axis] ?? 0, pads[axis + rank] ?? 0];
}

/**
 * Runs a program on a batch and returns the logits. `params` maps trainable initializer names to
 * variables; every other initializer is read as a constant through `constant`.
 */
export function runProgram(
  tf: Tf,
  p: Program,
  x: TF.Tensor,
  params: Map<string, TF.Variable>,
  constant: (name: string) => TF.Tensor,
): TF.Tensor {
  const env = new Map<string, Val>([[p.input, { t: x, nhwc: false }]]);
  const get = (name: string | undefined): Val => {
    if (!name) throw new OutpostError('ONNX_UNSUPPORTED', 'a required input is missing');
    const v = env.get(name);
    if (v) return v;
    const param = params.get(name);
    if (param) return { t: param, nhwc: false };
    if (p.initializers.has(name)) return { t: constant(name), nhwc: false };
    throw new OutpostError('ONNX_UNSUPPORTED', `value ${name} is not available to the fine-tuning graph`);
  };
  const nchw = (v: Val) => (v.nhwc ? tf.transpose(v.t, [0, 3, 1, 2]) : v.t);
  const nhwc = (v: Val) => (v.nhwc || v.t.rank !== 4 ? v.t : tf.transpose(v.t, [0, 2, 3, 1]));

  for (const n of p.nodes) {
    const op = n.op_type ?? '';
    const ins = n.input ?? [];
    let out: Val;
    switch (op) {
      case 'Conv':
        out = {
          t: conv(tf, n, nhwc(get(ins[0])) as TF.Tensor4D, get(ins[1]).t, ins[2] ? get(ins[2]).t : undefined),
          nhwc: true,
        };
        break;
      case 'MaxPool':
      case 'AveragePool':
        out = { t: pool(tf, n, nhwc(get(ins[0])) as TF.Tensor4D), nhwc: true };
        break;
      case 'GlobalAveragePool':
      case 'GlobalMaxPool': {
        const v = nhwc(get(ins[0]));
        out = {
          t: op === 'GlobalAveragePool' ? tf.mean(v, [1, 2], true) : tf.max(v, [1, 2], true),
          nhwc: true,
        };
        break;
      }
      case 'BatchNormalization': {
        // Inference form with the running statistics, frozen: y = x·a + b per channel.
        const v = get(ins[0]);
        const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => get(ins[i]).t);
        const eps = attrFloat(n, 'epsilon', 1e-5);
        const a = tf.div(scale as TF.Tensor, tf.sqrt(tf.add(variance as TF.Tensor, eps)));
        const b = tf.sub(bias as TF.Tensor, tf.mul(mean as TF.Tensor, a));
        const shape = v.nhwc || v.t.rank === 2 ? [-1] : [-1, ...new Array<number>(v.t.rank - 2).fill(1)];
        out = { t: tf.add(tf.mul(v.t, tf.reshape(a, shape)), tf.reshape(b, shape)), nhwc: v.nhwc };
        break;
      }
      case 'Relu':
      case 'LeakyRelu':
      case 'Sigmoid':
      case 'Tanh':
      case 'Elu':
      case 'Softplus':
      case 'Abs':
      case 'Neg':
      case 'Exp':
      case 'Sqrt':
      case 'Identity':
      case 'Dropout':
      case 'Clip':
        out = { t: unary(tf, n, get(ins[0]).t, p, constant), nhwc: get(ins[0]).nhwc };
        break;
      case 'Flatten': {
        const v = nchw(get(ins[0]));
        const r = v.rank;
        const axis = ((attrInt(n, 'axis', 1) % r) + r) % r;
        const rows = v.shape.slice(0, axis).reduce((a, b) => a * b, 1);
        out = { t: tf.reshape(v, [rows, -1]), nhwc: false };
        break;
      }
      case 'Reshape': {
        const v = nchw(get(ins[0]));
        const t = p.initializers.get(ins[1] ?? '');
        if (!t) throw unsupported(n, 'the shape is computed at run time');
        const shape = tensorToNumbers(t).map((d, i) =>
          d === 0 && !attrInt(n, 'allowzero', 0) ? (v.shape[i] ?? 0) : d,
        );
        out = { t: tf.reshape(v, shape), nhwc: false };
        break;
      }
      case 'Gemm': {
        const a = nchw(get(ins[0]));
        const b = get(ins[1]).t;
        let y = tf.matMul(
          a as TF.Tensor2D,
          b as TF.Tensor2D,
          attrInt(n, 'transA', 0) === 1,
          attrInt(n, 'transB', 0) === 1,
        );
        const alpha = attrFloat(n, 'alpha', 1);
        if (alpha !== 1) y = tf.mul(y, alpha);
        if (ins[2]) {
          const beta = attrFloat(n, 'beta', 1);
          const c = get(ins[2]).t;
          y = tf.add(y, beta === 1 ? c : tf.mul(c, beta));
        }
        out = { t: y, nhwc: false };
        break;
      }
      case 'MatMul': {
        const a = nchw(get(ins[0]));
        const b = nchw(get(ins[1]));
        if (a.rank > 2 && b.rank === 2) {
          const k = a.shape[a.rank - 1] ?? 0;
          const y = tf.matMul(tf.reshape(a, [-1, k]) as TF.Tensor2D, b as TF.Tensor2D);
          out = { t: tf.reshape(y, [...a.shape.slice(0, -1), b.shape[1] ?? 0]), nhwc: false };
        } else out = { t: tf.matMul(a as TF.Tensor2D, b as TF.Tensor2D), nhwc: false };
        break;
      }
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div': {
        const a = get(ins[0]);
        const b = get(ins[1]);
        const fn = { Add: tf.add, Sub: tf.sub, Mul: tf.mul, Div: tf.div }[op];
        // Channels-last is fine when both are, or when the other operand is a scalar.
        const keep = (a.nhwc || b.nhwc) && (a.nhwc || a.t.size === 1) && (b.nhwc || b.t.size === 1);
        out = keep ? { t: fn(a.t, b.t), nhwc: true } : { t: fn(nchw(a), nchw(b)), nhwc: false };
        break;
      }
      case 'Softmax': {
        const v = nchw(get(ins[0]));
        const axis = attrInt(n, 'axis', -1);
        if (axis !== -1 && axis !== v.rank - 1) throw unsupported(n, `softmax over axis ${axis}`);
        out = { t: tf.softmax(v), nhwc: false };
        break;
      }
      case 'Transpose': {
        const v = nchw(get(ins[0]));
        const perm = attrInts(n, 'perm', [...v.shape.keys()].reverse());
        out = { t: tf.transpose(v, perm), nhwc: false };
        break;
      }
      case 'Concat': {
        const vs = ins.map((i) => nchw(get(i)));
        const r = vs[0]?.rank ?? 1;
        out = { t: tf.concat(vs, ((attrInt(n, 'axis', 0) % r) + r) % r), nhwc: false };
        break;
      }
      case 'Constant': {
        const t = attrTensor(n, 'value');
        if (!t) throw unsupported(n, 'only `value` Constants are supported');
        out = { t: tf.tensor(tensorToFloat32(t), tensorDims(t)), nhwc: false };
        break;
      }
      default:
        throw unsupported(n, `op ${op} is not supported`);
    }
    env.set(n.output?.[0] ?? '', out);
  }
  const logits = env.get(p.logits);
  if (!logits) throw new OutpostError('ONNX_UNSUPPORTED', `the graph never computes ${p.logits}`);
  return nchw(logits);
}

function unary(
  tf: Tf,
  n: NodeProto,
  x: TF.Tensor,
  p: Program,
  constant: (name: string) => TF.Tensor,
): TF.Tensor {
  switch (n.op_type) {
    case 'Relu':
      return tf.relu(x);
    case 'LeakyRelu':
      return tf.leakyRelu(x, attrFloat(n, 'alpha', 0.01));
    case 'Sigmoid':
      return tf.sigmoid(x);
    case 'Tanh':
      return tf.tanh(x);
    case 'Elu':
      if (attrFloat(n, 'alpha', 1) !== 1) throw unsupported(n, 'Elu with alpha ≠ 1');
      return tf.elu(x);
    case 'Softplus':
      return tf.softplus(x);
    case 'Abs':
      return tf.abs(x);
    case 'Neg':
      return tf.neg(x);
    case 'Exp':
      return tf.exp(x);
    case 'Sqrt':
      return tf.sqrt(x);
    case 'Clip': {
      // Bounds are attributes before opset 11, optional scalar inputs after.
      const bound = (i: number, attr: string, fallback: number) => {
        const name = n.input?.[i];
        if (name && p.initializers.has(name)) return constant(name).dataSync()[0] ?? fallback;
        if (name) throw unsupported(n, 'bounds computed at run time');
        return attrFloat(n, attr, fallback);
      };
      return tf.clipByValue(x, bound(1, 'min', -BIG), bound(2, 'max', BIG));
    }
    default:
      // Identity, and Dropout (inference behaviour: the fine-tune keeps the exported graph's semantics).
      if (n.op_type === 'Dropout' && (n.output ?? []).length > 1 && n.output?.[1]) {
        throw unsupported(n, 'Dropout mask output');
      }
      return tf.clone(x);
  }
}

/** Keeps every `s`-th row/column of an NHWC tensor whose spatial size is at least (out−1)·s+1. */
function subsample(tf: Tf, x: TF.Tensor4D, ho: number, wo: number, sh: number, sw: number): TF.Tensor4D {
  if (sh === 1 && sw === 1) return x;
  const [b, h, w, c] = x.shape;
  const padded = tf.pad(x, [
    [0, 0],
    [0, Math.max(0, ho * sh - h)],
    [0, Math.max(0, wo * sw - w)],
    [0, 0],
  ]);
  const cut = tf.slice(padded, [0, 0, 0, 0], [b, ho * sh, wo * sw, c]);
  const grid = tf.reshape(cut, [b, ho, sh, wo, sw, c]);
  return tf.reshape(tf.slice(grid, [0, 0, 0, 0, 0, 0], [b, ho, 1, wo, 1, c]), [b, ho, wo, c]);
}

function conv(tf: Tf, n: NodeProto, x: TF.Tensor4D, w: TF.Tensor, bias: TF.Tensor | undefined): TF.Tensor4D {
  if (w.rank !== 4) throw unsupported(n, `only 2-D convolutions (weight rank ${w.rank})`);
  const [m, cg, kh, kw] = w.shape as [number, number, number, number];
  const [b, h, wd, c] = x.shape;
  const group = attrInt(n, 'group', 1);
  if (cg * group !== c) throw unsupported(n, `weight expects ${cg * group} input channels, got ${c}`);
  const [sh, sw] = attrInts(n, 'strides', [1, 1]) as [number, number];
  const [dh, dw] = attrInts(n, 'dilations', [1, 1]) as [number, number];
  const [pt, pb] = padsFor(n, h, kh, sh, dh, 0, 2) as [number, number];
  const [pl, pr] = padsFor(n, wd, kw, sw, dw, 1, 2) as [number, number];
  const xp =
    pt || pb || pl || pr
      ? tf.pad(x, [
          [0, 0],
          [pt, pb],
          [pl, pr],
          [0, 0],
        ])
      : x;
  const hp = h + pt + pb;
  const wp = wd + pl + pr;
  const ho = Math.floor((hp - dh * (kh - 1) - 1) / sh) + 1;
  const wo = Math.floor((wp - dw * (kw - 1) - 1) / sw) + 1;
  if (ho < 1 || wo < 1) throw unsupported(n, 'the kernel is larger than the padded input');
  // im2col: one shifted (and strided) view of the input per kernel tap, concatenated on channels.
  const taps: TF.Tensor4D[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const rows = Math.min((ho - 1) * sh + 1 + (sh - 1), hp - i * dh);
      const cols = Math.min((wo - 1) * sw + 1 + (sw - 1), wp - j * dw);
      const view = tf.slice(xp, [0, i * dh, j * dw, 0], [b, rows, cols, c]);
      taps.push(subsample(tf, view, ho, wo, sh, sw));
    }
  }
  const patches = taps.length === 1 ? (taps[0] as TF.Tensor4D) : tf.concat(taps, 3);
  const mg = m / group;
  const outs: TF.Tensor[] = [];
  for (let g = 0; g < group; g++) {
    // Patch layout per row: tap-major, then channel; the weight [M,C,kh,kw] is laid out to match.
    let cols: TF.Tensor = tf.reshape(patches, [b * ho * wo, kh * kw, c]);
    if (group > 1) cols = tf.slice(cols, [0, 0, g * cg], [b * ho * wo, kh * kw, cg]);
    const wg = group > 1 ? tf.slice(w, [g * mg, 0, 0, 0], [mg, cg, kh, kw]) : w;
    const w2 = tf.reshape(tf.transpose(wg, [2, 3, 1, 0]), [kh * kw * cg, mg]);
    outs.push(tf.matMul(tf.reshape(cols, [b * ho * wo, kh * kw * cg]) as TF.Tensor2D, w2 as TF.Tensor2D));
  }
  let y = outs.length === 1 ? (outs[0] as TF.Tensor) : tf.concat(outs, 1);
  if (bias) y = tf.add(y, bias);
  return tf.reshape(y, [b, ho, wo, m]);
}

function pool(tf: Tf, n: NodeProto, x: TF.Tensor4D): TF.Tensor4D {
  const [kh, kw] = attrInts(n, 'kernel_shape', []) as [number, number];
  if (kh === undefined || kw === undefined) throw unsupported(n, 'only 2-D pooling');
  const [sh, sw] = attrInts(n, 'strides', [1, 1]) as [number, number];
  if (attrInts(n, 'dilations', [1, 1]).some((d) => d !== 1)) throw unsupported(n, 'dilated pooling');
  const [, h, w] = x.shape;
  const [pt, pb] = padsFor(n, h, kh, sh, 1, 0, 2) as [number, number];
  const [pl, pr] = padsFor(n, w, kw, sw, 1, 1, 2) as [number, number];
  const isMax = n.op_type === 'MaxPool';
  // ceil_mode: extend the end padding so that the floor formula yields the ceil size; a last window
  // that would start inside the end padding is dropped, as in ONNX Runtime and PyTorch.
  const extra = (size: number, k: number, s: number, begin: number, end: number) => {
    if (!attrInt(n, 'ceil_mode', 0)) return 0;
    let out = Math.ceil((size + begin + end - k) / s) + 1;
    if ((out - 1) * s >= size + begin) out--;
    return Math.max(0, (out - 1) * s + k - (size + begin + end));
  };
  const eb = extra(h, kh, sh, pt, pb);
  const er = extra(w, kw, sw, pl, pr);
  if (!isMax && (eb || er)) throw unsupported(n, 'AveragePool with ceil_mode');
  if (!isMax && (pt || pb || pl || pr) && !attrInt(n, 'count_include_pad', 0)) {
    throw unsupported(n, 'padded AveragePool without count_include_pad');
  }
  const padded =
    pt || pb + eb || pl || pr + er
      ? tf.pad(
          x,
          [
            [0, 0],
            [pt, pb + eb],
            [pl, pr + er],
            [0, 0],
          ],
          isMax ? -BIG : 0,
        )
      : x;
  return isMax
    ? tf.maxPool(padded, [kh, kw], [sh, sw], 'valid')
    : tf.avgPool(padded, [kh, kw], [sh, sw], 'valid');
}
