import { OutpostError } from '@outpost/protocol';
import { DataType, dataTypeName, int64ToNumber, subgraphsOf, tensorDims, toLong } from '../onnx/index.ts';
import type { DecodedModel, GraphProto, ModelProto, NodeProto, TensorProto } from '../onnx/index.ts';

/**
 * Read-only index of a model's main graph for the pruning rewrites: who produces and who reads each
 * value, which names are initializers, and how many readers every name has anywhere in the model
 * (subgraphs included), so that a rewrite never changes a tensor that something else also reads.
 */
export interface GraphIndex {
  graph: GraphProto;
  irVersion: number;
  initializers: Map<string, TensorProto>;
  /** Value name → the main-graph nodes reading it, with the input slot (a node reading it twice is listed twice). */
  consumers: Map<string, { node: NodeProto; slot: number }[]>;
  graphInputs: Set<string>;
  graphOutputs: Set<string>;
  /** Names read by nodes inside If/Loop/Scan bodies (implicit inputs of the subgraph). */
  subgraphReads: Set<string>;
  /** Readers of each name across the whole model: node inputs (any graph) plus graph outputs. */
  readers: Map<string, number>;
}

/** The model's graph, or ONNX_PARSE_FAILED for an object that has none. */
export function requireGraph(model: ModelProto): DecodedModel {
  if (!model || typeof model !== 'object' || !model.graph) {
    throw new OutpostError('ONNX_PARSE_FAILED', 'not an ONNX model: it has no graph');
  }
  return model as DecodedModel;
}

function countReads(graph: GraphProto, readers: Map<string, number>, sub: Set<string> | undefined): void {
  const bump = (name: string | null | undefined) => {
    if (!name) return;
    readers.set(name, (readers.get(name) ?? 0) + 1);
    sub?.add(name);
  };
  for (const vi of graph.output ?? []) bump(vi.name);
  for (const n of graph.node ?? []) {
    for (const i of n.input ?? []) bump(i);
    for (const g of subgraphsOf(n)) countReads(g, readers, sub ?? new Set());
  }
}

/**
 * Builds the {@link GraphIndex} of a model's main graph.
 *
 * @example
 * const ix = indexGraph(model);
 * ix.consumers.get('/Relu_output_0'); // [{ node: MaxPool, slot: 0 }]
 */
export function indexGraph(model: ModelProto): GraphIndex {
  const m = requireGraph(model);
  const graph = m.graph;
  const initializers = new Map<string, TensorProto>();
  for (const t of graph.initializer ?? []) if (t.name) initializers.set(t.name, t);
  const consumers = new Map<string, { node: NodeProto; slot: number }[]>();
  const readers = new Map<string, number>();
  const subgraphReads = new Set<string>();
  for (const vi of graph.output ?? []) if (vi.name) readers.set(vi.name, (readers.get(vi.name) ?? 0) + 1);
  for (const n of graph.node ?? []) {
    (n.input ?? []).forEach((name, slot) => {
      if (!name) return;
      readers.set(name, (readers.get(name) ?? 0) + 1);
      const list = consumers.get(name) ?? [];
      list.push({ node: n, slot });
      consumers.set(name, list);
    });
    for (const g of subgraphsOf(n)) {
      const inner = new Set<string>();
      countReads(g, readers, inner);
      for (const name of inner) subgraphReads.add(name);
    }
  }
  return {
    graph,
    irVersion: int64ToNumber(m.ir_version),
    initializers,
    consumers,
    graphInputs: new Set((graph.input ?? []).map((vi) => vi.name ?? '')),
    graphOutputs: new Set((graph.output ?? []).map((vi) => vi.name ?? '')),
    subgraphReads,
    readers,
  };
}

/** A node's display name: its name, else its first output, else its op type. */
export function nodeLabel(n: NodeProto): string {
  return n.name || n.output?.[0] || n.op_type || '(node)';
}

/**
 * Resolves `name` to a float32 initializer that may be rewritten, or says why not: it must be an
 * initializer of the main graph, not overridable as a graph input (IR ≥ 4), stored as FLOAT, and —
 * unless `allowShared` — read by exactly one node input in the whole model.
 */
export function writableFloatInitializer(
  ix: GraphIndex,
  name: string | undefined,
  allowShared = false,
): TensorProto | string {
  if (!name) return 'the input is missing';
  const t = ix.initializers.get(name);
  if (!t) return `${name} is not a constant initializer (computed at run time or a Constant node)`;
  if (ix.graphInputs.has(name) && ix.irVersion >= 4) {
    return `${name} is also a graph input, so it can be overridden at run time`;
  }
  if ((t.data_type ?? 0) !== DataType.FLOAT) {
    return `${name} is ${dataTypeName(t.data_type ?? 0)}, not FLOAT`;
  }
  const reads = ix.readers.get(name) ?? 0;
  if (!allowShared && reads !== 1) return `${name} is shared by ${reads} readers`;
  return t;
}

/** Number of elements of a tensor described by dims. */
export const elementCount = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** Number of parameters of a model: elements of every floating-point initializer of the main graph. */
export function countParameters(graph: GraphProto): number {
  const floats = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);
  let n = 0;
  for (const t of graph.initializer ?? []) if (floats.has(t.data_type ?? 0)) n += elementCount(tensorDims(t));
  return n;
}

/** Returns a copy of `model` whose main-graph initializers named in `replaced` are swapped. */
export function withInitializers(model: DecodedModel, replaced: Map<string, TensorProto>): DecodedModel {
  return {
    ...model,
    graph: {
      ...model.graph,
      initializer: (model.graph.initializer ?? []).map((t) => replaced.get(t.name ?? '') ?? t),
    },
  };
}

/**
 * A FLOAT initializer with new values (and dims), keeping its name and other fields; stored as raw_data.
 *
 * @example
 * const t2 = replaceFloatData(t, pruned, [16, 8, 3, 3]);
 */
export function replaceFloatData(t: TensorProto, values: Float32Array, dims: number[]): TensorProto {
  if (elementCount(dims) !== values.length) {
    throw new OutpostError('INTERNAL', `tensor ${t.name}: ${values.length} values for [${dims.join(',')}]`);
  }
  const out: TensorProto = { ...t, data_type: DataType.FLOAT, dims: dims.map((d) => toLong(d)) };
  delete out.float_data;
  out.raw_data = new Uint8Array(
    values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength),
  );
  return out;
}

/** Checks a progress callback / option object is callable when present. */
export function progressOf(fn: unknown): ((done: number, total: number, label?: string) => void) | undefined {
  if (fn === undefined) return undefined;
  if (typeof fn !== 'function') throw new OutpostError('VALIDATION_FAILED', 'onProgress must be a function');
  return fn as (done: number, total: number, label?: string) => void;
}
