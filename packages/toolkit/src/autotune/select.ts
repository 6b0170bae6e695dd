import { paretoFront } from './pareto.ts';

/**
 * Choosing a variant from measurements — pure, so it can be tested with synthetic figures.
 *
 * Rules: a candidate is eligible when its accuracy drop (percentage points vs fp32) is within the budget
 * and its measured peak memory fits the profile's budget. For the latency and energy objectives (energy
 * is latency × a per-profile constant, so the two agree within one profile) a variant only replaces fp32
 * when it is measurably faster: its p50 is below fp32's AND, when per-round figures are given, its
 * round p50 beat fp32's in at least 80 % of the interleaved rounds (a paired sign test: a 0.2 % "win"
 * that comes and goes between rounds is noise, not a reason to ship a different model). So a variant
 * that runs slower is never picked for speed. For the size objective the smallest eligible variant
 * wins. Ties go to lower latency, then smaller size.
 */

export type Objective = 'latency' | 'size' | 'energy';

export interface SelectionPoint {
  id: string;
  /** The unmodified fp32 model, the reference for accuracy drop and speed. */
  baseline: boolean;
  p50Ms: number;
  sizeBytes: number;
  /** fp32 accuracy minus this accuracy, in percentage points (negative = better than fp32). */
  accuracyDropPp: number;
  /** Measured peak memory; null when it could not be measured (then the budget is not applied). */
  memoryBytes: number | null;
  energyMj: number;
  /**
   * p50 of each interleaved latency round, in round order (same rounds for every candidate), for the
   * paired comparison with fp32. Without it (or with fewer than 3 rounds) only the overall p50 counts.
   */
  roundP50Ms?: number[];
}

export interface SelectionOptions {
  objective: Objective;
  /** Accuracy budget in percentage points. */
  maxAccuracyDrop: number;
  memoryBudgetBytes: number;
  /** Profile name, for the sentences. */
  profileName: string;
}

export interface Selection {
  chosen: string | null;
  /** Why the chosen one was chosen (or why none was). */
  reason: string;
  /** Ids on the Pareto front over (p50 latency, size, accuracy drop). */
  pareto: string[];
  /** Ids that pass the accuracy and memory budgets. */
  eligible: string[];
  /** Per id: why it was or was not chosen. */
  verdicts: Record<string, string>;
  findings: string[];
}

const MiB = 1024 * 1024;
/** p50 ratios closer to 1 than this are reported as within measurement noise on a shared machine. */
const NOISE = 0.03;
/** Share of paired rounds a variant must win to count as faster than fp32. */
const ROUND_WINS = 0.8;

/**
 * How a candidate's speed compares with fp32's: `faster` only when its overall p50 is lower and it won
 * at least 80 % of the paired rounds (when round figures exist).
 *
 * @example
 * compareSpeed({ p50Ms: 0.9, roundP50Ms: [0.9, 0.9, 0.9] }, { p50Ms: 1, roundP50Ms: [1, 1, 1] });
 * // { ratio: 0.9, faster: true, wins: 3, rounds: 3 }
 */
export function compareSpeed(
  p: Pick<SelectionPoint, 'p50Ms' | 'roundP50Ms'>,
  base: Pick<SelectionPoint, 'p50Ms' | 'roundP50Ms'>,
): { ratio: number; faster: boolean; wins: number | null; rounds: number | null } {
  const ratio = p.p50Ms / base.p50Ms;
  const a = p.roundP50Ms ?? [];
  const b = base.roundP50Ms ?? [];
  const rounds = Math.min(a.length, b.length);
  if (rounds < 3) return { ratio, faster: ratio < 1, wins: null, rounds: null };
  let wins = 0;
  for (let i = 0; i < rounds; i++) if ((a[i] ?? Infinity) < (b[i] ?? 0)) wins++;
  return { ratio, faster: ratio < 1 && wins >= Math.ceil(ROUND_WINS * rounds), wins, rounds };
}

const fmtMs = (ms: number) => `${ms.toFixed(ms < 1 ? 4 : 2)} ms`;
const fmtRatio = (r: number) => `${r.toFixed(2)}×`;
const objectiveValue = (p: SelectionPoint, o: Objective): number =>
  o === 'size' ? p.sizeBytes : o === 'energy' ? p.energyMj : p.p50Ms;

function better(a: SelectionPoint, b: SelectionPoint, o: Objective): boolean {
  const keys = (p: SelectionPoint) => [objectiveValue(p, o), p.p50Ms, p.sizeBytes, p.accuracyDropPp];
  const ka = keys(a);
  const kb = keys(b);
  for (let i = 0; i < ka.length; i++) {
    if ((ka[i] ?? 0) !== (kb[i] ?? 0)) return (ka[i] ?? 0) < (kb[i] ?? 0);
  }
  return false;
}

/**
 * Applies the budgets, computes the Pareto front and picks the best candidate for the objective.
 *
 * @example
 * const s = selectCandidate(points, { objective: 'latency', maxAccuracyDrop: 0.5,
 *   memoryBudgetBytes: 256 << 20, profileName: 'cpu-x86-1t' });
 * console.log(s.chosen, s.findings);
 */
