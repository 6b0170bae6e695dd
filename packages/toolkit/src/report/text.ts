import type { AutotuneResult } from '../autotune/index.ts';
import { optimizationReportJson } from './json.ts';
import type { OptimizationReport } from './json.ts';

/** Plain-text rendering of a report for terminals and benchmark logs. */

const MiB = 1024 * 1024;
const bytes = (n: number | null) =>
  n === null ? '—' : n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
const ms = (n: number) => (n >= 10 ? n.toFixed(1) : n.toFixed(4));

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const last = headers.length - 1;
  const line = (cells: string[]) =>
    cells
      .map((c, i) =>
        i === 0 || i === last ? c.padEnd(i === last ? 0 : (widths[i] ?? 0)) : c.padStart(widths[i] ?? 0),
      )
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * The candidate table of a report (one row per candidate, the chosen one starred), then the choice and
 * the findings.
 *
 * @example
 * console.log(formatReportTable(result));
 */
export function formatReportTable(input: AutotuneResult | OptimizationReport): string {
  const r: OptimizationReport = 'format' in input ? input : optimizationReportJson(input);
  const rows = r.candidates.map((c) => {
    const m = c.metrics;
    return [
      `${c.chosen ? '* ' : '  '}${c.id}`,
      c.status === 'failed' ? `failed:${c.error?.code ?? ''}` : c.status,
      bytes(c.sizeBytes),
      c.sizeRatioVsFp32 === null ? '—' : c.sizeRatioVsFp32.toFixed(3),
      m ? ms(m.p50Ms) : '—',
      m ? ms(m.p99Ms) : '—',
      m ? `${m.p50RatioVsFp32.toFixed(2)}×` : '—',
      m?.roundsFasterThanFp32 == null ? '—' : `${m.roundsFasterThanFp32}/${r.settings.rounds}`,
      m ? `${(m.accuracy * 100).toFixed(2)} %` : '—',
      m ? m.accuracyDropPp.toFixed(2) : '—',
      m ? `${(m.top1AgreementWithFp32 * 100).toFixed(2)} %` : '—',
      m ? bytes(m.peakRssDeltaBytes) : '—',
      m ? m.energyMjEstimate.toFixed(4) : '—',
      c.pareto ? 'yes' : '',
      c.verdict,
    ];
  });
  const head = `${r.source.name} on ${r.profile.name} (${r.profile.runtime}, ${r.settings.threadsUsed ?? '—'} thread(s)); objective ${r.settings.objective}, accuracy budget ${r.settings.maxAccuracyDropPp} pp`;
  const t = table(
    [
      'variant',
      'status',
      'size',
      'size ×',
      'p50 ms',
      'p99 ms',
      'p50 ×',
      'won',
      'accuracy',
      'drop pp',
      'top-1 agr',
      'peak mem',
      'mJ (est.)',
      'Pareto',
      'verdict',
    ],
    rows,
  );
  const choice = r.choice.id
    ? `chosen: ${r.choice.id} — ${r.choice.reason}`
    : `no variant chosen — ${r.choice.reason}`;
  return `${head}\n\n${t}\n\n${choice}\n\nfindings:\n${r.findings.map((f) => `  - ${f}`).join('\n')}`;
}
