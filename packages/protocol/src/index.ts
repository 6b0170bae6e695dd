/**
 * @outpost/protocol — the wire and file formats every Outpost package shares: zod schemas, MQTT topics,
 * the model manifest, Ed25519 signing and the error registry. No I/O.
 */
export * from './errors/index.ts';
export * from './names/index.ts';
export * from './manifest/index.ts';
export * from './signing/index.ts';
export * from './topics/index.ts';
export * from './messages/index.ts';
export * from './api/index.ts';
export * from './validate/index.ts';
