import type { AutotuneResult } from '../autotune/index.ts';
import { optimizationReportJson } from './json.ts';
import type { CandidateReport, OptimizationReport } from './json.ts';

/**
 * A self-contained HTML page for an optimization report: inline CSS, an inline SVG latency-vs-size
 * scatter (colour = accuracy drop, Pareto front outlined in blue, chosen variant ringed), the candidate table and
 * the findings. No scripts, no external fonts, images or style sheets: it can be archived next to the
 * model and opened offline. Every string from the report is HTML-escaped.
 */

/**
 * Escapes text for HTML element content and attribute values.
 *
 * @example
 * escapeHtml('<b>"x"</b>'); // '&lt;b&gt;&quot;x&quot;&lt;/b&gt;'
 */
export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const MiB = 1024 * 1024;
const fmtBytes = (n: number | null) =>
  n === null
    ? '—'
    : n >= MiB
      ? `${(n / MiB).toFixed(2)} MiB`
      : n >= 1024
        ? `${(n / 1024).toFixed(1)} KiB`
        : `${n} B`;
const fmtMs = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : n.toFixed(4));
const pct = (n: number) => `${(n * 100).toFixed(2)} %`;

/**
 * Colour for an accuracy drop: green at ≤ 0, amber at the budget, red at twice the budget and beyond.
 *
 * @example
 * dropColour(0, 0.5); // 'hsl(130, 65%, 45%)'
 */
export function dropColour(dropPp: number, budgetPp: number): string {
  const b = Math.max(budgetPp, 0.1);
  const t = Math.min(1, Math.max(0, dropPp / (2 * b)));
  const hue = Math.round(130 * (1 - t)); // 130 = green, 0 = red
  return `hsl(${hue}, 65%, 45%)`;
}

/**
 * Axis scale with round tick values: about five steps covering [min, max] (from 0 when min is near it).
 *
 * @example
 * niceScale(0.05, 0.17); // { lo: 0, hi: 0.2, step: 0.05 }
 */
export function niceScale(min: number, max: number): { lo: number; hi: number; step: number } {
  if (!(max > 0)) return { lo: 0, hi: 1, step: 0.2 };
  const from = min < 0.35 * max ? 0 : min;
  const raw = (max - from) / 5 || max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((k) => k * p >= raw) ?? 10) * p;
  const lo = Math.floor((from === 0 ? 0 : from - step / 2) / step) * step;
  let hi = Math.ceil((max + step / 2) / step) * step;
  if (hi <= lo) hi = lo + step;
  return { lo: Math.max(0, lo), hi, step };
}

/** A tick value with as many decimals as its step needs. */
function tick(v: number, step: number): string {
  return v.toFixed(step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9)));
}

type Plotted = CandidateReport & { metrics: NonNullable<CandidateReport['metrics']>; sizeBytes: number };

