import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The PowerShell grammar is a large wasm module; liftoff-only spares each worker seconds of background compilation.
    execArgv: ['--liftoff-only'],
  },
});
