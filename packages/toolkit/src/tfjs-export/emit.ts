import { floatAttr, intAttr, intsAttr, makeTensor } from '../onnx/index.ts';
import type { NodeProto, TensorProto } from '../onnx/index.ts';
import type { IrOp } from './layers.ts';

/**
 * Second stage of the exporter: intermediate ops → ONNX nodes and initializers (opset 17). Tensor and
 * node names are derived from the Keras layer names, so a Netron view of the graph reads like the
 * model summary.
 */
export class GraphEmitter {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly used = new Set<string>();
  /** Name of the tensor the next op consumes. */
  current: string;
  /** Rank (batch included) of `current`. */
  rank: number;

  constructor(input: string, rank: number) {
    this.current = input;
    this.rank = rank;
    this.used.add(input);
  }

  /** A name not used yet in the graph (`base`, then `base_1`, `base_2`, ...). */
  unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  private init(base: string, values: Float32Array | BigInt64Array, dims: number[]): string {
    const name = this.unique(base);
    this.initializers.push(makeTensor(name, values, dims));
    return name;
  }

  private scalar(base: string, v: number): string {
    return this.init(base, new Float32Array([v]), []);
  }

  /** Appends a node reading `inputs` and returns the name of its (single) output. */
  node(op: string, layer: string, inputs: string[], attribute: NodeProto['attribute'] = []): string {
    const output = this.unique(`${layer}/${op}_out`);
    const n: NodeProto = {
      op_type: op,
      name: this.unique(`${layer}/${op}`),
      input: inputs,
      output: [output],
    };
    if (attribute && attribute.length > 0) n.attribute = attribute;
    this.nodes.push(n);
    return output;
  }

  emit(op: IrOp): void {
    const x = this.current;
    switch (op.kind) {
      case 'dense': {
        const w = this.init(`${op.layer}/kernel`, op.kernel, [op.inDim, op.units]);
        const b = op.bias ? this.init(`${op.layer}/bias`, op.bias, [op.units]) : undefined;
        if (this.rank === 2) {
          // Gemm is the fused form runtimes recognise best for [N, in] × [in, out] + bias.
          this.current = this.node('Gemm', op.layer, b ? [x, w, b] : [x, w]);
        } else {
          const y = this.node('MatMul', op.layer, [x, w]);
          this.current = b ? this.node('Add', op.layer, [y, b]) : y;
        }
        return;
      }
      case 'affine': {
        // Per-channel constants shaped to broadcast along `axis` (trailing dims of size 1).
        const dims = [op.scale.length, ...Array<number>(op.rank - 1 - op.axis).fill(1)];
        const s = this.init(`${op.layer}/scale`, op.scale, dims);
        const t = this.init(`${op.layer}/shift`, op.shift, dims);
        this.current = this.node('Add', op.layer, [this.node('Mul', op.layer, [x, s]), t]);
        return;
      }
      case 'flatten':
        this.current = this.node('Flatten', op.layer, [x], [intAttr('axis', 1)]);
        this.rank = 2;
        return;
      case 'reshape': {
        // 0 copies the batch dimension from the input (allowzero = 0), whatever its size at run time.
        const shape = this.init(`${op.layer}/shape`, BigInt64Array.from([0, ...op.shape].map(BigInt)), [
          op.shape.length + 1,
        ]);
        this.current = this.node('Reshape', op.layer, [x, shape]);
        this.rank = op.shape.length + 1;
        return;
      }
      case 'transpose':
        this.current = this.node('Transpose', op.layer, [x], [intsAttr('perm', op.perm)]);
        return;
      case 'slice': {
        const i64 = (name: string, v: number[]) =>
          this.init(`${op.layer}/${name}`, BigInt64Array.from(v.map(BigInt)), [v.length]);
        const inputs = [x, i64('starts', op.starts), i64('ends', op.ends), i64('axes', op.axes)];
        this.current = this.node('Slice', op.layer, inputs);
        return;
      }
      case 'pool': {
        // ONNX pools NCHW; channels-last inputs are transposed around the pool. Padding is explicit
        // (ORT rejects auto_pad SAME when it would be negative); averages count real pixels only, as in
        // TF (count_include_pad 0, the default).
        const attrs = [
          intsAttr('kernel_shape', op.kernel),
          intsAttr('strides', op.strides),
          intsAttr('pads', op.pads),
        ];
        const nchw = op.channelsFirst
          ? x
          : this.node('Transpose', op.layer, [x], [intsAttr('perm', [0, 3, 1, 2])]);
        const pooled = this.node(op.op, op.layer, [nchw], attrs);
        this.current = op.channelsFirst
          ? pooled
          : this.node('Transpose', op.layer, [pooled], [intsAttr('perm', [0, 2, 3, 1])]);
        return;
      }
      case 'act':
        this.current = this.activation(op, x);
        return;
    }
  }

