/**
 * Nearest-rank percentile of an ascending array, `q` in (0, 1]; 0 for an empty array. One definition for the
 * toolkit's benchmarks, the agent's telemetry and the CLI's reports, so their p99s mean the same thing.
 *
 * @example
 * percentile([1, 2, 3, 4], 0.5); // 2
 */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? 0;
}
