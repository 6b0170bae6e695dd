import { OutpostError } from '@outpost/protocol';
import { loadProfileFile, parseProfile } from './schema.ts';
import type { HardwareProfile, HardwareProfileInput } from './schema.ts';

const MiB = 1024 * 1024;

/**
 * Built-in profiles. Every power figure below is an ESTIMATE taken from public figures (cited per
 * profile); the energy column of a report is only as good as these numbers. Measure your own device
 * and pass a JSON profile when energy matters.
 */
const BUILTIN: HardwareProfileInput[] = [
  {
    name: 'cpu-x86-1t',
    description:
      'x86-64 server/desktop CPU, onnxruntime-node, 1 intra-op thread (the machine class Outpost is built on)',
    runtime: 'onnxruntime-node',
    executionProviders: ['cpu'],
    threads: 1,
    graphOptimizationLevel: 'all',
    memoryBudgetBytes: 512 * MiB,
    // Estimate: one core's share of a server CPU package, e.g. AMD EPYC 7B13 (AMD's published TDP 240 W
    // for 64 cores ≈ 3.75 W/core), rounded to 4 W; idle share not modelled.
    powerWatts: 4,
    notes: 'power is an estimate: one core’s share of a 240 W / 64-core EPYC package (AMD TDP figure)',
  },
  {
    name: 'cpu-x86-2t',
    description: 'x86-64 CPU, onnxruntime-node, 2 intra-op threads',
    runtime: 'onnxruntime-node',
    executionProviders: ['cpu'],
    threads: 2,
    graphOptimizationLevel: 'all',
    memoryBudgetBytes: 512 * MiB,
    // Estimate: two cores' share of the same 240 W / 64-core package.
    powerWatts: 8,
    notes: 'power is an estimate: two cores’ share of a 240 W / 64-core EPYC package (AMD TDP figure)',
  },
  {
    name: 'rpi4-cpu',
    description: 'Raspberry Pi 4 Model B, 4× Cortex-A72 @ 1.5 GHz, onnxruntime-node (linux-arm64), 4 threads',
    runtime: 'onnxruntime-node',
    executionProviders: ['cpu'],
    threads: 4,
    graphOptimizationLevel: 'all',
    // The 1 GB board, leaving room for the OS and the agent.
    memoryBudgetBytes: 256 * MiB,
    // Estimate from Jeff Geerling's Raspberry Pi power benchmarks (pidramble.com/wiki/benchmarks/power-consumption):
    // Pi 4 B, `stress --cpu 4` 1280 mA × 5 V = 6.4 W; idle 540 mA = 2.7 W (bare board, no peripherals).
    powerWatts: 6.4,
    idlePowerWatts: 2.7,
    notes:
      'power is an estimate: 6.4 W under 4-core stress, 2.7 W idle (Jeff Geerling, pidramble.com power benchmarks); ' +
      'latency is measured on the autotuning machine, not on a Pi',
  },
  {
    name: 'jetson-nano-gpu',
    description:
      'NVIDIA Jetson Nano (128-core Maxwell GPU), onnxruntime-node with the CUDA execution provider',
    runtime: 'onnxruntime-node-gpu',
    executionProviders: ['cuda', 'cpu'],
    threads: 1,
    graphOptimizationLevel: 'all',
    memoryBudgetBytes: 1024 * MiB,
    // Estimate: NVIDIA's 10 W (MAXN) power mode of the Jetson Nano module, used as active power; idle not
    // published by NVIDIA, so the whole 10 W is counted (an upper bound).
    powerWatts: 10,
    notes:
      'power is an estimate: NVIDIA’s 10 W MAXN power mode; needs a CUDA device and ORT’s CUDA provider to measure',
  },
  {
    name: 'browser-wasm',
    description:
      'A web browser running onnxruntime-web on its WASM backend, 1 thread (no cross-origin isolation)',
    runtime: 'onnxruntime-web',
    executionProviders: ['wasm'],
    threads: 1,
    graphOptimizationLevel: 'all',
    // What a tab can comfortably take on a mid-range phone or laptop.
    memoryBudgetBytes: 256 * MiB,
    // Estimate: a laptop CPU package at ~15 W while one core is busy vs ~5 W idle (typical 15 W-class mobile
    // CPU TDP, e.g. Intel U-series); varies a lot between devices.
    powerWatts: 15,
    idlePowerWatts: 5,
    notes:
      'power is an estimate: a 15 W-class laptop CPU, 5 W idle; measured with onnxruntime-web’s WASM backend in Node',
  },
];

const builtins: ReadonlyMap<string, HardwareProfile> = new Map(
  BUILTIN.map((p) => {
    const parsed = parseProfile(p);
    return [parsed.name, parsed];
  }),
);

/**
 * Names of the built-in profiles.
 *
 * @example
 * builtinProfileNames(); // ['cpu-x86-1t', 'cpu-x86-2t', 'rpi4-cpu', 'jetson-nano-gpu', 'browser-wasm']
 */
export function builtinProfileNames(): string[] {
  return [...builtins.keys()];
}

/**
 * A built-in profile by name (a fresh copy); unknown names are NOT_FOUND listing the known ones.
 *
 * @example
 * const p = builtinProfile('rpi4-cpu'); // p.threads === 4
 */
export function builtinProfile(name: string): HardwareProfile {
  const p = builtins.get(name);
  if (!p) {
    throw new OutpostError(
      'NOT_FOUND',
      `no built-in profile ${JSON.stringify(name)} (known: ${builtinProfileNames().join(', ')})`,
    );
  }
  return structuredClone(p);
}

/**
 * Resolves a CLI `--target`: a built-in profile name, or else a path to a JSON profile file.
 *
 * @example
 * await resolveProfile('browser-wasm');
 * await resolveProfile('./profiles/my-board.json');
 */
export async function resolveProfile(target: string): Promise<HardwareProfile> {
  if (builtins.has(target)) return builtinProfile(target);
  if (!/[/\\]|\.json$/i.test(target)) {
    throw new OutpostError(
      'NOT_FOUND',
      `unknown profile ${JSON.stringify(target)}: use one of ${builtinProfileNames().join(', ')} or a .json file`,
    );
  }
  return loadProfileFile(target);
}
