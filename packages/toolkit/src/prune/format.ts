import type { MagnitudeReport } from './magnitude.ts';
import type { FilterPruneReport } from './filters.ts';
import type { PruneSkip } from './types.ts';

/** Plain-text renderings of the pruning reports, for the CLI. */

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const arrow = (a: number, b: number) => (a === b ? String(a) : `${a} → ${b}`);

function skippedLines(skipped: PruneSkip[]): string {
  if (skipped.length === 0) return '';
  return `\nleft as they are (${skipped.length}):\n${skipped.map((s) => `  ${s.node} (${s.op}): ${s.reason}`).join('\n')}`;
}

/**
 * Table of a magnitude-pruning report.
 *
 * @example
 * console.log(formatMagnitudeReport(pruneMagnitude(model, { sparsity: 0.5 }).report));
 */
export function formatMagnitudeReport(r: MagnitudeReport): string {
  const rows = r.layers.map((l) => [l.node, l.op, String(l.params), String(l.zeroed), pct(l.sparsity)]);
  return (
    `${table(['node', 'op', 'weights', 'zeroed', 'sparsity'], rows)}\n` +
    `\n${r.scope} magnitude pruning: ${r.zeroed} of ${r.params} weights are zero (${pct(r.globalSparsity)}). ` +
    `Dense kernels do not get faster from zeros; the gzip size shrinks.` +
    skippedLines(r.skipped)
  );
}

/**
 * Table of a filter-pruning report: channels, parameters and MACs per compute layer, before → after.
 *
 * @example
 * console.log(formatFilterReport((await pruneFilters(model, { ratio: 0.5 })).report));
 */
export function formatFilterReport(r: FilterPruneReport): string {
  const rows = r.layers.map((l) => [
    l.node,
    l.op,
    arrow(l.inChannelsBefore, l.inChannelsAfter),
    arrow(l.outChannelsBefore, l.outChannelsAfter),
    arrow(l.paramsBefore, l.paramsAfter),
    arrow(l.macsBefore, l.macsAfter),
  ]);
  const ratio = (a: number, b: number) => (a ? (b / a).toFixed(3) : '—');
  return (
    `${table(['node', 'op', 'in ch', 'out ch', 'params', 'MACs/sample'], rows)}\n` +
    `\nremoved ${r.criterion.toUpperCase()}-smallest ${pct(r.ratio)} of the filters of ${r.pruned.length} conv(s)` +
    `\nparameters ${r.paramsBefore} → ${r.paramsAfter} (×${ratio(r.paramsBefore, r.paramsAfter)}), ` +
    `MACs ${r.macsBefore} → ${r.macsAfter} (×${ratio(r.macsBefore, r.macsAfter)}), ` +
    `file ${r.sizeBefore} → ${r.sizeAfter} bytes` +
    skippedLines(r.skipped)
  );
}
