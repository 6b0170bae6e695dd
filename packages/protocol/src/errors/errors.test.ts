import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_REGISTRY, ERROR_CODES, OutpostError, isErrorCode, toOutpostError } from './index.ts';

test('every code has an HTTP status in the error ranges and a description', () => {
  for (const code of ERROR_CODES) {
    const s = ERROR_REGISTRY[code];
    assert.ok(s.status >= 400 && s.status < 600, code);
    assert.ok(s.description.length > 5, code);
  }
});

test('OutpostError carries the registry facts and serialises to the wire body', () => {
  const e = new OutpostError('DOWNLOAD_FAILED', 'cut', { details: { offset: 5 } });
  assert.equal(e.status, 502);
  assert.equal(e.retryable, true);
  assert.deepEqual(e.toBody(), {
    code: 'DOWNLOAD_FAILED',
    message: 'cut',
    retryable: true,
    details: { offset: 5 },
  });
  assert.equal(isErrorCode('DOWNLOAD_FAILED'), true);
  assert.equal(isErrorCode('toString'), false);
  assert.equal(toOutpostError(new Error('x')).code, 'INTERNAL');
  assert.equal(toOutpostError(e), e);
});
