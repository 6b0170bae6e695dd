import type { z } from 'zod';
import {
  OutpostError,
  createBootstrapTokenResponse,
  deploymentView,
  deviceView,
  errorBody,
  inferenceResponse,
  isErrorCode,
  modelVersionSummary,
  telemetryReport,
  type CreateDeploymentRequest,
  type DeploymentView,
  type DeviceView,
  type InferenceRequest,
  type InferenceResponse,
  type ModelVersionSummary,
  type SignedRelease,
  type TelemetryReport,
} from '@outpost/protocol';

/**
 * Typed HTTP clients for the control plane's REST API and the agent's local API. Every response is validated
 * with the protocol schemas; error bodies become OutpostErrors with the server's own code.
 *
 * @example
 * const cp = new ControlPlaneClient('http://127.0.0.1:8080', adminToken);
 * const devices = await cp.listDevices();
 */
class JsonHttpClient {
  constructor(
    readonly baseUrl: string,
    private readonly authorization: string,
  ) {}

  protected async request<S extends z.ZodType>(
    method: string,
    path: string,
    schema: S,
    body?: unknown,
    raw?: { contentType: string; data: Uint8Array },
  ): Promise<z.infer<S>> {
    const headers: Record<string, string> = { authorization: this.authorization };
    let payload: string | Uint8Array | undefined;
    if (raw) {
      headers['content-type'] = raw.contentType;
      payload = raw.data;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), { method, headers, body: payload });
    } catch (err) {
      throw new OutpostError(
        'UNAVAILABLE',
        `${method} ${new URL(path, this.baseUrl).href}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = text.length ? JSON.parse(text) : undefined;
    } catch {
      /* handled below */
    }
    if (!res.ok) {
      const parsed = errorBody.safeParse(json);
      if (parsed.success && isErrorCode(parsed.data.code)) {
        throw new OutpostError(parsed.data.code, parsed.data.message, { details: parsed.data.details });
      }
      throw new OutpostError('INTERNAL', `${method} ${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
    }
    const r = schema.safeParse(json);
    if (!r.success)
      throw new OutpostError('MALFORMED_MESSAGE', `${method} ${path}: unexpected response shape`);
    return r.data;
  }
}

export class ControlPlaneClient extends JsonHttpClient {
  constructor(baseUrl: string, adminToken: string) {
    super(baseUrl, `Bearer ${adminToken}`);
  }

  createBootstrapToken(uses = 1, ttlSeconds = 24 * 3600) {
    return this.request('POST', '/api/v1/bootstrap-tokens', createBootstrapTokenResponse, {
      uses,
      ttlSeconds,
    });
  }

  publishRelease(release: SignedRelease): Promise<ModelVersionSummary> {
    return this.request('POST', '/api/v1/models', modelVersionSummary, { release });
  }

  uploadArtifact(name: string, version: string, bytes: Uint8Array): Promise<ModelVersionSummary> {
    const path = `/api/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/artifact`;
    return this.request('PUT', path, modelVersionSummary, undefined, {
      contentType: 'application/octet-stream',
      data: bytes,
    });
  }

  createDeployment(req: CreateDeploymentRequest): Promise<DeploymentView> {
    return this.request('POST', '/api/v1/deployments', deploymentView, req);
  }

  getDeployment(id: string): Promise<DeploymentView> {
    return this.request('GET', `/api/v1/deployments/${encodeURIComponent(id)}`, deploymentView);
  }

  listDevices(): Promise<DeviceView[]> {
    return this.request('GET', '/api/v1/devices', deviceView.array());
  }

  getDevice(id: string): Promise<DeviceView> {
    return this.request('GET', `/api/v1/devices/${encodeURIComponent(id)}`, deviceView);
  }

  telemetry(id: string, limit = 100): Promise<TelemetryReport[]> {
    return this.request(
      'GET',
      `/api/v1/devices/${encodeURIComponent(id)}/telemetry?limit=${limit}`,
      telemetryReport.array(),
    );
  }
}

export class AgentClient extends JsonHttpClient {
  constructor(apiUrl: string, apiToken: string) {
    super(apiUrl, `Bearer ${apiToken}`);
  }

  infer(model: string, req: InferenceRequest): Promise<InferenceResponse> {
    return this.request('POST', `/v1/models/${encodeURIComponent(model)}/infer`, inferenceResponse, req);
  }
}

/** Polls `fn` every `intervalMs` until `done(value)` or the deadline; returns the last value. */
export async function pollUntil<T>(
  fn: () => Promise<T>,
  done: (v: T) => boolean,
  { timeoutMs, intervalMs = 200, what }: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (done(v)) return v;
    if (Date.now() > deadline)
      throw new OutpostError('UNAVAILABLE', `timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
