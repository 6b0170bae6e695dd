import { DataType, attrInt, tensorDims, tensorToNumbers } from '../onnx/index.ts';
import type { NodeProto, TensorProto } from '../onnx/index.ts';
import { elementCount, nodeLabel, writableFloatInitializer } from './graph.ts';
import type { GraphIndex } from './graph.ts';

/**
 * Planning of one structured filter removal: starting from a Conv's output, follow every value whose
 * axis 1 still means "that conv's output channels" through the ops that keep the channel layout
 * (activations, pooling, BatchNormalization, scalar arithmetic), through a Flatten/Reshape into a
 * Gemm/MatMul (where a channel becomes a block of H×W consecutive features), up to the next Conv(s)
 * whose input channels shrink. Any op whose meaning would change — a merge of two branches (residual
 * Add, Concat), a grouped/depthwise consumer, a reshape to another layout, a graph output — stops the
 * plan with a reason, and then nothing is changed. The plan is pure: it only lists edits.
 */

/** Keep `keep` (indices of channels) along `axis`; each channel spans `block` consecutive indices there. */
export interface SliceEdit {
  tensor: string;
  axis: number;
  block: number;
  keep: number[];
}

/** Sets entry `index` of an int64 shape initializer (a Reshape that spells out the flattened size). */
export interface ReshapeEdit {
  tensor: string;
  index: number;
  value: number;
}

/** A value whose dim 1 changes from `from` to `to`: its value_info must follow. */
export interface ShapeEdit {
  value: string;
  from: number;
  to: number;
}

export interface FilterPlan {
  slices: SliceEdit[];
  reshapes: ReshapeEdit[];
  shapes: ShapeEdit[];
  /** Downstream nodes whose weights or shapes the removal rewrites. */
  followed: string[];
}

type Tag = { kind: 'channels' } | { kind: 'flat'; block: number };

/** Elementwise ops without per-channel parameters: channel c in, channel c out. */
const ELEMENTWISE = new Set([
  'Relu',
  'LeakyRelu',
  'Sigmoid',
  'Tanh',
  'Elu',
  'Selu',
  'Celu',
  'Softplus',
  'Softsign',
  'HardSigmoid',
  'HardSwish',
  'Mish',
  'Gelu',
  'ThresholdedRelu',
  'Shrink',
  'Abs',
  'Neg',
  'Identity',
  'Erf',
  'Sqrt',
  'Exp',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'Reciprocal',
  'Cast',
]);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean']);
const POOLS = new Set([
  'MaxPool',
  'AveragePool',
  'LpPool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'GlobalLpPool',
]);

export interface PlanContext {
  ix: GraphIndex;
  /** Current version of an initializer (earlier removals may have resized it). */
  tensor(name: string): TensorProto;
  /** Batch-1 shapes measured on the original model (spatial sizes do not change when channels go). */
  shapes: Map<string, number[]>;
}

/**
 * Plans the removal of all but `keep` of the `oldM` output channels of `conv`, or returns why it cannot
 * be done safely.
 *
 * @example
 * const plan = planFilterRemoval(ctx, conv, [0, 2, 5], 8);
 * if (typeof plan === 'string') skipped.push({ node: conv.name, op: 'Conv', reason: plan });
 */
