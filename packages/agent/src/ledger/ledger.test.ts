import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentLedger } from './index.ts';

test('the ledger keeps command outcomes and counters across reopen', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-ledger-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = randomUUID();
  const b = randomUUID();
  let ledger = AgentLedger.open(dir);
  assert.equal(ledger.insertQueued(a, 'deploy', '{"x":1}'), true);
  assert.equal(ledger.insertQueued(a, 'deploy', '{"x":2}'), false, 'a known id is not inserted twice');
  assert.equal(ledger.insertQueued(b, 'deploy', '{}'), true);
  ledger.setState(a, 'received');
  ledger.setState(b, 'failed', { code: 'HASH_MISMATCH', message: 'no', retryable: false });
  assert.deepEqual(
    [ledger.nextSeq('telemetry'), ledger.nextSeq('telemetry'), ledger.nextSeq('other')],
    [0, 1, 0],
  );
  ledger.close();

  ledger = AgentLedger.open(dir);
  assert.deepEqual(
    ledger.unfinished().map((r) => [r.commandId, r.state, r.payload]),
    [[a, 'received', '{"x":1}']],
  );
  assert.deepEqual(ledger.get(b)?.error, { code: 'HASH_MISMATCH', message: 'no', retryable: false });
  assert.equal(ledger.nextSeq('telemetry'), 2);
  // An outcome for an id never queued (a malformed command) is recorded too.
  const c = randomUUID();
  ledger.setState(c, 'failed', { code: 'MALFORMED_MESSAGE', message: 'bad', retryable: false });
  assert.equal(ledger.get(c)?.state, 'failed');
  assert.equal(ledger.get(randomUUID()), null);
  ledger.close();
});
