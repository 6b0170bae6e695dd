import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { z } from 'zod';
import type { Logger } from '@outpost/common';
import {
  deviceCommand,
  MAX_MQTT_PAYLOAD,
  OutpostError,
  toOutpostError,
  verifyDocument,
  type AckStatus,
  type CommandAck,
  type DeployCommand,
  type DeviceCommand,
  type ErrorBody,
} from '@outpost/protocol';
import type { AgentLedger } from '../ledger/index.ts';
import { ModelRuntime, type LiveModels } from '../runtime/index.ts';
import { hashFile, type ModelStore } from '../store/index.ts';
import { downloadArtifact } from './download.ts';

export interface DeployerOptions {
  deviceId: string;
  serverUrl: string;
  /** Used only to build the artifact request's Basic credentials; never logged. */
  deviceSecret: string;
  trustedKeys: readonly string[];
  maxArtifactBytes: number;
  downloadTimeoutMs: number;
  intraOpThreads: number;
  store: ModelStore;
  ledger: AgentLedger;
  live: LiveModels;
  publishAck: (ack: CommandAck) => void;
  /** Called after a model was activated (publishes the retained status). */
  onActivated: () => void;
  log: Logger;
}

const uuid = z.uuid();

/**
 * Applies deploy commands one at a time. Idempotent by commandId: every command is recorded in the ledger when
 * it arrives and its outcome before it is acked, so a redelivery is answered with the recorded outcome and never
 * applied twice. Order of checks: signature (before any byte is downloaded) → capped, hashed download → size
 * and hash → ONNX load and manifest match → fsync'd rename into the store → atomic state switch → session swap.
 * Any failure leaves the live slot and the serving model untouched.
 *
 * @example
 * const deployer = new Deployer(opts);
 * channel.onCommand = (payload) => deployer.accept(payload);
 * deployer.resumeUnfinished();
 */
export class Deployer {
  private readonly opts: DeployerOptions;
  private readonly authorization: string;
  private readonly pending = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private readonly shutdown = new AbortController();

  constructor(opts: DeployerOptions) {
    this.opts = opts;
    this.authorization = `Basic ${Buffer.from(`${opts.deviceId}:${opts.deviceSecret}`).toString('base64')}`;
  }