  private activation(op: Extract<IrOp, { kind: 'act' }>, x: string): string {
    const l = op.layer;
    switch (op.fn) {
      case 'relu':
        return this.node('Relu', l, [x]);
      case 'sigmoid':
        return this.node('Sigmoid', l, [x]);
      case 'hardSigmoid':
        // tfjs: clip(0.2·x + 0.5, 0, 1) — ONNX HardSigmoid with its default alpha/beta.
        return this.node('HardSigmoid', l, [x], [floatAttr('alpha', 0.2), floatAttr('beta', 0.5)]);
      case 'tanh':
        return this.node('Tanh', l, [x]);
      case 'selu':
        // ONNX Selu's defaults are the SELU constants tfjs uses.
        return this.node('Selu', l, [x]);
      case 'softplus':
        return this.node('Softplus', l, [x]);
      case 'softsign':
        return this.node('Softsign', l, [x]);
      case 'softmax':
        return this.node('Softmax', l, [x], [intAttr('axis', op.axis)]);
      case 'logSoftmax':
        return this.node('LogSoftmax', l, [x], [intAttr('axis', op.axis)]);
      case 'clip':
        return this.node('Clip', l, [x, this.scalar(`${l}/min`, op.min), this.scalar(`${l}/max`, op.max)]);
      case 'elu':
        return this.node('Elu', l, [x], [floatAttr('alpha', op.alpha)]);
      case 'leakyRelu':
        return this.node('LeakyRelu', l, [x], [floatAttr('alpha', op.alpha)]);
      case 'thresholdedRelu':
        return this.node('ThresholdedRelu', l, [x], [floatAttr('alpha', op.alpha)]);
      case 'prelu':
        return this.node('PRelu', l, [x, this.init(`${l}/alpha`, op.slope, op.shape)]);
      case 'swish':
        return this.node('Mul', l, [x, this.node('Sigmoid', l, [x])]);
      case 'mish':
        return this.node('Mul', l, [x, this.node('Tanh', l, [this.node('Softplus', l, [x])])]);
      case 'gelu': {
        // x·Φ(x) = 0.5·x·(1 + erf(x/√2)); opset 17 has no Gelu op (it arrived in opset 20).
        const erf = this.node('Erf', l, [this.node('Div', l, [x, this.scalar(`${l}/sqrt2`, Math.SQRT2)])]);
        const onePlus = this.node('Add', l, [erf, this.scalar(`${l}/one`, 1)]);
        return this.node('Mul', l, [this.node('Mul', l, [x, onePlus]), this.scalar(`${l}/half`, 0.5)]);
      }
      case 'gelu_new': {
        // tanh approximation, in tfjs' order: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
        const cube = this.node('Pow', l, [x, this.scalar(`${l}/three`, 3)]);
        const inner = this.node('Add', l, [x, this.node('Mul', l, [cube, this.scalar(`${l}/c`, 0.044715)])]);
        const th = this.node('Tanh', l, [
          this.node('Mul', l, [inner, this.scalar(`${l}/k`, Math.sqrt(2 / Math.PI))]),
        ]);
        const onePlus = this.node('Add', l, [th, this.scalar(`${l}/one`, 1)]);
        return this.node('Mul', l, [this.node('Mul', l, [x, onePlus]), this.scalar(`${l}/half`, 0.5)]);
      }
    }
  }
}
