import { join } from 'node:path';
import Database from 'better-sqlite3';
import { errorBody, type AckStatus, type ErrorBody } from '@outpost/protocol';

/**
 * The agent's durable ledger (SQLite, WAL): every command it accepted with its outcome, and persistent
 * counters (the telemetry sequence). Commands are recorded before the broker gets its PUBACK, so a command is
 * never lost to a crash, and outcomes are recorded before they are acked, so a redelivered command is answered
 * from here instead of being applied twice.
 */

export const LEDGER_FILE = 'agent.db';

/** Commands kept after they finished; older ones are pruned (a redelivery that late is not plausible). */
const KEEP_FINISHED = 10_000;

export type CommandState = 'queued' | AckStatus;

export interface CommandRecord {
  commandId: string;
  kind: string;
  state: CommandState;
  payload: string;
  error: ErrorBody | null;
  updatedAt: string;
}

interface CommandRow {
  command_id: string;
  kind: string;
  state: string;
  payload: string;
  error: string | null;
  updated_at: string;
}

export class AgentLedger {
  private readonly db: Database.Database;

  private constructor(db: Database.Database) {
    this.db = db;
  }

  /**
   * Opens (or creates) the ledger in `dataDir`.
   *
   * @example
   * const ledger = AgentLedger.open('/var/lib/outpost');
   * ledger.nextSeq('telemetry'); // 0, then 1, ...
   */
  static open(dataDir: string): AgentLedger {
    const db = new Database(join(dataDir, LEDGER_FILE));
    db.pragma('journal_mode = WAL');
    // FULL: an outcome must survive power loss before its ack leaves the device.
    db.pragma('synchronous = FULL');
    db.exec(`
      CREATE TABLE IF NOT EXISTS commands (
        command_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        payload TEXT NOT NULL,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS commands_state ON commands(state);
      CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    `);
    return new AgentLedger(db);
  }

  get(commandId: string): CommandRecord | null {
    const row = this.db.prepare('SELECT * FROM commands WHERE command_id = ?').get(commandId) as
      CommandRow | undefined;
    return row ? toRecord(row) : null;
  }

  /** Records a newly received command; returns false (and changes nothing) when the id is already known. */
  insertQueued(commandId: string, kind: string, payload: string): boolean {
    const now = new Date().toISOString();
    const r = this.db
      .prepare(
        `INSERT OR IGNORE INTO commands (command_id, kind, state, payload, error, created_at, updated_at)
         VALUES (?, ?, 'queued', ?, NULL, ?, ?)`,
      )
      .run(commandId, kind, payload, now, now);
    return r.changes === 1;
  }

  setState(commandId: string, state: CommandState, error: ErrorBody | null = null): void {
    const now = new Date().toISOString();
    const r = this.db
      .prepare('UPDATE commands SET state = ?, error = ?, updated_at = ? WHERE command_id = ?')
      .run(state, error ? JSON.stringify(error) : null, now, commandId);
    if (r.changes === 0) {
      // A command that could not even be parsed is recorded only with its outcome.
      this.db
        .prepare(
          `INSERT INTO commands (command_id, kind, state, payload, error, created_at, updated_at)
           VALUES (?, 'unknown', ?, '', ?, ?, ?)`,
        )
        .run(commandId, state, error ? JSON.stringify(error) : null, now, now);
    }
    if (state === 'succeeded' || state === 'failed') this.prune();
  }

  /** Commands accepted but not finished (the agent stopped or crashed while they were queued or running). */
  unfinished(): CommandRecord[] {
    const rows = this.db
      .prepare(`SELECT * FROM commands WHERE state IN ('queued', 'received') ORDER BY created_at, rowid`)
      .all() as CommandRow[];
    return rows.map(toRecord);
  }

  /** Returns the next value of a persistent, strictly increasing counter (first value 0). */
  nextSeq(name: string): number {
    const row = this.db
      .prepare(
        `INSERT INTO counters (name, value) VALUES (?, 0)
         ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value`,
      )
      .get(name) as { value: number };
    return row.value;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private prune(): void {
    this.db
      .prepare(
        `DELETE FROM commands WHERE state IN ('succeeded', 'failed') AND rowid NOT IN (
           SELECT rowid FROM commands WHERE state IN ('succeeded', 'failed') ORDER BY updated_at DESC LIMIT ?)`,
      )
      .run(KEEP_FINISHED);
  }
}

function toRecord(row: CommandRow): CommandRecord {
  let error: ErrorBody | null = null;
  if (row.error) {
    const parsed = errorBody.safeParse(JSON.parse(row.error));
    error = parsed.success ? (parsed.data as ErrorBody) : null;
  }
  return {
    commandId: row.command_id,
    kind: row.kind,
    state: row.state as CommandState,
    payload: row.payload,
    error,
    updatedAt: row.updated_at,
  };
}
