/** Accuracy evaluation of classifiers with onnxruntime-node, and output comparison between variants. */
export * from './evaluate.ts';
