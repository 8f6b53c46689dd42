import { defineConfig } from 'vitest/config';

/**
 * The tests `npm run test:mutation` runs against each mutant: those that run the shared
 * library in the test process. The integration suites run the functions as esbuild bundles
 * in worker threads, where Stryker cannot switch a mutant on, so they cannot kill one.
 */
export default defineConfig({
  test: {
    include: [
      'test/unit/**/*.test.ts',
      'test/wxpay/**/*.test.ts',
      'test/reliability/codec.property.test.ts',
      'test/reliability/xml-parse.property.test.ts',
      // The in-process shop (test/reliability/world.ts): the domain over the real SDK, the
      // CloudBase emulator and the simulator's core, all in the test process. The other
      // reliability files start built bundles (testStack) and cannot see a mutant.
      // refund-model (fast-check over whole sequences) and reconcile-scale (hundreds of items)
      // also run in-process but cost 5-10 s per mutant on two cores: they stay in `npm test`,
      // and the focused domain-*.test.ts files carry the mutation run.
      'test/reliability/refund-book.test.ts',
      'test/reliability/limits-race.test.ts',
      'test/reliability/partner.test.ts',
      'test/reliability/domain-*.test.ts',
    ],
    // Reads the bundles in dist/ that npm test's global setup builds: no mutant is switchable there.
    exclude: ['test/unit/openapi-permissions.test.ts'],
    // A fresh wx-server-sdk per test file: Stryker reuses one worker for many runs, and an SDK
    // initialised by an earlier run would hide a mutant that skips cloud.init.
    server: { deps: { inline: ['wx-server-sdk'] } },
    setupFiles: ['test/mutation-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
