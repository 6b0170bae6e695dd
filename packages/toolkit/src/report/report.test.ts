import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { AutotuneResult, CandidateResult } from '../autotune/index.ts';
import { builtinProfile } from '../profiles/index.ts';
import {
  REPORT_VERSION,
  escapeHtml,
  optimizationReportJson,
  parseOptimizationReport,
  renderReportHtml,
  variantFileName,
} from './index.ts';

const EVIL = `<script>alert("x")</script><img src="https://evil.example/x.png" onerror='y'>`;
const SHA = 'a'.repeat(64);

function measured(
  id: string,
  p50Ms: number,
  sizeBytes: number,
  drop: number,
  extra: Partial<CandidateResult> = {},
): CandidateResult {
  return {
    id,
    method: id === 'fp32' ? 'none' : 'dynamic-int8',
    settings: { weightType: 'uint8' },
    description: `variant ${id}`,
    status: 'measured',
    sizeBytes,
    sizeRatioVsFp32: sizeBytes / 400_000,
    sha256: SHA,
    metrics: {
      p50Ms,
      p95Ms: p50Ms * 1.1,
      p99Ms: p50Ms * 1.3,
      meanMs: p50Ms,
      latencySamples: 300,
      p50RatioVsFp32: p50Ms / 0.07,
      accuracy: 0.984 - drop / 100,
      accuracyDropPp: drop,
      top1AgreementWithFp32: 0.999,
      meanCosineVsFp32: 0.9999,
      peakRssDeltaBytes: 30 * 1024 * 1024,
      energyMjEstimate: p50Ms * 4,
      roundsFasterThanFp32: id === 'fp32' ? null : 2,
      sessionLoadMs: 5,
    },
    pareto: false,
    eligible: true,
    chosen: false,
    verdict: 'not chosen',
    ...extra,
  };
}

function synthetic(): AutotuneResult {
  return {
    model: { name: `mnist${EVIL}`, sha256: SHA, sizeBytes: 400_000 },
    profile: builtinProfile('cpu-x86-1t'),
    settings: {
      objective: 'latency',
      maxAccuracyDropPp: 0.5,
      iterations: 300,
      rounds: 10,
      warmup: 30,
      threadsUsed: 1,
      memoryMethod: 'child-process-peak-rss-delta',
      latencyMethod: 'batch 1',
      calibSamples: 200,
      evalSamples: 2000,
      candidates: ['fp32', 'dynamic-u8', `evil-${EVIL}`, 'static-broken'],
    },
    measurable: true,
    candidates: [
      measured('fp32', 0.07, 400_000, 0, { pareto: true, chosen: true, verdict: 'chosen: fastest' }),
      measured('dynamic-u8', 0.11, 110_000, 0, {
        pareto: true,
        verdict: 'not chosen: 1.56× slower than fp32',
      }),
      measured(`evil-${EVIL}`, 0.2, 120_000, 1.2, { eligible: false, verdict: `rejected: ${EVIL}` }),
      {
        id: 'static-broken',
        method: 'static-int8',
        settings: {},
        description: 'broken',
        status: 'failed',
        error: { code: 'ONNX_UNSUPPORTED', stage: 'build', message: `unsupported ${EVIL}` },
        pareto: false,
        eligible: false,
        chosen: false,
        verdict: 'failed at build: ONNX_UNSUPPORTED',
      },
    ],
    chosen: 'fp32',
    chosenReason: 'fastest eligible variant',
    findings: ['dynamic-u8 is 1.56× slower than fp32 on cpu-x86-1t: not chosen for latency', `note ${EVIL}`],
    machine: {
      cpuModel: 'AMD EPYC',
      cores: 2,
      availableParallelism: 2,
      totalMemoryBytes: 8 << 30,
      platform: 'linux',
      arch: 'x64',
      node: 'v20',
      runtimes: { 'onnxruntime-node': '1.30.0' },
    },
    startedAt: '2026-01-01T00:00:00.000Z',
    durationMs: 1234.5,
    models: { fp32: new Uint8Array(4) },
  };
}

