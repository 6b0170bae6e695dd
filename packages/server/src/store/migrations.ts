import type { Database } from 'better-sqlite3';

/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many ran. Append only: a shipped
 * migration is never edited, because databases in the field have already run it.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    profile TEXT NOT NULL,
    tags TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    last_seen TEXT,
    online INTEGER NOT NULL DEFAULT 0,
    status TEXT
  );
  CREATE TABLE bootstrap_tokens (
    token_hash TEXT PRIMARY KEY,
    uses_left INTEGER NOT NULL,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE TABLE signing_keys (
    keyid TEXT PRIMARY KEY,
    public_key_pem TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE TABLE model_versions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    manifest TEXT NOT NULL,
    envelope TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('awaiting-artifact', 'ready')),
    keyid TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
  );
  CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    created_at TEXT NOT NULL,
    FOREIGN KEY (model, version) REFERENCES model_versions (name, version)
  );
  CREATE TABLE deployment_targets (
    deployment_id TEXT NOT NULL REFERENCES deployments (id),
    device_id TEXT NOT NULL REFERENCES devices (id),
    command_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'received', 'succeeded', 'failed')),
    error TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (deployment_id, device_id)
  );
  CREATE INDEX deployment_targets_device_state ON deployment_targets (device_id, state);
  CREATE TABLE telemetry (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices (id),
    seq INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (device_id, seq)
  );
  `,
];

/**
 * Brings `db` up to the newest schema; each migration runs in its own transaction with its version bump.
 *
 * @example
 * migrate(new BetterSqlite3('outpost.db')); // returns the schema version now in effect
 */
export function migrate(db: Database): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`database schema version ${current} is newer than this server (${MIGRATIONS.length})`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] ?? '');
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return MIGRATIONS.length;
}
