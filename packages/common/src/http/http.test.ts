import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutpostError } from '@outpost/protocol';
import { httpErrorReply } from './index.ts';

test('OutpostErrors keep their code and status', () => {
  const r = httpErrorReply(new OutpostError('HASH_MISMATCH', 'bad'));
  assert.equal(r.status, 422);
  assert.deepEqual(r.body, { code: 'HASH_MISMATCH', message: 'bad', retryable: false });
  assert.equal(r.internal, false);
});

test('framework errors map to registry codes', () => {
  assert.equal(
    httpErrorReply({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413, message: 'big' }).body.code,
    'PAYLOAD_TOO_LARGE',
  );
  assert.equal(
    httpErrorReply({ code: 'FST_ERR_CTP_INVALID_JSON_BODY', statusCode: 400, message: 'x' }).body.code,
    'MALFORMED_MESSAGE',
  );
  assert.equal(httpErrorReply({ statusCode: 415, message: 'type' }).body.code, 'VALIDATION_FAILED');
});

test('unknown errors become INTERNAL without leaking their message', () => {
  const r = httpErrorReply(new Error('db password is hunter2'));
  assert.equal(r.status, 500);
  assert.equal(r.body.code, 'INTERNAL');
  assert.ok(!r.body.message.includes('hunter2'));
  assert.equal(r.internal, true);
});