function chart(r: OptimizationReport): string {
  const pts = r.candidates
    .map((c, i) => ({ c, n: i + 1 }))
    .filter((e): e is { c: Plotted; n: number } => e.c.metrics !== null && e.c.sizeBytes !== null);
  if (pts.length === 0) {
    return `<p class="note">No chart: no candidate could be measured on ${escapeHtml(r.profile.name)}${
      r.notMeasurableReason ? ` (${escapeHtml(r.notMeasurableReason)})` : ''
    }.</p>`;
  }
  const W = 760;
  const H = 420;
  const m = { l: 70, r: 150, t: 20, b: 50 };
  const lat = pts.map((e) => e.c.metrics.p50Ms);
  const kib = pts.map((e) => e.c.sizeBytes / 1024);
  const sx = niceScale(Math.min(...lat), Math.max(...lat));
  const sy = niceScale(0, Math.max(...kib));
  const x = (v: number) => m.l + ((v - sx.lo) / (sx.hi - sx.lo)) * (W - m.l - m.r);
  const y = (v: number) => H - m.b - ((v - sy.lo) / (sy.hi - sy.lo)) * (H - m.t - m.b);
  const parts: string[] = [];
  for (let v = sx.lo; v <= sx.hi + sx.step / 1e6; v += sx.step) {
    parts.push(
      `<line class="grid" x1="${x(v).toFixed(1)}" y1="${m.t}" x2="${x(v).toFixed(1)}" y2="${H - m.b}"/>`,
      `<text class="tick" x="${x(v).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">${tick(v, sx.step)}</text>`,
    );
  }
  for (let v = sy.lo; v <= sy.hi + sy.step / 1e6; v += sy.step) {
    parts.push(
      `<line class="grid" x1="${m.l}" y1="${y(v).toFixed(1)}" x2="${W - m.r}" y2="${y(v).toFixed(1)}"/>`,
      `<text class="tick" x="${m.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${tick(v, sy.step)}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}"/>`,
    `<line class="axis" x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}"/>`,
    `<text class="label" x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">p50 latency, batch 1 (ms)</text>`,
    `<text class="label" transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">size (KiB)</text>`,
  );
  // Points carry their row number (ids would collide when variants sit on top of each other); labels
  // try a few spots around the point and take the first that overlaps no earlier label.
  const placed: { x: number; y: number; w: number }[] = [];
  const free = (bx: number, by: number, w: number) =>
    !placed.some((b) => Math.abs(b.y - by) < 12 && bx < b.x + b.w + 2 && b.x < bx + w + 2);
  const labelAt = (px: number, py: number, w: number): [number, number] => {
    const spots: [number, number][] = [
      [px + 10, py + 4],
      [px + 10, py - 9],
      [px + 10, py + 17],
      [px - 10 - w, py + 4],
      [px - 10 - w, py - 9],
      [px - 10 - w, py + 17],
    ];
    for (let k = 0; k < 40; k++) {
      for (const [bx, by] of spots) {
        const sxk = bx + (bx > px ? k * 14 : -k * 14);
        if (free(sxk, by, w)) {
          placed.push({ x: sxk, y: by, w });
          return [sxk, by];
        }
      }
    }
    return [px + 10, py + 4];
  };
  // Draw order: plain points, then the Pareto front, then the chosen one, so highlights stay on top.
  const rank = (c: CandidateReport) => (c.chosen ? 2 : c.pareto ? 1 : 0);
  for (const { c, n } of [...pts].sort((a, b) => rank(a.c) - rank(b.c))) {
    const cx = x(c.metrics.p50Ms);
    const cy = y(c.sizeBytes / 1024);
    const fill = dropColour(c.metrics.accuracyDropPp, r.settings.maxAccuracyDropPp);
    const cls = ['pt', c.pareto ? 'pareto' : '', c.eligible ? '' : 'ineligible'].filter(Boolean).join(' ');
    const title = `${n}. ${c.id}: p50 ${fmtMs(c.metrics.p50Ms)} ms, ${fmtBytes(c.sizeBytes)}, accuracy ${pct(c.metrics.accuracy)} (drop ${c.metrics.accuracyDropPp.toFixed(2)} pp)${c.pareto ? ', on the Pareto front' : ''}${c.eligible ? '' : ', over budget'}`;
    if (c.chosen)
      parts.push(`<circle class="chosen-ring" cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="13"/>`);
    parts.push(
      `<circle class="${cls}" cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="7" fill="${fill}"><title>${escapeHtml(title)}</title></circle>`,
    );
    const text = c.chosen ? `${n} ★ ${c.id}` : String(n);
    const [lx, ly] = labelAt(cx, cy, text.length * 6.5);
    parts.push(
      `<text class="pt-label${c.chosen ? ' chosen' : ''}" x="${lx.toFixed(1)}" y="${ly.toFixed(1)}">${escapeHtml(text)}</text>`,
    );
  }
  // Legend: accuracy-drop colour scale and the marks.
  const lx = W - m.r + 20;
  const b = r.settings.maxAccuracyDropPp;
  const legend = [0, b / 2, b, 1.5 * b, 2 * b].map(
    (d, i) =>
      `<rect x="${lx}" y="${m.t + 20 + i * 18}" width="14" height="14" fill="${dropColour(d, b)}"/>` +
      `<text class="tick" x="${lx + 20}" y="${m.t + 32 + i * 18}">${i === 4 ? '≥ ' : ''}${d.toFixed(2)} pp</text>`,
  );
  parts.push(
    `<text class="tick" x="${lx}" y="${m.t + 12}">accuracy drop</text>`,
    ...legend,
    `<circle class="pt pareto" cx="${lx + 7}" cy="${m.t + 125}" r="6" fill="#fff"/>`,
    `<text class="tick" x="${lx + 20}" y="${m.t + 129}">Pareto front</text>`,
    `<circle class="chosen-ring" cx="${lx + 7}" cy="${m.t + 147}" r="7"/>`,
    `<text class="tick" x="${lx + 20}" y="${m.t + 151}">chosen</text>`,
    `<circle class="pt ineligible" cx="${lx + 7}" cy="${m.t + 169}" r="6" fill="#999"/>`,
    `<text class="tick" x="${lx + 20}" y="${m.t + 173}">over budget</text>`,
  );
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="latency versus size of each candidate">${parts.join('')}</svg>`;
}

function row(c: CandidateReport, i: number, rounds: number): string {
  const mt = c.metrics;
  const cells = [
    `<td class="n">${i + 1}</td>`,
    `<td class="id">${escapeHtml(c.id)}${c.chosen ? ' <span class="badge">chosen</span>' : ''}</td>`,
    `<td>${escapeHtml(c.method)}</td>`,
    `<td>${escapeHtml(c.status)}${c.error ? ` <code>${escapeHtml(c.error.code)}</code>` : ''}</td>`,
    `<td class="n">${fmtBytes(c.sizeBytes)}</td>`,
    `<td class="n">${c.sizeRatioVsFp32 === null ? '—' : c.sizeRatioVsFp32.toFixed(3)}</td>`,
    `<td class="n">${mt ? fmtMs(mt.p50Ms) : '—'}</td>`,
    `<td class="n">${mt ? fmtMs(mt.p99Ms) : '—'}</td>`,
    `<td class="n${mt && mt.p50RatioVsFp32 >= 1 && c.id !== 'fp32' ? ' slow' : ''}">${mt ? `${mt.p50RatioVsFp32.toFixed(2)}×` : '—'}</td>`,
    `<td class="n">${mt?.roundsFasterThanFp32 == null ? '—' : `${mt.roundsFasterThanFp32}/${rounds}`}</td>`,
    `<td class="n">${mt ? pct(mt.accuracy) : '—'}</td>`,
    `<td class="n">${mt ? mt.accuracyDropPp.toFixed(2) : '—'}</td>`,
    `<td class="n">${mt ? pct(mt.top1AgreementWithFp32) : '—'}</td>`,
    `<td class="n">${mt ? fmtBytes(mt.peakRssDeltaBytes) : '—'}</td>`,
    `<td class="n">${mt ? mt.energyMjEstimate.toFixed(4) : '—'}</td>`,
    `<td>${c.pareto ? '●' : ''}</td>`,
    `<td>${escapeHtml(c.verdict)}${c.error ? `<div class="err">${escapeHtml(c.error.message)}</div>` : ''}</td>`,
  ];
  const cls = [c.chosen ? 'chosen' : '', c.status !== 'measured' ? 'unmeasured' : '']
    .filter(Boolean)
    .join(' ');
  return `<tr data-candidate="${escapeHtml(c.id)}"${cls ? ` class="${cls}"` : ''}>${cells.join('')}</tr>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2433;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.sub{color:#5a6375;margin:0 0 16px}.note{color:#5a6375}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e3e6ec;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f4f6f9;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.slow{color:#b3261e;font-weight:600}tr.chosen td{background:#eef8ee}tr.unmeasured td{color:#7a8292}
.badge{background:#2e7d32;color:#fff;border-radius:3px;padding:0 5px;font-size:11px}
.err{color:#b3261e;font-size:12px}code{font:12px ui-monospace,monospace}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}dt{color:#5a6375}dd{margin:0}
ul.findings li{margin:3px 0}
svg .grid{stroke:#eceff3}svg .axis{stroke:#5a6375}svg .tick{font-size:11px;fill:#5a6375}
svg .label{font-size:12px;fill:#1d2433}svg .pt{stroke:#1d2433;stroke-width:1}
svg .pt.pareto{stroke:#1565c0;stroke-width:3}svg .pt-label.chosen{font-weight:700}svg .pt.ineligible{fill-opacity:.35;stroke-dasharray:2 2}
svg .pt-label{font-size:11px;fill:#1d2433}svg .chosen-ring{fill:none;stroke:#2e7d32;stroke-width:3}
`;

/**
 * Renders a report (or an autotune result) as one self-contained HTML page.
 *
 * @example
 * await atomicWriteFile('out/report.html', renderReportHtml(result));
 */
export function renderReportHtml(input: AutotuneResult | OptimizationReport): string {
  const r: OptimizationReport = 'format' in input ? input : optimizationReportJson(input);
  const p = r.profile;
  const title = `Optimization report: ${r.source.name} on ${p.name}`;
  const choice = r.choice.id
    ? `Chosen: <strong>${escapeHtml(r.choice.id)}</strong> — ${escapeHtml(r.choice.reason)}`
    : `No variant chosen — ${escapeHtml(r.choice.reason)}`;
  const facts: [string, string][] = [
    ['source model', `${r.source.name} (${fmtBytes(r.source.sizeBytes)}), sha256 ${r.source.sha256}`],
    ['profile', `${p.name}: ${p.description}`],
    [
      'runtime',
      `${p.runtime} [${p.executionProviders.join(', ')}], ${p.threads} thread(s) asked, ${r.settings.threadsUsed ?? '—'} used, graph optimisation ${p.graphOptimizationLevel}`,
    ],
    [
      'budgets',
      `accuracy drop ≤ ${r.settings.maxAccuracyDropPp} pp, memory ≤ ${fmtBytes(p.memoryBudgetBytes)}`,
    ],
    ['objective', r.settings.objective],
    [
      'power (estimate)',
      `${p.powerWatts} W active, ${p.idlePowerWatts ?? 0} W idle${p.notes ? ` — ${p.notes}` : ''}`,
    ],
    ['latency method', r.settings.latencyMethod],
    ['memory method', r.settings.memoryMethod],
    ['data', `${r.settings.evalSamples} eval samples, ${r.settings.calibSamples} calibration samples`],
    [
      'machine',
      `${r.machine.cpuModel}, ${r.machine.cores} cores, ${fmtBytes(r.machine.totalMemoryBytes)}, ${r.machine.platform}/${r.machine.arch}, Node ${r.machine.node}, ${Object.entries(
        r.machine.runtimes,
      )
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    ],
    ['run', `${r.startedAt}, ${(r.durationMs / 1000).toFixed(1)} s`],
  ];
  const head = [
    '#',
    'variant',
    'method',
    'status',
    'size',
    'size ×',
    'p50 ms',
    'p99 ms',
    'p50 ×',
    'rounds won vs fp32',
    'accuracy',
    'drop pp',
    'top-1 agr',
    'peak mem',
    'energy mJ (est.)',
    'Pareto',
    'verdict',
  ];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="sub">${choice}</p>
<h2>Findings</h2>
<ul class="findings">${r.findings.map((f) => `<li>${escapeHtml(f)}</li>`).join('')}</ul>
<h2>Latency vs size</h2>
${chart(r)}
<h2>Candidates</h2>
<table>
<thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>
<tbody>
${r.candidates.map((c, i) => row(c, i, r.settings.rounds)).join('\n')}
</tbody>
</table>
<h2>Settings and machine</h2>
<dl>${facts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>
<p class="note">${escapeHtml(`${r.format} v${r.version}`)}. Latency and memory were measured on the machine above with the profile's runtime settings, not on the target device; energy figures are estimates.</p>
</body>
</html>
`;
}
