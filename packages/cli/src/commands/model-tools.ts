import { readFile } from 'node:fs/promises';
import {
  benchmarkInChild,
  decodeModel,
  encodeModel,
  formatBench,
  formatInspection,
  inspectModel,
  quantizeDynamic,
  writeModelFile,
} from '@outpost/toolkit';
import { OutpostError } from '@outpost/protocol';
import { fmtBytes, progress, table } from '../output/index.ts';

/** `outpost inspect`, `outpost bench`, `outpost quantize`: thin shells over the toolkit. */

export async function readModelBytes(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new OutpostError(code === 'ENOENT' ? 'NOT_FOUND' : 'IO_FAILED', `cannot read ${path}: ${code}`);
  }
}

export async function inspectCommand(path: string, opts: { json?: boolean }): Promise<void> {
  const info = inspectModel(await readModelBytes(path));
  process.stdout.write(opts.json ? `${JSON.stringify(info, null, 2)}\n` : `${formatInspection(info)}\n`);
}

export async function benchCommand(
  path: string,
  opts: { iterations: number; warmup: number; threads: number; batch: number; json?: boolean },
): Promise<void> {
  await readModelBytes(path); // clear NOT_FOUND before spawning a child
  const bar = progress('benchmarking', opts.warmup + opts.iterations);
  try {
    const r = await benchmarkInChild(path, {
      iterations: opts.iterations,
      warmup: opts.warmup,
      threads: opts.threads,
      batch: opts.batch,
      onProgress: (done: number, total: number) => bar.update(done, total),
    });
    bar.stop();
    process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatBench(r)}\n`);
  } finally {
    bar.stop();
  }
}

export async function quantizeCommand(
  input: string,
  opts: { output: string; weightType: 'int8' | 'uint8'; perChannel?: boolean; json?: boolean },
): Promise<void> {
  const bytes = await readModelBytes(input);
  const model = decodeModel(bytes);
  const { model: q, report } = quantizeDynamic(model, {
    weightType: opts.weightType,
    perChannel: !!opts.perChannel,
  });
  await writeModelFile(opts.output, q);
  const outBytes = encodeModel(q);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ output: opts.output, ...report }, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    `${table(
      [
        ['input', input, fmtBytes(bytes.byteLength)],
        ['output', opts.output, fmtBytes(outBytes.byteLength)],
        ['size ratio', '', (outBytes.byteLength / bytes.byteLength).toFixed(3)],
      ],
      ['', 'file', 'size'],
    )}\n\nquantized ${report.quantized.length} node(s): ${report.quantized.map((n) => `${n.node} (${n.op})`).join(', ') || 'none'}\n`,
  );
  if (report.skipped.length) {
    process.stdout.write(
      `left in float (${report.skipped.length}):\n${table(report.skipped.map((s) => [s.node, s.op, s.reason]))}\n`,
    );
  }
}
