import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { dominates } from './pareto.ts';
import { compareSpeed, selectCandidate } from './select.ts';
import type { Objective, SelectionPoint } from './select.ts';

const MiB = 1024 * 1024;
const opts = (objective: Objective = 'latency') => ({
  objective,
  maxAccuracyDrop: 0.5,
  memoryBudgetBytes: 100 * MiB,
  profileName: 'test-profile',
});

function pt(
  id: string,
  p50Ms: number,
  sizeBytes: number,
  accuracyDropPp = 0,
  memoryBytes: number | null = MiB,
): SelectionPoint {
  return { id, baseline: id === 'fp32', p50Ms, sizeBytes, accuracyDropPp, memoryBytes, energyMj: p50Ms * 4 };
}

describe('selectCandidate', () => {
  test('int8 slower than fp32 is never chosen for latency, and the finding says so', () => {
    const s = selectCandidate([pt('fp32', 0.071, 435_000), pt('dynamic-u8', 0.111, 113_000)], opts());
    assert.equal(s.chosen, 'fp32');
    assert.ok(
      s.findings.includes(
        'dynamic-u8 is 1.56× slower than fp32 on test-profile (p50 0.1110 ms vs 0.0710 ms): not chosen for latency',
      ),
      s.findings.join('\n'),
    );
    assert.match(s.verdicts['dynamic-u8'] ?? '', /1\.56× slower than fp32/);
    assert.match(s.findings.join('\n'), /no variant is measurably faster than fp32/);
  });

  test('a speed-up must hold in at least 80 % of the paired rounds', () => {
    const base = { ...pt('fp32', 0.1312, 435_000), roundP50Ms: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1] };
    const noisy = {
      ...pt('fp16', 0.131, 219_000),
      roundP50Ms: [0.9, 1.1, 0.9, 1.1, 0.9, 1.1, 0.9, 1.1, 1.1, 0.9],
    };
    const s = selectCandidate([base, noisy], opts());
    assert.equal(s.chosen, 'fp32');
    assert.match(
      s.findings.join('\n'),
      /fp16 is not measurably faster than fp32 on test-profile: p50 1\.00× but faster in only 5 of 10 paired rounds: not chosen for latency/,
    );
    assert.match(s.verdicts.fp16 ?? '', /won 5\/10 rounds/);
    const steady = { ...noisy, p50Ms: 0.12, roundP50Ms: [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 1.1, 0.9] };
    const t = selectCandidate([base, steady], opts());
    assert.equal(t.chosen, 'fp16');
    assert.match(t.reason, /faster than fp32 in 9\/10 rounds/);
    const tie = selectCandidate([pt('fp32', 1, 400), pt('same', 1.01, 100)], opts());
    assert.match(tie.findings.join('\n'), /same is no faster than fp32 .*within measurement noise/);
    assert.deepEqual(compareSpeed({ p50Ms: 0.9, roundP50Ms: [1, 2] }, { p50Ms: 1, roundP50Ms: [2, 1] }), {
      ratio: 0.9,
      faster: true,
      wins: null,
      rounds: null,
    });
  });

  test('the fastest eligible variant wins when it beats fp32', () => {
    const s = selectCandidate(
      [pt('fp32', 1, 400), pt('a', 0.8, 120), pt('b', 0.7, 130, 0.9), pt('c', 0.75, 110, 0.2)],
      opts(),
    );
    assert.equal(s.chosen, 'c'); // b is faster but over the accuracy budget
    assert.deepEqual(s.eligible, ['fp32', 'a', 'c']);
    assert.match(s.verdicts.b ?? '', /accuracy drop 0\.90 pp exceeds the 0\.5 pp budget/);
    assert.match(s.verdicts.a ?? '', /slower than c/);
  });

  test('budget filtering: accuracy and memory; unmeasured memory is not held against a candidate', () => {
    const s = selectCandidate(
      [
        pt('fp32', 1, 400),
        pt('big', 0.5, 300, 0, 200 * MiB),
        pt('lossy', 0.4, 100, 0.51),
        pt('unknown-mem', 0.6, 100, 0.5, null),
      ],
      opts(),
    );
    assert.deepEqual(s.eligible, ['fp32', 'unknown-mem']);
    assert.equal(s.chosen, 'unknown-mem');
    assert.match(s.verdicts.big ?? '', /peak memory 200\.0 MiB exceeds the 100 MiB budget/);
    assert.match(s.verdicts.lossy ?? '', /rejected: accuracy/);
  });

  test('size objective picks the smallest eligible, even if slower (and says it is slower)', () => {
    const s = selectCandidate(
      [pt('fp32', 1, 400), pt('small', 1.5, 100), pt('smaller', 1.2, 90, 0.7)],
      opts('size'),
    );
    assert.equal(s.chosen, 'small');
    assert.match(s.findings.join('\n'), /small is 1\.50× slower than fp32/);
  });

  test('when fp32 itself does not fit, the fastest variant that fits is chosen with a note', () => {
    const s = selectCandidate([pt('fp32', 1, 400, 0, 500 * MiB), pt('q', 1.3, 100, 0.1, 50 * MiB)], opts());
    assert.equal(s.chosen, 'q');
    assert.match(s.reason, /fp32 does not fit/);
  });

  test('nothing eligible → no choice, with the reason', () => {
    const s = selectCandidate([pt('fp32', 1, 400, 0, 500 * MiB)], opts());
    assert.equal(s.chosen, null);
    assert.match(s.reason, /no candidate fits/);
    assert.equal(selectCandidate([], opts()).chosen, null);
  });

  test('property: for latency and energy, never a choice slower than an eligible fp32; the choice is eligible and nothing in the running dominates it', () => {
    const cand = fc.record({
      p50Ms: fc.double({ min: 0.01, max: 10, noNaN: true }),
      sizeBytes: fc.integer({ min: 1, max: 1000 }),
      accuracyDropPp: fc.double({ min: -1, max: 2, noNaN: true }),
      memoryBytes: fc.option(fc.integer({ min: 0, max: 200 * MiB }), { nil: null }),
      roundP50Ms: fc.array(fc.double({ min: 0.01, max: 10, noNaN: true }), { minLength: 10, maxLength: 10 }),
    });
    fc.assert(
      fc.property(
        cand,
        fc.array(cand, { maxLength: 8 }),
        fc.constantFrom<Objective>('latency', 'energy', 'size'),
        (base, others, objective) => {
          const points: SelectionPoint[] = [
            { ...base, id: 'fp32', baseline: true, accuracyDropPp: 0, energyMj: base.p50Ms * 3 },
            ...others.map((o, i) => ({ ...o, id: `c${i}`, baseline: false, energyMj: o.p50Ms * 3 })),
          ];
          const s = selectCandidate(points, opts(objective));
          const fp32 = points[0] as SelectionPoint;
          const fp32Eligible = s.eligible.includes('fp32');
          if (!fp32Eligible && s.eligible.length === 0) return assert.equal(s.chosen, null);
          const chosen = points.find((p) => p.id === s.chosen);
          assert.ok(chosen, 'something eligible exists, so something is chosen');
          assert.ok(s.eligible.includes(chosen.id));
          assert.ok(chosen.accuracyDropPp <= 0.5 + 1e-9);
          assert.ok(chosen.memoryBytes === null || chosen.memoryBytes <= 100 * MiB);
          if (objective !== 'size' && fp32Eligible)
            assert.ok(chosen.p50Ms <= fp32.p50Ms, `${chosen.id} slower than fp32`);
          if (objective === 'size') {
            for (const id of s.eligible)
              assert.ok(chosen.sizeBytes <= (points.find((p) => p.id === id)?.sizeBytes ?? 0));
          }
          // For speed, only fp32 and the variants measurably faster than it are in the running; among
          // those (or among all eligible ones for size) nothing dominates the choice.
          const speed = objective !== 'size' && fp32Eligible;
          if (speed) assert.ok(chosen.id === 'fp32' || compareSpeed(chosen, fp32).faster);
          const running = points.filter(
            (p) => s.eligible.includes(p.id) && (!speed || p.id === 'fp32' || compareSpeed(p, fp32).faster),
          );
          if (objective === 'size' || chosen.id !== 'fp32') {
            const vec = (p: SelectionPoint) => [p.p50Ms, p.sizeBytes, p.accuracyDropPp];
            for (const p of running) {
              assert.equal(dominates(vec(p), vec(chosen)), false, `${p.id} dominates ${chosen.id}`);
            }
          }
          for (const p of points) {
            assert.ok(typeof s.verdicts[p.id] === 'string' && (s.verdicts[p.id] ?? '').length > 0);
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