export function selectCandidate(points: readonly SelectionPoint[], opts: SelectionOptions): Selection {
  const { objective, maxAccuracyDrop, memoryBudgetBytes, profileName } = opts;
  const verdicts: Record<string, string> = {};
  const findings: string[] = [];
  const front = paretoFront(points.map((p) => [p.p50Ms, p.sizeBytes, p.accuracyDropPp]));
  const pareto = front.map((i) => points[i]?.id ?? '');
  const base = points.find((p) => p.baseline);

  const eligible: SelectionPoint[] = [];
  for (const p of points) {
    if (p.accuracyDropPp > maxAccuracyDrop + 1e-9) {
      verdicts[p.id] =
        `rejected: accuracy drop ${p.accuracyDropPp.toFixed(2)} pp exceeds the ${maxAccuracyDrop} pp budget`;
      findings.push(
        `${p.id} loses ${p.accuracyDropPp.toFixed(2)} pp of accuracy (budget ${maxAccuracyDrop} pp): rejected`,
      );
    } else if (p.memoryBytes !== null && p.memoryBytes > memoryBudgetBytes) {
      verdicts[p.id] =
        `rejected: peak memory ${(p.memoryBytes / MiB).toFixed(1)} MiB exceeds the ${(memoryBudgetBytes / MiB).toFixed(0)} MiB budget`;
      findings.push(
        `${p.id} needs ${(p.memoryBytes / MiB).toFixed(1)} MiB, over ${profileName}'s ${(memoryBudgetBytes / MiB).toFixed(0)} MiB budget: rejected`,
      );
    } else eligible.push(p);
  }

  const speedMatters = objective !== 'size';
  const tail = speedMatters ? `: not chosen for ${objective}` : '';
  /** Candidates that are not measurably faster than fp32, with the verdict that says so. */
  const notFaster = new Map<string, string>();
  if (base) {
    for (const p of points) {
      if (p === base) continue;
      const { ratio, faster, wins, rounds } = compareSpeed(p, base);
      if (faster) continue;
      const vs = `p50 ${fmtMs(p.p50Ms)} vs ${fmtMs(base.p50Ms)}`;
      if (ratio >= 1 + NOISE) {
        notFaster.set(p.id, `${fmtRatio(ratio)} slower than fp32`);
        findings.push(`${p.id} is ${fmtRatio(ratio)} slower than fp32 on ${profileName} (${vs})${tail}`);
      } else if (ratio >= 1) {
        notFaster.set(p.id, `no faster than fp32 (${fmtRatio(ratio)}, within noise)`);
        findings.push(
          `${p.id} is no faster than fp32 on ${profileName} (${fmtRatio(ratio)}, ${vs}: within measurement noise)${tail}`,
        );
      } else {
        notFaster.set(
          p.id,
          `not measurably faster than fp32 (${fmtRatio(ratio)}, won ${wins}/${rounds} rounds)`,
        );
        findings.push(
          `${p.id} is not measurably faster than fp32 on ${profileName}: p50 ${fmtRatio(ratio)} but faster in only ${wins} of ${rounds} paired rounds${tail}`,
        );
      }
    }
  }

  // For speed objectives the candidates slower than fp32 drop out while fp32 itself is a valid choice;
  // if fp32 does not fit the budgets, the fastest variant that does is the best that can be done.
  const baseEligible = base !== undefined && eligible.includes(base);
  const pool =
    speedMatters && baseEligible ? eligible.filter((p) => p === base || !notFaster.has(p.id)) : eligible;
  let chosen: SelectionPoint | undefined;
  for (const p of pool) if (!chosen || better(p, chosen, objective)) chosen = p;

  let reason: string;
  if (!chosen) {
    reason = points.length
      ? `no candidate fits the accuracy (${maxAccuracyDrop} pp) and memory budgets of ${profileName}`
      : `no candidate could be measured on ${profileName}`;
    findings.push(reason);
  } else {
    const parts = [
      `${objective === 'size' ? 'smallest' : objective === 'energy' ? 'lowest estimated energy' : 'fastest'} eligible variant`,
    ];
    if (base && chosen !== base) {
      parts.push(
        `p50 ${fmtRatio(chosen.p50Ms / base.p50Ms)} fp32`,
        `size ${fmtRatio(chosen.sizeBytes / base.sizeBytes)} fp32`,
        `accuracy drop ${chosen.accuracyDropPp.toFixed(2)} pp`,
      );
      const sp = compareSpeed(chosen, base);
      if (speedMatters && sp.wins !== null) parts.push(`faster than fp32 in ${sp.wins}/${sp.rounds} rounds`);
    }
    if (speedMatters && base && !baseEligible && notFaster.has(chosen.id)) {
      parts.push('not faster than fp32, but fp32 does not fit the budgets');
    }
    reason = parts.join(', ');
    if (speedMatters && base && chosen === base && points.length > 1) {
      findings.push(
        `no variant is measurably faster than fp32 on ${profileName} within the budgets: keeping fp32`,
      );
    }
    findings.push(`chose ${chosen.id} for ${objective} on ${profileName}: ${reason}`);
  }

  for (const p of points) {
    if (verdicts[p.id]) continue;
    if (chosen && p === chosen) verdicts[p.id] = `chosen: ${reason}`;
    else if (speedMatters && baseEligible && notFaster.has(p.id)) {
      verdicts[p.id] = `not chosen: ${notFaster.get(p.id) ?? ''}`;
    } else if (chosen) {
      const what =
        objective === 'size'
          ? `larger than ${chosen.id}`
          : objective === 'energy'
            ? `more estimated energy than ${chosen.id}`
            : `slower than ${chosen.id}`;
      verdicts[p.id] = `not chosen: eligible but ${what}`;
    } else verdicts[p.id] = 'not chosen';
  }
  return {
    chosen: chosen?.id ?? null,
    reason,
    pareto,
    eligible: eligible.map((p) => p.id),
    verdicts,
    findings,
  };
}
