import type { GraphProto, NodeProto, TensorProto } from '../onnx/index.ts';
import { attrTensor, subgraphsOf } from '../onnx/index.ts';

/**
 * Graph bookkeeping for rewrites: lexical scopes (a subgraph sees its parents' values), constant
 * lookup through initializers and Constant nodes, model-wide unique names and reference counting.
 */

export interface Scope {
  graph: GraphProto;
  parent: Scope | undefined;
  initializers: Map<string, TensorProto>;
  /** Outputs of Constant nodes with a `value` tensor. */
  constants: Map<string, TensorProto>;
  /** Names defined in this graph by something that is not a constant (inputs, other nodes' outputs). */
  dynamic: Set<string>;
  /** Initializers the rewrite adds to this graph (quantized weights, reshaped biases, ...). */
  added: TensorProto[];
}

export function makeScope(graph: GraphProto, parent: Scope | undefined): Scope {
  const initializers = new Map<string, TensorProto>();
  for (const t of graph.initializer ?? []) if (t.name) initializers.set(t.name, t);
  const constants = new Map<string, TensorProto>();
  const dynamic = new Set<string>();
  for (const vi of graph.input ?? []) if (vi.name) dynamic.add(vi.name);
  for (const n of graph.node ?? []) {
    const value = n.op_type === 'Constant' && !n.domain ? safeConstValue(n) : undefined;
    for (const o of n.output ?? []) {
      if (!o) continue;
      if (value) constants.set(o, value);
      else dynamic.add(o);
    }
  }
  return { graph, parent, initializers, constants, dynamic, added: [] };
}

function safeConstValue(n: NodeProto): TensorProto | undefined {
  try {
    return attrTensor(n, 'value');
  } catch {
    return undefined;
  }
}

export interface ConstantRef {
  tensor: TensorProto;
  /** Scope that defines the value: derived tensors are added there so every user can share them. */
  scope: Scope;
  kind: 'initializer' | 'constant';
}

/**
 * Resolves `name` to a constant tensor visible from `scope`, or explains why it is not one.
 * An initializer that is also a graph input can be overridden at run time (IR ≥ 4), so it is not a
 * constant; before IR 4 every initializer was listed as an input and is treated as constant.
 */
export function lookupConstant(scope: Scope, name: string, irVersion: number): ConstantRef | string {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    const init = s.initializers.get(name);
    if (init) {
      const isInput = (s.graph.input ?? []).some((vi) => vi.name === name);
      if (isInput && irVersion >= 4)
        return `${name} is an initializer that is also a graph input (overridable)`;
      return { tensor: init, scope: s, kind: 'initializer' };
    }
    const c = s.constants.get(name);
    if (c) return { tensor: c, scope: s, kind: 'constant' };
    if (s.dynamic.has(name)) return `${name} is computed at run time, not a constant`;
  }
  return `${name} is not defined in any enclosing graph`;
}

/** Every value and node name anywhere in the model, so new names never collide (subgraphs included). */
export function collectNames(graph: GraphProto, into: Set<string>): Set<string> {
  for (const t of graph.initializer ?? []) if (t.name) into.add(t.name);
  for (const vi of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.value_info ?? [])]) {
    if (vi.name) into.add(vi.name);
  }
  for (const n of graph.node ?? []) {
    if (n.name) into.add(n.name);
    for (const o of n.output ?? []) if (o) into.add(o);
    for (const i of n.input ?? []) if (i) into.add(i);
    for (const g of subgraphsOf(n)) collectNames(g, into);
  }
  return into;
}

/** Returns `base` or `base_1`, `base_2`, … — whichever is unused — and reserves it. */
export function uniqueName(names: Set<string>, base: string): string {
  let name = base;
  for (let i = 1; names.has(name); i++) name = `${base}_${i}`;
  names.add(name);
  return name;
}

/** Names read anywhere in the model: node inputs and graph outputs of every graph. */
export function collectReferences(graph: GraphProto, into: Set<string>): Set<string> {
  for (const vi of graph.output ?? []) if (vi.name) into.add(vi.name);
  for (const n of graph.node ?? []) {
    for (const i of n.input ?? []) if (i) into.add(i);
    for (const g of subgraphsOf(n)) collectReferences(g, into);
  }
  return into;
}

/** Counts nodes in a graph and all its subgraphs. */
export function countNodes(graph: GraphProto): number {
  let n = 0;
  for (const node of graph.node ?? []) {
    n++;
    for (const g of subgraphsOf(node)) n += countNodes(g);
  }
  return n;
}

/**
 * Drops initializers and Constant nodes named in `candidates` that nothing references any more
 * (weights replaced by their quantized copies), in every graph, returning rewritten graphs.
 */
export function pruneUnused(graph: GraphProto, candidates: Set<string>, referenced: Set<string>): GraphProto {
  const dead = (name: string | null | undefined) => !!name && candidates.has(name) && !referenced.has(name);
  const node = (graph.node ?? [])
    .filter((n) => !(n.op_type === 'Constant' && !n.domain && (n.output ?? []).every((o) => dead(o))))
    .map((n) => {
      if (subgraphsOf(n).length === 0) return n;
      return {
        ...n,
        attribute: (n.attribute ?? []).map((a) => {
          if (a.g) return { ...a, g: pruneUnused(a.g, candidates, referenced) };
          if (a.graphs?.length)
            return { ...a, graphs: a.graphs.map((g) => pruneUnused(g, candidates, referenced)) };
          return a;
        }),
      };
    });
  const out: GraphProto = { ...graph, node };
  if (graph.initializer) out.initializer = graph.initializer.filter((t) => !dead(t.name));
  if (graph.input) out.input = graph.input.filter((vi) => !dead(vi.name));
  return out;
}
