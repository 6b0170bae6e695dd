import { randomUUID } from 'node:crypto';
import {
  OutpostError,
  createDeploymentRequest,
  deployCommand,
  parseWith,
  topics,
  type CommandAck,
  type DeployCommand,
  type DeploymentView,
} from '@outpost/protocol';
import type { Logger } from '@outpost/common';
import type { ControlPlaneStore, DeploymentRecord, PendingCommand } from '../store/index.ts';

/** Sends a payload to a topic with QoS 1 (the broker's publish). */
export type CommandPublisher = (topic: string, payload: string) => Promise<void>;

/**
 * The deploy command of a target, identical on every (re)send so the agent can dedupe by commandId.
 *
 * @example
 * const payload = JSON.stringify(buildDeployCommand(pending)); // to topics.commands(pending.deviceId)
 */
export function buildDeployCommand(p: PendingCommand): DeployCommand {
  const cmd: DeployCommand = {
    kind: 'deploy',
    commandId: p.commandId,
    deploymentId: p.deploymentId,
    issuedAt: p.issuedAt,
    release: p.envelope,
    artifactPath: `/api/v1/artifacts/${p.model}/${p.version}`,
  };
  // Guards the wire contract: what we send must parse on the agent's side.
  parseWith(deployCommand, cmd, 'deploy command');
  return cmd;
}

/**
 * The API view of a stored deployment.
 *
 * @example
 * return toDeploymentView(await store.getDeployment(id));
 */
export function toDeploymentView(d: DeploymentRecord): DeploymentView {
  return {
    id: d.id,
    model: d.model,
    version: d.version,
    createdAt: d.createdAt,
    targets: d.targets.map((t) => ({ ...t })),
  };
}

/**
 * Deployments: a ready model version sent to a set of devices, one deploy command (its own commandId) per
 * device. Commands are stored before they are published, so a device that is offline (or a broker that
 * restarts) loses nothing: pending commands are re-sent whenever the device can receive commands again.
 *
 * @example
 * const deployments = new DeploymentService(store, (t, p) => broker.publish(t, p), log);
 * const view = await deployments.create({ model: 'mnist', version: '1.0.0', devices: ['dev-1'] });
 */
export class DeploymentService {
  readonly #store: ControlPlaneStore;
  readonly #publish: CommandPublisher;
  readonly #log: Logger;

  constructor(store: ControlPlaneStore, publish: CommandPublisher, log: Logger) {
    this.#store = store;
    this.#publish = publish;
    this.#log = log;
  }

  /** MODEL_UNKNOWN unless the version is ready; DEVICE_UNKNOWN (details.unknown) for any unknown device. */
  async create(body: unknown): Promise<DeploymentView> {
    const req = parseWith(createDeploymentRequest, body, 'deployment request');
    const model = await this.#store.getModelVersion(req.model, req.version);
    if (!model || model.state !== 'ready') {
      throw new OutpostError('MODEL_UNKNOWN', `no ready model version ${req.model}@${req.version}`);
    }
    const devices = [...new Set(req.devices)];
    const unknown = await this.#store.missingDevices(devices);
    if (unknown.length > 0) {
      const shown = unknown.slice(0, 20).join(', ') + (unknown.length > 20 ? ', ...' : '');
      throw new OutpostError('DEVICE_UNKNOWN', `unknown device(s): ${shown}`, { details: { unknown } });
    }
    const now = new Date().toISOString();
    const record: DeploymentRecord = {
      id: randomUUID(),
      model: model.name,
      version: model.version,
      createdAt: now,
      targets: devices.map((deviceId) => ({
        deviceId,
        commandId: randomUUID(),
        state: 'pending',
        error: null,
        updatedAt: now,
      })),
    };
    await this.#store.createDeployment(record);
    this.#log.info(
      { deploymentId: record.id, model: model.name, version: model.version, devices: devices.length },
      'deployment created',
    );
    await Promise.all(
      record.targets.map((t) =>
        this.#send({
          commandId: t.commandId,
          deploymentId: record.id,
          deviceId: t.deviceId,
          issuedAt: now,
          model: model.name,
          version: model.version,
          envelope: model.envelope,
        }),
      ),
    );
    return toDeploymentView(record);
  }

  /** NOT_FOUND when there is no such deployment. */
  async get(id: string): Promise<DeploymentView> {
    const d = await this.#store.getDeployment(id);
    if (!d) throw new OutpostError('NOT_FOUND', `no deployment ${JSON.stringify(id)}`);
    return toDeploymentView(d);
  }

  /** Re-sends every command the device has not acknowledged yet; returns how many. */
  async resendPending(deviceId: string): Promise<number> {
    const pending = await this.#store.pendingCommands(deviceId);
    for (const p of pending) await this.#send(p);
    if (pending.length > 0) this.#log.info({ deviceId, count: pending.length }, 're-sent pending commands');
    return pending.length;
  }

  /** Applies an ack (forward transitions only; duplicates and stale acks are ignored). */
  async applyAck(ack: CommandAck): Promise<void> {
    const error = ack.error ? `${ack.error.code}: ${ack.error.message}` : null;
    const outcome = await this.#store.applyAck({
      commandId: ack.commandId,
      deviceId: ack.deviceId,
      state: ack.status,
      error,
      at: new Date().toISOString(),
    });
    const fields = { deviceId: ack.deviceId, commandId: ack.commandId, status: ack.status };
    if (outcome === 'unknown') this.#log.warn(fields, 'ack for an unknown command dropped');
    else if (outcome === 'ignored') this.#log.debug(fields, 'duplicate or stale ack ignored');
    else this.#log.info(fields, 'deployment target updated');
  }

  async #send(p: PendingCommand): Promise<void> {
    try {
      await this.#publish(topics.commands(p.deviceId), JSON.stringify(buildDeployCommand(p)));
    } catch (err) {
      // Still pending in the store: it goes out again when the device next subscribes.
      this.#log.error(
        { err, deviceId: p.deviceId, commandId: p.commandId },
        'could not publish deploy command',
      );
    }
  }
}
