import type { IrOp } from './layers.ts';

/** What {@link foldAffineIntoDense} did, for the export report. */
export interface FoldRecord {
  /** The BatchNormalization (affine) layer that disappeared. */
  affine: string;
  /** The Dense layer whose kernel and bias absorbed it. */
  into: string;
}

/**
 * Folds every affine map (an inference-time BatchNormalization) over the last axis into the Dense
 * directly before it: (x·W + b)·s + t = x·(W·s) + (b·s + t), scaling column j of W and b by s[j].
 * Only a Dense whose own activation is linear is directly followed by the affine op in the list
 * (a Dense activation is its own op in between), so a non-linearity is never folded across. An affine
 * on another axis, or one with nothing to fold into, stays and is emitted as Mul + Add.
 *
 * The input list is not modified; dense ops that absorb an affine are replaced by copies.
 */
export function foldAffineIntoDense(ops: readonly IrOp[]): { ops: IrOp[]; folded: FoldRecord[] } {
  const out: IrOp[] = [];
  const folded: FoldRecord[] = [];
  for (const op of ops) {
    const prev = out[out.length - 1];
    if (
      op.kind === 'affine' &&
      prev?.kind === 'dense' &&
      op.axis === op.rank - 1 &&
      op.scale.length === prev.units
    ) {
      const { units, inDim } = prev;
      const kernel = new Float32Array(prev.kernel.length);
      for (let i = 0; i < inDim; i++) {
        for (let j = 0; j < units; j++) {
          kernel[i * units + j] = (prev.kernel[i * units + j] ?? 0) * (op.scale[j] ?? 1);
        }
      }
      const bias = new Float32Array(units);
      for (let j = 0; j < units; j++)
        bias[j] = (prev.bias?.[j] ?? 0) * (op.scale[j] ?? 1) + (op.shift[j] ?? 0);
      out[out.length - 1] = { ...prev, kernel, bias };
      folded.push({ affine: op.layer, into: prev.layer });
      continue;
    }
    out.push(op);
  }
  return { ops: out, folded };
}