  /**
   * Takes one command payload from the commands topic. Synchronous on purpose: the command is in the ledger
   * before this returns, i.e. before the broker gets its PUBACK. Never throws for bad input.
   */
  accept(payload: Uint8Array): void {
    const log = this.opts.log;
    if (payload.byteLength > MAX_MQTT_PAYLOAD) {
      log.warn({ bytes: payload.byteLength }, 'command ignored: payload exceeds the size cap');
      return;
    }
    const text = Buffer.from(payload).toString('utf8');
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      log.warn({ reason: (err as Error).message }, 'command ignored: not valid JSON');
      return;
    }
    const parsed = deviceCommand.safeParse(raw);
    if (!parsed.success) {
      const reason = parsed.error.issues
        .slice(0, 5)
        .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
        .join('; ');
      const id = (raw as { commandId?: unknown } | null)?.commandId;
      if (!uuid.safeParse(id).success) {
        log.warn({ reason }, 'command ignored: malformed and without a readable commandId');
        return;
      }
      const commandId = id as string;
      log.warn({ commandId, reason }, 'malformed command');
      const known = this.opts.ledger.get(commandId);
      if (known && (known.state === 'succeeded' || known.state === 'failed')) {
        this.ack(commandId, known.state, known.error ?? undefined);
        return;
      }
      if (known || this.pending.has(commandId)) return;
      const error = new OutpostError('MALFORMED_MESSAGE', `malformed command: ${reason}`).toBody();
      this.finish(commandId, 'failed', error);
      return;
    }
    this.enqueue(parsed.data, text);
  }

  /** Re-queues commands accepted before a restart but never finished. */
  resumeUnfinished(): void {
    for (const rec of this.opts.ledger.unfinished()) {
      const parsed = deviceCommand.safeParse(safeJson(rec.payload));
      if (!parsed.success) {
        this.finish(rec.commandId, 'failed', {
          code: 'MALFORMED_MESSAGE',
          message: 'stored command is unreadable',
          retryable: false,
        });
        continue;
      }
      this.opts.log.info({ commandId: rec.commandId }, 'resuming a command interrupted by a restart');
      this.schedule(parsed.data);
    }
  }

  /** Resolves when every queued command has been processed. */
  idle(): Promise<void> {
    return this.queue;
  }

  /** Aborts the running command (it stays unfinished in the ledger and resumes on the next start). */
  async close(): Promise<void> {
    this.shutdown.abort(new Error('the agent is shutting down'));
    await this.queue;
  }

  private enqueue(cmd: DeviceCommand, text: string): void {
    const { ledger, log } = this.opts;
    const known = ledger.get(cmd.commandId);
    if (known && (known.state === 'succeeded' || known.state === 'failed')) {
      log.info(
        { commandId: cmd.commandId, state: known.state },
        'duplicate command: re-acking its recorded outcome',
      );
      this.ack(cmd.commandId, known.state, known.error ?? undefined);
      return;
    }
    if (this.pending.has(cmd.commandId)) {
      log.info({ commandId: cmd.commandId }, 'duplicate command: already queued');
      return;
    }
    if (!known) ledger.insertQueued(cmd.commandId, cmd.kind, text);
    this.schedule(cmd);
  }

  private schedule(cmd: DeviceCommand): void {
    this.pending.add(cmd.commandId);
    this.queue = this.queue.then(() => this.process(cmd));
  }

  private async process(cmd: DeviceCommand): Promise<void> {
    const log = this.opts.log.child({ commandId: cmd.commandId });
    try {
      if (this.shutdown.signal.aborted) return;
      this.opts.ledger.setState(cmd.commandId, 'received');
      this.ack(cmd.commandId, 'received');
      await this.deploy(cmd, log);
      this.finish(cmd.commandId, 'succeeded');
    } catch (err) {
      if (this.shutdown.signal.aborted) {
        log.warn(
          { reason: (err as Error).message },
          'deployment interrupted by shutdown; resumes on restart',
        );
        return;
      }
      const e = toOutpostError(err);
      log.error({ code: e.code, reason: e.message }, 'deployment failed');
      this.finish(cmd.commandId, 'failed', e.toBody());
    } finally {
      this.pending.delete(cmd.commandId);
    }
  }

  private async deploy(cmd: DeployCommand, log: Logger): Promise<void> {
    const { store, live } = this.opts;
    // 1. Authenticity first: nothing is downloaded for a release no pinned key signed.
    verifyDocument(cmd.release, this.opts.trustedKeys);
    const m = cmd.release.signed;
    if (m.size > this.opts.maxArtifactBytes) {
      throw new OutpostError('PAYLOAD_TOO_LARGE', `artifact of ${m.size} bytes exceeds maxArtifactBytes`);
    }
    const state = store.readState(m.name);
    for (const known of [state?.active, state?.previous]) {
      if (known && known.version === m.version && known.sha256 !== m.sha256) {
        throw new OutpostError(
          'CONFLICT',
          `${m.name}@${m.version} is installed with sha256 ${known.sha256}; a release must not change a version's bytes`,
        );
      }
    }
    const serving = live.get(m.name);
    if (serving && serving.version === m.version && serving.sha256 === m.sha256) {
      log.info({ model: m.name, version: m.version }, 'already active; nothing to do');
      return;
    }

    const target = store.artifactPath(m.name, m.version);
    let source: string;
    let tmp: string | null = null;
    if (existsSync(target) && (await hashFile(target)).sha256 === m.sha256) {
      // A rollback to the kept previous version: its bytes are already here and verified.
      source = target;
    } else {
      tmp = store.incomingPath();
      source = tmp;
      const url = `${this.opts.serverUrl}${cmd.artifactPath}`;
      log.info({ model: m.name, version: m.version, url, size: m.size }, 'downloading');
      const signal = AbortSignal.any([
        this.shutdown.signal,
        AbortSignal.timeout(this.opts.downloadTimeoutMs),
      ]);
      const got = await downloadArtifact({
        url,
        authorization: this.authorization,
        dest: tmp,
        expectedSize: m.size,
        signal,
      });
      if (got.size !== m.size) {
        await rm(tmp, { force: true });
        throw new OutpostError('SIZE_MISMATCH', `downloaded ${got.size} bytes, the manifest says ${m.size}`);
      }
      if (got.sha256 !== m.sha256) {
        await rm(tmp, { force: true });
        throw new OutpostError(
          'HASH_MISMATCH',
          `artifact sha256 ${got.sha256}, the manifest says ${m.sha256}`,
        );
      }
    }

    let runtime: ModelRuntime | null = null;
    let committed = false;
    try {
      runtime = await ModelRuntime.load(source, {
        intraOpThreads: this.opts.intraOpThreads,
        expect: { inputs: m.inputs, outputs: m.outputs },
      });
      if (this.shutdown.signal.aborted) throw new OutpostError('INTERNAL', 'the agent is shutting down');
      if (tmp) {
        await store.commit(tmp, m.name, m.version);
        committed = true;
      }
      tmp = null;
      const next = await store.activate(m.name, cmd.release);
      committed = false;
      await live.swap({
        name: m.name,
        version: m.version,
        sha256: m.sha256,
        activatedAt: next.active.activatedAt,
        previousVersion: next.previous?.version ?? null,
        manifest: m,
        runtime,
      });
      runtime = null;
      log.info({ model: m.name, version: m.version, previous: next.previous?.version ?? null }, 'activated');
      this.opts.onActivated();
    } finally {
      if (runtime) await runtime.release();
      if (tmp) await rm(tmp, { force: true });
      // Committed but never activated (state switch failed): the file must not linger beside the live slot.
      if (committed) await rm(target, { force: true });
    }
  }

  private finish(commandId: string, state: 'succeeded' | 'failed', error?: ErrorBody): void {
    // Outcome first, ack second: a crash between the two re-acks the same outcome on redelivery.
    this.opts.ledger.setState(commandId, state, error ?? null);
    this.ack(commandId, state, error);
  }

  private ack(commandId: string, status: AckStatus, error?: ErrorBody): void {
    const ack: CommandAck = { commandId, deviceId: this.opts.deviceId, status, ts: new Date().toISOString() };
    if (error) ack.error = { ...error, message: error.message.slice(0, 4000) };
    this.opts.publishAck(ack);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
