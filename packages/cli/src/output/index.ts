import cliProgress from 'cli-progress';
import type { OutpostError } from '@outpost/protocol';
import { ERROR_REGISTRY, toOutpostError } from '@outpost/protocol';

/**
 * Terminal output helpers: aligned tables, progress bars that degrade to nothing when stdout is not a TTY
 * (CI logs stay readable), and the one place where errors become exit codes.
 */

export function table(rows: readonly (readonly (string | number)[])[], header?: readonly string[]): string {
  const all = header ? [header, ...rows] : rows;
  const widths: number[] = [];
  for (const r of all) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, String(c).length)));
  const line = (r: readonly (string | number)[]) =>
    r
      .map((c, i) => (typeof c === 'number' ? String(c).padStart(widths[i]!) : String(c).padEnd(widths[i]!)))
      .join('  ');
  const out = all.map(line);
  if (header) out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return out.join('\n');
}

export interface Progress {
  update(done: number, total?: number): void;
  stop(): void;
}

/** A progress bar on stderr; a no-op when stderr is not a terminal. */
export function progress(label: string, total: number): Progress {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      format: `${label.padEnd(28)} [{bar}] {percentage}% {value}/{total} {eta_formatted}`,
      stream: process.stderr,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return {
    update(done, t) {
      if (t !== undefined && t !== total) bar.setTotal((total = t));
      bar.update(done);
    },
    stop() {
      bar.stop();
    },
  };
}

/** Exit codes: 2 for bad input, 3 for a retryable failure, 1 for everything else. */
export function exitCodeFor(err: OutpostError): number {
  if (err.status === 400 || err.status === 422 || err.status === 404 || err.status === 413) return 2;
  return err.retryable ? 3 : 1;
}

export function reportError(err: unknown, json: boolean): number {
  const e = toOutpostError(err);
  if (json) process.stdout.write(`${JSON.stringify({ error: e.toBody() })}\n`);
  else {
    process.stderr.write(`error ${e.code}: ${e.message}\n`);
    if (e.code === 'INTERNAL' && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    else process.stderr.write(`  (${ERROR_REGISTRY[e.code].description})\n`);
  }
  return exitCodeFor(e);
}

export const fmtBytes = (n: number) =>
  n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
export const fmtMs = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(3));
