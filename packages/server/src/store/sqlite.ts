import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type { Database, Statement } from 'better-sqlite3';
import { OutpostError, canonicalJson } from '@outpost/protocol';
import type { DeviceStatus, SignedRelease, TelemetryReport } from '@outpost/protocol';
import { migrate } from './migrations.ts';
import { canAdvance } from './transitions.ts';
import type {
  AckOutcome,
  AckUpdate,
  ControlPlaneStore,
  DeploymentRecord,
  DeploymentTargetRecord,
  DeviceRecord,
  EnrolOutcome,
  ModelVersionRecord,
  NewDevice,
  PendingCommand,
  SigningKeyRecord,
  TargetState,
} from './types.ts';

interface DeviceRow {
  id: string;
  secret_hash: string;
  profile: string;
  tags: string;
  agent_version: string;
  enrolled_at: string;
  last_seen: string | null;
  online: number;
  status: string | null;
}

interface ModelRow {
  name: string;
  version: string;
  envelope: string;
  sha256: string;
  size: number;
  state: 'awaiting-artifact' | 'ready';
  keyid: string;
  created_at: string;
}

interface TargetRow {
  device_id: string;
  command_id: string;
  state: TargetState;
  error: string | null;
  updated_at: string;
}

function toDevice(r: DeviceRow): DeviceRecord {
  return {
    id: r.id,
    secretHash: r.secret_hash,
    profile: r.profile,
    tags: JSON.parse(r.tags) as string[],
    agentVersion: r.agent_version,
    enrolledAt: r.enrolled_at,
    lastSeen: r.last_seen,
    online: r.online === 1,
    status: r.status === null ? null : (JSON.parse(r.status) as DeviceStatus),
  };
}

function toModel(r: ModelRow): ModelVersionRecord {
  return {
    name: r.name,
    version: r.version,
    envelope: JSON.parse(r.envelope) as SignedRelease,
    sha256: r.sha256,
    size: r.size,
    state: r.state,
    keyid: r.keyid,
    createdAt: r.created_at,
  };
}

function toTarget(r: TargetRow): DeploymentTargetRecord {
  return {
    deviceId: r.device_id,
    commandId: r.command_id,
    state: r.state,
    error: r.error,
    updatedAt: r.updated_at,
  };
}

/**
 * {@link ControlPlaneStore} on one SQLite file (better-sqlite3, WAL). better-sqlite3 is synchronous, so each
 * method runs to completion without interleaving and multi-statement methods are single transactions.
 *
 * @example
 * const store = SqliteStore.open('/var/lib/outpost/outpost.db');
 * await store.listDevices();
 * await store.close();
 */
export class SqliteStore implements ControlPlaneStore {
  readonly #db: Database;
  readonly #stmts = new Map<string, Statement>();

  private constructor(db: Database) {
    this.#db = db;
  }

