import type * as tf from '@tensorflow/tfjs';
import { OutpostError } from '@outpost/protocol';
import { DataType, toLong } from '../onnx/index.ts';
import type { ModelProto, TensorShapeDimension, ValueInfoProto } from '../onnx/index.ts';
import { GraphEmitter } from './emit.ts';
import { foldAffineIntoDense } from './fold.ts';
import type { FoldRecord } from './fold.ts';
import { layerToOps } from './layers.ts';
import type { IrOp } from './layers.ts';

export interface TfjsExportOptions {
  /** Name of the graph input (default `input`). */
  inputName?: string;
  /** Name of the graph output (default `output`). */
  outputName?: string;
  /** Symbolic name of the batch dimension (default `batch`). */
  batchDim?: string;
  /** Graph name (default: the tfjs model's name). */
  graphName?: string;
  /** Free text stored as the model's doc_string. */
  docString?: string;
}

/** How each layer of the chain was exported. */
export interface TfjsExportReport {
  layers: { name: string; className: string; ops: string[] }[];
  /** BatchNormalization layers folded into the preceding Dense. */
  folded: FoldRecord[];
  /** Layers that are identity at inference (InputLayer, Dropout, noise layers) and left out. */
  removed: string[];
}

export const TFJS_EXPORT_OPSET = 17;
export const TFJS_EXPORT_IR_VERSION = 8;

function unsupported(message: string, details?: unknown): OutpostError {
  return new OutpostError('ONNX_UNSUPPORTED', message, details === undefined ? undefined : { details });
}

/**
 * The layers from the model input to its output, in order. Only a single chain is exportable: one
 * input, one output, and every layer on the path fed by exactly one tensor (no merges; a branch that
 * does not reach the output is simply not part of the model's computation).
 */
function chainOf(model: tf.LayersModel): { layers: tf.layers.Layer[]; shapes: (number | null)[][] } {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw unsupported(
      `model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; only one of each is supported`,
    );
  }
  const layers: tf.layers.Layer[] = [];
  const shapes: (number | null)[][] = [];
  let t = model.outputs[0] as tf.SymbolicTensor;
  const input = model.inputs[0] as tf.SymbolicTensor;
  for (let guard = 0; t !== input; guard++) {
    const layer = t.sourceLayer;
    const inputs = t.inputs;
    if (inputs.length !== 1 || !inputs[0]) {
      throw unsupported(
        `layer ${layer.name} (${layer.getClassName()}) takes ${inputs.length} inputs; only a single chain is supported`,
        { layer: layer.name, className: layer.getClassName() },
      );
    }
    if (guard > 100_000) throw unsupported('model graph does not lead back to its input');
    layers.push(layer);
    t = inputs[0];
    shapes.push([...t.shape]);
  }
  return { layers: layers.reverse(), shapes: shapes.reverse() };
}

function valueInfo(name: string, shape: (number | null)[], batchDim: string): ValueInfoProto {
  const dim: TensorShapeDimension[] = shape.map((d, i) =>
    i === 0
      ? { dim_param: batchDim }
      : d === null
        ? { dim_param: `${name}_d${i}` }
        : { dim_value: toLong(d) },
  );
  return { name, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim } } } };
}

/**
 * Exports a @tensorflow/tfjs LayersModel (a `tf.sequential` or a functional model that is a single
 * chain) to an ONNX ModelProto: opset 17, IR version 8, float32, symbolic batch dimension.
 *
 * Dense → Gemm (or MatMul + Add above rank 2); activations → their ONNX ops (relu6 and capped ReLU →
 * Clip, gelu → Erf form, swish/mish → compositions); Dropout and noise layers are removed;
 * BatchNormalization is folded into the preceding linear Dense, or emitted as Mul + Add when it
 * cannot be; Flatten/Reshape/Permute/Cropping2D → Flatten/Reshape/Transpose/Slice;
 * Average/MaxPooling2D → AveragePool/MaxPool. Any other layer class throws
 * ONNX_UNSUPPORTED naming it. Also returns a report of what each layer became.
 *
 * @example
 * const m = tf.sequential({ layers: [tf.layers.dense({ inputShape: [784], units: 10, activation: 'softmax' })] });
 * const { model } = exportLayersModelWithReport(m, { inputName: 'pixels', outputName: 'probs' });
 * await writeModelFile('mlp.onnx', model);
 */
export function exportLayersModelWithReport(
  model: tf.LayersModel,
  opts: TfjsExportOptions = {},
): { model: ModelProto; report: TfjsExportReport } {
  const inputName = opts.inputName ?? 'input';
  const outputName = opts.outputName ?? 'output';
  const batchDim = opts.batchDim ?? 'batch';
  if (!inputName || !outputName || inputName === outputName) {
    throw new OutpostError('VALIDATION_FAILED', `input and output names must be distinct and non-empty`);
  }
  const { layers, shapes } = chainOf(model);
  const input = model.inputs[0] as tf.SymbolicTensor;
  const output = model.outputs[0] as tf.SymbolicTensor;
  for (const t of [input, output]) {
    if (t.dtype !== 'float32')
      throw unsupported(`model ${t === input ? 'input' : 'output'} is ${t.dtype}; only float32`);
  }

  const report: TfjsExportReport = { layers: [], folded: [], removed: [] };
  const ops: IrOp[] = [];
  layers.forEach((layer, i) => {
    const layerOps = layerToOps(layer, shapes[i] ?? [null, null]);
    if (layerOps.length === 0) report.removed.push(layer.name);
    report.layers.push({
      name: layer.name,
      className: layer.getClassName(),
      ops: layerOps.map((o) => (o.kind === 'act' ? o.fn : o.kind)),
    });
    ops.push(...layerOps);
  });
  const { ops: foldedOps, folded } = foldAffineIntoDense(ops);
  report.folded = folded;

  const g = new GraphEmitter(inputName, input.shape.length);
  g.unique(outputName); // reserved: only the final rename below may produce it
  for (const op of foldedOps) g.emit(op);
  const last = g.nodes[g.nodes.length - 1];
  if (last && g.current === last.output?.[0]) {
    last.output = [outputName];
  } else {
    // Nothing computed (e.g. only Dropout): a graph output cannot also be its input.
    g.nodes.push({
      op_type: 'Identity',
      name: g.unique('Identity'),
      input: [g.current],
      output: [outputName],
    });
  }

  const proto: ModelProto = {
    ir_version: toLong(TFJS_EXPORT_IR_VERSION),
    opset_import: [{ domain: '', version: toLong(TFJS_EXPORT_OPSET) }],
    producer_name: 'outpost-tfjs-export',
    producer_version: '0.1.0',
    graph: {
      name: opts.graphName ?? model.name,
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo(inputName, input.shape, batchDim)],
      output: [valueInfo(outputName, output.shape, batchDim)],
    },
  };
  if (opts.docString) proto.doc_string = opts.docString;
  return { model: proto, report };
}

/**
 * {@link exportLayersModelWithReport} without the report.
 *
 * @example
 * const onnx = exportLayersModel(student, { inputName: 'input', outputName: 'logits' });
 * const bytes = encodeModel(onnx);
 */
export function exportLayersModel(model: tf.LayersModel, opts: TfjsExportOptions = {}): ModelProto {
  return exportLayersModelWithReport(model, opts).model;
}
