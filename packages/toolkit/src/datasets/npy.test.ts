import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { loadNpy, parseNpy } from './index.ts';

/** Writes .npy bytes the way numpy.save does (header padded with spaces to a multiple of 64, then \n). */
function npy(
  descr: string,
  shape: number[],
  data: Uint8Array,
  opts: { version?: 1 | 2; fortran?: boolean } = {},
) {
  const version = opts.version ?? 1;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${opts.fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const prefix = version === 1 ? 10 : 12;
  header += ' '.repeat(63 - ((prefix + header.length) % 64)) + '\n';
  const out = new Uint8Array(prefix + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), prefix);
  out.set(data, prefix + header.length);
  return out;
}

const f32bytes = (v: Float32Array) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

describe('loadNpy', () => {
  test('property: float32 and uint8 arrays of any C-order shape round-trip', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 4 }),
        fc.boolean(),
        fc.constantFrom<1 | 2>(1, 2),
        fc.integer(),
        (shape, float, version, seed) => {
          const n = shape.reduce((a, b) => a * b, 1);
          const u8 = Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
          const f32 = Float32Array.from({ length: n }, (_, i) => (i - seed) / 7);
          const bytes = float
            ? npy('<f4', shape, f32bytes(f32), { version })
            : npy('|u1', shape, u8, { version });
          const a = parseNpy(bytes);
          assert.deepEqual(a.shape, shape);
          assert.equal(a.dtype, float ? 'float32' : 'uint8');
          assert.deepEqual(a.data, float ? f32 : u8);
        },
      ),
      { numRuns: 200, seed: 12 },
    );
  });

  test('reads from disk; a missing file is NOT_FOUND', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-npy-'));
    const path = join(dir, 'calib.npy');
    writeFileSync(path, npy('<f4', [2, 3], f32bytes(new Float32Array([1, 2, 3, 4, 5, 6.5]))));
    const a = await loadNpy(path);
    assert.deepEqual(a.shape, [2, 3]);
    assert.equal(a.data[5], 6.5);
    await assert.rejects(loadNpy(join(dir, 'missing.npy')), { code: 'NOT_FOUND' });
  });

  test('everything it cannot read exactly is VALIDATION_FAILED', () => {
    const ok = npy('<f4', [2], f32bytes(new Float32Array([1, 2])));
    const bad: [string, Uint8Array, RegExp][] = [
      ['magic', Uint8Array.from([1, 2, 3, 4, 5, 6, 1, 0, 0, 0, 0]), /bad magic/],
      ['version', Uint8Array.from([...ok.subarray(0, 6), 9, 0, ...ok.subarray(8)]), /version 9/],
      ['big-endian', npy('>f4', [2], new Uint8Array(8)), />f4 is not supported/],
      ['float64', npy('<f8', [1], new Uint8Array(8)), /<f8 is not supported/],
      ['fortran', npy('<f4', [2], new Uint8Array(8), { fortran: true }), /Fortran/],
      ['truncated data', ok.subarray(0, ok.length - 1), /needs 8 bytes/],
      ['extra data', Uint8Array.from([...ok, 0]), /needs 8 bytes/],
      ['truncated header', ok.subarray(0, 20), /truncated header/],
      ['not a dict', npy('<f4', [2], new Uint8Array(8)).map((b, i) => (i === 11 ? 0x78 : b)), /header/],
    ];
    for (const [what, bytes, message] of bad) {
      assert.throws(() => parseNpy(bytes), { code: 'VALIDATION_FAILED', message }, what);
    }
    const shape = Buffer.from(npy('<f4', [2], new Uint8Array(8)))
      .toString('latin1')
      .replace('(2,)', '(x,)');
    assert.throws(() => parseNpy(Buffer.from(shape, 'latin1')), {
      code: 'VALIDATION_FAILED',
      message: /bad shape/,
    });
  });
});
