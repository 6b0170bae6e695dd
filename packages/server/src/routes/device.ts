import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { OutpostError, enrolRequest, parseWith, type EnrolResponse } from '@outpost/protocol';
import { hashSecret, newSecret } from '../auth/index.ts';
import type { RouteDeps } from './deps.ts';
import { parseRange } from './range.ts';

const artifactParams = z.object({ name: z.string(), version: z.string() });

/** Routes devices call: enrolment (bootstrap token in the body) and artifact download (device or admin). */
export function registerDeviceRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { store, registry } = deps;

  app.post('/api/v1/enrol', { config: { auth: 'none' } }, async (req, reply) => {
    const body = parseWith(enrolRequest, req.body, 'enrol request');
    const deviceId = body.deviceId ?? `dev-${randomBytes(6).toString('hex')}`;
    const deviceSecret = newSecret();
    const now = new Date().toISOString();
    const outcome = await store.enrolDevice(
      hashSecret(body.bootstrapToken),
      {
        id: deviceId,
        secretHash: hashSecret(deviceSecret),
        profile: body.profile,
        tags: body.tags,
        agentVersion: body.agentVersion,
        enrolledAt: now,
      },
      now,
    );
    if (outcome === 'token-invalid') {
      throw new OutpostError('ENROLMENT_TOKEN_INVALID', 'bootstrap token unknown, used up or expired');
    }
    if (outcome === 'id-taken')
      throw new OutpostError('CONFLICT', `device id ${deviceId} is already enrolled`);
    deps.log.info({ deviceId, profile: body.profile }, 'device enrolled');
    const res: EnrolResponse = { deviceId, deviceSecret, mqttUrl: deps.mqttUrlFor(req.hostname) };
    return reply.code(201).send(res);
  });

  app.get('/api/v1/artifacts/:name/:version', { config: { auth: 'device-or-admin' } }, async (req, reply) => {
    const p = parseWith(artifactParams, req.params, 'path');
    const art = await registry.openArtifact(p.name, p.version);
    const etag = `"${art.sha256}"`;
    // If-Range: resume only if the file is still the one the client started downloading.
    const ifRange = req.headers['if-range'];
    const rangeHeader = ifRange === undefined || ifRange === etag ? req.headers.range : undefined;
    const range = parseRange(rangeHeader, art.size);
    void reply.header('accept-ranges', 'bytes').header('etag', etag);
    if (range === 'unsatisfiable') {
      return reply
        .code(416)
        .type('application/json')
        .header('content-range', `bytes */${art.size}`)
        .send({
          code: 'VALIDATION_FAILED',
          message: `range not satisfiable for ${art.size} bytes`,
          retryable: false,
        });
    }
    void reply.type('application/octet-stream');
    if (range === null) {
      return reply.header('content-length', art.size).send(createReadStream(art.path));
    }
    return reply
      .code(206)
      .header('content-range', `bytes ${range.start}-${range.end}/${art.size}`)
      .header('content-length', range.end - range.start + 1)
      .send(createReadStream(art.path, { start: range.start, end: range.end }));
  });
}
