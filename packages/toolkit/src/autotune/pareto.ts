/**
 * Pareto front for minimisation objectives. With a handful of candidates the quadratic scan is the
 * clearest correct algorithm; no need for anything cleverer.
 */

/**
 * True when `a` is at least as good as `b` in every objective and strictly better in one (all minimised).
 *
 * @example
 * dominates([1, 2], [1, 3]); // true
 * dominates([1, 2], [1, 2]); // false (equal points do not dominate each other)
 */
export function dominates(a: readonly number[], b: readonly number[]): boolean {
  let strictly = false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? Infinity;
    const y = b[i] ?? Infinity;
    if (x > y) return false;
    if (x < y) strictly = true;
  }
  return strictly;
}

/**
 * Indices of the points that no other point dominates (all objectives minimised), in input order.
 *
 * @example
 * paretoFront([[1, 5], [2, 2], [3, 3]]); // [0, 1]: [3, 3] is dominated by [2, 2]
 */
export function paretoFront(points: readonly (readonly number[])[]): number[] {
  const front: number[] = [];
  points.forEach((p, i) => {
    if (!points.some((q, j) => j !== i && dominates(q, p))) front.push(i);
  });
  return front;
}
