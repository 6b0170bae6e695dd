import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { MqttFrameGuard } from './frame-guard.ts';

async function run(guard: MqttFrameGuard, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of Readable.from(chunks).pipe(guard)) out.push(c as Buffer);
  return Buffer.concat(out);
}

function publish(payloadSize: number): Buffer {
  return mqttPacket.generate({
    cmd: 'publish',
    topic: 'outpost/v1/devices/d/telemetry',
    payload: Buffer.alloc(payloadSize, 7),
    qos: 1,
    messageId: 1,
    retain: false,
    dup: false,
  });
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    parts.push(buf.subarray(prev, p));
    prev = p;
  }
  parts.push(buf.subarray(prev));
  return parts.filter((p) => p.length > 0);
}

test('frame guard passes packets under the cap through unchanged, however the stream is chunked', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 5 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      async (sizes, cuts) => {
        const stream = Buffer.concat([
          mqttPacket.generate({ cmd: 'pingreq' }),
          ...sizes.map(publish),
          mqttPacket.generate({ cmd: 'disconnect' }),
        ]);
        const out = await run(new MqttFrameGuard(400), splitAt(stream, cuts));
        assert.ok(out.equals(stream));
      },
    ),
    { numRuns: 100 },
  );
});

test('frame guard fails on a packet over the cap after reading only its header', async () => {
  const big = publish(5000);
  // Only the first 3 bytes (type + 2 length bytes): the guard must not wait for the body.
  await assert.rejects(run(new MqttFrameGuard(4096), [big.subarray(0, 3)]), /exceeds the 4096-byte cap/);
  await assert.rejects(run(new MqttFrameGuard(4096), [Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff])]));
});
