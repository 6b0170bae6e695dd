import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import type * as webOrtTypes from 'onnxruntime-web';
import { OutpostError } from '@outpost/protocol';
import { ort } from '../runtime/index.ts';
import type { HardwareProfile } from './schema.ts';

/**
 * Opens inference sessions the way a profile's target runs them, on this machine: onnxruntime-node with
 * the profile's threads / optimisation level / providers, or onnxruntime-web's WASM backend (loaded in
 * Node) for browser profiles. A profile this machine cannot run (CUDA without a GPU) is reported as not
 * measurable with the reason, never silently run on something else.
 */

/** A float32 input: data plus dims. */
export interface FloatFeed {
  data: Float32Array;
  dims: readonly number[];
}

/** An output tensor, whatever its element type. */
export interface ProfileOutput {
  type: string;
  data: unknown;
  dims: readonly number[];
}

export interface ProfileSession {
  runtime: HardwareProfile['runtime'];
  inputNames: readonly string[];
  outputNames: readonly string[];
  /** Session creation time (ms). */
  loadMs: number;
  /** Runs once; runtime failures are INFERENCE_FAILED. */
  run(feeds: Record<string, FloatFeed>): Promise<Record<string, ProfileOutput>>;
  release(): Promise<void>;
}

export type ProfileProbe =
  { measurable: true; threads: number; notes: string[] } | { measurable: false; reason: string };

type WebOrt = typeof webOrtTypes;
type WebSession = webOrtTypes.InferenceSession;
type WebTensor = webOrtTypes.Tensor;
let webOrt: WebOrt | undefined;
let webThreads: number | undefined;

async function loadWebOrt(threads: number): Promise<WebOrt> {
  if (!webOrt) {
    const mod = await import('onnxruntime-web');
    // The WASM thread count is fixed when the WASM module is first instantiated, i.e. by the first session.
    mod.env.wasm.numThreads = threads;
    mod.env.logLevel = 'error';
    webOrt = mod;
    webThreads = threads;
  }
  return webOrt;
}

/** Directory of onnxruntime-node's native libraries for this platform. */
function ortNodeBinDir(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
    const bin = join(dirname(pkg), 'bin');
    for (const napi of readdirSync(bin)) {
      const dir = join(bin, napi, process.platform, process.arch);
      if (existsSync(dir)) return dir;
    }
  } catch {
    /* not installed the usual way: handled by the caller */
  }
  return undefined;
}

/**
 * Why CUDA cannot be used here, or undefined when both a GPU device node and ORT's CUDA provider library
 * exist (the session creation then has the last word).
 */
function cudaMissing(): string | undefined {
  const reasons: string[] = [];
  if (process.platform === 'linux' && !existsSync('/dev/nvidiactl')) {
    reasons.push('no NVIDIA GPU driver on this machine (/dev/nvidiactl absent)');
  }
  const dir = ortNodeBinDir();
  const hasProvider = dir !== undefined && readdirSync(dir).some((f) => f.includes('providers_cuda'));
  if (!hasProvider) {
    reasons.push(
      `onnxruntime-node ${ort.env.versions.node ?? ''} has no CUDA execution provider library installed`,
    );
  }
  return reasons.length ? reasons.join('; ') : undefined;
}

/**
 * The thread count actually used here: the profile's, capped at this machine's cores.
 *
 * @example
 * effectiveThreads(builtinProfile('rpi4-cpu')); // 2 on a 2-core machine
 */
export function effectiveThreads(profile: HardwareProfile): number {
  return Math.max(1, Math.min(profile.threads, availableParallelism()));
}

/**
 * Says whether `profile` can be measured on this machine, and with how many threads. For GPU profiles
 * it opens a session on `modelBytes` with the CUDA provider to be sure.
 *
 * @example
 * const probe = await probeProfile(builtinProfile('jetson-nano-gpu'), bytes);
 * if (!probe.measurable) console.log(probe.reason);
 */
