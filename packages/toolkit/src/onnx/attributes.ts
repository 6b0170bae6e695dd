import { OutpostError } from '@outpost/protocol';
import { AttributeType } from './types.ts';
import type { AttributeProto, GraphProto, NodeProto, TensorProto } from './types.ts';
import { int64ToNumber, toLong } from './tensor.ts';

/**
 * Node attribute helpers. Readers take a default returned when the attribute is absent and throw
 * ONNX_PARSE_FAILED when it is present with another type, so a malformed node never reads as a default.
 */

/**
 * The attribute `name` of `node`, if any.
 *
 * @example
 * const pads = getAttribute(node, 'pads')?.ints;
 */
export function getAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

function typed(node: NodeProto, name: string, want: number): AttributeProto | undefined {
  const a = getAttribute(node, name);
  if (!a) return undefined;
  // Very old exporters left `type` unset; accept those and trust the value field that is present.
  if (a.type && a.type !== want) {
    throw new OutpostError(
      'ONNX_PARSE_FAILED',
      `node ${node.name || node.op_type}: attribute ${name} has type ${a.type}, expected ${want}`,
    );
  }
  return a;
}

/**
 * Integer attribute.
 *
 * @example
 * const transB = attrInt(gemm, 'transB', 0);
 */
export function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = typed(node, name, AttributeType.INT);
  return a ? int64ToNumber(a.i) : fallback;
}

/** Float attribute. @example const alpha = attrFloat(gemm, 'alpha', 1); */
export function attrFloat(node: NodeProto, name: string, fallback: number): number {
  const a = typed(node, name, AttributeType.FLOAT);
  return a ? (a.f ?? 0) : fallback;
}

/** String attribute (UTF-8). @example const pad = attrString(conv, 'auto_pad', 'NOTSET'); */
export function attrString(node: NodeProto, name: string, fallback: string): string {
  const a = typed(node, name, AttributeType.STRING);
  return a?.s ? Buffer.from(a.s).toString('utf8') : fallback;
}

/** List-of-integers attribute. @example const pads = attrInts(conv, 'pads', [0, 0, 0, 0]); */
export function attrInts(node: NodeProto, name: string, fallback: number[]): number[] {
  const a = typed(node, name, AttributeType.INTS);
  return a ? (a.ints ?? []).map(int64ToNumber) : fallback;
}

/** List-of-floats attribute. @example const scales = attrFloats(node, 'scales', []); */
export function attrFloats(node: NodeProto, name: string, fallback: number[]): number[] {
  const a = typed(node, name, AttributeType.FLOATS);
  return a ? [...(a.floats ?? [])] : fallback;
}

/** Tensor attribute (e.g. a Constant's `value`). @example const t = attrTensor(constNode, 'value'); */
export function attrTensor(node: NodeProto, name: string): TensorProto | undefined {
  return typed(node, name, AttributeType.TENSOR)?.t ?? undefined;
}

/**
 * Every subgraph held by a node's attributes (If branches, Loop/Scan bodies).
 *
 * @example
 * for (const g of subgraphsOf(ifNode)) visit(g);
 */
export function subgraphsOf(node: NodeProto): GraphProto[] {
  const out: GraphProto[] = [];
  for (const a of node.attribute ?? []) {
    if (a.g) out.push(a.g);
    for (const g of a.graphs ?? []) out.push(g);
  }
  return out;
}

/** Builds an INT attribute. @example node.attribute.push(intAttr('to', 1)); */
export function intAttr(name: string, value: number): AttributeProto {
  return { name, type: AttributeType.INT, i: toLong(value) };
}

/**
 * Builds a FLOAT attribute.
 *
 * @example
 * gemm.attribute.push(floatAttr('alpha', 0.5));
 */
export function floatAttr(name: string, value: number): AttributeProto {
  return { name, type: AttributeType.FLOAT, f: value };
}

/**
 * Builds a STRING attribute.
 *
 * @example
 * conv.attribute.push(stringAttr('auto_pad', 'SAME_UPPER'));
 */
export function stringAttr(name: string, value: string): AttributeProto {
  return { name, type: AttributeType.STRING, s: Buffer.from(value, 'utf8') };
}

/**
 * Builds an INTS attribute.
 *
 * @example
 * transpose.attribute.push(intsAttr('perm', [1, 0]));
 */
export function intsAttr(name: string, values: number[]): AttributeProto {
  return { name, type: AttributeType.INTS, ints: values.map((v) => toLong(v)) };
}

/**
 * Builds a FLOATS attribute.
 *
 * @example
 * resize.attribute.push(floatsAttr('scales', [1, 1, 2, 2]));
 */
export function floatsAttr(name: string, values: number[]): AttributeProto {
  return { name, type: AttributeType.FLOATS, floats: values };
}

/**
 * Builds a TENSOR attribute.
 *
 * @example
 * constant.attribute.push(tensorAttr('value', makeTensor('v', new Float32Array([1]), [])));
 */
export function tensorAttr(name: string, value: TensorProto): AttributeProto {
  return { name, type: AttributeType.TENSOR, t: value };
}
