/**
 * Child-process entry of `benchmarkInChild`: receives one RunnerRequest over IPC, benchmarks, reports
 * progress/result/error messages and exits. Kept tiny so the baseline RSS stays small.
 */
import { toOutpostError } from '@outpost/protocol';
import { benchmark } from './bench.ts';
import type { RunnerMessage, RunnerRequest } from './child.ts';

function send(msg: RunnerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) resolve();
    else process.send(msg, undefined, {}, () => resolve());
  });
}

process.once('message', (raw) => {
  const req = raw as RunnerRequest;
  let last = 0;
  benchmark(req.modelPath, {
    ...req.opts,
    onProgress: (done, total) => {
      // Throttle IPC to ~100 messages per run: progress bars do not need more.
      if (done === total || done - last >= Math.max(1, Math.floor(total / 100))) {
        last = done;
        void send({ type: 'progress', done, total });
      }
    },
  })
    .then((result) => send({ type: 'result', result }))
    .catch((err: unknown) => {
      const e = toOutpostError(err);
      return send({ type: 'error', code: e.code, message: e.message });
    })
    .finally(() => process.disconnect?.());
});
