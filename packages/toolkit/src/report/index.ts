/** Optimization reports: versioned JSON (model provenance) and a self-contained HTML page. */
export * from './json.ts';
export * from './html.ts';
export * from './text.ts';
