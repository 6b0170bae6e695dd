import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseDeviceTopic, topics, DEVICE_CHANNELS } from './index.ts';
import { OutpostError } from '../errors/index.ts';

test('topic builders and parser are inverse for valid ids', () => {
  const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,20}$/);
  fc.assert(
    fc.property(id, fc.constantFrom(...DEVICE_CHANNELS), (deviceId, channel) => {
      assert.deepEqual(parseDeviceTopic(topics[channel](deviceId)), { deviceId, channel });
    }),
  );
});

test('parser rejects anything else without throwing (property)', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (s) => {
      const r = parseDeviceTopic(s);
      if (r !== null) assert.equal(topics[r.channel](r.deviceId), s);
    }),
  );
  for (const bad of [
    'outpost/v1/devices/+/acks',
    'outpost/v1/devices/#',
    'outpost/v1/devices/../acks',
    'outpost/v1/devices/a/b/acks',
    '$SYS/x',
  ]) {
    assert.equal(parseDeviceTopic(bad), null, bad);
  }
});

test('builders refuse wildcard and traversal ids', () => {
  for (const bad of ['+', '#', 'a/b', '..', '', 'x'.repeat(200)]) {
    assert.throws(
      () => topics.commands(bad),
      (e) => e instanceof OutpostError && e.code === 'INVALID_NAME',
    );
  }
});
