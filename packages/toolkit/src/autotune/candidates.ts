import { OutpostError } from '@outpost/protocol';
import type { z } from 'zod';
import type { optimizationSettings } from '@outpost/protocol';
import type { Dataset } from '../datasets/index.ts';
import type { ModelProto } from '../onnx/index.ts';
import { quantizeDynamic } from '../quantize/index.ts';
import type { InputLayout } from './measure.ts';

/**
 * The candidate registry: each entry knows how to derive one variant from the fp32 model. The autotuner
 * builds, measures and compares whichever entries it is asked for; optimisation passes register here
 * (see `passes.ts` for the ones that need calibration data, fp16 or pruning).
 */

export type OptimizationMethod = z.infer<typeof optimizationSettings>['method'];
export type SettingValue = string | number | boolean;

export interface CandidateContext {
  /** Calibration samples (training data, never the eval set). */
  calib: Dataset;
  /** How samples feed the model's input. */
  layout: InputLayout;
}

export interface BuiltCandidate {
  model: ModelProto;
  /** What the pass did (nodes quantized, sparsity reached, ...), for the report. */
  summary?: Record<string, SettingValue>;
}

export interface CandidateSpec {
  /** Stable id, also the variant part of the output file name (`<model>.<id>.onnx`). */
  id: string;
  method: OptimizationMethod;
  settings: Record<string, SettingValue>;
  description: string;
  /** Needs a non-empty calibration set. */
  needsCalibration?: boolean;
  /** Part of the default candidate list. */
  default: boolean;
  /** Builds the variant from a fresh decode of the source model (it may mutate what it is given). */
  build(model: ModelProto, ctx: CandidateContext): BuiltCandidate | Promise<BuiltCandidate>;
}

export const BASELINE_ID = 'fp32';

const registry = new Map<string, CandidateSpec>();

/** Ids end up in file names (`<model>.<id>.onnx`) and reports: lowercase letters, digits and dashes. */
function checkId(id: string): void {
  if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(id)) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `candidate id ${JSON.stringify(id)} must be 1-64 of [a-z0-9-]`,
    );
  }
}

/**
 * Adds a candidate generator (a duplicate id is CONFLICT).
 *
 * @example
 * registerCandidate({ id: 'dynamic-u8-rr', method: 'dynamic-int8', settings: { reduceRange: true },
 *   description: 'dynamic u8, 7-bit weights', default: false,
 *   build: (m) => quantizeDynamic(m, { reduceRange: true }) });
 */
export function registerCandidate(spec: CandidateSpec): void {
  if (registry.has(spec.id)) throw new OutpostError('CONFLICT', `candidate ${spec.id} is already registered`);
  if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(spec.id)) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `candidate id ${JSON.stringify(spec.id)} must match [a-z0-9-]`,
    );
  }
  registry.set(spec.id, spec);
}

/**
 * Every registered candidate, in registration order.
 *
 * @example
 * candidateSpecs().map((c) => c.id); // ['fp32', 'dynamic-u8', ...]
 */
export function candidateSpecs(): CandidateSpec[] {
  return [...registry.values()];
}

/**
 * Ids of the default candidate list.
 *
 * @example
 * defaultCandidateIds(); // ['fp32', 'dynamic-u8', 'dynamic-s8', ...]
 */
export function defaultCandidateIds(): string[] {
  return candidateSpecs()
    .filter((c) => c.default)
    .map((c) => c.id);
}

/**
 * Looks candidates up by id; unknown ids are VALIDATION_FAILED listing the known ones. The fp32 baseline
 * is always included (first), since every other figure is relative to it.
 *
 * @example
 * resolveCandidates(['dynamic-u8']).map((c) => c.id); // ['fp32', 'dynamic-u8']
 */
export function resolveCandidates(
  ids?: readonly string[],
  extra: readonly CandidateSpec[] = [],
): CandidateSpec[] {
  const known = new Map(registry);
  for (const e of extra) {
    checkId(e.id);
    known.set(e.id, e);
  }
  const wanted = ids ?? [...defaultCandidateIds(), ...extra.map((e) => e.id)];
  const unknown = wanted.filter((id) => !known.has(id));
  if (unknown.length) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `unknown candidate(s) ${unknown.join(', ')} (known: ${[...known.keys()].join(', ')})`,
    );
  }
  const ordered = [BASELINE_ID, ...wanted.filter((id) => id !== BASELINE_ID)];
  return [...new Set(ordered)].map((id) => known.get(id) as CandidateSpec);
}

registerCandidate({
  id: BASELINE_ID,
  method: 'none',
  settings: {},
  description: 'the source model, unchanged (the reference)',
  default: true,
  build: (model) => ({ model }),
});

function dynamic(id: string, weightType: 'uint8' | 'int8', perChannel: boolean, isDefault: boolean): void {
  registerCandidate({
    id,
    method: 'dynamic-int8',
    settings: { weightType, perChannel },
    description: `dynamic int8: ${weightType} weights${perChannel ? ' per channel' : ''}, activations quantized at run time`,
    default: isDefault,
    build(model) {
      const { model: q, report } = quantizeDynamic(model, { weightType, perChannel });
      if (report.quantized.length === 0) {
        throw new OutpostError('ONNX_UNSUPPORTED', 'no MatMul/Gemm/Conv with constant weights to quantize');
      }
      return {
        model: q,
        summary: { quantizedNodes: report.quantized.length, skippedNodes: report.skipped.length },
      };
    },
  });
}

dynamic('dynamic-u8', 'uint8', false, true);
dynamic('dynamic-s8', 'int8', false, true);
dynamic('dynamic-u8-pc', 'uint8', true, true);
