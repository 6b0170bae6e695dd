import { readFile } from 'node:fs/promises';
import { OutpostError } from '@outpost/protocol';
import { decodeModel, encodeModel, loadNpy, readModelBytes, writeModelFile } from '@outpost/toolkit';
// Static quantization and float16 are new in the toolkit; imported by path until the toolkit's index
// re-exports them (then: `from '@outpost/toolkit'`).
import { feedsFromSamples, modelInputs, quantizeStatic } from '@outpost/toolkit';
import type { CalibrationMethod, QuantType, QuantizeStaticReport } from '@outpost/toolkit';
import { convertFp16 } from '@outpost/toolkit';
import type { Fp16Report } from '@outpost/toolkit';
import { fmtBytes, progress, table } from '../output/index.ts';

/** `outpost quantize-static` and `outpost fp16`: thin shells over the toolkit, atomic output. */

export interface QuantizeStaticCommandOptions {
  /** Output .onnx, written atomically once quantization succeeded. */
  output: string;
  /**
   * Calibration inputs: a `.npy` array (float32 as is, uint8 divided by 255) whose first axis is the
   * sample, or raw MNIST-style `.u8` images (one byte per value, divided by 255).
   */
  calib: string;
  /** Number of calibration samples to use, from the start of the file (default 200). */
  calibCount?: number | string;
  /** minmax (default), percentile or entropy. */
  method?: CalibrationMethod;
  perChannel?: boolean;
  activationType?: QuantType;
  weightType?: QuantType;
  json?: boolean;
}

export interface Fp16CommandOptions {
  output: string;
  /** Keep float32 graph inputs/outputs (default true). */
  keepIoTypes?: boolean;
  json?: boolean;
}

function invalid(message: string): OutpostError {
  return new OutpostError('VALIDATION_FAILED', message);
}

/** Reads calibration samples and checks that they split into samples of `perSample` values. */
async function readSamples(path: string, perSample: number): Promise<Float32Array> {
  let x: Float32Array;
  if (path.toLowerCase().endsWith('.npy')) {
    const a = await loadNpy(path);
    x = a.data instanceof Float32Array ? a.data : Float32Array.from(a.data, (v) => v / 255);
  } else {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new OutpostError(code === 'ENOENT' ? 'NOT_FOUND' : 'IO_FAILED', `cannot read ${path}: ${code}`);
    }
    x = Float32Array.from(bytes, (v) => v / 255);
  }
  if (x.length === 0) throw invalid(`${path} holds no calibration samples`);
  if (x.length % perSample !== 0) {
    throw new OutpostError(
      'TENSOR_SHAPE_MISMATCH',
      `${path}: ${x.length} values do not split into samples of ${perSample} (the model's input size)`,
    );
  }
  return x;
}

function sizeTable(input: string, before: number, output: string, after: number): string {
  return table(
    [
      ['input', input, fmtBytes(before)],
      ['output', output, fmtBytes(after)],
      ['size ratio', '', (after / before).toFixed(3)],
    ],
    ['', 'file', 'size'],
  );
}

/**
 * `outpost quantize-static <model> -o <out> --calib <file> [--calib-count 200] [--method minmax|percentile|entropy]
 * [--per-channel] [--activation-type int8|uint8] [--weight-type int8|uint8] [--json]`: static int8 (QDQ)
 * with calibration, written atomically; prints sizes, quantized nodes and what stayed float and why.
 * Bad options → VALIDATION_FAILED before any work; calibration data that does not fit the model →
 * TENSOR_SHAPE_MISMATCH; nothing is written unless quantization succeeded.
 *
 * @example
 * await quantizeStaticCommand('mnist.onnx', { output: 'mnist.int8.onnx', calib: 'mnist-train-x.u8' });
 */