export async function probeProfile(profile: HardwareProfile, modelBytes?: Uint8Array): Promise<ProfileProbe> {
  const threads = effectiveThreads(profile);
  const notes: string[] = [];
  if (threads < profile.threads) {
    notes.push(
      `${profile.name} asks for ${profile.threads} threads; this machine has ${availableParallelism()} cores, ` +
        `so ${threads} were used`,
    );
  }
  if (profile.runtime === 'onnxruntime-node-gpu') {
    const missing = cudaMissing();
    if (missing) return { measurable: false, reason: missing };
    if (modelBytes) {
      try {
        const s = await openProfileSession(modelBytes, profile);
        await s.release();
      } catch (err) {
        return { measurable: false, reason: `CUDA session failed: ${(err as Error).message}` };
      }
    }
  }
  if (profile.runtime === 'onnxruntime-web' && webThreads !== undefined && webThreads !== threads) {
    return {
      measurable: false,
      reason: `onnxruntime-web is already initialised with ${webThreads} WASM thread(s) in this process; ${profile.name} needs ${threads}`,
    };
  }
  return { measurable: true, threads, notes };
}

function loadFailed(profile: HardwareProfile, err: unknown): OutpostError {
  return new OutpostError(
    'ONNX_UNSUPPORTED',
    `${profile.runtime} (${profile.executionProviders.join(', ')}) cannot load the model: ${(err as Error).message}`,
    { cause: err },
  );
}

function inferenceFailed(err: unknown): OutpostError {
  return new OutpostError('INFERENCE_FAILED', `inference failed: ${(err as Error).message}`, { cause: err });
}

function toOutputs(
  out: Record<string, { type: string; data: unknown; dims: readonly number[] }>,
): Record<string, ProfileOutput> {
  const r: Record<string, ProfileOutput> = {};
  for (const [k, t] of Object.entries(out)) r[k] = { type: t.type, data: t.data, dims: t.dims };
  return r;
}

/**
 * Opens a session for `bytes` with the profile's runtime and settings. A model the runtime refuses is
 * ONNX_UNSUPPORTED; a GPU profile on a machine without CUDA is ONNX_UNSUPPORTED too (use
 * {@link probeProfile} first to tell the two apart).
 *
 * @example
 * const s = await openProfileSession(bytes, builtinProfile('browser-wasm'));
 * const out = await s.run({ input: { data: new Float32Array(784), dims: [1, 1, 28, 28] } });
 * await s.release();
 */
export async function openProfileSession(
  bytes: Uint8Array,
  profile: HardwareProfile,
): Promise<ProfileSession> {
  const threads = effectiveThreads(profile);
  const t0 = performance.now();
  if (profile.runtime === 'onnxruntime-web') {
    const w = await loadWebOrt(threads);
    let session: WebSession;
    try {
      session = await w.InferenceSession.create(bytes, {
        executionProviders: ['wasm'],
        graphOptimizationLevel: profile.graphOptimizationLevel,
        logSeverityLevel: 3,
      });
    } catch (err) {
      throw loadFailed(profile, err);
    }
    const loadMs = performance.now() - t0;
    return {
      runtime: profile.runtime,
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      loadMs,
      async run(feeds) {
        const tensors: Record<string, WebTensor> = {};
        for (const [k, f] of Object.entries(feeds)) tensors[k] = new w.Tensor('float32', f.data, f.dims);
        try {
          return toOutputs(await session.run(tensors));
        } catch (err) {
          throw inferenceFailed(err);
        }
      },
      release: () => session.release(),
    };
  }
  if (profile.runtime === 'onnxruntime-node-gpu') {
    const missing = cudaMissing();
    if (missing) throw new OutpostError('ONNX_UNSUPPORTED', `cannot use CUDA here: ${missing}`);
  }
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      executionProviders: [...profile.executionProviders],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: profile.graphOptimizationLevel,
      logSeverityLevel: 3,
    });
  } catch (err) {
    throw loadFailed(profile, err);
  }
  const loadMs = performance.now() - t0;
  return {
    runtime: profile.runtime,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    loadMs,
    async run(feeds) {
      const tensors: Record<string, ort.Tensor> = {};
      for (const [k, f] of Object.entries(feeds)) tensors[k] = new ort.Tensor('float32', f.data, f.dims);
      try {
        return toOutputs(await session.run(tensors));
      } catch (err) {
        throw inferenceFailed(err);
      }
    },
    release: () => session.release(),
  };
}

/**
 * Versions of the runtimes, for reports (onnxruntime-web only once it was loaded).
 *
 * @example
 * runtimeVersions(); // { 'onnxruntime-node': '1.30.0' }
 */
export function runtimeVersions(): Record<string, string> {
  const v: Record<string, string> = { 'onnxruntime-node': ort.env.versions.node ?? 'unknown' };
  if (webOrt) v['onnxruntime-web'] = webOrt.env.versions.web ?? 'unknown';
  return v;
}
