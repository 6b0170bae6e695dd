import type { Logger } from '@outpost/common';
import type { LatencySummary, ModelTelemetry, TelemetryReport } from '@outpost/protocol';
import { LatencyWindow } from './summary.ts';

export { LatencyWindow, percentile, RESERVOIR_SIZE } from './summary.ts';

interface ModelWindow {
  name: string;
  version: string;
  requests: number;
  errors: number;
  latency: LatencyWindow;
}

/** Heartbeat: a report goes out at least this often even without traffic. */
export const HEARTBEAT_MS = 60_000;

/**
 * Per-model request, error and latency (time inside `session.run`) aggregation. A window is closed only when
 * its report is handed to the channel, so while the device is disconnected the window simply keeps growing
 * (bounded memory) instead of dropping data.
 *
 * @example
 * const t = new TelemetryCollector();
 * t.record('mnist', '1.0.0', 0.8);
 * t.take(); // { windowStart, windowEnd, models: [{ name: 'mnist', requests: 1, ... }] }
 */
export class TelemetryCollector {
  private windows = new Map<string, ModelWindow>();
  private windowStart = new Date();
  /** Last closed window per model name, for the local status endpoint. */
  private readonly recent = new Map<string, LatencySummary>();

  record(name: string, version: string, inferMs: number): void {
    const w = this.window(name, version);
    w.requests++;
    w.latency.add(inferMs);
  }

  recordError(name: string, version: string): void {
    const w = this.window(name, version);
    w.requests++;
    w.errors++;
  }

  hasTraffic(): boolean {
    return this.windows.size > 0;
  }

  /** Latency of the model over the current window, else the last closed one; null when never used. */
  latency(name: string): LatencySummary | null {
    let current: LatencySummary | null = null;
    for (const w of this.windows.values()) {
      if (w.name === name && w.latency.count > 0) current = w.latency.summary();
    }
    return current ?? this.recent.get(name) ?? null;
  }

  /** Closes the current window and returns its figures. */
  take(now = new Date()): { windowStart: string; windowEnd: string; models: ModelTelemetry[] } {
    const models = [...this.windows.values()].map((w) => ({
      name: w.name,
      version: w.version,
      requests: w.requests,
      errors: w.errors,
      latencyMs: w.latency.summary(),
    }));
    for (const m of models) if (m.latencyMs.count > 0) this.recent.set(m.name, m.latencyMs);
    const out = { windowStart: this.windowStart.toISOString(), windowEnd: now.toISOString(), models };
    this.windows = new Map();
    this.windowStart = now;
    return out;
  }

  private window(name: string, version: string): ModelWindow {
    const key = `${name}@${version}`;
    let w = this.windows.get(key);
    if (!w) {
      w = { name, version, requests: 0, errors: 0, latency: new LatencyWindow() };
      this.windows.set(key, w);
    }
    return w;
  }
}

export interface TelemetryPublisherOptions {
  deviceId: string;
  intervalMs: number;
  collector: TelemetryCollector;
  /** Next value of the persisted sequence. */
  nextSeq: () => number;
  isConnected: () => boolean;
  publish: (report: TelemetryReport) => void;
  log: Logger;
  heartbeatMs?: number;
}

/**
 * Every `intervalMs`, turns the collector's window into a telemetryReport when there was traffic (or the
 * heartbeat is due) and the channel is up. The sequence number is persisted, so it keeps increasing across
 * restarts and the server can drop duplicates by (deviceId, seq).
 *
 * @example
 * const pub = new TelemetryPublisher({ deviceId, intervalMs: 10_000, collector, nextSeq, isConnected, publish, log });
 * pub.start();
 */
export class TelemetryPublisher {
  private readonly opts: TelemetryPublisherOptions;
  private timer: NodeJS.Timeout | null = null;
  private lastSent = 0;

  constructor(opts: TelemetryPublisherOptions) {
    this.opts = opts;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One interval's work; returns the report it published, if any. */
  tick(now = Date.now()): TelemetryReport | null {
    const { collector } = this.opts;
    if (!this.opts.isConnected()) return null; // keep aggregating until the link is back
    const heartbeatDue = now - this.lastSent >= (this.opts.heartbeatMs ?? HEARTBEAT_MS);
    if (!collector.hasTraffic() && !heartbeatDue) return null;
    const window = collector.take(new Date(now));
    const report: TelemetryReport = {
      deviceId: this.opts.deviceId,
      seq: this.opts.nextSeq(),
      ...window,
      rssBytes: process.memoryUsage().rss,
    };
    try {
      this.opts.publish(report);
      this.lastSent = now;
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'telemetry publish failed');
    }
    return report;
  }
}
