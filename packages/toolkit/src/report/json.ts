import { z } from 'zod';
import { ERROR_CODES, optimizationSettings, parseJsonWith, safeName, sha256Hex } from '@outpost/protocol';
import { hardwareProfile } from '../profiles/index.ts';
import type { AutotuneResult } from '../autotune/index.ts';

/**
 * The optimization report: a stable, versioned JSON record of one autotuning run. It travels with the
 * chosen model as part of its provenance (source model hash, settings, every candidate's figures, the
 * choice and why, the machine the figures were measured on). Absent values are `null`, never omitted,
 * so consumers see the same keys in every report of a version.
 */

export const REPORT_FORMAT = 'outpost-optimization-report';
export const REPORT_VERSION = 1;

const setting = z.union([z.string(), z.number(), z.boolean()]);

const candidateReport = z.object({
  id: z.string().min(1).max(256),
  method: optimizationSettings.shape.method,
  settings: z.record(z.string(), setting),
  description: z.string(),
  status: z.enum(['measured', 'failed', 'not-measurable']),
  sizeBytes: z.number().int().nonnegative().nullable(),
  sizeRatioVsFp32: z.number().nullable(),
  sha256: sha256Hex.nullable(),
  build: z.record(z.string(), setting).nullable(),
  metrics: z
    .object({
      p50Ms: z.number(),
      p95Ms: z.number(),
      p99Ms: z.number(),
      meanMs: z.number(),
      latencySamples: z.number().int(),
      p50RatioVsFp32: z.number(),
      accuracy: z.number(),
      accuracyDropPp: z.number(),
      top1AgreementWithFp32: z.number(),
      meanCosineVsFp32: z.number(),
      peakRssDeltaBytes: z.number().nullable(),
      energyMjEstimate: z.number(),
      roundsFasterThanFp32: z.number().int().nullable(),
      sessionLoadMs: z.number(),
    })
    .nullable(),
  error: z
    .object({
      code: z.enum(ERROR_CODES as [string, ...string[]]),
      stage: z.enum(['build', 'load', 'evaluate', 'memory', 'latency']),
      message: z.string(),
    })
    .nullable(),
  pareto: z.boolean(),
  eligible: z.boolean(),
  chosen: z.boolean(),
  verdict: z.string(),
});

export const optimizationReport = z.object({
  format: z.literal(REPORT_FORMAT),
  version: z.literal(REPORT_VERSION),
  source: z.object({
    name: z.string().min(1).max(256),
    sha256: sha256Hex,
    sizeBytes: z.number().int().positive(),
  }),
  profile: hardwareProfile,
  settings: z.object({
    objective: z.enum(['latency', 'size', 'energy']),
    maxAccuracyDropPp: z.number(),
    iterations: z.number().int(),
    rounds: z.number().int(),
    warmup: z.number().int(),
    threadsUsed: z.number().int().nullable(),
    memoryMethod: z.enum(['child-process-peak-rss-delta', 'not-measured']),
    latencyMethod: z.string(),
    calibSamples: z.number().int(),
    evalSamples: z.number().int(),
    candidates: z.array(z.string()),
  }),
  measurable: z.boolean(),
  notMeasurableReason: z.string().nullable(),
  candidates: z.array(candidateReport).min(1),
  choice: z.object({
    id: z.string().nullable(),
    reason: z.string(),
    /** The chosen artifact's hash and, ready for a model manifest, its `optimization` block. */
    sha256: sha256Hex.nullable(),
    /** `<source name>.<variant>.onnx`, the file name the CLI writes. */
    fileName: z.string().nullable(),
    optimization: optimizationSettings.nullable(),
  }),
  findings: z.array(z.string()),
  machine: z.object({
    cpuModel: z.string(),
    cores: z.number().int(),
    availableParallelism: z.number().int(),
    totalMemoryBytes: z.number(),
    platform: z.string(),
    arch: z.string(),
    node: z.string(),
    runtimes: z.record(z.string(), z.string()),
  }),
  startedAt: z.string(),
  durationMs: z.number(),
});

export type OptimizationReport = z.infer<typeof optimizationReport>;
export type CandidateReport = z.infer<typeof candidateReport>;

/**
 * `<name>.<variant>.onnx` with the name reduced to the safe alphabet (it ends up as a file name).
 *
 * @example
 * variantFileName('mnist_cnn', 'static-s8-minmax-pc'); // 'mnist_cnn.static-s8-minmax-pc.onnx'
 */
export function variantFileName(modelName: string, variant: string): string {
  let base = modelName
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/\.{2,}/g, '_')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 100)
    .replace(/\.+$/, ''); // `name.` + `.variant` would make `..`
  if (!safeName.safeParse(base).success) base = 'model';
  return `${base}.${variant}.onnx`;
}

/**
 * The JSON report of an autotuning run (see the module comment). Deterministic key order; absent values
 * are null.
 *
 * @example
 * await atomicWriteFile('out/report.json', `${JSON.stringify(optimizationReportJson(result), null, 2)}\n`);
 */
export function optimizationReportJson(result: AutotuneResult): OptimizationReport {
  const chosen = result.candidates.find((c) => c.id === result.chosen);
  return {
    format: REPORT_FORMAT,
    version: REPORT_VERSION,
    source: { ...result.model },
    profile: result.profile,
    settings: { ...result.settings, candidates: [...result.settings.candidates] },
    measurable: result.measurable,
    notMeasurableReason: result.notMeasurableReason ?? null,
    candidates: result.candidates.map((c) => ({
      id: c.id,
      method: c.method,
      settings: c.settings,
      description: c.description,
      status: c.status,
      sizeBytes: c.sizeBytes ?? null,
      sizeRatioVsFp32: c.sizeRatioVsFp32 ?? null,
      sha256: c.sha256 ?? null,
      build: c.build ?? null,
      metrics: c.metrics ? { ...c.metrics } : null,
      error: c.error ? { ...c.error } : null,
      pareto: c.pareto,
      eligible: c.eligible,
      chosen: c.chosen,
      verdict: c.verdict,
    })),
    choice: {
      id: result.chosen,
      reason: result.chosenReason,
      sha256: chosen?.sha256 ?? null,
      fileName: chosen ? variantFileName(result.model.name, chosen.id) : null,
      optimization: chosen
        ? { method: chosen.method, settings: chosen.settings, sourceSha256: result.model.sha256 }
        : null,
    },
    findings: [...result.findings],
    machine: { ...result.machine, runtimes: { ...result.machine.runtimes } },
    startedAt: result.startedAt,
    durationMs: Math.round(result.durationMs),
  };
}

/**
 * Parses a report.json (e.g. for re-rendering): bad JSON is MALFORMED_MESSAGE, a wrong format, version or
 * shape VALIDATION_FAILED.
 *
 * @example
 * const report = parseOptimizationReport(await readFile('out/report.json', 'utf8'));
 */
export function parseOptimizationReport(text: string | Uint8Array): OptimizationReport {
  return parseJsonWith(optimizationReport, text, 'optimization report');
}