export function planFilterRemoval(
  ctx: PlanContext,
  conv: NodeProto,
  keep: number[],
  oldM: number,
): FilterPlan | string {
  const { ix } = ctx;
  const newM = keep.length;
  const plan: FilterPlan = { slices: [], reshapes: [], shapes: [], followed: [] };
  const w = writableFloatInitializer(ix, conv.input?.[1]);
  if (typeof w === 'string') return `weight: ${w}`;
  plan.slices.push({ tensor: w.name ?? '', axis: 0, block: 1, keep });
  const biasName = conv.input?.[2];
  if (biasName) {
    const b = writableFloatInitializer(ix, biasName);
    if (typeof b === 'string') return `bias: ${b}`;
    plan.slices.push({ tensor: biasName, axis: 0, block: 1, keep });
  }

  const out = conv.output?.[0];
  if (!out) return 'the conv has no output';
  const queue: { value: string; tag: Tag }[] = [{ value: out, tag: { kind: 'channels' } }];
  const seen = new Set<string>();
  const followedNodes = new Set<NodeProto>();
  const unused = (name: string | undefined) => !name || (ix.readers.get(name) ?? 0) === 0;
  /** A constant operand that broadcasts the same value to every channel (a scalar). */
  const scalarConst = (name: string | undefined) => {
    const t = name ? ix.initializers.get(name) : undefined;
    return !!t && elementCount(tensorDims(t)) <= 1;
  };

  while (queue.length > 0) {
    const { value, tag } = queue.shift() as { value: string; tag: Tag };
    if (seen.has(value)) continue;
    seen.add(value);
    const width = tag.kind === 'channels' ? 1 : tag.block;
    plan.shapes.push({ value, from: oldM * width, to: newM * width });
    if (ix.graphOutputs.has(value))
      return `${value} is a graph output, its channel count is part of the interface`;
    if (ix.subgraphReads.has(value)) return `${value} is read inside a subgraph`;
    const handled = new Set<NodeProto>();
    for (const { node, slot } of ix.consumers.get(value) ?? []) {
      if (handled.has(node)) continue;
      handled.add(node);
      const op = node.op_type ?? '';
      const label = `${nodeLabel(node)} (${op})`;
      if (node.domain && node.domain !== 'ai.onnx') return `cannot follow ${label} of domain ${node.domain}`;
      const next = (name: string | undefined, t: Tag = tag) => {
        if (name) queue.push({ value: name, tag: t });
      };
      const extraOutputsUnused = () => (node.output ?? []).slice(1).every(unused);

      if (ELEMENTWISE.has(op) || op === 'Dropout' || op === 'Clip') {
        if (slot !== 0) return `${value} feeds a parameter of ${label}`;
        if (op === 'Clip' && !(node.input ?? []).slice(1).every((i) => !i || scalarConst(i))) {
          return `${label} has bounds that are not scalar constants`;
        }
        if (!extraOutputsUnused()) return `${label} has a second output in use`;
        next(node.output?.[0]);
        continue;
      }
      if (BINARY.has(op)) {
        for (const other of node.input ?? []) {
          if (other === value) continue;
          if (scalarConst(other)) continue;
          return ix.initializers.has(other)
            ? `${label} applies a per-element constant to the channels`
            : `${label} merges two runtime tensors (a residual or branch merge)`;
        }
        next(node.output?.[0]);
        continue;
      }
      if (POOLS.has(op)) {
        if (tag.kind !== 'channels') return `${label} pools a flattened tensor`;
        if (!extraOutputsUnused()) return `${label} has its indices output in use`;
        next(node.output?.[0]);
        continue;
      }
      if (op === 'BatchNormalization' || op === 'InstanceNormalization') {
        if (slot !== 0) return `${value} feeds a parameter of ${label}`;
        if (op === 'BatchNormalization' && attrInt(node, 'training_mode', 0) !== 0)
          return `${label} runs in training mode`;
        if (!extraOutputsUnused()) return `${label} has running-statistics outputs in use`;
        if (op === 'InstanceNormalization' && tag.kind !== 'channels')
          return `${label} on a flattened tensor`;
        for (const p of (node.input ?? []).slice(1)) {
          const t = writableFloatInitializer(ix, p);
          if (typeof t === 'string') return `${label} parameter ${t}`;
          const dims = tensorDims(ctx.tensor(p));
          if (dims.length !== 1 || dims[0] !== oldM * width)
            return `${label} parameter ${p} has dims [${dims}]`;
          plan.slices.push({ tensor: p, axis: 0, block: width, keep });
        }
        followedNodes.add(node);
        next(node.output?.[0]);
        continue;
      }
      if (op === 'Conv') {
        if (slot !== 0) return `${value} feeds the weight or bias of ${label}`;
        if (tag.kind !== 'channels') return `${label} reads a flattened tensor`;
        const group = attrInt(node, 'group', 1);
        if (group !== 1) return `grouped/depthwise consumer ${label} (group=${group})`;
        const t = writableFloatInitializer(ix, node.input?.[1]);
        if (typeof t === 'string') return `consumer ${label} weight: ${t}`;
        const dims = tensorDims(ctx.tensor(t.name ?? ''));
        if (dims[1] !== oldM)
          return `consumer ${label} weight has ${dims[1]} input channels, expected ${oldM}`;
        plan.slices.push({ tensor: t.name ?? '', axis: 1, block: 1, keep });
        followedNodes.add(node);
        continue;
      }
      if (op === 'Flatten' || op === 'Reshape') {
        if (slot !== 0) return `${value} is the shape input of ${label}`;
        if (tag.kind !== 'channels') return `${label} of an already flattened tensor`;
        const shape = ctx.shapes.get(value);
        if (!shape || shape.length < 2 || shape[1] !== oldM) {
          return `the shape of ${value} is unknown or does not have ${oldM} channels on axis 1`;
        }
        const block = elementCount(shape.slice(2));
        if (op === 'Flatten') {
          const axis = attrInt(node, 'axis', 1);
          if (axis !== 1 && axis !== 1 - shape.length) return `${label} flattens from axis ${axis}, not 1`;
        } else {
          const why = planReshape(ctx, node, oldM * block, newM * block, plan);
          if (why) return why;
        }
        followedNodes.add(node);
        next(node.output?.[0], { kind: 'flat', block });
        continue;
      }
      if (op === 'Gemm' || op === 'MatMul') {
        if (tag.kind !== 'flat') return `${label} reads the conv output without a flatten`;
        if (slot !== 0) return `${value} is the right-hand operand of ${label}`;
        if (op === 'Gemm' && attrInt(node, 'transA', 0) !== 0) return `${label} has transA=1`;
        const t = writableFloatInitializer(ix, node.input?.[1]);
        if (typeof t === 'string') return `consumer ${label} weight: ${t}`;
        const dims = tensorDims(ctx.tensor(t.name ?? ''));
        const axis = op === 'Gemm' && attrInt(node, 'transB', 0) === 1 ? 1 : 0;
        if (dims.length !== 2 || dims[axis] !== oldM * tag.block) {
          return `consumer ${label} weight has dims [${dims}], expected ${oldM * tag.block} on axis ${axis}`;
        }
        plan.slices.push({ tensor: t.name ?? '', axis, block: tag.block, keep });
        followedNodes.add(node);
        continue;
      }
      return `cannot follow the channels through ${label}`;
    }
  }
  plan.followed = [...followedNodes].map(nodeLabel);
  return plan;
}

