import type { ErrorCode } from '@outpost/protocol';
import type { Dataset } from '../datasets/index.ts';
import type { HardwareProfile } from '../profiles/index.ts';
import type { CandidateSpec, OptimizationMethod, SettingValue } from './candidates.ts';
import type { Objective } from './select.ts';

export interface AutotuneOptions {
  /** Calibration samples for static quantization: training data, never the eval set. */
  calib: Dataset;
  /** Labelled evaluation samples (accuracy, agreement with fp32). */
  eval: Dataset;
  profile: HardwareProfile;
  /** Accuracy budget: the most a variant may lose vs fp32, in percentage points (default 0.5). */
  maxAccuracyDrop?: number;
  /** What "best" means among the variants within budget (default 'latency'). */
  objective?: Objective;
  /** Candidate ids to try (default: the registry's default list); fp32 is always added. */
  candidates?: string[];
  /** Extra candidate generators for this run only (not registered globally). */
  extraCandidates?: CandidateSpec[];
  /** Timed batch-1 runs per candidate (default 300), spread over `rounds` interleaved rounds. */
  iterations?: number;
  /** Interleaved latency rounds (default min(10, iterations)). */
  rounds?: number;
  /** Untimed runs per candidate before timing (default 30). */
  warmup?: number;
  /** Measure peak memory in a child process per candidate (default true). */
  measureMemory?: boolean;
  /** Samples per inference call when evaluating (default 100). */
  evalBatchSize?: number;
  /** Name used in reports and output file names (default: the file's base name, or 'model'). */
  modelName?: string;
  /** Progress over all phases (build, evaluate, memory, latency). */
  onProgress?: (done: number, total: number, label?: string) => void;
}

export type CandidateStatus = 'measured' | 'failed' | 'not-measurable';
export type FailureStage = 'build' | 'load' | 'evaluate' | 'memory' | 'latency';

export interface CandidateMetrics {
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  meanMs: number;
  latencySamples: number;
  /** p50 / fp32 p50 (above 1 = slower than fp32). */
  p50RatioVsFp32: number;
  /** Top-1 accuracy on the eval set, 0–1. */
  accuracy: number;
  /** fp32 accuracy − this accuracy, in percentage points. */
  accuracyDropPp: number;
  /** Share of eval samples where this variant predicts the same class as fp32, 0–1. */
  top1AgreementWithFp32: number;
  meanCosineVsFp32: number;
  /** Peak RSS growth of a fresh child process loading and running this variant; null when not measured. */
  peakRssDeltaBytes: number | null;
  /** Estimated energy per inference (mJ): p50 × (active − idle power) of the profile. */
  energyMjEstimate: number;
  /** In how many of the interleaved rounds this variant's p50 beat fp32's (null for fp32 itself). */
  roundsFasterThanFp32: number | null;
  sessionLoadMs: number;
}

export interface CandidateResult {
  id: string;
  method: OptimizationMethod;
  settings: Record<string, SettingValue>;
  description: string;
  status: CandidateStatus;
  /** Encoded size and hash, when the variant could be built. */
  sizeBytes?: number;
  sizeRatioVsFp32?: number;
  sha256?: string;
  /** What the optimisation pass reported. */
  build?: Record<string, SettingValue>;
  metrics?: CandidateMetrics;
  error?: { code: ErrorCode; stage: FailureStage; message: string };
  /** On the Pareto front over (p50 latency, size, accuracy drop) among measured candidates. */
  pareto: boolean;
  /** Within the accuracy and memory budgets. */
  eligible: boolean;
  chosen: boolean;
  /** Why it was or was not chosen. */
  verdict: string;
}

export interface MachineFacts {
  cpuModel: string;
  cores: number;
  availableParallelism: number;
  totalMemoryBytes: number;
  platform: string;
  arch: string;
  node: string;
  /** Versions of the runtimes used, e.g. { 'onnxruntime-node': '1.30.0' }. */
  runtimes: Record<string, string>;
}

export interface AutotuneResult {
  model: { name: string; sha256: string; sizeBytes: number };
  profile: HardwareProfile;
  settings: {
    objective: Objective;
    maxAccuracyDropPp: number;
    iterations: number;
    rounds: number;
    warmup: number;
    /** Threads actually used (the profile's, capped at this machine's cores); null when not measurable. */
    threadsUsed: number | null;
    memoryMethod: 'child-process-peak-rss-delta' | 'not-measured';
    latencyMethod: string;
    calibSamples: number;
    evalSamples: number;
    candidates: string[];
  };
  /** False when this machine cannot run the profile's runtime (e.g. CUDA without a GPU). */
  measurable: boolean;
  notMeasurableReason?: string;
  candidates: CandidateResult[];
  chosen: string | null;
  chosenReason: string;
  /** Sentences a human should read: slower int8, rejected variants, failures, caveats. */
  findings: string[];
  machine: MachineFacts;
  startedAt: string;
  durationMs: number;
  /** Encoded bytes of every built variant, by id (not part of the JSON report). */
  models: Record<string, Uint8Array>;
}
