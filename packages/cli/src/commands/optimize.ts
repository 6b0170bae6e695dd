import { open, rm, mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { commitFile, tempPathFor } from '@outpost/common';
import { OutpostError } from '@outpost/protocol';
import {
  autotune,
  decodeModel,
  formatReportTable,
  optimizationReportJson,
  readModelBytes,
  renderReportHtml,
  resolveProfile,
  variantFileName,
} from '@outpost/toolkit';
import type { Objective } from '@outpost/toolkit';
// Dataset specs are not re-exported by the toolkit's datasets index (yet): imported by path.
import { loadDatasetSpec } from '@outpost/toolkit';
import { progress } from '../output/index.ts';

export interface OptimizeOptions {
  /** Calibration dataset spec (training data), e.g. `mnist-u8:train-x.u8:train-y.u8:200`. */
  calib: string;
  /** Labelled evaluation dataset spec, e.g. `mnist-u8:eval-x.u8:eval-y.u8`. */
  eval: string;
  /** Built-in profile name or a JSON profile file. */
  target: string;
  /** Accuracy budget in percentage points (default 0.5). */
  maxAccuracyDrop?: number;
  objective?: Objective;
  /** Output directory: `<name>.<variant>.onnx`, `report.json`, `report.html`. */
  out: string;
  /** Candidate ids to try instead of the default list (fp32 is always included); a string is comma-separated. */
  candidates?: string[] | string;
  /** Timed runs per candidate (default 300). */
  iterations?: number;
  /** Measure peak memory in a child process per candidate (default true; commander's `--no-memory` sets false). */
  memory?: boolean;
  json?: boolean;
}

/**
 * Writes every file to a temp name beside its target first, then renames them all: a failure before the
 * renames leaves nothing behind, and each file is always whole.
 */
async function writeAllAtomically(files: { path: string; data: Uint8Array | string }[]): Promise<void> {
  const staged: { tmp: string; path: string }[] = [];
  try {
    for (const f of files) {
      const tmp = tempPathFor(f.path);
      staged.push({ tmp, path: f.path });
      const fh = await open(tmp, 'wx', 0o644);
      try {
        await fh.writeFile(f.data);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    for (const s of staged) await commitFile(s.tmp, s.path);
  } catch (err) {
    await Promise.all(staged.map((s) => rm(s.tmp, { force: true })));
    throw new OutpostError('IO_FAILED', `could not write the outputs: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * `outpost optimize <model>`: builds candidate variants (fp32, dynamic/static int8, fp16, pruned+int8),
 * measures each with the target profile's runtime on this machine and keeps the best one within the
 * accuracy budget. Writes `<name>.<variant>.onnx`, `report.json` and `report.html` to `--out`
 * atomically. A target this machine cannot run (CUDA without a GPU) still gets its reports, then fails
 * with UNAVAILABLE; no variant within the budgets fails with VALIDATION_FAILED.
 *
 * @example
 * await optimizeCommand('mnist_cnn.onnx', { calib: 'mnist-u8:tx.u8:ty.u8:200', eval: 'mnist-u8:ex.u8:ey.u8',
 *   target: 'cpu-x86-1t', out: 'out/' });
 */
export async function optimizeCommand(model: string, opts: OptimizeOptions): Promise<void> {
  const bytes = await readModelBytes(model);
  decodeModel(bytes); // ONNX_PARSE_FAILED before loading any data
  const profile = await resolveProfile(opts.target);
  const [calib, evalSet] = await Promise.all([loadDatasetSpec(opts.calib), loadDatasetSpec(opts.eval)]);
  if (!evalSet.labelled) {
    throw new OutpostError('VALIDATION_FAILED', `the eval set ${opts.eval} has no labels`);
  }
  const name = basename(model).replace(/\.onnx$/i, '') || 'model';
  const candidates = (
    typeof opts.candidates === 'string' ? opts.candidates.split(',') : (opts.candidates ?? [])
  )
    .map((c) => c.trim())
    .filter(Boolean);
  const bar = progress('optimizing', 1);
  let result;
  try {
    result = await autotune(bytes, {
      calib,
      eval: evalSet,
      profile,
      modelName: name,
      ...(opts.maxAccuracyDrop !== undefined ? { maxAccuracyDrop: opts.maxAccuracyDrop } : {}),
      ...(opts.objective !== undefined ? { objective: opts.objective } : {}),
      ...(candidates.length ? { candidates } : {}),
      ...(opts.iterations !== undefined ? { iterations: opts.iterations } : {}),
      measureMemory: opts.memory !== false,
      onProgress: (done, total) => bar.update(done, total),
    });
  } finally {
    bar.stop();
  }
  const report = optimizationReportJson(result);
  const files: { path: string; data: Uint8Array | string }[] = [];
  const chosenBytes = result.chosen ? result.models[result.chosen] : undefined;
  const modelPath =
    result.chosen && chosenBytes ? join(opts.out, variantFileName(name, result.chosen)) : undefined;
  if (modelPath && chosenBytes) files.push({ path: modelPath, data: chosenBytes });
  const reportPath = join(opts.out, 'report.json');
  const htmlPath = join(opts.out, 'report.html');
  files.push({ path: reportPath, data: `${JSON.stringify(report, null, 2)}\n` });
  files.push({ path: htmlPath, data: renderReportHtml(report) });
  try {
    await mkdir(opts.out, { recursive: true });
  } catch (err) {
    throw new OutpostError('IO_FAILED', `cannot create ${opts.out}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  await writeAllAtomically(files);

  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ outputs: { model: modelPath ?? null, report: reportPath, html: htmlPath }, report }, null, 2)}\n`,
    );
  } else {
    process.stdout.write(`${formatReportTable(report)}\n\n`);
    process.stdout.write(
      `${modelPath ? `wrote ${modelPath}\n` : ''}wrote ${reportPath}\nwrote ${htmlPath}\n`,
    );
  }
  if (!result.chosen) {
    throw new OutpostError(
      result.measurable ? 'VALIDATION_FAILED' : 'UNAVAILABLE',
      `${result.chosenReason}; see ${htmlPath}`,
    );
  }
}