/**
 * A Reshape that flattens [N, C, H, W] to [N, C·H·W]: the shape must be a constant int64 pair whose
 * second entry is -1 (nothing to rewrite) or the old flattened size (rewritten to the new one).
 */
function planReshape(
  ctx: PlanContext,
  node: NodeProto,
  oldSize: number,
  newSize: number,
  plan: FilterPlan,
): string | undefined {
  const label = `${nodeLabel(node)} (Reshape)`;
  const name = node.input?.[1];
  const t = name ? ctx.ix.initializers.get(name) : undefined;
  if (!name || !t) return `${label} has a shape computed at run time (an unknown layout)`;
  if ((t.data_type ?? 0) !== DataType.INT64) return `${label} shape is not int64`;
  const s = tensorToNumbers(t);
  if (s.length !== 2 || s[0] === undefined || s[1] === undefined || s[0] < -1) {
    return `${label} reshapes to [${s}], a layout it cannot follow`;
  }
  if (s[1] === -1 && s[0] !== -1) return undefined;
  if (s[1] !== oldSize) return `${label} reshapes to [${s}], a layout it cannot follow`;
  if ((ctx.ix.readers.get(name) ?? 0) !== 1 || ctx.ix.graphInputs.has(name))
    return `${label} shape ${name} is shared`;
  plan.reshapes.push({ tensor: name, index: 1, value: newSize });
  return undefined;
}
