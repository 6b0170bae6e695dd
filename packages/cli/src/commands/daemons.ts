import { readPublicKeys } from '../keys/index.ts';
import { startServer } from '@outpost/server';
import { startAgent } from '@outpost/agent';

/** `outpost server` and `outpost agent`: long-running processes that stop cleanly on SIGINT/SIGTERM. */

function onSignals(close: () => Promise<void>): void {
  let closing = false;
  const stop = (sig: string) => {
    if (closing) return;
    closing = true;
    process.stderr.write(`received ${sig}, shutting down\n`);
    close()
      .catch((err: unknown) => process.stderr.write(`shutdown error: ${(err as Error).message}\n`))
      .finally(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

export async function serverCommand(opts: {
  dataDir: string;
  host: string;
  port: number;
  mqttPort: number;
  trustKey: string[];
}): Promise<void> {
  const s = await startServer({
    dataDir: opts.dataDir,
    host: opts.host,
    httpPort: opts.port,
    mqttPort: opts.mqttPort,
    trustedKeys: readPublicKeys(opts.trustKey),
  });
  onSignals(() => s.close());
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', httpUrl: s.httpUrl, mqttUrl: s.mqttUrl, adminTokenFile: `${s.dataDir}/admin-token` })}\n`,
  );
}

export async function agentCommand(opts: {
  server: string;
  dataDir: string;
  bootstrapToken?: string;
  deviceId?: string;
  profile: string;
  trustKey: string[];
  apiHost: string;
  apiPort: number;
  telemetryIntervalMs: number;
  threads: number;
}): Promise<void> {
  const a = await startAgent({
    serverUrl: opts.server,
    dataDir: opts.dataDir,
    bootstrapToken: opts.bootstrapToken ?? process.env.OUTPOST_BOOTSTRAP_TOKEN,
    deviceId: opts.deviceId,
    profile: opts.profile,
    trustedKeys: readPublicKeys(opts.trustKey),
    apiHost: opts.apiHost,
    apiPort: opts.apiPort,
    telemetryIntervalMs: opts.telemetryIntervalMs,
    intraOpThreads: opts.threads,
  });
  onSignals(() => a.close());
  // One JSON line on stdout so a supervisor (or `outpost demo`) learns where the agent listens.
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', deviceId: a.deviceId, apiUrl: a.apiUrl, apiTokenFile: `${opts.dataDir}/api-token` })}\n`,
  );
}
