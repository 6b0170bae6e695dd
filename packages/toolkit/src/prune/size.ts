import { gzipSync } from 'node:zlib';
import { encodeModel } from '../onnx/index.ts';
import type { ModelProto } from '../onnx/index.ts';

export interface ModelSizes {
  /** Encoded ONNX file size. */
  bytes: number;
  /** Size after gzip -9: what zeros from magnitude pruning actually buy on the wire and on disk. */
  gzipBytes: number;
}

/**
 * File size and gzip size of a model (bytes or a model object). Unstructured sparsity leaves `bytes`
 * unchanged (dense float32 storage) but shrinks `gzipBytes`, since runs of zero bytes compress well
 * while random float mantissas barely compress at all.
 *
 * @example
 * const { bytes, gzipBytes } = modelSizes(pruned.model);
 */
export function modelSizes(model: ModelProto | Uint8Array): ModelSizes {
  const bytes = model instanceof Uint8Array ? model : encodeModel(model);
  return { bytes: bytes.length, gzipBytes: gzipSync(bytes, { level: 9 }).length };
}
