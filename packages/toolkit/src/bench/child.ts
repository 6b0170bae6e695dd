import { fork } from 'node:child_process';
import { OutpostError, isErrorCode } from '@outpost/protocol';
import type { BenchOptions, BenchResult } from './bench.ts';

/** Messages the runner child sends back over the IPC channel. */
export type RunnerMessage =
  | { type: 'progress'; done: number; total: number }
  | { type: 'result'; result: BenchResult }
  | { type: 'error'; code: string; message: string };

/** What the parent sends the runner: the model path and the benchmark options minus callbacks. */
export interface RunnerRequest {
  modelPath: string;
  opts: Omit<BenchOptions, 'onProgress'>;
}

export interface ChildBenchOptions extends BenchOptions {
  /** Kill the child and fail with INFERENCE_FAILED after this long (default: no limit). */
  timeoutMs?: number;
}

function tsxImport(): string {
  // The runner is TypeScript like the rest of the toolkit: load it through tsx's ESM hooks.
  try {
    return import.meta.resolve('tsx');
  } catch {
    return 'tsx';
  }
}

/**
 * Runs {@link benchmark} in a fresh Node process so that `peakRssBytes` measures this model only (plus
 * the runtime baseline reported as `rssBeforeLoadBytes`), not whatever the caller had allocated.
 * Progress is relayed over IPC; errors come back with their Outpost code; a crashed child is
 * INFERENCE_FAILED.
 *
 * @example
 * const r = await benchmarkInChild('model.int8.onnx', { iterations: 300, onProgress: (d, t) => bar.update(d / t) });
 */
export function benchmarkInChild(modelPath: string, opts: ChildBenchOptions = {}): Promise<BenchResult> {
  const { onProgress, timeoutMs, ...rest } = opts;
  const runner = new URL('./runner.ts', import.meta.url);
  return new Promise<BenchResult>((resolve, reject) => {
    const child = fork(runner, [], {
      execArgv: ['--import', tsxImport()],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    });
    let stderr = '';
    let settled = false;
    const finish = (err: Error | null, result?: BenchResult) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill();
      if (err) reject(err);
      else resolve(result as BenchResult);
    };
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(
            () =>
              finish(
                new OutpostError(
                  'INFERENCE_FAILED',
                  `benchmark of ${modelPath} timed out after ${timeoutMs} ms`,
                ),
              ),
            timeoutMs,
          );
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.on('message', (raw) => {
      const msg = raw as RunnerMessage;
      if (msg.type === 'progress') onProgress?.(msg.done, msg.total);
      else if (msg.type === 'result') finish(null, msg.result);
      else if (msg.type === 'error') {
        finish(new OutpostError(isErrorCode(msg.code) ? msg.code : 'INTERNAL', msg.message));
      }
    });
    child.on('error', (err) =>
      finish(new OutpostError('INFERENCE_FAILED', `benchmark child: ${err.message}`)),
    );
    child.on('exit', (code, signal) => {
      finish(
        new OutpostError(
          'INFERENCE_FAILED',
          `benchmark child exited (${signal ?? code}) before reporting${stderr ? `: ${stderr.trim()}` : ''}`,
        ),
      );
    });
    const request: RunnerRequest = { modelPath, opts: rest };
    child.send(request);
  });
}
