import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import { OutpostError, sha256Of, toOutpostError } from '@outpost/protocol';
import { summarizeLatencies } from '../bench/index.ts';
import type { Dataset } from '../datasets/index.ts';
import { compareOutputs } from '../evaluate/index.ts';
import type { EvaluationResult } from '../evaluate/index.ts';
import { decodeModel, encodeModel } from '../onnx/index.ts';
import {
  energyPerInferenceMj,
  openProfileSession,
  probeProfile,
  runtimeVersions,
} from '../profiles/index.ts';
import type { FloatFeed, ProfileSession } from '../profiles/index.ts';
import { modelBytesOf } from '../runtime/index.ts';
import { BASELINE_ID, resolveCandidates } from './candidates.ts';
import './passes.ts'; // registers the static-int8, pruning (and fp16) candidates
import type { CandidateSpec } from './candidates.ts';
import { evaluateSession, inputLayout, sampleFeed, timeSession } from './measure.ts';
import type { InputLayout } from './measure.ts';
import { measureMemoryInChild } from './memory.ts';
import { compareSpeed, selectCandidate } from './select.ts';
import type { SelectionPoint } from './select.ts';
import type {
  AutotuneOptions,
  AutotuneResult,
  CandidateResult,
  FailureStage,
  MachineFacts,
} from './types.ts';

/** Per-candidate working state while measuring. */
interface Work {
  spec: CandidateSpec;
  result: CandidateResult;
  bytes?: Uint8Array;
  session?: ProfileSession;
  evaluation?: EvaluationResult;
  latencies: number[];
  /** p50 of each interleaved round, for the paired comparison with fp32. */
  roundP50Ms: number[];
  memory?: number | null;
}

function fail(w: Work, stage: FailureStage, err: unknown): void {
  const e = toOutpostError(err);
  w.result.status = 'failed';
  w.result.error = { code: e.code, stage, message: e.message };
}

/** Reads the status through a call so TypeScript does not keep a narrowing that `fail` invalidated. */
function isFailed(w: Work): boolean {
  return w.result.status === 'failed';
}

function checkDataset(ds: Dataset, what: string, needLabels: boolean): number {
  if (!ds || !Number.isInteger(ds.n) || ds.n < 1) {
    throw new OutpostError('VALIDATION_FAILED', `the ${what} set is empty`);
  }
  if (ds.x.length === 0 || ds.x.length % ds.n !== 0) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `the ${what} set has ${ds.x.length} values for ${ds.n} samples`,
    );
  }
  if (needLabels && ds.y.length < ds.n) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `the ${what} set needs one label per sample (${ds.y.length}/${ds.n})`,
    );
  }
  return ds.x.length / ds.n;
}

function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 1)
    throw new OutpostError('VALIDATION_FAILED', `${what} must be a positive integer, got ${v}`);
  return v;
}

/**
 * Facts about this machine for reports (latencies are only comparable on the same machine).
 *
 * @example
 * machineFacts().cpuModel; // 'AMD EPYC 7B13'
 */
export function machineFacts(): MachineFacts {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    availableParallelism: availableParallelism(),
    totalMemoryBytes: totalmem(),
    platform: process.platform,
    arch: process.arch,
    node: process.version,
    runtimes: runtimeVersions(),
  };
}

function feedForChild(feed: Record<string, FloatFeed>): Record<string, { data: number[]; dims: number[] }> {
  const out: Record<string, { data: number[]; dims: number[] }> = {};
  for (const [k, f] of Object.entries(feed)) out[k] = { data: Array.from(f.data), dims: [...f.dims] };
  return out;
}

/**
 * Finds the best variant of a model for a hardware profile by measuring instead of assuming: builds every
 * candidate (fp32, dynamic and static int8, fp16, pruned+int8 ... as registered), runs each with the
 * profile's runtime on this machine — accuracy and top-1 agreement with fp32 on the eval set, peak memory
 * in a fresh child process, batch-1 latency in interleaved rounds — then applies the accuracy and memory
 * budgets, computes the Pareto front over (latency, size, accuracy drop) and picks the best for the
 * objective. A variant slower than fp32 is never chosen for latency; such cases are spelled out in
 * `findings`. Candidates that fail to build or run stay in the result with their error code.
 *
 * Errors: a corrupt model is ONNX_PARSE_FAILED; an empty eval (or, when needed, calibration) set is
 * VALIDATION_FAILED; data that does not fit the input is TENSOR_SHAPE_MISMATCH; a source model the profile's
 * runtime cannot run at all is ONNX_UNSUPPORTED / INFERENCE_FAILED. A profile this machine cannot run
 * (CUDA without a GPU) is not an error: every candidate is reported as not measurable, with the reason.
 *
 * @example
 * const r = await autotune('mnist_cnn.onnx', { calib, eval: evalSet, profile: builtinProfile('cpu-x86-1t'),
 *   onProgress: (d, t, label) => bar.update(d, t, label) });
 * console.log(r.chosen, r.findings.join('\n'));
 */
