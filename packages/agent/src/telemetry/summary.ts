import { percentile } from '@outpost/common';
import type { LatencySummary } from '@outpost/protocol';

export { percentile };

/** Samples kept per window for percentiles; beyond this, reservoir sampling keeps a uniform subset. */
export const RESERVOIR_SIZE = 4096;

/**
 * Latency statistics of one window in bounded memory: count, mean and max are exact, percentiles come from a
 * uniform reservoir sample (exact while the window has at most RESERVOIR_SIZE requests).
 *
 * @example
 * const s = new LatencyWindow();
 * s.add(1.2); s.add(3.4);
 * s.summary(); // { count: 2, mean: 2.3, p50: 1.2, ... }
 */
export class LatencyWindow {
  count = 0;
  private sum = 0;
  private max = 0;
  private readonly samples: number[] = [];
  private readonly random: () => number;

  constructor(random: () => number = Math.random) {
    this.random = random;
  }

  add(ms: number): void {
    const v = Number.isFinite(ms) && ms > 0 ? ms : 0;
    this.count++;
    this.sum += v;
    if (v > this.max) this.max = v;
    if (this.samples.length < RESERVOIR_SIZE) this.samples.push(v);
    else {
      const j = Math.floor(this.random() * this.count);
      if (j < RESERVOIR_SIZE) this.samples[j] = v;
    }
  }

  summary(): LatencySummary {
    if (this.count === 0) return { count: 0, mean: 0, p50: 0, p95: 0, p99: 0, max: 0 };
    const sorted = [...this.samples].sort((a, b) => a - b);
    return {
      count: this.count,
      mean: this.sum / this.count,
      p50: percentile(sorted, 0.5),
      p95: percentile(sorted, 0.95),
      p99: percentile(sorted, 0.99),
      max: this.max,
    };
  }
}
