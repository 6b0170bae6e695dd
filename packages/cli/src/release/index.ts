import { inspectModel } from '@outpost/toolkit';
import {
  modelManifest,
  parseWith,
  sha256Of,
  signDocument,
  type ModelManifest,
  type ModelManifestInput,
  type SignedRelease,
} from '@outpost/protocol';
import type { ControlPlaneClient } from '../client/index.ts';

export interface ReleaseOptions {
  name: string;
  version: string;
  targets?: string[];
  optimization?: ModelManifestInput['optimization'];
  metrics?: Record<string, number>;
  labels?: string[];
}

/**
 * Builds the manifest of an ONNX artifact: hash, size and the input/output specs read from the graph itself,
 * so what the device is told always matches the bytes it will get.
 *
 * @example
 * const manifest = buildManifest(bytes, { name: 'mnist', version: '1.0.0' });
 */
export function buildManifest(bytes: Uint8Array, opts: ReleaseOptions): ModelManifest {
  const info = inspectModel(bytes);
  return parseWith(
    modelManifest,
    {
      schemaVersion: 1,
      name: opts.name,
      version: opts.version,
      format: 'onnx',
      sha256: sha256Of(bytes),
      size: bytes.byteLength,
      inputs: info.inputs,
      outputs: info.outputs,
      targets: opts.targets ?? ['cpu'],
      optimization: opts.optimization ?? { method: 'none', settings: {} },
      metrics: opts.metrics ?? {},
      labels: opts.labels,
      createdAt: new Date().toISOString(),
    },
    'manifest',
  );
}

/** Signs the manifest with the publisher's Ed25519 key. */
export function signRelease(manifest: ModelManifest, privateKeyPem: string): SignedRelease {
  return signDocument(manifest, privateKeyPem);
}

/** Registers the signed release then uploads its bytes; the server checks both against each other. */
export async function publishArtifact(cp: ControlPlaneClient, release: SignedRelease, bytes: Uint8Array) {
  await cp.publishRelease(release);
  return cp.uploadArtifact(release.signed.name, release.signed.version, bytes);
}
