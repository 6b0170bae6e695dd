import { convertFp16 } from '../fp16/index.ts';
import { pruneFilters, pruneMagnitude } from '../prune/index.ts';
import { feedsFromSamples, quantizeStatic } from '../quantize-static/index.ts';
import type { QuantizeStaticOptions } from '../quantize-static/index.ts';
import type { ModelProto } from '../onnx/index.ts';
import { quantizeDynamic } from '../quantize/index.ts';
import { registerCandidate } from './candidates.ts';
import type { CandidateContext, SettingValue } from './candidates.ts';

/**
 * Candidates built by the toolkit's other optimisation passes: static QDQ int8 with several calibration
 * methods, float16, and filter pruning followed by quantization. Pruning here is WITHOUT fine-tuning, so it often
 * costs more accuracy than the budget allows; the autotuner measures that rather than assuming.
 */

async function staticQuant(model: ModelProto, ctx: CandidateContext, opts: QuantizeStaticOptions) {
  const feeds = feedsFromSamples(ctx.layout.name, ctx.calib.x, ctx.layout.perSample, ctx.calib.n);
  const { model: q, report } = await quantizeStatic(model, feeds, opts);
  const summary: Record<string, SettingValue> = {
    quantizedNodes: report.quantized.length,
    skippedNodes: report.skipped.length,
    calibrationSamples: ctx.calib.n,
  };
  return { model: q, summary };
}

const STATIC: [string, QuantizeStaticOptions, string][] = [
  [
    'static-s8-minmax',
    { calibrationMethod: 'minmax', perChannel: false },
    'per-tensor weights, MinMax ranges',
  ],
  [
    'static-s8-minmax-pc',
    { calibrationMethod: 'minmax', perChannel: true },
    'per-channel weights, MinMax ranges',
  ],
  [
    'static-s8-percentile-pc',
    { calibrationMethod: 'percentile', perChannel: true },
    'per-channel weights, 99.999th-percentile ranges',
  ],
  [
    'static-s8-entropy-pc',
    { calibrationMethod: 'entropy', perChannel: true },
    'per-channel weights, entropy (KL) ranges',
  ],
  [
    'static-u8s8-minmax-pc',
    { calibrationMethod: 'minmax', perChannel: true, activationType: 'uint8', weightType: 'int8' },
    'uint8 activations, int8 per-channel weights, MinMax ranges',
  ],
];

for (const [id, opts, what] of STATIC) {
  const settings: Record<string, SettingValue> = {
    activationType: opts.activationType ?? 'int8',
    weightType: opts.weightType ?? 'int8',
    perChannel: opts.perChannel ?? false,
    calibrationMethod: opts.calibrationMethod ?? 'minmax',
    format: 'qdq',
  };
  registerCandidate({
    id,
    method: 'static-int8',
    settings,
    description: `static int8 (QDQ): ${what}`,
    needsCalibration: true,
    default: true,
    build: (model, ctx) => staticQuant(model, ctx, opts),
  });
}

for (const [id, cpuKernelsOnly, what] of [
  ['fp16', true, 'float16 weights; compute in float16 only where ONNX Runtime’s CPU provider has kernels'],
  ['fp16-full', false, 'float16 weights and compute for every op that allows it (the runtime inserts Casts)'],
] as const) {
  registerCandidate({
    id,
    method: 'fp16',
    settings: { keepIoTypes: true, cpuKernelsOnly },
    description: `${what}; float32 inputs/outputs`,
    default: true,
    async build(model) {
      const { model: h, report } = await convertFp16(model, { keepIoTypes: true, cpuKernelsOnly });
      return {
        model: h,
        summary: {
          convertedNodes: report.converted.length,
          float32Nodes: report.skipped.length,
          initializersConverted: report.initializersConverted,
          castsAdded: report.castsAdded,
        },
      };
    },
  });
}

const FILTER_RATIO = 0.25;

registerCandidate({
  id: 'pruned-filters-25',
  method: 'pruned',
  settings: { kind: 'filters', ratio: FILTER_RATIO, fineTuned: false },
  description: '25 % of each Conv’s filters removed (L1 norm), no fine-tuning, fp32',
  default: false,
  async build(model) {
    const { model: p, report } = await pruneFilters(model, { ratio: FILTER_RATIO });
    return { model: p, summary: { prunedLayers: report.layers.length } };
  },
});

registerCandidate({
  id: 'pruned-filters-25-static-s8-pc',
  method: 'pruned',
  settings: {
    kind: 'filters',
    ratio: FILTER_RATIO,
    fineTuned: false,
    then: 'static-int8',
    perChannel: true,
    calibrationMethod: 'minmax',
  },
  description: '25 % of Conv filters removed (no fine-tuning), then static int8 per-channel MinMax',
  needsCalibration: true,
  default: true,
  async build(model, ctx) {
    const { model: p, report } = await pruneFilters(model, { ratio: FILTER_RATIO });
    const q = await staticQuant(p, ctx, { calibrationMethod: 'minmax', perChannel: true });
    return { model: q.model, summary: { ...q.summary, prunedLayers: report.layers.length } };
  },
});

registerCandidate({
  id: 'pruned-filters-25-dynamic-u8',
  method: 'pruned',
  settings: {
    kind: 'filters',
    ratio: FILTER_RATIO,
    fineTuned: false,
    then: 'dynamic-int8',
    weightType: 'uint8',
  },
  description: '25 % of Conv filters removed (no fine-tuning), then dynamic u8',
  default: false,
  async build(model) {
    const { model: p, report } = await pruneFilters(model, { ratio: FILTER_RATIO });
    const q = quantizeDynamic(p, { weightType: 'uint8' });
    return {
      model: q.model,
      summary: { prunedLayers: report.layers.length, quantizedNodes: q.report.quantized.length },
    };
  },
});

registerCandidate({
  id: 'pruned-magnitude-50-dynamic-u8',
  method: 'pruned',
  settings: { kind: 'magnitude', sparsity: 0.5, scope: 'global', then: 'dynamic-int8', weightType: 'uint8' },
  description:
    '50 % of weights zeroed (global magnitude; dense storage, so only compresses better), then dynamic u8',
  default: false,
  async build(model) {
    const { model: p } = pruneMagnitude(model, { sparsity: 0.5, scope: 'global' });
    const q = quantizeDynamic(p, { weightType: 'uint8' });
    return { model: q.model, summary: { quantizedNodes: q.report.quantized.length } };
  },
});
