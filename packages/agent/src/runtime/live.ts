import type { ActiveModel, ModelManifest } from '@outpost/protocol';
import type { ModelRuntime } from './session.ts';

/** A model that is serving: its runtime and the facts the status and telemetry report about it. */
export interface LiveModel {
  name: string;
  version: string;
  sha256: string;
  activatedAt: string;
  previousVersion: string | null;
  manifest: ModelManifest;
  runtime: ModelRuntime;
}

/**
 * The in-memory table of serving models. A swap replaces the entry in one synchronous step, so a request sees
 * either the old or the new model, never neither; the old runtime is then drained and released.
 *
 * @example
 * const live = new LiveModels();
 * await live.swap(model); // releases the replaced runtime after its in-flight runs finish
 * live.get('mnist')?.runtime.infer(inputs);
 */
export class LiveModels {
  private readonly models = new Map<string, LiveModel>();
  /** Models the store knows but could not load (corrupt file, no verifiable fallback). */
  private readonly unavailable = new Set<string>();

  get(name: string): LiveModel | undefined {
    return this.models.get(name);
  }

  /** True when the store has the model but nothing of it is serving. */
  isUnavailable(name: string): boolean {
    return this.unavailable.has(name);
  }

  markUnavailable(name: string): void {
    if (!this.models.has(name)) this.unavailable.add(name);
  }

  list(): LiveModel[] {
    return [...this.models.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The protocol view of what is active, for status messages. */
  active(): ActiveModel[] {
    return this.list().map((m) => ({
      name: m.name,
      version: m.version,
      sha256: m.sha256,
      activatedAt: m.activatedAt,
    }));
  }

  /** Puts `model` in service and releases the runtime it replaces (after in-flight runs drain). */
  async swap(model: LiveModel): Promise<void> {
    const old = this.models.get(model.name);
    this.models.set(model.name, model);
    this.unavailable.delete(model.name);
    if (old && old.runtime !== model.runtime) await old.runtime.release();
  }

  async releaseAll(): Promise<void> {
    const all = [...this.models.values()];
    this.models.clear();
    await Promise.all(all.map((m) => m.runtime.release()));
  }
}
