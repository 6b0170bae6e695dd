import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { OutpostError } from '@outpost/protocol';

/** Path of the `outpost` binary, so supervisors start agents exactly as a user would. */
export const OUTPOST_BIN = fileURLToPath(new URL('../../bin/outpost.js', import.meta.url));

export interface AgentProcess {
  child: ChildProcess;
  deviceId: string;
  apiUrl: string;
  apiToken: string;
  dataDir: string;
  logPath: string;
}

export interface SpawnAgentOptions {
  serverUrl: string;
  dataDir: string;
  trustKeyPaths: string[];
  bootstrapToken?: string;
  deviceId?: string;
  telemetryIntervalMs?: number;
  /** Where the agent's stderr (its log) goes; default `<dataDir>.log`. */
  logPath?: string;
  startTimeoutMs?: number;
}

/**
 * Starts `outpost agent` as a real child process and resolves once it printed its ready line.
 *
 * @example
 * const a = await spawnAgentProcess({ serverUrl, dataDir: '/tmp/a1', trustKeyPaths: ['pub.pem'], bootstrapToken });
 * await stopAgentProcess(a);
 */
export async function spawnAgentProcess(o: SpawnAgentOptions): Promise<AgentProcess> {
  mkdirSync(o.dataDir, { recursive: true });
  const logPath = o.logPath ?? `${o.dataDir}.log`;
  const log = createWriteStream(logPath, { flags: 'a' });
  const args = [OUTPOST_BIN, 'agent', '--server', o.serverUrl, '--data-dir', o.dataDir, '--api-port', '0'];
  for (const k of o.trustKeyPaths) args.push('--trust-key', k);
  if (o.deviceId) args.push('--device-id', o.deviceId);
  args.push('--telemetry-interval-ms', String(o.telemetryIntervalMs ?? 1000));
  // The agent's stdout carries the ready line; its log goes to the log file.
  const env: NodeJS.ProcessEnv = { ...process.env, OUTPOST_LOG_FILE: logPath };
  if (o.bootstrapToken) env.OUTPOST_BOOTSTRAP_TOKEN = o.bootstrapToken;
  else delete env.OUTPOST_BOOTSTRAP_TOKEN;
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.pipe(log);
  const timeoutMs = o.startTimeoutMs ?? 60_000;
  return await new Promise<AgentProcess>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new OutpostError('UNAVAILABLE', `agent did not start in ${timeoutMs} ms; see ${logPath}`));
    }, timeoutMs);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(
        new OutpostError('UNAVAILABLE', `agent exited with ${code} before it was ready; see ${logPath}`),
      );
    };
    child.once('exit', onExit);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let ev: { event?: string; deviceId?: string; apiUrl?: string };
      try {
        ev = JSON.parse(line) as typeof ev;
      } catch {
        return; // not a protocol line
      }
      if (ev.event !== 'ready' || !ev.deviceId || !ev.apiUrl) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      const apiToken = readFileSync(join(o.dataDir, 'api-token'), 'utf8').trim();
      resolve({ child, deviceId: ev.deviceId, apiUrl: ev.apiUrl, apiToken, dataDir: o.dataDir, logPath });
    });
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopAgentProcess(a: AgentProcess, graceMs = 5000): Promise<void> {
  if (a.child.exitCode !== null || a.child.signalCode !== null) return;
  const exited = new Promise((r) => a.child.once('exit', r));
  a.child.kill('SIGTERM');
  const t = setTimeout(() => a.child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}