describe('optimization report JSON', () => {
  test('versioned, stable keys, nulls for absent values, round-trips through its schema', () => {
    const r = synthetic();
    const json = optimizationReportJson(r);
    assert.equal(json.format, 'outpost-optimization-report');
    assert.equal(json.version, REPORT_VERSION);
    assert.equal(json.source.sha256, SHA);
    assert.equal(json.choice.id, 'fp32');
    assert.deepEqual(json.choice.optimization, {
      method: 'none',
      settings: { weightType: 'uint8' },
      sourceSha256: SHA,
    });
    assert.match(json.choice.fileName ?? '', /^mnist_script_alert[A-Za-z0-9._-]*\.fp32\.onnx$/);
    const failed = json.candidates[3];
    assert.equal(failed?.metrics, null);
    assert.equal(failed?.sizeBytes, null);
    assert.equal(failed?.error?.code, 'ONNX_UNSUPPORTED');
    // Same key set for measured and failed candidates; no model bytes in the report.
    assert.deepEqual(Object.keys(json.candidates[0] ?? {}), Object.keys(failed ?? {}));
    const text = JSON.stringify(json);
    assert.ok(!text.includes('"models"'));
    assert.deepEqual(parseOptimizationReport(text), json);
    assert.equal(JSON.stringify(optimizationReportJson(r)), text, 'deterministic');
  });

  test('wrong version, format or shape is rejected', () => {
    const json = optimizationReportJson(synthetic());
    assert.throws(() => parseOptimizationReport(JSON.stringify({ ...json, version: 2 })), {
      code: 'VALIDATION_FAILED',
    });
    assert.throws(() => parseOptimizationReport(JSON.stringify({ ...json, format: 'x' })), {
      code: 'VALIDATION_FAILED',
    });
    assert.throws(() => parseOptimizationReport(JSON.stringify({ ...json, candidates: [] })), {
      code: 'VALIDATION_FAILED',
    });
    assert.throws(() => parseOptimizationReport('{"format":'), { code: 'MALFORMED_MESSAGE' });
  });

  test('variant file names are always safe', () => {
    fc.assert(
      fc.property(fc.string(), (name) => {
        const f = variantFileName(name, 'dynamic-u8');
        assert.match(f, /^[A-Za-z0-9][A-Za-z0-9._-]*\.dynamic-u8\.onnx$/);
        assert.ok(!f.includes('..') && !f.includes('/'));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('optimization report HTML', () => {
  const html = renderReportHtml(synthetic());

  test('self-contained: no scripts, no external resources', () => {
    assert.ok(!/<script/i.test(html), 'no script element');
    assert.ok(!/\s(src|href)\s*=\s*["']?\s*(https?:)?\/\//i.test(html), 'no remote src/href');
    assert.ok(!/<link\b/i.test(html) && !/@import/i.test(html) && !/url\(/i.test(html));
    assert.ok(
      !/https?:\/\//i.test(html.replaceAll(escapeHtml('https://evil.example/x.png'), '')),
      'no URL at all',
    );
    assert.match(html, /<style>/);
    assert.match(html, /<svg [^>]*viewBox/);
  });

  test('every string from the report is escaped', () => {
    assert.ok(!html.includes(EVIL));
    assert.ok(!html.includes('<img'));
    assert.ok(html.includes(escapeHtml(`evil-${EVIL}`)));
    assert.ok(html.includes(`data-candidate="${escapeHtml(`evil-${EVIL}`)}"`));
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  test('a row for every candidate, the chosen one marked, the front highlighted, findings listed', () => {
    const r = synthetic();
    const rows = html.match(/<tr data-candidate=/g) ?? [];
    assert.equal(rows.length, r.candidates.length);
    for (const c of r.candidates) assert.ok(html.includes(`data-candidate="${escapeHtml(c.id)}"`), c.id);
    assert.match(html, /<tr data-candidate="fp32" class="chosen">/);
    assert.match(html, />1 ★ fp32</);
    assert.equal((html.match(/class="pt pareto/g) ?? []).length, 2 + 1 /* legend */);
    assert.match(html, /class="pt ineligible"/);
    assert.ok(html.includes('dynamic-u8 is 1.56× slower than fp32 on cpu-x86-1t: not chosen for latency'));
    assert.ok(html.includes('ONNX_UNSUPPORTED'));
    // The same page comes from the parsed JSON report.
    assert.equal(renderReportHtml(optimizationReportJson(r)), html);
  });
});
