import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MNIST_CNN, sileroModels } from '../testing/fixtures.ts';
import {
  benchmark,
  benchmarkInChild,
  formatBench,
  mulberry32,
  summarizeLatencies,
  syntheticFeeds,
} from './index.ts';

describe('summarizeLatencies', () => {
  test('nearest-rank percentiles, mean and throughput', () => {
    const ms = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
    const s = summarizeLatencies(ms.reverse(), 4);
    assert.equal(s.p50Ms, 50);
    assert.equal(s.p95Ms, 95);
    assert.equal(s.p99Ms, 99);
    assert.equal(s.minMs, 1);
    assert.equal(s.maxMs, 100);
    assert.equal(s.meanMs, 50.5);
    assert.ok(Math.abs(s.throughputPerSec - 4000 / 50.5) < 1e-9);
  });
});

describe('syntheticFeeds', () => {
  test('deterministic, symbolic dims take the batch', () => {
    const specs = [
      { name: 'x', dtype: 'float32' as const, shape: ['n', 3] },
      { name: 'sr', dtype: 'int64' as const, shape: [] },
    ];
    const a = syntheticFeeds(specs, 2);
    const b = syntheticFeeds(specs, 2);
    assert.deepEqual(a.x?.dims, [2, 3]);
    assert.deepEqual(a.x?.data, b.x?.data);
    assert.deepEqual(a.sr?.dims, []);
    const c = syntheticFeeds(specs, 2, { inputShapes: { x: [1, 5] }, inputFill: { sr: 16000 } });
    assert.deepEqual(c.x?.dims, [1, 5]);
    assert.deepEqual(c.sr?.data, new BigInt64Array([16000n]));
    const r = mulberry32(1);
    const v = r();
    assert.ok(v >= 0 && v < 1 && v !== r());
    assert.throws(() => syntheticFeeds([{ name: 's', dtype: 'string', shape: [1] }], 1), {
      code: 'ONNX_UNSUPPORTED',
    });
  });
});

describe('benchmark', () => {
  test('in-process: plausible latencies, progress covers warm-up and timed runs', async () => {
    const seen: [number, number][] = [];
    const r = await benchmark(MNIST_CNN, {
      warmup: 3,
      iterations: 30,
      onProgress: (d, t) => seen.push([d, t]),
    });
    assert.equal(seen.length, 33);
    assert.deepEqual(seen.at(-1), [33, 33]);
    assert.ok(r.p50Ms > 0 && r.p50Ms <= r.p95Ms && r.p95Ms <= r.p99Ms && r.p99Ms <= r.maxMs);
    assert.ok(r.throughputPerSec > 0);
    assert.ok(r.peakRssBytes >= r.rssBeforeLoadBytes && r.rssBeforeLoadBytes > 0);
    assert.ok(r.loadMs > 0);
    assert.match(formatBench(r), /latency p50\s+\d+\.\d{3} ms/);
  });

  test('batch > 1 fills the symbolic batch dimension', async () => {
    const r = await benchmark(MNIST_CNN, { warmup: 1, iterations: 5, batch: 8 });
    assert.equal(r.batch, 8);
    assert.ok(Math.abs(r.throughputPerSec - 8000 / r.meanMs) < 1e-6);
  });

  test('child process: result over IPC, memory attributed to a fresh process', async () => {
    let last = 0;
    const r = await benchmarkInChild(MNIST_CNN, { warmup: 2, iterations: 20, onProgress: (d) => (last = d) });
    assert.equal(last, 22);
    assert.equal(r.iterations, 20);
    assert.ok(r.p50Ms > 0);
    assert.ok(r.peakRssBytes > r.rssBeforeLoadBytes, 'loading a model must raise the peak RSS');
    // A fresh child's peak is far below 1 GiB for a 0.4 MB model.
    assert.ok(r.peakRssBytes < 1024 * 1024 * 1024);
  });

  test('child process: errors keep their Outpost code', async () => {
    await assert.rejects(benchmarkInChild('/nonexistent/model.onnx', { iterations: 1 }), {
      code: 'NOT_FOUND',
    });
    await assert.rejects(benchmarkInChild(MNIST_CNN, { iterations: 0 }), { code: 'VALIDATION_FAILED' });
  });

  test('a multi-input model (Silero VAD legacy) runs with synthetic inputs', async () => {
    const legacy = sileroModels().find((p) => p.includes('legacy'));
    assert.ok(legacy);
    const r = await benchmark(legacy, {
      warmup: 1,
      iterations: 3,
      inputShapes: { input: [1, 512] },
      inputFill: { sr: 16000 },
    });
    assert.ok(r.p50Ms > 0);
  });
});
