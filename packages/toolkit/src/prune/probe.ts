import { OutpostError } from '@outpost/protocol';
import { encodeModel } from '../onnx/index.ts';
import type { DecodedModel } from '../onnx/index.ts';
import { valueInfoToSpec } from '../inspect/index.ts';
import { ort } from '../runtime/index.ts';
import { syntheticFeeds } from '../bench/index.ts';
import type { FeedOptions } from '../bench/index.ts';

/**
 * Concrete shapes of every value of the main graph at batch 1, measured by running the model once in
 * onnxruntime-node with every node output exposed as a graph output. Measuring instead of re-implementing
 * ONNX shape inference means the spatial sizes behind a Flatten (and the MAC counts) are exactly what the
 * runtime computes, for any op ORT supports. Graph optimisations are off so that no value is fused away.
 *
 * A model that ORT cannot load or run on synthetic inputs is ONNX_UNSUPPORTED (pass `feeds` for models
 * whose inputs need particular sizes or values).
 *
 * @example
 * const shapes = await probeShapes(model);
 * shapes.get('/MaxPool_1_output_0'); // [1, 32, 5, 5]
 */
export async function probeShapes(
  model: DecodedModel,
  feeds: FeedOptions = {},
): Promise<Map<string, number[]>> {
  const g = model.graph;
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  const realInputs = (g.input ?? []).filter((vi) => !inits.has(vi.name));
  const declared = new Set((g.output ?? []).map((vi) => vi.name));
  const extra: { name: string }[] = [];
  for (const n of g.node ?? []) {
    for (const o of n.output ?? []) {
      if (o && !declared.has(o)) {
        declared.add(o);
        extra.push({ name: o }); // ORT infers the type of an untyped graph output
      }
    }
  }
  const bytes = encodeModel({ ...model, graph: { ...g, output: [...(g.output ?? []), ...extra] } });
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'disabled',
      logSeverityLevel: 3,
    });
  } catch (err) {
    throw new OutpostError(
      'ONNX_UNSUPPORTED',
      `ONNX Runtime cannot load the model: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  try {
    const inputs = syntheticFeeds(realInputs.map(valueInfoToSpec), 1, feeds);
    const out = await session.run(inputs);
    const shapes = new Map<string, number[]>();
    for (const [name, t] of Object.entries(inputs)) shapes.set(name, [...t.dims]);
    for (const [name, t] of Object.entries(out)) shapes.set(name, [...t.dims]);
    return shapes;
  } catch (err) {
    throw new OutpostError(
      'ONNX_UNSUPPORTED',
      `could not run the model on synthetic inputs to measure shapes: ${(err as Error).message}`,
      { cause: err },
    );
  } finally {
    await session.release();
  }
}
