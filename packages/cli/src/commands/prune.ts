import { OutpostError } from '@outpost/protocol';
import { decodeModel, encodeModel, loadMnistU8, readModelBytes, writeModelFile } from '@outpost/toolkit';
import type { ModelProto } from '@outpost/toolkit';
// Pruning and fine-tuning are new in the toolkit; imported by path until the toolkit's index re-exports
// them (then: `from '@outpost/toolkit'`).
import {
  formatFilterReport,
  formatMagnitudeReport,
  modelSizes,
  pruneFilters,
  pruneMagnitude,
} from '@outpost/toolkit';
import type { FilterPruneReport, MagnitudeReport, ModelSizes } from '@outpost/toolkit';
import { finetune } from '@outpost/toolkit';
import type { FinetuneEpoch } from '@outpost/toolkit';
import { fmtBytes, progress, table } from '../output/index.ts';

export interface PruneCommandOptions {
  /** Output .onnx, written atomically once everything succeeded. */
  output: string;
  /** `magnitude`: zero the smallest weights; `filters`: remove the lowest-norm conv filters. */
  mode: 'magnitude' | 'filters';
  /** magnitude: fraction of weights to zero, 0–1. */
  sparsity?: number | string;
  /** filters: fraction of each conv's output channels to remove, 0 ≤ ratio < 1. */
  ratio?: number | string;
  /** magnitude: one global threshold (default) or one per layer. */
  scope?: 'global' | 'per-layer';
  /** filters: filter norm (default l1). */
  criterion?: 'l1' | 'l2';
  /** filters: fine-tune after pruning (needs train and trainLabels). */
  finetune?: boolean;
  /** MNIST-format training images: 784 bytes per image. */
  train?: string;
  /** One label byte per training image. */
  trainLabels?: string;
  /** Fine-tuning epochs (default 3). */
  epochs?: number | string;
  /** Fine-tuning mode (default full: every layer; head: the classifier only, faster). */
  finetuneMode?: 'full' | 'head';
  json?: boolean;
}

const num = (v: number | string | undefined): number | undefined =>
  v === undefined ? undefined : typeof v === 'number' ? v : Number(v);

/**
 * `outpost prune <model> -o <out> --mode magnitude --sparsity 0.8` or
 * `outpost prune <model> -o <out> --mode filters --ratio 0.5 [--finetune --train x.u8 --train-labels y.u8]`:
 * prunes, optionally fine-tunes, writes the result atomically and prints the per-layer report (or JSON).
 * Bad options are VALIDATION_FAILED before any work; nothing is written unless every step succeeded.
 *
 * @example
 * await pruneCommand('mnist.onnx', { output: 'mnist.slim.onnx', mode: 'filters', ratio: 0.5 });
 */
export async function pruneCommand(input: string, opts: PruneCommandOptions): Promise<void> {
  if (opts.mode !== 'magnitude' && opts.mode !== 'filters') {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `--mode must be magnitude or filters, got ${String(opts.mode)}`,
    );
  }
  if (!opts.output) throw new OutpostError('VALIDATION_FAILED', '--output is required');
  if (opts.finetune && opts.mode === 'magnitude') {
    throw new OutpostError(
      'VALIDATION_FAILED',
      'fine-tuning would refill the zeroed weights (no pruning masks); use it with --mode filters',
    );
  }
  if (opts.finetune && (!opts.train || !opts.trainLabels)) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      '--finetune needs --train <images.u8> and --train-labels <labels.u8>',
    );
  }
  const bytes = await readModelBytes(input);
  const model = decodeModel(bytes);
  const trainSet = opts.finetune ? await loadMnistU8(opts.train ?? '', opts.trainLabels ?? '') : undefined;

  let pruned: ModelProto;
  let report: MagnitudeReport | FilterPruneReport;
  if (opts.mode === 'magnitude') {
    const sparsity = num(opts.sparsity);
    if (sparsity === undefined) throw new OutpostError('VALIDATION_FAILED', '--sparsity is required');
    ({ model: pruned, report } = pruneMagnitude(model, { sparsity, scope: opts.scope ?? 'global' }));
  } else {
    const ratio = num(opts.ratio);
    if (ratio === undefined) throw new OutpostError('VALIDATION_FAILED', '--ratio is required');
    const bar = progress('pruning filters', 1);
    try {
      const r = await pruneFilters(model, {
        ratio,
        criterion: opts.criterion ?? 'l1',
        onProgress: (d, t) => bar.update(d, t),
      });
      ({ model: pruned, report } = r);
    } finally {
      bar.stop();
    }
  }

  let history: FinetuneEpoch[] | undefined;
  if (trainSet) {
    const bar = progress('fine-tuning', 1);
    try {
      const r = await finetune(pruned, trainSet, {
        epochs: num(opts.epochs) ?? 3,
        mode: opts.finetuneMode ?? 'full',
        onProgress: (d, t) => bar.update(d, t),
      });
      pruned = r.model;
      history = r.history;
    } finally {
      bar.stop();
    }
  }

  await writeModelFile(opts.output, pruned);
  const sizes: { before: ModelSizes; after: ModelSizes } = {
    before: modelSizes(bytes),
    after: modelSizes(encodeModel(pruned)),
  };
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ output: opts.output, mode: opts.mode, report, sizes, finetune: history ?? null }, null, 2)}\n`,
    );
    return;
  }
  const body =
    opts.mode === 'magnitude'
      ? formatMagnitudeReport(report as MagnitudeReport)
      : formatFilterReport(report as FilterPruneReport);
  const sizeRows = [
    ['input', input, fmtBytes(sizes.before.bytes), fmtBytes(sizes.before.gzipBytes)],
    ['output', opts.output, fmtBytes(sizes.after.bytes), fmtBytes(sizes.after.gzipBytes)],
  ];
  let text = `${body}\n\n${table(sizeRows, ['', 'file', 'size', 'gzip'])}\n`;
  if (history) {
    text += `\nfine-tuned ${history.length} epoch(s):\n${table(
      history.map((h) => [
        h.epoch,
        h.loss.toFixed(4),
        `${(h.accuracy * 100).toFixed(2)} %`,
        `${h.seconds.toFixed(1)} s`,
      ]),
      ['epoch', 'train loss', 'train acc', 'time'],
    )}\n`;
  }
  process.stdout.write(text);
}
