/**
 * Test fixtures for the agent's tests; not exported from the package and never imported by runtime code.
 *
 * @example
 * const fx = await agentFixture();
 * const agent = await fx.start(fx.freshDir(), { deviceId: 'dev-1' });
 * await fx.deploy(agent, bytes, '1.0.0');
 */
export * from './harness.ts';
export * from './fixture.ts';
