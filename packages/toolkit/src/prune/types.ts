/** Shared shapes of the pruning reports. */

/** Progress callback of the long operations: `done` of `total` steps, with what is being worked on. */
export type ProgressFn = (done: number, total: number, label?: string) => void;

/** A node that was left as it is, and why. */
export interface PruneSkip {
  node: string;
  op: string;
  reason: string;
}
