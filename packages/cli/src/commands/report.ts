import { readFile } from 'node:fs/promises';
import { atomicWriteFile } from '@outpost/common';
import { OutpostError } from '@outpost/protocol';
import { formatReportTable, parseOptimizationReport, renderReportHtml } from '@outpost/toolkit';

export interface ReportOptions {
  /** Write the HTML page here (atomically). */
  html?: string;
  json?: boolean;
}

/**
 * `outpost report <report.json>`: validates an optimization report, prints its candidate table (or the
 * report itself with --json) and re-renders the self-contained HTML page with --html.
 *
 * @example
 * await reportCommand('out/report.json', { html: 'out/report.html' });
 */
export async function reportCommand(reportJson: string, opts: ReportOptions): Promise<void> {
  let text: string;
  try {
    text = await readFile(reportJson, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new OutpostError(
      code === 'ENOENT' ? 'NOT_FOUND' : 'IO_FAILED',
      `cannot read ${reportJson}: ${code}`,
    );
  }
  const report = parseOptimizationReport(text);
  if (opts.html) await atomicWriteFile(opts.html, renderReportHtml(report));
  if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`${formatReportTable(report)}\n${opts.html ? `\nwrote ${opts.html}\n` : ''}`);
}
