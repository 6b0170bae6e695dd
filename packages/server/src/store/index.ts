export { SqliteStore } from './sqlite.ts';
export { canAdvance } from './transitions.ts';
export { MIGRATIONS, migrate } from './migrations.ts';
export type * from './types.ts';
