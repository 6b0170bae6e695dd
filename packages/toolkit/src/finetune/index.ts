/**
 * Fine-tuning of ONNX classifiers in TensorFlow.js (WASM backend): recovers accuracy after pruning and
 * writes the trained weights back into the same ONNX graph.
 */
export { finetune } from './finetune.ts';
export type { FinetuneOptions, FinetuneEpoch, FinetuneResult } from './finetune.ts';
