import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { OutpostError, parseJsonWith, parseWith, safeName } from '@outpost/protocol';

/**
 * A hardware profile: the runtime a target device runs models with, its settings, its memory budget and
 * the power figures used for the energy estimate. The autotuner measures candidates with the profile's
 * runtime and settings ON THE MACHINE IT RUNS ON (never on the device itself), so latencies rank variants
 * for that runtime; they are not the device's absolute latencies.
 */

export const RUNTIMES = ['onnxruntime-node', 'onnxruntime-web', 'onnxruntime-node-gpu'] as const;
export type ProfileRuntime = (typeof RUNTIMES)[number];

export const EXECUTION_PROVIDERS = ['cpu', 'wasm', 'cuda'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

export const GRAPH_OPTIMIZATION_LEVELS = ['disabled', 'basic', 'extended', 'all'] as const;
export type GraphOptimizationLevel = (typeof GRAPH_OPTIMIZATION_LEVELS)[number];

/** Which execution providers each runtime can use: a profile that mixes them up is rejected. */
const ALLOWED_EPS: Record<ProfileRuntime, readonly ExecutionProvider[]> = {
  'onnxruntime-node': ['cpu'],
  'onnxruntime-web': ['wasm'],
  'onnxruntime-node-gpu': ['cuda', 'cpu'],
};

export const hardwareProfile = z
  .object({
    name: safeName,
    description: z.string().min(1).max(500),
    runtime: z.enum(RUNTIMES),
    /** In priority order, as ONNX Runtime takes them (e.g. ['cuda', 'cpu']: CUDA with CPU fallback). */
    executionProviders: z.array(z.enum(EXECUTION_PROVIDERS)).min(1).max(4),
    /** Intra-op threads (for onnxruntime-web: WASM threads). */
    threads: z.number().int().min(1).max(256),
    graphOptimizationLevel: z.enum(GRAPH_OPTIMIZATION_LEVELS).default('all'),
    /** Memory the model may use on the device (peak RSS growth of loading + running it), bytes. */
    memoryBudgetBytes: z.number().int().positive(),
    /** Active power of the device while inferring (W), for the energy estimate. */
    powerWatts: z.number().positive().max(10_000),
    /** Idle power (W); the energy estimate counts only power above idle. Absent = 0. */
    idlePowerWatts: z.number().nonnegative().max(10_000).optional(),
    /** Where the figures come from, caveats. */
    notes: z.string().max(2000).default(''),
  })
  .strict()
  .superRefine((p, ctx) => {
    const allowed = ALLOWED_EPS[p.runtime];
    p.executionProviders.forEach((ep, i) => {
      if (!allowed.includes(ep)) {
        ctx.addIssue({
          code: 'custom',
          path: ['executionProviders', i],
          message: `${p.runtime} cannot use execution provider ${ep} (allowed: ${allowed.join(', ')})`,
        });
      }
    });
    if (p.runtime === 'onnxruntime-node-gpu' && !p.executionProviders.includes('cuda')) {
      ctx.addIssue({
        code: 'custom',
        path: ['executionProviders'],
        message: 'onnxruntime-node-gpu needs the cuda execution provider',
      });
    }
    if (p.idlePowerWatts !== undefined && p.idlePowerWatts >= p.powerWatts) {
      ctx.addIssue({
        code: 'custom',
        path: ['idlePowerWatts'],
        message: `idle power ${p.idlePowerWatts} W must be below active power ${p.powerWatts} W`,
      });
    }
  });

export type HardwareProfile = z.infer<typeof hardwareProfile>;
export type HardwareProfileInput = z.input<typeof hardwareProfile>;

/**
 * Validates a profile object; a bad one throws VALIDATION_FAILED whose `details` list each issue's path.
 *
 * @example
 * const p = parseProfile({ name: 'my-board', description: 'A53 board', runtime: 'onnxruntime-node',
 *   executionProviders: ['cpu'], threads: 4, memoryBudgetBytes: 512 << 20, powerWatts: 3 });
 */
export function parseProfile(value: unknown): HardwareProfile {
  return parseWith(hardwareProfile, value, 'hardware profile');
}

/**
 * Reads a profile from a JSON file: NOT_FOUND / IO_FAILED for the file, MALFORMED_MESSAGE for bad JSON,
 * VALIDATION_FAILED (with paths) for a bad profile.
 *
 * @example
 * const p = await loadProfileFile('profiles/my-board.json');
 */
export async function loadProfileFile(path: string): Promise<HardwareProfile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new OutpostError(
      code === 'ENOENT' ? 'NOT_FOUND' : 'IO_FAILED',
      `cannot read profile ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return parseJsonWith(hardwareProfile, text, `hardware profile ${path}`);
}

/**
 * Energy per inference in millijoules: latency (ms) × (active − idle power) (W). An ESTIMATE: it assumes
 * the device draws its profile's active power for exactly the measured latency, and the latency itself
 * is measured on the machine running the autotuner, not on the device.
 *
 * @example
 * energyPerInferenceMj(2, { powerWatts: 6.4, idlePowerWatts: 2.7 }); // 7.4
 */
export function energyPerInferenceMj(
  latencyMs: number,
  profile: Pick<HardwareProfile, 'powerWatts' | 'idlePowerWatts'>,
): number {
  return latencyMs * Math.max(0, profile.powerWatts - (profile.idlePowerWatts ?? 0));
}
