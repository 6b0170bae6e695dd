/** @outpost/common — Node-side helpers shared by the toolkit, agent, server and cli. */
export * from './fs/index.ts';
export * from './log/index.ts';
export * from './http/index.ts';
export * from './stats/index.ts';
export * from './half/index.ts';
