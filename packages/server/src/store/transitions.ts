import type { TargetState } from './types.ts';

const RANK: Record<TargetState, number> = { pending: 0, received: 1, succeeded: 2, failed: 2 };

/**
 * Deployment targets only move forward: pending → received → succeeded | failed. Acks travel over QoS 1
 * MQTT, so they can arrive twice or out of order (a `succeeded` overtaking its `received`); anything that
 * is not a step forward is ignored, and the two outcomes are terminal.
 *
 * @example
 * canAdvance('pending', 'succeeded'); // true
 * canAdvance('succeeded', 'received'); // false
 */
export function canAdvance(from: TargetState, to: TargetState): boolean {
  return RANK[to] > RANK[from];
}
