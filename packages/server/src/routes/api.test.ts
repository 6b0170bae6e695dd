import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import {
  createBootstrapTokenResponse,
  deviceView,
  enrolResponse,
  errorBody,
  generateSigningKeyPair,
  modelVersionSummary,
  sha256Of,
  signDocument,
} from '@outpost/protocol';
import {
  basicAuth,
  enrol,
  makeRelease,
  publishReady,
  startTestServer,
  waitFor,
  type TestServer,
} from '../testkit/index.ts';

function errCode(json: unknown): string {
  return errorBody.parse(json).code;
}

/** Sends a request with a path exactly as given (fetch would normalise `..` segments away). */
function rawRequest(
  t: TestServer,
  method: string,
  path: string,
  body?: Buffer,
): Promise<{ status: number; body: string }> {
  const url = new URL(t.server.httpUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: {
          authorization: `Bearer ${t.server.adminToken}`,
          'content-type': 'application/octet-stream',
          'content-length': body?.length ?? 0,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('REST API', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.dispose();
  });

  test('healthz is open and answers ok', async () => {
    const r = await t.api('GET', '/healthz', { auth: 'none' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { ok: true });
  });

  test('admin auth is required on every other route', async () => {
    const routes: [string, string][] = [
      ['POST', '/api/v1/bootstrap-tokens'],
      ['POST', '/api/v1/signing-keys'],
      ['GET', '/api/v1/signing-keys'],
      ['POST', '/api/v1/models'],
      ['GET', '/api/v1/models'],
      ['GET', '/api/v1/models/mnist/versions/1.0.0'],
      ['PUT', '/api/v1/models/mnist/versions/1.0.0/artifact'],
      ['GET', '/api/v1/artifacts/mnist/1.0.0'],
      ['POST', '/api/v1/deployments'],
      ['GET', '/api/v1/deployments/00000000-0000-4000-8000-000000000000'],
      ['GET', '/api/v1/devices'],
      ['GET', '/api/v1/devices/dev-x'],
      ['GET', '/api/v1/devices/dev-x/telemetry'],
    ];
    for (const [method, path] of routes) {
      for (const auth of [
        'none',
        { header: 'Bearer wrong-token-wrong-token' },
        { header: 'Basic Zm9vOmJhcg==' },
      ] as const) {
        const r = await t.api(method, path, {
          auth,
          body: method === 'GET' || method === 'PUT' ? undefined : {},
        });
        assert.equal(r.status, 401, `${method} ${path} with ${JSON.stringify(auth)}`);
        assert.equal(errCode(r.json), 'UNAUTHENTICATED');
      }
    }
  });

  test('a device credential cannot call admin routes', async () => {
    const dev = await enrol(t);
    const auth = basicAuth(dev.deviceId, dev.deviceSecret);
    const r = await t.api('GET', '/api/v1/devices', { auth });
    assert.equal(r.status, 403);
    assert.equal(errCode(r.json), 'FORBIDDEN');
    const r2 = await t.api('POST', '/api/v1/bootstrap-tokens', {
      auth: { header: `Bearer ${dev.deviceSecret}` },
      body: {},
    });
    assert.equal(r2.status, 403);
  });

  test('unknown routes answer NOT_FOUND in the error format', async () => {
    const r = await t.api('GET', '/api/v1/nope');
    assert.equal(r.status, 404);
    assert.equal(errCode(r.json), 'NOT_FOUND');
  });

  describe('enrolment', () => {
    test('a single-use token enrols once, and the server assigns an id', async () => {
      const tok = createBootstrapTokenResponse.parse(
        (await t.api('POST', '/api/v1/bootstrap-tokens', { body: {} })).json,
      );
      const first = await t.api('POST', '/api/v1/enrol', {
        auth: 'none',
        body: { bootstrapToken: tok.token, tags: ['lab'] },
      });
      assert.equal(first.status, 201);
      const res = enrolResponse.parse(first.json);
      assert.match(res.deviceId, /^dev-[0-9a-f]{12}$/);
      assert.equal(res.mqttUrl, t.server.mqttUrl);
      const again = await t.api('POST', '/api/v1/enrol', {
        auth: 'none',
        body: { bootstrapToken: tok.token },
      });
      assert.equal(again.status, 401);
      assert.equal(errCode(again.json), 'ENROLMENT_TOKEN_INVALID');
      const view = deviceView.parse((await t.api('GET', `/api/v1/devices/${res.deviceId}`)).json);
      assert.deepEqual(view.tags, ['lab']);
      assert.equal(view.online, false);
      assert.equal('secretHash' in (view as object), false);
    });

    test('a token with n uses enrols exactly n devices', async () => {
      const tok = createBootstrapTokenResponse.parse(
        (await t.api('POST', '/api/v1/bootstrap-tokens', { body: { uses: 3 } })).json,
      );
      const results = await Promise.all(
        Array.from({ length: 5 }, () =>
          t.api('POST', '/api/v1/enrol', { auth: 'none', body: { bootstrapToken: tok.token } }),
        ),
      );
      assert.equal(results.filter((r) => r.status === 201).length, 3);
      assert.equal(results.filter((r) => r.status === 401).length, 2);
    });

    test('an unknown token is refused', async () => {
      const r = await t.api('POST', '/api/v1/enrol', {
        auth: 'none',
        body: { bootstrapToken: 'x'.repeat(43) },
      });
      assert.equal(r.status, 401);
      assert.equal(errCode(r.json), 'ENROLMENT_TOKEN_INVALID');
    });

    test('an expired token is refused', async () => {
      const tok = createBootstrapTokenResponse.parse(
        (await t.api('POST', '/api/v1/bootstrap-tokens', { body: { ttlSeconds: 60 } })).json,
      );
      // Age the token in the database itself: waiting a minute would make the test slow.
      const db = new Database(join(t.dataDir, 'outpost.db'));
      try {
        db.prepare('UPDATE bootstrap_tokens SET expires_at = ?').run(
          new Date(Date.now() - 1000).toISOString(),
        );
      } finally {
        db.close();
      }
      const r = await t.api('POST', '/api/v1/enrol', { auth: 'none', body: { bootstrapToken: tok.token } });
      assert.equal(r.status, 401);
      assert.equal(errCode(r.json), 'ENROLMENT_TOKEN_INVALID');
    });

    test('a taken device id is CONFLICT and does not use up the token', async () => {
      await enrol(t, 'taken-1');
      const tok = createBootstrapTokenResponse.parse(
        (await t.api('POST', '/api/v1/bootstrap-tokens', { body: {} })).json,
      );
      const r = await t.api('POST', '/api/v1/enrol', {
        auth: 'none',
        body: { bootstrapToken: tok.token, deviceId: 'taken-1' },
      });
      assert.equal(r.status, 409);
      assert.equal(errCode(r.json), 'CONFLICT');
      const ok = await t.api('POST', '/api/v1/enrol', {
        auth: 'none',
        body: { bootstrapToken: tok.token, deviceId: 'taken-2' },
      });
      assert.equal(ok.status, 201);
    });

    test('invalid bodies are VALIDATION_FAILED, bad JSON is MALFORMED_MESSAGE', async () => {
      const r = await t.api('POST', '/api/v1/enrol', { auth: 'none', body: { bootstrapToken: 'short' } });
      assert.equal(r.status, 400);
      assert.equal(errCode(r.json), 'VALIDATION_FAILED');
      const bad = await fetch(`${t.server.httpUrl}/api/v1/enrol`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"bootstrapToken":',
      });
      assert.equal(bad.status, 400);
      assert.equal(errCode(await bad.json()), 'MALFORMED_MESSAGE');
      const badId = await t.api('POST', '/api/v1/enrol', {
        auth: 'none',
        body: { bootstrapToken: 'x'.repeat(43), deviceId: '../etc' },
      });
      assert.equal(errCode(badId.json), 'VALIDATION_FAILED');
    });
  });

  describe('signing keys and releases', () => {
    test('a release signed by an unknown key is UNKNOWN_KEY; adding the key makes it publishable', async () => {
      const other = generateSigningKeyPair();
      const release = makeRelease(other, randomBytes(64), { name: 'keyed', version: '1.0.0' });
      const r = await t.api('POST', '/api/v1/models', { body: { release } });
      assert.equal(r.status, 422);
      assert.equal(errCode(r.json), 'UNKNOWN_KEY');
      const add = await t.api('POST', '/api/v1/signing-keys', { body: { publicKeyPem: other.publicKeyPem } });
      assert.equal(add.status, 201);
      assert.deepEqual(add.json, { keyid: other.keyid });
      const again = await t.api('POST', '/api/v1/signing-keys', {
        body: { publicKeyPem: other.publicKeyPem },
      });
      assert.equal(again.status, 200);
      const list = (await t.api('GET', '/api/v1/signing-keys')).json as { keyid: string }[];
      assert.ok(list.some((k) => k.keyid === other.keyid));
      assert.ok(
        list.some((k) => k.keyid === t.keys.keyid),
        'the configured key is listed',
      );
      const ok = await t.api('POST', '/api/v1/models', { body: { release } });
      assert.equal(ok.status, 201);
      assert.equal(modelVersionSummary.parse(ok.json).keyid, other.keyid);
    });

    test('a key that is not Ed25519 PEM is VALIDATION_FAILED', async () => {
      const r = await t.api('POST', '/api/v1/signing-keys', { body: { publicKeyPem: 'not a key' } });
      assert.equal(r.status, 400);
      assert.equal(errCode(r.json), 'VALIDATION_FAILED');
    });

    test('a tampered manifest is SIGNATURE_INVALID', async () => {
      const release = makeRelease(t.keys, randomBytes(64), { name: 'tampered', version: '1.0.0' });
      const tampered = { ...release, signed: { ...release.signed, size: release.signed.size + 1 } };
      const r = await t.api('POST', '/api/v1/models', { body: { release: tampered } });
      assert.equal(r.status, 422);
      assert.equal(errCode(r.json), 'SIGNATURE_INVALID');
      assert.equal((await t.api('GET', '/api/v1/models/tampered/versions/1.0.0')).status, 404);
    });

    test('a manifest signed without its defaults filled in is refused', async () => {
      const bytes = randomBytes(16);
      const bare = {
        schemaVersion: 1,
        name: 'bare',
        version: '1.0.0',
        format: 'onnx',
        sha256: sha256Of(bytes),
        size: bytes.length,
        inputs: [{ name: 'x', dtype: 'float32', shape: [1] }],
        outputs: [{ name: 'y', dtype: 'float32', shape: [1] }],
        createdAt: '2025-01-01T00:00:00.000Z',
      };
      const r = await t.api('POST', '/api/v1/models', {
        body: { release: signDocument(bare, t.keys.privateKeyPem) },
      });
      assert.equal(r.status, 400);
      assert.equal(errCode(r.json), 'VALIDATION_FAILED');
    });

    test('re-publishing is idempotent; a different manifest for the same version is CONFLICT', async () => {
      const bytes = randomBytes(32);
      const release = makeRelease(t.keys, bytes, { name: 'idem', version: '2.0.0' });
      const first = await t.api('POST', '/api/v1/models', { body: { release } });
      assert.equal(first.status, 201);
      const summary = modelVersionSummary.parse(first.json);
      assert.equal(summary.state, 'awaiting-artifact');
      assert.equal(summary.sha256, sha256Of(bytes));
      const second = await t.api('POST', '/api/v1/models', { body: { release } });
      assert.equal(second.status, 200);
      assert.deepEqual(second.json, first.json);
      const other = makeRelease(t.keys, randomBytes(32), { name: 'idem', version: '2.0.0' });
      const third = await t.api('POST', '/api/v1/models', { body: { release: other } });
      assert.equal(third.status, 409);
      assert.equal(errCode(third.json), 'CONFLICT');
      const detail = (await t.api('GET', '/api/v1/models/idem/versions/2.0.0')).json as { release: unknown };
      assert.deepEqual(detail.release, release);
      const list = modelVersionSummary.array().parse((await t.api('GET', '/api/v1/models')).json);
      assert.ok(list.some((m) => m.name === 'idem' && m.version === '2.0.0'));
    });
  });

  describe('artifacts', () => {
    const artifactsDir = () => join(t.dataDir, 'artifacts');
    const leftovers = (name: string) =>
      existsSync(join(artifactsDir(), name)) ? readdirSync(join(artifactsDir(), name)) : [];

    test('an upload with the wrong hash is HASH_MISMATCH and leaves no file', async () => {
      const bytes = randomBytes(1000);
      const release = makeRelease(t.keys, bytes, { name: 'hashy', version: '1.0.0' });
      assert.equal((await t.api('POST', '/api/v1/models', { body: { release } })).status, 201);
      const wrong = Buffer.from(bytes);
      wrong[500] = (wrong[500] ?? 0) ^ 0xff;
      const r = await t.api('PUT', '/api/v1/models/hashy/versions/1.0.0/artifact', { raw: wrong });
      assert.equal(r.status, 422);
      assert.equal(errCode(r.json), 'HASH_MISMATCH');
      assert.deepEqual(leftovers('hashy'), []);
      const s = modelVersionSummary.parse((await t.api('GET', '/api/v1/models/hashy/versions/1.0.0')).json);
      assert.equal(s.state, 'awaiting-artifact');
    });

    test('an upload of the wrong size is SIZE_MISMATCH and leaves no file', async () => {
      const bytes = randomBytes(1000);
      const release = makeRelease(t.keys, bytes, { name: 'sizey', version: '1.0.0' });
      assert.equal((await t.api('POST', '/api/v1/models', { body: { release } })).status, 201);
      for (const body of [bytes.subarray(0, 999), Buffer.concat([bytes, Buffer.from([1])])]) {
        const r = await t.api('PUT', '/api/v1/models/sizey/versions/1.0.0/artifact', { raw: body });
        assert.equal(r.status, 422);
        assert.equal(errCode(r.json), 'SIZE_MISMATCH');
      }
      // Chunked (no Content-Length): the overflow is caught while streaming.
      const chunked = await fetch(`${t.server.httpUrl}/api/v1/models/sizey/versions/1.0.0/artifact`, {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${t.server.adminToken}`,
          'content-type': 'application/octet-stream',
        },
        body: new Blob([bytes, bytes]).stream(),
        duplex: 'half',
      } as RequestInit);
      assert.equal(chunked.status, 422);
      assert.equal(errCode(await chunked.json()), 'SIZE_MISMATCH');
      assert.deepEqual(leftovers('sizey'), []);
    });

    test('an upload cut off mid-way leaves no temp file behind', async () => {
      const bytes = randomBytes(256 * 1024);
      const release = makeRelease(t.keys, bytes, { name: 'aborted', version: '1.0.0' });
      assert.equal((await t.api('POST', '/api/v1/models', { body: { release } })).status, 201);
      const url = new URL(t.server.httpUrl);
      const req = request({
        host: url.hostname,
        port: url.port,
        method: 'PUT',
        path: '/api/v1/models/aborted/versions/1.0.0/artifact',
        headers: {
          authorization: `Bearer ${t.server.adminToken}`,
          'content-type': 'application/octet-stream',
          'content-length': bytes.length,
        },
      });
      req.on('error', () => undefined);
      req.write(bytes.subarray(0, 100 * 1024));
      // The partial upload is being written to a temp file beside its final place...
      await waitFor(() => leftovers('aborted').some((f) => f.endsWith('.tmp')), 5000, 'temp file');
      req.destroy();
      // ...and the temp file goes away when the client disappears.
      await waitFor(() => leftovers('aborted').length === 0, 5000, 'temp file removed');
      const s = modelVersionSummary.parse((await t.api('GET', '/api/v1/models/aborted/versions/1.0.0')).json);
      assert.equal(s.state, 'awaiting-artifact');
    });

    test('the right bytes make the version ready; wrong content type and unknown versions are refused', async () => {
      const bytes = randomBytes(5000);
      await publishReady(t, bytes, { name: 'good', version: '1.0.0' });
      assert.deepEqual(leftovers('good'), ['1.0.0.onnx']);
      const s = modelVersionSummary.parse((await t.api('GET', '/api/v1/models/good/versions/1.0.0')).json);
      assert.equal(s.state, 'ready');
      const json = await t.api('PUT', '/api/v1/models/good/versions/1.0.0/artifact', { body: { a: 1 } });
      assert.equal(errCode(json.json), 'VALIDATION_FAILED');
      const unknown = await t.api('PUT', '/api/v1/models/nope/versions/1.0.0/artifact', { raw: bytes });
      assert.equal(unknown.status, 404);
      assert.equal(errCode(unknown.json), 'MODEL_UNKNOWN');
    });

    test('traversal names are INVALID_NAME and nothing is written outside the store', async () => {
      const before = readdirSync(t.dataDir).sort();
      const body = Buffer.from('evil');
      for (const path of [
        '/api/v1/models/%2e%2e/versions/1.0.0/artifact',
        '/api/v1/models/..%2f..%2fx/versions/1.0.0/artifact',
        '/api/v1/models/x/versions/%2e%2e%2f%2e%2e%2fx/artifact',
        '/api/v1/models/.hidden/versions/1.0.0/artifact',
        '/api/v1/models/a..b/versions/1.0.0/artifact',
      ]) {
        const r = await rawRequest(t, 'PUT', path, body);
        assert.equal(r.status, 400, path);
        assert.equal(errCode(JSON.parse(r.body)), 'INVALID_NAME', path);
      }
      for (const path of ['/api/v1/models/../../x/versions/1.0.0/artifact', '/api/v1/artifacts/../x/1.0.0']) {
        const r = await rawRequest(t, 'PUT', path, body);
        assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
      }
      const dl = await rawRequest(t, 'GET', '/api/v1/artifacts/%2e%2e/1.0.0');
      assert.equal(errCode(JSON.parse(dl.body)), 'INVALID_NAME');
      assert.deepEqual(readdirSync(t.dataDir).sort(), before);
      assert.equal(existsSync(join(t.dataDir, '..', 'x')), false);
    });

    test('download with device Basic auth, whole and by Range', async () => {
      const bytes = randomBytes(10_000);
      await publishReady(t, bytes, { name: 'dl', version: '1.2.3' });
      const dev = await enrol(t);
      const auth = basicAuth(dev.deviceId, dev.deviceSecret);
      const whole = await t.api('GET', '/api/v1/artifacts/dl/1.2.3', { auth });
      assert.equal(whole.status, 200);
      assert.equal(whole.headers.get('content-length'), '10000');
      assert.equal(whole.headers.get('accept-ranges'), 'bytes');
      assert.ok(whole.bytes.equals(bytes));
      const part = await t.api('GET', '/api/v1/artifacts/dl/1.2.3', {
        auth,
        headers: { range: 'bytes=4000-' },
      });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get('content-range'), 'bytes 4000-9999/10000');
      assert.equal(part.headers.get('content-length'), '6000');
      assert.ok(part.bytes.equals(bytes.subarray(4000)));
      const mid = await t.api('GET', '/api/v1/artifacts/dl/1.2.3', {
        auth,
        headers: { range: 'bytes=10-19' },
      });
      assert.ok(mid.bytes.equals(bytes.subarray(10, 20)));
      const past = await t.api('GET', '/api/v1/artifacts/dl/1.2.3', {
        auth,
        headers: { range: 'bytes=10000-' },
      });
      assert.equal(past.status, 416);
      assert.equal(past.headers.get('content-range'), 'bytes */10000');
      // A stale If-Range means the file changed: the whole file comes back.
      const stale = await t.api('GET', '/api/v1/artifacts/dl/1.2.3', {
        auth,
        headers: { range: 'bytes=4000-', 'if-range': '"0000"' },
      });
      assert.equal(stale.status, 200);
      assert.equal(stale.bytes.length, 10_000);
      const bearer = await t.api('GET', '/api/v1/artifacts/dl/1.2.3', {
        auth: { header: `Bearer ${dev.deviceSecret}` },
      });
      assert.equal(bearer.status, 200);
      const wrong = await t.api('GET', '/api/v1/artifacts/dl/1.2.3', {
        auth: basicAuth(dev.deviceId, 'x'.repeat(43)),
      });
      assert.equal(wrong.status, 401);
    });

    test('an artifact that is not uploaded yet is MODEL_UNKNOWN', async () => {
      const release = makeRelease(t.keys, randomBytes(10), { name: 'pending', version: '1.0.0' });
      await t.api('POST', '/api/v1/models', { body: { release } });
      const r = await t.api('GET', '/api/v1/artifacts/pending/1.0.0');
      assert.equal(r.status, 404);
      assert.equal(errCode(r.json), 'MODEL_UNKNOWN');
    });
  });

  describe('devices and deployments', () => {
    test('unknown devices are DEVICE_UNKNOWN, listing the unknown ids', async () => {
      await publishReady(t, randomBytes(100), { name: 'fleet', version: '1.0.0' });
      const dev = await enrol(t);
      const r = await t.api('POST', '/api/v1/deployments', {
        body: { model: 'fleet', version: '1.0.0', devices: [dev.deviceId, 'ghost-1', 'ghost-2'] },
      });
      assert.equal(r.status, 404);
      const body = errorBody.parse(r.json);
      assert.equal(body.code, 'DEVICE_UNKNOWN');
      assert.deepEqual(body.details, { unknown: ['ghost-1', 'ghost-2'] });
      assert.equal(errCode((await t.api('GET', '/api/v1/devices/ghost-1')).json), 'DEVICE_UNKNOWN');
      assert.equal(errCode((await t.api('GET', '/api/v1/devices/ghost-1/telemetry')).json), 'DEVICE_UNKNOWN');
    });

    test('a model version that is not ready is MODEL_UNKNOWN', async () => {
      const dev = await enrol(t);
      const release = makeRelease(t.keys, randomBytes(10), { name: 'notready', version: '1.0.0' });
      await t.api('POST', '/api/v1/models', { body: { release } });
      for (const version of ['1.0.0', '9.9.9']) {
        const r = await t.api('POST', '/api/v1/deployments', {
          body: { model: 'notready', version, devices: [dev.deviceId] },
        });
        assert.equal(r.status, 404);
        assert.equal(errCode(r.json), 'MODEL_UNKNOWN');
      }
    });

    test('unknown deployment ids are NOT_FOUND; telemetry limits are validated', async () => {
      const r = await t.api('GET', '/api/v1/deployments/00000000-0000-4000-8000-000000000000');
      assert.equal(errCode(r.json), 'NOT_FOUND');
      const r2 = await t.api('GET', '/api/v1/deployments/not-a-uuid');
      assert.equal(errCode(r2.json), 'NOT_FOUND');
      const dev = await enrol(t);
      const bad = await t.api('GET', `/api/v1/devices/${dev.deviceId}/telemetry?limit=0`);
      assert.equal(errCode(bad.json), 'VALIDATION_FAILED');
      const ok = await t.api('GET', `/api/v1/devices/${dev.deviceId}/telemetry?limit=5`);
      assert.deepEqual(ok.json, []);
    });
  });
});
