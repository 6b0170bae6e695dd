/** Static int8 quantization (QDQ) with calibration: minmax, percentile or entropy activation ranges. */
export * from './types.ts';
export { quantizeStatic } from './static.ts';
export {
  batchFeeds,
  collectCalibration,
  feedsFromSamples,
  modelInputs,
  probeTensorTypes,
  rangeOf,
  validateCalibration,
} from './calibrate.ts';
export type { Calibration, CalibrateOptions, Collector } from './calibrate.ts';
export { Histogram, RangeStats, entropyRange, percentileRange } from './histogram.ts';
export { OP_CLASSES } from './qdq.ts';
export type { OpClass } from './qdq.ts';
