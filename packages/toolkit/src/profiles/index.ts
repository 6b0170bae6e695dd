/** Hardware profiles: what a target runs models with, its memory budget and power figures. */
export * from './schema.ts';
export * from './builtin.ts';
export * from './runtime.ts';
