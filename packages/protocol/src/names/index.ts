import { z } from 'zod';

/**
 * Names that end up in file paths, URLs and MQTT topics (model names, device ids, versions) are restricted
 * to a safe alphabet so that `../../x`, `%2e%2e/x`, `+`, `#` or `/` can never reach a path or a topic filter.
 */
export const SAFE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const safeName = z
  .string()
  .regex(SAFE_NAME_RE, 'must be 1-128 chars of [A-Za-z0-9._-], starting with a letter or digit')
  .refine((s) => !s.includes('..'), 'must not contain ".."');

/** Semantic version `MAJOR.MINOR.PATCH` with optional pre-release, restricted to the safe alphabet. */
export const SEMVER_RE =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;
export const semver = z.string().max(64).regex(SEMVER_RE, 'must be a semantic version like 1.2.3');

export function isSafeName(s: string): boolean {
  return safeName.safeParse(s).success;
}
