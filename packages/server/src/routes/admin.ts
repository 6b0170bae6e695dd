import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import {
  OutpostError,
  createBootstrapTokenRequest,
  parseWith,
  type DeviceView,
  type TelemetryReport,
} from '@outpost/protocol';
import { hashSecret, newSecret } from '../auth/index.ts';
import { toSummary } from '../registry/index.ts';
import type { RouteDeps } from './deps.ts';
import { toDeviceView } from './views.ts';

const addKeyRequest = z.object({ publicKeyPem: z.string().min(1).max(16_384) });
const telemetryQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) });
const nameVersionParams = z.object({ name: z.string(), version: z.string() });
const idParams = z.object({ id: z.string() });

/** Admin routes (every route here needs the admin bearer token; see the auth hook in ./index.ts). */
export function registerAdminRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { store, registry, deployments } = deps;

  app.post('/api/v1/bootstrap-tokens', async (req, reply) => {
    const body = parseWith(createBootstrapTokenRequest, req.body ?? {}, 'bootstrap token request');
    const token = newSecret();
    const now = new Date();
    const expiresAt = new Date(now.getTime() + body.ttlSeconds * 1000).toISOString();
    await store.createBootstrapToken({
      tokenHash: hashSecret(token),
      uses: body.uses,
      expiresAt,
      createdAt: now.toISOString(),
    });
    deps.log.info({ uses: body.uses, expiresAt }, 'bootstrap token created');
    return reply.code(201).send({ token, expiresAt });
  });

  app.post('/api/v1/signing-keys', async (req, reply) => {
    const body = parseWith(addKeyRequest, req.body, 'signing key');
    const { keyid, created } = await registry.addKey(body.publicKeyPem);
    return reply.code(created ? 201 : 200).send({ keyid });
  });

  app.get('/api/v1/signing-keys', async () => {
    return (await registry.listKeys()).map((k) => ({
      keyid: k.keyid,
      publicKeyPem: k.publicKeyPem,
      createdAt: k.createdAt,
    }));
  });

  app.post('/api/v1/models', async (req, reply) => {
    const { created, record } = await registry.publish(req.body);
    return reply.code(created ? 201 : 200).send(toSummary(record));
  });

  app.get('/api/v1/models', async () => (await registry.list()).map(toSummary));

  app.get('/api/v1/models/:name/versions/:version', async (req) => {
    const p = parseWith(nameVersionParams, req.params, 'path');
    const m = await registry.get(p.name, p.version);
    return { ...toSummary(m), release: m.envelope };
  });

  // The artifact body is streamed straight to disk, so this route gets a parser that leaves it unread.
  void app.register(async (scope) => {
    scope.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null));
    scope.put('/api/v1/models/:name/versions/:version/artifact', async (req) => {
      const p = parseWith(nameVersionParams, req.params, 'path');
      const type = req.headers['content-type'] ?? '';
      if (!/^application\/octet-stream\b/i.test(type)) {
        throw new OutpostError(
          'VALIDATION_FAILED',
          'artifact uploads must be sent as application/octet-stream',
        );
      }
      const lengthHeader = req.headers['content-length'];
      const declared = lengthHeader === undefined ? undefined : Number(lengthHeader);
      const m = await registry.uploadArtifact(p.name, p.version, req.raw, declared);
      return toSummary(m);
    });
  });

  app.post('/api/v1/deployments', async (req, reply) => {
    return reply.code(201).send(await deployments.create(req.body));
  });

  app.get('/api/v1/deployments/:id', async (req) => {
    const { id } = parseWith(idParams, req.params, 'path');
    if (!z.uuid().safeParse(id).success)
      throw new OutpostError('NOT_FOUND', `no deployment ${JSON.stringify(id)}`);
    return deployments.get(id);
  });

  app.get('/api/v1/devices', async (): Promise<DeviceView[]> =>
    (await store.listDevices()).map(toDeviceView),
  );

  app.get('/api/v1/devices/:id', async (req): Promise<DeviceView> => {
    const { id } = parseWith(idParams, req.params, 'path');
    const d = await store.getDevice(id);
    if (!d) throw new OutpostError('DEVICE_UNKNOWN', `no device ${JSON.stringify(id)}`);
    return toDeviceView(d);
  });

  app.get('/api/v1/devices/:id/telemetry', async (req): Promise<TelemetryReport[]> => {
    const { id } = parseWith(idParams, req.params, 'path');
    const { limit } = parseWith(telemetryQuery, req.query, 'query');
    if (!(await store.getDevice(id)))
      throw new OutpostError('DEVICE_UNKNOWN', `no device ${JSON.stringify(id)}`);
    return store.listTelemetry(id, limit);
  });
}