  /** Opens (creating when missing) and migrates the database at `file`. */
  static open(file: string): SqliteStore {
    let db: Database;
    try {
      mkdirSync(dirname(file), { recursive: true });
      db = new BetterSqlite3(file);
      db.pragma('journal_mode = WAL');
      // NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the last commits.
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      migrate(db);
    } catch (err) {
      throw new OutpostError('IO_FAILED', `cannot open database ${file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return new SqliteStore(db);
  }

  #stmt(sql: string): Statement {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  async createBootstrapToken(t: { tokenHash: string; uses: number; expiresAt: string; createdAt: string }) {
    this.#stmt(
      'INSERT INTO bootstrap_tokens (token_hash, uses_left, expires_at, created_at) VALUES (?, ?, ?, ?)',
    ).run(t.tokenHash, t.uses, t.expiresAt, t.createdAt);
  }

  async enrolDevice(tokenHash: string, device: NewDevice, now: string): Promise<EnrolOutcome> {
    return this.#db.transaction((): EnrolOutcome => {
      const tok = this.#stmt('SELECT uses_left, expires_at FROM bootstrap_tokens WHERE token_hash = ?').get(
        tokenHash,
      ) as { uses_left: number; expires_at: string } | undefined;
      // ISO-8601 UTC strings of the same format compare correctly as text.
      if (!tok || tok.uses_left < 1 || tok.expires_at <= now) return 'token-invalid';
      if (this.#stmt('SELECT 1 FROM devices WHERE id = ?').get(device.id)) return 'id-taken';
      this.#stmt('UPDATE bootstrap_tokens SET uses_left = uses_left - 1 WHERE token_hash = ?').run(tokenHash);
      this.#stmt(
        `INSERT INTO devices (id, secret_hash, profile, tags, agent_version, enrolled_at, online)
         VALUES (?, ?, ?, ?, ?, ?, 0)`,
      ).run(
        device.id,
        device.secretHash,
        device.profile,
        JSON.stringify(device.tags),
        device.agentVersion,
        device.enrolledAt,
      );
      return 'ok';
    })();
  }

  async getDevice(id: string): Promise<DeviceRecord | null> {
    const r = this.#stmt('SELECT * FROM devices WHERE id = ?').get(id) as DeviceRow | undefined;
    return r ? toDevice(r) : null;
  }

  async findDeviceBySecretHash(secretHash: string): Promise<DeviceRecord | null> {
    const r = this.#stmt('SELECT * FROM devices WHERE secret_hash = ?').get(secretHash) as
      DeviceRow | undefined;
    return r ? toDevice(r) : null;
  }

  async listDevices(): Promise<DeviceRecord[]> {
    return (this.#stmt('SELECT * FROM devices ORDER BY id').all() as DeviceRow[]).map(toDevice);
  }

  async missingDevices(ids: readonly string[]): Promise<string[]> {
    const exists = this.#stmt('SELECT 1 FROM devices WHERE id = ?');
    return [...new Set(ids)].filter((id) => !exists.get(id));
  }

  async setDeviceOnline(id: string, online: boolean, at: string): Promise<void> {
    this.#stmt('UPDATE devices SET online = ?, last_seen = ? WHERE id = ?').run(online ? 1 : 0, at, id);
  }

  async recordDeviceStatus(id: string, status: DeviceStatus, at: string): Promise<void> {
    this.#stmt(
      `UPDATE devices SET online = ?, last_seen = ?, status = ?, agent_version = COALESCE(?, agent_version)
       WHERE id = ?`,
    ).run(status.online ? 1 : 0, at, JSON.stringify(status), status.agentVersion ?? null, id);
  }

  async markAllDevicesOffline(at: string): Promise<void> {
    this.#stmt('UPDATE devices SET online = 0, last_seen = COALESCE(last_seen, ?) WHERE online = 1').run(at);
  }

  async addSigningKey(k: SigningKeyRecord): Promise<boolean> {
    const r = this.#stmt(
      'INSERT INTO signing_keys (keyid, public_key_pem, created_at) VALUES (?, ?, ?) ON CONFLICT (keyid) DO NOTHING',
    ).run(k.keyid, k.publicKeyPem, k.createdAt);
    return r.changes > 0;
  }

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    const rows = this.#stmt('SELECT * FROM signing_keys ORDER BY created_at, keyid').all() as {
      keyid: string;
      public_key_pem: string;
      created_at: string;
    }[];
    return rows.map((r) => ({ keyid: r.keyid, publicKeyPem: r.public_key_pem, createdAt: r.created_at }));
  }

  async insertModelVersion(m: ModelVersionRecord): Promise<{ created: boolean; record: ModelVersionRecord }> {
    return this.#db.transaction(() => {
      const r = this.#stmt(
        `INSERT INTO model_versions (name, version, manifest, envelope, sha256, size, state, keyid, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, version) DO NOTHING`,
      ).run(
        m.name,
        m.version,
        canonicalJson(m.envelope.signed),
        JSON.stringify(m.envelope),
        m.sha256,
        m.size,
        m.state,
        m.keyid,
        m.createdAt,
      );
      const row = this.#stmt('SELECT * FROM model_versions WHERE name = ? AND version = ?').get(
        m.name,
        m.version,
      ) as ModelRow;
      return { created: r.changes > 0, record: toModel(row) };
    })();
  }

  async getModelVersion(name: string, version: string): Promise<ModelVersionRecord | null> {
    const r = this.#stmt('SELECT * FROM model_versions WHERE name = ? AND version = ?').get(name, version) as
      ModelRow | undefined;
    return r ? toModel(r) : null;
  }

  async listModelVersions(): Promise<ModelVersionRecord[]> {
    return (this.#stmt('SELECT * FROM model_versions ORDER BY name, created_at').all() as ModelRow[]).map(
      toModel,
    );
  }

  async markModelVersionReady(name: string, version: string): Promise<void> {
    this.#stmt("UPDATE model_versions SET state = 'ready' WHERE name = ? AND version = ?").run(name, version);
  }

  async createDeployment(d: DeploymentRecord): Promise<void> {
    this.#db.transaction(() => {
      this.#stmt('INSERT INTO deployments (id, model, version, created_at) VALUES (?, ?, ?, ?)').run(
        d.id,
        d.model,
        d.version,
        d.createdAt,
      );
      const ins = this.#stmt(
        `INSERT INTO deployment_targets (deployment_id, device_id, command_id, state, error, updated_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      );
      for (const t of d.targets) ins.run(d.id, t.deviceId, t.commandId, t.state, t.error, t.updatedAt);
    })();
  }

