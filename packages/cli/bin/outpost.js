#!/usr/bin/env node
// The `outpost` command. Outpost's packages ship TypeScript sources (see docs/adr/0001); tsx's loader is
// registered here so that `npx outpost` and the agents the demo spawns run without a build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
