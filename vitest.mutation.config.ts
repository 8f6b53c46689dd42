import { defineConfig } from 'vitest/config';

/**
 * The tests `npm run test:mutation` runs against each mutant: those that run the shared
 * library in the test process. The integration suites run the functions as esbuild bundles
 * in worker threads, where Stryker cannot switch a mutant on, so they cannot kill one.
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/wxpay/**/*.test.ts', 'test/reliability/codec.property.test.ts'],
    // Reads the bundles in dist/ that npm test's global setup builds: no mutant is switchable there.
    exclude: ['test/unit/openapi-permissions.test.ts'],
    // A fresh wx-server-sdk per test file: Stryker reuses one worker for many runs, and an SDK
    // initialised by an earlier run would hide a mutant that skips cloud.init.
    server: { deps: { inline: ['wx-server-sdk'] } },
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
