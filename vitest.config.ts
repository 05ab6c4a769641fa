import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The Bicep grammar is a wasm module; liftoff-only spares each worker background compilation.
    execArgv: ['--liftoff-only'],
  },
});
