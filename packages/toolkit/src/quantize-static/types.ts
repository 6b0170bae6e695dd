import type { ModelProto } from '../onnx/index.ts';

/** Typed arrays a calibration tensor may hold (float32 for activations; integers for ids, sample rates, ...). */
export type CalibrationArray = Float32Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;

/** One input tensor of one calibration run. */
export interface CalibrationTensor {
  data: CalibrationArray;
  /** Shape; its product must equal `data.length`. */
  dims: number[];
}

/** The inputs of one calibration run, by graph input name (e.g. `{ input: { data, dims: [1, 1, 28, 28] } }`). */
export type CalibrationFeed = Record<string, CalibrationTensor>;

/**
 * The calibration set: representative inputs, one feed per run (a feed may itself hold a batch). Feeds
 * of the same shape are concatenated into larger batches when the model's batch dimension is symbolic.
 */
export type CalibrationData = readonly CalibrationFeed[];

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';
export type QuantType = 'int8' | 'uint8';

export interface QuantizeStaticOptions {
  /** Activation integer type (default 'int8'; `static.ts` explains the defaults with measurements). */
  activationType?: QuantType;
  /** Weight integer type (default 'int8'). */
  weightType?: QuantType;
  /** One weight scale per output channel instead of one per tensor (default false, as ORT). */
  perChannel?: boolean;
  /** Symmetric activation ranges (zero point at the middle; default false, as ORT). */
  symmetricActivations?: boolean;
  /** Symmetric weight ranges (default: true for int8, and for uint8 per-channel; false for uint8 per-tensor). */
  symmetricWeights?: boolean;
  /**
   * 7-bit weights (int8 in [-64, 64], uint8 in [0, 127]): keeps u8×s8 products from saturating the 16-bit
   * pairwise sums of AVX2's VPMADDUBSW on x86 CPUs without VNNI (ORT's `reduce_range`; default true).
   */
  reduceRange?: boolean;
  /** How activation ranges are chosen from the calibration data (default 'minmax'). */
  calibrationMethod?: CalibrationMethod;
  /** Percentile for 'percentile' calibration (default 99.999, as ORT). */
  percentile?: number;
  /** Histogram bins for 'percentile' / 'entropy' (default 2048). */
  histogramBins?: number;
  /** Quantized levels the entropy search compares against (default 128). */
  quantizedBins?: number;
  /** Samples per calibration run when feeds can be batched (default 32). */
  calibrationBatchSize?: number;
  /** Node names to leave in float. */
  nodesToExclude?: string[];
  /** Called during calibration (one step per batch) and rewriting (one step per node). */
  onProgress?: (done: number, total: number, label?: string) => void;
}

export interface StaticNodeRef {
  /** Node name, or its first output when unnamed. */
  node: string;
  op: string;
  /** How the node was handled when not simply wrapped in Q/DQ (e.g. a Relu folded into its producer). */
  note?: string;
}

export interface ActivationRange {
  /** Range the quantization parameters were computed from (after the calibration method). */
  min: number;
  max: number;
  /** Raw min/max over the calibration set. */
  observedMin: number;
  observedMax: number;
  scale: number;
  zeroPoint: number;
  /** Set when the tensor reuses another tensor's parameters (MaxPool, Reshape, ... outputs). */
  sharedWith?: string;
}

export interface QuantizeStaticReport {
  quantized: StaticNodeRef[];
  skipped: (StaticNodeRef & { reason: string })[];
  /** Quantization parameters of every activation tensor that got a QuantizeLinear/DequantizeLinear pair. */
  ranges: Record<string, ActivationRange>;
  sizeBefore: number;
  sizeAfter: number;
  /** Flat settings, suitable for a release manifest's `optimization.settings`. */
  settings: Record<string, string | number | boolean>;
}

export interface QuantizeStaticResult {
  model: ModelProto;
  report: QuantizeStaticReport;
}
