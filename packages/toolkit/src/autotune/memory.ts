import { fork } from 'node:child_process';
import { OutpostError, isErrorCode } from '@outpost/protocol';
import type { HardwareProfile } from '../profiles/index.ts';

/**
 * Peak memory of one candidate, measured in a fresh child process: the child loads the runtime, records
 * its RSS, opens the session with the profile's settings, runs a few inferences and reports its peak RSS
 * (getrusage maxrss). The difference — the memory the model adds on top of Node and the runtime library
 * — is what is checked against the profile's memory budget. It includes the runtime's lazy
 * initialisation that happens at first session creation (for onnxruntime-web: instantiating the WASM
 * module), which is the same for every candidate of a profile.
 */

export interface MemoryRequest {
  modelPath: string;
  profile: HardwareProfile;
  feed: Record<string, { data: number[]; dims: number[] }>;
  runs: number;
}

export interface MemoryResult {
  /** RSS of the child just before the session was created (Node + runtime library loaded). */
  rssBeforeBytes: number;
  /** Lifetime peak RSS of the child after load + runs. */
  peakRssBytes: number;
  /** peakRssBytes − rssBeforeBytes: what the model costs. */
  peakRssDeltaBytes: number;
}

export type MemoryMessage =
  { type: 'result'; result: MemoryResult } | { type: 'error'; code: string; message: string };

function tsxImport(): string {
  // The runner is TypeScript like the rest of the toolkit: load it through tsx's ESM hooks.
  try {
    return import.meta.resolve('tsx');
  } catch {
    return 'tsx';
  }
}

/**
 * Measures a model file's peak memory on a profile in a child process (see the module comment).
 *
 * @example
 * const m = await measureMemoryInChild({ modelPath, profile, feed, runs: 20 }, 60_000);
 */
export function measureMemoryInChild(req: MemoryRequest, timeoutMs = 120_000): Promise<MemoryResult> {
  const runner = new URL('./memory-runner.ts', import.meta.url);
  return new Promise<MemoryResult>((resolve, reject) => {
    const child = fork(runner, [], {
      execArgv: ['--import', tsxImport()],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    let stderr = '';
    let settled = false;
    const finish = (err: Error | null, result?: MemoryResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill();
      if (err) reject(err);
      else resolve(result as MemoryResult);
    };
    const timer = setTimeout(
      () =>
        finish(new OutpostError('INFERENCE_FAILED', `memory measurement timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.on('message', (raw) => {
      const msg = raw as MemoryMessage;
      if (msg.type === 'result') finish(null, msg.result);
      else finish(new OutpostError(isErrorCode(msg.code) ? msg.code : 'INTERNAL', msg.message));
    });
    child.on('error', (err) => finish(new OutpostError('INFERENCE_FAILED', `memory child: ${err.message}`)));
    child.on('exit', (code, signal) =>
      finish(
        new OutpostError(
          'INFERENCE_FAILED',
          `memory child exited (${signal ?? code}) before reporting${stderr ? `: ${stderr.trim()}` : ''}`,
        ),
      ),
    );
    child.send(req);
  });
}
