import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createLogger } from '@outpost/common';
import { telemetryReport, type TelemetryReport } from '@outpost/protocol';
import {
  LatencyWindow,
  percentile,
  RESERVOIR_SIZE,
  TelemetryCollector,
  TelemetryPublisher,
} from './index.ts';

describe('latency summaries', () => {
  test('percentiles are nearest-rank and bounded by min and max', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1e4, noNaN: true }), { minLength: 1, maxLength: 300 }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        (xs, q) => {
          const sorted = [...xs].sort((a, b) => a - b);
          const p = percentile(sorted, q);
          const atOrBelow = sorted.filter((v) => v <= p).length;
          assert.ok(atOrBelow / sorted.length >= q - 1e-9, 'at least q of the values are <= p');
          assert.ok(sorted.filter((v) => v < p).length / sorted.length < q + 1e-9, 'fewer than q are < p');
        },
      ),
    );
  });

  test('count, mean and max are exact, also past the reservoir', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1000, noNaN: true }), { maxLength: 50 }), (xs) => {
        const w = new LatencyWindow();
        xs.forEach((x) => w.add(x));
        const s = w.summary();
        assert.equal(s.count, xs.length);
        assert.equal(s.max, xs.length ? Math.max(...xs) : 0);
        const mean = xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
        assert.ok(Math.abs(s.mean - mean) < 1e-6);
        assert.ok(s.p50 <= s.p95 && s.p95 <= s.p99 && s.p99 <= s.max);
      }),
    );
    const w = new LatencyWindow();
    for (let i = 1; i <= RESERVOIR_SIZE * 3; i++) w.add(i);
    const s = w.summary();
    assert.equal(s.count, RESERVOIR_SIZE * 3);
    assert.equal(s.max, RESERVOIR_SIZE * 3);
    // A uniform sample's median sits near the true median (1.5 × RESERVOIR_SIZE).
    assert.ok(Math.abs(s.p50 / (RESERVOIR_SIZE * 1.5) - 1) < 0.1, `p50 ${s.p50}`);
  });
});

describe('telemetry publisher', () => {
  test('publishes on traffic or heartbeat, keeps aggregating while offline, seq increases', () => {
    const collector = new TelemetryCollector();
    const sent: TelemetryReport[] = [];
    let connected = false;
    let seq = 0;
    const pub = new TelemetryPublisher({
      deviceId: 'dev-1',
      intervalMs: 1000,
      collector,
      nextSeq: () => seq++,
      isConnected: () => connected,
      publish: (r) => sent.push(r),
      log: createLogger('test'),
      heartbeatMs: 60_000,
    });
    const t0 = Date.now();
    collector.record('mnist', '1.0.0', 2);
    collector.recordError('mnist', '1.0.0');
    assert.equal(pub.tick(t0), null, 'offline: nothing sent');
    collector.record('mnist', '1.0.0', 4);
    connected = true;
    const r = pub.tick(t0 + 1000);
    assert.ok(r);
    assert.ok(telemetryReport.safeParse(r).success);
    assert.deepEqual(
      r.models.map((m) => [m.name, m.requests, m.errors, m.latencyMs.count, m.latencyMs.max]),
      [['mnist', 3, 1, 2, 4]],
      'the offline window was kept',
    );
    assert.equal(pub.tick(t0 + 2000), null, 'no traffic, heartbeat not due');
    const hb = pub.tick(t0 + 62_000);
    assert.ok(hb);
    assert.deepEqual(hb.models, []);
    assert.deepEqual(
      sent.map((s) => s.seq),
      [0, 1],
    );
    assert.equal(collector.latency('mnist')?.count, 2, 'status keeps the last window');
  });
});
