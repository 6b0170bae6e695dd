/**
 * Child-process entry of `measureMemoryInChild`: one MemoryRequest in, one MemoryMessage out.
 * The runtime module is imported before the baseline RSS is taken so that only the model is measured.
 */
import { readFile } from 'node:fs/promises';
import { toOutpostError } from '@outpost/protocol';
import { openProfileSession } from '../profiles/index.ts';
import type { FloatFeed } from '../profiles/index.ts';
import type { MemoryMessage, MemoryRequest } from './memory.ts';

function send(msg: MemoryMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) resolve();
    else process.send(msg, undefined, {}, () => resolve());
  });
}

async function measure(req: MemoryRequest): Promise<MemoryMessage> {
  const bytes = new Uint8Array(await readFile(req.modelPath));
  const feed: Record<string, FloatFeed> = {};
  for (const [k, f] of Object.entries(req.feed)) feed[k] = { data: Float32Array.from(f.data), dims: f.dims };
  const rssBeforeBytes = process.memoryUsage.rss();
  const peakBefore = process.resourceUsage().maxRSS * 1024;
  // getrusage's peak also covers whatever happened before the baseline (tsx compiling, say); when the
  // model never pushes past that earlier peak, fall back to RSS sampled after load and after each run.
  let sampled = rssBeforeBytes;
  const session = await openProfileSession(bytes, req.profile);
  try {
    sampled = Math.max(sampled, process.memoryUsage.rss());
    for (let i = 0; i < req.runs; i++) {
      await session.run(feed);
      sampled = Math.max(sampled, process.memoryUsage.rss());
    }
  } finally {
    await session.release();
  }
  const peakAfter = process.resourceUsage().maxRSS * 1024;
  const peakRssBytes = peakAfter > peakBefore ? peakAfter : sampled;
  return {
    type: 'result',
    result: { rssBeforeBytes, peakRssBytes, peakRssDeltaBytes: Math.max(0, peakRssBytes - rssBeforeBytes) },
  };
}

process.once('message', (raw) => {
  measure(raw as MemoryRequest)
    .catch((err: unknown): MemoryMessage => {
      const e = toOutpostError(err);
      return { type: 'error', code: e.code, message: e.message };
    })
    .then(send)
    .finally(() => process.disconnect?.());
});
