import type { DeviceStatus, SignedRelease, TelemetryReport } from '@outpost/protocol';

/** Lifecycle of one device's part of a deployment. */
export type TargetState = 'pending' | 'received' | 'succeeded' | 'failed';
export type ModelVersionState = 'awaiting-artifact' | 'ready';

export interface DeviceRecord {
  id: string;
  /** SHA-256 (hex) of the device secret; the secret itself is never stored. */
  secretHash: string;
  profile: string;
  tags: string[];
  agentVersion: string;
  enrolledAt: string;
  lastSeen: string | null;
  online: boolean;
  status: DeviceStatus | null;
}

export interface NewDevice {
  id: string;
  secretHash: string;
  profile: string;
  tags: string[];
  agentVersion: string;
  enrolledAt: string;
}

/** Why an enrolment was refused, or `ok`. Checked in this order inside one transaction. */
export type EnrolOutcome = 'ok' | 'token-invalid' | 'id-taken';

export interface SigningKeyRecord {
  keyid: string;
  publicKeyPem: string;
  createdAt: string;
}

export interface ModelVersionRecord {
  name: string;
  version: string;
  /** The envelope exactly as the publisher signed it; forwarded verbatim to devices. */
  envelope: SignedRelease;
  sha256: string;
  size: number;
  state: ModelVersionState;
  keyid: string;
  createdAt: string;
}

export interface DeploymentTargetRecord {
  deviceId: string;
  commandId: string;
  state: TargetState;
  error: string | null;
  updatedAt: string;
}

export interface DeploymentRecord {
  id: string;
  model: string;
  version: string;
  createdAt: string;
  targets: DeploymentTargetRecord[];
}

/** Everything needed to (re)build the deploy command of one pending target. */
export interface PendingCommand {
  commandId: string;
  deploymentId: string;
  deviceId: string;
  issuedAt: string;
  model: string;
  version: string;
  envelope: SignedRelease;
}

export interface AckUpdate {
  commandId: string;
  deviceId: string;
  state: Exclude<TargetState, 'pending'>;
  error: string | null;
  at: string;
}

/** `applied`: the target moved forward; `ignored`: duplicate or backward; `unknown`: no such command for the device. */
export type AckOutcome = 'applied' | 'ignored' | 'unknown';

/**
 * Persistence of the control plane. Every method is async so that a networked implementation (PostgreSQL)
 * can replace {@link SqliteStore} without touching callers; implementations must make each method atomic.
 *
 * @example
 * const store: ControlPlaneStore = SqliteStore.open('/var/lib/outpost/outpost.db');
 * if ((await store.enrolDevice(tokenHash, device, now)) !== 'ok') throw ...;
 */
export interface ControlPlaneStore {
  createBootstrapToken(t: {
    tokenHash: string;
    uses: number;
    expiresAt: string;
    createdAt: string;
  }): Promise<void>;
  /** Consumes one use of the token and inserts the device, or changes nothing. */
  enrolDevice(tokenHash: string, device: NewDevice, now: string): Promise<EnrolOutcome>;
  getDevice(id: string): Promise<DeviceRecord | null>;
  /** Device whose secret hashes to `secretHash` (hashes are unique). */
  findDeviceBySecretHash(secretHash: string): Promise<DeviceRecord | null>;
  listDevices(): Promise<DeviceRecord[]>;
  /** Ids among `ids` with no device record. */
  missingDevices(ids: readonly string[]): Promise<string[]>;
  setDeviceOnline(id: string, online: boolean, at: string): Promise<void>;
  recordDeviceStatus(id: string, status: DeviceStatus, at: string): Promise<void>;
  markAllDevicesOffline(at: string): Promise<void>;

  /** Returns false when the key was already known. */
  addSigningKey(k: SigningKeyRecord): Promise<boolean>;
  listSigningKeys(): Promise<SigningKeyRecord[]>;

  /** Inserts unless (name, version) exists; returns the stored record either way and whether it was created. */
  insertModelVersion(m: ModelVersionRecord): Promise<{ created: boolean; record: ModelVersionRecord }>;
  getModelVersion(name: string, version: string): Promise<ModelVersionRecord | null>;
  listModelVersions(): Promise<ModelVersionRecord[]>;
  markModelVersionReady(name: string, version: string): Promise<void>;

  createDeployment(d: DeploymentRecord): Promise<void>;
  getDeployment(id: string): Promise<DeploymentRecord | null>;
  pendingCommands(deviceId: string): Promise<PendingCommand[]>;
  applyAck(a: AckUpdate): Promise<AckOutcome>;

  /** Returns false when (deviceId, seq) was already stored (a redelivery). */
  insertTelemetry(report: TelemetryReport, receivedAt: string): Promise<boolean>;
  /** Newest first. */
  listTelemetry(deviceId: string, limit: number): Promise<TelemetryReport[]>;

  close(): Promise<void>;
}
