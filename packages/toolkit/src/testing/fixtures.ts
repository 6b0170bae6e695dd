/**
 * Test-only paths to the shared reference assets. Runtime code never imports this file (the toolkit
 * must not depend on ../shared); only `*.test.ts` files and the benchmark scripts do.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const repoRoot = new URL('../../../../', import.meta.url).pathname;

export const SHARED_MODELS = process.env.OUTPOST_SHARED_MODELS ?? join(repoRoot, '..', 'shared', 'models');
export const MNIST_CNN = join(SHARED_MODELS, 'mnist_cnn.onnx');
export const MNIST_CNN_ORT_DYNAMIC_U8 = join(SHARED_MODELS, 'mnist_cnn.ort_dynamic_u8.onnx');
export const MNIST_EVAL_X = join(SHARED_MODELS, 'mnist-eval-x.u8');
export const MNIST_EVAL_Y = join(SHARED_MODELS, 'mnist-eval-y.u8');
export const MNIST_TRAIN_X = join(SHARED_MODELS, 'mnist-train-x.u8');
export const MNIST_TRAIN_Y = join(SHARED_MODELS, 'mnist-train-y.u8');

const vadDir = join(repoRoot, 'node_modules', '@ricky0123', 'vad-web', 'dist');

/** Every reference ONNX model: the shared ones and the Silero VAD models shipped by @ricky0123/vad-web. */
export function referenceModels(): string[] {
  const shared = readdirSync(SHARED_MODELS)
    .filter((f) => f.endsWith('.onnx'))
    .map((f) => join(SHARED_MODELS, f));
  return [...shared, ...sileroModels()];
}

/** The Silero VAD models (legacy, v5, v6). */
export function sileroModels(): string[] {
  if (!existsSync(vadDir)) return [];
  return readdirSync(vadDir)
    .filter((f) => f.endsWith('.onnx'))
    .map((f) => join(vadDir, f));
}
