import { z } from 'zod';
import { safeName, semver } from '../names/index.ts';

/**
 * The model manifest: everything a device needs to know about an artifact before it downloads a byte.
 * It is the signed payload of a release (see `signing/`), so every field here is covered by the signature.
 */

export const TENSOR_DTYPES = [
  'float32',
  'float16',
  'float64',
  'int8',
  'uint8',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'int64',
  'uint64',
  'bool',
  'string',
] as const;
export const tensorDtype = z.enum(TENSOR_DTYPES);
export type TensorDtype = z.infer<typeof tensorDtype>;

/** A dimension is either a fixed size or a symbolic name (e.g. `batch`) that accepts any size. */
export const tensorDim = z.union([z.number().int().nonnegative(), z.string().min(1).max(64)]);

export const tensorSpec = z.object({
  name: z.string().min(1).max(256),
  dtype: tensorDtype,
  shape: z.array(tensorDim).max(16),
});
export type TensorSpec = z.infer<typeof tensorSpec>;

export const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256');

export const optimizationSettings = z.object({
  /** What produced this artifact from the source model. */
  method: z.enum(['none', 'dynamic-int8', 'static-int8', 'fp16', 'pruned', 'distilled']),
  /** Free-form settings of that method (per-channel, calibration method, ...). */
  settings: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  /** SHA-256 of the model this artifact was derived from. */
  sourceSha256: sha256Hex.optional(),
});

export const evalMetrics = z.record(z.string(), z.number());

export const modelManifest = z.object({
  schemaVersion: z.literal(1),
  name: safeName,
  version: semver,
  format: z.literal('onnx'),
  sha256: sha256Hex,
  size: z.number().int().positive(),
  inputs: z.array(tensorSpec).min(1).max(64),
  outputs: z.array(tensorSpec).min(1).max(64),
  /** Hardware profiles this artifact is meant for (e.g. `cpu-x86`, `rpi4`, `wasm`). */
  targets: z.array(safeName).min(1).default(['cpu']),
  optimization: optimizationSettings.default({ method: 'none', settings: {} }),
  /** Evaluation figures measured when the artifact was produced (accuracy, p50Ms, ...). */
  metrics: evalMetrics.default({}),
  /** Labels of the output classes, when the model is a classifier. */
  labels: z.array(z.string().max(128)).max(100_000).optional(),
  createdAt: z.iso.datetime(),
});
export type ModelManifest = z.infer<typeof modelManifest>;
export type ModelManifestInput = z.input<typeof modelManifest>;
