import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isSafeName, semver } from './index.ts';

test('traversal and encoded names are not safe', () => {
  for (const bad of ['../../x', '%2e%2e/x', '..', 'a/b', 'a\\b', '.hidden', 'a..b', '', 'x y', 'é']) {
    assert.equal(isSafeName(bad), false, bad);
  }
  for (const ok of ['mnist', 'mnist_cnn.int8', 'dev-01', 'A1']) assert.equal(isSafeName(ok), true, ok);
});

test('a safe name never contains a path separator or wildcard (property)', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 140 }), (s) => {
      if (isSafeName(s)) assert.ok(!/[/\\#+%]/.test(s) && !s.includes('..') && s.length <= 128);
    }),
  );
});

test('semver accepts releases and pre-releases only', () => {
  for (const ok of ['1.0.0', '0.1.2-rc.1', '10.20.30']) assert.equal(semver.safeParse(ok).success, true, ok);
  for (const bad of ['1.0', '01.0.0', '1.0.0/..', 'v1.0.0', '1.0.0+build'])
    assert.equal(semver.safeParse(bad).success, false, bad);
});