  async getDeployment(id: string): Promise<DeploymentRecord | null> {
    const d = this.#stmt('SELECT * FROM deployments WHERE id = ?').get(id) as
      { id: string; model: string; version: string; created_at: string } | undefined;
    if (!d) return null;
    const targets = this.#stmt(
      'SELECT * FROM deployment_targets WHERE deployment_id = ? ORDER BY device_id',
    ).all(id) as TargetRow[];
    return {
      id: d.id,
      model: d.model,
      version: d.version,
      createdAt: d.created_at,
      targets: targets.map(toTarget),
    };
  }

  async pendingCommands(deviceId: string): Promise<PendingCommand[]> {
    const rows = this.#stmt(
      `SELECT t.command_id, t.deployment_id, d.created_at, d.model, d.version, m.envelope
       FROM deployment_targets t
       JOIN deployments d ON d.id = t.deployment_id
       JOIN model_versions m ON m.name = d.model AND m.version = d.version
       WHERE t.device_id = ? AND t.state = 'pending'
       ORDER BY d.created_at, t.command_id`,
    ).all(deviceId) as {
      command_id: string;
      deployment_id: string;
      created_at: string;
      model: string;
      version: string;
      envelope: string;
    }[];
    return rows.map((r) => ({
      commandId: r.command_id,
      deploymentId: r.deployment_id,
      deviceId,
      issuedAt: r.created_at,
      model: r.model,
      version: r.version,
      envelope: JSON.parse(r.envelope) as SignedRelease,
    }));
  }

  async applyAck(a: AckUpdate): Promise<AckOutcome> {
    return this.#db.transaction((): AckOutcome => {
      const row = this.#stmt(
        'SELECT state FROM deployment_targets WHERE command_id = ? AND device_id = ?',
      ).get(a.commandId, a.deviceId) as { state: TargetState } | undefined;
      if (!row) return 'unknown';
      if (!canAdvance(row.state, a.state)) return 'ignored';
      this.#stmt(
        'UPDATE deployment_targets SET state = ?, error = ?, updated_at = ? WHERE command_id = ?',
      ).run(a.state, a.error, a.at, a.commandId);
      return 'applied';
    })();
  }

  async insertTelemetry(report: TelemetryReport, receivedAt: string): Promise<boolean> {
    const r = this.#stmt(
      `INSERT INTO telemetry (device_id, seq, payload, received_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (device_id, seq) DO NOTHING`,
    ).run(report.deviceId, report.seq, JSON.stringify(report), receivedAt);
    return r.changes > 0;
  }

  async listTelemetry(deviceId: string, limit: number): Promise<TelemetryReport[]> {
    const rows = this.#stmt('SELECT payload FROM telemetry WHERE device_id = ? ORDER BY id DESC LIMIT ?').all(
      deviceId,
      limit,
    ) as { payload: string }[];
    return rows.map((r) => JSON.parse(r.payload) as TelemetryReport);
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