export async function quantizeStaticCommand(
  input: string,
  opts: QuantizeStaticCommandOptions,
): Promise<void> {
  if (!opts.output) throw invalid('--output is required');
  if (!opts.calib) throw invalid('--calib is required (a .npy array or MNIST-style .u8 images)');
  if (opts.method !== undefined && !['minmax', 'percentile', 'entropy'].includes(opts.method)) {
    throw invalid(`--method must be minmax, percentile or entropy, got ${String(opts.method)}`);
  }
  for (const [flag, v] of [
    ['--activation-type', opts.activationType],
    ['--weight-type', opts.weightType],
  ] as const) {
    if (v !== undefined && v !== 'int8' && v !== 'uint8')
      throw invalid(`${flag} must be int8 or uint8, got ${String(v)}`);
  }
  const count = opts.calibCount === undefined ? 200 : Number(opts.calibCount);
  if (!Number.isInteger(count) || count < 1) {
    throw invalid(`--calib-count must be a positive integer, got ${String(opts.calibCount)}`);
  }
  const bytes = await readModelBytes(input);
  const model = decodeModel(bytes);
  const inputs = modelInputs(model);
  const first = inputs[0];
  if (inputs.length !== 1 || !first) {
    throw new OutpostError(
      'TENSOR_SHAPE_MISMATCH',
      `the model has ${inputs.length} inputs; calibration from a file feeds exactly one`,
    );
  }
  const sampleDims = first.shape.slice(1);
  if (first.dtype !== 'float32' || sampleDims.some((d) => typeof d !== 'number')) {
    throw new OutpostError(
      'TENSOR_SHAPE_MISMATCH',
      `input ${first.name} is ${first.dtype} [${first.shape.join(', ')}]; calibration files feed float32 ` +
        'with a batch axis and fixed sample dimensions',
    );
  }
  const dims = sampleDims as number[];
  const x = await readSamples(
    opts.calib,
    dims.reduce((a, b) => a * b, 1),
  );
  const feeds = feedsFromSamples(first.name, x, dims, count);

  const bar = progress('calibrating', feeds.length);
  let result: Awaited<ReturnType<typeof quantizeStatic>>;
  try {
    const qopts: Parameters<typeof quantizeStatic>[2] = {
      onProgress: (d: number, t: number) => bar.update(d, t),
    };
    if (opts.method !== undefined) qopts.calibrationMethod = opts.method;
    if (opts.perChannel !== undefined) qopts.perChannel = opts.perChannel;
    if (opts.activationType !== undefined) qopts.activationType = opts.activationType;
    if (opts.weightType !== undefined) qopts.weightType = opts.weightType;
    result = await quantizeStatic(model, feeds, qopts);
  } finally {
    bar.stop();
  }
  await writeModelFile(opts.output, result.model);
  const report: QuantizeStaticReport = result.report;
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ output: opts.output, ...report }, null, 2)}\n`);
    return;
  }
  const settings = Object.entries(report.settings)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  let text = `${sizeTable(input, report.sizeBefore, opts.output, report.sizeAfter)}\n\n${settings}\n`;
  text += `\nquantized ${report.quantized.length} node(s): ${
    report.quantized.map((n) => `${n.node} (${n.op})`).join(', ') || 'none'
  }\n`;
  if (report.skipped.length) {
    text += `left in float (${report.skipped.length}):\n${table(report.skipped.map((s) => [s.node, s.op, s.reason]))}\n`;
  }
  process.stdout.write(text);
}

/**
 * `outpost fp16 <model> -o <out> [--no-keep-io-types] [--json]`: float16 weights (and float16 compute
 * where ONNX Runtime's CPU provider has kernels for it), written atomically; prints sizes and the nodes
 * kept in float32 with the reason.
 *
 * @example
 * await fp16Command('mnist.onnx', { output: 'mnist.fp16.onnx' });
 */
export async function fp16Command(input: string, opts: Fp16CommandOptions): Promise<void> {
  if (!opts.output) throw invalid('--output is required');
  const model = decodeModel(await readModelBytes(input));
  const { model: converted, report } = await convertFp16(model, { keepIoTypes: opts.keepIoTypes ?? true });
  await writeModelFile(opts.output, converted);
  const r: Fp16Report = report;
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ output: opts.output, ...r }, null, 2)}\n`);
    return;
  }
  const after = encodeModel(converted).length;
  let text = `${sizeTable(input, r.sizeBefore, opts.output, after)}\n\n`;
  text += `float16 initializers: ${r.initializersConverted}, Casts added: ${r.castsAdded}, `;
  text += `clamped values: ${r.clamped.overflow} over ±65504, ${r.clamped.underflow} under 2^-24\n`;
  text += `running in float16 (${r.converted.length}): ${r.converted.map((n) => n.node).join(', ') || 'none'}\n`;
  if (r.skipped.length) {
    text += `kept in float32 (${r.skipped.length}):\n${table(r.skipped.map((s) => [s.node, s.op, s.reason]))}\n`;
  }
  process.stdout.write(text);
}
