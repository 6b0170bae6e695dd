import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { generateSigningKeyPair, type TelemetryReport } from '@outpost/protocol';
import { makeRelease, makeTempDir } from '../testkit/index.ts';
import { MIGRATIONS, SqliteStore, canAdvance, type TargetState } from './index.ts';

const NOW = '2025-06-01T00:00:00.000Z';
const LATER = '2025-06-02T00:00:00.000Z';

function device(id: string) {
  return {
    id,
    secretHash: `hash-${id}`,
    profile: 'cpu',
    tags: ['a'],
    agentVersion: '0.1.0',
    enrolledAt: NOW,
  };
}

function report(deviceId: string, seq: number): TelemetryReport {
  return { deviceId, seq, windowStart: NOW, windowEnd: NOW, rssBytes: 1000 + seq, models: [] };
}

describe('SqliteStore', () => {
  let dir: string;
  let store: SqliteStore;
  before(async () => {
    dir = await makeTempDir();
    store = SqliteStore.open(join(dir, 'db', 'outpost.db'));
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('opens in WAL mode at the newest schema version, and reopening migrates nothing twice', async () => {
    const db = new Database(join(dir, 'db', 'outpost.db'), { readonly: true });
    try {
      assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      db.close();
    }
    const again = SqliteStore.open(join(dir, 'db', 'outpost.db'));
    await again.close();
  });

  test('refuses a database from a newer server', async () => {
    const file = join(dir, 'future.db');
    const db = new Database(file);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    assert.throws(
      () => SqliteStore.open(file),
      (e: Error & { code?: string }) => e.code === 'IO_FAILED',
    );
  });

  test('enrolment: token uses, expiry and id conflicts, each leaving nothing half-done', async () => {
    await store.createBootstrapToken({ tokenHash: 't2', uses: 2, expiresAt: LATER, createdAt: NOW });
    assert.equal(await store.enrolDevice('nope', device('x0'), NOW), 'token-invalid');
    assert.equal(await store.enrolDevice('t2', device('e1'), NOW), 'ok');
    assert.equal(await store.enrolDevice('t2', device('e1'), NOW), 'id-taken');
    assert.equal(await store.enrolDevice('t2', device('e2'), NOW), 'ok');
    assert.equal(await store.enrolDevice('t2', device('e3'), NOW), 'token-invalid');
    await store.createBootstrapToken({ tokenHash: 'old', uses: 5, expiresAt: NOW, createdAt: NOW });
    assert.equal(await store.enrolDevice('old', device('e4'), LATER), 'token-invalid');
    assert.deepEqual(await store.missingDevices(['e1', 'e2', 'e3', 'e4', 'e1']), ['e3', 'e4']);
    const e1 = await store.getDevice('e1');
    assert.deepEqual(e1?.tags, ['a']);
    assert.equal((await store.findDeviceBySecretHash('hash-e2'))?.id, 'e2');
  });

  test('telemetry with a repeated seq is stored once; listing is newest first', async () => {
    await store.createBootstrapToken({ tokenHash: 'tt', uses: 1, expiresAt: LATER, createdAt: NOW });
    await store.enrolDevice('tt', device('tel'), NOW);
    assert.equal(await store.insertTelemetry(report('tel', 1), NOW), true);
    assert.equal(await store.insertTelemetry(report('tel', 2), NOW), true);
    assert.equal(await store.insertTelemetry({ ...report('tel', 1), rssBytes: 5 }, NOW), false);
    const list = await store.listTelemetry('tel', 10);
    assert.deepEqual(
      list.map((r) => [r.seq, r.rssBytes]),
      [
        [2, 1002],
        [1, 1001],
      ],
    );
    assert.equal((await store.listTelemetry('tel', 1)).length, 1);
  });

  test('deployment targets only move forward, whatever order acks arrive in', async () => {
    const keys = generateSigningKeyPair();
    const release = makeRelease(keys, Buffer.from('m'), { name: 'fwd', version: '1.0.0' });
    await store.insertModelVersion({
      name: 'fwd',
      version: '1.0.0',
      envelope: release,
      sha256: release.signed.sha256,
      size: 1,
      state: 'ready',
      keyid: keys.keyid,
      createdAt: NOW,
    });
    await store.createBootstrapToken({ tokenHash: 'td', uses: 1, expiresAt: LATER, createdAt: NOW });
    await store.enrolDevice('td', device('fwd-dev'), NOW);

    const acks = fc.array(
      fc.constantFrom<Exclude<TargetState, 'pending'>>('received', 'succeeded', 'failed'),
      {
        maxLength: 8,
      },
    );
    await fc.assert(
      fc.asyncProperty(acks, async (seq) => {
        const commandId = randomUUID();
        const id = randomUUID();
        await store.createDeployment({
          id,
          model: 'fwd',
          version: '1.0.0',
          createdAt: NOW,
          targets: [{ deviceId: 'fwd-dev', commandId, state: 'pending', error: null, updatedAt: NOW }],
        });
        // Reference model: the first terminal ack wins; otherwise `received` if one came.
        let expected: TargetState = 'pending';
        for (const s of seq) {
          const outcome = await store.applyAck({
            commandId,
            deviceId: 'fwd-dev',
            state: s,
            error: s,
            at: LATER,
          });
          const advances = canAdvance(expected, s);
          assert.equal(outcome, advances ? 'applied' : 'ignored');
          if (advances) expected = s;
        }
        const d = await store.getDeployment(id);
        assert.equal(d?.targets[0]?.state, expected);
        assert.equal(d?.targets[0]?.error, expected === 'pending' ? null : expected);
        const pending = (await store.pendingCommands('fwd-dev')).some((p) => p.commandId === commandId);
        assert.equal(pending, expected === 'pending');
        // An ack naming another device never touches the target.
        assert.equal(
          await store.applyAck({ commandId, deviceId: 'other', state: 'failed', error: null, at: LATER }),
          'unknown',
        );
      }),
      { numRuns: 60 },
    );
  });

  test('canAdvance is exactly pending → received → succeeded | failed', () => {
    const states: TargetState[] = ['pending', 'received', 'succeeded', 'failed'];
    const allowed = new Set([
      'pending>received',
      'pending>succeeded',
      'pending>failed',
      'received>succeeded',
      'received>failed',
    ]);
    for (const a of states)
      for (const b of states) assert.equal(canAdvance(a, b), allowed.has(`${a}>${b}`), `${a}>${b}`);
  });

  test('online flags: set per device, all reset at start-up', async () => {
    await store.setDeviceOnline('e1', true, LATER);
    assert.equal((await store.getDevice('e1'))?.online, true);
    assert.equal((await store.getDevice('e1'))?.lastSeen, LATER);
    await store.markAllDevicesOffline(LATER);
    assert.equal(
      (await store.listDevices()).some((d) => d.online),
      false,
    );
  });
});
