import { readFileSync } from 'node:fs';
import { parseOptimizationReport } from '@outpost/toolkit';
import {
  OutpostError,
  createDeploymentRequest,
  parseWith,
  sha256Of,
  type DeploymentView,
  type ModelManifestInput,
} from '@outpost/protocol';
import { ControlPlaneClient, pollUntil } from '../client/index.ts';
import { readPrivateKey, writeKeyPair } from '../keys/index.ts';
import { buildManifest, publishArtifact, signRelease } from '../release/index.ts';
import { readModelBytes } from './model-tools.ts';
import { progress, table } from '../output/index.ts';

/** `outpost keys`, `outpost publish`, `outpost deploy`: talk to a running control plane. */

export interface ServerOpts {
  server: string;
  token?: string;
  tokenFile?: string;
}

/** The admin token comes from --token, --token-file or OUTPOST_TOKEN (so it need not appear in `ps`). */
export function controlPlane(opts: ServerOpts): ControlPlaneClient {
  let token = opts.token ?? process.env.OUTPOST_TOKEN;
  if (!token && opts.tokenFile) {
    try {
      token = readFileSync(opts.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new OutpostError(
        'VALIDATION_FAILED',
        `cannot read token file: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
  }
  if (!token)
    throw new OutpostError(
      'UNAUTHENTICATED',
      'no admin token: pass --token-file, --token or set OUTPOST_TOKEN',
    );
  return new ControlPlaneClient(opts.server, token);
}

export function keysGenerateCommand(opts: { out: string; name: string; force?: boolean }): void {
  const r = writeKeyPair(opts.out, opts.name, !!opts.force);
  process.stdout.write(
    `keyid      ${r.keyid}\nprivate    ${r.keyPath} (mode 0600, keep it secret)\npublic     ${r.pubPath}\n`,
  );
}

/**
 * Provenance from an `outpost optimize` report: the report must describe exactly these bytes (its chosen
 * variant's SHA-256); its `optimization` block and the variant's measured figures go into the manifest, and the
 * report's own hash is recorded so the full report can be matched later.
 */
function provenanceFromReport(path: string, bytes: Uint8Array) {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `cannot read report ${path}: ${(err as NodeJS.ErrnoException).code}`,
    );
  }
  const report = parseOptimizationReport(text);
  const sha = sha256Of(bytes);
  if (!report.choice.optimization || report.choice.sha256 !== sha) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `report ${path} chose ${report.choice.fileName ?? 'nothing'} (sha256 ${report.choice.sha256 ?? '-'}), not this file (sha256 ${sha})`,
    );
  }
  const chosen = report.candidates.find((c) => c.id === report.choice.id);
  const m = chosen?.metrics;
  const metrics: Record<string, number> = {};
  if (m) {
    Object.assign(metrics, {
      accuracy: m.accuracy,
      accuracyDropPp: m.accuracyDropPp,
      top1AgreementWithFp32: m.top1AgreementWithFp32,
      p50Ms: m.p50Ms,
      p99Ms: m.p99Ms,
      energyMjEstimate: m.energyMjEstimate,
    });
  }
  const optimization: ModelManifestInput['optimization'] = {
    ...report.choice.optimization,
    settings: {
      ...report.choice.optimization.settings,
      variant: report.choice.id ?? '',
      profile: report.profile.name,
      reportSha256: sha256Of(text),
    },
  };
  return { optimization, metrics, targets: [report.profile.name] };
}

export async function publishCommand(
  model: string,
  opts: ServerOpts & {
    name: string;
    version: string;
    key: string;
    target: string[];
    method: string;
    metric: string[];
    report?: string;
    json?: boolean;
  },
): Promise<void> {
  const bytes = await readModelBytes(model);
  const key = readPrivateKey(opts.key);
  const fromReport = opts.report ? provenanceFromReport(opts.report, bytes) : undefined;
  const metrics: Record<string, number> = { ...fromReport?.metrics };
  for (const m of opts.metric) {
    const [k, v] = m.split('=');
    if (!k || v === undefined || !Number.isFinite(Number(v))) {
      throw new OutpostError('VALIDATION_FAILED', `--metric must be name=number, got ${JSON.stringify(m)}`);
    }
    metrics[k] = Number(v);
  }
  const manifest = buildManifest(bytes, {
    name: opts.name,
    version: opts.version,
    targets: opts.target.length ? opts.target : (fromReport?.targets ?? ['cpu']),
    optimization: fromReport?.optimization ?? { method: opts.method as 'none', settings: {} },
    metrics,
  });
  const summary = await publishArtifact(controlPlane(opts), signRelease(manifest, key.pem), bytes);
  process.stdout.write(
    opts.json
      ? `${JSON.stringify(summary, null, 2)}\n`
      : `published ${summary.name}@${summary.version}  sha256 ${summary.sha256}  ${summary.size} bytes  signed by ${key.keyid.slice(0, 16)}…  state ${summary.state}\n`,
  );
}

export function deploymentDone(d: DeploymentView): boolean {
  return d.targets.every((t) => t.state === 'succeeded' || t.state === 'failed');
}

export async function deployCommand(
  opts: ServerOpts & {
    model: string;
    version: string;
    devices: string[];
    wait?: boolean;
    timeout: number;
    json?: boolean;
  },
): Promise<void> {
  // Validate locally first: a typo should not need a round trip (or a reachable server) to be reported.
  const req = parseWith(
    createDeploymentRequest,
    { model: opts.model, version: opts.version, devices: opts.devices },
    'deployment',
  );
  const cp = controlPlane(opts);
  let d = await cp.createDeployment(req);
  if (opts.wait) {
    const bar = progress(`deploying ${opts.model}@${opts.version}`, d.targets.length);
    try {
      d = await pollUntil(
        () => cp.getDeployment(d.id),
        (v) => {
          bar.update(v.targets.filter((t) => t.state === 'succeeded' || t.state === 'failed').length);
          return deploymentDone(v);
        },
        { timeoutMs: opts.timeout * 1000, what: `deployment ${d.id}` },
      );
    } finally {
      bar.stop();
    }
  }
  if (opts.json) process.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
  else {
    process.stdout.write(`deployment ${d.id}: ${d.model}@${d.version}\n`);
    process.stdout.write(
      `${table(
        d.targets.map((t) => [t.deviceId, t.state, t.error ?? '']),
        ['device', 'state', 'error'],
      )}\n`,
    );
  }
  if (opts.wait && d.targets.some((t) => t.state === 'failed')) process.exitCode = 1;
}