export async function autotune(model: string | Uint8Array, opts: AutotuneOptions): Promise<AutotuneResult> {
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const sourceBytes = await modelBytesOf(model);
  const source = decodeModel(sourceBytes); // ONNX_PARSE_FAILED before anything else
  const { profile } = opts;
  const objective = opts.objective ?? 'latency';
  if (!['latency', 'size', 'energy'].includes(objective)) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `objective must be latency, size or energy, got ${String(objective)}`,
    );
  }
  const maxAccuracyDrop = opts.maxAccuracyDrop ?? 0.5;
  if (!Number.isFinite(maxAccuracyDrop) || maxAccuracyDrop < 0 || maxAccuracyDrop > 100) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `maxAccuracyDrop must be 0–100 percentage points, got ${maxAccuracyDrop}`,
    );
  }
  const iterations = positiveInt(opts.iterations ?? 300, 'iterations');
  const rounds = positiveInt(opts.rounds ?? Math.min(10, iterations), 'rounds');
  const warmup = opts.warmup ?? 30;
  if (!Number.isInteger(warmup) || warmup < 0)
    throw new OutpostError('VALIDATION_FAILED', `bad warmup ${warmup}`);
  const perRound = Math.ceil(iterations / rounds);
  const features = checkDataset(opts.eval, 'eval', true);
  const specs = resolveCandidates(opts.candidates, opts.extraCandidates);
  if (specs.some((s) => s.needsCalibration)) {
    const calibFeatures = checkDataset(opts.calib, 'calibration', false);
    if (calibFeatures !== features) {
      throw new OutpostError(
        'TENSOR_SHAPE_MISMATCH',
        `calibration samples have ${calibFeatures} values, eval samples ${features}`,
      );
    }
  }
  const layout: InputLayout = inputLayout(source, features);
  const measureMemory = opts.measureMemory ?? true;
  const name =
    opts.modelName ?? (typeof model === 'string' ? basename(model).replace(/\.onnx$/i, '') : 'model');

  const probe = await probeProfile(profile, sourceBytes);
  const findings: string[] = [];
  const steps =
    specs.length * (probe.measurable ? 2 + (measureMemory ? 1 : 0) : 1) + (probe.measurable ? rounds : 0);
  let done = 0;
  const tick = (label: string) => opts.onProgress?.(++done, steps, label);

  const work: Work[] = specs.map((spec) => ({
    spec,
    latencies: [],
    roundP50Ms: [],
    result: {
      id: spec.id,
      method: spec.method,
      settings: spec.settings,
      description: spec.description,
      status: 'measured',
      pareto: false,
      eligible: false,
      chosen: false,
      verdict: '',
    },
  }));

  // 1. Build every variant from a fresh decode, so no pass can affect another.
  for (const w of work) {
    try {
      const built =
        w.spec.id === BASELINE_ID
          ? { model: source }
          : await w.spec.build(decodeModel(sourceBytes), { calib: opts.calib, layout });
      w.bytes = w.spec.id === BASELINE_ID ? sourceBytes : encodeModel(built.model);
      w.result.sizeBytes = w.bytes.length;
      w.result.sizeRatioVsFp32 = w.bytes.length / sourceBytes.length;
      w.result.sha256 = sha256Of(w.bytes);
      if (built.summary) w.result.build = built.summary;
    } catch (err) {
      fail(w, 'build', err);
    }
    tick(`build ${w.spec.id}`);
  }
  const models: Record<string, Uint8Array> = {};
  for (const w of work) if (w.bytes) models[w.spec.id] = w.bytes;
  const base = work[0] as Work;

  const finish = (chosen: string | null, chosenReason: string): AutotuneResult => ({
    model: { name, sha256: sha256Of(sourceBytes), sizeBytes: sourceBytes.length },
    profile,
    settings: {
      objective,
      maxAccuracyDropPp: maxAccuracyDrop,
      iterations: perRound * rounds,
      rounds,
      warmup,
      threadsUsed: probe.measurable ? probe.threads : null,
      memoryMethod: probe.measurable && measureMemory ? 'child-process-peak-rss-delta' : 'not-measured',
      latencyMethod: `batch 1, a real eval sample, ${rounds} interleaved rounds of ${perRound} runs per candidate (rotating order) after ${warmup} warm-up runs; p50/p95/p99 by nearest rank`,
      calibSamples: opts.calib?.n ?? 0,
      evalSamples: opts.eval.n,
      candidates: specs.map((s) => s.id),
    },
    measurable: probe.measurable,
    ...(probe.measurable ? {} : { notMeasurableReason: probe.reason }),
    candidates: work.map((w) => w.result),
    chosen,
    chosenReason,
    findings,
    machine: machineFacts(),
    startedAt,
    durationMs: performance.now() - t0,
    models,
  });

  if (!probe.measurable) {
    for (const w of work) {
      if (w.result.status === 'failed') continue;
      w.result.status = 'not-measurable';
      w.result.verdict = `not measurable here: ${probe.reason}`;
    }
    const reason = `${profile.name} cannot be measured on this machine: ${probe.reason}`;
    findings.push(`${reason}. No variant was chosen; nothing was estimated or simulated.`);
    for (const w of work)
      if (w.result.error) w.result.verdict = `failed at ${w.result.error.stage}: ${w.result.error.code}`;
    return finish(null, reason);
  }
  findings.push(
    `latency and memory were measured on this machine (${machineFacts().cpuModel}, ${availableParallelism()} cores) ` +
      `with ${profile.name}'s runtime (${profile.runtime}, ${profile.executionProviders.join('+')}, ${probe.threads} thread(s), ` +
      `graph optimisation ${profile.graphOptimizationLevel}); they rank the variants, they are not on-device figures. ` +
      `Energy is an estimate: p50 × (${profile.powerWatts} W − ${profile.idlePowerWatts ?? 0} W idle).`,
    ...probe.notes,
  );
  if (base.result.status === 'failed')
    throw new OutpostError(
      base.result.error?.code ?? 'INTERNAL',
      base.result.error?.message ?? 'fp32 failed',
    );

  const tmp = measureMemory ? await mkdtemp(join(tmpdir(), 'outpost-autotune-')) : undefined;
  try {
    // 2. Accuracy on the profile's runtime; the session stays open for the latency rounds.
    for (const w of work) {
      if (w.result.status !== 'measured' || !w.bytes) {
        tick(`evaluate ${w.spec.id}`);
        continue;
      }
      try {
        w.session = await openProfileSession(w.bytes, profile);
      } catch (err) {
        fail(w, 'load', err);
      }
      if (w.session) {
        try {
          w.evaluation = await evaluateSession(w.session, layout, opts.eval, opts.evalBatchSize ?? 100);
        } catch (err) {
          fail(w, 'evaluate', err);
        }
      }
      if (w === base && isFailed(w)) {
        const e = w.result.error;
        throw new OutpostError(
          e?.code ?? 'INTERNAL',
          `the fp32 model cannot run on ${profile.name}: ${e?.message ?? ''}`,
        );
      }
      tick(`evaluate ${w.spec.id}`);
    }
    const feed = sampleFeed(layout, opts.eval, 0);

    // 3. Peak memory, one fresh child per candidate (before timing, so children do not disturb it).
    if (tmp) {
      for (const w of work) {
        if (w.result.status === 'measured' && w.bytes) {
          const modelPath = join(tmp, `${w.spec.id}.onnx`);
          try {
            await writeFile(modelPath, w.bytes);
            const m = await measureMemoryInChild({ modelPath, profile, feed: feedForChild(feed), runs: 20 });
            w.memory = m.peakRssDeltaBytes;
          } catch (err) {
            w.memory = null;
            const e = toOutpostError(err);
            findings.push(
              `peak memory of ${w.spec.id} could not be measured (${e.code}: ${e.message}); its memory budget was not checked`,
            );
          }
        }
        tick(`memory ${w.spec.id}`);
      }
    }

    // 4. Latency: warm up, then interleaved rounds in rotating order so that noise from a shared machine
    // lands on every candidate alike.
    const timed = () => work.filter((w) => w.result.status === 'measured' && w.session);
    for (const w of timed()) {
      try {
        await timeSession(w.session as ProfileSession, feed, warmup);
      } catch (err) {
        fail(w, 'latency', err);
      }
    }
    for (let r = 0; r < rounds; r++) {
      const live = timed();
      for (let k = 0; k < live.length; k++) {
        const w = live[(r + k) % live.length] as Work;
        try {
          const ms = await timeSession(w.session as ProfileSession, feed, perRound);
          w.latencies.push(...ms);
          w.roundP50Ms.push(summarizeLatencies(ms).p50Ms);
        } catch (err) {
          fail(w, 'latency', err);
        }
      }
      tick(`latency round ${r + 1}/${rounds}`);
    }
    if (isFailed(base)) {
      throw new OutpostError(
        base.result.error?.code ?? 'INTERNAL',
        `fp32 failed while timing: ${base.result.error?.message ?? ''}`,
      );
    }
  } finally {
    for (const w of work) await w.session?.release().catch(() => undefined);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }

  // 5. Figures, budgets, Pareto front, choice.
  const baseEval = base.evaluation as EvaluationResult;
  const baseP50 = summarizeLatencies(base.latencies).p50Ms;
  const points: SelectionPoint[] = [];
  for (const w of work) {
    if (w.result.status !== 'measured' || !w.evaluation) continue;
    const stats = summarizeLatencies(w.latencies);
    const cmp = compareOutputs(baseEval, w.evaluation);
    const accuracyDropPp = (baseEval.accuracy - w.evaluation.accuracy) * 100;
    const energy = energyPerInferenceMj(stats.p50Ms, profile);
    w.result.metrics = {
      p50Ms: stats.p50Ms,
      p95Ms: stats.p95Ms,
      p99Ms: stats.p99Ms,
      meanMs: stats.meanMs,
      latencySamples: w.latencies.length,
      p50RatioVsFp32: stats.p50Ms / baseP50,
      accuracy: w.evaluation.accuracy,
      accuracyDropPp,
      top1AgreementWithFp32: cmp.top1Agreement,
      meanCosineVsFp32: cmp.meanCosine,
      peakRssDeltaBytes: w.memory ?? null,
      energyMjEstimate: energy,
      roundsFasterThanFp32:
        w === base
          ? null
          : compareSpeed(
              { p50Ms: stats.p50Ms, roundP50Ms: w.roundP50Ms },
              { p50Ms: baseP50, roundP50Ms: base.roundP50Ms },
            ).wins,
      sessionLoadMs: w.session?.loadMs ?? 0,
    };
    points.push({
      id: w.spec.id,
      baseline: w === base,
      p50Ms: stats.p50Ms,
      sizeBytes: w.result.sizeBytes ?? 0,
      accuracyDropPp,
      memoryBytes: w.memory ?? null,
      energyMj: energy,
      roundP50Ms: w.roundP50Ms,
    });
  }
  for (const w of work) {
    if (w.result.error) {
      w.result.verdict = `failed at ${w.result.error.stage}: ${w.result.error.code}`;
      findings.push(
        `${w.spec.id} failed at ${w.result.error.stage} (${w.result.error.code}): ${w.result.error.message}`,
      );
    }
  }
  // On a shared machine the tail is often one scheduler tick of preemption for every candidate alike.
  const tails = work.flatMap((w) =>
    w.result.metrics ? [w.result.metrics.p99Ms / w.result.metrics.p50Ms] : [],
  );
  if (tails.length > 0 && Math.min(...tails) > 5) {
    findings.push(
      `p99 is more than 5× p50 for every candidate (${Math.min(...tails).toFixed(0)}–${Math.max(...tails).toFixed(0)}×): ` +
        'the tail reflects interference on this machine (other processes, scheduler preemption), not the variants; compare p50',
    );
  }
  const sel = selectCandidate(points, {
    objective,
    maxAccuracyDrop,
    memoryBudgetBytes: profile.memoryBudgetBytes,
    profileName: profile.name,
  });
  for (const w of work) {
    if (w.result.status !== 'measured') continue;
    w.result.pareto = sel.pareto.includes(w.spec.id);
    w.result.eligible = sel.eligible.includes(w.spec.id);
    w.result.chosen = sel.chosen === w.spec.id;
    w.result.verdict = sel.verdicts[w.spec.id] ?? '';
  }
  findings.push(...sel.findings);
  return finish(sel.chosen, sel.reason);
}
